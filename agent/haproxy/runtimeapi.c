/*
 * runtimeapi.c: HAProxy runtime API client. Non-blocking sockets, unix or TCP, and one deadline for
 * the whole exchange (connect, send, receive); used only from worker threads (registrar, scale-out),
 * so a missing, hung or frozen HAProxy never touches the checks.
 */
#include "runtimeapi.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "monoclock.h"

/* while a unix socket's backlog is full, how often connect is tried again before the deadline */
#define RUNTIMEAPI_RETRY_MS 20

/* runtimeapi_left is the time to deadline_ms for poll(): never negative (a negative poll waits for ever). */
static int
runtimeapi_left(int64_t deadline_ms)
{
	int64_t left = deadline_ms - monoclock_ms();

	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * runtimeapi_connect_fd connects the non-blocking socket fd to sa by deadline_ms. A unix socket whose
 * listen backlog is full (a frozen HAProxy) answers EAGAIN at once: it is tried again until the deadline.
 */
static bool
runtimeapi_connect_fd(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline_ms, char *why, size_t whylen)
{
	for (;;) {
		struct pollfd pfd = {fd, POLLOUT, 0};
		int err = 0;
		socklen_t elen = sizeof(err);

		if (connect(fd, sa, salen) == 0)
			return true;
		if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
			if (runtimeapi_left(deadline_ms) == 0) {
				snprintf(why, whylen, "timed out connecting (the socket accepts nothing)");
				return false;
			}
			(void)poll(NULL, 0,
			           runtimeapi_left(deadline_ms) < RUNTIMEAPI_RETRY_MS ? runtimeapi_left(deadline_ms)
			                                                              : RUNTIMEAPI_RETRY_MS);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EINPROGRESS) {
			snprintf(why, whylen, "%s", strerror(errno));
			return false;
		}
		if (poll(&pfd, 1, runtimeapi_left(deadline_ms)) != 1) {
			snprintf(why, whylen, "timed out connecting");
			return false;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
			err = errno;
		if (err != 0) {
			snprintf(why, whylen, "%s", strerror(err));
			return false;
		}
		return true;
	}
}

static int
runtimeapi_connect(const char *addr, int64_t deadline_ms, char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL;
	char host[256], service[16];
	int fd = -1, port, rc;
	bool ok;

	if (addr[0] == '/') {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(addr) >= sizeof(sun.sun_path)) {
			snprintf(why, whylen, "socket path too long");
			return -1;
		}
		strcpy(sun.sun_path, addr);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			snprintf(why, whylen, "%s", strerror(errno));
			return -1;
		}
		if (!runtimeapi_connect_fd(fd, (struct sockaddr *)&sun, sizeof(sun), deadline_ms, why, whylen)) {
			close(fd);
			return -1;
		}
		return fd;
	}
	if (!conf_parse_listen(addr, host, sizeof(host), &port)) {
		snprintf(why, whylen, "not HOST:PORT or a socket path");
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc == EAI_NONAME) {
		/* a name: resolved here, on the worker's thread (never the loop's), within the resolver's own limits */
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(host, service, &hints, &res);
	}
	if (rc != 0 || res == NULL) {
		snprintf(why, whylen, "%s", gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	ok = runtimeapi_connect_fd(fd, res->ai_addr, res->ai_addrlen, deadline_ms, why, whylen);
	freeaddrinfo(res);
	if (!ok) {
		close(fd);
		return -1;
	}
	return fd;
}

bool
runtimeapi_command(const char *addr, const char *line, int timeout_ms, char *out, size_t outlen, char *why,
                   size_t whylen)
{
	int64_t deadline = monoclock_ms() + timeout_ms;
	size_t len = strlen(line), sent = 0, got = 0;
	int fd;

	out[0] = '\0';
	fd = runtimeapi_connect(addr, deadline, why, whylen);
	if (fd < 0)
		return false;
	while (sent <= len) {
		/* the line, then its newline */
		const char *p = sent < len ? line + sent : "\n";
		size_t n = sent < len ? len - sent : 1;
		struct pollfd pfd = {fd, POLLOUT, 0};
		ssize_t w;

		if (runtimeapi_left(deadline) == 0 || poll(&pfd, 1, runtimeapi_left(deadline)) != 1) {
			snprintf(why, whylen, "timed out sending");
			close(fd);
			return false;
		}
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(why, whylen, "%s", strerror(errno));
			close(fd);
			return false;
		}
		if (w > 0)
			sent += (size_t)w;
	}
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int left = runtimeapi_left(deadline);
		ssize_t r;

		if (left == 0 || poll(&pfd, 1, left) != 1) {
			snprintf(why, whylen, "no complete answer within %d ms", timeout_ms);
			close(fd);
			return false;
		}
		if (got + 1 >= outlen) {
			snprintf(why, whylen, "answer too long");
			close(fd);
			return false;
		}
		r = recv(fd, out + got, outlen - 1 - got, MSG_DONTWAIT);
		if (r == 0)
			break; /* HAProxy closes after a non-interactive command */
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			snprintf(why, whylen, "%s", strerror(errno));
			close(fd);
			return false;
		}
		got += (size_t)r;
		out[got] = '\0';
	}
	close(fd);
	return true;
}

