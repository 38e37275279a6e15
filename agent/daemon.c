/*
 * daemon.c: the running daemon, wired together: the poller (the only PostgreSQL client), the node
 * state, the peers, the ports and the HAProxy workers on one libev loop; role ports opened and closed
 * as the verdict says; SIGHUP reloads (a bad file keeps the running configuration), SIGTERM drains
 * then exits. The rules it applies live in agent/core; it decides nothing of its own.
 */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <ev.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "agentline.h"
#include "dcs.h"
#include "fencing.h"
#include "listener.h"
#include "log.h"
#include "monoclock.h"
#include "node.h"
#include "peers.h"
#include "clusterview.h"
#include "poller.h"
#include "pusher.h"
#include "registrar.h"
#include "render.h"
#include "scaleout.h"
#include "tls.h"
#include "verdict.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
/* without libsystemd there is no service manager to tell */
static int
sd_notify(int unset_environment, const char *state)
{
	(void)unset_environment;
	(void)state;
	return 0;
}
static int
sd_watchdog_enabled(int unset_environment, uint64_t *usec)
{
	(void)unset_environment;
	*usec = 0;
	return 0;
}
#endif

#ifndef PGCHECKD_VERSION
#define PGCHECKD_VERSION "0.1.0"
#endif

/* role ports are re-checked at least this often, for rules that change with time alone */
#define DAEMON_RECHECK_MAX_MS 100
/* reads of the peers that peers' alerts cause are at least this far apart (a flood costs no more) */
#define DAEMON_ALERT_SPACING_MS 10

struct daemon {
	struct ev_loop *loop;
	const char *conf_path;
	struct conf conf;
	struct policy policy;
	struct node node;
	struct poller *poller;
	struct listener *listener; /* the agent port (agent line and HTTP) */
	struct listener *http;     /* the optional HTTP-only port */
	struct listener *role[2];  /* primary_port, replica_port: bound; listening only while the role holds */
	struct listener *admin;
	struct render_counters counters;
	struct peers *peers;         /* the other nodes' pgcheckd, when configured */
	struct registrar *registrar; /* registration into HAProxy, when configured */
	struct scaleout *scaleout;   /* the scale-out controller, when configured */
	struct pusher *pusher;       /* pushes that take this node out of HAProxy backends, when configured */
	struct fencing fencing;      /* isolation and an operator's release, between samples */
	struct dcs *dcs;             /* the etcd client, when [dcs] mode is set */
	struct dcs_summary dcs_told; /* what the log last said of it: transitions are logged once */
	uint32_t foreign_logged;     /* peers already reported as another cluster */
	uint32_t unresolved_logged;  /* peers already reported as a name that does not resolve */
	ev_signal sighup, sigterm, sigint;
	ev_timer drain;
	ev_timer watchdog;
	ev_timer recheck;          /* role ports: the last sample going stale, and other rules of time */
	ev_timer alerted;          /* peers' alerts: at most one read of the peers per DAEMON_ALERT_SPACING_MS */
	bool alert_again;          /* an alert came while spacing: read once more when it ends */
	int handover_told;         /* 0 nothing, 1 waiting for a superseded primary was logged, 2 giving up was */
	uint64_t foreign_dir_told; /* poller_watch_foreign() as last logged */
	bool draining;
};

static void
daemon_poller_conf(const struct conf *c, struct poller_conf *pc)
{
	pc->conninfo = c->pg_conninfo;
	pc->poll_interval_ms = c->pg_poll_interval_ms;
	pc->query_timeout_ms = c->pg_query_timeout_ms;
	pc->connect_timeout_ms = c->pg_connect_timeout_ms;
	pc->reconnect_max_ms = c->pg_reconnect_max_ms;
	pc->data_directory = c->pg_data_directory;
}

/* daemon_watch_note logs, when [pg] data_directory is set, whether it is watched. */
static void
daemon_watch_note(struct daemon *d)
{
	int e = poller_watch_error(d->poller);

	if (e != 0)
		log_error("[pg] data_directory %s cannot be watched (%s): shutdowns and promotions are seen at the "
		          "next poll only",
		          d->conf.pg_data_directory, strerror(e));
	else if (d->conf.pg_data_directory[0] != '\0')
		log_info("watching %s for shutdowns and promotions", d->conf.pg_data_directory);
}

