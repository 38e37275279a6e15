/*
 * test_verdict.c: DESIGN.md's verdict table, row by row, from hand-made views, requests and
 * policies. verdict_for() is pure, so nothing here needs a node, a clock or a socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "poll_result.h"
#include "request.h"
#include "sample.h"
#include "verdict.h"

#define KB_ 1024LL
#define MB  (1024LL * 1024LL)
#define GB  (1024LL * MB)
#define TB  (1024LL * GB)

static struct policy
test_policy(void)
{
	struct policy p;

	memset(&p, 0, sizeof(p));
	p.stale_after_ms = 1500;
	p.max_lag_bytes = 16 * MB;
	p.max_lag_s = 10.0;
	p.over_lag = OVER_LAG_DOWN;
	p.receiver_silence_max_ms = 60000;
	p.primary_read_pct = 100;
	p.step_pct = 10;
	p.floor_pct = 10;
	p.location = "";
	return p;
}

/* A healthy streaming replica, sampled 200 ms ago, weighted 70% (80% from load alone). */
static struct node_view
replica_view(void)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = true;
	v.sample.taken_ms = 10000;
	v.sample.server_version_num = 150000;
	v.sample.in_recovery = true;
	v.sample.read_only = true; /* every session on a replica is read-only */
	v.sample.timeline = 2;
	v.sample.receiver_streaming = true;
	v.sample.have_receiver_silence = true;
	v.sample.receiver_silence_s = 0.5;
	v.sample.receive_lsn = 0x3000000;
	v.sample.replay_lsn = 0x3000000;
	v.sample.latest_end_lsn = 0x3000000;
	v.sample.lag_bytes = 0;
	v.sample.have_lag_s = true;
	v.sample.lag_s = 0.0;
	v.sample.client_backends = 5;
	v.sample.active_backends = 1;
	v.sample.max_connections = 100;
	v.sample.reserved_connections = 3;
	v.sample.load1 = 0.3;
	v.sample.ncpu = 4;
	v.sample_age_ms = 200;
	v.failing = false;
	v.failure = POLL_OK;
	v.lag_over = false;
	v.replica_weight_pct = 70;
	v.load_weight_pct = 80;
	v.override = OVERRIDE_NONE;
	v.shutting_down = false;
	return v;
}

/* A healthy writable primary with two streaming replicas, sampled 200 ms ago. */
static struct node_view
primary_view(void)
{
	struct node_view v = replica_view();

	v.sample.in_recovery = false;
	v.sample.read_only = false;
	v.sample.default_read_only = false;
	v.sample.receiver_streaming = false;
	v.sample.have_receiver_silence = false;
	v.sample.receiver_silence_s = 0.0;
	v.sample.receive_lsn = 0;
	v.sample.replay_lsn = 0;
	v.sample.latest_end_lsn = 0;
	v.sample.have_lag_s = false;
	v.sample.current_lsn = 0x3000000;
	v.sample.streaming_replicas = 2;
	return v;
}

static struct node_view
no_sample_view(void)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = false;
	v.failing = false;
	v.failure = POLL_OK;
	v.override = OVERRIDE_NONE;
	v.replica_weight_pct = 100;
	v.load_weight_pct = 100;
	return v;
}

static struct request
req(enum request_kind kind)
{
	struct request r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	return r;
}

static struct verdict
decide(const struct node_view *v, enum request_kind kind, const struct policy *p)
{
	struct request r = req(kind);
	struct verdict out;

	memset(&out, 0x5a, sizeof(out));
	verdict_for(v, &r, p, &out);
	return out;
}

static struct verdict
decide_req(const struct node_view *v, const struct request *r, const struct policy *p)
{
	struct verdict out;

	memset(&out, 0x5a, sizeof(out));
	verdict_for(v, r, p, &out);
	return out;
}

#define assert_up(vexpr, pct)                                                                                          \
	do {                                                                                                           \
		struct verdict av_ = (vexpr);                                                                          \
		if (!av_.up)                                                                                           \
			print_error("expected up %d%%, got down #%.*s\n", (pct), VERDICT_REASON_MAX, av_.reason);      \
		assert_true(av_.up);                                                                                   \
		assert_int_equal(av_.weight_pct, (pct));                                                               \
	} while (0)

#define assert_down(vexpr, why)                                                                                        \
	do {                                                                                                           \
		struct verdict av_ = (vexpr);                                                                          \
		if (av_.up)                                                                                            \
			print_error("expected down #%s, got up %d%%\n", (why), av_.weight_pct);                        \
		assert_false(av_.up);                                                                                  \
		assert_non_null(memchr(av_.reason, '\0', sizeof(av_.reason)));                                         \
		assert_string_equal(av_.reason, (why));                                                                \
	} while (0)

#define assert_down_lag(vexpr)                                                                                         \
	do {                                                                                                           \
		struct verdict av_ = (vexpr);                                                                          \
		if (av_.up)                                                                                            \
			print_error("expected down #lag ..., got up %d%%\n", av_.weight_pct);                          \
		assert_false(av_.up);                                                                                  \
		assert_non_null(memchr(av_.reason, '\0', sizeof(av_.reason)));                                         \
		if (strncmp(av_.reason, "lag ", 4) != 0)                                                               \
			print_error("reason \"%s\" does not start with \"lag \"\n", av_.reason);                       \
		assert_int_equal(strncmp(av_.reason, "lag ", 4), 0);                                                   \
	} while (0)

static const enum request_kind every_kind[] = {REQUEST_PRIMARY, REQUEST_REPLICA, REQUEST_READ_ONLY, REQUEST_HEALTH};
#define N_KINDS (sizeof(every_kind) / sizeof(every_kind[0]))

/* No sample, failures, staleness: every kind is down. */

static void
test_no_sample_yet_is_down_starting_for_every_kind(void **state)
{
	struct node_view v = no_sample_view();
	struct policy p = test_policy();

	(void)state;
	for (size_t i = 0; i < N_KINDS; i++)
		assert_down(decide(&v, every_kind[i], &p), "starting");
}

static void
test_no_sample_and_failed_poll_is_down_with_the_failure(void **state)
{
	struct node_view v = no_sample_view();
	struct policy p = test_policy();

	(void)state;
	v.failing = true;
	v.failure = POLL_CONNECT_FAILED;
	for (size_t i = 0; i < N_KINDS; i++)
		assert_down(decide(&v, every_kind[i], &p), "pg-unreachable");
	v.failure = POLL_CONNECT_TIMEOUT;
	assert_down(decide(&v, REQUEST_HEALTH, &p), "connect-timeout");
}

