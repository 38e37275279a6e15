/*
 * verdict.h: the one decision. verdict_for() is a pure function of (node view, request, policy);
 * every protocol renders its result and none decides anything on its own.
 */
#ifndef PGCHECKD_VERDICT_H
#define PGCHECKD_VERDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "dcs_summary.h"
#include "peer_summary.h"
#include "poll_result.h"
#include "request.h"
#include "sample.h"

struct peers; /* checks/peers.h: never read by the core */

enum node_override { OVERRIDE_NONE, OVERRIDE_DRAIN, OVERRIDE_MAINT };

/* What the responders may know of the node: a read-only copy, taken at now_ms. */
struct node_view {
	bool have_sample;     /* a good sample was ever taken */
	struct sample sample; /* the last good one */
	int64_t sample_age_ms;
	bool failing; /* the last poll failed: its outcome is in failure */
	enum poll_result failure;
	bool lag_over;            /* over the configured lag limits (with hysteresis) */
	bool lag_over_bytes;      /* over the configured byte limit alone (its own hysteresis) */
	bool lag_over_s;          /* over the configured seconds limit alone (its own hysteresis) */
	bool was_streaming;       /* a replica not streaming now was seen streaming before ... */
	int64_t not_streaming_ms; /* ... this long ago: its data is at most about that old */
	int replica_weight_pct;   /* smoothed and stepped, from load and lag */
	int load_weight_pct;      /* the same from load alone (for the primary's read weight) */
	/* a primary this pgcheckd saw promoted from tl_floor_parent to its timeline (node_floor_update) */
	bool have_tl_floor;
	int tl_floor_parent;   /* the timeline it left: its own timeline - 1 */
	uint64_t tl_floor_lsn; /* it had replayed that far on the parent: the switch point is at or after */
	enum node_override override;
	bool shutting_down;
	/* fencing */
	struct peer_summary peers;     /* what the fresh peers of this cluster say */
	struct peer_cluster cluster;   /* ... about sync states and the other replicas (sync, keep-best) */
	const struct peers *peer_list; /* the live list, for /cluster only (read on the loop); NULL: none */
	int64_t now_ms;                /* the monotonic time the view was taken */
	bool released;                 /* an operator released this primary from split fencing */
	int64_t isolated_ms;           /* since a peer or a streaming replica was last seen */
	int64_t handover_ms;           /* since a superseded peer primary was first seen still up (fencing_apply) */
	int64_t stepped_down_ago_ms;   /* since it stepped down (fenced itself); -1: none did */
	int64_t stepped_down_after_ms; /* ... after this long a handover wait */
	struct dcs_summary dcs;        /* what the DCS client last learned ([dcs] mode) */
	/* counters, for /metrics */
	uint64_t polls[POLL_RESULT_COUNT];
	uint64_t role_changes;
};

struct policy {
	int64_t stale_after_ms;
	int64_t max_lag_bytes;
	double max_lag_s;
	enum over_lag_action over_lag;
	int64_t receiver_silence_max_ms;
	int primary_read_pct;
	int step_pct;
	int floor_pct;        /* [weight] floor_pct: keep-best's weight, and a read that prefers another location */
	const char *location; /* [agent] location's labels, in the conf it was taken from */
	int64_t isolation_fence_ms; /* 0: off */
	int64_t handover_ms;        /* [peers] handover_ms: a new primary waits this long for the old one; 0: off */
	int64_t handover_settle_ms; /* [peers] handover_settle_ms: and this long after it stepped down */
	int64_t peers_fresh_ms;     /* a peer's answer counts this long (/cluster) */
	bool fenced_reads;
	/* [peers] key_file's key, in the conf it was taken from: "peer-state" only to readers holding it */
	const unsigned char *peer_key;
	size_t peer_key_len;         /* 0: no key, "peer-state" answered to anyone, as sent */
	bool dcs_leader_required;    /* [dcs] mode = patroni: 'primary' only on the node the leader key names */
	int64_t dcs_fresh_ms;        /* what etcd said counts this long after its request was sent */
	bool dcs_lease_required;     /* [dcs] mode = lease: 'primary' only while this node holds the key's lease */
	int64_t dcs_lease_margin_ms; /* ... and this long before it can expire */
};

#define VERDICT_REASON_MAX 64

/*
 * Why an answer is what it is: data, compared as enums; its text (the "#reason" of the agent line, the
 * JSON "reason", log lines) is rendered from it in one place, verdict_render_reason. X(code, word).
 */
