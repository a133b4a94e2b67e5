/*
 * test_hlc.c - the hybrid logical clock of common/hlc.c under a scripted
 * physical clock: layout, monotonicity when the wall clock steps back,
 * logical overflow, the skew rule of hlc_observe, floors and leases, and
 * uniqueness across threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "common/hlc.h"

/* 2024-01-01T00:00:00Z in ms: a realistic physical part. */
#define T0 UINT64_C(1704067200000)

struct fake_clock {
    _Atomic uint64_t ms;
};

static uint64_t fake_ms(void *arg)
{
    struct fake_clock *fc = arg;
    return atomic_load_explicit(&fc->ms, memory_order_relaxed);
}

static void fake_set(struct fake_clock *fc, uint64_t ms)
{
    atomic_store_explicit(&fc->ms, ms, memory_order_relaxed);
}

static void init_fake(struct hlc *clock, struct fake_clock *fc, uint64_t ms, uint64_t max_skew)
{
    struct hlc_options opt;
    hlc_options_default(&opt);
    atomic_init(&fc->ms, ms);
    opt.physical = fake_ms;
    opt.physical_arg = fc;
    opt.max_skew_ms = max_skew;
    hlc_init(clock, &opt);
}

static void test_layout(void **state)
{
    (void)state;
    uint64_t ts = hlc_pack(T0, 0x1234);
    assert_true(ts == (T0 << 16 | 0x1234));
    assert_true(hlc_physical(ts) == T0);
    assert_int_equal(hlc_logical(ts), 0x1234);
    /* Ordering as integers is ordering by (physical, logical). */
    assert_true(hlc_pack(T0, 0xffff) < hlc_pack(T0 + 1, 0));
    /* The physical part saturates instead of losing its top bits. */
    assert_true(hlc_pack(UINT64_MAX, 0) == (HLC_PHYSICAL_MAX << 16));
    assert_true(HLC_PHYSICAL_MAX == (UINT64_C(1) << 48) - 1);
}

static void test_defaults(void **state)
{
    (void)state;
    struct hlc_options opt;
    hlc_options_default(&opt);
    assert_true(opt.physical == hlc_realtime_ms);
    assert_true(opt.max_skew_ms == HLC_DEFAULT_MAX_SKEW_MS);
    assert_true(opt.offset_ms == 0);

    /* NULL options: the real clock, within a second of time(). */
    struct hlc clock;
    hlc_init(&clock, NULL);
    assert_true(hlc_last(&clock) == 0);
    uint64_t before = (uint64_t)time(NULL) * 1000;
    uint64_t ts = hlc_now(&clock);
    uint64_t after = (uint64_t)time(NULL) * 1000 + 1000;
    assert_true(hlc_physical(ts) >= before && hlc_physical(ts) <= after);
    assert_true(hlc_last(&clock) == ts);
}

static void test_follows_physical(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    assert_true(hlc_now(&clock) == hlc_pack(T0, 0));
    assert_true(hlc_now(&clock) == hlc_pack(T0, 1));
    assert_true(hlc_now(&clock) == hlc_pack(T0, 2));
    fake_set(&fc, T0 + 1);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 1, 0));
    fake_set(&fc, T0 + 1000);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 1000, 0));
}

static void test_monotonic_when_wall_steps_back(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    uint64_t prev = hlc_now(&clock);
    /* The wall clock jumps back 5 s, creeps forward, jumps back again. */
    fake_set(&fc, T0 - 5000);
    for (int i = 0; i < 10000; i++) {
        if (i % 100 == 0)
            fake_set(&fc, T0 - 5000 + (uint64_t)i / 10);
        if (i == 5000)
            fake_set(&fc, T0 - 60000);
        uint64_t ts = hlc_now(&clock);
        assert_true(ts > prev);
        /* While the wall clock is behind, only the logical part moves. */
        assert_true(hlc_physical(ts) == T0);
        prev = ts;
    }
    assert_int_equal(hlc_logical(prev), 10000);
    /* Once the wall clock passes the old reading, it leads again. */
    fake_set(&fc, T0 + 1);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 1, 0));
}

static void test_logical_overflow_carries(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    /* 65536 timestamps in one millisecond fill the logical part... */
    uint64_t ts = 0;
    for (unsigned i = 0; i <= 0xffff; i++) {
        ts = hlc_now(&clock);
        assert_true(ts == hlc_pack(T0, (uint16_t)i));
    }
    /* ...and the next one carries into the physical part: the HLC now runs
     * 1 ms ahead of the wall clock. */
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 1, 0));
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 1, 1));
    /* The wall clock reaching T0 + 1 does not reset the counter. */
    fake_set(&fc, T0 + 1);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 1, 2));
    /* Passing it does. */
    fake_set(&fc, T0 + 2);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 2, 0));

    /* The same carry from an adopted remote value. */
    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 3, 0xffff)), ST_OK);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 4, 0));
}

