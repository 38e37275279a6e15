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

#include "conf.h"

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
 * sessions. False when the backend is not there.
 */
bool scaleout_parse_stat(const char *csv, const char *backend, int *up, double *sessions);

struct scaleout;

/* scaleout_new starts the controller when [scaleout] backend is set; NULL otherwise. */
struct scaleout *scaleout_new(const struct conf *c);
void scaleout_reconfigure(struct scaleout *s, const struct conf *c);
void scaleout_free(struct scaleout *s);

#endif
