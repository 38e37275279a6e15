/*
 * http.h: the HTTP side of the agent port (Patroni-compatible health paths, /status, /metrics).
 * Sniffing, request parsing, routing and response framing; pure, no sockets. The status of a health
 * path is 200 exactly when verdict_for() says up for the same request on the agent protocol.
 */
#ifndef PGCHECKD_HTTP_H
#define PGCHECKD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

/* The largest request (line and headers) read; more is answered 431 and closed. */
#define HTTP_REQUEST_MAX 4096

enum http_sniff { HTTP_SNIFF_NO, HTTP_SNIFF_MAYBE, HTTP_SNIFF_YES };

/* http_sniff tells an HTTP request ("GET /...") from an agent line by its first bytes. */
enum http_sniff http_sniff(const char *buf, size_t len);

enum http_method { HTTP_GET, HTTP_HEAD, HTTP_OPTIONS, HTTP_OTHER };
enum http_parse { HTTP_INCOMPLETE, HTTP_COMPLETE, HTTP_BAD, HTTP_TOO_LARGE };

/* The longest Authorization header value kept; a longer one proves nothing. */
#define HTTP_AUTHORIZATION_MAX 768

struct http_request {
	enum http_method method;
	char path[128];
	char query[256];
	char authorization[HTTP_AUTHORIZATION_MAX]; /* the Authorization header's value; "" when absent */
};

/* http_parse_request reads a request line and headers up to the empty line; bytes after it are ignored. */
enum http_parse http_parse_request(const char *buf, size_t len, struct http_request *out);

enum http_route {
	HTTP_ROUTE_CHECK,           /* a health path: answer verdict_for(request) */
	HTTP_ROUTE_LIVENESS,        /* the agent itself answers */
	HTTP_ROUTE_STATUS,          /* JSON for people */
	HTTP_ROUTE_METRICS,         /* Prometheus text */
	HTTP_ROUTE_CLUSTER,         /* /cluster: JSON of this node and its peers */
	HTTP_ROUTE_CLUSTER_REPLICA, /* /cluster/replica?min_lsn=: which node can serve a read now */
	HTTP_ROUTE_NOT_FOUND,       /* 404 */
	HTTP_ROUTE_BAD_QUERY,       /* 400: a parameter not understood */
	HTTP_ROUTE_UNAUTHORIZED     /* 401: a path that needs a credential the request did not bring (respond.c) */
};

/* http_route maps path and query to a route and, for checks, a request (Patroni's ?lag= included). */
enum http_route http_route(const struct http_request *h, struct request *r);

/*
 * http_response frames a response with Content-Length and Connection: close into out; HEAD gets the
 * headers only (with GET's Content-Length), OPTIONS the headers with Content-Length 0. Returns the
 * length, 0 when out is too small.
 */
size_t http_response(enum http_method method, int status, const char *content_type, const char *body, size_t bodylen,
                     char *out, size_t outlen);

/* http_response_with is http_response with extra header lines (each ending "\r\n"; NULL for none). */
size_t http_response_with(enum http_method method, int status, const char *content_type, const char *extra_headers,
                          const char *body, size_t bodylen, char *out, size_t outlen);

#endif
