/*
 * test_conf_load.c: every configuration error message, word for word, and the files that must load.
 * Errors must name file:line, the key and what is wrong, so a DBA can fix the file without guessing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

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
	assert_true(load_text(
	    "; a comment\n# another\n\n[agent]\nlisten = 127.0.0.1:6000\ndefault_request = "
	    "primary\n[pg]\nconninfo = host=/tmp port=5433 dbname=app\npoll_interval_ms = 150\n"
	    "[replica]\n; a comment is a whole line\nmax_lag_bytes = 32MB\nmax_lag_s = 2.5\nover_lag = drain\n"
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
	expect_error("[replica]\nmax_lag_bytes = 2TB\n",
	             "t.ini:2: [replica] max_lag_bytes: 2TB is above the maximum 1TB");
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
	expect_error("[agent]\ndefault_request = writer\n", "t.ini:2: [agent] default_request: 'writer' is not one of "
	                                                    "primary, replica, read-only, health, sync, async, quorum");
}

static void
test_location_labels_are_checked(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load_text("[agent]\nlocation = dc=fra, zone=b\n", &c, err, sizeof(err)));
	assert_string_equal(c.agent_location, "dc=fra, zone=b");
	assert_true(conf_labels_have(c.agent_location, "zone=b", 6));
	assert_false(conf_labels_have(c.agent_location, "zone=", 5));
	expect_error("\n[agent]\nlocation = dc=fra, zone\n",
	             "t.ini:3: [agent] location: 'zone' is not a label KEY=VALUE (letters, digits and _.:- on both "
	             "sides, under 64 bytes)");
	expect_error("[agent]\nlocation = dc=fr/a\n",
	             "t.ini:2: [agent] location: 'dc=fr/a' is not a label KEY=VALUE (letters, digits and _.:- on both "
	             "sides, under 64 bytes)");
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
	             "t.ini:3: [pg] port: indented line (continuation lines are not supported): remove the leading "
	             "space");
	expect_error("[pg]\nconninfo = host=/tmp\n  ; a comment\n",
	             "t.ini:3: [pg]: indented line (continuation lines are not supported): remove the leading space");
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
	assert_string_equal(err, "t.ini:2: [pg] poll_interval_ms: line holds a NUL byte");
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
	             "t.ini:4: [pg] stale_after_ms: poll_interval_ms + query_timeout_ms (1000 + 1000 = 2000) is above "
	             "stale_after_ms (1500): every sample would be stale before the next one");
}

static void
test_load_limits_in_wrong_order_is_an_error(void **state)
{
	(void)state;
	expect_error("[weight]\nload_low_per_cpu = 3\n",
	             "t.ini:2: [weight] load_low_per_cpu: load_high_per_cpu (2) must be above load_low_per_cpu (3)");
}

static void
test_soft_lag_above_hard_limit_is_an_error(void **state)
{
	(void)state;
	expect_error("[replica]\nmax_lag_bytes = 1MB\n[weight]\nlag_soft_bytes = 2MB\n",
	             "t.ini:4: [weight] lag_soft_bytes: [weight] lag_soft_bytes (2MB) must not be above [replica] "
	             "max_lag_bytes (1MB)");
}

/* item 12: a value is kept whole or rejected; ';' and '#' inside a value are part of it */

static void
test_semicolon_in_a_command_is_kept(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	/* inih's inline comments cut this to "provision" and pgcheckd -t said the file was valid */
	assert_true(load_text("[scaleout]\nup_command = provision ; logger x\ndown_command = retire #1\n", &c, err,
	                      sizeof(err)));
	assert_string_equal(c.scaleout_up_command, "provision ; logger x");
	assert_string_equal(c.scaleout_down_command, "retire #1");
}

