/*
 * log_conninfo.c: a connection string made fit for a log line: libpq reads it, and any password's value
 * is replaced by "***". Apart from log.c, so what logs without a connection string needs no libpq.
 */
#include "log.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

/* log_conninfo_quote appends keyword=value to buf, quoting the value as libpq reads it back when it must. */
static size_t
log_conninfo_quote(const char *keyword, const char *val, char *buf, size_t len)
{
	size_t n = strlen(buf);

	if (n + 1 >= len)
		return n;
	if (val[0] != '\0' && strpbrk(val, " \t'\\") == NULL) {
		n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", n > 0 ? " " : "", keyword, val);
		return n < len ? n : len - 1;
	}
	n += (size_t)snprintf(buf + n, len - n, "%s%s='", n > 0 ? " " : "", keyword);
	for (const char *v = val; *v != '\0' && n + 3 < len; v++) {
		if (*v == '\'' || *v == '\\')
			buf[n++] = '\\';
		buf[n++] = *v;
	}
	if (n + 1 < len)
		buf[n++] = '\'';
	if (n >= len)
		n = len - 1;
	buf[n] = '\0';
	return n;
}

void
log_conninfo_safe(const char *conninfo, char *buf, size_t len)
{
	/* libpq parses it, so every form it accepts (key=value with any spacing or quoting, URI with the
	   password in the user info or in the query) is seen as libpq sees it; secret options are left out */
	PQconninfoOption *opts;
	size_t n = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (conninfo[0] != '\0' && strchr(conninfo, '=') == NULL && strncmp(conninfo, "postgresql://", 13) != 0 &&
	    strncmp(conninfo, "postgres://", 11) != 0) {
		/* libpq reads a word without '=' as a database name (expand_dbname), and so does the poller */
		log_conninfo_quote("dbname", conninfo, buf, len);
		return;
	}
	opts = PQconninfoParse(conninfo, NULL);
	if (opts == NULL) {
		snprintf(buf, len, "(a connection string libpq cannot parse)");
		return;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL && n + 1 < len; o++) {
		if (o->val == NULL)
			continue;
		if (o->dispchar != NULL && o->dispchar[0] == '*') {
			n += (size_t)snprintf(buf + n, len - n, "%s%s=***", n > 0 ? " " : "", o->keyword);
			continue;
		}
		n = log_conninfo_quote(o->keyword, o->val, buf, len);
	}
	if (n >= len)
		buf[len - 1] = '\0';
	PQconninfoFree(opts);
}
