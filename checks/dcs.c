/*
 * dcs.c: the etcd v3 client on the event loop. libcurl's multi interface is driven by libev (its
 * sockets as ev_io, its timeout as an ev_timer); one exchange at a time, each with CURLOPT_TIMEOUT_MS
 * and a byte cap, no proxy, no redirect. It never blocks and never logs: what it learned is read with
 * dcs_summary, changes are told through changed(); what etcd sends is believed only once
 * dcs_answer_range has checked it.
 */
#include "dcs.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "dcs_answer.h"
#include "monoclock.h"

/* conf checks [dcs] against its own copies of these limits */
_Static_assert(CONF_DCS_ENDPOINTS_MAX == DCS_ENDPOINTS_MAX && CONF_DCS_URL_MAX == DCS_URL_MAX &&
                   CONF_DCS_KEY_MAX == DCS_KEY_MAX && CONF_DCS_NAME_MAX == DCS_NAME_MAX &&
                   CONF_DCS_PASSWORD_MAX == DCS_PASSWORD_MAX,
               "[dcs] limits differ between conf.h and the DCS client");

enum dcs_step {
	DCS_STEP_READ,
	DCS_STEP_GRANT,
	DCS_STEP_KEEPALIVE,
	DCS_STEP_TXN,
	DCS_STEP_TXN_MINE,
	DCS_STEP_REVOKE,
	DCS_STEP_AUTH, /* [dcs] username: a token, before the step it was needed for */
};

static const char *const dcs_step_paths[] = {"/v3/kv/range", "/v3/lease/grant",  "/v3/lease/keepalive",  "/v3/kv/txn",
                                             "/v3/kv/txn",   "/v3/lease/revoke", "/v3/auth/authenticate"};

/* after etcd refused the user or password: the next try waits, from the first to the longest wait, doubling */
#define DCS_AUTH_RETRY_FIRST_MS  1000
#define DCS_AUTH_RETRY_MAX_MS    30000
#define DCS_GRPC_UNAUTHENTICATED 16 /* etcd's "invalid auth token" (an expired or revoked token) */

struct dcs {
	struct ev_loop *loop;
	char endpoints[DCS_ENDPOINTS_MAX][DCS_URL_MAX];
	int endpoint_count;
	int current; /* the endpoint in use */
	char key[DCS_KEY_MAX];
	char name[DCS_NAME_MAX];
	int64_t interval_ms, timeout_ms;
	bool lease_mode; /* hold the key under a lease, rather than read who holds it */
	int64_t lease_ttl_s;
	char ca_file[4096], cert_file[4096], key_file[4096];
	/* etcd's authentication ([dcs] username): the token is sent with every request but authenticate's */
	bool auth;
	char username[DCS_NAME_MAX];
	char password[DCS_PASSWORD_MAX];
	char token[DCS_TOKEN_MAX];            /* "" when none is held */
	char auth_header[DCS_TOKEN_MAX + 16]; /* "Authorization: <token>" */
	enum dcs_step resume;                 /* the step an authentication runs before */
	bool reauthed;                        /* this round has authenticated again after a refused token */
	int64_t auth_retry_ms;                /* after a refused authentication: no other before this */
	int64_t auth_wait_ms;                 /* the wait it was given */
	uint64_t authentications, auth_failures;
	void (*changed)(void *arg);
	void *arg;

	CURLM *multi;
	ev_timer poll;       /* the next read */
	ev_timer curl_timer; /* libcurl's own timeout */
	/* the exchange in flight */
	CURL *easy;
	struct curl_slist *headers;
	char request[DCS_KEY_MAX * 2];  /* the range read of the key, made once */
	char body_out[DCS_KEY_MAX * 4]; /* the body of the exchange in flight, when not the range read */
	enum dcs_step step;             /* what the exchange in flight is */
	char *body;
	size_t body_len;
	bool body_over;
	int64_t sent_ms;
	int tries; /* endpoints tried in this round */
	char errbuf[CURL_ERROR_SIZE];

	/* what it knows */
	bool heard;
	int64_t heard_sent_ms; /* when the request of the last believed answer was sent */
	bool have_leader;
	char leader[DCS_NAME_MAX];
	enum dcs_error last_error;
	char detail[CURL_ERROR_SIZE];
	uint64_t answers, errors;

