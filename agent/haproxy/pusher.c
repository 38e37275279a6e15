/*
 * pusher.c: pushes that take this node out of HAProxy backends or lower its weight there (see
 * pusher.h). Out is "set server B/S health down": the server is DOWN at once, and HAProxy's own health
 * check brings it back UP when it passes again (rise times), so a push can never keep a fit node out
 * for longer than that check takes, nor bring an unfit one in. A server with no health check
 * (agent-check only) gets "set server B/S agent down" instead, which the agent's next reply overrides
 * the same way. Lower is "set server B/S weight N%", N% of the configured weight as in the agent's own
 * "up N%" reply, sent only when "show servers state" shows a higher weight: the agent's next reply
 * raises it again when the node gives more, so a weight push never raises a weight, and it changes
 * no server's state (a DOWN server stays DOWN). "state maint" is not used: maintenance is the
 * operator's (an agent's "ready" would undo it, and pgcheckd never answers "ready").
 */
#include "pusher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monoclock.h"
#include "runtimeapi.h"
#include "worker.h"

#define PUSHER_APIS_MAX       8
#define PUSHER_ANSWER_MAX     65536
#define PUSHER_BACKOFF_MIN_MS 50
#define PUSHER_BACKOFF_MAX_MS 2000

struct pusher_api {
	struct worker *worker;
	char addr[CONF_ADDR_MAX];
	/* under the worker's lock, from the loop's thread */
	struct conf *conf;
	unsigned pending;                       /* requests to push out, not delivered yet */
	unsigned unfit;                         /* the node is unfit for these now */
	int weight_pending[REQUEST_KIND_COUNT]; /* weights to push, not delivered yet (PUSHER_WEIGHT_NONE) */
	/* the worker's own */
	struct conf *pass;
	char *answer;
	bool failing;        /* an episode of failed pushes, logged at its start */
	bool weight_refused; /* HAProxy refused a weight push: logged once, until one is taken again */
	int64_t weight_sent_ms[REQUEST_KIND_COUNT]; /* monoclock of the last weight push per request; 0: none */
	int64_t backoff_ms;
	int ncache;
	char cache_backend[PUSHER_TARGETS_MAX][64]; /* "*" targets: the server found there by our address */
	char cache_server[PUSHER_TARGETS_MAX][64];
};

struct pusher {
	int n;
	struct pusher_api *api[PUSHER_APIS_MAX];
	/* the loop's own */
	int held_pct[REQUEST_KIND_COUNT]; /* the most HAProxy may hold, per request (pusher_weight_plan) */
	int step_pct;                     /* [weight] step_pct */
};

enum pusher_weigh_result { PUSHER_WEIGH_DONE, PUSHER_WEIGH_REFUSED, PUSHER_WEIGH_FAILED };

void
pusher_weight_plan(int held_pct[], const int answered_pct[], int count, int step_pct, int push_pct[])
{
	for (int k = 0; k < count; k++) {
		int w = answered_pct[k];

		push_pct[k] = PUSHER_WEIGHT_NONE;
		if (w < 0) {
			held_pct[k] = 100; /* down: what HAProxy holds when it comes back is not known */
			continue;
		}
		if (w >= held_pct[k]) {
			held_pct[k] = w; /* the agent check tells HAProxy a raise: never pushed */
			continue;
		}
		if (w == 0 || held_pct[k] - w >= step_pct) {
			push_pct[k] = w;
			held_pct[k] = w;
		}
		/* a smaller drop: held as it was, so that drops that add up to a step are pushed */
	}
}

int
pusher_weight_pending(int pending_pct, int push_pct, int answered_pct)
{
	if (push_pct >= 0)
		return push_pct;
	if (pending_pct >= 0 && answered_pct > pending_pct)
		return PUSHER_WEIGHT_NONE;
	return pending_pct;
}

bool
pusher_weight_lowers(int uweight, int iweight, int pct)
{
	if (uweight < 0 || iweight < 0 || pct < 0)
		return false;
	/* as HAProxy's server_parse_weight_change_request: iweight * pct / 100, capped at 256 */
	{
		long target = (long)iweight * (pct > 25600 ? 25600 : pct) / 100;

		if (target > 256)
			target = 256;
		return target < uweight;
	}
}

