/*
 * render.c: JSON and Prometheus renderings of the node view. Every up/down shown here comes from
 * verdict_for(), so /status, /metrics and the checks always agree.
 */
#include "render.h"

#include "peers.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifndef PGCHECKD_VERSION
#define PGCHECKD_VERSION "0.1.0"
#endif

const char *const render_protocol_names[] = {"agent", "http", "role-port", "admin"};

void
render_add(struct render_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->overflow = true;
		return;
	}
	b->len += (size_t)n;
}

static const char *
render_role(const struct node_view *v)
{
	if (!v->have_sample)
		return "unknown";
	return v->sample.in_recovery ? "replica" : "primary";
}

static const char *
render_override(const struct node_view *v)
{
	if (v->shutting_down)
		return "shutdown";
	return v->override == OVERRIDE_DRAIN ? "drain" : v->override == OVERRIDE_MAINT ? "maint" : "none";
}

static void
render_lsn(struct render_buf *b, const char *name, uint64_t lsn, bool known)
{
	if (known)
		render_add(b, "\"%s\":\"%X/%X\"", name, (unsigned)(lsn >> 32), (unsigned)lsn);
	else
		render_add(b, "\"%s\":null", name);
}

/* reasons are short ASCII words from verdict.c; escape anyway so the JSON stays valid */
static void
render_json_string(struct render_buf *b, const char *s)
{
	render_add(b, "\"");
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			render_add(b, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			render_add(b, "\\u%04x", (unsigned)*s);
		else
			render_add(b, "%c", *s);
	}
	render_add(b, "\"");
}

static void
render_verdict_json(struct render_buf *b, const struct verdict *vd)
{
	render_add(b, "{\"up\":%s,\"weight\":%d,\"reason\":", vd->up ? "true" : "false", vd->up ? vd->weight_pct : 0);
	render_json_string(b, vd->reason);
	render_add(b, "}");
}

/* render_dcs_json: what the etcd client last learned ("dcs":{...},), when [dcs] mode is set */
static void
render_dcs_json(struct render_buf *b, const struct dcs_summary *d)
{
	if (!d->configured)
		return;
	render_add(b, "\"dcs\":{\"endpoint\":");
	render_json_string(b, d->endpoint);
	render_add(b, ",\"heard\":%s,\"age_ms\":", d->heard ? "true" : "false");
	if (d->heard)
		render_add(b, "%" PRId64, d->age_ms);
	else
		render_add(b, "null");
	render_add(b, ",\"leader\":");
	if (d->have_leader)
		render_json_string(b, d->leader);
	else
		render_add(b, "null");
	if (d->lease_mode)
		render_add(b, ",\"lease_held\":%s,\"lease_left_ms\":%" PRId64, d->holding ? "true" : "false",
		           d->lease_left_ms);
	if (d->auth)
		render_add(b, ",\"authenticated\":%s,\"authentications\":%" PRIu64 ",\"auth_failures\":%" PRIu64,
		           d->authenticated ? "true" : "false", d->authentications, d->auth_failures);
	render_add(b, ",\"leader_is_me\":%s,\"last_error\":\"%s\",\"answers\":%" PRIu64 ",\"errors\":%" PRIu64 "},",
	           d->leader_is_me ? "true" : "false", dcs_error_names[d->last_error], d->answers, d->errors);
}

