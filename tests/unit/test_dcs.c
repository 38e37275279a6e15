/*
 * test_dcs.c: the DCS (etcd) pieces that need no network: the reading of etcd's range answers
 * (dcs_answer_range: only what etcd would send is believed), the request body, the endpoint list and
 * Patroni's key path, the verdict's DCS rows ([dcs] mode = patroni) and the [dcs] config errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "dcs.h"
#include "dcs_answer.h"
#include "verdict.h"

#define KEY "/service/lab/leader"
/* base64 of KEY, of "pg1", of "pg2", of "/service/lab/members/pg1" */
#define KEY64   "L3NlcnZpY2UvbGFiL2xlYWRlcg=="
#define PG1_64  "cGcx"
#define PG2_64  "cGcy"
#define OTHER64 "L3NlcnZpY2UvbGFiL21lbWJlcnMvcGcx"
#define HEADER  "\"header\":{\"cluster_id\":\"14841639068965178418\",\"revision\":\"28\",\"raft_term\":\"2\"}"

static enum dcs_error
range(const char *body, char *value, bool *found)
{
	strcpy(value, "untouched");
	*found = true;
	return dcs_answer_range(body, strlen(body), KEY, value, DCS_NAME_MAX, found);
}

static void
test_range_answer_names_the_leader(void **state)
{
	char value[DCS_NAME_MAX];
	bool found;

	(void)state;
	/* as etcd 3.4's gateway sends it (numbers as strings) */
	assert_int_equal(range("{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"create_revision\":\"8\","
	                       "\"mod_revision\":\"8\",\"version\":\"1\",\"value\":\"" PG1_64
	                       "\",\"lease\":\"5557620281600238085\"}],\"count\":\"1\"}",
	                       value, &found),
	                 DCS_OK);
	assert_true(found);
	assert_string_equal(value, "pg1");
}

static void
test_range_answer_without_kvs_is_no_leader(void **state)
{
	char value[DCS_NAME_MAX];
	bool found;

	(void)state;
	assert_int_equal(range("{" HEADER "}", value, &found), DCS_OK);
	assert_false(found);
	assert_string_equal(value, "");
	assert_int_equal(range("{" HEADER ",\"kvs\":[]}", value, &found), DCS_OK);
	assert_false(found);
}

static void
test_range_answer_that_is_not_json_is_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "{",
	    "{" HEADER,
	    "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"" PG1_64 "\"}",
	    "<html>",
	    "[]",
	    "\"pg1\"",
	    "null",
	    "{" HEADER "} trailing",
	    "{" HEADER ",\"kvs\":[],\"kvs\":[]}", /* duplicate */
	};
	char value[DCS_NAME_MAX];
	bool found;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(range(bad[i], value, &found), DCS_MALFORMED);
		assert_string_equal(value, "untouched");
		assert_true(found);
	}
}

static void
test_range_answer_with_wrong_types_is_refused(void **state)
{
	static const char *const bad[] = {
	    "{\"kvs\":[]}",                                                          /* no header */
	    "{\"header\":1}",                                                        /* header not an object */
	    "{" HEADER ",\"kvs\":{}}",                                               /* kvs not an array */
	    "{" HEADER ",\"kvs\":[1]}",                                              /* an entry not an object */
	    "{" HEADER ",\"kvs\":[{\"key\":1,\"value\":\"" PG1_64 "\"}]}",           /* key not a string */
	    "{" HEADER ",\"kvs\":[{\"value\":\"" PG1_64 "\"}]}",                     /* no key */
	    "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":7}]}",            /* value not a string */
	    "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"cGc\"}]}",      /* base64 without its padding */
	    "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"c*cx\"}]}",     /* not base64 */
	    "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"cGcxCg==\"}]}", /* "pg1\n": a control character */
	    "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"cAB4\"}]}",     /* a NUL byte */
	    "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"" PG1_64 "\"},{\"key\":\"" KEY64
	    "\",\"value\":\"" PG2_64 "\"}]}", /* two entries for one key */
	};
	char value[DCS_NAME_MAX];
	bool found;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(range(bad[i], value, &found), DCS_WRONG_TYPE);
		assert_string_equal(value, "untouched");
	}
}

