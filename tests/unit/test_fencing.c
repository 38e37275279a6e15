/*
 * test_fencing.c: the fencing rules of verdict_for() and the peer line, one test per rule.
 * A primary that knows of a newer or a second primary must not take writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "peers.h"
#include "render.h"
#include "respond.h"
#include "verdict.h"

static struct policy
policy(void)
{
	struct policy p;

	memset(&p, 0, sizeof(p));
	p.stale_after_ms = 1500;
	p.max_lag_bytes = 16 << 20;
	p.max_lag_s = 10;
	p.receiver_silence_max_ms = 60000;
	p.primary_read_pct = 100;
	p.step_pct = 10;
	return p;
}

static struct node_view
primary_on(int timeline)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = true;
	v.sample.timeline = timeline;
	v.sample.system_identifier = 42;
	v.load_weight_pct = 100;
	v.replica_weight_pct = 100;
	return v;
}

static struct node_view
replica_on(int timeline)
{
	struct node_view v = primary_on(timeline);

	v.sample.in_recovery = true;
	v.sample.read_only = true;
	v.sample.receiver_streaming = true;
	return v;
}

static struct verdict
ask(const struct node_view *v, const struct policy *p, enum request_kind kind)
{
	struct request r = {.kind = kind};
	struct verdict out;

	verdict_for(v, &r, p, &out);
	return out;
}

static void
test_primary_without_peer_news_takes_writes(void **state)
{
	struct node_view v = primary_on(2);
	struct policy p = policy();
	struct verdict out;

	(void)state;
	v.peers.configured = 2;
	v.peers.fresh = 2;
	out = ask(&v, &p, REQUEST_PRIMARY);
	assert_true(out.up);
	assert_int_equal(out.weight_pct, 100);
}

static void
test_primary_seeing_newer_primary_is_fenced(void **state)
{
	struct node_view v = primary_on(1);
	struct policy p = policy();
	struct verdict out;

	(void)state;
	v.peers.newest_primary_timeline = 2;
	out = ask(&v, &p, REQUEST_PRIMARY);
	assert_false(out.up);
	assert_string_equal(out.reason, "fenced newer primary on timeline 2");
}

static void
test_fenced_primary_refuses_reads_unless_configured(void **state)
{
	struct node_view v = primary_on(1);
	struct policy p = policy();

	(void)state;
	v.peers.newest_primary_timeline = 2;
	assert_false(ask(&v, &p, REQUEST_READ_ONLY).up);
	p.fenced_reads = true;
	assert_true(ask(&v, &p, REQUEST_READ_ONLY).up);
	assert_false(ask(&v, &p, REQUEST_PRIMARY).up); /* never writes */
}

static void
test_two_primaries_on_one_timeline_are_both_fenced_until_released(void **state)
{
	struct node_view v = primary_on(2);
	struct policy p = policy();
	struct verdict out;

	(void)state;
	v.peers.newest_primary_timeline = 2;
	v.peers.primaries_on_timeline = 1;
	out = ask(&v, &p, REQUEST_PRIMARY);
	assert_false(out.up);
	assert_string_equal(out.reason, "fenced split-brain on timeline 2");
	v.released = true;
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
}

static void
test_release_does_not_lift_a_newer_primary_fence(void **state)
{
	struct node_view v = primary_on(1);
	struct policy p = policy();

	(void)state;
	v.peers.newest_primary_timeline = 2;
	v.released = true;
	assert_false(ask(&v, &p, REQUEST_PRIMARY).up);
}

static void
test_older_peer_primary_does_not_fence(void **state)
{
	struct node_view v = primary_on(3);
	struct policy p = policy();

	(void)state;
	v.peers.newest_primary_timeline = 2; /* the stale one: it is the one fenced, not us */
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
}

static void
test_replica_behind_a_fork_leaves_the_read_pool(void **state)
{
	struct node_view v = replica_on(1);
	struct policy p = policy();
	struct verdict out;

	(void)state;
	v.peers.newest_primary_timeline = 2;
	out = ask(&v, &p, REQUEST_REPLICA);
	assert_false(out.up);
	assert_string_equal(out.reason, "fork timeline 1 behind 2");
	assert_false(ask(&v, &p, REQUEST_READ_ONLY).up);
}

