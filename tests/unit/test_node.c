/*
 * test_node.c: the node's state as the poller's outcomes build it: samples, failures, the lag
 * hysteresis, the weights and the view the responders get. Samples are made by hand; no poller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "log.h"
#include "node.h"
#include "poll_result.h"
#include "sample.h"
#include "verdict.h"
#include "weight.h"

#define MB (1024LL * 1024LL)

/* A streaming replica taken at taken_ms, lag_bytes behind, idle. */
static struct sample
replica_sample(int64_t taken_ms, int64_t lag_bytes)
{
	struct sample s;

	memset(&s, 0, sizeof(s));
	s.taken_ms = taken_ms;
	s.server_version_num = 150000;
	s.in_recovery = true;
	s.read_only = true;
	s.timeline = 2;
	s.receiver_streaming = true;
	s.have_receiver_silence = true;
	s.receiver_silence_s = 0.1;
	s.latest_end_lsn = 0x40000000;
	s.receive_lsn = 0x40000000;
	s.replay_lsn = 0x40000000 - (uint64_t)lag_bytes;
	s.lag_bytes = lag_bytes;
	s.have_lag_s = true;
	s.lag_s = 0.0;
	s.client_backends = 2;
	s.active_backends = 1;
	s.max_connections = 100;
	s.reserved_connections = 3;
	s.load1 = 0.0;
	s.ncpu = 4;
	return s;
}

static struct sample
primary_sample(int64_t taken_ms)
{
	struct sample s;

	memset(&s, 0, sizeof(s));
	s.taken_ms = taken_ms;
	s.server_version_num = 150000;
	s.in_recovery = false;
	s.read_only = false;
	s.timeline = 3;
	s.current_lsn = 0x40000000;
	s.streaming_replicas = 1;
	s.client_backends = 2;
	s.active_backends = 1;
	s.max_connections = 100;
	s.reserved_connections = 3;
	s.load1 = 0.0;
	s.ncpu = 4;
	return s;
}

static struct conf
test_conf(void)
{
	struct conf c;

	/* every key the node reads, at its shipped default (test_policy_conf.c checks they are) */
	memset(&c, 0, sizeof(c));
	c.weight_floor_pct = 10;
	c.weight_step_pct = 10;
	c.weight_smoothing_ms = 2000;
	c.weight_lag_soft_bytes = 1 * MB;
	c.replica_max_lag_bytes = 16 * MB;
	c.weight_lag_soft_s = 1.0;
	c.replica_max_lag_s = 10.0;
	c.weight_load_low_per_cpu = 0.5;
	c.weight_load_high_per_cpu = 2.0;
	c.replica_recover_pct = 50;
	return c;
}

static struct node_view
view_at(const struct node *n, int64_t now_ms)
{
	struct node_view v;

	memset(&v, 0x5a, sizeof(v));
	node_view(n, now_ms, &v);
	return v;
}

static int
group_setup(void **state)
{
	(void)state;
	log_setup(LOG_LEVEL_ERROR, false);
	return 0;
}

/* samples and failures */

static void
test_new_node_has_no_sample(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	v = view_at(&n, 5000);
	assert_false(v.have_sample);
	assert_false(v.failing);
	assert_false(v.lag_over);
	assert_int_equal(v.override, OVERRIDE_NONE);
	assert_false(v.shutting_down);
}

static void
test_new_node_answers_starting(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;
	struct policy p;
	struct request r;
	struct verdict out;

	(void)state;
	node_init(&n, &c);
	v = view_at(&n, 5000);
	verdict_policy(&c, &p);
	memset(&r, 0, sizeof(r));
	r.kind = REQUEST_HEALTH;
	verdict_for(&v, &r, &p, &out);
	assert_false(out.up);
	assert_string_equal(out.reason, "starting");
}

static void
test_sample_is_in_the_view_with_its_age(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 2 * MB);
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_sample(&n, &s);
	v = view_at(&n, 1250);
	assert_true(v.have_sample);
	assert_false(v.failing);
	assert_int_equal(v.sample_age_ms, 250);
	assert_int_equal(v.sample.taken_ms, 1000);
	assert_true(v.sample.in_recovery);
	assert_int_equal(v.sample.lag_bytes, 2 * MB);
	assert_int_equal(v.sample.timeline, 2);

	v = view_at(&n, 1000);
	assert_int_equal(v.sample_age_ms, 0);
	v = view_at(&n, 61000);
	assert_int_equal(v.sample_age_ms, 60000);
}

