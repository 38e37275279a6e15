/*
 * fuzz_peerline.c: libFuzzer harness for the "peer-state" answer parser, peers_parse_line. The input is
 * one answer as a peer's pgcheckd (or anything on its port) could send it, NUL-terminated in a buffer
 * of exactly its size. Invariants: a refused answer leaves the state untouched; an accepted one starts
 * with "state", names at most one role, gives a primary a timeline, and its timeline and sysid are the
 * decimal values written in the input (checked here from the contract, with overflow checked by hand);
 * the canonical line for an accepted state parses back to the same state.
 * Authenticated answers ([peers] key_file): the same input opened with a key and a nonce is believed
 * only if it parses (and then to the same state) and never without a MAC; signed with that key and
 * nonce it is believed exactly when the signed line parses, and never for another nonce or another
 * key; the input as a request is accepted only in the one form pgcheckd writes.
 * The optional cluster fields (name, read, lsn, weight, lag, sync_n, sb, ...): whatever they say, the
 * line stands or falls on its fencing fields alone (the same input without a field that is not one of
 * them parses the same way), and what is taken from them is in range (names of the shareable alphabet,
 * at most SAMPLE_STANDBYS_MAX standbys with a known sync state, weight -1..100, port 0..65535).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "peers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* reference_field finds key's value in the line (first occurrence, up to a newline) as a number. */
static bool
reference_field(const char *line, const char *key, uint64_t *out)
{
	size_t keylen = strlen(key);
	const char *p = line + 5;

	while (*p == ' ') {
		const char *tok;
		size_t n = 0;

		while (*p == ' ')
			p++;
		tok = p;
		while (tok[n] != ' ' && tok[n] != '\n' && tok[n] != '\0')
			n++;
		p = tok + n;
		if (n > keylen && memcmp(tok, key, keylen) == 0 && tok[keylen] == '=') {
			uint64_t v = 0;

			for (size_t i = keylen + 1; i < n; i++) {
				unsigned d = (unsigned)(tok[i] - '0');

				if (tok[i] < '0' || tok[i] > '9' || v > (UINT64_MAX - d) / 10)
					return false;
				v = v * 10 + d;
			}
			*out = v;
			return true;
		}
	}
	return false;
}

#define FUZZ_KEY   "fuzz key: 0123456789abcdef0123456789abcdef"
#define FUZZ_NONCE "00112233445566778899aabbccddeeff"

/*
 * same_state compares field by field, bytes not values (a struct's padding need not survive a copy,
 * and the untouched fields hold the 0x5a pattern, no valid bool).
 */
#define SAME_FIELD(a, b, f) (memcmp(&(a)->f, &(b)->f, sizeof((a)->f)) == 0)
static bool
same_state(const struct peer_state *a, const struct peer_state *b)
{
	return SAME_FIELD(a, b, addr) && SAME_FIELD(a, b, seen) && SAME_FIELD(a, b, seen_ms) &&
	       SAME_FIELD(a, b, primary) && SAME_FIELD(a, b, replica) && SAME_FIELD(a, b, timeline) &&
	       SAME_FIELD(a, b, system_identifier) && SAME_FIELD(a, b, fenced);
}

/* check_authenticated runs the keyed paths on line (NUL-terminated) and checks their invariants. */
static void
check_authenticated(const char *line, size_t size)
{
	const unsigned char *key = (const unsigned char *)FUZZ_KEY;
	const size_t key_len = strlen(FUZZ_KEY);
	struct peer_state before, st, plain;
	char signed_line[512], nonce[PEERS_NONCE_HEX + 1];
	enum peers_reject why;
	size_t n;

	memset(&before, 0x5a, sizeof(before));
	st = before;
	plain = before;
	why = peers_open_answer(key, key_len, FUZZ_NONCE, line, &st);
	FUZZ_CHECK(why < PEERS_REJECT_COUNT);
	if (why == PEERS_REJECT_NONE) {
		/* only a MAC made with the key could pass: the input holds one, over a parsable line */
		FUZZ_CHECK(peers_parse_line(line, &plain));
		FUZZ_CHECK(same_state(&st, &plain));
		FUZZ_CHECK(strstr(line, " mac=") != NULL && strstr(line, "nonce=" FUZZ_NONCE) != NULL);
	} else {
		FUZZ_CHECK(same_state(&st, &before));
	}
	/* keyless: believed exactly when it parses */
	st = before;
	FUZZ_CHECK((peers_open_answer(NULL, 0, NULL, line, &st) == PEERS_REJECT_NONE) ==
	           peers_parse_line(line, &plain));

	/* the input as a state line, signed */
	if (size > 0 && size < 256 && memchr(line, '\0', size) == NULL && memchr(line, '\n', size) == line + size - 1) {
		memcpy(signed_line, line, size + 1);
		n = peers_sign_answer(key, key_len, FUZZ_NONCE, signed_line, size, sizeof(signed_line));
		if (n > 0) {
			struct peer_state a = before, b = before;

			FUZZ_CHECK(n == strlen(signed_line) && signed_line[n - 1] == '\n');
			why = peers_open_answer(key, key_len, FUZZ_NONCE, signed_line, &a);
			FUZZ_CHECK((why == PEERS_REJECT_NONE) == peers_parse_line(signed_line, &b));
			if (why == PEERS_REJECT_NONE) {
				FUZZ_CHECK(same_state(&a, &b));
				a = before;
				FUZZ_CHECK(peers_open_answer(key, key_len, "ffeeddccbbaa99887766554433221100",
				                             signed_line, &a) == PEERS_REJECT_NONCE_MISMATCH);
				FUZZ_CHECK(
				    peers_open_answer((const unsigned char *)"another key, long enough, 32 bytes", 34,
				                      FUZZ_NONCE, signed_line, &a) == PEERS_REJECT_BAD_MAC);
				FUZZ_CHECK(same_state(&a, &before));
			}
		}
	}

	/* the input as a request to a node with the key */
	if (peers_check_request(key, key_len, line, size, nonce)) {
		char again[PEERS_REQUEST_MAX];

		FUZZ_CHECK(strlen(nonce) == PEERS_NONCE_HEX);
		n = peers_sign_request(key, key_len, nonce, again, sizeof(again));
		FUZZ_CHECK(n > 0 && (memcmp(again, line, n - 1) == 0)); /* the one form, with or without its line end */
	} else {
		FUZZ_CHECK(nonce[0] == '\0');
	}
}

