/*
 * main.c: pgcheckd's entry point. Reads the configuration, wires the poller (the only PostgreSQL
 * client), the node state and the agent port onto one libev loop, and handles signals:
 * SIGHUP reloads (a bad file keeps the running configuration), SIGTERM drains then exits.
 * Exits only before the loop runs (2: configuration, 1: start-up) or on a signal (0).
 */
#include <ev.h>
#include <getopt.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "listener.h"
#include "log.h"
#include "monoclock.h"
#include "node.h"
#include "poller.h"
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
#define EXIT_CONFIG 2

struct daemon {
	struct ev_loop *loop;
	const char *conf_path;
	struct conf conf;
	struct policy policy;
	struct node node;
	struct poller *poller;
	struct listener *listener;
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
	lc->client_timeout_ms = c->agent_client_timeout_ms;
}

static void
daemon_on_poll(void *arg, enum poll_result result, const struct sample *s, const char *detail)
{
	struct daemon *d = arg;

	if (result == POLL_OK)
		node_sample(&d->node, s);
	else
		node_fail(&d->node, result, detail);
}

static void
daemon_verdict(void *arg, const struct request *r, struct verdict *out)
{
	struct daemon *d = arg;
	struct node_view view;

	node_view(&d->node, monoclock_ms(), &view);
	verdict_for(&view, r, &d->policy, out);
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
	d->conf = next;
	log_setup((enum log_level)d->conf.log_level, d->conf.log_syslog);
	verdict_policy(&d->conf, &d->policy);
	node_configure(&d->node, &d->conf);
	daemon_poller_conf(&d->conf, &pc);
	poller_reconfigure(d->poller, &pc);
	daemon_listener_conf(&d->conf, &lc);
	listener_reconfigure(d->listener, &lc);
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
	log_info("signal %d: answering drained (up 0%%) for %lld ms, then exiting", w->signum,
		 (long long)d->conf.agent_shutdown_drain_ms);
	ev_timer_set(&d->drain, (double)d->conf.agent_shutdown_drain_ms / 1000.0, 0.);
	ev_timer_start(loop, &d->drain);
}

static void
daemon_usage(FILE *out)
{
	fprintf(out, "usage: pgcheckd [-c FILE]          run the agent (in the foreground)\n"
		     "       pgcheckd -t [-c FILE]       check a configuration file and exit (0 good, 2 bad)\n"
		     "       pgcheckd --help-config[=ini|markdown|man]\n"
		     "                                   print every configuration key\n"
		     "       pgcheckd -V                 print the version\n"
		     "FILE defaults to " CONF_DEFAULT_PATH ".\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
		{"help-config", optional_argument, NULL, 'K'}, {NULL, 0, NULL, 0},
	};
	struct daemon d;
	struct poller_conf pc;
	struct listener_conf lc;
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
	if (optind != argc) {
		daemon_usage(stderr);
		return EXIT_CONFIG;
	}
	if (!conf_load(d.conf_path, &d.conf, err, sizeof(err))) {
		fprintf(stderr, "pgcheckd: %s\n", err);
		return EXIT_CONFIG;
	}
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
	d.listener = listener_new(d.loop, d.conf.listen_host, d.conf.listen_port, &lc, daemon_verdict, &d);
	if (d.listener == NULL)
		return EXIT_START_FAILED; /* errors have been logged already */
	daemon_poller_conf(&d.conf, &pc);
	d.poller = poller_new(d.loop, &pc, daemon_on_poll, &d);
	if (d.poller == NULL) {
		log_error("out of memory");
		listener_free(d.listener);
		return EXIT_START_FAILED;
	}

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

	poller_free(d.poller);
	listener_free(d.listener);
	ev_signal_stop(d.loop, &d.sighup);
	ev_signal_stop(d.loop, &d.sigterm);
	ev_signal_stop(d.loop, &d.sigint);
	ev_timer_stop(d.loop, &d.drain);
	ev_timer_stop(d.loop, &d.watchdog);
	ev_loop_destroy(d.loop);
	return 0;
}