static void
test_range_answer_for_another_key_is_refused(void **state)
{
	char value[DCS_NAME_MAX];
	bool found;

	(void)state;
	/* the value names this node, but it is not the leader key's */
	assert_int_equal(
	    range("{" HEADER ",\"kvs\":[{\"key\":\"" OTHER64 "\",\"value\":\"" PG1_64 "\"}]}", value, &found),
	    DCS_WRONG_KEY);
	assert_string_equal(value, "untouched");
}

static void
test_range_answer_that_is_an_etcd_error_is_refused(void **state)
{
	char value[DCS_NAME_MAX];
	bool found;

	(void)state;
	assert_int_equal(
	    range("{\"error\":\"etcdserver: user name is empty\",\"code\":3,\"message\":\"x\"}", value, &found),
	    DCS_ETCD_ERROR);
}

static void
test_range_answer_value_longer_than_a_name_is_refused(void **state)
{
	char body[1024], b64[400], value[DCS_NAME_MAX];
	bool found;

	(void)state;
	/* 150 'a's: over DCS_NAME_MAX - 1 */
	memset(b64, 0, sizeof(b64));
	for (int i = 0; i < 200; i += 4)
		memcpy(b64 + i, "YWFh", 4);
	snprintf(body, sizeof(body), "{" HEADER ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"%s\"}]}", b64);
	assert_int_equal(range(body, value, &found), DCS_WRONG_TYPE);
}

static void
test_range_request_is_the_key_in_base64(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(dcs_answer_range_request(KEY, out, sizeof(out)), strlen("{\"key\":\"" KEY64 "\"}"));
	assert_string_equal(out, "{\"key\":\"" KEY64 "\"}");
	assert_int_equal(dcs_answer_range_request(KEY, out, 10), 0);
}

static void
test_endpoints_and_patroni_key(void **state)
{
	char urls[DCS_ENDPOINTS_MAX][DCS_URL_MAX], key[DCS_KEY_MAX];
	int n;

	(void)state;
	assert_true(dcs_parse_endpoints("http://127.0.0.1:2379, https://etcd2:2379/,http://[::1]:2379", urls,
	                                DCS_ENDPOINTS_MAX, &n));
	assert_int_equal(n, 3);
	assert_string_equal(urls[1], "https://etcd2:2379");
	assert_false(dcs_parse_endpoints("127.0.0.1:2379", urls, DCS_ENDPOINTS_MAX, &n));
	assert_false(dcs_parse_endpoints("", urls, DCS_ENDPOINTS_MAX, &n));
	assert_false(dcs_parse_endpoints("ftp://x", urls, DCS_ENDPOINTS_MAX, &n));
	assert_true(dcs_patroni_leader_key("/service/", "lab", key, sizeof(key)));
	assert_string_equal(key, "/service/lab/leader");
	assert_true(dcs_patroni_leader_key("patroni-lab", "lab", key, sizeof(key)));
	assert_string_equal(key, "/patroni-lab/lab/leader");
}

static struct node_view
writable_primary(void)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = true;
	v.sample.timeline = 1;
	v.sample_age_ms = 100;
	v.replica_weight_pct = 100;
	v.load_weight_pct = 100;
	v.dcs.configured = true;
	v.dcs.heard = true;
	v.dcs.age_ms = 200;
	v.dcs.have_leader = true;
	v.dcs.leader_is_me = true;
	strcpy(v.dcs.leader, "pg1");
	return v;
}

static struct policy
dcs_policy(void)
{
	struct policy p;

	memset(&p, 0, sizeof(p));
	p.stale_after_ms = 1500;
	p.primary_read_pct = 100;
	p.step_pct = 10;
	p.dcs_leader_required = true;
	p.dcs_fresh_ms = 3000;
	return p;
}

static struct verdict
ask(const struct node_view *v, const struct policy *p, enum request_kind kind)
{
	struct request r = {.kind = kind};
	struct verdict vd;

	verdict_for(v, &r, p, &vd);
	return vd;
}

static void
test_primary_named_by_fresh_leader_key_is_up(void **state)
{
	struct node_view v = writable_primary();
	struct policy p = dcs_policy();

	(void)state;
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
	v.dcs.age_ms = 3000; /* at the limit still */
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
}

