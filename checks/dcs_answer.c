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
    "transport", "malformed",      "wrong-type", "wrong-key", "etcd-error",
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

/* dcs_answer_kv checks the one entry of "kvs": its key is key, its value text that fits value. */
static enum dcs_error
dcs_answer_kv(json_t *kv, const char *key, char *value, size_t cap)
{
	unsigned char buf[DCS_KEY_MAX + 4];
	json_t *k = json_object_get(kv, "key"), *v = json_object_get(kv, "value");
	size_t n;

	if (!json_is_object(kv) || !json_is_string(k) || (v != NULL && !json_is_string(v)))
		return DCS_WRONG_TYPE;
	if (!dcs_b64_decode(json_string_value(k), json_string_length(k), buf, sizeof(buf), &n))
		return DCS_WRONG_TYPE;
	if (n != strlen(key) || memcmp(buf, key, n) != 0)
		return DCS_WRONG_KEY;
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

enum dcs_error
dcs_answer_range(const char *body, size_t len, const char *key, char *value, size_t cap, bool *found)
{
	char got[DCS_NAME_MAX];
	json_error_t jerr;
	json_t *root, *kvs;
	enum dcs_error e = DCS_OK;
	bool exists = false;

	if (cap == 0 || cap > sizeof(got) || strlen(key) >= DCS_KEY_MAX)
		return DCS_WRONG_TYPE;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return DCS_MALFORMED;
	if (!json_is_object(root)) {
		e = DCS_MALFORMED;
	} else if (json_object_get(root, "error") != NULL || json_object_get(root, "code") != NULL) {
		e = DCS_ETCD_ERROR;
	} else if (!json_is_object(json_object_get(root, "header"))) {
		e = DCS_WRONG_TYPE;
	} else if ((kvs = json_object_get(root, "kvs")) != NULL) {
		if (!json_is_array(kvs) || json_array_size(kvs) > 1)
			e = DCS_WRONG_TYPE;
		else if (json_array_size(kvs) == 1) {
			e = dcs_answer_kv(json_array_get(kvs, 0), key, got, cap);
			exists = e == DCS_OK;
		}
	}
	json_decref(root);
	if (e != DCS_OK)
		return e;
	*found = exists;
	if (exists)
		memcpy(value, got, strlen(got) + 1);
	else
		value[0] = '\0';
	return DCS_OK;
}