static void
test_failed_poll_is_not_masked_by_an_older_good_sample(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	r.failing = true;
	r.failure = POLL_TIMEOUT;
	pr.failing = true;
	pr.failure = POLL_TIMEOUT;
	for (size_t i = 0; i < N_KINDS; i++) {
		assert_down(decide(&r, every_kind[i], &p), "timeout");
		assert_down(decide(&pr, every_kind[i], &p), "timeout");
	}
	pr.failure = POLL_QUERY_FAILED;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "query-failed");
	pr.failure = POLL_CONNECTION_LOST;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "connection-lost");
	pr.failure = POLL_CONNECT_FAILED;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "pg-unreachable");
}

static void
test_reason_of_a_failure_is_poll_result_name(void **state)
{
	struct node_view v = primary_view();
	struct policy p = test_policy();

	(void)state;
	v.failing = true;
	for (int f = POLL_CONNECT_FAILED; f < POLL_RESULT_COUNT; f++) {
		v.failure = (enum poll_result)f;
		assert_down(decide(&v, REQUEST_HEALTH, &p), poll_result_name((enum poll_result)f));
	}
}

static void
test_sample_older_than_stale_limit_is_down_stale(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	r.sample_age_ms = p.stale_after_ms + 1;
	pr.sample_age_ms = p.stale_after_ms + 1;
	for (size_t i = 0; i < N_KINDS; i++) {
		assert_down(decide(&r, every_kind[i], &p), "stale");
		assert_down(decide(&pr, every_kind[i], &p), "stale");
	}
	pr.sample_age_ms = 3600 * 1000;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "stale");
}

static void
test_sample_exactly_at_stale_limit_is_still_up(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	r.sample_age_ms = p.stale_after_ms;
	pr.sample_age_ms = p.stale_after_ms;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 70);
	assert_up(decide(&pr, REQUEST_PRIMARY, &p), 100);
	assert_up(decide(&pr, REQUEST_HEALTH, &p), 100);
}

/* Operator overrides */

static void
test_maint_is_down_maint_for_every_kind(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	r.override = OVERRIDE_MAINT;
	pr.override = OVERRIDE_MAINT;
	for (size_t i = 0; i < N_KINDS; i++) {
		assert_down(decide(&r, every_kind[i], &p), "maint");
		assert_down(decide(&pr, every_kind[i], &p), "maint");
	}
}

static void
test_maint_while_shutting_down_is_still_maint(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	pr.override = OVERRIDE_MAINT;
	pr.shutting_down = true;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "maint");
}

static void
test_drain_is_up_zero_where_it_would_be_up(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	r.override = OVERRIDE_DRAIN;
	pr.override = OVERRIDE_DRAIN;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 0);
	assert_up(decide(&r, REQUEST_READ_ONLY, &p), 0);
	assert_up(decide(&r, REQUEST_HEALTH, &p), 0);
	assert_up(decide(&pr, REQUEST_PRIMARY, &p), 0);
	assert_up(decide(&pr, REQUEST_READ_ONLY, &p), 0);
	assert_up(decide(&pr, REQUEST_HEALTH, &p), 0);
}

static void
test_drain_never_turns_down_into_up(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct node_view none = no_sample_view();
	struct policy p = test_policy();

	(void)state;
	r.override = OVERRIDE_DRAIN;
	pr.override = OVERRIDE_DRAIN;
	none.override = OVERRIDE_DRAIN;
	assert_down(decide(&r, REQUEST_PRIMARY, &p), "is-replica");
	assert_down(decide(&pr, REQUEST_REPLICA, &p), "is-primary");
	assert_down(decide(&none, REQUEST_HEALTH, &p), "starting");

	r.sample.receiver_streaming = false;
	assert_down(decide(&r, REQUEST_REPLICA, &p), "disconnected");

	r = replica_view();
	r.override = OVERRIDE_DRAIN;
	r.lag_over = true;
	r.sample.lag_bytes = 35 * MB;
	r.sample.lag_s = 12.4;
	assert_down_lag(decide(&r, REQUEST_REPLICA, &p));

	pr.failing = true;
	pr.failure = POLL_TIMEOUT;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "timeout");

	pr = primary_view();
	pr.override = OVERRIDE_DRAIN;
	pr.sample_age_ms = p.stale_after_ms + 1;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "stale");
}

static void
test_shutting_down_is_up_zero_where_it_would_be_up(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	r.shutting_down = true;
	pr.shutting_down = true;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 0);
	assert_up(decide(&r, REQUEST_HEALTH, &p), 0);
	assert_up(decide(&pr, REQUEST_PRIMARY, &p), 0);
	assert_up(decide(&pr, REQUEST_READ_ONLY, &p), 0);
}

static void
test_shutting_down_never_turns_down_into_up(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct node_view none = no_sample_view();
	struct policy p = test_policy();

	(void)state;
	r.shutting_down = true;
	pr.shutting_down = true;
	none.shutting_down = true;
	assert_down(decide(&r, REQUEST_PRIMARY, &p), "is-replica");
	assert_down(decide(&pr, REQUEST_REPLICA, &p), "is-primary");
	assert_down(decide(&none, REQUEST_PRIMARY, &p), "starting");
	pr.failing = true;
	pr.failure = POLL_CONNECT_FAILED;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "pg-unreachable");
}

/* primary */

static void
test_primary_request_on_a_primary_is_up_100(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();
	struct verdict v;

	(void)state;
	v = decide(&pr, REQUEST_PRIMARY, &p);
	assert_up(v, 100);
	assert_string_equal(v.reason, "");
}

static void
test_primary_weight_is_100_whatever_the_load(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	pr.load_weight_pct = 10;
	pr.replica_weight_pct = 10;
	assert_up(decide(&pr, REQUEST_PRIMARY, &p), 100);
}

static void
test_primary_request_on_a_replica_is_down_is_replica(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();

	(void)state;
	assert_down(decide(&r, REQUEST_PRIMARY, &p), "is-replica");
	r.sample.read_only = false; /* in recovery decides, whatever the session says */
	assert_down(decide(&r, REQUEST_PRIMARY, &p), "is-replica");
}

static void
test_read_only_primary_is_down_read_only(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	pr.sample.read_only = true;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "read-only");
}

static void
test_fenced_primary_is_down_read_only(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	pr.sample.default_read_only = true;
	assert_down(decide(&pr, REQUEST_PRIMARY, &p), "read-only");
}

static void
test_read_only_primary_is_still_healthy(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	pr.sample.read_only = true;
	pr.sample.default_read_only = true;
	assert_up(decide(&pr, REQUEST_HEALTH, &p), 100);
}

