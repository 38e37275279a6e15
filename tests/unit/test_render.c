/*
 * test_render.c: /status, health-path bodies and /metrics. The JSON is checked by a strict RFC 8259
 * parser written here (no duplicate keys), the metrics by a Prometheus text-format checker, and every
 * up, weight and reason shown against verdict_for(), so what people read agrees with what HAProxy gets.
 */
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "poller.h"
#include "render.h"
#include "request.h"
#include "sample.h"
#include "verdict.h"

#define MB (1024LL * 1024LL)

/* A strict JSON parser: every value is recorded under its dotted path ("verdicts.replica.up"). */

#define JSON_MAX_VALUES 512
#define JSON_MAX_DEPTH  16
#define JSON_MAX_KEYS   128

struct json_value {
	char path[128];
	char type;        /* 'o' object, 'a' array, 's' string, 'n' number, 't' true, 'f' false, 'z' null */
	const char *text; /* the value as written; for strings without the quotes */
	size_t len;
};

struct json_doc {
	struct json_value v[JSON_MAX_VALUES];
	int n;
	char err[160];
	const char *start;
};

struct json_parser {
	const char *p, *end;
	struct json_doc *doc;
};

static bool json_value_at(struct json_parser *jp, const char *path, int depth);

static bool
json_fail(struct json_parser *jp, const char *what)
{
	if (jp->doc->err[0] == '\0')
		snprintf(jp->doc->err, sizeof(jp->doc->err), "%s at offset %td", what, jp->p - jp->doc->start);
	return false;
}

static void
json_ws(struct json_parser *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static bool
json_record(struct json_parser *jp, const char *path, char type, const char *text, size_t len)
{
	struct json_value *v;

	if (jp->doc->n >= JSON_MAX_VALUES)
		return json_fail(jp, "too many values for the test parser");
	v = &jp->doc->v[jp->doc->n++];
	snprintf(v->path, sizeof(v->path), "%s", path);
	v->type = type;
	v->text = text;
	v->len = len;
	return true;
}

/* json_string reads a string at p (on its opening quote); *text and *len give its raw content. */
static bool
json_string(struct json_parser *jp, const char **text, size_t *len)
{
	if (jp->p >= jp->end || *jp->p != '"')
		return json_fail(jp, "expected '\"'");
	*text = ++jp->p;
	while (jp->p < jp->end && *jp->p != '"') {
		unsigned char c = (unsigned char)*jp->p;

		if (c < 0x20)
			return json_fail(jp, "control character in a string");
		if (c == '\\') {
			jp->p++;
			if (jp->p >= jp->end)
				return json_fail(jp, "unterminated escape");
			if (*jp->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (jp->p + i >= jp->end || !isxdigit((unsigned char)jp->p[i]))
						return json_fail(jp, "bad \\u escape");
				jp->p += 4;
			} else if (strchr("\"\\/bfnrt", *jp->p) == NULL || *jp->p == '\0') {
				return json_fail(jp, "bad escape");
			}
		}
		jp->p++;
	}
	if (jp->p >= jp->end)
		return json_fail(jp, "unterminated string");
	*len = (size_t)(jp->p - *text);
	jp->p++;
	return true;
}

static bool
json_digits(struct json_parser *jp)
{
	const char *s = jp->p;

	while (jp->p < jp->end && isdigit((unsigned char)*jp->p))
		jp->p++;
	return jp->p > s;
}

/* json_number follows RFC 8259's grammar exactly: no leading zeros, no "nan", no "1.", no "+1". */
static bool
json_number(struct json_parser *jp)
{
	if (jp->p < jp->end && *jp->p == '-')
		jp->p++;
	if (jp->p < jp->end && *jp->p == '0')
		jp->p++;
	else if (!json_digits(jp))
		return json_fail(jp, "bad number");
	if (jp->p < jp->end && *jp->p == '.') {
		jp->p++;
		if (!json_digits(jp))
			return json_fail(jp, "bad fraction");
	}
	if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
		jp->p++;
		if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-'))
			jp->p++;
		if (!json_digits(jp))
			return json_fail(jp, "bad exponent");
	}
	return true;
}

static bool
json_literal(struct json_parser *jp, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
		return json_fail(jp, "unexpected character");
	jp->p += n;
	return true;
}

static bool
json_object(struct json_parser *jp, const char *path, int depth)
{
	const char *keys[JSON_MAX_KEYS];
	size_t keylens[JSON_MAX_KEYS];
	int nkeys = 0;

	jp->p++; /* '{' */
	json_ws(jp);
	if (jp->p < jp->end && *jp->p == '}') {
		jp->p++;
		return true;
	}
	for (;;) {
		const char *key;
		size_t keylen;
		char child[128];

		json_ws(jp);
		if (!json_string(jp, &key, &keylen))
			return false;
		for (int i = 0; i < nkeys; i++)
			if (keylens[i] == keylen && memcmp(keys[i], key, keylen) == 0)
				return json_fail(jp, "duplicate key");
		if (nkeys == JSON_MAX_KEYS)
			return json_fail(jp, "too many keys for the test parser");
		keys[nkeys] = key;
		keylens[nkeys++] = keylen;
		snprintf(child, sizeof(child), "%s%s%.*s", path, path[0] != '\0' ? "." : "", (int)keylen, key);
		json_ws(jp);
		if (jp->p >= jp->end || *jp->p != ':')
			return json_fail(jp, "expected ':'");
		jp->p++;
		if (!json_value_at(jp, child, depth + 1))
			return false;
		json_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == '}') {
			jp->p++;
			return true;
		}
		return json_fail(jp, "expected ',' or '}'");
	}
}

static bool
json_array(struct json_parser *jp, const char *path, int depth)
{
	int i = 0;

	jp->p++; /* '[' */
	json_ws(jp);
	if (jp->p < jp->end && *jp->p == ']') {
		jp->p++;
		return true;
	}
	for (;; i++) {
		char child[128];

		snprintf(child, sizeof(child), "%s[%d]", path, i);
		if (!json_value_at(jp, child, depth + 1))
			return false;
		json_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == ']') {
			jp->p++;
			return true;
		}
		return json_fail(jp, "expected ',' or ']'");
	}
}

