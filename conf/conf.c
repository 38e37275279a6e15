/*
 * conf.c: reads pgcheckd.ini into a struct conf, driven by the key table in conf_keys.h.
 * The ini grammar is small and read here, line by line: '[section]', 'key = value', whole-line
 * comments (';' or '#') and blank lines. A value is everything after the '=' but the spaces around
 * it: never cut at a ';' or '#', never changed; what cannot be read whole is an error.
 * Nothing here exits or logs; every error is one line for the caller to print, and none shows the
 * value of a key that may hold a password.
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
#include <sys/stat.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

/* clang-format off */
const struct conf_key conf_keys[] = {
#define CONF_ROW(sec, name, type, def, min, max, reload, enums, help)                               \
	{#sec, #name, CONF_##type, def, (double)(min), (double)(max), reload, enums, help, offsetof(struct conf, sec##_##name)},
	CONF_KEYS(CONF_ROW)
#undef CONF_ROW
};
/* clang-format on */
const size_t conf_key_count = sizeof(conf_keys) / sizeof(conf_keys[0]);

struct conf_parse {
	struct conf *conf;
	const char *name;
	int lineno;
	bool failed;
	char *err;
	size_t errlen;
	char line[CONF_LINE_MAX + 2];                            /* the line being read, NUL-terminated */
	char section[CONF_LINE_MAX + 1];                         /* the current section's name */
	int seen_line[sizeof(conf_keys) / sizeof(conf_keys[0])]; /* where each key was set; 0: not set */
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

/*
 * conf_secret_stat_ok checks what stat() said of a file holding a secret (a TLS key, the peers' key):
 * a regular file no one but its owner may read, as libpq demands of .pgpass. why never names its bytes.
 */
static bool
conf_secret_stat_ok(const struct stat *st, const char *path, char *why, size_t whylen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%.256s is not a regular file", path);
		return false;
	}
	if ((st->st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(why, whylen,
		         "%.256s has mode %04o: group or others may read it, and it holds a secret (refused, as libpq "
		         "refuses "
		         "a loose .pgpass): chmod 600 %.256s, owned by pgcheckd's user",
		         path, (unsigned)(st->st_mode & 07777), path);
		return false;
	}
	return true;
}

bool
conf_secret_file_ok(const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return false;
	}
	return conf_secret_stat_ok(&st, path, why, whylen);
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

bool
conf_parse_cidr_list(const char *list, struct conf_cidr *out, int max, int *count)
{
	const char *cursor = list, *item;
	size_t n;

	*count = 0;
	while ((item = conf_list_next(&cursor, &n)) != NULL) {
		char text[INET6_ADDRSTRLEN + 8], *slash, *end;
		struct conf_cidr *c = &out[*count];
		int bits;

		if (n >= sizeof(text) || *count >= max)
			return false;
		memcpy(text, item, n);
		text[n] = '\0';
		slash = strchr(text, '/');
		if (slash != NULL)
			*slash = '\0';
		memset(c, 0, sizeof(*c));
		if (inet_pton(AF_INET, text, c->addr) == 1) {
			c->family = AF_INET;
			bits = 32;
		} else if (inet_pton(AF_INET6, text, c->addr) == 1) {
			c->family = AF_INET6;
			bits = 128;
		} else {
			return false;
		}
		c->prefix_bits = bits;
		if (slash != NULL) {
			long v;

			if (!isdigit((unsigned char)slash[1]))
				return false;
			errno = 0;
			v = strtol(slash + 1, &end, 10);
			if (errno != 0 || *end != '\0' || v < 0 || v > bits)
				return false;
			c->prefix_bits = (int)v;
		}
		(*count)++;
	}
	return true;
}

static bool
conf_cidr_prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

bool
conf_cidr_match(const struct conf_cidr *ranges, int count, int family, const unsigned char *addr)
{
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (family == AF_INET6 && memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
		family = AF_INET;
		addr += sizeof(v4mapped);
	}
	for (int i = 0; i < count; i++)
		if (ranges[i].family == family && conf_cidr_prefix_match(ranges[i].addr, addr, ranges[i].prefix_bits))
			return true;
	return false;
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

/* libpq's messages for a connection string it cannot parse, and what we say instead (without the value) */
static const struct {
	const char *libpq; /* the start of libpq's message */
	const char *ours;
} conf_conninfo_errors[] = {
    {"missing \"=\" after", "a word without '=' (quote a value that holds spaces: key='a b')"},
    {"unterminated quoted string", "a quoted value is not closed"},
    {"invalid connection option", "an unknown option name"},
    {"invalid percent-encoded token", "a '%' in the URI is not followed by two hex digits"},
    {"forbidden value %00", "the URI holds %00"},
    {"invalid URI query parameter", "an unknown URI query parameter"},
    {"extra key/value separator", "a URI query parameter with a second '='"},
    {"missing key/value separator", "a URI query parameter without '='"},
    {"unexpected character", "an unexpected character in the URI"},
    {"end of string reached when looking for matching \"]\"", "an IPv6 address without its ']' in the URI"},
    {"IPv6 host address may not be empty", "an empty IPv6 address in the URI"},
    {"out of memory", "out of memory"},
};

/* conf_conninfo_is_uri says whether libpq reads s as a URI (its prefixes are case-sensitive). */
static bool
conf_conninfo_is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

bool
conf_conninfo_check(const char *conninfo, char *why, size_t whylen)
{
	static const char hidden[] = " (the value is not shown: it may hold a password)";
	PQconninfoOption *opts;
	char *errmsg = NULL;
	bool ok = true;

	/* what libpq expands (PQconnectStartParams with expand_dbname): a URI or anything with '=' */
	if (!conf_conninfo_is_uri(conninfo) && strchr(conninfo, '=') == NULL)
		return true; /* a database name, or empty: libpq's defaults */
	opts = PQconninfoParse(conninfo, &errmsg);
	if (opts == NULL) {
		/* libpq's message quotes the part it could not read, which may be a password: never pass it on */
		const char *ours = "its message is not shown";

		for (size_t i = 0; errmsg != NULL && i < sizeof(conf_conninfo_errors) / sizeof(conf_conninfo_errors[0]);
		     i++)
			if (strncmp(errmsg, conf_conninfo_errors[i].libpq, strlen(conf_conninfo_errors[i].libpq)) == 0)
				ours = conf_conninfo_errors[i].ours;
		snprintf(why, whylen, "libpq cannot parse it: %s%s", ours, hidden);
		PQfreemem(errmsg);
		return false;
	}
	if (conf_conninfo_is_uri(conninfo)) {
		/*
		 * A password with an unencoded '@' or '/' moves its tail into the host or the database name
		 * (or a port), which libpq and the server then quote in their errors: refuse it here.
		 */
		for (PQconninfoOption *o = opts; o->keyword != NULL && ok; o++) {
			if (o->val == NULL)
				continue;
			if ((strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "dbname") == 0) &&
			    strchr(o->val, '@') != NULL)
				ok = false;
			if (strcmp(o->keyword, "port") == 0 && o->val[strspn(o->val, "0123456789,")] != '\0')
				ok = false;
		}
		if (!ok)
			snprintf(why, whylen,
			         "the URI's host, port or database name holds a part of its user name or password: "
			         "write '@', '/', '?' and ':' in them as %%40, %%2F, %%3F and %%3A%s",
			         hidden);
	}
	PQconninfoFree(opts);
	return ok;
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
	case CONF_CIDRLIST:
		if (k->type == CONF_CIDRLIST) {
			struct conf_cidr ranges[CONF_CIDR_LIST_MAX];
			int count;

			if (!conf_parse_cidr_list(value, ranges, CONF_CIDR_LIST_MAX, &count)) {
				snprintf(
				    why, whylen,
				    "'%s' is not a list of at most %d addresses or ranges (127.0.0.0/8, ::1, 10.1.2.3)",
				    value, CONF_CIDR_LIST_MAX);
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
	case CONF_STR: {
		size_t most = k->type == CONF_STR && k->max >= 1 ? (size_t)k->max : CONF_STR_MAX - 1;

		if (strlen(value) > most) {
			snprintf(why, whylen, "value is longer than %zu bytes", most);
			return false;
		}
		if (k->offset == offsetof(struct conf, pg_conninfo) && !conf_conninfo_check(value, why, whylen))
			return false;
		strcpy(field, value);
		return true;
	}
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

/* conf_protect_bits reads an [http] protect list; false (the word at fault in *bad, *badlen) on another word. */
static bool
conf_protect_bits(const char *list, unsigned *bits, const char **bad, size_t *badlen)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {{"status", CONF_PROTECT_STATUS},
	             {"metrics", CONF_PROTECT_METRICS},
	             {"bodies", CONF_PROTECT_BODIES},
	             {"checks", CONF_PROTECT_CHECKS}};
	const char *cursor = list, *item;
	size_t n;

	*bits = 0;
	while ((item = conf_list_next(&cursor, &n)) != NULL) {
		size_t i;

		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == n && strncasecmp(words[i].word, item, n) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0])) {
			*bad = item;
			*badlen = n;
			return false;
		}
		*bits |= words[i].bit;
	}
	return true;
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
	{
		const char *bad;
		size_t badlen;

		if (!conf_protect_bits(c->http_protect, &c->http_protect_bits, &bad, &badlen))
			abort();
	}
}

/* conf_key_index returns the row of the key whose field is at offset in struct conf. */
static size_t
conf_key_index(size_t offset)
{
	for (size_t i = 0; i < conf_key_count; i++)
		if (conf_keys[i].offset == offset)
			return i;
	abort(); /* a field that is not in the table: a build defect, caught by the unit tests */
}

#define CONF_KEY_OF(field) conf_key_index(offsetof(struct conf, field))

/* conf_set_key stores value into key i; the line is cp->lineno. */
static bool
conf_set_key(struct conf_parse *cp, const char *section, const char *name, const char *value)
{
	char why[CONF_ERR_MAX / 2];
	size_t i;

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
		return false;
	}
	if (cp->seen_line[i] > 0) {
		conf_fail(cp, "[%s] %s: given twice (first on line %d)", section, name, cp->seen_line[i]);
		return false;
	}
	cp->seen_line[i] = cp->lineno;
	if (!conf_set(cp->conf, &conf_keys[i], value, why, sizeof(why))) {
		conf_fail(cp, "[%s] %s: %s", section, name, why);
		return false;
	}
	if (i == CONF_KEY_OF(agent_listen))
		(void)conf_parse_listen(value, cp->conf->listen_host, sizeof(cp->conf->listen_host),
		                        &cp->conf->listen_port); /* checked by conf_set */
	return true;
}

