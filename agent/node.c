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

/*
 * node_bound_lag_s lowers a replica's lag in seconds to what pgcheckd saw itself. The sample's value
 * is "now - last replayed commit" whenever replay is behind what was received; after an idle spell a
 * few bytes of WAL without a commit (a checkpoint, a snapshot) make that the whole idle time although
 * replay is milliseconds behind. Replay that was caught up at behind_since_ms is at most
 * now - behind_since_ms behind, so the smaller of the two is still an upper bound. Until pgcheckd has
 * seen the replica caught up once, the sample's value stands (a fresh start trusts nothing).
 */
static void
node_bound_lag_s(struct node *n, struct sample *s)
{
	bool behind = s->in_recovery && s->receive_lsn > s->replay_lsn;

	if (!s->in_recovery) {
		n->seen_caught_up = false;
		n->behind_since_ms = 0;
		return;
	}
	if (!behind) {
		n->seen_caught_up = true;
		n->behind_since_ms = 0;
		return;
	}
	if (n->behind_since_ms == 0 && n->seen_caught_up)
		n->behind_since_ms =
		    n->have_sample ? n->sample.taken_ms : s->taken_ms; /* caught up at the last sample */
	if (n->behind_since_ms > 0 && s->have_lag_s) {
		double seen_s = (double)(s->taken_ms - n->behind_since_ms) / 1000.0;

		if (seen_s < s->lag_s)
			s->lag_s = seen_s;
	}
}

void
node_sample(struct node *n, const struct sample *taken)
{
	struct sample sample = *taken, *s = &sample;
	int64_t dt = n->have_sample ? s->taken_ms - n->sample.taken_ms : 0;
	double load, replica;

	node_bound_lag_s(n, s);
	load = 100.0 * weight_load_factor(s, &n->wp);
	replica = load * weight_lag_factor(s, &n->wp);
	if (n->failing || n->logged_failing) {
		log_info("PostgreSQL answers again");
		n->logged_failing = false;
	}
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
	out->override = n->override;
	out->shutting_down = n->shutting_down;
	memcpy(out->polls, n->polls, sizeof(out->polls));
	out->role_changes = n->role_changes;
}
