/*
 * respond.c: the responders (see respond.h). Everything an answer says comes from verdict_for() and
 * the renderers; a status code or an answer word is never chosen here on its own.
 */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "agentline.h"
#include "clusterview.h"
#include "peers.h"

#define RESPOND_PEER_STATE "peer-state"

/*
 * respond_agent_line renders request r (NULL: a bad request); whole_line says that r came as a whole
 * line, ended by its newline (see agentline_render_unasked for the other form).
 */
static size_t
respond_agent_line(const struct respond_ctx *x, const struct request *r, bool whole_line, char *out, size_t outlen)
{
	const struct node_view *v = x->view;
	struct verdict vd;
	size_t n;

	if (r == NULL) {
		verdict_set_down(&vd, REASON_BAD_REQUEST);
		return agentline_render(&vd, out, outlen);
	}
	verdict_for(v, r, x->policy, &vd);
	n = whole_line ? agentline_render(&vd, out, outlen) : agentline_render_unasked(&vd, out, outlen);
	if (vd.up && x->maxconn_pct > 0 && v->have_sample && n > 0 && n < outlen) {
		int usable = v->sample.max_connections - v->sample.reserved_connections - 1;
		int maxconn = usable > 0 ? usable * x->maxconn_pct / 100 : 0;
		int more;

		n--; /* replace the newline */
		more = snprintf(out + n, outlen - n, " maxconn:%d\n", maxconn > 0 ? maxconn : 1);
		if (more < 0 || (size_t)more >= outlen - n) {
			/* no room for the word: the line as it was, never a cut one */
			out[n] = '\n';
			out[n + 1] = '\0';
			return n + 1;
		}
		n += (size_t)more;
	}
	return n;
}

/*
 * respond_peer_state answers a peer's "peer-state": without a key, this node's state line to anyone
 * (as sent); with one, only to a request made with the key, with its nonce and a MAC, and
 * "down #unauthenticated" (no state, no system identifier) to every other.
 */
static size_t
respond_peer_state(const struct respond_ctx *x, const char *buf, size_t len, char *out, size_t outlen)
{
	const struct policy *p = x->policy;
	char nonce[PEERS_NONCE_HEX + 1];
	struct verdict vd;
	size_t n;

	if (p->peer_key_len == 0)
		return render_peer_line(x->view, p, out, outlen);
	if (peers_check_request(p->peer_key, p->peer_key_len, buf, len, nonce)) {
		n = render_peer_line(x->view, p, out, outlen);
		if (n > 0 && (n = peers_sign_answer(p->peer_key, p->peer_key_len, nonce, out, n, outlen)) > 0)
			return n;
	}
	verdict_set_down(&vd, REASON_UNAUTHENTICATED);
	return agentline_render(&vd, out, outlen);
}

size_t
respond_agent(const struct respond_ctx *x, const char *buf, size_t len, char *out, size_t outlen)
{
	const size_t plen = sizeof(RESPOND_PEER_STATE) - 1;
	bool whole_line = memchr(buf, '\n', len) != NULL;
	struct request r;

	if (len >= plen && memcmp(buf, RESPOND_PEER_STATE, plen) == 0 &&
	    (len == plen || buf[plen] == '\n' || buf[plen] == '\r' || buf[plen] == ' '))
		return respond_peer_state(x, buf, len, out, outlen);
	switch (agentline_parse(buf, len, &r)) {
	case AGENTLINE_OK:
		return respond_agent_line(x, &r, whole_line, out, outlen);
	case AGENTLINE_EMPTY:
		/* nothing asked: the default request, in the form no check can take for its own answer */
		memset(&r, 0, sizeof(r));
		r.kind = x->default_request;
		return respond_agent_line(x, &r, false, out, outlen);
	default:
		return respond_agent_line(x, NULL, whole_line, out, outlen);
	}
}

size_t
respond_role(const struct respond_ctx *x, char *out, size_t outlen)
{
	struct request r;

	/* no request was read: the form no check that sends one can take for its own answer ("100% up") */
	memset(&r, 0, sizeof(r));
	r.kind = x->default_request;
	return respond_agent_line(x, &r, false, out, outlen);
}

static bool
respond_credential_is(const char *given, const char *expected)
{
	size_t n = strlen(expected);

	return n > 0 && strlen(given) == n && CRYPTO_memcmp(given, expected, n) == 0;
}

bool
respond_authorized(const struct respond_auth *auth, const struct http_request *h)
{
	if (auth == NULL || (auth->basic[0] == '\0' && auth->bearer[0] == '\0'))
		return true;
	/* both compared, so the time taken does not tell which one came close */
	bool basic = respond_credential_is(h->authorization, auth->basic);
	bool bearer = respond_credential_is(h->authorization, auth->bearer);

	return basic || bearer;
}

/* respond_needs tells whether route needs a credential this request did not bring */
static bool
respond_refused(const struct respond_ctx *x, const struct http_request *h, unsigned what)
{
	return x->auth != NULL && (x->auth->protect & what) != 0 && !respond_authorized(x->auth, h);
}