static bool
conf_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * conf_line_key finds the key of a 'key = value' line, for error messages: its start in *key and
 * its length (0 when the line has no '=' or nothing before it).
 */
static size_t
conf_line_key(const char *line, size_t len, const char **key)
{
	const char *p = line, *end = line + len, *eq;

	while (p < end && conf_blank(*p))
		p++;
	eq = memchr(p, '=', (size_t)(end - p));
	if (eq == NULL)
		return 0;
	*key = p;
	while (eq > p && conf_blank(eq[-1]))
		eq--;
	return (size_t)(eq - p);
}

/* conf_line_fail reports what is wrong with the current line, naming its section and key if it has one. */
static void conf_line_fail(struct conf_parse *cp, size_t len, const char *what, ...)
    __attribute__((format(printf, 3, 4)));

static void
conf_line_fail(struct conf_parse *cp, size_t len, const char *what, ...)
{
	char msg[256];
	const char *key = NULL;
	size_t keylen = conf_line_key(cp->line, len, &key);
	va_list ap;

	va_start(ap, what);
	vsnprintf(msg, sizeof(msg), what, ap);
	va_end(ap);
	if (keylen > 0 && keylen < 128 && memchr(key, '\0', keylen) == NULL) {
		if (cp->section[0] != '\0')
			conf_fail(cp, "[%.*s] %.*s: %s", 128, cp->section, (int)keylen, key, msg);
		else
			conf_fail(cp, "%.*s: %s", (int)keylen, key, msg);
	} else if (cp->section[0] != '\0') {
		conf_fail(cp, "[%.*s]: %s", 128, cp->section, msg);
	} else {
		conf_fail(cp, "%s", msg);
	}
}

