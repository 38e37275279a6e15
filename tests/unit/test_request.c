/*
 * test_request.c: the request words and parameters shared by every protocol (agent line, HTTP
 * paths, role ports): kind names and aliases, and the per-request lag limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "request.h"

#define MB (1024LL * 1024LL)
#define GB (1024LL * MB)

static bool
kind_of(const char *word, enum request_kind *kind)
{
	*kind = REQUEST_KIND_COUNT;
	return request_kind_parse(word, strlen(word), kind);
}

static void
assert_kind(const char *word, enum request_kind want)
{
	enum request_kind got;

	if (!kind_of(word, &got)) {
		print_error("request_kind_parse(\"%s\") failed\n", word);
		fail();
	}
	assert_int_equal(got, want);
}

static void
assert_not_kind(const char *word)
{
	enum request_kind got;

	if (kind_of(word, &got)) {
		print_error("request_kind_parse(\"%s\") accepted it as %d\n", word, (int)got);
		fail();
	}
}

static struct request
blank_request(void)
{
	struct request r;

	memset(&r, 0, sizeof(r));
	r.kind = REQUEST_REPLICA;
	return r;
}

static bool
apply(struct request *r, const char *key, const char *value)
{
	return request_param_apply(r, key, strlen(key), value, strlen(value));
}

/* request_kind_name */

static void
test_kind_names_are_the_canonical_words(void **state)
{
	(void)state;
	assert_string_equal(request_kind_name(REQUEST_PRIMARY), "primary");
	assert_string_equal(request_kind_name(REQUEST_REPLICA), "replica");
	assert_string_equal(request_kind_name(REQUEST_READ_ONLY), "read-only");
	assert_string_equal(request_kind_name(REQUEST_HEALTH), "health");
}

static void
test_every_kind_round_trips_through_its_name(void **state)
{
	(void)state;
	for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
		const char *name = request_kind_name((enum request_kind)k);
		enum request_kind back;

		assert_non_null(name);
		assert_true(request_kind_parse(name, strlen(name), &back));
		assert_int_equal(back, k);
	}
}

static void
test_kind_names_agree_with_the_config_table(void **state)
{
	(void)state;
	for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
		assert_non_null(conf_request_names[k]);
		assert_string_equal(request_kind_name((enum request_kind)k), conf_request_names[k]);
	}
}

/* request_kind_parse */

static void
test_kind_parse_primary_and_aliases(void **state)
{
	(void)state;
	assert_kind("primary", REQUEST_PRIMARY);
	assert_kind("master", REQUEST_PRIMARY);
	assert_kind("leader", REQUEST_PRIMARY);
	assert_kind("read-write", REQUEST_PRIMARY);
	assert_kind("rw", REQUEST_PRIMARY);
}

static void
test_kind_parse_replica_and_aliases(void **state)
{
	(void)state;
	assert_kind("replica", REQUEST_REPLICA);
	assert_kind("standby", REQUEST_REPLICA);
	assert_kind("ro", REQUEST_REPLICA);
}

static void
test_kind_parse_read_only_and_health(void **state)
{
	(void)state;
	assert_kind("read-only", REQUEST_READ_ONLY);
	assert_kind("health", REQUEST_HEALTH);
	assert_kind("any", REQUEST_HEALTH);
}

static void
test_kind_parse_is_case_insensitive(void **state)
{
	(void)state;
	assert_kind("PRIMARY", REQUEST_PRIMARY);
	assert_kind("Master", REQUEST_PRIMARY);
	assert_kind("RW", REQUEST_PRIMARY);
	assert_kind("Replica", REQUEST_REPLICA);
	assert_kind("READ-ONLY", REQUEST_READ_ONLY);
	assert_kind("Any", REQUEST_HEALTH);
}

static void
test_kind_parse_refuses_unknown_words(void **state)
{
	(void)state;
	assert_not_kind("");
	assert_not_kind("prim");
	assert_not_kind("primaryx");
	assert_not_kind("r");
	assert_not_kind("read");
	assert_not_kind("readonly");
	assert_not_kind("read_only");
	assert_not_kind(" primary");
	assert_not_kind("primary ");
	assert_not_kind("ready");
	assert_not_kind("maint");
}

