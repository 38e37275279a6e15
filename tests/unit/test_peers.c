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

static void
test_peer_line_cluster_fields_parse_and_an_old_answer_has_none(void **state)
{
	struct peer_state st;

	(void)state;
	memset(&st, 0, sizeof(st));
	assert_true(peers_parse_line("state role=primary timeline=3 sysid=5 fenced=0 name=node1 sync_n=3 sb=node2:s "
	                             "sb=node3:q sb=node4:a read=up lsn=1/A3000060 weight=100 pg_port=5432\n",
	                             &st));
	assert_string_equal(st.ext.name, "node1");
	assert_int_equal(st.ext.standbys_total, 3);
	assert_int_equal(st.ext.standby_count, 3);
	assert_string_equal(st.ext.standby[0].name, "node2");
	assert_int_equal(st.ext.standby[0].state, SYNC_SYNC);
	assert_int_equal(st.ext.standby[1].state, SYNC_QUORUM);
	assert_int_equal(st.ext.standby[2].state, SYNC_ASYNC);
	assert_int_equal(st.ext.read, PEER_READ_UP);
	assert_true(st.ext.have_lsn && st.ext.lsn == 0x1A3000060ULL);
	assert_int_equal(st.ext.weight_pct, 100);
	assert_int_equal(st.ext.pg_port, 5432);
	assert_true(peers_parse_line("state role=replica timeline=3 sysid=5 fenced=0 name=node2 read=lag lsn=0/3000000 "
	                             "weight=0 lag=36700160 lag_ms=12400 reason=lag flush=0/3100000\n",
	                             &st));
	assert_int_equal(st.ext.read, PEER_READ_LAG);
	assert_true(st.ext.have_lag && st.ext.lag_bytes == 36700160);
	assert_true(st.ext.have_lag_ms && st.ext.lag_ms == 12400);
	assert_string_equal(st.ext.reason, "lag");
	assert_true(st.ext.have_flush && st.ext.flush_lsn == 0x3100000);
	assert_int_equal(st.ext.standbys_total, -1);
	/* an older node's answer: believed for fencing, and nothing of the last answer's fields stays */
	assert_true(peers_parse_line(GOOD_LINE, &st));
	assert_true(st.primary);
	assert_string_equal(st.ext.name, "");
	assert_int_equal(st.ext.read, PEER_READ_UNKNOWN);
	assert_false(st.ext.have_lsn);
	assert_int_equal(st.ext.weight_pct, -1);
	assert_int_equal(st.ext.standbys_total, -1);
	assert_int_equal(st.ext.standby_count, 0);
}

static void
test_peer_line_bad_cluster_fields_are_left_out_never_the_answer(void **state)
{
	struct peer_state st;

	(void)state;
	memset(&st, 0, sizeof(st));
	/* fencing hears the node whatever else it says: a field that does not read is left out */
	assert_true(
	    peers_parse_line("state role=primary timeline=3 sysid=5 fenced=0 name=no/slash read=maybe lsn=3000000 "
	                     "weight=101 lag=-1 pg_port=65536 sync_n=x sb=node2 sb=node3:z sb=:s future=1\n",
	                     &st));
	assert_true(st.primary && st.timeline == 3);
	assert_string_equal(st.ext.name, "");
	assert_int_equal(st.ext.read, PEER_READ_UNKNOWN);
	assert_false(st.ext.have_lsn);
	assert_int_equal(st.ext.weight_pct, -1);
	assert_false(st.ext.have_lag);
	assert_int_equal(st.ext.pg_port, 0);
	assert_int_equal(st.ext.standbys_total, -1);
	assert_int_equal(st.ext.standby_count, 0);
	/* said twice: the first counts */
	assert_true(
	    peers_parse_line("state role=replica timeline=3 sysid=5 fenced=0 read=lag read=up name=a name=b\n", &st));
	assert_int_equal(st.ext.read, PEER_READ_LAG);
	assert_string_equal(st.ext.name, "a");
	/* more standbys than kept: the list counts as cut */
	assert_true(
	    peers_parse_line("state role=primary timeline=3 sysid=5 fenced=0 sync_n=9 sb=a:a sb=b:a sb=c:a sb=d:a "
	                     "sb=e:a sb=f:a sb=g:a sb=h:a sb=i:s\n",
	                     &st));
	assert_int_equal(st.ext.standby_count, SAMPLE_STANDBYS_MAX);
	/* a malformed fencing field still rejects the whole line, as before */
	assert_false(parse("state role=primary timeline=x sysid=5 fenced=0 name=node1\n"));
}

