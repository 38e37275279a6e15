/*
 * test_fencing_time.c: fencing over time (agent/core/fencing.c): isolation counted from the start,
 * from the last streaming replica and from the last fresh peer; an operator's release and its end;
 * fence transitions noted once. Together with verdict_for(), so the whole rule runs without a daemon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fencing.h"
#include "request.h"
#include "verdict.h"

static struct policy
test_policy(int64_t isolation_fence_ms)
{
	struct policy p;

	memset(&p, 0, sizeof(p));
	p.stale_after_ms = 1500;
	p.max_lag_bytes = 16LL * 1024 * 1024;
	p.max_lag_s = 10.0;
	p.receiver_silence_max_ms = 60000;
	p.primary_read_pct = 100;
	p.step_pct = 10;
	p.isolation_fence_ms = isolation_fence_ms;
	return p;
}

/* a writable primary on timeline 2 with one peer configured; taken at now_ms */
static struct node_view
primary_view(int64_t now_ms)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = true;
	v.sample.taken_ms = now_ms;
	v.sample.timeline = 2;
	v.sample.system_identifier = 7;
	v.sample.max_connections = 100;
	v.peers.configured = 1;
	v.replica_weight_pct = 100;
	v.load_weight_pct = 100;
	return v;
}

static bool
primary_up(struct fencing *f, int64_t now_ms, struct node_view *v, const struct policy *p, char *reason)
{
	struct request r = {.kind = REQUEST_PRIMARY};
	struct verdict vd;

	fencing_apply(f, now_ms, v);
	verdict_for(v, &r, p, &vd);
	if (reason != NULL)
		snprintf(reason, VERDICT_REASON_MAX, "%s", vd.reason);
	return vd.up;
}

static void
test_isolation_counts_from_the_start_until_first_contact(void **state)
{
	struct policy p = test_policy(5000);
	struct fencing f;
	struct node_view v;

	(void)state;
	fencing_init(&f, 1000);
	v = primary_view(4000);
	assert_true(primary_up(&f, 4000, &v, &p, NULL));
	assert_int_equal(v.isolated_ms, 3000);
	v = primary_view(7000);
	assert_false(primary_up(&f, 7000, &v, &p, NULL)); /* 6 s without a peer or a replica */
	assert_int_equal(v.isolated_ms, 6000);
}

static void
test_a_streaming_replica_is_contact(void **state)
{
	struct policy p = test_policy(5000);
	struct fencing f;
	struct node_view v = primary_view(8000);

	(void)state;
	fencing_init(&f, 0);
	v.sample.streaming_replicas = 1;
	fencing_sample(&f, &v.sample);
	v = primary_view(12000);
	assert_true(primary_up(&f, 12000, &v, &p, NULL));
	assert_int_equal(v.isolated_ms, 4000);
	v = primary_view(13500);
	assert_false(primary_up(&f, 13500, &v, &p, NULL));
	/* a replica's sample is no contact for a primary's isolation */
	v.sample.in_recovery = true;
	v.sample.streaming_replicas = 3;
	fencing_sample(&f, &v.sample);
	assert_int_equal(f.last_replica_ms, 8000);
}

static void
test_a_fresh_peer_is_contact(void **state)
{
	struct policy p = test_policy(5000);
	struct fencing f;
	struct node_view v = primary_view(20000);

	(void)state;
	fencing_init(&f, 0);
	v.peers.fresh = 1;
	v.peers.last_fresh_ms = 19000;
	assert_true(primary_up(&f, 20000, &v, &p, NULL));
	assert_int_equal(v.isolated_ms, 1000);
}