bool
pusher_parse_targets(const char *list, struct pusher_target *out, int max, int *count)
{
	char names[PUSHER_TARGETS_MAX][64], values[PUSHER_TARGETS_MAX][64];
	int n;

	*count = 0;
	if (max > PUSHER_TARGETS_MAX)
		max = PUSHER_TARGETS_MAX;
	if (!conf_parse_pairs(list, names, values, max, &n))
		return false;
	for (int i = 0; i < n; i++) {
		const char *slash = strchr(names[i], '/');
		int kind = conf_enum_index(conf_request_names, values[i]);

		if (slash == NULL || slash == names[i] || slash[1] == '\0' || strchr(slash + 1, '/') != NULL ||
		    kind < 0)
			return false;
		snprintf(out[i].backend, sizeof(out[i].backend), "%.*s", (int)(slash - names[i]), names[i]);
		snprintf(out[i].server, sizeof(out[i].server), "%.63s", slash + 1);
		out[i].kind = kind;
	}
	*count = n;
	return true;
}

/* pusher_targets: push_servers, then every dynamic backend's server of ours (its request is known). */
static int
pusher_targets(const struct conf *c, struct pusher_target *t)
{
	char names[16][64], values[16][64];
	int n = 0, nd = 0;

	(void)pusher_parse_targets(c->haproxy_push_servers, t, PUSHER_TARGETS_MAX, &n); /* checked by conf_load */
	(void)conf_parse_pairs(c->haproxy_dynamic_backends, names, values, 16, &nd);
	for (int i = 0; i < nd && n < PUSHER_TARGETS_MAX; i++) {
		int kind = conf_enum_index(conf_request_names, values[i]);

		if (kind < 0)
			continue;
		snprintf(t[n].backend, sizeof(t[n].backend), "%.63s", names[i]);
		snprintf(t[n].server, sizeof(t[n].server), "*");
		t[n].kind = kind;
		n++;
	}
	return n;
}

bool
pusher_wanted(const struct conf *c)
{
	return c->haproxy_runtime_api[0] != '\0' &&
	       (c->haproxy_push_servers[0] != '\0' || c->haproxy_dynamic_backends[0] != '\0');
}

static bool
pusher_command(struct pusher_api *a, const char *line, char *why, size_t whylen)
{
	return runtimeapi_command(a->addr, line, (int)a->pass->haproxy_timeout_ms, a->answer, PUSHER_ANSWER_MAX, why,
	                          whylen);
}

/* pusher_find finds our server in backend ("show servers state"); false (why) when it cannot. */
static bool
pusher_find(struct pusher_api *a, const char *backend, char *server, size_t len, bool *reached, char *why,
            size_t whylen)
{
	char line[128];
	int n;

	snprintf(line, sizeof(line), "show servers state %s", backend);
	*reached = pusher_command(a, line, why, whylen);
	if (!*reached)
		return false;
	{
		struct runtimeapi_server *sv = calloc(RUNTIMEAPI_SLOTS_MAX, sizeof(*sv));

		if (sv == NULL) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
		n = runtimeapi_parse_state(a->answer, backend, sv, RUNTIMEAPI_SLOTS_MAX);
		for (int i = 0; i < n; i++) {
			if (strcmp(sv[i].addr, a->pass->haproxy_advertise_addr) == 0 &&
			    sv[i].port == (int)a->pass->haproxy_advertise_pg_port) {
				snprintf(server, len, "%.63s", sv[i].name);
				free(sv);
				return true;
			}
		}
		free(sv);
	}
	snprintf(why, whylen, "no server of %.63s has this node's address %.63s:%d", backend,
	         a->pass->haproxy_advertise_addr, (int)a->pass->haproxy_advertise_pg_port);
	return false;
}

/* pusher_name gives the server a target means; "*": from the cache, or looked up (and cached). */
static bool
pusher_name(struct pusher_api *a, const struct pusher_target *t, char *server, size_t len, bool *reached, char *why,
            size_t whylen)
{
	*reached = true;
	if (strcmp(t->server, "*") != 0) {
		snprintf(server, len, "%s", t->server);
		return true;
	}
	for (int i = 0; i < a->ncache; i++)
		if (strcmp(a->cache_backend[i], t->backend) == 0) {
			snprintf(server, len, "%s", a->cache_server[i]);
			return true;
		}
	if (!pusher_find(a, t->backend, server, len, reached, why, whylen))
		return false;
	if (a->ncache < PUSHER_TARGETS_MAX) {
		snprintf(a->cache_backend[a->ncache], sizeof(a->cache_backend[0]), "%s", t->backend);
		snprintf(a->cache_server[a->ncache], sizeof(a->cache_server[0]), "%s", server);
		a->ncache++;
	}
	return true;
}

