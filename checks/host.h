/*
 * host.h: host load from /proc, read by the poller alongside each sample.
 * Never blocks on anything but a procfs read.
 */
#ifndef PGCHECKD_HOST_H
#define PGCHECKD_HOST_H

#include <stdbool.h>

/* host_load1 reads the 1-minute load average; false (and *load1 = 0) when /proc is unreadable. */
bool host_load1(double *load1);

/* host_ncpu is the number of CPUs this process may run on (at least 1). */
int host_ncpu(void);

#endif
