/*
 * agentload: a closed-loop load generator for one-request-per-connection protocols (pgcheckd's agent
 * line protocol, or HTTP/1.0 with Connection: close).
 *
 * N connections run at once, each in a loop: connect, send the request, read until the server closes,
 * check the answer, close, start again. It runs for a fixed time and stops by itself; every latency
 * (from connect() to the server's close) goes into a log-linear histogram (under 1% error).
 *
 *   agentload -p PORT [-H 127.0.0.1] [-c CONNS] [-d SECONDS] [-r REQUEST] [-e EXPECT] [-i PAUSE_MS]
 *             [-t TIMEOUT_MS] [-n COUNT] [--http PATH] [--tls [--resume] [--ca FILE] [--cert FILE --key FILE]]
 *
 *   -r REQUEST   bytes to send ("\n" and "\r" escapes understood); default "primary\n"
 *   -e EXPECT    an answer counts as "ok" when it starts with EXPECT (default "up"); others are "other"
 *   --http PATH  send "GET PATH HTTP/1.0\r\n\r\n" and expect "HTTP/1.? 200"
 *   -i PAUSE_MS  pause between two requests of one connection (a probe, not a load test); default 0
 *   -t TIMEOUT   a request not answered within TIMEOUT ms counts as "timeout" and is abandoned
 *   -n COUNT     stop once COUNT requests were answered (ok or other), or at -d, whichever comes first
 *   --tls        TLS (OpenSSL) on every connection: connect, full handshake, request, read the answer
 *                until the server closes, close_notify, close. Latency is still connect to close, so it
 *                includes the handshake (what HAProxy's check duration holds with check-ssl).
 *   --resume     offer the session of the last handshake (one cache per process, as HAProxy 2.6 to 3.3
 *                keep one per server and thread, which their checks use too); a session is kept only
 *                when the server made it resumable. Printed: "offered" and "resumed" counts
 *   --ca FILE    verify the server's certificate against FILE (HAProxy: verify required ca-file)
 *   --cert/--key a client certificate and its key (HAProxy: crt)
 *
 * Prints two lines of JSON: first requests (answered and ok), other, errors, timeouts, seconds, rps, and
 * latency p50/p90/p99/p999/max/mean in microseconds over every answered request (ok or other); then
 * {"hist": [[us, count], ...]}, the histogram's populated buckets (upper ends), to merge runs.
 * The request loop is bounded by -d; in-flight requests at the end are abandoned, not counted (their
 * number is printed as "inflight"). With --tls the first line also has "tls" (protocol and cipher of
 * the first handshake), "handshakes", "offered" and "resumed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* histogram: 64 powers of two x 128 linear sub-buckets */
#define SUB_BITS 7
#define SUB      (1u << SUB_BITS)
static uint64_t hist[64 * SUB];

static unsigned
bucket_of(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - SUB_BITS;
	return ((shift + 1) << SUB_BITS) | (unsigned)((v >> shift) & (SUB - 1));
}

static uint64_t
bucket_value(unsigned b) /* the upper end of a bucket */
{
	unsigned e = b >> SUB_BITS, m = b & (SUB - 1);
	if (e == 0)
		return m;
	unsigned shift = e - 1;
	return ((uint64_t)(SUB | m) << shift) + ((1ull << shift) - 1);
}

static uint64_t
percentile(uint64_t total, double p)
{
	uint64_t want = (uint64_t)((double)total * p / 100.0 + 0.999999), seen = 0;
	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < 64 * SUB; b++) {
		seen += hist[b];
		if (seen >= want)
			return bucket_value(b);
	}
	return 0;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_SENDING, C_READING, C_PAUSED };

struct conn {
	int fd;
	enum cstate st;
	SSL *ssl;
	uint64_t t0;   /* request start */
	uint64_t wake; /* end of a pause */
	size_t len;
	char buf[512];
};

