/*
 * test_phi.c - the phi-accrual failure detector of common/phi.c with
 * scripted arrival times: regular and jittery heartbeats, silence, the
 * first-heartbeat estimate, reset, the window bound, and phi against the
 * normal distribution it approximates.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/phi.h"

#define START UINT64_C(1000000) /* monotonic ms of the first heartbeat */

/* cmocka's assert_float_equal compares floats; these are doubles. */
#define assert_close(a, b, eps)                                                     \
    do {                                                                            \
        double a_ = (a), b_ = (b);                                                  \
        if (!(fabs(a_ - b_) <= (eps)))                                              \
            fail_msg("%s = %.12g, want %.12g (+/- %g)", #a, a_, b_, (double)(eps)); \
    } while (0)

static struct phi_detector *make(const struct phi_options *opt)
{
    struct phi_detector *d = NULL;
    assert_int_equal(phi_create(&d, opt), ST_OK);
    assert_non_null(d);
    return d;
}

/* `n` heartbeats `interval` ms apart from `start`; returns the last time. */
static uint64_t beat(struct phi_detector *d, uint64_t start, unsigned n, uint64_t interval)
{
    uint64_t t = start;
    for (unsigned i = 0; i < n; i++) {
        phi_heartbeat(d, t);
        t += interval;
    }
    return t - interval;
}

static void test_options(void **state)
{
    (void)state;
    struct phi_options opt;
    phi_options_default(&opt);
    assert_int_equal(opt.window, 1000);
    assert_true(opt.threshold == 8.0);
    assert_true(opt.suspect_threshold == 4.0);
    assert_int_equal(opt.min_std_ms, 100);
    assert_int_equal(opt.acceptable_pause_ms, 3000);
    assert_int_equal(opt.first_interval_ms, 1000);
    assert_int_equal(opt.max_interval_ms, 10000);

    struct phi_detector *d = make(NULL);
    phi_destroy(&d);
    assert_null(d);
    phi_destroy(&d); /* NULL tolerated */
    phi_destroy(NULL);

    static const struct {
        int field;
        double value;
    } bad[] = {
        {0, 0},
        {0, 1},
        {0, PHI_MAX_WINDOW + 1},
        {1, 0},
        {1, -1},
        {1, NAN},
        {1, INFINITY},
        {2, 0},
        {2, 8.5},
        {2, NAN},
        {3, 0},
        {4, 3},
        {5, 1249},
        {5, PHI_MAX_INTERVAL_LIMIT_MS + 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        phi_options_default(&opt);
        switch (bad[i].field) {
        case 0: opt.window = (uint32_t)bad[i].value; break;
        case 1: opt.threshold = bad[i].value; break;
        case 2: opt.suspect_threshold = bad[i].value; break;
        case 3: opt.min_std_ms = (uint32_t)bad[i].value; break;
        case 4: opt.first_interval_ms = (uint32_t)bad[i].value; break;
        case 5: opt.max_interval_ms = (uint32_t)bad[i].value; break;
        }
        d = (struct phi_detector *)&opt; /* must be overwritten with NULL */
        if (phi_create(&d, &opt) != ST_INVAL)
            fail_msg("bad option %zu accepted", i);
        assert_null(d);
    }
    /* Edges that are fine: suspect == threshold (no suspect state), the
     * smallest window, the largest max interval. */
    phi_options_default(&opt);
    opt.suspect_threshold = opt.threshold;
    opt.window = 2;
    opt.max_interval_ms = PHI_MAX_INTERVAL_LIMIT_MS;
    d = make(&opt);
    phi_destroy(&d);
}

static void test_no_heartbeat_yet(void **state)
{
    (void)state;
    struct phi_detector *d = make(NULL);
    assert_false(phi_started(d));
    assert_int_equal(phi_samples(d), 0);
    assert_true(phi_value(d, START) == 0.0);
    assert_true(phi_value(d, START * 1000) == 0.0);
    assert_int_equal(phi_check(d, START * 1000), PHI_UP);
    phi_destroy(&d);
}

static void test_first_heartbeat_estimate(void **state)
{
    (void)state;
    struct phi_detector *d = make(NULL);
    phi_heartbeat(d, START);
    /* One heartbeat: the window holds the two seeds, 750 and 1250 ms. */
    assert_true(phi_started(d));
    assert_int_equal(phi_samples(d), 2);
    assert_true(phi_mean_ms(d) == 1000.0);
    assert_true(phi_std_ms(d) == 250.0);
    /* The next heartbeat a little late is no cause for alarm... */
    assert_true(phi_value(d, START + 1500) < 0.01);
    assert_int_equal(phi_check(d, START + 3000), PHI_UP);
    /* ...but ten seconds of silence are. */
    assert_int_equal(phi_check(d, START + 10000), PHI_DOWN);
    /* A second heartbeat adds one measured interval. */
    phi_heartbeat(d, START + 1000);
    assert_int_equal(phi_samples(d), 3);
    assert_true(phi_mean_ms(d) == 1000.0);
    phi_destroy(&d);
}

static void test_regular_heartbeats(void **state)
{
    (void)state;
    struct phi_detector *d = make(NULL);
    uint64_t last = beat(d, START, 100, 1000);
    assert_int_equal(phi_samples(d), 101);
    assert_true(phi_mean_ms(d) == 1000.0);
    /* The next heartbeat is due: phi is practically 0. */
    assert_true(phi_value(d, last) == 0.0);
    assert_true(phi_value(d, last + 1000) < 1e-6);
    assert_true(phi_value(d, last + 2000) < 1e-6);
    /* At mean + acceptable pause the odds are even: phi = log10(2). */
    assert_close(phi_value(d, last + 4000), log10(2.0), 1e-9);
    assert_int_equal(phi_check(d, last + 4000), PHI_UP);
    phi_destroy(&d);
}

static void test_silence_goes_down(void **state)
{
    (void)state;
    struct phi_detector *d = make(NULL);
    uint64_t last = beat(d, START, 100, 1000);
    assert_int_equal(phi_check(d, last + 10000), PHI_DOWN);

    /* Walk the silence a millisecond at a time: phi never decreases, the
     * state goes up -> suspect -> down once each, at the documented times
     * (docs/CLOCKS.md: about 4.4 s and 4.5 s with these defaults). */
    double prev = 0;
    enum phi_state st = PHI_UP;
    uint64_t suspect_at = 0, down_at = 0;
    for (uint64_t t = last; t <= last + 10000; t++) {
        double phi = phi_value(d, t);
        assert_true(phi >= prev);
        assert_true(isfinite(phi));
        prev = phi;
        enum phi_state now = phi_check(d, t);
        assert_true(now >= st);
        if (now == PHI_SUSPECT && st == PHI_UP)
            suspect_at = t - last;
        if (now == PHI_DOWN && st != PHI_DOWN)
            down_at = t - last;
        st = now;
    }
    assert_int_equal(st, PHI_DOWN);
    assert_in_range(suspect_at, 4300, 4400);
    assert_in_range(down_at, 4450, 4600);

    /* Hours of silence: still a finite number. */
    double phi = phi_value(d, last + (UINT64_C(1) << 40));
    assert_true(isfinite(phi) && phi > 8.0);
    phi_destroy(&d);
}

static void test_back_up_after_outage(void **state)
{
    (void)state;
    struct phi_detector *d = make(NULL);
    uint64_t last = beat(d, START, 999, 1000); /* window full: 2 seeds + 998 */
    assert_int_equal(phi_samples(d), 1000);
    assert_int_equal(phi_check(d, last + 60000), PHI_DOWN);
    /* The peer is back after a minute: up at once, and the minute counts
     * only as max_interval_ms (10 s) in the window. */
    phi_heartbeat(d, last + 60000);
    assert_int_equal(phi_check(d, last + 60000), PHI_UP);
    assert_int_equal(phi_samples(d), 1000);
    double expect_sum = 998 * 1000.0 + 10000 + 1250; /* the 750 seed went */
    assert_close(phi_mean_ms(d), expect_sum / 1000, 1e-9);
    /* Regular heartbeats again: detection time grows only a little. */
    last = beat(d, last + 61000, 10, 1000);
    assert_int_equal(phi_check(d, last + 6000), PHI_DOWN);
    phi_destroy(&d);
}

/* Deterministic jitter (a 64-bit LCG, Knuth's MMIX constants). */
static uint64_t lcg_state = 42;
static uint64_t jitter(uint64_t lo, uint64_t hi)
{
    lcg_state = lcg_state * 6364136223846793005u + 1442695040888963407u;
    return lo + (lcg_state >> 33) % (hi - lo + 1);
}

/* Runs `beats` heartbeats with intervals uniform in [lo, hi] and samples
 * the state every 10 ms in between; returns how often it left "up". */
static unsigned jitter_run(const struct phi_options *opt, unsigned beats, uint64_t lo, uint64_t hi,
                           double *max_phi)
{
    struct phi_detector *d = make(opt);
    uint64_t t = START;
    unsigned left_up = 0;
    *max_phi = 0;
    phi_heartbeat(d, t);
    for (unsigned i = 0; i < beats; i++) {
        uint64_t next = t + jitter(lo, hi);
        for (uint64_t s = t; s < next; s += 10) {
            double phi = phi_value(d, s);
            if (phi > *max_phi)
                *max_phi = phi;
            if (phi_check(d, s) != PHI_UP)
                left_up++;
        }
        /* Just before the late heartbeat lands: the worst moment. */
        if (phi_check(d, next - 1) != PHI_UP)
            left_up++;
        phi_heartbeat(d, next);
        t = next;
    }
    phi_destroy(&d);
    return left_up;
}

static void test_jitter_does_not_flap(void **state)
{
    (void)state;
    double max_phi;
    /* Defaults, heartbeats every 1 s +/- 50 %: phi stays near 0. */
    lcg_state = 42;
    assert_int_equal(jitter_run(NULL, 3000, 500, 1500, &max_phi), 0);
    assert_true(max_phi < 0.01);

    /* No acceptable pause at all: the measured deviation alone must keep
     * the worst late heartbeat (2 std above the mean) far from the
     * suspect threshold, let alone the threshold. */
    struct phi_options opt;
    phi_options_default(&opt);
    opt.acceptable_pause_ms = 0;
    lcg_state = 42;
    assert_int_equal(jitter_run(&opt, 3000, 500, 1500, &max_phi), 0);
    assert_true(max_phi < 3.0);

    /* Wilder jitter (0.2 s to 3 s) with defaults: still never suspect. */
    lcg_state = 7;
    assert_int_equal(jitter_run(NULL, 3000, 200, 3000, &max_phi), 0);
}

static void test_reset_forgets(void **state)
{
    (void)state;
    struct phi_options opt;
    phi_options_default(&opt);
    opt.acceptable_pause_ms = 0;
    struct phi_detector *d = make(&opt);
    /* A peer that beat every 100 ms: 2 s of silence is damning. */
    uint64_t last = beat(d, START, 1000, 100);
    assert_int_equal(phi_check(d, last + 2000), PHI_DOWN);

    /* It restarted: its old rhythm is forgotten. */
    phi_reset(d);
    assert_false(phi_started(d));
    assert_int_equal(phi_samples(d), 0);
    assert_true(phi_value(d, last + 2000) == 0.0);
    assert_int_equal(phi_check(d, last + 100000), PHI_UP);

    /* First heartbeat of the new process: back to the seeds, so 2 s of
     * silence (4 std above 1 s) is suspect, not down. */
    phi_heartbeat(d, last + 5000);
    assert_int_equal(phi_samples(d), 2);
    assert_true(phi_mean_ms(d) == 1000.0);
    assert_int_equal(phi_check(d, last + 5000 + 2000), PHI_SUSPECT);
    phi_destroy(&d);
}

static void test_window_bound(void **state)
{
    (void)state;
    struct phi_options opt;
    phi_options_default(&opt);
    opt.window = 10;
    struct phi_detector *d = make(&opt);
    uint64_t last = beat(d, START, 1000, 1000);
    assert_int_equal(phi_samples(d), 10);
    /* Ten intervals of 200 ms push every 1 s interval out. */
    beat(d, last + 200, 10, 200);
    assert_int_equal(phi_samples(d), 10);
    assert_true(phi_mean_ms(d) == 200.0);
    assert_true(phi_std_ms(d) == 0.0);
    phi_destroy(&d);

    /* The default window: 5000 heartbeats keep 1000 intervals. */
    d = make(NULL);
    beat(d, START, 5000, 1000);
    assert_int_equal(phi_samples(d), 1000);
    assert_true(phi_mean_ms(d) == 1000.0);
    assert_true(phi_std_ms(d) == 0.0);
    phi_destroy(&d);
}

static void test_out_of_order_ignored(void **state)
{
    (void)state;
    struct phi_detector *d = make(NULL);
    uint64_t last = beat(d, START, 10, 1000);
    size_t n = phi_samples(d);
    phi_heartbeat(d, last - 500);
    assert_int_equal(phi_samples(d), n);
    assert_true(phi_value(d, last - 100) == 0.0);
    /* A repeated time is an interval of 0: recorded. */
    phi_heartbeat(d, last);
    assert_int_equal(phi_samples(d), n + 1);
    phi_destroy(&d);
}

/* With no pause, min_std 1 and only the seeds (mean 1000, std 250), phi at
 * mean + k std is -log10 of the normal tail, within the logistic
 * approximation's error. */
static void test_matches_normal(void **state)
{
    (void)state;
    struct phi_options opt;
    phi_options_default(&opt);
    opt.acceptable_pause_ms = 0;
    opt.min_std_ms = 1;
    struct phi_detector *d = make(&opt);
    phi_heartbeat(d, START);
    for (int k = -3; k <= 6; k++) {
        double normal = -log10(0.5 * erfc((double)k / sqrt(2.0)));
        double phi = phi_value(d, START + (uint64_t)(1000 + 250 * k));
        /* Close up to 3 std; beyond, the logistic tail is lighter than the
         * normal one, so phi runs ahead of it (8 is reached at 5.2 std
         * instead of 5.6: a little earlier detection). */
        bool ok = k <= 3 ? fabs(phi - normal) <= 0.01 + 0.02 * normal
                         : phi >= normal && phi <= 1.25 * normal;
        if (!ok)
            fail_msg("k=%d: phi %.4f, normal %.4f", k, phi, normal);
    }
    /* min_std_ms floors the deviation: with a 500 ms floor, 1.5 s (2
     * measured std late) only counts as 1 std. */
    phi_destroy(&d);
    opt.min_std_ms = 500;
    d = make(&opt);
    phi_heartbeat(d, START);
    double normal1 = -log10(0.5 * erfc(1.0 / sqrt(2.0)));
    assert_close(phi_value(d, START + 1500), normal1, 0.01);
    phi_destroy(&d);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(phi_state_name(PHI_UP), "up");
    assert_string_equal(phi_state_name(PHI_SUSPECT), "suspect");
    assert_string_equal(phi_state_name(PHI_DOWN), "down");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_no_heartbeat_yet),
        cmocka_unit_test(test_first_heartbeat_estimate),
        cmocka_unit_test(test_regular_heartbeats),
        cmocka_unit_test(test_silence_goes_down),
        cmocka_unit_test(test_back_up_after_outage),
        cmocka_unit_test(test_jitter_does_not_flap),
        cmocka_unit_test(test_reset_forgets),
        cmocka_unit_test(test_window_bound),
        cmocka_unit_test(test_out_of_order_ignored),
        cmocka_unit_test(test_matches_normal),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
