/*
 * dcs_answer.h: etcd v3 JSON gateway bodies, written and read as pure functions (no I/O): the request
 * for one key and the reading of etcd's answer to it. Everything etcd sends is checked here before the
 * client believes any of it; a unit test and a libFuzzer harness drive these functions directly.
 */
#ifndef PGCHECKD_DCS_ANSWER_H
#define PGCHECKD_DCS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcs_summary.h"

#define DCS_ANSWER_MAX   (64 * 1024) /* the longest answer read; a longer one is cut off: DCS_TOO_LARGE */
#define DCS_KEY_MAX      512         /* the longest key asked for, with its NUL */
#define DCS_TOKEN_MAX    2048        /* the longest etcd auth token taken (a JWT included), with its NUL */
#define DCS_PASSWORD_MAX 256         /* [dcs] password_file's password, with its NUL */

/*
 * dcs_answer_range_request writes the body of POST /v3/kv/range for key ({"key":"<base64>"}) into
 * out; returns its length, 0 when it does not fit.
 */
size_t dcs_answer_range_request(const char *key, char *out, size_t cap);

/*
 * dcs_answer_range reads etcd's answer (body, len bytes, not NUL-terminated) to a range request for
 * the one key key. DCS_OK when it is an answer etcd would give: a JSON object with a "header" object
 * and, when the key exists, "kvs" an array of exactly one object whose "key" is key and whose "value"
 * (absent: empty) decodes from base64 to at most cap - 1 bytes of text (no NUL, no control character).
 * Then *found tells whether the key exists and value holds it (NUL-terminated; "" when not found).
 * Anything else is an error code, and value and *found are left as they were.
 */
enum dcs_error dcs_answer_range(const char *body, size_t len, const char *key, char *value, size_t cap, bool *found);

/*
 * dcs_answer_range_lease is dcs_answer_range that also gives the lease the key is attached to (*lease,
 * 0 for none) when it exists.
 */
enum dcs_error dcs_answer_range_lease(const char *body, size_t len, const char *key, char *value, size_t cap,
                                      bool *found, int64_t *lease);

/*
 * Lease mode's exchanges. Numbers are 64-bit decimals, as strings (the gateway's) or JSON integers.
 * dcs_answer_grant_request / _keepalive_request / _revoke_request / _txn_request write the bodies of
 * POST /v3/lease/grant ({"TTL": ttl_s}), /v3/lease/keepalive and /v3/lease/revoke ({"ID": id}) and
 * /v3/kv/txn: put key = value with lease if the key does not exist (by_value false: its
 * create_revision is 0) or already holds value (by_value true), else read it. Each returns the length
 * written, 0 when it does not fit.
 */
size_t dcs_answer_grant_request(int64_t ttl_s, char *out, size_t cap);
size_t dcs_answer_keepalive_request(int64_t id, char *out, size_t cap);
size_t dcs_answer_revoke_request(int64_t id, char *out, size_t cap);
size_t dcs_answer_txn_request(const char *key, const char *value, int64_t lease, bool by_value, char *out, size_t cap);

/* dcs_answer_grant reads a grant's answer: its lease *id (> 0) and *ttl_s (> 0). */
enum dcs_error dcs_answer_grant(const char *body, size_t len, int64_t *id, int64_t *ttl_s);

/*
 * dcs_answer_keepalive reads a keepalive's answer ({"result":{"ID":...,"TTL":...}}) for lease id:
 * *ttl_s the lease's time to live from now, 0 when it has expired (or is not known to etcd).
 */
enum dcs_error dcs_answer_keepalive(const char *body, size_t len, int64_t id, int64_t *ttl_s);

/*
 * dcs_answer_txn reads a txn's answer (see dcs_answer_txn_request): *succeeded when the put was done;
 * else the key as read instead (as dcs_answer_range_lease: holder, *found, *lease).
 */
enum dcs_error dcs_answer_txn(const char *body, size_t len, const char *key, bool *succeeded, char *holder, size_t cap,
                              bool *found, int64_t *lease);

/*
 * etcd's authentication. dcs_answer_auth_request writes the body of POST /v3/auth/authenticate
 * ({"name": user, "password": password}, both text without control characters) into out; its length,
 * 0 (and out wiped) when it does not fit or a character cannot be sent. The password is in out then:
 * the caller wipes it after use.
 */
size_t dcs_answer_auth_request(const char *user, const char *password, char *out, size_t cap);

/*
 * dcs_answer_auth reads authenticate's answer ({"header":{...},"token":"..."}): the token, printable
 * ASCII without space (it is sent as the Authorization header), 1 to cap - 1 bytes, into token.
 */
enum dcs_error dcs_answer_auth(const char *body, size_t len, char *token, size_t cap);

/*
 * dcs_answer_error_code reads the gRPC code of etcd's error answer (a body sent with a status other than
 * 200: {"error":"...","message":"...","code":16}; what follows the object, the gateway's trailer, is
 * ignored); false when the body is no such answer. 16 (Unauthenticated): the token is refused.
 */
bool dcs_answer_error_code(const char *body, size_t len, int64_t *code);

#endif