static void
test_cluster_condenses_the_primary_word_and_the_other_replicas(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers *p = two_numeric_peers(loop, "127.0.0.1:1, 127.0.0.1:2");
	struct peer_cluster c;
	int64_t now = monoclock_ms();

	(void)state;
	assert_non_null(p);
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN); /* nobody said */
	assert_true(
	    peers_record_answer(p, 0, NULL,
	                        "state role=primary timeline=1 sysid=42 fenced=0 name=node1 sync_n=2 sb=node2:s "
	                        "sb=node3:a read=up\n",
	                        now));
	assert_true(peers_record_answer(
	    p, 1, NULL, "state role=replica timeline=1 sysid=42 fenced=0 name=node3 read=lag lsn=0/3000000\n", now));
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_SYNC);
	assert_int_equal(c.replicas_fresh, 1);
	assert_int_equal(c.replicas_lagging, 1);
	assert_int_equal(c.replicas_up, 0);
	assert_false(c.lagging_ahead); /* as far, and node2 < node3 */
	peers_cluster(p, now, 2000, 42, "node4", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_NONE); /* the whole list, without node4 */
	assert_true(c.lagging_ahead);           /* as far, and node3 < node4 */
	peers_cluster(p, now, 2000, 42, "node2", 0x2FFFFFF, &c);
	assert_true(c.lagging_ahead); /* node3 has replayed more */
	peers_cluster(p, now, 2000, 42, "", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN); /* a node without a name cannot be found */
	/* stale: unknown again */
	peers_cluster(p, now + 2001, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN);
	assert_int_equal(c.replicas_fresh, 0);
	/* another cluster's primary says nothing about this one */
	peers_cluster(p, now, 2000, 43, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN);
	/* a cut list that leaves this node out: unknown, not none */
	assert_true(peers_record_answer(
	    p, 0, NULL, "state role=primary timeline=1 sysid=42 fenced=0 sync_n=3 sb=node3:a read=up\n", now));
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN);
	/* a fenced primary's word is not taken; nor one that does not say (an older node) */
	assert_true(peers_record_answer(p, 0, NULL,
	                                "state role=primary timeline=1 sysid=42 fenced=1 sync_n=1 sb=node2:s\n", now));
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN);
	assert_true(peers_record_answer(p, 0, NULL, "state role=primary timeline=1 sysid=42 fenced=0\n", now));
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN);
	/* an older replica: it does not say how its reads stand */
	assert_true(peers_record_answer(p, 1, NULL, "state role=replica timeline=1 sysid=42 fenced=0\n", now));
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.replicas_unsure, 1);
	/* two fresh primaries on one timeline: whose word? */
	assert_true(peers_record_answer(p, 0, NULL,
	                                "state role=primary timeline=1 sysid=42 fenced=0 sync_n=1 sb=node2:s\n", now));
	assert_true(peers_record_answer(p, 1, NULL,
	                                "state role=primary timeline=1 sysid=42 fenced=0 sync_n=1 sb=node2:s\n", now));
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN);
	/* two standbys by this node's name: which one is it? */
	assert_true(peers_record_answer(p, 1, NULL, "state role=replica timeline=1 sysid=42 fenced=0\n", now));
	assert_true(peers_record_answer(
	    p, 0, NULL, "state role=primary timeline=1 sysid=42 fenced=0 sync_n=2 sb=node2:s sb=node2:a\n", now));
	peers_cluster(p, now, 2000, 42, "node2", 0x3000000, &c);
	assert_int_equal(c.my_sync, SYNC_UNKNOWN);
	peers_free(p);
	ev_loop_destroy(loop);
}

