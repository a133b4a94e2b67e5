/*
 * test_meta.c - the cache's meta calls (cache/meta.c): win tokens from
 * vivify, recache and stale items; TTL flags acting in request order;
 * invalidating deletes and stores; ma with autovivify. Single-threaded,
 * fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"

static rel_time_t fake_now;

static rel_time_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    struct cache_config cfg = {
        .max_bytes = 8 << 20, .evictions = true, .shards = 4, .clock = fake_clock};
    struct cache *c = NULL;
    fake_now = 1000;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct cache *c = *state;
    cache_destroy(&c);
    return 0;
}

static uint64_t put(struct cache *c, const char *key, const char *value, rel_time_t exptime)
{
    enum cache_result res;
    size_t n = strlen(value);
    struct item *it = cache_reserve(c, key, strlen(key), 0, exptime, n, &res);
    assert_non_null(it);
    memcpy(item_data_mut(it), value, n);
    uint64_t cas = 0;
    assert_int_equal(cache_commit(c, it, CACHE_SET, 0, &cas), CACHE_STORED);
    return cas;
}

static struct item *mget(struct cache *c, const char *key, const struct cache_meta_ttl *ttl,
                         struct cache_meta_info *info)
{
    return cache_meta_get(c, key, strlen(key), ttl, false, info, NULL);
}

static void test_vivify_one_winner(void **state)
{
    struct cache *c = *state;
    struct cache_meta_ttl ttl = CACHE_META_TTL_NONE;
    ttl.vivify_pos = 0;
    ttl.vivify_exptime = 1030;
    ttl.t_pos = 1;
    struct cache_meta_info info;
    struct item *it = mget(c, "k", &ttl, &info);
    assert_non_null(it);
    assert_true(info.created && info.won && !info.token_sent);
    assert_int_equal(info.ttl, 30);
    assert_int_equal(item_nvalue(it), 0);
    cache_release(c, it);
    it = mget(c, "k", &ttl, &info);
    assert_true(!info.created && !info.won && info.token_sent);
    cache_release(c, it);
    put(c, "k", "v", 0); /* a store ends the round */
    it = mget(c, "k", &ttl, &info);
    assert_true(!info.won && !info.token_sent);
    cache_release(c, it);
}

static void test_ttl_flags_in_order(void **state)
{
    struct cache *c = *state;
    put(c, "k", "x", 1010);
    struct cache_meta_ttl ttl = CACHE_META_TTL_NONE;
    struct cache_meta_info info;
    /* R before T compares the old TTL (10 < 30: win) */
    ttl.recache_pos = 0;
    ttl.recache_time = 1030;
    ttl.touch_pos = 1;
    ttl.touch_exptime = 1100;
    ttl.t_pos = 2;
    struct item *it = mget(c, "k", &ttl, &info);
    assert_true(info.won);
    assert_int_equal(info.ttl, 100);
    assert_int_equal(item_exptime(it), 1100);
    cache_release(c, it);
    /* T before R compares the new one: no win */
    put(c, "k", "x", 1010);
    ttl.touch_pos = 0;
    ttl.recache_pos = 1;
    it = mget(c, "k", &ttl, &info);
    assert_false(info.won);
    cache_release(c, it);
}

static void test_invalidate(void **state)
{
    struct cache *c = *state;
    uint64_t cas = put(c, "k", "old", 0);
    assert_int_equal(cache_meta_delete(c, "k", 1, true, cas + 1, true, false, 0), CACHE_EXISTS);
    assert_int_equal(cache_meta_delete(c, "k", 1, true, cas, true, true, 1050), CACHE_OK);
    struct cache_meta_ttl ttl = CACHE_META_TTL_NONE;
    struct cache_meta_info info;
    struct item *it = mget(c, "k", &ttl, &info);
    assert_true(info.stale && info.won && !info.token_sent);
    assert_true(item_cas(it) > cas);
    assert_int_equal(item_exptime(it), 1050);
    cache_release(c, it);
    it = mget(c, "k", &ttl, &info);
    assert_true(info.stale && !info.won && info.token_sent);
    cache_release(c, it);
    /* a held item keeps its CAS: the marked one is a copy */
    struct item *held = cache_get(c, "k", 1, NULL);
    uint64_t held_cas = item_cas(held);
    assert_int_equal(cache_meta_delete(c, "k", 1, false, 0, true, false, 0), CACHE_OK);
    assert_int_equal(item_cas(held), held_cas);
    it = mget(c, "k", &ttl, &info);
    assert_true(item_cas(it) > held_cas);
    assert_true(info.stale && info.won);
    assert_memory_equal(item_value(it), "old", 3);
    cache_release(c, it);
    cache_release(c, held);
    assert_int_equal(cache_meta_delete(c, "k", 1, false, 0, false, false, 0), CACHE_OK);
    assert_int_equal(cache_meta_delete(c, "k", 1, false, 0, true, false, 0), CACHE_NOT_FOUND);
}

