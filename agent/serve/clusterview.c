/*
 * clusterview.c: /cluster, `pgcheckd ctl cluster` and /cluster/replica (see clusterview.h). This
 * node's row is rendered from verdict_for(); a peer's row is its last believed answer, shown with its
 * age and whether it is still fresh. Never decides what a check answers.
 */
#include "clusterview.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "peers.h"
#include "render.h"

/* One node as shown: this one (self) or a peer. */
struct cv_row {
	bool self;
	const char *address; /* a peer's, as configured; "" for this node */
	char name[SAMPLE_NAME_MAX];
	const char *role;
	int timeline;
	bool have_lsn;
	uint64_t lsn; /* a replica's replay position, a primary's current one */
	bool have_lag;
	int64_t lag_bytes;
	bool have_lag_ms;
	int64_t lag_ms;
	int weight_pct; /* -1 unknown */
	enum peer_read read;
	char reason[VERDICT_REASON_MAX];
	enum sync_state sync; /* replicas: what the primary counts it as */
	bool fenced;
	bool fresh;
	int64_t age_ms;
	int pg_port;
};

/* The primary's list of standbys the sync column is read from: this node's when it is the primary. */
struct cv_sync_list {
	bool have;
	int total, count;
	const struct sample_standby *standby;
};

/* cv_string adds s as a JSON string (names and reasons are ASCII words; escaped anyway) */
static void
cv_string(struct render_buf *b, const char *s)
{
	render_add(b, "\"");
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			render_add(b, "\\%c", *s);
		else if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			render_add(b, "\\u%04x", (unsigned)(unsigned char)*s);
		else
			render_add(b, "%c", *s);
	}
	render_add(b, "\"");
}

static bool
cv_peer_fresh(const struct node_view *v, const struct policy *p, const struct peer_state *st)
{
	if (!st->seen || v->now_ms - st->seen_ms > p->peers_fresh_ms)
		return false;
	return v->sample.system_identifier == 0 || st->system_identifier == v->sample.system_identifier;
}

/* cv_sync_source finds the list of the one fresh, unfenced primary on the newest timeline (this node or a peer). */
static void
cv_sync_source(const struct node_view *v, const struct policy *p, struct cv_sync_list *l)
{
	const struct peer_state *primary = NULL;
	struct request r = {.kind = REQUEST_PRIMARY};
	struct verdict vd;
	int newest = 0, primaries = 0;

	memset(l, 0, sizeof(*l));
	verdict_for(v, &r, p, &vd);
	if (vd.up) {
		l->have = true;
		l->total = v->sample.streaming_replicas;
		l->count = v->sample.standby_count;
		l->standby = v->sample.standby;
		return;
	}
	for (int i = 0; i < peers_count(v->peer_list); i++) {
		const struct peer_state *st = peers_state(v->peer_list, i);
		int tl = st->timeline > INT32_MAX ? INT32_MAX : (int)st->timeline;

		if (!cv_peer_fresh(v, p, st) || !st->primary || st->fenced)
			continue;
		if (tl > newest) {
			newest = tl;
			primary = st;
			primaries = 1;
		} else if (tl == newest) {
			primaries++;
		}
	}
	if (primaries != 1 || primary->ext.standbys_total < 0)
		return;
	l->have = true;
	l->total = primary->ext.standbys_total;
	l->count = primary->ext.standby_count;
	l->standby = primary->ext.standby;
}

static enum sync_state
cv_sync_of(const struct cv_sync_list *l, const char *name)
{
	enum sync_state found = SYNC_UNKNOWN;
	int matches = 0;

	if (!l->have || name[0] == '\0')
		return SYNC_UNKNOWN;
	for (int k = 0; k < l->count; k++) {
		if (strcmp(l->standby[k].name, name) == 0) {
			found = l->standby[k].state;
			matches++;
		}
	}
	if (matches == 1)
		return found;
	return matches == 0 && l->count >= l->total ? SYNC_NONE : SYNC_UNKNOWN;
}

