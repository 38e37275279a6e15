/*
 * test_conf.c: the configuration's pure parts: defaults from the key table, byte sizes, listen
 * addresses, enum words, the unreloadable-key diff, and the example file read back. The error
 * messages of conf_load have their own tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "conf.h"

#define KB 1024LL
#define MB (1024LL * KB)
#define GB (1024LL * MB)
#define TB (1024LL * GB)

/* defaults */

static void
test_defaults_match_the_documented_values(void **state)
{
	struct conf c;

	(void)state;
	memset(&c, 0x5a, sizeof(c));
	conf_defaults(&c);
	assert_string_equal(c.agent_listen, "*:5480");
	assert_int_equal(c.agent_default_request, REQUEST_REPLICA);
	assert_int_equal(c.agent_max_clients, 256);
	assert_int_equal(c.agent_request_idle_ms, 20);
	assert_int_equal(c.agent_client_timeout_ms, 500);
	assert_int_equal(c.agent_shutdown_drain_ms, 1000);
	assert_string_equal(c.pg_conninfo, "");
	assert_int_equal(c.pg_poll_interval_ms, 200);
	assert_int_equal(c.pg_query_timeout_ms, 500);
	assert_int_equal(c.pg_connect_timeout_ms, 1000);
	assert_int_equal(c.pg_reconnect_max_ms, 2000);
	assert_int_equal(c.pg_stale_after_ms, 1500);
	assert_int_equal(c.replica_max_lag_bytes, 16 * MB);
	assert_true(c.replica_max_lag_s == 10.0);
	assert_int_equal(c.replica_recover_pct, 50);
	assert_int_equal(c.replica_over_lag, OVER_LAG_DOWN);
	assert_int_equal(c.replica_receiver_silence_max_ms, 60000);
	assert_int_equal(c.weight_floor_pct, 10);
	assert_int_equal(c.weight_step_pct, 10);
	assert_int_equal(c.weight_smoothing_ms, 2000);
	assert_int_equal(c.weight_lag_soft_bytes, 1 * MB);
	assert_true(c.weight_lag_soft_s == 1.0);
	assert_true(c.weight_load_low_per_cpu == 0.5);
	assert_true(c.weight_load_high_per_cpu == 2.0);
	assert_int_equal(c.weight_primary_read_pct, 100);
	assert_int_equal(c.log_level, LOG_LEVEL_INFO);
	assert_false(c.log_syslog);
}

static void
test_defaults_derive_the_listen_host_and_port(void **state)
{
	struct conf c;

	(void)state;
	memset(&c, 0x5a, sizeof(c));
	conf_defaults(&c);
	assert_string_equal(c.listen_host, "*");
	assert_int_equal(c.listen_port, 5480);
}

static void
test_defaults_agree_with_the_key_table(void **state)
{
	struct conf c;

	(void)state;
	conf_defaults(&c);
	for (size_t i = 0; i < conf_key_count; i++) {
		const struct conf_key *k = &conf_keys[i];
		const char *field = (const char *)&c + k->offset;

		assert_non_null(k->default_value);
		switch (k->type) {
		case CONF_INT: {
			int64_t v;
			memcpy(&v, field, sizeof(v));
			assert_int_equal(v, strtoll(k->default_value, NULL, 10));
			break;
		}
		case CONF_BYTES: {
			int64_t v, want = -1;
			memcpy(&v, field, sizeof(v));
			assert_true(conf_parse_bytes(k->default_value, &want));
			assert_int_equal(v, want);
			break;
		}
		case CONF_DOUBLE: {
			double v;
			memcpy(&v, field, sizeof(v));
			assert_true(v == strtod(k->default_value, NULL));
			break;
		}
		case CONF_BOOL: {
			bool v;
			memcpy(&v, field, sizeof(v));
			assert_int_equal(v, strcmp(k->default_value, "true") == 0);
			break;
		}
		case CONF_STR:
		case CONF_LISTEN:
		case CONF_ADDRLIST:
		case CONF_APILIST:
		case CONF_CIDRLIST:
			assert_string_equal(field, k->default_value);
			break;
		case CONF_ENUM: {
			int v;
			memcpy(&v, field, sizeof(v));
			assert_non_null(k->enum_names);
			assert_int_equal(v, conf_enum_index(k->enum_names, k->default_value));
			assert_true(v >= 0);
			break;
		}
		default:
			fail_msg("[%s] %s: unknown type %d", k->section, k->name, (int)k->type);
		}
	}
}

