/*
 * test_agentline.c: the agent line protocol, both ways. Requests as HAProxy's agent-send and
 * tcp-check send them (with or without a newline), and replies HAProxy 2.6 parses: always one
 * complete line, never the words ready, maint or drain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agentline.h"
#include "request.h"
#include "verdict.h"

#define MB (1024LL * 1024LL)

static const char *
parse_name(enum agentline_parse r)
{
	switch (r) {
	case AGENTLINE_OK:
		return "AGENTLINE_OK";
	case AGENTLINE_EMPTY:
		return "AGENTLINE_EMPTY";
	case AGENTLINE_BAD:
		return "AGENTLINE_BAD";
	}
	return "?";
}

/* parse_n parses len bytes of buf (which may hold NULs) into *out, starting from garbage. */
static enum agentline_parse
parse_n(const char *buf, size_t len, struct request *out)
{
	memset(out, 0x5a, sizeof(*out));
	return agentline_parse(buf, len, out);
}

static enum agentline_parse
parse(const char *s, struct request *out)
{
	return parse_n(s, strlen(s), out);
}

#define assert_parse(s, want)                                                                                          \
	do {                                                                                                           \
		struct request ap_r_;                                                                                  \
		enum agentline_parse ap_got_ = parse((s), &ap_r_);                                                     \
		if (ap_got_ != (want))                                                                                 \
			print_error("agentline_parse(\"%s\") = %s, expected %s\n", (s), parse_name(ap_got_),           \
			            parse_name(want));                                                                 \
		assert_int_equal(ap_got_, (want));                                                                     \
	} while (0)

static void
assert_kind(const char *s, enum request_kind kind)
{
	struct request r;
	enum agentline_parse got = parse(s, &r);

	if (got != AGENTLINE_OK)
		print_error("agentline_parse(\"%s\") = %s, expected AGENTLINE_OK\n", s, parse_name(got));
	assert_int_equal(got, AGENTLINE_OK);
	assert_int_equal(r.kind, kind);
	assert_false(r.has_max_lag_bytes);
	assert_false(r.has_max_lag_s);
}

/* agentline_parse: kinds */

static void
test_parse_primary_with_newline(void **state)
{
	(void)state;
	assert_kind("primary\n", REQUEST_PRIMARY);
}

static void
test_parse_primary_without_newline(void **state)
{
	(void)state;
	assert_kind("primary", REQUEST_PRIMARY);
}

static void
test_parse_primary_with_crlf(void **state)
{
	(void)state;
	assert_kind("primary\r\n", REQUEST_PRIMARY);
}

static void
test_parse_ignores_surrounding_blanks(void **state)
{
	(void)state;
	assert_kind("  replica  ", REQUEST_REPLICA);
	assert_kind("\treplica\t\n", REQUEST_REPLICA);
	assert_kind(" health \r\n", REQUEST_HEALTH);
}

static void
test_parse_is_case_insensitive(void **state)
{
	(void)state;
	assert_kind("REPLICA", REQUEST_REPLICA);
	assert_kind("Primary\n", REQUEST_PRIMARY);
	assert_kind("Read-Only", REQUEST_READ_ONLY);
	assert_kind("HEALTH", REQUEST_HEALTH);
}

static void
test_parse_every_canonical_word(void **state)
{
	(void)state;
	assert_kind("primary", REQUEST_PRIMARY);
	assert_kind("replica", REQUEST_REPLICA);
	assert_kind("read-only", REQUEST_READ_ONLY);
	assert_kind("health", REQUEST_HEALTH);
}

static void
test_parse_primary_aliases(void **state)
{
	(void)state;
	assert_kind("master\n", REQUEST_PRIMARY);
	assert_kind("leader\n", REQUEST_PRIMARY);
	assert_kind("read-write\n", REQUEST_PRIMARY);
	assert_kind("rw\n", REQUEST_PRIMARY);
}

