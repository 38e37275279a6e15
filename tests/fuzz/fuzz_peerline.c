/*
 * fuzz_peerline.c: libFuzzer harness for the "peer-state" answer parser, peers_parse_line. The input is
 * one answer as a peer's pgcheckd (or anything on its port) could send it, NUL-terminated in a buffer
 * of exactly its size. Invariants: a refused answer leaves the state untouched; an accepted one starts
 * with "state", names at most one role, gives a primary a timeline, and its timeline and sysid are the
 * decimal values written in the input (checked here from the contract, with overflow checked by hand);
 * the canonical line for an accepted state parses back to the same state.
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