static void
test_password_with_semicolon_is_kept(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	if (!load_text("[pg]\nconninfo = host=/tmp dbname=app password='pa ;ss #1' user=app\n", &c, err, sizeof(err)))
		fail_msg("a conninfo with ' ;' in its password did not load: %s", err);
	assert_string_equal(c.pg_conninfo, "host=/tmp dbname=app password='pa ;ss #1' user=app");
}

static void
test_comment_after_a_number_is_an_error(void **state)
{
	(void)state;
	/* not silently read as 32MB: a ';' after a value is part of the value, and this one is not a size */
	expect_error("[replica]\nmax_lag_bytes = 32MB ; inline comment\n",
	             "t.ini:2: [replica] max_lag_bytes: '32MB ; inline comment' is not a size (a number with an "
	             "optional kB, MB, GB or TB)");
	expect_error("[agent]\nlisten = 127.0.0.1:5480 # the agent port\n",
	             "t.ini:2: [agent] listen: '127.0.0.1:5480 # the agent port' is not HOST:PORT, *:PORT or "
	             "[IPV6]:PORT with a port from 1 to 65535");
}

static void
test_text_after_a_section_header_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg] ; the database\npoll_interval_ms = 300\n",
	             "t.ini:1: [pg]: text after ']' (comments are whole lines that start with ; or #)");
}

static void
test_value_keeps_inner_spaces_and_loses_outer_ones(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load_text("[scaleout]\nup_command \t=  \t a  b\t \r\n", &c, err, sizeof(err)));
	assert_string_equal(c.scaleout_up_command, "a  b");
}

/* item 13: long lines are read, and every error names the key */

#define REALISTIC_CONNINFO                                                                                             \
	"host=pg-main-01.db.eu-west-1.internal.example.com,pg-main-02.db.eu-west-1.internal.example.com "              \
	"port=5432,5432 dbname=postgres user=pgcheckd sslmode=verify-full "                                            \
	"sslrootcert=/etc/pgcheckd/tls/internal-root-ca-2026.crt "                                                     \
	"sslcert=/etc/pgcheckd/tls/pgcheckd-client-pg-main-01.crt "                                                    \
	"sslkey=/etc/pgcheckd/tls/pgcheckd-client-pg-main-01.key "                                                     \
	"sslcrl=/etc/pgcheckd/tls/internal-root-ca-2026.crl target_session_attrs=any "                                 \
	"application_name=pgcheckd keepalives_idle=5"

static void
test_realistic_long_conninfo_is_read(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(strlen(REALISTIC_CONNINFO) > 400);
	if (!load_text("[pg]\nconninfo = " REALISTIC_CONNINFO "\n", &c, err, sizeof(err)))
		fail_msg("a %zu-byte conninfo did not load: %s", strlen(REALISTIC_CONNINFO), err);
	assert_string_equal(c.pg_conninfo, REALISTIC_CONNINFO);
}

static void
test_four_kilobyte_line_is_read(void **state)
{
	static char text[8192], value[4096];
	static struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	memset(value, 'x', 4000);
	value[4000] = '\0';
	snprintf(text, sizeof(text), "[scaleout]\nup_command = %s\n[haproxy]\nadd_server_options = check %.1900s\n",
	         value, value);
	if (!load_text(text, &c, err, sizeof(err)))
		fail_msg("a 4 kB line did not load: %s", err);
	assert_int_equal(strlen(c.scaleout_up_command), 4000);
	assert_int_equal(strlen(c.haproxy_add_server_options), 1906);
}

static void
test_too_long_value_names_the_key(void **state)
{
	static char text[8192];

	(void)state;
	snprintf(text, sizeof(text), "[pg]\nconninfo = host=/tmp application_name=%05000d\n", 0);
	expect_error(text, "t.ini:2: [pg] conninfo: value is longer than 4095 bytes");
	snprintf(text, sizeof(text), "[haproxy]\nadd_server_options = check %03000d\n", 0);
	expect_error(text, "t.ini:2: [haproxy] add_server_options: value is longer than 2048 bytes");
}

