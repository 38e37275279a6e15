/*
 * test_haproxy_api.c: what pgcheckd reads from HAProxy's runtime API ("show servers state",
 * "show stat"), which slot a node tries first, the scale-out decision and which weights are pushed,
 * edge by edge.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pusher.h"
#include "registrar.h"
#include "runtimeapi.h"
#include "scaleout.h"

/* as HAProxy 2.6.12 printed it for a server-template backend after one claim */
static const char servers_state[] =
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
    "srv_check_addr srv_agent_addr srv_agent_port\n"
    "2 be_replicas 1 pg1 127.0.0.1 0 5 100 100 1 1 0 0 14 22 0 0 - 1 - 0 1 - - 1\n"
    "2 be_replicas 2 pg2 127.0.0.1 0 4 40 100 1 8 2 0 6 22 0 0 - 25432 - 0 25480 - 127.0.0.1 25480\n"
    "3 be_primary 1 pg1 127.0.0.1 0 5 100 100 1 1 0 0 14 22 0 0 - 1 - 0 1 - - 1\n"
    "\n";

static void
test_servers_state_is_read_by_column_name(void **state)
{
	struct runtimeapi_server s[8];

	(void)state;
	assert_int_equal(runtimeapi_parse_state(servers_state, "be_replicas", s, 8), 2);
	assert_string_equal(s[0].name, "pg1");
	assert_int_equal(s[0].port, 1);
	assert_int_equal(s[0].admin_state, 5);
	assert_string_equal(s[1].name, "pg2");
	assert_string_equal(s[1].addr, "127.0.0.1");
	assert_int_equal(s[1].port, 25432);
	assert_int_equal(s[1].admin_state, 4);
	assert_int_equal(s[1].check_port, 25480);
	assert_string_equal(s[1].agent_addr, "127.0.0.1");
	assert_int_equal(s[1].agent_port, 25480);
	assert_int_equal(s[1].uweight, 40);
	assert_int_equal(s[1].iweight, 100);
	assert_int_equal(runtimeapi_parse_state(servers_state, "be_primary", s, 8), 1);
	assert_int_equal(runtimeapi_parse_state(servers_state, "be_nothing", s, 8), 0);
	assert_int_equal(runtimeapi_parse_state(servers_state, "be_replicas", s, 1), 1); /* bounded */
}

static void
test_servers_state_without_header_is_malformed(void **state)
{
	struct runtimeapi_server s[2];

	(void)state;
	assert_int_equal(runtimeapi_parse_state("Unknown command.\n", "be", s, 2), -1);
	assert_int_equal(runtimeapi_parse_state("", "be", s, 2), -1);
	assert_int_equal(runtimeapi_parse_state("1\n# be_id be_name\n2 be 1\n", "be", s, 2), -1);
}

static void
test_servers_state_with_a_needed_column_past_the_kept_fields_is_malformed(void **state)
{
	/* found by tests/fuzz/fuzz_runtimeapi.c: srv_id as the 37th column was read past the 32 fields kept */
	char text[1024];
	struct runtimeapi_server s[2];
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(text + n, sizeof(text) - n,
	                      "1\n# c0 be_name c2 srv_name srv_addr srv_op_state "
	                      "srv_admin_state srv_port srv_check_port srv_agent_addr srv_agent_port");
	for (int i = 11; i < 36; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, " c%d", i);
	snprintf(text + n, sizeof(text) - n, " srv_id\n3 be_read x x x x x x x x x\n");
	assert_int_equal(runtimeapi_parse_state(text, "be_read", s, 2), -1);
}

static void
test_servers_state_numbers_out_of_range_are_clamped(void **state)
{
	static const char text[] = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state "
	                           "srv_port srv_check_port srv_agent_addr srv_agent_port\n"
	                           "3 be_read 99999999999999999999 n1 127.0.0.1 2 0 -99999999999 x 127.0.0.1 15481\n";
	struct runtimeapi_server s[1];

	(void)state;
	assert_int_equal(runtimeapi_parse_state(text, "be_read", s, 1), 1);
	assert_int_equal(s[0].id, INT_MAX);
	assert_int_equal(s[0].port, INT_MIN);
	assert_int_equal(s[0].check_port, 0);
	assert_int_equal(s[0].agent_port, 15481);
}