static void
daemon_listener_conf(const struct conf *c, struct listener_conf *lc)
{
	lc->default_request = (enum request_kind)c->agent_default_request;
	lc->max_clients = (int)c->agent_max_clients;
	lc->request_idle_ms = c->agent_request_idle_ms;
	lc->request_wait_ms = c->agent_request_wait_ms;
	lc->client_timeout_ms = c->agent_client_timeout_ms;
	lc->maxconn_pct = (int)c->agent_maxconn_pct;
	lc->max_clients_per_source = (int)c->agent_max_clients_per_source;
	lc->http = c->agent_http;
	snprintf(lc->auth.basic, sizeof(lc->auth.basic), "%s", c->http_basic_expected);
	snprintf(lc->auth.bearer, sizeof(lc->auth.bearer), "%s", c->http_bearer_expected);
	lc->auth.protect = c->http_protect_bits;
	(void)conf_parse_cidr_list(c->agent_allow, lc->allow, CONF_CIDR_LIST_MAX,
	                           &lc->allow_count); /* checked by conf_load */
}

/* daemon_snapshot is node_view() plus what the node itself cannot know: peers, isolation, a release. */
static void
daemon_snapshot(struct daemon *d, struct node_view *v)
{
	int64_t now = monoclock_ms();

	node_view(&d->node, now, v);
	peers_summary(d->peers, now, d->conf.peers_fresh_ms, v->sample.system_identifier, v->sample.timeline,
	              &v->peers);
	fencing_apply(&d->fencing, now, v);
	dcs_summary(d->dcs, now, &v->dcs);
	peers_cluster(d->peers, now, d->conf.peers_fresh_ms, v->sample.system_identifier, v->sample.name,
	              v->sample.replay_lsn, &v->cluster);
	v->peer_list = d->peers;
	v->now_ms = now;
}

static void
daemon_view(void *arg, struct node_view *v, struct policy *p)
{
	struct daemon *d = arg;

	daemon_snapshot(d, v);
	*p = d->policy;
}

/*
 * daemon_recheck_at arms the re-check timer: the moment the last good sample goes stale (just past
 * stale_after_ms), and no later than DAEMON_RECHECK_MAX_MS for every other rule that changes with time
 * alone (peers' freshness, isolation). Events (polls, peers, overrides, reloads) re-check at once.
 */
static void
daemon_recheck_at(struct daemon *d, const struct node_view *v)
{
	double after_s = (double)DAEMON_RECHECK_MAX_MS / 1000.0;

	if (v->have_sample && v->sample_age_ms <= d->policy.stale_after_ms) {
		double stale_s = (double)(d->policy.stale_after_ms - v->sample_age_ms + 1) / 1000.0;

		if (stale_s < after_s)
			after_s = stale_s;
	}
	ev_timer_stop(d->loop, &d->recheck);
	ev_timer_set(&d->recheck, after_s, 0.);
	ev_timer_start(d->loop, &d->recheck);
}

/* daemon_note_handover logs, once each, a promoted primary waiting for a superseded one and its giving up. */
static void
daemon_note_handover(struct daemon *d, const struct node_view *v)
{
	if (v->peers.older_primaries_up == 0 || d->policy.handover_ms == 0) {
		if (d->handover_told == 1)
			log_info("handover: the superseded primary stepped down");
		d->handover_told = 0;
	} else if (v->handover_ms < d->policy.handover_ms && d->handover_told == 0) {
		log_warning("handover: a peer primary on an older timeline still takes writes; 'primary' is down "
		            "until it fences itself, at most [peers] handover_ms = %lld ms",
		            (long long)d->policy.handover_ms);
		d->handover_told = 1;
	} else if (v->handover_ms >= d->policy.handover_ms && d->handover_told != 2) {
		log_error("handover: a peer primary on an older timeline still takes writes after %lld ms (does it "
		          "list this node in [peers] addresses?): 'primary' is up, two write targets until it stops",
		          (long long)d->policy.handover_ms);
		d->handover_told = 2;
	}
}

/*
 * daemon_roles opens each role port while verdict_for() says its role is up and closes it otherwise,
 * so a plain TCP check fails closed. Called after every poll, override and reload.
 */