static void
test_too_long_line_names_the_key(void **state)
{
	static char text[20000];

	(void)state;
	snprintf(text, sizeof(text), "[pg]\nconninfo = %010000d\n", 0);
	expect_error(text, "t.ini:2: [pg] conninfo: line is longer than 8192 bytes");
}

static void
test_control_character_is_an_error(void **state)
{
	(void)state;
	expect_error("[scaleout]\nup_command = a\033[2Jb\n",
	             "t.ini:2: [scaleout] up_command: line holds a control character (byte 0x1b)");
}

/* item 14: conninfo is checked with libpq's parser, and the error never shows the value */

static void
expect_conninfo_error(const char *conninfo, const char *secret, const char *message)
{
	char text[1024];
	struct conf c;
	char err[CONF_ERR_MAX];

	snprintf(text, sizeof(text), "[pg]\npoll_interval_ms = 200\nconninfo = %s\n", conninfo);
	if (load_text(text, &c, err, sizeof(err)))
		fail_msg("conninfo '%s' loaded", conninfo);
	if (strstr(err, secret) != NULL)
		fail_msg("the error shows the secret '%s': %s", secret, err);
	assert_string_equal(err, message);
}

static void
test_conninfo_with_bad_percent_escape_is_an_error_without_the_value(void **state)
{
	(void)state;
	expect_conninfo_error("postgresql://app:Sup3r%zzSecret@host/db", "Sup3r",
	                      "t.ini:3: [pg] conninfo: libpq cannot parse it: a '%' in the URI is not followed by two "
	                      "hex digits (the value is not shown: it may hold a password)");
}

static void
test_conninfo_with_unquoted_space_in_password_is_an_error_without_the_value(void **state)
{
	(void)state;
	expect_conninfo_error("host=/tmp password=Sup3r Secret", "Secret",
	                      "t.ini:3: [pg] conninfo: libpq cannot parse it: a word without '=' (quote a value "
	                      "that holds spaces: key='a b') (the value is not shown: it may hold a password)");
	expect_conninfo_error("host=/tmp password='Sup3r", "Sup3r",
	                      "t.ini:3: [pg] conninfo: libpq cannot parse it: a quoted value is not closed (the value "
	                      "is not shown: it may hold a password)");
	expect_conninfo_error("host=/tmp Sup3rpassword=x", "Sup3r",
	                      "t.ini:3: [pg] conninfo: libpq cannot parse it: an unknown option name (the value is "
	                      "not shown: it may hold a password)");
}

static void
test_conninfo_uri_with_unencoded_password_is_an_error_without_the_value(void **state)
{
	(void)state;
	/* libpq reads host "Secret@db1" and would log it in "could not translate host name" */
	expect_conninfo_error("postgresql://app:Sup3r@Secret@db1/postgres", "Secret",
	                      "t.ini:3: [pg] conninfo: the URI's host, port or database name holds a part of its user "
	                      "name or password: write '@', '/', '?' and ':' in them as %40, %2F, %3F and %3A (the "
	                      "value is not shown: it may hold a password)");
	expect_conninfo_error("postgresql://app:Sup3r/Secret@db1/postgres", "Secret",
	                      "t.ini:3: [pg] conninfo: the URI's host, port or database name holds a part of its user "
	                      "name or password: write '@', '/', '?' and ':' in them as %40, %2F, %3F and %3A (the "
	                      "value is not shown: it may hold a password)");
}

static void
test_conninfo_forms_libpq_accepts_load(void **state)
{
	static const char *const good[] = {
	    "",
	    "postgres",
	    "service=main",
	    "host=/run/postgresql dbname=postgres",
	    "postgresql://app:p%40ss%2Fw@db1:5432,db2:5433/app?sslmode=require&application_name=x",
	    "postgresql:///postgres?host=/tmp",
	    "postgres://db1/app",
	};
	char text[512];
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[pg]\nconninfo = %s\n", good[i]);
		if (!load_text(text, &c, err, sizeof(err)))
			fail_msg("conninfo '%s' did not load: %s", good[i], err);
		assert_string_equal(c.pg_conninfo, good[i]);
	}
}