static void
test_key_table_lists_every_key_once(void **state)
{
	size_t n = 0;

	(void)state;
#define COUNT_KEY(sec, name, type, def, min, max, reload, enums, help) n++;
	CONF_KEYS(COUNT_KEY)
#undef COUNT_KEY
	assert_int_equal(conf_key_count, n);
	for (size_t i = 0; i < conf_key_count; i++)
		for (size_t j = i + 1; j < conf_key_count; j++)
			if (strcmp(conf_keys[i].section, conf_keys[j].section) == 0 &&
			    strcmp(conf_keys[i].name, conf_keys[j].name) == 0)
				fail_msg("[%s] %s is listed twice", conf_keys[i].section, conf_keys[i].name);
	assert_string_equal(conf_keys[0].section, "agent");
	assert_string_equal(conf_keys[0].name, "listen");
	assert_int_equal(conf_keys[0].offset, offsetof(struct conf, agent_listen));
}

static void
test_defaults_are_valid(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX] = "";

	(void)state;
	conf_defaults(&c);
	if (!conf_validate(&c, "defaults", err, sizeof(err)))
		fail_msg("defaults do not validate: %s", err);
}

static void
test_example_file_reads_back_as_the_defaults(void **state)
{
	struct conf def, got;
	char err[CONF_ERR_MAX] = "";
	FILE *f = tmpfile();

	(void)state;
	assert_non_null(f);
	conf_print_example(f);
	rewind(f);
	conf_defaults(&def);
	if (!conf_load_stream(f, "example.ini", &got, err, sizeof(err)))
		fail_msg("example does not load: %s", err);
	fclose(f);
	for (size_t i = 0; i < conf_key_count; i++) {
		const struct conf_key *k = &conf_keys[i];
		bool text = k->type == CONF_STR || k->type == CONF_LISTEN || k->type == CONF_ADDRLIST ||
		            k->type == CONF_APILIST;
		size_t size = k->type == CONF_BOOL ? sizeof(bool) : k->type == CONF_ENUM ? sizeof(int) : 8;

		if (text)
			assert_string_equal((const char *)&got + k->offset, (const char *)&def + k->offset);
		else if (memcmp((const char *)&got + k->offset, (const char *)&def + k->offset, size) != 0)
			fail_msg("[%s] %s differs from its default after reading the example", k->section, k->name);
	}
}

/* conf_parse_bytes */

static void
assert_bytes(const char *s, int64_t want)
{
	int64_t got = -12345;

	if (!conf_parse_bytes(s, &got))
		fail_msg("conf_parse_bytes(\"%s\") refused", s);
	assert_int_equal(got, want);
}

static void
assert_not_bytes(const char *s)
{
	int64_t got = -12345;

	if (conf_parse_bytes(s, &got))
		fail_msg("conf_parse_bytes(\"%s\") accepted as %lld", s, (long long)got);
}

static void
test_parse_bytes_with_units(void **state)
{
	(void)state;
	assert_bytes("16MB", 16 * MB);
	assert_bytes("512kB", 512 * KB);
	assert_bytes("1GB", 1 * GB);
	assert_bytes("1TB", 1 * TB);
	assert_bytes("0MB", 0);
}

static void
test_parse_bytes_plain_number(void **state)
{
	(void)state;
	assert_bytes("1024", 1024);
	assert_bytes("0", 0);
	assert_bytes("1", 1);
	assert_bytes("1099511627776", TB);
}

static void
test_parse_bytes_b_is_optional(void **state)
{
	(void)state;
	assert_bytes("16M", 16 * MB);
	assert_bytes("512k", 512 * KB);
	assert_bytes("1G", 1 * GB);
	assert_bytes("1T", 1 * TB);
}

static void
test_parse_bytes_refuses_negative_and_empty(void **state)
{
	(void)state;
	assert_not_bytes("-1");
	assert_not_bytes("-1MB");
	assert_not_bytes("");
}

static void
test_parse_bytes_refuses_garbage(void **state)
{
	(void)state;
	assert_not_bytes("MBx");
	assert_not_bytes("MB");
	assert_not_bytes("16MBx");
	assert_not_bytes("16XB");
	assert_not_bytes("16 MBx");
	assert_not_bytes("16 MB"); /* no space between number and unit */
	assert_not_bytes(" 16MB");
	assert_not_bytes("16MB ");
	assert_not_bytes("abc");
	assert_not_bytes("1.5MB");
	assert_not_bytes("0x10");
}

