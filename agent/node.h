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
#include "poller.h"
#include "sample.h"
#include "verdict.h"
#include "weight.h"

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
	bool seen_caught_up;       /* as a replica, replay was seen caught up with receive */
	int64_t behind_since_ms;   /* the last sample before replay fell behind receive; 0 none */
	int64_t last_streaming_ms; /* when, last */
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
