/*
 * listener.h: the ports pgcheckd answers on. One implementation, four modes:
 *   LISTENER_AGENT  agent line protocol, and HTTP told apart by its first bytes ("GET /...")
 *   LISTENER_HTTP   HTTP only (an optional port of its own)
 *   LISTENER_ROLE   answers at once and closes; bound from the start, listening only while the node
 *                   holds the role (main.c decides): refused otherwise, and never free for another user
 *   LISTENER_ADMIN  a Unix socket for `pgcheckd ctl` (status, drain, maint, ready, check)
 * Each client has a deadline, a byte limit and one answer; clients over the cap are closed at once.
 * The agent and HTTP ports may speak TLS (listener_set_tls); the handshake has the same deadline.
 * Listeners never talk to PostgreSQL and never log a check at info.
 */
#ifndef PGCHECKD_LISTENER_H
#define PGCHECKD_LISTENER_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "render.h"
#include "respond.h"
#include "request.h"
#include "verdict.h"

enum listener_mode { LISTENER_AGENT, LISTENER_HTTP, LISTENER_ROLE, LISTENER_ADMIN };

struct listener_conf {
	enum request_kind default_request; /* agent: nothing sent; role: the role this port stands for */
	int max_clients;
	int64_t request_idle_ms; /* silence that ends a request, once it has begun */
	int64_t request_wait_ms; /* silence with nothing received that means "no request" */
	int64_t client_timeout_ms;
	int maxconn_pct; /* > 0: agent "up" replies carry maxconn:N, that share of the usable connection slots */
	int max_clients_per_source;
	struct conf_cidr allow[CONF_CIDR_LIST_MAX]; /* TCP clients answered; none: every address */
	int allow_count;
	bool http;                /* the agent port also speaks HTTP ([agent] http) */
	struct respond_auth auth; /* who may read what over HTTP */
};

/* What the listeners need from the daemon: a snapshot of the node, and (admin) commands. */
struct listener_ops {
	void (*view)(void *arg, struct node_view *v, struct policy *p);
	/* admin: run one command line, write a one-line (or JSON) reply */
	void (*admin)(void *arg, const char *line, char *reply, size_t replylen);
	/* agent port: a peer asked "peer-alert" (answered as "peer-state"): read the peers soon (may be NULL) */
	void (*alert)(void *arg);
};

struct listener;

/*
 * listener_new binds host:port ("*" = every IPv4 address) or, for LISTENER_ADMIN, the Unix socket path
 * given as host (created mode 0600; a stale socket file is replaced). NULL (logged) on failure.
 */
struct listener *listener_new(struct ev_loop *loop, enum listener_mode mode, const char *host, int port,
                              const struct listener_conf *lc, const struct listener_ops *ops, void *arg,
                              struct render_counters *counters);
void listener_reconfigure(struct listener *l, const struct listener_conf *lc);

/*
 * listener_set_open makes a role port listen (open) or refuse connections while keeping it bound
 * (closed). A role port starts closed. False (logged) when that failed; a port that could not be
 * closed while keeping it bound is released rather than left listening.
 */
bool listener_set_open(struct listener *l, bool open);

/*
 * listener_set_tls makes the connections accepted from now on speak TLS with ctx (the listener takes its
 * own reference), or plain text (NULL). Open connections keep the context they began with. Agent and
 * HTTP ports only; others stay plain.
 */
void listener_set_tls(struct listener *l, SSL_CTX *ctx);
bool listener_is_open(const struct listener *l);
void listener_free(struct listener *l);

#endif