/* pusher_out takes our server out of one backend; false (why) when that was not done. */
static bool
pusher_out(struct pusher_api *a, const struct pusher_target *t, bool *reached, char *why, size_t whylen)
{
	char server[64], line[256];

	if (!pusher_name(a, t, server, sizeof(server), reached, why, whylen))
		return false;
	snprintf(line, sizeof(line), "set server %.63s/%.63s health down", t->backend, server);
	if (!(*reached = pusher_command(a, line, why, whylen)))
		return false;
	if (strstr(a->answer, "health checks are not enabled") != NULL) {
		snprintf(line, sizeof(line), "set server %.63s/%.63s agent down", t->backend, server);
		if (!(*reached = pusher_command(a, line, why, whylen)))
			return false;
	}
	if (!runtimeapi_answer_ok(a->answer)) {
		const char *bad = runtimeapi_error_line(a->answer);

		snprintf(why, whylen, "'%s' answered: %.*s", line, (int)strcspn(bad, "\n"), bad);
		a->ncache = 0; /* a slot may have moved: look it up again */
		return false;
	}
	log_info("haproxy %s: took this node out of %s/%s (unfit for %s)", a->addr, t->backend, server,
	         conf_request_names[t->kind]);
	return true;
}

/*
 * pusher_weigh lowers our server's weight in one backend to pct% of its configured weight, when HAProxy
 * shows it higher; DONE also when it was not higher. REFUSED: HAProxy answered an error (a static
 * algorithm takes only 0% and 100%), not retried. FAILED (why): not reached, or our server not found.
 */
static enum pusher_weigh_result
pusher_weigh(struct pusher_api *a, const struct pusher_target *t, int pct, bool *reached, char *why, size_t whylen)
{
	char server[64], line[256];
	struct runtimeapi_server *sv;
	int n, uweight = -1, iweight = -1;
	bool found = false;

	if (!pusher_name(a, t, server, sizeof(server), reached, why, whylen))
		return PUSHER_WEIGH_FAILED;
	snprintf(line, sizeof(line), "show servers state %.63s", t->backend);
	if (!(*reached = pusher_command(a, line, why, whylen)))
		return PUSHER_WEIGH_FAILED;
	sv = calloc(RUNTIMEAPI_SLOTS_MAX, sizeof(*sv));
	if (sv == NULL) {
		snprintf(why, whylen, "out of memory");
		return PUSHER_WEIGH_FAILED;
	}
	n = runtimeapi_parse_state(a->answer, t->backend, sv, RUNTIMEAPI_SLOTS_MAX);
	for (int i = 0; i < n && !found; i++)
		if (strcmp(sv[i].name, server) == 0) {
			found = true;
			uweight = sv[i].uweight;
			iweight = sv[i].iweight;
		}
	free(sv);
	if (!found) {
		snprintf(why, whylen, "no server %.63s/%.63s in 'show servers state'", t->backend, server);
		a->ncache = 0; /* a slot may have moved: look it up again */
		return PUSHER_WEIGH_FAILED;
	}
	if (uweight < 0 || iweight < 0) {
		snprintf(why, whylen, "'show servers state' shows no weights (srv_uweight, srv_iweight)");
		return PUSHER_WEIGH_REFUSED;
	}
	if (!pusher_weight_lowers(uweight, iweight, pct))
		return PUSHER_WEIGH_DONE; /* HAProxy holds as little already: nothing to lower */
	snprintf(line, sizeof(line), "set server %.63s/%.63s weight %d%%", t->backend, server, pct);
	if (!(*reached = pusher_command(a, line, why, whylen)))
		return PUSHER_WEIGH_FAILED;
	if (!runtimeapi_answer_ok(a->answer)) {
		const char *bad = runtimeapi_error_line(a->answer);

		snprintf(why, whylen, "'%s' answered: %.*s", line, (int)strcspn(bad, "\n"), bad);
		return PUSHER_WEIGH_REFUSED;
	}
	log_info("haproxy %s: lowered this node's weight in %s/%s from %d to %d%% of %d (answers %s up %d%%)", a->addr,
	         t->backend, server, uweight, pct, iweight, conf_request_names[t->kind], pct);
	return PUSHER_WEIGH_DONE;
}