static void
test_later_sample_replaces_the_earlier(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s1 = replica_sample(1000, 0);
	struct sample s2 = primary_sample(1200);
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_sample(&n, &s1);
	node_sample(&n, &s2);
	v = view_at(&n, 1300);
	assert_false(v.sample.in_recovery);
	assert_int_equal(v.sample.timeline, 3);
	assert_int_equal(v.sample_age_ms, 100);
}

static void
test_fail_after_a_sample_keeps_the_sample_and_is_failing(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = primary_sample(1000);
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_sample(&n, &s);
	node_fail(&n, POLL_TIMEOUT, "no answer in 500 ms");
	v = view_at(&n, 1300);
	assert_true(v.failing);
	assert_int_equal(v.failure, POLL_TIMEOUT);
	assert_true(v.have_sample);
	assert_int_equal(v.sample.taken_ms, 1000);
	assert_int_equal(v.sample_age_ms, 300);
}

static void
test_fail_without_a_sample(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_fail(&n, POLL_CONNECT_FAILED, "connection refused");
	v = view_at(&n, 1000);
	assert_false(v.have_sample);
	assert_true(v.failing);
	assert_int_equal(v.failure, POLL_CONNECT_FAILED);
}

static void
test_later_failure_replaces_the_earlier(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_fail(&n, POLL_CONNECT_FAILED, "connection refused");
	node_fail(&n, POLL_CONNECT_TIMEOUT, "no answer");
	v = view_at(&n, 1000);
	assert_true(v.failing);
	assert_int_equal(v.failure, POLL_CONNECT_TIMEOUT);
}

static void
test_good_sample_after_a_failure_clears_failing(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s1 = primary_sample(1000);
	struct sample s2 = primary_sample(2000);
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_sample(&n, &s1);
	node_fail(&n, POLL_CONNECTION_LOST, "server closed the connection");
	node_sample(&n, &s2);
	v = view_at(&n, 2100);
	assert_false(v.failing);
	assert_true(v.have_sample);
	assert_int_equal(v.sample.taken_ms, 2000);
	assert_int_equal(v.sample_age_ms, 100);
}

static void
test_fail_with_empty_detail_is_accepted(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_fail(&n, POLL_QUERY_FAILED, "");
	v = view_at(&n, 1000);
	assert_true(v.failing);
	assert_int_equal(v.failure, POLL_QUERY_FAILED);
}

/* lag hysteresis */

static bool
lag_over_after(struct node *n, const struct sample *s)
{
	node_sample(n, s);
	return view_at(n, s->taken_ms).lag_over;
}

static void
test_replica_under_lag_limit_is_not_over(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 12 * MB);

	(void)state;
	node_init(&n, &c);
	assert_false(lag_over_after(&n, &s));
}

static void
test_lag_over_limit_then_back_only_under_recovery_limit(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;

	(void)state;
	node_init(&n, &c);
	s = replica_sample(1000, 20 * MB);
	assert_true(lag_over_after(&n, &s));
	s = replica_sample(1200, 12 * MB); /* under 16MB, over 50% of it */
	assert_true(lag_over_after(&n, &s));
	s = replica_sample(1400, 9 * MB);
	assert_true(lag_over_after(&n, &s));
	s = replica_sample(1600, 7 * MB); /* under 8MB */
	assert_false(lag_over_after(&n, &s));
	s = replica_sample(1800, 12 * MB); /* not over again until over 16MB */
	assert_false(lag_over_after(&n, &s));
	s = replica_sample(2000, 17 * MB);
	assert_true(lag_over_after(&n, &s));
}

static void
test_lag_over_seconds_limit_with_hysteresis(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;

	(void)state;
	c.replica_max_lag_bytes = 0; /* seconds only */
	node_init(&n, &c);
	s = replica_sample(1000, 100 * MB);
	s.lag_s = 11.0;
	assert_true(lag_over_after(&n, &s));
	s.taken_ms = 1200;
	s.lag_s = 6.0;
	assert_true(lag_over_after(&n, &s));
	s.taken_ms = 1400;
	s.lag_s = 4.0;
	assert_false(lag_over_after(&n, &s));
}