/* item 3: deadlines that cannot fit inside the stale and fresh limits; errors name file:line and key */

static void
test_query_deadline_past_stale_limit_names_line_and_key(void **state)
{
	(void)state;
	expect_error("[pg]\nquery_timeout_ms = 1400\n",
	             "t.ini:2: [pg] query_timeout_ms: poll_interval_ms + query_timeout_ms (200 + 1400 = 1600) is "
	             "above stale_after_ms (1500): every sample would be stale before the next one");
}

static void
test_connect_deadline_past_stale_limit_is_an_error(void **state)
{
	(void)state;
	expect_error("[pg]\nconnect_timeout_ms = 1400\n",
	             "t.ini:2: [pg] connect_timeout_ms: poll_interval_ms + connect_timeout_ms (200 + 1400 = 1600) "
	             "is above stale_after_ms (1500): a lost connection would be stale before its connect deadline "
	             "reports it");
	expect_error("[pg]\nstale_after_ms = 1000\nconnect_timeout_ms = 900\n",
	             "t.ini:3: [pg] connect_timeout_ms: poll_interval_ms + connect_timeout_ms (200 + 900 = 1100) "
	             "is above stale_after_ms (1000): a lost connection would be stale before its connect deadline "
	             "reports it");
}

static void
test_connect_deadline_that_fits_loads(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load_text("[pg]\nconnect_timeout_ms = 1300\n", &c, err, sizeof(err)));
	assert_true(load_text("[pg]\nstale_after_ms = 3000\nconnect_timeout_ms = 2800\n", &c, err, sizeof(err)));
}

static void
test_peer_fresh_limit_not_above_interval_is_an_error(void **state)
{
	(void)state;
	expect_error("[peers]\nfresh_ms = 300\ninterval_ms = 200\n",
	             "t.ini:3: [peers] interval_ms: interval_ms + timeout_ms (200 + 200 = 400) is not below "
	             "fresh_ms (300): a peer that answers every read in time would be forgotten between two reads");
	expect_error("[peers]\ninterval_ms = 2000\n",
	             "t.ini:2: [peers] interval_ms: interval_ms + timeout_ms (2000 + 200 = 2200) is not below "
	             "fresh_ms (2000): a peer that answers every read in time would be forgotten between two reads");
	expect_error("[peers]\ntimeout_ms = 1800\n",
	             "t.ini:2: [peers] timeout_ms: interval_ms + timeout_ms (200 + 1800 = 2000) is not below "
	             "fresh_ms (2000): a peer that answers every read in time would be forgotten between two reads");
}