static void
test_parse_replica_aliases(void **state)
{
	(void)state;
	assert_kind("standby\n", REQUEST_REPLICA);
	assert_kind("ro\n", REQUEST_REPLICA);
}

static void
test_parse_health_alias(void **state)
{
	(void)state;
	assert_kind("any\n", REQUEST_HEALTH);
}

/* agentline_parse: parameters */

static void
test_parse_replica_with_both_lag_limits(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(parse("replica lag=16MB lag_s=5\n", &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 5.0);
}

static void
test_parse_replica_with_byte_limit_only(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(parse("replica lag=1024", &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 1024);
	assert_false(r.has_max_lag_s);
}

static void
test_parse_replica_with_seconds_limit_only(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(parse("replica lag_s=2.5\r\n", &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_false(r.has_max_lag_bytes);
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 2.5);
}

static void
test_parse_accepts_comma_separators(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(parse("replica,lag=1MB", &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 1 * MB);

	assert_int_equal(parse("replica,lag=1MB,lag_s=3\n", &r), AGENTLINE_OK);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 1 * MB);
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 3.0);
}

static void
test_parse_accepts_tab_separators(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(parse("read-only\tlag=2MB\n", &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_READ_ONLY);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 2 * MB);
}

/* agentline_parse: nothing */

static void
test_parse_nothing_is_empty(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(parse_n("", 0, &r), AGENTLINE_EMPTY);
	assert_parse("\n", AGENTLINE_EMPTY);
	assert_parse("\r\n", AGENTLINE_EMPTY);
	assert_parse("   ", AGENTLINE_EMPTY);
	assert_parse(" \t \n", AGENTLINE_EMPTY);
}

/* agentline_parse: refused */

static void
test_parse_unknown_word_is_bad(void **state)
{
	(void)state;
	assert_parse("primaryx\n", AGENTLINE_BAD);
	assert_parse("prim\n", AGENTLINE_BAD);
	assert_parse("ready\n", AGENTLINE_BAD);
	assert_parse("GET / HTTP/1.0\r\n", AGENTLINE_BAD);
}

static void
test_parse_unknown_parameter_is_bad(void **state)
{
	(void)state;
	assert_parse("replica foo=1\n", AGENTLINE_BAD);
	assert_parse("replica lagx=1MB\n", AGENTLINE_BAD);
	assert_parse("replica lag\n", AGENTLINE_BAD);
	assert_parse("replica replica\n", AGENTLINE_BAD);
}

static void
test_parse_parameter_without_kind_is_bad(void **state)
{
	(void)state;
	assert_parse("lag=1MB\n", AGENTLINE_BAD);
}

static void
test_parse_bad_value_is_bad(void **state)
{
	(void)state;
	assert_parse("replica lag=abc\n", AGENTLINE_BAD);
	assert_parse("replica lag=-1\n", AGENTLINE_BAD);
	assert_parse("replica lag=\n", AGENTLINE_BAD);
	assert_parse("replica lag=16MBx\n", AGENTLINE_BAD);
	assert_parse("replica lag_s=abc\n", AGENTLINE_BAD);
	assert_parse("replica lag_s=-1\n", AGENTLINE_BAD);
	assert_parse("replica lag_s=\n", AGENTLINE_BAD);
	assert_parse("replica lag_s=nan\n", AGENTLINE_BAD);
}

static void
test_parse_nul_byte_is_bad(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(parse_n("prim\0ary\n", 9, &r), AGENTLINE_BAD);
	assert_int_equal(parse_n("primary\0\n", 9, &r), AGENTLINE_BAD);
	assert_int_equal(parse_n("primary\0", 8, &r), AGENTLINE_BAD);
	assert_int_equal(parse_n("\0", 1, &r), AGENTLINE_BAD);
}

static void
test_parse_control_characters_are_bad(void **state)
{
	(void)state;
	assert_parse("\x01primary\n", AGENTLINE_BAD);
	assert_parse("primary\x1b[0m\n", AGENTLINE_BAD);
	assert_parse("replica\x7f\n", AGENTLINE_BAD);
	assert_parse("replica \x08lag=1MB\n", AGENTLINE_BAD);
	assert_parse("primary\rreplica\n", AGENTLINE_BAD);
}

static void
test_parse_bytes_after_the_first_line_are_bad(void **state)
{
	(void)state;
	assert_parse("primary\nreplica\n", AGENTLINE_BAD);
	assert_parse("primary\nreplica", AGENTLINE_BAD);
	assert_parse("primary\r\nx", AGENTLINE_BAD);
	assert_parse("\nprimary\n", AGENTLINE_BAD);
}

static void
test_parse_over_max_length_is_bad(void **state)
{
	char line[AGENTLINE_MAX + 64];
	struct request r;

	(void)state;
	/* a valid request padded with blanks past the limit */
	memset(line, ' ', sizeof(line));
	memcpy(line, "replica", 7);
	line[sizeof(line) - 1] = '\n';
	assert_int_equal(parse_n(line, sizeof(line), &r), AGENTLINE_BAD);

	/* one long word */
	memset(line, 'a', sizeof(line));
	assert_int_equal(parse_n(line, AGENTLINE_MAX + 1, &r), AGENTLINE_BAD);
}

static void
test_parse_long_but_within_limit_is_ok(void **state)
{
	char line[AGENTLINE_MAX];
	struct request r;

	(void)state;
	/* 200 bytes: under the limit with or without counting the newline */
	memset(line, ' ', 200);
	memcpy(line, "replica lag=1MB", 15);
	line[199] = '\n';
	assert_int_equal(parse_n(line, 200, &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_int_equal(r.max_lag_bytes, 1 * MB);
}

static void
test_parse_reads_only_len_bytes(void **state)
{
	struct request r;

	(void)state;
	/* what lies past len is not part of the request */
	assert_int_equal(parse_n("primaryXYZ", 7, &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_PRIMARY);
	assert_int_equal(parse_n("replica lag=1MB garbage", 15, &r), AGENTLINE_OK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_int_equal(r.max_lag_bytes, 1 * MB);
}

/* agentline_render */

static size_t
render(bool up, int weight, const char *reason, char *buf, size_t len)
{
	struct verdict v;

	memset(&v, 0, sizeof(v));
	v.up = up;
	v.weight_pct = weight;
	snprintf(v.reason, sizeof(v.reason), "%s", reason);
	memset(buf, 'X', len);
	return agentline_render(&v, buf, len);
}

static void
assert_render(bool up, int weight, const char *reason, const char *want)
{
	char buf[128];
	size_t n = render(up, weight, reason, buf, sizeof(buf));

	assert_non_null(memchr(buf, '\0', sizeof(buf)));
	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
}

/* is_one_safe_line: one line ending in "\n", and no ready/maint/drain word before any '#'. */
static void
assert_one_safe_line(const char *line)
{
	size_t len = strlen(line);
	const char *hash = strchr(line, '#');
	size_t head = hash ? (size_t)(hash - line) : len;
	static const char *const forbidden[] = {"ready", "maint", "drain", "stopped", "fail"};

	if (len < 2 || line[len - 1] != '\n' || strchr(line, '\n') != line + len - 1 || strchr(line, '\r') != NULL)
		fail_msg("\"%s\" is not one line ending in one \"\\n\"", line);
	if (strncmp(line, "up ", 3) != 0 && strncmp(line, "down", 4) != 0)
		fail_msg("\"%s\" starts with neither up nor down", line);
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		const char *w = forbidden[i];
		size_t wl = strlen(w);

		for (size_t at = 0; at + wl <= head; at++)
			if (strncmp(line + at, w, wl) == 0) {
				print_error("\"%s\" says %s before any '#'\n", line, w);
				fail();
			}
	}
}

static void
test_render_up_with_weight(void **state)
{
	(void)state;
	assert_render(true, 73, "", "up 73%\n");
	assert_render(true, 100, "", "up 100%\n");
}

static void
test_render_up_zero_for_drain(void **state)
{
	char buf[128];

	(void)state;
	render(true, 0, "", buf, sizeof(buf));
	assert_string_equal(buf, "up 0%\n");
	/* whatever remark a drain carries, the state word stays up and the weight 0% */
	render(true, 0, "drain", buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "up 0%", 5), 0);
	assert_one_safe_line(buf);
}

static void
test_render_down_with_reason(void **state)
{
	(void)state;
	assert_render(false, 0, "timeout", "down #timeout\n");
	assert_render(false, 0, "pg-unreachable", "down #pg-unreachable\n");
	assert_render(false, 0, "is-replica", "down #is-replica\n");
}

static void
test_render_down_with_lag_reason_keeps_its_space(void **state)
{
	(void)state;
	assert_render(false, 0, "lag 35MB/12s", "down #lag 35MB/12s\n");
}

static void
test_render_maint_is_down_maint_not_the_maint_word(void **state)
{
	char buf[128];

	(void)state;
	assert_render(false, 0, "maint", "down #maint\n");
	render(false, 0, "maint", buf, sizeof(buf));
	assert_one_safe_line(buf);
}

static void
test_render_is_always_one_safe_line(void **state)
{
	static const char *const reasons[] = {"",      "starting",     "stale",        "maint",    "drain",
	                                      "ready", "lag 35MB/12s", "disconnected", "read-only"};
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		render(false, 0, reasons[i], buf, sizeof(buf));
		assert_one_safe_line(buf);
		render(true, 50, reasons[i], buf, sizeof(buf));
		assert_one_safe_line(buf);
		assert_int_equal(strncmp(buf, "up 50%", 6), 0);
	}
}

static void
test_render_reason_with_newline_is_still_one_line(void **state)
{
	char buf[128];

	(void)state;
	render(false, 0, "bad\nready", buf, sizeof(buf));
	assert_one_safe_line(buf);
	assert_int_equal(strncmp(buf, "down", 4), 0);
	render(false, 0, "bad\r\nup 100%", buf, sizeof(buf));
	assert_one_safe_line(buf);
	assert_int_equal(strncmp(buf, "down", 4), 0);
}

static void
test_render_longest_reason_fits_one_line(void **state)
{
	char reason[VERDICT_REASON_MAX];
	char buf[VERDICT_REASON_MAX + 32];
	size_t n;

	(void)state;
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	n = render(false, 0, reason, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_int_equal(n, strlen("down #") + VERDICT_REASON_MAX - 1 + 1);
	assert_one_safe_line(buf);
}

static void
test_render_into_a_tiny_buffer_claims_no_more_than_it_wrote(void **state)
{
	struct verdict v;

	(void)state;
	memset(&v, 0, sizeof(v));
	snprintf(v.reason, sizeof(v.reason), "pg-unreachable");
	/* a caller sends n bytes from buf: n must never exceed what is there */
	for (size_t len = 1; len <= 8; len++) {
		char buf[8];
		size_t n;

		memset(buf, 'X', sizeof(buf));
		n = agentline_render(&v, buf, len);
		if (n >= len)
			fail_msg("agentline_render into %zu bytes returned %zu", len, n);
		assert_int_equal(strlen(buf), n);
	}
}

/* the answer given without a whole request line: weight first, so "^up" never matches it */
static void
test_render_unasked_puts_the_weight_first(void **state)
{
	struct verdict v;
	char buf[64];

	(void)state;
	memset(&v, 0, sizeof(v));
	v.up = true;
	v.weight_pct = 73;
	assert_int_equal(agentline_render_unasked(&v, buf, sizeof(buf)), strlen("73% up\n"));
	assert_string_equal(buf, "73% up\n");
	v.weight_pct = 0;
	(void)agentline_render_unasked(&v, buf, sizeof(buf));
	assert_string_equal(buf, "0% up\n");
}

static void
test_render_unasked_down_is_the_same_down(void **state)
{
	struct verdict v;
	char asked[64], unasked[64];

	(void)state;
	memset(&v, 0, sizeof(v));
	snprintf(v.reason, sizeof(v.reason), "is-replica");
	(void)agentline_render(&v, asked, sizeof(asked));
	(void)agentline_render_unasked(&v, unasked, sizeof(unasked));
	assert_string_equal(asked, "down #is-replica\n");
	assert_string_equal(unasked, asked);
}

static void
test_render_unasked_into_a_tiny_buffer_claims_no_more_than_it_wrote(void **state)
{
	struct verdict v;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.up = true;
	v.weight_pct = 100;
	for (size_t len = 1; len <= 8; len++) {
		char buf[8];
		size_t n;

		memset(buf, 'X', sizeof(buf));
		n = agentline_render_unasked(&v, buf, len);
		if (n >= len)
			fail_msg("agentline_render_unasked into %zu bytes returned %zu", len, n);
		assert_int_equal(strlen(buf), n);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_primary_with_newline),
	    cmocka_unit_test(test_parse_primary_without_newline),
	    cmocka_unit_test(test_parse_primary_with_crlf),
	    cmocka_unit_test(test_parse_ignores_surrounding_blanks),
	    cmocka_unit_test(test_parse_is_case_insensitive),
	    cmocka_unit_test(test_parse_every_canonical_word),
	    cmocka_unit_test(test_parse_primary_aliases),
	    cmocka_unit_test(test_parse_replica_aliases),
	    cmocka_unit_test(test_parse_health_alias),
	    cmocka_unit_test(test_parse_replica_with_both_lag_limits),
	    cmocka_unit_test(test_parse_replica_with_byte_limit_only),
	    cmocka_unit_test(test_parse_replica_with_seconds_limit_only),
	    cmocka_unit_test(test_parse_accepts_comma_separators),
	    cmocka_unit_test(test_parse_accepts_tab_separators),
	    cmocka_unit_test(test_parse_nothing_is_empty),
	    cmocka_unit_test(test_parse_unknown_word_is_bad),
	    cmocka_unit_test(test_parse_unknown_parameter_is_bad),
	    cmocka_unit_test(test_parse_parameter_without_kind_is_bad),
	    cmocka_unit_test(test_parse_bad_value_is_bad),
	    cmocka_unit_test(test_parse_nul_byte_is_bad),
	    cmocka_unit_test(test_parse_control_characters_are_bad),
	    cmocka_unit_test(test_parse_bytes_after_the_first_line_are_bad),
	    cmocka_unit_test(test_parse_over_max_length_is_bad),
	    cmocka_unit_test(test_parse_long_but_within_limit_is_ok),
	    cmocka_unit_test(test_parse_reads_only_len_bytes),
	    cmocka_unit_test(test_render_up_with_weight),
	    cmocka_unit_test(test_render_up_zero_for_drain),
	    cmocka_unit_test(test_render_down_with_reason),
	    cmocka_unit_test(test_render_down_with_lag_reason_keeps_its_space),
	    cmocka_unit_test(test_render_maint_is_down_maint_not_the_maint_word),
	    cmocka_unit_test(test_render_is_always_one_safe_line),
	    cmocka_unit_test(test_render_reason_with_newline_is_still_one_line),
	    cmocka_unit_test(test_render_longest_reason_fits_one_line),
	    cmocka_unit_test(test_render_into_a_tiny_buffer_claims_no_more_than_it_wrote),
	    cmocka_unit_test(test_render_unasked_puts_the_weight_first),
	    cmocka_unit_test(test_render_unasked_down_is_the_same_down),
	    cmocka_unit_test(test_render_unasked_into_a_tiny_buffer_claims_no_more_than_it_wrote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
