/*
 * poller.h: the only code that talks to PostgreSQL. One persistent libpq connection, driven
 * asynchronously on the libev loop: connect, one SELECT per interval, its own deadline, and a
 * fresh connection with backoff when PostgreSQL fails or does not answer in time.
 * It reports every outcome through one callback and never blocks the loop.
 */
#ifndef PGCHECKD_POLLER_H
#define PGCHECKD_POLLER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "sample.h"

#define POLL_RESULTS(X)                                                                                                \
	X(POLL_OK, "ok")                                                                                               \
	X(POLL_CONNECT_FAILED, "pg-unreachable")                                                                       \
	X(POLL_CONNECT_TIMEOUT, "connect-timeout")                                                                     \
	X(POLL_TIMEOUT, "timeout")                                                                                     \
	X(POLL_QUERY_FAILED, "query-failed")                                                                           \
	X(POLL_CONNECTION_LOST, "connection-lost")

enum poll_result {
#define POLL_ENUM(e, s) e,
	POLL_RESULTS(POLL_ENUM)
#undef POLL_ENUM
	    POLL_RESULT_COUNT
};

/* poll_result_name is the short, machine-readable name used in logs, #reason and metrics. */
const char *poll_result_name(enum poll_result r);

struct poller_conf {
	const char *conninfo;
	int64_t poll_interval_ms;
	int64_t query_timeout_ms;
	int64_t connect_timeout_ms;
	int64_t reconnect_max_ms;
};

/* Called once per poll: with a sample when result is POLL_OK, with NULL otherwise. */
typedef void (*poller_cb)(void *arg, enum poll_result result, const struct sample *s, const char *detail);

struct poller;

struct poller *poller_new(struct ev_loop *loop, const struct poller_conf *pc, poller_cb cb, void *arg);
/* poller_reconfigure applies new settings; a changed conninfo replaces the connection. */
void poller_reconfigure(struct poller *p, const struct poller_conf *pc);
void poller_free(struct poller *p);

/* poller_sql is the one statement each poll runs (exposed for tests and the docs). */
extern const char poller_sql[];

/* poller_lsn_parse reads "16/B374D848" into a 64-bit LSN. */
bool poller_lsn_parse(const char *s, uint64_t *lsn);

#endif
