/*
 * conncheck: the pgDoctor model, for comparison. An HTTP health responder that opens a new
 * PostgreSQL connection for every request, runs "SELECT pg_is_in_recovery()", closes the connection
 * and answers 200 or 503:
 *
 *   GET /primary (/, /master, /leader, /read-write)  200 when not in recovery
 *   GET /replica (/standby, /read-only)              200 when in recovery
 *   GET /health                                      200 when the query ran
 *
 *   conncheck -p PORT -d CONNINFO [-w WORKERS]
 *
 * WORKERS threads (default 32) each accept and serve one request at a time (blocking libpq, as such
 * responders are written), so up to WORKERS checks run at once. Runs until SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int listen_fd;
static const char *conninfo;

static void
answer(int fd, int code, const char *body)
{
	char out[512];
	int n = snprintf(
	    out, sizeof(out),
	    "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", code,
	    code == 200   ? "OK"
	    : code == 404 ? "Not Found"
	                  : "Service Unavailable",
	    strlen(body), body);
	(void)send(fd, out, (size_t)n, MSG_NOSIGNAL);
}

static void
serve(int fd)
{
	char buf[4096];
	size_t len = 0;
	struct timeval tv = {.tv_sec = 2};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = 0;
		if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL)
			break;
	}
	buf[len] = 0;
	char path[256] = "/";
	if (sscanf(buf, "%*s %255s", path) != 1)
		strcpy(path, "/");
	char *q = strchr(path, '?');
	if (q != NULL)
		*q = 0;
	int want; /* 0 primary, 1 replica, 2 health */
	if (!strcmp(path, "/") || !strcmp(path, "/primary") || !strcmp(path, "/master") || !strcmp(path, "/leader") ||
	    !strcmp(path, "/read-write"))
		want = 0;
	else if (!strcmp(path, "/replica") || !strcmp(path, "/standby") || !strcmp(path, "/read-only"))
		want = 1;
	else if (!strcmp(path, "/health"))
		want = 2;
	else {
		answer(fd, 404, "unknown path\n");
		return;
	}

	PGconn *conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		PQfinish(conn);
		answer(fd, 503, "DB Down\n");
		return;
	}
	PGresult *r = PQexec(conn, "SELECT pg_is_in_recovery()");
	int rec = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		rec = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	PQfinish(conn);
	if (rec < 0)
		answer(fd, 503, "DB Down\n");
	else if (want == 2)
		answer(fd, 200, rec ? "Standby\n" : "Primary\n");
	else if (want == 0)
		answer(fd, rec ? 503 : 200, rec ? "Standby\n" : "Primary\n");
	else
		answer(fd, rec ? 200 : 503, rec ? "Standby\n" : "Primary\n");
}

static void *
worker(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			usleep(10000);
			continue;
		}
		serve(fd);
		close(fd);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	int port = 0, workers = 32, one = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-p"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-d"))
			conninfo = argv[i + 1];
		else if (!strcmp(argv[i], "-w"))
			workers = atoi(argv[i + 1]);
	}
	if (port <= 0 || port > 65535 || conninfo == NULL || workers < 1 || workers > 1024) {
		fprintf(stderr, "usage: conncheck -p PORT -d CONNINFO [-w WORKERS]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(listen_fd, SOMAXCONN) != 0) {
		perror("conncheck: bind/listen");
		return 1;
	}
	/* the main thread waits for SIGTERM/SIGINT; workers never see them */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < workers; i++) {
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, worker, NULL) != 0) {
			perror("conncheck: pthread_create");
			return 1;
		}
		pthread_detach(t);
	}
	int sig;
	sigwait(&set, &sig);
	return 0;
}
