/*
 * dcs_answer.c: the etcd v3 JSON gateway's bodies for a range read, written and checked. JSON by
 * jansson, base64 by OpenSSL; nothing here does I/O, and nothing unchecked reaches the client.
 */
#include "dcs_answer.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>

const char *const dcs_error_names[DCS_ERROR_COUNT] = {
    "ok",        "connect-failed", "timeout",    "tls",       "http-status", "too-large",
    "transport", "malformed",      "wrong-type", "wrong-key", "etcd-error",  "auth-failed",
};

static const char dcs_b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * dcs_b64_decode decodes standard base64 with padding (in, inlen bytes) into out (outcap bytes); false
 * for any other character, a length that is not a multiple of 4, misplaced padding or no room.
 */
static bool
dcs_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap, size_t *outlen)
{
	size_t pad = 0, body;
	int n;

	if (inlen % 4 != 0 || inlen / 4 * 3 > outcap || inlen > (size_t)INT32_MAX)
		return false;
	while (pad < 2 && pad < inlen && in[inlen - 1 - pad] == '=')
		pad++;
	body = inlen - pad;
	for (const char *c = in; c < in + body; c++)
		if (*c == '\0' || strchr(dcs_b64_alphabet, *c) == NULL)
			return false;
	if (inlen == 0) {
		*outlen = 0;
		return true;
	}
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
	if (n < 0 || (size_t)n < pad)
		return false;
	*outlen = (size_t)n - pad;
	return true;
}

size_t
dcs_answer_range_request(const char *key, char *out, size_t cap)
{
	static const char head[] = "{\"key\":\"", tail[] = "\"}";
	size_t klen = strlen(key), b64 = 4 * ((klen + 2) / 3);
	size_t need = sizeof(head) - 1 + b64 + sizeof(tail) - 1;

	if (klen >= DCS_KEY_MAX || need + 1 > cap)
		return 0;
	memcpy(out, head, sizeof(head) - 1);
	(void)EVP_EncodeBlock((unsigned char *)out + sizeof(head) - 1, (const unsigned char *)key, (int)klen);
	memcpy(out + sizeof(head) - 1 + b64, tail, sizeof(tail)); /* with its NUL */
	return need;
}

/* dcs_answer_int reads a 64-bit decimal (a string of digits, or a JSON integer) that is >= 0. */
static bool
dcs_answer_int(json_t *j, int64_t *out)
{
	const char *s;
	int64_t v = 0;

	if (json_is_integer(j)) {
		*out = (int64_t)json_integer_value(j);
		return *out >= 0;
	}
	if (!json_is_string(j) || json_string_length(j) == 0 || json_string_length(j) > 19)
		return false;
	for (s = json_string_value(j); *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return true;
}

/* dcs_answer_kv checks the one entry of "kvs": its key is key, its value text that fits value, its lease. */
static enum dcs_error
dcs_answer_kv(json_t *kv, const char *key, char *value, size_t cap, int64_t *lease)
{
	json_t *l = json_object_get(kv, "lease");

	unsigned char buf[DCS_KEY_MAX + 4];
	json_t *k = json_object_get(kv, "key"), *v = json_object_get(kv, "value");
	size_t n;

	if (!json_is_object(kv) || !json_is_string(k) || (v != NULL && !json_is_string(v)))
		return DCS_WRONG_TYPE;
	if (!dcs_b64_decode(json_string_value(k), json_string_length(k), buf, sizeof(buf), &n))
		return DCS_WRONG_TYPE;
	if (n != strlen(key) || memcmp(buf, key, n) != 0)
		return DCS_WRONG_KEY;
	*lease = 0;
	if (l != NULL && !dcs_answer_int(l, lease))
		return DCS_WRONG_TYPE;
	if (v == NULL) {
		value[0] = '\0';
		return DCS_OK;
	}
	if (json_string_length(v) > 4 * ((cap + 1) / 3) ||
	    !dcs_b64_decode(json_string_value(v), json_string_length(v), buf, sizeof(buf), &n) || n >= cap)
		return DCS_WRONG_TYPE;
	for (size_t i = 0; i < n; i++)
		if (buf[i] < 0x20 || buf[i] == 0x7f)
			return DCS_WRONG_TYPE;
	memcpy(value, buf, n);
	value[n] = '\0';
	return DCS_OK;
}

/* dcs_answer_kvs reads a range answer's object (the root, or a txn's response_range) for key. */
static enum dcs_error
dcs_answer_kvs(json_t *obj, const char *key, char *got, size_t cap, bool *exists, int64_t *lease)
{
	json_t *kvs = json_object_get(obj, "kvs");

	*exists = false;
	if (kvs == NULL)
		return DCS_OK;
	if (!json_is_array(kvs) || json_array_size(kvs) > 1)
		return DCS_WRONG_TYPE;
	if (json_array_size(kvs) == 0)
		return DCS_OK;
	*exists = true;
	return dcs_answer_kv(json_array_get(kvs, 0), key, got, cap, lease);
}

/* dcs_answer_load parses body into a JSON object that has etcd's header (NULL: *e says why). */
static json_t *
dcs_answer_load(const char *body, size_t len, enum dcs_error *e)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL || !json_is_object(root))
		*e = DCS_MALFORMED;
	else if (json_object_get(root, "error") != NULL || json_object_get(root, "code") != NULL)
		*e = DCS_ETCD_ERROR;
	else if (!json_is_object(json_object_get(root, "header")) &&
	         !json_is_object(json_object_get(json_object_get(root, "result"), "header")))
		*e = DCS_WRONG_TYPE;
	else
		return root;
	json_decref(root);
	return NULL;
}

