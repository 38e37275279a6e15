/*
 * poller.c: the only code that talks to PostgreSQL. A state machine on the libev loop:
 *   WAITING (backoff or interval timer) -> CONNECTING (PQconnectPoll) -> QUERYING -> IDLE -> QUERYING ...
 * Every connect and every query has its own deadline; past it the node is reported down at once, but
 * the attempt is kept: a new connection would only queue behind the same lock or frozen server and
 * hold one more connection slot there. A query error (statement_timeout, lock_timeout, permission) keeps
 * the session too. Only an attempt still unanswered POLLER_ABANDON_MS past its deadline is closed
 * (PQcancel would block on a frozen server) and replaced after a backoff, so at most one is ever pending.
 * The session's statement_timeout equals the query deadline, so a query stuck on the server ends there too.
 * Nothing here blocks: no PQexec, no PQcancel, no PQconnectdb.
 */
#include "poller.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "host.h"
#include "monoclock.h"

/* how long an overdue connect or query is still waited for before it is closed and replaced */
#define POLLER_ABANDON_MS 30000
/* after a sign that recovery is ending (a signal file removed, "promote" created): sample this often ... */
#define POLLER_BURST_EVERY_MS 5
/* ... for this long, so that the end of recovery is seen within a few ms whatever order PostgreSQL writes in */
#define POLLER_BURST_MS 300
/* postmaster.pid's 8th line (LOCK_FILE_LINE_PM_STATUS, PostgreSQL 10 and later) */
#define POLLER_PID_STATUS_LINE 8
/* pg_control's DBState: an int after system_identifier (8 bytes), pg_control_version and catalog_version_no */
#define POLLER_CONTROL_STATE_OFFSET 16

/*
 * The last three columns: the name the primary knows this replica by (primary_conninfo's application_name,
 * else the receiver's fallback_application_name: cluster_name, else walreceiver, as PostgreSQL does; on a
 * primary its cluster_name), a primary's streaming standbys and how it counts them (sync and quorum first,
 * at most 16), and the port PostgreSQL listens on.
 */
const char poller_sql[] = "SELECT r.rec,"
                          " current_setting('transaction_read_only') = 'on',"
                          " current_setting('default_transaction_read_only') = 'on',"
                          " CASE WHEN r.rec THEN w.received_tli"
                          "  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
                          " CASE WHEN r.rec THEN pg_is_wal_replay_paused() END,"
                          " w.status = 'streaming',"
                          " extract(epoch FROM clock_timestamp() - w.last_msg_receipt_time),"
                          " pg_last_wal_receive_lsn(),"
                          " pg_last_wal_replay_lsn(),"
                          " w.latest_end_lsn,"
                          " CASE WHEN r.rec THEN extract(epoch FROM (clock_timestamp() - w.last_msg_receipt_time)"
                          "  + (w.last_msg_send_time - pg_last_xact_replay_timestamp())) END,"
                          " CASE WHEN NOT r.rec THEN pg_current_wal_lsn() END,"
                          " (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),"
                          " a.clients, a.active,"
                          " current_setting('max_connections')::int,"
                          " current_setting('superuser_reserved_connections')::int"
                          "  + coalesce(current_setting('reserved_connections', true)::int, 0),"
                          " CASE WHEN r.rec THEN coalesce("
                          "  substring(w.conninfo FROM '(?:^| )application_name=([^ ]+)'),"
                          "  substring(w.conninfo FROM 'fallback_application_name=([^ ]+)'),"
                          "  nullif(current_setting('cluster_name'), ''), 'walreceiver')"
                          "  ELSE current_setting('cluster_name') END,"
                          " CASE WHEN NOT r.rec THEN (SELECT"
                          "  string_agg(x.application_name || ' ' || x.sync_state, E'\\n'"
                          "  ORDER BY x.o, x.application_name) FROM (SELECT application_name, sync_state,"
                          "  sync_state NOT IN ('sync', 'quorum') AS o FROM pg_stat_replication"
                          "  WHERE state = 'streaming' ORDER BY 3, 1 LIMIT 16) x) END,"
                          " current_setting('port')::int"
                          " FROM (SELECT pg_is_in_recovery() AS rec) r"
                          " LEFT JOIN pg_stat_wal_receiver w ON true"
                          " CROSS JOIN (SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS clients,"
                          "  count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'active') AS active"
                          "  FROM pg_stat_activity) a";