	/* lease mode */
	bool candidate;          /* this node is a writable primary: it wants the key */
	int64_t lease_id;        /* 0: none */
	int64_t lease_expiry_ms; /* by our clock: the SENDING of the grant or keepalive that set it, plus its TTL */
	bool holding;            /* the key is ours, attached to lease_id */
	bool holding_told;       /* holding, as changed() last heard it */
};

/* one per socket libcurl watches */
struct dcs_sock {
	ev_io io;
	struct dcs *d;
};

static void dcs_start(struct dcs *d, enum dcs_step step);

bool
dcs_parse_endpoints(const char *list, char urls[][DCS_URL_MAX], int max, int *count)
{
	const char *p = list;

	*count = 0;
	while (*p != '\0') {
		const char *end;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		end = p;
		while (*end != '\0' && *end != ',' && *end != ' ' && *end != '\t')
			end++;
		n = (size_t)(end - p);
		while (n > 0 && p[n - 1] == '/')
			n--;
		if (*count >= max || n >= DCS_URL_MAX ||
		    !((n > 7 && strncmp(p, "http://", 7) == 0) || (n > 8 && strncmp(p, "https://", 8) == 0)))
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
				return false;
		memcpy(urls[*count], p, n);
		urls[*count][n] = '\0';
		(*count)++;
		p = end;
	}
	return *count > 0;
}

bool
dcs_patroni_leader_key(const char *namespace_, const char *scope, char *out, size_t cap)
{
	char raw[DCS_KEY_MAX * 2];
	size_t o = 0;
	int n = snprintf(raw, sizeof(raw), "/%s/%s/leader", namespace_, scope);

	if (n < 0 || (size_t)n >= sizeof(raw))
		return false;
	/* as Patroni builds its paths: repeated slashes are one */
	for (const char *p = raw; *p != '\0'; p++) {
		if (*p == '/' && o > 0 && out[o - 1] == '/')
			continue;
		if (o + 1 >= cap)
			return false;
		out[o++] = *p;
	}
	out[o] = '\0';
	return o < DCS_KEY_MAX;
}

static size_t
dcs_on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct dcs *d = userdata;
	size_t n = size * nmemb;

	if (d->body_len + n > DCS_ANSWER_MAX) {
		d->body_over = true;
		return 0; /* CURLE_WRITE_ERROR: the transfer stops here */
	}
	memcpy(d->body + d->body_len, ptr, n);
	d->body_len += n;
	return n;
}

static enum dcs_error
dcs_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return DCS_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return DCS_CONNECT_FAILED;
	case CURLE_FILESIZE_EXCEEDED:
		return DCS_TOO_LARGE;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return DCS_TLS;
	default:
		return DCS_TRANSPORT;
	}
}

/* dcs_note records the outcome of the exchange sent at sent_ms; tells changed() what is new. */
static void
dcs_note(struct dcs *d, enum dcs_error e, bool found, const char *value)
{
	bool news = e != d->last_error || d->holding != d->holding_told;

	if (e == DCS_OK) {
		d->answers++;
		news = news || !d->heard || found != d->have_leader || strcmp(value, d->leader) != 0;
		d->heard = true;
		d->heard_sent_ms = d->sent_ms;
		d->have_leader = found;
		snprintf(d->leader, sizeof(d->leader), "%s", value);
		d->detail[0] = '\0';
	} else {
		d->errors++;
	}
	d->last_error = e;
	d->holding_told = d->holding;
	if (news && d->changed != NULL)
		d->changed(d->arg);
}

/*
 * dcs_lease_answer takes a lease mode answer (body) to the exchange in flight; the next step of this
 * round, or -1 when the round is over. *e is set when the answer is not believed.
 */