static void
test_idle_replica_receiving_a_few_bytes_is_not_seconds_behind(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	s = replica_sample(1000, 0); /* caught up, the primary idle */
	assert_false(lag_over_after(&n, &s));
	/* 24 bytes of WAL without a commit arrive: "now - last replayed commit" says 33 s */
	s = replica_sample(1200, 24);
	s.lag_s = 33.0;
	assert_false(lag_over_after(&n, &s));
	v = view_at(&n, 1200);
	assert_true(v.sample.lag_s <= 0.2);
	/* but replay that stays behind grows: 12 s later it is over the 10 s limit */
	s = replica_sample(13200, 24);
	s.lag_s = 45.0;
	assert_true(lag_over_after(&n, &s));
	v = view_at(&n, 13200);
	assert_true(v.sample.lag_s >= 12.0 && v.sample.lag_s <= 12.2);
}

/* lag seconds that clock skew between the hosts cannot hide or inflate */

/* a replica whose replay stays at replay_lsn while the primary's WAL is at target_lsn */
static struct sample
replica_behind(int64_t taken_ms, uint64_t replay_lsn, uint64_t target_lsn, double commit_age_s)
{
	struct sample s = replica_sample(taken_ms, 0);

	s.replay_lsn = replay_lsn;
	s.receive_lsn = target_lsn;
	s.latest_end_lsn = target_lsn;
	s.lag_bytes = (int64_t)(target_lsn - replay_lsn);
	s.have_lag_s = true;
	s.lag_s = commit_age_s;
	return s;
}

static void
test_replica_clock_behind_does_not_hide_seconds_lag(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;
	uint64_t replay = 0x40000000;

	(void)state;
	c.replica_max_lag_bytes = 0; /* seconds only */
	node_init(&n, &c);
	s = replica_sample(1000, 0); /* caught up */
	s.replay_lsn = s.receive_lsn = s.latest_end_lsn = replay;
	node_sample(&n, &s);
	/* replay paused from here; the primary commits every 200 ms. The replica's clock is 60 s behind
	 * the primary's: "its now - the primary's commit time" is negative, so the sample says 0 s */
	for (int64_t t = 1200; t <= 21200; t += 200) {
		s = replica_behind(t, replay, replay + (uint64_t)(t - 1000) * 10, 0.0);
		node_sample(&n, &s);
	}
	v = view_at(&n, 21200);
	assert_true(v.sample.have_lag_s);
	assert_true(v.sample.lag_s >= 20.0 && v.sample.lag_s <= 20.2);
	assert_true(v.lag_over);
}

static void
test_replica_clock_ahead_does_not_keep_a_current_replica_over(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;
	uint64_t replay = 0x40000000;

	(void)state;
	c.replica_max_lag_bytes = 0;
	node_init(&n, &c);
	/* under steady writes replay is a few bytes behind at every sample, never seen caught up; the
	 * replica's clock is 60 s ahead, so "now - last replayed commit" says 61 s every time */
	for (int64_t t = 1000; t <= 5000; t += 200) {
		s = replica_behind(t, replay, replay + 100, 61.0);
		node_sample(&n, &s);
		replay += 100; /* by the next sample it has replayed what was received at this one */
	}
	v = view_at(&n, 5000);
	assert_true(v.sample.lag_s <= 0.2);
	assert_false(v.lag_over);
}

static void
test_replica_without_commit_time_gets_seconds_from_what_pgcheckd_saw(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;

	(void)state;
	c.replica_max_lag_bytes = 0;
	node_init(&n, &c);
	/* behind at first sight and no commit replayed since the replica started: no commit time at all */
	for (int64_t t = 1000; t <= 12200; t += 200) {
		s = replica_behind(t, 0x40000000, 0x40000000 + (uint64_t)t, 0.0);
		s.have_lag_s = false;
		node_sample(&n, &s);
	}
	v = view_at(&n, 12200);
	assert_true(v.sample.have_lag_s);
	assert_true(v.sample.lag_s >= 11.0);
	assert_true(v.lag_over);
}

