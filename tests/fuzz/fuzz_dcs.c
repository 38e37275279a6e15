/*
 * fuzz_dcs.c: libFuzzer harness for the reading of etcd's range answers, dcs_answer_range. The input is
 * an HTTP body as an etcd endpoint (or anything answering there) could send it. Invariants: the outcome
 * is a known code; a refused answer leaves the value and "found" untouched; a believed one holds text of
 * at most cap - 1 bytes without control characters, "" when the key does not exist; and the answer
 * etcd would give for that value, written here, is read back to the same value. The same input as a
 * lease grant's, a keepalive's and a txn's answer: a known code, outputs untouched when refused, a
 * grant's ID and TTL positive, a keepalive's TTL not negative, a txn's holder text like a range's. As
 * authenticate's answer: a believed token is 1 to cap - 1 bytes of printable ASCII without space (it goes
 * into a header line), a refused one leaves the buffer untouched; as an error answer, a code >= 0.
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dcs_answer.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_KEY   "/service/lab/leader"
#define FUZZ_KEY64 "L3NlcnZpY2UvbGFiL2xlYWRlcg=="

static void
check_lease_answers(const char *body, size_t size)
{
	char holder[DCS_NAME_MAX];
	int64_t id = -7, ttl = -7, lease = -7;
	bool done = true, found = true;
	enum dcs_error e;

	e = dcs_answer_grant(body, size, &id, &ttl);
	FUZZ_CHECK((unsigned)e < DCS_ERROR_COUNT);
	FUZZ_CHECK(e == DCS_OK ? id > 0 && ttl > 0 : id == -7 && ttl == -7);
	ttl = -7;
	e = dcs_answer_keepalive(body, size, 7, &ttl);
	FUZZ_CHECK((unsigned)e < DCS_ERROR_COUNT);
	FUZZ_CHECK(e == DCS_OK ? ttl >= 0 : ttl == -7);
	memset(holder, 0x5a, sizeof(holder));
	e = dcs_answer_txn(body, size, FUZZ_KEY, &done, holder, sizeof(holder), &found, &lease);
	FUZZ_CHECK((unsigned)e < DCS_ERROR_COUNT);
	if (e != DCS_OK) {
		FUZZ_CHECK(done && found && lease == -7 && holder[0] == 0x5a);
		return;
	}
	FUZZ_CHECK(strnlen(holder, sizeof(holder)) < sizeof(holder) && lease >= 0);
	FUZZ_CHECK(!(done && found)); /* a put done reads nothing back */
}

static void
check_auth_answers(const char *body, size_t size)
{
	char token[64];
	int64_t code = -7;
	enum dcs_error e;
	size_t n;

	memset(token, 0x5a, sizeof(token));
	e = dcs_answer_auth(body, size, token, sizeof(token));
	FUZZ_CHECK((unsigned)e < DCS_ERROR_COUNT);
	if (e != DCS_OK) {
		for (size_t i = 0; i < sizeof(token); i++)
			FUZZ_CHECK(token[i] == 0x5a);
	} else {
		n = strnlen(token, sizeof(token));
		FUZZ_CHECK(n > 0 && n < sizeof(token));
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK((unsigned char)token[i] > ' ' && (unsigned char)token[i] < 0x7f);
	}
	if (dcs_answer_error_code(body, size, &code))
		FUZZ_CHECK(code >= 0);
	else
		FUZZ_CHECK(code == -7);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char value[DCS_NAME_MAX], again[DCS_NAME_MAX], b64[4 * DCS_NAME_MAX], body[8 * DCS_NAME_MAX];
	bool found = true, found2 = true;
	enum dcs_error e;
	size_t n;

	check_lease_answers((const char *)data, size);
	check_auth_answers((const char *)data, size);
	memset(value, 0x5a, sizeof(value));
	e = dcs_answer_range((const char *)data, size, FUZZ_KEY, value, sizeof(value), &found);
	FUZZ_CHECK((unsigned)e < DCS_ERROR_COUNT);
	if (e != DCS_OK) {
		FUZZ_CHECK(found);
		for (size_t i = 0; i < sizeof(value); i++)
			FUZZ_CHECK(value[i] == 0x5a);
		return 0;
	}
	n = strnlen(value, sizeof(value));
	FUZZ_CHECK(n < sizeof(value));
	FUZZ_CHECK(found || n == 0);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)value[i] >= 0x20 && value[i] != 0x7f);
	if (!found)
		return 0;
	(void)EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)value, (int)n);
	snprintf(body, sizeof(body), "{\"header\":{},\"kvs\":[{\"key\":\"%s\",\"value\":\"%s\"}]}", FUZZ_KEY64, b64);
	FUZZ_CHECK(dcs_answer_range(body, strlen(body), FUZZ_KEY, again, sizeof(again), &found2) == DCS_OK);
	FUZZ_CHECK(found2 && strcmp(again, value) == 0);
	return 0;
}
