/*
 * worker.c: one thread, one job on a timer. Sleeps on a monotonic condition variable so a wake or a
 * stop is seen at once; blocks every signal so they stay with the event loop.
 */
#include "worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

struct worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct worker_job job;
	bool stop;
	bool woken;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct timespec until;
		int64_t wait_ms;

		w->woken = false;
		pthread_mutex_unlock(&w->lock);
		wait_ms = w->job.tick(w->job.arg, w);
		pthread_mutex_lock(&w->lock);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += wait_ms / 1000;
		until.tv_nsec += (wait_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (!w->stop && !w->woken)
			if (pthread_cond_timedwait(&w->wake, &w->lock, &until) != 0)
				break;
	}
	pthread_mutex_unlock(&w->lock);
	if (w->job.last != NULL)
		w->job.last(w->job.arg, w);
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
	pthread_condattr_destroy(&attr);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("cannot start a worker thread");
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

void
worker_stop(struct worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