enum poller_col {
	COL_IN_RECOVERY,
	COL_READ_ONLY,
	COL_DEFAULT_READ_ONLY,
	COL_TIMELINE,
	COL_REPLAY_PAUSED,
	COL_STREAMING,
	COL_RECEIVER_SILENCE_S,
	COL_RECEIVE_LSN,
	COL_REPLAY_LSN,
	COL_LATEST_END_LSN,
	COL_COMMIT_AGE_S,
	COL_CURRENT_LSN,
	COL_STREAMING_REPLICAS,
	COL_CLIENTS,
	COL_ACTIVE,
	COL_MAX_CONNECTIONS,
	COL_RESERVED,
	COL_NAME,
	COL_STANDBYS,
	COL_PG_PORT,
	COL_COUNT
};

enum poller_state { PS_WAITING, PS_CONNECTING, PS_QUERYING, PS_IDLE };

struct poller {
	struct ev_loop *loop;
	struct poller_conf conf;
	char *conninfo;
	poller_cb cb;
	void *arg;
	PGconn *conn;
	enum poller_state state;
	ev_io io;
	ev_timer timer;    /* next connect or next poll */
	ev_timer deadline; /* of the connect or query in progress */
	int64_t backoff_ms;
	int64_t query_started_ms;
	bool session_ready; /* statement_timeout set on this connection */
	bool last_poll_ok;  /* a lost idle connection is retried once before it is reported */
	bool retrying;
	bool overdue;               /* past its deadline and reported down; kept until it ends or is abandoned */
	int sent_timeout_ms;        /* statement_timeout of this session */
	uint64_t system_identifier; /* read with the session's setup */
	uint64_t connections;       /* connections started: the samples of one carry its number */
	/* the data directory, watched with inotify: only ever a reason to sample at once, or to be down */
	char *datadir;
	int ino_fd; /* -1: not watching */
	ev_io ino_io;
	int wd_dir, wd_global;
	bool pg_stopping;       /* postmaster.pid says "stopping" (or is gone): every poll reports POLL_STOPPING */
	int control_state;      /* pg_control's DBState as last read; -1 unknown */
	bool kick;              /* a sample was asked for while one was in flight: the next starts at once */
	bool rewatch;           /* the watched directory went: watched again at the next connection attempt */
	int watch_errno;        /* why the data directory cannot be watched; 0: watched (or none) */
	uint64_t watch_checked; /* the server's system identifier the watched directory was found to be of */
	uint64_t watch_foreign; /* the directory is another cluster's (its identifier; 1: no pg_control) */
	int64_t burst_until_ms;
};

static void poller_connect(struct poller *p);
static void poller_send(struct poller *p);
static bool poller_watch(struct poller *p);
static void poller_unwatch(struct poller *p);
static ssize_t poller_read_head(const char *dir, const char *name, char *buf, size_t len);

/* poller_dir_identifier: pg_control's system identifier (its first 8 bytes); 0 when it cannot be read */
static uint64_t
poller_dir_identifier(const char *dir)
{
	char buf[sizeof(uint64_t) + 1];
	uint64_t id;

	if (poller_read_head(dir, "global/pg_control", buf, sizeof(buf)) != (ssize_t)sizeof(id))
		return 0;
	memcpy(&id, buf, sizeof(id));
	return id;
}

/*
 * poller_check_dir: the first good sample of a server tells whether the watched directory is its own.
 * Another cluster's (or no data directory at all, whose missing postmaster.pid reads as stopping) is
 * not watched: the polls alone decide, and the daemon says why (poller_watch_foreign).
 */
static void
poller_check_dir(struct poller *p, const struct sample *s)
{
	uint64_t id;

	if (p->ino_fd < 0 || s == NULL || s->system_identifier == 0 || s->system_identifier == p->watch_checked)
		return;
	id = poller_dir_identifier(p->datadir);
	if (id == s->system_identifier) {
		p->watch_checked = id;
		return;
	}
	poller_unwatch(p);
	p->rewatch = false;
	p->watch_foreign = id != 0 ? id : 1;
}

/* poller_report hands an outcome on; while postmaster.pid says stopping, every outcome is that. */
static void
poller_report(struct poller *p, enum poll_result r, const struct sample *s, const char *detail)
{
	if (r == POLL_OK)
		poller_check_dir(p, s);
	if (p->pg_stopping) {
		p->cb(p->arg, POLL_STOPPING, NULL, "postmaster.pid says the server is stopping");
		return;
	}
	p->cb(p->arg, r, s, detail);
}

/* poller_next_ms: how long after now the next sample starts (at once when asked for; often in a burst). */
static int64_t
poller_next_ms(const struct poller *p)
{
	int64_t now = monoclock_ms();
	int64_t next = p->query_started_ms + p->conf.poll_interval_ms - now;

	if (p->kick)
		return 0;
	if (now < p->burst_until_ms && next > POLLER_BURST_EVERY_MS)
		next = POLLER_BURST_EVERY_MS;
	return next;
}