static bool
json_value_at(struct json_parser *jp, const char *path, int depth)
{
	const char *start;
	size_t len;

	if (depth > JSON_MAX_DEPTH)
		return json_fail(jp, "nested too deep");
	json_ws(jp);
	if (jp->p >= jp->end)
		return json_fail(jp, "expected a value");
	start = jp->p;
	switch (*jp->p) {
	case '{':
		return json_record(jp, path, 'o', start, 0) && json_object(jp, path, depth);
	case '[':
		return json_record(jp, path, 'a', start, 0) && json_array(jp, path, depth);
	case '"':
		return json_string(jp, &start, &len) && json_record(jp, path, 's', start, len);
	case 't':
		return json_literal(jp, "true") && json_record(jp, path, 't', start, 4);
	case 'f':
		return json_literal(jp, "false") && json_record(jp, path, 'f', start, 5);
	case 'n':
		return json_literal(jp, "null") && json_record(jp, path, 'z', start, 4);
	default:
		if (*jp->p != '-' && !isdigit((unsigned char)*jp->p))
			return json_fail(jp, "unexpected character");
		return json_number(jp) && json_record(jp, path, 'n', start, (size_t)(jp->p - start));
	}
}

/* json_parse accepts exactly one JSON object (and trailing whitespace) in len bytes. */
static bool
json_parse(const char *text, size_t len, struct json_doc *doc)
{
	struct json_parser jp = {text, text + len, doc};

	memset(doc, 0, sizeof(*doc));
	doc->start = text;
	json_ws(&jp);
	if (jp.p >= jp.end || *jp.p != '{')
		return json_fail(&jp, "not an object");
	if (!json_value_at(&jp, "", 0))
		return false;
	json_ws(&jp);
	if (jp.p != jp.end)
		return json_fail(&jp, "bytes after the object");
	return true;
}

static const struct json_value *
json_get(const struct json_doc *doc, const char *path)
{
	for (int i = 0; i < doc->n; i++)
		if (strcmp(doc->v[i].path, path) == 0)
			return &doc->v[i];
	return NULL;
}

static const struct json_value *
json_must(const struct json_doc *doc, const char *path, char type)
{
	const struct json_value *v = json_get(doc, path);

	if (v == NULL)
		fail_msg("JSON has no \"%s\"", path);
	if (v->type != type)
		fail_msg("JSON \"%s\" is of type '%c', expected '%c' (%.*s)", path, v->type, type, (int)v->len,
		         v->text);
	return v;
}

static void
assert_json_string(const struct json_doc *doc, const char *path, const char *want)
{
	const struct json_value *v = json_must(doc, path, 's');

	/* the strings compared here hold no escapes */
	if (v->len != strlen(want) || memcmp(v->text, want, v->len) != 0)
		fail_msg("JSON \"%s\" is \"%.*s\", expected \"%s\"", path, (int)v->len, v->text, want);
}

static void
assert_json_bool(const struct json_doc *doc, const char *path, bool want)
{
	const struct json_value *v = json_get(doc, path);

	if (v == NULL || (v->type != 't' && v->type != 'f'))
		fail_msg("JSON \"%s\" is missing or not a boolean", path);
	if ((v->type == 't') != want)
		fail_msg("JSON \"%s\" is %.*s, expected %s", path, (int)v->len, v->text, want ? "true" : "false");
}

static double
json_number_of(const struct json_doc *doc, const char *path)
{
	const struct json_value *v = json_must(doc, path, 'n');
	char buf[64];

	assert_true(v->len < sizeof(buf));
	memcpy(buf, v->text, v->len);
	buf[v->len] = '\0';
	return strtod(buf, NULL);
}

static void
assert_json_number(const struct json_doc *doc, const char *path, double want)
{
	double got = json_number_of(doc, path);

	if (fabs(got - want) > 1e-9 * (fabs(want) + 1))
		fail_msg("JSON \"%s\" is %.17g, expected %.17g", path, got, want);
}

static void
assert_json_null(const struct json_doc *doc, const char *path)
{
	(void)json_must(doc, path, 'z');
}

static void
assert_json_absent(const struct json_doc *doc, const char *path)
{
	const struct json_value *v = json_get(doc, path);

	if (v != NULL)
		fail_msg("JSON has \"%s\" (%.*s), expected none", path, (int)v->len, v->text);
}

/* A Prometheus text-format (0.0.4) checker: HELP, TYPE, then samples "name{labels} value". */

#define PROM_MAX_SAMPLES  128
#define PROM_MAX_FAMILIES 64

struct prom_sample {
	char name[96];
	char series[256]; /* name{labels} exactly as written */
	double value;
};

struct prom_doc {
	struct prom_sample s[PROM_MAX_SAMPLES];
	int n;
	char family[PROM_MAX_FAMILIES][96];
	char type[PROM_MAX_FAMILIES][16];
	bool help[PROM_MAX_FAMILIES];
	int nfamilies;
	char err[256];
};

static bool
prom_fail(struct prom_doc *d, int line, const char *what, const char *text)
{
	if (d->err[0] == '\0')
		snprintf(d->err, sizeof(d->err), "line %d: %s: \"%.160s\"", line, what, text);
	return false;
}

/* prom_name reads a metric or label name at *p into out. */
static bool
prom_name(const char **p, char *out, size_t outlen, bool metric)
{
	size_t n = 0;

	if (!(isalpha((unsigned char)**p) || **p == '_' || (metric && **p == ':')))
		return false;
	while (isalnum((unsigned char)**p) || **p == '_' || (metric && **p == ':')) {
		if (n + 1 >= outlen)
			return false;
		out[n++] = *(*p)++;
	}
	out[n] = '\0';
	return true;
}

static int
prom_family(const struct prom_doc *d, const char *name)
{
	for (int i = 0; i < d->nfamilies; i++)
		if (strcmp(d->family[i], name) == 0)
			return i;
	return -1;
}