static void
test_replica_on_the_newest_timeline_serves_reads(void **state)
{
	struct node_view v = replica_on(2);
	struct policy p = policy();

	(void)state;
	v.peers.newest_primary_timeline = 2;
	assert_true(ask(&v, &p, REQUEST_REPLICA).up);
}

static void
test_isolation_fencing_only_when_configured(void **state)
{
	struct node_view v = primary_on(1);
	struct policy p = policy();
	struct verdict out;

	(void)state;
	v.isolated_ms = 100000;
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up); /* off by default */
	p.isolation_fence_ms = 5000;
	out = ask(&v, &p, REQUEST_PRIMARY);
	assert_false(out.up);
	assert_string_equal(out.reason, "fenced isolated");
	v.isolated_ms = 5000;
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up); /* at the limit: not yet */
}

static void
test_peer_line_round_trip(void **state)
{
	struct node_view v = primary_on(3);
	struct policy p = policy();
	struct peer_state st;
	char line[256];

	(void)state;
	v.sample.system_identifier = 7713080333321011760ULL;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_string_equal(line, "state role=primary timeline=3 sysid=7713080333321011760 fenced=0 sync_n=0 read=up "
	                          "lsn=0/0 weight=100\n");
	memset(&st, 0, sizeof(st));
	assert_true(peers_parse_line(line, &st));
	assert_true(st.primary);
	assert_false(st.replica);
	assert_int_equal(st.timeline, 3);
	assert_true(st.system_identifier == 7713080333321011760ULL);
	v.peers.newest_primary_timeline = 4;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_string_equal(line, "state role=primary timeline=3 sysid=7713080333321011760 fenced=1 sync_n=0 read=down "
	                          "lsn=0/0 weight=0 reason=fenced-newer-primary\n");
}

static void
test_peer_line_without_fresh_sample_is_unknown(void **state)
{
	struct node_view v = primary_on(3);
	struct policy p = policy();
	struct peer_state st;
	char line[128];

	(void)state;
	v.failing = true;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_true(strncmp(line, "state role=unknown ", 19) == 0);
	assert_true(peers_parse_line(line, &st));
	assert_false(st.primary);
	v.failing = false;
	v.sample.default_read_only = true;
	(void)render_peer_line(&v, &p, line, sizeof(line));
	assert_true(strncmp(line, "state role=read-only ", 21) == 0); /* a fenced-by-config primary fences no one */
}

static void
test_peer_line_parser_rejects_garbage(void **state)
{
	struct peer_state st;

	(void)state;
	assert_false(peers_parse_line("up 100%\n", &st));
	assert_false(peers_parse_line("state\n", &st)); /* no role */
	assert_false(peers_parse_line("state role\n", &st));
	assert_false(peers_parse_line("statex role=primary\n", &st));
	assert_true(peers_parse_line("state role=replica timeline=2 sysid=42 fenced=0 future=1\n", &st));
	assert_false(peers_parse_line("state role=replica timeline=2 future=1\n", &st)); /* no sysid, no fenced */
	assert_true(st.replica);
}