static void
test_long_stall_never_understates_the_seconds_lag(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;
	uint64_t base = 0x40000000;

	(void)state;
	c.replica_max_lag_bytes = 0;
	node_init(&n, &c);
	s = replica_sample(1000, 0);
	s.replay_lsn = s.receive_lsn = s.latest_end_lsn = base;
	node_sample(&n, &s);
	/* an hour stalled, the primary writing 1000 bytes a sample, then replay moves on, a little at a time */
	for (int64_t t = 1200; t <= 3601000; t += 200) {
		s = replica_behind(t, base, base + (uint64_t)(t - 1000) * 5, 0.0);
		node_sample(&n, &s);
	}
	v = view_at(&n, 3601000);
	assert_true(v.sample.lag_s >= 3599.8 && v.sample.lag_s <= 3600.2);
	for (int64_t t = 3601200, k = 1; t <= 3700000; t += 200, k++) {
		/* replay reaches what was received at 1000 + 100 k ms: the replica is at least
		 * t - (1000 + 100 k + 200) ms behind (the next target pgcheckd saw is not replayed) */
		uint64_t replay = base + (uint64_t)(100 * k) * 5;
		double at_least = (double)(t - (1000 + 100 * k + 200)) / 1000.0;

		s = replica_behind(t, replay, base + (uint64_t)(t - 1000) * 5, 0.0);
		node_sample(&n, &s);
		v = view_at(&n, t);
		if (v.sample.lag_s < at_least - 0.001)
			fail_msg("at %lld ms: lag %.3f s under %.3f s", (long long)t, v.sample.lag_s, at_least);
	}
	/* caught up: 0 */
	s = replica_sample(3700200, 0);
	s.replay_lsn = s.receive_lsn = s.latest_end_lsn = base + (uint64_t)(3700200 - 1000) * 5;
	node_sample(&n, &s);
	assert_true(view_at(&n, 3700200).sample.lag_s == 0.0);
}

static void
test_replica_on_a_new_timeline_does_not_wait_for_wal_the_old_primary_lost(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;

	(void)state;
	c.replica_max_lag_bytes = 0;
	node_init(&n, &c);
	/* stalled 30 s behind what the old primary reported */
	for (int64_t t = 1000; t <= 31000; t += 200) {
		s = replica_behind(t, 0x40000000, 0x40000000 + (uint64_t)t, 0.0);
		node_sample(&n, &s);
	}
	assert_true(view_at(&n, 31000).lag_over);
	/* failover: the new primary forked at 0x40000000 on timeline 3 and the replica has what it sent */
	s = replica_sample(31200, 0);
	s.timeline = 3;
	s.replay_lsn = s.receive_lsn = s.latest_end_lsn = 0x40000100;
	node_sample(&n, &s);
	s = replica_sample(31400, 0);
	s.timeline = 3;
	s.replay_lsn = 0x40000100;
	s.receive_lsn = s.latest_end_lsn = 0x40000200;
	node_sample(&n, &s);
	v = view_at(&n, 31400);
	assert_true(v.sample.lag_s <= 0.2);
}

static void
test_receiver_restart_on_the_same_timeline_keeps_the_seconds_lag(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;
	uint64_t replay = 0x40000000;

	(void)state;
	c.replica_max_lag_bytes = 0;
	node_init(&n, &c);
	s = replica_sample(1000, 0);
	s.replay_lsn = s.receive_lsn = s.latest_end_lsn = replay;
	node_sample(&n, &s);
	for (int64_t t = 1200; t <= 13000; t += 200) {
		s = replica_behind(t, replay, replay + (uint64_t)t, 0.0);
		node_sample(&n, &s);
	}
	assert_true(view_at(&n, 13000).lag_over);
	/* the receiver restarts: it reports the start of the segment, below replay, then catches up */
	s = replica_behind(13200, replay, replay - 0x1000, 0.0);
	s.lag_bytes = 0;
	node_sample(&n, &s);
	s = replica_behind(13400, replay, replay + 0x100, 0.0);
	node_sample(&n, &s);
	v = view_at(&n, 13400);
	assert_true(v.sample.lag_s >= 12.0);
	assert_true(v.lag_over);
}

static void
test_replica_behind_at_first_sight_keeps_its_seconds_lag(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;

	(void)state;
	node_init(&n, &c);
	s = replica_sample(1000, 24); /* never seen caught up: pgcheckd cannot bound it */
	s.lag_s = 33.0;
	assert_true(lag_over_after(&n, &s));
}

static void
test_lag_recovers_only_under_every_limit(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;

	(void)state;
	node_init(&n, &c);
	s = replica_sample(1000, 20 * MB);
	assert_true(lag_over_after(&n, &s));
	s = replica_sample(1200, 1 * MB);
	s.lag_s = 6.0; /* bytes recovered, seconds over 50% of 10 s */
	assert_true(lag_over_after(&n, &s));
	s = replica_sample(1400, 1 * MB);
	s.lag_s = 4.0;
	assert_false(lag_over_after(&n, &s));
}

