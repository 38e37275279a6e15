/*
 * dcs_summary.h: what verdict_for() needs from the DCS client (etcd), condensed by dcs_summary(). Plain
 * data: the pure core reads it without the client (libcurl, libev).
 */
#ifndef PGCHECKD_DCS_SUMMARY_H
#define PGCHECKD_DCS_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

#define DCS_NAME_MAX 128 /* a member name (the leader key's value), with its NUL */
#define DCS_URL_MAX  256 /* an endpoint URL, with its NUL */

/* The outcome of one exchange with etcd; names in dcs_error_names. */
enum dcs_error {
	DCS_OK,
	DCS_CONNECT_FAILED, /* no connection (refused, unreachable, name not resolved) */
	DCS_TIMEOUT,        /* no whole answer within [dcs] timeout_ms */
	DCS_TLS,            /* the TLS handshake or the server's certificate failed */
	DCS_HTTP_STATUS,    /* an HTTP status other than 200 */
	DCS_TOO_LARGE,      /* an answer over DCS_ANSWER_MAX bytes: cut off, not read */
	DCS_TRANSPORT,      /* any other transfer error */
	DCS_MALFORMED,      /* not a JSON object (truncated, not JSON) */
	DCS_WRONG_TYPE,     /* JSON, but a field of another type, bad base64, more than one key */
	DCS_WRONG_KEY,      /* an answer about a key that was not asked for */
	DCS_ETCD_ERROR,     /* etcd's own error answer ({"error": ..., "code": ...}) */
	DCS_AUTH,           /* [dcs] username: the user or password refused, a token refused again, no permission */
	DCS_ERROR_COUNT,
};

extern const char *const dcs_error_names[DCS_ERROR_COUNT];

/* What verdict_for() and /status need from the DCS, as seen at one moment. */
struct dcs_summary {
	bool configured;            /* a client runs ([dcs] mode is not off) */
	bool heard;                 /* a believed answer since start (or the last change of [dcs]) */
	int64_t age_ms;             /* since the request of the last believed answer was SENT; -1 when not heard */
	bool have_leader;           /* the leader key exists */
	bool leader_is_me;          /* ... and names this node ([dcs] name) */
	char leader[DCS_NAME_MAX];  /* what the leader key names; "" when it does not exist */
	enum dcs_error last_error;  /* of the last finished exchange; DCS_OK also before the first */
	char endpoint[DCS_URL_MAX]; /* the endpoint in use */
	uint64_t answers, errors;   /* exchanges since start: believed, failed */
	bool auth;                  /* [dcs] username is set: requests carry a token */
	bool authenticated;         /* ... and one is held now */
	uint64_t authentications;   /* tokens etcd gave (the first, then one each time it refused the last) */
	uint64_t auth_failures;     /* authentications etcd refused, and tokens refused again after one */
	/* lease mode */
	bool lease_mode;
	bool holding;          /* the key is ours, attached to our lease */
	int64_t lease_left_ms; /* until the lease may expire, on this host's clock from the SENDING of the
	                        * grant or keepalive that set it; -1 when not holding */
};

#endif
