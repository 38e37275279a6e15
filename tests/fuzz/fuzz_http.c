/*
 * fuzz_http.c: libFuzzer harness for the HTTP side of the agent port. The input is what a client
 * sends; it goes through http_sniff, http_parse_request, http_route and respond_http (the response the
 * listener sends), checked against the status and body the route calls for. Invariants: nothing reads past the input,
 * a complete request is HTTP to the sniffer too, bytes after a request change nothing, and every
 * response is "HTTP/1.1 NNN ...", CRLF headers with Connection: close and a Content-Length that
 * matches the body sent.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_check.h"
#include "clusterview.h"
#include "http.h"
#include "poller.h"
#include "render.h"
#include "request.h"
#include "respond.h"
#include "verdict.h"

#define MB            (1024LL * 1024LL)
#define FUZZ_BODY_MAX 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct policy
fuzz_policy(void)
{
	struct policy p;

	memset(&p, 0, sizeof(p));
	p.stale_after_ms = 1500;
	p.max_lag_bytes = 16 * MB;
	p.max_lag_s = 10.0;
	p.over_lag = OVER_LAG_DOWN;
	p.receiver_silence_max_ms = 60000;
	p.primary_read_pct = 100;
	p.step_pct = 10;
	return p;
}

/* fuzz_view: 0 no sample, 1 primary, 2 replica, 3 lagging replica, 4 failing, 5 drained replica. */
static struct node_view
fuzz_view(int i)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = i != 0;
	v.sample.server_version_num = 150004;
	v.sample.in_recovery = i != 1;
	v.sample.read_only = i != 1;
	v.sample.timeline = 2;
	v.sample.receiver_streaming = true;
	v.sample.have_receiver_silence = true;
	v.sample.receiver_silence_s = 0.5;
	v.sample.receive_lsn = 0x16B374D848ULL;
	v.sample.replay_lsn = 0x16B374D848ULL - (i == 3 ? 35 * MB : 0);
	v.sample.latest_end_lsn = 0x16B374D848ULL;
	v.sample.current_lsn = 0x3000060ULL;
	v.sample.lag_bytes = i == 3 ? 35 * MB : 3 * MB;
	v.sample.have_lag_s = true;
	v.sample.lag_s = i == 3 ? 12.25 : 2.5;
	v.sample.max_connections = 100;
	v.sample.client_backends = 5;
	v.sample.streaming_replicas = i == 1 ? 2 : 0;
	v.sample_age_ms = 200;
	v.lag_over = i == 3;
	v.failing = i == 4;
	v.failure = i == 4 ? POLL_TIMEOUT : POLL_OK;
	v.replica_weight_pct = 70;
	v.load_weight_pct = 80;
	v.override = i == 5 ? OVERRIDE_DRAIN : OVERRIDE_NONE;
	v.polls[POLL_OK] = 1000;
	v.role_changes = 1;
	return v;
}

#define FUZZ_VIEWS 6

static bool
is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

/* check_sniff: YES only for "METHOD /" or "METHOD *"; MAYBE only for what could still become that. */
static void
check_sniff(const char *buf, size_t size, enum http_sniff sniff)
{
	size_t i = 0;

	while (i < size && is_upper(buf[i]))
		i++;
	if (sniff == HTTP_SNIFF_YES)
		FUZZ_CHECK(i >= 1 && i <= 16 && size >= i + 2 && buf[i] == ' ' &&
		           (buf[i + 1] == '/' || buf[i + 1] == '*'));
	if (sniff == HTTP_SNIFF_MAYBE)
		FUZZ_CHECK(i == size || (i >= 1 && i + 1 == size && buf[i] == ' '));
	/* once YES, more bytes never change it: the listener commits to HTTP there */
	for (size_t k = 1; k < size && k <= 20; k++)
		if (http_sniff(buf, k) == HTTP_SNIFF_YES)
			FUZZ_CHECK(sniff == HTTP_SNIFF_YES);
}

static void
check_request_limits(const struct request *r)
{
	FUZZ_CHECK((unsigned)r->kind < REQUEST_KIND_COUNT);
	if (r->has_max_lag_bytes)
		FUZZ_CHECK(r->max_lag_bytes >= 0);
	if (r->has_max_lag_s)
		FUZZ_CHECK(isfinite(r->max_lag_s) && r->max_lag_s >= 0);
}

