/*
 * peer_summary.h: what verdict_for() needs from the peers, condensed by peers_summary(). Plain data:
 * the pure core reads it without the peers' client (libev).
 */
#ifndef PGCHECKD_PEER_SUMMARY_H
#define PGCHECKD_PEER_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

#include "sample.h"

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
	int configured;              /* peers in the list */
	int unheard;                 /* read since the start but not yet tried once (answer or failure) */
	int fresh;                   /* answered within the freshness limit, same cluster */
	int foreign;                 /* answered, but another system identifier: ignored */
	int newest_primary_timeline; /* highest timeline of a fresh, unfenced peer primary; 0 none */
	/*
	 * The fork floor of newest_primary_timeline: known only when every fresh peer primary on it says
	 * the same tl_from, on the timeline just before its own. A replica on floor_timeline that replayed
	 * no further than floor_lsn holds a prefix of the newest timeline (stale, not forked).
	 */
	bool have_floor;
	int floor_timeline; /* the newest primaries' parent timeline (newest_primary_timeline - 1) */
	uint64_t floor_lsn;
	int primaries_on_timeline;             /* fresh peer primaries on the timeline given to peers_summary */
	int older_primaries_up;                /* fresh, unfenced peer primaries on an older timeline whose
	                                          last read answered: not yet stepped down (handover) */
	int64_t last_fresh_ms;                 /* monotonic time any same-cluster peer last answered; 0 never */
	uint64_t rejected[PEERS_REJECT_COUNT]; /* answers not believed since start, by reason (for /metrics) */
};

/*
 * What the read rules of verdict_for() need from the peers beyond fencing (peers_cluster): how the
 * primary counts this replica (sync, async, quorum requests) and where the other replicas stand
 * (over_lag = keep-best). Only fresh answers of this cluster count.
 */
struct peer_cluster {
	/*
	 * What the one fresh, unfenced peer primary on the newest timeline says of this node: UNKNOWN when
	 * there is no such primary (or two), it does not say (an older node), this node has no name, or it
	 * lists no entry for it while its list is cut short; NONE when its whole list leaves this node out.
	 */
	enum sync_state my_sync;
	int replicas_fresh;   /* fresh peer replicas */
	int replicas_unsure;  /* of those, not saying how their reads stand (an older node) */
	int replicas_up;      /* of those, up for reads */
	int replicas_lagging; /* of those, down (or kept up) only for their lag */
	bool lagging_ahead;   /* a lagging one has replayed more than this node (or as much, with a lower name) */
};

#endif
