/*
 * drainwait.c: waits until every configured HAProxy has stopped sending this node anything (see
 * drainwait.h). In the ctl process only: blocking, with a deadline on every runtime API exchange and
 * on the whole wait. An answer it cannot read, an HAProxy that does not answer and an address that no
 * HAProxy lists all count as not drained: it never claims a drain it has not seen.
 */
#include "drainwait.h"

#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monoclock.h"
#include "runtimeapi.h"

#define DRAINWAIT_APIS_MAX   8
#define DRAINWAIT_ANSWER_MAX (4 * 1024 * 1024)
#define DRAINWAIT_POLL_MS    100

/* drainwait_field copies field idx of the CSV line at line into buf (cut to fit); false when it has fewer. */
static bool
drainwait_field(const char *line, int idx, char *buf, size_t len)
{
	const char *p = line;
	size_t n;

	for (int i = 0; i < idx; i++) {
		p += strcspn(p, ",\n");
		if (*p != ',')
			return false;
		p++;
	}
	n = strcspn(p, ",\n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

/* drainwait_int reads a count: digits only, clamped to INT_MAX; anything else (empty included) is 0 */
static int
drainwait_int(const char *s)
{
	long long v = 0;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
		return 0;
	for (; *s != '\0' && v < INT_MAX; s++)
		v = v * 10 + (*s - '0');
	return v > INT_MAX ? INT_MAX : (int)v;
}

/* drainwait_same_addr: HAProxy's addr ("IP:PORT", or "[IP]:PORT" for IPv6) is want ("IP:PORT") */
static bool
drainwait_same_addr(const char *have, const char *want)
{
	const char *colon = strrchr(want, ':');
	size_t iplen;

	if (strcmp(have, want) == 0)
		return true;
	if (colon == NULL || have[0] != '[')
		return false;
	iplen = (size_t)(colon - want);
	return strncmp(have + 1, want, iplen) == 0 && have[1 + iplen] == ']' && strcmp(have + 2 + iplen, colon) == 0;
}

bool
drainwait_parse_stat(const char *csv, const char *addr, struct drainwait_count *out)
{
	enum { C_PX, C_SV, C_ADDR, C_SCUR, C_QCUR, C_STATUS, C_WEIGHT, C_COUNT };
	static const char *const names[C_COUNT] = {"pxname", "svname", "addr", "scur", "qcur", "status", "weight"};
	int col[C_COUNT] = {-1, -1, -1, -1, -1, -1, -1};
	const char *line = csv;

	memset(out, 0, sizeof(*out));
	if (!runtimeapi_stat_columns(csv, names, C_COUNT, col))
		return false;
	while ((line = strchr(line, '\n')) != NULL && *++line != '\0') {
		char f[C_COUNT][72];
		bool complete = true, routable;
		int sessions, weight;

		for (int i = 0; i < C_COUNT && complete; i++)
			complete = drainwait_field(line, col[i], f[i], sizeof(f[i]));
		if (!complete || strcmp(f[C_SV], "BACKEND") == 0 || strcmp(f[C_SV], "FRONTEND") == 0 ||
		    !drainwait_same_addr(f[C_ADDR], addr))
			continue;
		sessions = drainwait_int(f[C_SCUR]);
		sessions =
		    sessions > INT_MAX - drainwait_int(f[C_QCUR]) ? INT_MAX : sessions + drainwait_int(f[C_QCUR]);
		weight = drainwait_int(f[C_WEIGHT]);
		/* "UP", "UP 1/2" (going down, still routed) and "no check" take new connections at a weight above 0 */
		routable = weight > 0 && (strncmp(f[C_STATUS], "UP", 2) == 0 || strcmp(f[C_STATUS], "no check") == 0);
		out->servers++;
		out->sessions = out->sessions > INT_MAX - sessions ? INT_MAX : out->sessions + sessions;
		if (routable)
			out->routable++;
		if ((sessions > 0 || routable) && out->busy[0] == '\0')
			snprintf(out->busy, sizeof(out->busy), "%.60s/%.60s: %d session%s, %.16s weight %d", f[C_PX],
			         f[C_SV], sessions, sessions == 1 ? "" : "s", f[C_STATUS], weight);
	}
	return true;
}

/* drainwait_sleep_ms waits ms, or less to stay within deadline_ms */
static void
drainwait_sleep_ms(int64_t deadline_ms, int ms)
{
	int64_t left = deadline_ms - monoclock_ms();

	if (left > 0)
		(void)poll(NULL, 0, left < ms ? (int)left : ms);
}

bool
drainwait_configured(const struct conf *c, FILE *err)
{
	const char *cursor = c->haproxy_runtime_api;
	size_t len;

	bool apis = conf_list_next(&cursor, &len) != NULL;

	if (!apis || c->haproxy_advertise_addr[0] == '\0') {
		fprintf(err, "pgcheckd: cannot wait for a drain: %s\n",
		        !apis ? "no HAProxy to ask ([haproxy] runtime_api is empty)"
		              : "this node's address in HAProxy is not known ([haproxy] advertise_addr is empty)");
		return false;
	}
	return true;
}

int
drainwait_run(const struct conf *c, int seconds, FILE *out, FILE *err)
{
	char apis[DRAINWAIT_APIS_MAX][256], me[96], why[256], busy[512] = "";
	const char *cursor = c->haproxy_runtime_api, *item;
	int64_t deadline = monoclock_ms() + (int64_t)seconds * 1000;
	size_t len;
	int napis = 0, rc = 1;
	char *answer;

	if (!drainwait_configured(c, err))
		return 1;
	while (napis < DRAINWAIT_APIS_MAX && (item = conf_list_next(&cursor, &len)) != NULL)
		snprintf(apis[napis++], sizeof(apis[0]), "%.*s", (int)(len < 255 ? len : 255), item);
	if (strchr(c->haproxy_advertise_addr, ':') != NULL)
		snprintf(me, sizeof(me), "[%.64s]:%lld", c->haproxy_advertise_addr,
		         (long long)c->haproxy_advertise_pg_port);
	else
		snprintf(me, sizeof(me), "%.64s:%lld", c->haproxy_advertise_addr,
		         (long long)c->haproxy_advertise_pg_port);
	answer = malloc(DRAINWAIT_ANSWER_MAX);
	if (answer == NULL) {
		fprintf(err, "pgcheckd: out of memory\n");
		return 1;
	}
	for (;;) {
		bool drained = true;

		for (int i = 0; i < napis && drained; i++) {
			struct drainwait_count n;

			/* each exchange gets its whole [haproxy] timeout_ms, even past the deadline: a late
			 * HAProxy is told apart from a wait that ran out */
			if (!runtimeapi_command(apis[i], "show stat", (int)c->haproxy_timeout_ms, answer,
			                        DRAINWAIT_ANSWER_MAX, why, sizeof(why))) {
				fprintf(err, "pgcheckd: not drained: HAProxy at %s cannot be asked: %s\n", apis[i],
				        why);
				goto done;
			}
			if (!drainwait_parse_stat(answer, me, &n)) {
				const char *bad = runtimeapi_error_line(answer);

				fprintf(err, "pgcheckd: not drained: HAProxy at %s answered 'show stat' with: %.*s\n",
				        apis[i], (int)strcspn(bad != NULL ? bad : answer, "\n"),
				        bad != NULL ? bad : answer);
				goto done;
			}
			if (n.servers == 0) {
				fprintf(err,
				        "pgcheckd: not drained: HAProxy at %s lists no server at %s ([haproxy] "
				        "advertise_addr, "
				        "advertise_pg_port)\n",
				        apis[i], me);
				goto done;
			}
			if (n.sessions > 0 || n.routable > 0) {
				drained = false;
				snprintf(busy, sizeof(busy), "HAProxy at %.255s: %.191s", apis[i], n.busy);
			}
		}
		if (drained) {
			fprintf(out, "drained: no HAProxy sends anything to %s\n", me);
			rc = 0;
			break;
		}
		if (monoclock_ms() >= deadline) {
			fprintf(err, "pgcheckd: not drained after %d s: %s\n", seconds, busy);
			break;
		}
		drainwait_sleep_ms(deadline, DRAINWAIT_POLL_MS);
	}
done:
	free(answer);
	return rc;
}
