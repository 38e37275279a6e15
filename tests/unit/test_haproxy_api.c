/*
 * test_haproxy_api.c: what pgcheckd reads from HAProxy's runtime API ("show servers state",
 * "show stat"), which slot a node tries first, and the scale-out decision, edge by edge.
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
    "2 be_replicas 2 pg2 127.0.0.1 0 4 100 100 1 8 2 0 6 22 0 0 - 25432 - 0 25480 - 127.0.0.1 25480\n"
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
