/*
 * test_policy_conf.c: where the configuration meets the core: the policies verdict_policy() and
 * node_configure() derive from the shipped defaults and from changed keys. The core's own tests
 * (test_verdict.c, test_node.c) build their inputs by hand and link without the config reader; this
 * file links it, so the defaults those tests assume are the ones pgcheckd ships.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "node.h"
#include "verdict.h"

#define MB (1024 * 1024)

/* the policy from the configuration */

static void
test_policy_from_default_configuration(void **state)
{
	struct conf c;
	struct policy p;

	(void)state;
	conf_defaults(&c);
	memset(&p, 0x5a, sizeof(p));
	verdict_policy(&c, &p);
	assert_int_equal(p.stale_after_ms, 1500);
	assert_int_equal(p.max_lag_bytes, 16 * MB);
	assert_true(p.max_lag_s == 10.0);
	assert_int_equal(p.over_lag, OVER_LAG_DOWN);
	assert_int_equal(p.receiver_silence_max_ms, 60000);
	assert_int_equal(p.primary_read_pct, 100);
	assert_int_equal(p.step_pct, 10);
	assert_int_equal(p.floor_pct, 10);
	assert_string_equal(p.location, "");
}

static void
test_policy_follows_the_configuration(void **state)
{
	struct conf c;
	struct policy p;

	(void)state;
	conf_defaults(&c);
	c.pg_stale_after_ms = 3000;
	c.replica_max_lag_bytes = 64 * MB;
	c.replica_max_lag_s = 2.5;
	c.replica_over_lag = OVER_LAG_DRAIN;
	c.replica_receiver_silence_max_ms = 0;
	c.weight_primary_read_pct = 25;
	c.weight_step_pct = 5;
	c.weight_floor_pct = 20;
	strcpy(c.agent_location, "dc=fra");
	verdict_policy(&c, &p);
	assert_int_equal(p.stale_after_ms, 3000);
	assert_int_equal(p.max_lag_bytes, 64 * MB);
	assert_true(p.max_lag_s == 2.5);
	assert_int_equal(p.over_lag, OVER_LAG_DRAIN);
	assert_int_equal(p.receiver_silence_max_ms, 0);
	assert_int_equal(p.primary_read_pct, 25);
	assert_int_equal(p.step_pct, 5);
	assert_int_equal(p.floor_pct, 20);
	assert_string_equal(p.location, "dc=fra");
}

/* the node's weight and recovery policy from the shipped defaults: what test_node.c's test_conf() sets */
static void
test_node_policy_from_default_configuration(void **state)
{
	struct conf c;
	struct node n;

	(void)state;
	conf_defaults(&c);
	node_init(&n, &c);
	assert_int_equal(n.wp.floor_pct, 10);
	assert_int_equal(n.wp.step_pct, 10);
	assert_int_equal(n.wp.smoothing_ms, 2000);
	assert_int_equal(n.wp.lag_soft_bytes, 1 * MB);
	assert_int_equal(n.wp.max_lag_bytes, 16 * MB);
	assert_true(n.wp.lag_soft_s == 1.0);
	assert_true(n.wp.max_lag_s == 10.0);
	assert_true(n.wp.load_low_per_cpu == 0.5);
	assert_true(n.wp.load_high_per_cpu == 2.0);
	assert_int_equal(n.recover_pct, 50);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_policy_from_default_configuration),
	    cmocka_unit_test(test_policy_follows_the_configuration),
	    cmocka_unit_test(test_node_policy_from_default_configuration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
