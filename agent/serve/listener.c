/*
 * listener.c: the ports on libev. A client gets a request_idle_ms timer (a request without a newline
 * ends after that much silence; a client that sends nothing gets the default request), an overall
 * client_timeout_ms deadline and a fixed buffer. The answer is written once (the rest on EV_WRITE if
 * the socket is full), then the connection is shut down and closed. On a TLS port the same client
 * first runs a non-blocking handshake (SSL_do_handshake on EV_READ or EV_WRITE, as OpenSSL asks) within
 * the same deadline, then reads and writes through SSL_read and SSL_write; without TLS nothing changes.
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>

#include "agentline.h"
#include "http.h"
#include "log.h"
#include "monoclock.h"
#include "peers.h"
#include "respond.h"
#include "tls.h"

/* Connections accepted per wake-up, so a flood cannot starve the rest of the loop. */
#define LISTENER_ACCEPT_BATCH 64
/* Refused sources remembered for rate-limiting their log line, and how long one line covers. */
#define LISTENER_REFUSALS_LOGGED 32
#define LISTENER_REFUSAL_LOG_MS  60000
/* Causes of failed TLS handshakes remembered for rate-limiting their log line (one a minute each). */
#define LISTENER_TLS_CAUSES_LOGGED 16
/* The cause code of a handshake cut by client_timeout_ms (tls_failure_cause never gives it) */
#define LISTENER_TLS_CAUSE_TIMEOUT 0x80000000UL
/* Pause after the process ran out of descriptors, instead of spinning on accept. */
#define LISTENER_EMFILE_PAUSE_S 0.1

/* A client's address, IPv4-mapped IPv6 taken as IPv4: one source, however it came. */
struct listener_source {
	int family; /* AF_INET, AF_INET6; 0 for a Unix socket */
	unsigned char addr[16];
};

struct listener_refusal {
	struct listener_source source;
	int64_t logged_ms;
};

struct listener_tls_cause {
	unsigned long code;
	int64_t logged_ms;
};

struct client {
	struct listener *l;
	int fd;
	SSL *ssl;         /* a TLS port's connection; NULL on a plain one */
	bool handshaking; /* TLS: the handshake has not finished */
	ev_io io;
	ev_timer idle;
	ev_timer deadline;
	bool is_http;
	size_t len;
	char *out; /* the answer being written */
	size_t out_len, out_off;
	struct client *prev, *next; /* newest first */
	struct listener_source source;
	unsigned batch; /* the accept batch it came in: never evicted by that same batch */
	char buf[HTTP_REQUEST_MAX];
};

struct listener {
	struct ev_loop *loop;
	enum listener_mode mode;
	struct listener_conf conf;
	struct listener_ops ops;
	void *arg;
	struct render_counters *counters;
	int fd;
	char unix_path[108];
	ev_io accept_io;
	ev_timer pause;
	bool accept_paused; /* out of descriptors: warned once, until an accept succeeds */
	bool listening;     /* a role port is bound all along but listens only while its role holds */
	char host[256];     /* a role port's address, to bind again if it ever had to be released */
	int port;
	int nclients;
	struct client *clients, *oldest;
	unsigned batch;                                             /* accept batches so far */
	struct listener_refusal refusals[LISTENER_REFUSALS_LOGGED]; /* last logged, per source */
	SSL_CTX *tls;                                               /* new connections speak TLS; NULL: plain */
};

/* the last line logged per cause of a failed handshake, for every port at once (one loop, one thread) */
static struct listener_tls_cause listener_tls_causes[LISTENER_TLS_CAUSES_LOGGED];

static void
listener_client_close(struct client *c)
{
	struct listener *l = c->l;

	ev_io_stop(l->loop, &c->io);
	ev_timer_stop(l->loop, &c->idle);
	ev_timer_stop(l->loop, &c->deadline);
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->oldest = c->prev;
	l->nclients--;
	free(c->out);
	free(c);
}