static void
test_each_lag_limit_keeps_its_own_hysteresis(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	s = replica_sample(1000, 20 * MB); /* over 16MB, seconds 0 */
	node_sample(&n, &s);
	v = view_at(&n, 1000);
	assert_true(v.lag_over && v.lag_over_bytes && !v.lag_over_s);
	s = replica_sample(1200, 12 * MB); /* under 16MB, over 8MB */
	s.lag_s = 11.0;                    /* over 10 s */
	node_sample(&n, &s);
	v = view_at(&n, 1200);
	assert_true(v.lag_over && v.lag_over_bytes && v.lag_over_s);
	s = replica_sample(1400, 7 * MB); /* under 8MB */
	s.lag_s = 6.0;                    /* under 10 s, over 5 s */
	node_sample(&n, &s);
	v = view_at(&n, 1400);
	assert_true(v.lag_over && !v.lag_over_bytes && v.lag_over_s);
	s = replica_sample(1600, 7 * MB);
	s.lag_s = 4.0;
	node_sample(&n, &s);
	v = view_at(&n, 1600);
	assert_true(!v.lag_over && !v.lag_over_bytes && !v.lag_over_s);
}

static void
test_lag_limit_zero_disables_it(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;

	(void)state;
	c.replica_max_lag_bytes = 0;
	c.replica_max_lag_s = 0.0;
	node_init(&n, &c);
	s = replica_sample(1000, 1024 * MB);
	s.lag_s = 3600.0;
	assert_false(lag_over_after(&n, &s));
}

static void
test_primary_sample_clears_lag_over(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;

	(void)state;
	node_init(&n, &c);
	s = replica_sample(1000, 20 * MB);
	assert_true(lag_over_after(&n, &s));
	s = primary_sample(1200); /* promoted */
	/* replica-only fields mean nothing on a primary, whatever they hold */
	s.lag_bytes = 20 * MB;
	s.have_lag_s = true;
	s.lag_s = 100.0;
	assert_false(lag_over_after(&n, &s));
}

static void
test_failure_keeps_lag_over(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 20 * MB);

	(void)state;
	node_init(&n, &c);
	assert_true(lag_over_after(&n, &s));
	node_fail(&n, POLL_TIMEOUT, "no answer");
	assert_true(view_at(&n, 1200).lag_over);
}

/* weights */

static void
test_weight_without_smoothing_is_the_stepped_raw_value(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 0);
	struct node_view v;

	(void)state;
	c.weight_smoothing_ms = 0;
	c.weight_step_pct = 10;
	c.weight_floor_pct = 10;
	c.weight_load_low_per_cpu = 0.5;
	c.weight_load_high_per_cpu = 2.0;
	node_init(&n, &c);
	/* 1.4 per CPU: the CPU ramp from 0.5 to 2.0 gives 0.4 */
	s.load1 = 1.4 * s.ncpu;
	node_sample(&n, &s);
	v = view_at(&n, 1000);
	assert_int_equal(v.replica_weight_pct, 40);
	assert_int_equal(v.load_weight_pct, 40);
	int want = weight_step(100.0 * weight_load_factor(&s, &n.wp) * weight_lag_factor(&s, &n.wp), -1, 10, 10);
	assert_int_equal(v.replica_weight_pct, want);
}

static void
test_weight_falls_with_lag_but_load_weight_does_not(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 0);
	struct node_view v;

	(void)state;
	c.weight_smoothing_ms = 0;
	c.weight_lag_soft_bytes = 1 * MB;
	c.replica_max_lag_bytes = 16 * MB;
	c.weight_lag_soft_s = 1.0;
	c.replica_max_lag_s = 10.0;
	node_init(&n, &c);
	s.lag_bytes = 8 * MB + MB / 2; /* halfway from 1MB to 16MB */
	s.replay_lsn = s.latest_end_lsn - (uint64_t)s.lag_bytes;
	node_sample(&n, &s);
	v = view_at(&n, 1000);
	assert_false(v.lag_over);
	assert_int_equal(v.replica_weight_pct, 50);
	assert_int_equal(v.load_weight_pct, 100);
}

static void
test_weight_of_an_idle_replica_is_100(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 0);
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_sample(&n, &s);
	v = view_at(&n, 1000);
	assert_int_equal(v.replica_weight_pct, 100);
	assert_int_equal(v.load_weight_pct, 100);
}