static struct sockaddr_in addr;
static const char *request = "primary\n";
static size_t request_len;
static const char *expect = "up";
static bool http;
static int epfd;
static uint64_t n_ok, n_other, n_err, n_timeout, lat_sum_us, lat_max_us;
static SSL_CTX *tls_ctx;         /* NULL: plain TCP */
static bool tls_resume;          /* offer the last resumable session */
static SSL_SESSION *tls_session; /* that session */
static uint64_t n_handshakes, n_offered, n_resumed;
static char tls_desc[96]; /* protocol and cipher of the first handshake */

static char *
unescape(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*o++ = '\n';
			s++;
		} else if (s[0] == '\\' && s[1] == 'r') {
			*o++ = '\r';
			s++;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
	return out;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->st = C_IDLE;
	c->len = 0;
}

static void
conn_start(struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int one = 1;

	c->t0 = now_ns();
	c->len = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		n_err++;
		c->st = C_IDLE;
		return;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		/* loopback connects can complete at once; the write below goes out then */
	} else if (errno != EINPROGRESS) {
		n_err++;
		conn_close(c);
		return;
	}
	c->st = C_CONNECTING;
	epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static bool
answer_ok(const struct conn *c)
{
	if (http)
		return c->len >= 12 && memcmp(c->buf, "HTTP/1.", 7) == 0 && memcmp(c->buf + 8, " 200", 4) == 0;
	return strncmp(c->buf, expect, strlen(expect)) == 0 && memchr(c->buf, '\n', c->len) != NULL;
}

static void
conn_done(struct conn *c, uint64_t t)
{
	uint64_t us = (t - c->t0) / 1000;
	c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = 0;
	if (c->ssl != NULL) {
		if (tls_resume && c->len > 0) {
			/* TLS 1.3 tickets come after the handshake: the session is taken after the answer */
			SSL_SESSION *s = SSL_get1_session(c->ssl);
			if (s != NULL && SSL_SESSION_is_resumable(s)) {
				if (tls_session != NULL)
					SSL_SESSION_free(tls_session);
				tls_session = s;
			} else if (s != NULL) {
				SSL_SESSION_free(s);
			}
		}
		(void)SSL_shutdown(c->ssl); /* close_notify, once; the server has closed already */
	}
	if (c->len == 0) {
		n_err++; /* closed without an answer */
	} else {
		if (answer_ok(c))
			n_ok++;
		else
			n_other++;
		hist[bucket_of(us)]++;
		lat_sum_us += us;
		if (us > lat_max_us)
			lat_max_us = us;
	}
	conn_close(c);
}

