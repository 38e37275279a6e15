/*
 * log.c: levelled logging to stderr (journald adds time and unit) or syslog.
 * Connection strings go through log_conninfo_safe() so a password is never written.
 */
#include "log.h"

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
