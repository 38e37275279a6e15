/*
 * sample.h: what one poll of the local PostgreSQL returns, as plain values.
 * Filled by the poller from one SELECT (plus /proc for the host); read by node.c. No I/O here.
 */
#ifndef PGCHECKD_SAMPLE_H
#define PGCHECKD_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

/* How a primary counts a standby (pg_stat_replication.sync_state); UNKNOWN: nobody fresh says. */
enum sync_state { SYNC_UNKNOWN, SYNC_NONE, SYNC_ASYNC, SYNC_POTENTIAL, SYNC_SYNC, SYNC_QUORUM, SYNC_STATE_COUNT };

#define SAMPLE_NAME_MAX     31 /* a node or standby name as shared with peers: [A-Za-z0-9._-], at most 30 */
#define SAMPLE_STANDBYS_MAX 8  /* standbys a primary lists (sync and quorum first); more are counted only */

struct sample_standby {
	char name[SAMPLE_NAME_MAX];
	int pg_port; /* current_setting('port'): where PostgreSQL listens on this host */ /* its application_name */
	enum sync_state state;
};

struct sample {
	int64_t taken_ms;           /* monotonic time the answer arrived */
	int64_t poll_duration_ms;   /* from sending the statement to its answer */
	int server_version_num;     /* PQserverVersion */
	bool in_recovery;           /* pg_is_in_recovery() */
	bool read_only;             /* transaction_read_only of the sampling session */
	bool default_read_only;     /* default_transaction_read_only: a fenced primary */
	int timeline;               /* primary: from the current WAL file; replica: received_tli; 0 unknown */
	uint64_t system_identifier; /* pg_control_system(), read once per connection */
	uint64_t connection;        /* which of the poller's connections took it: 1, 2, ...; 0 not said */
	/* replica only */
	bool replay_paused;
	bool receiver_streaming; /* pg_stat_wal_receiver.status = 'streaming' */
	bool have_receiver_silence;
	double receiver_silence_s; /* now - last_msg_receipt_time */
	uint64_t receive_lsn;      /* pg_last_wal_receive_lsn() */
	uint64_t replay_lsn;       /* pg_last_wal_replay_lsn() */
	uint64_t latest_end_lsn;   /* pg_stat_wal_receiver.latest_end_lsn: primary's WAL end as last reported */
	int64_t lag_bytes;         /* max(latest_end - replay, receive - replay), >= 0 */
	bool have_lag_s;
	/*
	 * From the poller: 0 when replay has caught up with receive_lsn and latest_end_lsn, else the age of
	 * the last replayed commit measured without comparing the two hosts' clocks (poller.c). node.c then
	 * clamps it to what pgcheckd saw on its own monotonic clock (node_lag_seconds); the node's view holds
	 * that value.
	 */
	double lag_s;
	/* primary only */
	uint64_t current_lsn;   /* pg_current_wal_lsn() */
	int streaming_replicas; /* pg_stat_replication where state = 'streaming' */
	int standby_count; /* of those, listed in standby[] (names that can be shared, at most SAMPLE_STANDBYS_MAX) */
	struct sample_standby standby[SAMPLE_STANDBYS_MAX];
	/*
	 * The node's name: on a replica the application_name its WAL receiver gives the primary (what
	 * pg_stat_replication shows there), on a primary cluster_name; "" when it cannot be shared.
	 */
	char name[SAMPLE_NAME_MAX];
	int pg_port; /* current_setting('port'): where PostgreSQL listens on this host */
	/* load */
	int client_backends; /* client backends connected (pgcheckd's own included) */
	int active_backends; /* of those, running a statement */
	int max_connections;
	int reserved_connections; /* superuser_reserved_connections (+ reserved_connections on 16+) */
	double load1;             /* /proc/loadavg, 1 minute */
	int ncpu;
};

#endif