static void test_observe_adopts_ahead_within_bound(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    uint64_t local = hlc_now(&clock);

    uint64_t remote = hlc_pack(T0 + 100, 7);
    assert_int_equal(hlc_observe(&clock, remote), ST_OK);
    assert_true(hlc_last(&clock) == remote);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 100, 8));

    /* Exactly at the bound (physical parts compared) is still accepted. */
    remote = hlc_pack(T0 + 500, 0xffff);
    assert_int_equal(hlc_observe(&clock, remote), ST_OK);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 501, 0));

    /* A remote value behind us is accepted and changes nothing. */
    uint64_t last = hlc_last(&clock);
    assert_int_equal(hlc_observe(&clock, local), ST_OK);
    assert_int_equal(hlc_observe(&clock, 0), ST_OK);
    assert_true(hlc_last(&clock) == last);
}

static void test_observe_refuses_beyond_bound(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    uint64_t local = hlc_now(&clock);

    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 501, 0)), ST_INVAL);
    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 3600000, 0)), ST_INVAL);
    assert_int_equal(hlc_observe(&clock, UINT64_MAX), ST_INVAL);
    assert_true(hlc_last(&clock) == local);
    assert_true(hlc_now(&clock) == local + 1);

    /* The bound moves with our physical clock: what was refused is
     * accepted once the wall clock has advanced. */
    fake_set(&fc, T0 + 1);
    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 501, 0)), ST_OK);
    assert_true(hlc_last(&clock) == hlc_pack(T0 + 501, 0));

    /* The bound is against the physical clock, not against the HLC: a
     * clock already carried ahead does not widen it. */
    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 502, 0)), ST_INVAL);

    /* max_skew 0: nothing ahead of the physical clock is adopted. */
    struct hlc strict;
    struct fake_clock fc2;
    init_fake(&strict, &fc2, T0, 0);
    assert_int_equal(hlc_observe(&strict, hlc_pack(T0, 9)), ST_OK);
    assert_int_equal(hlc_observe(&strict, hlc_pack(T0 + 1, 0)), ST_INVAL);
}

static void test_offset(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    struct hlc_options opt;
    hlc_options_default(&opt);
    atomic_init(&fc.ms, T0);
    opt.physical = fake_ms;
    opt.physical_arg = &fc;
    opt.offset_ms = 2000;
    hlc_init(&clock, &opt);
    assert_true(hlc_wall_ms(&clock) == T0 + 2000);
    assert_true(hlc_now(&clock) == hlc_pack(T0 + 2000, 0));
    /* The skew rule uses the offset clock. */
    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 2500, 0)), ST_OK);
    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 2501, 0)), ST_INVAL);

    /* Moving the offset back keeps timestamps monotonic. */
    uint64_t prev = hlc_now(&clock);
    hlc_set_offset_ms(&clock, -10000);
    assert_true(hlc_wall_ms(&clock) == T0 - 10000);
    assert_true(hlc_now(&clock) == prev + 1);
    /* A negative offset larger than the reading clamps to 0. */
    hlc_set_offset_ms(&clock, INT64_MIN);
    assert_true(hlc_wall_ms(&clock) == 0);
    hlc_set_offset_ms(&clock, INT64_MAX);
    assert_true(hlc_wall_ms(&clock) == HLC_PHYSICAL_MAX);
}

static void test_floor(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    /* A restart after the wall clock went back an hour: the persisted
     * bound is far ahead of the physical clock, yet respected (no skew
     * check). */
    uint64_t bound = hlc_pack(T0 + 3600000, 5);
    hlc_floor(&clock, bound);
    assert_true(hlc_last(&clock) == bound);
    assert_true(hlc_now(&clock) == bound + 1);
    /* A lower floor changes nothing. */
    hlc_floor(&clock, hlc_pack(T0, 0));
    assert_true(hlc_now(&clock) == bound + 2);
    for (int i = 0; i < 1000; i++)
        assert_true(hlc_now(&clock) > bound);
}