/* prom_parse checks every line and records the samples; false with d->err on the first bad line. */
static bool
prom_parse(const char *text, size_t len, struct prom_doc *d)
{
	const char *p = text, *end = text + len;
	int lineno = 0, current = -1;

	memset(d, 0, sizeof(*d));
	if (len == 0 || text[len - 1] != '\n')
		return prom_fail(d, 0, "does not end with a newline", "");
	if (strlen(text) != len)
		return prom_fail(d, 0, "length is not the string's length", "");
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		char line[512], name[96];
		const char *q;

		lineno++;
		if ((size_t)(eol - p) >= sizeof(line))
			return prom_fail(d, lineno, "line too long for the checker", "");
		memcpy(line, p, (size_t)(eol - p));
		line[eol - p] = '\0';
		p = eol + 1;
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
			bool is_help = line[2] == 'H';
			int f;

			q = line + 7;
			if (!prom_name(&q, name, sizeof(name), true) || *q != ' ' || q[1] == '\0')
				return prom_fail(d, lineno, "bad HELP or TYPE line", line);
			f = prom_family(d, name);
			if (f < 0) {
				if (d->nfamilies == PROM_MAX_FAMILIES)
					return prom_fail(d, lineno, "too many families for the checker", line);
				f = d->nfamilies++;
				snprintf(d->family[f], sizeof(d->family[f]), "%s", name);
			} else if (f != current) {
				return prom_fail(d, lineno, "metric family split in two", line);
			}
			current = f;
			if (is_help) {
				if (d->help[f] || d->type[f][0] != '\0')
					return prom_fail(d, lineno, "HELP repeated or after TYPE", line);
				d->help[f] = true;
			} else {
				if (d->type[f][0] != '\0')
					return prom_fail(d, lineno, "TYPE repeated", line);
				if (strcmp(q + 1, "counter") != 0 && strcmp(q + 1, "gauge") != 0 &&
				    strcmp(q + 1, "untyped") != 0)
					return prom_fail(d, lineno, "unknown TYPE", line);
				snprintf(d->type[f], sizeof(d->type[f]), "%s", q + 1);
			}
			continue;
		}
		if (line[0] == '#' || line[0] == '\0')
			return prom_fail(d, lineno, "unexpected comment or empty line", line);
		/* a sample */
		q = line;
		if (!prom_name(&q, name, sizeof(name), true))
			return prom_fail(d, lineno, "bad metric name", line);
		if (*q == '{') {
			char label[64];

			q++;
			for (;;) {
				if (!prom_name(&q, label, sizeof(label), false) || *q != '=' || q[1] != '"')
					return prom_fail(d, lineno, "bad label", line);
				q += 2;
				while (*q != '"') {
					if (*q == '\0' || *q == '\n')
						return prom_fail(d, lineno, "unterminated label value", line);
					if (*q == '\\') {
						if (q[1] != '\\' && q[1] != '"' && q[1] != 'n')
							return prom_fail(d, lineno, "bad escape in a label value",
							                 line);
						q++;
					}
					q++;
				}
				q++;
				if (*q == ',') {
					q++;
					continue;
				}
				if (*q == '}') {
					q++;
					break;
				}
				return prom_fail(d, lineno, "expected ',' or '}'", line);
			}
		}
		if (*q != ' ')
			return prom_fail(d, lineno, "expected one space before the value", line);
		{
			int f = prom_family(d, name);
			struct prom_sample *s;
			char *vend;

			if (f < 0 || f != current || d->type[f][0] == '\0' || !d->help[f])
				return prom_fail(d, lineno, "sample without its own HELP and TYPE just before", line);
			if (d->n == PROM_MAX_SAMPLES)
				return prom_fail(d, lineno, "too many samples for the checker", line);
			s = &d->s[d->n];
			snprintf(s->name, sizeof(s->name), "%s", name);
			snprintf(s->series, sizeof(s->series), "%.*s", (int)(q - line), line);
			if (q[1] == '\0' || isspace((unsigned char)q[1]))
				return prom_fail(d, lineno, "no value", line);
			s->value = strtod(q + 1, &vend);
			if (*vend != '\0' || !isfinite(s->value))
				return prom_fail(d, lineno, "value is not a finite number (or a timestamp follows)",
				                 line);
			for (int i = 0; i < d->n; i++)
				if (strcmp(d->s[i].series, s->series) == 0)
					return prom_fail(d, lineno, "series given twice", line);
			d->n++;
		}
	}
	for (int f = 0; f < d->nfamilies; f++) {
		bool has_sample = false;

		for (int i = 0; i < d->n; i++)
			has_sample = has_sample || strcmp(d->s[i].name, d->family[f]) == 0;
		if (!has_sample)
			return prom_fail(d, 0, "family without samples", d->family[f]);
	}
	return true;
}

static const struct prom_sample *
prom_get(const struct prom_doc *d, const char *series)
{
	for (int i = 0; i < d->n; i++)
		if (strcmp(d->s[i].series, series) == 0)
			return &d->s[i];
	return NULL;
}

static double
prom_value(const struct prom_doc *d, const char *series)
{
	const struct prom_sample *s = prom_get(d, series);

	if (s == NULL)
		fail_msg("/metrics has no %s", series);
	return s->value;
}

static void
assert_prom_value(const struct prom_doc *d, const char *series, double want)
{
	double got = prom_value(d, series);

	if (fabs(got - want) > 1e-9 * (fabs(want) + 1))
		fail_msg("/metrics %s is %.17g, expected %.17g", series, got, want);
}

static bool
prom_has_name(const struct prom_doc *d, const char *name)
{
	for (int i = 0; i < d->n; i++)
		if (strcmp(d->s[i].name, name) == 0)
			return true;
	return false;
}

/* Views, policy and counters */

static struct policy
test_policy(void)
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

/* A healthy streaming replica, sampled 200 ms ago, weighted 70% (80% from load alone). */
static struct node_view
replica_view(void)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.have_sample = true;
	v.sample.taken_ms = 10000;
	v.sample.poll_duration_ms = 3;
	v.sample.server_version_num = 150004;
	v.sample.in_recovery = true;
	v.sample.read_only = true;
	v.sample.timeline = 2;
	v.sample.system_identifier = 7300000000000000001ULL;
	v.sample.receiver_streaming = true;
	v.sample.have_receiver_silence = true;
	v.sample.receiver_silence_s = 0.5;
	v.sample.receive_lsn = 0x16B374D848ULL;
	v.sample.replay_lsn = 0x16B374D848ULL;
	v.sample.latest_end_lsn = 0x16B374D848ULL;
	v.sample.lag_bytes = 0;
	v.sample.have_lag_s = true;
	v.sample.lag_s = 0.0;
	v.sample.client_backends = 5;
	v.sample.active_backends = 1;
	v.sample.max_connections = 100;
	v.sample.reserved_connections = 3;
	v.sample.load1 = 0.3;
	v.sample.ncpu = 4;
	v.sample_age_ms = 200;
	v.failure = POLL_OK;
	v.replica_weight_pct = 70;
	v.load_weight_pct = 80;
	v.override = OVERRIDE_NONE;
	return v;
}