static void
test_primary_not_named_by_leader_key_is_down(void **state)
{
	struct node_view v = writable_primary();
	struct policy p = dcs_policy();
	struct verdict vd;

	(void)state;
	v.dcs.leader_is_me = false;
	strcpy(v.dcs.leader, "pg2");
	vd = ask(&v, &p, REQUEST_PRIMARY);
	assert_false(vd.up);
	assert_int_equal(vd.why, REASON_DCS_NOT_LEADER);
	assert_string_equal(vd.reason, "dcs-not-leader");
	v.dcs.have_leader = false; /* no leader at all */
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_NOT_LEADER);
	/* reads and health are not the DCS's business */
	assert_true(ask(&v, &p, REQUEST_READ_ONLY).up);
	assert_true(ask(&v, &p, REQUEST_HEALTH).up);
}

static void
test_primary_with_old_dcs_answer_is_down_unreachable(void **state)
{
	struct node_view v = writable_primary();
	struct policy p = dcs_policy();

	(void)state;
	v.dcs.age_ms = 3001;
	v.dcs.last_error = DCS_CONNECT_FAILED;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNREACHABLE);
	v.dcs.last_error = DCS_OK; /* old, even without an error (a read that hangs) */
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNREACHABLE);
}

static void
test_primary_before_any_dcs_answer_is_down(void **state)
{
	struct node_view v = writable_primary();
	struct policy p = dcs_policy();

	(void)state;
	v.dcs.heard = false;
	v.dcs.age_ms = -1;
	v.dcs.leader_is_me = true; /* never believed without an answer */
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNHEARD);
	v.dcs.last_error = DCS_TIMEOUT;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNREACHABLE);
	/* the mode is on but no client runs (it could not start): down, never up */
	memset(&v.dcs, 0, sizeof(v.dcs));
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNREACHABLE);
}

static void
test_replica_and_mode_off_ignore_the_dcs(void **state)
{
	struct node_view v = writable_primary();
	struct policy p = dcs_policy();

	(void)state;
	v.dcs.leader_is_me = false;
	p.dcs_leader_required = false;
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
	p.dcs_leader_required = true;
	v.sample.in_recovery = true;
	v.sample.read_only = true;
	v.sample.receiver_streaming = true;
	v.was_streaming = true;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_IS_REPLICA);
	assert_true(ask(&v, &p, REQUEST_REPLICA).up);
}

static void
test_lease_answers_are_read_and_checked(void **state)
{
	char holder[DCS_NAME_MAX], out[1024];
	bool done, found;
	int64_t id = 0, ttl = 0, lease = 0;
	size_t n;

	(void)state;
	assert_int_equal(dcs_answer_grant("{" HEADER ",\"ID\":\"2324035755366897671\",\"TTL\":\"10\"}", 60, &id, &ttl),
	                 DCS_MALFORMED); /* cut off */
#define BODY(s) s, strlen(s)
	assert_int_equal(
	    dcs_answer_grant(BODY("{" HEADER ",\"ID\":\"2324035755366897671\",\"TTL\":\"10\"}"), &id, &ttl), DCS_OK);
	assert_true(id == 2324035755366897671LL && ttl == 10);
	assert_int_equal(dcs_answer_grant(BODY("{" HEADER ",\"ID\":\"-1\",\"TTL\":\"10\"}"), &id, &ttl),
	                 DCS_WRONG_TYPE);
	assert_int_equal(
	    dcs_answer_grant(BODY("{" HEADER ",\"ID\":\"99999999999999999999\",\"TTL\":\"10\"}"), &id, &ttl),
	    DCS_WRONG_TYPE);
	assert_int_equal(dcs_answer_grant(BODY("{" HEADER ",\"TTL\":\"10\"}"), &id, &ttl), DCS_WRONG_TYPE);
	/* keepalive: as etcd 3.4's gateway answers it; a lease etcd does not know has no TTL */
	assert_int_equal(dcs_answer_keepalive(BODY("{\"result\":{" HEADER ",\"ID\":\"7\",\"TTL\":\"9\"}}"), 7, &ttl),
	                 DCS_OK);
	assert_int_equal(ttl, 9);
	assert_int_equal(dcs_answer_keepalive(BODY("{\"result\":{" HEADER ",\"ID\":\"7\"}}"), 7, &ttl), DCS_OK);
	assert_int_equal(ttl, 0);
	assert_int_equal(dcs_answer_keepalive(BODY("{\"result\":{" HEADER ",\"ID\":\"8\",\"TTL\":\"9\"}}"), 7, &ttl),
	                 DCS_WRONG_KEY);
	assert_int_equal(dcs_answer_keepalive(BODY("{\"result\":{" HEADER ",\"ID\":\"7\",\"TTL\":true}}"), 7, &ttl),
	                 DCS_WRONG_TYPE);
	/* txn: put done, or the key as it is */
	assert_int_equal(
	    dcs_answer_txn(BODY("{" HEADER ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{}}}]}"),
	                   KEY, &done, holder, sizeof(holder), &found, &lease),
	    DCS_OK);
	assert_true(done);
	assert_int_equal(
	    dcs_answer_txn(BODY("{" HEADER
	                        ",\"responses\":[{\"response_range\":{\"header\":{},\"kvs\":[{\"key\":\"" KEY64
	                        "\",\"value\":\"" PG2_64 "\",\"lease\":\"55\"}],\"count\":\"1\"}}]}"),
	                   KEY, &done, holder, sizeof(holder), &found, &lease),
	    DCS_OK);
	assert_false(done);
	assert_true(found);
	assert_string_equal(holder, "pg2");
	assert_true(lease == 55);
	assert_int_equal(dcs_answer_txn(BODY("{" HEADER ",\"succeeded\":\"yes\",\"responses\":[{}]}"), KEY, &done,
	                                holder, sizeof(holder), &found, &lease),
	                 DCS_WRONG_TYPE);
	assert_int_equal(dcs_answer_txn(BODY("{" HEADER ",\"succeeded\":true,\"responses\":[]}"), KEY, &done, holder,
	                                sizeof(holder), &found, &lease),
	                 DCS_WRONG_TYPE);
