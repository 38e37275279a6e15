/*
 * test_weight.c: the weight policy's math at its edges (ramp, load, lag, smoothing, steps).
 * Pure functions only: no node, no clock, no sockets.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sample.h"
#include "weight.h"

#define MB  (1024LL * 1024LL)
#define EPS 1e-9

/* cmocka 1.1 has no assert_double_equal */
#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), #a, __FILE__, __LINE__)

static void
assert_near_at(double a, double b, double eps, const char *expr, const char *file, int line)
{
	if (!(fabs(a - b) <= eps)) {
		print_error("%s = %.12g, expected %.12g (within %g)\n", expr, a, b, eps);
		_fail(file, line);
	}
}

static struct weight_policy
default_policy(void)
{
	struct weight_policy wp;

	memset(&wp, 0, sizeof(wp));
	wp.floor_pct = 10;
	wp.step_pct = 10;
	wp.smoothing_ms = 2000;
	wp.lag_soft_bytes = 1 * MB;
	wp.max_lag_bytes = 16 * MB;
	wp.lag_soft_s = 1.0;
	wp.max_lag_s = 10.0;
	wp.load_low_per_cpu = 0.5;
	wp.load_high_per_cpu = 2.0;
	return wp;
}

/* An idle replica: no lag, nothing running but pgcheckd, an idle host. */
static struct sample
idle_sample(void)
{
	struct sample s;

	memset(&s, 0, sizeof(s));
	s.in_recovery = true;
	s.receiver_streaming = true;
	s.have_lag_s = true;
	s.lag_s = 0.0;
	s.lag_bytes = 0;
	s.client_backends = 1;
	s.active_backends = 0;
	s.max_connections = 100;
	s.reserved_connections = 3;
	s.load1 = 0.0;
	s.ncpu = 4;
	return s;
}

/* weight_ramp */

static void
test_ramp_below_soft_is_one(void **state)
{
	(void)state;
	assert_near(weight_ramp(0.0, 10.0, 20.0), 1.0, EPS);
	assert_near(weight_ramp(-5.0, 10.0, 20.0), 1.0, EPS);
}

static void
test_ramp_at_soft_is_one(void **state)
{
	(void)state;
	assert_near(weight_ramp(10.0, 10.0, 20.0), 1.0, EPS);
}

static void
test_ramp_at_or_over_hard_is_zero(void **state)
{
	(void)state;
	assert_near(weight_ramp(20.0, 10.0, 20.0), 0.0, EPS);
	assert_near(weight_ramp(1e12, 10.0, 20.0), 0.0, EPS);
}

static void
test_ramp_midpoint_is_half(void **state)
{
	(void)state;
	assert_near(weight_ramp(15.0, 10.0, 20.0), 0.5, EPS);
	assert_near(weight_ramp(12.5, 10.0, 20.0), 0.75, EPS);
}

static void
test_ramp_without_hard_limit_is_one(void **state)
{
	(void)state;
	assert_near(weight_ramp(1e12, 10.0, 0.0), 1.0, EPS);
	assert_near(weight_ramp(1e12, 0.0, 0.0), 1.0, EPS);
	assert_near(weight_ramp(1e12, 10.0, -1.0), 1.0, EPS);
}

static void
test_ramp_with_hard_equal_soft_is_a_step(void **state)
{
	(void)state;
	assert_near(weight_ramp(9.999, 10.0, 10.0), 1.0, EPS);
	assert_near(weight_ramp(10.001, 10.0, 10.0), 0.0, EPS);
	assert_near(weight_ramp(100.0, 10.0, 10.0), 0.0, EPS);
	/* and never a NaN at the limit itself */
	double at = weight_ramp(10.0, 10.0, 10.0);
	assert_false(isnan(at));
	assert_true(at == 0.0 || at == 1.0);
}

/* weight_load_factor */

static void
test_load_factor_idle_is_one(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	assert_near(weight_load_factor(&s, &wp), 1.0, EPS);
}

static void
test_load_factor_under_low_load_per_cpu_is_one(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	s.load1 = 0.5 * s.ncpu; /* exactly load_low_per_cpu */
	assert_near(weight_load_factor(&s, &wp), 1.0, EPS);
}

static void
test_load_factor_at_high_load_per_cpu_is_zero(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	s.load1 = wp.load_high_per_cpu * s.ncpu;
	assert_near(weight_load_factor(&s, &wp), 0.0, EPS);
	s.load1 = 10.0 * wp.load_high_per_cpu * s.ncpu;
	assert_near(weight_load_factor(&s, &wp), 0.0, EPS);
}