/* replica */

static void
test_replica_request_on_a_primary_is_down_is_primary(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	assert_down(decide(&pr, REQUEST_REPLICA, &p), "is-primary");
}

static void
test_streaming_replica_is_up_with_its_weight(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct verdict v;

	(void)state;
	v = decide(&r, REQUEST_REPLICA, &p);
	assert_up(v, 70);
	assert_string_equal(v.reason, "");
	r.replica_weight_pct = 30;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 30);
	r.replica_weight_pct = 100;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 100);
}

static void
test_replica_not_streaming_is_down_disconnected(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();

	(void)state;
	r.sample.receiver_streaming = false;
	assert_down(decide(&r, REQUEST_REPLICA, &p), "disconnected");
	assert_down(decide(&r, REQUEST_READ_ONLY, &p), "disconnected");
}

static void
test_replica_that_lost_its_primary_serves_reads_within_the_time_limit(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request req = {.kind = REQUEST_REPLICA, .has_max_lag_s = true, .max_lag_s = 2};

	(void)state;
	r.sample.receiver_streaming = false;
	r.was_streaming = true;
	r.not_streaming_ms = (int64_t)(p.max_lag_s * 1000) - 1; /* data at most that old: still up */
	assert_up(decide(&r, REQUEST_REPLICA, &p), 70);
	r.not_streaming_ms = (int64_t)(p.max_lag_s * 1000) + 1;
	assert_down(decide(&r, REQUEST_REPLICA, &p), "disconnected");
	r.not_streaming_ms = 2500; /* a request's own limit applies */
	assert_down(decide_req(&r, &req, &p), "disconnected");
	p.max_lag_s = 0; /* no time limit: the age cannot be bounded, so down */
	r.not_streaming_ms = 1;
	assert_down(decide(&r, REQUEST_REPLICA, &p), "disconnected");
}

static void
test_replica_with_silent_receiver_is_down_disconnected(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();

	(void)state;
	r.sample.receiver_silence_s = 61.0;
	assert_down(decide(&r, REQUEST_REPLICA, &p), "disconnected");
	r.sample.receiver_silence_s = 59.0;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 70);
}

static void
test_receiver_silence_limit_zero_is_disabled(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();

	(void)state;
	p.receiver_silence_max_ms = 0;
	r.sample.receiver_silence_s = 1e6;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 70);
	r.sample.receiver_streaming = false; /* not streaming is still disconnected */
	assert_down(decide(&r, REQUEST_REPLICA, &p), "disconnected");
}

static void
test_replica_over_lag_limit_is_down(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();

	(void)state;
	r.lag_over = true;
	r.sample.lag_bytes = 35 * MB;
	r.sample.lag_s = 12.4;
	assert_down_lag(decide(&r, REQUEST_REPLICA, &p));
	assert_down(decide(&r, REQUEST_REPLICA, &p), "lag 35MB/12s");
}

static void
test_replica_over_lag_limit_with_drain_action_is_up_zero(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();

	(void)state;
	p.over_lag = OVER_LAG_DRAIN;
	r.lag_over = true;
	r.sample.lag_bytes = 35 * MB;
	r.sample.lag_s = 12.4;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 0);
	assert_up(decide(&r, REQUEST_READ_ONLY, &p), 0);
}

static void
test_per_request_lag_limit_over_is_down_even_without_lag_over(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_bytes = true;
	q.max_lag_bytes = 16 * MB;
	r.lag_over = false;
	r.sample.lag_bytes = 20 * MB;
	r.sample.lag_s = 0.5;
	assert_down_lag(decide_req(&r, &q, &p));
}

static void
test_per_request_lag_limit_under_is_up_even_with_lag_over(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_bytes = true;
	q.max_lag_bytes = 16 * MB;
	r.lag_over = true;
	r.sample.lag_bytes = 1 * MB;
	r.sample.lag_s = 0.5;
	assert_up(decide_req(&r, &q, &p), 70);
}

static void
test_per_request_lag_limit_is_stricter_than_the_policy(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_bytes = true;
	q.max_lag_bytes = 1 * MB;
	r.sample.lag_bytes = 2 * MB; /* under the configured 16MB */
	r.sample.lag_s = 0.5;
	assert_up(decide(&r, REQUEST_REPLICA, &p), 70);
	assert_down_lag(decide_req(&r, &q, &p));
}

static void
test_per_request_seconds_limit(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_s = true;
	q.max_lag_s = 5.0;
	r.sample.lag_bytes = 0;
	r.sample.lag_s = 6.0;
	assert_down_lag(decide_req(&r, &q, &p));

	r.lag_over = true;
	r.sample.lag_s = 4.0;
	assert_up(decide_req(&r, &q, &p), 70);
}

/* a parameter overrides only the limit it names; the other stays the configured one */

static void
test_request_seconds_limit_keeps_the_configured_byte_limit(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_s = true;
	q.max_lag_s = 5.0;
	r.lag_over = true; /* over the configured 16MB */
	r.sample.lag_bytes = 20 * MB;
	r.sample.lag_s = 0.5; /* under the requested 5 s */
	assert_down(decide_req(&r, &q, &p), "lag 20MB/0s");
	assert_down(decide(&r, REQUEST_REPLICA, &p), "lag 20MB/0s");
}

static void
test_request_seconds_limit_without_known_seconds_keeps_the_byte_limit(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_s = true;
	q.max_lag_s = 5.0;
	r.lag_over = true;
	r.sample.lag_bytes = 1 * GB;
	r.sample.have_lag_s = false; /* no time lag known: the byte limit is all there is */
	r.sample.lag_s = 0.0;
	assert_down(decide_req(&r, &q, &p), "lag 1GB");
}

static void
test_request_byte_limit_keeps_the_configured_seconds_limit(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_bytes = true;
	q.max_lag_bytes = 1 * GB;
	r.lag_over = true; /* over the configured 10 s */
	r.sample.lag_bytes = 2 * MB;
	r.sample.lag_s = 30.0;
	assert_down(decide_req(&r, &q, &p), "lag 2MB/30s");
	/* the same through read-only on a replica */
	q.kind = REQUEST_READ_ONLY;
	assert_down(decide_req(&r, &q, &p), "lag 2MB/30s");
}

static void
test_request_limit_keeps_a_disabled_configured_limit_disabled(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	p.max_lag_bytes = 0; /* the byte limit is off in the configuration */
	q.has_max_lag_s = true;
	q.max_lag_s = 5.0;
	r.sample.lag_bytes = 1 * GB;
	r.sample.lag_s = 0.5;
	assert_up(decide_req(&r, &q, &p), 70);
}