enum dcs_error
dcs_answer_range_lease(const char *body, size_t len, const char *key, char *value, size_t cap, bool *found,
                       int64_t *lease)
{
	char got[DCS_NAME_MAX];
	json_t *root;
	enum dcs_error e = DCS_OK;
	bool exists = false;
	int64_t l = 0;

	if (cap == 0 || cap > sizeof(got) || strlen(key) >= DCS_KEY_MAX)
		return DCS_WRONG_TYPE;
	if ((root = dcs_answer_load(body, len, &e)) == NULL)
		return e;
	if (!json_is_object(json_object_get(root, "header")))
		e = DCS_WRONG_TYPE;
	else
		e = dcs_answer_kvs(root, key, got, cap, &exists, &l);
	json_decref(root);
	if (e != DCS_OK)
		return e;
	*found = exists;
	*lease = exists ? l : 0;
	if (exists)
		memcpy(value, got, strlen(got) + 1);
	else
		value[0] = '\0';
	return DCS_OK;
}

enum dcs_error
dcs_answer_range(const char *body, size_t len, const char *key, char *value, size_t cap, bool *found)
{
	int64_t lease;

	return dcs_answer_range_lease(body, len, key, value, cap, found, &lease);
}

size_t
dcs_answer_grant_request(int64_t ttl_s, char *out, size_t cap)
{
	int n = snprintf(out, cap, "{\"TTL\":%lld}", (long long)ttl_s);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t
dcs_answer_keepalive_request(int64_t id, char *out, size_t cap)
{
	int n = snprintf(out, cap, "{\"ID\":\"%lld\"}", (long long)id);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t
dcs_answer_revoke_request(int64_t id, char *out, size_t cap)
{
	return dcs_answer_keepalive_request(id, out, cap);
}

size_t
dcs_answer_txn_request(const char *key, const char *value, int64_t lease, bool by_value, char *out, size_t cap)
{
	char k64[4 * DCS_KEY_MAX / 3 + 8], v64[4 * DCS_NAME_MAX / 3 + 8];
	size_t klen = strlen(key), vlen = strlen(value);
	int n;

	if (klen >= DCS_KEY_MAX || vlen >= DCS_NAME_MAX)
		return 0;
	(void)EVP_EncodeBlock((unsigned char *)k64, (const unsigned char *)key, (int)klen);
	(void)EVP_EncodeBlock((unsigned char *)v64, (const unsigned char *)value, (int)vlen);
	if (by_value)
		n = snprintf(
		    out, cap,
		    "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"VALUE\",\"value\":\"%s\"}],"
		    "\"success\":[{\"requestPut\":{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%lld\"}}],"
		    "\"failure\":[{\"requestRange\":{\"key\":\"%s\"}}]}",
		    k64, v64, k64, v64, (long long)lease, k64);
	else
		n = snprintf(
		    out, cap,
		    "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"CREATE\",\"create_revision\":"
		    "\"0\"}],\"success\":[{\"requestPut\":{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%lld\"}}],"
		    "\"failure\":[{\"requestRange\":{\"key\":\"%s\"}}]}",
		    k64, k64, v64, (long long)lease, k64);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

enum dcs_error
dcs_answer_grant(const char *body, size_t len, int64_t *id, int64_t *ttl_s)
{
	enum dcs_error e = DCS_OK;
	json_t *root = dcs_answer_load(body, len, &e);
	int64_t i, t;

	if (root == NULL)
		return e;
	if (!json_is_object(json_object_get(root, "header")) || !dcs_answer_int(json_object_get(root, "ID"), &i) ||
	    !dcs_answer_int(json_object_get(root, "TTL"), &t) || i <= 0 || t <= 0)
		e = DCS_WRONG_TYPE;
	json_decref(root);
	if (e == DCS_OK) {
		*id = i;
		*ttl_s = t;
	}
	return e;
}

enum dcs_error
dcs_answer_keepalive(const char *body, size_t len, int64_t id, int64_t *ttl_s)
{
	enum dcs_error e = DCS_OK;
	json_t *root = dcs_answer_load(body, len, &e), *result, *ttl;
	int64_t i, t = 0;

	if (root == NULL)
		return e;
	result = json_object_get(root, "result");
	ttl = json_object_get(result, "TTL");
	if (!json_is_object(result) || !dcs_answer_int(json_object_get(result, "ID"), &i) ||
	    (ttl != NULL && !dcs_answer_int(ttl, &t)))
		e = DCS_WRONG_TYPE;
	else if (i != id)
		e = DCS_WRONG_KEY; /* about another lease */
	json_decref(root);
	if (e == DCS_OK)
		*ttl_s = t;
	return e;
}

enum dcs_error
dcs_answer_txn(const char *body, size_t len, const char *key, bool *succeeded, char *holder, size_t cap, bool *found,
               int64_t *lease)
{
	char got[DCS_NAME_MAX];
	enum dcs_error e = DCS_OK;
	json_t *root, *ok, *resp, *range;
	bool exists = false, done = false;
	int64_t l = 0;

	if (cap == 0 || cap > sizeof(got) || strlen(key) >= DCS_KEY_MAX)
		return DCS_WRONG_TYPE;
	if ((root = dcs_answer_load(body, len, &e)) == NULL)
		return e;
	ok = json_object_get(root, "succeeded");
	resp = json_object_get(root, "responses");
	if (!json_is_object(json_object_get(root, "header")) || (ok != NULL && !json_is_boolean(ok)) ||
	    !json_is_array(resp) || json_array_size(resp) != 1 || !json_is_object(json_array_get(resp, 0))) {
		e = DCS_WRONG_TYPE;
	} else if (ok != NULL && json_is_true(ok)) {
		done = true;
		if (!json_is_object(json_object_get(json_array_get(resp, 0), "response_put")))
			e = DCS_WRONG_TYPE;
	} else {
		range = json_object_get(json_array_get(resp, 0), "response_range");
		e = json_is_object(range) ? dcs_answer_kvs(range, key, got, cap, &exists, &l) : DCS_WRONG_TYPE;
	}
	json_decref(root);
	if (e != DCS_OK)
		return e;
	*succeeded = done;
	*found = exists;
	*lease = exists ? l : 0;
	if (exists)
		memcpy(holder, got, strlen(got) + 1);
	else
		holder[0] = '\0';
	return DCS_OK;
}

size_t
dcs_answer_auth_request(const char *user, const char *password, char *out, size_t cap)
{
	const char *parts[] = {"{\"name\":\"", user, "\",\"password\":\"", password, "\"}"};
	size_t o = 0;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		for (const char *c = parts[i]; *c != '\0'; c++) {
			bool text = i == 1 || i == 3;

			if (text && ((unsigned char)*c < 0x20 || *c == 0x7f))
				goto refuse; /* conf refuses these */
			if (o + 3 > cap)
				goto refuse;
			if (text && (*c == '"' || *c == '\\'))
				out[o++] = '\\';
			out[o++] = *c;
		}
	}
	out[o] = '\0';
	return o;
refuse:
	explicit_bzero(out, cap);
	return 0;
}

enum dcs_error
dcs_answer_auth(const char *body, size_t len, char *token, size_t cap)
{
	enum dcs_error e = DCS_OK;
	json_t *root = dcs_answer_load(body, len, &e), *t;
	const char *s;
	size_t n;

	if (root == NULL)
		return e;
	t = json_object_get(root, "token");
	if (!json_is_object(json_object_get(root, "header")) || !json_is_string(t) || cap == 0) {
		json_decref(root);
		return DCS_WRONG_TYPE;
	}
	s = json_string_value(t);
	n = json_string_length(t);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			e = DCS_WRONG_TYPE; /* it goes into a header line as it is */
	if (n == 0 || n >= cap)
		e = DCS_WRONG_TYPE;
	if (e == DCS_OK) {
		memcpy(token, s, n);
		token[n] = '\0';
	}
	json_decref(root);
	return e;
}

bool
dcs_answer_error_code(const char *body, size_t len, int64_t *code)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &jerr);
	int64_t c = 0;
	bool ok = json_is_object(root) && dcs_answer_int(json_object_get(root, "code"), &c);

	json_decref(root);
	if (ok)
		*code = c;
	return ok;
}
