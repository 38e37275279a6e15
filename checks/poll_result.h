/*
 * poll_result.h: the outcomes of one poll of PostgreSQL, as an enum with its name table: what the
 * poller reports and the node and verdict reason about. Plain data: no libev, no libpq.
 */
#ifndef PGCHECKD_POLL_RESULT_H
#define PGCHECKD_POLL_RESULT_H

#define POLL_RESULTS(X)                                                                                                \
	X(POLL_OK, "ok")                                                                                               \
	X(POLL_CONNECT_FAILED, "pg-unreachable")                                                                       \
	X(POLL_CONNECT_TIMEOUT, "connect-timeout")                                                                     \
	X(POLL_TIMEOUT, "timeout")                                                                                     \
	X(POLL_QUERY_FAILED, "query-failed")                                                                           \
	X(POLL_CONNECTION_LOST, "connection-lost")                                                                     \
	X(POLL_STOPPING, "pg-stopping") /* postmaster.pid says stopping: whatever a query still answers */

enum poll_result {
#define POLL_ENUM(e, s) e,
	POLL_RESULTS(POLL_ENUM)
#undef POLL_ENUM
	    POLL_RESULT_COUNT
};

/* poll_result_name is the short, machine-readable name used in logs, #reason and metrics. */
static inline const char *
poll_result_name(enum poll_result r)
{
	static const char *const names[] = {
#define POLL_NAME(e, s) s,
	    POLL_RESULTS(POLL_NAME)
#undef POLL_NAME
	};

	return (unsigned)r < POLL_RESULT_COUNT ? names[r] : "unknown";
}

#endif