static void
test_request_limit_under_the_configured_one_it_names_is_still_up(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	/* over the configured 10 s, under the requested 60 s, bytes under 16MB */
	q.has_max_lag_s = true;
	q.max_lag_s = 60.0;
	r.lag_over = true;
	r.sample.lag_bytes = 2 * MB;
	r.sample.lag_s = 30.0;
	assert_up(decide_req(&r, &q, &p), 70);
}

static void
test_request_limit_keeps_the_hysteresis_of_the_limit_it_does_not_name(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_s = true;
	q.max_lag_s = 5.0;
	/* went over 16MB, now at 12MB: not yet back under 50% of the byte limit */
	r.lag_over = true;
	r.lag_over_bytes = true;
	r.sample.lag_bytes = 12 * MB;
	r.sample.lag_s = 0.5;
	assert_down(decide_req(&r, &q, &p), "lag 12MB/0s");
	/* over the seconds limit alone (its hysteresis): a byte parameter does not lift it */
	r = replica_view();
	q = req(REQUEST_REPLICA);
	q.has_max_lag_bytes = true;
	q.max_lag_bytes = 1 * GB;
	r.lag_over = true;
	r.lag_over_s = true;
	r.sample.lag_s = 7.0; /* under 10 s, over 5 s */
	assert_down(decide_req(&r, &q, &p), "lag 0B/7s");
	/* the named limit's own state does not count: only the requested value does */
	q.max_lag_bytes = 0;
	q.has_max_lag_bytes = false;
	q.has_max_lag_s = true;
	q.max_lag_s = 8.0;
	assert_up(decide_req(&r, &q, &p), 70);
}

static void
test_per_request_lag_limit_on_a_primary_is_still_is_primary(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_bytes = true;
	q.max_lag_bytes = 16 * MB;
	assert_down(decide_req(&pr, &q, &p), "is-primary");
}

/* read-only */

static void
test_read_only_request_on_a_replica_behaves_as_replica(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();

	(void)state;
	assert_up(decide(&r, REQUEST_READ_ONLY, &p), 70);
	r.lag_over = true;
	r.sample.lag_bytes = 35 * MB;
	r.sample.lag_s = 12.4;
	assert_down(decide(&r, REQUEST_READ_ONLY, &p), "lag 35MB/12s");
	r = replica_view();
	r.sample.receiver_streaming = false;
	assert_down(decide(&r, REQUEST_READ_ONLY, &p), "disconnected");
}

static void
test_read_only_request_on_a_primary_uses_its_read_weight(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	p.primary_read_pct = 100;
	pr.load_weight_pct = 100;
	assert_up(decide(&pr, REQUEST_READ_ONLY, &p), 100);

	p.primary_read_pct = 60;
	pr.load_weight_pct = 70; /* 42 -> 40 */
	assert_up(decide(&pr, REQUEST_READ_ONLY, &p), 40);

	p.primary_read_pct = 50;
	pr.load_weight_pct = 100;
	assert_up(decide(&pr, REQUEST_READ_ONLY, &p), 50);

	p.primary_read_pct = 100;
	pr.load_weight_pct = 80;
	assert_up(decide(&pr, REQUEST_READ_ONLY, &p), 80);
}

static void
test_read_only_request_on_a_primary_with_zero_read_pct_is_up_zero(void **state)
{
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	p.primary_read_pct = 0;
	pr.load_weight_pct = 100;
	assert_up(decide(&pr, REQUEST_READ_ONLY, &p), 0);
}

/* health */

static void
test_health_is_up_100_whenever_the_sample_is_fresh(void **state)
{
	struct node_view r = replica_view();
	struct node_view pr = primary_view();
	struct policy p = test_policy();

	(void)state;
	assert_up(decide(&r, REQUEST_HEALTH, &p), 100);
	assert_up(decide(&pr, REQUEST_HEALTH, &p), 100);

	/* a lagging, disconnected, low-weight replica still answers queries */
	r.lag_over = true;
	r.sample.lag_bytes = 1024 * MB;
	r.sample.lag_s = 600.0;
	r.sample.receiver_streaming = false;
	r.replica_weight_pct = 10;
	r.load_weight_pct = 10;
	assert_up(decide(&r, REQUEST_HEALTH, &p), 100);
}

static void
test_health_is_down_without_a_fresh_sample(void **state)
{
	struct node_view none = no_sample_view();
	struct node_view stale = replica_view();
	struct node_view failing = replica_view();
	struct policy p = test_policy();

	(void)state;
	stale.sample_age_ms = p.stale_after_ms + 1;
	failing.failing = true;
	failing.failure = POLL_TIMEOUT;
	assert_down(decide(&none, REQUEST_HEALTH, &p), "starting");
	assert_down(decide(&stale, REQUEST_HEALTH, &p), "stale");
	assert_down(decide(&failing, REQUEST_HEALTH, &p), "timeout");
}

/* locality: prefer=KEY=VALUE against [agent] location */

static struct request
prefer_req(enum request_kind kind, const char *a, const char *b)
{
	struct request r = req(kind);

	if (a != NULL)
		assert_true(request_param_apply(&r, "prefer", 6, a, strlen(a)));
	if (b != NULL)
		assert_true(request_param_apply(&r, "prefer", 6, b, strlen(b)));
	return r;
}

static void
test_a_preferred_location_keeps_its_weight(void **state)
{
	struct node_view v = replica_view();
	struct policy p = test_policy();
	struct request r = prefer_req(REQUEST_REPLICA, "dc=fra", NULL);

	(void)state;
	p.location = "dc=fra, zone=b";
	assert_up(decide_req(&v, &r, &p), 70);
	assert_string_equal(decide_req(&v, &r, &p).reason, "");
	r = prefer_req(REQUEST_REPLICA, "zone=b", "dc=fra"); /* every label named must match */
	assert_up(decide_req(&v, &r, &p), 70);
	r = prefer_req(REQUEST_READ_ONLY, "dc=fra", NULL);
	assert_up(decide_req(&v, &r, &p), 70);
}

