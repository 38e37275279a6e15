/*
 * weight.c: the weight policy as pure functions of a sample and the settings.
 *   weight = 100% x load factor x lag factor, smoothed (EWMA), stepped, floored.
 *   load factor = (1 - active backends / usable connections) x ramp(load per CPU, low, high)
 *   lag factor  = min(ramp(lag bytes, soft, max), ramp(lag seconds, soft, max))
 * No clock, no I/O: the caller passes elapsed time in.
 */
#include "weight.h"

#include <math.h>

double
weight_ramp(double x, double soft, double hard)
{
	if (hard <= 0)
		return 1.0;
	if (x >= hard)
		return 0.0;
	if (x <= soft || hard <= soft)
		return 1.0;
	return (hard - x) / (hard - soft);
}

double
weight_load_factor(const struct sample *s, const struct weight_policy *wp)
{
	double conn = 1.0, cpu;
	/* pgcheckd's own session takes a slot and is active while it samples: count it in neither */
	int usable = s->max_connections - s->reserved_connections - 1;
	int active = s->active_backends - 1;

	if (usable > 0 && active > 0) {
		conn = 1.0 - (double)active / usable;
		if (conn < 0)
			conn = 0;
	}
	cpu = weight_ramp(s->ncpu > 0 ? s->load1 / s->ncpu : s->load1, wp->load_low_per_cpu, wp->load_high_per_cpu);
	return conn * cpu;
}

double
weight_lag_factor(const struct sample *s, const struct weight_policy *wp)
{
	double bytes = weight_ramp((double)s->lag_bytes, (double)wp->lag_soft_bytes, (double)wp->max_lag_bytes);
	double secs = s->have_lag_s ? weight_ramp(s->lag_s, wp->lag_soft_s, wp->max_lag_s) : 1.0;

	return bytes < secs ? bytes : secs;
}

double
weight_smooth(double prev, double target, int64_t dt_ms, int64_t tau_ms)
{
	if (tau_ms <= 0)
		return target;
	if (dt_ms <= 0)
		return prev;
	return prev + (target - prev) * (1.0 - exp(-(double)dt_ms / (double)tau_ms));
}

int
weight_step(double smoothed_pct, int prev_pct, int step_pct, int floor_pct)
{
	int stepped;

	if (step_pct < 1)
		step_pct = 1;
	if (prev_pct >= floor_pct && prev_pct <= 100 && prev_pct % step_pct == 0 &&
	    fabs(smoothed_pct - prev_pct) < 0.6 * step_pct)
		return prev_pct;
	stepped = (int)lround(smoothed_pct / step_pct) * step_pct;
	if (stepped > 100)
		stepped = 100;
	if (stepped < floor_pct)
		stepped = floor_pct;
	return stepped;
}
