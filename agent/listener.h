/*
 * listener.h: the agent port. Accepts TCP clients, reads at most one short request line per
 * connection, answers one complete line rendered from the verdict callback, and closes.
 * Never talks to PostgreSQL and never logs a check at info.
 */
#ifndef PGCHECKD_LISTENER_H
#define PGCHECKD_LISTENER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "request.h"
#include "verdict.h"

struct listener_conf {
	enum request_kind default_request;
	int max_clients;
	int64_t request_idle_ms;
	int64_t client_timeout_ms;
};

/* Computes the verdict for one request; called once per answered connection. */
typedef void (*listener_verdict_fn)(void *arg, const struct request *r, struct verdict *out);

struct listener;

/* listener_new binds host:port ("*" = every IPv4 address); NULL (logged) on failure. */
struct listener *listener_new(struct ev_loop *loop, const char *host, int port, const struct listener_conf *lc,
			      listener_verdict_fn fn, void *arg);
void listener_reconfigure(struct listener *l, const struct listener_conf *lc);
void listener_free(struct listener *l);

#endif
