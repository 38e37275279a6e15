/*
 * scaleout.c: the scale-out controller, on a worker thread. Each tick: read "show stat", add the
 * backend's sessions per up server to the window, decide, and start the command with posix_spawn
 * (its output read without blocking and logged line by line). One command at a time; it is never
 * killed (it may be provisioning a replica) and never waited for: its end comes from libev's child
 * watcher on the loop, and at shutdown a running command is left to finish.
 */
#include "scaleout.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "monoclock.h"
#include "runtimeapi.h"
#include "worker.h"

#define SCALEOUT_WINDOW_MAX 3600
#define SCALEOUT_ANSWER_MAX 262144
/* child ends libev reported that the controller has not looked at yet */
#define SCALEOUT_EXITED_MAX 16
/* with no backend (turned off by a reload), how often a running command is looked at */
#define SCALEOUT_IDLE_MS 1000

extern char **environ;

/*
 * One controller for the daemon's life: a reload hands it new settings and it keeps its command, its
 * cooldown and (for the same backend) its window.
 */
struct scaleout {
	struct worker *worker;
	struct ev_loop *loop;
	ev_child on_child;      /* the loop's: every child libev reaped */
	struct conf conf;       /* handed over under the worker's lock */
	struct conf *tick_conf; /* the worker's copy */
	pthread_mutex_t child_lock;
	struct {
		pid_t pid; /* 0: free */
		int status;
	} exited[SCALEOUT_EXITED_MAX]; /* under child_lock */
	int exited_next;               /* under child_lock */
	/* the worker's own state */
	char *answer;
	double window[SCALEOUT_WINDOW_MAX];
	int filled, head, window_size;
	char window_backend[CONF_STR_MAX], window_api[CONF_ADDR_MAX]; /* what the window measures */
	int64_t last_action_ms;
	bool acted;
	pid_t child;
	enum scaleout_action child_action;
	int child_out;
	char out_line[512];
	size_t out_len;
	char logged_why[320];
};

enum scaleout_action
scaleout_decide(const struct scaleout_policy *p, bool window_full, double load, int pool, int64_t now_ms,
                int64_t last_action_ms, bool running, char *why, size_t whylen)
{
	why[0] = '\0';
	if (running) {
		snprintf(why, whylen, "a command is still running");
		return SCALEOUT_NONE;
	}
	if (!window_full)
		return SCALEOUT_NONE;
	if (load >= p->high_sessions && p->high_sessions > 0) {
		if (pool >= p->max_pool) {
			snprintf(why, whylen, "load %.1f sessions per server, but the pool is at its maximum %d", load,
			         p->max_pool);
			return SCALEOUT_NONE;
		}
		if (last_action_ms > 0 && now_ms - last_action_ms < p->cooldown_ms) {
			snprintf(why, whylen, "load %.1f sessions per server; cooling down", load);
			return SCALEOUT_NONE;
		}
		return SCALEOUT_UP;
	}
	if (p->can_shrink && p->low_sessions > 0 && load <= p->low_sessions) {
		if (pool <= p->min_pool) {
			snprintf(why, whylen, "load %.1f sessions per server, but the pool is at its minimum %d", load,
			         p->min_pool);
			return SCALEOUT_NONE;
		}
		if (last_action_ms > 0 && now_ms - last_action_ms < p->cooldown_ms) {
			snprintf(why, whylen, "load %.1f sessions per server; cooling down", load);
			return SCALEOUT_NONE;
		}
		return SCALEOUT_DOWN;
	}
	return SCALEOUT_NONE;
}

/*
 * scaleout_field copies field idx (0-based) of the CSV line at line into buf (cut to fit); false when
 * the line has fewer fields. Reads no further than the line's end.
 */
static bool
scaleout_field(const char *line, int idx, char *buf, size_t len)
{
	const char *p = line;

	for (int i = 0; i < idx; i++) {
		p += strcspn(p, ",\n");
		if (*p != ',')
			return false;
		p++;
	}
	{
		size_t n = strcspn(p, ",\n");

		if (n >= len)
			n = len - 1;
		memcpy(buf, p, n);
		buf[n] = '\0';
	}
	return true;
}

/* scaleout_count reads a session count: a finite decimal from 0 to SCALEOUT_SESSIONS_MAX; anything else is 0. */
static double
scaleout_count(const char *s)
{
	char *end;
	double v;

	if (*s == '\0' || strpbrk(s, "xXpP") != NULL) /* no hex floats */
		return 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || !isfinite(v) || v < 0)
		return 0;
	return v > SCALEOUT_SESSIONS_MAX ? SCALEOUT_SESSIONS_MAX : v;
}