/* listener_finish half-closes after the answer and drops what the client may still have sent. */
static void
listener_finish(struct client *c)
{
	char sink[512];
	int budget = 8;

	if (c->ssl != NULL)
		(void)SSL_shutdown(c->ssl); /* close_notify, if the socket takes it; never waited for */
	(void)shutdown(c->fd, SHUT_WR);
	while (budget-- > 0 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	listener_client_close(c);
}

/* listener_wait makes the client's watcher wait for events (EV_READ or EV_WRITE). */
static void
listener_wait(struct client *c, int events)
{
	if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(c->l->loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(c->l->loop, &c->io);
}

/* listener_tls_flush is listener_flush through SSL_write; false when c was closed. */
static bool
listener_tls_flush(struct client *c)
{
	while (c->out_off < c->out_len) {
		int w = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));

		if (w <= 0) {
			int e = SSL_get_error(c->ssl, w);

			if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
				listener_wait(c, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
				return false;
			}
			listener_client_close(c);
			return false;
		}
		c->out_off += (size_t)w;
	}
	return true;
}

static void
listener_flush(struct client *c)
{
	if (c->ssl != NULL) {
		if (listener_tls_flush(c))
			listener_finish(c);
		return;
	}
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* wait for room; the deadline still bounds the client */
				ev_io_stop(c->l->loop, &c->io);
				ev_io_set(&c->io, c->fd, EV_WRITE);
				ev_io_start(c->l->loop, &c->io);
				return;
			}
			listener_client_close(c);
			return;
		}
		c->out_off += (size_t)w;
	}
	listener_finish(c);
}

/* listener_send takes the answer and starts writing it; the client stops reading. */
static void
listener_send(struct client *c, const char *data, size_t n)
{
	ev_timer_stop(c->l->loop, &c->idle);
	ev_io_stop(c->l->loop, &c->io);
	c->out = malloc(n > 0 ? n : 1);
	if (c->out == NULL) {
		listener_client_close(c);
		return;
	}
	memcpy(c->out, data, n);
	c->out_len = n;
	c->out_off = 0;
	listener_flush(c);
}

/*
 * listener_peer_alert: a peer's "peer-alert" is its "peer-state" request under another word (the same
 * length, so its MAC stands): it is answered as that, and the daemon reads its peers soon. It can only
 * make a read of the peers happen earlier (the daemon spaces them), never change what one says.
 */
static void
listener_peer_alert(struct listener *l, struct client *c)
{
	const size_t n = sizeof(PEERS_ALERT_WORD) - 1;

	if (c->len < n || memcmp(c->buf, PEERS_ALERT_WORD, n) != 0 ||
	    (c->len > n && c->buf[n] != '\n' && c->buf[n] != '\r' && c->buf[n] != ' '))
		return;
	memcpy(c->buf, "peer-state", n);
	if (l->ops.alert != NULL)
		l->ops.alert(l->arg);
}

/* listener_answer renders what the client asked for on a fresh snapshot and starts writing it. */
static void
listener_answer(struct client *c, enum http_parse parsed, const struct http_request *h)
{
	struct listener *l = c->l;
	struct node_view v;
	struct policy p;
	struct respond_ctx x = {&v, &p, l->counters, l->conf.default_request, l->conf.maxconn_pct, &l->conf.auth};
	char *out;
	size_t n;

	if (l->mode == LISTENER_ADMIN) {
		char line[256];

		out = malloc(RESPOND_REPLY_MAX);
		if (out == NULL) {
			listener_client_close(c);
			return;
		}
		if (respond_admin_line(c->buf, c->len, line, sizeof(line)))
			l->ops.admin(l->arg, line, out, RESPOND_REPLY_MAX);
		else
			snprintf(out, RESPOND_REPLY_MAX, "error bad command\n");
		l->counters->checks[PROTOCOL_ADMIN]++;
		listener_send(c, out, strlen(out));
		free(out);
		return;
	}
	l->ops.view(l->arg, &v, &p);
	if (!c->is_http) {
		char line[RESPOND_LINE_MAX];

		if (l->mode == LISTENER_ROLE) {
			l->counters->checks[PROTOCOL_ROLE_PORT]++;
			n = respond_role(&x, line, sizeof(line));
		} else {
			l->counters->checks[PROTOCOL_AGENT]++;
			listener_peer_alert(l, c);
			n = respond_agent(&x, c->buf, c->len, line, sizeof(line));
			log_debug("agent fd %d: %.*s", c->fd, n > 0 ? (int)n - 1 : 0, line);
		}
		listener_send(c, line, n);
		return;
	}
	out = malloc(RESPOND_REPLY_MAX + 512);
	if (out == NULL) {
		listener_client_close(c);
		return;
	}
	l->counters->checks[PROTOCOL_HTTP]++;
	n = respond_http(&x, parsed, h, out, RESPOND_REPLY_MAX + 512);
	if (n == 0)
		listener_client_close(c);
	else
		listener_send(c, out, n);
	free(out);
}