bool
poller_lsn_parse(const char *s, uint64_t *lsn)
{
	unsigned int hi, lo;
	int n = 0;

	if (sscanf(s, "%X/%X%n", &hi, &lo, &n) != 2 || s[n] != '\0')
		return false;
	*lsn = ((uint64_t)hi << 32) | lo;
	return true;
}

/* poller_oneline copies libpq's message without its trailing newline, first line only. */
static void
poller_oneline(const char *msg, char *buf, size_t len)
{
	size_t n = 0;

	if (msg == NULL)
		msg = "";
	while (msg[n] != '\0' && msg[n] != '\n' && n + 1 < len) {
		buf[n] = msg[n];
		n++;
	}
	buf[n] = '\0';
}

static void
poller_io_arm(struct poller *p, int events)
{
	int fd = PQsocket(p->conn);

	if (ev_is_active(&p->io))
		ev_io_stop(p->loop, &p->io);
	if (fd < 0)
		return;
	ev_io_set(&p->io, fd, events);
	ev_io_start(p->loop, &p->io);
}

static void
poller_drop(struct poller *p)
{
	if (ev_is_active(&p->io))
		ev_io_stop(p->loop, &p->io);
	ev_timer_stop(p->loop, &p->deadline);
	if (p->conn != NULL) {
		PQfinish(p->conn);
		p->conn = NULL;
	}
	p->session_ready = false;
	p->overdue = false;
}

static void
poller_schedule(struct poller *p, int64_t delay_ms)
{
	ev_timer_stop(p->loop, &p->timer);
	ev_timer_set(&p->timer, (double)(delay_ms > 0 ? delay_ms : 0) / 1000.0, 0.);
	ev_timer_start(p->loop, &p->timer);
}

/* poller_backoff schedules the next attempt after the backoff, which doubles up to reconnect_max_ms. */
static void
poller_backoff(struct poller *p)
{
	poller_schedule(p, p->backoff_ms);
	p->backoff_ms *= 2;
	if (p->backoff_ms > p->conf.reconnect_max_ms)
		p->backoff_ms = p->conf.reconnect_max_ms;
}

/* poller_failed reports a failure, drops the connection and schedules a reconnect with backoff. */
static void
poller_failed(struct poller *p, enum poll_result r, const char *msg)
{
	char detail[256];

	poller_oneline(msg, detail, sizeof(detail));
	poller_drop(p);
	p->state = PS_WAITING;
	if (r == POLL_CONNECTION_LOST && p->last_poll_ok && !p->retrying) {
		/* the server closed an idle connection (restart, pg_terminate_backend): try once at once */
		p->retrying = true;
		poller_schedule(p, 0);
		return;
	}
	p->retrying = false;
	p->last_poll_ok = false;
	poller_report(p, r, NULL, detail);
	poller_backoff(p);
}

static bool
poller_bool(const PGresult *res, int col)
{
	return !PQgetisnull(res, 0, col) && PQgetvalue(res, 0, col)[0] == 't';
}

static int64_t
poller_int(const PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

static uint64_t
poller_lsn(const PGresult *res, int col)
{
	uint64_t lsn = 0;

	if (!PQgetisnull(res, 0, col))
		(void)poller_lsn_parse(PQgetvalue(res, 0, col), &lsn);
	return lsn;
}

/* poller_name_ok tells whether name (n bytes) can be shared with peers: 1 to 30 of [A-Za-z0-9._-]. */
static bool
poller_name_ok(const char *name, size_t n)
{
	if (n == 0 || n >= SAMPLE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* poller_sync_state maps pg_stat_replication.sync_state's word (n bytes). */
static enum sync_state
poller_sync_state(const char *word, size_t n)
{
	static const struct {
		const char *word;
		enum sync_state state;
	} words[] = {
	    {"async", SYNC_ASYNC}, {"potential", SYNC_POTENTIAL}, {"sync", SYNC_SYNC}, {"quorum", SYNC_QUORUM}};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i].word) == n && memcmp(words[i].word, word, n) == 0)
			return words[i].state;
	return SYNC_UNKNOWN;
}

/*
 * poller_read_standbys reads "name state\n..." (at most 16 rows) into s->standby: names that cannot be
 * shared and rows past SAMPLE_STANDBYS_MAX are left out (standby_count < streaming_replicas says so).
 */
static void
poller_read_standbys(const char *text, struct sample *s)
{
	const char *p = text;

	while (*p != '\0' && s->standby_count < SAMPLE_STANDBYS_MAX) {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		const char *sp = memrchr(p, ' ', n);

		if (sp != NULL && poller_name_ok(p, (size_t)(sp - p))) {
			struct sample_standby *sb = &s->standby[s->standby_count];

			sb->state = poller_sync_state(sp + 1, n - (size_t)(sp + 1 - p));
			if (sb->state != SYNC_UNKNOWN) {
				memcpy(sb->name, p, (size_t)(sp - p));
				sb->name[sp - p] = '\0';
				s->standby_count++;
			}
		}
		p += n;
		if (*p == '\n')
			p++;
	}
}