static void
daemon_roles(struct daemon *d)
{
	static const enum request_kind kinds[2] = {REQUEST_PRIMARY, REQUEST_REPLICA};
	const int64_t ports[2] = {d->conf.agent_primary_port, d->conf.agent_replica_port};
	struct node_view v;
	struct verdict vd;

	bool fencing_began = false;

	daemon_snapshot(d, &v);
	{
		struct request pr = {.kind = REQUEST_PRIMARY};

		verdict_for(&v, &pr, &d->policy, &vd);
		switch (fencing_note(&d->fencing, &vd)) {
		case FENCING_BEGAN:
			log_error("%s: refusing writes (peers: %d fresh of %d)", vd.reason, v.peers.fresh,
			          v.peers.configured);
			fencing_began = true;
			break;
		case FENCING_ENDED:
			log_warning("no longer fenced (%s)", vd.up ? "writable primary" : vd.reason);
			break;
		default:
			break;
		}
	}
	if (d->pusher != NULL) {
		unsigned unfit = 0;
		int weight_pct[REQUEST_KIND_COUNT];

		for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
			struct request r = {.kind = (enum request_kind)k};

			verdict_for(&v, &r, &d->policy, &vd);
			if (!vd.up)
				unfit |= 1u << k;
			weight_pct[k] = vd.up ? vd.weight_pct : PUSHER_WEIGHT_NONE;
		}
		pusher_update(d->pusher, unfit, weight_pct); /* hands over, never waits for HAProxy */
	}
	if (fencing_began && d->peers != NULL)
		peers_read_now(d->peers, true); /* a new primary waiting for this one to step down hears it now */
	daemon_note_handover(d, &v);
	for (int i = 0; i < 2; i++) {
		struct request r = {.kind = kinds[i]};
		bool open;

		if (d->role[i] == NULL)
			continue;
		verdict_for(&v, &r, &d->policy, &vd);
		/* a plain TCP check cannot see a weight: up at 0% for lag (over_lag = drain) is closed */
		open = vd.up && vd.why != REASON_LAG && !d->draining;
		if (open == listener_is_open(d->role[i]))
			continue;
		if (!listener_set_open(d->role[i], open))
			continue; /* errors have been logged already */
		if (open)
			log_info("%s port %d open", request_kind_name(kinds[i]), (int)ports[i]);
		else
			log_info("%s port %d closed (%s)", request_kind_name(kinds[i]), (int)ports[i],
			         vd.up ? "shutting down" : vd.reason);
	}
	daemon_recheck_at(d, &v);
}

/* daemon_on_recheck runs daemon_roles when the last sample goes stale or a time-based rule may change. */
static void
daemon_on_recheck(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	daemon_roles(w->data);
}

/* daemon_check_foreign reports, once each, peers that belong to another cluster or whose name does not resolve. */
static void
daemon_check_foreign(struct daemon *d)
{
	uint64_t mine = d->node.sample.system_identifier;

	for (int i = 0; i < peers_count(d->peers) && i < 32; i++) {
		const struct peer_state *st = peers_state(d->peers, i);

		if (st->seen && mine != 0 && st->system_identifier != 0 && st->system_identifier != mine &&
		    !(d->foreign_logged & (1u << i))) {
			log_warning("peer %s belongs to another cluster (system identifier %" PRIu64 ", ours %" PRIu64
			            "): ignored",
			            st->addr, st->system_identifier, mine);
			d->foreign_logged |= 1u << i;
		}
		if (peers_address_state(d->peers, i) == PEERS_ADDR_FAILED && !(d->unresolved_logged & (1u << i))) {
			log_error("peer %s: the name does not resolve; it is ignored until a reload", st->addr);
			d->unresolved_logged |= 1u << i;
		}
	}
}

/* daemon_on_alert: a peer asked "peer-alert" (its role or timeline changed): read the peers now. */
static void
daemon_on_alert(void *arg)
{
	struct daemon *d = arg;

	if (d->peers == NULL)
		return;
	if (ev_is_active(&d->alerted)) {
		d->alert_again = true;
		return;
	}
	peers_read_now(d->peers, false);
	ev_timer_set(&d->alerted, DAEMON_ALERT_SPACING_MS / 1000.0, 0.);
	ev_timer_start(d->loop, &d->alerted);
}

static void
daemon_on_alerted(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	if (d->alert_again) {
		d->alert_again = false;
		daemon_on_alert(d);
	}
}

