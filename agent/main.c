/*
 * main.c: pgcheckd's entry point. Reads the configuration, wires the poller (the only PostgreSQL
 * client), the node state and the agent port onto one libev loop, and handles signals:
 * SIGHUP reloads (a bad file keeps the running configuration), SIGTERM drains then exits.
 * Exits only before the loop runs (2: configuration, 1: start-up) or on a signal (0).
 */
#include <errno.h>
#include <inttypes.h>
#include <ev.h>
#include <getopt.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "agentline.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "monoclock.h"
#include "node.h"
#include "peers.h"
#include "registrar.h"
#include "scaleout.h"
#include "poller.h"
#include "render.h"
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

#define EXIT_START_FAILED 1
#define EXIT_CONFIG       2

struct daemon {
	struct ev_loop *loop;
	const char *conf_path;
	struct conf conf;
	struct policy policy;
	struct node node;
	struct poller *poller;
	struct listener *listener; /* the agent port (agent line and HTTP) */
	struct listener *http;     /* the optional HTTP-only port */
	struct listener *role[2];  /* primary_port, replica_port: open only while the role holds */
	struct listener *admin;
	struct render_counters counters;
	struct peers *peers;         /* the other nodes' pgcheckd, when configured */
	struct registrar *registrar; /* registration into HAProxy, when configured */
	struct scaleout *scaleout;   /* the scale-out controller, when configured */
	bool released;               /* an operator released this primary from split fencing */
	int64_t started_ms;
	int64_t last_replica_ms; /* a streaming replica was last seen (as a primary) */
	char fence_logged[VERDICT_REASON_MAX];
	uint32_t foreign_logged; /* peers already reported as another cluster */
	ev_signal sighup, sigterm, sigint;
	ev_timer drain;
	ev_timer watchdog;
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
}

/* daemon_snapshot is node_view() plus what the node itself cannot know: peers and the operator's release. */
static void
daemon_snapshot(struct daemon *d, struct node_view *v)
{
	int64_t now = monoclock_ms(), contact = d->started_ms;

	node_view(&d->node, now, v);
	peers_summary(d->peers, now, d->conf.peers_fresh_ms, v->sample.system_identifier, v->sample.timeline,
	              &v->peers);
	if (v->peers.primaries_on_timeline == 0)
		d->released = false; /* a release ends with the split it was for */
	v->released = d->released;
	if (d->last_replica_ms > contact)
		contact = d->last_replica_ms;
	if (v->peers.last_fresh_ms > contact)
		contact = v->peers.last_fresh_ms;
	v->isolated_ms = now - contact;
}

static void
daemon_view(void *arg, struct node_view *v, struct policy *p)
{
	struct daemon *d = arg;

	daemon_snapshot(d, v);
	*p = d->policy;
}

static void
daemon_peer_state(void *arg, char *reply, size_t len)
{
	struct daemon *d = arg;
	struct node_view v;

	daemon_snapshot(d, &v);
	(void)render_peer_line(&v, &d->policy, reply, len);
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
	struct listener_conf lc;
	struct listener_ops ops = {daemon_view, NULL, daemon_peer_state};
	struct node_view v;
	struct verdict vd;

	daemon_snapshot(d, &v);
	{
		struct request pr = {.kind = REQUEST_PRIMARY};

		verdict_for(&v, &pr, &d->policy, &vd);
		if (strncmp(vd.reason, "fenced", 6) == 0 && strcmp(vd.reason, d->fence_logged) != 0)
			log_error("%s: refusing writes (peers: %d fresh of %d)", vd.reason, v.peers.fresh,
			          v.peers.configured);
		else if (d->fence_logged[0] != '\0' && strncmp(vd.reason, "fenced", 6) != 0)
			log_warning("no longer fenced (%s)", vd.up ? "writable primary" : vd.reason);
		snprintf(d->fence_logged, sizeof(d->fence_logged), "%s",
		         strncmp(vd.reason, "fenced", 6) == 0 ? vd.reason : "");
	}
	for (int i = 0; i < 2; i++) {
		struct request r = {.kind = kinds[i]};
		bool open;

		if (ports[i] == 0)
			continue;
		verdict_for(&v, &r, &d->policy, &vd);
		open = vd.up && !d->draining;
		if (open && d->role[i] == NULL) {
			daemon_listener_conf(&d->conf, &lc);
			lc.default_request = kinds[i];
			d->role[i] = listener_new(d->loop, LISTENER_ROLE, d->conf.listen_host, (int)ports[i], &lc, &ops,
			                          d, &d->counters);
			if (d->role[i] != NULL)
				log_info("%s port %d open", request_kind_name(kinds[i]), (int)ports[i]);
		} else if (!open && d->role[i] != NULL) {
			listener_free(d->role[i]);
			d->role[i] = NULL;
			log_info("%s port %d closed (%s)", request_kind_name(kinds[i]), (int)ports[i],
			         vd.up ? "shutting down" : vd.reason);
		}
	}
}