/*
 * conf_read_line reads the next line into cp->line without its line end and returns its length, or
 * -1 at the end of the file. A longer line than CONF_LINE_MAX is read to its end and its first
 * CONF_LINE_MAX bytes kept; *too_long says so. NUL bytes are kept (and counted by the caller).
 */
static ssize_t
conf_read_line(struct conf_parse *cp, FILE *f, bool *too_long)
{
	size_t n = 0;
	int ch;

	*too_long = false;
	while ((ch = getc(f)) != EOF && ch != '\n') {
		if (n < CONF_LINE_MAX)
			cp->line[n++] = (char)ch;
		else
			*too_long = true;
	}
	if (ch == EOF && n == 0 && !*too_long)
		return -1;
	if (n > 0 && cp->line[n - 1] == '\r')
		n--; /* a CRLF line end */
	cp->line[n] = '\0';
	return (ssize_t)n;
}

/* conf_parse_line reads one line of the file; false when it is wrong (the error is in cp). */
static bool
conf_parse_line(struct conf_parse *cp, size_t len, bool too_long)
{
	char *line = cp->line, *end = cp->line + len, *p, *eq, *value, *key_end;

	if (too_long) {
		conf_line_fail(cp, len, "line is longer than %d bytes", CONF_LINE_MAX);
		return false;
	}
	if (cp->lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
		/* a UTF-8 byte order mark, as some editors write */
		memmove(line, line + 3, len - 2);
		len -= 3;
		end = line + len;
	}
	if (memchr(line, '\0', len) != NULL) {
		conf_line_fail(cp, len, "line holds a NUL byte");
		return false;
	}
	for (p = line; p < end; p++) {
		if ((*p > 0 && *p < ' ' && *p != '\t') || *p == 0x7f) {
			conf_line_fail(cp, len, "line holds a control character (byte 0x%02x)", (unsigned)*p);
			return false;
		}
	}
	for (p = line; p < end && conf_blank(*p); p++)
		;
	if (p == end)
		return true; /* blank */
	if (p != line) {
		/* other ini readers take it as part of the previous value: say so rather than guess */
		conf_line_fail(cp, len,
		               "indented line (continuation lines are not supported): remove the leading space");
		return false;
	}
	if (*p == ';' || *p == '#')
		return true; /* a comment: only a whole line is one */
	if (*p == '[') {
		char *close = strchr(p, ']');

		if (close == NULL) {
			conf_fail(cp, "cannot parse this line (expected '[section]', 'key = value' or a comment)");
			return false;
		}
		*close = '\0';
		memcpy(cp->section, p + 1, (size_t)(close - p));
		for (p = close + 1; p < end && conf_blank(*p); p++)
			;
		if (p != end) {
			conf_fail(cp, "[%.*s]: text after ']' (comments are whole lines that start with ; or #)", 128,
			          cp->section);
			return false;
		}
		return true;
	}
	eq = strchr(line, '=');
	if (eq == NULL) {
		conf_fail(cp, "cannot parse this line (expected '[section]', 'key = value' or a comment)");
		return false;
	}
	for (key_end = eq; key_end > line && conf_blank(key_end[-1]); key_end--)
		;
	if (key_end == line) {
		conf_line_fail(cp, len, "'=' without a key before it");
		return false;
	}
	*key_end = '\0';
	for (value = eq + 1; value < end && conf_blank(*value); value++)
		;
	while (end > value && conf_blank(end[-1]))
		end--;
	*end = '\0';
	return conf_set_key(cp, cp->section, line, value);
}

static bool conf_check(struct conf *c, const char *name, const int *lines, char *err, size_t errlen);
static bool conf_check_tls(const struct conf *c, const char *name, const int *lines, char *err, size_t errlen);
static bool conf_check_dcs(const struct conf *c, const char *name, const int *lines, char *err, size_t errlen);

/*
 * conf_read_secret reads a file holding a secret (set on line, 0: not from the file; what names the
 * key) into out: its bytes less trailing white space, min to max bytes. Refused, as libpq refuses a
 * loose .pgpass, when it is not a regular file, when group or others have any permission on it, when
 * empty, too short or too long. Messages name the file, never a byte of it.
 */
