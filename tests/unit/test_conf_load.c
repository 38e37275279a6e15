/*
 * test_conf_load.c: every configuration error message, word for word, and the files that must load.
 * Errors must name file:line, the key and what is wrong, so a DBA can fix the file without guessing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"

static bool
load_text(const char *text, struct conf *c, char *err, size_t errlen)
{
	FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "r");
	bool ok;

	assert_non_null(f);
	ok = conf_load_stream(f, "t.ini", c, err, errlen);
	fclose(f);
	return ok;
}

static void
expect_error(const char *text, const char *message)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	assert_false(load_text(text, &c, err, sizeof(err)));
	assert_string_equal(err, message);
}

static void
test_empty_file_gives_defaults(void **state)
{
	struct conf c, d;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load_text("", &c, err, sizeof(err)));
	conf_defaults(&d);
	assert_memory_equal(&c, &d, sizeof(c));
	assert_int_equal(c.pg_poll_interval_ms, 200);
	assert_int_equal(c.listen_port, 5480);
	assert_string_equal(c.listen_host, "*");
}

static void
test_values_are_read_and_comments_skipped(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load_text("; a comment\n# another\n\n[agent]\nlisten = 127.0.0.1:6000\ndefault_request = "
			      "primary\n[pg]\nconninfo = host=/tmp port=5433 dbname=app\npoll_interval_ms = 150\n"
			      "[replica]\nmax_lag_bytes = 32MB ; inline comment\nmax_lag_s = 2.5\nover_lag = drain\n"
			      "[log]\nsyslog = yes\nlevel = DEBUG\n",
			      &c, err, sizeof(err)));
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_int_equal(c.listen_port, 6000);
	assert_int_equal(c.agent_default_request, REQUEST_PRIMARY);
	assert_string_equal(c.pg_conninfo, "host=/tmp port=5433 dbname=app");
	assert_int_equal(c.pg_poll_interval_ms, 150);
	assert_int_equal(c.replica_max_lag_bytes, 32 * 1024 * 1024);
	assert_true(c.replica_max_lag_s == 2.5);
	assert_int_equal(c.replica_over_lag, OVER_LAG_DRAIN);
	assert_true(c.log_syslog);
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
}

static void
test_ipv6_listen_is_read(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load_text("[agent]\nlisten = [::1]:5481\n", &c, err, sizeof(err)));
	assert_string_equal(c.listen_host, "::1");
	assert_int_equal(c.listen_port, 5481);
}

static void
test_unknown_key_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\npoll_interval_ms = 200\npoll_intervall_ms = 300\n",
		     "t.ini:3: [pg] poll_intervall_ms: unknown key");
}

static void
test_unknown_section_is_an_error(void **state)
{
	(void)state;
	expect_error("\n[postgres]\nconninfo = x\n", "t.ini:3: [postgres] conninfo: unknown section [postgres]");
}

static void
test_key_outside_a_section_is_an_error(void **state)
{
	(void)state;
	expect_error("conninfo = x\n", "t.ini:1: conninfo: key outside any section");
}

static void
test_key_given_twice_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\npoll_interval_ms = 200\n\npoll_interval_ms = 300\n",
		     "t.ini:4: [pg] poll_interval_ms: given twice (first on line 2)");
}

static void
test_value_below_minimum_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\npoll_interval_ms = 50\n", "t.ini:2: [pg] poll_interval_ms: 50 is below the minimum 100");
}

static void
test_value_above_maximum_is_an_error(void **state)
{
	(void)state;
	expect_error("[agent]\nmax_clients = 100000\n",
		     "t.ini:2: [agent] max_clients: 100000 is above the maximum 65536");
}

static void
test_non_integer_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\nquery_timeout_ms = 1s\n", "t.ini:2: [pg] query_timeout_ms: '1s' is not an integer");
	expect_error("[pg]\nquery_timeout_ms =\n", "t.ini:2: [pg] query_timeout_ms: '' is not an integer");
}

static void
test_bad_size_is_an_error(void **state)
{
	(void)state;
	expect_error("[replica]\nmax_lag_bytes = 16XB\n",
		     "t.ini:2: [replica] max_lag_bytes: '16XB' is not a size (a number with an optional kB, MB, GB "
		     "or TB)");
	expect_error("[replica]\nmax_lag_bytes = 2TB\n", "t.ini:2: [replica] max_lag_bytes: 2TB is above the maximum 1TB");
}

static void
test_bad_number_is_an_error(void **state)
{
	(void)state;
	expect_error("[replica]\nmax_lag_s = ten\n", "t.ini:2: [replica] max_lag_s: 'ten' is not a number");
	expect_error("[replica]\nmax_lag_s = -1\n", "t.ini:2: [replica] max_lag_s: -1 is below the minimum 0");
}

static void
test_bad_boolean_is_an_error(void **state)
{
	(void)state;
	expect_error("[log]\nsyslog = maybe\n", "t.ini:2: [log] syslog: 'maybe' is not a boolean (true or false)");
}

static void
test_bad_choice_is_an_error(void **state)
{
	(void)state;
	expect_error("[agent]\ndefault_request = writer\n",
		     "t.ini:2: [agent] default_request: 'writer' is not one of primary, replica, read-only, health");
}

static void
test_bad_listen_is_an_error(void **state)
{
	(void)state;
	expect_error("[agent]\nlisten = 5480\n", "t.ini:2: [agent] listen: '5480' is not HOST:PORT, *:PORT or "
						 "[IPV6]:PORT with a port from 1 to 65535");
	expect_error("[agent]\nlisten = *:0\n", "t.ini:2: [agent] listen: '*:0' is not HOST:PORT, *:PORT or "
						"[IPV6]:PORT with a port from 1 to 65535");
}

static void
test_indented_continuation_line_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\nconninfo = host=/tmp\n  port=5433\n",
		     "t.ini:3: indented line (inih would read it as part of the previous value): remove the leading "
		     "space");
}

static void
test_indented_blank_line_is_fine(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load_text("[pg]\n   \npoll_interval_ms = 300\n", &c, err, sizeof(err)));
	assert_int_equal(c.pg_poll_interval_ms, 300);
}

static void
test_too_long_line_is_an_error(void **state)
{
	char text[400];

	(void)state;
	snprintf(text, sizeof(text), "[pg]\nconninfo = %0250d\n", 0);
	expect_error(text, "t.ini:2: line is longer than 196 bytes");
}

/* load_bytes loads len bytes, which may hold NULs. */
static bool
load_bytes(const char *text, size_t len, struct conf *c, char *err, size_t errlen)
{
	FILE *f = fmemopen((void *)(uintptr_t)text, len, "r");
	bool ok;

	assert_non_null(f);
	ok = conf_load_stream(f, "t.ini", c, err, errlen);
	fclose(f);
	return ok;
}

