/*
 * test_walk.c - cache/walk.c: the resumable walk sees every live item
 * exactly once (also while tables grow between steps) and reclaims the
 * expired ones; the class dump lists one class with its limit; shrinking
 * evicts down to a lowered limit. Single-threaded, fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"

static rel_time_t fake_now;

static rel_time_t fake_clock(void)
{
    return fake_now;
}

static struct cache *new_cache(size_t max_bytes, unsigned shards, unsigned hashpower)
{
    struct cache_config cfg = {
        .max_bytes = max_bytes,
        .evictions = true,
        .shards = shards,
        .hashpower_init = hashpower,
        .clock = fake_clock,
    };
    struct cache *c = NULL;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    return c;
}

static void put(struct cache *c, unsigned i, size_t nvalue, rel_time_t exptime)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "key%06u", i);
    enum cache_result res;
    struct item *it = cache_reserve(c, key, (size_t)n, 0, exptime, nvalue, &res);
    assert_non_null(it);
    memset(item_data_mut(it), 'v', nvalue);
    assert_int_equal(cache_commit(c, it, CACHE_SET, 0, NULL), CACHE_STORED);
}

#define NKEYS 20000

struct seen {
    unsigned char count[NKEYS];
    size_t total;
};

static void count_visit(void *arg, const struct cache_item_view *v)
{
    struct seen *s = arg;
    unsigned i;
    assert_int_equal(v->nkey, 9);
    assert_int_equal(sscanf(v->key, "key%06u", &i), 1);
    assert_true(i < NKEYS);
    s->count[i]++;
    s->total++;
}

static void test_walk_sees_each_item_once_and_reclaims_expired(void **state)
{
    (void)state;
    fake_now = 100;
    /* one shard, a tiny table: it grows many times while the walk runs */
    struct cache *c = new_cache(256u << 20, 1, 4);
    for (unsigned i = 0; i < 1000; i++)
        put(c, i, 10, i % 10 == 0 ? 150 : 0); /* every tenth expires at 150 */
    fake_now = 200;

    struct seen *s = calloc(1, sizeof(*s));
    struct cache_walk w;
    memset(&w, 0, sizeof(w));
    unsigned next = 1000, steps = 0;
    while (cache_walk_step(c, &w, 3, NULL, count_visit, s)) {
        /* items added mid-walk may or may not be seen, at most once */
        for (unsigned k = 0; k < 50 && next < NKEYS; k++)
            put(c, next++, 10, 0);
        assert_true(++steps < 1000000);
    }
    for (unsigned i = 0; i < 1000; i++)
        assert_int_equal(s->count[i], i % 10 == 0 ? 0 : 1);
    for (unsigned i = 1000; i < next; i++)
        assert_true(s->count[i] <= 1);
    assert_int_equal(w.reclaimed, 100);
    struct cache_stats st;
    cache_stats_read(c, &st);
    assert_int_equal(st.curr_items, next - 100);

    struct cache_class_stats cls[CACHE_CLASSES_MAX];
    unsigned n = cache_class_stats_read(c, cls);
    uint64_t reclaimed = 0, checked = 0;
    for (unsigned k = 0; k < n; k++) {
        reclaimed += cls[k].crawler_reclaimed;
        checked += cls[k].crawler_items_checked;
    }
    assert_int_equal(reclaimed, 100);
    assert_int_equal(checked, w.checked);
    free(s);
    cache_destroy(&c);
}

static void test_walk_selects_classes(void **state)
{
    (void)state;
    fake_now = 100;
    struct cache *c = new_cache(64u << 20, 4, 0);
    put(c, 1, 10, 0);
    put(c, 2, 5000, 0);
    struct seen *s = calloc(1, sizeof(*s));
    struct cache_walk w;
    memset(&w, 0, sizeof(w));
    bool classes[CACHE_CLASSES_MAX] = {false};
    struct cache_class_stats cls[CACHE_CLASSES_MAX];
    unsigned n = cache_class_stats_read(c, cls);
    for (unsigned k = 1; k < n; k++)
        if (cls[k].number > 0 && cls[k].chunk_size < 1000)
            classes[k] = true;
    while (cache_walk_step(c, &w, 1000, classes, count_visit, s))
        ;
    assert_int_equal(s->total, 1);
    assert_int_equal(s->count[1], 1);
    free(s);
    cache_destroy(&c);
}

struct dump {
    unsigned shown;
    unsigned stop_after;
};

static bool dump_visit(void *arg, const struct cache_item_view *v)
{
    struct dump *d = arg;
    assert_int_equal(v->nvalue, 10);
    return ++d->shown < d->stop_after;
}

static void test_dump_class_limit_and_stop(void **state)
{
    (void)state;
    fake_now = 100;
    struct cache *c = new_cache(64u << 20, 4, 0);
    for (unsigned i = 0; i < 100; i++)
        put(c, i, 10, 0);
    put(c, 500, 5000, 0);
    unsigned cls = 0;
    struct cache_class_stats st[CACHE_CLASSES_MAX];
    unsigned n = cache_class_stats_read(c, st);
    for (unsigned k = 1; k < n; k++)
        if (st[k].number == 100)
            cls = k;
    assert_true(cls > 0);
    struct dump d = {0, 1000};
    assert_int_equal(cache_dump_class(c, cls, 0, dump_visit, &d), 100);
    d = (struct dump){0, 1000};
    assert_int_equal(cache_dump_class(c, cls, 7, dump_visit, &d), 7);
    d = (struct dump){0, 3};
    cache_dump_class(c, cls, 0, dump_visit, &d);
    assert_int_equal(d.shown, 3);
    cache_destroy(&c);
}

static void test_shrink_evicts_down_to_the_limit(void **state)
{
    (void)state;
    fake_now = 100;
    struct cache *c = new_cache(64u << 20, 8, 0);
    for (unsigned i = 0; i < 10000; i++)
        put(c, i, 4000, 0);
    struct cache_stats st;
    cache_stats_read(c, &st);
    assert_true(st.bytes > 30u << 20);
    cache_set_max_bytes(c, 8u << 20);
    assert_true(cache_shrink(c) > 0);
    cache_stats_read(c, &st);
    assert_true(st.bytes <= 8u << 20);
    assert_true(st.evictions > 0);
    assert_int_equal(st.limit_maxbytes, 8u << 20);
    /* the newest items survive */
    struct item *it = cache_get(c, "key009999", 9, NULL);
    assert_non_null(it);
    cache_release(c, it);
    assert_null(cache_get(c, "key000000", 9, NULL));
    cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_sees_each_item_once_and_reclaims_expired),
        cmocka_unit_test(test_walk_selects_classes),
        cmocka_unit_test(test_dump_class_limit_and_stop),
        cmocka_unit_test(test_shrink_evicts_down_to_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
