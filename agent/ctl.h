/*
 * ctl.h: `pgcheckd ctl status|drain|maint|ready|release` and `pgcheckd check REQUEST`, talking to the
 * running agent over its admin socket. Runs in its own short-lived process, never in the daemon.
 */
#ifndef PGCHECKD_CTL_H
#define PGCHECKD_CTL_H

/* ctl_run's results besides the command's own: the arguments are wrong; no usable answer */
#include <stdbool.h>

#include "conf.h"

#define CTL_USAGE   (-1)
#define CTL_UNKNOWN 2

/*
 * ctl_run runs argv ("ctl COMMAND" or "check REQUEST ...") against admin_socket, prints the reply and
 * returns the exit code: ctl 0 ok, 1 error; check 0 up, 1 down; CTL_UNKNOWN when the agent cannot be
 * asked or answers neither; CTL_USAGE for arguments it does not take.
 */
int ctl_run(const char *admin_socket, int argc, char **argv);

/* ctl_is_drain_wait: argv is "ctl drain --wait [SECONDS]" */
bool ctl_is_drain_wait(int argc, char **argv);

/*
 * ctl_drain_wait sets this node's drain (as "ctl drain"), then waits in this process, polling every
 * [haproxy] runtime_api, until none sends this node anything (drainwait.h), for SECONDS (default
 * DRAINWAIT_DEFAULT_S). 0 drained; 1 not drained (deadline, an HAProxy unreachable, the agent not
 * reached); CTL_USAGE for a bad SECONDS.
 */
int ctl_drain_wait(const struct conf *c, int argc, char **argv);

#endif
