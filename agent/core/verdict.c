/*
 * verdict.c: DESIGN.md's verdict table as one pure function. Every protocol renders verdict_for();
 * when the node's state is unknown, failed or stale the answer is down. Overrides can lower an
 * answer (drain: up 0%, maint: down), never raise one.
 */
#include "verdict.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void
verdict_policy(const struct conf *c, struct policy *p)
{
	p->stale_after_ms = c->pg_stale_after_ms;
	p->max_lag_bytes = c->replica_max_lag_bytes;
	p->max_lag_s = c->replica_max_lag_s;
	p->over_lag = (enum over_lag_action)c->replica_over_lag;
	p->receiver_silence_max_ms = c->replica_receiver_silence_max_ms;
	p->primary_read_pct = (int)c->weight_primary_read_pct;
	p->step_pct = (int)c->weight_step_pct;
	p->floor_pct = (int)c->weight_floor_pct;
	p->location = c->agent_location;
	p->isolation_fence_ms = c->peers_isolation_fence_ms;
	p->handover_ms = c->peers_handover_ms;
	p->handover_settle_ms = c->peers_handover_settle_ms;
	p->peers_fresh_ms = c->peers_fresh_ms;
	p->fenced_reads = c->peers_fenced_reads;
	p->peer_key = c->peers_key;
	p->peer_key_len = c->peers_key_len;
	p->dcs_leader_required = c->dcs_mode == CONF_DCS_PATRONI;
	p->dcs_fresh_ms = c->dcs_fresh_ms;
	p->dcs_lease_required = c->dcs_mode == CONF_DCS_LEASE;
	p->dcs_lease_margin_ms = c->dcs_lease_margin_ms;
}

static const char *const verdict_reason_names[] = {
#define VERDICT_REASON_NAME(e, s) s,
    VERDICT_REASONS(VERDICT_REASON_NAME)
#undef VERDICT_REASON_NAME
};

const char *
verdict_reason_name(enum verdict_reason why)
{
	return (unsigned)why < VERDICT_REASON_COUNT ? verdict_reason_names[why] : "unknown";
}

const char *
verdict_sync_name(enum sync_state state)
{
	static const char *const names[SYNC_STATE_COUNT] = {"unknown", "none", "async", "potential", "sync", "quorum"};

	return (unsigned)state < SYNC_STATE_COUNT ? names[state] : "unknown";
}

bool
verdict_is_fenced(const struct verdict *v)
{
	return !v->up && (v->why == REASON_FENCED_NEWER_PRIMARY || v->why == REASON_FENCED_SPLIT_BRAIN ||
	                  v->why == REASON_FENCED_ISOLATED);
}

void
verdict_render_reason(const struct verdict *v, char *buf, size_t len)
{
	char lag[48];

	switch (v->why) {
	case REASON_POLL_FAILED:
		snprintf(buf, len, "%s", poll_result_name(v->failure));
		break;
	case REASON_FENCED_NEWER_PRIMARY:
		snprintf(buf, len, "%s on timeline %d", verdict_reason_name(v->why), v->other_timeline);
		break;
	case REASON_FENCED_SPLIT_BRAIN:
		snprintf(buf, len, "%s on timeline %d", verdict_reason_name(v->why), v->timeline);
		break;
	case REASON_FORK:
		snprintf(buf, len, "fork timeline %d behind %d", v->timeline, v->other_timeline);
		break;
	case REASON_LAG:
		verdict_format_lag(v->lag_bytes, v->have_lag_s, v->lag_s, lag, sizeof(lag));
		snprintf(buf, len, "lag %s", lag);
		break;
	case REASON_KEEP_BEST:
		verdict_format_lag(v->lag_bytes, v->have_lag_s, v->lag_s, lag, sizeof(lag));
		snprintf(buf, len, "%s lag %s", verdict_reason_name(v->why), lag);
		break;
	case REASON_SYNC_STATE:
		snprintf(buf, len, "%s %s", verdict_reason_name(v->why), verdict_sync_name(v->sync));
		break;
	case REASON_BEHIND_LSN:
		snprintf(buf, len, "%s %" PRIX32 "/%" PRIX32, verdict_reason_name(v->why),
		         (uint32_t)(v->replay_lsn >> 32), (uint32_t)v->replay_lsn);
		break;
	default:
		snprintf(buf, len, "%s", verdict_reason_name(v->why));
		break;
	}
}

