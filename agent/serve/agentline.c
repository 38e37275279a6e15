/*
 * agentline.c: the agent line protocol. A request is one short line of words; the reply is always
 * one complete line, "up N%" or "down #reason", because HAProxy applies each word on its own and a
 * partial reply would leave stale state. It never emits "ready", "maint" or "drain". Only the answer
 * to a whole request line starts with "up": anything answered without one reads "N% up".
 */
#include "agentline.h"

#include <stdio.h>
#include <string.h>

static bool
agentline_is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

enum agentline_parse
agentline_parse(const char *buf, size_t len, struct request *out)
{
	size_t end = len, i = 0;
	bool have_kind = false;

	memset(out, 0, sizeof(*out));
	if (len > AGENTLINE_MAX)
		return AGENTLINE_BAD;
	/* the line ends at the first "\n"; nothing may follow it */
	for (size_t j = 0; j < len; j++) {
		if (buf[j] == '\n') {
			if (j + 1 != len)
				return AGENTLINE_BAD;
			end = j;
			break;
		}
	}
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	for (size_t j = 0; j < end; j++)
		if ((unsigned char)buf[j] < 0x20 && buf[j] != '\t')
			return AGENTLINE_BAD;
		else if ((unsigned char)buf[j] >= 0x7f)
			return AGENTLINE_BAD;
	while (i < end) {
		size_t start, wlen;
		const char *eq;

		while (i < end && agentline_is_sep(buf[i]))
			i++;
		if (i == end)
			break;
		start = i;
		while (i < end && !agentline_is_sep(buf[i]))
			i++;
		wlen = i - start;
		if (!have_kind) {
			if (!request_kind_parse(buf + start, wlen, &out->kind))
				return AGENTLINE_BAD;
			have_kind = true;
			continue;
		}
		eq = memchr(buf + start, '=', wlen);
		if (eq == NULL)
			return AGENTLINE_BAD;
		if (!request_param_apply(out, buf + start, (size_t)(eq - (buf + start)), eq + 1,
		                         wlen - (size_t)(eq - (buf + start)) - 1))
			return AGENTLINE_BAD;
	}
	return have_kind ? AGENTLINE_OK : AGENTLINE_EMPTY;
}

static size_t
agentline_render_form(const struct verdict *v, bool weight_first, char *buf, size_t len)
{
	int n;

	if (v->up) {
		n = weight_first ? snprintf(buf, len, "%d%% up\n", v->weight_pct)
		                 : snprintf(buf, len, "up %d%%\n", v->weight_pct);
	} else {
		n = snprintf(buf, len, "down #%s\n", v->reason[0] != '\0' ? v->reason : "down");
		/* one line, whatever a reason holds: HAProxy reads only up to the first CR or LF */
		for (int i = 0; n > 0 && i < n - 1 && (size_t)i < len; i++)
			if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
				buf[i] = '_';
	}
	if (n < 0 || (size_t)n >= len) {
		/* cannot happen with the sizes used: still one complete line, or nothing at all */
		n = snprintf(buf, len, "down\n");
		if (n < 0 || (size_t)n >= len) {
			if (len > 0)
				buf[0] = '\0';
			return 0;
		}
	}
	return (size_t)n;
}

size_t
agentline_render(const struct verdict *v, char *buf, size_t len)
{
	return agentline_render_form(v, false, buf, len);
}

size_t
agentline_render_unasked(const struct verdict *v, char *buf, size_t len)
{
	return agentline_render_form(v, true, buf, len);
}
