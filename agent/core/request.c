/*
 * request.c: request words and parameters, the same on every protocol.
 * Parsing only: what a request gets is decided in verdict.c.
 */
#include "request.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *word;
	enum request_kind kind;
} request_words[] = {
    {"primary", REQUEST_PRIMARY},    {"master", REQUEST_PRIMARY}, {"leader", REQUEST_PRIMARY},
    {"read-write", REQUEST_PRIMARY}, {"rw", REQUEST_PRIMARY},     {"replica", REQUEST_REPLICA},
    {"standby", REQUEST_REPLICA},    {"ro", REQUEST_REPLICA},     {"read-only", REQUEST_READ_ONLY},
    {"health", REQUEST_HEALTH},      {"any", REQUEST_HEALTH},     {"sync", REQUEST_SYNC},
    {"synchronous", REQUEST_SYNC},   {"async", REQUEST_ASYNC},    {"asynchronous", REQUEST_ASYNC},
    {"quorum", REQUEST_QUORUM},
};

const char *
request_kind_name(enum request_kind kind)
{
	return (unsigned)kind < REQUEST_KIND_COUNT ? conf_request_names[kind] : "unknown";
}

bool
request_kind_parse(const char *word, size_t len, enum request_kind *kind)
{
	for (size_t i = 0; i < sizeof(request_words) / sizeof(request_words[0]); i++) {
		if (strlen(request_words[i].word) == len && strncasecmp(request_words[i].word, word, len) == 0) {
			*kind = request_words[i].kind;
			return true;
		}
	}
	return false;
}

/* request_lsn_half reads 1 to 8 hex digits, exactly len bytes, as PostgreSQL's pg_lsn_in does. */
static bool
request_lsn_half(const char *text, size_t len, uint32_t *half)
{
	uint32_t v = 0;

	if (len == 0 || len > 8)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*half = v;
	return true;
}

bool
request_lsn_parse(const char *text, size_t len, uint64_t *lsn)
{
	const char *slash = memchr(text, '/', len);
	uint32_t hi, lo;
	size_t hilen;

	if (slash == NULL)
		return false;
	hilen = (size_t)(slash - text);
	if (!request_lsn_half(text, hilen, &hi) || !request_lsn_half(slash + 1, len - hilen - 1, &lo))
		return false;
	*lsn = ((uint64_t)hi << 32) | lo;
	return true;
}

bool
request_param_apply(struct request *r, const char *key, size_t keylen, const char *value, size_t valuelen)
{
	char buf[32];

	if (keylen == 6 && strncasecmp(key, "prefer", 6) == 0) {
		if (r->prefer_count >= REQUEST_PREFER_MAX || !conf_label_ok(value, valuelen))
			return false;
		memcpy(r->prefer[r->prefer_count], value, valuelen);
		r->prefer[r->prefer_count][valuelen] = '\0';
		r->prefer_count++;
		return true;
	}
	if (valuelen == 0 || valuelen >= sizeof(buf))
		return false;
	memcpy(buf, value, valuelen);
	buf[valuelen] = '\0';
	if (keylen == 3 && strncasecmp(key, "lag", 3) == 0) {
		int64_t bytes;

		if (!conf_parse_bytes(buf, &bytes))
			return false;
		r->has_max_lag_bytes = true;
		r->max_lag_bytes = bytes;
		return true;
	}
	if (keylen == 5 && strncasecmp(key, "lag_s", 5) == 0) {
		char *end;
		double s;

		if (!isdigit((unsigned char)buf[0]))
			return false;
		errno = 0;
		s = strtod(buf, &end);
		if (*end != '\0' || errno != 0 || !isfinite(s) || s < 0)
			return false;
		r->has_max_lag_s = true;
		r->max_lag_s = s;
		return true;
	}
	if (keylen == 7 && strncasecmp(key, "min_lsn", 7) == 0) {
		uint64_t lsn;

		if (!request_lsn_parse(value, valuelen, &lsn))
			return false;
		r->has_min_lsn = true;
		r->min_lsn = lsn;
		return true;
	}
	return false;
}