static int
dcs_lease_answer(struct dcs *d, enum dcs_error *e)
{
	char holder[DCS_NAME_MAX] = "";
	bool found = false, done = false;
	int64_t id = 0, ttl_s = 0, lease = 0;

	switch (d->step) {
	case DCS_STEP_GRANT:
		if ((*e = dcs_answer_grant(d->body, d->body_len, &id, &ttl_s)) != DCS_OK)
			return -1;
		d->lease_id = id;
		d->lease_expiry_ms = d->sent_ms + ttl_s * 1000;
		return DCS_STEP_TXN;
	case DCS_STEP_KEEPALIVE:
		if ((*e = dcs_answer_keepalive(d->body, d->body_len, d->lease_id, &ttl_s)) != DCS_OK)
			return -1;
		if (ttl_s <= 0) { /* expired: the key is no longer ours; a new lease at once */
			d->lease_id = 0;
			d->holding = false;
			return DCS_STEP_GRANT;
		}
		d->lease_expiry_ms = d->sent_ms + ttl_s * 1000;
		return d->holding ? DCS_STEP_READ : DCS_STEP_TXN;
	case DCS_STEP_REVOKE:
		d->lease_id = 0;
		d->holding = false;
		return DCS_STEP_READ;
	case DCS_STEP_TXN:
	case DCS_STEP_TXN_MINE:
		*e = dcs_answer_txn(d->body, d->body_len, d->key, &done, holder, sizeof(holder), &found, &lease);
		if (*e != DCS_OK)
			return -1;
		if (!done && found && strcmp(holder, d->name) == 0 && lease != d->lease_id && d->step == DCS_STEP_TXN)
			return DCS_STEP_TXN_MINE; /* ours from an older lease (a restart): attach it to this one */
		d->holding = done || (found && strcmp(holder, d->name) == 0 && lease == d->lease_id);
		dcs_note(d, DCS_OK, d->holding || found, d->holding ? d->name : holder);
		return -1;
	case DCS_STEP_READ:
	default:
		*e = dcs_answer_range_lease(d->body, d->body_len, d->key, holder, sizeof(holder), &found, &lease);
		if (*e != DCS_OK)
			return -1;
		if (d->holding && !(found && strcmp(holder, d->name) == 0 && lease == d->lease_id))
			d->holding = false; /* deleted or taken over (by hand): not ours, whatever the lease says */
		dcs_note(d, DCS_OK, found, holder);
		return -1;
	}
}

/*
 * dcs_refused_auth tells whether a failed exchange (HTTP status) is etcd refusing this client's
 * authentication (DCS_AUTH, detail set; *token_refused: the token was, and is dropped) or not.
 */
static bool
dcs_refused_auth(struct dcs *d, long status, bool *token_refused)
{
	int64_t code = -1;

	*token_refused = false;
	if (!d->auth)
		return false;
	if (d->step == DCS_STEP_AUTH && status >= 400 && status < 500) {
		snprintf(d->detail, sizeof(d->detail), "etcd refused user %s's name or password (HTTP status %ld)",
		         d->username, status);
		return true;
	}
	if (status == 401 || (dcs_answer_error_code(d->body, d->body_len, &code) && code == DCS_GRPC_UNAUTHENTICATED)) {
		*token_refused = true;
		explicit_bzero(d->token, sizeof(d->token));
		snprintf(d->detail, sizeof(d->detail), "etcd refused the token of user %s (HTTP status %ld)%s",
		         d->username, status, d->reauthed ? " just after authenticating" : "");
		return true;
	}
	if (status == 403) {
		snprintf(d->detail, sizeof(d->detail), "permission denied to user %s (HTTP status 403)", d->username);
		return true;
	}
	return false;
}

