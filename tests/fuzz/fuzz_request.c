/*
 * fuzz_request.c: libFuzzer harness for request words and parameters. The input is split at its first
 * '=' into a key and a value, as the agent line and HTTP query hand them to request_param_apply.
 * Invariants: a refused parameter leaves the request unchanged; an accepted one is "lag" or "lag_s"
 * with a value that is non-negative and finite, or "min_lsn" with the position a reference LSN parser
 * (PostgreSQL's pg_lsn_in rules: 1 to 8 hex digits, '/', 1 to 8 hex digits) reads, which prints back
 * as the same position, or "prefer" with a label KEY=VALUE (one '=', neither side empty, letters, digits
 * and "_.:-", under CONF_LABEL_MAX bytes) stored as given; conf_parse_bytes agrees with a reference written here from
 * its contract and reads back what conf_format_bytes writes; a kind word round-trips through its canonical name.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "fuzz_check.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * reference_parse_bytes: conf_parse_bytes's contract, "digits, then no space, then an optional unit,
 * powers of 1024: B, k/kB/KB/kiB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB", and the value must fit int64_t.
 */
static bool
reference_parse_bytes(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		int shift;
	} units[] = {{"", 0},     {"B", 0},    {"k", 10}, {"kB", 10}, {"KB", 10},  {"K", 10},
	             {"kiB", 10}, {"KiB", 10}, {"M", 20}, {"MB", 20}, {"MiB", 20}, {"G", 30},
	             {"GB", 30},  {"GiB", 30}, {"T", 40}, {"TB", 40}, {"TiB", 40}};
	uint64_t v = 0;
	bool overflow = false;
	size_t i = 0;

	while (isdigit((unsigned char)s[i])) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
		i++;
	}
	if (i == 0)
		return false;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (strcmp(s + i, units[u].unit) != 0)
			continue;
		if (overflow || v > ((uint64_t)INT64_MAX >> units[u].shift))
			return false;
		*out = (int64_t)(v << units[u].shift);
		return true;
	}
	return false;
}

/* reference_lsn_half: 1 to 8 hex digits, exactly len bytes, read as pg_lsn_in does (strtoul, base 16). */
static bool
reference_lsn_half(const char *s, size_t len, uint64_t *out)
{
	char digits[9];
	char *end;

	if (len == 0 || len > 8)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	memcpy(digits, s, len);
	digits[len] = '\0';
	*out = strtoull(digits, &end, 16);
	return *end == '\0' && *out <= UINT32_MAX;
}

/* reference_parse_lsn: "X/Y", exactly len bytes, each half reference_lsn_half. */
static bool
reference_parse_lsn(const char *s, size_t len, uint64_t *out)
{
	const char *slash = memchr(s, '/', len);
	uint64_t hi, lo;

	if (slash == NULL)
		return false;
	if (!reference_lsn_half(s, (size_t)(slash - s), &hi) ||
	    !reference_lsn_half(slash + 1, len - (size_t)(slash - s) - 1, &lo))
		return false;
	*out = (hi << 32) | lo;
	return true;
}

static void
check_parse_lsn(const char *s, size_t len)
{
	uint64_t got = 0x5a5a, want = 0xa5a5;
	bool ok = request_lsn_parse(s, len, &got), ref = reference_parse_lsn(s, len, &want);

	FUZZ_CHECK(ok == ref);
	if (!ok)
		return;
	FUZZ_CHECK(got == want);
	/* as PostgreSQL prints it, it reads back the same */
	{
		char text[32];
		uint64_t back = 0;
		int n = snprintf(text, sizeof(text), "%" PRIX32 "/%" PRIX32, (uint32_t)(got >> 32), (uint32_t)got);

		FUZZ_CHECK(n > 0 && (size_t)n < sizeof(text));
		FUZZ_CHECK(request_lsn_parse(text, (size_t)n, &back) && back == got);
	}
}

/* reference_label_ok: a location label as conf_label_ok's contract says */
static bool
reference_label_ok(const char *s, size_t len)
{
	size_t eqs = 0, at = 0;

	if (len == 0 || len >= CONF_LABEL_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=') {
			eqs++;
			at = i;
		} else if (!isalnum((unsigned char)s[i]) && strchr("_.:-", s[i]) == NULL) {
			return false;
		}
	}
	return eqs == 1 && at > 0 && at < len - 1;
}