static void
daemon_on_poll(void *arg, enum poll_result result, const struct sample *s, const char *detail)
{
	struct daemon *d = arg;

	/* lease mode: only a writable primary takes the key and keeps its lease */
	dcs_set_candidate(d->dcs, result == POLL_OK && !s->in_recovery && !s->read_only && !s->default_read_only);
	if (result == POLL_OK && d->peers != NULL &&
	    (!d->node.have_sample || d->node.sample.in_recovery != s->in_recovery ||
	     d->node.sample.read_only != s->read_only || d->node.sample.timeline != s->timeline)) {
		/*
		 * our role or timeline changed: tell the peers now (they read us back), and read them. Writable
		 * counts: the first sample after a promotion may be out of recovery in a transaction begun in it
		 * (read-only), and the peers must hear again once it is writable.
		 */
		peers_read_now(d->peers, true);
	}
	if (poller_watch_foreign(d->poller) != d->foreign_dir_told) {
		uint64_t id = poller_watch_foreign(d->poller);

		d->foreign_dir_told = id;
		if (id == 1)
			log_error(
			    "[pg] data_directory %s has no readable global/pg_control: it is not the server's data "
			    "directory, and is not watched (shutdowns and promotions are seen at the next poll only)",
			    d->conf.pg_data_directory);
		else if (id != 0)
			log_error(
			    "[pg] data_directory %s is another cluster's (system identifier %llu; the server's is "
			    "%llu): not watched (shutdowns and promotions are seen at the next poll only)",
			    d->conf.pg_data_directory, (unsigned long long)id,
			    (unsigned long long)(s != NULL ? s->system_identifier : 0));
	}
	if (result == POLL_OK) {
		node_sample(&d->node, s);
		fencing_sample(&d->fencing, s);
		if (d->peers != NULL && d->foreign_logged == 0)
			daemon_check_foreign(d);
	} else
		node_fail(&d->node, result, detail);
	daemon_roles(d);
}

static void
daemon_peers_conf(const struct conf *c, struct peers_conf *pc)
{
	pc->addresses = c->peers_addresses;
	pc->interval_ms = c->peers_interval_ms;
	pc->timeout_ms = c->peers_timeout_ms;
	pc->key = c->peers_key;
	pc->key_len = c->peers_key_len;
}

/* daemon_check_rejected logs, once per episode, a peer whose answers are not believed, and its end. */
static void
daemon_check_rejected(struct daemon *d)
{
	enum peers_reject why;

	for (int i = 0; i < peers_count(d->peers); i++) {
		switch (peers_rejection_news(d->peers, i, &why)) {
		case PEERS_EPISODE_BEGAN:
			log_warning("peer %s: answer not believed (%s): it counts as not heard from, fences no one "
			            "and lifts no fence%s",
			            peers_state(d->peers, i)->addr, peers_reject_names[why],
			            why != PEERS_REJECT_REFUSED ? ""
			            : d->conf.peers_key_len > 0 ? " (the peer holds another [peers] key_file)"
			                                        : " (the peer has a [peers] key_file, this node none)");
			break;
		case PEERS_EPISODE_ENDED:
			log_info("peer %s: its answers are believed again", peers_state(d->peers, i)->addr);
			break;
		default:
			break;
		}
	}
}

/* daemon_on_peers runs when a peer's role, timeline, cluster or fencing changed, or names resolved. */
static void
daemon_on_peers(void *arg)
{
	struct daemon *d = arg;

	daemon_check_foreign(d);
	daemon_check_rejected(d);
	daemon_roles(d);
}

/*
 * daemon_start_peers starts reading the peers, or on a reload hands the running set the new list: what
 * the peers that stay said still stands, so a fenced primary stays fenced. Names resolve off the loop;
 * those that do not are reported by daemon_check_foreign.
 */
static void
daemon_start_peers(struct daemon *d)
{
	struct peers_conf pc;

	daemon_peers_conf(&d->conf, &pc);
	d->foreign_logged = 0; /* the indexes change with the list */
	d->unresolved_logged = 0;
	if (d->peers != NULL)
		(void)peers_reconfigure(d->peers, &pc); /* checked by conf_load */
	else if (d->conf.peers_addresses[0] != '\0')
		d->peers = peers_new(d->loop, &pc, daemon_on_peers, d);
}

/* daemon_on_dcs logs what changed in the DCS client's view, once per transition, and re-checks the role ports. */
static void
daemon_on_dcs(void *arg)
{
	struct daemon *d = arg;
	struct dcs_summary now, *told = &d->dcs_told;

	dcs_summary(d->dcs, monoclock_ms(), &now);
	if (now.last_error != DCS_OK && told->last_error == DCS_OK)
		log_error("dcs: etcd %s: %s (%s): what it said last counts for [dcs] fresh_ms, then 'primary' is down",
		          now.endpoint, dcs_error_names[now.last_error], dcs_last_detail(d->dcs));
	else if (now.last_error != DCS_OK)
		log_debug("dcs: etcd %s: %s (%s)", now.endpoint, dcs_error_names[now.last_error],
		          dcs_last_detail(d->dcs));
	else if (told->last_error != DCS_OK)
		log_info("dcs: etcd %s answers again", now.endpoint);
	if (now.lease_mode && now.holding != told->holding)
		log_warning("dcs: %s the key (lease)", now.holding ? "this node holds" : "this node no longer holds");
	if (now.heard &&
	    (!told->heard || now.have_leader != told->have_leader || strcmp(now.leader, told->leader) != 0))
		log_info("dcs: the leader key of scope %s %s%s%s", d->conf.dcs_scope,
		         now.have_leader ? "names " : "is not set", now.leader,
		         now.leader_is_me  ? " (this node)"
		         : now.have_leader ? " (not this node)"
		                           : "");
	*told = now;
	daemon_roles(d);
}