/* A replica 35 MB and 12.25 s behind, over the limits. */
static struct node_view
lagging_replica_view(void)
{
	struct node_view v = replica_view();

	v.sample.receive_lsn = 0x16B374D848ULL + 35 * MB;
	v.sample.latest_end_lsn = 0x16B374D848ULL + 35 * MB;
	v.sample.lag_bytes = 35 * MB;
	v.sample.lag_s = 12.25;
	v.lag_over = true;
	v.replica_weight_pct = 10;
	return v;
}

/* A healthy writable primary with two streaming replicas, sampled 200 ms ago. */
static struct node_view
primary_view(void)
{
	struct node_view v = replica_view();

	v.sample.in_recovery = false;
	v.sample.read_only = false;
	v.sample.default_read_only = false;
	v.sample.timeline = 3;
	v.sample.receiver_streaming = false;
	v.sample.have_receiver_silence = false;
	v.sample.receiver_silence_s = 0.0;
	v.sample.receive_lsn = 0;
	v.sample.replay_lsn = 0;
	v.sample.latest_end_lsn = 0;
	v.sample.have_lag_s = false;
	v.sample.current_lsn = 0x3000060ULL;
	v.sample.streaming_replicas = 2;
	return v;
}

static struct node_view
no_sample_view(void)
{
	struct node_view v;

	memset(&v, 0, sizeof(v));
	v.failure = POLL_OK;
	v.override = OVERRIDE_NONE;
	v.replica_weight_pct = 100;
	v.load_weight_pct = 100;
	return v;
}

/* A replica whose last poll timed out (the last good sample is kept). */
static struct node_view
failing_view(void)
{
	struct node_view v = replica_view();

	v.failing = true;
	v.failure = POLL_TIMEOUT;
	v.sample_age_ms = 900;
	return v;
}

static struct render_counters
test_counters(void)
{
	struct render_counters c;

	memset(&c, 0, sizeof(c));
	c.checks[PROTOCOL_AGENT] = 123456789012ULL;
	c.checks[PROTOCOL_HTTP] = 42;
	c.checks[PROTOCOL_ROLE_PORT] = 7;
	c.checks[PROTOCOL_ADMIN] = 3;
	c.refused = 11;
	return c;
}

static struct request
req(enum request_kind kind)
{
	struct request r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	return r;
}

static const char *const view_names[] = {"no sample", "primary", "replica", "lagging replica", "failing"};

static struct node_view
view_number(int i)
{
	switch (i) {
	case 0:
		return no_sample_view();
	case 1:
		return primary_view();
	case 2:
		return replica_view();
	case 3:
		return lagging_replica_view();
	default:
		return failing_view();
	}
}

#define VIEW_COUNT ((int)(sizeof(view_names) / sizeof(view_names[0])))

/* render_json_doc renders into a large buffer and parses the result strictly. */
static size_t
render_json_doc(const struct node_view *v, const struct policy *p, const struct request *r,
                const struct render_counters *c, char *buf, size_t len, struct json_doc *doc)
{
	size_t n;

	memset(buf, 'X', len);
	n = render_json(v, p, r, c, buf, len);
	if (n == 0)
		fail_msg("render_json returned 0 with %zu bytes", len);
	assert_true(n < len);
	assert_int_equal(buf[n], '\0');
	assert_int_equal(strlen(buf), n);
	if (!json_parse(buf, n, doc))
		fail_msg("render_json wrote invalid JSON (%s): %s", doc->err, buf);
	return n;
}

static size_t
render_metrics_doc(const struct node_view *v, const struct policy *p, const struct render_counters *c, char *buf,
                   size_t len, struct prom_doc *doc)
{
	size_t n;

	memset(buf, 'X', len);
	n = render_metrics(v, p, c, buf, len);
	if (n == 0)
		fail_msg("render_metrics returned 0 with %zu bytes", len);
	assert_true(n < len);
	assert_int_equal(strlen(buf), n);
	if (!prom_parse(buf, n, doc))
		fail_msg("render_metrics wrote invalid exposition text (%s):\n%s", doc->err, buf);
	return n;
}

/* The checkers themselves must be able to fail. */

static void
test_json_checker_refuses_broken_json(void **state)
{
	static const char *const bad[] = {
	    "",
	    "{",
	    "{\"a\":1,}",
	    "{\"a\":1 \"b\":2}",
	    "{\"a\":1}{",
	    "{'a':1}",
	    "{\"a\":nan}",
	    "{\"a\":-}",
	    "{\"a\":01}",
	    "{\"a\":1.}",
	    "{\"a\":.5}",
	    "{\"a\":+1}",
	    "{\"a\":\"x\ny\"}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"\\u12\"}",
	    "{\"a\":tru}",
	    "{\"a\":1,\"a\":2}",
	    "{\"a\":{\"b\":1,\"b\":1}}",
	    "{a:1}",
	    "[1]",
	    "{\"a\":[1,]}",
	    "{\"a\":\"unterminated}",
	};
	static const char *const good[] = {
	    "{}",
	    "{\"a\":-0.5e+3,\"b\":[true,false,null,\"\\u00e9\\\"\"],\"c\":{\"a\":1}}\n",
	    " { \"a\" : 0 } ",
	};
	struct json_doc *doc = malloc(sizeof(*doc));

	(void)state;
	assert_non_null(doc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (json_parse(bad[i], strlen(bad[i]), doc))
			fail_msg("the JSON checker accepted %s", bad[i]);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!json_parse(good[i], strlen(good[i]), doc))
			fail_msg("the JSON checker refused %s (%s)", good[i], doc->err);
	assert_true(json_parse(good[1], strlen(good[1]), doc));
	assert_json_number(doc, "a", -500.0);
	assert_json_bool(doc, "b[0]", true);
	assert_json_null(doc, "b[2]");
	assert_json_number(doc, "c.a", 1);
	free(doc);
}