static void
cv_self_row(const struct node_view *v, const struct policy *p, struct cv_row *row)
{
	const struct sample *s = &v->sample;
	bool fresh = v->have_sample && !v->failing && v->sample_age_ms <= p->stale_after_ms;
	struct request r = {.kind = REQUEST_PRIMARY};
	struct verdict vd;

	memset(row, 0, sizeof(*row));
	row->self = true;
	row->address = "";
	snprintf(row->name, sizeof(row->name), "%s", s->name);
	row->role = !fresh                                 ? "unknown"
	            : s->in_recovery                       ? "replica"
	            : s->read_only || s->default_read_only ? "read-only"
	                                                   : "primary";
	verdict_for(v, &r, p, &vd);
	row->fenced = verdict_is_fenced(&vd);
	if (fresh && s->in_recovery) {
		r.kind = REQUEST_REPLICA;
		verdict_for(v, &r, p, &vd);
	}
	row->timeline = s->timeline;
	row->have_lsn = v->have_sample;
	row->lsn = s->in_recovery ? s->replay_lsn : s->current_lsn;
	row->have_lag = v->have_sample && s->in_recovery;
	row->lag_bytes = s->lag_bytes;
	row->have_lag_ms = row->have_lag && s->have_lag_s;
	row->lag_ms = (int64_t)(s->lag_s * 1000.0);
	row->weight_pct = vd.up ? vd.weight_pct : 0;
	row->read = !fresh                                                                             ? PEER_READ_DOWN
	            : vd.up && vd.weight_pct > 0 && vd.why != REASON_KEEP_BEST && vd.why != REASON_LAG ? PEER_READ_UP
	            : vd.why == REASON_LAG || vd.why == REASON_KEEP_BEST                               ? PEER_READ_LAG
	                                                                                               : PEER_READ_DOWN;
	snprintf(row->reason, sizeof(row->reason), "%s", vd.reason);
	row->sync = s->in_recovery ? v->cluster.my_sync : SYNC_UNKNOWN;
	row->fresh = fresh;
	row->age_ms = v->have_sample ? v->sample_age_ms : -1;
	row->pg_port = s->pg_port;
}

static void
cv_peer_row(const struct node_view *v, const struct policy *p, const struct peer_state *st,
            const struct cv_sync_list *l, struct cv_row *row)
{
	memset(row, 0, sizeof(*row));
	row->address = st->addr;
	snprintf(row->name, sizeof(row->name), "%s", st->ext.name);
	row->role = !st->seen ? "unknown" : st->primary ? "primary" : st->replica ? "replica" : "other";
	row->timeline = (int)(st->timeline > INT32_MAX ? INT32_MAX : st->timeline);
	row->have_lsn = st->ext.have_lsn;
	row->lsn = st->ext.lsn;
	row->have_lag = st->ext.have_lag;
	row->lag_bytes = st->ext.lag_bytes;
	row->have_lag_ms = st->ext.have_lag_ms;
	row->lag_ms = st->ext.lag_ms;
	row->weight_pct = st->ext.weight_pct;
	row->read = st->ext.read;
	snprintf(row->reason, sizeof(row->reason), "%s", st->ext.reason);
	row->sync = st->replica ? cv_sync_of(l, st->ext.name) : SYNC_UNKNOWN;
	row->fenced = st->fenced;
	row->fresh = cv_peer_fresh(v, p, st);
	row->age_ms = st->seen ? v->now_ms - st->seen_ms : -1;
	row->pg_port = st->ext.pg_port;
}

static const char *
cv_read_name(enum peer_read read)
{
	return read == PEER_READ_UP     ? "up"
	       : read == PEER_READ_LAG  ? "lag"
	       : read == PEER_READ_DOWN ? "down"
	                                : "unknown";
}

static void
cv_lsn(struct render_buf *b, bool have, uint64_t lsn)
{
	if (have)
		render_add(b, "\"%X/%X\"", (unsigned)(lsn >> 32), (unsigned)lsn);
	else
		render_add(b, "null");
}

