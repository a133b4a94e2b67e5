/*
 * test_cache.c - semantics of the L1 item store API (cache/cache.h): TTL,
 * store modes and their results, CAS uniques, append/prepend, incr/decr,
 * flush_all, references, size limits and per-class stats. Single-threaded,
 * with a fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "common/mem.h"

static rel_time_t fake_now;

static rel_time_t fake_clock(void)
{
    return fake_now;
}

static struct cache *new_cache(size_t max_bytes, size_t item_size_max, unsigned shards)
{
    struct cache_config cfg = {
        .max_bytes = max_bytes,
        .item_size_max = item_size_max,
        .evictions = true,
        .shards = shards,
        .clock = fake_clock,
    };
    struct cache *c = NULL;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    assert_non_null(c);
    return c;
}

static int setup(void **state)
{
    fake_now = 1000;
    *state = new_cache(64u << 20, 1u << 20, 0);
    return 0;
}

static int teardown(void **state)
{
    struct cache *c = *state;
    cache_destroy(&c);
    assert_null(c);
    return 0;
}

/* Stores a value of nval bytes (may contain NULs) through reserve/commit. */
static enum cache_result store_n(struct cache *c, enum cache_store_mode mode, const char *key,
                                 const char *val, size_t nval, uint32_t flags, rel_time_t exptime,
                                 uint64_t cas_in, uint64_t *cas_out)
{
    enum cache_result res = CACHE_OK;
    struct item *it = cache_reserve(c, key, strlen(key), flags, exptime, nval, &res);
    if (it == NULL) {
        assert_true(res == CACHE_TOO_LARGE || res == CACHE_NO_MEMORY);
        return res;
    }
    assert_int_equal(res, CACHE_OK);
    memcpy(item_data_mut(it), val, nval);
    return cache_commit(c, it, mode, cas_in, cas_out);
}

static enum cache_result store(struct cache *c, enum cache_store_mode mode, const char *key,
                               const char *val, uint32_t flags, rel_time_t exptime)
{
    return store_n(c, mode, key, val, strlen(val), flags, exptime, 0, NULL);
}

static enum cache_result set(struct cache *c, const char *key, const char *val)
{
    return store(c, CACHE_SET, key, val, 0, 0);
}

/* Asserts that key holds exactly val. */
static void check_value_n(struct cache *c, const char *key, const char *val, size_t nval)
{
    enum cache_miss miss = CACHE_MISS_ABSENT;
    struct item *it = cache_get(c, key, strlen(key), &miss);
    assert_non_null(it);
    assert_int_equal(miss, CACHE_MISS_NONE);
    assert_int_equal(item_nkey(it), strlen(key));
    assert_memory_equal(item_key(it), key, strlen(key));
    assert_int_equal(item_nvalue(it), nval);
    assert_memory_equal(item_value(it), val, nval);
    cache_release(c, it);
}

static void check_value(struct cache *c, const char *key, const char *val)
{
    check_value_n(c, key, val, strlen(val));
}

static void check_miss(struct cache *c, const char *key, enum cache_miss why)
{
    enum cache_miss miss = CACHE_MISS_NONE;
    struct item *it = cache_get(c, key, strlen(key), &miss);
    assert_null(it);
    assert_int_equal(miss, why);
}

static uint64_t cas_of(struct cache *c, const char *key)
{
    struct item *it = cache_get(c, key, strlen(key), NULL);
    assert_non_null(it);
    uint64_t cas = item_cas(it);
    cache_release(c, it);
    return cas;
}

static struct cache_stats stats(struct cache *c)
{
    struct cache_stats st;
    cache_stats_read(c, &st);
    return st;
}

/* ---- lifecycle ---- */

static void test_create_validates(void **state)
{
    (void)state;
    struct cache *c = (struct cache *)1;
    struct cache_config cfg = {.max_bytes = 1 << 20, .item_size_max = 1 << 20, .shards = 3};
    assert_int_equal(cache_create(&c, &cfg), ST_INVAL);
    assert_null(c);
    cfg.shards = 4;
    cfg.item_size_max = 2 << 20; /* larger than the budget */
    assert_int_equal(cache_create(&c, &cfg), ST_INVAL);
    cfg.item_size_max = 10; /* smaller than any item */
    assert_int_equal(cache_create(&c, &cfg), ST_INVAL);
    cfg.item_size_max = 0; /* default, capped by the budget */
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    cache_destroy(&c);
    assert_null(c);
    cache_destroy(&c);
    cache_destroy(NULL);
}

static size_t bytes_of(struct cache *c, const char *key, uint32_t *flags)
{
    struct item *it = cache_get(c, key, strlen(key), NULL);
    assert_non_null(it);
    size_t n = item_bytes(it);
    *flags = item_flags(it);
    cache_release(c, it);
    return n;
}

/* Items store no "\r\n", and flags only when non-zero (item.h says why);
 * every path that rebuilds an item keeps the flags. */
static void test_item_footprint(void **state)
{
    struct cache *c = *state;
    uint32_t flags;
    assert_int_equal(cache_item_overhead(), 50);
    char v100[101];
    memset(v100, 'v', 100);
    v100[100] = '\0';
    assert_int_equal(set(c, "key:123456", v100), CACHE_STORED);
    assert_int_equal(bytes_of(c, "key:123456", &flags), 50 + 10 + 100);
    assert_int_equal(flags, 0);
    /* The case the layout was cut for: 10-byte keys, 100-byte values. */
    assert_int_equal(mem_usable(50 + 10 + 100), 160);

    assert_int_equal(store(c, CACHE_SET, "f", "abc", 0xdeadbeef, 0), CACHE_STORED);
    assert_int_equal(bytes_of(c, "f", &flags), 50 + 1 + 3 + 4);
    assert_int_equal(flags, 0xdeadbeef);
    assert_int_equal(store(c, CACHE_APPEND, "f", "de", 0, 0), CACHE_STORED);
    check_value(c, "f", "abcde");
    assert_int_equal(bytes_of(c, "f", &flags), 50 + 1 + 5 + 4);
    assert_int_equal(flags, 0xdeadbeef);

    /* incr into a longer number builds a new item. */
    assert_int_equal(store(c, CACHE_SET, "n", "9", 5, 0), CACHE_STORED);
    uint64_t v = 0;
    assert_int_equal(cache_delta(c, "n", 1, true, 1, 0, &v, NULL), CACHE_OK);
    assert_int_equal(v, 10);
    check_value(c, "n", "10");
    assert_int_equal(bytes_of(c, "n", &flags), 50 + 1 + 2 + 4);
    assert_int_equal(flags, 5);
}