/* dcs_finish takes the finished exchange's result; on failure the next endpoint is tried at once, each once a round. */
static void
dcs_finish(struct dcs *d, CURLcode rc)
{
	char value[DCS_NAME_MAX] = "";
	bool found = false, token_refused = false, authenticated = false;
	long status = 0;
	enum dcs_error e = DCS_OK;
	int next = -1;

	(void)curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
	if (d->body_over) {
		e = DCS_TOO_LARGE;
		snprintf(d->detail, sizeof(d->detail), "answer over %d bytes", DCS_ANSWER_MAX);
	} else if (rc != CURLE_OK) {
		e = dcs_curl_error(rc);
		snprintf(d->detail, sizeof(d->detail), "%s", d->errbuf[0] != '\0' ? d->errbuf : curl_easy_strerror(rc));
	} else if (status != 200 && dcs_refused_auth(d, status, &token_refused)) {
		e = DCS_AUTH;
	} else if (status != 200) {
		e = DCS_HTTP_STATUS;
		snprintf(d->detail, sizeof(d->detail), "HTTP status %ld", status);
	} else if (d->step == DCS_STEP_AUTH) {
		e = dcs_answer_auth(d->body, d->body_len, d->token, sizeof(d->token));
		authenticated = e == DCS_OK;
	} else if (d->lease_mode) {
		next = dcs_lease_answer(d, &e);
	} else {
		e = dcs_answer_range(d->body, d->body_len, d->key, value, sizeof(value), &found);
	}
	if (e != DCS_OK && d->detail[0] == '\0')
		snprintf(d->detail, sizeof(d->detail), "answer not believed (%s)", dcs_error_names[e]);
	curl_multi_remove_handle(d->multi, d->easy);
	curl_easy_cleanup(d->easy);
	curl_slist_free_all(d->headers);
	d->easy = NULL;
	d->headers = NULL;
	if (d->step == DCS_STEP_AUTH)
		explicit_bzero(d->body_out, sizeof(d->body_out)); /* it held the password */
	if (authenticated) {                                      /* on with the step the token was needed for */
		d->authentications++;
		d->auth_wait_ms = 0;
		dcs_start(d, d->resume);
		return;
	}
	if (token_refused && !d->reauthed) { /* expired or revoked: authenticate again, once a round */
		d->reauthed = true;
		dcs_start(d, d->step);
		return;
	}
	if (e == DCS_AUTH) {
		d->auth_failures++;
		if (d->step == DCS_STEP_AUTH) { /* the user or password is refused: not again at once */
			d->auth_wait_ms = d->auth_wait_ms == 0 ? DCS_AUTH_RETRY_FIRST_MS : d->auth_wait_ms * 2;
			if (d->auth_wait_ms > DCS_AUTH_RETRY_MAX_MS)
				d->auth_wait_ms = DCS_AUTH_RETRY_MAX_MS;
			d->auth_retry_ms = monoclock_ms() + d->auth_wait_ms;
		}
		dcs_note(d, e, false, ""); /* every endpoint would say the same */
		return;
	}
	if (e != DCS_OK && ++d->tries < d->endpoint_count) {
		/* the next endpoint at once; the round fails (and is told) only when every one has */
		d->errors++;
		d->current = (d->current + 1) % d->endpoint_count;
		dcs_start(d, d->step);
		return;
	}
	if (e != DCS_OK) {
		dcs_note(d, e, false, "");
		d->current = (d->current + 1) % d->endpoint_count; /* the next round starts elsewhere */
	} else if (!d->lease_mode) {
		dcs_note(d, e, found, value);
	} else if (next >= 0) {
		d->tries = 0;
		dcs_start(d, (enum dcs_step)next);
	}
}

static void
dcs_check_done(struct dcs *d)
{
	CURLMsg *msg;
	int left;

	while (d->easy != NULL && (msg = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == d->easy)
			dcs_finish(d, msg->data.result);
	}
}

static void
dcs_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dcs_sock *s = (struct dcs_sock *)w;
	struct dcs *d = s->d;
	int flags = ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0),
	    running;

	(void)loop;
	(void)curl_multi_socket_action(d->multi, w->fd, flags, &running);
	dcs_check_done(d);
}

static void
dcs_on_curl_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dcs *d = w->data;
	int running;

	(void)loop;
	(void)revents;
	(void)curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	dcs_check_done(d);
}

/* libcurl says which sockets to watch for what */
static int
dcs_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct dcs *d = userp;
	struct dcs_sock *s = socketp;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			ev_io_stop(d->loop, &s->io);
			free(s);
		}
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		s->d = d;
		ev_io_init(&s->io, dcs_on_io, fd, 0);
		curl_multi_assign(d->multi, fd, s);
	}
	ev_io_stop(d->loop, &s->io);
	ev_io_set(&s->io, fd, ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
	ev_io_start(d->loop, &s->io);
	return 0;
}

/* libcurl asks to be called after timeout_ms (-1: never) */
static int
dcs_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct dcs *d = userp;

	(void)multi;
	ev_timer_stop(d->loop, &d->curl_timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&d->curl_timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(d->loop, &d->curl_timer);
	}
	return 0;
}