static void
check_parse_bytes(const char *s)
{
	int64_t got = -1, want = -1;
	bool ok = conf_parse_bytes(s, &got), ref = reference_parse_bytes(s, &want);

	FUZZ_CHECK(ok == ref);
	if (!ok)
		return;
	FUZZ_CHECK(got == want && got >= 0);
	/* what conf_format_bytes writes reads back the same */
	{
		char text[32];
		int64_t back = -1;

		conf_format_bytes(got, text, sizeof(text));
		FUZZ_CHECK(conf_parse_bytes(text, &back) && back == got);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	const char *eq = memchr(buf, '=', size);
	size_t keylen = eq != NULL ? (size_t)(eq - buf) : size;
	const char *value = eq != NULL ? eq + 1 : buf + size;
	size_t valuelen = eq != NULL ? size - keylen - 1 : 0;
	struct request before, r;
	enum request_kind kind;
	char text[512];

	/* request_param_apply: exactly the bytes given, nothing past them */
	memset(&before, 0x5a, sizeof(before));
	before.kind = REQUEST_REPLICA;
	before.has_max_lag_bytes = false;
	before.has_max_lag_s = false;
	before.has_min_lsn = false;
	before.prefer_count = 0;
	r = before;
	if (!request_param_apply(&r, buf, keylen, value, valuelen)) {
		FUZZ_CHECK(memcmp(&r, &before, sizeof(r)) == 0);
	} else {
		/* the protocols never pass a NUL (both refuse it first); past one, the value is not compared */
		bool clean = memchr(value, '\0', valuelen) == NULL;
		bool lag = keylen == 3 && strncasecmp(buf, "lag", 3) == 0;
		bool lag_s = keylen == 5 && strncasecmp(buf, "lag_s", 5) == 0;
		bool min_lsn = keylen == 7 && strncasecmp(buf, "min_lsn", 7) == 0;
		bool prefer = keylen == 6 && strncasecmp(buf, "prefer", 6) == 0;

		FUZZ_CHECK(lag || lag_s || min_lsn || prefer);
		FUZZ_CHECK(r.kind == REQUEST_REPLICA);
		if (prefer) {
			/* one label more, as given, and nothing else changed */
			FUZZ_CHECK(r.prefer_count == 1 && reference_label_ok(value, valuelen));
			FUZZ_CHECK(strlen(r.prefer[0]) == valuelen && memcmp(r.prefer[0], value, valuelen) == 0);
			FUZZ_CHECK(!r.has_max_lag_bytes && !r.has_max_lag_s && !r.has_min_lsn);
		} else if (min_lsn) {
			uint64_t want;

			/* only the position changed, and it is what the reference reads from exactly these bytes */
			FUZZ_CHECK(r.has_min_lsn && !r.has_max_lag_bytes && !r.has_max_lag_s);
			FUZZ_CHECK(reference_parse_lsn(value, valuelen, &want) && want == r.min_lsn);
			FUZZ_CHECK(memcmp(&r.max_lag_bytes, &before.max_lag_bytes, sizeof(r.max_lag_bytes)) == 0);
			FUZZ_CHECK(memcmp(&r.max_lag_s, &before.max_lag_s, sizeof(r.max_lag_s)) == 0);
		} else if (lag) {
			char v[64];
			int64_t want;

			FUZZ_CHECK(r.has_max_lag_bytes && !r.has_max_lag_s && !r.has_min_lsn && r.max_lag_bytes >= 0);
			/* the value is a size in conf_parse_bytes's words */
			FUZZ_CHECK(valuelen < sizeof(v));
			memcpy(v, value, valuelen);
			v[valuelen] = '\0';
			if (clean)
				FUZZ_CHECK(reference_parse_bytes(v, &want) && want == r.max_lag_bytes);
		} else {
			FUZZ_CHECK(r.has_max_lag_s && !r.has_max_lag_bytes && !r.has_min_lsn);
			FUZZ_CHECK(isfinite(r.max_lag_s) && r.max_lag_s >= 0);
			FUZZ_CHECK(valuelen > 0 && isdigit((unsigned char)value[0]));
		}
	}

	/* request_lsn_parse on the whole input and on the value, exactly their bytes */
	check_parse_lsn(buf, size);
	if (eq != NULL)
		check_parse_lsn(value, valuelen);

	/* conf_parse_bytes on the whole input and on the value, as C strings */
	if (size < sizeof(text)) {
		memcpy(text, buf, size);
		text[size] = '\0';
		check_parse_bytes(text);
		check_parse_bytes(text + (eq != NULL ? keylen + 1 : size));
	}

	/* request_kind_parse: a word that parses names a kind whose canonical name parses to it again */
	if (request_kind_parse(buf, keylen, &kind)) {
		const char *name = request_kind_name(kind);
		enum request_kind again;

		FUZZ_CHECK((unsigned)kind < REQUEST_KIND_COUNT);
		FUZZ_CHECK(request_kind_parse(name, strlen(name), &again) && again == kind);
		FUZZ_CHECK(memchr(buf, '\0', keylen) == NULL);
	}
	return 0;
}