static void test_upper_bound(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    /* Nothing issued yet: the lease starts at the physical clock. */
    assert_true(hlc_upper_bound(&clock, 2500) == hlc_pack(T0 + 2500, 0));
    hlc_now(&clock);
    assert_int_equal(hlc_observe(&clock, hlc_pack(T0 + 400, 3)), ST_OK);
    /* The clock is ahead of the wall: the lease starts at the clock. */
    uint64_t ub = hlc_upper_bound(&clock, 2500);
    assert_true(ub == hlc_pack(T0 + 2900, 0));
    assert_true(ub > hlc_last(&clock));
    /* A zero lease still bounds what was issued. */
    assert_true(hlc_upper_bound(&clock, 0) >= hlc_last(&clock));

    /* Crash and restart with the wall clock 10 s back: loading the bound
     * keeps every new timestamp above everything issued before. */
    uint64_t issued = hlc_now(&clock);
    struct hlc restarted;
    struct fake_clock fc2;
    init_fake(&restarted, &fc2, T0 - 10000, 500);
    hlc_floor(&restarted, ub);
    assert_true(hlc_now(&restarted) > issued);
}

/* ---- threads ---- */

#define THREADS 4
#define PER_THREAD 100000

struct worker {
    struct hlc *clock;
    uint64_t *out; /* PER_THREAD values */
    int observer;  /* also observes/floors values ahead between takes */
    unsigned errors;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (unsigned i = 0; i < PER_THREAD; i++) {
        if (w->observer && i % 64 == 0) {
            /* A peer slightly ahead: adopted, and the next local timestamp
             * of this thread must be above it. */
            uint64_t remote = hlc_pack(hlc_wall_ms(w->clock) + 100, (uint16_t)i);
            if (hlc_observe(w->clock, remote) != ST_OK)
                w->errors++;
            if (i % 1024 == 0)
                hlc_floor(w->clock, remote + 5);
            w->out[i] = hlc_now(w->clock);
            if (w->out[i] <= remote)
                w->errors++;
        } else {
            w->out[i] = hlc_now(w->clock);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void run_threads(struct hlc *clock, int with_observer)
{
    uint64_t *all = malloc(sizeof(uint64_t) * THREADS * PER_THREAD);
    assert_non_null(all);
    struct worker w[THREADS];
    pthread_t tid[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.clock = clock,
                               .out = all + (size_t)i * PER_THREAD,
                               .observer = with_observer && i == 0};
        assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(tid[i], NULL), 0);

    uint64_t max = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].errors, 0);
        for (unsigned j = 1; j < PER_THREAD; j++) {
            if (w[i].out[j] <= w[i].out[j - 1])
                fail_msg("thread %d: value %u (%llu) not above the previous (%llu)", i, j,
                         (unsigned long long)w[i].out[j], (unsigned long long)w[i].out[j - 1]);
        }
        if (w[i].out[PER_THREAD - 1] > max)
            max = w[i].out[PER_THREAD - 1];
    }
    qsort(all, (size_t)THREADS * PER_THREAD, sizeof(uint64_t), cmp_u64);
    for (size_t k = 1; k < (size_t)THREADS * PER_THREAD; k++) {
        if (all[k] == all[k - 1])
            fail_msg("duplicate timestamp %llu", (unsigned long long)all[k]);
    }
    assert_true(hlc_last(clock) >= max);
    assert_true(hlc_now(clock) > max);
    free(all);
}

static void test_threads_real_clock(void **state)
{
    (void)state;
    struct hlc clock;
    hlc_init(&clock, NULL);
    run_threads(&clock, 0);
}

/* A frozen physical clock: every value comes from the logical counter,
 * which overflows into the physical part several times (400,000 > 6 *
 * 65,536) while four threads contend. */
static void test_threads_frozen_clock(void **state)
{
    (void)state;
    struct fake_clock fc;
    struct hlc clock;
    init_fake(&clock, &fc, T0, 500);
    run_threads(&clock, 0);
    uint64_t last = hlc_last(&clock);
    /* THREADS * PER_THREAD values plus run_threads' final hlc_now. */
    assert_true(last == hlc_pack(T0, 0) + (uint64_t)THREADS * PER_THREAD);
    assert_true(hlc_physical(last) == T0 + 6);
}

static void test_threads_with_observer(void **state)
{
    (void)state;
    struct hlc clock;
    hlc_init(&clock, NULL);
    run_threads(&clock, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_follows_physical),
        cmocka_unit_test(test_monotonic_when_wall_steps_back),
        cmocka_unit_test(test_logical_overflow_carries),
        cmocka_unit_test(test_observe_adopts_ahead_within_bound),
        cmocka_unit_test(test_observe_refuses_beyond_bound),
        cmocka_unit_test(test_offset),
        cmocka_unit_test(test_floor),
        cmocka_unit_test(test_upper_bound),
        cmocka_unit_test(test_threads_real_clock),
        cmocka_unit_test(test_threads_frozen_clock),
        cmocka_unit_test(test_threads_with_observer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
