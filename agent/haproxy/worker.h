/*
 * worker.h: a thread that runs one job on a timer, away from the event loop, for work that must
 * block (HAProxy's runtime API, provisioning commands). The loop's thread keeps every signal.
 */
#ifndef PGCHECKD_WORKER_H
#define PGCHECKD_WORKER_H

#include <stdbool.h>
#include <stdint.h>

struct worker;

struct worker_job {
	/*
	 * tick runs every interval_ms (returned by the previous tick; the first runs at once); it gets its
	 * worker (for worker_lock), which may run before worker_start has returned to its caller
	 */
	int64_t (*tick)(void *arg, struct worker *w);
	/* last runs once when the worker stops (may be NULL) */
	void (*last)(void *arg, struct worker *w);
	void *arg;
};

/* worker_start starts the thread; NULL (logged) on failure. */
struct worker *worker_start(const struct worker_job *job);

/* worker_lock and worker_unlock guard what the loop's thread hands the job (its configuration). */
void worker_lock(struct worker *w);
void worker_unlock(struct worker *w);

/* worker_wake makes the next tick run now (after a reload). */
void worker_wake(struct worker *w);

/* worker_stop runs the last job, joins the thread and frees it. */
void worker_stop(struct worker *w);

#endif