/*
 * pusher_weigh_all delivers the weights of todo (PUSHER_WEIGHT_NONE: none) that are due at now_ms;
 * *next_ms is lowered to when one not due yet is. Returns the requests not delivered (retried).
 */
static unsigned
pusher_weigh_all(struct pusher_api *a, struct worker *w, const struct pusher_target *t, int n, const int *todo,
                 int64_t now_ms, int64_t *next_ms, char *why, size_t whylen)
{
	unsigned undone = 0;

	for (int k = 0; k < REQUEST_KIND_COUNT && !worker_stopping(w); k++) {
		int64_t wait_ms = a->weight_sent_ms[k] + PUSHER_WEIGHT_GAP_MS - now_ms;
		bool delivered = true, reached = true;

		if (todo[k] < 0)
			continue;
		if (a->weight_sent_ms[k] != 0 && wait_ms > 0) {
			if (*next_ms < 0 || wait_ms < *next_ms)
				*next_ms = wait_ms; /* at most one push every PUSHER_WEIGHT_GAP_MS: the latest then */
			continue;
		}
		for (int i = 0; i < n && reached; i++) {
			char refused[512];

			if (t[i].kind != k)
				continue;
			switch (pusher_weigh(a, &t[i], todo[k], &reached, refused, sizeof(refused))) {
			case PUSHER_WEIGH_DONE:
				a->weight_refused = false;
				break;
			case PUSHER_WEIGH_REFUSED:
				if (!a->weight_refused)
					log_warning("haproxy %s: cannot lower this node's weight in %s (%s); the agent "
					            "check will",
					            a->addr, t[i].backend, refused);
				a->weight_refused = true;
				break;
			case PUSHER_WEIGH_FAILED:
				delivered = false;
				snprintf(why, whylen, "%s", refused);
				break;
			}
		}
		if (!delivered) {
			undone |= 1u << k;
			if (!reached)
				break; /* each try costs a timeout: the others wait for the retry */
			continue;
		}
		a->weight_sent_ms[k] = now_ms;
		worker_lock(w);
		if (a->weight_pending[k] == todo[k])
			a->weight_pending[k] = PUSHER_WEIGHT_NONE;
		else if (a->weight_pending[k] >= 0 && (*next_ms < 0 || PUSHER_WEIGHT_GAP_MS < *next_ms))
			*next_ms = PUSHER_WEIGHT_GAP_MS; /* a newer one came meanwhile */
		worker_unlock(w);
	}
	return undone;
}

static int64_t
pusher_tick(void *arg, struct worker *w)
{
	struct pusher_api *a = arg;
	struct pusher_target t[PUSHER_TARGETS_MAX];
	int weights[REQUEST_KIND_COUNT];
	unsigned todo, undone = 0, wundone = 0;
	bool weigh = false, reached = true;
	int64_t next_ms = -1;
	int n;
	char why[512] = "";

	worker_lock(w);
	*a->pass = *a->conf;
	todo = a->pending;
	for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
		weights[k] = a->weight_pending[k];
		weigh = weigh || weights[k] >= 0;
	}
	worker_unlock(w);
	n = pusher_targets(a->pass, t);
	if (todo == 0 && !weigh) {
		/* quiet: learn where our "*" servers are, so that a push is one exchange */
		a->ncache = 0;
		for (int i = 0; i < n && !worker_stopping(w); i++) {
			char server[64];

			if (strcmp(t[i].server, "*") == 0 &&
			    !pusher_name(a, &t[i], server, sizeof(server), &reached, why, sizeof(why)) && !reached)
				break;
		}
		return a->pass->haproxy_reconcile_ms;
	}
	for (int i = 0; i < n && !worker_stopping(w); i++) {
		if (!(todo & (1u << t[i].kind)))
			continue;
		if (!pusher_out(a, &t[i], &reached, why, sizeof(why))) {
			undone |= 1u << t[i].kind;
			if (!reached)
				break; /* each try costs a timeout: the others wait for the retry */
		}
	}
	if (weigh && reached)
		wundone = pusher_weigh_all(a, w, t, n, weights, monoclock_ms(), &next_ms, why, sizeof(why));
	if (undone == 0) {
		worker_lock(w);
		a->pending &= ~todo;
		worker_unlock(w);
	}
	if (undone == 0 && wundone == 0) {
		if (a->failing)
			log_info("haproxy %s: pushes delivered again", a->addr);
		a->failing = false;
		a->backoff_ms = 0;
		/* anything that came meanwhile goes at once (a weight once its gap is over); else the next tick idles
		 */
		return next_ms >= 0 ? next_ms : 0;
	}
	if (!a->failing)
		log_warning("haproxy %s: cannot %s (%s); HAProxy's own check will; retrying with backoff", a->addr,
		            undone != 0 ? "take this node out" : "lower this node's weight", why);
	a->failing = true;
	a->backoff_ms = a->backoff_ms == 0 ? PUSHER_BACKOFF_MIN_MS : a->backoff_ms * 2;
	if (a->backoff_ms > PUSHER_BACKOFF_MAX_MS)
		a->backoff_ms = PUSHER_BACKOFF_MAX_MS;
	return a->backoff_ms;
}

