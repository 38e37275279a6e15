/*
 * log.h: levelled logging to stderr or syslog. Transitions are logged, checks never at info.
 */
#ifndef PGCHECKD_LOG_H
#define PGCHECKD_LOG_H

#include <stdbool.h>

#include "conf.h"

void log_setup(enum log_level level, bool use_syslog);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* log_conninfo_safe copies a connection string with any password's value replaced by "***". */
void log_conninfo_safe(const char *conninfo, char *buf, size_t len);

#endif
