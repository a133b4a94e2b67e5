/*
 * test_lru.c - memory budget and LRU policy of the L1 item store: eviction
 * order, recently read items surviving, the byte limit holding, evictions
 * off, references pinning items, eviction from other shards, eviction
 * counters, cache_maintain reclaiming expired and flushed items, the
 * on_evict callback.
 * Single-threaded, with a fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "common/mem.h"

static rel_time_t fake_now;

static rel_time_t fake_clock(void)
{
    return fake_now;
}

/* Item sizes used below: key "k%04d" (5 bytes). A value of 900 bytes makes
 * a 955-byte item in a 1024-byte allocator class; 400 bytes, 512. */
#define BIG 900
#define BIG_USABLE 1024
#define MID 400
#define MID_USABLE 512

static char filler[70000];

static struct cache *new_cache(size_t max_bytes, unsigned shards, bool evictions)
{
    struct cache_config cfg = {
        .max_bytes = max_bytes,
        .item_size_max = max_bytes < 65536 ? max_bytes : 65536,
        .evictions = evictions,
        .shards = shards,
        .clock = fake_clock,
    };
    struct cache *c = NULL;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    return c;
}

static int setup(void **state)
{
    (void)state;
    fake_now = 5000;
    memset(filler, 'f', sizeof(filler));
    return 0;
}

static const char *key_of(int i)
{
    static char buf[32];
    snprintf(buf, sizeof(buf), "k%04d", i);
    return buf;
}

static enum cache_result put(struct cache *c, const char *key, size_t nval, rel_time_t exptime)
{
    enum cache_result res;
    struct item *it = cache_reserve(c, key, strlen(key), 0, exptime, nval, &res);
    if (it == NULL) {
        cache_reserve_failed(c, key, strlen(key), CACHE_SET);
        return res;
    }
    memcpy(item_data_mut(it), filler, nval);
    return cache_commit(c, it, CACHE_SET, 0, NULL);
}

static bool present(struct cache *c, const char *key)
{
    struct item *it = cache_get(c, key, strlen(key), NULL);
    cache_release(c, it);
    return it != NULL;
}

static struct cache_stats stats(struct cache *c)
{
    struct cache_stats st;
    cache_stats_read(c, &st);
    return st;
}

static void test_sizes_as_assumed(void **state)
{
    (void)state;
    assert_int_equal(mem_usable(cache_item_overhead() + 5 + BIG), BIG_USABLE);
    assert_int_equal(mem_usable(cache_item_overhead() + 5 + MID), MID_USABLE);
}

/* Oldest items go first. */
static void test_eviction_order(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 * BIG_USABLE, 1, true);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
        fake_now += 10;
    }
    assert_int_equal(stats(c).evictions, 0);
    for (int i = 16; i < 20; i++) {
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
        fake_now += 10;
    }
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 4);
    assert_int_equal(st.evicted_unfetched, 4);
    assert_int_equal(st.curr_items, 16);
    for (int i = 0; i < 4; i++)
        assert_false(present(c, key_of(i)));
    for (int i = 4; i < 20; i++)
        assert_true(present(c, key_of(i)));
    cache_destroy(&c);
}

/* A read after the bump interval moves the item to the head. */
static void test_read_item_survives_bump(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 * BIG_USABLE, 1, true);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
        fake_now += 10;
    }
    assert_true(present(c, key_of(0)));
    for (int i = 16; i < 20; i++)
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
    assert_true(present(c, key_of(0)));
    for (int i = 1; i <= 4; i++)
        assert_false(present(c, key_of(i)));
    assert_true(present(c, key_of(5)));
    assert_int_equal(stats(c).evictions, 4);
    cache_destroy(&c);
}

/* A read within the bump interval only marks the item ACTIVE: it stays at
 * the tail but gets a second chance. */
