/*
 * pusher.h: tells every configured HAProxy at once, through its runtime API, that this node has
 * become unfit for a backend ("set server B/S health down") or that the weight it answers has dropped
 * ("set server B/S weight N%"), so that new connections stop going there (or fewer go) within
 * milliseconds instead of at HAProxy's next check. A push only ever takes a node out or lowers its
 * weight: bringing it back or raising it stays with HAProxy's own checks (the fail-closed check, the
 * agent check). One worker thread per HAProxy; an HAProxy that cannot be reached is retried with
 * backoff on its thread and logged once per episode; nothing here runs on the event loop or delays a check.
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
 * pusher_update tells which requests (bit 1 << enum request_kind) this node is unfit for now, and the
 * weight answered for each request (weight_pct[enum request_kind], PUSHER_WEIGHT_NONE when down). Those
 * that were fit at the last call are pushed out at once to every HAProxy; a push not delivered yet is
 * dropped once the node is fit again for that request. A weight that dropped as pusher_weight_plan
 * says is pushed too (at most one push per request every PUSHER_WEIGHT_GAP_MS, the latest weight
 * wins). Never blocks on HAProxy (only a mutex).
 */
void pusher_update(struct pusher *p, unsigned unfit, const int weight_pct[REQUEST_KIND_COUNT]);

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

#define PUSHER_WEIGHT_NONE   (-1)
#define PUSHER_WEIGHT_GAP_MS 100 /* at most one weight push per request and HAProxy this often */

/*
 * pusher_weight_plan decides, for each of count requests, whether the weight just answered is pushed.
 * held_pct[k] is the most HAProxy may hold for request k, in percent of the server's configured weight
 * (the agent check's meaning of "N%"; 100 when not known: the agent never answers more); answered_pct[k]
 * is the weight answered now, PUSHER_WEIGHT_NONE when down. push_pct[k] is set to the weight to push, or
 * PUSHER_WEIGHT_NONE: only a drop to 0, or of at least step_pct below held_pct, is pushed (weights move
 * in steps of step_pct; smaller moves are the agent check's to tell); never a raise. held_pct is
 * updated: the weight pushed, a raised one (the agent check brings it), 100 once down (unknown).
 */
void pusher_weight_plan(int held_pct[], const int answered_pct[], int count, int step_pct, int push_pct[]);

/*
 * pusher_weight_pending is what is left to push for one request once pending_pct (not delivered yet,
 * or PUSHER_WEIGHT_NONE) meets a new push_pct and answered_pct: the latest push wins, and one the answer
 * has risen above is dropped (it would take away more than the node now gives up).
 */
int pusher_weight_pending(int pending_pct, int push_pct, int answered_pct);

/*
 * pusher_weight_lowers: "set server B/S weight PCT%" lowers a server whose weight is uweight and whose
 * configured weight is iweight (HAProxy sets iweight * pct / 100). False when either is unknown (< 0):
 * a push that might raise a weight is not sent.
 */
bool pusher_weight_lowers(int uweight, int iweight, int pct);

#endif