bool
scaleout_parse_stat(const char *csv, const char *backend, int *up, double *sessions)
{
	enum { C_PX, C_SV, C_SCUR, C_QCUR, C_STATUS, C_COUNT };
	static const char *const names[C_COUNT] = {"pxname", "svname", "scur", "qcur", "status"};
	int col[C_COUNT] = {-1, -1, -1, -1, -1};
	const char *line = csv;
	bool found = false;

	*up = 0;
	*sessions = 0;
	if (!runtimeapi_stat_columns(csv, names, C_COUNT, col))
		return false;
	while ((line = strchr(line, '\n')) != NULL && *++line != '\0') {
		char f[C_COUNT][64];
		bool complete = true;

		for (int i = 0; i < C_COUNT && complete; i++)
			complete = scaleout_field(line, col[i], f[i], sizeof(f[i]));
		if (!complete)
			continue; /* blank or short line */
		if (strcmp(f[C_PX], backend) != 0)
			continue;
		found = true;
		if (strcmp(f[C_SV], "BACKEND") == 0 || strcmp(f[C_SV], "FRONTEND") == 0)
			continue;
		if (strncmp(f[C_STATUS], "UP", 2) != 0)
			continue;
		if (*up < INT_MAX)
			(*up)++;
		*sessions += scaleout_count(f[C_SCUR]) + scaleout_count(f[C_QCUR]);
	}
	return found;
}

/* scaleout_drain_output logs whatever the command wrote, a line at a time, without blocking. */
static void
scaleout_drain_output(struct scaleout *s, bool final)
{
	char buf[512];
	ssize_t n;

	while (s->child_out >= 0 && (n = read(s->child_out, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || s->out_len == sizeof(s->out_line) - 1) {
				s->out_line[s->out_len] = '\0';
				log_info("scale-out command: %s", s->out_line);
				s->out_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			s->out_line[s->out_len++] = buf[i];
		}
	}
	if (final && s->out_len > 0) {
		s->out_line[s->out_len] = '\0';
		log_info("scale-out command: %s", s->out_line);
		s->out_len = 0;
	}
}

/*
 * scaleout_on_child runs on the loop when libev reaped a child (libev's default loop reaps every child,
 * so waitpid elsewhere would miss it): the status is kept for the controller, which may not even know
 * the pid yet (it is handed over after posix_spawn returns).
 */
static void
scaleout_on_child(struct ev_loop *loop, ev_child *w, int revents)
{
	struct scaleout *s = w->data;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&s->child_lock);
	s->exited[s->exited_next].pid = w->rpid;
	s->exited[s->exited_next].status = w->rstatus;
	s->exited_next = (s->exited_next + 1) % SCALEOUT_EXITED_MAX;
	pthread_mutex_unlock(&s->child_lock);
	worker_wake(s->worker);
}