static void test_read_item_survives_second_chance(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 * BIG_USABLE, 1, true);
    for (int i = 0; i < 16; i++)
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
    assert_true(present(c, key_of(0))); /* same second as its store */
    for (int i = 16; i < 20; i++)
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
    assert_true(present(c, key_of(0)));
    for (int i = 1; i <= 4; i++)
        assert_false(present(c, key_of(i)));
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 4);
    assert_int_equal(st.evicted_active, 0);
    cache_destroy(&c);
}

static void test_eviction_counters(void **state)
{
    (void)state;
    struct cache *c = new_cache(32 * MID_USABLE, 1, true);
    /* 32 items, all read in the second they were stored: all ACTIVE. */
    for (int i = 0; i < 32; i++) {
        assert_int_equal(put(c, key_of(i), MID, i < 8 ? fake_now + 100000 : 0), CACHE_STORED);
        assert_true(present(c, key_of(i)));
    }
    fake_now += 30;
    /* The walk spares a bounded number (16) of ACTIVE items, then evicts. */
    assert_int_equal(put(c, key_of(100), MID, 0), CACHE_STORED);
    assert_false(present(c, key_of(16)));
    for (int i = 0; i < 32; i++) {
        if (i != 16)
            assert_true(present(c, key_of(i)));
    }
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.evicted_active, 1);
    assert_int_equal(st.evicted_unfetched, 0);

    /* The reads above bumped every survivor to the head at 5030, in key
     * order, leaving the never-read k100 at the tail. Eight stores evict
     * k100, then k0..k6 (which have an exptime). */
    fake_now += 40;
    for (int i = 200; i < 208; i++)
        assert_int_equal(put(c, key_of(i), MID, 0), CACHE_STORED);
    assert_false(present(c, key_of(100)));
    assert_false(present(c, key_of(6)));
    assert_true(present(c, key_of(7)));
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    unsigned top = cache_class_stats_read(c, rows);
    struct item *probe = cache_get(c, key_of(200), 5, NULL);
    unsigned cls = item_class(probe);
    cache_release(c, probe);
    assert_int_equal(top, cls + 1);
    assert_int_equal(rows[cls].evicted, 9);
    assert_int_equal(rows[cls].evicted_active, 1);
    assert_int_equal(rows[cls].evicted_nonzero, 7);
    assert_int_equal(rows[cls].evicted_unfetched, 1);
    assert_int_equal(rows[cls].evicted_time, 40);
    cache_destroy(&c);
}

/* The budget counts allocator bytes and is never exceeded. */
static void test_memory_limit_holds(void **state)
{
    (void)state;
    const size_t max = 1 << 20;
    size_t mem_before = mem_bytes(MEM_CACHE);
    struct cache *c = new_cache(max, 0, true);
    srand(7);
    for (int i = 0; i < 30000; i++) {
        size_t n = (size_t)rand() % 3000;
        if (i % 1000 == 0)
            n = 40000 + (size_t)rand() % 20000; /* an occasional large item */
        assert_int_equal(put(c, key_of(rand() % 8000), n, 0), CACHE_STORED);
        struct cache_stats st = stats(c);
        assert_true(st.malloced <= max);
        assert_true(st.bytes <= st.malloced);
    }
    struct cache_stats st = stats(c);
    assert_true(st.evictions > 0);
    assert_int_equal(st.bytes, st.malloced); /* no references held */
    assert_true(st.malloced > max / 2);      /* and the budget is used */
    /* The allocator agrees: items plus tables and bookkeeping. */
    assert_true(mem_bytes(MEM_CACHE) - mem_before >= st.malloced + st.hash_bytes);
    cache_destroy(&c);
    assert_int_equal(mem_bytes(MEM_CACHE), mem_before);
}