/* check_route: the route agrees with the path; a check carries a valid request. */
static void
check_route(const struct http_request *h, enum http_route route, const struct request *r)
{
	enum request_kind kind;
	bool health = strcmp(h->path, "/") == 0 || strcmp(h->path, "/readiness") == 0 ||
	              (h->path[0] == '/' && request_kind_parse(h->path + 1, strlen(h->path + 1), &kind));

	FUZZ_CHECK((route == HTTP_ROUTE_STATUS) == (strcmp(h->path, "/status") == 0));
	FUZZ_CHECK((route == HTTP_ROUTE_METRICS) == (strcmp(h->path, "/metrics") == 0));
	FUZZ_CHECK((route == HTTP_ROUTE_LIVENESS) == (strcmp(h->path, "/liveness") == 0));
	bool cluster_replica = strcmp(h->path, "/cluster/replica") == 0;

	FUZZ_CHECK((route == HTTP_ROUTE_CLUSTER) == (strcmp(h->path, "/cluster") == 0));
	FUZZ_CHECK(route != HTTP_ROUTE_CLUSTER_REPLICA || cluster_replica);
	FUZZ_CHECK((route == HTTP_ROUTE_CHECK) == (health && route != HTTP_ROUTE_BAD_QUERY));
	FUZZ_CHECK(route != HTTP_ROUTE_BAD_QUERY || health || cluster_replica);
	FUZZ_CHECK(!(health || cluster_replica) || route == HTTP_ROUTE_CHECK || route == HTTP_ROUTE_BAD_QUERY ||
	           route == HTTP_ROUTE_CLUSTER_REPLICA);
	if (route == HTTP_ROUTE_CHECK) {
		check_request_limits(r);
		if (h->query[0] == '\0')
			FUZZ_CHECK(!r->has_max_lag_bytes && !r->has_max_lag_s);
	}
}

/* header_value finds "\r\nName: " in the head and returns the number after it, or -1. */
static long long
header_number(const char *head, size_t head_len, const char *name)
{
	char pattern[64];
	size_t pl = (size_t)snprintf(pattern, sizeof(pattern), "\r\n%s: ", name);

	for (size_t i = 0; i + pl <= head_len; i++)
		if (strncasecmp(head + i, pattern, pl) == 0) {
			char *end;
			long long v = strtoll(head + i + pl, &end, 10);

			FUZZ_CHECK(end > head + i + pl && end[0] == '\r' && end[1] == '\n');
			return v;
		}
	return -1;
}

/* check_response: the framing HAProxy and curl rely on. */
static void
check_response(const char *out, size_t n, bool with_body, int status, size_t blen)
{
	char status_prefix[16];
	size_t head_len = 0;

	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(strncmp(out, "HTTP/1.1 ", 9) == 0);
	snprintf(status_prefix, sizeof(status_prefix), "HTTP/1.1 %03d ", status);
	FUZZ_CHECK(n > 13 && strncmp(out, status_prefix, 13) == 0);
	for (size_t i = 0; i + 3 < n; i++)
		if (memcmp(out + i, "\r\n\r\n", 4) == 0) {
			head_len = i + 4;
			break;
		}
	FUZZ_CHECK(head_len > 0);
	/* no bare LF and no NUL in the head */
	for (size_t i = 0; i < head_len; i++) {
		FUZZ_CHECK(out[i] != '\0');
		if (out[i] == '\n')
			FUZZ_CHECK(i > 0 && out[i - 1] == '\r');
	}
	FUZZ_CHECK(memmem(out, head_len, "\r\nConnection: close\r\n", 21) != NULL);
	if (status == 405)
		FUZZ_CHECK(memmem(out, head_len, "\r\nAllow: GET, HEAD, OPTIONS\r\n", 29) != NULL);
	if (with_body) {
		FUZZ_CHECK(n == head_len + blen);
		FUZZ_CHECK(header_number(out, head_len, "Content-Length") == (long long)blen);
	} else {
		FUZZ_CHECK(n == head_len);
		FUZZ_CHECK(header_number(out, head_len, "Content-Length") >= 0);
	}
}