static void
test_metrics_checker_refuses_broken_text(void **state)
{
	static const char *const bad[] = {
	    "",
	    "# HELP a x\n# TYPE a gauge\na 1",
	    "a 1\n",
	    "# HELP a x\na 1\n",
	    "# TYPE a gauge\na 1\n",
	    "# HELP a x\n# TYPE a gauge\na nan\n",
	    "# HELP a x\n# TYPE a gauge\na one\n",
	    "# HELP a x\n# TYPE a gauge\na  1\n",
	    "# HELP a x\n# TYPE a gauge\na{l=\"x} 1\n",
	    "# HELP a x\n# TYPE a gauge\na{l=x} 1\n",
	    "# HELP a x\n# TYPE a gauge\na{l=\"x\",} 1\n",
	    "# HELP a x\n# TYPE a gauge\na 1\na 2\n",
	    "# HELP a x\n# TYPE a gauge\na 1 1700000000\n",
	    "# HELP a x\n# TYPE a gauge\na 1\n\n",
	    "# HELP a x\n# TYPE a gauge\n",
	    "# HELP a x\n# TYPE a gauge\na 1\n# HELP b y\n# TYPE b gauge\nb 1\na{l=\"2\"} 1\n",
	    "# HELP a x\n# TYPE a histogrm\na 1\n",
	    "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n",
	};
	static const char good[] = "# HELP a x y\n# TYPE a counter\na{l=\"x\",m=\"y\\\"\"} 1.5\na{l=\"z\"} -2\n"
	                           "# HELP b z\n# TYPE b gauge\nb 0\n";
	struct prom_doc *doc = malloc(sizeof(*doc));

	(void)state;
	assert_non_null(doc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (prom_parse(bad[i], strlen(bad[i]), doc))
			fail_msg("the metrics checker accepted \"%s\"", bad[i]);
	if (!prom_parse(good, strlen(good), doc))
		fail_msg("the metrics checker refused good text (%s)", doc->err);
	assert_prom_value(doc, "a{l=\"z\"}", -2);
	assert_prom_value(doc, "b", 0);
	free(doc);
}

/* render_json */

static void
test_json_without_a_sample(void **state)
{
	struct node_view v = no_sample_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct request r = req(REQUEST_REPLICA);
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "role", "unknown");
	assert_json_string(doc, "state", "unknown");
	assert_json_absent(doc, "timeline");
	assert_json_absent(doc, "lag_bytes");
	assert_json_absent(doc, "poll_failure");
	assert_json_string(doc, "override", "none");
	assert_json_string(doc, "request", "replica");
	assert_json_bool(doc, "up", false);
	assert_json_number(doc, "weight", 0);
	assert_json_string(doc, "reason", "starting");
	assert_json_string(doc, "version", PGCHECKD_VERSION);

	render_json_doc(&v, &p, NULL, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "role", "unknown");
	assert_json_string(doc, "verdicts.primary.reason", "starting");
	assert_json_bool(doc, "verdicts.health.up", false);
	free(doc);
}

static void
test_json_for_a_primary(void **state)
{
	struct node_view v = primary_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct request r = req(REQUEST_PRIMARY);
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "role", "primary");
	assert_json_string(doc, "state", "running");
	assert_json_number(doc, "timeline", 3);
	assert_json_number(doc, "server_version", 150004);
	assert_json_bool(doc, "read_only", false);
	assert_json_string(doc, "current_lsn", "0/3000060");
	assert_json_null(doc, "receive_lsn");
	assert_json_null(doc, "replay_lsn");
	assert_json_null(doc, "latest_end_lsn");
	assert_json_number(doc, "streaming_replicas", 2);
	assert_json_absent(doc, "lag_bytes");
	assert_json_absent(doc, "lag_seconds");
	assert_json_absent(doc, "streaming");
	assert_json_number(doc, "client_backends", 5);
	assert_json_number(doc, "active_backends", 1);
	assert_json_number(doc, "max_connections", 100);
	assert_json_number(doc, "sample_age_ms", 200);
	assert_json_number(doc, "poll_duration_ms", 3);
	assert_json_string(doc, "override", "none");
	assert_json_absent(doc, "poll_failure");
	assert_json_string(doc, "request", "primary");
	assert_json_bool(doc, "up", true);
	assert_json_number(doc, "weight", 100);
	assert_json_string(doc, "reason", "");
	assert_json_string(doc, "version", PGCHECKD_VERSION);
	/* a health path's body is one request: no verdict table, no counters */
	assert_json_absent(doc, "verdicts");
	assert_json_absent(doc, "checks");
	free(doc);
}

static void
test_json_for_a_replica_with_lag(void **state)
{
	struct node_view v = lagging_replica_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct request r = req(REQUEST_REPLICA);
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "role", "replica");
	assert_json_string(doc, "state", "running");
	assert_json_number(doc, "timeline", 2);
	assert_json_bool(doc, "read_only", true);
	assert_json_null(doc, "current_lsn");
	assert_json_string(doc, "receive_lsn", "16/B5A4D848");
	assert_json_string(doc, "replay_lsn", "16/B374D848");
	assert_json_string(doc, "latest_end_lsn", "16/B5A4D848");
	assert_json_number(doc, "lag_bytes", (double)(35 * MB));
	assert_json_number(doc, "lag_seconds", 12.25);
	assert_json_bool(doc, "lag_over_limit", true);
	assert_json_bool(doc, "streaming", true);
	assert_json_bool(doc, "replay_paused", false);
	assert_json_absent(doc, "streaming_replicas");
	assert_json_string(doc, "request", "replica");
	assert_json_bool(doc, "up", false);
	assert_json_number(doc, "weight", 0);
	assert_json_string(doc, "reason", "lag 35MB/12s");
	free(doc);
}

static void
test_json_lag_seconds_unknown_is_null(void **state)
{
	struct node_view v = replica_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct request r = req(REQUEST_REPLICA);
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	v.sample.have_lag_s = false;
	v.sample.receive_lsn = 0;
	v.sample.latest_end_lsn = 0;
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_null(doc, "lag_seconds");
	assert_json_null(doc, "receive_lsn");
	assert_json_null(doc, "latest_end_lsn");
	assert_json_string(doc, "replay_lsn", "16/B374D848");
	assert_json_bool(doc, "up", true);
	assert_json_number(doc, "weight", 70);
	free(doc);
}

static void
test_json_for_a_failing_node(void **state)
{
	struct node_view v = failing_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct request r = req(REQUEST_HEALTH);
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "poll_failure", "timeout");
	assert_json_string(doc, "state", "unknown");
	/* the role of the last good sample is still shown */
	assert_json_string(doc, "role", "replica");
	assert_json_number(doc, "sample_age_ms", 900);
	assert_json_bool(doc, "up", false);
	assert_json_number(doc, "weight", 0);
	assert_json_string(doc, "reason", "timeout");

	for (int k = 0; k < POLL_RESULT_COUNT; k++) {
		if (k == POLL_OK)
			continue;
		v.failure = (enum poll_result)k;
		render_json_doc(&v, &p, NULL, &c, buf, sizeof(buf), doc);
		assert_json_string(doc, "poll_failure", poll_result_name(v.failure));
		assert_json_string(doc, "verdicts.primary.reason", poll_result_name(v.failure));
	}
	free(doc);
}

