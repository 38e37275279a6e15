/*
 * peers.h: what the other nodes' pgcheckd say about themselves, read on a timer of its own (never on
 * the path of a check) over their agent port with the "peer-state" request. Each peer has a bounded
 * exchange; an unreachable peer just ages. The summary feeds the fencing rules in verdict_for().
 * A reload keeps what the peers said: fencing never lifts because the list was read again.
 */
#ifndef PGCHECKD_PEERS_H
#define PGCHECKD_PEERS_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "peer_summary.h"

#define PEERS_MAX CONF_ADDR_LIST_MAX

struct peer_state {
	char addr[CONF_ADDR_MAX]; /* host:port as configured */
	bool seen;                /* answered at least once */
	int64_t seen_ms;          /* monotonic time of the last answer */
	bool primary;             /* role=primary (and writable) */
	bool replica;
	uint32_t timeline;          /* PostgreSQL's TimeLineID; 0 unknown (never from a primary) */
	uint64_t system_identifier; /* 0: the peer does not know its cluster */
	bool fenced;                /* the peer refuses writes itself */
};

struct peers_conf {
	const char *addresses; /* "host:port, host:port" */
	int64_t interval_ms;
	int64_t timeout_ms;
};

struct peers;

/*
 * peers_new parses the address list (checked by conf already) and starts polling; NULL when none.
 * Numeric addresses are ready at once; names resolve on a thread of their own (never on the loop), and
 * until one does, its peer counts as unreachable. changed(arg) runs on the loop when a peer's role,
 * timeline, cluster or fencing changed, and when names have resolved (or failed to).
 */
struct peers *peers_new(struct ev_loop *loop, const struct peers_conf *pc, void (*changed)(void *arg), void *arg);

/*
 * peers_reconfigure takes a new list and settings (a reload): a peer whose address stays keeps its
 * state and its running exchange; a new one starts unknown, and an unknown peer fences no one and
 * lifts no fence. What a removed peer said last still counts towards fencing (only) until it ages past
 * fresh_ms, as it would have had the peer stayed and gone silent. Names resolve again, off the loop.
 * False (nothing changed) when the list does not parse.
 */
bool peers_reconfigure(struct peers *p, const struct peers_conf *pc);
void peers_free(struct peers *p);

/*
 * peers_summary condenses the peers' states at now_ms: only peers that answered within fresh_ms and
 * share system_identifier count; once ours is known (non-zero), a peer that does not know its own counts
 * as not heard from. primaries_on_timeline counts fresh peer primaries on my_timeline. A peer timeline
 * past INT_MAX counts as INT_MAX: newer than any this node can have.
 */
void peers_summary(const struct peers *p, int64_t now_ms, int64_t fresh_ms, uint64_t system_identifier, int my_timeline,
                   struct peer_summary *out);

enum peers_addr_state {
	PEERS_ADDR_RESOLVING, /* the name is being looked up: the peer cannot be reached yet */
	PEERS_ADDR_RESOLVED,
	PEERS_ADDR_FAILED, /* the name did not resolve: ignored until a reload */
};

/* peers_address_state tells where peer i's address stands. */
enum peers_addr_state peers_address_state(const struct peers *p, int i);

/* peers_resolvers_running counts name lookups still running on their threads (for tests). */
int peers_resolvers_running(void);

/* peers_state gives peer i (0 <= i < count) for /status; peers_count how many there are. */
int peers_count(const struct peers *p);
const struct peer_state *peers_state(const struct peers *p, int i);

/*
 * peers_parse_line reads a "peer-state" answer ("state role=primary timeline=3 sysid=N fenced=0", up to
 * a newline or the end of the string) into st's role, timeline, system_identifier and fenced. Every
 * field is required, once: role a lower-case word, timeline 0..UINT32_MAX (0, unknown, not from a
 * primary), sysid 0..UINT64_MAX, fenced 0 or 1; numbers are plain decimal digits. Fields it does not
 * know (a newer version's) are skipped if well-formed. False for anything else, and st is unchanged.
 */
bool peers_parse_line(const char *line, struct peer_state *st);

/*
 * peers_record_answer takes peer i's answer received at now_ms: true when it parsed and now stands as
 * the peer's state. An answer without a system identifier from a peer that had one is no answer: its
 * last word stands and ages.
 */
bool peers_record_answer(struct peers *p, int i, const char *line, int64_t now_ms);

#endif