static void
verdict_because(struct verdict *out, enum verdict_reason why)
{
	out->why = why;
	verdict_render_reason(out, out->reason, sizeof(out->reason));
}

void
verdict_set_down(struct verdict *v, enum verdict_reason why)
{
	memset(v, 0, sizeof(*v));
	verdict_because(v, why);
}

/*
 * verdict_fence tells whether a primary must refuse writes because of what its peers say: a peer
 * primary on a newer timeline (this one is stale), another on the same timeline (two promotions;
 * until one is demoted or an operator releases one), or, when configured, no contact for too long.
 * The reason goes into out (its code and timelines); false and out untouched when not fenced.
 */
static bool
verdict_fence(const struct node_view *v, const struct policy *p, struct verdict *out)
{
	int tl = v->sample.timeline;

	if (v->peers.newest_primary_timeline > tl) {
		out->timeline = tl;
		out->other_timeline = v->peers.newest_primary_timeline;
		out->why = REASON_FENCED_NEWER_PRIMARY;
		return true;
	}
	if (v->peers.primaries_on_timeline > 0 && !v->released) {
		out->timeline = tl;
		out->why = REASON_FENCED_SPLIT_BRAIN;
		return true;
	}
	if (p->isolation_fence_ms > 0 && v->isolated_ms > p->isolation_fence_ms) {
		out->why = REASON_FENCED_ISOLATED;
		return true;
	}
	return false;
}

/*
 * verdict_handing_over: this node was promoted and a peer primary on an older timeline still answers
 * that it takes writes. Up now would make two write targets; the old one fences itself as soon as it
 * reads this node (the promotion alerts it), and its fencing alerts back. Bounded by handover_ms; once
 * it stepped down, handover_settle_ms more, for HAProxy to check it (unless the wait had run out).
 */
static bool
verdict_handing_over(const struct node_view *v, const struct policy *p)
{
	if (p->handover_ms <= 0)
		return false;
	if (v->peers.older_primaries_up > 0)
		return v->handover_ms < p->handover_ms;
	return v->stepped_down_ago_ms >= 0 && v->stepped_down_ago_ms < p->handover_settle_ms &&
	       v->stepped_down_after_ms < p->handover_ms;
}

void
verdict_format_lag(int64_t lag_bytes, bool have_s, double lag_s, char *buf, size_t len)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
	int64_t v = lag_bytes < 0 ? 0 : lag_bytes;
	int u = 0;

	while (u < 4 && v >= 1024) {
		v /= 1024;
		u++;
	}
	if (have_s)
		snprintf(buf, len, "%" PRId64 "%s/%.0fs", v, units[u], floor(lag_s));
	else
		snprintf(buf, len, "%" PRId64 "%s", v, units[u]);
}

/*
 * verdict_dcs_denies tells why the DCS does not let this node be the primary. Lease mode: not holding the
 * key's lease, or too near its expiry. Patroni mode:
 * no answer yet, none within fresh_ms (etcd lost: fail closed), or a leader key that names another
 * node or no one; REASON_NONE when the leader key, read within fresh_ms, names this node.
 */