static void
test_kind_parse_reads_exactly_len_bytes(void **state)
{
	enum request_kind k = REQUEST_KIND_COUNT;

	(void)state;
	assert_true(request_kind_parse("primary lag=1MB", 7, &k));
	assert_int_equal(k, REQUEST_PRIMARY);
	assert_true(request_kind_parse("rw\n", 2, &k));
	assert_int_equal(k, REQUEST_PRIMARY);
	/* a prefix of a word is not the word */
	assert_false(request_kind_parse("replica", 4, &k));
	assert_false(request_kind_parse("replica", 0, &k));
	/* an embedded NUL does not end the word early */
	assert_false(request_kind_parse("rw\0x", 4, &k));
}

/* request_param_apply */

static void
test_param_lag_sets_the_byte_limit(void **state)
{
	struct request r = blank_request();

	(void)state;
	assert_true(apply(&r, "lag", "16MB"));
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_false(r.has_max_lag_s);
	assert_int_equal(r.kind, REQUEST_REPLICA);
}

static void
test_param_lag_in_plain_bytes_and_other_units(void **state)
{
	struct request r = blank_request();

	(void)state;
	assert_true(apply(&r, "lag", "1048576"));
	assert_int_equal(r.max_lag_bytes, 1 * MB);
	assert_true(apply(&r, "lag", "512kB"));
	assert_int_equal(r.max_lag_bytes, 512 * 1024);
	assert_true(apply(&r, "lag", "1GB"));
	assert_int_equal(r.max_lag_bytes, 1 * GB);
	assert_true(apply(&r, "lag", "0"));
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 0);
}

static void
test_param_lag_s_sets_the_seconds_limit(void **state)
{
	struct request r = blank_request();

	(void)state;
	assert_true(apply(&r, "lag_s", "5"));
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 5.0);
	assert_false(r.has_max_lag_bytes);
	assert_true(apply(&r, "lag_s", "2.5"));
	assert_true(r.max_lag_s == 2.5);
}

static void
test_param_both_limits_accumulate(void **state)
{
	struct request r = blank_request();

	(void)state;
	assert_true(apply(&r, "lag", "16MB"));
	assert_true(apply(&r, "lag_s", "5"));
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 5.0);
}

static void
assert_refused_unchanged(const char *key, const char *value)
{
	struct request r = blank_request();
	struct request before;

	r.has_max_lag_bytes = true;
	r.max_lag_bytes = 3 * MB;
	r.has_max_lag_s = false;
	r.max_lag_s = 0.0;
	before = r;
	if (apply(&r, key, value)) {
		print_error("request_param_apply(\"%s\", \"%s\") accepted\n", key, value);
		fail();
	}
	assert_int_equal(r.kind, before.kind);
	assert_int_equal(r.prefer_count, before.prefer_count);
	assert_int_equal(r.has_max_lag_bytes, before.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, before.max_lag_bytes);
	assert_int_equal(r.has_max_lag_s, before.has_max_lag_s);
	assert_true(r.max_lag_s == before.max_lag_s);
	assert_int_equal(r.has_min_lsn, before.has_min_lsn);
	assert_true(r.min_lsn == before.min_lsn);
}

static void
test_param_unknown_key_is_refused_and_changes_nothing(void **state)
{
	(void)state;
	assert_refused_unchanged("foo", "1");
	assert_refused_unchanged("", "1");
	assert_refused_unchanged("lagx", "1MB");
	assert_refused_unchanged("la", "1MB");
	assert_refused_unchanged("kind", "primary");
}

static void
test_param_bad_value_is_refused_and_changes_nothing(void **state)
{
	(void)state;
	assert_refused_unchanged("lag", "abc");
	assert_refused_unchanged("lag", "-1");
	assert_refused_unchanged("lag", "");
	assert_refused_unchanged("lag", "16MBx");
	assert_refused_unchanged("lag", "MB");
	assert_refused_unchanged("lag", "99999999999999999999");
	assert_refused_unchanged("lag_s", "abc");
	assert_refused_unchanged("lag_s", "-1");
	assert_refused_unchanged("lag_s", "");
	assert_refused_unchanged("lag_s", "5x");
	assert_refused_unchanged("lag_s", "nan");
	assert_refused_unchanged("lag_s", "inf");
	assert_refused_unchanged("lag_s", " 5");
	assert_refused_unchanged("lag", " 5");
}

