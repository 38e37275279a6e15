/*
 * weight.h: the weight policy as pure math. A replica's weight is 100% scaled down by load
 * (active backends against usable connections, host load per CPU) and by lag (a ramp from a soft
 * limit to the hard limit), smoothed over time, rounded to steps with a dead band, never below a floor.
 */
#ifndef PGCHECKD_WEIGHT_H
#define PGCHECKD_WEIGHT_H

#include <stdint.h>

#include "sample.h"

struct weight_policy {
	int floor_pct;
	int step_pct;
	int64_t smoothing_ms;
	int64_t lag_soft_bytes, max_lag_bytes;
	double lag_soft_s, max_lag_s;
	double load_low_per_cpu, load_high_per_cpu;
};

/* weight_ramp is 1 at x <= soft, 0 at x >= hard, linear between; 1 when hard <= 0 (no limit). */
double weight_ramp(double x, double soft, double hard);

/* weight_load_factor is the 0..1 factor from connections in use and host load per CPU. */
double weight_load_factor(const struct sample *s, const struct weight_policy *wp);

/* weight_lag_factor is the 0..1 factor from lag in bytes and seconds. */
double weight_lag_factor(const struct sample *s, const struct weight_policy *wp);

/* weight_smooth moves prev toward target with time constant tau_ms over dt_ms (exponential). */
double weight_smooth(double prev, double target, int64_t dt_ms, int64_t tau_ms);

/*
 * weight_step rounds a smoothed percentage to a multiple of step_pct within [floor_pct, 100],
 * keeping prev_pct while the value stays within 0.6 steps of it (so noise at a boundary is not news).
 * prev_pct < 0 means no previous value.
 */
int weight_step(double smoothed_pct, int prev_pct, int step_pct, int floor_pct);

#endif
