/*
 * node.c: the node's state, built from the poller's outcomes. Keeps the last good sample, the last
 * failure, lag hysteresis and the smoothed weights, and logs transitions once (role, reachability,
 * lag limit), never a sample or a check. It answers no one: responders read node_view().
 */
#include "node.h"

#include <string.h>

#include "log.h"

void
node_configure(struct node *n, const struct conf *c)
{
	n->wp.floor_pct = (int)c->weight_floor_pct;
	n->wp.step_pct = (int)c->weight_step_pct;
	n->wp.smoothing_ms = c->weight_smoothing_ms;
	n->wp.lag_soft_bytes = c->weight_lag_soft_bytes;
	n->wp.max_lag_bytes = c->replica_max_lag_bytes;
	n->wp.lag_soft_s = c->weight_lag_soft_s;
	n->wp.max_lag_s = c->replica_max_lag_s;
	n->wp.load_low_per_cpu = c->weight_load_low_per_cpu;
	n->wp.load_high_per_cpu = c->weight_load_high_per_cpu;
	n->recover_pct = (int)c->replica_recover_pct;
}

void
node_init(struct node *n, const struct conf *c)
{
	memset(n, 0, sizeof(*n));
	n->logged_role = -1;
	n->replica_weight_pct = -1;
	n->load_weight_pct = -1;
	node_configure(n, c);
}

/*
 * node_lag_update applies the lag limits with hysteresis: over at a limit, back under recover_pct of
 * every limit. Each limit also keeps its own state (over it, until back under recover_pct of it), for
 * requests that replace the other limit with one of their own.
 */
static void
node_lag_update(struct node *n, const struct sample *s)
{
	const struct weight_policy *wp = &n->wp;
	bool over_bytes = wp->max_lag_bytes > 0 && s->lag_bytes > wp->max_lag_bytes;
	bool over_s = wp->max_lag_s > 0 && s->have_lag_s && s->lag_s > wp->max_lag_s;
	double f = n->recover_pct / 100.0;
	bool under_bytes = wp->max_lag_bytes <= 0 || (double)s->lag_bytes <= (double)wp->max_lag_bytes * f;
	bool under_s = wp->max_lag_s <= 0 || !s->have_lag_s || s->lag_s <= wp->max_lag_s * f;
	char lag[48], limit[48];

	if (!s->in_recovery) {
		n->lag_over = false;
		n->lag_over_bytes = false;
		n->lag_over_s = false;
		return;
	}
	n->lag_over_bytes = over_bytes || (n->lag_over_bytes && !under_bytes);
	n->lag_over_s = over_s || (n->lag_over_s && !under_s);
	verdict_format_lag(s->lag_bytes, s->have_lag_s, s->lag_s, lag, sizeof(lag));
	if (!n->lag_over && (over_bytes || over_s)) {
		n->lag_over = true;
		verdict_format_lag(wp->max_lag_bytes, true, wp->max_lag_s, limit, sizeof(limit));
		log_warning("replica lag %s over the limit %s%s", lag, limit,
		            s->replay_paused ? " (replay paused)" : "");
		return;
	}
	if (n->lag_over && under_bytes && under_s) {
		n->lag_over = false;
		log_info("replica lag %s back under %d%% of the limit", lag, n->recover_pct);
	}
}

static void
node_log_role(struct node *n, const struct sample *s)
{
	int role = s->in_recovery ? 1 : 0;
	const char *names[] = {"primary", "replica"};

	if (n->logged_role == role && n->logged_timeline == s->timeline)
		return;
	if (n->logged_role < 0)
		log_info("role %s (timeline %d, server %d)", names[role], s->timeline, s->server_version_num);
	else if (n->logged_role != role)
		log_warning("role %s -> %s (timeline %d)", names[n->logged_role], names[role], s->timeline);
	else if (s->timeline != 0 && n->logged_timeline != 0)
		log_info("timeline %d -> %d", n->logged_timeline, s->timeline);
	if (n->logged_role >= 0 && n->logged_role != role)
		n->role_changes++;
	if (n->logged_role != role) {
		/* the weights of the old role mean nothing for the new one */
		n->replica_weight_pct = -1;
		n->load_weight_pct = -1;
	}
	n->logged_role = role;
	n->logged_timeline = s->timeline;
}

