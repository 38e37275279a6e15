/*
 * fuzz_runtimeapi.c: libFuzzer harness for what pgcheckd reads from HAProxy's runtime API: the
 * "show servers state" parser and the error-word scan of a command's answer. The input is the answer;
 * its first line, when it starts with "@", names the backend to look for (else "be_read").
 * Invariants: the parser returns -1 or a count from 0 to the slots given, writes no slot past the
 * count, and every string it fills is NUL-terminated within its field; the error scan returns NULL or
 * the start of a line of the answer that holds one of the error words, and answer_ok agrees with it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "runtimeapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 4

static bool
terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct runtimeapi_server out[SLOTS + 1];
	char backend[64] = "be_read";
	char *text = malloc(size + 1);
	const char *body, *hit;
	int n;

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

	memset(out, 0xa5, sizeof(out));
	n = runtimeapi_parse_state(body, backend, out, SLOTS);
	FUZZ_CHECK(n >= -1 && n <= SLOTS);
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(terminated(out[i].name, sizeof(out[i].name)));
		FUZZ_CHECK(terminated(out[i].addr, sizeof(out[i].addr)));
		FUZZ_CHECK(terminated(out[i].agent_addr, sizeof(out[i].agent_addr)));
	}
	/* the slot past the ones given is never written */
	for (size_t b = 0; b < sizeof(out[SLOTS]); b++)
		FUZZ_CHECK(((const unsigned char *)&out[SLOTS])[b] == 0xa5);

	hit = runtimeapi_error_line(text);
	FUZZ_CHECK(runtimeapi_answer_ok(text) == (hit == NULL));
	if (hit != NULL) {
		size_t linelen;

		FUZZ_CHECK(hit >= text && hit <= text + strlen(text));
		FUZZ_CHECK(hit == text || hit[-1] == '\n');
		linelen = strcspn(hit, "\n");
		/* the line it names holds an error word: at least one byte of text */
		FUZZ_CHECK(linelen > 0);
	}
	free(text);
	return 0;
}
