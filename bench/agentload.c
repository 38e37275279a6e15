/*
 * agentload: a closed-loop load generator for one-request-per-connection protocols (pgcheckd's agent
 * line protocol, or HTTP/1.0 with Connection: close).
 *
 * N connections run at once, each in a loop: connect, send the request, read until the server closes,
 * check the answer, close, start again. It runs for a fixed time and stops by itself; every latency
 * (from connect() to the server's close) goes into a log-linear histogram (under 1% error).
 *
 *   agentload -p PORT [-H 127.0.0.1] [-c CONNS] [-d SECONDS] [-r REQUEST] [-e EXPECT] [-i PAUSE_MS]
 *             [-t TIMEOUT_MS] [--http PATH]
 *
 *   -r REQUEST   bytes to send ("\n" and "\r" escapes understood); default "primary\n"
 *   -e EXPECT    an answer counts as "ok" when it starts with EXPECT (default "up"); others are "other"
 *   --http PATH  send "GET PATH HTTP/1.0\r\n\r\n" and expect "HTTP/1.? 200"
 *   -i PAUSE_MS  pause between two requests of one connection (a probe, not a load test); default 0
 *   -t TIMEOUT   a request not answered within TIMEOUT ms counts as "timeout" and is abandoned
 *
 * Prints two lines of JSON: first requests (answered and ok), other, errors, timeouts, seconds, rps, and
 * latency p50/p90/p99/p999/max/mean in microseconds over every answered request (ok or other); then
 * {"hist": [[us, count], ...]}, the histogram's populated buckets (upper ends), to merge runs.
 * The request loop is bounded by -d; in-flight requests at the end are abandoned, not counted (their
 * number is printed as "inflight").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
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

enum cstate { C_IDLE, C_CONNECTING, C_READING, C_PAUSED };

struct conn {
	int fd;
	enum cstate st;
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
	                "[-i PAUSE_MS] [-t TIMEOUT_MS] [--http PATH]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0, nconn = 1;
	double seconds = 5, pause_ms = 0, timeout_ms = 2000;
	char *http_req = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
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
		else if (!strcmp(a, "--http")) {
			http = true;
			http_req = malloc(strlen(v) + 64);
			sprintf(http_req, "GET %s HTTP/1.0\r\n\r\n", v);
			request = http_req;
		} else
			usage();
		i++;
	}
	if (port <= 0 || port > 65535 || nconn < 1 || nconn > 10000 || seconds <= 0 || seconds > 3600)
		usage();
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
		if (t >= end)
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
			if ((c->st == C_CONNECTING || c->st == C_READING) && t - c->t0 > timeout_ns) {
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
			close(conns[i].fd);
		}
	}
	uint64_t answered = n_ok + n_other;
	printf("{\"requests\": %llu, \"other\": %llu, \"errors\": %llu, \"timeouts\": %llu, \"seconds\": %.3f, "
	       "\"rps\": %.1f, \"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, \"p999_us\": %llu, "
	       "\"max_us\": %llu, \"mean_us\": %.1f, \"connections\": %d, \"inflight\": %d}\n",
	       (unsigned long long)n_ok, (unsigned long long)n_other, (unsigned long long)n_err,
	       (unsigned long long)n_timeout, elapsed, (double)n_ok / elapsed,
	       (unsigned long long)(answered ? percentile(answered, 50) : 0),
	       (unsigned long long)(answered ? percentile(answered, 90) : 0),
	       (unsigned long long)(answered ? percentile(answered, 99) : 0),
	       (unsigned long long)(answered ? percentile(answered, 99.9) : 0), (unsigned long long)lat_max_us,
	       answered ? (double)lat_sum_us / (double)answered : 0.0, nconn, inflight);
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
