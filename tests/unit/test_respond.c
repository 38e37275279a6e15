/*
 * test_respond.c: the responders, from hand-made views: what the agent line, a role port and HTTP
 * answer, the weight-first form for answers given without a whole line, maxconn on the agent line,
 * the peer-state word and the admin line's bounds. No sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "http.h"
#include "monoclock.h"
#include "peers.h"
#include "render.h"
#include "respond.h"
#include "verdict.h"

static struct policy
test_policy(void)
{
	struct policy p;

	memset(&p, 0, sizeof(p));
	p.stale_after_ms = 1500;
	p.max_lag_bytes = 16LL * 1024 * 1024;
	p.max_lag_s = 10.0;
	p.receiver_silence_max_ms = 60000;
	p.primary_read_pct = 100;
	p.step_pct = 10;
	return p;
}

/* A writable primary sampled 100 ms ago: 100 connections, 3 reserved. */
static struct node_view
primary_view(void)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = true;
	v.sample.taken_ms = 10000;
	v.sample.server_version_num = 150000;
	v.sample.timeline = 1;
	v.sample.system_identifier = 7;
	v.sample.max_connections = 100;
	v.sample.reserved_connections = 3;
	v.sample.ncpu = 2;
	v.sample_age_ms = 100;
	v.replica_weight_pct = 100;
	v.load_weight_pct = 100;
	return v;
}

struct fixture {
	struct node_view v;
	struct policy p;
	struct render_counters counters;
	struct respond_ctx x;
	char out[RESPOND_REPLY_MAX + 512];
};

static struct fixture *
fixture(int maxconn_pct)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	f.v = primary_view();
	f.p = test_policy();
	f.x.view = &f.v;
	f.x.policy = &f.p;
	f.x.counters = &f.counters;
	f.x.default_request = REQUEST_REPLICA;
	f.x.maxconn_pct = maxconn_pct;
	return &f;
}

static const char *
agent(struct fixture *f, const char *req)
{
	size_t n = respond_agent(&f->x, req, strlen(req), f->out, sizeof(f->out));

	assert_int_equal(n, strlen(f->out));
	return f->out;
}

static void
test_agent_whole_line_is_answered_up_first(void **state)
{
	struct fixture *f = fixture(0);

	(void)state;
	assert_string_equal(agent(f, "primary\n"), "up 100%\n");
	assert_string_equal(agent(f, "primary\r\n"), "up 100%\n");
	assert_string_equal(agent(f, "replica\n"), "down #is-primary\n");
}

static void
test_agent_without_a_whole_line_puts_the_weight_first(void **state)
{
	struct fixture *f = fixture(0);

	(void)state;
	assert_string_equal(agent(f, "primary"), "100% up\n"); /* ended by silence or EOF */
	f->x.default_request = REQUEST_PRIMARY;
	assert_string_equal(agent(f, ""), "100% up\n"); /* nothing asked */
	f->x.default_request = REQUEST_REPLICA;
	assert_string_equal(agent(f, ""), "down #is-primary\n");
}

static void
test_agent_bad_request_is_down(void **state)
{
	struct fixture *f = fixture(0);

	(void)state;
	assert_string_equal(agent(f, "pri\n"), "down #bad-request\n");
	assert_string_equal(agent(f, "primary\nreplica\n"), "down #bad-request\n");
	assert_string_equal(agent(f, "primary lag=x\n"), "down #bad-request\n");
}

/* maxconn_pct of the usable slots (max_connections - reserved - pgcheckd's own): 50% of 96 */
static void
test_agent_up_carries_maxconn(void **state)
{
	struct fixture *f = fixture(50);

	(void)state;
	assert_string_equal(agent(f, "primary\n"), "up 100% maxconn:48\n");
	assert_string_equal(agent(f, "primary"), "100% up maxconn:48\n");
	/* down carries none */
	assert_string_equal(agent(f, "replica\n"), "down #is-primary\n");
	/* never 0 (HAProxy's maxconn 0 means no limit): at least 1 */
	f->v.sample.max_connections = 4;
	assert_string_equal(agent(f, "primary\n"), "up 100% maxconn:1\n");
}

