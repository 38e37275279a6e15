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

#include "poll_result.h"
#include "sample.h"

struct poller_conf {
	const char *conninfo;
	int64_t poll_interval_ms;
	int64_t query_timeout_ms;
	int64_t connect_timeout_ms;
	int64_t reconnect_max_ms;
	/* PostgreSQL's data directory, watched for a shutdown beginning and recovery ending; "" or NULL: none */
	const char *data_directory;
};

/* Called once per poll: with a sample when result is POLL_OK, with NULL otherwise. */
typedef void (*poller_cb)(void *arg, enum poll_result result, const struct sample *s, const char *detail);

struct poller;

struct poller *poller_new(struct ev_loop *loop, const struct poller_conf *pc, poller_cb cb, void *arg);
/* poller_reconfigure applies new settings; a changed conninfo replaces the connection. */
void poller_reconfigure(struct poller *p, const struct poller_conf *pc);
void poller_free(struct poller *p);

/* poller_watch_error is why the data directory cannot be watched (an errno), 0 when it is (or none is set). */
int poller_watch_error(const struct poller *p);

/*
 * poller_watch_foreign: the data directory was found not to be the server's (checked at its first good
 * sample) and is no longer watched: the directory's system identifier, 1 when it has no readable
 * pg_control; 0 when it is the server's (or not checked yet, or none is set). A reload that names
 * another directory checks again.
 */
uint64_t poller_watch_foreign(const struct poller *p);

/* poller_sql is the one statement each poll runs (exposed for tests and the docs). */
extern const char poller_sql[];

/* poller_lsn_parse reads "16/B374D848" into a 64-bit LSN. */
bool poller_lsn_parse(const char *s, uint64_t *lsn);

#endif