/* ---- basic get/set ---- */

static void test_set_get(void **state)
{
    struct cache *c = *state;
    check_miss(c, "k", CACHE_MISS_ABSENT);
    assert_int_equal(store(c, CACHE_SET, "k", "hello", 42, 0), CACHE_STORED);
    struct item *it = cache_get(c, "k", 1, NULL);
    assert_non_null(it);
    assert_int_equal(item_flags(it), 42);
    assert_int_equal(item_exptime(it), 0);
    assert_int_equal(item_class(it), 1);
    cache_release(c, it);
    check_value(c, "k", "hello");
    /* An empty value is a value. */
    assert_int_equal(set(c, "empty", ""), CACHE_STORED);
    check_value(c, "empty", "");
    /* Keys of every legal length, including binary bytes. */
    char key[CACHE_KEY_MAX + 1];
    memset(key, 'x', sizeof(key));
    key[CACHE_KEY_MAX] = '\0';
    assert_int_equal(set(c, key, "long"), CACHE_STORED);
    check_value(c, key, "long");
    key[CACHE_KEY_MAX - 1] = '\0';
    check_miss(c, key, CACHE_MISS_ABSENT);
    /* Overwrite. */
    assert_int_equal(set(c, "k", "world!"), CACHE_STORED);
    check_value(c, "k", "world!");
    assert_int_equal(stats(c).curr_items, 3);
}

static void test_reserve_writes_terminator(void **state)
{
    struct cache *c = *state;
    enum cache_result res;
    struct item *it = cache_reserve(c, "t", 1, 0, 0, 3, &res);
    assert_non_null(it);
    memcpy(item_data_mut(it), "abc", 3); /* caller writes only the value */
    assert_int_equal(cache_commit(c, it, CACHE_SET, 0, NULL), CACHE_STORED);
    check_value(c, "t", "abc");
    /* A reserved item discarded without commit frees its memory. */
    size_t before = stats(c).malloced;
    it = cache_reserve(c, "u", 1, 0, 0, 100, &res);
    assert_non_null(it);
    assert_true(stats(c).malloced > before);
    cache_release(c, it);
    assert_int_equal(stats(c).malloced, before);
    check_miss(c, "u", CACHE_MISS_ABSENT);
}

/* ---- TTL ---- */

static void test_ttl(void **state)
{
    struct cache *c = *state;
    assert_int_equal(store(c, CACHE_SET, "never", "v", 0, 0), CACHE_STORED);
    assert_int_equal(store(c, CACHE_SET, "ten", "v", 0, fake_now + 10), CACHE_STORED);
    assert_int_equal(store(c, CACHE_SET, "now", "v", 0, fake_now), CACHE_STORED);
    assert_int_equal(store(c, CACHE_SET, "past", "v", 0, 1), CACHE_STORED);
    check_miss(c, "now", CACHE_MISS_EXPIRED); /* exptime <= now */
    check_miss(c, "past", CACHE_MISS_EXPIRED);
    check_miss(c, "now", CACHE_MISS_ABSENT); /* unlinked by the first miss */
    fake_now += 9;
    check_value(c, "ten", "v");
    fake_now += 1; /* exptime == now */
    check_miss(c, "ten", CACHE_MISS_EXPIRED);
    fake_now += 10u * 365 * 24 * 3600;
    check_value(c, "never", "v");
    struct cache_stats st = stats(c);
    assert_int_equal(st.curr_items, 1);
    assert_int_equal(st.reclaimed, 3);
    /* "ten" was fetched before it expired; "now" and "past" never were. */
    assert_int_equal(st.expired_unfetched, 2);
    /* Expired items count as absent for every command. */
    assert_int_equal(store(c, CACHE_SET, "e", "1", 0, fake_now + 1), CACHE_STORED);
    fake_now += 1;
    assert_int_equal(cache_touch(c, "e", 1, 0), CACHE_NOT_FOUND);
    assert_int_equal(store(c, CACHE_SET, "e", "1", 0, fake_now + 1), CACHE_STORED);
    fake_now += 1;
    assert_int_equal(cache_delete(c, "e", 1, 0), CACHE_NOT_FOUND);
    assert_int_equal(store(c, CACHE_SET, "e", "1", 0, fake_now + 1), CACHE_STORED);
    fake_now += 1;
    assert_int_equal(cache_delta(c, "e", 1, true, 1, 0, NULL, NULL), CACHE_NOT_FOUND);
    assert_int_equal(store(c, CACHE_SET, "e", "1", 0, fake_now + 1), CACHE_STORED);
    fake_now += 1;
    assert_int_equal(store(c, CACHE_REPLACE, "e", "2", 0, 0), CACHE_NOT_STORED);
    assert_int_equal(store(c, CACHE_ADD, "e", "3", 0, 0), CACHE_STORED);
    check_value(c, "e", "3");
}

static void test_touch_and_gat(void **state)
{
    struct cache *c = *state;
    assert_int_equal(store(c, CACHE_SET, "k", "v", 0, fake_now + 5), CACHE_STORED);
    uint64_t cas = cas_of(c, "k");
    assert_int_equal(cache_touch(c, "k", 1, fake_now + 100), CACHE_OK);
    assert_int_equal(cache_touch(c, "nope", 4, fake_now + 100), CACHE_NOT_FOUND);
    fake_now += 50;
    check_value(c, "k", "v");
    enum cache_miss miss;
    struct item *it = cache_get_and_touch(c, "k", 1, fake_now + 1, &miss);
    assert_non_null(it);
    assert_int_equal(miss, CACHE_MISS_NONE);
    assert_int_equal(item_exptime(it), fake_now + 1);
    unsigned cls = item_class(it);
    cache_release(c, it);
    assert_int_equal(cas_of(c, "k"), cas); /* touch/gat keep the CAS */
    assert_null(cache_get_and_touch(c, "nope", 4, 0, &miss));
    assert_int_equal(miss, CACHE_MISS_ABSENT);
    fake_now += 1;
    check_miss(c, "k", CACHE_MISS_EXPIRED);
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    cache_class_stats_read(c, rows);
    assert_int_equal(rows[cls].touch_hits, 2);
    assert_int_equal(rows[cls].get_hits, 3); /* cas_of twice, check_value */
}