/* node_lag_forget drops what pgcheckd saw of replay: a fresh start for lag seconds. */
static void
node_lag_forget(struct node *n)
{
	n->lag_nmarks = 0;
	n->lag_reached_ms = 0;
}

/* node_lag_mark records that the primary's WAL reached lsn at taken_ms (lsn above every mark). */
static void
node_lag_mark(struct node *n, uint64_t lsn, int64_t taken_ms)
{
	struct node_lag_mark *m = n->lag_marks;

	if (n->lag_nmarks == NODE_LAG_MARKS) {
		/*
		 * Full: merge neighbours pairwise, each pair into (earlier first_ms, higher lsn, later last_ms).
		 * A merged mark claims its higher position a little earlier than seen, so lag seconds can only be
		 * over-stated by the merge, by at most the gap between the pair.
		 */
		for (int i = 0; i < NODE_LAG_MARKS / 2; i++) {
			struct node_lag_mark a = m[2 * i], b = m[2 * i + 1];

			m[i].lsn = b.lsn;
			m[i].first_ms = a.first_ms;
			m[i].last_ms = b.last_ms;
		}
		n->lag_nmarks = NODE_LAG_MARKS / 2;
	}
	m[n->lag_nmarks].lsn = lsn;
	m[n->lag_nmarks].first_ms = taken_ms;
	m[n->lag_nmarks].last_ms = taken_ms;
	n->lag_nmarks++;
}

/*
 * node_lag_seconds sets a replica's lag in seconds so that no clock skew between hosts can hide it or
 * keep it up. The sample's own value (the poller's "commit age": how long before the primary's last
 * message the last replayed transaction committed, plus how long ago that message arrived; each a
 * difference of one host's clock) is clamped between two bounds pgcheckd measures on its own monotonic
 * clock, from the WAL positions it has seen (the larger of the received position and latest_end_lsn,
 * the primary's WAL end as last reported):
 *   at least  now - when pgcheckd first saw a position the replica has not yet replayed (that WAL, and
 *             so a change the replica lacks, already existed then);
 *   at most   now - when pgcheckd last saw, as the furthest position, one the replica has since
 *             replayed (it then had everything the primary had reported by that time).
 * Replay caught up with every position seen is 0. Once pgcheckd has seen replay pass a position, the two
 * bounds are about one poll interval apart and the commit time only picks a value between them: after an
 * idle spell a few bytes of WAL without a commit (a checkpoint) would otherwise make a replica that is
 * milliseconds behind look as old as the idle spell. Before that (a fresh start while replay is behind)
 * the larger of the commit age and the lower bound stands; without a commit age, the lower bound.
 * On a new timeline, positions above what the primary now reports are lowered to it (WAL the old
 * primary reported but never sent is not waited for). A primary sample or a new system identifier
 * starts over.
 */