static void
test_json_overrides(void **state)
{
	struct node_view v = replica_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct request r = req(REQUEST_REPLICA);
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	v.override = OVERRIDE_DRAIN;
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "override", "drain");
	assert_json_bool(doc, "up", true);
	assert_json_number(doc, "weight", 0);
	assert_json_string(doc, "reason", "drain");
	v.override = OVERRIDE_MAINT;
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "override", "maint");
	assert_json_bool(doc, "up", false);
	assert_json_string(doc, "reason", "maint");
	v.override = OVERRIDE_NONE;
	v.shutting_down = true;
	render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
	assert_json_string(doc, "override", "shutdown");
	assert_json_string(doc, "reason", "shutdown");
	free(doc);
}

/* assert_json_verdict checks the up, weight and reason at prefix ("" or "verdicts.KIND") against vd. */
static void
assert_json_verdict(const struct json_doc *doc, const char *prefix, const struct verdict *vd)
{
	char path[128];

	snprintf(path, sizeof(path), "%s%sup", prefix, prefix[0] != '\0' ? "." : "");
	assert_json_bool(doc, path, vd->up);
	snprintf(path, sizeof(path), "%s%sweight", prefix, prefix[0] != '\0' ? "." : "");
	assert_json_number(doc, path, vd->up ? vd->weight_pct : 0);
	snprintf(path, sizeof(path), "%s%sreason", prefix, prefix[0] != '\0' ? "." : "");
	assert_json_string(doc, path, vd->reason);
}

static void
test_json_for_one_request_matches_verdict_for(void **state)
{
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	for (int i = 0; i < VIEW_COUNT; i++) {
		struct node_view v = view_number(i);

		for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
			struct request r = req((enum request_kind)k);
			struct verdict vd;

			verdict_for(&v, &r, &p, &vd);
			render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
			print_message("%s, %s: up=%d weight=%d reason=\"%s\"\n", view_names[i],
			              request_kind_name(r.kind), vd.up, vd.weight_pct, vd.reason);
			assert_json_string(doc, "request", request_kind_name(r.kind));
			assert_json_verdict(doc, "", &vd);
		}
		/* the request's own lag limits too: a lagging replica under a looser limit is up */
		{
			struct request r = req(REQUEST_REPLICA);
			struct verdict vd;

			r.has_max_lag_bytes = true;
			r.max_lag_bytes = 64 * MB;
			r.has_max_lag_s = true;
			r.max_lag_s = 30;
			verdict_for(&v, &r, &p, &vd);
			render_json_doc(&v, &p, &r, &c, buf, sizeof(buf), doc);
			assert_json_verdict(doc, "", &vd);
			if (i == 3)
				assert_true(vd.up);
		}
	}
	free(doc);
}

static void
test_json_status_has_every_verdict_and_the_counters(void **state)
{
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];

	(void)state;
	assert_non_null(doc);
	for (int i = 0; i < VIEW_COUNT; i++) {
		struct node_view v = view_number(i);

		v.role_changes = 4;
		render_json_doc(&v, &p, NULL, &c, buf, sizeof(buf), doc);
		(void)json_must(doc, "verdicts", 'o');
		for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
			struct request r = req((enum request_kind)k);
			struct verdict vd;
			char prefix[64];

			verdict_for(&v, &r, &p, &vd);
			snprintf(prefix, sizeof(prefix), "verdicts.%s", request_kind_name(r.kind));
			(void)json_must(doc, prefix, 'o');
			assert_json_verdict(doc, prefix, &vd);
		}
		(void)json_must(doc, "checks", 'o');
		assert_json_number(doc, "checks.agent", 123456789012.0);
		assert_json_number(doc, "checks.http", 42);
		assert_json_number(doc, "checks.role-port", 7);
		assert_json_number(doc, "checks.admin", 3);
		assert_json_number(doc, "refused", 11);
		assert_json_number(doc, "role_changes", 4);
		/* /status is not one request's answer */
		assert_json_absent(doc, "request");
		assert_json_absent(doc, "up");
		assert_json_absent(doc, "weight");
		assert_json_string(doc, "version", PGCHECKD_VERSION);
	}
	free(doc);
}

static void
test_json_status_counts_up_to_64_bits(void **state)
{
	struct node_view v = primary_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct json_doc *doc = malloc(sizeof(*doc));
	char buf[8192];
	const struct json_value *jv;

	(void)state;
	assert_non_null(doc);
	c.checks[PROTOCOL_HTTP] = UINT64_MAX;
	render_json_doc(&v, &p, NULL, &c, buf, sizeof(buf), doc);
	jv = json_must(doc, "checks.http", 'n');
	assert_int_equal(jv->len, strlen("18446744073709551615"));
	assert_memory_equal(jv->text, "18446744073709551615", jv->len);
	free(doc);
}

static void
test_json_too_small_buffer_is_zero(void **state)
{
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	char big[8192];

	(void)state;
	for (int i = 0; i < VIEW_COUNT; i++) {
		struct node_view v = view_number(i);
		struct request r = req(REQUEST_REPLICA);

		for (int with_request = 0; with_request < 2; with_request++) {
			const struct request *rp = with_request ? &r : NULL;
			size_t need = render_json(&v, &p, rp, &c, big, sizeof(big));

			assert_true(need > 0);
			/* exactly sized heap buffers: ASan reports any byte written past len */
			for (size_t len = 0; len <= need; len++) {
				char *buf = malloc(len > 0 ? len : 1);

				assert_non_null(buf);
				if (render_json(&v, &p, rp, &c, buf, len) != 0)
					fail_msg(
					    "%s: render_json into %zu bytes (needs %zu and a NUL) did not return 0",
					    view_names[i], len, need);
				free(buf);
			}
			{
				char *buf = malloc(need + 1);

				assert_non_null(buf);
				assert_int_equal(render_json(&v, &p, rp, &c, buf, need + 1), need);
				assert_string_equal(buf, big);
				free(buf);
			}
		}
	}
}

/* render_metrics */

