/*
 * test_http.c: the HTTP side of the agent port, as HAProxy's httpchk, Patroni templates and curl use it.
 * Sniffing an agent line from a request, parsing (complete, partial, oversized, pipelined, garbage),
 * routing every README path and Patroni's query parameters, and framing the response.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "http.h"
#include "request.h"

#define KB_ 1024LL
#define MB  (1024LL * 1024LL)

static const char *
sniff_name(enum http_sniff s)
{
	switch (s) {
	case HTTP_SNIFF_NO:
		return "HTTP_SNIFF_NO";
	case HTTP_SNIFF_MAYBE:
		return "HTTP_SNIFF_MAYBE";
	case HTTP_SNIFF_YES:
		return "HTTP_SNIFF_YES";
	}
	return "?";
}

static const char *
parse_name(enum http_parse p)
{
	switch (p) {
	case HTTP_INCOMPLETE:
		return "HTTP_INCOMPLETE";
	case HTTP_COMPLETE:
		return "HTTP_COMPLETE";
	case HTTP_BAD:
		return "HTTP_BAD";
	case HTTP_TOO_LARGE:
		return "HTTP_TOO_LARGE";
	}
	return "?";
}

static const char *
route_name(enum http_route r)
{
	switch (r) {
	case HTTP_ROUTE_CHECK:
		return "HTTP_ROUTE_CHECK";
	case HTTP_ROUTE_LIVENESS:
		return "HTTP_ROUTE_LIVENESS";
	case HTTP_ROUTE_STATUS:
		return "HTTP_ROUTE_STATUS";
	case HTTP_ROUTE_METRICS:
		return "HTTP_ROUTE_METRICS";
	case HTTP_ROUTE_CLUSTER:
		return "HTTP_ROUTE_CLUSTER";
	case HTTP_ROUTE_CLUSTER_REPLICA:
		return "HTTP_ROUTE_CLUSTER_REPLICA";
	case HTTP_ROUTE_NOT_FOUND:
		return "HTTP_ROUTE_NOT_FOUND";
	case HTTP_ROUTE_BAD_QUERY:
		return "HTTP_ROUTE_BAD_QUERY";
	case HTTP_ROUTE_UNAUTHORIZED:
		return "HTTP_ROUTE_UNAUTHORIZED";
	}
	return "?";
}

/* show writes buf as a C string literal, for failure messages about requests with CR, LF and NUL. */
static const char *
show(const char *buf, size_t len)
{
	static char out[512];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 8 < sizeof(out); i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\r')
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

/* sniff_n sniffs len bytes copied into a buffer of exactly that size, so ASan sees any read past len. */
static enum http_sniff
sniff_n(const char *buf, size_t len)
{
	char *copy = malloc(len > 0 ? len : 1);
	enum http_sniff got;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	got = http_sniff(copy, len);
	free(copy);
	return got;
}

static void
assert_sniff(const char *s, enum http_sniff want)
{
	enum http_sniff got = sniff_n(s, strlen(s));

	if (got != want)
		print_error("http_sniff(\"%s\") = %s, expected %s\n", show(s, strlen(s)), sniff_name(got),
		            sniff_name(want));
	assert_int_equal(got, want);
}

/* parse_n parses len bytes copied into a buffer of exactly that size, into *out (first filled with garbage). */
static enum http_parse
parse_n(const char *buf, size_t len, struct http_request *out)
{
	char *copy = malloc(len > 0 ? len : 1);
	enum http_parse got;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	memset(out, 0x5a, sizeof(*out));
	got = http_parse_request(copy, len, out);
	free(copy);
	return got;
}

static enum http_parse
parse(const char *s, struct http_request *out)
{
	return parse_n(s, strlen(s), out);
}

static void
assert_parse_n(const char *buf, size_t len, enum http_parse want)
{
	struct http_request h;
	enum http_parse got = parse_n(buf, len, &h);

	if (got != want)
		print_error("http_parse_request(\"%s\") = %s, expected %s\n", show(buf, len), parse_name(got),
		            parse_name(want));
	assert_int_equal(got, want);
}

static void
assert_parse(const char *s, enum http_parse want)
{
	assert_parse_n(s, strlen(s), want);
}

/* assert_request parses s and checks it is complete with this method, path and query. */
static void
assert_request(const char *s, enum http_method method, const char *path, const char *query)
{
	struct http_request h;
	enum http_parse got = parse(s, &h);

	if (got != HTTP_COMPLETE)
		print_error("http_parse_request(\"%s\") = %s, expected HTTP_COMPLETE\n", show(s, strlen(s)),
		            parse_name(got));
	assert_int_equal(got, HTTP_COMPLETE);
	assert_int_equal(h.method, method);
	assert_non_null(memchr(h.path, '\0', sizeof(h.path)));
	assert_non_null(memchr(h.query, '\0', sizeof(h.query)));
	assert_string_equal(h.path, path);
	assert_string_equal(h.query, query);
}

/* route_of builds a request with this path and query (as the parser leaves them) and routes it. */
static enum http_route
route_of(const char *path, const char *query, struct request *r)
{
	struct http_request h;

	memset(&h, 0, sizeof(h));
	assert_true(strlen(path) < sizeof(h.path));
	assert_true(strlen(query) < sizeof(h.query));
	strcpy(h.path, path);
	strcpy(h.query, query);
	memset(r, 0x5a, sizeof(*r));
	return http_route(&h, r);
}

static void
assert_route(const char *path, const char *query, enum http_route want)
{
	struct request r;
	enum http_route got = route_of(path, query, &r);

	if (got != want)
		print_error("http_route(\"%s\", \"%s\") = %s, expected %s\n", path, query, route_name(got),
		            route_name(want));
	assert_int_equal(got, want);
}

/* assert_check routes path without a query: a health check of this kind, without lag limits of its own. */
static void
assert_check(const char *path, enum request_kind kind)
{
	struct request r;
	enum http_route got = route_of(path, "", &r);

	if (got != HTTP_ROUTE_CHECK)
		print_error("http_route(\"%s\") = %s, expected HTTP_ROUTE_CHECK\n", path, route_name(got));
	assert_int_equal(got, HTTP_ROUTE_CHECK);
	if (r.kind != kind)
		print_error("http_route(\"%s\") asks %s, expected %s\n", path, request_kind_name(r.kind),
		            request_kind_name(kind));
	assert_int_equal(r.kind, kind);
	assert_false(r.has_max_lag_bytes);
	assert_false(r.has_max_lag_s);
}

/* http_sniff */

static void
test_sniff_method_and_target_is_http(void **state)
{
	(void)state;
	assert_sniff("GET /", HTTP_SNIFF_YES);
	assert_sniff("OPTIONS *", HTTP_SNIFF_YES);
	assert_sniff("HEAD /x", HTTP_SNIFF_YES);
	assert_sniff("GET /primary HTTP/1.0\r\n\r\n", HTTP_SNIFF_YES);
	assert_sniff("OPTIONS /primary HTTP/1.0\r\n", HTTP_SNIFF_YES);
	/* any upper-case method: the parser answers it 405, not the agent "bad-request" */
	assert_sniff("POST /primary", HTTP_SNIFF_YES);
	assert_sniff("DELETE /", HTTP_SNIFF_YES);
}

static void
test_sniff_prefix_of_a_method_waits_for_more(void **state)
{
	(void)state;
	assert_sniff("G", HTTP_SNIFF_MAYBE);
	assert_sniff("GE", HTTP_SNIFF_MAYBE);
	assert_sniff("GET", HTTP_SNIFF_MAYBE);
	assert_sniff("GET ", HTTP_SNIFF_MAYBE);
	assert_sniff("OPTIONS", HTTP_SNIFF_MAYBE);
	assert_sniff("OPTIONS ", HTTP_SNIFF_MAYBE);
}

static void
test_sniff_nothing_yet_waits_for_more(void **state)
{
	(void)state;
	/* no byte yet says nothing; the listener answers default_request if nothing ever comes */
	assert_int_equal(sniff_n("", 0), HTTP_SNIFF_MAYBE);
}

static void
test_sniff_upper_case_agent_word_waits_for_more(void **state)
{
	(void)state;
	/* "PRIMARY" could still become "PRIMARY /": the listener decides on silence (then an agent line) */
	assert_sniff("PRIMARY", HTTP_SNIFF_MAYBE);
	assert_sniff("REPLICA", HTTP_SNIFF_MAYBE);
}

static void
test_sniff_agent_lines_are_not_http(void **state)
{
	(void)state;
	assert_sniff("primary\n", HTTP_SNIFF_NO);
	assert_sniff("PRIMARY\n", HTTP_SNIFF_NO);
	assert_sniff("PRIMARY lag=1MB", HTTP_SNIFF_NO);
	assert_sniff("REPLICA\r\n", HTTP_SNIFF_NO);
	assert_sniff("replica lag=16MB lag_s=5\n", HTTP_SNIFF_NO);
	assert_sniff("read-only", HTTP_SNIFF_NO);
	assert_sniff("\n", HTTP_SNIFF_NO);
	assert_sniff(" ", HTTP_SNIFF_NO);
	assert_sniff("peer-state\n", HTTP_SNIFF_NO);
}

static void
test_sniff_lower_case_or_malformed_request_is_not_http(void **state)
{
	(void)state;
	assert_sniff("get /", HTTP_SNIFF_NO);
	assert_sniff("Get /", HTTP_SNIFF_NO);
	assert_sniff(" GET /", HTTP_SNIFF_NO);
	assert_sniff("GET  /", HTTP_SNIFF_NO);
	assert_sniff("GET primary", HTTP_SNIFF_NO);
	assert_sniff("GET\t/", HTTP_SNIFF_NO);
	assert_sniff("GET\r\n", HTTP_SNIFF_NO);
}

static void
test_sniff_binary_is_not_http(void **state)
{
	(void)state;
	assert_int_equal(sniff_n("\0", 1), HTTP_SNIFF_NO);
	assert_int_equal(sniff_n("GET\0/", 5), HTTP_SNIFF_NO);
	assert_int_equal(sniff_n("\x16\x03\x01\x02\x00", 5), HTTP_SNIFF_NO); /* a TLS ClientHello */
	assert_int_equal(sniff_n("\xff\xfe", 2), HTTP_SNIFF_NO);
}

static void
test_sniff_long_upper_case_word_is_not_http(void **state)
{
	(void)state;
	/* no method is that long: an agent line (and then a bad request) without waiting */
	assert_sniff("PRIMARYREPLICAHEALTH", HTTP_SNIFF_NO);
	assert_sniff("ABCDEFGHIJKLMNOPQRSTUVWXYZ /", HTTP_SNIFF_NO);
}

static void
test_sniff_reads_only_len_bytes(void **state)
{
	(void)state;
	/* what lies past len is not there yet */
	assert_int_equal(sniff_n("GET /", 3), HTTP_SNIFF_MAYBE);
	assert_int_equal(sniff_n("GET /", 4), HTTP_SNIFF_MAYBE);
	assert_int_equal(sniff_n("GET /", 5), HTTP_SNIFF_YES);
	assert_int_equal(sniff_n("PRIMARY\n", 7), HTTP_SNIFF_MAYBE);
}

/* http_parse_request: good requests */

static void
test_parse_haproxy_bare_httpchk_request(void **state)
{
	(void)state;
	/* HAProxy 2.6 "option httpchk GET /primary": request line and the empty line, nothing else */
	assert_request("GET /primary HTTP/1.0\r\n\r\n", HTTP_GET, "/primary", "");
	/* the Patroni template's checks */
	assert_request("OPTIONS /primary HTTP/1.0\r\n\r\n", HTTP_OPTIONS, "/primary", "");
	assert_request("HEAD /replica HTTP/1.0\r\n\r\n", HTTP_HEAD, "/replica", "");
}

static void
test_parse_curl_request_with_headers(void **state)
{
	(void)state;
	assert_request("GET /status HTTP/1.1\r\nHost: 127.0.0.1:5480\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
	               HTTP_GET, "/status", "");
	assert_request("GET /metrics HTTP/1.1\r\nHost: [::1]:5480\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n"
	               "Accept-Encoding: gzip\r\nX-Empty:\r\n\r\n",
	               HTTP_GET, "/metrics", "");
}

static void
test_parse_lf_only_line_ends(void **state)
{
	(void)state;
	assert_request("GET /replica HTTP/1.1\nHost: x\n\n", HTTP_GET, "/replica", "");
	assert_request("GET /replica HTTP/1.0\n\n", HTTP_GET, "/replica", "");
	/* mixed, as some hand-written clients send */
	assert_request("GET /replica HTTP/1.1\r\nHost: x\n\r\n", HTTP_GET, "/replica", "");
}

static void
test_parse_options_and_head_http_1_1(void **state)
{
	(void)state;
	assert_request("OPTIONS /primary HTTP/1.1\r\nHost: pg1\r\n\r\n", HTTP_OPTIONS, "/primary", "");
	assert_request("HEAD /replica?lag=16MB HTTP/1.1\r\nHost: pg1\r\n\r\n", HTTP_HEAD, "/replica", "lag=16MB");
	assert_request("OPTIONS * HTTP/1.1\r\nHost: pg1\r\n\r\n", HTTP_OPTIONS, "*", "");
}

static void
test_parse_keeps_the_query_as_sent(void **state)
{
	(void)state;
	/* the query is decoded per parameter by http_route, so "%26" stays inside its value */
	assert_request("GET /replica?lag=16%4DB&lag_s=5 HTTP/1.1\r\n\r\n", HTTP_GET, "/replica", "lag=16%4DB&lag_s=5");
	assert_request("GET /replica? HTTP/1.1\r\n\r\n", HTTP_GET, "/replica", "");
}

static void
test_parse_decodes_the_path(void **state)
{
	(void)state;
	assert_request("GET /prim%61ry HTTP/1.1\r\n\r\n", HTTP_GET, "/primary", "");
	assert_request("GET /read%2Donly HTTP/1.1\r\n\r\n", HTTP_GET, "/read-only", "");
	assert_request("GET /read%2donly HTTP/1.1\r\n\r\n", HTTP_GET, "/read-only", "");
	/* '+' is a space only in a query */
	assert_request("GET /a+b HTTP/1.1\r\n\r\n", HTTP_GET, "/a+b", "");
}

static void
test_parse_other_methods_are_complete_for_a_405(void **state)
{
	(void)state;
	assert_request("POST /primary HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_OTHER, "/primary", "");
	assert_request("DELETE /primary HTTP/1.1\r\n\r\n", HTTP_OTHER, "/primary", "");
	assert_request("GETX / HTTP/1.1\r\n\r\n", HTTP_OTHER, "/", "");
	assert_request("GE / HTTP/1.1\r\n\r\n", HTTP_OTHER, "/", "");
	/* the method is compared whole */
	assert_request("HEAP / HTTP/1.1\r\n\r\n", HTTP_OTHER, "/", "");
	assert_request("GEX / HTTP/1.1\r\n\r\n", HTTP_OTHER, "/", "");
	assert_request("OPTIONZ / HTTP/1.1\r\n\r\n", HTTP_OTHER, "/", "");
}

/* http_parse_request: partial */

static void
assert_every_prefix_is_incomplete(const char *s)
{
	size_t len = strlen(s);

	for (size_t n = 0; n < len; n++)
		assert_parse_n(s, n, HTTP_INCOMPLETE);
	assert_parse_n(s, len, HTTP_COMPLETE);
}

static void
test_parse_every_prefix_of_a_good_request_is_incomplete(void **state)
{
	(void)state;
	assert_every_prefix_is_incomplete("GET /primary HTTP/1.0\r\n\r\n");
	assert_every_prefix_is_incomplete("GET /status HTTP/1.1\r\nHost: 127.0.0.1:5480\r\nUser-Agent: curl/7.88.1\r\n"
	                                  "Accept: */*\r\n\r\n");
	assert_every_prefix_is_incomplete("GET /replica HTTP/1.1\nHost: x\n\n");
	assert_every_prefix_is_incomplete("HEAD /replica?lag=16MB HTTP/1.1\r\n\r\n");
	assert_every_prefix_is_incomplete("OPTIONS /primary HTTP/1.1\r\n\r\n");
}

static void
test_parse_request_line_without_the_empty_line_is_incomplete(void **state)
{
	(void)state;
	assert_parse("GET /primary HTTP/1.0\r\n", HTTP_INCOMPLETE);
	assert_parse("GET /primary HTTP/1.1\r\nHost: x\r\n", HTTP_INCOMPLETE);
	assert_parse("GET /primary HTTP/1.1\r\nHost: x\r\n\r", HTTP_INCOMPLETE);
}

/* http_parse_request: oversized */

/* padded_request writes a request line and "X-Pad: aaa" headers up to exactly len bytes, without its end. */
static char *
padded_request(size_t len)
{
	static const char line[] = "GET /primary HTTP/1.1\r\n";
	char *buf = malloc(len);
	size_t at = sizeof(line) - 1;

	assert_non_null(buf);
	assert_true(len > at + 16);
	memcpy(buf, line, at);
	while (at < len) {
		size_t left = len - at, take = left > 80 ? 80 : left;

		memset(buf + at, 'a', take);
		if (take >= 10) {
			memcpy(buf + at, "X-Pad: ", 7);
			memcpy(buf + at + take - 2, "\r\n", 2);
		}
		at += take;
	}
	return buf;
}

static void
test_parse_no_end_within_the_limit_is_too_large(void **state)
{
	char *buf = padded_request(HTTP_REQUEST_MAX + 100);

	(void)state;
	assert_parse_n(buf, HTTP_REQUEST_MAX - 1, HTTP_INCOMPLETE);
	assert_parse_n(buf, HTTP_REQUEST_MAX, HTTP_TOO_LARGE);
	assert_parse_n(buf, HTTP_REQUEST_MAX + 100, HTTP_TOO_LARGE);
	free(buf);
}

static void
test_parse_end_past_the_limit_is_too_large(void **state)
{
	char *buf = padded_request(HTTP_REQUEST_MAX + 100);

	(void)state;
	/* the empty line arrives, but after HTTP_REQUEST_MAX bytes */
	memcpy(buf + HTTP_REQUEST_MAX + 96, "\r\n\r\n", 4);
	assert_parse_n(buf, HTTP_REQUEST_MAX + 100, HTTP_TOO_LARGE);
	free(buf);
}

static void
test_parse_request_of_exactly_the_limit_is_complete(void **state)
{
	char *buf = padded_request(HTTP_REQUEST_MAX + 1);

	(void)state;
	/* "requests up to 4 kB": the empty line ends on the last byte allowed */
	memcpy(buf + HTTP_REQUEST_MAX - 4, "\r\n\r\n", 4);
	buf[HTTP_REQUEST_MAX - 5] = 'a';
	assert_parse_n(buf, HTTP_REQUEST_MAX, HTTP_COMPLETE);
	/* one byte more is over it */
	memcpy(buf + HTTP_REQUEST_MAX - 4, "a\r\n\r\n", 5);
	assert_parse_n(buf, HTTP_REQUEST_MAX + 1, HTTP_TOO_LARGE);
	free(buf);
}

/* http_parse_request: pipelined */

static void
test_parse_pipelined_requests_answer_the_first(void **state)
{
	static const char two[] =
	    "GET /primary HTTP/1.1\r\nHost: a\r\n\r\nGET /replica?lag=1MB HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http_request h;

	(void)state;
	assert_int_equal(parse(two, &h), HTTP_COMPLETE);
	assert_int_equal(h.method, HTTP_GET);
	assert_string_equal(h.path, "/primary");
	assert_string_equal(h.query, "");
}

static void
test_parse_ignores_any_bytes_after_the_request(void **state)
{
	static const char req[] = "HEAD /replica HTTP/1.0\r\n\r\n\0\xff\x01 garbage\r\n\r\n";
	struct http_request h;

	(void)state;
	assert_int_equal(parse_n(req, sizeof(req) - 1, &h), HTTP_COMPLETE);
	assert_int_equal(h.method, HTTP_HEAD);
	assert_string_equal(h.path, "/replica");
	/* even a second request that is too large */
	{
		char *buf = padded_request(HTTP_REQUEST_MAX * 2);

		memcpy(buf, "GET /health HTTP/1.1\r\n\r\n", 24);
		assert_int_equal(parse_n(buf, HTTP_REQUEST_MAX * 2, &h), HTTP_COMPLETE);
		assert_string_equal(h.path, "/health");
		free(buf);
	}
}

/* http_parse_request: garbage */

static void
test_parse_binary_is_bad(void **state)
{
	static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n";
	static const char high[] = "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n";
	static const char del[] = "GET /primary HTTP/1.1\r\nX: \x7f\r\n\r\n";

	(void)state;
	assert_parse_n(tls, sizeof(tls) - 1, HTTP_BAD);
	assert_parse(high, HTTP_BAD);
	assert_parse(del, HTTP_BAD);
	assert_parse("\n\n", HTTP_BAD);
	assert_parse("\r\n\r\n", HTTP_BAD);
}

static void
test_parse_nul_byte_is_bad(void **state)
{
	static const char in_path[] = "GET /prim\0ary HTTP/1.1\r\n\r\n";
	static const char in_header[] = "GET /primary HTTP/1.1\r\nHost: a\0b\r\n\r\n";
	static const char in_method[] = "G\0T /primary HTTP/1.1\r\n\r\n";
	static const char escaped[] = "GET /prim%00ary HTTP/1.1\r\n\r\n";

	(void)state;
	assert_parse_n(in_path, sizeof(in_path) - 1, HTTP_BAD);
	assert_parse_n(in_header, sizeof(in_header) - 1, HTTP_BAD);
	assert_parse_n(in_method, sizeof(in_method) - 1, HTTP_BAD);
	assert_parse(escaped, HTTP_BAD);
}

static void
test_parse_missing_version_is_bad(void **state)
{
	(void)state;
	/* HTTP/0.9: a request line without a version is not served */
	assert_parse("GET /primary\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary\n\n", HTTP_BAD);
	assert_parse("GET /primary \r\n\r\n", HTTP_BAD);
	assert_parse("GET\r\n\r\n", HTTP_BAD);
}

static void
test_parse_other_versions_are_bad(void **state)
{
	(void)state;
	assert_parse("GET /primary HTTP/2.0\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.2\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.10\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary http/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1 \r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1x\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary  HTTP/1.1\r\n\r\n", HTTP_BAD);
}

static void
test_parse_lower_case_method_is_bad(void **state)
{
	(void)state;
	assert_parse("get /primary HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("Get /primary HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse(" GET /primary HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET\t/primary HTTP/1.1\r\n\r\n", HTTP_BAD);
}

static void
test_parse_overlong_method_is_bad(void **state)
{
	(void)state;
	assert_parse("ABCDEFGHIJKLMNOPQ /primary HTTP/1.1\r\n\r\n", HTTP_BAD);
}

static void
test_parse_header_line_without_colon_is_bad(void **state)
{
	(void)state;
	assert_parse("GET /primary HTTP/1.1\r\nNoColonHere\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1\r\nHost: a\r\nbroken header\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1\nNoColonHere\n\n", HTTP_BAD);
	/* an empty name, and obs-fold continuation lines */
	assert_parse("GET /primary HTTP/1.1\r\n: value\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1\r\nHost: a\r\n folded: b\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1\r\nHost: a\r\n\tfolded: b\r\n\r\n", HTTP_BAD);
}

static void
test_parse_one_character_header_line_is_bad(void **state)
{
	(void)state;
	/* "X" is a header line without a colon too, however short, with CRLF or LF line ends */
	assert_parse("GET /primary HTTP/1.1\r\nX\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1\nX\n\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1\nHost: a\nX\nbroken header\n\n", HTTP_BAD);
}

static void
test_parse_target_not_starting_with_slash_is_bad(void **state)
{
	(void)state;
	assert_parse("GET primary HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET ?lag=1MB HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET %2Fprimary HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("OPTIONS ** HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("OPTIONS */ HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET  HTTP/1.1\r\n\r\n", HTTP_BAD);
}

static void
test_parse_bad_percent_escape_is_bad(void **state)
{
	(void)state;
	assert_parse("GET /prim%zzary HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary% HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary%4 HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary%4g HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary%4?lag=1MB HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /%%41 HTTP/1.1\r\n\r\n", HTTP_BAD);
}

static void
test_parse_control_characters_in_the_request_line_are_bad(void **state)
{
	(void)state;
	assert_parse("GET /prim\rary HTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary\rHTTP/1.1\r\n\r\n", HTTP_BAD);
	assert_parse("GET /primary HTTP/1.1\r\r\n\r\n", HTTP_BAD);
}

static void
test_parse_overlong_path_is_bad(void **state)
{
	char req[512];
	struct http_request h;
	size_t max = sizeof(h.path) - 1;

	(void)state;
	/* the longest path that fits */
	snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\n\r\n", (int)max - 1, 0);
	assert_int_equal(parse(req, &h), HTTP_COMPLETE);
	assert_int_equal(strlen(h.path), max);
	/* one more byte does not */
	snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\n\r\n", (int)max, 0);
	assert_parse(req, HTTP_BAD);
	snprintf(req, sizeof(req), "GET /%0*d?lag=1MB HTTP/1.1\r\n\r\n", 400, 0);
	assert_parse(req, HTTP_BAD);
}

static void
test_parse_overlong_query_is_bad(void **state)
{
	char req[1024];
	struct http_request h;
	size_t max = sizeof(h.query) - 1;

	(void)state;
	snprintf(req, sizeof(req), "GET /replica?lag=%0*d HTTP/1.1\r\n\r\n", (int)max - 4, 1);
	assert_int_equal(parse(req, &h), HTTP_COMPLETE);
	assert_int_equal(strlen(h.query), max);
	snprintf(req, sizeof(req), "GET /replica?lag=%0*d HTTP/1.1\r\n\r\n", (int)max - 3, 1);
	assert_parse(req, HTTP_BAD);
	snprintf(req, sizeof(req), "GET /replica?lag=%0*d HTTP/1.1\r\n\r\n", 800, 1);
	assert_parse(req, HTTP_BAD);
}

/* http_route: paths */

static void
test_route_primary_paths(void **state)
{
	(void)state;
	assert_check("/", REQUEST_PRIMARY);
	assert_check("/primary", REQUEST_PRIMARY);
	assert_check("/master", REQUEST_PRIMARY);
	assert_check("/leader", REQUEST_PRIMARY);
	assert_check("/read-write", REQUEST_PRIMARY);
}

static void
test_route_replica_paths(void **state)
{
	(void)state;
	assert_check("/replica", REQUEST_REPLICA);
	assert_check("/standby", REQUEST_REPLICA);
}

static void
test_route_read_only_paths(void **state)
{
	(void)state;
	assert_check("/read-only", REQUEST_READ_ONLY);
	assert_check("/readiness", REQUEST_READ_ONLY);
}

static void
test_route_health_path(void **state)
{
	(void)state;
	assert_check("/health", REQUEST_HEALTH);
}

static void
test_route_liveness_status_and_metrics(void **state)
{
	(void)state;
	assert_route("/liveness", "", HTTP_ROUTE_LIVENESS);
	assert_route("/status", "", HTTP_ROUTE_STATUS);
	assert_route("/metrics", "", HTTP_ROUTE_METRICS);
}

static void
test_route_unknown_path_is_not_found(void **state)
{
	(void)state;
	assert_route("/nope", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/primaryx", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/primary/", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("//primary", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/status/", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/metrics.txt", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/read-only-sync", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/cluster/", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/cluster/primary", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/peer-state", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("/primary lag=1MB", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("*", "", HTTP_ROUTE_NOT_FOUND);
	assert_route("", "", HTTP_ROUTE_NOT_FOUND);
	/* a path that is not found is 404 whatever its query */
	assert_route("/nope", "foo=1", HTTP_ROUTE_NOT_FOUND);
}

static void
test_route_sync_words_and_cluster_paths(void **state)
{
	struct request r;

	(void)state;
	assert_check("/sync", REQUEST_SYNC);
	assert_check("/synchronous", REQUEST_SYNC);
	assert_check("/async", REQUEST_ASYNC);
	assert_check("/asynchronous", REQUEST_ASYNC);
	assert_check("/quorum", REQUEST_QUORUM);
	assert_route("/cluster", "", HTTP_ROUTE_CLUSTER);
	assert_route("/cluster/replica", "", HTTP_ROUTE_CLUSTER_REPLICA);
	assert_int_equal(route_of("/cluster/replica", "min_lsn=0/3000060", &r), HTTP_ROUTE_CLUSTER_REPLICA);
	assert_true(r.has_min_lsn);
	assert_true(r.min_lsn == 0x3000060);
	assert_route("/cluster/replica", "min_lsn=nope", HTTP_ROUTE_BAD_QUERY);
}

static void
test_route_after_parsing_a_request(void **state)
{
	struct http_request h;
	struct request r;

	(void)state;
	assert_int_equal(parse("HEAD /replica?lag=16MB HTTP/1.1\r\nHost: a\r\n\r\n", &h), HTTP_COMPLETE);
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(http_route(&h, &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_false(r.has_max_lag_s);

	assert_int_equal(parse("GET /prim%61ry HTTP/1.0\r\n\r\n", &h), HTTP_COMPLETE);
	assert_int_equal(http_route(&h, &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.kind, REQUEST_PRIMARY);
}

/* http_route: query */

static void
test_route_query_lag_sets_the_byte_limit(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(route_of("/replica", "lag=16MB", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_false(r.has_max_lag_s);

	assert_int_equal(route_of("/replica", "lag=1048576", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.max_lag_bytes, 1 * MB);
}

static void
test_route_query_lag_s_sets_the_seconds_limit(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(route_of("/replica", "lag_s=5", &r), HTTP_ROUTE_CHECK);
	assert_false(r.has_max_lag_bytes);
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 5.0);
}

static void
test_route_query_both_limits(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(route_of("/read-only", "lag=1024kB&lag_s=2.5", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.kind, REQUEST_READ_ONLY);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 1024 * KB_);
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 2.5);
}

static void
test_route_query_replication_state_streaming_is_accepted(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(route_of("/replica", "replication_state=streaming", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_false(r.has_max_lag_bytes);
	assert_false(r.has_max_lag_s);
	assert_int_equal(route_of("/replica", "lag=16MB&replication_state=streaming", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
}

static void
test_route_query_other_replication_state_is_bad(void **state)
{
	(void)state;
	assert_route("/replica", "replication_state=x", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "replication_state=", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "replication_state", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "replication_state=Streaming", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "replication_state=streaming&replication_state=stopped", HTTP_ROUTE_BAD_QUERY);
}

static void
test_route_query_min_lsn_sets_the_position(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(route_of("/replica", "min_lsn=0/3000060", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.kind, REQUEST_REPLICA);
	assert_true(r.has_min_lsn);
	assert_true(r.min_lsn == 0x3000060ULL);
	assert_false(r.has_max_lag_bytes);
	/* percent-encoded "/", with the lag limits, on read-only */
	assert_int_equal(route_of("/read-only", "lag=16MB&min_lsn=16%2FB374D848", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.kind, REQUEST_READ_ONLY);
	assert_true(r.has_min_lsn);
	assert_true(r.min_lsn == 0x16B374D848ULL);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_int_equal(route_of("/replica", "lag_s=5", &r), HTTP_ROUTE_CHECK);
	assert_false(r.has_min_lsn);
}

static void
test_route_query_bad_min_lsn_is_bad(void **state)
{
	(void)state;
	assert_route("/replica", "min_lsn=", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "min_lsn", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "min_lsn=3000060", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "min_lsn=100000000/0", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "min_lsn=0/0/0", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "min_lsn=0x0/0", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "min_lsn=+0/0", HTTP_ROUTE_BAD_QUERY);
	assert_route("/read-only", "min_lsn=0/3000060%00", HTTP_ROUTE_BAD_QUERY);
}

static void
test_route_query_unknown_key_is_bad(void **state)
{
	(void)state;
	assert_route("/replica", "foo=1", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=16MB&foo=1", HTTP_ROUTE_BAD_QUERY);
	assert_route("/primary", "lagx=1MB", HTTP_ROUTE_BAD_QUERY);
	/* Patroni's other parameters are conditions pgcheckd does not test: never pass on them */
	assert_route("/replica", "tag_key=value", HTTP_ROUTE_BAD_QUERY);
	assert_route("/", "lag", HTTP_ROUTE_BAD_QUERY);
	assert_route("/", "=1MB", HTTP_ROUTE_BAD_QUERY);
}

static void
test_route_query_bad_value_is_bad(void **state)
{
	(void)state;
	assert_route("/replica", "lag=", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=abc", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=-1", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=16MBx", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=16+MB", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag_s=", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag_s=-1", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag_s=nan", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag_s=5s", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=%zz", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=1%", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag=1%00", HTTP_ROUTE_BAD_QUERY);
}

static void
test_route_query_values_are_percent_decoded(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(route_of("/replica", "lag=16%4DB", &r), HTTP_ROUTE_CHECK);
	assert_true(r.has_max_lag_bytes);
	assert_int_equal(r.max_lag_bytes, 16 * MB);
	assert_int_equal(route_of("/replica", "lag_s=2%2E5", &r), HTTP_ROUTE_CHECK);
	assert_true(r.has_max_lag_s);
	assert_true(r.max_lag_s == 2.5);
	assert_int_equal(route_of("/replica", "%6Cag=1MB", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.max_lag_bytes, 1 * MB);
	assert_int_equal(route_of("/replica", "replication%5Fstate=stream%69ng", &r), HTTP_ROUTE_CHECK);
	/* an encoded '&' or '=' is part of the value, not a separator */
	assert_route("/replica", "lag=1MB%26lag_s=5", HTTP_ROUTE_BAD_QUERY);
	assert_route("/replica", "lag%3D1MB", HTTP_ROUTE_BAD_QUERY);
}

static void
test_route_empty_query_parts_are_ignored(void **state)
{
	struct request r;

	(void)state;
	assert_int_equal(route_of("/replica", "&", &r), HTTP_ROUTE_CHECK);
	assert_false(r.has_max_lag_bytes);
	assert_int_equal(route_of("/replica", "lag=1MB&", &r), HTTP_ROUTE_CHECK);
	assert_int_equal(r.max_lag_bytes, 1 * MB);
	assert_int_equal(route_of("/replica", "&&lag_s=3&&", &r), HTTP_ROUTE_CHECK);
	assert_true(r.max_lag_s == 3.0);
}

static void
test_route_overlong_query_value_is_bad(void **state)
{
	char query[200];

	(void)state;
	snprintf(query, sizeof(query), "lag=%0100d", 1);
	assert_route("/replica", query, HTTP_ROUTE_BAD_QUERY);
	snprintf(query, sizeof(query), "%0100d=1", 1);
	assert_route("/replica", query, HTTP_ROUTE_BAD_QUERY);
}

static void
test_route_clears_the_request(void **state)
{
	struct request r;

	(void)state;
	/* no garbage from before survives in the request of a plain check */
	assert_int_equal(route_of("/primary", "", &r), HTTP_ROUTE_CHECK);
	assert_false(r.has_max_lag_bytes);
	assert_false(r.has_max_lag_s);
	assert_int_equal(r.max_lag_bytes, 0);
}

/* http_response */

struct response {
	char status_line[128];
	char headers[1024]; /* from the first header to the last "\r\n" before the empty line */
	const char *body;
	size_t head_len, body_len;
};

/* split_response checks the framing (a status line, CRLF header lines, an empty line) and splits it. */
static void
split_response(const char *out, size_t n, struct response *res)
{
	const char *eol = memchr(out, '\n', n), *end = NULL;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i + 3 < n; i++)
		if (memcmp(out + i, "\r\n\r\n", 4) == 0) {
			end = out + i;
			break;
		}
	if (eol == NULL || end == NULL || eol == out || eol[-1] != '\r')
		fail_msg("response \"%s\" has no CRLF status line or no empty line", show(out, n));
	assert_true((size_t)(eol - 1 - out) < sizeof(res->status_line));
	memcpy(res->status_line, out, (size_t)(eol - 1 - out));
	res->head_len = (size_t)(end + 4 - out);
	assert_true((size_t)(end + 2 - (eol + 1)) < sizeof(res->headers));
	memcpy(res->headers, eol + 1, (size_t)(end + 2 - (eol + 1)));
	/* every header line is "Name: value\r\n", without a bare LF */
	for (const char *p = res->headers; *p != '\0';) {
		const char *lf = strchr(p, '\n');

		if (lf == NULL || lf == p || lf[-1] != '\r' || memchr(p, ':', (size_t)(lf - p)) == NULL)
			fail_msg("bad header line in \"%s\"", show(out, n));
		p = lf + 1;
	}
	res->body = out + res->head_len;
	res->body_len = n - res->head_len;
}

/* header returns the value of header name (case-insensitive), or NULL. */
static const char *
header(const struct response *res, const char *name)
{
	static char value[256];
	size_t nl = strlen(name);

	for (const char *p = res->headers; *p != '\0'; p = strchr(p, '\n') + 1) {
		const char *cr = strchr(p, '\r');

		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			snprintf(value, sizeof(value), "%.*s", (int)(cr - v), v);
			return value;
		}
	}
	return NULL;
}

static size_t
respond(enum http_method method, int status, const char *type, const char *body, char *out, size_t outlen)
{
	memset(out, 'X', outlen);
	return http_response(method, status, type, body, strlen(body), out, outlen);
}

static const char json_body[] = "{\"role\":\"primary\",\"up\":true}\n";

static void
test_response_get_has_the_body_and_its_length(void **state)
{
	char out[1024], len[32];
	struct response res;
	size_t n;

	(void)state;
	n = respond(HTTP_GET, 200, "application/json", json_body, out, sizeof(out));
	assert_true(n > 0);
	split_response(out, n, &res);
	assert_string_equal(res.status_line, "HTTP/1.1 200 OK");
	assert_non_null(header(&res, "Content-Type"));
	assert_string_equal(header(&res, "Content-Type"), "application/json");
	snprintf(len, sizeof(len), "%zu", strlen(json_body));
	assert_non_null(header(&res, "Content-Length"));
	assert_string_equal(header(&res, "Content-Length"), len);
	assert_int_equal(res.body_len, strlen(json_body));
	assert_memory_equal(res.body, json_body, strlen(json_body));
}

static void
test_response_get_503_has_the_body_too(void **state)
{
	char out[1024];
	struct response res;
	size_t n;

	(void)state;
	n = respond(HTTP_GET, 503, "application/json", json_body, out, sizeof(out));
	assert_true(n > 0);
	split_response(out, n, &res);
	assert_string_equal(res.status_line, "HTTP/1.1 503 Service Unavailable");
	assert_int_equal(res.body_len, strlen(json_body));
	assert_int_equal(strtoul(header(&res, "Content-Length"), NULL, 10), strlen(json_body));
}

static void
test_response_status_lines(void **state)
{
	static const struct {
		int status;
		const char *line;
	} cases[] = {
	    {200, "HTTP/1.1 200 OK"},
	    {400, "HTTP/1.1 400 Bad Request"},
	    {404, "HTTP/1.1 404 Not Found"},
	    {405, "HTTP/1.1 405 Method Not Allowed"},
	    {408, "HTTP/1.1 408 Request Timeout"},
	    {431, "HTTP/1.1 431 Request Header Fields Too Large"},
	    {503, "HTTP/1.1 503 Service Unavailable"},
	};
	char out[1024];
	struct response res;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = respond(HTTP_GET, cases[i].status, "text/plain; charset=utf-8", "x\n", out, sizeof(out));

		assert_true(n > 0);
		split_response(out, n, &res);
		assert_string_equal(res.status_line, cases[i].line);
	}
}

static void
test_response_head_has_headers_only(void **state)
{
	char out[1024];
	struct response res;
	size_t n;

	(void)state;
	n = respond(HTTP_HEAD, 200, "application/json", json_body, out, sizeof(out));
	assert_true(n > 0);
	split_response(out, n, &res);
	assert_string_equal(res.status_line, "HTTP/1.1 200 OK");
	assert_int_equal(res.body_len, 0);
	assert_int_equal(n, res.head_len);
	n = respond(HTTP_HEAD, 503, "application/json", json_body, out, sizeof(out));
	split_response(out, n, &res);
	assert_string_equal(res.status_line, "HTTP/1.1 503 Service Unavailable");
	assert_int_equal(res.body_len, 0);
}

static void
test_response_head_content_length_is_absent_or_the_get_length(void **state)
{
	char out[1024], len[32];
	struct response res;
	const char *cl;
	size_t n;

	(void)state;
	/*
	 * RFC 9110 section 8.6: a server MUST NOT send Content-Length in a response to HEAD unless its value
	 * equals the length of the content GET would have sent. "Content-Length: 0" for a non-empty body is wrong.
	 */
	n = respond(HTTP_HEAD, 200, "application/json", json_body, out, sizeof(out));
	assert_true(n > 0);
	split_response(out, n, &res);
	cl = header(&res, "Content-Length");
	snprintf(len, sizeof(len), "%zu", strlen(json_body));
	if (cl != NULL && strcmp(cl, len) != 0)
		fail_msg("HEAD response has Content-Length: %s, GET would send %s bytes", cl, len);
}

static void
test_response_options_has_headers_only_and_allow(void **state)
{
	char out[1024];
	struct response res;
	size_t n;

	(void)state;
	n = respond(HTTP_OPTIONS, 200, "application/json", json_body, out, sizeof(out));
	assert_true(n > 0);
	split_response(out, n, &res);
	assert_string_equal(res.status_line, "HTTP/1.1 200 OK");
	assert_int_equal(res.body_len, 0);
	/* no body is sent, so its length is 0 */
	assert_non_null(header(&res, "Content-Length"));
	assert_string_equal(header(&res, "Content-Length"), "0");
	assert_non_null(header(&res, "Allow"));
	assert_string_equal(header(&res, "Allow"), "GET, HEAD, OPTIONS");
	/* HAProxy's Patroni template: OPTIONS /primary expects 503 on a replica */
	n = respond(HTTP_OPTIONS, 503, "application/json", json_body, out, sizeof(out));
	split_response(out, n, &res);
	assert_string_equal(res.status_line, "HTTP/1.1 503 Service Unavailable");
	assert_int_equal(res.body_len, 0);
}

static void
test_response_405_lists_the_allowed_methods(void **state)
{
	char out[1024];
	struct response res;
	size_t n;

	(void)state;
	n = respond(HTTP_OTHER, 405, "text/plain; charset=utf-8", "405\n", out, sizeof(out));
	assert_true(n > 0);
	split_response(out, n, &res);
	assert_string_equal(res.status_line, "HTTP/1.1 405 Method Not Allowed");
	assert_non_null(header(&res, "Allow"));
	assert_string_equal(header(&res, "Allow"), "GET, HEAD, OPTIONS");
	assert_int_equal(res.body_len, 4);
	assert_memory_equal(res.body, "405\n", 4);
	/* the listener frames a 405 for GET too */
	n = respond(HTTP_GET, 405, "text/plain; charset=utf-8", "405\n", out, sizeof(out));
	split_response(out, n, &res);
	assert_non_null(header(&res, "Allow"));
}

static void
test_response_always_closes_the_connection(void **state)
{
	static const enum http_method methods[] = {HTTP_GET, HTTP_HEAD, HTTP_OPTIONS, HTTP_OTHER};
	static const int statuses[] = {200, 400, 404, 405, 408, 431, 503};
	char out[1024];
	struct response res;

	(void)state;
	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
		for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++) {
			size_t n = respond(methods[m], statuses[s], "text/plain", "body\n", out, sizeof(out));

			assert_true(n > 0);
			split_response(out, n, &res);
			assert_non_null(header(&res, "Connection"));
			assert_string_equal(header(&res, "Connection"), "close");
			assert_non_null(header(&res, "Content-Length"));
			assert_int_equal(strncmp(out, "HTTP/1.1 ", 9), 0);
		}
}

static void
test_response_empty_body(void **state)
{
	char out[512];
	struct response res;
	size_t n;

	(void)state;
	n = respond(HTTP_GET, 200, "application/json", "", out, sizeof(out));
	assert_true(n > 0);
	split_response(out, n, &res);
	assert_string_equal(header(&res, "Content-Length"), "0");
	assert_int_equal(res.body_len, 0);
}

/* response_needs is the length of the response with a buffer that is large enough. */
static size_t
response_needs(enum http_method method, const char *body)
{
	char out[2048];

	return http_response(method, 200, "application/json", body, strlen(body), out, sizeof(out));
}

static void
test_response_too_small_buffer_is_zero(void **state)
{
	static const enum http_method methods[] = {HTTP_GET, HTTP_HEAD, HTTP_OPTIONS};

	(void)state;
	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		size_t need = response_needs(methods[m], json_body);

		assert_true(need > 0);
		/* exactly sized heap buffers: ASan reports any byte written past outlen */
		for (size_t outlen = 0; outlen < need; outlen++) {
			char *out = malloc(outlen > 0 ? outlen : 1);

			assert_non_null(out);
			if (http_response(methods[m], 200, "application/json", json_body, strlen(json_body), out,
			                  outlen) != 0)
				fail_msg("method %d: http_response into %zu bytes (needs %zu) did not return 0",
				         (int)methods[m], outlen, need);
			free(out);
		}
		{
			char *out = malloc(need + 1);

			assert_non_null(out);
			assert_int_equal(http_response(methods[m], 200, "application/json", json_body,
			                               strlen(json_body), out, need + 1),
			                 need);
			free(out);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sniff_method_and_target_is_http),
	    cmocka_unit_test(test_sniff_prefix_of_a_method_waits_for_more),
	    cmocka_unit_test(test_sniff_nothing_yet_waits_for_more),
	    cmocka_unit_test(test_sniff_upper_case_agent_word_waits_for_more),
	    cmocka_unit_test(test_sniff_agent_lines_are_not_http),
	    cmocka_unit_test(test_sniff_lower_case_or_malformed_request_is_not_http),
	    cmocka_unit_test(test_sniff_binary_is_not_http),
	    cmocka_unit_test(test_sniff_long_upper_case_word_is_not_http),
	    cmocka_unit_test(test_sniff_reads_only_len_bytes),
	    cmocka_unit_test(test_parse_haproxy_bare_httpchk_request),
	    cmocka_unit_test(test_parse_curl_request_with_headers),
	    cmocka_unit_test(test_parse_lf_only_line_ends),
	    cmocka_unit_test(test_parse_options_and_head_http_1_1),
	    cmocka_unit_test(test_parse_keeps_the_query_as_sent),
	    cmocka_unit_test(test_parse_decodes_the_path),
	    cmocka_unit_test(test_parse_other_methods_are_complete_for_a_405),
	    cmocka_unit_test(test_parse_every_prefix_of_a_good_request_is_incomplete),
	    cmocka_unit_test(test_parse_request_line_without_the_empty_line_is_incomplete),
	    cmocka_unit_test(test_parse_no_end_within_the_limit_is_too_large),
	    cmocka_unit_test(test_parse_end_past_the_limit_is_too_large),
	    cmocka_unit_test(test_parse_request_of_exactly_the_limit_is_complete),
	    cmocka_unit_test(test_parse_pipelined_requests_answer_the_first),
	    cmocka_unit_test(test_parse_ignores_any_bytes_after_the_request),
	    cmocka_unit_test(test_parse_binary_is_bad),
	    cmocka_unit_test(test_parse_nul_byte_is_bad),
	    cmocka_unit_test(test_parse_missing_version_is_bad),
	    cmocka_unit_test(test_parse_other_versions_are_bad),
	    cmocka_unit_test(test_parse_lower_case_method_is_bad),
	    cmocka_unit_test(test_parse_overlong_method_is_bad),
	    cmocka_unit_test(test_parse_header_line_without_colon_is_bad),
	    cmocka_unit_test(test_parse_one_character_header_line_is_bad),
	    cmocka_unit_test(test_parse_target_not_starting_with_slash_is_bad),
	    cmocka_unit_test(test_parse_bad_percent_escape_is_bad),
	    cmocka_unit_test(test_parse_control_characters_in_the_request_line_are_bad),
	    cmocka_unit_test(test_parse_overlong_path_is_bad),
	    cmocka_unit_test(test_parse_overlong_query_is_bad),
	    cmocka_unit_test(test_route_primary_paths),
	    cmocka_unit_test(test_route_replica_paths),
	    cmocka_unit_test(test_route_read_only_paths),
	    cmocka_unit_test(test_route_health_path),
	    cmocka_unit_test(test_route_liveness_status_and_metrics),
	    cmocka_unit_test(test_route_unknown_path_is_not_found),
	    cmocka_unit_test(test_route_sync_words_and_cluster_paths),
	    cmocka_unit_test(test_route_after_parsing_a_request),
	    cmocka_unit_test(test_route_query_lag_sets_the_byte_limit),
	    cmocka_unit_test(test_route_query_lag_s_sets_the_seconds_limit),
	    cmocka_unit_test(test_route_query_both_limits),
	    cmocka_unit_test(test_route_query_replication_state_streaming_is_accepted),
	    cmocka_unit_test(test_route_query_other_replication_state_is_bad),
	    cmocka_unit_test(test_route_query_unknown_key_is_bad),
	    cmocka_unit_test(test_route_query_min_lsn_sets_the_position),
	    cmocka_unit_test(test_route_query_bad_min_lsn_is_bad),
	    cmocka_unit_test(test_route_query_bad_value_is_bad),
	    cmocka_unit_test(test_route_query_values_are_percent_decoded),
	    cmocka_unit_test(test_route_empty_query_parts_are_ignored),
	    cmocka_unit_test(test_route_overlong_query_value_is_bad),
	    cmocka_unit_test(test_route_clears_the_request),
	    cmocka_unit_test(test_response_get_has_the_body_and_its_length),
	    cmocka_unit_test(test_response_get_503_has_the_body_too),
	    cmocka_unit_test(test_response_status_lines),
	    cmocka_unit_test(test_response_head_has_headers_only),
	    cmocka_unit_test(test_response_head_content_length_is_absent_or_the_get_length),
	    cmocka_unit_test(test_response_options_has_headers_only_and_allow),
	    cmocka_unit_test(test_response_405_lists_the_allowed_methods),
	    cmocka_unit_test(test_response_always_closes_the_connection),
	    cmocka_unit_test(test_response_empty_body),
	    cmocka_unit_test(test_response_too_small_buffer_is_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
