/*
 * request.h: what a client asks for, in the same words on every protocol (agent line, HTTP path,
 * role port): a kind and optional per-request lag limits. Parsing only; no decisions here.
 */
#ifndef PGCHECKD_REQUEST_H
#define PGCHECKD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct request {
	enum request_kind kind;
	bool has_max_lag_bytes;
	int64_t max_lag_bytes;
	bool has_max_lag_s;
	double max_lag_s;
};

/* request_kind_name is the canonical word for a kind ("primary", "replica", "read-only", "health"). */
const char *request_kind_name(enum request_kind kind);

/* request_kind_parse maps a word or alias (case-insensitive, len bytes) to a kind. */
bool request_kind_parse(const char *word, size_t len, enum request_kind *kind);

/*
 * request_param_apply applies one parameter to r: "lag" (bytes with units) or "lag_s" (seconds).
 * False for an unknown key or a bad value; r is unchanged then.
 */
bool request_param_apply(struct request *r, const char *key, size_t keylen, const char *value, size_t valuelen);

#endif
