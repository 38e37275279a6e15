/*
 * test_admin.c: the admin protocol's words (agent/serve/admin.c), as `pgcheckd ctl` and `check` send
 * them: every command, check with a request, what is refused, and the override each sets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "admin.h"

static void
test_every_command_word_is_read(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(admin_parse("status", &r), ADMIN_STATUS);
	assert_int_equal(admin_parse("drain", &r), ADMIN_DRAIN);
	assert_int_equal(admin_parse("maint", &r), ADMIN_MAINT);
	assert_int_equal(admin_parse("ready", &r), ADMIN_READY);
	assert_int_equal(admin_parse("release", &r), ADMIN_RELEASE);
}

static void
test_check_takes_a_request_with_its_parameters(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(admin_parse("check primary", &r), ADMIN_CHECK);
	assert_int_equal(r.kind, REQUEST_PRIMARY);
	assert_int_equal(admin_parse("check replica lag=16MB lag_s=5", &r), ADMIN_CHECK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_true(r.has_max_lag_bytes && r.max_lag_bytes == 16LL * 1024 * 1024);
	assert_true(r.has_max_lag_s && r.max_lag_s == 5.0);
	/* a check needs a request it understands */
	assert_int_equal(admin_parse("check", &r), ADMIN_BAD_CHECK);
	assert_int_equal(admin_parse("check nosuch", &r), ADMIN_BAD_CHECK);
	assert_int_equal(admin_parse("check replica lag=lots", &r), ADMIN_BAD_CHECK);
}

static void
test_anything_else_is_unknown(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(admin_parse("", &r), ADMIN_UNKNOWN);
	assert_int_equal(admin_parse("Drain", &r), ADMIN_UNKNOWN); /* exact words only */
	assert_int_equal(admin_parse("drain now", &r), ADMIN_UNKNOWN);
	assert_int_equal(admin_parse("checkprimary", &r), ADMIN_UNKNOWN);
	assert_int_equal(admin_parse("status ", &r), ADMIN_UNKNOWN);
}

static void
test_ctl_sends_only_its_own_words(void **state)
{
	(void)state;
	assert_true(admin_is_ctl_word("status"));
	assert_true(admin_is_ctl_word("release"));
	assert_false(admin_is_ctl_word("check"));
	assert_false(admin_is_ctl_word("check primary"));
	assert_false(admin_is_ctl_word("reboot"));
}

static void
test_overrides_follow_the_command(void **state)
{
	(void)state;
	assert_int_equal(admin_override(ADMIN_DRAIN), OVERRIDE_DRAIN);
	assert_int_equal(admin_override(ADMIN_MAINT), OVERRIDE_MAINT);
	assert_int_equal(admin_override(ADMIN_READY), OVERRIDE_NONE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_command_word_is_read),
	    cmocka_unit_test(test_check_takes_a_request_with_its_parameters),
	    cmocka_unit_test(test_anything_else_is_unknown),
	    cmocka_unit_test(test_ctl_sends_only_its_own_words),
	    cmocka_unit_test(test_overrides_follow_the_command),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
