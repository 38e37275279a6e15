/*
 * listener.c: the agent port on libev. Each client gets a request_idle_ms timer (a request without a
 * newline ends after that much silence; a client that sends nothing gets the default request), an
 * overall client_timeout_ms deadline and a fixed buffer; clients over max_clients are closed at once.
 * The answer is always one complete line, written once, then the connection is closed.
 */
#include "listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentline.h"
#include "log.h"

/* Connections accepted per wake-up, so a flood cannot starve the rest of the loop. */
#define LISTENER_ACCEPT_BATCH 64
/* Pause after the process ran out of descriptors, instead of spinning on accept. */
#define LISTENER_EMFILE_PAUSE_S 0.1

struct client {
	struct listener *l;
	int fd;
	ev_io io;
	ev_timer idle;
	ev_timer deadline;
	size_t len;
	char buf[AGENTLINE_MAX + 1];
	struct client *prev, *next;
};

struct listener {
	struct ev_loop *loop;
	struct listener_conf conf;
	listener_verdict_fn fn;
	void *arg;
	int fd;
	ev_io accept_io;
	ev_timer pause;
	int nclients;
	struct client *clients;
	uint64_t answered, refused;
};

static void
listener_client_close(struct client *c)
{
	struct listener *l = c->l;

	ev_io_stop(l->loop, &c->io);
	ev_timer_stop(l->loop, &c->idle);
	ev_timer_stop(l->loop, &c->deadline);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	l->nclients--;
	free(c);
}

/* listener_answer parses what the client sent, asks for the verdict, writes one line and closes. */
static void
listener_answer(struct client *c)
{
	struct listener *l = c->l;
	struct request r;
	struct verdict v;
	char reply[VERDICT_REASON_MAX + 16];
	size_t n;
	ssize_t w;

	switch (agentline_parse(c->buf, c->len, &r)) {
	case AGENTLINE_OK:
		l->fn(l->arg, &r, &v);
		break;
	case AGENTLINE_EMPTY:
		memset(&r, 0, sizeof(r));
		r.kind = l->conf.default_request;
		l->fn(l->arg, &r, &v);
		break;
	default:
		memset(&v, 0, sizeof(v));
		snprintf(v.reason, sizeof(v.reason), "bad-request");
		break;
	}
	n = agentline_render(&v, reply, sizeof(reply));
	do
		w = send(c->fd, reply, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w == (ssize_t)n)
		l->answered++;
	log_debug("agent fd %d: %s", c->fd, reply);
	listener_client_close(c);
}

static void
listener_on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	ssize_t n;

	(void)revents;
	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		listener_client_close(c); /* reset by the peer: nobody to answer */
		return;
	}
	if (n == 0) {
		listener_answer(c); /* end of the request: the client half-closed */
		return;
	}
	c->len += (size_t)n;
	if (memchr(c->buf, '\n', c->len) != NULL || c->len == sizeof(c->buf)) {
		listener_answer(c); /* a full line, or more than a request can be: bad-request */
		return;
	}
	ev_timer_again(loop, &c->idle);
}

static void
listener_on_client_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	listener_answer(w->data);
}

static void
listener_on_client_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	listener_client_close(w->data);
}

static void
listener_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;

	(void)revents;
	for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c;
		int one = 1;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warning("agent port: cannot accept: %s; pausing", strerror(errno));
				ev_io_stop(loop, &l->accept_io);
				ev_timer_start(loop, &l->pause);
			}
			return;
		}
		if (l->nclients >= l->conf.max_clients || (c = calloc(1, sizeof(*c))) == NULL) {
			l->refused++;
			close(fd);
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->l = l;
		c->fd = fd;
		ev_io_init(&c->io, listener_on_client_io, fd, EV_READ);
		c->io.data = c;
		ev_init(&c->idle, listener_on_client_idle);
		c->idle.repeat = (double)l->conf.request_idle_ms / 1000.0;
		c->idle.data = c;
		ev_timer_init(&c->deadline, listener_on_client_deadline, (double)l->conf.client_timeout_ms / 1000.0, 0.);
		c->deadline.data = c;
		c->next = l->clients;
		if (c->next != NULL)
			c->next->prev = c;
		l->clients = c;
		l->nclients++;
		ev_io_start(loop, &c->io);
		ev_timer_again(loop, &c->idle);
		ev_timer_start(loop, &c->deadline);
	}
}

static void
listener_on_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;

	(void)revents;
	ev_io_start(loop, &l->accept_io);
}

static int
listener_bind(const char *host, int port)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int fd = -1, rc, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = strcmp(host, "*") == 0 ? AF_INET : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, service, &hints, &res);
	if (rc != 0) {
		log_error("agent port %s:%d: %s", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			break;
		log_error("agent port %s:%d: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

struct listener *
listener_new(struct ev_loop *loop, const char *host, int port, const struct listener_conf *lc, listener_verdict_fn fn,
	     void *arg)
{
	struct listener *l;
	int fd = listener_bind(host, port);

	if (fd < 0)
		return NULL; /* errors have been logged already */
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		close(fd);
		return NULL;
	}
	l->loop = loop;
	l->conf = *lc;
	l->fn = fn;
	l->arg = arg;
	l->fd = fd;
	ev_io_init(&l->accept_io, listener_on_accept, fd, EV_READ);
	l->accept_io.data = l;
	ev_timer_init(&l->pause, listener_on_pause, LISTENER_EMFILE_PAUSE_S, 0.);
	l->pause.data = l;
	ev_io_start(loop, &l->accept_io);
	return l;
}

void
listener_reconfigure(struct listener *l, const struct listener_conf *lc)
{
	l->conf = *lc; /* open connections keep the timers they were given */
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	while (l->clients != NULL)
		listener_client_close(l->clients);
	ev_io_stop(l->loop, &l->accept_io);
	ev_timer_stop(l->loop, &l->pause);
	close(l->fd);
	free(l);
}