static void
test_parse_bytes_refuses_overflow(void **state)
{
	(void)state;
	assert_not_bytes("9223372036854775808");
	assert_not_bytes("99999999999999999999");
	assert_not_bytes("8388608TB"); /* 2^63 */
	assert_not_bytes("9007199254740992GB");
	assert_bytes("8388607TB", 8388607LL * TB);
	assert_bytes("9223372036854775807", INT64_MAX);
}

/* conf_format_bytes */

static void
assert_format(int64_t bytes, const char *want)
{
	char buf[64];

	memset(buf, 'X', sizeof(buf));
	conf_format_bytes(bytes, buf, sizeof(buf));
	assert_non_null(memchr(buf, '\0', sizeof(buf)));
	assert_string_equal(buf, want);
}

static void
test_format_bytes_uses_the_largest_exact_unit(void **state)
{
	(void)state;
	assert_format(16 * MB, "16MB");
	assert_format(1536 * KB, "1536kB");
	assert_format(512 * KB, "512kB");
	assert_format(1 * GB, "1GB");
	assert_format(1 * TB, "1TB");
	assert_format(3 * TB, "3TB");
}

static void
test_format_bytes_round_trips(void **state)
{
	static const int64_t values[] = {0,  1,          1023,           1024,     1536, MB - 1,
	                                 MB, 1536 * KB,  16 * MB,        GB + 1,   GB,   1023 * GB,
	                                 TB, 5 * TB + 1, 8388607LL * TB, INT64_MAX};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		int64_t back = -12345;

		conf_format_bytes(values[i], buf, sizeof(buf));
		if (!conf_parse_bytes(buf, &back))
			fail_msg("conf_format_bytes(%lld) wrote \"%s\", which does not parse", (long long)values[i],
			         buf);
		assert_int_equal(back, values[i]);
	}
}

/* conf_parse_listen */

static void
assert_listen(const char *s, const char *want_host, int want_port)
{
	char host[256];
	int port = -1;

	memset(host, 'X', sizeof(host));
	if (!conf_parse_listen(s, host, sizeof(host), &port))
		fail_msg("conf_parse_listen(\"%s\") refused", s);
	assert_string_equal(host, want_host);
	assert_int_equal(port, want_port);
}

static void
assert_not_listen(const char *s)
{
	char host[256];
	int port = -1;

	if (conf_parse_listen(s, host, sizeof(host), &port))
		fail_msg("conf_parse_listen(\"%s\") accepted", s);
}

static void
test_parse_listen_any_address(void **state)
{
	(void)state;
	assert_listen("*:5480", "*", 5480);
}

static void
test_parse_listen_ipv4(void **state)
{
	(void)state;
	assert_listen("127.0.0.1:5480", "127.0.0.1", 5480);
	assert_listen("10.0.0.7:1", "10.0.0.7", 1);
	assert_listen("db1.example.com:65535", "db1.example.com", 65535);
}

static void
test_parse_listen_ipv6_in_brackets(void **state)
{
	(void)state;
	assert_listen("[::1]:5480", "::1", 5480);
	assert_listen("[::]:5480", "::", 5480);
}

static void
test_parse_listen_refuses_a_bare_port(void **state)
{
	(void)state;
	assert_not_listen("5480");
	assert_not_listen("");
}

static void
test_parse_listen_refuses_a_missing_or_bad_port(void **state)
{
	(void)state;
	assert_not_listen("host:");
	assert_not_listen("host:0");
	assert_not_listen("host:70000");
	assert_not_listen("host:65536");
	assert_not_listen("host:-1");
	assert_not_listen("host:54x");
	assert_not_listen("host: 5480");
	assert_not_listen("*:");
}

static void
test_parse_listen_refuses_bad_brackets(void **state)
{
	(void)state;
	assert_not_listen("[::1]5480");
	assert_not_listen("[::1");
	assert_not_listen("[::1]:");
	assert_not_listen("[::1]:0");
}

static void
test_parse_listen_refuses_a_host_too_long(void **state)
{
	char host[4];
	int port = -1;

	(void)state;
	assert_false(conf_parse_listen("127.0.0.1:5480", host, sizeof(host), &port));
	assert_true(conf_parse_listen("abc:5480", host, sizeof(host), &port));
	assert_string_equal(host, "abc");
	assert_int_equal(port, 5480);
}

/* conf_enum_index */