/*
 * listener_consider decides whether the request is complete: after new bytes, after request_idle_ms
 * of silence (silence) or when the client half-closed (eof).
 */
static bool
listener_consider(struct client *c, bool silence, bool eof)
{
	struct listener *l = c->l;
	struct http_request h;
	enum http_parse parsed;
	bool ended = silence || eof;

	if (l->mode == LISTENER_ADMIN) {
		if (!ended && memchr(c->buf, '\n', c->len) == NULL && c->len < sizeof(c->buf))
			return false;
		listener_answer(c, HTTP_BAD, NULL);
		return true;
	}
	if (!c->is_http && l->mode == LISTENER_AGENT) {
		/* [agent] http = false: every request on the agent port is an agent line ("GET /..." a bad one) */
		enum http_sniff sniff = l->conf.http ? http_sniff(c->buf, c->len) : HTTP_SNIFF_NO;

		if (sniff == HTTP_SNIFF_MAYBE && !ended)
			return false;
		if (sniff != HTTP_SNIFF_YES) {
			/* an agent line; an upper-case word and then silence is one too ("PRIMARY") */
			if (!ended && memchr(c->buf, '\n', c->len) == NULL && c->len <= AGENTLINE_MAX)
				return false;
			listener_answer(c, HTTP_BAD, NULL);
			return true;
		}
		c->is_http = true;
	}
	/* HTTP ends with its empty line, not with silence: EOF before it is a bad request */
	parsed = http_parse_request(c->buf, c->len, &h);
	if (parsed == HTTP_INCOMPLETE) {
		if (!eof)
			return false;
		parsed = HTTP_BAD;
	}
	listener_answer(c, parsed, &h);
	return true;
}

/* listener_log_tls_failure says once a minute per cause (on any port) why handshakes fail, never per connection. */
static void
listener_log_tls_failure(struct listener *l, unsigned long code, const char *cause, const struct listener_source *src)
{
	int64_t now = monoclock_ms();
	struct listener_tls_cause *slot = &listener_tls_causes[0];
	char text[INET6_ADDRSTRLEN];

	for (int i = 0; i < LISTENER_TLS_CAUSES_LOGGED; i++) {
		struct listener_tls_cause *t = &listener_tls_causes[i];

		if (t->logged_ms != 0 && t->code == code) {
			if (now - t->logged_ms < LISTENER_REFUSAL_LOG_MS)
				return;
			slot = t;
			break;
		}
		if (t->logged_ms < slot->logged_ms)
			slot = t; /* the least recently logged makes room */
	}
	slot->code = code;
	slot->logged_ms = now;
	if (src->family == 0 || inet_ntop(src->family, src->addr, text, sizeof(text)) == NULL)
		snprintf(text, sizeof(text), "?");
	log_warning("TLS handshake on port %d failed (client %s): %s; closed. More failures for this reason are "
	            "not logged for a minute",
	            l->port, text, cause);
}

static bool listener_consider(struct client *c, bool silence, bool eof);

