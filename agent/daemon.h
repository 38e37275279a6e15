/*
 * daemon.h: the running agent (daemon.c): everything started from one configuration, on one loop.
 */
#ifndef PGCHECKD_DAEMON_H
#define PGCHECKD_DAEMON_H

#include "conf.h"

#ifndef PGCHECKD_VERSION
#define PGCHECKD_VERSION "0.1.0"
#endif

#define DAEMON_EXIT_START_FAILED 1 /* a port cannot be bound, the loop cannot start */
#define DAEMON_EXIT_CONFIG       2 /* a configuration that loads but cannot be used (a TLS certificate) */

/*
 * daemon_run starts the agent from c (loaded from conf_path, which SIGHUP reads again), runs until a
 * signal ends it and stops every part; returns the exit code (0 after a signal).
 */
int daemon_run(const char *conf_path, const struct conf *c);

#endif
