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
#include "sample.h"

#define PEERS_MAX CONF_ADDR_LIST_MAX

/*
 * PEERS_LINE_MAX: the longest answer line, its newline included. A reader of 0.1.0 keeps at most 255
 * bytes and takes a longer answer for none, so a node never writes more: the optional fields below go
 * in only while they fit (render_peer_line), and fencing's fields always do.
 */
#define PEERS_LINE_MAX 255

/* What a newer node adds to its answer (all optional: an older node's answer has none of them). */
enum peer_read {
	PEER_READ_UNKNOWN, /* not said (an older node), or nothing fresh */
	PEER_READ_UP,      /* its own role's answer is up with a weight above 0 (drained: down) */
	PEER_READ_LAG,     /* a replica down (or kept up by keep-best) only for being over the lag limit */
	PEER_READ_DOWN,    /* down for anything else */
};

struct peer_ext {
	char name[SAMPLE_NAME_MAX]; /* name= (application_name / cluster_name); "" not said */
	enum peer_read read;        /* read=up|lag|down */
	int weight_pct;             /* weight=; -1 not said */
	bool have_lsn;
	uint64_t lsn; /* lsn=: a replica's replay position, a primary's current WAL position */
	bool have_flush;
	uint64_t flush_lsn; /* flush=: a replica's received (flushed) position */
	bool have_lag;
	int64_t lag_bytes; /* lag= */
	bool have_lag_ms;
	int64_t lag_ms;    /* lag_ms= */
	int pg_port;       /* pg_port=: PostgreSQL's port on the peer's host; 0 not said */
	char reason[32];   /* reason=: its answer's reason, spaces as '-'; "" none */
	bool have_tl_from; /* tl_from=T:LSN: a primary seen promoted from timeline T (its own - 1) ... */
	uint32_t tl_from_timeline;
	uint64_t tl_from_lsn; /* ... after replaying that far on T: T's switch point is at or after it */
	int standbys_total;   /* sync_n=: a primary's streaming standbys; -1 not said */
	int standby_count;    /* sb=NAME:S (s sync, q quorum, p potential, a async), in the answer's order */
	struct sample_standby standby[SAMPLE_STANDBYS_MAX];
};

struct peer_state {
	char addr[CONF_ADDR_MAX]; /* host:port as configured */
	bool seen;                /* answered at least once */
	int64_t seen_ms;          /* monotonic time of the last answer */
	bool primary;             /* role=primary (and writable) */
	bool replica;
	uint32_t timeline;          /* PostgreSQL's TimeLineID; 0 unknown (never from a primary) */
	uint64_t system_identifier; /* 0: the peer does not know its cluster */
	bool fenced;                /* the peer refuses writes itself */
	bool answered;              /* the last exchange ended with a believed answer (not a failure) */
	struct peer_ext ext;        /* what else it said (every answer sets it anew) */
};

/*
 * Authenticated peers ([peers] key_file): the reader sends a fresh nonce with a MAC that proves it
 * holds the key, the peer answers its state with the same nonce and a MAC over the whole line and the
 * request's nonce. HMAC-SHA256 (OpenSSL) truncated to 128 bits, so that an answer fits the agent
 * port's line; each MAC has its own context label, so a request's MAC never passes for an answer's.
 *   request  "peer-state nonce=<32 hex> mac=<32 hex>\n"
 *            mac = HMAC(key, PEERS_REQUEST_LABEL "peer-state nonce=<hex>")
 *   answer   "state role=R timeline=T sysid=S fenced=F [optional fields] nonce=<the request's> mac=<32 hex>\n"
 *            mac = HMAC(key, PEERS_ANSWER_LABEL "<the request's nonce>\n" <the line before " mac=">)
 * A node with a key answers any other "peer-state" with "down #unauthenticated" (no state, no sysid).
 */
#define PEERS_REQUEST_LABEL "pgcheckd peer-state request v1\n"
#define PEERS_ANSWER_LABEL  "pgcheckd peer-state answer v1\n"
#define PEERS_NONCE_BYTES   16
#define PEERS_NONCE_HEX     (2 * PEERS_NONCE_BYTES)
#define PEERS_MAC_HEX       32 /* HMAC-SHA256 truncated to its first 128 bits (RFC 2104: at least half) */
#define PEERS_REQUEST_MAX   128

