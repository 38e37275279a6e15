/*
 * monoclock.h: the one clock every age and deadline is measured with (monotonic, milliseconds).
 */
#ifndef PGCHECKD_MONOCLOCK_H
#define PGCHECKD_MONOCLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
monoclock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