static const char *const runtimeapi_errors[] = {
    "Unknown command", "Permission denied", "No such", "Invalid", "Require ", "not found",
    "cannot",          "Only servers",      "failed",  "unable",  "must",     "not enabled",
    "Already exists",  "already exists"};

const char *
runtimeapi_error_line(const char *answer)
{
	for (size_t i = 0; i < sizeof(runtimeapi_errors) / sizeof(runtimeapi_errors[0]); i++) {
		const char *hit = strstr(answer, runtimeapi_errors[i]);

		if (hit != NULL) {
			while (hit > answer && hit[-1] != '\n')
				hit--;
			return hit;
		}
	}
	return NULL;
}

bool
runtimeapi_answer_ok(const char *answer)
{
	return runtimeapi_error_line(answer) == NULL;
}

/* the fields of a "show servers state" line it keeps; the columns it reads come early (HAProxy 2.6 has 25) */
#define RUNTIMEAPI_FIELDS_MAX 32

/* runtimeapi_int reads a number field; garbage is 0 and out-of-range values are clamped, never undefined */
static int
runtimeapi_int(const char *s)
{
	long v = strtol(s, NULL, 10);

	return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v;
}

int
runtimeapi_parse_state(const char *text, const char *backend, struct runtimeapi_server *out, int max)
{
	enum {
		C_BE_NAME,
		C_SRV_ID,
		C_SRV_NAME,
		C_ADDR,
		C_OP,
		C_ADMIN,
		C_PORT,
		C_CHECK_PORT,
		C_AGENT_ADDR,
		C_AGENT_PORT,
		C_COUNT,
		C_UWEIGHT = C_COUNT, /* optional columns */
		C_IWEIGHT,
		C_ALL
	};
	static const char *const names[C_COUNT] = {"be_name",        "srv_id",          "srv_name", "srv_addr",
	                                           "srv_op_state",   "srv_admin_state", "srv_port", "srv_check_port",
	                                           "srv_agent_addr", "srv_agent_port"};
	static const char *const optional[C_ALL - C_COUNT] = {"srv_uweight", "srv_iweight"};
	int col[C_ALL], count = 0, last = 0;
	const char *line = text, *header = NULL;

	for (int i = 0; i < C_ALL; i++)
		col[i] = -1;
	/* the header line: "# be_id be_name srv_id ..." */
	while (*line != '\0') {
		if (line[0] == '#' && line[1] == ' ') {
			header = line + 2;
			break;
		}
		line = strchr(line, '\n');
		if (line == NULL)
			return -1;
		line++;
	}
	if (header == NULL)
		return -1;
	{
		int idx = 0;
		const char *p = header;

		while (*p != '\0' && *p != '\n') {
			size_t n = strcspn(p, " \n");

			for (int i = 0; i < C_ALL; i++) {
				const char *name = i < C_COUNT ? names[i] : optional[i - C_COUNT];

				if (strlen(name) == n && strncmp(p, name, n) == 0)
					col[i] = idx;
			}
			idx++;
			p += n;
			while (*p == ' ')
				p++;
		}
	}
	for (int i = 0; i < C_COUNT; i++) {
		if (col[i] < 0)
			return -1;
		if (col[i] > last)
			last = col[i];
	}
	if (last >= RUNTIMEAPI_FIELDS_MAX)
		return -1; /* a column it needs lies past the fields it keeps of a line */
	for (int i = C_COUNT; i < C_ALL; i++)
		if (col[i] >= RUNTIMEAPI_FIELDS_MAX)
			col[i] = -1; /* optional: past the fields kept of a line, unknown */
	line = strchr(header, '\n');
	while (line != NULL && *++line != '\0') {
		char fields[RUNTIMEAPI_FIELDS_MAX][64];
		int nf = 0;
		const char *p = line;
		struct runtimeapi_server *s;

		while (*p != '\0' && *p != '\n' && nf < RUNTIMEAPI_FIELDS_MAX) {
			size_t n = strcspn(p, " \n");

			snprintf(fields[nf++], sizeof(fields[0]), "%.*s", (int)(n < 63 ? n : 63), p);
			p += n;
			while (*p == ' ')
				p++;
		}
		line = strchr(line, '\n');
		if (nf <= last)
			continue; /* blank or short line */
		if (strcmp(fields[col[C_BE_NAME]], backend) != 0 || count >= max)
			continue;
		s = &out[count++];
		memset(s, 0, sizeof(*s));
		s->id = runtimeapi_int(fields[col[C_SRV_ID]]);
		snprintf(s->name, sizeof(s->name), "%s", fields[col[C_SRV_NAME]]);
		snprintf(s->addr, sizeof(s->addr), "%s", fields[col[C_ADDR]]);
		s->port = runtimeapi_int(fields[col[C_PORT]]);
		s->op_state = runtimeapi_int(fields[col[C_OP]]);
		s->admin_state = runtimeapi_int(fields[col[C_ADMIN]]);
		s->check_port = runtimeapi_int(fields[col[C_CHECK_PORT]]);
		snprintf(s->agent_addr, sizeof(s->agent_addr), "%s", fields[col[C_AGENT_ADDR]]);
		s->agent_port = runtimeapi_int(fields[col[C_AGENT_PORT]]);
		s->uweight = col[C_UWEIGHT] >= 0 && col[C_UWEIGHT] < nf ? runtimeapi_int(fields[col[C_UWEIGHT]]) : -1;
		s->iweight = col[C_IWEIGHT] >= 0 && col[C_IWEIGHT] < nf ? runtimeapi_int(fields[col[C_IWEIGHT]]) : -1;
		if (line == NULL)
			break;
	}
	return count;
}

bool
runtimeapi_stat_columns(const char *csv, const char *const *names, int count, int *col)
{
	int idx = 0;
	const char *p;

	if (strncmp(csv, "# ", 2) != 0)
		return false;
	p = csv + 2;
	for (;;) {
		size_t n = strcspn(p, ",\n");

		for (int i = 0; i < count; i++)
			if (col[i] < 0 && strlen(names[i]) == n && strncmp(p, names[i], n) == 0)
				col[i] = idx;
		p += n;
		if (*p != ',' || idx == INT_MAX)
			break;
		p++;
		idx++;
	}
	for (int i = 0; i < count; i++)
		if (col[i] < 0)
			return false;
	return true;
}