/* ---- store modes ---- */

static void test_store_modes(void **state)
{
    struct cache *c = *state;
    /* ADD: only if absent. */
    assert_int_equal(store(c, CACHE_ADD, "a", "1", 0, 0), CACHE_STORED);
    assert_int_equal(store(c, CACHE_ADD, "a", "2", 0, 0), CACHE_NOT_STORED);
    check_value(c, "a", "1");
    /* REPLACE: only if present. */
    assert_int_equal(store(c, CACHE_REPLACE, "r", "1", 0, 0), CACHE_NOT_STORED);
    check_miss(c, "r", CACHE_MISS_ABSENT);
    assert_int_equal(set(c, "r", "1"), CACHE_STORED);
    assert_int_equal(store(c, CACHE_REPLACE, "r", "2", 5, 0), CACHE_STORED);
    check_value(c, "r", "2");
    /* APPEND/PREPEND: only if present. */
    assert_int_equal(store(c, CACHE_APPEND, "p", "x", 0, 0), CACHE_NOT_STORED);
    assert_int_equal(store(c, CACHE_PREPEND, "p", "x", 0, 0), CACHE_NOT_STORED);
    check_miss(c, "p", CACHE_MISS_ABSENT);
    /* CAS: NOT_FOUND, EXISTS, STORED. */
    uint64_t cas = 0;
    assert_int_equal(store_n(c, CACHE_CAS, "c", "1", 1, 0, 0, 123, NULL), CACHE_NOT_FOUND);
    assert_int_equal(store_n(c, CACHE_SET, "c", "1", 1, 0, 0, 0, &cas), CACHE_STORED);
    assert_int_equal(cas, cas_of(c, "c"));
    assert_int_equal(store_n(c, CACHE_CAS, "c", "2", 1, 0, 0, cas + 1, NULL), CACHE_EXISTS);
    assert_int_equal(store_n(c, CACHE_CAS, "c", "2", 1, 0, 0, 0, NULL), CACHE_EXISTS);
    check_value(c, "c", "1");
    uint64_t cas2 = 0;
    assert_int_equal(store_n(c, CACHE_CAS, "c", "3", 1, 0, 0, cas, &cas2), CACHE_STORED);
    assert_true(cas2 > cas);
    check_value(c, "c", "3");
    assert_int_equal(store_n(c, CACHE_CAS, "c", "4", 1, 0, 0, cas, NULL), CACHE_EXISTS);

    struct item *it = cache_get(c, "c", 1, NULL);
    unsigned cls = item_class(it);
    cache_release(c, it);
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    cache_class_stats_read(c, rows);
    assert_int_equal(rows[cls].cas_hits, 1);
    assert_int_equal(rows[cls].cas_badval, 3);
    /* Every attempt counts as a set, stored or not (13 above). */
    assert_int_equal(rows[cls].cmd_set, 13);
}

static void test_failed_add_bumps_existing(void **state)
{
    (void)state;
    /* One shard, room for about 4 items of ~1 KiB. */
    struct cache *c = new_cache(5000, 1200, 1);
    char val[900];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    assert_int_equal(set(c, "a", val), CACHE_STORED);
    fake_now += 10;
    assert_int_equal(set(c, "b", val), CACHE_STORED);
    fake_now += 10;
    assert_int_equal(set(c, "c", val), CACHE_STORED);
    fake_now += 10;
    /* The failed add moves "a" to the LRU head, so "b" goes first. */
    assert_int_equal(store(c, CACHE_ADD, "a", "zz", 0, 0), CACHE_NOT_STORED);
    assert_int_equal(set(c, "d", val), CACHE_STORED);
    assert_int_equal(set(c, "e", val), CACHE_STORED);
    check_miss(c, "b", CACHE_MISS_ABSENT);
    check_value(c, "a", val);
    cache_destroy(&c);
}

static void test_flushed_counts_as_absent(void **state)
{
    struct cache *c = *state;
    assert_int_equal(set(c, "a", "1"), CACHE_STORED);
    assert_int_equal(set(c, "r", "1"), CACHE_STORED);
    assert_int_equal(set(c, "c", "1"), CACHE_STORED);
    uint64_t cas = cas_of(c, "c");
    cache_flush(c, 0);
    assert_int_equal(store(c, CACHE_ADD, "a", "2", 0, 0), CACHE_STORED);
    check_value(c, "a", "2");
    assert_int_equal(store(c, CACHE_REPLACE, "r", "2", 0, 0), CACHE_NOT_STORED);
    assert_int_equal(store_n(c, CACHE_CAS, "c", "2", 1, 0, 0, cas, NULL), CACHE_NOT_FOUND);
}

/* ---- CAS uniques ---- */

static void test_cas_changes_on_every_modification(void **state)
{
    struct cache *c = *state;
    uint64_t last = 0, cas = 0, seen;
#define EXPECT_NEWER(expr)        \
    do {                          \
        expr;                     \
        seen = cas_of(c, "k");    \
        assert_true(seen > last); \
        last = seen;              \
    } while (0)
    EXPECT_NEWER(assert_int_equal(store_n(c, CACHE_ADD, "k", "1", 1, 0, 0, 0, &cas), CACHE_STORED));
    assert_int_equal(cas, last);
    EXPECT_NEWER(assert_int_equal(set(c, "k", "2"), CACHE_STORED));
    EXPECT_NEWER(assert_int_equal(store(c, CACHE_REPLACE, "k", "3", 0, 0), CACHE_STORED));
    EXPECT_NEWER(
        assert_int_equal(store_n(c, CACHE_CAS, "k", "4", 1, 0, 0, last, NULL), CACHE_STORED));
    EXPECT_NEWER(assert_int_equal(store(c, CACHE_APPEND, "k", "5", 0, 0), CACHE_STORED));
    EXPECT_NEWER(assert_int_equal(store(c, CACHE_PREPEND, "k", "6", 0, 0), CACHE_STORED));
    uint64_t delta_cas = 0;
    EXPECT_NEWER(assert_int_equal(cache_delta(c, "k", 1, true, 1, 0, NULL, &delta_cas), CACHE_OK));
    assert_int_equal(delta_cas, last);
    EXPECT_NEWER(assert_int_equal(cache_delta(c, "k", 1, false, 1, 0, NULL, NULL), CACHE_OK));
    check_value(c, "k", "645");
    /* Reads, touch and gat leave it alone. */
    assert_int_equal(cache_touch(c, "k", 1, fake_now + 100), CACHE_OK);
    struct item *it = cache_get_and_touch(c, "k", 1, fake_now + 200, NULL);
    assert_int_equal(item_cas(it), last);
    cache_release(c, it);
    assert_int_equal(cas_of(c, "k"), last);
    /* Failed modifications leave it alone too. */
    assert_int_equal(store(c, CACHE_ADD, "k", "x", 0, 0), CACHE_NOT_STORED);
    assert_int_equal(store_n(c, CACHE_CAS, "k", "x", 1, 0, 0, last - 1, NULL), CACHE_EXISTS);
    assert_int_equal(cas_of(c, "k"), last);
    /* Uniques are unique across keys. */
    assert_int_equal(set(c, "other", "1"), CACHE_STORED);
    assert_true(cas_of(c, "other") > last);
#undef EXPECT_NEWER
}