static void
test_another_location_gets_the_floor_and_stays_up(void **state)
{
	struct node_view v = replica_view();
	struct policy p = test_policy();
	struct request r = prefer_req(REQUEST_REPLICA, "dc=ams", NULL);
	struct verdict out;

	(void)state;
	p.location = "dc=fra,zone=b";
	out = decide_req(&v, &r, &p);
	assert_up(out, 10);
	assert_int_equal(out.why, REASON_NOT_PREFERRED);
	assert_string_equal(out.reason, "not-preferred");
	r = prefer_req(REQUEST_REPLICA, "dc=fra", "zone=a"); /* one label of two is not enough */
	assert_up(decide_req(&v, &r, &p), 10);
	r = prefer_req(REQUEST_REPLICA, "DC=fra", NULL); /* labels compare as written */
	assert_up(decide_req(&v, &r, &p), 10);
	r = prefer_req(REQUEST_REPLICA, "dc=fr", NULL); /* a whole label, not a prefix */
	assert_up(decide_req(&v, &r, &p), 10);
	/* a node without a location is nobody's preference */
	p.location = "";
	r = prefer_req(REQUEST_REPLICA, "dc=fra", NULL);
	assert_up(decide_req(&v, &r, &p), 10);
	p.location = NULL;
	assert_up(decide_req(&v, &r, &p), 10);
	/* a weight already under the floor stays where it is */
	p.location = "dc=ams";
	v.replica_weight_pct = 5;
	assert_up(decide_req(&v, &r, &p), 5);
}

static void
test_prefer_never_makes_anything_up_and_leaves_writes_alone(void **state)
{
	struct node_view v = replica_view();
	struct node_view pv = primary_view();
	struct policy p = test_policy();
	struct request r = prefer_req(REQUEST_PRIMARY, "dc=fra", NULL);
	struct verdict out;

	(void)state;
	p.location = "dc=fra";
	/* a replica asked for the primary stays down, preferred or not */
	assert_down(decide_req(&v, &r, &p), "is-replica");
	/* the primary's write answer ignores prefer: one write target, wherever it is */
	p.location = "dc=ams";
	assert_up(decide_req(&pv, &r, &p), 100);
	r = prefer_req(REQUEST_HEALTH, "dc=fra", NULL);
	assert_up(decide_req(&pv, &r, &p), 100);
	/* down stays down with its own reason */
	r = prefer_req(REQUEST_REPLICA, "dc=ams", NULL);
	v.sample.lag_bytes = 64 * MB;
	v.lag_over = true;
	assert_down_lag(decide_req(&v, &r, &p));
	/* drained for lag: up 0%, and the reason stays the lag */
	p.over_lag = OVER_LAG_DRAIN;
	p.location = "dc=fra";
	r = prefer_req(REQUEST_REPLICA, "dc=ams", NULL);
	out = decide_req(&v, &r, &p);
	assert_up(out, 0);
	assert_int_equal(out.why, REASON_LAG);
	/* an operator's drain wins over not-preferred */
	v = replica_view();
	v.override = OVERRIDE_DRAIN;
	out = decide_req(&v, &r, &p);
	assert_up(out, 0);
	assert_int_equal(out.why, REASON_DRAIN);
}

/* verdict_format_lag */

static void
assert_lag_text(int64_t bytes, bool have_s, double s, const char *want)
{
	char buf[64];

	memset(buf, 'X', sizeof(buf));
	verdict_format_lag(bytes, have_s, s, buf, sizeof(buf));
	assert_non_null(memchr(buf, '\0', sizeof(buf)));
	assert_string_equal(buf, want);
}

static void
test_format_lag_bytes_and_seconds(void **state)
{
	(void)state;
	assert_lag_text(35 * MB, true, 12.4, "35MB/12s");
	assert_lag_text(0, true, 0.0, "0B/0s");
}

static void
test_format_lag_seconds_floor_like_bytes(void **state)
{
	(void)state;
	assert_lag_text(35 * MB, true, 12.9, "35MB/12s");
	assert_lag_text(0, true, 0.6, "0B/0s");
	assert_lag_text(2 * KB_, true, 3600.99, "2kB/3600s");
}

static void
test_format_lag_bytes_only_without_seconds(void **state)
{
	(void)state;
	assert_lag_text(35 * MB, false, 12.4, "35MB");
	assert_lag_text(0, false, 0.0, "0B");
}

static void
test_format_lag_units_floor_to_largest_unit_at_least_one(void **state)
{
	(void)state;
	assert_lag_text(1, false, 0, "1B");
	assert_lag_text(1023, false, 0, "1023B");
	assert_lag_text(1024, false, 0, "1kB");
	assert_lag_text(1536, false, 0, "1kB");
	assert_lag_text(MB - 1, false, 0, "1023kB");
	assert_lag_text(MB, false, 0, "1MB");
	assert_lag_text(35 * MB + MB - 1, false, 0, "35MB");
	assert_lag_text(GB + GB / 2, false, 0, "1GB");
	assert_lag_text(TB - 1, false, 0, "1023GB");
	assert_lag_text(2 * TB, false, 0, "2TB");
	assert_lag_text(2048 * TB, false, 0, "2048TB");
}

static void
test_format_lag_truncates_into_a_small_buffer(void **state)
{
	char buf[16];

	(void)state;
	memset(buf, 'X', sizeof(buf));
	verdict_format_lag(35 * MB, true, 12.4, buf, 5);
	assert_non_null(memchr(buf, '\0', 5));
	for (size_t i = 5; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 'X');
}

/* min_lsn: freshness by position */

static struct request
req_min_lsn(enum request_kind kind, uint64_t min_lsn)
{
	struct request r = req(kind);

	r.has_min_lsn = true;
	r.min_lsn = min_lsn;
	return r;
}

static void
test_replica_that_replayed_min_lsn_is_up(void **state)
{
	struct node_view r = replica_view(); /* replayed 0/3000000 */
	struct policy p = test_policy();
	struct request q;

	(void)state;
	q = req_min_lsn(REQUEST_REPLICA, 0x3000000);
	assert_up(decide_req(&r, &q, &p), 70);
	q = req_min_lsn(REQUEST_REPLICA, 0x2FFFFFF);
	assert_up(decide_req(&r, &q, &p), 70);
	q = req_min_lsn(REQUEST_READ_ONLY, 0);
	assert_up(decide_req(&r, &q, &p), 70);
	q = req_min_lsn(REQUEST_HEALTH, 0x3000000);
	assert_up(decide_req(&r, &q, &p), 100);
}