static void
test_peer_line_tells_the_cluster_fields_and_reads_back(void **state)
{
	struct node_view v = primary_on(3);
	struct policy p = policy();
	struct peer_state st;
	char line[RESPOND_LINE_MAX];

	(void)state;
	snprintf(v.sample.name, sizeof(v.sample.name), "node1");
	v.sample.current_lsn = 0x1A3000060ULL;
	v.sample.pg_port = 5432;
	v.sample.streaming_replicas = 2;
	v.sample.standby_count = 2;
	snprintf(v.sample.standby[0].name, sizeof(v.sample.standby[0].name), "node2");
	v.sample.standby[0].state = SYNC_SYNC;
	snprintf(v.sample.standby[1].name, sizeof(v.sample.standby[1].name), "node3");
	v.sample.standby[1].state = SYNC_POTENTIAL;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_string_equal(line, "state role=primary timeline=3 sysid=42 fenced=0 name=node1 sync_n=2 sb=node2:s "
	                          "sb=node3:p read=up lsn=1/A3000060 weight=100 pg_port=5432\n");
	memset(&st, 0, sizeof(st));
	assert_true(peers_parse_line(line, &st));
	assert_string_equal(st.ext.name, "node1");
	assert_int_equal(st.ext.standbys_total, 2);
	assert_int_equal(st.ext.standby_count, 2);
	assert_int_equal(st.ext.standby[1].state, SYNC_POTENTIAL);
	assert_true(st.ext.lsn == 0x1A3000060ULL);

	v = replica_on(3);
	snprintf(v.sample.name, sizeof(v.sample.name), "node2");
	v.sample.replay_lsn = 0x3000000;
	v.sample.receive_lsn = 0x3100000;
	v.sample.lag_bytes = 35 << 20;
	v.sample.have_lag_s = true;
	v.sample.lag_s = 12.4;
	v.lag_over = true;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_string_equal(line, "state role=replica timeline=3 sysid=42 fenced=0 name=node2 read=lag lsn=0/3000000 "
	                          "weight=0 lag=36700160 lag_ms=12400 reason=lag flush=0/3100000\n");
	assert_true(peers_parse_line(line, &st));
	assert_int_equal(st.ext.read, PEER_READ_LAG);
	assert_true(st.ext.lag_bytes == 36700160 && st.ext.lag_ms == 12400);
	/* drained by an operator: up 0%, no place for reads, so not up for keep-best */
	v.lag_over = false;
	v.override = OVERRIDE_DRAIN;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_non_null(strstr(line, " read=down "));
	assert_non_null(strstr(line, " reason=drain"));
}

/*
 * assert_old_reader_takes: the limits of a 0.1.0 reader (checks/peers.c at 8d8f1d5): at most 255 bytes
 * with the newline, keys of 1 to 15 of [a-z_], values of 1 to 32 printable bytes. Checked by hand against
 * that build too: it believes these lines, keyed and not.
 */
static void
assert_old_reader_takes(const char *line)
{
	const char *p = line + 5;

	assert_true(strlen(line) <= PEERS_LINE_MAX && strncmp(line, "state ", 6) == 0);
	while (*p == ' ') {
		size_t k = 0, n = 0;

		p++;
		while ((p[k] >= 'a' && p[k] <= 'z') || p[k] == '_')
			k++;
		assert_true(k >= 1 && k <= 15 && p[k] == '=');
		while (p[k + 1 + n] > ' ' && p[k + 1 + n] < 0x7f)
			n++;
		assert_true(n >= 1 && n <= 32);
		p += k + 1 + n;
	}
	assert_true(p[0] == '\n' && p[1] == '\0');
}

