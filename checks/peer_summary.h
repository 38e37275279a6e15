/*
 * peer_summary.h: what verdict_for() needs from the peers, condensed by peers_summary(). Plain data:
 * the pure core reads it without the peers' client (libev).
 */
#ifndef PGCHECKD_PEER_SUMMARY_H
#define PGCHECKD_PEER_SUMMARY_H

#include <stdint.h>

/* What verdict_for() needs from the peers, as seen at one moment. */
struct peer_summary {
	int configured;              /* peers in the list */
	int fresh;                   /* answered within the freshness limit, same cluster */
	int foreign;                 /* answered, but another system identifier: ignored */
	int newest_primary_timeline; /* highest timeline of a fresh, unfenced peer primary; 0 none */
	int primaries_on_timeline;   /* fresh peer primaries on the timeline given to peers_summary */
	int64_t last_fresh_ms;       /* monotonic time any same-cluster peer last answered; 0 never */
};

#endif