size_t
render_json(const struct node_view *v, const struct policy *p, const struct request *r, const struct render_counters *c,
            char *buf, size_t len)
{
	struct render_buf b = {buf, 0, len, len == 0};
	const struct sample *s = &v->sample;
	bool replica = v->have_sample && s->in_recovery;
	struct verdict vd;
	struct request all;

	render_add(&b, "{\"role\":\"%s\",\"state\":\"%s\",", render_role(v),
	           v->failing || !v->have_sample ? "unknown" : "running");
	if (v->have_sample) {
		render_add(&b, "\"timeline\":%d,\"server_version\":%d,\"read_only\":%s,", s->timeline,
		           s->server_version_num, s->read_only || s->default_read_only ? "true" : "false");
		render_lsn(&b, "current_lsn", s->current_lsn, !replica);
		render_add(&b, ",");
		render_lsn(&b, "receive_lsn", s->receive_lsn, replica && s->receive_lsn != 0);
		render_add(&b, ",");
		render_lsn(&b, "replay_lsn", s->replay_lsn, replica);
		render_add(&b, ",");
		render_lsn(&b, "latest_end_lsn", s->latest_end_lsn, replica && s->latest_end_lsn != 0);
		if (replica) {
			render_add(&b, ",\"lag_bytes\":%" PRId64 ",\"lag_seconds\":", s->lag_bytes);
			if (s->have_lag_s)
				render_add(&b, "%.3f", s->lag_s);
			else
				render_add(&b, "null");
			render_add(&b, ",\"lag_over_limit\":%s,\"streaming\":%s,\"replay_paused\":%s",
			           v->lag_over ? "true" : "false", s->receiver_streaming ? "true" : "false",
			           s->replay_paused ? "true" : "false");
		} else {
			render_add(&b, ",\"streaming_replicas\":%d", s->streaming_replicas);
			if (v->have_tl_floor)
				render_add(&b, ",\"tl_from\":\"%d:%X/%X\"", v->tl_floor_parent,
				           (unsigned)(v->tl_floor_lsn >> 32), (unsigned)v->tl_floor_lsn);
		}
		render_add(&b, ",\"client_backends\":%d,\"active_backends\":%d,\"max_connections\":%d,",
		           s->client_backends, s->active_backends, s->max_connections);
		render_add(&b, "\"sample_age_ms\":%" PRId64 ",\"poll_duration_ms\":%" PRId64 ",", v->sample_age_ms,
		           s->poll_duration_ms);
	}
	render_add(&b, "\"override\":\"%s\",", render_override(v));
	if (v->failing)
		render_add(&b, "\"poll_failure\":\"%s\",", poll_result_name(v->failure));
	if (r != NULL) {
		verdict_for(v, r, p, &vd);
		render_add(&b, "\"request\":\"%s\",\"up\":%s,\"weight\":%d,\"reason\":", request_kind_name(r->kind),
		           vd.up ? "true" : "false", vd.up ? vd.weight_pct : 0);
		render_json_string(&b, vd.reason);
		render_add(&b, ",");
	} else {
		render_add(&b, "\"verdicts\":{");
		for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
			all = (struct request){.kind = (enum request_kind)k};
			verdict_for(v, &all, p, &vd);
			render_add(&b, "%s\"%s\":", k > 0 ? "," : "", request_kind_name(all.kind));
			render_verdict_json(&b, &vd);
		}
		render_add(&b, "},\"checks\":{");
		for (int k = 0; k < PROTOCOL_COUNT; k++)
			render_add(&b, "%s\"%s\":%" PRIu64, k > 0 ? "," : "", render_protocol_names[k], c->checks[k]);
		render_add(&b,
		           "},\"refused\":%" PRIu64 ",\"denied\":%" PRIu64 ",\"evicted\":%" PRIu64
		           ",\"tls_failed\":%" PRIu64 ",\"role_changes\":%" PRIu64 ",",
		           c->refused, c->denied, c->evicted, c->tls_failed, v->role_changes);
		render_add(
		    &b,
		    "\"peers\":{\"configured\":%d,\"fresh\":%d,\"other_cluster\":%d,\"newest_primary_timeline\":%d,"
		    "\"primaries_on_my_timeline\":%d,\"released\":%s,\"note\":",
		    v->peers.configured, v->peers.fresh, v->peers.foreign, v->peers.newest_primary_timeline,
		    v->peers.primaries_on_timeline, v->released ? "true" : "false");
		if (v->peers.configured == 0)
			render_json_string(&b, "no peers configured: fencing off");
		else if (v->peers.fresh == 0)
			render_json_string(&b, "no peer reachable: fencing inactive");
		else
			render_json_string(&b, "fencing active");
		if (v->peers.have_floor)
			render_add(&b, ",\"newest_primary_tl_from\":\"%d:%X/%X\"", v->peers.floor_timeline,
			           (unsigned)(v->peers.floor_lsn >> 32), (unsigned)v->peers.floor_lsn);
		render_add(&b, "},");
		render_dcs_json(&b, &v->dcs);
	}
	render_add(&b, "\"version\":\"%s\"}\n", PGCHECKD_VERSION);
	return b.overflow ? 0 : b.len;
}