/* daemon_start_dcs (re)starts the etcd client from the running configuration; false (logged) when it cannot. */
static bool
daemon_start_dcs(struct daemon *d)
{
	char key[DCS_KEY_MAX];
	struct dcs_conf dc = {
	    .endpoints = d->conf.dcs_endpoints,
	    .key = key,
	    .name = d->conf.dcs_name,
	    .interval_ms = d->conf.dcs_interval_ms,
	    .timeout_ms = d->conf.dcs_timeout_ms,
	    .ca_file = d->conf.dcs_ca_file,
	    .cert_file = d->conf.dcs_cert_file,
	    .key_file = d->conf.dcs_key_file,
	    .lease_ttl_s = d->conf.dcs_mode == CONF_DCS_LEASE ? d->conf.dcs_lease_ttl_s : 0,
	    .username = d->conf.dcs_username,
	    .password = d->conf.dcs_password,
	};

	dcs_free(d->dcs);
	d->dcs = NULL;
	memset(&d->dcs_told, 0, sizeof(d->dcs_told));
	if (d->conf.dcs_mode == CONF_DCS_OFF)
		return true;
	if (dcs_patroni_leader_key(d->conf.dcs_namespace, d->conf.dcs_scope, key, sizeof(key)))
		d->dcs = dcs_new(d->loop, &dc, daemon_on_dcs, d);
	if (d->dcs == NULL) {
		log_error("dcs: cannot start the etcd client: 'primary' is down #dcs-unreachable");
		return false;
	}
	if (d->conf.dcs_mode == CONF_DCS_LEASE)
		log_info(
		    "dcs: holding %s as %s under a %lld s lease from %s while a writable primary ('primary' up only "
		    "while held, %lld ms before it can expire)",
		    key, d->conf.dcs_name, (long long)d->conf.dcs_lease_ttl_s, d->conf.dcs_endpoints,
		    (long long)d->conf.dcs_lease_margin_ms);
	else
		log_info(
		    "dcs: reading Patroni's leader key %s from %s every %lld ms ('primary' only while it names %s)",
		    key, d->conf.dcs_endpoints, (long long)d->conf.dcs_interval_ms, d->conf.dcs_name);
	return true;
}

/* daemon_dcs_changed tells whether a reload changes anything the etcd client uses. */
static bool
daemon_dcs_changed(const struct conf *a, const struct conf *b)
{
	return a->dcs_mode != b->dcs_mode || strcmp(a->dcs_endpoints, b->dcs_endpoints) != 0 ||
	       strcmp(a->dcs_scope, b->dcs_scope) != 0 || strcmp(a->dcs_namespace, b->dcs_namespace) != 0 ||
	       strcmp(a->dcs_name, b->dcs_name) != 0 || a->dcs_interval_ms != b->dcs_interval_ms ||
	       a->dcs_timeout_ms != b->dcs_timeout_ms || strcmp(a->dcs_ca_file, b->dcs_ca_file) != 0 ||
	       strcmp(a->dcs_cert_file, b->dcs_cert_file) != 0 || strcmp(a->dcs_key_file, b->dcs_key_file) != 0 ||
	       a->dcs_lease_ttl_s != b->dcs_lease_ttl_s || strcmp(a->dcs_username, b->dcs_username) != 0 ||
	       strcmp(a->dcs_password, b->dcs_password) != 0;
}

/* daemon_admin carries out one line from the admin socket (see admin.h). */
static void
daemon_admin(void *arg, const char *line, char *reply, size_t len)
{
	struct daemon *d = arg;
	struct node_view v;
	struct verdict vd;
	struct request r;
	enum admin_command cmd = admin_parse(line, &r);

	daemon_snapshot(d, &v);
	switch (cmd) {
	case ADMIN_STATUS:
		if (render_json(&v, &d->policy, NULL, &d->counters, reply, len) == 0)
			snprintf(reply, len, "error status too large\n");
		break;
	case ADMIN_CLUSTER:
	case ADMIN_CLUSTER_JSON:
		if ((cmd == ADMIN_CLUSTER ? clusterview_table : clusterview_json)(&v, &d->policy, reply, len) == 0)
			snprintf(reply, len, "error cluster too large\n");
		break;
	case ADMIN_DRAIN:
	case ADMIN_MAINT:
	case ADMIN_READY:
		node_set_override(&d->node, admin_override(cmd));
		daemon_roles(d);
		snprintf(reply, len, "ok %s\n", line);
		break;
	case ADMIN_RELEASE:
		if (!fencing_release(&d->fencing, &v)) {
			snprintf(reply, len, "error nothing to release: no other primary on this timeline\n");
			break;
		}
		log_warning("operator released this primary from split-brain fencing: it takes writes again");
		daemon_roles(d);
		snprintf(reply, len, "ok release\n");
		break;
	case ADMIN_CHECK:
		verdict_for(&v, &r, &d->policy, &vd);
		(void)agentline_render(&vd, reply, len);
		break;
	case ADMIN_BAD_CHECK:
		verdict_set_down(&vd, REASON_BAD_REQUEST);
		(void)agentline_render(&vd, reply, len);
		break;
	default:
		snprintf(reply, len, "error unknown command (" ADMIN_COMMANDS ")\n");
		break;
	}
}