/* ---- append / prepend ---- */

static void test_append_prepend(void **state)
{
    struct cache *c = *state;
    assert_int_equal(store(c, CACHE_SET, "k", "mid", 7, fake_now + 100), CACHE_STORED);
    assert_int_equal(store(c, CACHE_APPEND, "k", "-end", 9, fake_now + 5), CACHE_STORED);
    check_value(c, "k", "mid-end");
    assert_int_equal(store(c, CACHE_PREPEND, "k", "start-", 11, 1), CACHE_STORED);
    check_value(c, "k", "start-mid-end");
    struct item *it = cache_get(c, "k", 1, NULL);
    assert_int_equal(item_flags(it), 7);
    assert_int_equal(item_exptime(it), fake_now + 100);
    cache_release(c, it);
    /* Binary data and empty appends. */
    assert_int_equal(store_n(c, CACHE_SET, "b", "a\0b", 3, 0, 0, 0, NULL), CACHE_STORED);
    assert_int_equal(store_n(c, CACHE_APPEND, "b", "\0", 1, 0, 0, 0, NULL), CACHE_STORED);
    assert_int_equal(store_n(c, CACHE_PREPEND, "b", "", 0, 0, 0, 0, NULL), CACHE_STORED);
    check_value_n(c, "b", "a\0b\0", 4);
    assert_int_equal(stats(c).curr_items, 2);
}

static void test_cas_guards_append_and_delta(void **state)
{
    /* memcached's binary protocol may send a CAS with append, prepend and
     * incr/decr: a stale one is refused, a matching one applies. */
    struct cache *c = *state;
    assert_int_equal(set(c, "a", "x"), CACHE_STORED);
    uint64_t cas = cas_of(c, "a");
    assert_int_equal(store_n(c, CACHE_APPEND, "a", "y", 1, 0, 0, cas + 1, NULL), CACHE_EXISTS);
    assert_int_equal(store_n(c, CACHE_PREPEND, "a", "y", 1, 0, 0, cas + 1, NULL), CACHE_EXISTS);
    check_value(c, "a", "x");
    assert_int_equal(store_n(c, CACHE_APPEND, "a", "y", 1, 0, 0, cas, NULL), CACHE_STORED);
    check_value(c, "a", "xy");

    assert_int_equal(set(c, "n", "5"), CACHE_STORED);
    cas = cas_of(c, "n");
    uint64_t v = 0;
    assert_int_equal(cache_delta(c, "n", 1, true, 1, cas + 1, &v, NULL), CACHE_EXISTS);
    check_value(c, "n", "5");
    assert_int_equal(cache_delta(c, "n", 1, true, 1, cas, &v, NULL), CACHE_OK);
    assert_int_equal(v, 6);
}

static void test_delta_empty_value_before_cas(void **state)
{
    /* memcached: an empty value is non-numeric even with a wrong CAS */
    struct cache *c = *state;
    assert_int_equal(set(c, "e", ""), CACHE_STORED);
    uint64_t cas = cas_of(c, "e");
    assert_int_equal(cache_delta(c, "e", 1, true, 1, cas + 1, NULL, NULL), CACHE_NON_NUMERIC);
    assert_int_equal(set(c, "x", "abc"), CACHE_STORED);
    cas = cas_of(c, "x");
    assert_int_equal(cache_delta(c, "x", 1, true, 1, cas + 1, NULL, NULL), CACHE_EXISTS);
    assert_int_equal(cache_delta(c, "x", 1, true, 1, cas, NULL, NULL), CACHE_NON_NUMERIC);
}

static void test_append_too_large(void **state)
{
    (void)state;
    struct cache *c = new_cache(1 << 20, 1024, 4);
    size_t room = 1024 - cache_item_overhead() - 1; /* key "k" */
    char val[1024];
    memset(val, 'a', sizeof(val));
    assert_int_equal(store_n(c, CACHE_SET, "k", val, room - 10, 0, 0, 0, NULL), CACHE_STORED);
    assert_int_equal(store_n(c, CACHE_APPEND, "k", val, 10, 0, 0, 0, NULL), CACHE_STORED);
    check_value_n(c, "k", val, room);
    assert_int_equal(store_n(c, CACHE_APPEND, "k", val, 1, 0, 0, 0, NULL), CACHE_TOO_LARGE);
    assert_int_equal(store_n(c, CACHE_PREPEND, "k", val, 1, 0, 0, 0, NULL), CACHE_TOO_LARGE);
    check_value_n(c, "k", val, room);
    cache_destroy(&c);
}

/* ---- incr / decr ---- */

static enum cache_result delta(struct cache *c, const char *key, bool incr, uint64_t d,
                               uint64_t *out)
{
    return cache_delta(c, key, strlen(key), incr, d, 0, out, NULL);
}

