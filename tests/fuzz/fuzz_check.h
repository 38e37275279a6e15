/*
 * fuzz_check.h: what the harnesses share. FUZZ_CHECK aborts with the broken invariant, which libFuzzer
 * reports as a crash with the input that broke it; it is on in every build (no NDEBUG to turn it off).
 */
#ifndef PGCHECKD_FUZZ_CHECK_H
#define PGCHECKD_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                                               \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);                   \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

#endif