static const char *const readme_metric_names[] = {
    "pgcheckd_up",
    "pgcheckd_weight_percent",
    "pgcheckd_role",
    "pgcheckd_sample_fresh",
    "pgcheckd_sample_age_seconds",
    "pgcheckd_poll_duration_seconds",
    "pgcheckd_timeline",
    "pgcheckd_lag_bytes",
    "pgcheckd_lag_seconds",
    "pgcheckd_client_backends",
    "pgcheckd_streaming_replicas",
    "pgcheckd_polls_total",
    "pgcheckd_checks_total",
    "pgcheckd_clients_refused_total",
    "pgcheckd_role_changes_total",
    "pgcheckd_override",
    "pgcheckd_info",
};

static void
test_metrics_are_valid_exposition_text(void **state)
{
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	for (int i = 0; i < VIEW_COUNT; i++) {
		struct node_view v = view_number(i);

		print_message("%s\n", view_names[i]);
		render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
		/* counters are counters, the rest gauges */
		for (int f = 0; f < doc->nfamilies; f++) {
			size_t fl = strlen(doc->family[f]);
			bool total = fl > 6 && strcmp(doc->family[f] + fl - 6, "_total") == 0;

			if (strcmp(doc->type[f], total ? "counter" : "gauge") != 0)
				fail_msg("%s is a %s", doc->family[f], doc->type[f]);
		}
	}
	free(doc);
}

static void
test_metrics_has_every_name_in_the_readme(void **state)
{
	static const int views[] = {1, 2, 3};
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		struct node_view v = view_number(views[i]);

		render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
		for (size_t m = 0; m < sizeof(readme_metric_names) / sizeof(readme_metric_names[0]); m++)
			if (!prom_has_name(doc, readme_metric_names[m]))
				fail_msg("%s: /metrics has no %s", view_names[views[i]], readme_metric_names[m]);
	}
	free(doc);
}

static void
test_metrics_without_a_sample_still_answer(void **state)
{
	static const char *const always[] = {
	    "pgcheckd_up",
	    "pgcheckd_weight_percent",
	    "pgcheckd_role",
	    "pgcheckd_sample_fresh",
	    "pgcheckd_polls_total",
	    "pgcheckd_checks_total",
	    "pgcheckd_clients_refused_total",
	    "pgcheckd_role_changes_total",
	    "pgcheckd_override",
	    "pgcheckd_info",
	};
	struct node_view v = no_sample_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	for (size_t m = 0; m < sizeof(always) / sizeof(always[0]); m++)
		if (!prom_has_name(doc, always[m]))
			fail_msg("/metrics without a sample has no %s", always[m]);
	assert_prom_value(doc, "pgcheckd_sample_fresh", 0);
	assert_prom_value(doc, "pgcheckd_role{role=\"primary\"}", 0);
	assert_prom_value(doc, "pgcheckd_role{role=\"replica\"}", 0);
	for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
		char series[96];

		snprintf(series, sizeof(series), "pgcheckd_up{request=\"%s\"}",
		         request_kind_name((enum request_kind)k));
		assert_prom_value(doc, series, 0);
	}
	free(doc);
}

static void
test_metrics_count_rejected_peer_answers_by_reason(void **state)
{
	struct node_view v = primary_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	v.peers.rejected[PEERS_REJECT_NO_MAC] = 3;
	v.peers.rejected[PEERS_REJECT_NONCE_MISMATCH] = 7;
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	assert_prom_value(doc, "pgcheckd_peer_answers_rejected_total{reason=\"no-mac\"}", 3);
	assert_prom_value(doc, "pgcheckd_peer_answers_rejected_total{reason=\"bad-mac\"}", 0);
	assert_prom_value(doc, "pgcheckd_peer_answers_rejected_total{reason=\"nonce-mismatch\"}", 7);
	assert_prom_value(doc, "pgcheckd_peer_answers_rejected_total{reason=\"refused\"}", 0);
	assert_prom_value(doc, "pgcheckd_peer_answers_rejected_total{reason=\"malformed\"}", 0);
	assert_null(prom_get(doc, "pgcheckd_peer_answers_rejected_total{reason=\"none\"}"));
	free(doc);
}

static void
test_metrics_fresh_primary_is_up_for_primary(void **state)
{
	struct node_view v = primary_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	assert_prom_value(doc, "pgcheckd_up{request=\"primary\"}", 1);
	assert_prom_value(doc, "pgcheckd_up{request=\"replica\"}", 0);
	assert_prom_value(doc, "pgcheckd_up{request=\"read-only\"}", 1);
	assert_prom_value(doc, "pgcheckd_up{request=\"health\"}", 1);
	assert_prom_value(doc, "pgcheckd_weight_percent{request=\"primary\"}", 100);
	assert_prom_value(doc, "pgcheckd_weight_percent{request=\"replica\"}", 0);
	assert_prom_value(doc, "pgcheckd_role{role=\"primary\"}", 1);
	assert_prom_value(doc, "pgcheckd_role{role=\"replica\"}", 0);
	assert_prom_value(doc, "pgcheckd_sample_fresh", 1);
	assert_prom_value(doc, "pgcheckd_timeline", 3);
	assert_prom_value(doc, "pgcheckd_lag_bytes", 0);
	assert_prom_value(doc, "pgcheckd_streaming_replicas", 2);
	assert_prom_value(doc, "pgcheckd_sample_age_seconds", 0.2);
	assert_prom_value(doc, "pgcheckd_poll_duration_seconds", 0.003);
	assert_prom_value(doc, "pgcheckd_client_backends", 5);
	free(doc);
}

static void
test_metrics_replica_is_not_up_for_primary(void **state)
{
	struct node_view v = lagging_replica_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	v = replica_view();
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	assert_prom_value(doc, "pgcheckd_up{request=\"primary\"}", 0);
	assert_prom_value(doc, "pgcheckd_up{request=\"replica\"}", 1);
	assert_prom_value(doc, "pgcheckd_weight_percent{request=\"replica\"}", 70);
	assert_prom_value(doc, "pgcheckd_role{role=\"primary\"}", 0);
	assert_prom_value(doc, "pgcheckd_role{role=\"replica\"}", 1);

	v = lagging_replica_view();
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	assert_prom_value(doc, "pgcheckd_up{request=\"primary\"}", 0);
	assert_prom_value(doc, "pgcheckd_up{request=\"replica\"}", 0);
	assert_prom_value(doc, "pgcheckd_lag_bytes", (double)(35 * MB));
	assert_prom_value(doc, "pgcheckd_lag_seconds", 12.25);
	free(doc);
}