static void
test_weight_never_below_the_floor(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 0);
	struct node_view v;

	(void)state;
	c.weight_smoothing_ms = 0;
	c.weight_floor_pct = 20;
	node_init(&n, &c);
	s.load1 = 100.0 * s.ncpu;
	node_sample(&n, &s);
	v = view_at(&n, 1000);
	assert_int_equal(v.replica_weight_pct, 20);
	assert_int_equal(v.load_weight_pct, 20);
}

static void
test_weight_with_smoothing_moves_gradually(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s;
	struct node_view v;

	(void)state;
	c.weight_smoothing_ms = 2000;
	c.weight_step_pct = 1;
	c.weight_floor_pct = 1;
	node_init(&n, &c);
	s = replica_sample(1000, 0);
	for (int i = 0; i < 100; i++) { /* 20 s idle: settled at 100 */
		s.taken_ms = 1000 + 200 * i;
		node_sample(&n, &s);
	}
	assert_int_equal(view_at(&n, s.taken_ms).replica_weight_pct, 100);
	/* the host is suddenly saturated: the weight does not drop to the floor at once */
	s.taken_ms += 200;
	s.load1 = 100.0 * s.ncpu;
	node_sample(&n, &s);
	v = view_at(&n, s.taken_ms);
	assert_true(v.replica_weight_pct > 50);
	assert_true(v.replica_weight_pct < 100);
}

/* overrides and settings */

static void
test_override_is_in_the_view(void **state)
{
	struct conf c = test_conf();
	struct node n;

	(void)state;
	node_init(&n, &c);
	node_set_override(&n, OVERRIDE_DRAIN);
	assert_int_equal(view_at(&n, 0).override, OVERRIDE_DRAIN);
	node_set_override(&n, OVERRIDE_MAINT);
	assert_int_equal(view_at(&n, 0).override, OVERRIDE_MAINT);
	node_set_override(&n, OVERRIDE_NONE);
	assert_int_equal(view_at(&n, 0).override, OVERRIDE_NONE);
}

static void
test_override_survives_samples_and_failures(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 0);

	(void)state;
	node_init(&n, &c);
	node_set_override(&n, OVERRIDE_MAINT);
	node_sample(&n, &s);
	node_fail(&n, POLL_TIMEOUT, "x");
	s.taken_ms = 2000;
	node_sample(&n, &s);
	assert_int_equal(view_at(&n, 2000).override, OVERRIDE_MAINT);
}

static void
test_configure_keeps_the_state(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct sample s = replica_sample(1000, 20 * MB);
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	node_sample(&n, &s);
	node_set_override(&n, OVERRIDE_DRAIN);
	c.weight_step_pct = 5;
	c.replica_recover_pct = 25;
	node_configure(&n, &c);
	v = view_at(&n, 1100);
	assert_true(v.have_sample);
	assert_int_equal(v.sample.taken_ms, 1000);
	assert_true(v.lag_over);
	assert_int_equal(v.override, OVERRIDE_DRAIN);
	assert_int_equal(n.wp.step_pct, 5);
	assert_int_equal(n.recover_pct, 25);

	/* the new recovery limit applies from the next sample: 25% of 16MB is 4MB */
	s = replica_sample(1200, 7 * MB);
	assert_true(lag_over_after(&n, &s));
	s = replica_sample(1400, 3 * MB);
	assert_false(lag_over_after(&n, &s));
}

static void
test_init_takes_the_weight_policy_from_the_configuration(void **state)
{
	struct conf c = test_conf();
	struct node n;

	(void)state;
	c.weight_floor_pct = 15;
	c.weight_step_pct = 5;
	c.weight_smoothing_ms = 3000;
	c.weight_lag_soft_bytes = 2 * MB;
	c.replica_max_lag_bytes = 32 * MB;
	c.weight_lag_soft_s = 2.0;
	c.replica_max_lag_s = 20.0;
	c.weight_load_low_per_cpu = 0.25;
	c.weight_load_high_per_cpu = 3.0;
	c.replica_recover_pct = 40;
	node_init(&n, &c);
	assert_int_equal(n.wp.floor_pct, 15);
	assert_int_equal(n.wp.step_pct, 5);
	assert_int_equal(n.wp.smoothing_ms, 3000);
	assert_int_equal(n.wp.lag_soft_bytes, 2 * MB);
	assert_int_equal(n.wp.max_lag_bytes, 32 * MB);
	assert_true(n.wp.lag_soft_s == 2.0);
	assert_true(n.wp.max_lag_s == 20.0);
	assert_true(n.wp.load_low_per_cpu == 0.25);
	assert_true(n.wp.load_high_per_cpu == 3.0);
	assert_int_equal(n.recover_pct, 40);
}