static void
test_summary_carries_the_newest_primaries_floor_only_when_they_agree(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers *p = two_numeric_peers(loop, "127.0.0.1:1, 127.0.0.1:2");
	struct peer_summary s;
	int64_t now = monoclock_ms();

	(void)state;
	assert_non_null(p);
	assert_true(peers_record_answer(p, 0, NULL,
	                                "state role=primary timeline=2 sysid=42 fenced=0 tl_from=1:0/3000148\n", now));
	assert_true(peers_record_answer(p, 1, NULL, "state role=replica timeline=1 sysid=42 fenced=0\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_int_equal(s.newest_primary_timeline, 2);
	assert_true(s.have_floor);
	assert_int_equal(s.floor_timeline, 1);
	assert_true(s.floor_lsn == 0x3000148);
	/* a second primary on timeline 2 that says the same: still known */
	assert_true(peers_record_answer(p, 1, NULL,
	                                "state role=primary timeline=2 sysid=42 fenced=1 tl_from=1:0/3000148\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_true(s.have_floor && s.floor_lsn == 0x3000148);
	/* ... that says another floor, or none (an older node): unknown */
	assert_true(peers_record_answer(p, 1, NULL,
	                                "state role=primary timeline=2 sysid=42 fenced=1 tl_from=1:0/3000150\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_false(s.have_floor);
	assert_true(peers_record_answer(p, 1, NULL, "state role=primary timeline=2 sysid=42 fenced=1\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_false(s.have_floor);
	/* a newer primary without a floor: unknown, whatever the older one says */
	assert_true(peers_record_answer(p, 1, NULL, "state role=primary timeline=3 sysid=42 fenced=0\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_int_equal(s.newest_primary_timeline, 3);
	assert_false(s.have_floor);
	/* a floor not from the timeline just before the primary's own: not a floor */
	assert_true(peers_record_answer(p, 1, NULL,
	                                "state role=primary timeline=3 sysid=42 fenced=0 tl_from=1:0/3000148\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_false(s.have_floor);
	/* a floor that does not read is left out, never the answer */
	assert_true(
	    peers_record_answer(p, 1, NULL, "state role=primary timeline=3 sysid=42 fenced=0 tl_from=2:zz\n", now));
	assert_false(peers_state(p, 1)->ext.have_tl_from);
	assert_true(peers_record_answer(p, 1, NULL,
	                                "state role=primary timeline=3 sysid=42 fenced=0 tl_from=0/3000148\n", now));
	assert_false(peers_state(p, 1)->ext.have_tl_from);
	assert_true(peers_record_answer(p, 1, NULL,
	                                "state role=primary timeline=3 sysid=42 fenced=0 tl_from=2:0/3000200\n", now));
	peers_summary(p, now, 2000, 42, 1, &s);
	assert_true(s.have_floor && s.floor_timeline == 2 && s.floor_lsn == 0x3000200);
	/* once its word ages, the floor goes with it */
	peers_summary(p, now + 2001, 2000, 42, 1, &s);
	assert_false(s.have_floor);
	peers_free(p);
	ev_loop_destroy(loop);
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
	    cmocka_unit_test(test_peer_line_cluster_fields_parse_and_an_old_answer_has_none),
	    cmocka_unit_test(test_peer_line_bad_cluster_fields_are_left_out_never_the_answer),
	    cmocka_unit_test(test_cluster_condenses_the_primary_word_and_the_other_replicas),
	    cmocka_unit_test(test_summary_carries_the_newest_primaries_floor_only_when_they_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