/* daemon_check_foreign reports, once each, peers that belong to another cluster. */
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
	}
}

static void
daemon_on_poll(void *arg, enum poll_result result, const struct sample *s, const char *detail)
{
	struct daemon *d = arg;

	if (result == POLL_OK) {
		node_sample(&d->node, s);
		if (!s->in_recovery && s->streaming_replicas > 0)
			d->last_replica_ms = s->taken_ms;
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
}

/* daemon_on_peers runs when a peer's role, timeline or fencing changed. */
static void
daemon_on_peers(void *arg)
{
	struct daemon *d = arg;

	daemon_check_foreign(d);
	daemon_roles(d);
}

/* daemon_start_peers (re)starts reading the peers; unresolvable names are reported once here. */
static void
daemon_start_peers(struct daemon *d)
{
	struct peers_conf pc;

	peers_free(d->peers);
	d->peers = NULL;
	d->foreign_logged = 0;
	if (d->conf.peers_addresses[0] == '\0')
		return;
	daemon_peers_conf(&d->conf, &pc);
	d->peers = peers_new(d->loop, &pc, daemon_on_peers, d);
	for (int i = 0; i < peers_count(d->peers); i++)
		if (!peers_resolved(d->peers, i))
			log_error("peer %s: the name does not resolve; it is ignored until a reload",
			          peers_state(d->peers, i)->addr);
}

/* daemon_admin runs one line from the admin socket: status, drain, maint, ready, check REQUEST. */
static void
daemon_admin(void *arg, const char *line, char *reply, size_t len)
{
	struct daemon *d = arg;
	struct node_view v;
	struct verdict vd;
	struct request r;

	daemon_snapshot(d, &v);
	if (strcmp(line, "status") == 0) {
		if (render_json(&v, &d->policy, NULL, &d->counters, reply, len) == 0)
			snprintf(reply, len, "error status too large\n");
	} else if (strcmp(line, "drain") == 0 || strcmp(line, "maint") == 0 || strcmp(line, "ready") == 0) {
		node_set_override(&d->node, line[0] == 'd'   ? OVERRIDE_DRAIN
		                            : line[0] == 'm' ? OVERRIDE_MAINT
		                                             : OVERRIDE_NONE);
		daemon_roles(d);
		snprintf(reply, len, "ok %s\n", line);
	} else if (strcmp(line, "release") == 0) {
		if (v.peers.primaries_on_timeline == 0) {
			snprintf(reply, len, "error nothing to release: no other primary on this timeline\n");
			return;
		}
		d->released = true;
		log_warning("operator released this primary from split-brain fencing: it takes writes again");
		daemon_roles(d);
		snprintf(reply, len, "ok release\n");
	} else if (strncmp(line, "check", 5) == 0 && (line[5] == ' ' || line[5] == '\0')) {
		if (agentline_parse(line + 5, strlen(line + 5), &r) != AGENTLINE_OK) {
			snprintf(reply, len, "down #bad-request\n");
			return;
		}
		verdict_for(&v, &r, &d->policy, &vd);
		(void)agentline_render(&vd, reply, len);
	} else {
		snprintf(reply, len, "error unknown command (status, drain, maint, ready, release, check REQUEST)\n");
	}
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
	bool peers_changed = strcmp(next.peers_addresses, d->conf.peers_addresses) != 0 ||
	                     next.peers_interval_ms != d->conf.peers_interval_ms ||
	                     next.peers_timeout_ms != d->conf.peers_timeout_ms;

	d->conf = next;
	if (peers_changed)
		daemon_start_peers(d);
	/* handed over, never waited for: a changed registration is withdrawn and redone on the registrar's thread */
	if (d->registrar == NULL)
		d->registrar = registrar_new(&d->conf);
	else
		registrar_reconfigure(d->registrar, &d->conf);
	if (d->scaleout == NULL)
		d->scaleout = scaleout_new(d->loop, &d->conf);
	else
		scaleout_reconfigure(d->scaleout, &d->conf); /* keeps its running command and cooldown */
	log_setup((enum log_level)d->conf.log_level, d->conf.log_syslog);
	verdict_policy(&d->conf, &d->policy);
	node_configure(&d->node, &d->conf);
	daemon_poller_conf(&d->conf, &pc);
	poller_reconfigure(d->poller, &pc);
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

static void daemon_usage(FILE *out);

/* daemon_ask sends one line to the running agent's admin socket and reads the whole reply. */
static bool
daemon_ask(const char *path, const char *line, char *reply, size_t len)
{
	struct sockaddr_un sun;
	struct timeval tv = {2, 0};
	size_t got = 0;
	ssize_t n;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "pgcheckd: no admin socket configured ([admin] socket)\n");
		return false;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "pgcheckd: cannot reach the agent at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line) ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		fprintf(stderr, "pgcheckd: cannot send to the agent: %s\n", strerror(errno));
		close(fd);
		return false;
	}
	while (got + 1 < len && (n = recv(fd, reply + got, len - 1 - got, 0)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	close(fd);
	if (got == 0) {
		fprintf(stderr, "pgcheckd: no answer from the agent at %s\n", path);
		return false;
	}
	return true;
}

/* daemon_client runs `pgcheckd ctl COMMAND` and `pgcheckd check REQUEST`; returns the exit code. */
static int
daemon_client(const struct conf *c, int argc, char **argv)
{
	char line[256], reply[16384];
	size_t n = 0;
	bool check = strcmp(argv[0], "check") == 0;

	if (argc < 2 || (!check && argc != 2)) {
		daemon_usage(stderr);
		return EXIT_CONFIG;
	}
	if (!check && strcmp(argv[1], "status") != 0 && strcmp(argv[1], "drain") != 0 &&
	    strcmp(argv[1], "maint") != 0 && strcmp(argv[1], "ready") != 0 && strcmp(argv[1], "release") != 0) {
		daemon_usage(stderr);
		return EXIT_CONFIG;
	}
	n = (size_t)snprintf(line, sizeof(line), "%s", check ? "check" : argv[1]);
	for (int i = 1; check && i < argc && n < sizeof(line); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", argv[i]);
	if (n >= sizeof(line)) {
		fprintf(stderr, "pgcheckd: request too long\n");
		return EXIT_CONFIG;
	}
	if (!daemon_ask(c->admin_socket, line, reply, sizeof(reply)))
		return EXIT_CONFIG; /* errors have been logged already */
	fputs(reply, stdout);
	if (check)
		return strncmp(reply, "up", 2) == 0 ? 0 : strncmp(reply, "down", 4) == 0 ? 1 : EXIT_CONFIG;
	return strncmp(reply, "error", 5) == 0 ? 1 : 0;
}

static void
daemon_usage(FILE *out)
{
	fprintf(out, "usage: pgcheckd [-c FILE]          run the agent (in the foreground)\n"
	             "       pgcheckd -t [-c FILE]       check a configuration file and exit (0 good, 2 bad)\n"
	             "       pgcheckd [-c FILE] ctl status|drain|maint|ready|release\n"
	             "                                   ask or tell the running agent over its admin socket\n"
	             "       pgcheckd [-c FILE] check REQUEST\n"
	             "                                   exit 0 when the running agent answers up, 1 down, 2 unknown\n"
	             "       pgcheckd --help-config[=ini|markdown|man]\n"
	             "                                   print every configuration key\n"
	             "       pgcheckd -V                 print the version\n"
	             "FILE defaults to " CONF_DEFAULT_PATH ".\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},      {"test", no_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},           {"help", no_argument, NULL, 'h'},
	    {"help-config", optional_argument, NULL, 'K'}, {NULL, 0, NULL, 0},
	};
	struct daemon d;
	struct poller_conf pc;
	struct listener_conf lc;
	struct listener_ops ops = {daemon_view, daemon_admin, daemon_peer_state};
	char err[CONF_ERR_MAX], safe[CONF_STR_MAX];
	bool test_only = false;
	uint64_t watchdog_usec = 0;
	int opt;

	memset(&d, 0, sizeof(d));
	d.conf_path = CONF_DEFAULT_PATH;
	while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d.conf_path = optarg;
			break;
		case 't':
			test_only = true;
			break;
		case 'V':
			printf("pgcheckd %s\n", PGCHECKD_VERSION);
			return 0;
		case 'h':
			daemon_usage(stdout);
			return 0;
		case 'K':
			if (optarg != NULL && strcmp(optarg, "markdown") == 0)
				conf_print_keys(stdout);
			else if (optarg != NULL && strcmp(optarg, "man") == 0)
				conf_print_man(stdout);
			else if (optarg == NULL || strcmp(optarg, "ini") == 0)
				conf_print_example(stdout);
			else {
				daemon_usage(stderr);
				return EXIT_CONFIG;
			}
			return 0;
		default:
			daemon_usage(stderr);
			return EXIT_CONFIG;
		}
	}
	if (optind != argc && strcmp(argv[optind], "ctl") != 0 && strcmp(argv[optind], "check") != 0) {
		daemon_usage(stderr);
		return EXIT_CONFIG;
	}
	if (!conf_load(d.conf_path, &d.conf, err, sizeof(err))) {
		fprintf(stderr, "pgcheckd: %s\n", err);
		return EXIT_CONFIG;
	}
	if (optind != argc)
		return daemon_client(&d.conf, argc - optind, argv + optind);
	if (test_only) {
		printf("%s: configuration is valid\n", d.conf_path);
		return 0;
	}

	log_setup((enum log_level)d.conf.log_level, d.conf.log_syslog);
	signal(SIGPIPE, SIG_IGN);
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (d.loop == NULL) {
		log_error("cannot start the event loop");
		return EXIT_START_FAILED;
	}
	verdict_policy(&d.conf, &d.policy);
	node_init(&d.node, &d.conf);
	daemon_listener_conf(&d.conf, &lc);
	d.listener =
	    listener_new(d.loop, LISTENER_AGENT, d.conf.listen_host, d.conf.listen_port, &lc, &ops, &d, &d.counters);
	if (d.listener == NULL)
		return EXIT_START_FAILED; /* errors have been logged already */
	if (d.conf.agent_http_listen[0] != '\0') {
		char host[256];
		int port;

		(void)conf_parse_listen(d.conf.agent_http_listen, host, sizeof(host), &port); /* checked by conf_load */
		d.http = listener_new(d.loop, LISTENER_HTTP, host, port, &lc, &ops, &d, &d.counters);
		if (d.http == NULL) {
			listener_free(d.listener);
			return EXIT_START_FAILED;
		}
	}
	if (d.conf.admin_socket[0] != '\0') {
		/* the checks matter more than ctl: without the socket, run on and say so */
		d.admin = listener_new(d.loop, LISTENER_ADMIN, d.conf.admin_socket, 0, &lc, &ops, &d, &d.counters);
		if (d.admin == NULL)
			log_error("running without an admin socket: 'pgcheckd ctl' and 'pgcheckd check' cannot reach "
			          "this agent");
	}
	daemon_poller_conf(&d.conf, &pc);
	d.started_ms = monoclock_ms();
	d.poller = poller_new(d.loop, &pc, daemon_on_poll, &d);
	if (d.poller == NULL) {
		log_error("out of memory");
		listener_free(d.admin);
		listener_free(d.http);
		listener_free(d.listener);
		return EXIT_START_FAILED;
	}

	daemon_start_peers(&d);
	d.registrar = registrar_new(&d.conf);
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
	if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
		/* the loop is alive when this timer runs: tell the service manager twice per period */
		ev_timer_init(&d.watchdog, daemon_on_watchdog, 0., (double)watchdog_usec / 2e6);
		ev_timer_again(d.loop, &d.watchdog);
	}
	(void)sd_notify(0, "READY=1");
	ev_run(d.loop, 0);

	{
		/* the withdrawal and the controller's last HAProxy exchange get one timeout_ms between them */
		int64_t deadline = monoclock_ms() + d.conf.haproxy_timeout_ms;

		registrar_free(d.registrar, deadline); /* withdraws from HAProxy */
		scaleout_free(d.scaleout, deadline);
	}
	poller_free(d.poller);
	peers_free(d.peers);
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
	ev_loop_destroy(d.loop);
	return 0;
}
