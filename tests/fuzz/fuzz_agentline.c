/*
 * fuzz_agentline.c: libFuzzer harness for the agent line protocol. The input is what a client sends
 * on the agent port; it is parsed, answered for a set of node views with verdict_for(), and every
 * reply must be one complete line HAProxy can apply: "up N%" or "down #reason", then one "\n".
 * The input's bytes are also rendered as a reason, the one place a reply could pick up stray bytes.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentline.h"
#include "fuzz_check.h"
#include "poller.h"
#include "request.h"
#include "verdict.h"

#define MB (1024LL * 1024LL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_line: one line ending in its only "\n", no CR, up or down, no HAProxy state word before '#'. */
static void
check_line(const char *buf, size_t n, size_t len)
{
	static const char *const forbidden[] = {"ready", "maint", "drain", "stopped", "fail"};
	const char *hash;
	size_t head;

	FUZZ_CHECK(n > 0 && n < len);
	FUZZ_CHECK(strlen(buf) == n);
	FUZZ_CHECK(buf[n - 1] == '\n');
	FUZZ_CHECK(memchr(buf, '\n', n - 1) == NULL);
	FUZZ_CHECK(memchr(buf, '\r', n) == NULL);
	FUZZ_CHECK(strncmp(buf, "up ", 3) == 0 || strncmp(buf, "down", 4) == 0);
	for (size_t i = 0; i + 1 < n; i++)
		FUZZ_CHECK((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f);
	hash = strchr(buf, '#');
	head = hash != NULL ? (size_t)(hash - buf) : n;
	for (size_t w = 0; w < sizeof(forbidden) / sizeof(forbidden[0]); w++)
		for (size_t at = 0; at + strlen(forbidden[w]) <= head; at++)
			FUZZ_CHECK(strncmp(buf + at, forbidden[w], strlen(forbidden[w])) != 0);
}

static void
render_and_check(const struct verdict *vd)
{
	/* the listener's agent reply buffer and the role port's */
	char reply[VERDICT_REASON_MAX + 96], role[VERDICT_REASON_MAX + 32];

	check_line(reply, agentline_render(vd, reply, sizeof(reply)), sizeof(reply));
	check_line(role, agentline_render(vd, role, sizeof(role)), sizeof(role));
	if (vd->up)
		FUZZ_CHECK(strncmp(reply, "up ", 3) == 0);
	else
		FUZZ_CHECK(strncmp(reply, "down", 4) == 0);
}

static struct policy
fuzz_policy(void)
{
	struct policy p;

	memset(&p, 0, sizeof(p));
	p.stale_after_ms = 1500;
	p.max_lag_bytes = 16 * MB;
	p.max_lag_s = 10.0;
	p.over_lag = OVER_LAG_DOWN;
	p.receiver_silence_max_ms = 60000;
	p.primary_read_pct = 100;
	p.step_pct = 10;
	return p;
}

static struct node_view
fuzz_view(int i)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = i != 0;
	v.sample.in_recovery = i != 1;
	v.sample.read_only = i != 1;
	v.sample.timeline = 2;
	v.sample.receiver_streaming = true;
	v.sample.have_receiver_silence = true;
	v.sample.receiver_silence_s = 0.5;
	v.sample.lag_bytes = i == 3 ? 35 * MB : 3 * MB;
	v.sample.have_lag_s = true;
	v.sample.lag_s = i == 3 ? 12.25 : 2.5;
	v.sample.max_connections = 100;
	v.sample_age_ms = 200;
	v.lag_over = i == 3;
	v.failing = i == 4;
	v.failure = i == 4 ? POLL_TIMEOUT : POLL_OK;
	v.replica_weight_pct = 70;
	v.load_weight_pct = 80;
	v.override = i == 5 ? OVERRIDE_DRAIN : i == 6 ? OVERRIDE_MAINT : OVERRIDE_NONE;
	v.shutting_down = i == 7;
	return v;
}

#define FUZZ_VIEWS 8

static void
check_request(const struct request *r)
{
	FUZZ_CHECK((unsigned)r->kind < REQUEST_KIND_COUNT);
	if (r->has_max_lag_bytes)
		FUZZ_CHECK(r->max_lag_bytes >= 0);
	if (r->has_max_lag_s)
		FUZZ_CHECK(isfinite(r->max_lag_s) && r->max_lag_s >= 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct policy p = fuzz_policy();
	struct request r;
	struct verdict vd;
	enum agentline_parse parsed = agentline_parse(buf, size, &r);

	FUZZ_CHECK(parsed == AGENTLINE_OK || parsed == AGENTLINE_EMPTY || parsed == AGENTLINE_BAD);
	if (size > AGENTLINE_MAX)
		FUZZ_CHECK(parsed == AGENTLINE_BAD);
	if (parsed == AGENTLINE_OK)
		check_request(&r);

	/* the same line with its newline is the same request (HAProxy sends either) */
	if (size < AGENTLINE_MAX && memchr(buf, '\n', size) == NULL) {
		char line[AGENTLINE_MAX + 1];
		struct request r2;

		memcpy(line, buf, size);
		line[size] = '\n';
		FUZZ_CHECK(agentline_parse(line, size + 1, &r2) == parsed);
		if (parsed == AGENTLINE_OK)
			FUZZ_CHECK(memcmp(&r, &r2, sizeof(r)) == 0);
	}

	/* the answer, as the listener builds it */
	if (parsed == AGENTLINE_EMPTY) {
		memset(&r, 0, sizeof(r));
		r.kind = REQUEST_REPLICA; /* default_request */
	}
	if (parsed == AGENTLINE_BAD) {
		memset(&vd, 0, sizeof(vd));
		snprintf(vd.reason, sizeof(vd.reason), "bad-request");
		render_and_check(&vd);
	} else {
		for (int i = 0; i < FUZZ_VIEWS; i++) {
			struct node_view v = fuzz_view(i);

			verdict_for(&v, &r, &p, &vd);
			FUZZ_CHECK(vd.weight_pct >= 0 && vd.weight_pct <= 100);
			FUZZ_CHECK(memchr(vd.reason, '\0', sizeof(vd.reason)) != NULL);
			render_and_check(&vd);
		}
	}

	/* any bytes as a reason, any weight: still one safe line */
	if (size >= 2) {
		size_t n = size - 2 < VERDICT_REASON_MAX - 1 ? size - 2 : VERDICT_REASON_MAX - 1;

		memset(&vd, 0, sizeof(vd));
		vd.up = data[0] & 1;
		vd.weight_pct = data[1] % 101;
		memcpy(vd.reason, buf + 2, n);
		vd.reason[n] = '\0';
		render_and_check(&vd);
		/* into any buffer, however small: never a length past what was written */
		{
			size_t len = 1 + data[size - 1] % 80;
			char *small = malloc(len);
			size_t m;

			FUZZ_CHECK(small != NULL);
			m = agentline_render(&vd, small, len);
			FUZZ_CHECK(m < len && strlen(small) == m);
			if (m > 0)
				check_line(small, m, len);
			free(small);
		}
	}
	return 0;
}
