/*
 * test_log.c: the start-up line's view of a connection string: every form libpq reads, with the
 * password never shown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

static void
expect_safe(const char *conninfo, const char *want)
{
	char buf[512];

	log_conninfo_safe(conninfo, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void
test_conninfo_password_is_never_shown(void **state)
{
	(void)state;
	expect_safe("host=/tmp password='Sup3r ;Secret' user=app", "user=app password=*** host=/tmp");
	expect_safe("postgresql://app:Sup3r%40Secret@db1:5433/app?sslmode=require",
	            "user=app password=*** dbname=app host=db1 port=5433 sslmode=require");
}

static void
test_conninfo_that_libpq_cannot_parse_is_not_shown(void **state)
{
	(void)state;
	expect_safe("postgresql://app:Sup3r%zzSecret@db1/app", "(a connection string libpq cannot parse)");
}

static void
test_conninfo_plain_word_is_a_database_name(void **state)
{
	(void)state;
	/* libpq (and the poller, with expand_dbname) read a word without '=' as the database name */
	expect_safe("postgres", "dbname=postgres");
	expect_safe("", "");
}

static void
test_conninfo_value_with_spaces_is_quoted(void **state)
{
	(void)state;
	expect_safe("host=/tmp application_name='a b\\'c'", "host=/tmp application_name='a b\\'c'");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conninfo_password_is_never_shown),
	    cmocka_unit_test(test_conninfo_that_libpq_cannot_parse_is_not_shown),
	    cmocka_unit_test(test_conninfo_plain_word_is_a_database_name),
	    cmocka_unit_test(test_conninfo_value_with_spaces_is_quoted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
