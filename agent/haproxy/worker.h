/*
 * worker.h: a thread that runs one job on a timer, away from the event loop, for work that must
 * block (HAProxy's runtime API, provisioning commands). The loop's thread keeps every signal, and it
 * never waits for a worker longer than the deadline it gives worker_stop.
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
	/* release frees arg once nothing runs the job any more (may be NULL); from the thread that ends last */
	void (*release)(void *arg);
	void *arg;
};

/* worker_start starts the thread; NULL (logged) on failure. */
struct worker *worker_start(const struct worker_job *job);

/* worker_lock and worker_unlock guard what the loop's thread hands the job (its configuration). */
void worker_lock(struct worker *w);
void worker_unlock(struct worker *w);

/* worker_wake makes the next tick run now (after a reload). */
void worker_wake(struct worker *w);

/* worker_stopping tells a job that worker_stop was called: it should end its tick early. */
bool worker_stopping(struct worker *w);

/*
 * worker_stop asks the thread to finish its tick and run the last job, and waits for it until
 * deadline_ms (monoclock; 0: not at all). True when the thread ended in time: it is joined, the job
 * released and the worker freed. False when it still runs: it is detached and left to end alone,
 * releasing the job and freeing itself when done (or when the process exits). w is gone either way.
 */
bool worker_stop(struct worker *w, int64_t deadline_ms);

#endif
