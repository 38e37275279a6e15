/*
 * conf_values.c: the config's pure vocabulary: the names of its enumerations and the reading and
 * writing of byte sizes. The core (agent/core) uses these; they need no file, socket or libpq, so the
 * core links them alone in its unit tests (`make core-unit`).
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const conf_request_names[] = {"primary", "replica", "read-only", "health", "sync", "async", "quorum", NULL};
const char *const conf_over_lag_names[] = {"down", "drain", "keep-best", NULL};
const char *const conf_log_level_names[] = {"error", "warning", "info", "debug", NULL};
const char *const conf_verify_names[] = {"none", "required", NULL};
const char *const conf_dcs_mode_names[] = {"off", "patroni", "lease", NULL};

int
conf_enum_index(const char *const *names, const char *word)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcasecmp(names[i], word) == 0)
			return i;
	return -1;
}

bool
conf_parse_bytes(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		int shift;
	} units[] = {{"", 0},     {"B", 0},    {"kB", 10},  {"KB", 10},  {"k", 10},  {"K", 10},
	             {"MB", 20},  {"M", 20},   {"GB", 30},  {"G", 30},   {"TB", 40}, {"T", 40},
	             {"kiB", 10}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > ((unsigned long long)INT64_MAX >> units[i].shift))
			return false;
		*out = (int64_t)(v << units[i].shift);
		return true;
	}
	return false;
}

void
conf_format_bytes(int64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
	int u = 0;

	if (bytes == 0) {
		snprintf(buf, len, "0");
		return;
	}
	while (u < 4 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRId64, bytes);
	else
		snprintf(buf, len, "%" PRId64 "%s", bytes, units[u]);
}

static bool
conf_label_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '.' || ch == ':' || ch == '-';
}

bool
conf_label_ok(const char *label, size_t len)
{
	const char *eq = memchr(label, '=', len);

	if (eq == NULL || eq == label || eq == label + len - 1 || len >= CONF_LABEL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (label + i != eq && !conf_label_char(label[i]))
			return false;
	return true;
}

/* conf_label_next finds the next label of a list at *cursor: its start and length; false at the end. */
static bool
conf_label_next(const char **cursor, const char **label, size_t *len)
{
	const char *p = *cursor;

	while (*p == ',' || *p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return false;
	*label = p;
	while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
		p++;
	*len = (size_t)(p - *label);
	*cursor = p;
	return true;
}

bool
conf_labels_ok(const char *list, const char **bad, size_t *badlen)
{
	const char *label;
	size_t len;

	while (conf_label_next(&list, &label, &len)) {
		if (!conf_label_ok(label, len)) {
			*bad = label;
			*badlen = len;
			return false;
		}
	}
	return true;
}

bool
conf_labels_have(const char *list, const char *want, size_t wantlen)
{
	const char *label;
	size_t len;

	while (conf_label_next(&list, &label, &len))
		if (len == wantlen && memcmp(label, want, len) == 0)
			return true;
	return false;
}
