/*
 * respond.h: the responders. Each turns one request (the bytes a client sent) into the bytes of its
 * answer by rendering verdict_for() on a snapshot of the node: the agent line, a role port's line,
 * HTTP. No sockets, no clock and no decisions of their own: the transport (listener.c) reads, bounds
 * and writes; these say what to write.
 */
#ifndef PGCHECKD_RESPOND_H
#define PGCHECKD_RESPOND_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "http.h"
#include "render.h"
#include "request.h"
#include "verdict.h"

/* Who may read what over HTTP ([http]): the Authorization values that prove it, and what needs one. */
struct respond_auth {
	char basic[CONF_HTTP_CREDENTIAL_MAX];  /* "Basic <base64>", "" for none */
	char bearer[CONF_HTTP_CREDENTIAL_MAX]; /* "Bearer <token>", "" for none */
	unsigned protect;                      /* CONF_PROTECT_* */
};

/* What a responder answers from: one snapshot, and the port's settings. */
struct respond_ctx {
	const struct node_view *view;
	const struct policy *policy;
	const struct render_counters *counters;
	enum request_kind default_request; /* agent: nothing asked; role port: its role */
	int maxconn_pct;                   /* > 0: "up" agent lines carry maxconn:N, that share of usable slots */
	const struct respond_auth *auth;   /* NULL or no credential: HTTP answers everyone */
};

/* The longest agent line (a peer-state answer: PEERS_LINE_MAX and its NUL). */
#define RESPOND_LINE_MAX 256

/* The largest answer: /metrics and /status with headers. */
#define RESPOND_REPLY_MAX 16384

/*
 * respond_agent answers the agent line request in buf (len bytes, as received: a whole line ends with
 * its newline), or "peer-state" with this node's state for its peers. Returns the answer's length.
 */
size_t respond_agent(const struct respond_ctx *x, const char *buf, size_t len, char *out, size_t outlen);

/* respond_role is what a role port says on accept: its role's agent line. */
size_t respond_role(const struct respond_ctx *x, char *out, size_t outlen);

/*
 * respond_authorized tells whether an HTTP request proves who asks: its Authorization header is one of
 * the configured credentials (compared in constant time), or none is configured.
 */
bool respond_authorized(const struct respond_auth *auth, const struct http_request *h);

/*
 * respond_http answers an HTTP request as parsed (HTTP_COMPLETE, HTTP_BAD, HTTP_TOO_LARGE): 200/503 for
 * the health paths, /status, /metrics, 4xx for the rest. 0 when out is too small (the caller closes).
 */
size_t respond_http(const struct respond_ctx *x, enum http_parse parsed, const struct http_request *h, char *out,
                    size_t outlen);

/*
 * respond_admin_line takes one admin command line out of buf (its newline dropped) into line; false
 * when it is not one printable line that fits (the answer is then "error bad command").
 */
bool respond_admin_line(const char *buf, size_t len, char *line, size_t linelen);

#endif