static void
test_agent_maxconn_that_does_not_fit_leaves_the_line_whole(void **state)
{
	struct fixture *f = fixture(50);
	char small[12];
	size_t n;

	(void)state;
	n = respond_agent(&f->x, "primary\n", 8, small, sizeof(small));
	assert_string_equal(small, "up 100%\n");
	assert_int_equal(n, strlen(small));
}

static void
test_peer_state_word_gets_the_peer_line(void **state)
{
	struct fixture *f = fixture(0);

	(void)state;
	assert_non_null(strstr(agent(f, "peer-state\n"), "role=primary"));
	assert_int_equal(strncmp(agent(f, "peer-state"), "state ", 6), 0);
	assert_string_equal(agent(f, "peer-stated\n"), "down #bad-request\n");
}

#define PEER_KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
test_peer_state_with_a_key_is_answered_only_to_a_reader_with_the_key(void **state)
{
	struct fixture *f = fixture(0);
	char req[PEERS_REQUEST_MAX], nonce[PEERS_NONCE_HEX + 1];
	struct peer_state st;

	(void)state;
	f->p.peer_key = (const unsigned char *)PEER_KEY;
	f->p.peer_key_len = strlen(PEER_KEY);
	/* no state and no system identifier without the key */
	assert_string_equal(agent(f, "peer-state\n"), "down #unauthenticated\n");
	assert_string_equal(agent(f, "peer-state"), "down #unauthenticated\n");
	assert_true(peers_new_nonce(nonce));
	assert_true(peers_sign_request((const unsigned char *)"another key, long enough: 32 bytes", 34, nonce, req,
	                               sizeof(req)) > 0);
	assert_string_equal(agent(f, req), "down #unauthenticated\n");
	/* with it: the state, the reader's nonce, a MAC the reader accepts */
	assert_true(peers_sign_request(f->p.peer_key, f->p.peer_key_len, nonce, req, sizeof(req)) > 0);
	agent(f, req);
	assert_int_equal(strncmp(f->out, "state role=primary timeline=1 sysid=7 fenced=0 ", 47), 0);
	assert_non_null(strstr(f->out, " nonce="));
	memset(&st, 0, sizeof(st));
	assert_int_equal(peers_open_answer(f->p.peer_key, f->p.peer_key_len, nonce, f->out, &st), PEERS_REJECT_NONE);
	assert_true(st.primary && st.system_identifier == 7);
	/* the largest state line still fits the agent port's answer, with its nonce and MAC */
	f->v.sample.timeline = -2147483647 - 1;
	f->v.sample.system_identifier = UINT64_MAX;
	f->v.sample.read_only = true;
	{
		char line[RESPOND_LINE_MAX]; /* what the listener gives the agent line */
		size_t n = respond_agent(&f->x, req, strlen(req), line, sizeof(line));

		assert_true(n > 0 && strncmp(line, "state role=read-only", 20) == 0);
		assert_non_null(strstr(line, " mac="));
		assert_true(n <= PEERS_LINE_MAX); /* a 0.1.0 reader keeps 255 bytes */
	}
}

static void
test_role_port_answers_its_role(void **state)
{
	struct fixture *f = fixture(0);
	size_t n;

	(void)state;
	f->x.default_request = REQUEST_PRIMARY;
	n = respond_role(&f->x, f->out, sizeof(f->out));
	/* nothing was asked: weight first, so a "^up" check sent to the wrong port never matches */
	assert_string_equal(f->out, "100% up\n");
	assert_int_equal(n, strlen(f->out));
}

static int
http_status(struct fixture *f, const char *req)
{
	struct http_request h;
	enum http_parse parsed = http_parse_request(req, strlen(req), &h);
	int status = 0;

	assert_true(respond_http(&f->x, parsed, &h, f->out, sizeof(f->out)) > 0);
	assert_int_equal(sscanf(f->out, "HTTP/1.%*d %d", &status), 1);
	return status;
}