static void
node_lag_seconds(struct node *n, struct sample *s)
{
	uint64_t target = s->receive_lsn > s->latest_end_lsn ? s->receive_lsn : s->latest_end_lsn;
	struct node_lag_mark *m = n->lag_marks;
	double lower_s, upper_s, lag_s;
	int popped = 0;

	if (!s->in_recovery) {
		node_lag_forget(n);
		return;
	}
	if (!n->have_sample || !n->sample.in_recovery || s->system_identifier != n->lag_system_id)
		node_lag_forget(n);
	n->lag_system_id = s->system_identifier;
	/*
	 * On a new timeline (a failover), WAL the old primary reported may never come: no mark stays above
	 * what is reported now. On the same timeline a position that goes back (a receiver that restarted
	 * from the start of a segment) takes nothing back: that WAL existed, and replay has not reached it.
	 */
	if (s->timeline != 0 && s->timeline != n->lag_timeline) { /* 0: no receiver, timeline unknown */
		while (n->lag_nmarks > 0 && m[n->lag_nmarks - 1].lsn > target) {
			if (n->lag_nmarks > 1 && m[n->lag_nmarks - 2].lsn >= target) {
				m[n->lag_nmarks - 2].last_ms = m[n->lag_nmarks - 1].last_ms;
				n->lag_nmarks--;
			} else {
				m[n->lag_nmarks - 1].lsn = target;
			}
		}
		n->lag_timeline = s->timeline;
	}
	if (target > s->replay_lsn) {
		if (n->lag_nmarks > 0 && m[n->lag_nmarks - 1].lsn == target)
			m[n->lag_nmarks - 1].last_ms = s->taken_ms;
		else if (n->lag_nmarks == 0 || m[n->lag_nmarks - 1].lsn < target)
			node_lag_mark(n, target, s->taken_ms);
	}
	while (popped < n->lag_nmarks && m[popped].lsn <= s->replay_lsn) {
		n->lag_reached_ms = m[popped].last_ms;
		popped++;
	}
	if (popped > 0) {
		memmove(m, m + popped, (size_t)(n->lag_nmarks - popped) * sizeof(*m));
		n->lag_nmarks -= popped;
	}
	if (n->lag_nmarks == 0) {
		/* replay has every position seen, this sample's included */
		n->lag_reached_ms = s->taken_ms;
		s->have_lag_s = true;
		s->lag_s = 0;
		return;
	}
	lower_s = (double)(s->taken_ms - m[0].first_ms) / 1000.0;
	if (n->lag_reached_ms > 0) {
		upper_s = (double)(s->taken_ms - n->lag_reached_ms) / 1000.0;
		lag_s = !s->have_lag_s       ? upper_s
		        : s->lag_s < lower_s ? lower_s
		        : s->lag_s > upper_s ? upper_s
		                             : s->lag_s;
	} else {
		lag_s = s->have_lag_s && s->lag_s > lower_s ? s->lag_s : lower_s;
	}
	s->have_lag_s = true;
	s->lag_s = lag_s;
}

/* node_floor_forget drops what was seen towards a fork floor (and the floor): unknown from here on. */
static void
node_floor_forget(struct node *n)
{
	n->floor_tracking = false;
	n->floor_rec_timeline = 0;
	n->floor_rec_replay = 0;
	n->have_floor = false;
}

/*
 * node_floor_update keeps the fork floor (struct node): a promoted node's new timeline T + 1 has its
 * switch point from T at or after every position this node replayed on T (replay only goes forward,
 * and a promotion first replays all the WAL it has), so a replica on T that replayed no further than
 * the highest one sampled holds a prefix of T + 1. Only samples of one connection count: another
 * (a restart of PostgreSQL, whose data directory may have been replaced, or of the session) starts
 * over, and a sample that does not say its connection, a failed poll, a jump past T + 1 or a primary
 * first seen as one leave no floor. A timeline unknown in recovery (no WAL receiver) does not change
 * the last one known: the new timeline's number then tells whether another was replayed meanwhile
 * (a node that saw T + 1's history would be promoted to T + 2 or later).
 */
static void
node_floor_update(struct node *n, const struct sample *s)
{
	if (s->connection == 0 || s->connection != n->floor_connection || !n->have_sample ||
	    s->system_identifier != n->sample.system_identifier) {
		node_floor_forget(n);
		n->floor_connection = s->connection;
		if (s->connection == 0)
			return;
		n->floor_tracking = s->in_recovery; /* a primary already: its promotion was not seen */
	}
	if (s->in_recovery) {
		if (!n->floor_tracking) {
			node_floor_forget(
			    n); /* a primary that went back into recovery (it was restarted: new connection) */
			n->floor_tracking = true;
		}
		if (s->timeline > 0)
			n->floor_rec_timeline = s->timeline;
		if (s->replay_lsn > n->floor_rec_replay)
			n->floor_rec_replay = s->replay_lsn;
		return;
	}
	if (n->floor_tracking) {
		/* the first sample out of recovery: promoted to exactly the next timeline, or no floor */
		n->floor_tracking = false;
		n->have_floor =
		    n->floor_rec_timeline > 0 && n->floor_rec_replay > 0 && s->timeline == n->floor_rec_timeline + 1;
		if (n->have_floor) {
			n->floor_timeline = s->timeline;
			n->floor_parent = n->floor_rec_timeline;
			n->floor_lsn = n->floor_rec_replay;
			log_info("promoted from timeline %d to %d: timeline %d's switch point is at or after %X/%X",
			         n->floor_parent, n->floor_timeline, n->floor_parent, (unsigned)(n->floor_lsn >> 32),
			         (unsigned)n->floor_lsn);
		}
		return;
	}
	if (n->have_floor && s->timeline != n->floor_timeline)
		n->have_floor = false; /* promoted again, unseen: this floor is another timeline's */
}