static void
test_peer_line_stays_within_what_an_older_reader_takes(void **state)
{
	struct node_view v = primary_on(2147483647);
	struct policy p = policy();
	struct peer_state st;
	char line[RESPOND_LINE_MAX], nonce[PEERS_NONCE_HEX + 1];
	size_t n;

	(void)state;
	/* the longest of everything: every optional field that does not fit is left out, never cut */
	v.sample.system_identifier = UINT64_MAX;
	memset(v.sample.name, 'n', SAMPLE_NAME_MAX - 1); /* the longest name */
	v.sample.current_lsn = UINT64_MAX;
	v.sample.pg_port = 65535;
	v.sample.streaming_replicas = 16;
	v.sample.standby_count = SAMPLE_STANDBYS_MAX;
	for (int k = 0; k < SAMPLE_STANDBYS_MAX; k++) {
		memset(v.sample.standby[k].name, 'a' + k, SAMPLE_NAME_MAX - 1);
		v.sample.standby[k].state = SYNC_QUORUM;
	}
	n = render_peer_line(&v, &p, line, sizeof(line));
	assert_true(n > 0 && n <= PEERS_LINE_MAX && line[n - 1] == '\n');
	assert_old_reader_takes(line);
	assert_true(peers_parse_line(line, &st));
	assert_true(st.ext.standby_count < st.ext.standbys_total); /* cut: a replica left out knows it is not known */
	/* with a key, its nonce and MAC still fit in the same 255 bytes */
	p.peer_key = (const unsigned char *)"a key of at least 32 bytes, for the test";
	p.peer_key_len = strlen((const char *)p.peer_key);
	assert_true(peers_new_nonce(nonce));
	n = render_peer_line(&v, &p, line, sizeof(line));
	assert_true(n > 0);
	n = peers_sign_answer(p.peer_key, p.peer_key_len, nonce, line, n, sizeof(line));
	assert_true(n > 0 && n <= PEERS_LINE_MAX);
	assert_old_reader_takes(line);
	memset(&st, 0, sizeof(st));
	assert_int_equal(peers_open_answer(p.peer_key, p.peer_key_len, nonce, line, &st), PEERS_REJECT_NONE);
	assert_true(st.primary && st.timeline == 2147483647u);
	/* the longest replica line, keyed */
	v = replica_on(2147483647);
	v.sample.system_identifier = UINT64_MAX;
	memset(v.sample.name, 'n', SAMPLE_NAME_MAX - 1);
	v.sample.replay_lsn = 0xFFFFFFF0FFFFFFF0ULL;
	v.sample.receive_lsn = UINT64_MAX;
	v.sample.lag_bytes = INT64_MAX;
	v.sample.have_lag_s = true;
	v.sample.lag_s = 86400.0 * 365;
	v.sample.pg_port = 65535;
	v.lag_over = true;
	n = render_peer_line(&v, &p, line, sizeof(line));
	assert_true(n > 0);
	n = peers_sign_answer(p.peer_key, p.peer_key_len, nonce, line, n, sizeof(line));
	assert_true(n > 0);
	assert_old_reader_takes(line);
	assert_int_equal(peers_open_answer(p.peer_key, p.peer_key_len, nonce, line, &st), PEERS_REJECT_NONE);
	assert_true(st.replica && st.ext.read == PEER_READ_LAG);
}

static void
test_replica_on_the_parent_timeline_at_or_below_the_floor_is_no_fork(void **state)
{
	struct node_view v = replica_on(1);
	struct policy p = policy();
	struct verdict out;

	(void)state;
	v.sample.replay_lsn = 0x3000148;
	v.peers.newest_primary_timeline = 2;
	v.peers.have_floor = true;
	v.peers.floor_timeline = 1;
	v.peers.floor_lsn = 0x3000148;
	assert_true(ask(&v, &p, REQUEST_REPLICA).up); /* replayed exactly as far: a prefix of timeline 2 */
	assert_true(ask(&v, &p, REQUEST_READ_ONLY).up);
	v.sample.replay_lsn = 0x3000000;
	assert_true(ask(&v, &p, REQUEST_REPLICA).up);
	/* its upstream went away: judged as any replica that stopped streaming (within the lag limit: up) */
	v.sample.receiver_streaming = false;
	v.was_streaming = true;
	v.not_streaming_ms = 2000;
	assert_true(ask(&v, &p, REQUEST_REPLICA).up);
	v.not_streaming_ms = 11000;
	out = ask(&v, &p, REQUEST_REPLICA);
	assert_false(out.up);
	assert_string_equal(out.reason, "disconnected");
	/* the lag limits still apply */
	v.sample.receiver_streaming = true;
	v.lag_over = true;
	out = ask(&v, &p, REQUEST_REPLICA);
	assert_false(out.up);
	assert_true(strncmp(out.reason, "lag ", 4) == 0);
}