static void
test_http_status_follows_the_verdict(void **state)
{
	struct fixture *f = fixture(0);

	(void)state;
	assert_int_equal(http_status(f, "GET /primary HTTP/1.0\r\n\r\n"), 200);
	assert_int_equal(http_status(f, "GET /replica HTTP/1.0\r\n\r\n"), 503);
	assert_int_equal(http_status(f, "GET /nowhere HTTP/1.0\r\n\r\n"), 404);
	assert_int_equal(http_status(f, "DELETE /primary HTTP/1.0\r\n\r\n"), 405);
	f->v.sample_age_ms = 5000; /* stale */
	assert_int_equal(http_status(f, "GET /primary HTTP/1.0\r\n\r\n"), 503);
	assert_int_equal(http_status(f, "GET /liveness HTTP/1.0\r\n\r\n"), 200);
}

/* role_status=404: the other role answers 404 (HAProxy's disable-on-404: NOLB), trouble stays 503 */
static void
test_http_role_status_404_only_for_the_other_role(void **state)
{
	struct fixture *f = fixture(0);

	(void)state;
	/* a primary asked for a replica: the other role */
	assert_int_equal(http_status(f, "GET /replica?role_status=404 HTTP/1.0\r\n\r\n"), 404);
	assert_non_null(strstr(f->out, "\"reason\":\"is-primary\"")); /* the body is still the verdict */
	assert_int_equal(http_status(f, "GET /replica?role_status=503 HTTP/1.0\r\n\r\n"), 503);
	assert_int_equal(http_status(f, "GET /primary?role_status=404 HTTP/1.0\r\n\r\n"), 200);
	assert_int_equal(http_status(f, "GET /replica?role_status=200 HTTP/1.0\r\n\r\n"), 400);
	assert_int_equal(http_status(f, "GET /replica?role_status= HTTP/1.0\r\n\r\n"), 400);
	/* a streaming replica asked for the primary */
	f->v.sample.in_recovery = true;
	f->v.sample.read_only = true;
	f->v.sample.receiver_streaming = true;
	assert_int_equal(http_status(f, "GET /primary?role_status=404 HTTP/1.0\r\n\r\n"), 404);
	assert_int_equal(http_status(f, "GET /primary HTTP/1.0\r\n\r\n"), 503);
	/* a replica in trouble is never quiet: not streaming, stale, failing, in maintenance */
	f->v.sample.receiver_streaming = false;
	assert_int_equal(http_status(f, "GET /replica?role_status=404 HTTP/1.0\r\n\r\n"), 503);
	f->v.sample.receiver_streaming = true;
	f->v.sample_age_ms = 5000;
	assert_int_equal(http_status(f, "GET /primary?role_status=404 HTTP/1.0\r\n\r\n"), 503);
	f->v.sample_age_ms = 100;
	f->v.override = OVERRIDE_MAINT;
	assert_int_equal(http_status(f, "GET /primary?role_status=404 HTTP/1.0\r\n\r\n"), 503);
	f->v.override = OVERRIDE_NONE;
	f->v.failing = true;
	f->v.failure = POLL_CONNECT_FAILED;
	assert_int_equal(http_status(f, "GET /primary?role_status=404 HTTP/1.0\r\n\r\n"), 503);
	/* the agent line has no such parameter: a bad request, down */
	f->v.failing = false;
	assert_string_equal(agent(f, "primary role_status=404\n"), "down #bad-request\n");
}

static void
test_admin_line_is_one_printable_line_that_fits(void **state)
{
	char line[16];

	(void)state;
	assert_true(respond_admin_line("drain\n", 6, line, sizeof(line)));
	assert_string_equal(line, "drain");
	assert_true(respond_admin_line("status\r\n", 8, line, sizeof(line)));
	assert_string_equal(line, "status");
	assert_false(respond_admin_line("drain\nmaint\n", 12, line, sizeof(line)));
	assert_false(respond_admin_line("dr\0ain\n", 7, line, sizeof(line)));
	assert_false(respond_admin_line("check primary lag=1MB\n", 22, line, sizeof(line)));
}

