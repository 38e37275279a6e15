/*
 * fencing.h: what the node itself cannot know about fencing, kept between samples: since when it has
 * been isolated (no peer answered and no streaming replica seen), and an operator's release from a
 * split. Pure: the time is an argument; main.c feeds it samples and asks it before every verdict.
 */
#ifndef PGCHECKD_FENCING_H
#define PGCHECKD_FENCING_H

#include <stdbool.h>
#include <stdint.h>

#include "sample.h"
#include "verdict.h"

struct fencing {
	int64_t started_ms;            /* isolation counts from the start until first contact */
	int64_t last_replica_ms;       /* as a primary, a streaming replica was last seen; 0 never */
	bool released;                 /* an operator released this primary from split fencing */
	bool fenced;                   /* the last primary verdict noted was fenced ... */
	enum verdict_reason why;       /* ... for this reason ... */
	int timeline;                  /* ... naming this timeline */
	int64_t handover_since_ms;     /* a primary this node superseded was first seen still up; 0 none */
	int64_t stepped_down_ms;       /* ... and then seen fenced (or gone) at this time; 0 none */
	int64_t stepped_down_after_ms; /* ... after this long a wait */
};

/* a step-down is forgotten after this long (above [peers] handover_settle_ms's maximum) */
#define FENCING_SETTLE_FORGET_MS 120000

void fencing_init(struct fencing *f, int64_t now_ms);

/* fencing_sample takes a good sample: a primary with a streaming replica is in contact. */
void fencing_sample(struct fencing *f, const struct sample *s);

/*
 * fencing_apply completes v (whose peers summary is filled in) at now_ms: isolated_ms since the last
 * contact (a fresh same-cluster peer or a streaming replica, else the start) and released; a release
 * ends with the split it was for (no other primary on this timeline); handover_ms since a peer primary
 * on an older timeline was first seen still up while this node is a primary (0 when none is), and
 * stepped_down_ago_ms since it stopped (-1: none did) with how long the wait had been.
 */
void fencing_apply(struct fencing *f, int64_t now_ms, struct node_view *v);

/* fencing_release is the operator's release: false (nothing changed) when there is no split to release. */
bool fencing_release(struct fencing *f, const struct node_view *v);

enum fencing_change { FENCING_SAME, FENCING_BEGAN, FENCING_ENDED };

/* fencing_note compares the primary verdict with the last one noted: began (or another reason), ended, same. */
enum fencing_change fencing_note(struct fencing *f, const struct verdict *primary);

#endif