static bool
conf_read_secret(const char *path, const char *name, int line, const char *what, const char *noun, size_t min,
                 size_t max, unsigned char *out, size_t *outlen, char *err, size_t errlen)
{
	unsigned char buf[CONF_PEERS_KEY_MAX + 2];
	char where[CONF_ERR_MAX / 2], why[CONF_ERR_MAX] = "";
	struct stat sb;
	size_t len = 0, cap = max + 2 < sizeof(buf) ? max + 2 : sizeof(buf);
	ssize_t n;
	int fd;

	*outlen = 0;
	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d: %s", name, line, what);
	else
		snprintf(where, sizeof(where), "%s: %s", name, what);
	/* non-blocking: a FIFO or a device named here must not stall the start or a reload */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open %s: %s", where, path, strerror(errno));
		return false;
	}
	if (fstat(fd, &sb) != 0 || !conf_secret_stat_ok(&sb, path, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", where, why);
		close(fd);
		return false;
	}
	while (len < cap && (n = read(fd, buf + len, cap - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: cannot read %s: %s", where, path, strerror(errno));
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return false;
		}
		len += (size_t)n;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (len == 0)
		snprintf(err, errlen,
		         "%s: %s is empty: write a %s of at least %zu bytes into it (openssl rand -hex 32 > %s)", where,
		         path, noun, min, path);
	else if (len < min)
		snprintf(err, errlen,
		         "%s: %s holds a %s of %zu bytes: a %s needs at least %zu bytes (openssl rand -hex 32 > %s)",
		         where, path, noun, len, noun, min, path);
	else if (len > max)
		snprintf(err, errlen, "%s: %s is longer than %zu bytes: it should hold one %s", where, path, max, noun);
	else {
		memcpy(out, buf, len);
		*outlen = len;
	}
	explicit_bzero(buf, sizeof(buf));
	return *outlen > 0;
}

/* conf_read_key reads [peers] key_file into c->peers_key (see conf_read_secret). */
static bool
conf_read_key(struct conf *c, const char *name, int line, char *err, size_t errlen)
{
	c->peers_key_len = 0;
	if (c->peers_key_file[0] == '\0')
		return true;
	return conf_read_secret(c->peers_key_file, name, line, "[peers] key_file", "key", CONF_PEERS_KEY_MIN,
	                        CONF_PEERS_KEY_MAX, c->peers_key, &c->peers_key_len, err, errlen);
}

/* conf_read_dcs_password reads [dcs] password_file into c->dcs_password (see conf_read_secret): text, one line. */
static bool
conf_read_dcs_password(struct conf *c, const char *name, int line, char *err, size_t errlen)
{
	unsigned char secret[CONF_DCS_PASSWORD_MAX];
	size_t len = 0;

	explicit_bzero(c->dcs_password, sizeof(c->dcs_password));
	if (c->dcs_password_file[0] == '\0')
		return true;
	if (!conf_read_secret(c->dcs_password_file, name, line, "[dcs] password_file", "password", 1,
	                      CONF_DCS_PASSWORD_MAX - 1, secret, &len, err, errlen))
		return false; /* errors have been logged already */
	for (size_t i = 0; i < len; i++)
		if (secret[i] < ' ' || secret[i] == 0x7f) {
			if (line > 0)
				snprintf(err, errlen, "%s:%d: [dcs] password_file: %s holds a control character", name,
				         line, c->dcs_password_file);
			else
				snprintf(err, errlen, "%s: [dcs] password_file: %s holds a control character", name,
				         c->dcs_password_file);
			explicit_bzero(secret, sizeof(secret));
			return false;
		}
	memcpy(c->dcs_password, secret, len);
	c->dcs_password[len] = '\0';
	explicit_bzero(secret, sizeof(secret));
	return true;
}

/*
 * conf_read_http_auth reads [http] basic_auth_file and token_file into the Authorization values that
 * prove who asks, and [http] protect into bits. lines: where each key was set (0: not in the file).
 */
static bool
conf_read_http_auth(struct conf *c, const char *name, const int *lines, char *err, size_t errlen)
{
	unsigned char secret[CONF_HTTP_SECRET_MAX];
	const char *bad = NULL;
	size_t len, badlen = 0;

	c->http_basic_expected[0] = c->http_bearer_expected[0] = '\0';
	if (!conf_protect_bits(c->http_protect, &c->http_protect_bits, &bad, &badlen)) {
		snprintf(err, errlen, "%s:%d: [http] protect: '%.*s' is not one of status, metrics, bodies, checks",
		         name, lines[0], (int)(badlen < 64 ? badlen : 64), bad);
		return false;
	}
	if (c->http_basic_auth_file[0] != '\0') {
		if (!conf_read_secret(c->http_basic_auth_file, name, lines[1], "[http] basic_auth_file", "secret",
		                      CONF_HTTP_SECRET_MIN, CONF_HTTP_SECRET_MAX, secret, &len, err, errlen))
			return false; /* errors have been logged already */
		if (memchr(secret, ':', len) == NULL || secret[0] == ':') {
			snprintf(err, errlen, "%s:%d: [http] basic_auth_file: %s does not hold 'user:password'", name,
			         lines[1], c->http_basic_auth_file);
			explicit_bzero(secret, sizeof(secret));
			return false;
		}
		memcpy(c->http_basic_expected, "Basic ", 6);
		(void)EVP_EncodeBlock((unsigned char *)c->http_basic_expected + 6, secret, (int)len);
		explicit_bzero(secret, sizeof(secret));
	}
	if (c->http_token_file[0] != '\0') {
		if (!conf_read_secret(c->http_token_file, name, lines[2], "[http] token_file", "token",
		                      CONF_HTTP_SECRET_MIN, CONF_HTTP_SECRET_MAX, secret, &len, err, errlen))
			return false;
		for (size_t i = 0; i < len; i++)
			if (secret[i] <= ' ' || secret[i] >= 0x7f) {
				snprintf(err, errlen,
				         "%s:%d: [http] token_file: %s holds a space or a control character", name,
				         lines[2], c->http_token_file);
				explicit_bzero(secret, sizeof(secret));
				return false;
			}
		snprintf(c->http_bearer_expected, sizeof(c->http_bearer_expected), "Bearer %.*s", (int)len,
		         (const char *)secret);
		explicit_bzero(secret, sizeof(secret));
	}
	return true;
}

bool
conf_load_stream(FILE *f, const char *name, struct conf *c, char *err, size_t errlen)
{
	struct conf_parse *cp = calloc(1, sizeof(*cp));
	bool ok, too_long;
	ssize_t len;

	err[0] = '\0';
	conf_defaults(c);
	if (cp == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return false;
	}
	cp->conf = c;
	cp->name = name;
	cp->err = err;
	cp->errlen = errlen;
	while (!cp->failed && (len = conf_read_line(cp, f, &too_long)) >= 0) {
		cp->lineno++;
		(void)conf_parse_line(cp, (size_t)len, too_long);
	}
	if (!cp->failed && ferror(f))
		snprintf(err, errlen, "%s: read error", name);
	{
		const int http_lines[3] = {cp->seen_line[CONF_KEY_OF(http_protect)],
		                           cp->seen_line[CONF_KEY_OF(http_basic_auth_file)],
		                           cp->seen_line[CONF_KEY_OF(http_token_file)]};

		ok = !cp->failed && !ferror(f) && conf_check(c, name, cp->seen_line, err, errlen) &&
		     conf_read_key(c, name, cp->seen_line[CONF_KEY_OF(peers_key_file)], err, errlen) &&
		     conf_read_dcs_password(c, name, cp->seen_line[CONF_KEY_OF(dcs_password_file)], err, errlen) &&
		     conf_read_http_auth(c, name, http_lines, err, errlen);
	}
	free(cp);
	return ok;
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

/*
 * conf_cross_fail reports a rule over several keys (given as rows of conf_keys, the list ending
 * with SIZE_MAX) at the key to blame: the subject (the first row) when subject_first and the file
 * set it, else the one the file set last; without lines (or none set), the first row, without a line.
 */
static void conf_cross_fail(char *err, size_t errlen, const char *name, const int *lines, bool subject_first,
                            const size_t *rows, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void
conf_cross_fail(char *err, size_t errlen, const char *name, const int *lines, bool subject_first, const size_t *rows,
                const char *fmt, ...)
{
	size_t blame = rows[0];
	int line = 0, n;
	va_list ap;

	if (lines != NULL) {
		if (subject_first && lines[rows[0]] > 0) {
			line = lines[rows[0]];
		} else {
			for (const size_t *r = rows; *r != SIZE_MAX; r++) {
				if (lines[*r] > line) {
					line = lines[*r];
					blame = *r;
				}
			}
		}
	}
	if (line > 0)
		n = snprintf(err, errlen, "%s:%d: [%s] %s: ", name, line, conf_keys[blame].section,
		             conf_keys[blame].name);
	else
		n = snprintf(err, errlen, "%s: [%s] %s: ", name, conf_keys[blame].section, conf_keys[blame].name);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

#define CONF_ROWS(...)                                                                                                 \
	(const size_t[])                                                                                               \
	{                                                                                                              \
		__VA_ARGS__, SIZE_MAX                                                                                  \
	}

/* conf_check_tls: the [tls] keys, when a port uses TLS or a file is named; the key file's mode always */
static bool
conf_check_tls(const struct conf *c, const char *name, const int *lines, char *err, size_t errlen)
{
	const size_t cert = CONF_KEY_OF(tls_cert_file), key = CONF_KEY_OF(tls_key_file), ca = CONF_KEY_OF(tls_ca_file),
	             verify = CONF_KEY_OF(tls_verify_client), agent = CONF_KEY_OF(tls_agent),
	             http = CONF_KEY_OF(tls_http);
	char why[CONF_ERR_MAX / 2];
	bool on = c->tls_agent || c->tls_http;

	if (on && (c->tls_cert_file[0] == '\0' || c->tls_key_file[0] == '\0')) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(c->tls_cert_file[0] == '\0' ? cert : key, agent, http),
		                "TLS is on ([tls] agent or http) but cert_file or key_file is empty");
		return false;
	}
	if (!on && (c->tls_cert_file[0] != '\0' || c->tls_key_file[0] != '\0')) {
		conf_cross_fail(err, errlen, name, lines, true,
		                CONF_ROWS(c->tls_cert_file[0] != '\0' ? cert : key, agent, http),
		                "set, but no port uses TLS: set [tls] agent = true or [tls] http = true");
		return false;
	}
	if (c->tls_http && c->agent_http_listen[0] == '\0') {
		conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(http, CONF_KEY_OF(agent_http_listen)),
		                "true, but there is no HTTP port ([agent] http_listen is empty)");
		return false;
	}
	if (c->tls_verify_client == CONF_VERIFY_REQUIRED && c->tls_ca_file[0] == '\0') {
		conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(verify, ca),
		                "'required' needs [tls] ca_file, the CA that signs the clients' certificates");
		return false;
	}
	if (c->tls_key_file[0] != '\0' && !conf_secret_file_ok(c->tls_key_file, why, sizeof(why))) {
		conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(key), "%s", why);
		return false;
	}
	return true;
}