static int
http_status_auth(struct fixture *f, const char *req, char *out, size_t outlen)
{
	struct http_request h;
	enum http_parse parsed = http_parse_request(req, strlen(req), &h);
	int status = 0;
	size_t n = respond_http(&f->x, parsed, &h, out, outlen);

	assert_true(n > 0);
	assert_int_equal(sscanf(out, "HTTP/1.%*d %d", &status), 1);
	return status;
}

/* [http] basic_auth_file "monitor:s3cret-enough-16" and token_file "tok-0123456789abcdef" */
static void
test_http_credentials_guard_status_metrics_and_bodies(void **state)
{
	static struct respond_auth auth = {"Basic bW9uaXRvcjpzM2NyZXQtZW5vdWdoLTE2", "Bearer tok-0123456789abcdef",
	                                   CONF_PROTECT_STATUS | CONF_PROTECT_METRICS | CONF_PROTECT_BODIES};
	struct fixture *f = fixture(0);
	char *out = f->out;

	(void)state;
	f->x.auth = &auth;
	assert_int_equal(http_status_auth(f, "GET /status HTTP/1.0\r\n\r\n", out, sizeof(f->out)), 401);
	assert_non_null(strstr(out, "WWW-Authenticate: Basic realm=\"pgcheckd\"\r\n"));
	assert_non_null(strstr(out, "WWW-Authenticate: Bearer realm=\"pgcheckd\"\r\n"));
	assert_null(strstr(out, "timeline"));
	assert_int_equal(http_status_auth(f, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof(f->out)), 401);
	assert_int_equal(
	    http_status_auth(f,
	                     "GET /metrics HTTP/1.0\r\nAuthorization: Basic bW9uaXRvcjpzM2NyZXQtZW5vdWdoLTE2"
	                     "\r\n\r\n",
	                     out, sizeof(f->out)),
	    200);
	assert_int_equal(
	    http_status_auth(f, "GET /status HTTP/1.1\r\nauthorization:  Bearer tok-0123456789abcdef \r\n\r\n", out,
	                     sizeof(f->out)),
	    200);
	assert_non_null(strstr(out, "timeline"));
	/* wrong, cut, other scheme, two headers */
	assert_int_equal(http_status_auth(f,
	                                  "GET /status HTTP/1.0\r\nAuthorization: Bearer tok-0123456789abcdeX\r\n\r\n",
	                                  out, sizeof(f->out)),
	                 401);
	assert_int_equal(http_status_auth(f,
	                                  "GET /status HTTP/1.0\r\nAuthorization: Bearer tok-0123456789abcde\r\n\r\n",
	                                  out, sizeof(f->out)),
	                 401);
	assert_int_equal(
	    http_status_auth(f, "GET /status HTTP/1.0\r\nAuthorization: Bearer\r\n\r\n", out, sizeof(f->out)), 401);
	assert_int_equal(http_status_auth(f,
	                                  "GET /status HTTP/1.0\r\nAuthorization: Bearer x\r\nAuthorization: Bearer "
	                                  "tok-0123456789abcdef\r\n\r\n",
	                                  out, sizeof(f->out)),
	                 400);
	/* health paths keep their status for HAProxy; the body says only up or not */
	assert_int_equal(http_status_auth(f, "GET /primary HTTP/1.0\r\n\r\n", out, sizeof(f->out)), 200);
	assert_non_null(strstr(out, "\r\n\r\n{\"up\":true}\n"));
	assert_int_equal(http_status_auth(f, "GET /replica HTTP/1.0\r\n\r\n", out, sizeof(f->out)), 503);
	assert_non_null(strstr(out, "\r\n\r\n{\"up\":false}\n"));
	/* with "checks" protected, the health paths need it too */
	auth.protect |= CONF_PROTECT_CHECKS;
	assert_int_equal(http_status_auth(f, "GET /primary HTTP/1.0\r\n\r\n", out, sizeof(f->out)), 401);
	assert_int_equal(http_status_auth(f, "GET /liveness HTTP/1.0\r\n\r\n", out, sizeof(f->out)), 200);
	auth.protect &= ~CONF_PROTECT_CHECKS;
}

