/*
 * fuzz_conf.c: libFuzzer harness for the configuration file. The input is a pgcheckd.ini; it is read
 * with conf_load_stream as pgcheckd -t would. A failure must be one non-empty line naming the file;
 * a success must hold every key within the range its row in conf_keys[] gives, pass conf_validate
 * again, come from a file without NUL bytes, and hold every text value exactly as the file wrote it
 * (never cut at a ';' or '#', never changed): each one that is not empty occurs in the input.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_key(const struct conf *c, const struct conf_key *k)
{
	const char *field = (const char *)c + k->offset;

	switch (k->type) {
	case CONF_INT:
	case CONF_BYTES: {
		int64_t v;

		memcpy(&v, field, sizeof(v));
		if ((double)v < k->min || (double)v > k->max)
			fprintf(stderr, "[%s] %s = %lld outside %g..%g\n", k->section, k->name, (long long)v, k->min,
			        k->max);
		FUZZ_CHECK((double)v >= k->min && (double)v <= k->max);
		break;
	}
	case CONF_DOUBLE: {
		double v;

		memcpy(&v, field, sizeof(v));
		FUZZ_CHECK(isfinite(v) && v >= k->min && v <= k->max);
		break;
	}
	case CONF_BOOL: {
		unsigned char v;

		memcpy(&v, field, 1);
		FUZZ_CHECK(v <= 1);
		break;
	}
	case CONF_ENUM: {
		int v, count = 0;

		memcpy(&v, field, sizeof(v));
		FUZZ_CHECK(k->enum_names != NULL);
		while (k->enum_names[count] != NULL)
			count++;
		FUZZ_CHECK(v >= 0 && v < count);
		break;
	}
	case CONF_LISTEN: {
		char host[256];
		int port;

		FUZZ_CHECK(memchr(field, '\0', CONF_STR_MAX) != NULL);
		if (field[0] != '\0' || k->min >= 1)
			FUZZ_CHECK(conf_parse_listen(field, host, sizeof(host), &port) && port >= 1 && port <= 65535);
		break;
	}
	case CONF_ADDRLIST: {
		static char list[CONF_ADDR_LIST_MAX][CONF_ADDR_MAX];
		int count;

		FUZZ_CHECK(memchr(field, '\0', CONF_STR_MAX) != NULL);
		FUZZ_CHECK(conf_parse_addr_list(field, list, CONF_ADDR_LIST_MAX, &count));
		FUZZ_CHECK(count >= 0 && count <= CONF_ADDR_LIST_MAX);
		break;
	}
	default:
		/* text: it fits its field and its row's limit */
		FUZZ_CHECK(memchr(field, '\0', CONF_STR_MAX) != NULL);
		FUZZ_CHECK(k->max < 1 || strlen(field) <= (size_t)k->max);
		break;
	}
}

/*
 * value_is_a_whole_line_end: value occurs in data after a '=' (and blanks), followed only by blanks
 * up to the end of its line: it was neither cut (at a ';' or '#') nor changed.
 */
static bool
value_is_a_whole_line_end(const uint8_t *data, size_t size, const char *value, size_t n)
{
	const uint8_t *p = data, *end = data + size;

	while ((p = memmem(p, (size_t)(end - p), value, n)) != NULL) {
		const uint8_t *before = p, *after = p + n;

		while (before > data && (before[-1] == ' ' || before[-1] == '\t'))
			before--;
		while (after < end && (*after == ' ' || *after == '\t'))
			after++;
		if (after < end && *after == '\r')
			after++;
		if (before > data && before[-1] == '=' && (after == end || *after == '\n'))
			return true;
		p++;
	}
	return false;
}

/* check_text_kept: a text value that differs from its default was read whole from data. */
static void
check_text_kept(const struct conf *c, const struct conf_key *k, const uint8_t *data, size_t size)
{
	const char *field = (const char *)c + k->offset;
	size_t n = strlen(field);

	if (k->type != CONF_STR && k->type != CONF_LISTEN && k->type != CONF_ADDRLIST && k->type != CONF_APILIST)
		return;
	if (n == 0 || strcmp(field, k->default_value) == 0)
		return;
	FUZZ_CHECK(value_is_a_whole_line_end(data, size, field, n));
	if (k->offset == offsetof(struct conf, pg_conninfo)) {
		char why[512];

		FUZZ_CHECK(conf_conninfo_check(field, why, sizeof(why)));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf c;
	char err[CONF_ERR_MAX];
	FILE *f;
	bool ok;

	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer; the empty file is a seed of its own in the unit tests */
	f = fmemopen((void *)(uintptr_t)data, size, "r");
	if (f == NULL)
		return 0;
	memset(err, 'X', sizeof(err));
	ok = conf_load_stream(f, "fuzz.ini", &c, err, sizeof(err));
	fclose(f);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (!ok) {
		/* one line: "fuzz.ini:LINE: ..." or "fuzz.ini: ..." */
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(strchr(err, '\n') == NULL);
		FUZZ_CHECK(strncmp(err, "fuzz.ini:", 9) == 0);
		return 0;
	}
	FUZZ_CHECK(err[0] == '\0');
	/* conf_reader refuses a line holding a NUL byte, and a good load read every line */
	FUZZ_CHECK(memchr(data, '\0', size) == NULL);
	for (size_t i = 0; i < conf_key_count; i++) {
		check_key(&c, &conf_keys[i]);
		check_text_kept(&c, &conf_keys[i], data, size);
	}
	/* the derived listen address is the one in agent_listen */
	{
		char host[256];
		int port;

		FUZZ_CHECK(conf_parse_listen(c.agent_listen, host, sizeof(host), &port));
		FUZZ_CHECK(strcmp(host, c.listen_host) == 0 && port == c.listen_port);
	}
	FUZZ_CHECK(conf_validate(&c, "fuzz.ini", err, sizeof(err)));
	return 0;
}