#undef BODY
	n = dcs_answer_txn_request(KEY, "pg1", 7, false, out, sizeof(out));
	assert_int_equal(n, strlen(out));
	assert_non_null(strstr(out, "\"target\":\"CREATE\",\"create_revision\":\"0\""));
	assert_non_null(strstr(out, "\"requestPut\":{\"key\":\"" KEY64 "\",\"value\":\"" PG1_64 "\",\"lease\":\"7\"}"));
	n = dcs_answer_txn_request(KEY, "pg1", 7, true, out, sizeof(out));
	assert_int_equal(n, strlen(out));
	assert_non_null(strstr(out, "\"target\":\"VALUE\",\"value\":\"" PG1_64 "\""));
	assert_int_equal(dcs_answer_keepalive_request(7, out, sizeof(out)), strlen("{\"ID\":\"7\"}"));
	assert_string_equal(out, "{\"ID\":\"7\"}");
}

static void
test_lease_mode_primary_up_only_while_held_before_the_margin(void **state)
{
	struct node_view v = writable_primary();
	struct policy p = dcs_policy();

	(void)state;
	p.dcs_leader_required = false;
	p.dcs_lease_required = true;
	p.dcs_lease_margin_ms = 3000;
	v.dcs.lease_mode = true;
	v.dcs.holding = true;
	v.dcs.lease_left_ms = 3001;
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
	v.dcs.lease_left_ms = 3000; /* the margin reached: the lease may be gone before HAProxy sees a down */
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNREACHABLE);
	v.dcs.lease_left_ms = 9000;
	v.dcs.age_ms = 600000; /* fresh_ms plays no part in lease mode */
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
	v.dcs.holding = false;
	v.dcs.leader_is_me = false;
	strcpy(v.dcs.leader, "pg2");
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_NOT_LEADER);
	v.dcs.have_leader = false;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_NO_LEASE);
	v.dcs.last_error = DCS_TIMEOUT;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNREACHABLE);
	v.dcs.last_error = DCS_OK;
	v.dcs.heard = false;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_UNHEARD);
	/* holding, but the summary is not a lease client's (it could not start): down */
	v.dcs.lease_mode = false;
	v.dcs.holding = true;
	assert_false(ask(&v, &p, REQUEST_PRIMARY).up);
}