static void test_store_invalidate_older_cas(void **state)
{
    struct cache *c = *state;
    uint64_t old = put(c, "k", "a", 1500);
    uint64_t cur = put(c, "k", "b", 1500);
    enum cache_result res;
    struct item *it = cache_reserve(c, "k", 1, 0, 0, 1, &res);
    memcpy(item_data_mut(it), "z", 1);
    uint64_t cas;
    assert_int_equal(cache_meta_commit(c, it, CACHE_CAS, old, CACHE_META_INVALIDATE, &cas),
                     CACHE_STORED);
    assert_true(cas > cur);
    struct cache_meta_ttl ttl = CACHE_META_TTL_NONE;
    struct cache_meta_info info;
    it = mget(c, "k", &ttl, &info);
    assert_true(info.stale && info.won);
    assert_int_equal(item_exptime(it), 1500); /* kept the old TTL */
    cache_release(c, it);
    /* a newer CAS is refused even with invalidate */
    it = cache_reserve(c, "k", 1, 0, 0, 1, &res);
    assert_int_equal(cache_meta_commit(c, it, CACHE_CAS, cas + 1, CACHE_META_INVALIDATE, NULL),
                     CACHE_EXISTS);
}

static void test_store_invalidate_cas_zero_is_a_mismatch(void **state)
{
    /* memcached: a CAS of 0 is "no CAS", never older than the item's */
    struct cache *c = *state;
    put(c, "k", "a", 0);
    enum cache_result res;
    struct item *it = cache_reserve(c, "k", 1, 0, 0, 1, &res);
    memcpy(item_data_mut(it), "z", 1);
    assert_int_equal(cache_meta_commit(c, it, CACHE_CAS, 0, CACHE_META_INVALIDATE, NULL),
                     CACHE_EXISTS);
    struct cache_meta_ttl ttl = CACHE_META_TTL_NONE;
    struct cache_meta_info info;
    it = mget(c, "k", &ttl, &info);
    assert_false(info.stale);
    assert_memory_equal(item_value(it), "a", 1);
    cache_release(c, it);
}

static uint64_t class_get_hits(struct cache *c)
{
    struct cache_class_stats cls[CACHE_CLASSES_MAX];
    unsigned n = cache_class_stats_read(c, cls);
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += cls[i].get_hits + cls[i].touch_hits;
    return sum;
}

static void test_failing_get_acts_up_to_the_failure(void **state)
{
    struct cache *c = *state;
    struct cache_meta_ttl ttl = CACHE_META_TTL_NONE;
    struct cache_meta_info info;
    /* N before the failing flag: created, with N's TTL, but not won */
    ttl.vivify_pos = 0;
    ttl.vivify_exptime = 1100;
    ttl.fail_pos = 1;
    struct item *it = cache_meta_get(c, "a", 1, &ttl, true, &info, NULL);
    assert_non_null(it);
    assert_true(info.created && !info.won);
    assert_int_equal(item_exptime(it), 1100);
    cache_release(c, it);
    assert_int_equal(class_get_hits(c), 0);
    struct cache_meta_ttl none = CACHE_META_TTL_NONE;
    it = mget(c, "a", &none, &info);
    assert_true(!info.token_sent && !info.won && !info.fetched);
    cache_release(c, it);
    /* N after it: created, never expiring */
    ttl.vivify_pos = 1;
    ttl.fail_pos = 0;
    it = cache_meta_get(c, "b", 1, &ttl, true, &info, NULL);
    assert_int_equal(item_exptime(it), 0);
    cache_release(c, it);
    /* T before it touches; a hit is not counted; no_bump leaves it unfetched */
    put(c, "c", "x", 0);
    ttl = (struct cache_meta_ttl)CACHE_META_TTL_NONE;
    ttl.touch_pos = 0;
    ttl.touch_exptime = 1200;
    ttl.fail_pos = 1;
    uint64_t hits = class_get_hits(c);
    it = cache_meta_get(c, "c", 1, &ttl, true, &info, NULL);
    assert_int_equal(item_exptime(it), 1200);
    cache_release(c, it);
    assert_int_equal(class_get_hits(c), hits);
    it = cache_meta_peek(c, "c", 1, &info);
    assert_false(info.fetched);
    cache_release(c, it);
    /* without no_bump the lookup itself marks it fetched */
    ttl = (struct cache_meta_ttl)CACHE_META_TTL_NONE;
    ttl.fail_pos = 0;
    it = cache_meta_get(c, "c", 1, &ttl, false, &info, NULL);
    cache_release(c, it);
    it = cache_meta_peek(c, "c", 1, &info);
    assert_true(info.fetched);
    cache_release(c, it);
}