/* poller_read_sample turns the one row of poller_sql into a sample. */
static bool
poller_read_sample(struct poller *p, const PGresult *res, struct sample *s)
{
	int64_t d;

	if (PQntuples(res) != 1 || PQnfields(res) != COL_COUNT)
		return false;
	memset(s, 0, sizeof(*s));
	s->taken_ms = monoclock_ms();
	s->poll_duration_ms = s->taken_ms - p->query_started_ms;
	s->server_version_num = PQserverVersion(p->conn);
	s->system_identifier = p->system_identifier;
	s->connection = p->connections;
	s->in_recovery = poller_bool(res, COL_IN_RECOVERY);
	s->read_only = poller_bool(res, COL_READ_ONLY);
	s->default_read_only = poller_bool(res, COL_DEFAULT_READ_ONLY);
	s->timeline = (int)poller_int(res, COL_TIMELINE);
	s->replay_paused = poller_bool(res, COL_REPLAY_PAUSED);
	s->receiver_streaming = poller_bool(res, COL_STREAMING);
	s->have_receiver_silence = !PQgetisnull(res, 0, COL_RECEIVER_SILENCE_S);
	s->receiver_silence_s = s->have_receiver_silence ? strtod(PQgetvalue(res, 0, COL_RECEIVER_SILENCE_S), NULL) : 0;
	s->receive_lsn = poller_lsn(res, COL_RECEIVE_LSN);
	s->replay_lsn = poller_lsn(res, COL_REPLAY_LSN);
	s->latest_end_lsn = poller_lsn(res, COL_LATEST_END_LSN);
	s->lag_bytes = 0;
	if (s->in_recovery) {
		if (s->latest_end_lsn > s->replay_lsn)
			s->lag_bytes = (int64_t)(s->latest_end_lsn - s->replay_lsn);
		if (s->receive_lsn > s->replay_lsn && (int64_t)(s->receive_lsn - s->replay_lsn) > s->lag_bytes)
			s->lag_bytes = (int64_t)(s->receive_lsn - s->replay_lsn);
	}
	/*
	 * Lag seconds as the replica reports it: 0 when replay has every position received or reported,
	 * else the commit age. That is (replica's now - when the primary's last message arrived) + (that
	 * message's send time - the last replayed commit's time): each difference on one host's clock, so
	 * skew between the hosts cancels out; only the message's transit time is missed. node.c bounds it
	 * further by what pgcheckd saw on its own clock.
	 */
	if (s->in_recovery && s->replay_lsn >= s->receive_lsn && s->replay_lsn >= s->latest_end_lsn) {
		s->have_lag_s = true;
		s->lag_s = 0;
	} else {
		s->have_lag_s = s->in_recovery && !PQgetisnull(res, 0, COL_COMMIT_AGE_S);
		s->lag_s = s->have_lag_s ? strtod(PQgetvalue(res, 0, COL_COMMIT_AGE_S), NULL) : 0;
		if (!(s->lag_s >= 0))
			s->lag_s = 0;
	}
	s->current_lsn = poller_lsn(res, COL_CURRENT_LSN);
	s->streaming_replicas = (int)poller_int(res, COL_STREAMING_REPLICAS);
	s->client_backends = (int)poller_int(res, COL_CLIENTS);
	s->active_backends = (int)poller_int(res, COL_ACTIVE);
	s->max_connections = (int)poller_int(res, COL_MAX_CONNECTIONS);
	d = poller_int(res, COL_RESERVED);
	s->reserved_connections = (int)d;
	if (!PQgetisnull(res, 0, COL_NAME) &&
	    poller_name_ok(PQgetvalue(res, 0, COL_NAME), strlen(PQgetvalue(res, 0, COL_NAME))))
		snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(res, 0, COL_NAME));
	if (!PQgetisnull(res, 0, COL_STANDBYS))
		poller_read_standbys(PQgetvalue(res, 0, COL_STANDBYS), s);
	s->pg_port = (int)poller_int(res, COL_PG_PORT);
	(void)host_load1(&s->load1);
	s->ncpu = host_ncpu();
	return true;
}

/* poller_query_failed reports an error the server answered with and keeps the session for the next poll. */
static void
poller_query_failed(struct poller *p, const char *msg)
{
	char detail[256];
	bool reported = p->overdue;

	poller_oneline(msg, detail, sizeof(detail));
	ev_timer_stop(p->loop, &p->deadline);
	p->overdue = false;
	p->retrying = false;
	p->last_poll_ok = false;
	p->state = PS_IDLE;
	poller_io_arm(p, EV_READ);
	poller_backoff(p);
	/* a query past its deadline was reported down already; its late error says nothing new */
	if (!reported)
		poller_report(p, POLL_QUERY_FAILED, NULL, detail);
}