/* check_small_buffer: into any smaller buffer the response is refused whole, never cut. */
static void
check_small_buffer(enum http_method method, int status, const char *type, const char *body, size_t blen, size_t full,
                   size_t outlen)
{
	char *out = malloc(outlen > 0 ? outlen : 1);
	size_t m;

	FUZZ_CHECK(out != NULL);
	m = http_response(method, status, type, body, blen, out, outlen);
	FUZZ_CHECK(m == 0 || m == full);
	if (outlen > full)
		FUZZ_CHECK(m == full);
	if (outlen < full)
		FUZZ_CHECK(m == 0);
	free(out);
}

/*
 * answer: respond_http (what the listener sends) against what the harness expects from the route: the
 * status (a check: 200 when verdict_for says up; 404 when role_status=404 and the node only holds the other
 * role; else 503), the body (render_json, render_metrics, or "NNN\n" for an error) and the framing.
 */
static void
answer(const uint8_t *data, size_t size, enum http_parse parsed, const struct http_request *h)
{
	static char body[FUZZ_BODY_MAX], out[RESPOND_REPLY_MAX + 512];
	struct render_counters counters;
	struct policy p = fuzz_policy();
	struct node_view v = fuzz_view((int)(size % FUZZ_VIEWS));
	struct respond_ctx x = {&v, &p, &counters, REQUEST_REPLICA, 0, NULL};
	enum http_method method = parsed == HTTP_COMPLETE ? h->method : HTTP_GET;
	const char *type = "application/json";
	struct request r;
	struct verdict vd;
	size_t blen = 0, n;
	int status;

	memset(&counters, 0, sizeof(counters));
	counters.checks[PROTOCOL_HTTP] = size;
	if (parsed == HTTP_TOO_LARGE) {
		status = 431;
	} else if (parsed != HTTP_COMPLETE) {
		status = 400;
	} else if (h->method == HTTP_OTHER) {
		status = 405;
	} else {
		enum http_route route = http_route(h, &r);

		check_route(h, route, &r);
		switch (route) {
		case HTTP_ROUTE_CHECK:
			verdict_for(&v, &r, &p, &vd);
			if (vd.up)
				status = 200;
			else if (r.other_role_status == 404 &&
			         (vd.why == REASON_IS_REPLICA || vd.why == REASON_IS_PRIMARY))
				status = 404;
			else
				status = 503;
			FUZZ_CHECK(r.other_role_status == 0 || r.other_role_status == 404 ||
			           r.other_role_status == 503);
			blen = render_json(&v, &p, &r, &counters, body, sizeof(body));
			FUZZ_CHECK(blen > 2 && body[0] == '{' && strcmp(body + blen - 2, "}\n") == 0);
			break;
		case HTTP_ROUTE_LIVENESS:
			status = 200;
			blen = (size_t)snprintf(body, sizeof(body), "{\"alive\":true}\n");
			break;
		case HTTP_ROUTE_STATUS:
			status = 200;
			blen = render_json(&v, &p, NULL, &counters, body, sizeof(body));
			FUZZ_CHECK(blen > 2 && body[0] == '{' && strcmp(body + blen - 2, "}\n") == 0);
			break;
		case HTTP_ROUTE_CLUSTER:
			status = 200;
			blen = clusterview_json(&v, &p, body, sizeof(body));
			FUZZ_CHECK(blen > 2 && body[0] == '{');
			break;
		case HTTP_ROUTE_CLUSTER_REPLICA:
			status = clusterview_replica(&v, &p, &r, body, sizeof(body), &blen) ? 200 : 503;
			FUZZ_CHECK(blen > 2 && body[0] == '{');
			break;
		case HTTP_ROUTE_METRICS:
			status = 200;
			type = "text/plain; version=0.0.4; charset=utf-8";
			blen = render_metrics(&v, &p, &counters, body, sizeof(body));
			FUZZ_CHECK(blen > 0 && body[blen - 1] == '\n');
			break;
		case HTTP_ROUTE_BAD_QUERY:
			status = 400;
			break;
		case HTTP_ROUTE_NOT_FOUND:
			status = 404;
			break;
		default:
			FUZZ_CHECK(!"http_route returned no route");
			return;
		}
		FUZZ_CHECK(strlen(body) == blen || blen == 0);
		/* an error's body is its status, but a 503 keeps what was rendered, and a check its verdict */
		if (route != HTTP_ROUTE_CHECK && status >= 400 && status != 503) {
			type = "text/plain; charset=utf-8";
			blen = (size_t)snprintf(body, sizeof(body), "%d\n", status);
		}
	}
	if (parsed != HTTP_COMPLETE || h->method == HTTP_OTHER) {
		type = "text/plain; charset=utf-8";
		blen = (size_t)snprintf(body, sizeof(body), "%d\n", status);
	}
	/* what the listener sends is what respond_http writes: the same status, body and framing */
	n = respond_http(&x, parsed, h, out, sizeof(out));
	check_response(out, n, method != HTTP_HEAD && method != HTTP_OPTIONS, status, blen);
	if (method != HTTP_HEAD && method != HTTP_OPTIONS)
		FUZZ_CHECK(n >= blen && memcmp(out + n - blen, body, blen) == 0);
	FUZZ_CHECK(memmem(out, n, type, strlen(type)) != NULL);
	/* a buffer size taken from the input, around the full length */
	if (size >= 2) {
		size_t shorter = (size_t)(data[size - 1] % 64);

		check_small_buffer(method, status, type, body, blen, n, shorter <= n + 1 ? n + 1 - shorter : 0);
	}
}