static void test_evictions_off(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 * BIG_USABLE, 4, false);
    int stored = 0;
    enum cache_result res = CACHE_STORED;
    for (int i = 0; i < 40 && res == CACHE_STORED; i++) {
        res = put(c, key_of(i), BIG, 0);
        if (res == CACHE_STORED)
            stored++;
    }
    assert_int_equal(res, CACHE_NO_MEMORY);
    assert_int_equal(stored, 16);
    for (int i = 0; i < 16; i++)
        assert_true(present(c, key_of(i)));
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.malloced, 16 * BIG_USABLE);
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    unsigned top = cache_class_stats_read(c, rows);
    assert_int_equal(rows[top - 1].outofmemory, 1);
    /* Room made by a delete is usable again. */
    assert_int_equal(cache_delete(c, key_of(3), 5, 0), CACHE_OK);
    assert_int_equal(put(c, key_of(99), BIG, 0), CACHE_STORED);
    cache_destroy(&c);
}

static void test_no_memory_paths(void **state)
{
    (void)state;
    /* 15 big items and "n" = "99" fill the budget exactly. */
    struct cache *c = new_cache(15 * BIG_USABLE + 64 + 192, 1, false);
    for (int i = 0; i < 15; i++)
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
    enum cache_result res;
    struct item *it = cache_reserve(c, "n", 1, 0, 0, 2, &res);
    assert_non_null(it);
    memcpy(item_data_mut(it), "99", 2);
    assert_int_equal(cache_commit(c, it, CACHE_SET, 0, NULL), CACHE_STORED);

    /* Append: the 100-byte piece fits (192), the combined item does not. */
    it = cache_reserve(c, key_of(0), 5, 0, 0, 100, &res);
    assert_non_null(it);
    memcpy(item_data_mut(it), filler, 100);
    assert_int_equal(cache_commit(c, it, CACHE_APPEND, 0, NULL), CACHE_NO_MEMORY);
    struct item *k0 = cache_get(c, key_of(0), 5, NULL);
    assert_int_equal(item_nvalue(k0), BIG);
    cache_release(c, k0);

    /* Take most of the last 192 bytes: incr must build a new item (the
     * number grows) and cannot. */
    it = cache_reserve(c, "x", 1, 0, 0, 100, &res);
    assert_non_null(it);
    assert_int_equal(cache_delta(c, "n", 1, true, 1, 0, NULL, NULL), CACHE_NO_MEMORY);
    cache_release(c, it);
    struct item *n = cache_get(c, "n", 1, NULL);
    assert_int_equal(item_nvalue(n), 2);
    assert_memory_equal(item_value(n), "99", 2);
    cache_release(c, n);

    /* A SET that cannot get memory drops the old value (memcached). */
    assert_int_equal(put(c, key_of(5), 5000, 0), CACHE_NO_MEMORY);
    assert_false(present(c, key_of(5)));
    cache_destroy(&c);
}

/* An item referenced by a reader is not evicted while referenced. */
static void test_referenced_item_pinned(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 * BIG_USABLE, 1, true);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
        fake_now += 10;
    }
    fake_now += 10;
    struct item *held = cache_get(c, key_of(0), 5, NULL); /* bumped to the head */
    assert_non_null(held);
    /* Two full rounds of new items: k0 reaches the tail and is skipped. */
    for (int i = 100; i < 132; i++) {
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
        assert_true(stats(c).malloced <= 16 * BIG_USABLE);
    }
    struct item *again = cache_get(c, key_of(0), 5, NULL);
    assert_ptr_equal(again, held);
    cache_release(c, again);
    assert_int_equal(item_nvalue(held), BIG);
    cache_release(c, held);
    /* Unpinned, it goes like any other old item. */
    fake_now += 10;
    for (int i = 200; i < 216; i++)
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
    assert_false(present(c, key_of(0)));
    cache_destroy(&c);
}

/* Picks keys whose hash lands in a given shard of a 4-shard cache. */
static const char *key_in_shard(unsigned shard, int *next)
{
    static char buf[32];
    for (;;) {
        snprintf(buf, sizeof(buf), "s%04d", (*next)++);
        if ((XXH3_64bits(buf, strlen(buf)) >> 62) == shard)
            return buf;
    }
}