/* poller_collect reads every result of the statement in flight; false when the connection broke. */
static void
poller_collect(struct poller *p)
{
	PGresult *res;
	struct sample s;
	bool have_sample = false;
	char err[256] = "";

	if (!PQconsumeInput(p->conn)) {
		poller_failed(p, POLL_CONNECTION_LOST, PQerrorMessage(p->conn));
		return;
	}
	while (!PQisBusy(p->conn)) {
		res = PQgetResult(p->conn);
		if (res == NULL) {
			ev_timer_stop(p->loop, &p->deadline);
			if (PQstatus(p->conn) != CONNECTION_OK) {
				poller_failed(p, POLL_CONNECTION_LOST, PQerrorMessage(p->conn));
				return;
			}
			if (!have_sample) {
				poller_query_failed(p, err[0] != '\0' ? err : "no row returned");
				return;
			}
			p->overdue = false;
			p->session_ready = true;
			p->last_poll_ok = true;
			p->retrying = false;
			p->backoff_ms = p->conf.poll_interval_ms;
			p->state = PS_IDLE;
			poller_io_arm(p, EV_READ); /* notices a server that closes the idle connection */
			poller_schedule(p, poller_next_ms(p));
			poller_report(p, POLL_OK, &s, "");
			return;
		}
		switch (PQresultStatus(res)) {
		case PGRES_TUPLES_OK:
			if (PQnfields(res) == 1 && PQntuples(res) == 1) {
				p->system_identifier = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
				break;
			}
			if (poller_read_sample(p, res, &s))
				have_sample = true;
			else
				snprintf(err, sizeof(err), "unexpected result shape");
			break;
		case PGRES_COMMAND_OK:
			break;
		default:
			poller_oneline(PQresultErrorMessage(res), err, sizeof(err));
			break;
		}
		PQclear(res);
	}
}