static void
test_release_lifts_a_split_and_ends_with_it(void **state)
{
	struct policy p = test_policy(0);
	struct fencing f;
	struct node_view v = primary_view(1000);
	char reason[VERDICT_REASON_MAX];

	(void)state;
	fencing_init(&f, 0);
	/* nothing to release without a split */
	fencing_apply(&f, 1000, &v);
	assert_false(fencing_release(&f, &v));
	/* another primary on this timeline: fenced until released */
	v.peers.fresh = 1;
	v.peers.last_fresh_ms = 1000;
	v.peers.primaries_on_timeline = 1;
	assert_false(primary_up(&f, 1000, &v, &p, reason));
	assert_int_equal(strncmp(reason, "fenced", 6), 0);
	assert_true(fencing_release(&f, &v));
	assert_true(primary_up(&f, 1000, &v, &p, NULL));
	/* the split ends: the release ends with it, and a new split fences again */
	v.peers.primaries_on_timeline = 0;
	assert_true(primary_up(&f, 2000, &v, &p, NULL));
	assert_false(f.released);
	v.peers.primaries_on_timeline = 1;
	assert_false(primary_up(&f, 3000, &v, &p, NULL));
}

static void
test_fence_transitions_are_noted_once(void **state)
{
	struct fencing f;
	struct verdict up, newer, newer4, split, stale;

	(void)state;
	fencing_init(&f, 0);
	memset(&up, 0, sizeof(up));
	up.up = true;
	verdict_set_down(&newer, REASON_FENCED_NEWER_PRIMARY);
	newer.other_timeline = 3;
	newer4 = newer;
	newer4.other_timeline = 4;
	verdict_set_down(&split, REASON_FENCED_SPLIT_BRAIN);
	verdict_set_down(&stale, REASON_STALE);
	assert_int_equal(fencing_note(&f, &up), FENCING_SAME);
	assert_int_equal(fencing_note(&f, &newer), FENCING_BEGAN);
	assert_int_equal(fencing_note(&f, &newer), FENCING_SAME);
	assert_int_equal(fencing_note(&f, &newer4), FENCING_BEGAN); /* another timeline: said again */
	assert_int_equal(fencing_note(&f, &split), FENCING_BEGAN);  /* another reason: said again */
	assert_int_equal(fencing_note(&f, &stale), FENCING_ENDED);
	assert_int_equal(fencing_note(&f, &up), FENCING_SAME);
}

/* the reason is data: its text comes from one renderer, and fencing is told by its code */
static void
test_reasons_render_from_their_codes(void **state)
{
	struct verdict v;
	char buf[VERDICT_REASON_MAX];

	(void)state;
	verdict_set_down(&v, REASON_FENCED_NEWER_PRIMARY);
	v.other_timeline = 5;
	verdict_render_reason(&v, buf, sizeof(buf));
	assert_string_equal(buf, "fenced newer primary on timeline 5");
	assert_true(verdict_is_fenced(&v));
	verdict_set_down(&v, REASON_LAG);
	v.lag_bytes = 35LL * 1024 * 1024;
	v.have_lag_s = true;
	v.lag_s = 12.4;
	verdict_render_reason(&v, buf, sizeof(buf));
	assert_string_equal(buf, "lag 35MB/12s");
	assert_false(verdict_is_fenced(&v));
	verdict_set_down(&v, REASON_POLL_FAILED);
	v.failure = POLL_CONNECT_TIMEOUT;
	verdict_render_reason(&v, buf, sizeof(buf));
	assert_string_equal(buf, "connect-timeout");
	for (int i = 0; i < VERDICT_REASON_COUNT; i++)
		assert_string_not_equal(verdict_reason_name((enum verdict_reason)i), "unknown");
}

/* with peers configured, a primary is down until each peer read since the start was tried once */
static void
test_primary_waits_for_its_peers_first_round(void **state)
{
	struct policy p = test_policy(0);
	struct fencing f;
	struct node_view v = primary_view(1000);
	struct request ro = {.kind = REQUEST_READ_ONLY};
	struct verdict vd;
	char reason[VERDICT_REASON_MAX];

	(void)state;
	fencing_init(&f, 0);
	v.peers.unheard = 1;
	assert_false(primary_up(&f, 1000, &v, &p, reason));
	assert_string_equal(reason, "peers-unheard");
	verdict_for(&v, &ro, &p, &vd);
	assert_false(vd.up);
	p.fenced_reads = true; /* reads from a fenced primary allowed: so from one not yet sure */
	verdict_for(&v, &ro, &p, &vd);
	assert_true(vd.up);
	v.peers.unheard = 0;
	assert_true(primary_up(&f, 1000, &v, &p, NULL));
}