static void test_evicts_from_other_shards(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 * BIG_USABLE, 4, true);
    int next = 0;
    for (int i = 0; i < 16; i++)
        assert_int_equal(put(c, key_in_shard(0, &next), BIG, 0), CACHE_STORED);
    /* Shard 1 holds nothing to evict: the store takes room in shard 0. */
    next = 0;
    const char *k = key_in_shard(1, &next);
    char key[32];
    strcpy(key, k);
    assert_int_equal(put(c, key, BIG, 0), CACHE_STORED);
    assert_true(present(c, key));
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.curr_items, 16);
    cache_destroy(&c);
}

static void test_set_max_bytes(void **state)
{
    (void)state;
    struct cache *c = new_cache(1 << 20, 8, true);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(put(c, key_of(i), MID, 0), CACHE_STORED);
    assert_true(stats(c).malloced > (3u << 20) / 4);
    cache_set_max_bytes(c, 256 << 10);
    assert_int_equal(stats(c).limit_maxbytes, 256 << 10);
    assert_int_equal(put(c, "after", MID, 0), CACHE_STORED);
    assert_true(stats(c).malloced <= 256 << 10);
    assert_true(present(c, "after"));
    cache_destroy(&c);
}

static void test_maintain_reclaims(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 << 20, 0, true);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(put(c, key_of(i), 100, fake_now + 10), CACHE_STORED);
    for (int i = 1000; i < 1100; i++)
        assert_int_equal(put(c, key_of(i), 100, 0), CACHE_STORED);
    size_t each = mem_usable(cache_item_overhead() + 5 + 100);
    assert_int_equal(stats(c).malloced, 1100 * each);
    assert_int_equal(cache_maintain(c, 1 << 20), 0); /* nothing expired yet */
    fake_now += 10;
    /* Small budgets walk round robin and get there in bounded calls. */
    size_t reclaimed = 0;
    int calls = 0;
    while (reclaimed < 1000 && calls < 10000) {
        reclaimed += cache_maintain(c, 100);
        calls++;
    }
    assert_int_equal(reclaimed, 1000);
    /* One pass: 64 shards of 1024 buckets, 100 buckets a call. */
    assert_true(calls <= 64 * 11);
    struct cache_stats st = stats(c);
    assert_int_equal(st.curr_items, 100);
    assert_int_equal(st.malloced, 100 * each);
    assert_int_equal(st.reclaimed, 1000);
    assert_int_equal(st.expired_unfetched, 1000);
    /* Flushed items go the same way. */
    cache_flush(c, 0);
    assert_int_equal(cache_maintain(c, 1 << 17), 100);
    assert_int_equal(stats(c).malloced, 0);
    /* A referenced stale item is unlinked; its memory goes with the ref. */
    assert_int_equal(put(c, "r", 100, fake_now + 1), CACHE_STORED);
    struct item *held = cache_get(c, "r", 1, NULL);
    fake_now += 1;
    assert_int_equal(cache_maintain(c, 1 << 17), 1);
    assert_int_equal(stats(c).malloced, mem_usable(cache_item_overhead() + 1 + 100));
    cache_release(c, held);
    assert_int_equal(stats(c).malloced, 0);
    cache_destroy(&c);
}

/* Expired items at the tail are reclaimed (not counted as evictions). */
static void test_eviction_reclaims_expired_first(void **state)
{
    (void)state;
    struct cache *c = new_cache(16 * BIG_USABLE, 1, true);
    for (int i = 0; i < 16; i++)
        assert_int_equal(put(c, key_of(i), BIG, i < 2 ? fake_now + 5 : 0), CACHE_STORED);
    fake_now += 5;
    assert_int_equal(put(c, key_of(20), BIG, 0), CACHE_STORED);
    assert_int_equal(put(c, key_of(21), BIG, 0), CACHE_STORED);
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.reclaimed, 2);
    for (int i = 2; i < 16; i++)
        assert_true(present(c, key_of(i)));
    cache_destroy(&c);
}

/* What the on_evict callback saw. */
struct evict_log {
    int n;
    char keys[40][8];
    struct cache_item_view v[40];
};