static void
test_nul_byte_is_an_error(void **state)
{
	static const char text[] = "[pg]\npoll_interval_ms = 300\0garbage\n";
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	/* found by tests/fuzz/fuzz_conf.c: the rest of the line after the NUL was dropped silently */
	assert_false(load_bytes(text, sizeof(text) - 1, &c, err, sizeof(err)));
	assert_string_equal(err, "t.ini:2: line holds a NUL byte");
}

static void
test_nul_byte_does_not_split_a_long_line(void **state)
{
	char text[512];
	size_t n = 0;
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	/*
	 * One line of 250 bytes with a NUL in it: neither cut at the NUL nor read as two lines, the second
	 * setting poll_interval_ms. Found by tests/fuzz/fuzz_conf.c.
	 */
	n += (size_t)snprintf(text + n, sizeof(text) - n, "[pg]\nconninfo = host=x");
	text[n++] = '\0';
	while (n < 5 + 197)
		text[n++] = 'y';
	n += (size_t)snprintf(text + n, sizeof(text) - n, "poll_interval_ms = 100\n");
	if (load_bytes(text, n, &c, err, sizeof(err)))
		fail_msg("a line with a NUL byte loaded (conninfo '%s', poll_interval_ms %lld)", c.pg_conninfo,
			 (long long)c.pg_poll_interval_ms);
	assert_int_equal(strncmp(err, "t.ini:2: ", 9), 0);
}

static void
test_unparsable_line_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\npoll_interval_ms 200\n",
		     "t.ini:2: cannot parse this line (expected '[section]', 'key = value' or a comment)");
	expect_error("[pg\n", "t.ini:1: cannot parse this line (expected '[section]', 'key = value' or a comment)");
}