static void
poller_send(struct poller *p)
{
	char setup[192];
	char *sql = NULL;
	int rc;

	p->state = PS_QUERYING;
	p->overdue = false;
	p->kick = false;
	p->query_started_ms = monoclock_ms();
	if (!p->session_ready || p->sent_timeout_ms != (int)p->conf.query_timeout_ms) {
		/* one round trip: the session's own limits, then the sample */
		p->sent_timeout_ms = (int)p->conf.query_timeout_ms;
		snprintf(setup, sizeof(setup),
		         "SET statement_timeout = %d; SET lock_timeout = %d; "
		         "SELECT system_identifier::text FROM pg_control_system(); ",
		         p->sent_timeout_ms, p->sent_timeout_ms);
		sql = malloc(strlen(setup) + sizeof(poller_sql));
		if (sql == NULL) {
			poller_failed(p, POLL_QUERY_FAILED, "out of memory");
			return;
		}
		strcpy(sql, setup);
		strcat(sql, poller_sql);
	}
	rc = PQsendQuery(p->conn, sql != NULL ? sql : poller_sql);
	free(sql);
	if (!rc) {
		poller_failed(p, POLL_CONNECTION_LOST, PQerrorMessage(p->conn));
		return;
	}
	ev_timer_stop(p->loop, &p->deadline);
	ev_timer_set(&p->deadline, (double)p->conf.query_timeout_ms / 1000.0, 0.);
	ev_timer_start(p->loop, &p->deadline);
	rc = PQflush(p->conn);
	if (rc < 0) {
		poller_failed(p, POLL_CONNECTION_LOST, PQerrorMessage(p->conn));
		return;
	}
	poller_io_arm(p, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void
poller_connect_step(struct poller *p)
{
	switch (PQconnectPoll(p->conn)) {
	case PGRES_POLLING_OK:
		ev_timer_stop(p->loop, &p->deadline);
		if (PQsetnonblocking(p->conn, 1) != 0) {
			poller_failed(p, POLL_CONNECT_FAILED, PQerrorMessage(p->conn));
			return;
		}
		poller_send(p);
		return;
	case PGRES_POLLING_READING:
		poller_io_arm(p, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		poller_io_arm(p, EV_WRITE);
		return;
	default:
		poller_failed(p, POLL_CONNECT_FAILED, PQerrorMessage(p->conn));
		return;
	}
}

static void
poller_connect(struct poller *p)
{
	const char *keys[] = {"fallback_application_name", "dbname", NULL};
	const char *values[] = {"pgcheckd", p->conninfo, NULL};

	poller_drop(p);
	if (p->rewatch && poller_watch(p))
		p->rewatch = false;
	p->state = PS_CONNECTING;
	p->connections++;
	p->conn = PQconnectStartParams(keys, values, 1);
	if (p->conn == NULL) {
		poller_failed(p, POLL_CONNECT_FAILED, "out of memory");
		return;
	}
	if (PQstatus(p->conn) == CONNECTION_BAD) {
		poller_failed(p, POLL_CONNECT_FAILED, PQerrorMessage(p->conn));
		return;
	}
	ev_timer_set(&p->deadline, (double)p->conf.connect_timeout_ms / 1000.0, 0.);
	ev_timer_start(p->loop, &p->deadline);
	/* a new connection starts as if PQconnectPoll had answered WRITING */
	poller_io_arm(p, EV_WRITE);
}

static void
poller_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct poller *p = w->data;

	(void)loop;
	switch (p->state) {
	case PS_CONNECTING:
		poller_connect_step(p);
		break;
	case PS_QUERYING:
		if (revents & EV_WRITE) {
			int rc = PQflush(p->conn);

			if (rc < 0) {
				poller_failed(p, POLL_CONNECTION_LOST, PQerrorMessage(p->conn));
				return;
			}
			if (rc == 0)
				poller_io_arm(p, EV_READ);
		}
		if (revents & EV_READ)
			poller_collect(p);
		break;
	case PS_IDLE:
		/* nothing is expected between polls: a notice, or the server closing the connection */
		if (!PQconsumeInput(p->conn) || PQstatus(p->conn) != CONNECTION_OK) {
			poller_failed(p, POLL_CONNECTION_LOST, PQerrorMessage(p->conn));
			return;
		}
		break;
	case PS_WAITING:
		ev_io_stop(p->loop, &p->io);
		break;
	}
}

static void
poller_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct poller *p = w->data;

	(void)loop;
	(void)revents;
	if (p->state == PS_IDLE)
		poller_send(p);
	else if (p->state == PS_WAITING)
		poller_connect(p);
}

/* poller_overdue reports the node down at the deadline and waits on for the attempt in flight. */
static void
poller_overdue(struct poller *p, enum poll_result r, const char *msg)
{
	p->overdue = true;
	p->retrying = false;
	p->last_poll_ok = false;
	ev_timer_set(&p->deadline, POLLER_ABANDON_MS / 1000.0, 0.);
	ev_timer_start(p->loop, &p->deadline);
	poller_report(p, r, NULL, msg);
}

static void
poller_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct poller *p = w->data;
	char msg[160];

	(void)loop;
	(void)revents;
	if (p->state == PS_CONNECTING) {
		snprintf(msg, sizeof(msg), "no connection within %" PRId64 " ms%s", p->conf.connect_timeout_ms,
		         p->overdue ? "; attempt given up" : "");
		p->last_poll_ok = false;
		/* before the server accepted the TCP connection nothing waits on its side: start over */
		if (p->overdue || PQstatus(p->conn) == CONNECTION_STARTED || PQstatus(p->conn) == CONNECTION_NEEDED)
			poller_failed(p, POLL_CONNECT_TIMEOUT, msg);
		else
			poller_overdue(p, POLL_CONNECT_TIMEOUT, msg);
	} else if (p->state == PS_QUERYING) {
		snprintf(msg, sizeof(msg), "no answer within %" PRId64 " ms%s", p->conf.query_timeout_ms,
		         p->overdue ? "; connection given up" : "");
		p->last_poll_ok = false;
		if (p->overdue)
			poller_failed(p, POLL_TIMEOUT, msg);
		else
			poller_overdue(p, POLL_TIMEOUT, msg);
	}
}

/*
 * The data directory ([pg] data_directory), watched with inotify. PostgreSQL writes there what it is
 * about to do before or as a client could see it: postmaster.pid's status line becomes "stopping" when a
 * smart or fast shutdown begins (before backends are told; a smart shutdown leaves our session running
 * and answering), standby.signal and recovery.signal are removed and pg_control's state becomes
 * DB_IN_PRODUCTION when recovery ends. An event only ever makes the node down at once ("stopping") or
 * starts a sample at once (and a short burst of them): never an up by itself.
 */
static void poller_kick(struct poller *p, bool burst);

