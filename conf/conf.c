/*
 * conf.c: reads pgcheckd.ini with inih into a struct conf, driven by the key table in conf_keys.h.
 * Lines are counted here (inih's handler gets no line number) and checked before inih sees them:
 * an indented line (inih would glue it to the previous key) and a line too long for inih are errors.
 * Nothing here exits or logs; every error is one line for the caller to print.
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <ini.h>

const char *const conf_request_names[] = {"primary", "replica", "read-only", "health", NULL};
const char *const conf_over_lag_names[] = {"down", "drain", NULL};
const char *const conf_log_level_names[] = {"error", "warning", "info", "debug", NULL};

/* clang-format off */
const struct conf_key conf_keys[] = {
#define CONF_ROW(sec, name, type, def, min, max, reload, enums, help)                               \
	{#sec, #name, CONF_##type, def, (double)(min), (double)(max), reload, enums, help, offsetof(struct conf, sec##_##name)},
	CONF_KEYS(CONF_ROW)
#undef CONF_ROW
};
/* clang-format on */
const size_t conf_key_count = sizeof(conf_keys) / sizeof(conf_keys[0]);

/* The longest line inih is given (inih's own limit is 200 bytes with its terminators). */
#define CONF_LINE_MAX 196

struct conf_parse {
	struct conf *conf;
	const char *name;
	FILE *f;
	int lineno;
	bool failed;
	char *err;
	size_t errlen;
	char *line; /* getline's buffer */
	size_t linecap;
	bool seen[sizeof(conf_keys) / sizeof(conf_keys[0])];
	int seen_line[sizeof(conf_keys) / sizeof(conf_keys[0])];
};

static void conf_fail(struct conf_parse *cp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
conf_fail(struct conf_parse *cp, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (cp->failed)
		return;
	cp->failed = true;
	n = snprintf(cp->err, cp->errlen, "%s:%d: ", cp->name, cp->lineno);
	if (n < 0 || (size_t)n >= cp->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(cp->err + n, cp->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

int
conf_enum_index(const char *const *names, const char *word)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcasecmp(names[i], word) == 0)
			return i;
	return -1;
}

bool
conf_parse_bytes(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		int shift;
	} units[] = {{"", 0},     {"B", 0},    {"kB", 10},  {"KB", 10},  {"k", 10},  {"K", 10},
	             {"MB", 20},  {"M", 20},   {"GB", 30},  {"G", 30},   {"TB", 40}, {"T", 40},
	             {"kiB", 10}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > ((unsigned long long)INT64_MAX >> units[i].shift))
			return false;
		*out = (int64_t)(v << units[i].shift);
		return true;
	}
	return false;
}

void
conf_format_bytes(int64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
	int u = 0;

	if (bytes == 0) {
		snprintf(buf, len, "0");
		return;
	}
	while (u < 4 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRId64, bytes);
	else
		snprintf(buf, len, "%" PRId64 "%s", bytes, units[u]);
}

bool
conf_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *hstart, *hend;
	char *end;
	long p;

	if (s[0] == '[') {
		hend = strchr(s, ']');
		if (hend == NULL || hend[1] != ':')
			return false;
		hstart = s + 1;
		colon = hend + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return false;
		hstart = s;
		hend = colon;
		if (memchr(s, ':', (size_t)(colon - s)) != NULL)
			return false; /* a bare IPv6 address needs brackets */
	}
	if (hend == hstart || (size_t)(hend - hstart) >= hostlen)
		return false;
	if (!isdigit((unsigned char)colon[1]))
		return false;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
		return false;
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	*port = (int)p;
	return true;
}

const char *
conf_list_next(const char **cursor, size_t *len)
{
	const char *p = *cursor, *item;

	while (*p == ' ' || *p == ',' || *p == '\t')
		p++;
	if (*p == '\0') {
		*cursor = p;
		return NULL;
	}
	item = p;
	*len = strcspn(p, " ,\t");
	*cursor = p + *len;
	return item;
}

bool
conf_parse_addr_list(const char *list, char out[][CONF_ADDR_MAX], int max, int *count)
{
	const char *cursor = list, *item;
	size_t n;

	*count = 0;
	while ((item = conf_list_next(&cursor, &n)) != NULL) {
		char host[256];
		int port;

		if (n >= CONF_ADDR_MAX || *count >= max)
			return false;
		memcpy(out[*count], item, n);
		out[*count][n] = '\0';
		if (!conf_parse_listen(out[*count], host, sizeof(host), &port) || strcmp(host, "*") == 0)
			return false;
		(*count)++;
	}
	return true;
}

