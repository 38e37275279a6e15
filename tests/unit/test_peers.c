/*
 * test_peers.c: the peer module without a network: the "peer-state" answer parser (every number range
 * checked, every field required once, the cluster check), the summary's cluster rule, state kept across
 * a reload (peers_reconfigure) and name resolution off the event loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "monoclock.h"
#include "peers.h"

#define GOOD_LINE "state role=primary timeline=3 sysid=7713080333321011760 fenced=0\n"

static bool
parse(const char *line)
{
	struct peer_state st;

	memset(&st, 0x5a, sizeof(st));
	return peers_parse_line(line, &st);
}

static void
test_peer_line_with_every_field_parses(void **state)
{
	struct peer_state st;

	(void)state;
	memset(&st, 0, sizeof(st));
	assert_true(peers_parse_line(GOOD_LINE, &st));
	assert_true(st.primary);
	assert_false(st.replica);
	assert_false(st.fenced);
	assert_int_equal(st.timeline, 3);
	assert_true(st.system_identifier == 7713080333321011760ULL);
	assert_true(
	    peers_parse_line("state role=replica timeline=4294967295 sysid=18446744073709551615 fenced=1", &st));
	assert_true(st.replica);
	assert_true(st.fenced);
	assert_true(st.timeline == 4294967295u);
	assert_true(st.system_identifier == UINT64_MAX);
	/* a newer version's extra field is ignored; the order of the fields does not matter */
	assert_true(parse("state fenced=0 sysid=5 timeline=2 role=replica future=x\n"));
}

static void
test_peer_line_timeline_out_of_range_is_rejected(void **state)
{
	(void)state;
	/* atoi was undefined here; TimeLineID is a uint32 from 1 */
	assert_false(parse("state role=primary timeline=4294967296 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=99999999999999999999999 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=0 sysid=5 fenced=0\n")); /* a primary knows its timeline */
	assert_false(parse("state role=primary timeline=-1 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=+3 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline= 3 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=3x sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=0x10 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline= sysid=5 fenced=0\n"));
	/* 0 is the protocol's "unknown", as a peer without a sample sends it: only not from a primary */
	assert_true(parse("state role=unknown timeline=0 sysid=5 fenced=0\n"));
	assert_true(parse("state role=replica timeline=0 sysid=5 fenced=0\n"));
}

static void
test_peer_line_sysid_out_of_range_or_missing_is_rejected(void **state)
{
	(void)state;
	assert_false(parse("state role=primary timeline=3 sysid=18446744073709551616 fenced=0\n"));
	assert_false(parse("state role=primary timeline=3 sysid=-5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=3 sysid=12ab fenced=0\n"));
	assert_false(parse("state role=primary timeline=3 fenced=0\n")); /* no system identifier */
	assert_false(parse("state role=primary timeline=3 sysid=5\n"));  /* no fenced */
	assert_false(parse("state role=primary sysid=5 fenced=0\n"));    /* no timeline */
}

static void
test_peer_line_malformed_fields_are_rejected(void **state)
{
	(void)state;
	assert_false(parse("state role=primary timeline=3 sysid=5 fenced=2\n"));
	assert_false(parse("state role=primary timeline=3 sysid=5 fenced=yes\n"));
	/* a field given twice: which one would count? */
	assert_false(parse("state role=replica timeline=3 sysid=5 fenced=0 role=primary\n"));
	assert_false(parse("state role=primary timeline=3 timeline=9 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=3 sysid=5 sysid=6 fenced=0\n"));
	/* a value too long to have been written by pgcheckd is not cut and read on as a new field */
	assert_false(parse("state role=primaryprimaryprimaryprimaryprimaryprimary timeline=3 sysid=5 fenced=0\n"));
	assert_false(parse("state role=replica timeline=3 sysid=5 fenced=0 x=0123456789012345678901234567890123456789"
	                   "timeline=9\n"));
	assert_false(parse("state role=primary timeline=3 sysid=5 fenced=0\r\n"));
	assert_false(parse("state role=primary\ttimeline=3 sysid=5 fenced=0\n"));
	assert_false(parse("state role=primary timeline=3 sysid=5 fenced=0 =1\n"));
	assert_false(parse("state role=primary timeline=3 sysid=5 fenced=0 junk\n"));
	assert_false(parse("state role=Primary timeline=3 sysid=5 fenced=0\n"));
	assert_false(parse("state role= timeline=3 sysid=5 fenced=0\n"));
	assert_false(parse("up 100%\n"));
	assert_false(parse("statex role=primary timeline=3 sysid=5 fenced=0\n"));
	assert_false(parse(""));
}