static enum verdict_reason
verdict_dcs_denies(const struct node_view *v, const struct policy *p)
{
	/* etcd's word is missing: because it refuses this client's authentication, or for any other reason */
	const enum verdict_reason unreachable =
	    v->dcs.last_error == DCS_AUTH ? REASON_DCS_AUTH : REASON_DCS_UNREACHABLE;

	if (p->dcs_lease_required) {
		/* lease mode: up only while this node holds the key, the margin before its lease can expire */
		if (v->dcs.configured && v->dcs.lease_mode && v->dcs.holding)
			return v->dcs.lease_left_ms > p->dcs_lease_margin_ms ? REASON_NONE : unreachable;
		if (!v->dcs.configured || v->dcs.last_error != DCS_OK)
			return unreachable;
		if (!v->dcs.heard)
			return REASON_DCS_UNHEARD;
		return v->dcs.have_leader ? REASON_DCS_NOT_LEADER : REASON_DCS_NO_LEASE;
	}
	if (!p->dcs_leader_required)
		return REASON_NONE;
	if (!v->dcs.configured || !v->dcs.heard)
		return v->dcs.last_error != DCS_OK || !v->dcs.configured ? unreachable : REASON_DCS_UNHEARD;
	if (v->dcs.age_ms < 0 || v->dcs.age_ms > p->dcs_fresh_ms)
		return unreachable;
	return v->dcs.leader_is_me ? REASON_NONE : REASON_DCS_NOT_LEADER;
}

static void
verdict_down(struct verdict *out, enum verdict_reason why)
{
	out->up = false;
	out->weight_pct = 0;
	verdict_because(out, why);
}

static void
verdict_up(struct verdict *out, int weight_pct)
{
	out->up = true;
	out->weight_pct = weight_pct < 0 ? 0 : weight_pct > 100 ? 100 : weight_pct;
	verdict_because(out, REASON_NONE);
}

/*
 * verdict_lag_over tells whether the replica is over the lag limits that apply to request r. Without
 * parameters: the configured limits, with the node's hysteresis. A parameter replaces only the limit it
 * names ("lag_s=5" is a seconds limit of 5 s); the limit it does not name stays the configured one, with
 * that limit's own hysteresis, so a request can never drop a limit it did not mention.
 */
static bool
verdict_lag_over(const struct node_view *v, const struct request *r, const struct policy *p)
{
	const struct sample *s = &v->sample;
	bool over_bytes, over_s;

	if (!r->has_max_lag_bytes && !r->has_max_lag_s)
		return v->lag_over;
	if (r->has_max_lag_bytes)
		over_bytes = s->lag_bytes > r->max_lag_bytes;
	else
		over_bytes = p->max_lag_bytes > 0 && (v->lag_over_bytes || s->lag_bytes > p->max_lag_bytes);
	if (r->has_max_lag_s)
		over_s = s->have_lag_s && s->lag_s > r->max_lag_s;
	else
		over_s = p->max_lag_s > 0 && (v->lag_over_s || (s->have_lag_s && s->lag_s > p->max_lag_s));
	return over_bytes || over_s;
}

/*
 * verdict_behind tells whether a replica has not replayed the position request r asks for (min_lsn);
 * then out holds the reason, with what it has replayed. A replica's data is what it has replayed, not
 * what it has received: a commit is visible only once its record is replayed.
 */
static bool
verdict_behind(const struct node_view *v, const struct request *r, struct verdict *out)
{
	if (!r->has_min_lsn || v->sample.replay_lsn >= r->min_lsn)
		return false;
	out->replay_lsn = v->sample.replay_lsn;
	verdict_down(out, REASON_BEHIND_LSN);
	return true;
}

/*
 * verdict_keep_best tells whether this replica, over the lag limit, stays up (over_lag = keep-best):
 * the fresh peers tell of no replica up for reads, of none that does not say where it stands (an
 * older node), and of no lagging one ahead of this one (more replayed, or as much with a lower name).
 * Without a fresh peer it does not know: false (down). A request's own lag limit is kept as asked.
 */
static bool
verdict_keep_best(const struct node_view *v, const struct request *r)
{
	const struct peer_cluster *c = &v->cluster;

	if (r->has_max_lag_bytes || r->has_max_lag_s || v->peers.fresh == 0)
		return false;
	return c->replicas_up == 0 && c->replicas_unsure == 0 && !c->lagging_ahead;
}