static void test_arith_empty_value(void **state)
{
    /* memcached refuses an empty value before it compares the CAS */
    struct cache *c = *state;
    uint64_t cas = put(c, "e", "", 0);
    struct cache_meta_arith a = {.incr = true, .delta = 1, .ttl = CACHE_META_TTL_NONE};
    a.cas_in = cas + 1;
    assert_int_equal(cache_meta_delta(c, "e", 1, &a), CACHE_NON_NUMERIC);
    a.cas_in = cas;
    assert_int_equal(cache_meta_delta(c, "e", 1, &a), CACHE_NON_NUMERIC);
    cas = put(c, "x", "abc", 0);
    a.cas_in = cas + 1; /* other non-numbers: the CAS first */
    assert_int_equal(cache_meta_delta(c, "x", 1, &a), CACHE_EXISTS);
    a.cas_in = cas;
    assert_int_equal(cache_meta_delta(c, "x", 1, &a), CACHE_NON_NUMERIC);
}

static void test_arith(void **state)
{
    struct cache *c = *state;
    struct cache_meta_arith a = {.incr = true, .delta = 5, .ttl = CACHE_META_TTL_NONE};
    assert_int_equal(cache_meta_delta(c, "n", 1, &a), CACHE_NOT_FOUND);
    a.vivify = true;
    a.initial = 7;
    a.ttl.vivify_pos = 0;
    a.ttl.vivify_exptime = 1100;
    a.ttl.t_pos = 1;
    assert_int_equal(cache_meta_delta(c, "n", 1, &a), CACHE_OK);
    assert_true(a.created);
    assert_int_equal(a.value, 7);
    assert_int_equal(a.ttl_reported, 100);
    assert_int_equal(cache_meta_delta(c, "n", 1, &a), CACHE_OK);
    assert_false(a.created);
    assert_int_equal(a.value, 12);
    /* T on a result that grew is lost, as in memcached */
    put(c, "g", "9", 0);
    struct cache_meta_arith g = {.incr = true, .delta = 1, .ttl = CACHE_META_TTL_NONE};
    g.ttl.touch_pos = 0;
    g.ttl.touch_exptime = 1100;
    g.ttl.t_pos = 1;
    assert_int_equal(cache_meta_delta(c, "g", 1, &g), CACHE_OK);
    assert_int_equal(g.ttl_reported, 100);
    struct item *it = cache_get(c, "g", 1, NULL);
    assert_int_equal(item_exptime(it), 0);
    cache_release(c, it);
}

static void test_peek_does_not_fetch(void **state)
{
    struct cache *c = *state;
    put(c, "k", "x", 1100);
    struct cache_meta_info info;
    struct item *it = cache_meta_peek(c, "k", 1, &info);
    assert_false(info.fetched);
    assert_int_equal(info.ttl, -100);
    cache_release(c, it);
    it = cache_meta_peek(c, "k", 1, &info);
    assert_false(info.fetched);
    cache_release(c, it);
    assert_null(cache_meta_peek(c, "nope", 4, &info));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vivify_one_winner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_flags_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalidate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_invalidate_older_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_invalidate_cas_zero_is_a_mismatch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failing_get_acts_up_to_the_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arith_empty_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arith, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek_does_not_fetch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