/* conf_check_dcs: [dcs] when a mode is set: what Patroni mode needs, the endpoints, the timings, the key file */
static bool
conf_check_dcs(const struct conf *c, const char *name, const int *lines, char *err, size_t errlen)
{
	const size_t mode = CONF_KEY_OF(dcs_mode), eps = CONF_KEY_OF(dcs_endpoints), fresh = CONF_KEY_OF(dcs_fresh_ms);
	char why[CONF_ERR_MAX / 2];
	const char *p = c->dcs_endpoints;
	int count = 0;

	if (c->dcs_mode == CONF_DCS_OFF)
		return true;
	if (c->dcs_scope[0] == '\0' || c->dcs_name[0] == '\0') {
		conf_cross_fail(
		    err, errlen, name, lines, true,
		    CONF_ROWS(c->dcs_scope[0] == '\0' ? CONF_KEY_OF(dcs_scope) : CONF_KEY_OF(dcs_name), mode),
		    "mode = patroni needs [dcs] scope and name: %s is empty",
		    c->dcs_scope[0] == '\0' ? "scope" : "name");
		return false;
	}
	if (strlen(c->dcs_namespace) + strlen(c->dcs_scope) + 10 >= CONF_DCS_KEY_MAX ||
	    strlen(c->dcs_name) >= CONF_DCS_NAME_MAX) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(dcs_name), CONF_KEY_OF(dcs_scope), CONF_KEY_OF(dcs_namespace)),
		                "too long for an etcd key or a member name");
		return false;
	}
	/* every endpoint an http:// or https:// URL without white space inside, at most CONF_DCS_ENDPOINTS_MAX */
	while (*p != '\0') {
		size_t n;

		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		n = strcspn(p, " \t,");
		if (++count > CONF_DCS_ENDPOINTS_MAX || n >= CONF_DCS_URL_MAX ||
		    !((n > 7 && strncmp(p, "http://", 7) == 0) || (n > 8 && strncmp(p, "https://", 8) == 0))) {
			conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(eps, mode),
			                "'%.*s' is not an http:// or https:// URL (at most %d, each under %d bytes)",
			                (int)(n > 200 ? 200 : n), p, CONF_DCS_ENDPOINTS_MAX, CONF_DCS_URL_MAX);
			return false;
		}
		p += n;
	}
	if (count == 0) {
		conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(eps, mode), "empty, but a mode is set");
		return false;
	}
	if (c->dcs_interval_ms + c->dcs_timeout_ms >= c->dcs_fresh_ms) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(fresh, CONF_KEY_OF(dcs_interval_ms), CONF_KEY_OF(dcs_timeout_ms)),
		                "interval_ms + timeout_ms (%" PRId64 " + %" PRId64 " = %" PRId64
		                ") is not below fresh_ms (%" PRId64 "): an etcd that answers every read in time "
		                "would be taken for lost between two reads",
		                c->dcs_interval_ms, c->dcs_timeout_ms, c->dcs_interval_ms + c->dcs_timeout_ms,
		                c->dcs_fresh_ms);
		return false;
	}
	if (c->dcs_mode == CONF_DCS_LEASE &&
	    c->dcs_interval_ms + 2 * c->dcs_timeout_ms + c->dcs_lease_margin_ms >= c->dcs_lease_ttl_s * 1000) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(dcs_lease_margin_ms), CONF_KEY_OF(dcs_lease_ttl_s),
		                          CONF_KEY_OF(dcs_interval_ms), CONF_KEY_OF(dcs_timeout_ms)),
		                "interval_ms + 2 x timeout_ms + lease_margin_ms (%" PRId64 " + 2 x %" PRId64
		                " + %" PRId64 ") is not below lease_ttl_s (%" PRId64
		                " s): a renewal (and its retry on another "
		                "endpoint) must fit before the margin",
		                c->dcs_interval_ms, c->dcs_timeout_ms, c->dcs_lease_margin_ms, c->dcs_lease_ttl_s);
		return false;
	}
	if ((c->dcs_cert_file[0] == '\0') != (c->dcs_key_file[0] == '\0')) {
		conf_cross_fail(
		    err, errlen, name, lines, true,
		    CONF_ROWS(c->dcs_cert_file[0] == '\0' ? CONF_KEY_OF(dcs_cert_file) : CONF_KEY_OF(dcs_key_file),
		              CONF_KEY_OF(dcs_cert_file), CONF_KEY_OF(dcs_key_file)),
		    "empty: a client certificate needs both cert_file and key_file");
		return false;
	}
	if ((c->dcs_username[0] == '\0') != (c->dcs_password_file[0] == '\0')) {
		conf_cross_fail(
		    err, errlen, name, lines, true,
		    CONF_ROWS(c->dcs_username[0] == '\0' ? CONF_KEY_OF(dcs_username) : CONF_KEY_OF(dcs_password_file),
		              CONF_KEY_OF(dcs_username), CONF_KEY_OF(dcs_password_file)),
		    "%s is empty: etcd's authentication needs both username and password_file",
		    c->dcs_username[0] == '\0' ? "username" : "password_file");
		return false;
	}
	if (strlen(c->dcs_username) >= CONF_DCS_NAME_MAX) {
		conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(CONF_KEY_OF(dcs_username)),
		                "longer than %d bytes", CONF_DCS_NAME_MAX - 1);
		return false;
	}
	if (c->dcs_key_file[0] != '\0' && !conf_secret_file_ok(c->dcs_key_file, why, sizeof(why))) {
		conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(CONF_KEY_OF(dcs_key_file)), "%s", why);
		return false;
	}
	return true;
}

