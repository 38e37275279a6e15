/*
 * scaleout.h: the optional load-driven controller (enable it on one node). It reads the replica
 * backend's load from HAProxy's "show stat" on a worker thread, averages it over a window, and runs a
 * configured command to add (or retire) a replica when the load stays past a threshold, with a
 * cooldown, pool limits and a dry-run mode. It never changes what a check answers.
 */
#ifndef PGCHECKD_SCALEOUT_H
#define PGCHECKD_SCALEOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "conf.h"

/* the most sessions one "show stat" line counts for (a larger number is clamped) */
#define SCALEOUT_SESSIONS_MAX 1e9

enum scaleout_action { SCALEOUT_NONE, SCALEOUT_UP, SCALEOUT_DOWN };

struct scaleout_policy {
	double high_sessions, low_sessions; /* per up server; low 0: never shrink */
	int64_t cooldown_ms;
	int max_pool, min_pool;
	bool can_shrink; /* a down_command is configured */
};

/*
 * scaleout_decide says what to do now: window_full and load (the window's average sessions per up
 * server), pool (up servers), the time of the last command and whether one still runs. why tells
 * what held it back (for a log line once per change). Pure.
 */
enum scaleout_action scaleout_decide(const struct scaleout_policy *p, bool window_full, double load, int pool,
                                     int64_t now_ms, int64_t last_action_ms, bool running, char *why, size_t whylen);

/*
 * scaleout_parse_stat reads "show stat" CSV for backend: up servers and their current plus queued
 * sessions. The columns are found by name anywhere in the header; a count that is not a finite
 * number from 0 up counts 0, a larger one SCALEOUT_SESSIONS_MAX. False when the backend is not there.
 */
bool scaleout_parse_stat(const char *csv, const char *backend, int *up, double *sessions);

struct scaleout;

/*
 * scaleout_new starts the controller when [scaleout] backend is set; NULL otherwise. On the loop's
 * thread: it watches the loop's children (libev's default loop reaps every child) for its command's end.
 */
struct scaleout *scaleout_new(struct ev_loop *loop, const struct conf *c);

/*
 * scaleout_reconfigure hands the controller new settings without waiting for it. It keeps its running
 * command and its cooldown; a new backend or HAProxy starts a new window; no backend: it only follows
 * a running command until a reload names one again.
 */
void scaleout_reconfigure(struct scaleout *s, const struct conf *c);

/*
 * scaleout_free stops the controller (a running command is left to finish), waiting for its thread
 * until deadline_ms (monoclock) at most; past it the thread finishes alone and frees itself.
 */
void scaleout_free(struct scaleout *s, int64_t deadline_ms);

#endif