static void
test_replica_behind_min_lsn_is_down_with_its_replay_lsn(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q;

	(void)state;
	q = req_min_lsn(REQUEST_REPLICA, 0x3000060);
	assert_down(decide_req(&r, &q, &p), "behind 0/3000000");
	q = req_min_lsn(REQUEST_READ_ONLY, 0x3000001);
	assert_down(decide_req(&r, &q, &p), "behind 0/3000000");
	/* health on a replica tests the position too: a parameter is never ignored */
	q = req_min_lsn(REQUEST_HEALTH, 0x3000060);
	assert_down(decide_req(&r, &q, &p), "behind 0/3000000");
	/* the replayed position is shown as PostgreSQL writes it */
	r.sample.replay_lsn = 0x16B374D848ULL;
	q = req_min_lsn(REQUEST_REPLICA, UINT64_MAX);
	assert_down(decide_req(&r, &q, &p), "behind 16/B374D848");
	q = req_min_lsn(REQUEST_REPLICA, 0x16B374D849ULL);
	assert_down(decide_req(&r, &q, &p), "behind 16/B374D848");
	{
		struct verdict v = decide_req(&r, &q, &p);

		assert_int_equal(v.why, REASON_BEHIND_LSN);
		assert_string_equal(verdict_reason_name(REASON_BEHIND_LSN), "behind");
	}
}

static void
test_replica_behind_min_lsn_is_down_even_when_drained_or_lag_drains(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req_min_lsn(REQUEST_REPLICA, 0x3000060);

	(void)state;
	/* over_lag = drain answers a lagging replica up 0%; one behind the asked position is never up */
	p.over_lag = OVER_LAG_DRAIN;
	r.lag_over = true;
	r.sample.lag_bytes = 35 * MB;
	assert_down(decide_req(&r, &q, &p), "behind 0/3000000");
	r.lag_over = false;
	r.sample.lag_bytes = 0;
	r.override = OVERRIDE_DRAIN;
	assert_down(decide_req(&r, &q, &p), "behind 0/3000000");
	r.override = OVERRIDE_NONE;
	r.shutting_down = true;
	assert_down(decide_req(&r, &q, &p), "behind 0/3000000");
}

static void
test_replica_min_lsn_keeps_every_other_condition(void **state)
{
	struct node_view r = replica_view();
	struct policy p = test_policy();
	struct request q = req_min_lsn(REQUEST_REPLICA, 0);

	(void)state;
	r.lag_over = true;
	r.sample.lag_bytes = 35 * MB;
	r.sample.lag_s = 12.4;
	assert_down(decide_req(&r, &q, &p), "lag 35MB/12s");
	r = replica_view();
	r.sample.receiver_streaming = false;
	r.was_streaming = false;
	assert_down(decide_req(&r, &q, &p), "disconnected");
	r = replica_view();
	r.sample_age_ms = 5000;
	assert_down(decide_req(&r, &q, &p), "stale");
	r = replica_view();
	r.override = OVERRIDE_MAINT;
	assert_down(decide_req(&r, &q, &p), "maint");
	r = no_sample_view();
	assert_down(decide_req(&r, &q, &p), "starting");
}

static void
test_primary_has_every_lsn_for_read_only_and_health(void **state)
{
	struct node_view pr = primary_view(); /* current_lsn 0/3000000, sampled 200 ms ago */
	struct policy p = test_policy();
	struct request q;

	(void)state;
	/* a write after the sample has a later LSN than the sample's: the primary still holds it */
	q = req_min_lsn(REQUEST_READ_ONLY, 0x3000060);
	assert_up(decide_req(&pr, &q, &p), 80);
	q = req_min_lsn(REQUEST_HEALTH, UINT64_MAX);
	assert_up(decide_req(&pr, &q, &p), 100);
	q = req_min_lsn(REQUEST_PRIMARY, 0x3000060);
	assert_up(decide_req(&pr, &q, &p), 100);
	q = req_min_lsn(REQUEST_REPLICA, 0);
	assert_down(decide_req(&pr, &q, &p), "is-primary");
	/* fencing still applies */
	pr.peers.newest_primary_timeline = 3;
	q = req_min_lsn(REQUEST_READ_ONLY, 0);
	assert_down(decide_req(&pr, &q, &p), "fenced newer primary on timeline 3");
}

/* A replica the one fresh peer primary counts as st (the peers' word, as peers_cluster condenses it). */
static struct node_view
replica_counted_as(enum sync_state st)
{
	struct node_view v = replica_view();

	v.peers.configured = 2;
	v.peers.fresh = 2;
	v.cluster.my_sync = st;
	return v;
}

static void
test_sync_request_is_up_only_on_a_replica_the_primary_counts_as_sync(void **state)
{
	struct node_view v = replica_counted_as(SYNC_SYNC);
	struct policy p = test_policy();

	(void)state;
	assert_up(decide(&v, REQUEST_SYNC, &p), 70);
	assert_down(decide(&v, REQUEST_ASYNC, &p), "sync-state sync");
	assert_down(decide(&v, REQUEST_QUORUM, &p), "sync-state sync");
	assert_up(decide(&v, REQUEST_REPLICA, &p), 70); /* the plain words do not ask */
}

static void
test_async_request_is_up_on_an_async_or_potential_replica(void **state)
{
	struct node_view v = replica_counted_as(SYNC_ASYNC);
	struct policy p = test_policy();

	(void)state;
	assert_up(decide(&v, REQUEST_ASYNC, &p), 70);
	assert_down(decide(&v, REQUEST_SYNC, &p), "sync-state async");
	v.cluster.my_sync = SYNC_POTENTIAL; /* the primary does not wait for it (yet) */
	assert_up(decide(&v, REQUEST_ASYNC, &p), 70);
	assert_down(decide(&v, REQUEST_SYNC, &p), "sync-state potential");
}

static void
test_quorum_request_is_up_only_on_a_quorum_replica(void **state)
{
	struct node_view v = replica_counted_as(SYNC_QUORUM);
	struct policy p = test_policy();

	(void)state;
	assert_up(decide(&v, REQUEST_QUORUM, &p), 70);
	assert_down(decide(&v, REQUEST_SYNC, &p), "sync-state quorum");
	assert_down(decide(&v, REQUEST_ASYNC, &p), "sync-state quorum");
}

static void
test_sync_requests_fail_closed_without_the_primary_word(void **state)
{
	struct node_view v = replica_counted_as(SYNC_UNKNOWN);
	struct policy p = test_policy();

	(void)state;
	/* no fresh primary, an older one that does not say, or a list cut short: not known, down */
	assert_down(decide(&v, REQUEST_SYNC, &p), "sync-unknown");
	assert_down(decide(&v, REQUEST_ASYNC, &p), "sync-unknown");
	assert_down(decide(&v, REQUEST_QUORUM, &p), "sync-unknown");
	v.cluster.my_sync = SYNC_NONE; /* the primary's whole list leaves it out */
	assert_down(decide(&v, REQUEST_SYNC, &p), "sync-state none");
	assert_down(decide(&v, REQUEST_ASYNC, &p), "sync-state none");
}