static void
test_param_reads_exactly_len_bytes(void **state)
{
	struct request r = blank_request();

	(void)state;
	/* key and value are slices of a longer buffer, as in "lag=16MB&lag_s=5" */
	const char *query = "lag=16MB&lag_s=5";
	assert_true(request_param_apply(&r, query, 3, query + 4, 4));
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_true(request_param_apply(&r, query + 9, 5, query + 15, 1));
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 5.0);

	/* "lag_s" cut to 3 bytes is "lag" */
	r = blank_request();
	assert_true(request_param_apply(&r, "lag_s", 3, "1024", 4));
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 1024);
	assert_false(r.has_max_lag_s);

	/* the value stops at valuelen even without a NUL */
	r = blank_request();
	assert_true(request_param_apply(&r, "lag", 3, "2MB7", 3));
	assert_int_equal(r.max_lag_bytes, 2 * MB);
}

/* request_lsn_parse and min_lsn */

static bool
lsn_of(const char *text, uint64_t *lsn)
{
	*lsn = 0x5a5a5a5a5a5a5a5aULL;
	return request_lsn_parse(text, strlen(text), lsn);
}

static void
assert_lsn(const char *text, uint64_t want)
{
	uint64_t got;

	if (!lsn_of(text, &got)) {
		print_error("request_lsn_parse(\"%s\") refused it\n", text);
		fail();
	}
	assert_true(got == want);
}

static void
assert_not_lsn(const char *text)
{
	uint64_t got;

	if (lsn_of(text, &got)) {
		print_error("request_lsn_parse(\"%s\") accepted it as %llx\n", text, (unsigned long long)got);
		fail();
	}
}

static void
test_lsn_parse_reads_postgresql_positions(void **state)
{
	(void)state;
	assert_lsn("0/0", 0);
	assert_lsn("0/3000060", 0x3000060ULL);
	assert_lsn("16/B374D848", 0x16B374D848ULL);
	assert_lsn("16/b374d848", 0x16B374D848ULL);
	assert_lsn("FFFFFFFF/FFFFFFFF", UINT64_MAX);
	assert_lsn("00000001/00000000", 1ULL << 32);
}

static void
test_lsn_parse_refuses_malformed_and_out_of_range(void **state)
{
	(void)state;
	assert_not_lsn("");
	assert_not_lsn("/");
	assert_not_lsn("0/");
	assert_not_lsn("/0");
	assert_not_lsn("0");
	assert_not_lsn("3000060");
	assert_not_lsn("0/0/0");
	assert_not_lsn("100000000/0"); /* 9 hex digits: over 32 bits */
	assert_not_lsn("0/100000000");
	assert_not_lsn("000000000/0"); /* PostgreSQL takes at most 8 digits, even zeros */
	assert_not_lsn("0x1/0");
	assert_not_lsn("-1/0");
	assert_not_lsn("+1/0");
	assert_not_lsn(" 0/0");
	assert_not_lsn("0/0 ");
	assert_not_lsn("0 /0");
	assert_not_lsn("0/ 0");
	assert_not_lsn("G/0");
	assert_not_lsn("0/3000060x");
	assert_not_lsn("0\\3000060");
}

static void
test_lsn_parse_reads_exactly_len_bytes(void **state)
{
	uint64_t lsn = 0;

	(void)state;
	assert_true(request_lsn_parse("0/3000060&lag=1", 9, &lsn));
	assert_true(lsn == 0x3000060ULL);
	assert_true(request_lsn_parse("1/2F", 3, &lsn));
	assert_true(lsn == 0x100000002ULL);
	assert_false(request_lsn_parse("1/2", 2, &lsn));
	assert_false(request_lsn_parse("0/0", 0, &lsn));
}

static void
test_param_min_lsn_sets_the_position(void **state)
{
	struct request r = blank_request();

	(void)state;
	assert_true(apply(&r, "min_lsn", "0/3000060"));
	assert_true(r.has_min_lsn);
	assert_true(r.min_lsn == 0x3000060ULL);
	assert_false(r.has_max_lag_bytes);
	assert_false(r.has_max_lag_s);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	/* with the lag limits, in any order */
	assert_true(apply(&r, "lag", "16MB"));
	assert_true(apply(&r, "MIN_LSN", "1/0"));
	assert_true(r.min_lsn == 1ULL << 32);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
}