static void
test_error_answers_are_recognised(void **state)
{
	(void)state;
	assert_true(
	    runtimeapi_answer_ok("\n\nno need to change the addr, port changed from '1' to '5432' by 'stats socket "
	                         "command'\n\n"));
	assert_true(runtimeapi_answer_ok("New server registered.\n"));
	assert_false(runtimeapi_answer_ok("\n\nagent checks are not enabled on this server\n"));
	assert_false(runtimeapi_answer_ok("No such server.\n"));
	assert_false(runtimeapi_answer_ok("Permission denied\n"));
	assert_string_equal(runtimeapi_error_line("ok\n\nNo such backend.\n"), "No such backend.\n");
}

static void
test_slot_pick_is_stable_and_in_range(void **state)
{
	int a = registrar_pick_slot("10.0.0.1:5432", 0, 10), b = registrar_pick_slot("10.0.0.2:5432", 0, 10);

	(void)state;
	assert_in_range(a, 0, 9);
	assert_int_equal(a, registrar_pick_slot("10.0.0.1:5432", 0, 10));
	assert_in_range(b, 0, 9);
	assert_int_not_equal(registrar_pick_slot("10.0.0.1:5432", 1, 10), a); /* a retry tries elsewhere */
	assert_int_equal(registrar_pick_slot("x", 0, 1), 0);
	assert_int_equal(registrar_pick_slot("x", 0, 0), -1);
}

