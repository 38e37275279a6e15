/*
 * request.h: what a client asks for, in the same words on every protocol (agent line, HTTP path,
 * role port): a kind, optional per-request lag limits and an optional position (min_lsn) the answer must
 * have replayed. Parsing only; no decisions here.
 */
#ifndef PGCHECKD_REQUEST_H
#define PGCHECKD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define REQUEST_PREFER_MAX 4

struct request {
	enum request_kind kind;
	bool has_max_lag_bytes;
	int64_t max_lag_bytes;
	bool has_max_lag_s;
	double max_lag_s;
	bool has_min_lsn;
	uint64_t min_lsn; /* "min_lsn=X/Y": a replica is up only when it has replayed at least this */
	/* HTTP only ("role_status=404"): the status of a down answer that only says the node holds the other
	 * role (is-replica, is-primary); 0 for the default, 503 */
	int other_role_status;
	int prefer_count; /* "prefer=KEY=VALUE", up to REQUEST_PREFER_MAX: full weight only where all match */
	char prefer[REQUEST_PREFER_MAX][CONF_LABEL_MAX];
};

/* request_kind_name is the canonical word for a kind ("primary", "replica", "read-only", "health"). */
const char *request_kind_name(enum request_kind kind);

/* request_kind_parse maps a word or alias (case-insensitive, len bytes) to a kind. */
bool request_kind_parse(const char *word, size_t len, enum request_kind *kind);

/*
 * request_lsn_parse reads an LSN as PostgreSQL writes it ("16/B374D848": 1 to 8 hex digits, "/", 1 to 8
 * hex digits, exactly len bytes, nothing else) into a 64-bit position. False for anything else.
 */
bool request_lsn_parse(const char *text, size_t len, uint64_t *lsn);

/*
 * request_param_apply applies one parameter to r: "lag" (bytes with units), "lag_s" (seconds) or
 * "min_lsn" (an LSN, request_lsn_parse) or "prefer" (a location label KEY=VALUE, conf_label_ok; up to
 * REQUEST_PREFER_MAX of them).
 * False for an unknown key or a bad value; r is unchanged then.
 */
bool request_param_apply(struct request *r, const char *key, size_t keylen, const char *value, size_t valuelen);

#endif