static void
test_http_without_credentials_configured_answers_everyone(void **state)
{
	static struct respond_auth none = {"", "", CONF_PROTECT_STATUS | CONF_PROTECT_METRICS | CONF_PROTECT_BODIES};
	struct fixture *f = fixture(0);

	(void)state;
	f->x.auth = &none;
	assert_int_equal(http_status_auth(f, "GET /status HTTP/1.0\r\n\r\n", f->out, sizeof(f->out)), 200);
	assert_int_equal(
	    http_status_auth(f, "GET /metrics HTTP/1.0\r\nAuthorization: Basic Og==\r\n\r\n", f->out, sizeof(f->out)),
	    200);
}

static void
test_cluster_paths_render_this_node_without_peers(void **state)
{
	struct fixture *f = fixture(0);

	(void)state;
	snprintf(f->v.sample.name, sizeof(f->v.sample.name), "node1");
	f->v.sample.pg_port = 5432;
	f->v.sample.current_lsn = 0x3000060;
	assert_int_equal(http_status(f, "GET /cluster HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "{\"nodes\":[{\"name\":\"node1\",\"self\":true,\"address\":null,"
	                               "\"role\":\"primary\",\"timeline\":1,\"lsn\":\"0/3000060\""));
	/* no replica can serve it: the primary has every position it wrote */
	assert_int_equal(http_status(f, "GET /cluster/replica?min_lsn=0/3000061 HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "{\"node\":\"node1\",\"self\":true,\"role\":\"primary\",\"host\":null,"
	                               "\"port\":5432,\"lsn\":\"0/3000060\""));
	assert_int_equal(http_status(f, "GET /cluster/replica?min_lsn=x HTTP/1.0\r\n\r\n"), 400);
	/* a primary that is not up for writes is no fallback: nobody can serve it */
	f->v.sample.read_only = true;
	assert_int_equal(http_status(f, "GET /cluster/replica HTTP/1.0\r\n\r\n"), 503);
	assert_non_null(strstr(f->out, "{\"node\":null}"));
	/* this node as a replica that has replayed the position */
	f->v.sample.in_recovery = true;
	f->v.sample.receiver_streaming = true;
	f->v.sample.replay_lsn = 0x3000060;
	assert_int_equal(http_status(f, "GET /cluster/replica?min_lsn=0/3000060 HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "\"role\":\"replica\""));
	assert_int_equal(http_status(f, "GET /cluster/replica?min_lsn=0/3000061 HTTP/1.0\r\n\r\n"), 503);
}

static void
test_cluster_paths_need_the_status_credential(void **state)
{
	struct fixture *f = fixture(0);
	struct respond_auth auth;

	(void)state;
	memset(&auth, 0, sizeof(auth));
	snprintf(auth.bearer, sizeof(auth.bearer), "Bearer 0123456789abcdef");
	auth.protect = CONF_PROTECT_STATUS;
	f->x.auth = &auth;
	assert_int_equal(http_status(f, "GET /cluster HTTP/1.0\r\n\r\n"), 401);
	assert_int_equal(http_status(f, "GET /cluster/replica HTTP/1.0\r\n\r\n"), 401);
	assert_int_equal(http_status(f, "GET /cluster HTTP/1.0\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n"),
	                 200);
}

static void
test_cluster_replica_picks_among_the_fresh_peers(void **state)
{
	struct fixture *f = fixture(0);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct peers_conf pc = {
	    .addresses = "127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:3", .interval_ms = 60000, .timeout_ms = 100};
	struct peers *p = peers_new(loop, &pc, NULL, NULL);
	int64_t now = monoclock_ms();

	(void)state;
	assert_non_null(p);
	f->p.peers_fresh_ms = 2000;
	f->v.peer_list = p;
	f->v.now_ms = now;
	snprintf(f->v.sample.name, sizeof(f->v.sample.name), "node1");
	f->v.sample.current_lsn = 0x3000100;
	/* node2: up, has the position; node3: up with a higher weight, behind it; node4: kept by keep-best */
	assert_true(peers_record_answer(p, 0, NULL,
	                                "state role=replica timeline=1 sysid=7 fenced=0 name=node2 read=up "
	                                "lsn=0/3000080 weight=50 pg_port=5432\n",
	                                now));
	assert_true(peers_record_answer(p, 1, NULL,
	                                "state role=replica timeline=1 sysid=7 fenced=0 name=node3 read=up "
	                                "lsn=0/3000000 weight=90 pg_port=5433\n",
	                                now));
	assert_true(peers_record_answer(p, 2, NULL,
	                                "state role=replica timeline=1 sysid=7 fenced=0 name=node4 read=lag "
	                                "lsn=0/3000090 weight=10 pg_port=5434\n",
	                                now));
	assert_int_equal(http_status(f, "GET /cluster/replica?min_lsn=0/3000060 HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "{\"node\":\"node2\",\"self\":false,\"role\":\"replica\",\"host\":\"127.0.0.1\","
	                               "\"port\":5432,\"lsn\":\"0/3000080\",\"weight\":50}"));
	assert_int_equal(http_status(f, "GET /cluster/replica HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "\"node\":\"node3\"")); /* any position: the highest weight */
	assert_int_equal(http_status(f, "GET /cluster/replica?min_lsn=0/3000081 HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "\"node\":\"node4\"")); /* only the kept one has it */
	assert_int_equal(http_status(f, "GET /cluster/replica?min_lsn=0/3000091 HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "\"node\":\"node1\",\"self\":true,\"role\":\"primary\""));
	/* answers older than fresh_ms serve nothing; another cluster's neither */
	f->v.now_ms = now + 2001;
	f->v.sample.read_only = true; /* and no primary to fall back on */
	assert_int_equal(http_status(f, "GET /cluster/replica HTTP/1.0\r\n\r\n"), 503);
	f->v.now_ms = now;
	f->v.sample.system_identifier = 8;
	assert_int_equal(http_status(f, "GET /cluster/replica HTTP/1.0\r\n\r\n"), 503);
	/* /cluster shows every peer, with its age and whether it is still believed */
	f->v.sample.system_identifier = 7;
	f->v.now_ms = now + 2001;
	assert_int_equal(http_status(f, "GET /cluster HTTP/1.0\r\n\r\n"), 200);
	assert_non_null(strstr(f->out, "\"name\":\"node4\",\"self\":false,\"address\":\"127.0.0.1:3\",\"role\":"
	                               "\"replica\",\"timeline\":1,\"lsn\":\"0/3000090\""));
	assert_non_null(strstr(f->out, "\"fresh\":false,\"age_ms\":2001,\"pg_port\":5434}"));
	peers_free(p);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_agent_whole_line_is_answered_up_first),
	    cmocka_unit_test(test_agent_without_a_whole_line_puts_the_weight_first),
	    cmocka_unit_test(test_agent_bad_request_is_down),
	    cmocka_unit_test(test_agent_up_carries_maxconn),
	    cmocka_unit_test(test_agent_maxconn_that_does_not_fit_leaves_the_line_whole),
	    cmocka_unit_test(test_peer_state_word_gets_the_peer_line),
	    cmocka_unit_test(test_peer_state_with_a_key_is_answered_only_to_a_reader_with_the_key),
	    cmocka_unit_test(test_role_port_answers_its_role),
	    cmocka_unit_test(test_http_status_follows_the_verdict),
	    cmocka_unit_test(test_http_role_status_404_only_for_the_other_role),
	    cmocka_unit_test(test_cluster_paths_render_this_node_without_peers),
	    cmocka_unit_test(test_cluster_paths_need_the_status_credential),
	    cmocka_unit_test(test_cluster_replica_picks_among_the_fresh_peers),
	    cmocka_unit_test(test_admin_line_is_one_printable_line_that_fits),
	    cmocka_unit_test(test_http_credentials_guard_status_metrics_and_bodies),
	    cmocka_unit_test(test_http_without_credentials_configured_answers_everyone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