/*
 * daemon_tls hands the TLS ports a context built from c (new connections use it, open ones keep theirs);
 * false (logged, after what) when it cannot be built: the ports keep the running one.
 */
static bool
daemon_tls(struct daemon *d, const struct conf *c, const char *what)
{
	char why[CONF_ERR_MAX];
	SSL_CTX *ctx = tls_context_new(c, why, sizeof(why));

	if (ctx == NULL && why[0] != '\0') {
		log_error("%s: %s", what, why);
		return false;
	}
	listener_set_tls(d->listener, c->tls_agent ? ctx : NULL);
	if (d->http != NULL)
		listener_set_tls(d->http, c->tls_http ? ctx : NULL);
	if (ctx != NULL)
		log_info("TLS on the %s with %s (client certificates: %s)",
		         c->tls_agent && c->tls_http ? "agent and HTTP ports"
		         : c->tls_agent              ? "agent port"
		                                     : "HTTP port",
		         c->tls_cert_file, conf_verify_names[c->tls_verify_client]);
	tls_context_free(ctx);
	return true;
}

static void
daemon_reload(struct daemon *d)
{
	struct conf next;
	struct poller_conf pc;
	struct listener_conf lc;
	char err[CONF_ERR_MAX], kept[512];

	(void)sd_notify(0, "RELOADING=1");
	if (!conf_load(d->conf_path, &next, err, sizeof(err))) {
		log_error("reload failed, keeping the running configuration: %s", err);
		(void)sd_notify(0, "READY=1");
		return;
	}
	if (conf_keep_unreloadable(&d->conf, &next, kept, sizeof(kept)) > 0)
		log_warning("reload: %s cannot change while running; restart to apply", kept);
	if (!daemon_tls(d, &next, "reload failed, keeping the running configuration and certificate")) {
		(void)sd_notify(0, "READY=1");
		return;
	}
	bool peers_changed = strcmp(next.peers_addresses, d->conf.peers_addresses) != 0 ||
	                     next.peers_interval_ms != d->conf.peers_interval_ms ||
	                     next.peers_timeout_ms != d->conf.peers_timeout_ms ||
	                     next.peers_key_len != d->conf.peers_key_len ||
	                     memcmp(next.peers_key, d->conf.peers_key, next.peers_key_len) != 0;

	bool dcs_changed = daemon_dcs_changed(&d->conf, &next);

	char old_datadir[CONF_STR_MAX], old_apis[CONF_STR_MAX];

	snprintf(old_datadir, sizeof(old_datadir), "%s", d->conf.pg_data_directory);
	snprintf(old_apis, sizeof(old_apis), "%s", d->conf.haproxy_runtime_api);
	d->conf = next;
	if (peers_changed)
		daemon_start_peers(d);
	if (dcs_changed)
		(void)daemon_start_dcs(d); /* errors have been logged already; 'primary' is then down */
	/* handed over, never waited for: a changed registration is withdrawn and redone on the registrar's thread */
	if (d->registrar == NULL)
		d->registrar = registrar_new(&d->conf);
	else
		registrar_reconfigure(d->registrar, &d->conf);
	if (d->pusher != NULL && (strcmp(old_apis, d->conf.haproxy_runtime_api) != 0 || !pusher_wanted(&d->conf))) {
		pusher_free(d->pusher, monoclock_ms() + d->conf.haproxy_timeout_ms);
		d->pusher = NULL;
	}
	if (d->pusher == NULL)
		d->pusher = pusher_new(&d->conf);
	else
		pusher_reconfigure(d->pusher, &d->conf);
	if (d->scaleout == NULL)
		d->scaleout = scaleout_new(d->loop, &d->conf);
	else
		scaleout_reconfigure(d->scaleout, &d->conf); /* keeps its running command and cooldown */
	log_setup((enum log_level)d->conf.log_level, d->conf.log_syslog);
	verdict_policy(&d->conf, &d->policy);
	node_configure(&d->node, &d->conf);
	daemon_poller_conf(&d->conf, &pc);
	poller_reconfigure(d->poller, &pc);
	if (strcmp(d->conf.pg_data_directory, old_datadir) != 0)
		daemon_watch_note(d);
	daemon_listener_conf(&d->conf, &lc);
	listener_reconfigure(d->listener, &lc);
	if (d->http != NULL)
		listener_reconfigure(d->http, &lc);
	for (int i = 0; i < 2; i++)
		if (d->role[i] != NULL)
			listener_reconfigure(d->role[i], &lc);
	daemon_roles(d);
	log_info("configuration reloaded from %s", d->conf_path);
	(void)sd_notify(0, "READY=1");
}

