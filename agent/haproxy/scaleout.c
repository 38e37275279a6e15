/*
 * scaleout.c: the scale-out controller, on a worker thread. Each tick: read "show stat", add the
 * backend's sessions per up server to the window, decide, and start the command with posix_spawn
 * (its output read without blocking and logged line by line). One command at a time; it is never
 * killed (it may be provisioning a replica), only waited for, briefly, at shutdown.
 */
#include "scaleout.h"

#include <errno.h>
#include <fcntl.h>
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
/* at shutdown, how long a running command is waited for before it is left to finish alone */
#define SCALEOUT_STOP_WAIT_MS 5000

extern char **environ;

struct scaleout {
	struct worker *worker;
	struct conf conf;       /* handed over under the worker's lock */
	struct conf *tick_conf; /* the worker's copy */
	char *answer;
	double window[SCALEOUT_WINDOW_MAX];
	int filled, head;
	int64_t last_action_ms;
	bool acted;
	pid_t child;
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

bool
scaleout_parse_stat(const char *csv, const char *backend, int *up, double *sessions)
{
	int col_px = -1, col_sv = -1, col_scur = -1, col_qcur = -1, col_status = -1;
	const char *line = csv;
	bool found = false;

	*up = 0;
	*sessions = 0;
	if (strncmp(csv, "# ", 2) != 0)
		return false;
	{
		int idx = 0;
		const char *p = csv + 2;

		while (*p != '\0' && *p != '\n') {
			size_t n = strcspn(p, ",\n");

			if (n == 6 && strncmp(p, "pxname", 6) == 0)
				col_px = idx;
			else if (n == 6 && strncmp(p, "svname", 6) == 0)
				col_sv = idx;
			else if (n == 4 && strncmp(p, "scur", 4) == 0)
				col_scur = idx;
			else if (n == 4 && strncmp(p, "qcur", 4) == 0)
				col_qcur = idx;
			else if (n == 6 && strncmp(p, "status", 6) == 0)
				col_status = idx;
			idx++;
			p += n;
			if (*p == ',')
				p++;
		}
	}
	if (col_px < 0 || col_sv < 0 || col_scur < 0 || col_qcur < 0 || col_status < 0)
		return false;
	while ((line = strchr(line, '\n')) != NULL && *++line != '\0') {
		char fields[40][64];
		int nf = 0;
		const char *p = line;

		while (*p != '\0' && *p != '\n' && nf < 40) {
			size_t n = strcspn(p, ",\n");

			snprintf(fields[nf++], sizeof(fields[0]), "%.*s", (int)(n < 63 ? n : 63), p);
			p += n;
			if (*p == ',')
				p++;
		}
		if (nf <= col_status || nf <= col_scur || nf <= col_qcur)
			continue;
		if (strcmp(fields[col_px], backend) != 0)
			continue;
		found = true;
		if (strcmp(fields[col_sv], "BACKEND") == 0 || strcmp(fields[col_sv], "FRONTEND") == 0)
			continue;
		if (strncmp(fields[col_status], "UP", 2) != 0)
			continue;
		(*up)++;
		*sessions += atof(fields[col_scur]) + atof(fields[col_qcur]);
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

/* scaleout_reap notices the command's end; true while it still runs. */
static bool
scaleout_reap(struct scaleout *s)
{
	int status;
	pid_t pid;

	if (s->child <= 0)
		return false;
	scaleout_drain_output(s, false);
	pid = waitpid(s->child, &status, WNOHANG);
	if (pid == 0)
		return true;
	scaleout_drain_output(s, true);
	if (pid == s->child) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			log_info("scale-out command finished");
		else if (WIFEXITED(status))
			log_warning("scale-out command failed with exit status %d", WEXITSTATUS(status));
		else
			log_warning("scale-out command ended by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	close(s->child_out);
	s->child_out = -1;
	s->child = 0;
	return false;
}

static void
scaleout_run(struct scaleout *s, const struct conf *c, enum scaleout_action action, int pool, double load)
{
	const char *cmd = action == SCALEOUT_UP ? c->scaleout_up_command : c->scaleout_down_command;
	char vars[6][CONF_STR_MAX + 32];
	char *envp[512], *argv[] = {"sh", "-c", (char *)(uintptr_t)cmd, NULL};
	posix_spawn_file_actions_t fa;
	int pipefd[2], n = 0, rc;

	snprintf(vars[0], sizeof(vars[0]), "PGCHECKD_ACTION=%s", action == SCALEOUT_UP ? "up" : "down");
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
		log_info("scale-out (dry run): would run the %s command (pool %d, load %.1f sessions per server): %s",
		         action == SCALEOUT_UP ? "up" : "down", pool, load, cmd);
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
	rc = posix_spawn(&s->child, "/bin/sh", &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		log_error("scale-out: cannot run the command: %s", strerror(rc));
		close(pipefd[0]);
		s->child = 0;
		return;
	}
	(void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	s->child_out = pipefd[0];
	log_warning("scale-out: running the %s command (pool %d, load %.1f sessions per server over %ds): %s",
	            action == SCALEOUT_UP ? "up" : "down", pool, load, (int)c->scaleout_window_s, cmd);
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
	size = (int)(c->scaleout_window_s * 1000 / c->scaleout_interval_ms);
	if (size < 1)
		size = 1;
	if (size > SCALEOUT_WINDOW_MAX)
		size = SCALEOUT_WINDOW_MAX;
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

static void
scaleout_last(void *arg, struct worker *w)
{
	struct scaleout *s = arg;
	int64_t until = monoclock_ms() + SCALEOUT_STOP_WAIT_MS;

	(void)w;
	while (scaleout_reap(s) && monoclock_ms() < until)
		usleep(50000);
	if (s->child > 0) {
		log_warning("scale-out command (pid %d) still running at exit: left to finish", (int)s->child);
		close(s->child_out);
	}
}

struct scaleout *
scaleout_new(const struct conf *c)
{
	struct scaleout *s;
	struct worker_job job = {scaleout_tick, scaleout_last, NULL};

	if (c->scaleout_backend[0] == '\0')
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->conf = *c;
	s->child_out = -1;
	s->answer = malloc(SCALEOUT_ANSWER_MAX);
	s->tick_conf = malloc(sizeof(*s->tick_conf));
	job.arg = s;
	if (s->answer == NULL || s->tick_conf == NULL || (s->worker = worker_start(&job)) == NULL) {
		free(s->answer);
		free(s->tick_conf);
		free(s);
		return NULL;
	}
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
}

void
scaleout_free(struct scaleout *s)
{
	if (s == NULL)
		return;
	worker_stop(s->worker);
	free(s->answer);
	free(s->tick_conf);
	free(s);
}
