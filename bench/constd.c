/*
 * constd: the limit. A minimal responder on libev (pgcheckd's event loop) that accepts a connection,
 * reads the request once it has arrived, writes a constant answer and closes. No parsing beyond
 * looking for the end of the request, no timers, no state: whatever pgcheckd does per check costs
 * more than this, so pgcheckd's checks per second as a fraction of constd's show how close it is.
 *
 *   constd -p PORT [--http]
 *
 * Agent mode answers "up 100%\n" once a newline arrived (or the client half-closed); --http answers
 * "HTTP/1.0 200 OK" with an empty body once "\r\n\r\n" arrived. Runs until SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool http;
static const char agent_answer[] = "up 100%\n";
static const char http_answer[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";

struct client {
	ev_io io;
	size_t len;
	char buf[1024];
};

static void
client_end(struct ev_loop *loop, struct client *c)
{
	ev_io_stop(loop, &c->io);
	close(c->io.fd);
	free(c);
}

static void
on_client(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = (struct client *)w;
	(void)revents;
	for (;;) {
		ssize_t n = recv(w->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			client_end(loop, c);
			return;
		}
		c->len += (size_t)n;
		c->buf[c->len] = 0;
		bool complete = n == 0 || c->len == sizeof(c->buf) - 1 ||
		                (http ? strstr(c->buf, "\r\n\r\n") != NULL : memchr(c->buf, '\n', c->len) != NULL);
		if (complete) {
			if (http)
				(void)send(w->fd, http_answer, sizeof(http_answer) - 1, MSG_NOSIGNAL);
			else
				(void)send(w->fd, agent_answer, sizeof(agent_answer) - 1, MSG_NOSIGNAL);
			client_end(loop, c);
			return;
		}
	}
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct client *c = malloc(sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->len = 0;
		ev_io_init(&c->io, on_client, fd, EV_READ);
		ev_io_start(loop, &c->io);
	}
}

static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

int
main(int argc, char **argv)
{
	int port = 0, one = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-p") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--http"))
			http = true;
		else {
			fprintf(stderr, "usage: constd -p PORT [--http]\n");
			return 2;
		}
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: constd -p PORT [--http]\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, SOMAXCONN) != 0) {
		perror("constd: bind/listen");
		return 1;
	}
	struct ev_loop *loop = EV_DEFAULT;
	ev_io acc;
	ev_signal s1, s2;
	ev_io_init(&acc, on_accept, fd, EV_READ);
	ev_io_start(loop, &acc);
	ev_signal_init(&s1, on_signal, SIGTERM);
	ev_signal_start(loop, &s1);
	ev_signal_init(&s2, on_signal, SIGINT);
	ev_signal_start(loop, &s2);
	signal(SIGPIPE, SIG_IGN);
	ev_run(loop, 0);
	return 0;
}
