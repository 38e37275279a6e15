/*
 * test_drainwait.c: how "ctl drain --wait" reads HAProxy's "show stat": which rows are this node's,
 * and when they count as drained (no session, none queued, no new ones routed there).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "drainwait.h"

/* the columns it reads, in HAProxy's order, among others (it finds them by name) */
#define HEADER "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight,act,bck,addr,agent_status,\n"

static void
test_only_this_nodes_rows_count(void **state)
{
	struct drainwait_count n;
	static const char csv[] = HEADER "fe_read,FRONTEND,,,7,9,,,OPEN,,,,,,\n"
	                                 "be_replicas,node1,0,0,2,2,,5,UP,100,1,0,127.0.0.1:5432,L7OK,\n"
	                                 "be_replicas,node2,0,0,0,1,,5,UP,0,1,0,127.0.0.1:5433,L7OK,\n"
	                                 "be_replicas,BACKEND,0,0,2,2,,5,UP,100,1,0,,,\n"
	                                 "be_primary,node2,0,0,0,0,,0,DOWN,100,1,0,127.0.0.1:5433,L7OK,\n";

	(void)state;
	assert_true(drainwait_parse_stat(csv, "127.0.0.1:5433", &n));
	assert_int_equal(n.servers, 2);
	assert_int_equal(n.sessions, 0);
	assert_int_equal(n.routable, 0);
	assert_string_equal(n.busy, "");
	assert_true(drainwait_parse_stat(csv, "127.0.0.1:5432", &n));
	assert_int_equal(n.servers, 1);
	assert_int_equal(n.sessions, 2);
	assert_int_equal(n.routable, 1);
	assert_string_equal(n.busy, "be_replicas/node1: 2 sessions, UP weight 100");
	assert_true(drainwait_parse_stat(csv, "127.0.0.1:543", &n)); /* a prefix is another address */
	assert_int_equal(n.servers, 0);
}

static void
test_queued_sessions_and_routable_servers_are_not_drained(void **state)
{
	struct drainwait_count n;
	static const char queued[] = HEADER "be,s1,1,1,0,0,,0,DOWN,0,1,0,10.0.0.5:5432,,\n";
	static const char going_down[] = HEADER "be,s1,0,0,0,0,,0,UP 1/2,100,1,0,10.0.0.5:5432,,\n";
	static const char no_check[] = HEADER "be,s1,0,0,0,0,,0,no check,1,1,0,10.0.0.5:5432,,\n";
	static const char maint[] = HEADER "be,s1,0,0,0,0,,0,MAINT,100,1,0,10.0.0.5:5432,,\n";

	(void)state;
	assert_true(drainwait_parse_stat(queued, "10.0.0.5:5432", &n));
	assert_int_equal(n.sessions, 1);
	assert_string_equal(n.busy, "be/s1: 1 session, DOWN weight 0");
	assert_true(drainwait_parse_stat(going_down, "10.0.0.5:5432", &n));
	assert_int_equal(n.routable, 1);
	assert_true(drainwait_parse_stat(no_check, "10.0.0.5:5432", &n));
	assert_int_equal(n.routable, 1);
	assert_true(drainwait_parse_stat(maint, "10.0.0.5:5432", &n));
	assert_int_equal(n.routable, 0);
	assert_int_equal(n.servers, 1);
}

static void
test_ipv6_addresses_match_in_brackets(void **state)
{
	struct drainwait_count n;
	static const char csv[] = HEADER "be,s1,0,0,3,3,,0,UP,0,1,0,[2001:db8::7]:5432,,\n";

	(void)state;
	assert_true(drainwait_parse_stat(csv, "[2001:db8::7]:5432", &n));
	assert_int_equal(n.servers, 1);
	assert_int_equal(n.sessions, 3);
	assert_true(drainwait_parse_stat(csv, "2001:db8::7:5432", &n)); /* the unbracketed form too */
	assert_int_equal(n.servers, 1);
	assert_true(drainwait_parse_stat(csv, "[2001:db8::]:5432", &n));
	assert_int_equal(n.servers, 0);
}

static void
test_unreadable_answers_are_refused_and_counts_are_clamped(void **state)
{
	struct drainwait_count n;
	static const char huge[] = HEADER "be,s1,99999999999999999999,0,2147483647,0,,0,DOWN,0,1,0,10.0.0.5:5432,,\n";
	static const char garbage[] = HEADER "be,s1,-4,0,0x10,0,,0,DOWN,0,1,0,10.0.0.5:5432,,\n";

	(void)state;
	assert_false(drainwait_parse_stat("Unknown command\n", "10.0.0.5:5432", &n));
	assert_false(drainwait_parse_stat("# pxname,svname,scur,status\nbe,s1,0,UP\n", "10.0.0.5:5432", &n));
	assert_false(drainwait_parse_stat("", "10.0.0.5:5432", &n));
	assert_true(drainwait_parse_stat(huge, "10.0.0.5:5432", &n));
	assert_int_equal(n.sessions, 2147483647);
	assert_true(drainwait_parse_stat(garbage, "10.0.0.5:5432", &n));
	assert_int_equal(n.sessions, 0);
	assert_int_equal(n.servers, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_only_this_nodes_rows_count),
	    cmocka_unit_test(test_queued_sessions_and_routable_servers_are_not_drained),
	    cmocka_unit_test(test_ipv6_addresses_match_in_brackets),
	    cmocka_unit_test(test_unreadable_answers_are_refused_and_counts_are_clamped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