static void
pusher_release(void *arg)
{
	struct pusher_api *a = arg;

	free(a->answer);
	free(a->pass);
	free(a->conf);
	free(a);
}

struct pusher *
pusher_new(const struct conf *c)
{
	struct pusher *p;
	const char *cursor = c->haproxy_runtime_api, *item;
	size_t len;

	if (!pusher_wanted(c))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->step_pct = (int)c->weight_step_pct;
	for (int k = 0; k < REQUEST_KIND_COUNT; k++)
		p->held_pct[k] = 100; /* not known yet */
	while (p->n < PUSHER_APIS_MAX && (item = conf_list_next(&cursor, &len)) != NULL) {
		struct pusher_api *a = calloc(1, sizeof(*a));
		struct worker_job job = {pusher_tick, NULL, pusher_release, a};

		if (a == NULL)
			break;
		snprintf(a->addr, sizeof(a->addr), "%.*s", (int)(len < CONF_ADDR_MAX - 1 ? len : CONF_ADDR_MAX - 1),
		         item);
		a->conf = malloc(sizeof(*a->conf));
		a->pass = malloc(sizeof(*a->pass));
		a->answer = malloc(PUSHER_ANSWER_MAX);
		if (a->conf == NULL || a->pass == NULL || a->answer == NULL) {
			pusher_release(a);
			break;
		}
		*a->conf = *c;
		a->unfit = ~0u; /* only a request the node was fit for is ever pushed out: none at start */
		for (int k = 0; k < REQUEST_KIND_COUNT; k++)
			a->weight_pending[k] = PUSHER_WEIGHT_NONE;
		/* the worker reads a->conf under its lock; it is complete before the thread starts */
		if ((a->worker = worker_start(&job)) == NULL) {
			pusher_release(a);
			break;
		}
		p->api[p->n++] = a;
	}
	return p;
}

void
pusher_reconfigure(struct pusher *p, const struct conf *c)
{
	if (p == NULL)
		return;
	p->step_pct = (int)c->weight_step_pct;
	for (int i = 0; i < p->n; i++) {
		worker_lock(p->api[i]->worker);
		*p->api[i]->conf = *c;
		worker_unlock(p->api[i]->worker);
	}
}

void
pusher_update(struct pusher *p, unsigned unfit, const int weight_pct[REQUEST_KIND_COUNT])
{
	int push[REQUEST_KIND_COUNT];
	bool weigh = false;

	if (p == NULL)
		return;
	pusher_weight_plan(p->held_pct, weight_pct, REQUEST_KIND_COUNT, p->step_pct, push);
	for (int k = 0; k < REQUEST_KIND_COUNT; k++)
		weigh = weigh || push[k] >= 0;
	for (int i = 0; i < p->n; i++) {
		struct pusher_api *a = p->api[i];
		unsigned newly;

		worker_lock(a->worker);
		newly = unfit & ~a->unfit;
		a->pending = (a->pending | newly) & unfit;
		a->unfit = unfit;
		for (int k = 0; k < REQUEST_KIND_COUNT; k++)
			a->weight_pending[k] = pusher_weight_pending(a->weight_pending[k], push[k], weight_pct[k]);
		worker_unlock(a->worker);
		if (newly != 0 || weigh)
			worker_wake(a->worker);
	}
}

void
pusher_free(struct pusher *p, int64_t deadline_ms)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->n; i++) {
		char addr[CONF_ADDR_MAX];

		/* the thread frees its state once stopped, maybe before worker_stop returns: nothing of it after */
		snprintf(addr, sizeof(addr), "%s", p->api[i]->addr);
		if (!worker_stop(p->api[i]->worker, deadline_ms))
			log_warning("haproxy %s: a push still running while pgcheckd exits", addr);
	}
	free(p);
}
