/*
 * test_peer_auth.c: authenticated peers ([peers] key_file) without a network: the request's and the
 * answer's MAC made and checked (wrong key, replayed nonce, missing MAC, a changed field, a request's
 * MAC offered as an answer's), the answer parser's new fields, and what a rejected answer does to a
 * peer's state (nothing), to the counters (one more) and to the log news (once per episode).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "monoclock.h"
#include "peers.h"

#define KEY       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER_KEY "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define NONCE     "00112233445566778899aabbccddeeff"
#define NONCE2    "ffeeddccbbaa99887766554433221100"
#define STATE     "state role=primary timeline=3 sysid=7713080333321011760 fenced=0\n"

static const unsigned char *
key(const char *k)
{
	return (const unsigned char *)k;
}

/* signed_answer writes STATE (or line) signed with k for nonce into out. */
static size_t
signed_answer(const char *k, const char *nonce, const char *line, char *out, size_t cap)
{
	size_t n = strlen(line);

	assert_true(n < cap);
	memcpy(out, line, n + 1);
	return peers_sign_answer(key(k), strlen(k), nonce, out, n, cap);
}

static enum peers_reject
open_answer(const char *k, const char *nonce, const char *line, struct peer_state *st)
{
	return peers_open_answer(key(k), k != NULL ? strlen(k) : 0, nonce, line, st);
}

