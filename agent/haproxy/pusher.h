/*
 * pusher.h: tells every configured HAProxy at once, through its runtime API, that this node has
 * become unfit for a backend ("set server B/S health down"), so that new connections stop going there
 * within milliseconds instead of at HAProxy's next check. A push only ever takes a node out: bringing
 * it back stays with HAProxy's own (fail-closed) check, which passes again once the node is fit. One
 * worker thread per HAProxy; an HAProxy that cannot be reached is retried with backoff on its thread
 * and logged once per episode; nothing here runs on the event loop or delays a check.
 */
#ifndef PGCHECKD_PUSHER_H
#define PGCHECKD_PUSHER_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

struct pusher;

/* pusher_wanted: c names servers to push ([haproxy] push_servers, or dynamic_backends) and a runtime API. */
bool pusher_wanted(const struct conf *c);

/* pusher_new starts one thread per runtime API when pusher_wanted(c); NULL otherwise (or on failure, logged). */
struct pusher *pusher_new(const struct conf *c);

/* pusher_reconfigure hands the threads a new configuration (the list of HAProxy instances is kept). */
void pusher_reconfigure(struct pusher *p, const struct conf *c);

/*
 * pusher_update tells which requests (bit 1 << enum request_kind) this node is unfit for now. Those
 * that were fit at the last call are pushed out at once to every HAProxy; a push not delivered yet is
 * dropped once the node is fit again for that request. Never blocks on HAProxy (only a mutex).
 */
void pusher_update(struct pusher *p, unsigned unfit);

/* pusher_free stops the threads, waiting for them until deadline_ms (monoclock) at most. */
void pusher_free(struct pusher *p, int64_t deadline_ms);

/*
 * pusher_parse_targets reads push_servers ("BACKEND/SERVER:REQUEST, ..."; SERVER "*" is the server of
 * that backend with this node's advertised address and PostgreSQL port). False when it does not parse.
 */
#define PUSHER_TARGETS_MAX 32
struct pusher_target {
	char backend[64];
	char server[64]; /* "*": ours, found by address */
	int kind;        /* enum request_kind */
};
bool pusher_parse_targets(const char *list, struct pusher_target *out, int max, int *count);

#endif