static bool
name_ok(const char *name, bool may_be_empty)
{
	size_t n = strnlen(name, SAMPLE_NAME_MAX);

	if (n == SAMPLE_NAME_MAX)
		return false; /* not terminated */
	if (n == 0)
		return may_be_empty;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '.' || name[i] == '_' || name[i] == '-'))
			return false;
	return true;
}

/* check_ext: what the optional fields gave is in range */
static void
check_ext(const struct peer_ext *e)
{
	FUZZ_CHECK(name_ok(e->name, true));
	FUZZ_CHECK(e->read >= PEER_READ_UNKNOWN && e->read <= PEER_READ_DOWN);
	FUZZ_CHECK(e->weight_pct >= -1 && e->weight_pct <= 100);
	FUZZ_CHECK(e->pg_port >= 0 && e->pg_port <= 65535);
	FUZZ_CHECK(e->standbys_total >= -1);
	FUZZ_CHECK(!e->have_lag || e->lag_bytes >= 0);
	FUZZ_CHECK(!e->have_lag_ms || e->lag_ms >= 0);
	FUZZ_CHECK(memchr(e->reason, '\0', sizeof(e->reason)) != NULL && strchr(e->reason, ' ') == NULL);
	FUZZ_CHECK(e->standby_count >= 0 && e->standby_count <= SAMPLE_STANDBYS_MAX);
	for (int k = 0; k < e->standby_count; k++) {
		FUZZ_CHECK(name_ok(e->standby[k].name, false));
		FUZZ_CHECK(e->standby[k].state > SYNC_NONE && e->standby[k].state < SYNC_STATE_COUNT);
	}
}

static bool
is_core_key(const char *tok, size_t n)
{
	static const char *const keys[] = {"role=", "timeline=", "sysid=", "fenced=", "nonce=", "mac="};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (n >= strlen(keys[i]) && memcmp(tok, keys[i], strlen(keys[i])) == 0)
			return true;
	return false;
}

/*
 * check_core_alone: the accepted line with every field that is not a fencing one left out parses to the
 * same fencing state (an older node's answer is believed alike, and nothing else can make one fail).
 */
static void
check_core_alone(const char *line, const struct peer_state *st)
{
	char core[PEERS_LINE_MAX * 4 + 8];
	size_t n = 5;
	const char *p = line + 5;
	struct peer_state again;

	if (strlen(line) >= sizeof(core) - 2)
		return;
	memcpy(core, "state", 5);
	while (*p == ' ') {
		const char *tok;
		size_t len = 0;

		while (*p == ' ')
			p++;
		tok = p;
		while (tok[len] != ' ' && tok[len] != '\n' && tok[len] != '\0')
			len++;
		p = tok + len;
		if (len > 0 && is_core_key(tok, len)) {
			core[n++] = ' ';
			memcpy(core + n, tok, len);
			n += len;
		}
	}
	core[n++] = '\n';
	core[n] = '\0';
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(peers_parse_line(core, &again));
	FUZZ_CHECK(again.primary == st->primary && again.replica == st->replica && again.timeline == st->timeline &&
	           again.system_identifier == st->system_identifier && again.fenced == st->fenced);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct peer_state before, st, again;
	uint64_t timeline, sysid;
	char canonical[160];

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	check_authenticated(line, size);
	memset(&before, 0x5a, sizeof(before));
	st = before;
	if (!peers_parse_line(line, &st)) {
		FUZZ_CHECK(memcmp(&st, &before, sizeof(st)) == 0);
		free(line);
		return 0;
	}
	FUZZ_CHECK(strncmp(line, "state", 5) == 0);
	FUZZ_CHECK(!(st.primary && st.replica));
	FUZZ_CHECK(!st.primary || st.timeline >= 1);
	FUZZ_CHECK(reference_field(line, "timeline", &timeline) && timeline == st.timeline);
	FUZZ_CHECK(reference_field(line, "sysid", &sysid) && sysid == st.system_identifier);
	/* the fields it does not set are left alone */
	FUZZ_CHECK(memcmp(st.addr, before.addr, sizeof(st.addr)) == 0 && st.seen_ms == before.seen_ms);

	check_ext(&st.ext);
	check_core_alone(line, &st);

	snprintf(canonical, sizeof(canonical), "state role=%s timeline=%" PRIu32 " sysid=%" PRIu64 " fenced=%d\n",
	         st.primary   ? "primary"
	         : st.replica ? "replica"
	                      : "unknown",
	         st.timeline, st.system_identifier, st.fenced ? 1 : 0);
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(peers_parse_line(canonical, &again));
	FUZZ_CHECK(again.primary == st.primary && again.replica == st.replica && again.timeline == st.timeline &&
	           again.system_identifier == st.system_identifier && again.fenced == st.fenced);
	free(line);
	return 0;
}