bool
conf_parse_pairs(const char *list, char names[][64], char values[][64], int max, int *count)
{
	const char *cursor = list, *item;
	size_t n, c;

	*count = 0;
	while ((item = conf_list_next(&cursor, &n)) != NULL) {
		c = strcspn(item, ":");
		if (*count >= max || c == 0 || c >= n - 1 || c >= 64 || n - c - 1 >= 64)
			return false;
		memcpy(names[*count], item, c);
		names[*count][c] = '\0';
		memcpy(values[*count], item + c + 1, n - c - 1);
		values[*count][n - c - 1] = '\0';
		if (strchr(values[*count], ':') != NULL)
			return false;
		(*count)++;
	}
	return true;
}

/* conf_api_list_ok checks "/path, host:port": HAProxy runtime API addresses. */
static bool
conf_api_list_ok(const char *list)
{
	const char *cursor = list, *item;
	size_t n;

	while ((item = conf_list_next(&cursor, &n)) != NULL) {
		char entry[CONF_ADDR_MAX], host[256];
		int port;

		if (n >= 108)
			return false;
		memcpy(entry, item, n);
		entry[n] = '\0';
		if (entry[0] != '/' && (!conf_parse_listen(entry, host, sizeof(host), &port) || strcmp(host, "*") == 0))
			return false;
	}
	return true;
}

/* conf_set parses value into key k of c; on failure writes what is wrong (without file:line). */
static bool
conf_set(struct conf *c, const struct conf_key *k, const char *value, char *why, size_t whylen)
{
	char *field = (char *)c + k->offset;
	char *end;

	switch (k->type) {
	case CONF_INT: {
		long long v;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (value[0] == '\0' || *end != '\0' || errno != 0) {
			snprintf(why, whylen, "'%s' is not an integer", value);
			return false;
		}
		if ((double)v < k->min) {
			snprintf(why, whylen, "%lld is below the minimum %.0f", v, k->min);
			return false;
		}
		if ((double)v > k->max) {
			snprintf(why, whylen, "%lld is above the maximum %.0f", v, k->max);
			return false;
		}
		*(int64_t *)(void *)field = v;
		return true;
	}
	case CONF_BYTES: {
		int64_t v;
		char limit[32];

		if (!conf_parse_bytes(value, &v)) {
			snprintf(why, whylen, "'%s' is not a size (a number with an optional kB, MB, GB or TB)", value);
			return false;
		}
		if ((double)v < k->min) {
			conf_format_bytes((int64_t)k->min, limit, sizeof(limit));
			snprintf(why, whylen, "%s is below the minimum %s", value, limit);
			return false;
		}
		if ((double)v > k->max) {
			conf_format_bytes((int64_t)k->max, limit, sizeof(limit));
			snprintf(why, whylen, "%s is above the maximum %s", value, limit);
			return false;
		}
		*(int64_t *)(void *)field = v;
		return true;
	}
	case CONF_DOUBLE: {
		double v;

		errno = 0;
		v = strtod(value, &end);
		if (value[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v)) {
			snprintf(why, whylen, "'%s' is not a number", value);
			return false;
		}
		if (v < k->min) {
			snprintf(why, whylen, "%s is below the minimum %g", value, k->min);
			return false;
		}
		if (v > k->max) {
			snprintf(why, whylen, "%s is above the maximum %g", value, k->max);
			return false;
		}
		*(double *)(void *)field = v;
		return true;
	}
	case CONF_BOOL:
		if (strcasecmp(value, "true") == 0 || strcasecmp(value, "yes") == 0 || strcasecmp(value, "on") == 0 ||
		    strcmp(value, "1") == 0) {
			*(bool *)(void *)field = true;
			return true;
		}
		if (strcasecmp(value, "false") == 0 || strcasecmp(value, "no") == 0 || strcasecmp(value, "off") == 0 ||
		    strcmp(value, "0") == 0) {
			*(bool *)(void *)field = false;
			return true;
		}
		snprintf(why, whylen, "'%s' is not a boolean (true or false)", value);
		return false;
	case CONF_LISTEN: {
		char host[256];
		int port;

		if (value[0] == '\0' && k->min < 1) {
			field[0] = '\0';
			return true;
		}
		if (!conf_parse_listen(value, host, sizeof(host), &port)) {
			snprintf(why, whylen,
			         "'%s' is not HOST:PORT, *:PORT or [IPV6]:PORT with a port from 1 to 65535", value);
			return false;
		}
	}
		/* FALLTHROUGH */
	case CONF_ADDRLIST:
		if (k->type == CONF_ADDRLIST) {
			char list[CONF_ADDR_LIST_MAX][CONF_ADDR_MAX];
			int count;

			if (!conf_parse_addr_list(value, list, CONF_ADDR_LIST_MAX, &count)) {
				snprintf(why, whylen, "'%s' is not a list of at most %d HOST:PORT addresses", value,
				         CONF_ADDR_LIST_MAX);
				return false;
			}
		}
		/* FALLTHROUGH */
	case CONF_APILIST:
		if (k->type == CONF_APILIST && !conf_api_list_ok(value)) {
			snprintf(why, whylen, "'%s' is not a list of socket paths (/...) and HOST:PORT addresses",
			         value);
			return false;
		}
		/* FALLTHROUGH */
	case CONF_STR:
		if (strlen(value) >= CONF_STR_MAX) {
			snprintf(why, whylen, "value is longer than %d bytes", CONF_STR_MAX - 1);
			return false;
		}
		strcpy(field, value);
		return true;
	case CONF_ENUM: {
		int i = conf_enum_index(k->enum_names, value);
		size_t n;

		if (i < 0) {
			n = (size_t)snprintf(why, whylen, "'%s' is not one of", value);
			for (int j = 0; k->enum_names[j] != NULL && n < whylen; j++)
				n += (size_t)snprintf(why + n, whylen - n, "%s %s", j > 0 ? "," : "", k->enum_names[j]);
			return false;
		}
		*(int *)(void *)field = i;
		return true;
	}
	}
	snprintf(why, whylen, "unknown type");
	return false;
}