/* scaleout_reap notices the command's end and logs it; true while it still runs. */
static bool
scaleout_reap(struct scaleout *s)
{
	bool ended = false;
	int status = 0;
	const char *what = s->child_action == SCALEOUT_UP ? "up" : "down";

	if (s->child <= 0)
		return false;
	scaleout_drain_output(s, false);
	pthread_mutex_lock(&s->child_lock);
	for (int i = 0; i < SCALEOUT_EXITED_MAX; i++)
		if (s->exited[i].pid == s->child) {
			status = s->exited[i].status;
			s->exited[i].pid = 0;
			ended = true;
		}
	pthread_mutex_unlock(&s->child_lock);
	if (!ended)
		return true;
	scaleout_drain_output(s, true);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_info("scale-out %s command (pid %d) finished", what, (int)s->child);
	else if (WIFEXITED(status))
		log_warning("scale-out %s command (pid %d) failed with exit status %d", what, (int)s->child,
		            WEXITSTATUS(status));
	else
		log_warning("scale-out %s command (pid %d) ended by signal %d", what, (int)s->child,
		            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	close(s->child_out);
	s->child_out = -1;
	s->child = 0;
	return false;
}

/*
 * scaleout_run starts the command. It gets an empty signal mask and every signal at its default (this
 * thread blocks them all, and pgcheckd ignores SIGPIPE): a shell that keeps them would ignore SIGTERM.
 * The command line is never logged (it may hold a secret), only which command and its pid.
 */
static void
scaleout_run(struct scaleout *s, const struct conf *c, enum scaleout_action action, int pool, double load)
{
	const char *cmd = action == SCALEOUT_UP ? c->scaleout_up_command : c->scaleout_down_command;
	const char *what = action == SCALEOUT_UP ? "up" : "down";
	char vars[6][CONF_STR_MAX + 32];
	char *envp[512], *argv[] = {"sh", "-c", (char *)(uintptr_t)cmd, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	pid_t pid = 0;
	int pipefd[2], n = 0, rc;

	snprintf(vars[0], sizeof(vars[0]), "PGCHECKD_ACTION=%s", what);
	snprintf(vars[1], sizeof(vars[1]), "PGCHECKD_BACKEND=%s", c->scaleout_backend);
	snprintf(vars[2], sizeof(vars[2]), "PGCHECKD_POOL_SIZE=%d", pool);
	snprintf(vars[3], sizeof(vars[3]), "PGCHECKD_LOAD=%.2f", load);
	snprintf(vars[4], sizeof(vars[4]), "PGCHECKD_MAX_POOL=%d", (int)c->scaleout_max_pool);
	snprintf(vars[5], sizeof(vars[5]), "PGCHECKD_RUNTIME_API=%s", c->haproxy_runtime_api);
	for (char **e = environ; *e != NULL && n < 500; e++)
		if (strncmp(*e, "PGCHECKD_", 9) != 0)
			envp[n++] = *e;
	for (int i = 0; i < 6; i++)
		envp[n++] = vars[i];
	envp[n] = NULL;
	s->last_action_ms = monoclock_ms();
	s->acted = true;
	if (c->scaleout_dry_run) {
		log_info("scale-out (dry run): would run the %s command (pool %d, load %.1f sessions per server)", what,
		         pool, load);
		return;
	}
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		log_error("scale-out: cannot create a pipe: %s", strerror(errno));
		return;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		log_error("scale-out: cannot run the %s command: %s", what, strerror(rc));
		close(pipefd[0]);
		return;
	}
	(void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	s->child_out = pipefd[0];
	s->child = pid; /* its exit may already wait in s->exited: scaleout_reap looks there */
	s->child_action = action;
	log_warning("scale-out: running the %s command (pid %d; pool %d, load %.1f sessions per server over %ds)", what,
	            (int)pid, pool, load, (int)c->scaleout_window_s);
}

/* scaleout_window_size is how many readings the window holds. */
static int
scaleout_window_size(const struct conf *c)
{
	int64_t size = c->scaleout_window_s * 1000 / c->scaleout_interval_ms;

	return size < 1 ? 1 : size > SCALEOUT_WINDOW_MAX ? SCALEOUT_WINDOW_MAX : (int)size;
}

static int64_t
scaleout_tick(void *arg, struct worker *w)
{
	struct scaleout *s = arg;
	struct conf *c = s->tick_conf;
	char api[CONF_ADDR_MAX], why[256];
	struct scaleout_policy p;
	int up = 0, size;
	double sessions = 0, sum = 0;
	bool running;
	enum scaleout_action action;

	worker_lock(w);
	*c = s->conf;
	worker_unlock(w);
	running = scaleout_reap(s);
	snprintf(api, sizeof(api), "%.*s", (int)strcspn(c->haproxy_runtime_api, " ,\t"), c->haproxy_runtime_api);
	size = scaleout_window_size(c);
	if (strcmp(s->window_backend, c->scaleout_backend) != 0 || strcmp(s->window_api, api) != 0 ||
	    size != s->window_size) {
		/* another backend or HAProxy (or window): its load starts anew; the command and cooldown stay */
		if (s->window_size > 0 && strcmp(s->window_backend, c->scaleout_backend) != 0) {
			if (c->scaleout_backend[0] == '\0')
				log_info("scale-out controller off (no [scaleout] backend)%s",
				         s->child > 0 ? ": following its running command" : "");
			else
				log_info("scale-out controller now on %s", c->scaleout_backend);
		}
		snprintf(s->window_backend, sizeof(s->window_backend), "%s", c->scaleout_backend);
		snprintf(s->window_api, sizeof(s->window_api), "%s", api);
		s->window_size = size;
		s->filled = 0;
		s->head = 0;
		s->logged_why[0] = '\0';
	}
	if (c->scaleout_backend[0] == '\0')
		return SCALEOUT_IDLE_MS; /* turned off by a reload: only a running command is followed */
	if (!runtimeapi_command(api, "show stat", (int)c->haproxy_timeout_ms, s->answer, SCALEOUT_ANSWER_MAX, why,
	                        sizeof(why)) ||
	    !scaleout_parse_stat(s->answer, c->scaleout_backend, &up, &sessions)) {
		char msg[sizeof(s->logged_why)];

		snprintf(msg, sizeof(msg), "scale-out: cannot read the load of %.60s from %.60s: %.100s",
		         c->scaleout_backend, api, why[0] != '\0' ? why : "no such backend");
		if (strcmp(msg, s->logged_why) != 0)
			log_warning("%s", msg);
		snprintf(s->logged_why, sizeof(s->logged_why), "%s", msg);
		return c->scaleout_interval_ms;
	}
	s->window[s->head] = up > 0 ? sessions / up : sessions;
	s->head = (s->head + 1) % size;
	if (s->filled < size)
		s->filled++;
	for (int i = 0; i < s->filled; i++)
		sum += s->window[i];
	p.high_sessions = c->scaleout_high_sessions;
	p.low_sessions = c->scaleout_low_sessions;
	p.cooldown_ms = c->scaleout_cooldown_s * 1000;
	p.max_pool = (int)c->scaleout_max_pool;
	p.min_pool = (int)c->scaleout_min_pool;
	p.can_shrink = c->scaleout_down_command[0] != '\0';
	action = scaleout_decide(&p, s->filled >= size, sum / s->filled, up, monoclock_ms(),
	                         s->acted ? s->last_action_ms : 0, running, why, sizeof(why));
	if (action != SCALEOUT_NONE) {
		scaleout_run(s, c, action, up, sum / s->filled);
		s->filled = 0; /* the next decision waits for a window measured after this one */
		s->head = 0;
	} else if (strcmp(why, s->logged_why) != 0) {
		if (why[0] != '\0')
			log_info("scale-out: %s", why);
		snprintf(s->logged_why, sizeof(s->logged_why), "%s", why);
	}
	return c->scaleout_interval_ms;
}

/* scaleout_last runs when the controller stops: a running command is not waited for, only reported. */
static void
scaleout_last(void *arg, struct worker *w)
{
	struct scaleout *s = arg;

	(void)w;
	if (scaleout_reap(s))
		log_warning("scale-out %s command (pid %d) still running at exit: left to finish",
		            s->child_action == SCALEOUT_UP ? "up" : "down", (int)s->child);
	if (s->child_out >= 0)
		close(s->child_out);
	s->child_out = -1;
}

static void
scaleout_release(void *arg)
{
	struct scaleout *s = arg;

	pthread_mutex_destroy(&s->child_lock);
	free(s->answer);
	free(s->tick_conf);
	free(s);
}

struct scaleout *
scaleout_new(struct ev_loop *loop, const struct conf *c)
{
	struct scaleout *s;
	struct worker_job job = {scaleout_tick, scaleout_last, scaleout_release, NULL};

	if (c->scaleout_backend[0] == '\0')
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->conf = *c;
	s->child_out = -1;
	s->loop = loop;
	pthread_mutex_init(&s->child_lock, NULL);
	s->answer = malloc(SCALEOUT_ANSWER_MAX);
	s->tick_conf = malloc(sizeof(*s->tick_conf));
	job.arg = s;
	if (s->answer == NULL || s->tick_conf == NULL) {
		scaleout_release(s);
		return NULL;
	}
	/* every child's end, from libev (which reaps them all on the default loop); pid 0: any child */
	ev_child_init(&s->on_child, scaleout_on_child, 0, 0);
	s->on_child.data = s;
	/* its callback wakes the worker, so the worker comes first; no callback runs before the loop turns */
	if ((s->worker = worker_start(&job)) == NULL) {
		scaleout_release(s);
		return NULL;
	}
	ev_child_start(loop, &s->on_child);
	log_info("scale-out controller on %s: grows at %.1f sessions per server over %ds, at most %d servers%s",
	         c->scaleout_backend, c->scaleout_high_sessions, (int)c->scaleout_window_s, (int)c->scaleout_max_pool,
	         c->scaleout_dry_run ? " (dry run)" : "");
	return s;
}

void
scaleout_reconfigure(struct scaleout *s, const struct conf *c)
{
	if (s == NULL)
		return;
	worker_lock(s->worker);
	s->conf = *c;
	worker_unlock(s->worker);
	worker_wake(s->worker);
}

void
scaleout_free(struct scaleout *s, int64_t deadline_ms)
{
	if (s == NULL)
		return;
	ev_child_stop(s->loop, &s->on_child); /* before the worker may free s */
	if (!worker_stop(s->worker, deadline_ms))
		log_warning("scale-out: controller busy with HAProxy at exit: left to finish");
}
