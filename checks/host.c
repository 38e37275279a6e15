/*
 * host.c: host load for the weight policy, from /proc/loadavg and the CPU affinity mask.
 * Cheap reads only; never touches PostgreSQL.
 */
#include "host.h"

#include <sched.h>
#include <stdio.h>
#include <unistd.h>

bool
host_load1(double *load1)
{
	FILE *f = fopen("/proc/loadavg", "re");
	bool ok;

	*load1 = 0;
	if (f == NULL)
		return false;
	ok = fscanf(f, "%lf", load1) == 1;
	fclose(f);
	if (!ok)
		*load1 = 0;
	return ok;
}

int
host_ncpu(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}
