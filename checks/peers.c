/*
 * peers.c: reads the other nodes' pgcheckd state on a timer of its own. Per peer and per round: a
 * non-blocking connect, "peer-state\n", one line back, close; the exchange has a deadline and a byte
 * limit. Addresses are resolved once, when the list is read (no DNS on the loop). Never touches
 * PostgreSQL and never delays a check.
 */
#include "peers.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "monoclock.h"

#define PEER_REPLY_MAX 256

struct peer {
	struct peers *owner;
	struct peer_state st;
	struct sockaddr_storage sa;
	socklen_t salen;
	bool resolved;
	int fd;
	ev_io io;
	ev_timer deadline;
	bool sent;
	size_t len;
	char buf[PEER_REPLY_MAX];
};

struct peers {
	struct ev_loop *loop;
	struct peers_conf conf;
	ev_timer round;
	void (*changed)(void *arg);
	void *arg;
	int count;
	struct peer peer[PEERS_MAX];
};

bool
peers_parse_line(const char *line, struct peer_state *st)
{
	const char *p;
	bool have_role = false;

	if (strncmp(line, "state", 5) != 0 || (line[5] != ' ' && line[5] != '\n' && line[5] != '\0'))
		return false;
	st->primary = st->replica = st->fenced = false;
	st->timeline = 0;
	st->system_identifier = 0;
	for (p = line + 5; *p != '\0' && *p != '\n';) {
		char key[16], value[32];
		int n = 0;

		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == '\n')
			break;
		if (sscanf(p, "%15[a-z_]=%31[^ \n]%n", key, value, &n) != 2 || n == 0)
			return false;
		p += n;
		if (strcmp(key, "role") == 0) {
			st->primary = strcmp(value, "primary") == 0;
			st->replica = strcmp(value, "replica") == 0;
			have_role = true;
		} else if (strcmp(key, "timeline") == 0) {
			st->timeline = atoi(value);
		} else if (strcmp(key, "sysid") == 0) {
			st->system_identifier = strtoull(value, NULL, 10);
		} else if (strcmp(key, "fenced") == 0) {
			st->fenced = strcmp(value, "1") == 0;
		} /* other keys: from a newer version, ignored */
	}
	return have_role;
}

static void
peers_end(struct peer *pe)
{
	struct peers *p = pe->owner;

	ev_timer_stop(p->loop, &pe->deadline);
	if (pe->fd >= 0) {
		ev_io_stop(p->loop, &pe->io);
		close(pe->fd);
		pe->fd = -1;
	}
}

static void
peers_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer *pe = w->data;
	struct peers *p = pe->owner;
	ssize_t n;

	(void)revents;
	if (!pe->sent) {
		int err = 0;
		socklen_t elen = sizeof(err);
		static const char req[] = "peer-state\n";

		if (getsockopt(pe->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0 ||
		    send(pe->fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
			peers_end(pe);
			return;
		}
		pe->sent = true;
		ev_io_stop(loop, &pe->io);
		ev_io_set(&pe->io, pe->fd, EV_READ);
		ev_io_start(loop, &pe->io);
		return;
	}
	n = recv(pe->fd, pe->buf + pe->len, sizeof(pe->buf) - 1 - pe->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		pe->len += (size_t)n;
		if (memchr(pe->buf, '\n', pe->len) == NULL && pe->len < sizeof(pe->buf) - 1)
			return;
	}
	pe->buf[pe->len] = '\0';
	if (pe->len > 0) {
		struct peer_state st = pe->st;

		if (peers_parse_line(pe->buf, &st)) {
			bool news = !pe->st.seen || st.primary != pe->st.primary || st.timeline != pe->st.timeline ||
			            st.fenced != pe->st.fenced;

			st.seen = true;
			st.seen_ms = monoclock_ms();
			pe->st = st;
			peers_end(pe);
			if (news && p->changed != NULL)
				p->changed(p->arg);
			return;
		}
	}
	peers_end(pe);
}

static void
peers_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	peers_end(w->data);
}