static void
test_replica_past_the_floor_or_without_one_is_a_fork(void **state)
{
	struct node_view v = replica_on(1);
	struct policy p = policy();
	struct verdict out;

	(void)state;
	v.sample.replay_lsn = 0x3000149; /* one byte past: data timeline 2 does not have */
	v.peers.newest_primary_timeline = 2;
	v.peers.have_floor = true;
	v.peers.floor_timeline = 1;
	v.peers.floor_lsn = 0x3000148;
	out = ask(&v, &p, REQUEST_REPLICA);
	assert_false(out.up);
	assert_string_equal(out.reason, "fork timeline 1 behind 2");
	assert_false(ask(&v, &p, REQUEST_READ_ONLY).up);
	/* no floor (an older primary, two that disagree): a fork, as before */
	v.sample.replay_lsn = 0x3000000;
	v.peers.have_floor = false;
	assert_string_equal(ask(&v, &p, REQUEST_REPLICA).reason, "fork timeline 1 behind 2");
	/* a floor of another timeline, or a newest primary two timelines on */
	v.peers.have_floor = true;
	v.peers.floor_timeline = 2;
	v.peers.newest_primary_timeline = 3;
	assert_string_equal(ask(&v, &p, REQUEST_REPLICA).reason, "fork timeline 1 behind 3");
	v.peers.floor_timeline = 1;
	assert_string_equal(ask(&v, &p, REQUEST_REPLICA).reason, "fork timeline 1 behind 3");
	/* a replay position it does not know: a fork */
	v.peers.newest_primary_timeline = 2;
	v.sample.replay_lsn = 0;
	assert_string_equal(ask(&v, &p, REQUEST_REPLICA).reason, "fork timeline 1 behind 2");
}

static void
test_peer_line_tells_the_floor_and_an_old_line_has_none(void **state)
{
	struct node_view v = primary_on(2);
	struct policy p = policy();
	struct peer_state st;
	char line[RESPOND_LINE_MAX];

	(void)state;
	v.have_tl_floor = true;
	v.tl_floor_parent = 1;
	v.tl_floor_lsn = 0x1A3000148ULL;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_string_equal(line, "state role=primary timeline=2 sysid=42 fenced=0 tl_from=1:1/A3000148 sync_n=0 "
	                          "read=up lsn=0/0 weight=100\n");
	assert_old_reader_takes(line);
	memset(&st, 0, sizeof(st));
	assert_true(peers_parse_line(line, &st));
	assert_true(st.ext.have_tl_from && st.ext.tl_from_timeline == 1 && st.ext.tl_from_lsn == 0x1A3000148ULL);
	/* the longest one: still what an older reader takes */
	v = primary_on(2147483647);
	v.have_tl_floor = true;
	v.tl_floor_parent = 2147483646;
	v.tl_floor_lsn = UINT64_MAX;
	v.sample.system_identifier = UINT64_MAX;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_old_reader_takes(line);
	assert_non_null(strstr(line, " tl_from=2147483646:FFFFFFFF/FFFFFFFF "));
	/* a replica says none; an old node's line has none */
	v = replica_on(1);
	v.have_tl_floor = true;
	assert_true(render_peer_line(&v, &p, line, sizeof(line)) > 0);
	assert_null(strstr(line, "tl_from="));
	assert_true(peers_parse_line("state role=primary timeline=2 sysid=42 fenced=0\n", &st));
	assert_false(st.ext.have_tl_from);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_primary_without_peer_news_takes_writes),
	    cmocka_unit_test(test_primary_seeing_newer_primary_is_fenced),
	    cmocka_unit_test(test_fenced_primary_refuses_reads_unless_configured),
	    cmocka_unit_test(test_two_primaries_on_one_timeline_are_both_fenced_until_released),
	    cmocka_unit_test(test_release_does_not_lift_a_newer_primary_fence),
	    cmocka_unit_test(test_older_peer_primary_does_not_fence),
	    cmocka_unit_test(test_replica_behind_a_fork_leaves_the_read_pool),
	    cmocka_unit_test(test_replica_on_the_newest_timeline_serves_reads),
	    cmocka_unit_test(test_isolation_fencing_only_when_configured),
	    cmocka_unit_test(test_peer_line_round_trip),
	    cmocka_unit_test(test_peer_line_tells_the_cluster_fields_and_reads_back),
	    cmocka_unit_test(test_peer_line_stays_within_what_an_older_reader_takes),
	    cmocka_unit_test(test_replica_on_the_parent_timeline_at_or_below_the_floor_is_no_fork),
	    cmocka_unit_test(test_replica_past_the_floor_or_without_one_is_a_fork),
	    cmocka_unit_test(test_peer_line_tells_the_floor_and_an_old_line_has_none),
	    cmocka_unit_test(test_peer_line_without_fresh_sample_is_unknown),
	    cmocka_unit_test(test_peer_line_parser_rejects_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