#define BODY(s) s, strlen(s)
static void
test_auth_bodies_are_written_and_read(void **state)
{
	char out[256], token[DCS_TOKEN_MAX];
	int64_t code = 0;
	size_t n;

	(void)state;
	n = dcs_answer_auth_request("pgcheckd", "pa\"ss\\word", out, sizeof(out));
	assert_string_equal(out, "{\"name\":\"pgcheckd\",\"password\":\"pa\\\"ss\\\\word\"}");
	assert_int_equal(n, strlen(out));
	assert_int_equal(dcs_answer_auth_request("pgcheckd", "tab\there", out, sizeof(out)), 0); /* conf refuses it */
	assert_int_equal(out[0], '\0');
	assert_int_equal(dcs_answer_auth_request("pgcheckd", "long password", out, 20), 0); /* does not fit: wiped */
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(out[i], '\0');
	strcpy(token, "untouched");
	assert_int_equal(dcs_answer_auth(BODY("{" HEADER ",\"token\":\"boxfKUREqDbEvMye.14\"}"), token, sizeof(token)),
	                 DCS_OK);
	assert_string_equal(token, "boxfKUREqDbEvMye.14");
	strcpy(token, "untouched");
	assert_int_equal(dcs_answer_auth(BODY("{" HEADER ",\"token\":\"two words\"}"), token, sizeof(token)),
	                 DCS_WRONG_TYPE); /* it would break the header line */
	assert_int_equal(dcs_answer_auth(BODY("{" HEADER ",\"token\":\"a\\r\\nX-Evil: 1\"}"), token, sizeof(token)),
	                 DCS_WRONG_TYPE);
	assert_int_equal(dcs_answer_auth(BODY("{" HEADER ",\"token\":\"\"}"), token, sizeof(token)), DCS_WRONG_TYPE);
	assert_int_equal(dcs_answer_auth(BODY("{" HEADER ",\"token\":7}"), token, sizeof(token)), DCS_WRONG_TYPE);
	assert_int_equal(dcs_answer_auth(BODY("{\"token\":\"abc\"}"), token, sizeof(token)), DCS_WRONG_TYPE);
	assert_int_equal(dcs_answer_auth(BODY("{" HEADER ",\"token\":\"abcdef\"}"), token, 4), DCS_WRONG_TYPE);
	assert_int_equal(
	    dcs_answer_auth(BODY("{\"error\":\"etcdserver: authentication failed, invalid user ID or password\","
	                         "\"code\":3}"),
	                    token, sizeof(token)),
	    DCS_ETCD_ERROR);
	assert_string_equal(token, "untouched");
	assert_true(
	    dcs_answer_error_code(BODY("{\"error\":\"etcdserver: invalid auth token\",\"message\":\"etcdserver: "
	                               "invalid auth token\",\"code\":16}"),
	                          &code));
	assert_int_equal(code, 16);
	assert_false(dcs_answer_error_code(BODY("{\"error\":\"x\"}"), &code));
	assert_false(dcs_answer_error_code(BODY("not json"), &code));
	assert_false(dcs_answer_error_code(BODY("{\"code\":\"x\"}"), &code));
	assert_int_equal(code, 16);
}
#undef BODY

static void
test_auth_failure_is_its_own_reason(void **state)
{
	struct node_view v = writable_primary();
	struct policy p = dcs_policy();
	struct verdict vd;

	(void)state;
	v.dcs.age_ms = 3001;
	v.dcs.last_error = DCS_AUTH;
	vd = ask(&v, &p, REQUEST_PRIMARY);
	assert_false(vd.up);
	assert_int_equal(vd.why, REASON_DCS_AUTH);
	assert_string_equal(vd.reason, "dcs-auth-failed");
	v.dcs.heard = false; /* never authenticated */
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_AUTH);
	/* lease mode: the lease still held, before its margin, is up whatever the last exchange said */
	p.dcs_leader_required = false;
	p.dcs_lease_required = true;
	p.dcs_lease_margin_ms = 3000;
	v.dcs.heard = true;
	v.dcs.lease_mode = true;
	v.dcs.holding = true;
	v.dcs.lease_left_ms = 5000;
	assert_true(ask(&v, &p, REQUEST_PRIMARY).up);
	v.dcs.lease_left_ms = 2000;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_AUTH);
	v.dcs.holding = false;
	assert_int_equal(ask(&v, &p, REQUEST_PRIMARY).why, REASON_DCS_AUTH);
}

static bool
load(const char *text, char *err, size_t errlen)
{
	struct conf c;
	FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "r");
	bool ok;

	assert_non_null(f);
	ok = conf_load_stream(f, "t.ini", &c, err, errlen);
	fclose(f);
	return ok;
}