/* the fork floor: how far a node seen promoted had replayed on the timeline it left */

/* node n takes a sample on connection conn: a replica on timeline tl (0: no receiver) replayed to replay_lsn */
static void
floor_replica(struct node *n, int64_t t, uint64_t conn, int tl, uint64_t replay_lsn)
{
	struct sample s = replica_sample(t, 0);

	s.connection = conn;
	s.timeline = tl;
	s.receiver_streaming = tl != 0;
	s.replay_lsn = s.receive_lsn = s.latest_end_lsn = replay_lsn;
	node_sample(n, &s);
}

static void
floor_primary(struct node *n, int64_t t, uint64_t conn, int tl)
{
	struct sample s = primary_sample(t);

	s.connection = conn;
	s.timeline = tl;
	node_sample(n, &s);
}

static void
test_floor_is_the_highest_replay_seen_before_the_promotion(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	floor_replica(&n, 1000, 1, 1, 0x3000000);
	v = view_at(&n, 1000);
	assert_false(v.have_tl_floor); /* a replica has none */
	/* the old primary stops: no receiver (timeline unknown); replay of what had arrived goes on */
	floor_replica(&n, 1100, 1, 0, 0x3000100);
	/* a promotion seen only after a burst of samples: the last of them holds the most */
	floor_replica(&n, 1105, 1, 0, 0x3000148);
	floor_replica(&n, 1110, 1, 0, 0x3000148);
	floor_primary(&n, 1115, 1, 2);
	v = view_at(&n, 1115);
	assert_true(v.have_tl_floor);
	assert_int_equal(v.tl_floor_parent, 1);
	assert_int_equal(v.tl_floor_lsn, 0x3000148);
	/* it stays the floor of timeline 2 while the node is its primary */
	floor_primary(&n, 1200, 1, 2);
	v = view_at(&n, 1200);
	assert_true(v.have_tl_floor && v.tl_floor_lsn == 0x3000148);
	/* a failed poll on the same connection (a timeout) changes nothing before the promotion */
	node_fail(&n, POLL_TIMEOUT, "timeout");
	floor_primary(&n, 1300, 1, 2);
	v = view_at(&n, 1300);
	assert_true(v.have_tl_floor && v.tl_floor_lsn == 0x3000148);
	/* promoted again, unseen (timeline 3 on the same connection): timeline 2's floor is not timeline 3's */
	floor_primary(&n, 1400, 1, 3);
	v = view_at(&n, 1400);
	assert_false(v.have_tl_floor);
}

static void
test_no_floor_across_a_restart_of_postgresql(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;

	(void)state;
	/* replayed far, then restarted (its data directory may have been replaced): a new connection */
	node_init(&n, &c);
	floor_replica(&n, 1000, 1, 1, 0x5000000);
	floor_replica(&n, 1100, 2, 1, 0x3000000);
	floor_primary(&n, 1200, 2, 2);
	v = view_at(&n, 1200);
	assert_true(v.have_tl_floor);
	assert_int_equal(v.tl_floor_lsn, 0x3000000); /* only what this connection saw: not 5/0 */
	/* promoted between two connections: the promotion itself was not seen */
	node_init(&n, &c);
	floor_replica(&n, 1000, 1, 1, 0x3000000);
	floor_primary(&n, 1100, 2, 2);
	v = view_at(&n, 1100);
	assert_false(v.have_tl_floor);
	/* a primary when pgcheckd started: no floor */
	node_init(&n, &c);
	floor_primary(&n, 1000, 1, 2);
	v = view_at(&n, 1000);
	assert_false(v.have_tl_floor);
	/* a sample that does not say its connection: no floor */
	node_init(&n, &c);
	floor_replica(&n, 1000, 0, 1, 0x3000000);
	floor_primary(&n, 1100, 0, 2);
	v = view_at(&n, 1100);
	assert_false(v.have_tl_floor);
	/* a failed poll just before the promotion: what happened meanwhile was not seen */
	node_init(&n, &c);
	floor_replica(&n, 1000, 1, 1, 0x3000000);
	node_fail(&n, POLL_TIMEOUT, "timeout");
	floor_primary(&n, 1100, 1, 2);
	v = view_at(&n, 1100);
	assert_false(v.have_tl_floor);
}