static void
conn_want(struct conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* drive a TLS connection as far as it goes without blocking: handshake, request, answer */
static void
tls_step(struct conn *c)
{
	for (;;) {
		int r, e;
		if (c->st == C_HANDSHAKE) {
			r = SSL_connect(c->ssl);
			if (r == 1) {
				n_handshakes++;
				if (SSL_session_reused(c->ssl))
					n_resumed++;
				if (tls_desc[0] == 0)
					snprintf(tls_desc, sizeof(tls_desc), "%s %s", SSL_get_version(c->ssl),
					         SSL_get_cipher_name(c->ssl));
				c->st = C_SENDING;
				continue;
			}
		} else if (c->st == C_SENDING) {
			r = SSL_write(c->ssl, request, (int)request_len);
			if (r > 0) {
				c->st = C_READING;
				continue;
			}
		} else if (c->st == C_READING) {
			char tmp[512];
			r = SSL_read(c->ssl, tmp, sizeof(tmp));
			if (r > 0) {
				size_t room = sizeof(c->buf) - 1 - c->len;
				size_t k = (size_t)r < room ? (size_t)r : room;
				memcpy(c->buf + c->len, tmp, k);
				c->len += k;
				continue;
			}
		} else {
			return;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			conn_want(c, EPOLLIN | EPOLLRDHUP);
			return;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			conn_want(c, EPOLLOUT);
			return;
		}
		ERR_clear_error();
		if (c->st == C_READING && (e == SSL_ERROR_ZERO_RETURN || c->len > 0)) {
			/* close_notify, or the server's close after a complete answer */
			conn_done(c, now_ns());
			return;
		}
		n_err++;
		conn_close(c);
		return;
	}
}

static void
conn_event(struct conn *c, uint32_t events)
{
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
			n_err++;
			conn_close(c);
			return;
		}
		if (tls_ctx != NULL) {
			c->ssl = SSL_new(tls_ctx);
			if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
				n_err++;
				conn_close(c);
				return;
			}
			if (tls_resume && tls_session != NULL) {
				(void)SSL_set_session(c->ssl, tls_session);
				n_offered++;
			}
			c->st = C_HANDSHAKE;
			tls_step(c);
			return;
		}
		if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
			n_err++;
			conn_close(c);
			return;
		}
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
		c->st = C_READING;
		return;
	}
	if (c->ssl != NULL) {
		tls_step(c);
		return;
	}
	if (c->st != C_READING)
		return;
	for (;;) {
		char tmp[512];
		ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
		if (n > 0) {
			size_t room = sizeof(c->buf) - 1 - c->len;
			size_t k = (size_t)n < room ? (size_t)n : room;
			memcpy(c->buf + c->len, tmp, k);
			c->len += k;
			continue;
		}
		if (n == 0) {
			conn_done(c, now_ns());
			return;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EINTR)
			continue;
		if (c->len > 0) { /* a reset after a complete answer still answered */
			conn_done(c, now_ns());
			return;
		}
		n_err++;
		conn_close(c);
		return;
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: agentload -p PORT [-H HOST] [-c CONNS] [-d SECONDS] [-r REQUEST] [-e EXPECT] "
	                "[-i PAUSE_MS] [-t TIMEOUT_MS] [-n COUNT] [--http PATH] [--tls [--resume] [--ca FILE] "
	                "[--cert FILE --key FILE]]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0, nconn = 1;
	double seconds = 5, pause_ms = 0, timeout_ms = 2000;
	uint64_t max_answers = 0; /* 0: no limit */
	char *http_req = NULL;
	bool tls = false;
	const char *ca = NULL, *cert = NULL, *key = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--tls")) {
			tls = true;
			continue;
		}
		if (!strcmp(a, "--resume")) {
			tls_resume = true;
			continue;
		}
		if (v == NULL)
			usage();
		if (!strcmp(a, "-p"))
			port = atoi(v);
		else if (!strcmp(a, "-H"))
			host = v;
		else if (!strcmp(a, "-c"))
			nconn = atoi(v);
		else if (!strcmp(a, "-d"))
			seconds = atof(v);
		else if (!strcmp(a, "-r"))
			request = unescape(v);
		else if (!strcmp(a, "-e"))
			expect = v;
		else if (!strcmp(a, "-i"))
			pause_ms = atof(v);
		else if (!strcmp(a, "-t"))
			timeout_ms = atof(v);
		else if (!strcmp(a, "-n"))
			max_answers = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--http")) {
			http = true;
			http_req = malloc(strlen(v) + 64);
			sprintf(http_req, "GET %s HTTP/1.0\r\n\r\n", v);
			request = http_req;
		} else if (!strcmp(a, "--ca"))
			ca = v;
		else if (!strcmp(a, "--cert"))
			cert = v;
		else if (!strcmp(a, "--key"))
			key = v;
		else
			usage();
		i++;
	}
	if (port <= 0 || port > 65535 || nconn < 1 || nconn > 10000 || seconds <= 0 || seconds > 3600)
		usage();
	if ((tls_resume || ca || cert || key) && !tls)
		usage();
	if ((cert == NULL) != (key == NULL))
		usage();
	signal(SIGPIPE, SIG_IGN); /* close_notify to a server that has gone */
	if (tls) {
		tls_ctx = SSL_CTX_new(TLS_client_method());
		if (tls_ctx == NULL) {
			fprintf(stderr, "agentload: cannot create a TLS context\n");
			return 2;
		}
		(void)SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
		/* the client keeps its one session itself (--resume), not in OpenSSL's cache */
		(void)SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
		if (ca != NULL) {
			if (SSL_CTX_load_verify_locations(tls_ctx, ca, NULL) != 1) {
				fprintf(stderr, "agentload: cannot load CA file %s\n", ca);
				return 2;
			}
			SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
		}
		if (cert != NULL && (SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
		                     SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1)) {
			fprintf(stderr, "agentload: cannot load client certificate %s / key %s\n", cert, key);
			return 2;
		}
	}
	request_len = strlen(request);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "agentload: not an IPv4 address: %s\n", host);
		return 2;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	struct conn *conns = calloc((size_t)nconn, sizeof(*conns));
	struct epoll_event *evs = calloc((size_t)nconn, sizeof(*evs));
	uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
	uint64_t timeout_ns = (uint64_t)(timeout_ms * 1e6), pause_ns = (uint64_t)(pause_ms * 1e6);

	for (int i = 0; i < nconn; i++) {
		conns[i].fd = -1;
		conn_start(&conns[i]);
	}
	for (;;) {
		uint64_t t = now_ns();
		if (t >= end || (max_answers && n_ok + n_other >= max_answers))
			break;
		int wait_ms = 10;
		if (t + (uint64_t)wait_ms * 1000000ull > end)
			wait_ms = (int)((end - t) / 1000000ull) + 1;
		int n = epoll_wait(epfd, evs, nconn, wait_ms);
		for (int i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
		t = now_ns();
		for (int i = 0; i < nconn; i++) {
			struct conn *c = &conns[i];
			if (c->st != C_IDLE && c->st != C_PAUSED && t - c->t0 > timeout_ns) {
				n_timeout++;
				conn_close(c);
			}
			if (c->st == C_IDLE && t < end) {
				if (pause_ns) {
					c->st = C_PAUSED;
					c->wake = t + pause_ns;
				} else {
					conn_start(c);
				}
			}
			if (c->st == C_PAUSED && t >= c->wake && t < end)
				conn_start(c);
		}
	}
	double elapsed = (double)(now_ns() - start) / 1e9;
	int inflight = 0; /* requests sent (or being connected) when time ran out: abandoned, not counted */
	for (int i = 0; i < nconn; i++) {
		if (conns[i].fd >= 0) {
			inflight++;
			conn_close(&conns[i]);
		}
	}
	uint64_t answered = n_ok + n_other;
	printf("{\"requests\": %llu, \"other\": %llu, \"errors\": %llu, \"timeouts\": %llu, \"seconds\": %.3f, "
	       "\"rps\": %.1f, \"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, \"p999_us\": %llu, "
	       "\"max_us\": %llu, \"mean_us\": %.1f, \"connections\": %d, \"inflight\": %d, \"tls\": \"%s\", "
	       "\"handshakes\": %llu, \"offered\": %llu, \"resumed\": %llu}\n",
	       (unsigned long long)n_ok, (unsigned long long)n_other, (unsigned long long)n_err,
	       (unsigned long long)n_timeout, elapsed, (double)n_ok / elapsed,
	       (unsigned long long)(answered ? percentile(answered, 50) : 0),
	       (unsigned long long)(answered ? percentile(answered, 90) : 0),
	       (unsigned long long)(answered ? percentile(answered, 99) : 0),
	       (unsigned long long)(answered ? percentile(answered, 99.9) : 0), (unsigned long long)lat_max_us,
	       answered ? (double)lat_sum_us / (double)answered : 0.0, nconn, inflight, tls ? tls_desc : "",
	       (unsigned long long)n_handshakes, (unsigned long long)n_offered, (unsigned long long)n_resumed);
	/* the histogram, so that runs can be merged: [upper end of a bucket in us, count] */
	printf("{\"hist\": [");
	const char *sep = "";
	for (unsigned b = 0; b < 64 * SUB; b++) {
		if (hist[b]) {
			printf("%s[%llu,%llu]", sep, (unsigned long long)bucket_value(b), (unsigned long long)hist[b]);
			sep = ",";
		}
	}
	printf("]}\n");
	return 0;
}