void
conf_defaults(struct conf *c)
{
	char why[256];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < conf_key_count; i++)
		if (!conf_set(c, &conf_keys[i], conf_keys[i].default_value, why, sizeof(why)))
			abort(); /* the table's own default is wrong: a build defect, caught by make check */
	if (!conf_parse_listen(c->agent_listen, c->listen_host, sizeof(c->listen_host), &c->listen_port))
		abort();
}

static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parse *cp = user;
	char why[CONF_ERR_MAX / 2];
	size_t i;

	if (cp->failed)
		return 0;
	for (i = 0; i < conf_key_count; i++)
		if (strcmp(conf_keys[i].section, section) == 0 && strcmp(conf_keys[i].name, name) == 0)
			break;
	if (i == conf_key_count) {
		bool section_known = false;

		for (size_t j = 0; j < conf_key_count; j++)
			if (strcmp(conf_keys[j].section, section) == 0)
				section_known = true;
		if (section[0] == '\0')
			conf_fail(cp, "%s: key outside any section", name);
		else if (!section_known)
			conf_fail(cp, "[%s] %s: unknown section [%s]", section, name, section);
		else
			conf_fail(cp, "[%s] %s: unknown key", section, name);
		return 0;
	}
	if (cp->seen[i]) {
		conf_fail(cp, "[%s] %s: given twice (first on line %d)", section, name, cp->seen_line[i]);
		return 0;
	}
	cp->seen[i] = true;
	cp->seen_line[i] = cp->lineno;
	if (!conf_set(cp->conf, &conf_keys[i], value, why, sizeof(why))) {
		conf_fail(cp, "[%s] %s: %s", section, name, why);
		return 0;
	}
	if (cp->conf->agent_listen == (char *)cp->conf + conf_keys[i].offset)
		(void)conf_parse_listen(value, cp->conf->listen_host, sizeof(cp->conf->listen_host),
		                        &cp->conf->listen_port); /* checked by conf_set */
	return 1;
}