/*
 * verdict_sync keeps a replica's up answer (in out) only when the primary counts it as request r asks
 * (sync, quorum; async: async or potential). A replica cannot see its own sync state: the word is the
 * one fresh peer primary's, and without it the answer is down (sync-unknown).
 */
static void
verdict_sync(const struct node_view *v, const struct request *r, struct verdict *out)
{
	enum sync_state st = v->cluster.my_sync;
	bool match;

	if (st == SYNC_UNKNOWN) {
		verdict_down(out, REASON_SYNC_UNKNOWN);
		return;
	}
	if (r->kind == REQUEST_SYNC)
		match = st == SYNC_SYNC;
	else if (r->kind == REQUEST_QUORUM)
		match = st == SYNC_QUORUM;
	else
		match = st == SYNC_ASYNC || st == SYNC_POTENTIAL;
	if (!match) {
		out->sync = st;
		verdict_down(out, REASON_SYNC_STATE);
	}
}

/*
 * verdict_before_floor tells whether this replica, on a timeline the newest peer primary has left, is
 * only behind it, not forked: that primary's timeline is the next one, and its floor (every fresh
 * primary on it says the same) shows it replayed at least as far on this replica's timeline as this
 * replica has, so the replica's data is a prefix of the newest timeline. Anything unknown: false (fork).
 */
static bool
verdict_before_floor(const struct node_view *v)
{
	const struct sample *s = &v->sample;

	return v->peers.have_floor && v->peers.floor_timeline == s->timeline &&
	       v->peers.newest_primary_timeline == s->timeline + 1 && s->replay_lsn > 0 &&
	       s->replay_lsn <= v->peers.floor_lsn;
}

static void
verdict_replica(const struct node_view *v, const struct request *r, const struct policy *p, struct verdict *out)
{
	const struct sample *s = &v->sample;

	if (!s->in_recovery) {
		verdict_down(out, REASON_IS_PRIMARY);
		return;
	}
	if (s->timeline > 0 && v->peers.newest_primary_timeline > s->timeline && !verdict_before_floor(v)) {
		/* replaying a timeline the newest primary has left, maybe past where it left: behind a fork */
		out->timeline = s->timeline;
		out->other_timeline = v->peers.newest_primary_timeline;
		verdict_down(out, REASON_FORK);
		return;
	}
	if (!s->receiver_streaming) {
		/*
		 * The WAL receiver stopped (its primary died, or the link): the data is as old as the time since
		 * it last streamed. Reads go on while that is under the time lag limit, then the replica is down.
		 */
		double limit_s = r->has_max_lag_s ? r->max_lag_s : p->max_lag_s;

		if (!v->was_streaming || limit_s <= 0 || (double)v->not_streaming_ms > limit_s * 1000.0) {
			verdict_down(out, REASON_DISCONNECTED);
			return;
		}
	} else if (p->receiver_silence_max_ms > 0 && s->have_receiver_silence &&
	           s->receiver_silence_s * 1000.0 > (double)p->receiver_silence_max_ms) {
		verdict_down(out, REASON_DISCONNECTED);
		return;
	}
	/* before the lag: over_lag = drain answers up 0%, and a replica behind the position is never up */
	if (verdict_behind(v, r, out))
		return;
	if (verdict_lag_over(v, r, p)) {
		out->lag_bytes = s->lag_bytes;
		out->have_lag_s = s->have_lag_s;
		out->lag_s = s->lag_s;
		if (p->over_lag == OVER_LAG_KEEP_BEST && verdict_keep_best(v, r)) {
			out->up = true; /* every replica is over the limit and this one is the least behind */
			out->weight_pct = p->floor_pct;
			verdict_because(out, REASON_KEEP_BEST);
		} else if (p->over_lag == OVER_LAG_DRAIN) {
			out->up = true; /* drained: up 0%, with the lag as its reason */
			out->weight_pct = 0;
			verdict_because(out, REASON_LAG);
		} else {
			verdict_down(out, REASON_LAG);
		}
		return;
	}
	verdict_up(out, v->replica_weight_pct);
}

