/*
 * test_worker.c: a worker's stop never waits past its deadline, and whoever ends last (the caller or
 * the thread) releases the job exactly once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "monoclock.h"
#include "worker.h"

struct job_state {
	int tick_sleep_ms;
	atomic_int ticks, lasts, releases;
};

static int64_t
slow_tick(void *arg, struct worker *w)
{
	struct job_state *st = arg;

	(void)w;
	atomic_fetch_add(&st->ticks, 1);
	usleep((useconds_t)st->tick_sleep_ms * 1000);
	return 10;
}

static void
count_last(void *arg, struct worker *w)
{
	struct job_state *st = arg;

	(void)w;
	atomic_fetch_add(&st->lasts, 1);
}

static void
count_release(void *arg)
{
	struct job_state *st = arg;

	atomic_fetch_add(&st->releases, 1);
}

static void
test_stop_of_a_quick_worker_joins_and_releases(void **state)
{
	struct job_state st = {.tick_sleep_ms = 1};
	struct worker_job job = {slow_tick, count_last, count_release, &st};
	struct worker *w = worker_start(&job);

	(void)state;
	assert_non_null(w);
	usleep(30000);
	assert_true(worker_stop(w, monoclock_ms() + 5000));
	assert_int_equal(atomic_load(&st.lasts), 1);
	assert_int_equal(atomic_load(&st.releases), 1);
}

static void
test_stop_of_a_stuck_worker_returns_at_its_deadline(void **state)
{
	/* a tick stuck for 1.5 s (a frozen HAProxy): the stop gives up after 100 ms, the thread ends alone */
	static struct job_state st = {.tick_sleep_ms = 1500};
	struct worker_job job = {slow_tick, count_last, count_release, &st};
	struct worker *w = worker_start(&job);
	int64_t t0;

	(void)state;
	assert_non_null(w);
	while (atomic_load(&st.ticks) == 0)
		usleep(1000);
	t0 = monoclock_ms();
	assert_false(worker_stop(w, t0 + 100));
	assert_true(monoclock_ms() - t0 < 1000);
	assert_int_equal(atomic_load(&st.releases), 0);
	for (int i = 0; i < 300 && atomic_load(&st.releases) == 0; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&st.lasts), 1);
	assert_int_equal(atomic_load(&st.releases), 1); /* released by the thread, once */
	usleep(20000);                                  /* the thread returns */
}

static void
test_stop_without_a_deadline_does_not_wait(void **state)
{
	static struct job_state st = {.tick_sleep_ms = 300};
	struct worker_job job = {slow_tick, NULL, count_release, &st};
	struct worker *w = worker_start(&job);
	int64_t t0;

	(void)state;
	while (atomic_load(&st.ticks) == 0)
		usleep(1000);
	t0 = monoclock_ms();
	assert_false(worker_stop(w, 0));
	assert_true(monoclock_ms() - t0 < 200);
	for (int i = 0; i < 300 && atomic_load(&st.releases) == 0; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&st.releases), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stop_of_a_quick_worker_joins_and_releases),
	    cmocka_unit_test(test_stop_of_a_stuck_worker_returns_at_its_deadline),
	    cmocka_unit_test(test_stop_without_a_deadline_does_not_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