/*
 * conf_reader hands inih one line at a time and counts them. It rejects what inih would silently
 * misread: an indented line (a continuation of the previous value) and a line inih would cut.
 */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_parse *cp = stream;
	ssize_t len;
	const char *p;

	if (cp->failed)
		return NULL;
	/* getline, not fgets: it says how many bytes it read, NULs included, and never splits a line */
	len = getline(&cp->line, &cp->linecap, cp->f);
	if (len < 0)
		return NULL;
	cp->lineno++;
	if (memchr(cp->line, '\0', (size_t)len) != NULL) {
		conf_fail(cp, "line holds a NUL byte");
		return NULL;
	}
	if (len > CONF_LINE_MAX + 1 || (len == CONF_LINE_MAX + 1 && cp->line[len - 1] != '\n') || len >= num) {
		conf_fail(cp, "line is longer than %d bytes", CONF_LINE_MAX);
		return NULL;
	}
	if (cp->line[0] == ' ' || cp->line[0] == '\t') {
		for (p = cp->line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p != '\n' && *p != '\r' && *p != '\0') {
			conf_fail(cp, "indented line (inih would read it as part of the previous value): "
			              "remove the leading space");
			return NULL;
		}
	}
	memcpy(str, cp->line, (size_t)len + 1);
	return str;
}

bool
conf_load_stream(FILE *f, const char *name, struct conf *c, char *err, size_t errlen)
{
	struct conf_parse cp;
	int rc;

	memset(&cp, 0, sizeof(cp));
	conf_defaults(c);
	cp.conf = c;
	cp.name = name;
	cp.f = f;
	cp.err = err;
	cp.errlen = errlen;
	err[0] = '\0';
	rc = ini_parse_stream(conf_reader, &cp, conf_handler, &cp);
	free(cp.line);
	if (cp.failed)
		return false;
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", name);
		return false;
	}
	if (rc != 0) {
		/* inih found a line it could not read: no '=' or an unclosed section header */
		cp.lineno = rc > 0 ? rc : cp.lineno;
		conf_fail(&cp, "cannot parse this line (expected '[section]', 'key = value' or a comment)");
		return false;
	}
	return conf_validate(c, name, err, errlen);
}

bool
conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	ok = conf_load_stream(f, path, c, err, errlen);
	fclose(f);
	return ok;
}