/*
 * respond_down_status: 503 for a down answer, or what role_status= asked (404) when the answer says only
 * that the node holds the other role, so HAProxy's disable-on-404 shows it as NOLB instead of DOWN. Any
 * other reason (unreachable, stale, fenced, lag, ...) stays 503: a node in trouble is never made quiet.
 */
static int
respond_down_status(const struct request *r, const struct verdict *vd)
{
	if (r->other_role_status == 404 && (vd->why == REASON_IS_REPLICA || vd->why == REASON_IS_PRIMARY))
		return 404;
	return 503;
}

size_t
respond_http(const struct respond_ctx *x, enum http_parse parsed, const struct http_request *h, char *out,
             size_t outlen)
{
	char *body = malloc(RESPOND_REPLY_MAX);
	const char *type = "application/json";
	char challenge[96] = "";
	struct request r;
	struct verdict vd;
	size_t blen = 0, n;
	int status;
	bool verdict_body = false; /* a check's answer: its body is the verdict, whatever the status */

	if (body == NULL)
		return 0;
	if (parsed == HTTP_TOO_LARGE) {
		status = 431;
	} else if (parsed != HTTP_COMPLETE) {
		status = 400;
	} else if (h->method == HTTP_OTHER) {
		status = 405;
	} else {
		enum http_route route = http_route(h, &r);

		if ((route == HTTP_ROUTE_STATUS && respond_refused(x, h, CONF_PROTECT_STATUS)) ||
		    ((route == HTTP_ROUTE_CLUSTER || route == HTTP_ROUTE_CLUSTER_REPLICA) &&
		     respond_refused(x, h, CONF_PROTECT_STATUS)) ||
		    (route == HTTP_ROUTE_METRICS && respond_refused(x, h, CONF_PROTECT_METRICS)) ||
		    (route == HTTP_ROUTE_CHECK && respond_refused(x, h, CONF_PROTECT_CHECKS)))
			route = HTTP_ROUTE_UNAUTHORIZED;
		switch (route) {
		case HTTP_ROUTE_UNAUTHORIZED:
			status = 401;
			snprintf(challenge, sizeof(challenge), "%s%s",
			         x->auth->basic[0] != '\0' ? "WWW-Authenticate: Basic realm=\"pgcheckd\"\r\n" : "",
			         x->auth->bearer[0] != '\0' ? "WWW-Authenticate: Bearer realm=\"pgcheckd\"\r\n" : "");
			break;
		case HTTP_ROUTE_CHECK:
			verdict_for(x->view, &r, x->policy, &vd);
			status = vd.up ? 200 : respond_down_status(&r, &vd);
			verdict_body = true;
			if (respond_refused(x, h, CONF_PROTECT_BODIES))
				blen = (size_t)snprintf(body, RESPOND_REPLY_MAX, "{\"up\":%s}\n",
				                        vd.up ? "true" : "false");
			else
				blen = render_json(x->view, x->policy, &r, x->counters, body, RESPOND_REPLY_MAX);
			break;
		case HTTP_ROUTE_LIVENESS:
			status = 200;
			blen = (size_t)snprintf(body, RESPOND_REPLY_MAX, "{\"alive\":true}\n");
			break;
		case HTTP_ROUTE_STATUS:
			status = 200;
			blen = render_json(x->view, x->policy, NULL, x->counters, body, RESPOND_REPLY_MAX);
			break;
		case HTTP_ROUTE_CLUSTER:
			status = 200;
			blen = clusterview_json(x->view, x->policy, body, RESPOND_REPLY_MAX);
			break;
		case HTTP_ROUTE_CLUSTER_REPLICA:
			status =
			    clusterview_replica(x->view, x->policy, &r, body, RESPOND_REPLY_MAX, &blen) ? 200 : 503;
			break;
		case HTTP_ROUTE_METRICS:
			status = 200;
			type = "text/plain; version=0.0.4; charset=utf-8";
			blen = render_metrics(x->view, x->policy, x->counters, body, RESPOND_REPLY_MAX);
			break;
		case HTTP_ROUTE_BAD_QUERY:
			status = 400;
			break;
		default:
			status = 404;
			break;
		}
	}
	if (status >= 400 && status != 503 && !verdict_body) {
		type = "text/plain; charset=utf-8";
		blen = (size_t)snprintf(body, RESPOND_REPLY_MAX, "%d\n", status);
	}
	n = http_response_with(parsed == HTTP_COMPLETE ? h->method : HTTP_GET, status, type, challenge, body, blen, out,
	                       outlen);
	free(body);
	return n;
}

bool
respond_admin_line(const char *buf, size_t len, char *line, size_t linelen)
{
	size_t n = len;

	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n >= linelen || memchr(buf, '\n', n) != NULL || memchr(buf, '\0', n) != NULL)
		return false;
	memcpy(line, buf, n);
	line[n] = '\0';
	return true;
}
