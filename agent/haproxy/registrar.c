/*
 * registrar.c: registration of this node into HAProxy backends through the runtime API.
 *   template backends: claim a free "server-template" slot (address = [haproxy] free_slot), or keep
 *     the one whose address is ours; a claim is written, checked again after a random pause, and
 *     given up if another node's address replaced it, so two nodes never stay in one slot.
 *   dynamic backends: "add server" under a name derived from our address, so claims cannot collide.
 * A slot of ours that an operator put into maintenance is left alone. Each HAProxy error is logged
 * once per change and retried with backoff. Runs in its own thread; blocking I/O, bounded by timeouts.
 * A reload that changes what is registered is applied by that thread too: it withdraws what the old
 * settings registered, then registers anew; the loop's thread only hands the settings over.
 */
#include "registrar.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "monoclock.h"
#include "runtimeapi.h"
#include "worker.h"

#define REGISTRAR_APIS_MAX       8
#define REGISTRAR_BACKENDS_MAX   16
#define REGISTRAR_ANSWER_MAX     65536
#define REGISTRAR_BACKOFF_MAX_MS 60000
#define REGISTRAR_LINE_MAX       4096 /* one runtime-API line: several commands on one server */
#define REGISTRAR_MSG_MAX        2560 /* one log line: names, an address and HAProxy's answer */
/* claiming a template slot: tries, each after a random pause in which another node may claim it too */
#define REGISTRAR_CLAIM_TRIES         4
#define REGISTRAR_CLAIM_PAUSE_US      50000
#define REGISTRAR_CLAIM_PAUSE_SPAN_US 100000
/* withdrawing a dynamic server: "del server" again while HAProxy still holds its connections */
#define REGISTRAR_DEL_TRIES    5
#define REGISTRAR_DEL_PAUSE_US 50000
/* bit of srv_admin_state: forced maintenance (set server state maint, disable server) */
#define ADMIN_FMAINT 0x01

struct registrar {
	struct worker *worker;
	struct conf conf;       /* handed over by the loop's thread, under the worker's lock */
	struct conf *pass_conf; /* the worker's copy for one pass */
	/* the worker's own state */
	struct conf *registered_conf; /* the settings of the last pass: what a withdrawal takes back */
	bool registered;              /* registered_conf holds a pass's settings */
	bool unreachable;             /* this pass: the HAProxy at hand did not answer (skip its other backends) */
	uint64_t logged[REGISTRAR_APIS_MAX][REGISTRAR_BACKENDS_MAX * 2]; /* hash of the last line logged there */
	int64_t next_try_ms[REGISTRAR_APIS_MAX];
	int64_t backoff_ms[REGISTRAR_APIS_MAX];
	unsigned int seed;
	char *answer;
};

/* what this node registers as */
struct registrar_me {
	char addr[64];
	int pg_port;
	int agent_port;
	char free_addr[256];
	int free_port;
	char who[96]; /* "addr:pgport", for the slot hash and the dynamic server name */
};

int
registrar_pick_slot(const char *who, int attempt, int count)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	if (count <= 0)
		return -1;
	for (const char *p = who; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return (int)((h + (uint32_t)attempt * 7919u) % (uint32_t)count);
}

/*
 * registrar_note logs msg for slot (api, key) only when it differs from what was logged there last
 * (told by a 64-bit FNV-1a hash of the line: 8 bytes a slot instead of the line itself).
 */