bool
conf_validate(struct conf *c, const char *name, char *err, size_t errlen)
{
	if (c->pg_stale_after_ms < c->pg_poll_interval_ms + c->pg_query_timeout_ms) {
		snprintf(err, errlen,
		         "%s: [pg] stale_after_ms: %" PRId64 " is below poll_interval_ms + query_timeout_ms (%" PRId64
		         "): every sample would be stale before the next one",
		         name, c->pg_stale_after_ms, c->pg_poll_interval_ms + c->pg_query_timeout_ms);
		return false;
	}
	if (c->agent_request_wait_ms >= c->agent_client_timeout_ms) {
		snprintf(err, errlen,
			 "%s: [agent] request_wait_ms: %" PRId64 " must be below client_timeout_ms (%" PRId64 ")", name,
			 c->agent_request_wait_ms, c->agent_client_timeout_ms);
		return false;
	}
	if ((c->agent_primary_port != 0 &&
	     (c->agent_primary_port == c->listen_port || c->agent_primary_port == c->agent_replica_port)) ||
	    (c->agent_replica_port != 0 && c->agent_replica_port == c->listen_port)) {
		snprintf(err, errlen, "%s: [agent] primary_port, replica_port and the listen port must all differ",
		         name);
		return false;
	}
	if (c->haproxy_runtime_api[0] != '\0') {
		char names[16][64], values[16][64];
		int n1, n2;
		struct in6_addr a6;

		if (!conf_parse_pairs(c->haproxy_template_backends, names, values, 16, &n1)) {
			snprintf(err, errlen, "%s: [haproxy] template_backends: '%s' is not BACKEND:PREFIX, ...", name,
			         c->haproxy_template_backends);
			return false;
		}
		if (!conf_parse_pairs(c->haproxy_dynamic_backends, names, values, 16, &n2)) {
			snprintf(err, errlen, "%s: [haproxy] dynamic_backends: '%s' is not BACKEND:REQUEST, ...", name,
			         c->haproxy_dynamic_backends);
			return false;
		}
		for (int i = 0; i < n2; i++) {
			if (conf_enum_index(conf_request_names, values[i]) < 0) {
				snprintf(err, errlen, "%s: [haproxy] dynamic_backends: '%s' is not a request (%s)",
				         name, values[i], "primary, replica, read-only, health");
				return false;
			}
		}
		if (n1 + n2 == 0 && c->scaleout_backend[0] == '\0') {
			snprintf(err, errlen,
			         "%s: [haproxy] runtime_api is set but no template_backends, "
			         "dynamic_backends or [scaleout] backend uses it",
			         name);
			return false;
		}
		if (n1 + n2 > 0 && inet_pton(AF_INET, c->haproxy_advertise_addr, &a6) != 1 &&
		    inet_pton(AF_INET6, c->haproxy_advertise_addr, &a6) != 1) {
			snprintf(err, errlen,
			         "%s: [haproxy] advertise_addr: '%s' is not a literal IP address (needed to "
			         "register)",
			         name, c->haproxy_advertise_addr);
			return false;
		}
	}
	if (c->scaleout_backend[0] != '\0' &&
	    (c->haproxy_runtime_api[0] == '\0' || c->scaleout_up_command[0] == '\0')) {
		snprintf(err, errlen, "%s: [scaleout] backend: needs [haproxy] runtime_api and [scaleout] up_command",
		         name);
		return false;
	}
	if (c->scaleout_min_pool > c->scaleout_max_pool) {
		snprintf(err, errlen, "%s: [scaleout] min_pool: %" PRId64 " is above max_pool (%" PRId64 ")", name,
		         c->scaleout_min_pool, c->scaleout_max_pool);
		return false;
	}
	if (c->weight_load_high_per_cpu <= c->weight_load_low_per_cpu) {
		snprintf(err, errlen, "%s: [weight] load_high_per_cpu: %g must be above load_low_per_cpu (%g)", name,
		         c->weight_load_high_per_cpu, c->weight_load_low_per_cpu);
		return false;
	}
	if (c->replica_max_lag_bytes > 0 && c->weight_lag_soft_bytes > c->replica_max_lag_bytes) {
		snprintf(err, errlen, "%s: [weight] lag_soft_bytes: must not be above [replica] max_lag_bytes", name);
		return false;
	}
	if (c->replica_max_lag_s > 0 && c->weight_lag_soft_s > c->replica_max_lag_s) {
		snprintf(err, errlen, "%s: [weight] lag_soft_s: must not be above [replica] max_lag_s", name);
		return false;
	}
	return true;
}

static size_t
conf_field_size(const struct conf_key *k)
{
	switch (k->type) {
	case CONF_STR:
	case CONF_LISTEN:
	case CONF_ADDRLIST:
	case CONF_APILIST:
		return CONF_STR_MAX;
	case CONF_INT:
	case CONF_BYTES:
		return sizeof(int64_t);
	case CONF_DOUBLE:
		return sizeof(double);
	case CONF_BOOL:
		return sizeof(bool);
	case CONF_ENUM:
		return sizeof(int);
	}
	return 0;
}

int
conf_keep_unreloadable(const struct conf *running, struct conf *next, char *kept, size_t keptlen)
{
	int count = 0;
	size_t n = 0;

	kept[0] = '\0';
	for (size_t i = 0; i < conf_key_count; i++) {
		const struct conf_key *k = &conf_keys[i];
		const char *a = (const char *)running + k->offset;
		char *b = (char *)next + k->offset;
		bool differ =
		    k->type == CONF_STR || k->type == CONF_LISTEN || k->type == CONF_ADDRLIST || k->type == CONF_APILIST
		        ? strcmp(a, b) != 0
		        : memcmp(a, b, conf_field_size(k)) != 0;

		if (k->reloadable || !differ)
			continue;
		if (n < keptlen)
			n += (size_t)snprintf(kept + n, keptlen - n, "%s[%s] %s", count > 0 ? ", " : "", k->section,
			                      k->name);
		memcpy(b, a, conf_field_size(k));
		count++;
	}
	memcpy(next->listen_host, running->listen_host, sizeof(next->listen_host));
	next->listen_port = running->listen_port;
	return count;
}

