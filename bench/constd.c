/*
 * constd: the limit. A minimal responder on libev (pgcheckd's event loop) that accepts a connection,
 * reads the request once it has arrived, writes a constant answer and closes. No parsing beyond
 * looking for the end of the request, no timers, no state: whatever pgcheckd does per check costs
 * more than this, so pgcheckd's checks per second as a fraction of constd's show how close it is.
 *
 *   constd -p PORT [--http] [--tls CERT KEY [--resume] [--verify CA]]
 *
 * Agent mode answers "up 100%\n" once a newline arrived (or the client half-closed); --http answers
 * "HTTP/1.0 200 OK" with an empty body once "\r\n\r\n" arrived. Runs until SIGTERM or SIGINT.
 *
 * --tls: the same behind a non-blocking OpenSSL handshake (accept, handshake, read, answer,
 * close_notify, close), with pgcheckd's server settings (agent/serve/tls.c: TLS 1.2 at least, its
 * cipher list for 1.2, server order, no renegotiation, no session tickets, no session cache: every
 * connection a full handshake), so that it is the limit for pgcheckd with TLS. --resume turns the
 * session cache and TLS 1.3 tickets on: what a server that lets clients resume could reach. --verify
 * requires a client certificate signed by CA (pgcheckd's verify_client = required with ca_file).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool http;
static SSL_CTX *tls_ctx; /* NULL: plain */
static const char agent_answer[] = "up 100%\n";
static const char http_answer[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";

struct client {
	ev_io io;
	SSL *ssl;
	bool handshaken;
	size_t len;
	char buf[1024];
};

static void
client_end(struct ev_loop *loop, struct client *c)
{
	ev_io_stop(loop, &c->io);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	close(c->io.fd);
	free(c);
}

static bool
request_complete(const struct client *c, bool eof)
{
	return eof || c->len == sizeof(c->buf) - 1 ||
	       (http ? strstr(c->buf, "\r\n\r\n") != NULL : memchr(c->buf, '\n', c->len) != NULL);
}

static void
client_wait(struct ev_loop *loop, struct client *c, int events)
{
	if ((c->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->io.fd, events);
	ev_io_start(loop, &c->io);
}

/* TLS: handshake, then read the request, answer, close_notify, close; never blocks */
static void
on_tls_client(struct ev_loop *loop, struct client *c)
{
	for (;;) {
		int r;
		if (!c->handshaken) {
			r = SSL_accept(c->ssl);
			if (r == 1) {
				c->handshaken = true;
				continue;
			}
		} else {
			r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - 1 - c->len));
			if (r > 0) {
				c->len += (size_t)r;
				c->buf[c->len] = 0;
				if (!request_complete(c, false))
					continue;
			}
			if (r > 0 || SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
				const char *a = http ? http_answer : agent_answer;
				size_t n = http ? sizeof(http_answer) - 1 : sizeof(agent_answer) - 1;
				(void)SSL_write(c->ssl, a, (int)n); /* a few bytes into an empty socket buffer */
				(void)SSL_shutdown(c->ssl);
				client_end(loop, c);
				return;
			}
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			client_wait(loop, c, EV_READ);
			return;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			client_wait(loop, c, EV_WRITE);
			return;
		}
		ERR_clear_error();
		client_end(loop, c);
		return;
	}
}

static void
on_client(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = (struct client *)w;
	(void)revents;
	if (c->ssl != NULL) {
		on_tls_client(loop, c);
		return;
	}
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
		if (request_complete(c, n == 0)) {
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
		c->handshaken = false;
		c->ssl = NULL;
		if (tls_ctx != NULL && ((c->ssl = SSL_new(tls_ctx)) == NULL || SSL_set_fd(c->ssl, fd) != 1)) {
			if (c->ssl != NULL)
				SSL_free(c->ssl);
			close(fd);
			free(c);
			continue;
		}
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
	const char *cert = NULL, *key = NULL, *verify = NULL;
	bool resume = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-p") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--http"))
			http = true;
		else if (!strcmp(argv[i], "--tls") && i + 2 < argc) {
			cert = argv[++i];
			key = argv[++i];
		} else if (!strcmp(argv[i], "--resume"))
			resume = true;
		else if (!strcmp(argv[i], "--verify") && i + 1 < argc)
			verify = argv[++i];
		else {
			port = 0;
			break;
		}
	}
	if (port <= 0 || port > 65535 || ((resume || verify) && cert == NULL)) {
		fprintf(stderr, "usage: constd -p PORT [--http] [--tls CERT KEY [--resume] [--verify CA]]\n");
		return 2;
	}
	if (cert != NULL) {
		tls_ctx = SSL_CTX_new(TLS_server_method());
		if (tls_ctx == NULL) {
			fprintf(stderr, "constd: cannot create a TLS context\n");
			return 1;
		}
		(void)SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
		SSL_CTX_set_options(tls_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
		                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
		                                 (resume ? 0 : SSL_OP_NO_TICKET));
		if (!resume) {
			(void)SSL_CTX_set_num_tickets(tls_ctx, 0);
			(void)SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
		} else {
			(void)SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_SERVER);
			(void)SSL_CTX_set_session_id_context(tls_ctx, (const unsigned char *)"constd", 6);
		}
		if (SSL_CTX_set_cipher_list(tls_ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1 ||
		    SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(tls_ctx) != 1) {
			fprintf(stderr, "constd: cannot use certificate %s / key %s\n", cert, key);
			return 1;
		}
		if (verify != NULL) {
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(verify);
			if (names == NULL || SSL_CTX_load_verify_locations(tls_ctx, verify, NULL) != 1) {
				fprintf(stderr, "constd: cannot use CA file %s\n", verify);
				return 1;
			}
			SSL_CTX_set_client_CA_list(tls_ctx, names);
			SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		}
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
	SSL_CTX_free(tls_ctx);
	return 0;
}
