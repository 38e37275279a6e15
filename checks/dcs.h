/*
 * dcs.h: the etcd v3 client (its JSON gateway over HTTP or HTTPS), on the event loop: libcurl's multi
 * interface driven by libev, never blocking, every request with its deadline and a byte limit. On a
 * timer of its own it reads one key (Patroni's leader key), or in lease mode holds it under a lease it
 * keeps alive, and keeps what it last learned; checks read that (dcs_summary), never etcd. Several
 * endpoints: a failed exchange moves to the next one.
 */
#ifndef PGCHECKD_DCS_H
#define PGCHECKD_DCS_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "dcs_answer.h"
#include "dcs_summary.h"

#define DCS_ENDPOINTS_MAX 8

struct dcs_conf {
	const char *endpoints; /* "http://host:port, https://host:port" (checked by conf) */
	const char *key;       /* the key read, e.g. "/service/lab/leader" */
	const char *name;      /* this node's member name: the leader key's value when this node leads */
	int64_t interval_ms;   /* between two reads */
	int64_t timeout_ms;    /* deadline of one exchange, connection included */
	const char *ca_file, *cert_file, *key_file; /* TLS; "" for none (the system's CAs) */
	int64_t lease_ttl_s;  /* > 0: lease mode, hold the key (value: name) under a lease of this TTL */
	const char *username; /* etcd's authentication; "" or NULL for none */
	const char *password; /* username's password (never logged) */
};

struct dcs;

/*
 * dcs_new copies dc and starts reading at once; NULL when libcurl cannot start (logged). changed(arg)
 * runs on the loop when what dcs_summary says changed (other than its age): the leader, an error
 * beginning or ending, the endpoint in use.
 */
struct dcs *dcs_new(struct ev_loop *loop, const struct dcs_conf *dc, void (*changed)(void *arg), void *arg);

/*
 * dcs_set_candidate tells the client (lease mode) whether this node is a writable primary, which alone
 * tries to take the key and keeps its lease alive; a node that is not lets its lease go (revoke).
 */
void dcs_set_candidate(struct dcs *d, bool candidate);

/* dcs_free stops the running exchange (not waited for) and frees everything; NULL is fine. */
void dcs_free(struct dcs *d);

/* dcs_summary tells what the client knows at now_ms; d NULL: not configured. */
void dcs_summary(const struct dcs *d, int64_t now_ms, struct dcs_summary *out);

/* dcs_last_detail is libcurl's (or the parser's) text for the last failed exchange ("" when none): no secrets. */
const char *dcs_last_detail(const struct dcs *d);

/* dcs_parse_endpoints splits "URL, URL" into at most max URLs of DCS_URL_MAX; false for anything but http(s) URLs. */
bool dcs_parse_endpoints(const char *list, char urls[][DCS_URL_MAX], int max, int *count);

/* dcs_patroni_leader_key writes Patroni's leader key for namespace and scope ("/service/lab/leader"); false when it
 * does not fit. */
bool dcs_patroni_leader_key(const char *namespace_, const char *scope, char *out, size_t cap);

#endif