static void
test_signed_answer_to_our_nonce_is_believed(void **state)
{
	char buf[256];
	struct peer_state st;
	size_t n;

	(void)state;
	n = signed_answer(KEY, NONCE, STATE, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_int_equal(
	    strncmp(buf, "state role=primary timeline=3 sysid=7713080333321011760 fenced=0 nonce=" NONCE " mac=",
	            strlen("state role=primary timeline=3 sysid=7713080333321011760 fenced=0 nonce=" NONCE " mac=")),
	    0);
	assert_int_equal(buf[n - 1], '\n');
	assert_int_equal(n, strlen(STATE) + strlen(" nonce=") + PEERS_NONCE_HEX + strlen(" mac=") + PEERS_MAC_HEX);
	memset(&st, 0, sizeof(st));
	assert_int_equal(open_answer(KEY, NONCE, buf, &st), PEERS_REJECT_NONE);
	assert_true(st.primary);
	assert_int_equal(st.timeline, 3);
	assert_true(st.system_identifier == 7713080333321011760ULL);
	/* the same key and nonce make the same MAC: nothing random in the answer but the nonce */
	{
		char again[256];

		assert_int_equal(signed_answer(KEY, NONCE, STATE, again, sizeof(again)), n);
		assert_string_equal(again, buf);
	}
}

static void
test_answer_with_a_wrong_key_is_rejected(void **state)
{
	char buf[256];
	struct peer_state st, before;

	(void)state;
	signed_answer(OTHER_KEY, NONCE, STATE, buf, sizeof(buf));
	memset(&st, 0x5a, sizeof(st));
	before = st;
	assert_int_equal(open_answer(KEY, NONCE, buf, &st), PEERS_REJECT_BAD_MAC);
	assert_memory_equal(&st, &before, sizeof(st));
	/* a key that is a prefix of the right one is another key */
	signed_answer("0123456789abcdef0123456789abcdef", NONCE, STATE, buf, sizeof(buf));
	assert_int_equal(open_answer(KEY, NONCE, buf, &st), PEERS_REJECT_BAD_MAC);
}

static void
test_replayed_answer_to_an_old_nonce_is_rejected(void **state)
{
	char buf[256], forged[256], *at;
	struct peer_state st;

	(void)state;
	signed_answer(KEY, NONCE, STATE, buf, sizeof(buf)); /* a real answer, captured */
	memset(&st, 0, sizeof(st));
	assert_int_equal(open_answer(KEY, NONCE2, buf, &st), PEERS_REJECT_NONCE_MISMATCH);
	/* the old answer with the new nonce written into it: its MAC was made for the old one */
	memcpy(forged, buf, sizeof(forged));
	at = strstr(forged, "nonce=") + strlen("nonce=");
	memcpy(at, NONCE2, PEERS_NONCE_HEX);
	assert_int_equal(open_answer(KEY, NONCE2, forged, &st), PEERS_REJECT_BAD_MAC);
	/* a reader that sent no nonce believes no signed answer */
	assert_int_equal(open_answer(KEY, NULL, buf, &st), PEERS_REJECT_NONCE_MISMATCH);
	assert_false(st.primary);
}

static void
test_answer_without_mac_is_rejected_with_a_key_and_believed_without(void **state)
{
	struct peer_state st;

	(void)state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(open_answer(KEY, NONCE, STATE, &st), PEERS_REJECT_NO_MAC);
	assert_int_equal(
	    open_answer(KEY, NONCE, "state role=primary timeline=3 sysid=5 fenced=0 nonce=" NONCE "\n", &st),
	    PEERS_REJECT_NO_MAC);
	assert_false(st.primary);
	/* no key: believed as sent, as before */
	assert_int_equal(open_answer(NULL, NULL, STATE, &st), PEERS_REJECT_NONE);
	assert_true(st.primary);
	/* a peer with a key refuses a reader without (or with another): no state, counted as refused */
	assert_int_equal(open_answer(NULL, NULL, "down #unauthenticated\n", &st), PEERS_REJECT_REFUSED);
	assert_int_equal(open_answer(KEY, NONCE, "down #unauthenticated\n", &st), PEERS_REJECT_REFUSED);
	assert_int_equal(open_answer(KEY, NONCE, "up 100%\n", &st), PEERS_REJECT_MALFORMED);
}

static void
test_changed_field_breaks_the_mac(void **state)
{
	static const char *const changes[][2] = {
	    {"timeline=3", "timeline=9"},
	    {"role=primary", "role=replica"},
	    {"fenced=0", "fenced=1"},
	    {"sysid=7713080333321011760", "sysid=7713080333321011761"},
	};
	char buf[256], changed[512];
	struct peer_state st;

	(void)state;
	signed_answer(KEY, NONCE, STATE, buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		char *at = strstr(buf, changes[i][0]);
		size_t head = (size_t)(at - buf);

		assert_non_null(at);
		snprintf(changed, sizeof(changed), "%.*s%s%s", (int)head, buf, changes[i][1],
		         at + strlen(changes[i][0]));
		memset(&st, 0, sizeof(st));
		assert_int_equal(open_answer(KEY, NONCE, changed, &st), PEERS_REJECT_BAD_MAC);
		assert_false(st.primary);
	}
	/* a field added before the MAC, a field after it, the MAC's own digits changed */
	snprintf(changed, sizeof(changed), "state future=1 %s", buf + strlen("state "));
	assert_int_equal(open_answer(KEY, NONCE, changed, &st), PEERS_REJECT_BAD_MAC);
	snprintf(changed, sizeof(changed), "%.*s role=replica\n", (int)strlen(buf) - 1, buf);
	assert_int_equal(open_answer(KEY, NONCE, changed, &st), PEERS_REJECT_MALFORMED);
	memcpy(changed, buf, sizeof(buf));
	changed[strlen(changed) - 2] = changed[strlen(changed) - 2] == '0' ? '1' : '0';
	assert_int_equal(open_answer(KEY, NONCE, changed, &st), PEERS_REJECT_BAD_MAC);
	/* an upper-case, short or long MAC is no MAC pgcheckd writes */
	snprintf(changed, sizeof(changed), "%.*sA\n", (int)strlen(buf) - 2, buf);
	assert_int_equal(open_answer(KEY, NONCE, changed, &st), PEERS_REJECT_MALFORMED);
	snprintf(changed, sizeof(changed), "%.*s\n", (int)strlen(buf) - 2, buf);
	assert_int_equal(open_answer(KEY, NONCE, changed, &st), PEERS_REJECT_MALFORMED);
	snprintf(changed, sizeof(changed), "%.*s0\n", (int)strlen(buf) - 1, buf);
	assert_int_equal(open_answer(KEY, NONCE, changed, &st), PEERS_REJECT_MALFORMED);
}

static void
test_request_is_checked_and_its_mac_never_passes_for_an_answer(void **state)
{
	char req[PEERS_REQUEST_MAX], nonce[PEERS_NONCE_HEX + 1], bad[PEERS_REQUEST_MAX], answer[256];
	struct peer_state st;
	size_t n;

	(void)state;
	n = peers_sign_request(key(KEY), strlen(KEY), NONCE, req, sizeof(req));
	assert_int_equal(n, strlen(req));
	assert_int_equal(strncmp(req, "peer-state nonce=" NONCE " mac=", strlen("peer-state nonce=" NONCE " mac=")), 0);
	assert_int_equal(req[n - 1], '\n');
	assert_true(peers_check_request(key(KEY), strlen(KEY), req, n, nonce));
	assert_string_equal(nonce, NONCE);
	assert_true(peers_check_request(key(KEY), strlen(KEY), req, n - 1, nonce)); /* without its newline */
	assert_false(peers_check_request(key(OTHER_KEY), strlen(OTHER_KEY), req, n, nonce));
	assert_string_equal(nonce, "");
	assert_false(peers_check_request(key(KEY), strlen(KEY), "peer-state\n", 11, nonce));
	memcpy(bad, req, sizeof(bad));
	bad[strlen("peer-state nonce=")] = bad[strlen("peer-state nonce=")] == '0' ? '1' : '0'; /* another nonce */
	assert_false(peers_check_request(key(KEY), strlen(KEY), bad, n, nonce));
	snprintf(bad, sizeof(bad), "%.*s x\n", (int)n - 1, req);
	assert_false(peers_check_request(key(KEY), strlen(KEY), bad, strlen(bad), nonce));
	/* the request's MAC, over the same nonce, offered as an answer's: the labels differ */
	snprintf(answer, sizeof(answer), "state role=primary timeline=3 sysid=5 fenced=0 nonce=%s mac=%.*s\n", NONCE,
	         PEERS_MAC_HEX, strstr(req, "mac=") + 4);
	memset(&st, 0, sizeof(st));
	assert_int_equal(open_answer(KEY, NONCE, answer, &st), PEERS_REJECT_BAD_MAC);
	/* nonces are fresh */
	{
		char a[PEERS_NONCE_HEX + 1], b[PEERS_NONCE_HEX + 1];

		assert_true(peers_new_nonce(a) && peers_new_nonce(b));
		assert_int_equal(strlen(a), PEERS_NONCE_HEX);
		assert_string_not_equal(a, b);
	}
}

static void
test_parser_reads_the_new_fields_once_each(void **state)
{
	struct peer_state st;

	(void)state;
	memset(&st, 0, sizeof(st));
	/* a keyless reader still reads a signed line (it believes every line as sent) */
	assert_true(peers_parse_line("state role=primary timeline=3 sysid=5 fenced=0 nonce=" NONCE
	                             " mac=0123456789abcdef0123456789abcdef\n",
	                             &st));
	assert_false(
	    peers_parse_line("state role=primary timeline=3 sysid=5 fenced=0 nonce=" NONCE " nonce=" NONCE2 "\n", &st));
	assert_false(peers_parse_line("state role=primary timeline=3 sysid=5 fenced=0 nonce=0011\n", &st));
	assert_false(peers_parse_line(
	    "state role=primary timeline=3 sysid=5 fenced=0 nonce=00112233445566778899AABBCCDDEEFF\n", &st));
	assert_false(
	    peers_parse_line("state role=primary timeline=3 sysid=5 fenced=0 mac=0123456789abcdef0123456789abcdef "
	                     "nonce=" NONCE "\n",
	                     &st)); /* the MAC comes last */
}

static struct peers *
keyed_peers(struct ev_loop *loop, void (*changed)(void *), void *arg)
{
	struct peers_conf pc = {.addresses = "127.0.0.1:1",
	                        .interval_ms = 60000,
	                        .timeout_ms = 100,
	                        .key = key(KEY),
	                        .key_len = strlen(KEY)};

	return peers_new(loop, &pc, changed, arg);
}

static void
count_change(void *arg)
{
	(*(int *)arg)++;
}

static void
test_rejected_answer_changes_nothing_is_counted_and_is_news_once(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	int changes = 0;
	struct peers *p = keyed_peers(loop, count_change, &changes);
	int64_t now = monoclock_ms();
	char good[256], spoof[256];
	struct peer_state before;
	struct peer_summary s;
	enum peers_reject why;

	(void)state;
	assert_non_null(p);
	/* a believed replica first */
	signed_answer(KEY, NONCE, "state role=replica timeline=1 sysid=42 fenced=0\n", good, sizeof(good));
	assert_true(peers_record_answer(p, 0, NONCE, good, now));
	assert_int_equal(peers_rejection_news(p, 0, &why), PEERS_EPISODE_NONE);
	before = *peers_state(p, 0);
	changes = 0;
	/* then spoofs: a primary on the highest timeline, without a MAC, with a wrong key, replayed */
	assert_false(
	    peers_record_answer(p, 0, NONCE2, "state role=primary timeline=4294967295 sysid=42 fenced=0\n", now + 100));
	signed_answer(OTHER_KEY, NONCE2, "state role=primary timeline=4294967295 sysid=42 fenced=0\n", spoof,
	              sizeof(spoof));
	assert_false(peers_record_answer(p, 0, NONCE2, spoof, now + 200));
	assert_false(peers_record_answer(p, 0, NONCE2, good, now + 300));
	{
		const struct peer_state *now_st = peers_state(p, 0); /* not heard from: seen_ms stays */

		assert_true(now_st->seen_ms == before.seen_ms && now_st->seen && !now_st->primary && now_st->replica &&
		            now_st->timeline == 1 && now_st->system_identifier == 42 && !now_st->fenced);
	}
	assert_int_equal(changes, 1); /* the episode began: once */
	assert_int_equal(peers_rejection_news(p, 0, &why), PEERS_EPISODE_BEGAN);
	assert_int_equal(why, PEERS_REJECT_NO_MAC);
	assert_int_equal(peers_rejection_news(p, 0, &why), PEERS_EPISODE_NONE);
	peers_summary(p, now + 300, 2000, 42, 1, &s);
	assert_int_equal(s.newest_primary_timeline, 0);
	assert_true(s.rejected[PEERS_REJECT_NO_MAC] == 1 && s.rejected[PEERS_REJECT_BAD_MAC] == 1 &&
	            s.rejected[PEERS_REJECT_NONCE_MISMATCH] == 1);
	/* the word ages as if the peer were silent: past fresh_ms it is forgotten */
	peers_summary(p, now + 2100, 2000, 42, 1, &s);
	assert_int_equal(s.fresh, 0);
	/* a believed answer ends the episode */
	signed_answer(KEY, NONCE2, "state role=replica timeline=1 sysid=42 fenced=0\n", good, sizeof(good));
	assert_true(peers_record_answer(p, 0, NONCE2, good, now + 2200));
	assert_int_equal(peers_rejection_news(p, 0, &why), PEERS_EPISODE_ENDED);
	peers_summary(p, now + 2200, 2000, 42, 1, &s);
	assert_int_equal(s.fresh, 1);
	peers_free(p);
	ev_loop_destroy(loop);
}

static void
test_superseded_primary_holds_a_handover_only_while_its_last_read_answered(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	int changes = 0;
	struct peers *p = keyed_peers(loop, count_change, &changes);
	int64_t now = monoclock_ms();
	char line[256];
	struct peer_summary s;

	(void)state;
	assert_non_null(p);
	signed_answer(KEY, NONCE, "state role=primary timeline=1 sysid=42 fenced=0\n", line, sizeof(line));
	assert_true(peers_record_answer(p, 0, NONCE, line, now));
	peers_summary(p, now, 2000, 42, 2, &s); /* this node: primary on timeline 2 */
	assert_int_equal(s.older_primaries_up, 1);
	peers_summary(p, now, 2000, 42, 1, &s); /* the same timeline is a split, not a handover */
	assert_int_equal(s.older_primaries_up, 0);
	assert_int_equal(s.primaries_on_timeline, 1);
	/* it fenced itself: it stepped down */
	signed_answer(KEY, NONCE2, "state role=primary timeline=1 sysid=42 fenced=1\n", line, sizeof(line));
	assert_true(peers_record_answer(p, 0, NONCE2, line, now + 10));
	peers_summary(p, now + 10, 2000, 42, 2, &s);
	assert_int_equal(s.older_primaries_up, 0);
	assert_int_equal(s.newest_primary_timeline, 1);
	/* up again, then the next read fails (nothing listens on port 1): still fresh, but no longer holding */
	signed_answer(KEY, NONCE, "state role=primary timeline=1 sysid=42 fenced=0\n", line, sizeof(line));
	assert_true(peers_record_answer(p, 0, NONCE, line, monoclock_ms()));
	peers_summary(p, monoclock_ms(), 2000, 42, 2, &s);
	assert_int_equal(s.older_primaries_up, 1);
	peers_read_now(p, false);
	for (int i = 0; i < 100 && peers_state(p, 0)->answered; i++)
		ev_run(loop, EVRUN_ONCE);
	peers_summary(p, monoclock_ms(), 2000, 42, 2, &s);
	assert_int_equal(s.fresh, 1);
	assert_int_equal(s.older_primaries_up, 0);
	peers_free(p);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_signed_answer_to_our_nonce_is_believed),
	    cmocka_unit_test(test_superseded_primary_holds_a_handover_only_while_its_last_read_answered),
	    cmocka_unit_test(test_answer_with_a_wrong_key_is_rejected),
	    cmocka_unit_test(test_replayed_answer_to_an_old_nonce_is_rejected),
	    cmocka_unit_test(test_answer_without_mac_is_rejected_with_a_key_and_believed_without),
	    cmocka_unit_test(test_changed_field_breaks_the_mac),
	    cmocka_unit_test(test_request_is_checked_and_its_mac_never_passes_for_an_answer),
	    cmocka_unit_test(test_parser_reads_the_new_fields_once_each),
	    cmocka_unit_test(test_rejected_answer_changes_nothing_is_counted_and_is_news_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