static void test_delta_basic(void **state)
{
    struct cache *c = *state;
    uint64_t v = 0;
    assert_int_equal(delta(c, "n", true, 1, &v), CACHE_NOT_FOUND);
    assert_int_equal(store(c, CACHE_SET, "n", "10", 3, fake_now + 100), CACHE_STORED);
    assert_int_equal(delta(c, "n", true, 5, &v), CACHE_OK);
    assert_int_equal(v, 15);
    check_value(c, "n", "15");
    assert_int_equal(delta(c, "n", false, 6, &v), CACHE_OK);
    assert_int_equal(v, 9);
    check_value(c, "n", "9 "); /* keeps its length, padded */
    assert_int_equal(delta(c, "n", true, 91, &v), CACHE_OK);
    assert_int_equal(v, 100);
    check_value(c, "n", "100"); /* grows to the number's length */
    struct item *it = cache_get(c, "n", 1, NULL);
    assert_int_equal(item_flags(it), 3);
    assert_int_equal(item_exptime(it), fake_now + 100);
    unsigned cls = item_class(it);
    cache_release(c, it);
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    cache_class_stats_read(c, rows);
    assert_int_equal(rows[cls].incr_hits, 2);
    assert_int_equal(rows[cls].decr_hits, 1);
}

static void test_delta_length_rules(void **state)
{
    struct cache *c = *state;
    uint64_t v = 0;
    assert_int_equal(set(c, "a", "100"), CACHE_STORED);
    assert_int_equal(delta(c, "a", false, 1, &v), CACHE_OK);
    assert_int_equal(v, 99);
    check_value(c, "a", "99 ");
    assert_int_equal(set(c, "b", "99"), CACHE_STORED);
    assert_int_equal(delta(c, "b", true, 1, &v), CACHE_OK);
    check_value(c, "b", "100");
    /* Padding from a previous shrink is reused when the number grows back. */
    assert_int_equal(set(c, "c", "1000"), CACHE_STORED);
    assert_int_equal(delta(c, "c", false, 995, &v), CACHE_OK);
    check_value(c, "c", "5   ");
    assert_int_equal(delta(c, "c", true, 95, &v), CACHE_OK);
    check_value(c, "c", "100 ");
    /* Decr floors at 0. */
    assert_int_equal(set(c, "d", "5"), CACHE_STORED);
    assert_int_equal(delta(c, "d", false, 10, &v), CACHE_OK);
    assert_int_equal(v, 0);
    check_value(c, "d", "0");
    assert_int_equal(delta(c, "d", false, UINT64_MAX, &v), CACHE_OK);
    assert_int_equal(v, 0);
    /* Incr wraps at 2^64. */
    assert_int_equal(set(c, "w", "18446744073709551615"), CACHE_STORED);
    assert_int_equal(delta(c, "w", true, 1, &v), CACHE_OK);
    assert_int_equal(v, 0);
    check_value(c, "w", "0                   ");
    assert_int_equal(delta(c, "w", true, 2, &v), CACHE_OK);
    assert_int_equal(v, 2);
    assert_int_equal(set(c, "w2", "18446744073709551610"), CACHE_STORED);
    assert_int_equal(delta(c, "w2", true, UINT64_MAX, &v), CACHE_OK);
    assert_int_equal(v, 18446744073709551609u);
}