static void
registrar_note(struct registrar *r, int api, int key, bool error, const char *msg)
{
	uint64_t h = 14695981039346656037u;

	for (const char *p = msg; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211u;
	h |= 1; /* never 0, the slot's "nothing logged yet" */
	if (r->logged[api][key] == h)
		return;
	r->logged[api][key] = h;
	if (error)
		log_warning("%s", msg);
	else
		log_info("%s", msg);
}

/*
 * One runtime-API line of commands on one server, "VERB BACKEND/SERVER [ARGS]; VERB ...", so the names
 * are written once (each cut as HAProxy's limits allow: 63 and 127 bytes). A line that does not fit is
 * never sent cut: registrar_send refuses it.
 */
struct registrar_cmd {
	char line[REGISTRAR_LINE_MAX];
	size_t len;
	bool overflow;
	const char *backend, *server;
};

static void
registrar_cmd_start(struct registrar_cmd *c, const char *backend, const char *server)
{
	c->line[0] = '\0';
	c->len = 0;
	c->overflow = false;
	c->backend = backend;
	c->server = server;
}

static void registrar_cmd_append(struct registrar_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
registrar_cmd_append(struct registrar_cmd *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(c->line + c->len, sizeof(c->line) - c->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->line) - c->len)
		c->overflow = true;
	else
		c->len += (size_t)n;
}

/* registrar_cmd_add appends "VERB BACKEND/SERVER", then " ARGS" when args is not NULL ("" for none). */
static void
registrar_cmd_add(struct registrar_cmd *c, const char *verb, const char *args)
{
	registrar_cmd_append(c, "%s%s %.63s/%.127s%s%s", c->len > 0 ? "; " : "", verb, c->backend, c->server,
	                     args != NULL && args[0] != '\0' ? " " : "", args != NULL ? args : "");
}

static bool
registrar_api(struct registrar *r, const char *api, const char *line, char *why, size_t whylen)
{
	if (!runtimeapi_command(api, line, (int)r->pass_conf->haproxy_timeout_ms, r->answer, REGISTRAR_ANSWER_MAX, why,
	                        whylen)) {
		r->unreachable = true;
		return false;
	}
	if (!runtimeapi_answer_ok(r->answer)) {
		const char *bad = runtimeapi_error_line(r->answer);
		size_t n = strcspn(bad, "\n");

		snprintf(why, whylen, "'%.80s...' answered: %.*s", line, (int)(n < 160 ? n : 160), bad);
		return false;
	}
	return true;
}

static bool
registrar_send(struct registrar *r, const char *api, const struct registrar_cmd *c, char *why, size_t whylen)
{
	if (c->overflow) {
		snprintf(why, whylen, "the command for %.63s/%.127s does not fit into %d bytes: not sent", c->backend,
		         c->server, REGISTRAR_LINE_MAX);
		return false;
	}
	return registrar_api(r, api, c->line, why, whylen);
}

static int
registrar_state(struct registrar *r, const char *api, const char *backend, struct runtimeapi_server *servers, char *why,
                size_t whylen)
{
	char line[128];
	int n;

	snprintf(line, sizeof(line), "show servers state %s", backend);
	if (!registrar_api(r, api, line, why, whylen))
		return -1;
	n = runtimeapi_parse_state(r->answer, backend, servers, RUNTIMEAPI_SLOTS_MAX);
	if (n < 0)
		snprintf(why, whylen, "cannot read 'show servers state %s'", backend);
	return n;
}

static bool
registrar_is_template_slot(const struct runtimeapi_server *s, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(s->name, prefix, n) != 0 || s->name[n] == '\0')
		return false;
	for (const char *p = s->name + n; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static bool
registrar_is_mine(const struct runtimeapi_server *s, const struct registrar_me *me)
{
	return strcmp(s->addr, me->addr) == 0 && s->port == me->pg_port;
}

static bool
registrar_release_slot(struct registrar *r, const char *api, const char *backend, const char *slot,
                       const struct registrar_me *me, char *why, size_t whylen)
{
	struct registrar_cmd c;
	char arg[320];

	/* the agent settings while the agent is enabled: HAProxy refuses them once it is disabled */
	registrar_cmd_start(&c, backend, slot);
	registrar_cmd_add(&c, "set server", "state maint");
	snprintf(arg, sizeof(arg), "addr %s port %d", me->free_addr, me->free_port);
	registrar_cmd_add(&c, "set server", arg);
	snprintf(arg, sizeof(arg), "check-port %d", me->free_port);
	registrar_cmd_add(&c, "set server", arg);
	snprintf(arg, sizeof(arg), "agent-addr %s", me->free_addr);
	registrar_cmd_add(&c, "set server", arg);
	snprintf(arg, sizeof(arg), "agent-port %d", me->free_port);
	registrar_cmd_add(&c, "set server", arg);
	registrar_cmd_add(&c, "disable agent", NULL);
	return registrar_send(r, api, &c, why, whylen);
}

/* registrar_template keeps this node in one slot of a server-template backend. */
static bool
registrar_template(struct registrar *r, int api_i, int key, const char *api, const char *backend, const char *prefix,
                   const struct registrar_me *me, char *why, size_t whylen)
{
	struct runtimeapi_server servers[RUNTIMEAPI_SLOTS_MAX];
	struct registrar_cmd c;
	char msg[REGISTRAR_MSG_MAX], arg[320];

	for (int attempt = 0; attempt < REGISTRAR_CLAIM_TRIES; attempt++) {
		int n = registrar_state(r, api, backend, servers, why, whylen);
		int mine = -1, nfree = 0, free_idx[RUNTIMEAPI_SLOTS_MAX], pick;

		if (n < 0)
			return false;
		for (int i = 0; i < n; i++) {
			if (!registrar_is_template_slot(&servers[i], prefix))
				continue;
			if (registrar_is_mine(&servers[i], me)) {
				if (mine < 0) {
					mine = i;
				} else if (!registrar_release_slot(r, api, backend, servers[i].name, me, why, whylen)) {
					return false; /* a second slot with our address: give it back */
				}
			} else if (strcmp(servers[i].addr, me->free_addr) == 0 && servers[i].port == me->free_port) {
				free_idx[nfree++] = i;
			}
		}
		if (mine >= 0) {
			const struct runtimeapi_server *s = &servers[mine];

			if (s->admin_state & ADMIN_FMAINT) {
				snprintf(msg, sizeof(msg),
				         "haproxy %s: %.63s/%.127s is in maintenance (an operator's): left alone", api,
				         backend, s->name);
				registrar_note(r, api_i, key, false, msg);
				return true;
			}
			if (s->check_port != me->agent_port || s->agent_port != me->agent_port ||
			    strcmp(s->agent_addr, me->addr) != 0) {
				registrar_cmd_start(&c, backend, s->name);
				snprintf(arg, sizeof(arg), "check-port %d", me->agent_port);
				registrar_cmd_add(&c, "set server", arg);
				snprintf(arg, sizeof(arg), "agent-addr %s", me->addr);
				registrar_cmd_add(&c, "set server", arg);
				snprintf(arg, sizeof(arg), "agent-port %d", me->agent_port);
				registrar_cmd_add(&c, "set server", arg);
				if (!registrar_send(r, api, &c, why, whylen))
					return false;
			}
			snprintf(msg, sizeof(msg), "haproxy %s: registered as %.63s/%.127s", api, backend, s->name);
			registrar_note(r, api_i, key, false, msg);
			return true;
		}
		if (nfree == 0) {
			snprintf(why, whylen, "no free '%.63s' slot in %.63s (free slots have the address %.63s:%d)",
			         prefix, backend, me->free_addr, me->free_port);
			return false;
		}
		pick = free_idx[registrar_pick_slot(me->who, attempt, nfree)];
		registrar_cmd_start(&c, backend, servers[pick].name);
		snprintf(arg, sizeof(arg), "addr %s port %d", me->addr, me->pg_port);
		registrar_cmd_add(&c, "set server", arg);
		snprintf(arg, sizeof(arg), "check-port %d", me->agent_port);
		registrar_cmd_add(&c, "set server", arg);
		registrar_cmd_add(&c, "enable agent", NULL);
		snprintf(arg, sizeof(arg), "agent-addr %s", me->addr);
		registrar_cmd_add(&c, "set server", arg);
		snprintf(arg, sizeof(arg), "agent-port %d", me->agent_port);
		registrar_cmd_add(&c, "set server", arg);
		/* ready and down on one line: the server starts down and is up after its first passing check */
		registrar_cmd_add(&c, "set server", "state ready");
		registrar_cmd_add(&c, "set server", "health down");
		if (!registrar_send(r, api, &c, why, whylen))
			return false;
		/* another node may have claimed the same slot at the same moment: look again after a pause */
		usleep((useconds_t)(REGISTRAR_CLAIM_PAUSE_US + rand_r(&r->seed) % REGISTRAR_CLAIM_PAUSE_SPAN_US));
	}
	snprintf(why, whylen, "lost the race for a slot in %.63s %d times", backend, REGISTRAR_CLAIM_TRIES);
	return false;
}

static void
registrar_dynamic_name(const struct registrar_me *me, char *name, size_t len)
{
	size_t n = (size_t)snprintf(name, len, "pgcheckd-%s", me->who);

	for (size_t i = 0; i < n && i < len; i++)
		if (name[i] == '.' || name[i] == ':' || name[i] == '[' || name[i] == ']')
			name[i] = '-';
}

/*
 * registrar_del_again: "del server" once more, a few times, while HAProxy says the server still has
 * connections. shutdown sessions closes them, but HAProxy 3.0 may not have released them when the next
 * command of the same line runs (seen in the compatibility matrix); 2.6 has. Bounded: at most
 * REGISTRAR_DEL_TRIES pauses of REGISTRAR_DEL_PAUSE_US, within a withdrawal's own deadline.
 */
static bool
registrar_del_again(struct registrar *r, const char *api, const char *backend, const char *name, char *why,
                    size_t whylen)
{
	struct registrar_cmd del;

	registrar_cmd_start(&del, backend, name);
	registrar_cmd_add(&del, "del server", NULL);
	for (int i = 0; i < REGISTRAR_DEL_TRIES && strstr(why, "still has connections") != NULL; i++) {
		usleep(REGISTRAR_DEL_PAUSE_US);
		if (registrar_send(r, api, &del, why, whylen))
			return true;
	}
	return false;
}

/* registrar_dynamic keeps this node added, under its own name, to a backend that allows add server. */
static bool
registrar_dynamic(struct registrar *r, int api_i, int key, const char *api, const char *backend, const char *request,
                  const struct registrar_me *me, char *why, size_t whylen)
{
	struct runtimeapi_server servers[RUNTIMEAPI_SLOTS_MAX];
	struct registrar_cmd c;
	char name[128], msg[REGISTRAR_MSG_MAX], arg[CONF_ADD_SERVER_OPTIONS_MAX + 512];
	int n = registrar_state(r, api, backend, servers, why, whylen);

	if (n < 0)
		return false;
	registrar_dynamic_name(me, name, sizeof(name));
	for (int i = 0; i < n; i++) {
		if (strcmp(servers[i].name, name) != 0)
			continue;
		if (servers[i].admin_state & ADMIN_FMAINT)
			snprintf(msg, sizeof(msg),
			         "haproxy %s: %.63s/%.127s is in maintenance (an operator's): left alone", api, backend,
			         name);
		else
			snprintf(msg, sizeof(msg), "haproxy %s: registered as %.63s/%.127s", api, backend, name);
		registrar_note(r, api_i, key, false, msg);
		return true;
	}
	/* agent-send cannot hold a newline through the runtime API: the agent ends the request on silence */
	registrar_cmd_start(&c, backend, name);
	snprintf(arg, sizeof(arg), "%s:%d %.*s port %d agent-addr %s agent-port %d agent-send %s", me->addr,
	         me->pg_port, CONF_ADD_SERVER_OPTIONS_MAX, r->pass_conf->haproxy_add_server_options, me->agent_port,
	         me->addr, me->agent_port, request);
	registrar_cmd_add(&c, "add server", arg);
	registrar_cmd_add(&c, "enable health", NULL);
	registrar_cmd_add(&c, "enable agent", NULL);
	registrar_cmd_add(&c, "set server", "state ready");
	registrar_cmd_add(&c, "set server", "health down");
	if (!registrar_send(r, api, &c, why, whylen))
		return false;
	snprintf(msg, sizeof(msg), "haproxy %s: registered as %.63s/%.127s", api, backend, name);
	registrar_note(r, api_i, key, false, msg);
	return true;
}

static void
registrar_me(const struct conf *c, struct registrar_me *me)
{
	memset(me, 0, sizeof(*me));
	snprintf(me->addr, sizeof(me->addr), "%.63s", c->haproxy_advertise_addr);
	me->pg_port = (int)c->haproxy_advertise_pg_port;
	me->agent_port = c->haproxy_advertise_agent_port > 0 ? (int)c->haproxy_advertise_agent_port : c->listen_port;
	(void)conf_parse_listen(c->haproxy_free_slot, me->free_addr, sizeof(me->free_addr), &me->free_port);
	snprintf(me->who, sizeof(me->who), "%s:%d", me->addr, me->pg_port);
}

/* registrar_apis splits the runtime_api list. */
static int
registrar_apis(const char *list, char out[][CONF_ADDR_MAX])
{
	const char *cursor = list, *item;
	size_t len;
	int n = 0;

	while (n < REGISTRAR_APIS_MAX && (item = conf_list_next(&cursor, &len)) != NULL)
		snprintf(out[n++], CONF_ADDR_MAX, "%.*s", (int)(len < CONF_ADDR_MAX - 1 ? len : CONF_ADDR_MAX - 1),
		         item);
	return n;
}

bool
registrar_settings_changed(const struct conf *a, const struct conf *b)
{
	return strcmp(a->haproxy_runtime_api, b->haproxy_runtime_api) != 0 ||
	       strcmp(a->haproxy_template_backends, b->haproxy_template_backends) != 0 ||
	       strcmp(a->haproxy_dynamic_backends, b->haproxy_dynamic_backends) != 0 ||
	       strcmp(a->haproxy_advertise_addr, b->haproxy_advertise_addr) != 0 ||
	       strcmp(a->haproxy_free_slot, b->haproxy_free_slot) != 0 ||
	       a->haproxy_advertise_pg_port != b->haproxy_advertise_pg_port ||
	       a->haproxy_advertise_agent_port != b->haproxy_advertise_agent_port ||
	       (a->haproxy_advertise_agent_port == 0 && a->listen_port != b->listen_port);
}

/*
 * registrar_pass reconciles (or, withdrawing, releases) every backend of every HAProxy once. A
 * reconciling pass ends early when the worker is asked to stop; an HAProxy that does not answer is
 * not asked about its other backends in the same pass (each try costs a whole timeout_ms).
 */
static void
registrar_pass(struct registrar *r, struct worker *w, const struct conf *c, bool withdraw)
{
	char apis[REGISTRAR_APIS_MAX][CONF_ADDR_MAX];
	char tnames[REGISTRAR_BACKENDS_MAX][64], tvalues[REGISTRAR_BACKENDS_MAX][64];
	char dnames[REGISTRAR_BACKENDS_MAX][64], dvalues[REGISTRAR_BACKENDS_MAX][64];
	int napi = registrar_apis(c->haproxy_runtime_api, apis), nt = 0, nd = 0;
	struct registrar_me me;
	int64_t now = monoclock_ms();

	registrar_me(c, &me);
	(void)conf_parse_pairs(c->haproxy_template_backends, tnames, tvalues, REGISTRAR_BACKENDS_MAX, &nt);
	(void)conf_parse_pairs(c->haproxy_dynamic_backends, dnames, dvalues, REGISTRAR_BACKENDS_MAX, &nd);
	for (int a = 0; a < napi; a++) {
		bool ok = true;
		char why[512], msg[REGISTRAR_MSG_MAX];

		if (!withdraw && now < r->next_try_ms[a])
			continue; /* backing off after an error */
		r->unreachable = false;
		for (int b = 0; b < nt; b++) {
			why[0] = '\0';
			if (r->unreachable || (!withdraw && worker_stopping(w)))
				break;
			if (withdraw) {
				struct runtimeapi_server servers[RUNTIMEAPI_SLOTS_MAX];
				int n = registrar_state(r, apis[a], tnames[b], servers, why, sizeof(why));

				if (n < 0)
					log_warning("haproxy %s: cannot withdraw from %s: %s", apis[a], tnames[b], why);
				for (int i = 0; i < n; i++)
					if (registrar_is_template_slot(&servers[i], tvalues[b]) &&
					    registrar_is_mine(&servers[i], &me) &&
					    registrar_release_slot(r, apis[a], tnames[b], servers[i].name, &me, why,
					                           sizeof(why)))
						log_info("haproxy %s: withdrew from %.63s/%.127s", apis[a], tnames[b],
						         servers[i].name);
				continue;
			}
			if (!registrar_template(r, a, b, apis[a], tnames[b], tvalues[b], &me, why, sizeof(why))) {
				snprintf(msg, sizeof(msg), "haproxy %s: %.63s: %s; retrying", apis[a], tnames[b], why);
				registrar_note(r, a, b, true, msg);
				ok = false;
			}
		}
		for (int b = 0; b < nd; b++) {
			why[0] = '\0';
			if (r->unreachable || (!withdraw && worker_stopping(w)))
				break;
			if (withdraw) {
				struct registrar_cmd del;
				char name[128];

				registrar_dynamic_name(&me, name, sizeof(name));
				registrar_cmd_start(&del, dnames[b], name);
				registrar_cmd_add(&del, "disable agent", NULL);
				registrar_cmd_add(&del, "disable health", NULL);
				registrar_cmd_add(&del, "set server", "state maint");
				registrar_cmd_add(&del, "shutdown sessions server", NULL);
				registrar_cmd_add(&del, "del server", NULL);
				if (registrar_send(r, apis[a], &del, why, sizeof(why)) ||
				    registrar_del_again(r, apis[a], dnames[b], name, why, sizeof(why)))
					log_info("haproxy %s: withdrew from %.63s/%.127s", apis[a], dnames[b], name);
				else
					log_warning("haproxy %s: cannot withdraw from %s: %s", apis[a], dnames[b], why);
				continue;
			}
			if (!registrar_dynamic(r, a, REGISTRAR_BACKENDS_MAX + b, apis[a], dnames[b], dvalues[b], &me,
			                       why, sizeof(why))) {
				snprintf(msg, sizeof(msg), "haproxy %s: %.63s: %s; retrying", apis[a], dnames[b], why);
				registrar_note(r, a, REGISTRAR_BACKENDS_MAX + b, true, msg);
				ok = false;
			}
		}
		if (ok) {
			r->backoff_ms[a] = 0;
			r->next_try_ms[a] = 0;
		} else {
			r->backoff_ms[a] = r->backoff_ms[a] == 0 ? c->haproxy_reconcile_ms : r->backoff_ms[a] * 2;
			if (r->backoff_ms[a] > REGISTRAR_BACKOFF_MAX_MS)
				r->backoff_ms[a] = REGISTRAR_BACKOFF_MAX_MS;
			r->next_try_ms[a] = now + r->backoff_ms[a];
		}
	}
}

static bool
registrar_wanted(const struct conf *c)
{
	return c->haproxy_runtime_api[0] != '\0' &&
	       (c->haproxy_template_backends[0] != '\0' || c->haproxy_dynamic_backends[0] != '\0');
}

/*
 * registrar_tick is the worker's job: one pass over every HAProxy, with the configuration of the
 * moment. When the registration settings changed since the last pass, what the old ones registered is
 * withdrawn first (here, on this thread: the loop never waits for it).
 */
static int64_t
registrar_tick(void *arg, struct worker *w)
{
	struct registrar *r = arg;

	worker_lock(w);
	*r->pass_conf = r->conf;
	worker_unlock(w);
	if (r->registered && registrar_settings_changed(r->registered_conf, r->pass_conf)) {
		struct conf *next = r->pass_conf;

		log_info("registration settings changed: withdrawing what the old ones registered");
		r->pass_conf = r->registered_conf; /* its timeout too */
		registrar_pass(r, w, r->registered_conf, true);
		r->pass_conf = next;
		memset(r->logged, 0, sizeof(r->logged));
		memset(r->next_try_ms, 0, sizeof(r->next_try_ms));
		memset(r->backoff_ms, 0, sizeof(r->backoff_ms));
		r->registered = false;
	}
	if (registrar_wanted(r->pass_conf)) {
		*r->registered_conf = *r->pass_conf;
		r->registered = true;
		registrar_pass(r, w, r->pass_conf, false);
	}
	return r->pass_conf->haproxy_reconcile_ms;
}

/* registrar_last withdraws what the last pass registered. */
static void
registrar_last(void *arg, struct worker *w)
{
	struct registrar *r = arg;

	if (!r->registered)
		return;
	*r->pass_conf = *r->registered_conf;
	registrar_pass(r, w, r->pass_conf, true);
}

static void
registrar_release(void *arg)
{
	struct registrar *r = arg;

	free(r->answer);
	free(r->pass_conf);
	free(r->registered_conf);
	free(r);
}

struct registrar *
registrar_new(const struct conf *c)
{
	struct registrar *r;
	struct worker_job job = {registrar_tick, registrar_last, registrar_release, NULL};

	if (!registrar_wanted(c))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->answer = malloc(REGISTRAR_ANSWER_MAX);
	r->pass_conf = malloc(sizeof(*r->pass_conf));
	r->registered_conf = malloc(sizeof(*r->registered_conf));
	r->conf = *c;
	r->seed = (unsigned int)getpid() ^ (unsigned int)monoclock_ms();
	job.arg = r;
	/* the worker reads r->conf under its lock; it is complete before the thread starts */
	if (r->answer == NULL || r->pass_conf == NULL || r->registered_conf == NULL ||
	    (r->worker = worker_start(&job)) == NULL) {
		registrar_release(r);
		return NULL;
	}
	return r;
}

void
registrar_reconfigure(struct registrar *r, const struct conf *c)
{
	if (r == NULL)
		return;
	worker_lock(r->worker);
	r->conf = *c;
	worker_unlock(r->worker);
	worker_wake(r->worker);
}

void
registrar_free(struct registrar *r, int64_t deadline_ms)
{
	if (r == NULL)
		return;
	/* runs registrar_last (withdraws); past the deadline the thread is left to finish alone */
	if (!worker_stop(r->worker, deadline_ms))
		log_warning("haproxy: withdrawal not finished in time: left to finish while pgcheckd exits");
}