/* verdict_preferred: this node's location has every label request r prefers (true when r names none). */
static bool
verdict_preferred(const struct request *r, const struct policy *p)
{
	for (int i = 0; i < r->prefer_count; i++)
		if (p->location == NULL || !conf_labels_have(p->location, r->prefer[i], strlen(r->prefer[i])))
			return false;
	return true;
}

void
verdict_for(const struct node_view *v, const struct request *r, const struct policy *p, struct verdict *out)
{
	const struct sample *s = &v->sample;

	memset(out, 0, sizeof(*out));
	if (v->override == OVERRIDE_MAINT) {
		verdict_down(out, REASON_MAINT);
		return;
	}
	if (v->failing) {
		out->failure = v->failure;
		verdict_down(out, REASON_POLL_FAILED);
		return;
	}
	if (!v->have_sample) {
		verdict_down(out, REASON_STARTING);
		return;
	}
	if (v->sample_age_ms > p->stale_after_ms) {
		verdict_down(out, REASON_STALE);
		return;
	}
	switch (r->kind) {
	case REQUEST_PRIMARY:
		if (s->in_recovery)
			verdict_down(out, REASON_IS_REPLICA);
		else if (s->read_only || s->default_read_only)
			verdict_down(out, REASON_READ_ONLY);
		else if (verdict_dcs_denies(v, p) != REASON_NONE)
			verdict_down(out, verdict_dcs_denies(v, p));
		else if (v->peers.unheard > 0)
			verdict_down(out, REASON_PEERS_UNHEARD); /* started, but a peer may hold a newer timeline */
		else if (verdict_fence(v, p, out))
			verdict_down(out, out->why);
		else if (verdict_handing_over(v, p))
			verdict_down(out, REASON_HANDOVER);
		else
			verdict_up(out, 100);
		break;
	case REQUEST_REPLICA:
		verdict_replica(v, r, p, out);
		break;
	case REQUEST_READ_ONLY:
		if (s->in_recovery) {
			verdict_replica(v, r, p, out);
		} else if (!p->fenced_reads && v->peers.unheard > 0) {
			verdict_down(out, REASON_PEERS_UNHEARD);
		} else if (!p->fenced_reads && verdict_fence(v, p, out)) {
			verdict_down(out, out->why);
		} else {
			int step = p->step_pct > 0 ? p->step_pct : 1;
			double w = (double)p->primary_read_pct * v->load_weight_pct / 100.0;

			verdict_up(out, (int)lround(w / step) * step);
		}
		break;
	case REQUEST_SYNC:
	case REQUEST_ASYNC:
	case REQUEST_QUORUM:
		verdict_replica(v, r, p, out);
		if (out->up)
			verdict_sync(v, r, out);
		break;
	case REQUEST_HEALTH:
		/* a primary has every position it has written; a replica only what it has replayed */
		if (!(s->in_recovery && verdict_behind(v, r, out)))
			verdict_up(out, 100);
		break;
	default:
		verdict_down(out, REASON_BAD_REQUEST); /* a kind this table does not know is never up */
		return;
	}
	/* a read that prefers another location: still up (reads fail over here), at no more than the floor */
	if (out->up && r->kind != REQUEST_PRIMARY && r->kind != REQUEST_HEALTH && !verdict_preferred(r, p)) {
		if (out->weight_pct > p->floor_pct)
			out->weight_pct = p->floor_pct;
		if (out->why == REASON_NONE)
			verdict_because(out, REASON_NOT_PREFERRED);
	}
	if (out->up && (v->override == OVERRIDE_DRAIN || v->shutting_down)) {
		out->weight_pct = 0;
		verdict_because(out, v->shutting_down ? REASON_SHUTDOWN : REASON_DRAIN);
	}
}