/* listener_tls_read reads what the TLS connection has, as the plain path reads the socket. */
static void
listener_tls_read(struct client *c)
{
	struct ev_loop *loop = c->l->loop;

	for (;;) {
		size_t room = sizeof(c->buf) - c->len;
		int n, e;

		if (room == 0) {
			ev_io_stop(loop, &c->io);
			(void)listener_consider(c, false, true); /* as a full buffer reads on the plain path */
			return;
		}
		n = SSL_read(c->ssl, c->buf + c->len, (int)room);
		if (n <= 0) {
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				listener_wait(c, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
				return;
			}
			ERR_clear_error();
			if (e == SSL_ERROR_ZERO_RETURN) {
				ev_io_stop(loop, &c->io); /* close_notify or EOF: the request ends here */
				(void)listener_consider(c, false, true);
				return;
			}
			listener_client_close(c);
			return;
		}
		if (c->len == 0)
			c->idle.repeat = (double)c->l->conf.request_idle_ms / 1000.0;
		c->len += (size_t)n;
		if (listener_consider(c, false, false))
			return;
		ev_timer_again(loop, &c->idle);
		if (SSL_pending(c->ssl) == 0)
			return; /* the rest is still in the socket: EV_READ comes back */
	}
}

/* listener_tls_handshake takes the handshake one step; once done, the request is read as on a plain port. */
static void
listener_tls_handshake(struct client *c)
{
	int rc = SSL_do_handshake(c->ssl), e;
	unsigned long code;
	const char *cause;

	if (rc == 1) {
		c->handshaking = false;
		listener_wait(c, EV_READ);
		ev_timer_again(c->l->loop, &c->idle); /* request_wait_ms counts from here */
		listener_tls_read(c);
		return;
	}
	e = SSL_get_error(c->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		listener_wait(c, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
		return;
	}
	cause = tls_failure_cause(e, &code);
	/* a client that closed before its first byte tried no TLS at all (a plain TCP check): not worth a line */
	if (BIO_number_read(SSL_get_rbio(c->ssl)) > 0) {
		c->l->counters->tls_failed++;
		listener_log_tls_failure(c->l, code, cause, &c->source);
	}
	listener_client_close(c);
}

static void
listener_on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	ssize_t n;

	if (c->ssl != NULL) {
		/* OpenSSL says what it waits for: the state, not the event, decides */
		if (c->handshaking)
			listener_tls_handshake(c);
		else if (c->out != NULL)
			listener_flush(c);
		else
			listener_tls_read(c);
		return;
	}
	if (revents & EV_WRITE) {
		listener_flush(c);
		return;
	}
	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		listener_client_close(c); /* reset by the peer: nobody to answer */
		return;
	}
	if (n == 0) {
		ev_io_stop(loop, &c->io);
		(void)listener_consider(c, false, true);
		return;
	}
	if (c->len == 0)
		c->idle.repeat = (double)c->l->conf.request_idle_ms / 1000.0;
	c->len += (size_t)n;
	if (!listener_consider(c, false, false))
		ev_timer_again(loop, &c->idle); /* silence now counts from this byte */
}

static void
listener_on_client_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;

	(void)loop;
	(void)revents;
	if (c->is_http)
		return; /* HTTP requests end with their empty line, EOF or the deadline */
	(void)listener_consider(c, true, false);
}

static void
listener_on_client_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;
	struct http_request h;

	(void)loop;
	(void)revents;
	if (c->handshaking) {
		c->l->counters->tls_failed++;
		listener_log_tls_failure(c->l, LISTENER_TLS_CAUSE_TIMEOUT,
		                         "the handshake did not finish within [agent] client_timeout_ms", &c->source);
		listener_client_close(c);
		return;
	}
	if (c->is_http && c->out == NULL) {
		memset(&h, 0, sizeof(h));
		listener_answer(c, HTTP_BAD, &h); /* 400, and closed */
		return;
	}
	listener_client_close(c);
}