void
node_sample(struct node *n, const struct sample *taken)
{
	struct sample sample = *taken, *s = &sample;
	int64_t dt = n->have_sample ? s->taken_ms - n->sample.taken_ms : 0;
	double load, replica;

	node_lag_seconds(n, s);
	load = 100.0 * weight_load_factor(s, &n->wp);
	replica = load * weight_lag_factor(s, &n->wp);
	if (n->failing || n->logged_failing) {
		log_info("PostgreSQL answers again");
		n->logged_failing = false;
	}
	node_floor_update(n, s);
	node_log_role(n, s);
	node_lag_update(n, s);
	if (n->replica_weight_pct < 0) {
		n->replica_weight_smoothed = replica;
		n->load_weight_smoothed = load;
	} else {
		n->replica_weight_smoothed = weight_smooth(n->replica_weight_smoothed, replica, dt, n->wp.smoothing_ms);
		n->load_weight_smoothed = weight_smooth(n->load_weight_smoothed, load, dt, n->wp.smoothing_ms);
	}
	n->replica_weight_pct =
	    weight_step(n->replica_weight_smoothed, n->replica_weight_pct, n->wp.step_pct, n->wp.floor_pct);
	n->load_weight_pct = weight_step(n->load_weight_smoothed, n->load_weight_pct, n->wp.step_pct, n->wp.floor_pct);
	if (s->in_recovery && s->receiver_streaming) {
		n->ever_streaming = true;
		n->last_streaming_ms = s->taken_ms;
	} else if (!s->in_recovery) {
		n->ever_streaming = false;
	}
	n->sample = *s;
	n->have_sample = true;
	n->failing = false;
	n->polls[POLL_OK]++;
}

void
node_fail(struct node *n, enum poll_result r, const char *detail)
{
	if (!n->logged_failing || n->logged_failure != r)
		log_warning("PostgreSQL %s: %s: down", poll_result_name(r), detail[0] != '\0' ? detail : "no detail");
	n->logged_failing = true;
	n->logged_failure = r;
	n->failing = true;
	/* a promotion until the next good sample would not be seen: none is taken for one (a floor stays) */
	n->floor_tracking = false;
	n->failure = r;
	if ((unsigned)r < POLL_RESULT_COUNT)
		n->polls[r]++;
}

void
node_set_override(struct node *n, enum node_override o)
{
	static const char *const names[] = {"ready", "drain", "maint"};

	if (n->override != o)
		log_warning("operator override %s -> %s", names[n->override], names[o]);
	n->override = o;
}

void
node_view(const struct node *n, int64_t now_ms, struct node_view *out)
{
	memset(out, 0, sizeof(*out));
	out->have_sample = n->have_sample;
	out->sample = n->sample;
	out->sample_age_ms = n->have_sample ? now_ms - n->sample.taken_ms : 0;
	out->failing = n->failing;
	out->failure = n->failure;
	out->lag_over = n->lag_over;
	out->lag_over_bytes = n->lag_over_bytes;
	out->lag_over_s = n->lag_over_s;
	if (n->have_sample && n->sample.in_recovery && !n->sample.receiver_streaming && n->ever_streaming) {
		out->was_streaming = true;
		out->not_streaming_ms = now_ms - n->last_streaming_ms;
	}
	out->replica_weight_pct = n->replica_weight_pct < 0 ? 0 : n->replica_weight_pct;
	out->load_weight_pct = n->load_weight_pct < 0 ? 0 : n->load_weight_pct;
	if (n->have_sample && !n->sample.in_recovery && n->have_floor && n->sample.timeline == n->floor_timeline) {
		out->have_tl_floor = true;
		out->tl_floor_parent = n->floor_parent;
		out->tl_floor_lsn = n->floor_lsn;
	}
	out->override = n->override;
	out->shutting_down = n->shutting_down;
	memcpy(out->polls, n->polls, sizeof(out->polls));
	out->role_changes = n->role_changes;
}
