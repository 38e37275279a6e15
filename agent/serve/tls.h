/*
 * tls.h: the TLS context of the agent and HTTP ports (OpenSSL). A context is built whole from the
 * configuration (certificate, key, optional client CA) or not at all, so a reload with a bad file keeps
 * the running one. Connections hold their own reference: swapping the context never drops one.
 * Nothing here reads a socket or logs: the listener drives the handshake and reports failures.
 */
#ifndef PGCHECKD_TLS_H
#define PGCHECKD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "conf.h"

/* The handshake's own byte limit: the longest certificate chain a client may send. */
#define TLS_MAX_CERT_LIST_BYTES 32768

/* tls_in_use says whether a port of c speaks TLS ([tls] agent or [tls] http). */
bool tls_in_use(const struct conf *c);

/*
 * tls_context_new builds the context for c: TLS 1.2 at least, no renegotiation, the server's cipher
 * order, no session tickets and no session cache, a client certificate from [tls] ca_file when
 * verify_client = required. NULL when TLS is not in use (why empty) or on failure (why says what,
 * never a key's content).
 */
SSL_CTX *tls_context_new(const struct conf *c, char *why, size_t whylen);

/* tls_context_free drops one reference (NULL is fine). */
void tls_context_free(SSL_CTX *ctx);

/*
 * tls_failure_cause names what made a handshake fail, from OpenSSL's error queue (which it empties)
 * and SSL_get_error's result; *code is a number that tells causes apart, for rate-limiting its log line.
 */
const char *tls_failure_cause(int ssl_error, unsigned long *code);

#endif