static void
test_sync_requests_keep_every_replica_rule(void **state)
{
	struct node_view v = replica_counted_as(SYNC_SYNC);
	struct policy p = test_policy();
	struct request q = req(REQUEST_SYNC);

	(void)state;
	/* the primary's word never lifts a replica's own reason */
	v.lag_over = true;
	v.sample.lag_bytes = 35 * MB;
	v.sample.lag_s = 12.4;
	assert_down(decide(&v, REQUEST_SYNC, &p), "lag 35MB/12s");
	v = replica_counted_as(SYNC_SYNC);
	v.sample.receiver_streaming = false;
	assert_down(decide(&v, REQUEST_SYNC, &p), "disconnected");
	v = replica_counted_as(SYNC_SYNC);
	q.has_min_lsn = true;
	q.min_lsn = 0x3000001;
	assert_down(decide_req(&v, &q, &p), "behind 0/3000000");
	v.sample_age_ms = 5000;
	assert_down(decide(&v, REQUEST_SYNC, &p), "stale");
	v = replica_counted_as(SYNC_SYNC);
	v.override = OVERRIDE_DRAIN;
	assert_up(decide(&v, REQUEST_SYNC, &p), 0);
	v.override = OVERRIDE_MAINT;
	assert_down(decide(&v, REQUEST_SYNC, &p), "maint");
}

static void
test_sync_requests_on_a_primary_are_down_is_primary(void **state)
{
	struct node_view v = primary_view();
	struct policy p = test_policy();

	(void)state;
	v.cluster.my_sync = SYNC_SYNC; /* whatever anyone says */
	assert_down(decide(&v, REQUEST_SYNC, &p), "is-primary");
	assert_down(decide(&v, REQUEST_ASYNC, &p), "is-primary");
	assert_down(decide(&v, REQUEST_QUORUM, &p), "is-primary");
}

/* A replica over the lag limit with keep-best, whose fresh peers tell of one other replica, lagging behind it. */
static struct node_view
lagging_replica_best(void)
{
	struct node_view v = replica_view();

	v.lag_over = true;
	v.sample.lag_bytes = 35 * MB;
	v.sample.lag_s = 12.4;
	v.peers.configured = 2;
	v.peers.fresh = 2;
	v.cluster.replicas_fresh = 1;
	v.cluster.replicas_lagging = 1;
	v.cluster.lagging_ahead = false;
	return v;
}

static struct policy
keep_best_policy(void)
{
	struct policy p = test_policy();

	p.over_lag = OVER_LAG_KEEP_BEST;
	p.floor_pct = 10;
	return p;
}

static void
test_keep_best_keeps_the_least_behind_replica_up_at_the_floor(void **state)
{
	struct node_view v = lagging_replica_best();
	struct policy p = keep_best_policy();

	(void)state;
	assert_up(decide(&v, REQUEST_REPLICA, &p), 10);
	assert_string_equal(decide(&v, REQUEST_REPLICA, &p).reason, "keep-best lag 35MB/12s");
	assert_up(decide(&v, REQUEST_READ_ONLY, &p), 10);
	/* an operator's drain still wins */
	v.override = OVERRIDE_DRAIN;
	assert_up(decide(&v, REQUEST_REPLICA, &p), 0);
	assert_string_equal(decide(&v, REQUEST_REPLICA, &p).reason, "drain");
}

static void
test_keep_best_is_down_when_another_replica_is_ahead_or_up(void **state)
{
	struct node_view v = lagging_replica_best();
	struct policy p = keep_best_policy();

	(void)state;
	v.cluster.lagging_ahead = true; /* the other one has replayed more (or as much, with a lower name) */
	assert_down(decide(&v, REQUEST_REPLICA, &p), "lag 35MB/12s");
	v = lagging_replica_best();
	v.cluster.replicas_lagging = 0;
	v.cluster.replicas_up = 1; /* reads have somewhere to go */
	assert_down(decide(&v, REQUEST_REPLICA, &p), "lag 35MB/12s");
}

static void
test_keep_best_fails_closed_without_fresh_peers_or_with_an_older_one(void **state)
{
	struct node_view v = lagging_replica_best();
	struct policy p = keep_best_policy();

	(void)state;
	v.peers.fresh = 0; /* nothing fresh: it cannot know it is the best */
	v.cluster.replicas_fresh = 0;
	v.cluster.replicas_lagging = 0;
	assert_down(decide(&v, REQUEST_REPLICA, &p), "lag 35MB/12s");
	v = lagging_replica_best();
	v.cluster.replicas_fresh = 2;
	v.cluster.replicas_unsure = 1; /* an older node that does not say how its reads stand */
	assert_down(decide(&v, REQUEST_REPLICA, &p), "lag 35MB/12s");
}

static void
test_keep_best_never_lifts_other_reasons_or_a_request_limit(void **state)
{
	struct node_view v = lagging_replica_best();
	struct policy p = keep_best_policy();
	struct request q = req(REQUEST_REPLICA);

	(void)state;
	q.has_max_lag_bytes = true; /* asked for its own limit: answered as asked */
	q.max_lag_bytes = 16 * MB;
	assert_down(decide_req(&v, &q, &p), "lag 35MB/12s");
	v.sample.receiver_streaming = false;
	assert_down(decide(&v, REQUEST_REPLICA, &p), "disconnected");
	v = lagging_replica_best();
	q = req(REQUEST_REPLICA);
	q.has_min_lsn = true;
	q.min_lsn = 0x3000001;
	assert_down(decide_req(&v, &q, &p), "behind 0/3000000");
	v = lagging_replica_best();
	v.sample.in_recovery = false; /* a primary is never a kept replica */
	assert_down(decide(&v, REQUEST_REPLICA, &p), "is-primary");
	/* off by default: down and drain as before */
	v = lagging_replica_best();
	p.over_lag = OVER_LAG_DOWN;
	assert_down(decide(&v, REQUEST_REPLICA, &p), "lag 35MB/12s");
}