static void
test_cross_key_errors_name_the_line_of_a_key_set(void **state)
{
	(void)state;
	expect_error("[agent]\nclient_timeout_ms = 150\n",
	             "t.ini:2: [agent] client_timeout_ms: request_wait_ms (200) must be below client_timeout_ms (150)");
	expect_error("[agent]\nprimary_port = 5480\n",
	             "t.ini:2: [agent] primary_port: primary_port, replica_port and the listen port must all differ");
	expect_error("[scaleout]\nmin_pool = 9\n", "t.ini:2: [scaleout] min_pool: min_pool (9) is above max_pool (8)");
	expect_error("[haproxy]\nruntime_api = /run/haproxy.sock\n\ntemplate_backends = be:pg\nadvertise_addr = db1\n",
	             "t.ini:5: [haproxy] advertise_addr: 'db1' is not a literal IP address (needed to register and to "
	             "wait for a drain)");
	expect_error("[haproxy]\nruntime_api = /run/haproxy.sock\nadvertise_addr = db1\n",
	             "t.ini:3: [haproxy] advertise_addr: 'db1' is not a literal IP address (needed to register and to "
	             "wait for a drain)");
	expect_error("[haproxy]\nruntime_api = /run/haproxy.sock\n",
	             "t.ini:2: [haproxy] runtime_api: set but no template_backends, dynamic_backends, push_servers, "
	             "advertise_addr (ctl drain --wait) or [scaleout] backend uses it");
	expect_error("[haproxy]\npush_servers = be_primary/node1:primary\n",
	             "t.ini:2: [haproxy] push_servers: needs [haproxy] runtime_api");
	expect_error("[haproxy]\nruntime_api = /run/haproxy.sock\npush_servers = be_primary:primary\n",
	             "t.ini:3: [haproxy] push_servers: 'be_primary:primary' is not BACKEND/SERVER:REQUEST (REQUEST: "
	             "primary, replica, read-only, health)");
	expect_error("[haproxy]\nruntime_api = /run/haproxy.sock\npush_servers = be/*:primary\n",
	             "t.ini:2: [haproxy] runtime_api: '' is not a literal IP address (needed to register and to wait "
	             "for a drain)");
	expect_error("[scaleout]\nbackend = be\n",
	             "t.ini:2: [scaleout] backend: needs [haproxy] runtime_api and [scaleout] up_command");
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

/* key_file_with writes content into a fresh file of mode mode and returns its path (static). */
static const char *
key_file_with(const char *content, mode_t mode)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/pgcheckd-test-key-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void
expect_key_error(const char *content, mode_t mode, const char *what)
{
	const char *path = key_file_with(content, mode);
	char text[256], want[CONF_ERR_MAX], err[CONF_ERR_MAX];
	struct conf c;

	snprintf(text, sizeof(text), "[peers]\naddresses = 127.0.0.1:1\nkey_file = %s\n", path);
	assert_false(load_text(text, &c, err, sizeof(err)));
	snprintf(want, sizeof(want), what, path, path);
	assert_string_equal(err, want);
	assert_null(strstr(err, content[0] != '\0' ? content : "\x01")); /* never a byte of the key */
	unlink(path);
}

#define KEY64 "6f1ca7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7"

static void
test_peers_key_file_readable_by_group_or_others_is_refused(void **state)
{
	(void)state;
	expect_key_error(KEY64 "\n", 0644,
	                 "t.ini:3: [peers] key_file: %s has mode 0644: group or others may read it, and it holds a "
	                 "secret (refused, as libpq refuses a loose .pgpass): chmod 600 %s, owned by pgcheckd's user");
	expect_key_error(KEY64 "\n", 0640,
	                 "t.ini:3: [peers] key_file: %s has mode 0640: group or others may read it, and it holds a "
	                 "secret (refused, as libpq refuses a loose .pgpass): chmod 600 %s, owned by pgcheckd's user");
	expect_key_error(KEY64 "\n", 0602,
	                 "t.ini:3: [peers] key_file: %s has mode 0602: group or others may read it, and it holds a "
	                 "secret (refused, as libpq refuses a loose .pgpass): chmod 600 %s, owned by pgcheckd's user");
}

static void
test_peers_key_file_empty_or_short_is_refused_saying_the_minimum(void **state)
{
	(void)state;
	expect_key_error(
	    "", 0600,
	    "t.ini:3: [peers] key_file: %s is empty: write a key of at least 32 bytes into it (openssl rand "
	    "-hex 32 > %s)");
	expect_key_error(
	    "\n \n", 0600,
	    "t.ini:3: [peers] key_file: %s is empty: write a key of at least 32 bytes into it (openssl rand "
	    "-hex 32 > %s)");
	expect_key_error(
	    "0123456789abcdef0123456789abcde\n", 0400,
	    "t.ini:3: [peers] key_file: %s holds a key of 31 bytes: a key needs at least 32 bytes (openssl "
	    "rand -hex 32 > %s)");
}

static void
test_peers_key_file_is_read_less_its_newline(void **state)
{
	const char *path = key_file_with(KEY64 "\r\n", 0600);
	char text[256], err[CONF_ERR_MAX];
	struct conf c;

	(void)state;
	snprintf(text, sizeof(text), "[peers]\nkey_file = %s\n", path);
	assert_true(load_text(text, &c, err, sizeof(err)));
	assert_int_equal(c.peers_key_len, 64);
	assert_memory_equal(c.peers_key, KEY64, 64);
	unlink(path);
	/* gone: refused, and without a key_file there is no key */
	assert_false(load_text(text, &c, err, sizeof(err)));
	assert_non_null(strstr(err, "t.ini:2: [peers] key_file: cannot open "));
	assert_true(load_text("[peers]\nkey_file =\n", &c, err, sizeof(err)));
	assert_int_equal(c.peers_key_len, 0);
	/* a directory (or a FIFO, a device) is not a key file, and reading it never blocks */
	assert_false(load_text("[peers]\nkey_file = /tmp\n", &c, err, sizeof(err)));
	assert_string_equal(err, "t.ini:2: [peers] key_file: /tmp is not a regular file");
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
	    cmocka_unit_test(test_location_labels_are_checked),
	    cmocka_unit_test(test_bad_listen_is_an_error),
	    cmocka_unit_test(test_indented_continuation_line_is_an_error),
	    cmocka_unit_test(test_indented_blank_line_is_fine),
	    cmocka_unit_test(test_nul_byte_is_an_error),
	    cmocka_unit_test(test_nul_byte_does_not_split_a_long_line),
	    cmocka_unit_test(test_unparsable_line_is_an_error),
	    cmocka_unit_test(test_stale_limit_below_poll_and_deadline_is_an_error),
	    cmocka_unit_test(test_load_limits_in_wrong_order_is_an_error),
	    cmocka_unit_test(test_soft_lag_above_hard_limit_is_an_error),
	    cmocka_unit_test(test_semicolon_in_a_command_is_kept),
	    cmocka_unit_test(test_password_with_semicolon_is_kept),
	    cmocka_unit_test(test_comment_after_a_number_is_an_error),
	    cmocka_unit_test(test_text_after_a_section_header_is_an_error),
	    cmocka_unit_test(test_value_keeps_inner_spaces_and_loses_outer_ones),
	    cmocka_unit_test(test_realistic_long_conninfo_is_read),
	    cmocka_unit_test(test_four_kilobyte_line_is_read),
	    cmocka_unit_test(test_too_long_value_names_the_key),
	    cmocka_unit_test(test_too_long_line_names_the_key),
	    cmocka_unit_test(test_control_character_is_an_error),
	    cmocka_unit_test(test_conninfo_with_bad_percent_escape_is_an_error_without_the_value),
	    cmocka_unit_test(test_conninfo_with_unquoted_space_in_password_is_an_error_without_the_value),
	    cmocka_unit_test(test_conninfo_uri_with_unencoded_password_is_an_error_without_the_value),
	    cmocka_unit_test(test_conninfo_forms_libpq_accepts_load),
	    cmocka_unit_test(test_query_deadline_past_stale_limit_names_line_and_key),
	    cmocka_unit_test(test_connect_deadline_past_stale_limit_is_an_error),
	    cmocka_unit_test(test_connect_deadline_that_fits_loads),
	    cmocka_unit_test(test_peer_fresh_limit_not_above_interval_is_an_error),
	    cmocka_unit_test(test_cross_key_errors_name_the_line_of_a_key_set),
	    cmocka_unit_test(test_missing_file_is_an_error),
	    cmocka_unit_test(test_shipped_example_loads_as_defaults),
	    cmocka_unit_test(test_unreloadable_keys_keep_running_values),
	    cmocka_unit_test(test_peers_key_file_readable_by_group_or_others_is_refused),
	    cmocka_unit_test(test_peers_key_file_empty_or_short_is_refused_saying_the_minimum),
	    cmocka_unit_test(test_peers_key_file_is_read_less_its_newline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