static void
test_param_prefer_collects_location_labels(void **state)
{
	struct request r = blank_request();

	(void)state;
	assert_true(apply(&r, "prefer", "dc=fra"));
	assert_true(apply(&r, "PREFER", "zone=b-1"));
	assert_int_equal(r.prefer_count, 2);
	assert_string_equal(r.prefer[0], "dc=fra");
	assert_string_equal(r.prefer[1], "zone=b-1");
	assert_true(apply(&r, "prefer", "rack=r.7:x_2"));
	assert_true(apply(&r, "prefer", "a=b"));
	assert_int_equal(r.prefer_count, REQUEST_PREFER_MAX);
	/* a fifth is refused: the request is bad, not silently cut */
	assert_false(apply(&r, "prefer", "c=d"));
	assert_int_equal(r.prefer_count, REQUEST_PREFER_MAX);
}

static void
test_param_bad_prefer_is_refused_and_changes_nothing(void **state)
{
	char longest[CONF_LABEL_MAX + 1];

	(void)state;
	assert_refused_unchanged("prefer", "");
	assert_refused_unchanged("prefer", "dc");
	assert_refused_unchanged("prefer", "=fra");
	assert_refused_unchanged("prefer", "dc=");
	assert_refused_unchanged("prefer", "dc=fra=x");
	assert_refused_unchanged("prefer", "dc=f ra");
	assert_refused_unchanged("prefer", "dc=fr/a");
	assert_refused_unchanged("prefer", "dc=fr%a");
	assert_refused_unchanged("prefe", "dc=fra");
	memset(longest, 'a', CONF_LABEL_MAX);
	longest[1] = '=';
	longest[CONF_LABEL_MAX] = '\0';
	assert_refused_unchanged("prefer", longest); /* CONF_LABEL_MAX bytes: one too many */
	longest[CONF_LABEL_MAX - 1] = '\0';
	{
		struct request r = blank_request();

		assert_true(apply(&r, "prefer", longest));
		assert_string_equal(r.prefer[0], longest);
	}
}

static void
test_param_bad_min_lsn_is_refused_and_changes_nothing(void **state)
{
	(void)state;
	assert_refused_unchanged("min_lsn", "");
	assert_refused_unchanged("min_lsn", "0");
	assert_refused_unchanged("min_lsn", "0/");
	assert_refused_unchanged("min_lsn", "100000000/0");
	assert_refused_unchanged("min_lsn", "0/100000000");
	assert_refused_unchanged("min_lsn", "-1/0");
	assert_refused_unchanged("min_lsn", "0x0/0");
	assert_refused_unchanged("min_lsn", " 0/0");
	assert_refused_unchanged("min_lsn", "16MB");
	assert_refused_unchanged("min_lsnx", "0/0");
	assert_refused_unchanged("min_ls", "0/0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kind_names_are_the_canonical_words),
	    cmocka_unit_test(test_every_kind_round_trips_through_its_name),
	    cmocka_unit_test(test_kind_names_agree_with_the_config_table),
	    cmocka_unit_test(test_kind_parse_primary_and_aliases),
	    cmocka_unit_test(test_kind_parse_replica_and_aliases),
	    cmocka_unit_test(test_kind_parse_read_only_and_health),
	    cmocka_unit_test(test_kind_parse_is_case_insensitive),
	    cmocka_unit_test(test_kind_parse_refuses_unknown_words),
	    cmocka_unit_test(test_kind_parse_reads_exactly_len_bytes),
	    cmocka_unit_test(test_param_lag_sets_the_byte_limit),
	    cmocka_unit_test(test_param_lag_in_plain_bytes_and_other_units),
	    cmocka_unit_test(test_param_lag_s_sets_the_seconds_limit),
	    cmocka_unit_test(test_param_both_limits_accumulate),
	    cmocka_unit_test(test_param_unknown_key_is_refused_and_changes_nothing),
	    cmocka_unit_test(test_param_bad_value_is_refused_and_changes_nothing),
	    cmocka_unit_test(test_param_reads_exactly_len_bytes),
	    cmocka_unit_test(test_lsn_parse_reads_postgresql_positions),
	    cmocka_unit_test(test_lsn_parse_refuses_malformed_and_out_of_range),
	    cmocka_unit_test(test_lsn_parse_reads_exactly_len_bytes),
	    cmocka_unit_test(test_param_min_lsn_sets_the_position),
	    cmocka_unit_test(test_param_prefer_collects_location_labels),
	    cmocka_unit_test(test_param_bad_prefer_is_refused_and_changes_nothing),
	    cmocka_unit_test(test_param_bad_min_lsn_is_refused_and_changes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
