/*
 * peer_summary.h: what verdict_for() needs from the peers, condensed by peers_summary(). Plain data:
 * the pure core reads it without the peers' client (libev).
 */
#ifndef PGCHECKD_PEER_SUMMARY_H
#define PGCHECKD_PEER_SUMMARY_H

#include <stdint.h>

/* Why an answer was not believed (the peer then counts as not heard from); names in peers_reject_names. */
enum peers_reject {
	PEERS_REJECT_NONE,
	PEERS_REJECT_NO_MAC,         /* with a key, an answer without a MAC */
	PEERS_REJECT_BAD_MAC,        /* the MAC does not match: another key, or a changed line */
	PEERS_REJECT_NONCE_MISMATCH, /* not this read's nonce: a replayed or stale answer */
	PEERS_REJECT_REFUSED,        /* "down #unauthenticated": the peer has a key and ours is not it (or none) */
	PEERS_REJECT_MALFORMED,      /* not a state line */
	PEERS_REJECT_COUNT,
};

extern const char *const peers_reject_names[PEERS_REJECT_COUNT];

/* What verdict_for() needs from the peers, as seen at one moment. */
struct peer_summary {
	int configured;                        /* peers in the list */
	int unheard;                           /* read since the start but not yet tried once (answer or failure) */
	int fresh;                             /* answered within the freshness limit, same cluster */
	int foreign;                           /* answered, but another system identifier: ignored */
	int newest_primary_timeline;           /* highest timeline of a fresh, unfenced peer primary; 0 none */
	int primaries_on_timeline;             /* fresh peer primaries on the timeline given to peers_summary */
	int64_t last_fresh_ms;                 /* monotonic time any same-cluster peer last answered; 0 never */
	uint64_t rejected[PEERS_REJECT_COUNT]; /* answers not believed since start, by reason (for /metrics) */
};

#endif
