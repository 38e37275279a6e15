/*
 * admin.h: the admin protocol, one command line per connection on the admin socket (what
 * `pgcheckd ctl` and `pgcheckd check` send): status, drain, maint, ready, release, check REQUEST.
 * Parsing only; main.c carries a command out.
 */
#ifndef PGCHECKD_ADMIN_H
#define PGCHECKD_ADMIN_H

#include <stdbool.h>

#include "request.h"
#include "verdict.h"

enum admin_command {
	ADMIN_STATUS,
	ADMIN_DRAIN,
	ADMIN_MAINT,
	ADMIN_READY,
	ADMIN_RELEASE,
	ADMIN_CLUSTER,      /* "cluster": the table of this node and its peers */
	ADMIN_CLUSTER_JSON, /* "cluster json": the same as /cluster */
	ADMIN_CHECK,        /* "check REQUEST": r holds the request */
	ADMIN_BAD_CHECK,    /* "check" with a request that does not parse */
	ADMIN_UNKNOWN,
};

/* The list every "unknown command" answer and the usage give. */
#define ADMIN_COMMANDS "status, drain, maint, ready, release, cluster [json], check REQUEST"

/* admin_parse reads one command line (without its newline); for ADMIN_CHECK, r is the request. */
enum admin_command admin_parse(const char *line, struct request *r);

/* admin_is_ctl_word tells whether word is one of the commands `pgcheckd ctl` sends (not check). */
bool admin_is_ctl_word(const char *word);

/* admin_override is the operator override a drain, maint or ready command sets. */
enum node_override admin_override(enum admin_command cmd);

#endif