/* poller_read_head reads up to len - 1 bytes of dir/name into buf (NUL-terminated); -1 when it cannot be read. */
static ssize_t
poller_read_head(const char *dir, const char *name, char *buf, size_t len)
{
	char path[4096];
	ssize_t n;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/*
 * poller_pid_status: postmaster.pid is gone or its status line says "stopping" (true); *accepting tells
 * that it says "ready" or "standby" (the postmaster accepts connections: PM_STATUS_READY, _STANDBY).
 */
static bool
poller_pid_status(const char *dir, bool *accepting)
{
	char buf[2048];
	const char *line = buf;

	*accepting = false;
	if (poller_read_head(dir, "postmaster.pid", buf, sizeof(buf)) < 0)
		return errno == ENOENT;
	for (int i = 1; i < POLLER_PID_STATUS_LINE; i++) {
		line = strchr(line, '\n');
		if (line == NULL)
			return false; /* no status line (yet): the samples decide */
		line++;
	}
	*accepting = strncmp(line, "ready", 5) == 0 || strncmp(line, "standby", 7) == 0;
	return strncmp(line, "stopping", 8) == 0;
}

static bool
poller_pid_stopping(const char *dir)
{
	bool accepting;

	return poller_pid_status(dir, &accepting);
}

static int
poller_control_state(const char *dir)
{
	char buf[POLLER_CONTROL_STATE_OFFSET + sizeof(int32_t) + 1];
	int32_t state;

	if (poller_read_head(dir, "global/pg_control", buf, sizeof(buf)) != (ssize_t)(sizeof(buf) - 1))
		return -1;
	memcpy(&state, buf + POLLER_CONTROL_STATE_OFFSET, sizeof(state));
	return (int)state;
}

/* poller_note_pid reads postmaster.pid again; a shutdown that began is reported down at once. */
static void
poller_note_pid(struct poller *p)
{
	bool accepting;
	bool stopping = poller_pid_status(p->datadir, &accepting);

	if (stopping == p->pg_stopping) {
		if (accepting && p->state == PS_WAITING) {
			/* a (re)started postmaster now accepts connections: connect now, not at the end of a backoff
			   that its start-up (crash recovery) has stretched */
			p->backoff_ms = p->conf.poll_interval_ms;
			poller_schedule(p, 0);
		}
		return;
	}
	p->pg_stopping = stopping;
	if (stopping) {
		/* our session would hold a smart shutdown up for ever: let go, and try again only with backoff */
		poller_drop(p);
		p->state = PS_WAITING;
		p->last_poll_ok = false;
		p->retrying = false;
		poller_report(p, POLL_STOPPING, NULL, "");
		poller_backoff(p);
		return;
	}
	if (p->state == PS_WAITING) {
		p->backoff_ms = p->conf.poll_interval_ms;
		poller_schedule(p, 0); /* a postmaster (re)started: connect now, not at the end of a backoff */
	} else
		poller_kick(p, false);
}

static void
poller_on_inotify(struct ev_loop *loop, ev_io *w, int revents)
{
	struct poller *p = w->data;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool pid = false, control = false, burst = false, lost = false;
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(p->ino_fd, buf, sizeof(buf))) > 0) {
		for (char *at = buf; at < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)at;
			const char *name = ev->len > 0 ? ev->name : "";

			at += sizeof(*ev) + ev->len;
			if (ev->wd == p->wd_dir && (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))) {
				lost = true; /* the directory went (a replica rebuilt): watch the new one when it is
				                there */
				continue;
			}
			if (ev->mask & IN_Q_OVERFLOW) {
				pid = control = true; /* events were lost: look at everything again */
				continue;
			}
			if (ev->wd == p->wd_global) {
				control |= strcmp(name, "pg_control") == 0;
				continue;
			}
			if (strcmp(name, "postmaster.pid") == 0)
				pid = true;
			else if (((ev->mask & (IN_DELETE | IN_MOVED_FROM)) &&
			          (strcmp(name, "standby.signal") == 0 || strcmp(name, "recovery.signal") == 0)) ||
			         strcmp(name, "promote") == 0)
				burst = true; /* recovery is ending: its end shows in a sample within a few ms */
		}
	}
	if (lost) {
		poller_unwatch(p); /* the polls decide until the directory is watched again */
		p->rewatch = true;
		return;
	}
	if (pid)
		poller_note_pid(p);
	if (control) {
		int state = poller_control_state(p->datadir);

		if (state != p->control_state) {
			p->control_state = state;
			poller_kick(p, false);
		}
	}
	if (burst)
		poller_kick(p, true);
}

static void
poller_unwatch(struct poller *p)
{
	if (p->ino_fd < 0)
		return;
	ev_io_stop(p->loop, &p->ino_io);
	close(p->ino_fd);
	p->ino_fd = -1;
	p->pg_stopping = false;
}