static void
test_dcs_config_errors_name_line_and_key(void **state)
{
	char err[CONF_ERR_MAX];

	(void)state;
	assert_true(load("[dcs]\nmode = patroni\nscope = lab\nname = pg1\n", err, sizeof(err)));
	assert_false(load("[dcs]\nmode = patroni\nname = pg1\n", err, sizeof(err)));
	assert_string_equal(err, "t.ini:2: [dcs] mode: mode = patroni needs [dcs] scope and name: scope is empty");
	assert_false(
	    load("[dcs]\nmode = patroni\nscope = lab\nname = pg1\nendpoints = 127.0.0.1:2379\n", err, sizeof(err)));
	assert_non_null(strstr(err, "t.ini:5: [dcs] endpoints: '127.0.0.1:2379' is not an http:// or https:// URL"));
	assert_false(load("[dcs]\nmode = patroni\nscope = lab\nname = pg1\ninterval_ms = 2000\ntimeout_ms = 1000\n",
	                  err, sizeof(err)));
	assert_non_null(strstr(err, "t.ini:6: [dcs] timeout_ms: interval_ms + timeout_ms (2000 + 1000 = 3000)"));
	assert_false(load("[dcs]\nmode = raft\n", err, sizeof(err)));
	assert_non_null(strstr(err, "t.ini:2: [dcs] mode"));
	/* lease mode: a renewal and the margin fit into the TTL */
	assert_true(load("[dcs]\nmode = lease\nscope = lab\nname = pg1\n", err, sizeof(err)));
	assert_false(load("[dcs]\nmode = lease\nscope = lab\nname = pg1\nlease_ttl_s = 4\n", err, sizeof(err)));
	assert_non_null(strstr(err, "t.ini:5: [dcs] lease_ttl_s: interval_ms + 2 x timeout_ms + lease_margin_ms"));
	/* etcd's authentication: both keys, and a password file only its owner may read */
	assert_false(load("[dcs]\nmode = lease\nscope = lab\nname = pg1\nusername = pgcheckd\n", err, sizeof(err)));
	assert_string_equal(err, "t.ini:5: [dcs] username: password_file is empty: etcd's authentication needs both "
	                         "username and password_file");
	assert_false(load("[dcs]\nmode = lease\nscope = lab\nname = pg1\nusername = pgcheckd\n"
	                  "password_file = /nonexistent/pw\n",
	                  err, sizeof(err)));
	assert_non_null(strstr(err, "t.ini:6: [dcs] password_file: cannot open /nonexistent/pw"));
	/* without a mode the other keys are not checked */
	assert_true(load("[dcs]\nendpoints = nonsense\n", err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_range_answer_names_the_leader),
	    cmocka_unit_test(test_range_answer_without_kvs_is_no_leader),
	    cmocka_unit_test(test_range_answer_that_is_not_json_is_malformed),
	    cmocka_unit_test(test_range_answer_with_wrong_types_is_refused),
	    cmocka_unit_test(test_range_answer_for_another_key_is_refused),
	    cmocka_unit_test(test_range_answer_that_is_an_etcd_error_is_refused),
	    cmocka_unit_test(test_range_answer_value_longer_than_a_name_is_refused),
	    cmocka_unit_test(test_range_request_is_the_key_in_base64),
	    cmocka_unit_test(test_endpoints_and_patroni_key),
	    cmocka_unit_test(test_primary_named_by_fresh_leader_key_is_up),
	    cmocka_unit_test(test_primary_not_named_by_leader_key_is_down),
	    cmocka_unit_test(test_primary_with_old_dcs_answer_is_down_unreachable),
	    cmocka_unit_test(test_primary_before_any_dcs_answer_is_down),
	    cmocka_unit_test(test_replica_and_mode_off_ignore_the_dcs),
	    cmocka_unit_test(test_dcs_config_errors_name_line_and_key),
	    cmocka_unit_test(test_lease_answers_are_read_and_checked),
	    cmocka_unit_test(test_auth_bodies_are_written_and_read),
	    cmocka_unit_test(test_auth_failure_is_its_own_reason),
	    cmocka_unit_test(test_lease_mode_primary_up_only_while_held_before_the_margin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
