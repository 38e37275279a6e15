/*
 * http.c: a deliberately small HTTP/1.0 and 1.1 server side for health checks: one request per
 * connection, GET/HEAD/OPTIONS only, bounded size, Connection: close. Paths are Patroni's, so an
 * existing Patroni HAProxy template works by changing the port.
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum http_sniff
http_sniff(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && i < 16 && buf[i] >= 'A' && buf[i] <= 'Z')
		i++;
	if (i == len)
		return i < 16 ? HTTP_SNIFF_MAYBE : HTTP_SNIFF_NO;
	if (i == 0 || buf[i] != ' ')
		return HTTP_SNIFF_NO;
	if (i + 1 == len)
		return HTTP_SNIFF_MAYBE;
	return buf[i + 1] == '/' || buf[i + 1] == '*' ? HTTP_SNIFF_YES : HTTP_SNIFF_NO;
}

/* http_find_end returns the offset just past the empty line ending the headers, or 0. */
static size_t
http_find_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static int
http_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* http_decode copies a percent-encoded target part; false on a bad escape, a NUL or overflow. */
static bool
http_decode(const char *s, size_t n, char *out, size_t outlen, bool plus_is_space)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return false;
			hi = http_hex(s[i + 1]);
			lo = http_hex(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (c == '\0' || o + 1 >= outlen)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

enum http_parse
http_parse_request(const char *buf, size_t len, struct http_request *out)
{
	size_t end = http_find_end(buf, len), i = 0, mstart, tstart, tlen;
	const char *q;

	memset(out, 0, sizeof(*out));
	if (end == 0)
		return len >= HTTP_REQUEST_MAX ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
	if (end > HTTP_REQUEST_MAX)
		return HTTP_TOO_LARGE;
	for (size_t j = 0; j < end; j++)
		if (buf[j] == '\0' || (unsigned char)buf[j] >= 0x7f)
			return HTTP_BAD;
	/* method */
	mstart = i;
	while (i < end && buf[i] >= 'A' && buf[i] <= 'Z')
		i++;
	if (i == mstart || i - mstart > 16 || buf[i] != ' ')
		return HTTP_BAD;
	if (i - mstart == 3 && memcmp(buf + mstart, "GET", 3) == 0)
		out->method = HTTP_GET;
	else if (i - mstart == 4 && memcmp(buf + mstart, "HEAD", 4) == 0)
		out->method = HTTP_HEAD;
	else if (i - mstart == 7 && memcmp(buf + mstart, "OPTIONS", 7) == 0)
		out->method = HTTP_OPTIONS;
	else
		out->method = HTTP_OTHER;
	/* target */
	tstart = ++i;
	while (i < end && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n')
		i++;
	tlen = i - tstart;
	if (tlen == 0 || buf[i] != ' ')
		return HTTP_BAD; /* HTTP/0.9 (no version) is not served */
	/* version */
	i++;
	if (end - i < 10 || memcmp(buf + i, "HTTP/1.", 7) != 0 || (buf[i + 7] != '0' && buf[i + 7] != '1'))
		return HTTP_BAD;
	i += 8;
	if (buf[i] == '\r')
		i++;
	if (buf[i] != '\n')
		return HTTP_BAD;
	/* headers are not needed: each must still be a "Name: value" line */
	for (i++; i < end;) {
		size_t lstart = i;
		const char *colon;

		while (i < end && buf[i] != '\n')
			i++;
		if (i == lstart || (i - lstart == 1 && buf[lstart] == '\r'))
			break; /* the empty line */
		colon = memchr(buf + lstart, ':', i - lstart);
		if (colon == NULL || colon == buf + lstart || buf[lstart] == ' ' || buf[lstart] == '\t')
			return HTTP_BAD;
		if ((size_t)(colon - (buf + lstart)) == 13 && strncasecmp(buf + lstart, "authorization", 13) == 0) {
			const char *v = colon + 1, *vend = buf + i;

			while (v < vend && (*v == ' ' || *v == '\t'))
				v++;
			while (vend > v && (vend[-1] == '\r' || vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			if (out->authorization[0] != '\0')
				return HTTP_BAD; /* two of them: which one would be meant? */
			if ((size_t)(vend - v) < sizeof(out->authorization)) {
				memcpy(out->authorization, v, (size_t)(vend - v));
				out->authorization[vend - v] = '\0';
			} else {
				strcpy(out->authorization, "-"); /* too long to be ours: proves nothing */
			}
		}
		i++;
	}
	if (buf[tstart] == '*') {
		if (tlen != 1)
			return HTTP_BAD;
		strcpy(out->path, "*");
		return HTTP_COMPLETE;
	}
	if (buf[tstart] != '/')
		return HTTP_BAD;
	q = memchr(buf + tstart, '?', tlen);
	if (!http_decode(buf + tstart, q != NULL ? (size_t)(q - (buf + tstart)) : tlen, out->path, sizeof(out->path),
	                 false))
		return HTTP_BAD;
	if (q != NULL) {
		size_t qlen = tlen - (size_t)(q + 1 - (buf + tstart));

		if (qlen >= sizeof(out->query))
			return HTTP_BAD;
		memcpy(out->query, q + 1, qlen);
		out->query[qlen] = '\0';
	}
	return HTTP_COMPLETE;
}

/*
 * http_apply_query applies "lag=16MB&lag_s=5"; Patroni's replication_state=streaming is what we check anyway;
 * role_status=404 (HTTP only) makes a node of the other role answer 404, for HAProxy's disable-on-404.
 */
static bool
http_apply_query(const char *query, struct request *r)
{
	const char *p = query;

	while (*p != '\0') {
		const char *amp = strchr(p, '&');
		size_t n = amp != NULL ? (size_t)(amp - p) : strlen(p);
		char key[32], value[64];
		const char *eq = memchr(p, '=', n);

		if (n > 0) {
			if (eq == NULL || !http_decode(p, (size_t)(eq - p), key, sizeof(key), true) ||
			    !http_decode(eq + 1, n - (size_t)(eq + 1 - p), value, sizeof(value), true))
				return false;
			if (strcmp(key, "replication_state") == 0) {
				if (strcmp(value, "streaming") != 0)
					return false;
			} else if (strcmp(key, "role_status") == 0) {
				if (strcmp(value, "404") != 0 && strcmp(value, "503") != 0)
					return false;
				r->other_role_status = value[0] == '4' ? 404 : 503;
			} else if (!request_param_apply(r, key, strlen(key), value, strlen(value))) {
				return false;
			}
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return true;
}

enum http_route
http_route(const struct http_request *h, struct request *r)
{
	const char *path = h->path;
	size_t n;

	memset(r, 0, sizeof(*r));
	if (strcmp(path, "/status") == 0)
		return HTTP_ROUTE_STATUS;
	if (strcmp(path, "/metrics") == 0)
		return HTTP_ROUTE_METRICS;
	if (strcmp(path, "/liveness") == 0)
		return HTTP_ROUTE_LIVENESS;
	if (strcmp(path, "/cluster") == 0)
		return HTTP_ROUTE_CLUSTER;
	if (strcmp(path, "/cluster/replica") == 0) {
		r->kind = REQUEST_REPLICA;
		return http_apply_query(h->query, r) ? HTTP_ROUTE_CLUSTER_REPLICA : HTTP_ROUTE_BAD_QUERY;
	}
	if (strcmp(path, "/") == 0) {
		r->kind = REQUEST_PRIMARY; /* as in Patroni: "/" is the primary check */
	} else if (strcmp(path, "/readiness") == 0) {
		r->kind = REQUEST_READ_ONLY; /* the primary, or a replica fit to serve reads */
	} else {
		if (path[0] != '/')
			return HTTP_ROUTE_NOT_FOUND;
		n = strlen(path + 1);
		if (!request_kind_parse(path + 1, n, &r->kind))
			return HTTP_ROUTE_NOT_FOUND;
	}
	return http_apply_query(h->query, r) ? HTTP_ROUTE_CHECK : HTTP_ROUTE_BAD_QUERY;
}

static const char *
http_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

size_t
http_response(enum http_method method, int status, const char *content_type, const char *body, size_t bodylen,
              char *out, size_t outlen)
{
	return http_response_with(method, status, content_type, NULL, body, bodylen, out, outlen);
}

size_t
http_response_with(enum http_method method, int status, const char *content_type, const char *extra_headers,
                   const char *body, size_t bodylen, char *out, size_t outlen)
{
	bool with_body = method != HTTP_HEAD && method != HTTP_OPTIONS;
	int n;

	n = snprintf(out, outlen,
	             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n%s%s"
	             "Connection: close\r\n\r\n",
	             status, http_status_text(status), content_type, method == HTTP_OPTIONS ? (size_t)0 : bodylen,
	             status == 405 || method == HTTP_OPTIONS ? "Allow: GET, HEAD, OPTIONS\r\n" : "",
	             extra_headers != NULL ? extra_headers : "");
	if (n < 0 || (size_t)n >= outlen)
		return 0;
	if (!with_body)
		return (size_t)n;
	if ((size_t)n + bodylen > outlen)
		return 0;
	memcpy(out + n, body, bodylen);
	return (size_t)n + bodylen;
}
