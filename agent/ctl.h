/*
 * ctl.h: `pgcheckd ctl status|drain|maint|ready|release` and `pgcheckd check REQUEST`, talking to the
 * running agent over its admin socket. Runs in its own short-lived process, never in the daemon.
 */
#ifndef PGCHECKD_CTL_H
#define PGCHECKD_CTL_H

/* ctl_run's results besides the command's own: the arguments are wrong; no usable answer */
#define CTL_USAGE   (-1)
#define CTL_UNKNOWN 2

/*
 * ctl_run runs argv ("ctl COMMAND" or "check REQUEST ...") against admin_socket, prints the reply and
 * returns the exit code: ctl 0 ok, 1 error; check 0 up, 1 down; CTL_UNKNOWN when the agent cannot be
 * asked or answers neither; CTL_USAGE for arguments it does not take.
 */
int ctl_run(const char *admin_socket, int argc, char **argv);

#endif