static void record_eviction(void *arg, const struct cache_item_view *v)
{
    struct evict_log *log = arg;
    assert_true(log->n < 40);
    assert_true(v->nkey < sizeof(log->keys[0]));
    memcpy(log->keys[log->n], v->key, v->nkey);
    log->keys[log->n][v->nkey] = '\0';
    log->v[log->n] = *v;
    log->v[log->n].key = log->keys[log->n]; /* the item's key dies with it */
    log->n++;
}

/* Every eviction (and only evictions: not expired items reclaimed on the
 * way) reaches on_evict with the item's view; cache_shrink too. */
static void test_eviction_callback(void **state)
{
    (void)state;
    struct evict_log log = {0};
    struct cache_config cfg = {
        .max_bytes = 16 * BIG_USABLE,
        .item_size_max = 16 * BIG_USABLE,
        .evictions = true,
        .shards = 1,
        .clock = fake_clock,
        .on_evict = record_eviction,
        .evict_arg = &log,
    };
    struct cache *c = NULL;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    rel_time_t stored_at[16];
    for (int i = 0; i < 16; i++) {
        /* k0002 expires before the evictions start; k0003 has a long TTL */
        rel_time_t exp = i == 2 ? fake_now + 15 : i == 3 ? fake_now + 1000 : 0;
        stored_at[i] = fake_now;
        assert_int_equal(put(c, key_of(i), BIG, exp), CACHE_STORED);
        fake_now += 10;
    }
    assert_int_equal(log.n, 0);
    struct item *probe = cache_get(c, key_of(0), 5, NULL); /* fetched, bumped to the head */
    unsigned cls = item_class(probe);
    cache_release(c, probe);
    rel_time_t read_at = fake_now;
    fake_now += 7;
    /* Tail to head: k0001 .. k0015, k0000. Sixteen stores free sixteen
     * slots: k0002 reclaimed (not reported), fifteen evictions. */
    for (int i = 100; i < 116; i++)
        assert_int_equal(put(c, key_of(i), BIG, 0), CACHE_STORED);
    assert_int_equal(log.n, 15);
    assert_int_equal(stats(c).evictions, 15);
    int expect[15];
    expect[0] = 1;
    for (int k = 1; k < 14; k++)
        expect[k] = k + 2; /* k0003 .. k0015 */
    expect[14] = 0;
    for (int k = 0; k < 15; k++) {
        int i = expect[k];
        const struct cache_item_view *v = &log.v[k];
        assert_string_equal(log.keys[k], key_of(i));
        assert_int_equal(v->nkey, 5);
        assert_int_equal(v->nvalue, BIG);
        assert_int_equal(v->clsid, cls);
        assert_int_equal(v->fetched, i == 0);
        assert_int_equal(v->exptime, i == 3 ? stored_at[3] + 1000 : 0);
        assert_int_equal(v->atime, i == 0 ? read_at : stored_at[i]);
    }

    /* Lowering the limit evicts now, through the same callback. */
    log.n = 0;
    cache_set_max_bytes(c, 4 * BIG_USABLE);
    assert_true(cache_shrink(c) > 0);
    struct cache_stats st = stats(c);
    assert_true(log.n >= 12);
    assert_int_equal(st.evictions, 15 + (uint64_t)log.n);
    assert_int_equal(st.curr_items, 16 - (uint64_t)log.n);
    assert_string_equal(log.keys[0], key_of(100)); /* the oldest first */
    cache_destroy(&c);
}

#define T(name) cmocka_unit_test_setup(name, setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_sizes_as_assumed),
        T(test_eviction_order),
        T(test_read_item_survives_bump),
        T(test_read_item_survives_second_chance),
        T(test_eviction_counters),
        T(test_memory_limit_holds),
        T(test_evictions_off),
        T(test_no_memory_paths),
        T(test_referenced_item_pinned),
        T(test_evicts_from_other_shards),
        T(test_set_max_bytes),
        T(test_maintain_reclaims),
        T(test_eviction_reclaims_expired_first),
        T(test_eviction_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