static void
cv_row_json(struct render_buf *b, const struct cv_row *row)
{
	render_add(b, "{\"name\":");
	if (row->name[0] != '\0')
		cv_string(b, row->name);
	else
		render_add(b, "null");
	render_add(b, ",\"self\":%s,\"address\":", row->self ? "true" : "false");
	if (row->self)
		render_add(b, "null");
	else
		cv_string(b, row->address);
	render_add(b, ",\"role\":\"%s\",\"timeline\":%d,\"lsn\":", row->role, row->timeline);
	cv_lsn(b, row->have_lsn, row->lsn);
	render_add(b, ",\"lag_bytes\":");
	if (row->have_lag)
		render_add(b, "%" PRId64, row->lag_bytes);
	else
		render_add(b, "null");
	render_add(b, ",\"lag_seconds\":");
	if (row->have_lag_ms)
		render_add(b, "%.3f", (double)row->lag_ms / 1000.0);
	else
		render_add(b, "null");
	render_add(b, ",\"weight\":");
	if (row->weight_pct >= 0)
		render_add(b, "%d", row->weight_pct);
	else
		render_add(b, "null");
	render_add(b, ",\"read\":\"%s\",\"reason\":", cv_read_name(row->read));
	cv_string(b, row->reason);
	render_add(b, ",\"sync_state\":\"%s\",\"fenced\":%s,\"fresh\":%s,\"age_ms\":", verdict_sync_name(row->sync),
	           row->fenced ? "true" : "false", row->fresh ? "true" : "false");
	if (row->age_ms >= 0)
		render_add(b, "%" PRId64, row->age_ms);
	else
		render_add(b, "null");
	render_add(b, ",\"pg_port\":");
	if (row->pg_port > 0)
		render_add(b, "%d", row->pg_port);
	else
		render_add(b, "null");
	render_add(b, "}");
}

/* cv_rows fills rows (this node first, then each peer); returns how many. */
static int
cv_rows(const struct node_view *v, const struct policy *p, struct cv_row rows[1 + PEERS_MAX])
{
	struct cv_sync_list l;
	int n = 1;

	cv_sync_source(v, p, &l);
	cv_self_row(v, p, &rows[0]);
	for (int i = 0; i < peers_count(v->peer_list) && n < 1 + PEERS_MAX; i++)
		cv_peer_row(v, p, peers_state(v->peer_list, i), &l, &rows[n++]);
	return n;
}

size_t
clusterview_json(const struct node_view *v, const struct policy *p, char *buf, size_t len)
{
	struct cv_row rows[1 + PEERS_MAX];
	struct render_buf b = {buf, 0, len, len == 0};
	int n = cv_rows(v, p, rows);

	render_add(&b, "{\"nodes\":[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			render_add(&b, ",");
		cv_row_json(&b, &rows[i]);
	}
	render_add(&b, "]}\n");
	return b.overflow ? 0 : b.len;
}

size_t
clusterview_table(const struct node_view *v, const struct policy *p, char *buf, size_t len)
{
	struct cv_row rows[1 + PEERS_MAX];
	struct render_buf b = {buf, 0, len, len == 0};
	int n = cv_rows(v, p, rows);

	render_add(&b, "%-16s %-21s %-9s %3s %-12s %12s %8s %6s %-9s %-6s %8s  %s\n", "NODE", "ADDRESS", "ROLE", "TL",
	           "LSN", "LAG_BYTES", "LAG_S", "WEIGHT", "SYNC", "FENCED", "AGE_MS", "REASON");
	for (int i = 0; i < n; i++) {
		const struct cv_row *row = &rows[i];
		char lsn[24] = "-", lag[24] = "-", lag_s[24] = "-", weight[16] = "-", age[24] = "-";

		if (row->have_lsn)
			snprintf(lsn, sizeof(lsn), "%X/%X", (unsigned)(row->lsn >> 32), (unsigned)row->lsn);
		if (row->have_lag)
			snprintf(lag, sizeof(lag), "%" PRId64, row->lag_bytes);
		if (row->have_lag_ms)
			snprintf(lag_s, sizeof(lag_s), "%.1f", (double)row->lag_ms / 1000.0);
		if (row->weight_pct >= 0)
			snprintf(weight, sizeof(weight), "%d%%", row->weight_pct);
		if (row->age_ms >= 0)
			snprintf(age, sizeof(age), "%" PRId64 "%s", row->age_ms, row->fresh ? "" : "!");
		render_add(&b, "%-16s %-21s %-9s %3d %-12s %12s %8s %6s %-9s %-6s %8s  %s\n",
		           row->name[0] != '\0' ? row->name : "-", row->self ? "(this node)" : row->address, row->role,
		           row->timeline, lsn, lag, lag_s, weight,
		           strcmp(row->role, "replica") == 0 ? verdict_sync_name(row->sync) : "-",
		           row->fenced ? "yes" : "no", age, row->reason[0] != '\0' ? row->reason : "-");
	}
	return b.overflow ? 0 : b.len;
}

