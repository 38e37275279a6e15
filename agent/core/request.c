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
    {"health", REQUEST_HEALTH},      {"any", REQUEST_HEALTH},
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

bool
request_param_apply(struct request *r, const char *key, size_t keylen, const char *value, size_t valuelen)
{
	char buf[32];

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
	return false;
}