static void
test_load_factor_between_low_and_high_load_is_linear(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	/* per cpu 1.25: halfway between 0.5 and 2.0 */
	s.load1 = 1.25 * s.ncpu;
	assert_near(weight_load_factor(&s, &wp), 0.5, 1e-6);
}

static void
test_load_factor_with_every_usable_connection_active_is_zero(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	s.active_backends = s.max_connections - s.reserved_connections;
	s.client_backends = s.active_backends;
	assert_near(weight_load_factor(&s, &wp), 0.0, EPS);
}

static void
test_load_factor_stays_within_zero_and_one(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	s.active_backends = 500; /* more than max_connections: a racy sample */
	s.client_backends = 500;
	s.load1 = 1000.0;
	double f = weight_load_factor(&s, &wp);
	assert_false(isnan(f));
	assert_true(f >= 0.0 && f <= 1.0);
}

/* weight_lag_factor */

static void
test_lag_factor_without_lag_is_one(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	assert_near(weight_lag_factor(&s, &wp), 1.0, EPS);
}

static void
test_lag_factor_bytes_midpoint_is_half(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	wp.lag_soft_bytes = 0;
	s.lag_bytes = 8 * MB; /* halfway to 16MB */
	assert_near(weight_lag_factor(&s, &wp), 0.5, 1e-6);
}

static void
test_lag_factor_seconds_midpoint_is_half(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	s.lag_s = 5.5; /* halfway between 1 and 10 */
	assert_near(weight_lag_factor(&s, &wp), 0.5, 1e-6);
}

static void
test_lag_factor_is_min_of_bytes_and_seconds(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	wp.lag_soft_bytes = 0;
	s.lag_bytes = 4 * MB; /* bytes ramp 0.75 */
	s.lag_s = 5.5;        /* seconds ramp 0.5 */
	assert_near(weight_lag_factor(&s, &wp), 0.5, 1e-6);

	s.lag_bytes = 12 * MB; /* bytes ramp 0.25 */
	assert_near(weight_lag_factor(&s, &wp), 0.25, 1e-6);
}

static void
test_lag_factor_over_hard_limit_is_zero(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	s.lag_bytes = 32 * MB;
	assert_near(weight_lag_factor(&s, &wp), 0.0, EPS);
	s.lag_bytes = 0;
	s.lag_s = 11.0;
	assert_near(weight_lag_factor(&s, &wp), 0.0, EPS);
}

static void
test_lag_factor_ignores_seconds_when_unknown(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	s.have_lag_s = false;
	s.lag_s = 1e6;
	assert_near(weight_lag_factor(&s, &wp), 1.0, EPS);
}

static void
test_lag_factor_with_limits_disabled_is_one(void **state)
{
	struct weight_policy wp = default_policy();
	struct sample s = idle_sample();

	(void)state;
	wp.max_lag_bytes = 0;
	wp.max_lag_s = 0.0;
	s.lag_bytes = 1024 * MB;
	s.lag_s = 1e5;
	assert_near(weight_lag_factor(&s, &wp), 1.0, EPS);
}

/* weight_smooth */

static void
test_smooth_without_time_keeps_prev(void **state)
{
	(void)state;
	assert_near(weight_smooth(40.0, 100.0, 0, 2000), 40.0, EPS);
}

static void
test_smooth_without_time_constant_jumps_to_target(void **state)
{
	(void)state;
	assert_near(weight_smooth(40.0, 100.0, 200, 0), 100.0, EPS);
	assert_near(weight_smooth(40.0, 100.0, 0, 0), 100.0, EPS);
}

static void
test_smooth_after_one_time_constant_covers_one_minus_inverse_e(void **state)
{
	(void)state;
	double expect_up = 40.0 + (100.0 - 40.0) * (1.0 - exp(-1.0));
	assert_near(weight_smooth(40.0, 100.0, 2000, 2000), expect_up, EPS);
	double expect_down = 100.0 + (10.0 - 100.0) * (1.0 - exp(-1.0));
	assert_near(weight_smooth(100.0, 10.0, 500, 500), expect_down, EPS);
}

static void
test_smooth_converges_after_long_time(void **state)
{
	(void)state;
	assert_near(weight_smooth(40.0, 100.0, 2000 * 50, 2000), 100.0, 1e-9);
}

static void
test_smooth_at_target_stays(void **state)
{
	(void)state;
	assert_near(weight_smooth(70.0, 70.0, 123, 2000), 70.0, EPS);
}

/* weight_step */

static void
test_step_rounds_to_nearest_step(void **state)
{
	(void)state;
	assert_int_equal(weight_step(73.0, -1, 10, 10), 70);
	assert_int_equal(weight_step(76.0, -1, 10, 10), 80);
	assert_int_equal(weight_step(44.9, -1, 10, 10), 40);
	assert_int_equal(weight_step(63.0, -1, 5, 5), 65);
	assert_int_equal(weight_step(61.0, -1, 5, 5), 60);
}