/* conf_print_wrapped writes text as "; " comment lines of at most 100 columns. */
static void
conf_print_wrapped(FILE *out, const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		size_t take = strlen(p);

		if (take > 96) {
			take = 96;
			while (take > 0 && p[take] != ' ')
				take--;
			if (take == 0)
				take = 96;
		}
		fprintf(out, "; %.*s\n", (int)take, p);
		p += take;
		while (*p == ' ')
			p++;
	}
}

static void
conf_range(const struct conf_key *k, char *buf, size_t len)
{
	char lo[32], hi[32];

	switch (k->type) {
	case CONF_INT:
		snprintf(buf, len, "%.0f to %.0f", k->min, k->max);
		break;
	case CONF_BYTES:
		conf_format_bytes((int64_t)k->min, lo, sizeof(lo));
		conf_format_bytes((int64_t)k->max, hi, sizeof(hi));
		snprintf(buf, len, "%s to %s", lo, hi);
		break;
	case CONF_DOUBLE:
		snprintf(buf, len, "%g to %g", k->min, k->max);
		break;
	case CONF_BOOL:
		snprintf(buf, len, "true or false");
		break;
	case CONF_ENUM: {
		size_t n = 0;

		buf[0] = '\0';
		for (int j = 0; k->enum_names[j] != NULL && n < len; j++)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", j > 0 ? ", " : "", k->enum_names[j]);
		break;
	}
	case CONF_LISTEN:
		snprintf(buf, len, k->min < 1 ? "HOST:PORT or empty" : "HOST:PORT");
		break;
	case CONF_ADDRLIST:
		snprintf(buf, len, "HOST:PORT, ... (up to %d) or empty", CONF_ADDR_LIST_MAX);
		break;
	case CONF_APILIST:
		snprintf(buf, len, "/socket/path or HOST:PORT, ... or empty");
		break;
	default:
		snprintf(buf, len, "text");
		break;
	}
}

void
conf_print_example(FILE *out)
{
	const char *section = "";
	char range[128];

	fprintf(out, "; pgcheckd.ini: the configuration of pgcheckd, the PostgreSQL health agent for HAProxy.\n"
	             "; Every key, at its default. Generated by `pgcheckd --help-config=ini` from the key table;\n"
	             "; `pgcheckd -t -c FILE` checks a file. Keys start at the beginning of the line.\n");
	for (size_t i = 0; i < conf_key_count; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, "\n[%s]\n", section);
		}
		fprintf(out, "\n");
		conf_print_wrapped(out, k->help);
		conf_range(k, range, sizeof(range));
		fprintf(out, "; %s%s\n", range, k->reloadable ? "" : "; needs a restart");
		fprintf(out, "%s =%s%s\n", k->name, k->default_value[0] != '\0' ? " " : "", k->default_value);
	}
}

void
conf_print_keys(FILE *out)
{
	char range[128];

	fprintf(out, "| section | key | default | range | reload | meaning |\n");
	fprintf(out, "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < conf_key_count; i++) {
		const struct conf_key *k = &conf_keys[i];

		conf_range(k, range, sizeof(range));
		fprintf(out, "| `[%s]` | `%s` | `%s` | %s | %s | %s |\n", k->section, k->name,
		        k->default_value[0] != '\0' ? k->default_value : "\"\"", range,
		        k->reloadable ? "yes" : "restart", k->help);
	}
}

/* conf_print_roff writes text for a man page: backslashes and hyphens escaped, no line starting with a dot. */
static void
conf_print_roff(FILE *out, const char *text)
{
	if (text[0] == '.' || text[0] == '\'')
		fputs("\\&", out);
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-')
			fputs("\\-", out);
		else
			fputc(*p, out);
	}
}

void
conf_print_man(FILE *out)
{
	const char *section = "";
	char range[128];

	for (size_t i = 0; i < conf_key_count; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, ".SS [%s]\n", section);
		}
		fprintf(out, ".TP\n.B ");
		conf_print_roff(out, k->name);
		fprintf(out, " = ");
		conf_print_roff(out, k->default_value[0] != '\0' ? k->default_value : "\"\"");
		fprintf(out, "\n");
		conf_print_roff(out, k->help);
		conf_range(k, range, sizeof(range));
		fprintf(out, "\nRange: ");
		conf_print_roff(out, range);
		fprintf(out, "%s\n", k->reloadable ? "; applied on reload." : "; needs a restart.");
	}
}
