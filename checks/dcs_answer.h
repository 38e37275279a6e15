/*
 * dcs_answer.h: etcd v3 JSON gateway bodies, written and read as pure functions (no I/O): the request
 * for one key and the reading of etcd's answer to it. Everything etcd sends is checked here before the
 * client believes any of it; a unit test and a libFuzzer harness drive these functions directly.
 */
#ifndef PGCHECKD_DCS_ANSWER_H
#define PGCHECKD_DCS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#include "dcs_summary.h"

#define DCS_ANSWER_MAX (64 * 1024) /* the longest answer read; a longer one is cut off: DCS_TOO_LARGE */
#define DCS_KEY_MAX    512         /* the longest key asked for, with its NUL */

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

#endif