static void
test_stale_limit_below_poll_and_deadline_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\npoll_interval_ms = 1000\nquery_timeout_ms = 1000\nstale_after_ms = 1500\n",
		     "t.ini: [pg] stale_after_ms: 1500 is below poll_interval_ms + query_timeout_ms (2000): every "
		     "sample would be stale before the next one");
}

static void
test_load_limits_in_wrong_order_is_an_error(void **state)
{
	(void)state;
	expect_error("[weight]\nload_low_per_cpu = 3\n",
		     "t.ini: [weight] load_high_per_cpu: 2 must be above load_low_per_cpu (3)");
}

static void
test_soft_lag_above_hard_limit_is_an_error(void **state)
{
	(void)state;
	expect_error("[replica]\nmax_lag_bytes = 1MB\n[weight]\nlag_soft_bytes = 2MB\n",
		     "t.ini: [weight] lag_soft_bytes: must not be above [replica] max_lag_bytes");
}

static void
test_missing_file_is_an_error(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_false(conf_load("/nonexistent/pgcheckd.ini", &c, err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/pgcheckd.ini: cannot open: No such file or directory");
}

static void
test_shipped_example_loads_as_defaults(void **state)
{
	struct conf c, d;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(conf_load("conf/pgcheckd.ini", &c, err, sizeof(err)));
	conf_defaults(&d);
	assert_memory_equal(&c, &d, sizeof(c));
}

static void
test_unreloadable_keys_keep_running_values(void **state)
{
	struct conf running, next;
	char kept[256];

	(void)state;
	conf_defaults(&running);
	conf_defaults(&next);
	snprintf(next.agent_listen, sizeof(next.agent_listen), "127.0.0.1:9999");
	next.listen_port = 9999;
	next.pg_poll_interval_ms = 500;
	next.log_syslog = true;
	assert_int_equal(conf_keep_unreloadable(&running, &next, kept, sizeof(kept)), 2);
	assert_string_equal(kept, "[agent] listen, [log] syslog");
	assert_string_equal(next.agent_listen, "*:5480");
	assert_int_equal(next.listen_port, 5480);
	assert_false(next.log_syslog);
	assert_int_equal(next.pg_poll_interval_ms, 500);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_file_gives_defaults),
		cmocka_unit_test(test_values_are_read_and_comments_skipped),
		cmocka_unit_test(test_ipv6_listen_is_read),
		cmocka_unit_test(test_unknown_key_is_an_error),
		cmocka_unit_test(test_unknown_section_is_an_error),
		cmocka_unit_test(test_key_outside_a_section_is_an_error),
		cmocka_unit_test(test_key_given_twice_is_an_error),
		cmocka_unit_test(test_value_below_minimum_is_an_error),
		cmocka_unit_test(test_value_above_maximum_is_an_error),
		cmocka_unit_test(test_non_integer_is_an_error),
		cmocka_unit_test(test_bad_size_is_an_error),
		cmocka_unit_test(test_bad_number_is_an_error),
		cmocka_unit_test(test_bad_boolean_is_an_error),
		cmocka_unit_test(test_bad_choice_is_an_error),
		cmocka_unit_test(test_bad_listen_is_an_error),
		cmocka_unit_test(test_indented_continuation_line_is_an_error),
		cmocka_unit_test(test_indented_blank_line_is_fine),
		cmocka_unit_test(test_too_long_line_is_an_error),
		cmocka_unit_test(test_nul_byte_is_an_error),
		cmocka_unit_test(test_nul_byte_does_not_split_a_long_line),
		cmocka_unit_test(test_unparsable_line_is_an_error),
		cmocka_unit_test(test_stale_limit_below_poll_and_deadline_is_an_error),
		cmocka_unit_test(test_load_limits_in_wrong_order_is_an_error),
		cmocka_unit_test(test_soft_lag_above_hard_limit_is_an_error),
		cmocka_unit_test(test_missing_file_is_an_error),
		cmocka_unit_test(test_shipped_example_loads_as_defaults),
		cmocka_unit_test(test_unreloadable_keys_keep_running_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