/* dcs_start sends the read of the key to the endpoint in use; a failure to set it up counts as an exchange's. */
static void
dcs_start(struct dcs *d, enum dcs_step step)
{
	char url[DCS_URL_MAX + 32];
	const char *body = d->request;
	size_t n = 1;
	CURL *e;

	if (d->easy != NULL)
		return; /* one at a time; the running one has its deadline */
	if (d->auth && d->token[0] == '\0' && step != DCS_STEP_AUTH) {
		d->resume = step;
		step = DCS_STEP_AUTH;
	}
	d->step = step;
	switch (step) {
	case DCS_STEP_AUTH:
		n = dcs_answer_auth_request(d->username, d->password, d->body_out, sizeof(d->body_out));
		break;
	case DCS_STEP_GRANT:
		n = dcs_answer_grant_request(d->lease_ttl_s, d->body_out, sizeof(d->body_out));
		break;
	case DCS_STEP_KEEPALIVE:
		n = dcs_answer_keepalive_request(d->lease_id, d->body_out, sizeof(d->body_out));
		break;
	case DCS_STEP_REVOKE:
		n = dcs_answer_revoke_request(d->lease_id, d->body_out, sizeof(d->body_out));
		break;
	case DCS_STEP_TXN:
	case DCS_STEP_TXN_MINE:
		n = dcs_answer_txn_request(d->key, d->name, d->lease_id, step == DCS_STEP_TXN_MINE, d->body_out,
		                           sizeof(d->body_out));
		break;
	default:
		break;
	}
	if (step != DCS_STEP_READ)
		body = d->body_out;
	if (n == 0) { /* cannot happen: conf bounds the key, the name, the user and the password */
		snprintf(d->detail, sizeof(d->detail), "request too large");
		dcs_note(d, step == DCS_STEP_AUTH ? DCS_AUTH : DCS_TRANSPORT, false, "");
		return;
	}
	e = curl_easy_init();
	d->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (d->headers != NULL && step != DCS_STEP_AUTH && d->token[0] != '\0') {
		struct curl_slist *h;

		snprintf(d->auth_header, sizeof(d->auth_header), "Authorization: %s", d->token);
		h = curl_slist_append(d->headers, d->auth_header);
		if (h == NULL) {
			curl_slist_free_all(d->headers);
			d->headers = NULL;
		} else
			d->headers = h;
	}
	if (e == NULL || d->headers == NULL) {
		curl_easy_cleanup(e);
		curl_slist_free_all(d->headers);
		d->headers = NULL;
		snprintf(d->detail, sizeof(d->detail), "out of memory");
		dcs_note(d, DCS_TRANSPORT, false, "");
		return;
	}
	snprintf(url, sizeof(url), "%s%s", d->endpoints[d->current], dcs_step_paths[step]);
	d->body_len = 0;
	d->body_over = false;
	d->errbuf[0] = '\0';
	d->detail[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never a proxy from the environment */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE, (long)DCS_ANSWER_MAX);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, dcs_on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf);
	if (d->ca_file[0] != '\0')
		curl_easy_setopt(e, CURLOPT_CAINFO, d->ca_file);
	if (d->cert_file[0] != '\0')
		curl_easy_setopt(e, CURLOPT_SSLCERT, d->cert_file);
	if (d->key_file[0] != '\0')
		curl_easy_setopt(e, CURLOPT_SSLKEY, d->key_file);
	d->easy = e;
	d->sent_ms = monoclock_ms();
	if (curl_multi_add_handle(d->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		curl_slist_free_all(d->headers);
		d->easy = NULL;
		d->headers = NULL;
		snprintf(d->detail, sizeof(d->detail), "cannot start a transfer");
		dcs_note(d, DCS_TRANSPORT, false, "");
	}
}

static void
dcs_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dcs *d = w->data;

	(void)loop;
	(void)revents;
	if (d->easy != NULL)
		return; /* the last round is still on; its exchange has its deadline */
	if (d->auth && d->token[0] == '\0' && monoclock_ms() < d->auth_retry_ms)
		return; /* etcd refused the user or password a moment ago: what it said stands until then */
	d->tries = 0;
	d->reauthed = false;
	if (!d->lease_mode)
		dcs_start(d, DCS_STEP_READ);
	else if (!d->candidate) {
		d->holding = false; /* not a writable primary: it claims nothing, and lets the key go */
		dcs_start(d, d->lease_id != 0 ? DCS_STEP_REVOKE : DCS_STEP_READ);
	} else if (d->lease_id == 0 || monoclock_ms() >= d->lease_expiry_ms) {
		d->lease_id = 0;
		d->holding = false;
		dcs_start(d, DCS_STEP_GRANT);
	} else
		dcs_start(d, DCS_STEP_KEEPALIVE);
}

void
dcs_set_candidate(struct dcs *d, bool candidate)
{
	if (d != NULL)
		d->candidate = candidate;
}

