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
	p->isolation_fence_ms = c->peers_isolation_fence_ms;
	p->fenced_reads = c->peers_fenced_reads;
	p->peer_key = c->peers_key;
	p->peer_key_len = c->peers_key_len;
}

/*
 * verdict_fence tells whether a primary must refuse writes because of what its peers say: a peer
 * primary on a newer timeline (this one is stale), another on the same timeline (two promotions;
 * until one is demoted or an operator releases one), or, when configured, no contact for too long.
 */
static bool
verdict_fence(const struct node_view *v, const struct policy *p, char *reason, size_t len)
{
	int tl = v->sample.timeline;

	if (v->peers.newest_primary_timeline > tl) {
		snprintf(reason, len, "fenced newer primary on timeline %d", v->peers.newest_primary_timeline);
		return true;
	}
	if (v->peers.primaries_on_timeline > 0 && !v->released) {
		snprintf(reason, len, "fenced split-brain on timeline %d", tl);
		return true;
	}
	if (p->isolation_fence_ms > 0 && v->isolated_ms > p->isolation_fence_ms) {
		snprintf(reason, len, "fenced isolated");
		return true;
	}
	return false;
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

static void
verdict_down(struct verdict *out, const char *reason)
{
	out->up = false;
	out->weight_pct = 0;
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

static void
verdict_up(struct verdict *out, int weight_pct)
{
	out->up = true;
	out->weight_pct = weight_pct < 0 ? 0 : weight_pct > 100 ? 100 : weight_pct;
	out->reason[0] = '\0';
}

/* verdict_lag_over compares against the request's own limits if it has any, else the node's hysteresis. */
static bool
verdict_lag_over(const struct node_view *v, const struct request *r)
{
	const struct sample *s = &v->sample;

	if (!r->has_max_lag_bytes && !r->has_max_lag_s)
		return v->lag_over;
	if (r->has_max_lag_bytes && s->lag_bytes > r->max_lag_bytes)
		return true;
	if (r->has_max_lag_s && s->have_lag_s && s->lag_s > r->max_lag_s)
		return true;
	return false;
}

static void
verdict_replica(const struct node_view *v, const struct request *r, const struct policy *p, struct verdict *out)
{
	const struct sample *s = &v->sample;
	char lag[48];

	if (!s->in_recovery) {
		verdict_down(out, "is-primary");
		return;
	}
	if (s->timeline > 0 && v->peers.newest_primary_timeline > s->timeline) {
		/* replaying a timeline the newest primary has left: behind a fork */
		snprintf(out->reason, sizeof(out->reason), "fork timeline %d behind %d", s->timeline,
		         v->peers.newest_primary_timeline);
		out->up = false;
		return;
	}
	if (!s->receiver_streaming) {
		/*
		 * The WAL receiver stopped (its primary died, or the link): the data is as old as the time since
		 * it last streamed. Reads go on while that is under the time lag limit, then the replica is down.
		 */
		double limit_s = r->has_max_lag_s ? r->max_lag_s : p->max_lag_s;

		if (!v->was_streaming || limit_s <= 0 || (double)v->not_streaming_ms > limit_s * 1000.0) {
			verdict_down(out, "disconnected");
			return;
		}
	} else if (p->receiver_silence_max_ms > 0 && s->have_receiver_silence &&
	           s->receiver_silence_s * 1000.0 > (double)p->receiver_silence_max_ms) {
		verdict_down(out, "disconnected");
		return;
	}
	if (verdict_lag_over(v, r)) {
		verdict_format_lag(s->lag_bytes, s->have_lag_s, s->lag_s, lag, sizeof(lag));
		if (p->over_lag == OVER_LAG_DRAIN) {
			verdict_up(out, 0);
			snprintf(out->reason, sizeof(out->reason), "lag %s", lag);
		} else {
			out->up = false;
			out->weight_pct = 0;
			snprintf(out->reason, sizeof(out->reason), "lag %s", lag);
		}
		return;
	}
	verdict_up(out, v->replica_weight_pct);
}

void
verdict_for(const struct node_view *v, const struct request *r, const struct policy *p, struct verdict *out)
{
	const struct sample *s = &v->sample;
	char fence[VERDICT_REASON_MAX];

	memset(out, 0, sizeof(*out));
	if (v->override == OVERRIDE_MAINT) {
		verdict_down(out, "maint");
		return;
	}
	if (v->failing) {
		verdict_down(out, poll_result_name(v->failure));
		return;
	}
	if (!v->have_sample) {
		verdict_down(out, "starting");
		return;
	}
	if (v->sample_age_ms > p->stale_after_ms) {
		verdict_down(out, "stale");
		return;
	}
	switch (r->kind) {
	case REQUEST_PRIMARY:
		if (s->in_recovery)
			verdict_down(out, "is-replica");
		else if (s->read_only || s->default_read_only)
			verdict_down(out, "read-only");
		else if (verdict_fence(v, p, fence, sizeof(fence)))
			verdict_down(out, fence);
		else
			verdict_up(out, 100);
		break;
	case REQUEST_REPLICA:
		verdict_replica(v, r, p, out);
		break;
	case REQUEST_READ_ONLY:
		if (s->in_recovery) {
			verdict_replica(v, r, p, out);
		} else if (!p->fenced_reads && verdict_fence(v, p, fence, sizeof(fence))) {
			verdict_down(out, fence);
		} else {
			int step = p->step_pct > 0 ? p->step_pct : 1;
			double w = (double)p->primary_read_pct * v->load_weight_pct / 100.0;

			verdict_up(out, (int)lround(w / step) * step);
		}
		break;
	case REQUEST_HEALTH:
	default:
		verdict_up(out, 100);
		break;
	}
	if (out->up && (v->override == OVERRIDE_DRAIN || v->shutting_down)) {
		out->weight_pct = 0;
		snprintf(out->reason, sizeof(out->reason), "%s", v->shutting_down ? "shutdown" : "drain");
	}
}