static void
test_enum_index_finds_words_case_insensitively(void **state)
{
	(void)state;
	assert_int_equal(conf_enum_index(conf_request_names, "primary"), REQUEST_PRIMARY);
	assert_int_equal(conf_enum_index(conf_request_names, "replica"), REQUEST_REPLICA);
	assert_int_equal(conf_enum_index(conf_request_names, "READ-ONLY"), REQUEST_READ_ONLY);
	assert_int_equal(conf_enum_index(conf_request_names, "health"), REQUEST_HEALTH);
	assert_int_equal(conf_enum_index(conf_over_lag_names, "down"), OVER_LAG_DOWN);
	assert_int_equal(conf_enum_index(conf_over_lag_names, "Drain"), OVER_LAG_DRAIN);
	assert_int_equal(conf_enum_index(conf_log_level_names, "error"), LOG_LEVEL_ERROR);
	assert_int_equal(conf_enum_index(conf_log_level_names, "warning"), LOG_LEVEL_WARNING);
	assert_int_equal(conf_enum_index(conf_log_level_names, "info"), LOG_LEVEL_INFO);
	assert_int_equal(conf_enum_index(conf_log_level_names, "debug"), LOG_LEVEL_DEBUG);
}

static void
test_enum_index_of_an_unknown_word_is_minus_one(void **state)
{
	(void)state;
	assert_int_equal(conf_enum_index(conf_request_names, "nope"), -1);
	assert_int_equal(conf_enum_index(conf_request_names, ""), -1);
	assert_int_equal(conf_enum_index(conf_request_names, "replicas"), -1);
	assert_int_equal(conf_enum_index(conf_over_lag_names, "maint"), -1);
	assert_int_equal(conf_enum_index(conf_log_level_names, "trace"), -1);
}

/* conf_keep_unreloadable */

static void
test_reload_keeps_the_running_listen_address(void **state)
{
	struct conf running, next;
	char kept[512] = "";

	(void)state;
	conf_defaults(&running);
	conf_defaults(&next);
	strcpy(next.agent_listen, "127.0.0.1:6000");
	strcpy(next.listen_host, "127.0.0.1");
	next.listen_port = 6000;
	assert_int_equal(conf_keep_unreloadable(&running, &next, kept, sizeof(kept)), 1);
	assert_non_null(strstr(kept, "[agent] listen"));
	assert_string_equal(next.agent_listen, "*:5480");
	assert_string_equal(next.listen_host, "*");
	assert_int_equal(next.listen_port, 5480);
}

static void
test_reload_applies_reloadable_keys(void **state)
{
	struct conf running, next;
	char kept[512] = "";

	(void)state;
	conf_defaults(&running);
	conf_defaults(&next);
	next.pg_poll_interval_ms = 1000;
	next.replica_max_lag_bytes = 64 * MB;
	strcpy(next.pg_conninfo, "service=main");
	next.log_level = LOG_LEVEL_DEBUG;
	assert_int_equal(conf_keep_unreloadable(&running, &next, kept, sizeof(kept)), 0);
	assert_string_equal(kept, "");
	assert_int_equal(next.pg_poll_interval_ms, 1000);
	assert_int_equal(next.replica_max_lag_bytes, 64 * MB);
	assert_string_equal(next.pg_conninfo, "service=main");
	assert_int_equal(next.log_level, LOG_LEVEL_DEBUG);
}

static void
test_reload_counts_every_unreloadable_key(void **state)
{
	struct conf running, next;
	char kept[512] = "";

	(void)state;
	conf_defaults(&running);
	conf_defaults(&next);
	strcpy(next.agent_listen, "[::]:5480");
	next.log_syslog = !running.log_syslog;
	next.pg_poll_interval_ms = 300;
	assert_int_equal(conf_keep_unreloadable(&running, &next, kept, sizeof(kept)), 2);
	assert_non_null(strstr(kept, "[agent] listen"));
	assert_non_null(strstr(kept, "[log] syslog"));
	assert_string_equal(next.agent_listen, "*:5480");
	assert_int_equal(next.log_syslog, running.log_syslog);
	assert_int_equal(next.pg_poll_interval_ms, 300);
}

/* conf_parse_cidr_list and conf_cidr_match: [agent] allow */
static bool
allowed(const char *list, const char *addr)
{
	struct conf_cidr ranges[CONF_CIDR_LIST_MAX];
	unsigned char bytes[16];
	int count, family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;

	assert_true(conf_parse_cidr_list(list, ranges, CONF_CIDR_LIST_MAX, &count));
	assert_int_equal(inet_pton(family, addr, bytes), 1);
	return conf_cidr_match(ranges, count, family, bytes);
}