static void
daemon_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	(void)sd_notify(0, "WATCHDOG=1");
}

static void
daemon_on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	daemon_reload(w->data);
}

static void
daemon_on_drained(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	log_info("drain time over: exiting");
	ev_break(loop, EVBREAK_ALL);
}

static void
daemon_on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	(void)revents;
	(void)sd_notify(0, "STOPPING=1");
	if (d->draining || d->conf.agent_shutdown_drain_ms == 0) {
		log_info("signal %d: exiting", w->signum);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	d->draining = true;
	d->node.shutting_down = true;
	daemon_roles(d);
	log_info("signal %d: answering drained (up 0%%) for %lld ms, then exiting", w->signum,
	         (long long)d->conf.agent_shutdown_drain_ms);
	ev_timer_set(&d->drain, (double)d->conf.agent_shutdown_drain_ms / 1000.0, 0.);
	ev_timer_start(loop, &d->drain);
}

int
daemon_run(const char *conf_path, const struct conf *c)
{
	struct daemon d;
	struct poller_conf pc;
	struct listener_conf lc;
	struct listener_ops ops = {daemon_view, daemon_admin, daemon_on_alert};
	char safe[CONF_STR_MAX];
	uint64_t watchdog_usec = 0;

	memset(&d, 0, sizeof(d));
	d.conf_path = conf_path;
	d.conf = *c;
	log_setup((enum log_level)d.conf.log_level, d.conf.log_syslog);
	signal(SIGPIPE, SIG_IGN);
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (d.loop == NULL) {
		log_error("cannot start the event loop");
		return DAEMON_EXIT_START_FAILED;
	}
	verdict_policy(&d.conf, &d.policy);
	node_init(&d.node, &d.conf);
	daemon_listener_conf(&d.conf, &lc);
	d.listener =
	    listener_new(d.loop, LISTENER_AGENT, d.conf.listen_host, d.conf.listen_port, &lc, &ops, &d, &d.counters);
	if (d.listener == NULL)
		return DAEMON_EXIT_START_FAILED; /* errors have been logged already */
	if (d.conf.agent_http_listen[0] != '\0') {
		char host[256];
		int port;

		(void)conf_parse_listen(d.conf.agent_http_listen, host, sizeof(host), &port); /* checked by conf_load */
		d.http = listener_new(d.loop, LISTENER_HTTP, host, port, &lc, &ops, &d, &d.counters);
		if (d.http == NULL) {
			listener_free(d.listener);
			return DAEMON_EXIT_START_FAILED;
		}
	}
	if (!daemon_tls(&d, &d.conf, "TLS")) {
		listener_free(d.http);
		listener_free(d.listener);
		return DAEMON_EXIT_CONFIG;
	}
	if (d.conf.admin_socket[0] != '\0') {
		/* the checks matter more than ctl: without the socket, run on and say so */
		d.admin = listener_new(d.loop, LISTENER_ADMIN, d.conf.admin_socket, 0, &lc, &ops, &d, &d.counters);
		if (d.admin == NULL)
			log_error("running without an admin socket: 'pgcheckd ctl' and 'pgcheckd check' cannot reach "
			          "this agent");
	}
	{
		/* role ports are bound from the start, so no one else can take them; they listen only later */
		static const enum request_kind kinds[2] = {REQUEST_PRIMARY, REQUEST_REPLICA};
		const int64_t ports[2] = {d.conf.agent_primary_port, d.conf.agent_replica_port};
		struct listener_ops role_ops = {daemon_view, NULL, NULL};

		for (int i = 0; i < 2; i++) {
			struct listener_conf rlc = lc;

			if (ports[i] == 0)
				continue;
			rlc.default_request = kinds[i];
			d.role[i] = listener_new(d.loop, LISTENER_ROLE, d.conf.listen_host, (int)ports[i], &rlc,
			                         &role_ops, &d, &d.counters);
			if (d.role[i] == NULL) {
				listener_free(d.role[0]);
				listener_free(d.admin);
				listener_free(d.http);
				listener_free(d.listener);
				return DAEMON_EXIT_START_FAILED; /* errors have been logged already */
			}
		}
	}
	ev_timer_init(&d.recheck, daemon_on_recheck, 0., 0.);
	d.recheck.data = &d;
	ev_timer_init(&d.alerted, daemon_on_alerted, 0., 0.);
	d.alerted.data = &d;
	daemon_poller_conf(&d.conf, &pc);
	fencing_init(&d.fencing, monoclock_ms());
	d.poller = poller_new(d.loop, &pc, daemon_on_poll, &d);
	if (d.poller == NULL) {
		log_error("out of memory");
		listener_free(d.role[0]);
		listener_free(d.role[1]);
		listener_free(d.admin);
		listener_free(d.http);
		listener_free(d.listener);
		return DAEMON_EXIT_START_FAILED;
	}

	daemon_watch_note(&d);
	daemon_start_peers(&d);
	(void)daemon_start_dcs(&d); /* errors have been logged already; 'primary' is then down */
	d.registrar = registrar_new(&d.conf);
	d.pusher = pusher_new(&d.conf);
	d.scaleout = scaleout_new(d.loop, &d.conf);
	ev_signal_init(&d.sighup, daemon_on_sighup, SIGHUP);
	d.sighup.data = &d;
	ev_signal_start(d.loop, &d.sighup);
	ev_signal_init(&d.sigterm, daemon_on_sigterm, SIGTERM);
	d.sigterm.data = &d;
	ev_signal_start(d.loop, &d.sigterm);
	ev_signal_init(&d.sigint, daemon_on_sigterm, SIGINT);
	d.sigint.data = &d;
	ev_signal_start(d.loop, &d.sigint);
	ev_timer_init(&d.drain, daemon_on_drained, 0., 0.);
	ev_timer_init(&d.watchdog, daemon_on_watchdog, 0., 0.);

	log_conninfo_safe(d.conf.pg_conninfo, safe, sizeof(safe));
	log_info("pgcheckd %s: agent port %s:%d, PostgreSQL '%s', a sample every %lld ms", PGCHECKD_VERSION,
	         d.conf.listen_host, d.conf.listen_port, safe, (long long)d.conf.pg_poll_interval_ms);
	if (d.conf.agent_allow[0] != '\0')
		log_info(
		    "answering clients from %s only ([agent] allow: add a remote HAProxy's or peer's address there)",
		    d.conf.agent_allow);
	else
		log_warning("[agent] allow is empty: answering clients from every address");
	if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
		/* the loop is alive when this timer runs: tell the service manager twice per period */
		ev_timer_init(&d.watchdog, daemon_on_watchdog, 0., (double)watchdog_usec / 2e6);
		ev_timer_again(d.loop, &d.watchdog);
	}
	(void)sd_notify(0, "READY=1");
	ev_run(d.loop, 0);

	/* nothing answers from here on: no port may stay open while HAProxy is told we are leaving */
	listener_free(d.role[0]);
	listener_free(d.role[1]);
	d.role[0] = d.role[1] = NULL;
	listener_free(d.listener);
	listener_free(d.http);
	d.listener = d.http = NULL;

	{
		/* the withdrawal and the controller's last HAProxy exchange get one timeout_ms between them */
		int64_t deadline = monoclock_ms() + d.conf.haproxy_timeout_ms;

		pusher_free(d.pusher, monoclock_ms()); /* a push left now is of no use: the withdrawal follows */
		registrar_free(d.registrar, deadline); /* withdraws from HAProxy */
		scaleout_free(d.scaleout, deadline);
	}
	poller_free(d.poller);
	peers_free(d.peers);
	dcs_free(d.dcs);
	listener_free(d.listener);
	listener_free(d.http);
	listener_free(d.admin);
	listener_free(d.role[0]);
	listener_free(d.role[1]);
	ev_signal_stop(d.loop, &d.sighup);
	ev_signal_stop(d.loop, &d.sigterm);
	ev_signal_stop(d.loop, &d.sigint);
	ev_timer_stop(d.loop, &d.drain);
	ev_timer_stop(d.loop, &d.watchdog);
	ev_timer_stop(d.loop, &d.recheck);
	ev_timer_stop(d.loop, &d.alerted);
	ev_loop_destroy(d.loop);
	return 0;
}