static void
test_step_clamps_to_floor(void **state)
{
	(void)state;
	assert_int_equal(weight_step(0.0, -1, 10, 10), 10);
	assert_int_equal(weight_step(3.0, -1, 10, 10), 10);
	assert_int_equal(weight_step(-20.0, -1, 10, 10), 10);
	assert_int_equal(weight_step(14.0, -1, 10, 30), 30);
}

static void
test_step_clamps_to_hundred(void **state)
{
	(void)state;
	assert_int_equal(weight_step(100.0, -1, 10, 10), 100);
	assert_int_equal(weight_step(130.0, -1, 10, 10), 100);
	assert_int_equal(weight_step(99.0, -1, 10, 10), 100);
}

static void
test_step_keeps_prev_inside_dead_band(void **state)
{
	(void)state;
	/* 0.6 steps of 10 is 6: 75.9 rounds to 80 but stays at 70 */
	assert_int_equal(weight_step(75.9, 70, 10, 10), 70);
	assert_int_equal(weight_step(64.1, 70, 10, 10), 70);
	assert_int_equal(weight_step(70.0, 70, 10, 10), 70);
}

static void
test_step_moves_outside_dead_band(void **state)
{
	(void)state;
	assert_int_equal(weight_step(76.5, 70, 10, 10), 80);
	assert_int_equal(weight_step(63.5, 70, 10, 10), 60);
	assert_int_equal(weight_step(20.0, 70, 10, 10), 20);
	assert_int_equal(weight_step(100.0, 70, 10, 10), 100);
}

static void
test_step_never_keeps_prev_below_the_floor(void **state)
{
	(void)state;
	/* the floor was raised on reload while the weight sat at the old floor */
	assert_int_equal(weight_step(12.0, 10, 10, 30), 30);
	assert_int_equal(weight_step(10.0, 10, 10, 20), 20);
}

static void
test_step_without_prev_rounds_plainly(void **state)
{
	(void)state;
	/* the same value with prev 70 would stay 70 */
	assert_int_equal(weight_step(75.9, -1, 10, 10), 80);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ramp_below_soft_is_one),
	    cmocka_unit_test(test_ramp_at_soft_is_one),
	    cmocka_unit_test(test_ramp_at_or_over_hard_is_zero),
	    cmocka_unit_test(test_ramp_midpoint_is_half),
	    cmocka_unit_test(test_ramp_without_hard_limit_is_one),
	    cmocka_unit_test(test_ramp_with_hard_equal_soft_is_a_step),
	    cmocka_unit_test(test_load_factor_idle_is_one),
	    cmocka_unit_test(test_load_factor_under_low_load_per_cpu_is_one),
	    cmocka_unit_test(test_load_factor_at_high_load_per_cpu_is_zero),
	    cmocka_unit_test(test_load_factor_between_low_and_high_load_is_linear),
	    cmocka_unit_test(test_load_factor_with_every_usable_connection_active_is_zero),
	    cmocka_unit_test(test_load_factor_stays_within_zero_and_one),
	    cmocka_unit_test(test_lag_factor_without_lag_is_one),
	    cmocka_unit_test(test_lag_factor_bytes_midpoint_is_half),
	    cmocka_unit_test(test_lag_factor_seconds_midpoint_is_half),
	    cmocka_unit_test(test_lag_factor_is_min_of_bytes_and_seconds),
	    cmocka_unit_test(test_lag_factor_over_hard_limit_is_zero),
	    cmocka_unit_test(test_lag_factor_ignores_seconds_when_unknown),
	    cmocka_unit_test(test_lag_factor_with_limits_disabled_is_one),
	    cmocka_unit_test(test_smooth_without_time_keeps_prev),
	    cmocka_unit_test(test_smooth_without_time_constant_jumps_to_target),
	    cmocka_unit_test(test_smooth_after_one_time_constant_covers_one_minus_inverse_e),
	    cmocka_unit_test(test_smooth_converges_after_long_time),
	    cmocka_unit_test(test_smooth_at_target_stays),
	    cmocka_unit_test(test_step_rounds_to_nearest_step),
	    cmocka_unit_test(test_step_clamps_to_floor),
	    cmocka_unit_test(test_step_clamps_to_hundred),
	    cmocka_unit_test(test_step_keeps_prev_inside_dead_band),
	    cmocka_unit_test(test_step_moves_outside_dead_band),
	    cmocka_unit_test(test_step_never_keeps_prev_below_the_floor),
	    cmocka_unit_test(test_step_without_prev_rounds_plainly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