/* a request kind the table does not know is never up */
static void
test_unknown_request_kind_is_down(void **state)
{
	struct policy p = test_policy(0);
	struct node_view v = primary_view(1000);
	struct request r = {.kind = (enum request_kind)REQUEST_KIND_COUNT};
	struct verdict vd;

	(void)state;
	verdict_for(&v, &r, &p, &vd);
	assert_false(vd.up);
	assert_int_equal(vd.why, REASON_BAD_REQUEST);
}

static void
test_new_primary_waits_for_the_superseded_one_at_most_handover_ms(void **state)
{
	struct policy p = test_policy(0);
	struct fencing f;
	struct node_view v;
	char reason[VERDICT_REASON_MAX];

	(void)state;
	p.handover_ms = 2000;
	fencing_init(&f, 1000);
	v = primary_view(5000);
	v.peers.fresh = 1;
	v.peers.newest_primary_timeline = 1;
	v.peers.older_primaries_up = 1; /* the old primary on timeline 1 still takes writes */
	assert_false(primary_up(&f, 5000, &v, &p, reason));
	assert_string_equal(reason, "handover");
	assert_false(primary_up(&f, 6999, &v, &p, NULL));
	assert_int_equal(v.handover_ms, 1999);
	assert_true(primary_up(&f, 7000, &v, &p, NULL)); /* at most handover_ms */
	/* it fenced itself: up at once, and the next superseded primary counts from its own start */
	v.peers.older_primaries_up = 0;
	assert_true(primary_up(&f, 7100, &v, &p, NULL));
	assert_int_equal(v.handover_ms, 0);
	v.peers.older_primaries_up = 1;
	assert_false(primary_up(&f, 8000, &v, &p, NULL));
	v.peers.older_primaries_up = 0;
	assert_true(primary_up(&f, 8010, &v, &p, NULL));
	/* with a settle time: down that much longer after the step-down, for HAProxy to check the old one */
	p.handover_settle_ms = 250;
	v.peers.older_primaries_up = 1;
	assert_false(primary_up(&f, 8100, &v, &p, NULL));
	v.peers.older_primaries_up = 0;
	assert_false(primary_up(&f, 8200, &v, &p, reason));
	assert_string_equal(reason, "handover");
	assert_false(primary_up(&f, 8449, &v, &p, NULL));
	assert_true(primary_up(&f, 8450, &v, &p, NULL));
	/* ... but not after a wait that ran out: it was up already, it does not go down again */
	v.peers.older_primaries_up = 1;
	assert_false(primary_up(&f, 10000, &v, &p, NULL));
	assert_true(primary_up(&f, 12000, &v, &p, NULL));
	v.peers.older_primaries_up = 0;
	assert_true(primary_up(&f, 12010, &v, &p, NULL));
	p.handover_settle_ms = 0;
	/* 0: no wait */
	p.handover_ms = 0;
	v.peers.older_primaries_up = 1;
	assert_true(primary_up(&f, 9000, &v, &p, NULL));
	/* a replica holds nothing (and 'read-only' is not held) */
	p.handover_ms = 2000;
	v.sample.in_recovery = true;
	fencing_apply(&f, 9100, &v);
	assert_int_equal(v.handover_ms, 0);
	{
		struct request r = {.kind = REQUEST_READ_ONLY};
		struct verdict vd;

		v.sample.in_recovery = false;
		fencing_apply(&f, 9200, &v);
		verdict_for(&v, &r, &p, &vd);
		assert_true(vd.up);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_isolation_counts_from_the_start_until_first_contact),
	    cmocka_unit_test(test_a_streaming_replica_is_contact),
	    cmocka_unit_test(test_a_fresh_peer_is_contact),
	    cmocka_unit_test(test_release_lifts_a_split_and_ends_with_it),
	    cmocka_unit_test(test_fence_transitions_are_noted_once),
	    cmocka_unit_test(test_reasons_render_from_their_codes),
	    cmocka_unit_test(test_unknown_request_kind_is_down),
	    cmocka_unit_test(test_primary_waits_for_its_peers_first_round),
	    cmocka_unit_test(test_new_primary_waits_for_the_superseded_one_at_most_handover_ms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