static void
test_no_floor_across_a_jump_of_two_timelines(void **state)
{
	struct conf c = test_conf();
	struct node n;
	struct node_view v;

	(void)state;
	node_init(&n, &c);
	floor_replica(&n, 1000, 1, 1, 0x3000000);
	floor_replica(&n, 1100, 1, 0, 0x3000100); /* it may have replayed timeline 2 meanwhile */
	floor_primary(&n, 1200, 1, 3);
	v = view_at(&n, 1200);
	assert_false(v.have_tl_floor);
	/* never saw its recovery timeline at all: no floor */
	node_init(&n, &c);
	floor_replica(&n, 1000, 1, 0, 0x3000000);
	floor_primary(&n, 1100, 1, 2);
	v = view_at(&n, 1100);
	assert_false(v.have_tl_floor);
	/* a replica that moved to timeline 2 and was promoted to 3: the floor is of timeline 2 */
	node_init(&n, &c);
	floor_replica(&n, 1000, 1, 1, 0x3000000);
	floor_replica(&n, 1100, 1, 2, 0x3000200);
	floor_primary(&n, 1200, 1, 3);
	v = view_at(&n, 1200);
	assert_true(v.have_tl_floor);
	assert_int_equal(v.tl_floor_parent, 2);
	assert_int_equal(v.tl_floor_lsn, 0x3000200);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_node_has_no_sample),
	    cmocka_unit_test(test_new_node_answers_starting),
	    cmocka_unit_test(test_sample_is_in_the_view_with_its_age),
	    cmocka_unit_test(test_later_sample_replaces_the_earlier),
	    cmocka_unit_test(test_fail_after_a_sample_keeps_the_sample_and_is_failing),
	    cmocka_unit_test(test_fail_without_a_sample),
	    cmocka_unit_test(test_later_failure_replaces_the_earlier),
	    cmocka_unit_test(test_good_sample_after_a_failure_clears_failing),
	    cmocka_unit_test(test_fail_with_empty_detail_is_accepted),
	    cmocka_unit_test(test_replica_under_lag_limit_is_not_over),
	    cmocka_unit_test(test_lag_over_limit_then_back_only_under_recovery_limit),
	    cmocka_unit_test(test_lag_over_seconds_limit_with_hysteresis),
	    cmocka_unit_test(test_idle_replica_receiving_a_few_bytes_is_not_seconds_behind),
	    cmocka_unit_test(test_replica_behind_at_first_sight_keeps_its_seconds_lag),
	    cmocka_unit_test(test_replica_clock_behind_does_not_hide_seconds_lag),
	    cmocka_unit_test(test_replica_clock_ahead_does_not_keep_a_current_replica_over),
	    cmocka_unit_test(test_replica_without_commit_time_gets_seconds_from_what_pgcheckd_saw),
	    cmocka_unit_test(test_long_stall_never_understates_the_seconds_lag),
	    cmocka_unit_test(test_replica_on_a_new_timeline_does_not_wait_for_wal_the_old_primary_lost),
	    cmocka_unit_test(test_receiver_restart_on_the_same_timeline_keeps_the_seconds_lag),
	    cmocka_unit_test(test_lag_recovers_only_under_every_limit),
	    cmocka_unit_test(test_each_lag_limit_keeps_its_own_hysteresis),
	    cmocka_unit_test(test_lag_limit_zero_disables_it),
	    cmocka_unit_test(test_primary_sample_clears_lag_over),
	    cmocka_unit_test(test_failure_keeps_lag_over),
	    cmocka_unit_test(test_weight_without_smoothing_is_the_stepped_raw_value),
	    cmocka_unit_test(test_weight_falls_with_lag_but_load_weight_does_not),
	    cmocka_unit_test(test_weight_of_an_idle_replica_is_100),
	    cmocka_unit_test(test_weight_never_below_the_floor),
	    cmocka_unit_test(test_weight_with_smoothing_moves_gradually),
	    cmocka_unit_test(test_override_is_in_the_view),
	    cmocka_unit_test(test_override_survives_samples_and_failures),
	    cmocka_unit_test(test_configure_keeps_the_state),
	    cmocka_unit_test(test_init_takes_the_weight_policy_from_the_configuration),
	    cmocka_unit_test(test_floor_is_the_highest_replay_seen_before_the_promotion),
	    cmocka_unit_test(test_no_floor_across_a_restart_of_postgresql),
	    cmocka_unit_test(test_no_floor_across_a_jump_of_two_timelines),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
