/*
 * peers.h: what the other nodes' pgcheckd say about themselves, read on a timer of its own (never on
 * the path of a check) over their agent port with the "peer-state" request. Each peer has a bounded
 * exchange; an unreachable peer just ages. The summary feeds the fencing rules in verdict_for().
 */
#ifndef PGCHECKD_PEERS_H
#define PGCHECKD_PEERS_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

#define PEERS_MAX CONF_ADDR_LIST_MAX

struct peer_state {
	char addr[CONF_ADDR_MAX]; /* host:port as configured */
	bool seen;                /* answered at least once */
	int64_t seen_ms;          /* monotonic time of the last answer */
	bool primary;             /* role=primary (and writable) */
	bool replica;
	int timeline;
	uint64_t system_identifier;
	bool fenced; /* the peer refuses writes itself */
};

/* What verdict_for() needs from the peers, as seen at one moment. */
struct peer_summary {
	int configured;              /* peers in the list */
	int fresh;                   /* answered within the freshness limit, same cluster */
	int foreign;                 /* answered, but another system identifier: ignored */
	int newest_primary_timeline; /* highest timeline of a fresh, unfenced peer primary; 0 none */
	int primaries_on_timeline;   /* fresh peer primaries on the timeline given to peers_summary */
	int64_t last_fresh_ms;       /* monotonic time any same-cluster peer last answered; 0 never */
};

struct peers_conf {
	const char *addresses; /* "host:port, host:port" */
	int64_t interval_ms;
	int64_t timeout_ms;
};

struct peers;

/* peers_new parses the address list (checked by conf already) and starts polling; NULL when none. */
struct peers *peers_new(struct ev_loop *loop, const struct peers_conf *pc, void (*changed)(void *arg), void *arg);
void peers_free(struct peers *p);

/*
 * peers_summary condenses the peers' states at now_ms: only peers that answered within fresh_ms and
 * share system_identifier (when it is known, i.e. non-zero) count; primaries_on_timeline counts fresh,
 * unfenced peer primaries on my_timeline.
 */
void peers_summary(const struct peers *p, int64_t now_ms, int64_t fresh_ms, uint64_t system_identifier, int my_timeline,
                   struct peer_summary *out);

/* peers_resolved tells whether peer i's address resolved when the list was read. */
bool peers_resolved(const struct peers *p, int i);

/* peers_state gives peer i (0 <= i < count) for /status; peers_count how many there are. */
int peers_count(const struct peers *p);
const struct peer_state *peers_state(const struct peers *p, int i);

/*
 * peers_parse_line reads a "peer-state" answer ("state role=primary timeline=3 sysid=N fenced=0") into st.
 * False for anything else.
 */
bool peers_parse_line(const char *line, struct peer_state *st);

#endif