static void
listener_source_of(const struct sockaddr_storage *ss, struct listener_source *out)
{
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (ss->ss_family == AF_INET) {
		out->family = AF_INET;
		memcpy(out->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;

		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
			out->family = AF_INET;
			memcpy(out->addr, a + sizeof(v4mapped), 4);
		} else {
			out->family = AF_INET6;
			memcpy(out->addr, a, 16);
		}
	}
}

static bool
listener_same_source(const struct listener_source *a, const struct listener_source *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* listener_allowed applies [agent] allow to a TCP client; the admin socket is guarded by its file mode. */
static bool
listener_allowed(const struct listener *l, const struct listener_source *src)
{
	if (l->mode == LISTENER_ADMIN || l->conf.allow_count == 0)
		return true;
	return src->family != 0 && conf_cidr_match(l->conf.allow, l->conf.allow_count, src->family, src->addr);
}

/* listener_log_refusal says once a minute per source that it was refused, and what would let it in. */
static void
listener_log_refusal(struct listener *l, const struct listener_source *src)
{
	int64_t now = monoclock_ms();
	struct listener_refusal *slot = &l->refusals[0];
	char text[INET6_ADDRSTRLEN];

	for (int i = 0; i < LISTENER_REFUSALS_LOGGED; i++) {
		struct listener_refusal *r = &l->refusals[i];

		if (r->logged_ms != 0 && listener_same_source(&r->source, src)) {
			if (now - r->logged_ms < LISTENER_REFUSAL_LOG_MS)
				return;
			slot = r;
			break;
		}
		if (r->logged_ms < slot->logged_ms)
			slot = r; /* the least recently logged makes room */
	}
	slot->source = *src;
	slot->logged_ms = now;
	if (inet_ntop(src->family, src->addr, text, sizeof(text)) == NULL)
		snprintf(text, sizeof(text), "?");
	log_warning("refused a connection from %s: not in [agent] allow (add it, or its network as ADDRESS/BITS, "
	            "for a remote HAProxy or peer); more from it are counted, not logged, for a minute",
	            text);
}

/* listener_evictable: not yet answered, and not accepted by the batch running now (it had no chance yet) */
static bool
listener_evictable(const struct listener *l, const struct client *c)
{
	return c->out == NULL && c->batch != l->batch;
}

/*
 * listener_make_room finds a slot for a new client from src: at the per-source cap it closes that
 * source's oldest client that has not finished its request, at the overall cap the oldest such client
 * of all. A check is answered within a millisecond, so an idle or slow connection always goes first.
 * False when every slot is taken by clients being answered.
 */
static bool
listener_make_room(struct listener *l, const struct listener_source *src)
{
	struct client *victim = NULL;
	int same = 0;

	if (l->nclients >= l->conf.max_clients_per_source) {
		for (struct client *c = l->oldest; c != NULL; c = c->prev) {
			if (!listener_same_source(&c->source, src))
				continue;
			same++;
			if (victim == NULL && listener_evictable(l, c))
				victim = c;
		}
		if (same < l->conf.max_clients_per_source)
			victim = NULL;
		else if (victim == NULL)
			return false;
	}
	if (victim == NULL && l->nclients >= l->conf.max_clients) {
		for (struct client *c = l->oldest; c != NULL && victim == NULL; c = c->prev)
			if (listener_evictable(l, c))
				victim = c;
		if (victim == NULL)
			return false;
	}
	if (victim != NULL) {
		l->counters->evicted++;
		listener_client_close(victim);
	}
	return true;
}

static void
listener_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;

	(void)revents;
	l->batch++;
	for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct listener_source source;
		struct client *c;
		int one = 1;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* one warning per episode: the pause repeats every 0.1 s while it lasts */
				if (!l->accept_paused)
					log_warning("cannot accept: %s; pausing accepts %.0f ms at a time",
					            strerror(errno), LISTENER_EMFILE_PAUSE_S * 1000.);
				l->accept_paused = true;
				ev_io_stop(loop, &l->accept_io);
				/* a one-shot timer that has fired restarts with 0 s left unless it is set again */
				ev_timer_set(&l->pause, LISTENER_EMFILE_PAUSE_S, 0.);
				ev_timer_start(loop, &l->pause);
			}
			return;
		}
		if (l->accept_paused) {
			l->accept_paused = false;
			log_info("accepting again");
		}
		listener_source_of(&ss, &source);
		if (!listener_allowed(l, &source)) {
			l->counters->denied++;
			listener_log_refusal(l, &source);
			close(fd);
			continue;
		}
		if (!listener_make_room(l, &source) || (c = calloc(1, sizeof(*c))) == NULL) {
			l->counters->refused++;
			close(fd);
			continue;
		}
		if (l->mode != LISTENER_ADMIN)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->l = l;
		c->fd = fd;
		if (l->tls != NULL) {
			c->ssl = SSL_new(l->tls);
			if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
				SSL_free(c->ssl);
				ERR_clear_error();
				free(c);
				l->counters->refused++;
				close(fd);
				continue;
			}
			SSL_set_accept_state(c->ssl);
			c->handshaking = true;
		}
		c->is_http = l->mode == LISTENER_HTTP;
		ev_io_init(&c->io, listener_on_client_io, fd, EV_READ);
		c->io.data = c;
		ev_init(&c->idle, listener_on_client_idle);
		/* until the first byte, wait longer: a late request must not be taken for none */
		c->idle.repeat = (double)l->conf.request_wait_ms / 1000.0;
		c->idle.data = c;
		ev_timer_init(&c->deadline, listener_on_client_deadline, (double)l->conf.client_timeout_ms / 1000.0,
		              0.);
		c->deadline.data = c;
		c->source = source;
		c->batch = l->batch;
		c->next = l->clients;
		if (c->next != NULL)
			c->next->prev = c;
		else
			l->oldest = c;
		l->clients = c;
		l->nclients++;
		ev_timer_start(loop, &c->deadline);
		if (l->mode == LISTENER_ROLE) {
			listener_answer(c, HTTP_BAD, NULL);
			continue;
		}
		ev_io_start(loop, &c->io);
		if (c->ssl != NULL) {
			listener_tls_handshake(c); /* its request is read when the handshake is done */
			continue;
		}
		ev_timer_again(loop, &c->idle);
		/* a check's request is usually there already: answer it now, before the next accept can need its slot
		 */
		listener_on_client_io(loop, &c->io, EV_READ);
	}
}

