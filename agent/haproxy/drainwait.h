/*
 * drainwait.h: `pgcheckd ctl drain --wait [SECONDS]`, the waiting half: polls every configured
 * HAProxy's "show stat" until none of them sends this node anything (no session, none queued, no new
 * ones routed to it) or the deadline. Runs in the short-lived ctl process, never in the daemon; every
 * runtime API exchange has a deadline. It fails closed: an HAProxy that does not answer, or that lists
 * no server at this node's address, is never counted as drained.
 */
#ifndef PGCHECKD_DRAINWAIT_H
#define PGCHECKD_DRAINWAIT_H

#include <stdbool.h>
#include <stdio.h>

#include "conf.h"

/* drainwait's default deadline, in seconds, when --wait has no number */
#define DRAINWAIT_DEFAULT_S 60
/* the longest deadline --wait takes */
#define DRAINWAIT_MAX_S 86400

/* what one HAProxy's "show stat" says about the servers at one address */
struct drainwait_count {
	int servers;    /* rows whose addr is this node's */
	int sessions;   /* their current plus queued sessions */
	int routable;   /* of them, UP (or "no check") with a weight above 0: new connections can go there */
	char busy[192]; /* the first one that is not drained: "be_replicas/node2: 3 sessions, UP weight 100" */
};

/*
 * drainwait_parse_stat reads "show stat" CSV (columns found by name: pxname, svname, addr, scur, qcur,
 * status, weight) and counts the servers whose addr is addr ("IP:PORT"; "[IP]:PORT" also matches).
 * False when the header lacks a column it needs.
 */
bool drainwait_parse_stat(const char *csv, const char *addr, struct drainwait_count *out);

/* drainwait_configured: c names an HAProxy to ask and this node's address there (else says why on err) */
bool drainwait_configured(const struct conf *c, FILE *err);

/*
 * drainwait_run polls every [haproxy] runtime_api of c until all show this node's servers
 * ([haproxy] advertise_addr and advertise_pg_port) drained, for at most seconds. Prints progress and
 * the outcome to out and err. Returns 0 drained, 1 not drained (deadline, unreachable HAProxy,
 * nothing configured to wait on).
 */
int drainwait_run(const struct conf *c, int seconds, FILE *out, FILE *err);

#endif