/* poller_watch starts watching p->datadir (when set); false when it cannot (the reason in errno). */
static bool
poller_watch(struct poller *p)
{
	char global[4096];
	const uint32_t mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO;

	poller_unwatch(p);
	if (p->datadir == NULL || p->datadir[0] == '\0')
		return true;
	p->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (p->ino_fd < 0)
		return false;
	snprintf(global, sizeof(global), "%s/global", p->datadir);
	p->wd_dir = inotify_add_watch(p->ino_fd, p->datadir, mask | IN_ONLYDIR);
	p->wd_global = inotify_add_watch(p->ino_fd, global, IN_MODIFY | IN_CLOSE_WRITE | IN_ONLYDIR);
	if (p->wd_dir < 0) {
		int e = errno;

		close(p->ino_fd);
		p->ino_fd = -1;
		errno = e;
		return false;
	}
	ev_io_init(&p->ino_io, poller_on_inotify, p->ino_fd, EV_READ);
	p->ino_io.data = p;
	ev_io_start(p->loop, &p->ino_io);
	p->pg_stopping = poller_pid_stopping(p->datadir);
	p->control_state = poller_control_state(p->datadir);
	return true;
}

/*
 * poller_kick starts a sample now: at once when the session is idle, right after the one in flight
 * otherwise. A connection being made or a backoff is left to run: the node is down meanwhile anyway.
 */
static void
poller_kick(struct poller *p, bool burst)
{
	if (burst)
		p->burst_until_ms = monoclock_ms() + POLLER_BURST_MS;
	if (p->state == PS_IDLE) {
		ev_timer_stop(p->loop, &p->timer);
		poller_send(p);
	} else if (p->state == PS_QUERYING)
		p->kick = true;
}

/* poller_set_conf takes pc; *dir_changed tells that the data directory to watch changed. */
static bool
poller_set_conf(struct poller *p, const struct poller_conf *pc, bool *dir_changed)
{
	bool changed = p->conninfo == NULL || strcmp(p->conninfo, pc->conninfo) != 0;
	const char *dir = pc->data_directory != NULL ? pc->data_directory : "";
	char *copy = strdup(pc->conninfo), *dcopy = strdup(dir);

	*dir_changed = false;
	if (copy == NULL || dcopy == NULL) {
		free(copy);
		free(dcopy);
		return changed;
	}
	*dir_changed = p->datadir == NULL || strcmp(p->datadir, dcopy) != 0;
	if (*dir_changed)
		p->rewatch = false;
	free(p->conninfo);
	free(p->datadir);
	p->conninfo = copy;
	p->datadir = dcopy;
	p->conf = *pc;
	p->conf.conninfo = p->conninfo;
	p->conf.data_directory = p->datadir;
	return changed;
}

struct poller *
poller_new(struct ev_loop *loop, const struct poller_conf *pc, poller_cb cb, void *arg)
{
	struct poller *p = calloc(1, sizeof(*p));
	bool dir_changed;

	if (p == NULL)
		return NULL;
	p->loop = loop;
	p->cb = cb;
	p->arg = arg;
	p->ino_fd = -1;
	p->control_state = -1;
	(void)poller_set_conf(p, pc, &dir_changed);
	if (p->conninfo == NULL || p->datadir == NULL) {
		free(p->conninfo);
		free(p->datadir);
		free(p);
		return NULL;
	}
	p->backoff_ms = p->conf.poll_interval_ms;
	ev_io_init(&p->io, poller_on_io, 0, EV_READ);
	p->io.data = p;
	ev_timer_init(&p->timer, poller_on_timer, 0., 0.);
	p->timer.data = p;
	ev_timer_init(&p->deadline, poller_on_deadline, 0., 0.);
	p->deadline.data = p;
	p->state = PS_WAITING;
	p->watch_errno = poller_watch(p) ? 0 : errno;
	poller_schedule(p, 0);
	return p;
}

void
poller_reconfigure(struct poller *p, const struct poller_conf *pc)
{
	bool dir_changed;

	if (poller_set_conf(p, pc, &dir_changed)) {
		/* new server or credentials: start over at once */
		poller_drop(p);
		p->state = PS_WAITING;
		p->last_poll_ok = false;
		p->backoff_ms = p->conf.poll_interval_ms;
		poller_schedule(p, 0);
	}
	if (p->backoff_ms > p->conf.reconnect_max_ms)
		p->backoff_ms = p->conf.reconnect_max_ms;
	if (dir_changed) {
		p->watch_checked = 0;
		p->watch_foreign = 0;
		p->watch_errno = poller_watch(p) ? 0 : errno;
	}
}

int
poller_watch_error(const struct poller *p)
{
	return p->watch_errno;
}

uint64_t
poller_watch_foreign(const struct poller *p)
{
	return p->watch_foreign;
}

void
poller_free(struct poller *p)
{
	if (p == NULL)
		return;
	poller_drop(p);
	poller_unwatch(p);
	ev_timer_stop(p->loop, &p->timer);
	free(p->conninfo);
	free(p->datadir);
	free(p);
}