static void
listener_on_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;

	(void)revents;
	if (l->listening)
		ev_io_start(loop, &l->accept_io);
}

/*
 * listener_socket is a TCP socket for a listener. A role port's socket sets SO_REUSEPORT and not
 * SO_REUSEADDR: while it is bound but not listening, no other user's socket can bind the port (Linux
 * lets SO_REUSEPORT sockets share a port only under one user id, and SO_REUSEADDR ones only while
 * none of them listens), and a restart still binds past connections in TIME_WAIT.
 */
static int
listener_socket(int family, bool role)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, role ? SO_REUSEPORT : SO_REUSEADDR, &one, sizeof(one));
	return fd;
}

/* listener_bind_tcp binds host:port and listens, except a role port: bound only (listener_set_open). */
static int
listener_bind_tcp(const char *host, int port, bool role)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int fd = -1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = strcmp(host, "*") == 0 ? AF_INET : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, service, &hints, &res);
	if (rc != 0) {
		log_error("port %s:%d: %s", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = listener_socket(ai->ai_family, role);
		if (fd < 0)
			continue;
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && (role || listen(fd, SOMAXCONN) == 0))
			break;
		log_error("port %s:%d: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int
listener_bind_unix(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_error("admin socket %s: path too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("admin socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* replace a socket left by a previous run, never one another agent is serving */
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN) {
			log_error("admin socket %s: another process is serving it", path);
			close(fd);
			return -1;
		}
		(void)unlink(path);
		close(fd);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			log_error("admin socket %s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || chmod(path, 0600) != 0 || listen(fd, 16) != 0) {
		log_error("admin socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct listener *
listener_new(struct ev_loop *loop, enum listener_mode mode, const char *host, int port, const struct listener_conf *lc,
             const struct listener_ops *ops, void *arg, struct render_counters *counters)
{
	struct listener *l;
	int fd =
	    mode == LISTENER_ADMIN ? listener_bind_unix(host) : listener_bind_tcp(host, port, mode == LISTENER_ROLE);

	if (fd < 0)
		return NULL; /* errors have been logged already */
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		close(fd);
		return NULL;
	}
	l->loop = loop;
	l->mode = mode;
	l->conf = *lc;
	l->ops = *ops;
	l->arg = arg;
	l->counters = counters;
	l->fd = fd;
	if (mode == LISTENER_ADMIN)
		snprintf(l->unix_path, sizeof(l->unix_path), "%s", host);
	snprintf(l->host, sizeof(l->host), "%s", host);
	l->port = port;
	ev_io_init(&l->accept_io, listener_on_accept, fd, EV_READ);
	l->accept_io.data = l;
	ev_timer_init(&l->pause, listener_on_pause, LISTENER_EMFILE_PAUSE_S, 0.);
	l->pause.data = l;
	l->listening = mode != LISTENER_ROLE;
	if (l->listening)
		ev_io_start(loop, &l->accept_io);
	return l;
}

bool
listener_set_open(struct listener *l, bool open)
{
	struct sockaddr_storage addr;
	socklen_t alen = sizeof(addr);
	int holder;

	if (l->mode != LISTENER_ROLE || open == l->listening)
		return true;
	if (open) {
		if (l->fd < 0 && (l->fd = listener_bind_tcp(l->host, l->port, true)) < 0)
			return false; /* errors have been logged already */
		ev_io_set(&l->accept_io, l->fd, EV_READ);
		if (listen(l->fd, SOMAXCONN) != 0) {
			log_error("role port: cannot listen: %s", strerror(errno));
			return false;
		}
		l->listening = true;
		ev_io_start(l->loop, &l->accept_io);
		return true;
	}
	/*
	 * Linux has no way back from listen() that keeps the port bound, so a second socket binds the same
	 * address (allowed: same user, SO_REUSEPORT) before the listening one closes; the port is never free.
	 * Connections not yet accepted are reset.
	 */
	ev_io_stop(l->loop, &l->accept_io);
	ev_timer_stop(l->loop, &l->pause);
	l->listening = false;
	if (getsockname(l->fd, (struct sockaddr *)&addr, &alen) != 0 ||
	    (holder = listener_socket(addr.ss_family, true)) < 0) {
		log_error("role port: cannot keep the port bound: %s", strerror(errno));
		close(l->fd); /* not listening matters more than holding the port */
		l->fd = -1;
		return false;
	}
	if (bind(holder, (struct sockaddr *)&addr, alen) != 0) {
		log_error("role port: cannot keep the port bound: %s", strerror(errno));
		close(holder);
		close(l->fd);
		l->fd = -1;
		return false;
	}
	close(l->fd);
	l->fd = holder;
	ev_io_set(&l->accept_io, holder, EV_READ);
	return true;
}

bool
listener_is_open(const struct listener *l)
{
	return l->listening;
}

void
listener_reconfigure(struct listener *l, const struct listener_conf *lc)
{
	enum request_kind role = l->conf.default_request;

	l->conf = *lc; /* open connections keep the timers they were given */
	if (l->mode == LISTENER_ROLE)
		l->conf.default_request = role;
}

void
listener_set_tls(struct listener *l, SSL_CTX *ctx)
{
	if (l->mode != LISTENER_AGENT && l->mode != LISTENER_HTTP)
		return;
	if (ctx != NULL)
		(void)SSL_CTX_up_ref(ctx);
	tls_context_free(l->tls); /* connections keep their own reference until they close */
	l->tls = ctx;
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
	if (l->fd >= 0)
		close(l->fd);
	if (l->unix_path[0] != '\0')
		(void)unlink(l->unix_path);
	tls_context_free(l->tls);
	free(l);
}
