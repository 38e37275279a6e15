/*
 * fuzz_showstat.c: libFuzzer harness for the scale-out controller's reading of HAProxy's "show stat"
 * CSV (scaleout_parse_stat). The input is the answer; its first line, when it starts with "@", names
 * the backend to look for (else "be_read"). Invariants: nothing is read past the answer (ASan); a
 * backend that is not found gives 0 servers and 0 sessions; the session count is finite, never
 * negative and at most two clamped counts (current + queued) per up server. The same answer goes to
 * "ctl drain --wait"'s reader (drainwait_parse_stat, with the backend name as the address): counts never
 * negative, routable and busy servers among those counted, its busy line a C string.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drainwait.h"
#include "fuzz_check.h"
#include "scaleout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char backend[64] = "be_read";
	char *text = malloc(size + 1);
	const char *body;
	int up = -1;
	double sessions = -1;
	bool found;
	struct drainwait_count dw;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* runtimeapi_command hands over a C string: a NUL ends the answer */
	body = text;
	if (text[0] == '@') {
		size_t len = strcspn(text + 1, "\n");

		if (len >= sizeof(backend))
			len = sizeof(backend) - 1;
		memcpy(backend, text + 1, len);
		backend[len] = '\0';
		body = text + 1 + strcspn(text + 1, "\n");
		if (*body == '\n')
			body++;
	}

	found = scaleout_parse_stat(body, backend, &up, &sessions);
	FUZZ_CHECK(up >= 0);
	FUZZ_CHECK(isfinite(sessions) && sessions >= 0);
	FUZZ_CHECK(sessions <= (double)up * 2 * SCALEOUT_SESSIONS_MAX);
	if (!found)
		FUZZ_CHECK(up == 0 && sessions == 0);
	if (drainwait_parse_stat(body, backend, &dw)) {
		FUZZ_CHECK(dw.servers >= 0 && dw.sessions >= 0 && dw.routable >= 0 && dw.routable <= dw.servers);
		FUZZ_CHECK(memchr(dw.busy, '\0', sizeof(dw.busy)) != NULL);
		FUZZ_CHECK(dw.busy[0] == '\0' || dw.servers > 0);
	}
	free(text);
	return 0;
}
