/*
 * worker.c: one thread, one job on a timer. Sleeps on a monotonic condition variable so a wake or a
 * stop is seen at once; blocks every signal so they stay with the event loop. Whoever of the thread
 * and worker_stop ends last frees the worker and releases its job: a stop never waits past its deadline.
 */
#include "worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "monoclock.h"

struct worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;  /* to the thread: tick now, or stop */
	pthread_cond_t ended; /* from the thread: done is set */
	struct worker_job job;
	bool stop;
	bool woken;
	bool done;      /* the thread has run its last job and touches nothing of the job any more */
	bool abandoned; /* worker_stop gave up waiting: the thread frees everything */
};

static void
worker_timespec(struct timespec *ts, int64_t from_now_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	if (from_now_ms < 0)
		from_now_ms = 0;
	ts->tv_sec += from_now_ms / 1000;
	ts->tv_nsec += (from_now_ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void
worker_destroy(struct worker *w)
{
	if (w->job.release != NULL)
		w->job.release(w->job.arg);
	pthread_cond_destroy(&w->ended);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	bool abandoned;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct timespec until;
		int64_t wait_ms;

		w->woken = false;
		pthread_mutex_unlock(&w->lock);
		wait_ms = w->job.tick(w->job.arg, w);
		pthread_mutex_lock(&w->lock);
		worker_timespec(&until, wait_ms);
		while (!w->stop && !w->woken)
			if (pthread_cond_timedwait(&w->wake, &w->lock, &until) != 0)
				break;
	}
	pthread_mutex_unlock(&w->lock);
	if (w->job.last != NULL)
		w->job.last(w->job.arg, w);
	pthread_mutex_lock(&w->lock);
	w->done = true;
	abandoned = w->abandoned;
	pthread_cond_signal(&w->ended);
	pthread_mutex_unlock(&w->lock);
	if (abandoned)
		worker_destroy(w); /* detached: nobody else holds w */
	return NULL;
}

struct worker *
worker_start(const struct worker_job *job)
{
	struct worker *w = calloc(1, sizeof(*w));
	pthread_condattr_t attr;
	sigset_t all, old;
	int rc;

	if (w == NULL)
		return NULL;
	w->job = *job;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &attr);
	pthread_cond_init(&w->ended, &attr);
	pthread_condattr_destroy(&attr);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("cannot start a worker thread");
		pthread_cond_destroy(&w->ended);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void
worker_lock(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
}

void
worker_unlock(struct worker *w)
{
	pthread_mutex_unlock(&w->lock);
}

void
worker_wake(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->woken = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

bool
worker_stopping(struct worker *w)
{
	bool stop;

	pthread_mutex_lock(&w->lock);
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	return stop;
}

bool
worker_stop(struct worker *w, int64_t deadline_ms)
{
	struct timespec until;
	int64_t left_ms;

	if (w == NULL)
		return true;
	left_ms = deadline_ms - monoclock_ms();
	worker_timespec(&until, left_ms);
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	while (!w->done && left_ms > 0)
		if (pthread_cond_timedwait(&w->ended, &w->lock, &until) != 0)
			break;
	if (!w->done) {
		pthread_t thread = w->thread; /* once unlocked, the thread may free w at any moment */

		w->abandoned = true;
		pthread_mutex_unlock(&w->lock);
		pthread_detach(thread);
		return false;
	}
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL); /* done: it only returns */
	worker_destroy(w);
	return true;
}