bool
conf_validate(struct conf *c, const char *name, char *err, size_t errlen)
{
	return conf_check(c, name, NULL, err, errlen);
}

/* conf_check is conf_validate; lines (from the parse, or NULL) say where each key was set. */
static bool
conf_check(struct conf *c, const char *name, const int *lines, char *err, size_t errlen)
{
	const size_t poll = CONF_KEY_OF(pg_poll_interval_ms), query = CONF_KEY_OF(pg_query_timeout_ms),
	             connect = CONF_KEY_OF(pg_connect_timeout_ms), stale = CONF_KEY_OF(pg_stale_after_ms);
	const char *bad;
	size_t badlen;

	if (!conf_labels_ok(c->agent_location, &bad, &badlen)) {
		snprintf(err, errlen,
		         "%s:%d: [agent] location: '%.*s' is not a label KEY=VALUE (letters, digits and _.:- on both "
		         "sides, under %d bytes)",
		         name, lines[CONF_KEY_OF(agent_location)], (int)(badlen < 64 ? badlen : 64), bad,
		         CONF_LABEL_MAX);
		return false;
	}

	/* a sample is taken every poll interval, each within its deadline: the next one comes before the stale limit */
	if (c->pg_poll_interval_ms + c->pg_query_timeout_ms > c->pg_stale_after_ms) {
		conf_cross_fail(err, errlen, name, lines, false, CONF_ROWS(stale, poll, query),
		                "poll_interval_ms + query_timeout_ms (%" PRId64 " + %" PRId64 " = %" PRId64
		                ") is above stale_after_ms (%" PRId64
		                "): every sample would be stale before the next one",
		                c->pg_poll_interval_ms, c->pg_query_timeout_ms,
		                c->pg_poll_interval_ms + c->pg_query_timeout_ms, c->pg_stale_after_ms);
		return false;
	}
	/* an idle connection found lost at the next poll is connected again at once (and not reported before) */
	if (c->pg_poll_interval_ms + c->pg_connect_timeout_ms > c->pg_stale_after_ms) {
		conf_cross_fail(err, errlen, name, lines, false, CONF_ROWS(stale, poll, connect),
		                "poll_interval_ms + connect_timeout_ms (%" PRId64 " + %" PRId64 " = %" PRId64
		                ") is above stale_after_ms (%" PRId64
		                "): a lost connection would be stale before its connect deadline reports it",
		                c->pg_poll_interval_ms, c->pg_connect_timeout_ms,
		                c->pg_poll_interval_ms + c->pg_connect_timeout_ms, c->pg_stale_after_ms);
		return false;
	}
	/* a peer is read every interval, each read within its deadline: two answers are at most both apart */
	if (c->peers_interval_ms + c->peers_timeout_ms >= c->peers_fresh_ms) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(peers_fresh_ms), CONF_KEY_OF(peers_interval_ms),
		                          CONF_KEY_OF(peers_timeout_ms)),
		                "interval_ms + timeout_ms (%" PRId64 " + %" PRId64 " = %" PRId64
		                ") is not below fresh_ms (%" PRId64
		                "): a peer that answers every read in time would be forgotten between two reads",
		                c->peers_interval_ms, c->peers_timeout_ms, c->peers_interval_ms + c->peers_timeout_ms,
		                c->peers_fresh_ms);
		return false;
	}
	if (c->agent_request_wait_ms >= c->agent_client_timeout_ms) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(agent_request_wait_ms), CONF_KEY_OF(agent_client_timeout_ms)),
		                "request_wait_ms (%" PRId64 ") must be below client_timeout_ms (%" PRId64 ")",
		                c->agent_request_wait_ms, c->agent_client_timeout_ms);
		return false;
	}
	if ((c->agent_primary_port != 0 &&
	     (c->agent_primary_port == c->listen_port || c->agent_primary_port == c->agent_replica_port)) ||
	    (c->agent_replica_port != 0 && c->agent_replica_port == c->listen_port)) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(agent_primary_port), CONF_KEY_OF(agent_replica_port),
		                          CONF_KEY_OF(agent_listen)),
		                "primary_port, replica_port and the listen port must all differ");
		return false;
	}
	if (!conf_check_tls(c, name, lines, err, errlen))
		return false;
	if (!conf_check_dcs(c, name, lines, err, errlen))
		return false;
	if (c->haproxy_runtime_api[0] != '\0') {
		const size_t api = CONF_KEY_OF(haproxy_runtime_api), tmpl = CONF_KEY_OF(haproxy_template_backends),
		             dyn = CONF_KEY_OF(haproxy_dynamic_backends), addr = CONF_KEY_OF(haproxy_advertise_addr),
		             scale = CONF_KEY_OF(scaleout_backend);
		char names[16][64], values[16][64];
		int n1, n2;
		struct in6_addr a6;

		if (!conf_parse_pairs(c->haproxy_template_backends, names, values, 16, &n1)) {
			conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(tmpl, api),
			                "'%s' is not BACKEND:PREFIX, ...", c->haproxy_template_backends);
			return false;
		}
		if (!conf_parse_pairs(c->haproxy_dynamic_backends, names, values, 16, &n2)) {
			conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(dyn, api),
			                "'%s' is not BACKEND:REQUEST, ...", c->haproxy_dynamic_backends);
			return false;
		}
		for (int i = 0; i < n2; i++) {
			if (conf_enum_index(conf_request_names, values[i]) < 0) {
				conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(dyn, api),
				                "'%s' is not a request (%s)", values[i],
				                "primary, replica, read-only, health");
				return false;
			}
		}
		const size_t push = CONF_KEY_OF(haproxy_push_servers);
		int n3;
		bool any_mine = false;

		if (!conf_parse_pairs(c->haproxy_push_servers, names, values, 16, &n3)) {
			conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(push, api),
			                "'%s' is not BACKEND/SERVER:REQUEST, ... (at most 16)",
			                c->haproxy_push_servers);
			return false;
		}
		for (int i = 0; i < n3; i++) {
			const char *slash = strchr(names[i], '/');

			if (slash == NULL || slash == names[i] || slash[1] == '\0' || strchr(slash + 1, '/') != NULL ||
			    conf_enum_index(conf_request_names, values[i]) < 0) {
				conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(push, api),
				                "'%s:%s' is not BACKEND/SERVER:REQUEST (REQUEST: %s)", names[i],
				                values[i], "primary, replica, read-only, health");
				return false;
			}
			any_mine |= strcmp(slash + 1, "*") == 0;
		}
		/* advertise_addr alone: the HAProxy instances that "ctl drain --wait" asks */
		if (n1 + n2 + n3 == 0 && c->scaleout_backend[0] == '\0' && c->haproxy_advertise_addr[0] == '\0') {
			conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(api, tmpl, dyn, push, addr, scale),
			                "set but no template_backends, dynamic_backends, push_servers, advertise_addr "
			                "(ctl drain --wait) or [scaleout] backend uses it");
			return false;
		}
		if ((n1 + n2 > 0 || any_mine || c->haproxy_advertise_addr[0] != '\0') &&
		    inet_pton(AF_INET, c->haproxy_advertise_addr, &a6) != 1 &&
		    inet_pton(AF_INET6, c->haproxy_advertise_addr, &a6) != 1) {
			conf_cross_fail(err, errlen, name, lines, true, CONF_ROWS(addr, api, tmpl, dyn),
			                "'%s' is not a literal IP address (needed to register and to wait for a drain)",
			                c->haproxy_advertise_addr);
			return false;
		}
	}
	if (c->haproxy_push_servers[0] != '\0' && c->haproxy_runtime_api[0] == '\0') {
		conf_cross_fail(err, errlen, name, lines, true,
		                CONF_ROWS(CONF_KEY_OF(haproxy_push_servers), CONF_KEY_OF(haproxy_runtime_api)),
		                "needs [haproxy] runtime_api");
		return false;
	}
	if (c->scaleout_backend[0] != '\0' &&
	    (c->haproxy_runtime_api[0] == '\0' || c->scaleout_up_command[0] == '\0')) {
		conf_cross_fail(err, errlen, name, lines, true,
		                CONF_ROWS(CONF_KEY_OF(scaleout_backend), CONF_KEY_OF(haproxy_runtime_api),
		                          CONF_KEY_OF(scaleout_up_command)),
		                "needs [haproxy] runtime_api and [scaleout] up_command");
		return false;
	}
	if (c->scaleout_min_pool > c->scaleout_max_pool) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(scaleout_min_pool), CONF_KEY_OF(scaleout_max_pool)),
		                "min_pool (%" PRId64 ") is above max_pool (%" PRId64 ")", c->scaleout_min_pool,
		                c->scaleout_max_pool);
		return false;
	}
	if (c->weight_load_high_per_cpu <= c->weight_load_low_per_cpu) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(weight_load_high_per_cpu), CONF_KEY_OF(weight_load_low_per_cpu)),
		                "load_high_per_cpu (%g) must be above load_low_per_cpu (%g)",
		                c->weight_load_high_per_cpu, c->weight_load_low_per_cpu);
		return false;
	}
	if (c->replica_max_lag_bytes > 0 && c->weight_lag_soft_bytes > c->replica_max_lag_bytes) {
		char soft[32], hard[32];

		conf_format_bytes(c->weight_lag_soft_bytes, soft, sizeof(soft));
		conf_format_bytes(c->replica_max_lag_bytes, hard, sizeof(hard));
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(weight_lag_soft_bytes), CONF_KEY_OF(replica_max_lag_bytes)),
		                "[weight] lag_soft_bytes (%s) must not be above [replica] max_lag_bytes (%s)", soft,
		                hard);
		return false;
	}
	if (c->replica_max_lag_s > 0 && c->weight_lag_soft_s > c->replica_max_lag_s) {
		conf_cross_fail(err, errlen, name, lines, false,
		                CONF_ROWS(CONF_KEY_OF(weight_lag_soft_s), CONF_KEY_OF(replica_max_lag_s)),
		                "[weight] lag_soft_s (%g) must not be above [replica] max_lag_s (%g)",
		                c->weight_lag_soft_s, c->replica_max_lag_s);
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
	case CONF_CIDRLIST:
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
		bool differ = k->type == CONF_STR || k->type == CONF_LISTEN || k->type == CONF_ADDRLIST ||
		                      k->type == CONF_APILIST || k->type == CONF_CIDRLIST
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
	case CONF_CIDRLIST:
		snprintf(buf, len, "ADDRESS[/BITS], ... (up to %d); empty: every address", CONF_CIDR_LIST_MAX);
		break;
	default:
		snprintf(buf, len, "text, up to %.0f bytes", k->max >= 1 ? k->max : CONF_STR_MAX - 1);
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
	             "; `pgcheckd -t -c FILE` checks a file. Keys start at the beginning of the line; comments are\n"
	             "; whole lines: a ';' or '#' after a value is part of the value.\n");
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