/* render_peer_field appends " text" to the line in buf (n bytes so far) when it stays within budget bytes. */
static void render_peer_field(char *buf, size_t *n, size_t budget, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
render_peer_field(char *buf, size_t *n, size_t budget, const char *fmt, ...)
{
	char field[PEERS_LINE_MAX];
	va_list ap;
	int m;

	va_start(ap, fmt);
	m = vsnprintf(field, sizeof(field), fmt, ap);
	va_end(ap);
	if (m <= 0 || (size_t)m >= sizeof(field) || *n + 1 + (size_t)m > budget)
		return; /* does not fit: left out, never cut */
	buf[(*n)++] = ' ';
	memcpy(buf + *n, field, (size_t)m + 1);
	*n += (size_t)m;
}

size_t
render_peer_line(const struct node_view *v, const struct policy *p, char *buf, size_t len)
{
	const struct sample *s = &v->sample;
	const char *role = "unknown";
	struct request r = {.kind = REQUEST_PRIMARY};
	struct verdict vd;
	char reason[VERDICT_REASON_MAX];
	/* the line, its newline included, within PEERS_LINE_MAX once the nonce and MAC are added */
	size_t budget = PEERS_LINE_MAX - 1 - (p->peer_key_len > 0 ? 7 + PEERS_NONCE_HEX + 5 + PEERS_MAC_HEX : 0);
	size_t n;
	int m;
	bool fresh = v->have_sample && !v->failing && v->sample_age_ms <= p->stale_after_ms;

	if (fresh)
		role = s->in_recovery ? "replica" : s->read_only || s->default_read_only ? "read-only" : "primary";
	verdict_for(v, &r, p, &vd);
	if (budget > len - 1)
		budget = len - 1;
	m = snprintf(buf, len, "state role=%s timeline=%d sysid=%" PRIu64 " fenced=%d", role, s->timeline,
	             s->system_identifier, verdict_is_fenced(&vd) ? 1 : 0);
	if (m <= 0 || (size_t)m >= budget)
		return 0;
	n = (size_t)m;
	/* first, so that it always fits: a replica left behind on the parent timeline needs it to stay up */
	if (fresh && !s->in_recovery && v->have_tl_floor)
		render_peer_field(buf, &n, budget, "tl_from=%d:%X/%X", v->tl_floor_parent,
		                  (unsigned)(v->tl_floor_lsn >> 32), (unsigned)v->tl_floor_lsn);
	/* what else it knows, for the read rules and /cluster: each field only while it fits */
	if (s->name[0] != '\0')
		render_peer_field(buf, &n, budget, "name=%s", s->name);
	if (fresh && !s->in_recovery) {
		render_peer_field(buf, &n, budget, "sync_n=%d", s->streaming_replicas);
		for (int k = 0; k < s->standby_count; k++)
			render_peer_field(buf, &n, budget, "sb=%s:%c", s->standby[k].name,
			                  peers_sync_code(s->standby[k].state));
	}
	if (fresh && s->in_recovery) {
		r.kind = REQUEST_REPLICA;
		verdict_for(v, &r, p, &vd);
	}
	render_peer_field(buf, &n, budget, "read=%s",
	                  !fresh                                                                             ? "down"
	                  : vd.up && vd.weight_pct > 0 && vd.why != REASON_KEEP_BEST && vd.why != REASON_LAG ? "up"
	                  : vd.why == REASON_LAG || vd.why == REASON_KEEP_BEST                               ? "lag"
	                                                                                                     : "down");
	if (v->have_sample) {
		uint64_t lsn = s->in_recovery ? s->replay_lsn : s->current_lsn;

		render_peer_field(buf, &n, budget, "lsn=%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
	}
	render_peer_field(buf, &n, budget, "weight=%d", vd.up ? vd.weight_pct : 0);
	if (v->have_sample && s->in_recovery) {
		render_peer_field(buf, &n, budget, "lag=%" PRId64, s->lag_bytes);
		if (s->have_lag_s)
			render_peer_field(buf, &n, budget, "lag_ms=%" PRId64, (int64_t)(s->lag_s * 1000.0));
	}
	if (s->pg_port > 0)
		render_peer_field(buf, &n, budget, "pg_port=%d", s->pg_port);
	if (vd.why != REASON_NONE) {
		/* the reason's word (its numbers are in the fields above), spaces as '-' */
		snprintf(reason, sizeof(reason), "%.31s",
		         vd.why == REASON_POLL_FAILED ? poll_result_name(vd.failure) : verdict_reason_name(vd.why));
		for (char *c = reason; *c != '\0'; c++)
			if (*c == ' ')
				*c = '-';
		render_peer_field(buf, &n, budget, "reason=%s", reason);
	}
	if (v->have_sample && s->in_recovery && s->receive_lsn != 0)
		render_peer_field(buf, &n, budget, "flush=%X/%X", (unsigned)(s->receive_lsn >> 32),
		                  (unsigned)s->receive_lsn);
	buf[n++] = '\n';
	buf[n] = '\0';
	return n;
}

static void
render_metric_head(struct render_buf *b, const char *name, const char *type, const char *help)
{
	render_add(b, "# HELP pgcheckd_%s %s\n# TYPE pgcheckd_%s %s\n", name, help, name, type);
}

size_t
render_metrics(const struct node_view *v, const struct policy *p, const struct render_counters *c, char *buf,
               size_t len)
{
	struct render_buf b = {buf, 0, len, len == 0};
	const struct sample *s = &v->sample;
	bool fresh = v->have_sample && !v->failing;
	struct verdict vd;
	struct request r;

	render_metric_head(&b, "up", "gauge", "1 when the request would be answered up.");
	for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
		r = (struct request){.kind = (enum request_kind)k};
		verdict_for(v, &r, p, &vd);
		render_add(&b, "pgcheckd_up{request=\"%s\"} %d\n", request_kind_name(r.kind), vd.up ? 1 : 0);
	}
	render_metric_head(&b, "weight_percent", "gauge", "Weight answered for the request (0 when down).");
	for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
		r = (struct request){.kind = (enum request_kind)k};
		verdict_for(v, &r, p, &vd);
		render_add(&b, "pgcheckd_weight_percent{request=\"%s\"} %d\n", request_kind_name(r.kind),
		           vd.up ? vd.weight_pct : 0);
	}
	render_metric_head(&b, "role", "gauge", "1 for the role of the last good sample.");
	render_add(&b, "pgcheckd_role{role=\"primary\"} %d\npgcheckd_role{role=\"replica\"} %d\n",
	           v->have_sample && !s->in_recovery ? 1 : 0, v->have_sample && s->in_recovery ? 1 : 0);
	render_metric_head(&b, "sample_fresh", "gauge", "1 while the last poll succeeded.");
	render_add(&b, "pgcheckd_sample_fresh %d\n", fresh ? 1 : 0);
	if (v->have_sample) {
		render_metric_head(&b, "sample_age_seconds", "gauge", "Age of the last good sample.");
		render_add(&b, "pgcheckd_sample_age_seconds %.3f\n", (double)v->sample_age_ms / 1000.0);
		render_metric_head(&b, "poll_duration_seconds", "gauge", "Time the last good sample took.");
		render_add(&b, "pgcheckd_poll_duration_seconds %.3f\n", (double)s->poll_duration_ms / 1000.0);
		render_metric_head(&b, "timeline", "gauge", "PostgreSQL timeline.");
		render_add(&b, "pgcheckd_timeline %d\n", s->timeline);
		render_metric_head(&b, "lag_bytes", "gauge", "Replay lag in bytes (0 on a primary).");
		render_add(&b, "pgcheckd_lag_bytes %" PRId64 "\n", s->in_recovery ? s->lag_bytes : 0);
		render_metric_head(&b, "lag_seconds", "gauge", "Replay lag in seconds (0 on a primary).");
		render_add(&b, "pgcheckd_lag_seconds %.3f\n", s->in_recovery && s->have_lag_s ? s->lag_s : 0.0);
		render_metric_head(&b, "client_backends", "gauge", "Client backends connected to PostgreSQL.");
		render_add(&b, "pgcheckd_client_backends %d\n", s->client_backends);
		render_metric_head(&b, "streaming_replicas", "gauge", "Streaming replicas (on a primary).");
		render_add(&b, "pgcheckd_streaming_replicas %d\n", s->streaming_replicas);
	}
	render_metric_head(&b, "polls_total", "counter", "Polls of PostgreSQL by outcome.");
	for (int k = 0; k < POLL_RESULT_COUNT; k++)
		render_add(&b, "pgcheckd_polls_total{result=\"%s\"} %" PRIu64 "\n",
		           poll_result_name((enum poll_result)k), v->polls[k]);
	render_metric_head(&b, "checks_total", "counter", "Checks answered by protocol.");
	for (int k = 0; k < PROTOCOL_COUNT; k++)
		render_add(&b, "pgcheckd_checks_total{protocol=\"%s\"} %" PRIu64 "\n", render_protocol_names[k],
		           c->checks[k]);
	render_metric_head(&b, "clients_refused_total", "counter",
	                   "Connections closed because max_clients was reached and no slot could be taken.");
	render_add(&b, "pgcheckd_clients_refused_total %" PRIu64 "\n", c->refused);
	render_metric_head(&b, "clients_denied_total", "counter",
	                   "Connections closed at accept: the address is not in [agent] allow.");
	render_add(&b, "pgcheckd_clients_denied_total %" PRIu64 "\n", c->denied);
	render_metric_head(&b, "clients_evicted_total", "counter",
	                   "Unfinished connections closed to make room for a new one (a cap was reached).");
	render_add(&b, "pgcheckd_clients_evicted_total %" PRIu64 "\n", c->evicted);
	render_metric_head(
	    &b, "tls_handshakes_failed_total", "counter",
	    "TLS handshakes that failed or did not finish within client_timeout_ms (logged once a minute "
	    "per cause).");
	render_add(&b, "pgcheckd_tls_handshakes_failed_total %" PRIu64 "\n", c->tls_failed);
	render_metric_head(&b, "role_changes_total", "counter", "Role changes seen since start.");
	render_add(&b, "pgcheckd_role_changes_total %" PRIu64 "\n", v->role_changes);
	render_metric_head(&b, "override", "gauge", "1 for the operator override in force.");
	render_add(&b, "pgcheckd_override{override=\"drain\"} %d\npgcheckd_override{override=\"maint\"} %d\n",
	           v->override == OVERRIDE_DRAIN ? 1 : 0, v->override == OVERRIDE_MAINT ? 1 : 0);
	r = (struct request){.kind = REQUEST_PRIMARY};
	verdict_for(v, &r, p, &vd);
	render_metric_head(&b, "fenced", "gauge", "1 while this primary refuses writes because of its peers.");
	render_add(&b, "pgcheckd_fenced %d\n", verdict_is_fenced(&vd) ? 1 : 0);
	render_metric_head(&b, "peers", "gauge", "Peers by what is known of them.");
	render_add(&b,
	           "pgcheckd_peers{state=\"configured\"} %d\npgcheckd_peers{state=\"fresh\"} %d\n"
	           "pgcheckd_peers{state=\"other_cluster\"} %d\n",
	           v->peers.configured, v->peers.fresh, v->peers.foreign);
	render_metric_head(&b, "peer_answers_rejected_total", "counter",
	                   "Peer answers not believed (the peer counts as not heard from), by reason.");
	for (int k = PEERS_REJECT_NONE + 1; k < PEERS_REJECT_COUNT; k++)
		render_add(&b, "pgcheckd_peer_answers_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
		           peers_reject_names[k], v->peers.rejected[k]);
	if (v->dcs.configured) {
		render_metric_head(&b, "dcs_leader_is_me", "gauge",
		                   "1 while the DCS leader key, as last read, names this node.");
		render_add(&b, "pgcheckd_dcs_leader_is_me %d\n", v->dcs.leader_is_me ? 1 : 0);
		render_metric_head(&b, "dcs_answer_age_seconds", "gauge",
		                   "Age of the last believed DCS answer, from its request; -1 when none yet.");
		render_add(&b, "pgcheckd_dcs_answer_age_seconds %.3f\n",
		           v->dcs.heard ? (double)v->dcs.age_ms / 1000.0 : -1.0);
		if (v->dcs.lease_mode) {
			render_metric_head(&b, "dcs_lease_left_seconds", "gauge",
			                   "Lease mode: time until the held lease can expire, by this host's clock; -1 "
			                   "when not held.");
			render_add(&b, "pgcheckd_dcs_lease_left_seconds %.3f\n",
			           v->dcs.holding ? (double)v->dcs.lease_left_ms / 1000.0 : -1.0);
		}
		render_metric_head(&b, "dcs_exchanges_total", "counter", "Exchanges with etcd, by outcome.");
		render_add(&b, "pgcheckd_dcs_exchanges_total{result=\"ok\"} %" PRIu64 "\n", v->dcs.answers);
		render_add(&b, "pgcheckd_dcs_exchanges_total{result=\"error\"} %" PRIu64 "\n", v->dcs.errors);
		if (v->dcs.auth) {
			render_metric_head(
			    &b, "dcs_auth_failures_total", "counter",
			    "etcd refusing [dcs] username's authentication: its name or password, a token "
			    "refused again, a permission denied.");
			render_add(&b, "pgcheckd_dcs_auth_failures_total %" PRIu64 "\n", v->dcs.auth_failures);
		}
		render_metric_head(&b, "dcs_last_error", "gauge", "1 for the outcome of the last exchange with etcd.");
		for (int k = 0; k < DCS_ERROR_COUNT; k++)
			render_add(&b, "pgcheckd_dcs_last_error{error=\"%s\"} %d\n", dcs_error_names[k],
			           v->dcs.last_error == (enum dcs_error)k ? 1 : 0);
	}
	render_metric_head(&b, "info", "gauge", "Version of pgcheckd.");
	render_add(&b, "pgcheckd_info{version=\"%s\"} 1\n", PGCHECKD_VERSION);
	return b.overflow ? 0 : b.len;
}