static void
test_new_reasons_render_in_one_place(void **state)
{
	struct verdict vd;
	char buf[VERDICT_REASON_MAX];

	(void)state;
	memset(&vd, 0, sizeof(vd));
	vd.why = REASON_SYNC_STATE;
	vd.sync = SYNC_POTENTIAL;
	verdict_render_reason(&vd, buf, sizeof(buf));
	assert_string_equal(buf, "sync-state potential");
	vd.why = REASON_SYNC_UNKNOWN;
	verdict_render_reason(&vd, buf, sizeof(buf));
	assert_string_equal(buf, "sync-unknown");
	vd.why = REASON_KEEP_BEST;
	vd.lag_bytes = 2 * KB_;
	vd.have_lag_s = false;
	verdict_render_reason(&vd, buf, sizeof(buf));
	assert_string_equal(buf, "keep-best lag 2kB");
	assert_string_equal(verdict_sync_name(SYNC_STATE_COUNT), "unknown");
	assert_string_equal(verdict_sync_name(SYNC_NONE), "none");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_sample_yet_is_down_starting_for_every_kind),
	    cmocka_unit_test(test_no_sample_and_failed_poll_is_down_with_the_failure),
	    cmocka_unit_test(test_failed_poll_is_not_masked_by_an_older_good_sample),
	    cmocka_unit_test(test_reason_of_a_failure_is_poll_result_name),
	    cmocka_unit_test(test_sample_older_than_stale_limit_is_down_stale),
	    cmocka_unit_test(test_sample_exactly_at_stale_limit_is_still_up),
	    cmocka_unit_test(test_maint_is_down_maint_for_every_kind),
	    cmocka_unit_test(test_maint_while_shutting_down_is_still_maint),
	    cmocka_unit_test(test_drain_is_up_zero_where_it_would_be_up),
	    cmocka_unit_test(test_drain_never_turns_down_into_up),
	    cmocka_unit_test(test_shutting_down_is_up_zero_where_it_would_be_up),
	    cmocka_unit_test(test_shutting_down_never_turns_down_into_up),
	    cmocka_unit_test(test_primary_request_on_a_primary_is_up_100),
	    cmocka_unit_test(test_primary_weight_is_100_whatever_the_load),
	    cmocka_unit_test(test_primary_request_on_a_replica_is_down_is_replica),
	    cmocka_unit_test(test_read_only_primary_is_down_read_only),
	    cmocka_unit_test(test_fenced_primary_is_down_read_only),
	    cmocka_unit_test(test_read_only_primary_is_still_healthy),
	    cmocka_unit_test(test_replica_request_on_a_primary_is_down_is_primary),
	    cmocka_unit_test(test_streaming_replica_is_up_with_its_weight),
	    cmocka_unit_test(test_replica_not_streaming_is_down_disconnected),
	    cmocka_unit_test(test_replica_that_lost_its_primary_serves_reads_within_the_time_limit),
	    cmocka_unit_test(test_replica_with_silent_receiver_is_down_disconnected),
	    cmocka_unit_test(test_receiver_silence_limit_zero_is_disabled),
	    cmocka_unit_test(test_replica_over_lag_limit_is_down),
	    cmocka_unit_test(test_replica_over_lag_limit_with_drain_action_is_up_zero),
	    cmocka_unit_test(test_sync_request_is_up_only_on_a_replica_the_primary_counts_as_sync),
	    cmocka_unit_test(test_async_request_is_up_on_an_async_or_potential_replica),
	    cmocka_unit_test(test_quorum_request_is_up_only_on_a_quorum_replica),
	    cmocka_unit_test(test_sync_requests_fail_closed_without_the_primary_word),
	    cmocka_unit_test(test_sync_requests_keep_every_replica_rule),
	    cmocka_unit_test(test_sync_requests_on_a_primary_are_down_is_primary),
	    cmocka_unit_test(test_keep_best_keeps_the_least_behind_replica_up_at_the_floor),
	    cmocka_unit_test(test_keep_best_is_down_when_another_replica_is_ahead_or_up),
	    cmocka_unit_test(test_keep_best_fails_closed_without_fresh_peers_or_with_an_older_one),
	    cmocka_unit_test(test_keep_best_never_lifts_other_reasons_or_a_request_limit),
	    cmocka_unit_test(test_new_reasons_render_in_one_place),
	    cmocka_unit_test(test_per_request_lag_limit_over_is_down_even_without_lag_over),
	    cmocka_unit_test(test_per_request_lag_limit_under_is_up_even_with_lag_over),
	    cmocka_unit_test(test_per_request_lag_limit_is_stricter_than_the_policy),
	    cmocka_unit_test(test_per_request_seconds_limit),
	    cmocka_unit_test(test_per_request_lag_limit_on_a_primary_is_still_is_primary),
	    cmocka_unit_test(test_request_seconds_limit_keeps_the_configured_byte_limit),
	    cmocka_unit_test(test_request_seconds_limit_without_known_seconds_keeps_the_byte_limit),
	    cmocka_unit_test(test_request_byte_limit_keeps_the_configured_seconds_limit),
	    cmocka_unit_test(test_request_limit_keeps_a_disabled_configured_limit_disabled),
	    cmocka_unit_test(test_request_limit_under_the_configured_one_it_names_is_still_up),
	    cmocka_unit_test(test_request_limit_keeps_the_hysteresis_of_the_limit_it_does_not_name),
	    cmocka_unit_test(test_read_only_request_on_a_replica_behaves_as_replica),
	    cmocka_unit_test(test_read_only_request_on_a_primary_uses_its_read_weight),
	    cmocka_unit_test(test_read_only_request_on_a_primary_with_zero_read_pct_is_up_zero),
	    cmocka_unit_test(test_health_is_up_100_whenever_the_sample_is_fresh),
	    cmocka_unit_test(test_replica_that_replayed_min_lsn_is_up),
	    cmocka_unit_test(test_replica_behind_min_lsn_is_down_with_its_replay_lsn),
	    cmocka_unit_test(test_replica_behind_min_lsn_is_down_even_when_drained_or_lag_drains),
	    cmocka_unit_test(test_replica_min_lsn_keeps_every_other_condition),
	    cmocka_unit_test(test_primary_has_every_lsn_for_read_only_and_health),
	    cmocka_unit_test(test_health_is_down_without_a_fresh_sample),
	    cmocka_unit_test(test_format_lag_bytes_and_seconds),
	    cmocka_unit_test(test_format_lag_seconds_floor_like_bytes),
	    cmocka_unit_test(test_format_lag_bytes_only_without_seconds),
	    cmocka_unit_test(test_format_lag_units_floor_to_largest_unit_at_least_one),
	    cmocka_unit_test(test_format_lag_truncates_into_a_small_buffer),
	    cmocka_unit_test(test_a_preferred_location_keeps_its_weight),
	    cmocka_unit_test(test_another_location_gets_the_floor_and_stays_up),
	    cmocka_unit_test(test_prefer_never_makes_anything_up_and_leaves_writes_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
