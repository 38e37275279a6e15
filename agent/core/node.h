/*
 * node.h: the node's state, built from the poller's outcomes: last good sample, failure, lag
 * hysteresis, smoothed weights, operator override. Logs transitions (role, reachability, lag limit),
 * never individual samples. Responders read it only through node_view().
 */
#ifndef PGCHECKD_NODE_H
#define PGCHECKD_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "poll_result.h"
#include "sample.h"
#include "verdict.h"
#include "weight.h"

/* how many not-yet-replayed WAL positions a node keeps; past that, neighbours are merged */
#define NODE_LAG_MARKS 64

struct node {
	bool have_sample;
	struct sample sample;
	bool failing;
	enum poll_result failure;
	bool lag_over;       /* over the configured limits: over one, until under recover_pct of every one */
	bool lag_over_bytes; /* over the byte limit, until under recover_pct of it */
	bool lag_over_s;     /* over the seconds limit, until under recover_pct of it */
	double replica_weight_smoothed;
	double load_weight_smoothed;
	int replica_weight_pct;
	int load_weight_pct;
	enum node_override override;
	bool shutting_down;
	uint64_t polls[POLL_RESULT_COUNT];
	uint64_t role_changes;
	bool ever_streaming;       /* as a replica, its WAL receiver was seen streaming */
	int64_t last_streaming_ms; /* when, last */
	/* lag seconds from pgcheckd's own clock (node_lag_seconds): WAL positions seen and not yet replayed */
	struct node_lag_mark {
		uint64_t lsn;        /* the primary's WAL reached at least this far ... */
		int64_t first_ms;    /* ... when pgcheckd first saw it (or a lower mark merged into this one) */
		int64_t last_ms;     /* ... and it was still the furthest seen at this sample */
	} lag_marks[NODE_LAG_MARKS]; /* oldest first, lsn rising; all above the replay position */
	int lag_nmarks;
	int64_t lag_reached_ms; /* last_ms of the newest mark replay has reached; 0 none yet */
	uint64_t lag_system_id; /* the node these marks are about */
	int lag_timeline;       /* the timeline they were last checked against */
	/*
	 * The fork floor (node_floor_update): while in recovery, the highest replay position sampled on one
	 * connection, and once promoted from timeline T to exactly T + 1 on that same connection, that
	 * position as the new timeline's floor (its switch point from T is at or after it).
	 */
	uint64_t floor_connection; /* the sample's connection the rest is about */
	bool floor_tracking;       /* in recovery since that connection's first sample */
	int floor_rec_timeline;    /* the last timeline seen in recovery; 0 none yet */
	uint64_t floor_rec_replay; /* the highest replay position sampled in recovery; 0 none */
	bool have_floor;           /* promoted as above: the floor of floor_timeline */
	int floor_timeline;        /* the timeline it was promoted to */
	int floor_parent;          /* the one it left (floor_timeline - 1) */
	uint64_t floor_lsn;
	/* settings */
	struct weight_policy wp;
	int recover_pct;
	/* for transition logs */
	int logged_role; /* -1 none, 0 primary, 1 replica */
	int logged_timeline;
	bool logged_failing;
	enum poll_result logged_failure;
};

void node_init(struct node *n, const struct conf *c);

/* node_configure applies reloaded settings; state is kept. */
void node_configure(struct node *n, const struct conf *c);

/* node_sample takes a good sample (s->taken_ms is its time). */
void node_sample(struct node *n, const struct sample *s);

/* node_fail records a failed poll (detail: libpq's message, never NULL); down until the next good sample. */
void node_fail(struct node *n, enum poll_result r, const char *detail);

void node_set_override(struct node *n, enum node_override o);

/* node_view copies what the responders may know, as seen at now_ms. */
void node_view(const struct node *n, int64_t now_ms, struct node_view *out);

#endif