static void
peers_start_one(struct peers *p, struct peer *pe)
{
	if (pe->fd >= 0 || !pe->resolved)
		return; /* the last exchange is still running, or the name did not resolve */
	pe->fd = socket(pe->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pe->fd < 0)
		return;
	if (connect(pe->fd, (struct sockaddr *)&pe->sa, pe->salen) != 0 && errno != EINPROGRESS) {
		close(pe->fd);
		pe->fd = -1;
		return;
	}
	pe->sent = false;
	pe->len = 0;
	ev_io_set(&pe->io, pe->fd, EV_WRITE);
	ev_io_start(p->loop, &pe->io);
	ev_timer_set(&pe->deadline, (double)p->conf.timeout_ms / 1000.0, 0.);
	ev_timer_start(p->loop, &pe->deadline);
}

static void
peers_on_round(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct peers *p = w->data;

	(void)loop;
	(void)revents;
	for (int i = 0; i < p->count; i++)
		peers_start_one(p, &p->peer[i]);
}

struct peers *
peers_new(struct ev_loop *loop, const struct peers_conf *pc, void (*changed)(void *arg), void *arg)
{
	char list[PEERS_MAX][CONF_ADDR_MAX];
	struct peers *p;
	int count;

	if (!conf_parse_addr_list(pc->addresses, list, PEERS_MAX, &count) || count == 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->loop = loop;
	p->conf = *pc;
	p->conf.addresses = NULL;
	p->changed = changed;
	p->arg = arg;
	p->count = count;
	for (int i = 0; i < count; i++) {
		struct peer *pe = &p->peer[i];
		struct addrinfo hints, *res = NULL;
		char host[256], service[16];
		int port;

		pe->owner = p;
		pe->fd = -1;
		memcpy(pe->st.addr, list[i], sizeof(pe->st.addr)); /* same size, NUL-terminated by conf */
		ev_io_init(&pe->io, peers_on_io, -1, EV_WRITE);
		pe->io.data = pe;
		ev_timer_init(&pe->deadline, peers_on_deadline, 0., 0.);
		pe->deadline.data = pe;
		(void)conf_parse_listen(list[i], host, sizeof(host), &port);
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		snprintf(service, sizeof(service), "%d", port);
		/* resolved once, here: a name that does not resolve leaves this peer silent (and logged by main) */
		if (getaddrinfo(host, service, &hints, &res) == 0 && res != NULL) {
			memcpy(&pe->sa, res->ai_addr, res->ai_addrlen);
			pe->salen = res->ai_addrlen;
			pe->resolved = true;
		}
		if (res != NULL)
			freeaddrinfo(res);
	}
	ev_timer_init(&p->round, peers_on_round, 0., (double)pc->interval_ms / 1000.0);
	p->round.data = p;
	ev_timer_start(loop, &p->round);
	return p;
}

void
peers_free(struct peers *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->count; i++)
		peers_end(&p->peer[i]);
	ev_timer_stop(p->loop, &p->round);
	free(p);
}

int
peers_count(const struct peers *p)
{
	return p != NULL ? p->count : 0;
}

const struct peer_state *
peers_state(const struct peers *p, int i)
{
	return p != NULL && i >= 0 && i < p->count ? &p->peer[i].st : NULL;
}

bool
peers_resolved(const struct peers *p, int i)
{
	return p != NULL && i >= 0 && i < p->count && p->peer[i].resolved;
}

void
peers_summary(const struct peers *p, int64_t now_ms, int64_t fresh_ms, uint64_t system_identifier, int my_timeline,
              struct peer_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->configured = peers_count(p);
	for (int i = 0; i < out->configured; i++) {
		const struct peer_state *st = &p->peer[i].st;

		if (!st->seen || now_ms - st->seen_ms > fresh_ms)
			continue;
		if (system_identifier != 0 && st->system_identifier != 0 &&
		    st->system_identifier != system_identifier) {
			out->foreign++;
			continue;
		}
		out->fresh++;
		if (st->seen_ms > out->last_fresh_ms)
			out->last_fresh_ms = st->seen_ms;
		if (!st->primary)
			continue; /* a fenced peer primary still counts: two fenced primaries stay fenced */
		if (st->timeline > out->newest_primary_timeline)
			out->newest_primary_timeline = st->timeline;
		if (st->timeline == my_timeline)
			out->primaries_on_timeline++;
	}
}
