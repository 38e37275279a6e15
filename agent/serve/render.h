/*
 * render.h: the node as JSON (/status, GET bodies, `pgcheckd ctl status`) and as Prometheus text
 * (/metrics). Pure renderings of node_view and verdict_for(); no I/O, no decisions of their own.
 */
#ifndef PGCHECKD_RENDER_H
#define PGCHECKD_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "verdict.h"

enum check_protocol { PROTOCOL_AGENT, PROTOCOL_HTTP, PROTOCOL_ROLE_PORT, PROTOCOL_ADMIN, PROTOCOL_COUNT };

extern const char *const render_protocol_names[];

/*
 * A bounded text buffer the renderers append to: once a piece does not fit, the buffer is marked
 * overflow and takes nothing more (its owner then answers with nothing rather than a cut text).
 */
struct render_buf {
	char *buf;
	size_t len, cap;
	bool overflow;
};

/* render_add appends printf-style text to b. */
void render_add(struct render_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counters the responders keep, shown in /metrics and /status. */
struct render_counters {
	uint64_t checks[PROTOCOL_COUNT];
	uint64_t refused;    /* connections over max_clients with no slot to take */
	uint64_t denied;     /* connections from addresses [agent] allow does not list */
	uint64_t evicted;    /* unfinished connections closed to make room for a new one */
	uint64_t tls_failed; /* TLS handshakes that failed or did not finish in time (bytes were read) */
};

/*
 * render_json writes one JSON object: the node (role, state, timeline, LSNs, lag, sample age, ...),
 * then for r != NULL that request's verdict, for r == NULL every kind's verdict and the counters.
 * Returns the length, or 0 when buf is too small.
 */
size_t render_json(const struct node_view *v, const struct policy *p, const struct request *r,
                   const struct render_counters *c, char *buf, size_t len);

/* render_metrics writes the Prometheus text exposition; 0 when buf is too small. */
size_t render_metrics(const struct node_view *v, const struct policy *p, const struct render_counters *c, char *buf,
                      size_t len);

/*
 * render_peer_line writes what this node tells its peers: "state role=primary timeline=3 sysid=N
 * fenced=0 ...\n": the fencing fields, then the optional ones that fit (name, read, lsn, weight, lag,
 * standbys: see peers.h and PEERS_LINE_MAX). role is primary only for a fresh, writable primary;
 * unknown when there is no fresh sample.
 * With [peers] key_file, the responder adds the reader's nonce and a MAC (peers_sign_answer).
 */
size_t render_peer_line(const struct node_view *v, const struct policy *p, char *buf, size_t len);

#endif