struct peers_conf {
	const char *addresses; /* "host:port, host:port" */
	int64_t interval_ms;
	int64_t timeout_ms;
	const unsigned char *key; /* [peers] key_file's key (copied); key_len 0: answers are believed as sent */
	size_t key_len;
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

/*
 * peers_read_now reads every peer at once (a peer whose exchange is running is read again right after
 * it). With alert, the request is "peer-alert" (PEERS_ALERT_WORD, as long as "peer-state", the rest of the
 * request the same, with its MAC): the peer answers it as a "peer-state" and also re-reads its own peers
 * at once, so that a superseded primary learns of a promotion in milliseconds, not at its next round.
 */
#define PEERS_ALERT_WORD "peer-alert"
void peers_read_now(struct peers *p, bool alert);

/* peers_resolvers_running counts name lookups still running on their threads (for tests). */
int peers_resolvers_running(void);

/*
 * peers_cluster condenses what the fresh peers of this cluster say for the read rules (sync, async,
 * quorum, keep-best; see struct peer_cluster): my_name is this node's name (the sample's), my_lsn what
 * it has replayed. Only peers that answered within fresh_ms and share system_identifier count.
 */
void peers_cluster(const struct peers *p, int64_t now_ms, int64_t fresh_ms, uint64_t system_identifier,
                   const char *my_name, uint64_t my_lsn, struct peer_cluster *out);

/* peers_sync_code is the letter of a sync state in "sb=NAME:S" ('s', 'q', 'p', 'a'; '?' otherwise). */
char peers_sync_code(enum sync_state state);

/* peers_state gives peer i (0 <= i < count) for /status; peers_count how many there are. */
int peers_count(const struct peers *p);
const struct peer_state *peers_state(const struct peers *p, int i);

/*
 * peers_parse_line reads a "peer-state" answer ("state role=primary timeline=3 sysid=N fenced=0", up to
 * a newline or the end of the string) into st's role, timeline, system_identifier and fenced. Every
 * field is required, once: role a lower-case word, timeline 0..UINT32_MAX (0, unknown, not from a
 * primary), sysid 0..UINT64_MAX, fenced 0 or 1; numbers are plain decimal digits. Fields it does not
 * know (a newer version's) are skipped if well-formed. False for anything else, and st is unchanged.
 * The optional fields (struct peer_ext: name, read, weight, lsn, flush, lag, lag_ms, pg_port, reason,
 * sync_n, sb, tl_from) go into st->ext, which every answer sets anew; one that does not read is left out, never
 * the answer.
 */
bool peers_parse_line(const char *line, struct peer_state *st);

/*
 * peers_record_answer takes peer i's answer received at now_ms to a request that carried nonce (NULL
 * without a key): true when it parsed, was authenticated (with a key) and now stands as the peer's
 * state. An answer without a system identifier from a peer that had one is no answer: its last word
 * stands and ages. An answer not believed (see enum peers_reject) is counted, changes nothing else,
 * and begins an episode (reported once by peers_rejection_news) that the next believed answer ends.
 */
bool peers_record_answer(struct peers *p, int i, const char *nonce, const char *line, int64_t now_ms);

enum peers_episode { PEERS_EPISODE_NONE, PEERS_EPISODE_BEGAN, PEERS_EPISODE_ENDED };

/*
 * peers_rejection_news tells, once, that peer i's answers began to be rejected (why: the first reason)
 * or are believed again; PEERS_EPISODE_NONE when nothing changed since the last call.
 */
enum peers_episode peers_rejection_news(struct peers *p, int i, enum peers_reject *why);

/* peers_new_nonce writes a fresh random nonce (PEERS_NONCE_HEX hex digits and a NUL); false when the RNG failed. */
bool peers_new_nonce(char nonce[PEERS_NONCE_HEX + 1]);

/* peers_sign_request writes the request line for nonce into out; its length, 0 when it does not fit or failed. */
size_t peers_sign_request(const unsigned char *key, size_t key_len, const char *nonce, char *out, size_t outlen);

/*
 * peers_check_request tells whether buf (len bytes: "peer-state nonce=N mac=M", then an optional "\r"
 * and "\n") is a request made with key; its nonce goes into nonce.
 */
bool peers_check_request(const unsigned char *key, size_t key_len, const char *buf, size_t len,
                         char nonce[PEERS_NONCE_HEX + 1]);

/*
 * peers_sign_answer turns the state line in buf (len bytes, ending in its newline) into the
 * authenticated answer to nonce, in place; returns its length, 0 when it does not fit into cap.
 */
size_t peers_sign_answer(const unsigned char *key, size_t key_len, const char *nonce, char *buf, size_t len,
                         size_t cap);

/*
 * peers_open_answer reads an answer to the request that carried nonce: with a key (key_len > 0) only
 * one that carries that nonce and a MAC made with the key; without, any state line (as
 * peers_parse_line). PEERS_REJECT_NONE and st set when it is believed; else st is unchanged.
 */
enum peers_reject peers_open_answer(const unsigned char *key, size_t key_len, const char *nonce, const char *line,
                                    struct peer_state *st);

#endif