static struct peers *
two_numeric_peers(struct ev_loop *loop, const char *addresses)
{
	struct peers_conf pc = {.addresses = addresses, .interval_ms = 60000, .timeout_ms = 100};

	return peers_new(loop, &pc, NULL, NULL);
}

static void
test_answer_without_sysid_does_not_count_once_ours_is_known(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers *p = two_numeric_peers(loop, "127.0.0.1:1, 127.0.0.1:2");
	struct peer_summary s;
	int64_t now = monoclock_ms();

	(void)state;
	assert_non_null(p);
	/* peer 0 says it is a primary on a newer timeline but does not know its cluster */
	assert_true(peers_record_answer(p, 0, NULL, "state role=primary timeline=9 sysid=0 fenced=0\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_int_equal(s.fresh, 0);
	assert_int_equal(s.newest_primary_timeline, 0);
	assert_int_equal(s.last_fresh_ms, 0); /* no contact either: isolation fencing is not lifted */
	/* a known peer that answers without its system identifier keeps its last word, which ages */
	assert_true(peers_record_answer(p, 1, NULL, "state role=primary timeline=2 sysid=42 fenced=0\n", now));
	assert_false(peers_record_answer(p, 1, NULL, "state role=replica timeline=2 sysid=0 fenced=0\n", now + 100));
	peers_summary(p, now + 100, 2000, 42, 1, &s);
	assert_int_equal(s.fresh, 1);
	assert_int_equal(s.newest_primary_timeline, 2);
	peers_summary(p, now + 2001, 2000, 42, 1, &s);
	assert_int_equal(s.fresh, 0);
	/* a malformed answer is no answer */
	assert_false(
	    peers_record_answer(p, 1, NULL, "state role=replica timeline=99999999999 sysid=42 fenced=0\n", now));
	peers_free(p);
	ev_loop_destroy(loop);
}

static void
test_reload_keeps_the_state_of_peers_that_stay(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers *p = two_numeric_peers(loop, "127.0.0.1:1, 127.0.0.1:2");
	struct peers_conf pc = {.addresses = "127.0.0.1:3, 127.0.0.1:2", .interval_ms = 500, .timeout_ms = 100};
	struct peer_summary s;
	int64_t now = monoclock_ms();

	(void)state;
	assert_non_null(p);
	assert_true(peers_record_answer(p, 1, NULL, "state role=primary timeline=2 sysid=42 fenced=0\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_int_equal(s.newest_primary_timeline, 2);
	assert_true(peers_reconfigure(p, &pc));
	assert_int_equal(peers_count(p), 2);
	assert_string_equal(peers_state(p, 0)->addr, "127.0.0.1:3");
	assert_false(peers_state(p, 0)->seen); /* new: unknown */
	assert_string_equal(peers_state(p, 1)->addr, "127.0.0.1:2");
	assert_true(peers_state(p, 1)->seen); /* stayed: what it said still holds, and ages as before */
	peers_summary(p, now + 10, 2000, 42, 1, &s);
	assert_int_equal(s.configured, 2);
	assert_int_equal(s.fresh, 1);
	assert_int_equal(s.newest_primary_timeline, 2);
	peers_summary(p, now + 2001, 2000, 42, 1, &s);
	assert_int_equal(s.newest_primary_timeline, 0);
	peers_free(p);
	ev_loop_destroy(loop);
}

static void
test_removed_peer_fences_until_its_word_ages(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers *p = two_numeric_peers(loop, "127.0.0.1:1, 127.0.0.1:2");
	struct peers_conf renamed = {.addresses = "127.0.0.1:1, localhost:2", .interval_ms = 500, .timeout_ms = 100};
	struct peers_conf none = {.addresses = "", .interval_ms = 500, .timeout_ms = 100};
	struct peer_summary s;
	int64_t now = monoclock_ms();

	(void)state;
	assert_true(peers_record_answer(p, 1, NULL, "state role=primary timeline=1 sysid=42 fenced=0\n", now));
	/* the same node under another name is a new peer: until it is heard, the old word still fences */
	assert_true(peers_reconfigure(p, &renamed));
	peers_summary(p, now + 10, 2000, 42, 1, &s);
	assert_int_equal(s.fresh, 0);
	assert_int_equal(s.primaries_on_timeline, 1);
	assert_int_equal(s.last_fresh_ms, 0); /* but it is no contact for isolation */
	assert_true(peers_reconfigure(p, &none));
	assert_int_equal(peers_count(p), 0);
	peers_summary(p, now + 10, 2000, 42, 1, &s);
	assert_int_equal(s.primaries_on_timeline, 1);
	peers_summary(p, now + 2001, 2000, 42, 1, &s);
	assert_int_equal(s.primaries_on_timeline, 0);
	peers_free(p);
	ev_loop_destroy(loop);
}

static void
test_names_resolve_off_the_loop_and_count_as_unreachable_meanwhile(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers *p = two_numeric_peers(loop, "127.0.0.1:1, localhost:2");
	int64_t deadline = monoclock_ms() + 5000;

	(void)state;
	assert_non_null(p);
	/* peers_new returned without a name lookup: the numeric address is ready, the name is pending */
	assert_int_equal(peers_address_state(p, 0), PEERS_ADDR_RESOLVED);
	assert_int_equal(peers_address_state(p, 1), PEERS_ADDR_RESOLVING);
	while (peers_address_state(p, 1) == PEERS_ADDR_RESOLVING && monoclock_ms() < deadline)
		ev_run(loop, EVRUN_ONCE);
	assert_int_equal(peers_address_state(p, 1), PEERS_ADDR_RESOLVED); /* handed back to the loop */
	peers_free(p);
	ev_loop_destroy(loop);
}

static void
test_name_that_does_not_resolve_is_reported_failed(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers *p = two_numeric_peers(loop, "no-such-peer.invalid:5480");
	int64_t deadline = monoclock_ms() + 15000;

	(void)state;
	assert_non_null(p);
	while (peers_address_state(p, 0) == PEERS_ADDR_RESOLVING && monoclock_ms() < deadline)
		ev_run(loop, EVRUN_ONCE);
	assert_int_equal(peers_address_state(p, 0), PEERS_ADDR_FAILED);
	peers_free(p);
	ev_loop_destroy(loop);
}

static void
test_free_while_resolving_is_safe(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers_conf pc = {.addresses = "localhost:1", .interval_ms = 500, .timeout_ms = 100};
	struct peers *p = two_numeric_peers(loop, "localhost:2");

	(void)state;
	assert_non_null(p);
	assert_true(peers_reconfigure(p, &pc)); /* abandons the first lookup, starts another */
	peers_free(p);                          /* abandons the second: the threads free their own job */
	ev_loop_destroy(loop);
	for (int64_t deadline = monoclock_ms() + 5000; peers_resolvers_running() > 0 && monoclock_ms() < deadline;)
		(void)usleep(10000);
	assert_int_equal(peers_resolvers_running(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_peer_line_with_every_field_parses),
	    cmocka_unit_test(test_peer_line_timeline_out_of_range_is_rejected),
	    cmocka_unit_test(test_peer_line_sysid_out_of_range_or_missing_is_rejected),
	    cmocka_unit_test(test_peer_line_malformed_fields_are_rejected),
	    cmocka_unit_test(test_answer_without_sysid_does_not_count_once_ours_is_known),
	    cmocka_unit_test(test_reload_keeps_the_state_of_peers_that_stay),
	    cmocka_unit_test(test_removed_peer_fences_until_its_word_ages),
	    cmocka_unit_test(test_names_resolve_off_the_loop_and_count_as_unreachable_meanwhile),
	    cmocka_unit_test(test_name_that_does_not_resolve_is_reported_failed),
	    cmocka_unit_test(test_free_while_resolving_is_safe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