static const char show_stat[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n"
    "fe_read,FRONTEND,,,40,40,,,,,,,,,,,,OPEN,\n"
    "be_replicas,node1,0,0,0,0,,,,,,,,,,,,DOWN,100\n"
    "be_replicas,node2,2,2,25,25,,,,,,,,,,,,UP,100\n"
    "be_replicas,node3,0,0,13,13,,,,,,,,,,,,UP,50\n"
    "be_replicas,BACKEND,2,2,38,38,,,,,,,,,,,,UP,150\n";

static void
test_show_stat_gives_up_servers_and_their_sessions(void **state)
{
	int up;
	double sessions;

	(void)state;
	assert_true(scaleout_parse_stat(show_stat, "be_replicas", &up, &sessions));
	assert_int_equal(up, 2);
	assert_true(sessions == 40.0); /* 25 + 2 queued + 13 */
	assert_false(scaleout_parse_stat(show_stat, "be_other", &up, &sessions));
	assert_false(scaleout_parse_stat("garbage", "be_replicas", &up, &sessions));
}

static struct scaleout_policy
policy(void)
{
	struct scaleout_policy p = {.high_sessions = 20,
	                            .low_sessions = 2,
	                            .cooldown_ms = 60000,
	                            .max_pool = 4,
	                            .min_pool = 1,
	                            .can_shrink = true};
	return p;
}

static void
test_scale_up_needs_a_full_window_over_the_threshold(void **state)
{
	struct scaleout_policy p = policy();
	char why[128];

	(void)state;
	assert_int_equal(scaleout_decide(&p, false, 50, 2, 100000, 0, false, why, sizeof(why)), SCALEOUT_NONE);
	assert_int_equal(scaleout_decide(&p, true, 19.9, 2, 100000, 0, false, why, sizeof(why)), SCALEOUT_NONE);
	assert_int_equal(scaleout_decide(&p, true, 20, 2, 100000, 0, false, why, sizeof(why)), SCALEOUT_UP);
}

static void
test_scale_up_waits_for_the_cooldown_and_a_running_command(void **state)
{
	struct scaleout_policy p = policy();
	char why[128];

	(void)state;
	assert_int_equal(scaleout_decide(&p, true, 30, 2, 100000, 50000, false, why, sizeof(why)), SCALEOUT_NONE);
	assert_string_equal(why, "load 30.0 sessions per server; cooling down");
	assert_int_equal(scaleout_decide(&p, true, 30, 2, 110000, 50000, false, why, sizeof(why)), SCALEOUT_UP);
	assert_int_equal(scaleout_decide(&p, true, 30, 2, 200000, 50000, true, why, sizeof(why)), SCALEOUT_NONE);
	assert_string_equal(why, "a command is still running");
}

static void
test_pool_never_grows_past_its_maximum(void **state)
{
	struct scaleout_policy p = policy();
	char why[128];

	(void)state;
	assert_int_equal(scaleout_decide(&p, true, 100, 4, 100000, 0, false, why, sizeof(why)), SCALEOUT_NONE);
	assert_string_equal(why, "load 100.0 sessions per server, but the pool is at its maximum 4");
	assert_int_equal(scaleout_decide(&p, true, 100, 5, 100000, 0, false, why, sizeof(why)), SCALEOUT_NONE);
}

static void
test_pool_shrinks_only_with_a_command_and_above_its_minimum(void **state)
{
	struct scaleout_policy p = policy();
	char why[128];

	(void)state;
	assert_int_equal(scaleout_decide(&p, true, 1, 3, 100000, 0, false, why, sizeof(why)), SCALEOUT_DOWN);
	assert_int_equal(scaleout_decide(&p, true, 1, 1, 100000, 0, false, why, sizeof(why)), SCALEOUT_NONE);
	p.can_shrink = false;
	assert_int_equal(scaleout_decide(&p, true, 1, 3, 100000, 0, false, why, sizeof(why)), SCALEOUT_NONE);
	p.can_shrink = true;
	p.low_sessions = 0; /* 0: never shrink */
	assert_int_equal(scaleout_decide(&p, true, 0, 3, 100000, 0, false, why, sizeof(why)), SCALEOUT_NONE);
}

static void
test_show_stat_finds_its_columns_anywhere_in_a_long_header(void **state)
{
	/* the name columns past the 40 fields the parser used to keep: read past its array (UBSan) */
	char csv[4096];
	int up = -1;
	double sessions = -1;
	size_t n = (size_t)snprintf(csv, sizeof(csv), "# scur,qcur,status");

	(void)state;
	for (int i = 3; i < 45; i++)
		n += (size_t)snprintf(csv + n, sizeof(csv) - n, ",c%d", i);
	n += (size_t)snprintf(csv + n, sizeof(csv) - n, ",pxname,svname\n");
	for (int row = 0; row < 2; row++) {
		n +=
		    (size_t)snprintf(csv + n, sizeof(csv) - n, "%d,1,%s", row == 0 ? 4 : 100, row == 0 ? "UP" : "DOWN");
		for (int i = 3; i < 45; i++)
			n += (size_t)snprintf(csv + n, sizeof(csv) - n, ",x");
		n += (size_t)snprintf(csv + n, sizeof(csv) - n, ",be_read,pg%d\n", row + 1);
	}
	assert_true(scaleout_parse_stat(csv, "be_read", &up, &sessions));
	assert_int_equal(up, 1);
	assert_true(sessions > 4.99 && sessions < 5.01);
	/* a row too short for the name columns is skipped, never read past its end */
	assert_false(scaleout_parse_stat("# scur,qcur,status,c3,pxname,svname\n1,1,UP\n", "be_read", &up, &sessions));
}

static void
test_show_stat_numbers_are_finite_and_clamped(void **state)
{
	const char *csv = "# pxname,svname,qcur,scur,status\n"
	                  "be,a,nan,inf,UP\n"
	                  "be,b,-5,1e300,UP\n"
	                  "be,c,0x10,3,UP\n"
	                  "be,BACKEND,1,1,UP\n";
	int up = 0;
	double sessions = 0;

	(void)state;
	assert_true(scaleout_parse_stat(csv, "be", &up, &sessions));
	assert_int_equal(up, 3);
	/* nan, inf and negative count as 0, a huge count is clamped, hex is not a number here */
	assert_true(sessions >= 3 && sessions <= 3 + SCALEOUT_SESSIONS_MAX);
}

static void
test_registration_settings_that_move_the_node_are_a_change(void **state)
{
	struct conf a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	snprintf(a.haproxy_runtime_api, sizeof(a.haproxy_runtime_api), "/run/haproxy/admin.sock");
	snprintf(a.haproxy_template_backends, sizeof(a.haproxy_template_backends), "be_replicas:pg");
	a.haproxy_advertise_pg_port = 5432;
	a.haproxy_reconcile_ms = 2000;
	b = a;
	assert_false(registrar_settings_changed(&a, &b));
	b.haproxy_reconcile_ms = 500; /* how often, not what: no withdrawal */
	b.haproxy_timeout_ms = 3000;
	assert_false(registrar_settings_changed(&a, &b));
	b.haproxy_advertise_agent_port = 6000;
	assert_true(registrar_settings_changed(&a, &b));
	b = a;
	snprintf(b.haproxy_template_backends, sizeof(b.haproxy_template_backends), "be_primary:pg");
	assert_true(registrar_settings_changed(&a, &b));
	b = a;
	b.haproxy_runtime_api[0] = '\0'; /* registration turned off: withdraw */
	assert_true(registrar_settings_changed(&a, &b));
}

static void
test_push_targets_name_a_backend_a_server_and_a_request(void **state)
{
	struct pusher_target t[PUSHER_TARGETS_MAX];
	int n;

	(void)state;
	assert_true(pusher_parse_targets("be_primary/node1:primary, be_replicas/*:replica", t, PUSHER_TARGETS_MAX, &n));
	assert_int_equal(n, 2);
	assert_string_equal(t[0].backend, "be_primary");
	assert_string_equal(t[0].server, "node1");
	assert_int_equal(t[0].kind, REQUEST_PRIMARY);
	assert_string_equal(t[1].server, "*");
	assert_int_equal(t[1].kind, REQUEST_REPLICA);
	assert_true(pusher_parse_targets("", t, PUSHER_TARGETS_MAX, &n));
	assert_int_equal(n, 0);
	assert_false(pusher_parse_targets("be_primary:primary", t, PUSHER_TARGETS_MAX, &n)); /* no server */
	assert_false(pusher_parse_targets("/node1:primary", t, PUSHER_TARGETS_MAX, &n));     /* no backend */
	assert_false(pusher_parse_targets("be/node1/x:primary", t, PUSHER_TARGETS_MAX, &n)); /* two slashes */
	assert_false(pusher_parse_targets("be/node1:writer", t, PUSHER_TARGETS_MAX, &n));    /* no such request */
	assert_false(pusher_parse_targets("be/node1", t, PUSHER_TARGETS_MAX, &n));           /* no request */
}

static void
test_servers_state_without_weight_columns_has_unknown_weights(void **state)
{
	struct runtimeapi_server s[2];
	static const char text[] = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state "
	                           "srv_port srv_check_port srv_agent_addr srv_agent_port\n"
	                           "2 be 1 pg1 127.0.0.1 2 0 5432 5480 127.0.0.1 5480\n";

	(void)state;
	assert_int_equal(runtimeapi_parse_state(text, "be", s, 2), 1);
	assert_int_equal(s[0].uweight, -1);
	assert_int_equal(s[0].iweight, -1);
}

#define NONE PUSHER_WEIGHT_NONE

/* one request (kind 0) through pusher_weight_plan: what is pushed, and what HAProxy is then held to hold */
static int
weight_step_of(int *held, int answered, int step_pct)
{
	int push;

	pusher_weight_plan(held, &answered, 1, step_pct, &push);
	return push;
}

static void
test_weight_push_is_a_drop_to_zero_or_of_a_step(void **state)
{
	int held = 100;

	(void)state;
	assert_int_equal(weight_step_of(&held, 100, 10), NONE); /* steady */
	assert_int_equal(weight_step_of(&held, 0, 10), 0);      /* drained: pushed at once */
	assert_int_equal(held, 0);
	assert_int_equal(weight_step_of(&held, 0, 10), NONE); /* told already */
	held = 100;
	assert_int_equal(weight_step_of(&held, 95, 10), NONE); /* less than a step: the agent check's to tell */
	assert_int_equal(held, 100);
	assert_int_equal(weight_step_of(&held, 90, 10), 90); /* small drops that add up to a step */
	assert_int_equal(held, 90);
	assert_int_equal(weight_step_of(&held, 50, 10), 50); /* steep (load) */
	assert_int_equal(weight_step_of(&held, 45, 10), NONE);
	assert_int_equal(weight_step_of(&held, 5, 10), 5); /* not 0, but 45 points below what was told */
	assert_int_equal(weight_step_of(&held, 1, 10), NONE);
	assert_int_equal(weight_step_of(&held, 0, 10), 0); /* 0 always goes, however small the drop */
	held = 100;
	assert_int_equal(weight_step_of(&held, 99, 1), 99); /* step_pct 1: every point */
}

static void
test_weight_push_never_raises(void **state)
{
	int held = 100;

	(void)state;
	assert_int_equal(weight_step_of(&held, 0, 10), 0);
	assert_int_equal(weight_step_of(&held, 100, 10), NONE); /* ready: the agent check raises it */
	assert_int_equal(held, 100);
	assert_int_equal(weight_step_of(&held, 60, 10), 60); /* a drop from there again */
	assert_int_equal(weight_step_of(&held, 80, 10), NONE);
	assert_int_equal(held, 80);
	/* down: the health push takes it out, no weight; what HAProxy holds afterwards is not known */
	assert_int_equal(weight_step_of(&held, NONE, 10), NONE);
	assert_int_equal(held, 100);
	assert_int_equal(weight_step_of(&held, 0, 10), 0); /* back up drained: its weight pushed */
	held = 100;
	assert_int_equal(weight_step_of(&held, NONE, 10), NONE);
	assert_int_equal(weight_step_of(&held, 100, 10), NONE); /* back up at full weight: nothing */
}

static void
test_weight_plan_treats_each_request_alone(void **state)
{
	int held[3] = {100, 100, 100}, answered[3] = {100, 0, NONE}, push[3];

	(void)state;
	pusher_weight_plan(held, answered, 3, 10, push);
	assert_int_equal(push[0], NONE);
	assert_int_equal(push[1], 0);
	assert_int_equal(push[2], NONE);
}

static void
test_weight_pending_keeps_the_latest_and_drops_one_overtaken_by_a_rise(void **state)
{
	(void)state;
	assert_int_equal(pusher_weight_pending(NONE, 50, 50), 50);
	assert_int_equal(pusher_weight_pending(50, 0, 0), 0);      /* the latest wins */
	assert_int_equal(pusher_weight_pending(50, NONE, 45), 50); /* a small drop after: still due */
	assert_int_equal(pusher_weight_pending(50, NONE, 50), 50);
	assert_int_equal(pusher_weight_pending(0, NONE, 100), NONE); /* ready before it went: not pushed */
	assert_int_equal(pusher_weight_pending(0, NONE, NONE), 0);   /* down: lowering stays harmless */
	assert_int_equal(pusher_weight_pending(NONE, NONE, 100), NONE);
}

static void
test_weight_push_is_sent_only_where_it_lowers(void **state)
{
	(void)state;
	assert_true(pusher_weight_lowers(100, 100, 0));
	assert_true(pusher_weight_lowers(100, 100, 90));
	assert_false(pusher_weight_lowers(0, 100, 0));   /* drained already */
	assert_false(pusher_weight_lowers(0, 100, 50));  /* would raise: an earlier push is still in effect */
	assert_false(pusher_weight_lowers(50, 100, 50)); /* as low already */
	assert_true(pusher_weight_lowers(200, 200, 50)); /* relative to the configured weight: 100 */
	assert_false(pusher_weight_lowers(100, 200, 50));
	assert_true(pusher_weight_lowers(1, 1, 50)); /* weight 1 configured: 50% is 0 (as the agent's 50%) */
	assert_false(pusher_weight_lowers(1, 1, 100));
	assert_false(pusher_weight_lowers(-1, 100, 0)); /* unknown: nothing that might raise is sent */
	assert_false(pusher_weight_lowers(100, -1, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_servers_state_is_read_by_column_name),
	    cmocka_unit_test(test_servers_state_without_header_is_malformed),
	    cmocka_unit_test(test_servers_state_with_a_needed_column_past_the_kept_fields_is_malformed),
	    cmocka_unit_test(test_servers_state_numbers_out_of_range_are_clamped),
	    cmocka_unit_test(test_error_answers_are_recognised),
	    cmocka_unit_test(test_slot_pick_is_stable_and_in_range),
	    cmocka_unit_test(test_registration_settings_that_move_the_node_are_a_change),
	    cmocka_unit_test(test_show_stat_gives_up_servers_and_their_sessions),
	    cmocka_unit_test(test_show_stat_finds_its_columns_anywhere_in_a_long_header),
	    cmocka_unit_test(test_show_stat_numbers_are_finite_and_clamped),
	    cmocka_unit_test(test_scale_up_needs_a_full_window_over_the_threshold),
	    cmocka_unit_test(test_scale_up_waits_for_the_cooldown_and_a_running_command),
	    cmocka_unit_test(test_pool_never_grows_past_its_maximum),
	    cmocka_unit_test(test_pool_shrinks_only_with_a_command_and_above_its_minimum),
	    cmocka_unit_test(test_push_targets_name_a_backend_a_server_and_a_request),
	    cmocka_unit_test(test_servers_state_without_weight_columns_has_unknown_weights),
	    cmocka_unit_test(test_weight_push_is_a_drop_to_zero_or_of_a_step),
	    cmocka_unit_test(test_weight_push_never_raises),
	    cmocka_unit_test(test_weight_plan_treats_each_request_alone),
	    cmocka_unit_test(test_weight_pending_keeps_the_latest_and_drops_one_overtaken_by_a_rise),
	    cmocka_unit_test(test_weight_push_is_sent_only_where_it_lowers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
