/*
 * tls.c: the TLS context (see tls.h). Modern defaults and nothing to tune: TLS 1.2+, AEAD ciphers with
 * forward secrecy for 1.2, no renegotiation, no tickets, no compression. An encrypted key is refused
 * (a daemon has no one to type a passphrase); its content never reaches a message.
 */
#include "tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

/* TLS 1.2 suites: ECDHE only (forward secrecy), AEAD only; TLS 1.3 keeps OpenSSL's own list */
#define TLS_CIPHERS_12 "ECDHE+AESGCM:ECDHE+CHACHA20"

bool
tls_in_use(const struct conf *c)
{
	return c->tls_agent || c->tls_http;
}

/* tls_no_passphrase refuses to ask for a passphrase: OpenSSL would prompt on the terminal */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return 0;
}

/* tls_why writes what failed and OpenSSL's first reason (library messages name files, never key bytes) */
static void
tls_why(char *why, size_t whylen, const char *what, const char *path)
{
	unsigned long e = ERR_peek_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (e != 0 && ERR_SYSTEM_ERROR(e))
		reason = strerror(ERR_GET_REASON(e));
	snprintf(why, whylen, "%s %s: %s", what, path, reason != NULL ? reason : "cannot be used");
	ERR_clear_error();
}

SSL_CTX *
tls_context_new(const struct conf *c, char *why, size_t whylen)
{
	SSL_CTX *ctx;

	why[0] = '\0';
	if (!tls_in_use(c))
		return NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		snprintf(why, whylen, "cannot create a TLS context");
		return NULL;
	}
	(void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET |
	                             SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	(void)SSL_CTX_set_num_tickets(ctx, 0);
	(void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_max_cert_list(ctx, TLS_MAX_CERT_LIST_BYTES);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		tls_why(why, whylen, "cipher list", TLS_CIPHERS_12);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1) {
		tls_why(why, whylen, "[tls] cert_file", c->tls_cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file, SSL_FILETYPE_PEM) != 1) {
		tls_why(why, whylen, "[tls] key_file", c->tls_key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_why(why, whylen, "[tls] key_file", c->tls_key_file);
		goto fail;
	}
	if (c->tls_ca_file[0] != '\0') {
		STACK_OF(X509_NAME) * names;

		if (SSL_CTX_load_verify_locations(ctx, c->tls_ca_file, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(c->tls_ca_file)) == NULL) {
			tls_why(why, whylen, "[tls] ca_file", c->tls_ca_file);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	if (c->tls_verify_client == CONF_VERIFY_REQUIRED)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	ERR_clear_error();
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_context_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

const char *
tls_failure_cause(int ssl_error, unsigned long *code)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	if (reason != NULL) {
		/* the library and its reason: OpenSSL's reason numbers repeat across libraries */
		*code = 0x40000000UL | ((unsigned long)ERR_GET_LIB(e) << 16) | (unsigned long)ERR_GET_REASON(e);
		return reason;
	}
	*code = (unsigned long)ssl_error;
	switch (ssl_error) {
	case SSL_ERROR_SYSCALL:
		return "connection reset or closed during the handshake";
	case SSL_ERROR_ZERO_RETURN:
		return "closed during the handshake";
	default:
		return "handshake failed";
	}
}