static void
test_allow_list_matches_addresses_and_ranges(void **state)
{
	(void)state;
	assert_true(allowed("127.0.0.0/8, ::1", "127.0.0.1"));
	assert_true(allowed("127.0.0.0/8, ::1", "127.255.0.9"));
	assert_true(allowed("127.0.0.0/8, ::1", "::1"));
	assert_false(allowed("127.0.0.0/8, ::1", "10.0.0.1"));
	assert_false(allowed("127.0.0.0/8, ::1", "::2"));
	assert_true(allowed("10.1.2.3", "10.1.2.3"));
	assert_false(allowed("10.1.2.3", "10.1.2.4"));
	assert_true(allowed("192.0.2.0/25", "192.0.2.127"));
	assert_false(allowed("192.0.2.0/25", "192.0.2.128"));
	assert_true(allowed("0.0.0.0/0", "203.0.113.9"));
	assert_true(allowed("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(allowed("2001:db8::/33", "2001:db8:8000::1"));
	/* an IPv4 client on an IPv6 socket is matched as IPv4 */
	assert_true(allowed("127.0.0.0/8", "::ffff:127.0.0.1"));
	assert_false(allowed("::1", "::ffff:127.0.0.1"));
}

static void
test_allow_list_rejects_what_is_not_a_range(void **state)
{
	struct conf_cidr ranges[CONF_CIDR_LIST_MAX];
	int count;

	(void)state;
	assert_true(conf_parse_cidr_list("", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_int_equal(count, 0);
	assert_false(conf_parse_cidr_list("localhost", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_false(conf_parse_cidr_list("10.0.0.0/33", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_false(conf_parse_cidr_list("10.0.0.0/", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_false(conf_parse_cidr_list("10.0.0.0/-1", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_false(conf_parse_cidr_list("10.0.0.0/8x", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_false(conf_parse_cidr_list("::1/129", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_false(conf_parse_cidr_list("10.0.0", ranges, CONF_CIDR_LIST_MAX, &count));
	assert_false(conf_parse_cidr_list("1.2.3.4, 1.2.3.4, 1.2.3.4", ranges, 2, &count));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_allow_list_matches_addresses_and_ranges),
	    cmocka_unit_test(test_allow_list_rejects_what_is_not_a_range),
	    cmocka_unit_test(test_defaults_match_the_documented_values),
	    cmocka_unit_test(test_defaults_derive_the_listen_host_and_port),
	    cmocka_unit_test(test_defaults_agree_with_the_key_table),
	    cmocka_unit_test(test_key_table_lists_every_key_once),
	    cmocka_unit_test(test_defaults_are_valid),
	    cmocka_unit_test(test_example_file_reads_back_as_the_defaults),
	    cmocka_unit_test(test_parse_bytes_with_units),
	    cmocka_unit_test(test_parse_bytes_plain_number),
	    cmocka_unit_test(test_parse_bytes_b_is_optional),
	    cmocka_unit_test(test_parse_bytes_refuses_negative_and_empty),
	    cmocka_unit_test(test_parse_bytes_refuses_garbage),
	    cmocka_unit_test(test_parse_bytes_refuses_overflow),
	    cmocka_unit_test(test_format_bytes_uses_the_largest_exact_unit),
	    cmocka_unit_test(test_format_bytes_round_trips),
	    cmocka_unit_test(test_parse_listen_any_address),
	    cmocka_unit_test(test_parse_listen_ipv4),
	    cmocka_unit_test(test_parse_listen_ipv6_in_brackets),
	    cmocka_unit_test(test_parse_listen_refuses_a_bare_port),
	    cmocka_unit_test(test_parse_listen_refuses_a_missing_or_bad_port),
	    cmocka_unit_test(test_parse_listen_refuses_bad_brackets),
	    cmocka_unit_test(test_parse_listen_refuses_a_host_too_long),
	    cmocka_unit_test(test_enum_index_finds_words_case_insensitively),
	    cmocka_unit_test(test_enum_index_of_an_unknown_word_is_minus_one),
	    cmocka_unit_test(test_reload_keeps_the_running_listen_address),
	    cmocka_unit_test(test_reload_applies_reloadable_keys),
	    cmocka_unit_test(test_reload_counts_every_unreloadable_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