static void
test_metrics_agree_with_verdict_for(void **state)
{
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	for (int i = 0; i < VIEW_COUNT; i++) {
		for (int o = 0; o < 3; o++) {
			struct node_view v = view_number(i);

			v.override = (enum node_override)o;
			render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
			for (int k = 0; k < REQUEST_KIND_COUNT; k++) {
				struct request r = req((enum request_kind)k);
				struct verdict vd;
				char series[96];

				verdict_for(&v, &r, &p, &vd);
				snprintf(series, sizeof(series), "pgcheckd_up{request=\"%s\"}",
				         request_kind_name(r.kind));
				assert_prom_value(doc, series, vd.up ? 1 : 0);
				snprintf(series, sizeof(series), "pgcheckd_weight_percent{request=\"%s\"}",
				         request_kind_name(r.kind));
				assert_prom_value(doc, series, vd.up ? vd.weight_pct : 0);
			}
			assert_prom_value(doc, "pgcheckd_override{override=\"drain\"}", o == OVERRIDE_DRAIN);
			assert_prom_value(doc, "pgcheckd_override{override=\"maint\"}", o == OVERRIDE_MAINT);
		}
	}
	free(doc);
}

static void
test_metrics_counters_reflect_the_inputs(void **state)
{
	struct node_view v = replica_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384], series[96];

	(void)state;
	assert_non_null(doc);
	for (int k = 0; k < POLL_RESULT_COUNT; k++)
		v.polls[k] = 1000 + 7 * (uint64_t)k;
	v.polls[POLL_OK] = 1ULL << 40;
	v.role_changes = 5;
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	for (int k = 0; k < POLL_RESULT_COUNT; k++) {
		snprintf(series, sizeof(series), "pgcheckd_polls_total{result=\"%s\"}",
		         poll_result_name((enum poll_result)k));
		assert_prom_value(doc, series, (double)v.polls[k]);
	}
	for (int k = 0; k < PROTOCOL_COUNT; k++) {
		snprintf(series, sizeof(series), "pgcheckd_checks_total{protocol=\"%s\"}", render_protocol_names[k]);
		assert_prom_value(doc, series, (double)c.checks[k]);
	}
	assert_prom_value(doc, "pgcheckd_checks_total{protocol=\"agent\"}", 123456789012.0);
	assert_prom_value(doc, "pgcheckd_checks_total{protocol=\"role-port\"}", 7);
	assert_prom_value(doc, "pgcheckd_clients_refused_total", 11);
	assert_prom_value(doc, "pgcheckd_role_changes_total", 5);
	/* exactly one series per poll outcome and per protocol */
	{
		int polls = 0, checks = 0;

		for (int i = 0; i < doc->n; i++) {
			polls += strcmp(doc->s[i].name, "pgcheckd_polls_total") == 0;
			checks += strcmp(doc->s[i].name, "pgcheckd_checks_total") == 0;
		}
		assert_int_equal(polls, POLL_RESULT_COUNT);
		assert_int_equal(checks, PROTOCOL_COUNT);
	}
	free(doc);
}

static void
test_metrics_info_carries_the_version(void **state)
{
	struct node_view v = primary_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	assert_prom_value(doc, "pgcheckd_info{version=\"" PGCHECKD_VERSION "\"}", 1);
	free(doc);
}

static void
test_metrics_failing_node_is_not_fresh(void **state)
{
	struct node_view v = failing_view();
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	struct prom_doc *doc = malloc(sizeof(*doc));
	char buf[16384];

	(void)state;
	assert_non_null(doc);
	render_metrics_doc(&v, &p, &c, buf, sizeof(buf), doc);
	assert_prom_value(doc, "pgcheckd_sample_fresh", 0);
	assert_prom_value(doc, "pgcheckd_up{request=\"health\"}", 0);
	assert_prom_value(doc, "pgcheckd_sample_age_seconds", 0.9);
	free(doc);
}

static void
test_metrics_too_small_buffer_is_zero(void **state)
{
	struct policy p = test_policy();
	struct render_counters c = test_counters();
	char big[16384];

	(void)state;
	for (int i = 0; i < VIEW_COUNT; i++) {
		struct node_view v = view_number(i);
		size_t need = render_metrics(&v, &p, &c, big, sizeof(big));

		assert_true(need > 0);
		for (size_t len = 0; len <= need; len++) {
			char *buf = malloc(len > 0 ? len : 1);

			assert_non_null(buf);
			if (render_metrics(&v, &p, &c, buf, len) != 0)
				fail_msg("%s: render_metrics into %zu bytes (needs %zu and a NUL) did not return 0",
				         view_names[i], len, need);
			free(buf);
		}
		{
			char *buf = malloc(need + 1);

			assert_non_null(buf);
			assert_int_equal(render_metrics(&v, &p, &c, buf, need + 1), need);
			assert_string_equal(buf, big);
			free(buf);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_checker_refuses_broken_json),
	    cmocka_unit_test(test_metrics_checker_refuses_broken_text),
	    cmocka_unit_test(test_json_without_a_sample),
	    cmocka_unit_test(test_json_for_a_primary),
	    cmocka_unit_test(test_json_for_a_replica_with_lag),
	    cmocka_unit_test(test_json_lag_seconds_unknown_is_null),
	    cmocka_unit_test(test_json_for_a_failing_node),
	    cmocka_unit_test(test_json_overrides),
	    cmocka_unit_test(test_json_for_one_request_matches_verdict_for),
	    cmocka_unit_test(test_json_status_has_every_verdict_and_the_counters),
	    cmocka_unit_test(test_json_status_counts_up_to_64_bits),
	    cmocka_unit_test(test_json_too_small_buffer_is_zero),
	    cmocka_unit_test(test_metrics_are_valid_exposition_text),
	    cmocka_unit_test(test_metrics_has_every_name_in_the_readme),
	    cmocka_unit_test(test_metrics_without_a_sample_still_answer),
	    cmocka_unit_test(test_metrics_fresh_primary_is_up_for_primary),
	    cmocka_unit_test(test_metrics_replica_is_not_up_for_primary),
	    cmocka_unit_test(test_metrics_agree_with_verdict_for),
	    cmocka_unit_test(test_metrics_counters_reflect_the_inputs),
	    cmocka_unit_test(test_metrics_info_carries_the_version),
	    cmocka_unit_test(test_metrics_failing_node_is_not_fresh),
	    cmocka_unit_test(test_metrics_too_small_buffer_is_zero),
	    cmocka_unit_test(test_metrics_count_rejected_peer_answers_by_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
