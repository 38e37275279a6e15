/*
 * fencing.c: isolation and release over time (see fencing.h). The fencing rules themselves are in
 * verdict_for(); this only keeps what they need between samples. No I/O.
 */
#include "fencing.h"

#include <string.h>

void
fencing_init(struct fencing *f, int64_t now_ms)
{
	memset(f, 0, sizeof(*f));
	f->started_ms = now_ms;
}

void
fencing_sample(struct fencing *f, const struct sample *s)
{
	if (!s->in_recovery && s->streaming_replicas > 0)
		f->last_replica_ms = s->taken_ms;
}

void
fencing_apply(struct fencing *f, int64_t now_ms, struct node_view *v)
{
	int64_t contact = f->started_ms;

	if (v->peers.primaries_on_timeline == 0)
		f->released = false; /* a release ends with the split it was for */
	v->released = f->released;
	if (f->last_replica_ms > contact)
		contact = f->last_replica_ms;
	if (v->peers.last_fresh_ms > contact)
		contact = v->peers.last_fresh_ms;
	v->isolated_ms = now_ms - contact;
	v->handover_ms = 0;
	v->stepped_down_ago_ms = -1;
	v->stepped_down_after_ms = 0;
	if (!v->have_sample || v->sample.in_recovery) {
		f->handover_since_ms = 0;
		f->stepped_down_ms = 0;
		return;
	}
	if (v->peers.older_primaries_up > 0) {
		if (f->handover_since_ms == 0)
			f->handover_since_ms = now_ms > 0 ? now_ms : 1;
		f->stepped_down_ms = 0;
		v->handover_ms = now_ms - f->handover_since_ms;
		return;
	}
	if (f->handover_since_ms != 0) {
		/* the superseded primary stepped down: HAProxy may not have checked it yet */
		f->stepped_down_ms = now_ms > 0 ? now_ms : 1;
		f->stepped_down_after_ms = now_ms - f->handover_since_ms;
		f->handover_since_ms = 0;
	}
	if (f->stepped_down_ms != 0 && now_ms - f->stepped_down_ms > FENCING_SETTLE_FORGET_MS)
		f->stepped_down_ms = 0;
	if (f->stepped_down_ms != 0) {
		v->stepped_down_ago_ms = now_ms - f->stepped_down_ms;
		v->stepped_down_after_ms = f->stepped_down_after_ms;
	}
}

bool
fencing_release(struct fencing *f, const struct node_view *v)
{
	if (v->peers.primaries_on_timeline == 0)
		return false;
	f->released = true;
	return true;
}

enum fencing_change
fencing_note(struct fencing *f, const struct verdict *primary)
{
	bool fenced = verdict_is_fenced(primary);
	int timeline = primary->why == REASON_FENCED_NEWER_PRIMARY ? primary->other_timeline : primary->timeline;
	enum fencing_change change = FENCING_SAME;

	if (fenced && (!f->fenced || primary->why != f->why || timeline != f->timeline))
		change = FENCING_BEGAN;
	else if (!fenced && f->fenced)
		change = FENCING_ENDED;
	f->fenced = fenced;
	f->why = fenced ? primary->why : REASON_NONE;
	f->timeline = fenced ? timeline : 0;
	return change;
}