/* route_raw: http_route on a path and query taken straight from the input ("/path?query"). */
static void
route_raw(const char *buf, size_t size)
{
	struct http_request h;
	struct request r;
	const char *q;
	size_t plen, qlen;

	if (size == 0 || buf[0] != '/' || memchr(buf, '\0', size) != NULL)
		return;
	memset(&h, 0, sizeof(h));
	q = memchr(buf, '?', size);
	plen = q != NULL ? (size_t)(q - buf) : size;
	qlen = q != NULL ? size - plen - 1 : 0;
	if (plen >= sizeof(h.path) || qlen >= sizeof(h.query))
		return;
	memcpy(h.path, buf, plen);
	if (q != NULL)
		memcpy(h.query, q + 1, qlen);
	check_route(&h, http_route(&h, &r), &r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	enum http_sniff sniff = http_sniff(buf, size);
	struct http_request h;
	enum http_parse parsed;

	FUZZ_CHECK(sniff == HTTP_SNIFF_NO || sniff == HTTP_SNIFF_MAYBE || sniff == HTTP_SNIFF_YES);
	check_sniff(buf, size, sniff);

	parsed = http_parse_request(buf, size, &h);
	FUZZ_CHECK(parsed == HTTP_INCOMPLETE || parsed == HTTP_COMPLETE || parsed == HTTP_BAD ||
	           parsed == HTTP_TOO_LARGE);
	if (size < HTTP_REQUEST_MAX)
		FUZZ_CHECK(parsed != HTTP_TOO_LARGE);
	else
		FUZZ_CHECK(parsed != HTTP_INCOMPLETE);
	if (parsed == HTTP_COMPLETE) {
		struct http_request h2;
		char *longer = malloc(size + 8);

		/* a request the parser serves is one the sniffer hands it */
		FUZZ_CHECK(sniff == HTTP_SNIFF_YES);
		FUZZ_CHECK(memchr(h.path, '\0', sizeof(h.path)) != NULL);
		FUZZ_CHECK(memchr(h.query, '\0', sizeof(h.query)) != NULL);
		FUZZ_CHECK(h.path[0] == '/' || strcmp(h.path, "*") == 0);
		FUZZ_CHECK(strpbrk(h.query, " \r\n") == NULL);
		FUZZ_CHECK(h.method == HTTP_GET || h.method == HTTP_HEAD || h.method == HTTP_OPTIONS ||
		           h.method == HTTP_OTHER);
		/* pipelined bytes change nothing */
		FUZZ_CHECK(longer != NULL);
		memcpy(longer, buf, size);
		memcpy(longer + size, "\0\xffGET /", 8);
		FUZZ_CHECK(http_parse_request(longer, size + 8, &h2) == HTTP_COMPLETE);
		FUZZ_CHECK(h2.method == h.method && strcmp(h2.path, h.path) == 0 && strcmp(h2.query, h.query) == 0);
		free(longer);
	}
	answer(data, size, parsed, &h);
	route_raw(buf, size);
	return 0;
}