static void test_delta_parse(void **state)
{
    struct cache *c = *state;
    static const struct {
        const char *val;
        size_t len;
        bool ok;
        uint64_t plus_one;
    } cases[] = {
        {"0", 1, true, 1},
        {"  12", 4, true, 13}, /* leading whitespace */
        {"\t7", 2, true, 8},
        {"+5", 2, true, 6},     /* optional plus */
        {"12 a", 4, true, 13},  /* stops at whitespace */
        {"12\0x", 4, true, 13}, /* stops at NUL */
        {"12\r\n", 4, true, 13},
        {"007", 3, true, 8},
        {"-0", 2, true, 1}, /* strtoull: not negative as a signed number */
        {"18446744073709551615", 20, true, 0},
        {"-12", 3, false, 0},
        {"-", 1, false, 0},
        {"+", 1, false, 0},
        {"", 0, false, 0},
        {"   ", 3, false, 0},
        {"abc", 3, false, 0},
        {"12a", 3, false, 0},
        {"0x10", 4, false, 0},
        {"1.5", 3, false, 0},
        {"18446744073709551616", 20, false, 0}, /* > 2^64-1 */
        {"99999999999999999999999", 23, false, 0},
        {"\0"
         "12",
         3, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(store_n(c, CACHE_SET, "p", cases[i].val, cases[i].len, 0, 0, 0, NULL),
                         CACHE_STORED);
        uint64_t v = 12345;
        enum cache_result r = delta(c, "p", true, 1, &v);
        if (cases[i].ok) {
            assert_int_equal(r, CACHE_OK);
            assert_int_equal(v, cases[i].plus_one);
        } else {
            assert_int_equal(r, CACHE_NON_NUMERIC);
            check_value_n(c, "p", cases[i].val, cases[i].len); /* untouched */
        }
    }
}

static void test_delta_with_reader(void **state)
{
    struct cache *c = *state;
    uint64_t v, cas0 = 0, cas1 = 0;
    assert_int_equal(store_n(c, CACHE_SET, "n", "100", 3, 5, 0, 0, &cas0), CACHE_STORED);
    struct item *held = cache_get(c, "n", 1, NULL); /* "being sent" */
    assert_int_equal(cache_delta(c, "n", 1, false, 1, 0, &v, &cas1), CACHE_OK);
    assert_true(cas1 > cas0);
    /* The reader still sees the old bytes; the key has the new value with
     * the same length rules. */
    assert_memory_equal(item_value(held), "100", 3);
    assert_int_equal(item_cas(held), cas0);
    check_value(c, "n", "99 ");
    assert_int_equal(cas_of(c, "n"), cas1);
    struct item *now = cache_get(c, "n", 1, NULL);
    assert_int_equal(item_flags(now), 5);
    cache_release(c, now);
    cache_release(c, held);
    assert_int_equal(stats(c).curr_items, 1);
    assert_int_equal(stats(c).malloced, stats(c).bytes);
}

/* An incr result may outgrow a tiny item_size_max (memcached does not
 * check); its class still shows in the stats. */
static void test_delta_beyond_item_size_max(void **state)
{
    (void)state;
    struct cache *c = new_cache(1 << 20, 100, 2);
    const char *key = "a-forty-byte-key-........................";
    assert_int_equal(strlen(key), 41);
    assert_int_equal(store(c, CACHE_SET, key, "1", 0, 0), CACHE_STORED);
    uint64_t v;
    assert_int_equal(cache_delta(c, key, 41, true, 10000000000000000000u, 0, &v, NULL), CACHE_OK);
    check_value(c, key, "10000000000000000001");
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    unsigned top = cache_class_stats_read(c, rows);
    struct item *it = cache_get(c, key, 41, NULL);
    assert_int_equal(top, item_class(it) + 1);
    assert_int_equal(rows[item_class(it)].number, 1);
    assert_int_equal(rows[item_class(it)].bytes, stats(c).bytes);
    cache_release(c, it);
    cache_destroy(&c);
}

/* ---- delete ---- */

/* A fill (a lower tier's record) stores only over an older version and
 * keeps the record's version as its CAS: a late fill never replaces a
 * newer value (the stale-set race). */
static enum cache_result fill(struct cache *c, const char *key, const char *val, uint32_t flags,
                              uint64_t version, uint64_t *cas_out)
{
    enum cache_result res = CACHE_OK;
    struct item *it = cache_reserve_fill(c, key, strlen(key), flags, 0, strlen(val), version, &res);
    assert_non_null(it);
    memcpy(item_data_mut(it), val, strlen(val));
    return cache_commit(c, it, CACHE_FILL, version, cas_out);
}

static void test_fill_is_version_gated(void **state)
{
    struct cache *c = *state;
    uint64_t cas = 0;
    assert_int_equal(fill(c, "k", "v100", 7, 100, &cas), CACHE_STORED);
    assert_int_equal(cas, 100);
    assert_int_equal(cas_of(c, "k"), 100);
    uint32_t flags;
    /* the version costs 8 bytes, after the flags */
    assert_int_equal(bytes_of(c, "k", &flags), cache_item_overhead() + 1 + 4 + 4 + 8);
    assert_int_equal(flags, 7);
    /* older and equal versions lose */
    assert_int_equal(fill(c, "k", "v99", 0, 99, NULL), CACHE_NOT_STORED);
    assert_int_equal(fill(c, "k", "x100", 0, 100, NULL), CACHE_NOT_STORED);
    check_value(c, "k", "v100");
    /* a newer one replaces it */
    assert_int_equal(fill(c, "k", "v200", 0, 200, NULL), CACHE_STORED);
    check_value(c, "k", "v200");
    assert_int_equal(cas_of(c, "k"), 200);
    /* fills are not client stores */
    struct cache_stats st = stats(c);
    assert_int_equal(st.curr_items, 1);
}

/* A filled item's visible CAS is its version: cas and incr compare it;
 * a change in L1 gives it this cache's own CAS. flush_all hides fills
 * whatever their version (which is far above this cache's sequence). */
static void test_fill_cas_and_flush(void **state)
{
    struct cache *c = *state;
    uint64_t big = (uint64_t)1 << 60;
    assert_int_equal(fill(c, "k", "5", 0, big, NULL), CACHE_STORED);
    uint64_t cas = 0;
    assert_int_equal(store_n(c, CACHE_CAS, "k", "6", 1, 0, 0, big - 1, NULL), CACHE_EXISTS);
    assert_int_equal(store_n(c, CACHE_CAS, "k", "6", 1, 0, 0, big, &cas), CACHE_STORED);
    assert_true(cas < big);
    assert_int_equal(fill(c, "n", "41", 0, big + 5, NULL), CACHE_STORED);
    uint64_t v = 0;
    assert_int_equal(cache_delta(c, "n", 1, true, 1, big + 4, &v, NULL), CACHE_EXISTS);
    assert_int_equal(cache_delta(c, "n", 1, true, 1, big + 5, &v, &cas), CACHE_OK);
    assert_int_equal(v, 42);
    assert_true(cas < big);
    assert_int_equal(cas_of(c, "n"), cas);
    assert_int_equal(fill(c, "f", "x", 0, big + 9, NULL), CACHE_STORED);
    cache_flush(c, 0);
    check_miss(c, "f", CACHE_MISS_FLUSHED);
    check_miss(c, "k", CACHE_MISS_FLUSHED);
    /* a fill after the flush is served, however old its version */
    assert_int_equal(fill(c, "f", "y", 0, 3, NULL), CACHE_STORED);
    check_value(c, "f", "y");
}

static void test_delete(void **state)
{
    struct cache *c = *state;
    assert_int_equal(cache_delete(c, "k", 1, 0), CACHE_NOT_FOUND);
    uint64_t cas = 0;
    assert_int_equal(store_n(c, CACHE_SET, "k", "v", 1, 0, 0, 0, &cas), CACHE_STORED);
    assert_int_equal(cache_delete(c, "k", 1, cas + 1), CACHE_EXISTS);
    check_value(c, "k", "v");
    assert_int_equal(cache_delete(c, "k", 1, cas), CACHE_OK);
    check_miss(c, "k", CACHE_MISS_ABSENT);
    assert_int_equal(set(c, "k", "v"), CACHE_STORED);
    assert_int_equal(cache_delete(c, "k", 1, 0), CACHE_OK);
    assert_int_equal(cache_delete(c, "k", 1, 0), CACHE_NOT_FOUND);
    struct cache_stats st = stats(c);
    assert_int_equal(st.curr_items, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.malloced, 0);
}

/* ---- flush_all ---- */

static void test_flush_immediate(void **state)
{
    struct cache *c = *state;
    assert_int_equal(set(c, "a", "1"), CACHE_STORED);
    assert_int_equal(set(c, "b", "2"), CACHE_STORED);
    cache_flush(c, 0);
    assert_int_equal(set(c, "c", "3"), CACHE_STORED);
    check_miss(c, "a", CACHE_MISS_FLUSHED);
    check_miss(c, "a", CACHE_MISS_ABSENT);
    check_value(c, "c", "3");
    assert_int_equal(cache_delta(c, "b", 1, true, 1, 0, NULL, NULL), CACHE_NOT_FOUND);
    /* `at` not in the future is immediate. */
    cache_flush(c, fake_now);
    check_miss(c, "c", CACHE_MISS_FLUSHED);
    assert_int_equal(set(c, "d", "4"), CACHE_STORED);
    cache_flush(c, fake_now - 5);
    check_miss(c, "d", CACHE_MISS_FLUSHED);
    assert_int_equal(stats(c).curr_items, 0);
}

static void test_flush_delayed(void **state)
{
    struct cache *c = *state;
    rel_time_t at = fake_now + 10;
    assert_int_equal(set(c, "before", "1"), CACHE_STORED);
    cache_flush(c, at);
    fake_now += 5;
    assert_int_equal(set(c, "during", "2"), CACHE_STORED);
    fake_now = at - 1;
    check_value(c, "before", "1");
    check_value(c, "during", "2");
    /* The clock reaches `at`: a store in that very second survives. */
    fake_now = at;
    assert_int_equal(set(c, "at", "3"), CACHE_STORED);
    check_miss(c, "before", CACHE_MISS_FLUSHED);
    check_miss(c, "during", CACHE_MISS_FLUSHED);
    check_value(c, "at", "3");
    fake_now = at + 1;
    assert_int_equal(set(c, "after", "4"), CACHE_STORED);
    check_value(c, "at", "3");
    check_value(c, "after", "4");
}

static void test_flush_delayed_first_op_is_get(void **state)
{
    struct cache *c = *state;
    rel_time_t at = fake_now + 10;
    assert_int_equal(set(c, "a", "1"), CACHE_STORED);
    cache_flush(c, at);
    fake_now = at + 3; /* nothing ran at `at` itself */
    check_miss(c, "a", CACHE_MISS_FLUSHED);
    assert_int_equal(set(c, "b", "2"), CACHE_STORED);
    check_value(c, "b", "2");
}

static void test_flush_replaces_pending(void **state)
{
    struct cache *c = *state;
    assert_int_equal(set(c, "a", "1"), CACHE_STORED);
    cache_flush(c, fake_now + 10);
    cache_flush(c, fake_now + 20); /* replaces the first */
    fake_now += 15;
    check_value(c, "a", "1");
    fake_now += 5;
    check_miss(c, "a", CACHE_MISS_FLUSHED);
    /* An immediate flush cancels a pending one. */
    assert_int_equal(set(c, "b", "1"), CACHE_STORED);
    cache_flush(c, fake_now + 10);
    cache_flush(c, 0);
    assert_int_equal(set(c, "c", "1"), CACHE_STORED);
    fake_now += 30;
    check_miss(c, "b", CACHE_MISS_FLUSHED);
    check_value(c, "c", "1");
}

static void test_flush_never_resurrects(void **state)
{
    /* memcached keeps one cutoff that each flush_all overwrites; ours only
     * grows (docs/COMPATIBILITY.md) */
    struct cache *c = *state;
    assert_int_equal(set(c, "a", "1"), CACHE_STORED);
    assert_int_equal(set(c, "b", "1"), CACHE_STORED);
    cache_flush(c, 0);
    cache_flush(c, fake_now + 10); /* a delayed flush after an immediate one */
    check_miss(c, "a", CACHE_MISS_FLUSHED);
    cache_flush(c, CLOCK_LONG_AGO); /* a time before the start */
    check_miss(c, "b", CACHE_MISS_FLUSHED);
    fake_now += 20;
    assert_int_equal(stats(c).curr_items, 0);
}

static void test_flush_before_start_flushes_nothing(void **state)
{
    struct cache *c = *state;
    assert_int_equal(set(c, "a", "1"), CACHE_STORED);
    cache_flush(c, CLOCK_LONG_AGO);
    check_value(c, "a", "1");
    /* ...and drops a pending delayed flush, as any later flush does */
    cache_flush(c, fake_now + 10);
    cache_flush(c, CLOCK_LONG_AGO);
    fake_now += 20;
    check_value(c, "a", "1");
}

/* ---- references ---- */

static void test_reference_outlives_unlink(void **state)
{
    struct cache *c = *state;
    assert_int_equal(set(c, "k", "old"), CACHE_STORED);
    size_t one = stats(c).malloced;
    struct item *held = cache_get(c, "k", 1, NULL);
    struct item *held2 = cache_get(c, "k", 1, NULL);
    assert_ptr_equal(held, held2);
    cache_release(c, held2);
    assert_int_equal(set(c, "k", "new"), CACHE_STORED); /* replaced */
    assert_memory_equal(item_value(held), "old", 3);
    check_value(c, "k", "new");
    assert_int_equal(stats(c).malloced, 2 * one);
    assert_int_equal(stats(c).bytes, one);
    assert_int_equal(cache_delete(c, "k", 1, 0), CACHE_OK);
    assert_memory_equal(item_value(held), "old", 3);
    assert_memory_equal(item_key(held), "k", 1);
    assert_int_equal(stats(c).malloced, one);
    cache_release(c, held);
    assert_int_equal(stats(c).malloced, 0);
    cache_release(c, NULL);
}

static void test_many_references(void **state)
{
    struct cache *c = *state;
    enum { N = 100000 };
    static struct item *refs[N];
    assert_int_equal(set(c, "hot", "v"), CACHE_STORED);
    for (int i = 0; i < N; i++) {
        refs[i] = cache_get(c, "hot", 3, NULL);
        assert_non_null(refs[i]);
    }
    assert_int_equal(cache_delete(c, "hot", 3, 0), CACHE_OK);
    size_t held = stats(c).malloced;
    assert_true(held > 0);
    for (int i = 0; i < N; i++) {
        assert_memory_equal(item_value(refs[i]), "v", 1);
        cache_release(c, refs[i]);
    }
    assert_int_equal(stats(c).malloced, 0);
}

/* ---- limits ---- */

static void test_too_large(void **state)
{
    (void)state;
    struct cache *c = new_cache(1 << 20, 1000, 4);
    enum cache_result res = CACHE_OK;
    size_t fit = 1000 - cache_item_overhead() - 3; /* key "big" */
    struct item *it = cache_reserve(c, "big", 3, 0, 0, fit, &res);
    assert_non_null(it);
    assert_int_equal(res, CACHE_OK);
    cache_release(c, it);
    it = cache_reserve(c, "big", 3, 0, 0, fit + 1, &res);
    assert_null(it);
    assert_int_equal(res, CACHE_TOO_LARGE);
    it = cache_reserve(c, "big", 3, 0, 0, SIZE_MAX - 10, &res);
    assert_null(it);
    assert_int_equal(res, CACHE_TOO_LARGE);
    assert_int_equal(stats(c).malloced, 0);
    cache_destroy(&c);
}

static void test_reserve_failed(void **state)
{
    struct cache *c = *state;
    assert_int_equal(set(c, "k", "v"), CACHE_STORED);
    cache_reserve_failed(c, "k", 1, CACHE_ADD); /* only SET drops the old value */
    check_value(c, "k", "v");
    cache_reserve_failed(c, "k", 1, CACHE_SET);
    check_miss(c, "k", CACHE_MISS_ABSENT);
    cache_reserve_failed(c, "k", 1, CACHE_SET); /* absent: nothing to do */
    assert_int_equal(stats(c).curr_items, 0);
}

/* ---- stats ---- */

static void test_class_stats(void **state)
{
    struct cache *c = *state;
    char val[3000];
    memset(val, 'v', sizeof(val));
    /* The smallest item is class 1. */
    assert_int_equal(store_n(c, CACHE_SET, "s", "", 0, 0, 0, 0, NULL), CACHE_STORED);
    struct item *it = cache_get(c, "s", 1, NULL);
    assert_int_equal(item_class(it), 1);
    cache_release(c, it);
    /* Two bigger items of one class, one of a bigger class. */
    assert_int_equal(store_n(c, CACHE_SET, "m1", val, 90, 0, 0, 0, NULL), CACHE_STORED);
    assert_int_equal(store_n(c, CACHE_SET, "m2", val, 91, 0, 0, 0, NULL), CACHE_STORED);
    fake_now += 7;
    assert_int_equal(store_n(c, CACHE_SET, "L", val, 3000, 0, 0, 0, NULL), CACHE_STORED);
    it = cache_get(c, "m1", 2, NULL);
    unsigned mid = item_class(it);
    cache_release(c, it);
    it = cache_get(c, "L", 1, NULL);
    unsigned big = item_class(it);
    cache_release(c, it);
    assert_true(mid > 1 && big > mid);
    fake_now += 3;

    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    unsigned top = cache_class_stats_read(c, rows);
    assert_int_equal(top, big + 1);
    assert_int_equal(rows[0].number, 0);
    assert_int_equal(rows[1].number, 1);
    /* Chunk sizes are the allocator's size classes, written out rather
     * than computed by mem.h: "s" takes 50 + 1 bytes -> 64; "m1"/"m2"
     * 50 + 2 + 90/91 -> 160. */
    assert_int_equal(cache_item_overhead() + 1, 51);
    assert_int_equal(rows[1].chunk_size, 64);
    assert_int_equal(rows[1].get_hits, 1);
    assert_int_equal(rows[1].cmd_set, 1);
    assert_int_equal(rows[mid].number, 2);
    assert_int_equal(rows[mid].chunk_size, 160);
    assert_int_equal(rows[mid].bytes, 2 * rows[mid].chunk_size);
    assert_int_equal(rows[mid].bytes_requested, 2 * (cache_item_overhead() + 2) + 181);
    assert_int_equal(rows[mid].cmd_set, 2);
    assert_int_equal(rows[mid].get_hits, 1);
    assert_int_equal(rows[big].number, 1);
    assert_int_equal(rows[big].bytes_requested, cache_item_overhead() + 1 + 3000);
    /* Age: "s" and "m2" were last bumped 10 s ago (m1 was bumped by the
     * get), "L" 3 s ago. */
    assert_int_equal(rows[1].age, 10);
    assert_int_equal(rows[mid].age, 10);
    assert_int_equal(rows[big].age, 3);
    for (unsigned k = 2; k < mid; k++)
        assert_int_equal(rows[k].chunk_size, 0);

    struct cache_stats st = stats(c);
    assert_int_equal(st.curr_items, 4);
    assert_int_equal(st.total_items, 4);
    assert_int_equal(st.bytes, rows[1].bytes + rows[mid].bytes + rows[big].bytes);
    assert_int_equal(st.malloced, st.bytes);
    assert_int_equal(st.limit_maxbytes, 64u << 20);
    assert_true(st.hash_bytes > 0);
    assert_int_equal(st.hash_power_level, 16 - 6); /* 2^16 buckets over 64 shards */

    /* Reset zeroes counters, not contents. */
    cache_stats_reset(c);
    cache_class_stats_read(c, rows);
    assert_int_equal(rows[mid].number, 2);
    assert_int_equal(rows[mid].get_hits, 0);
    assert_int_equal(rows[mid].cmd_set, 0);
    st = stats(c);
    assert_int_equal(st.curr_items, 4);
    assert_int_equal(st.total_items, 0);
    assert_int_equal(st.bytes, rows[1].bytes + rows[mid].bytes + rows[big].bytes);
}

/* A class's age is its oldest item's, wherever (in which shard) it is. */
static void test_class_age_across_shards(void **state)
{
    struct cache *c = *state;
    rel_time_t start = fake_now;
    char key[8];
    for (int i = 0; i < 40; i++) {
        key[0] = 'a';
        key[1] = (char)('A' + i);
        key[2] = '\0';
        assert_int_equal(set(c, key, "v"), CACHE_STORED);
        fake_now += 1;
    }
    fake_now += 5;
    struct item *it = cache_get(c, "aA", 2, NULL); /* the oldest, now bumped */
    unsigned cls = item_class(it);
    cache_release(c, it);
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    cache_class_stats_read(c, rows);
    assert_int_equal(rows[cls].number, 40);
    assert_int_equal(rows[cls].age, fake_now - (start + 1)); /* "aB" */
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_create_validates),
        T(test_item_footprint),
        T(test_set_get),
        T(test_reserve_writes_terminator),
        T(test_ttl),
        T(test_touch_and_gat),
        T(test_store_modes),
        T(test_cas_guards_append_and_delta),
        T(test_failed_add_bumps_existing),
        T(test_flushed_counts_as_absent),
        T(test_cas_changes_on_every_modification),
        T(test_append_prepend),
        T(test_delta_empty_value_before_cas),
        T(test_append_too_large),
        T(test_delta_basic),
        T(test_delta_length_rules),
        T(test_delta_parse),
        T(test_delta_with_reader),
        T(test_delta_beyond_item_size_max),
        T(test_fill_is_version_gated),
        T(test_fill_cas_and_flush),
        T(test_delete),
        T(test_flush_immediate),
        T(test_flush_delayed),
        T(test_flush_delayed_first_op_is_get),
        T(test_flush_replaces_pending),
        T(test_flush_never_resurrects),
        T(test_flush_before_start_flushes_nothing),
        T(test_reference_outlives_unlink),
        T(test_many_references),
        T(test_too_large),
        T(test_reserve_failed),
        T(test_class_stats),
        T(test_class_age_across_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