#define VERDICT_REASONS(X)                                                                                             \
	X(REASON_NONE, "")                                                                                             \
	X(REASON_MAINT, "maint")                                                                                       \
	X(REASON_POLL_FAILED, "poll-failed") /* rendered as the poll's outcome: pg-unreachable, timeout, ... */        \
	X(REASON_STARTING, "starting")                                                                                 \
	X(REASON_STALE, "stale")                                                                                       \
	X(REASON_IS_REPLICA, "is-replica")                                                                             \
	X(REASON_IS_PRIMARY, "is-primary")                                                                             \
	X(REASON_READ_ONLY, "read-only")                                                                               \
	X(REASON_FENCED_NEWER_PRIMARY, "fenced newer primary")                                                         \
	X(REASON_FENCED_SPLIT_BRAIN, "fenced split-brain")                                                             \
	X(REASON_FENCED_ISOLATED, "fenced isolated")                                                                   \
	X(REASON_PEERS_UNHEARD, "peers-unheard")                                                                       \
	X(REASON_HANDOVER, "handover") /* promoted: a peer primary on an older timeline still says it takes writes */  \
	X(REASON_FORK, "fork")                                                                                         \
	X(REASON_DISCONNECTED, "disconnected")                                                                         \
	X(REASON_LAG, "lag")                                                                                           \
	X(REASON_BEHIND_LSN, "behind")           /* rendered with the replayed LSN: "behind 0/3000000" */              \
	X(REASON_NOT_PREFERRED, "not-preferred") /* up at the floor: the request prefers another location */           \
	X(REASON_DRAIN, "drain")                                                                                       \
	X(REASON_SHUTDOWN, "shutdown")                                                                                 \
	X(REASON_BAD_REQUEST, "bad-request")                                                                           \
	X(REASON_UNAUTHENTICATED, "unauthenticated")                                                                   \
	X(REASON_DCS_UNHEARD, "dcs-unheard")         /* started: etcd not asked to the end yet */                      \
	X(REASON_DCS_UNREACHABLE, "dcs-unreachable") /* no believed answer within [dcs] fresh_ms */                    \
	X(REASON_DCS_NOT_LEADER, "dcs-not-leader")   /* the leader key names another node, or no one */                \
	X(REASON_DCS_NO_LEASE, "dcs-no-lease")       /* lease mode: the key is free, not (yet) taken by this node */   \
	X(REASON_DCS_AUTH, "dcs-auth-failed")  /* as dcs-unreachable, etcd refusing [dcs] username's authentication */ \
	X(REASON_SYNC_UNKNOWN, "sync-unknown") /* no fresh word from the one primary on this replica's sync state */   \
	X(REASON_SYNC_STATE, "sync-state")     /* rendered with what the primary counts it as: "sync-state async" */   \
	X(REASON_KEEP_BEST, "keep-best") /* up at the floor weight: rendered with the lag, "keep-best lag 35MB/12s" */

enum verdict_reason {
#define VERDICT_REASON_ENUM(e, s) e,
	VERDICT_REASONS(VERDICT_REASON_ENUM)
#undef VERDICT_REASON_ENUM
	    VERDICT_REASON_COUNT
};

struct verdict {
	bool up;
	int weight_pct;
	enum verdict_reason why;
	/* what the reason's text names: timelines (fenced newer primary, fork), lag, the poll's outcome */
	int timeline, other_timeline;
	int64_t lag_bytes;
	bool have_lag_s;
	double lag_s;
	uint64_t replay_lsn;  /* behind: what the replica has replayed */
	enum sync_state sync; /* sync-state: what the primary counts this replica as */
	enum poll_result failure;
	char reason[VERDICT_REASON_MAX]; /* the rendered text of why; "" when up without remark */
};

/* verdict_reason_name is the word of a reason code (its table entry). */
const char *verdict_reason_name(enum verdict_reason why);

/* verdict_sync_name is the word of a sync state ("sync", "quorum", "potential", "async", "none", "unknown"). */
const char *verdict_sync_name(enum sync_state state);

/* verdict_is_fenced: the answer is down because this primary is fenced (any fencing reason). */
bool verdict_is_fenced(const struct verdict *v);

/*
 * verdict_render_reason writes v's reason as text ("fenced newer primary on timeline 3", "lag 35MB/12s",
 * "pg-unreachable"); the one place a reason becomes words. verdict_for fills v->reason with it.
 */
void verdict_render_reason(const struct verdict *v, char *buf, size_t len);

/* verdict_set_down makes v a down answer for why (no parameters), rendered. */
void verdict_set_down(struct verdict *v, enum verdict_reason why);

/* verdict_policy takes the decision's settings out of the configuration. */
void verdict_policy(const struct conf *c, struct policy *p);

/* verdict_for answers request r about the node seen as v. Fails closed: unknown means down. */
void verdict_for(const struct node_view *v, const struct request *r, const struct policy *p, struct verdict *out);

/* verdict_format_lag writes "35MB/12s", or "35MB" when the seconds are unknown; negative bytes count as 0. */
void verdict_format_lag(int64_t lag_bytes, bool have_s, double lag_s, char *buf, size_t len);

#endif