struct dcs *
dcs_new(struct ev_loop *loop, const struct dcs_conf *dc, void (*changed)(void *arg), void *arg)
{
	static bool curl_ready;
	struct dcs *d;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return NULL;
		curl_ready = true;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->body = malloc(DCS_ANSWER_MAX);
	d->multi = curl_multi_init();
	if (d->body == NULL || d->multi == NULL ||
	    !dcs_parse_endpoints(dc->endpoints, d->endpoints, DCS_ENDPOINTS_MAX, &d->endpoint_count) ||
	    dcs_answer_range_request(dc->key, d->request, sizeof(d->request)) == 0) {
		dcs_free(d);
		return NULL;
	}
	d->loop = loop;
	snprintf(d->key, sizeof(d->key), "%s", dc->key);
	snprintf(d->name, sizeof(d->name), "%s", dc->name);
	snprintf(d->ca_file, sizeof(d->ca_file), "%s", dc->ca_file != NULL ? dc->ca_file : "");
	snprintf(d->cert_file, sizeof(d->cert_file), "%s", dc->cert_file != NULL ? dc->cert_file : "");
	snprintf(d->key_file, sizeof(d->key_file), "%s", dc->key_file != NULL ? dc->key_file : "");
	d->auth = dc->username != NULL && dc->username[0] != '\0';
	snprintf(d->username, sizeof(d->username), "%s", d->auth ? dc->username : "");
	snprintf(d->password, sizeof(d->password), "%s", d->auth && dc->password != NULL ? dc->password : "");
	d->interval_ms = dc->interval_ms;
	d->timeout_ms = dc->timeout_ms;
	d->lease_mode = dc->lease_ttl_s > 0;
	d->lease_ttl_s = dc->lease_ttl_s;
	d->changed = changed;
	d->arg = arg;
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, dcs_socket_cb);
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, dcs_timer_cb);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
	ev_timer_init(&d->curl_timer, dcs_on_curl_timer, 0., 0.);
	d->curl_timer.data = d;
	ev_timer_init(&d->poll, dcs_on_poll, 0., (double)d->interval_ms / 1000.0);
	d->poll.data = d;
	ev_timer_start(loop, &d->poll);
	return d;
}

void
dcs_free(struct dcs *d)
{
	if (d == NULL)
		return;
	if (d->loop != NULL) {
		ev_timer_stop(d->loop, &d->poll);
		ev_timer_stop(d->loop, &d->curl_timer);
	}
	if (d->easy != NULL) {
		curl_multi_remove_handle(d->multi, d->easy); /* its sockets are released through dcs_socket_cb */
		curl_easy_cleanup(d->easy);
	}
	curl_slist_free_all(d->headers);
	if (d->multi != NULL)
		curl_multi_cleanup(d->multi);
	if (d->loop != NULL)
		ev_timer_stop(d->loop, &d->curl_timer); /* set again while the handle was removed */
	free(d->body);
	explicit_bzero(d, sizeof(*d)); /* the password, the token */
	free(d);
}

void
dcs_summary(const struct dcs *d, int64_t now_ms, struct dcs_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->age_ms = -1;
	if (d == NULL)
		return;
	out->configured = true;
	out->heard = d->heard;
	if (d->heard)
		out->age_ms = now_ms - d->heard_sent_ms;
	out->have_leader = d->have_leader;
	out->leader_is_me = d->heard && d->have_leader && strcmp(d->leader, d->name) == 0;
	out->lease_mode = d->lease_mode;
	out->holding = d->lease_mode && d->holding;
	out->lease_left_ms = out->holding ? d->lease_expiry_ms - now_ms : -1;
	if (d->lease_mode)
		out->leader_is_me = out->holding;
	snprintf(out->leader, sizeof(out->leader), "%s", d->leader);
	out->last_error = d->last_error;
	snprintf(out->endpoint, sizeof(out->endpoint), "%s", d->endpoints[d->current]);
	out->answers = d->answers;
	out->errors = d->errors;
	out->auth = d->auth;
	out->authenticated = d->auth && d->token[0] != '\0';
	out->authentications = d->authentications;
	out->auth_failures = d->auth_failures;
}

const char *
dcs_last_detail(const struct dcs *d)
{
	return d != NULL && d->last_error != DCS_OK ? d->detail : "";
}
