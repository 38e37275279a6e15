/*
 * log.c: levelled logging to stderr (journald adds time and unit) or syslog.
 * Connection strings go through log_conninfo_safe() so a password is never written.
 */
#include "log.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;
static bool log_to_syslog;

void
log_setup(enum log_level level, bool use_syslog)
{
	if (use_syslog && !log_to_syslog)
		openlog("pgcheckd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!use_syslog && log_to_syslog)
		closelog();
	log_threshold = level;
	log_to_syslog = use_syslog;
}

static void
log_write(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	static const int priorities[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char msg[1024];

	if (level > log_threshold)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_to_syslog) {
		syslog(priorities[level], "%s", msg);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ pgcheckd %s: %s\n", when, ts.tv_nsec / 1000000, names[level], msg);
	}
}

#define LOG_FN(fn, level)                                                                                              \
	void fn(const char *fmt, ...)                                                                                  \
	{                                                                                                              \
		va_list ap;                                                                                            \
		va_start(ap, fmt);                                                                                     \
		log_write(level, fmt, ap);                                                                             \
		va_end(ap);                                                                                            \
	}

LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warning, LOG_LEVEL_WARNING)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

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