/* cv_better tells whether candidate a serves a read before b (higher weight, more replayed, lower name). */
static bool
cv_better(const struct cv_row *a, const struct cv_row *b)
{
	if (a->weight_pct != b->weight_pct)
		return a->weight_pct > b->weight_pct;
	if (a->lsn != b->lsn)
		return a->lsn > b->lsn;
	return strcmp(a->name, b->name) < 0;
}

bool
clusterview_replica(const struct node_view *v, const struct policy *p, const struct request *r, char *buf, size_t len,
                    size_t *n)
{
	struct cv_row rows[1 + PEERS_MAX];
	struct render_buf b = {buf, 0, len, len == 0};
	const struct cv_row *best = NULL, *primary = NULL;
	int count = cv_rows(v, p, rows);
	struct request mine = *r;
	struct verdict vd;
	char host[CONF_ADDR_MAX] = "";
	int agent_port = 0;

	for (int i = 0; i < count; i++) {
		const struct cv_row *row = &rows[i];
		bool serves;

		if (row->self) {
			/* this node: its own verdict for the read as asked */
			mine.kind = REQUEST_REPLICA;
			verdict_for(v, &mine, p, &vd);
			serves = strcmp(row->role, "replica") == 0 && vd.up && vd.weight_pct > 0;
			if (strcmp(row->role, "primary") == 0) {
				mine.kind = REQUEST_PRIMARY;
				verdict_for(v, &mine, p, &vd);
				if (vd.up)
					primary = row;
			}
		} else {
			/* up for reads, or kept up by keep-best (lag, with a weight): as its own answer says */
			serves = row->fresh && strcmp(row->role, "replica") == 0 &&
			         (row->read == PEER_READ_UP || row->read == PEER_READ_LAG) && row->weight_pct > 0 &&
			         row->have_lsn && (!r->has_min_lsn || row->lsn >= r->min_lsn);
			if (row->fresh && strcmp(row->role, "primary") == 0 && !row->fenced &&
			    row->read == PEER_READ_UP && primary == NULL)
				primary = row;
		}
		if (serves && (best == NULL || cv_better(row, best)))
			best = row;
	}
	if (best == NULL)
		best = primary; /* the primary has every position it wrote */
	if (best == NULL) {
		render_add(&b, "{\"node\":null}\n");
		*n = b.overflow ? 0 : b.len;
		return false;
	}
	if (!best->self)
		(void)conf_parse_listen(best->address, host, sizeof(host), &agent_port); /* checked by conf */
	render_add(&b, "{\"node\":");
	if (best->name[0] != '\0')
		cv_string(&b, best->name);
	else
		render_add(&b, "null");
	render_add(&b, ",\"self\":%s,\"role\":\"%s\",\"host\":", best->self ? "true" : "false", best->role);
	if (host[0] != '\0' && strcmp(host, "*") != 0)
		cv_string(&b, host);
	else
		render_add(&b, "null"); /* this node: the address the client asked it on */
	render_add(&b, ",\"port\":");
	if (best->pg_port > 0)
		render_add(&b, "%d", best->pg_port);
	else
		render_add(&b, "null");
	render_add(&b, ",\"lsn\":");
	cv_lsn(&b, best->have_lsn, best->lsn);
	render_add(&b, ",\"weight\":%d}\n", best->weight_pct);
	*n = b.overflow ? 0 : b.len;
	return true;
}
