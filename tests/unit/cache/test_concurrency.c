/*
 * test_concurrency.c - the L1 item store under 4 threads: mixed
 * get/set/delete/incr/append/cas/touch/maintain on overlapping keys under
 * memory pressure (evictions from every shard), with references held across
 * operations; then the counters must match what the threads saw and every
 * key must be readable. Also: concurrent incr on one key loses no update.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "common/mem.h"

#define THREADS 4
#define KEYS 2000
#define OPS 150000
#define MAX_BYTES (512u << 10)
#define HELD_MAX 4

struct worker {
    struct cache *c;
    unsigned id;
    uint64_t rng;
    /* What this thread observed, to compare with the cache's counters. */
    uint64_t get_hits, cmd_set, delete_hits, delta_hits, touch_hits, cas_hits;
    uint64_t no_memory;
    bool failed;
    char why[200];
};

static uint64_t next_rand(struct worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

static void fail_worker(struct worker *w, const char *why, const char *key)
{
    if (!w->failed)
        snprintf(w->why, sizeof(w->why), "thread %u: %s (key %s)", w->id, why, key);
    w->failed = true;
}

static int key_name(char *buf, unsigned k)
{
    return snprintf(buf, 32, "conc:%u", k);
}

/* Values are always a decimal number padded with spaces. */
static bool value_ok(const struct item *it)
{
    const char *v = item_value(it);
    size_t n = item_nvalue(it);
    if (n == 0 || v[0] < '0' || v[0] > '9')
        return false;
    size_t i = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9')
        i++;
    while (i < n && v[i] == ' ')
        i++;
    return i == n;
}

static bool item_ok(const struct item *it, const char *key, int nkey)
{
    return item_nkey(it) == (size_t)nkey && memcmp(item_key(it), key, (size_t)nkey) == 0 &&
           value_ok(it);
}

struct held {
    struct item *it;
    char copy[1024];
    size_t n;
};

static void store(struct worker *w, const char *key, int nkey, enum cache_store_mode mode,
                  uint64_t cas_in)
{
    /* Sets store a number padded with spaces; appends add spaces, so
     * every value stays a number incr/decr accept. */
    size_t len = mode == CACHE_APPEND ? 1 + next_rand(w) % 3 : 1 + next_rand(w) % 900;
    enum cache_result res;
    struct item *it = cache_reserve(w->c, key, (size_t)nkey, w->id, 0, len, &res);
    if (it == NULL) {
        if (res != CACHE_NO_MEMORY)
            fail_worker(w, "reserve failed", key);
        w->no_memory++;
        cache_reserve_failed(w->c, key, (size_t)nkey, mode);
        return;
    }
    char *d = item_data_mut(it);
    memset(d, ' ', len);
    if (mode != CACHE_APPEND) {
        char num[24];
        int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)(next_rand(w) % 100000));
        if ((size_t)n <= len)
            memcpy(d, num, (size_t)n);
        else
            memset(d, '7', len);
    }
    w->cmd_set++;
    enum cache_result r = cache_commit(w->c, it, mode, cas_in, NULL);
    if (r == CACHE_STORED && mode == CACHE_CAS)
        w->cas_hits++;
    if (r == CACHE_NO_MEMORY)
        w->no_memory++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct held held[HELD_MAX];
    memset(held, 0, sizeof(held));
    char key[32];
    for (int op = 0; op < OPS && !w->failed; op++) {
        unsigned k = (unsigned)(next_rand(w) % KEYS);
        int nkey = key_name(key, k);
        unsigned r = (unsigned)(next_rand(w) % 100);
        if (r < 45) {
            enum cache_miss miss;
            struct item *it = cache_get(w->c, key, (size_t)nkey, &miss);
            if (it == NULL)
                continue;
            w->get_hits++;
            if (!item_ok(it, key, nkey)) {
                fail_worker(w, "bad item from get", key);
                cache_release(w->c, it);
                continue;
            }
            /* Hold some references across later operations, as a
             * connection does while it sends. Their bytes must not change
             * under it, whatever happens to the key. */
            struct held *h = &held[next_rand(w) % HELD_MAX];
            if (h->it != NULL) {
                if (memcmp(item_value(h->it), h->copy, h->n) != 0)
                    fail_worker(w, "held item changed", key);
                cache_release(w->c, h->it);
            }
            h->it = it;
            h->n = item_nvalue(it) < sizeof(h->copy) ? item_nvalue(it) : sizeof(h->copy);
            memcpy(h->copy, item_value(it), h->n);
        } else if (r < 65) {
            store(w, key, nkey, CACHE_SET, 0);
        } else if (r < 72) {
            if (cache_delete(w->c, key, (size_t)nkey, 0) == CACHE_OK)
                w->delete_hits++;
        } else if (r < 84) {
            uint64_t v;
            enum cache_result res =
                cache_delta(w->c, key, (size_t)nkey, r & 1, next_rand(w) % 1000, 0, &v, NULL);
            if (res == CACHE_OK || res == CACHE_NO_MEMORY)
                w->delta_hits++; /* counted before the allocation */
            if (res == CACHE_NON_NUMERIC)
                fail_worker(w, "value became non-numeric", key);
            if (res == CACHE_NO_MEMORY)
                w->no_memory++;
        } else if (r < 87) {
            store(w, key, nkey, CACHE_APPEND, 0);
        } else if (r < 89) {
            store(w, key, nkey, CACHE_ADD, 0);
        } else if (r < 91) {
            store(w, key, nkey, CACHE_REPLACE, 0);
        } else if (r < 94) {
            struct item *it = cache_get(w->c, key, (size_t)nkey, NULL);
            if (it == NULL)
                continue;
            w->get_hits++;
            uint64_t cas = item_cas(it);
            cache_release(w->c, it);
            store(w, key, nkey, CACHE_CAS, cas);
        } else if (r < 96) {
            if (cache_touch(w->c, key, (size_t)nkey, 0) == CACHE_OK)
                w->touch_hits++;
        } else if (r < 98) {
            struct item *it = cache_get_and_touch(w->c, key, (size_t)nkey, 0, NULL);
            if (it != NULL) {
                w->touch_hits++;
                if (!item_ok(it, key, nkey))
                    fail_worker(w, "bad item from gat", key);
                cache_release(w->c, it);
            }
        } else if (r < 99) {
            cache_maintain(w->c, 64);
        } else {
            struct cache_stats st;
            cache_stats_read(w->c, &st);
            if (st.malloced > MAX_BYTES)
                fail_worker(w, "over budget", "-");
        }
    }
    for (int i = 0; i < HELD_MAX; i++) {
        if (held[i].it != NULL && memcmp(item_value(held[i].it), held[i].copy, held[i].n) != 0)
            fail_worker(w, "held item changed", "-");
        cache_release(w->c, held[i].it);
    }
    return NULL;
}

static void test_mixed_operations(void **state)
{
    (void)state;
    struct cache_config cfg = {
        .max_bytes = MAX_BYTES,
        .item_size_max = 64 << 10,
        .evictions = true,
        .shards = 8,
        .hashpower_init = 6, /* tables grow while the threads run */
    };
    struct cache *c = NULL;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    struct worker w[THREADS];
    pthread_t tid[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].c = c;
        w[i].id = i;
        w[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
        assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
    }
    uint64_t get_hits = 0, cmd_set = 0, delete_hits = 0, delta_hits = 0, touch_hits = 0;
    uint64_t cas_hits = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(tid[i], NULL), 0);
        if (w[i].failed)
            fail_msg("%s", w[i].why);
        get_hits += w[i].get_hits;
        cmd_set += w[i].cmd_set;
        delete_hits += w[i].delete_hits;
        delta_hits += w[i].delta_hits;
        touch_hits += w[i].touch_hits;
        cas_hits += w[i].cas_hits;
    }

    /* Counters agree with what the threads saw. */
    struct cache_stats st;
    cache_stats_read(c, &st);
    struct cache_class_stats rows[CACHE_CLASSES_MAX];
    unsigned top = cache_class_stats_read(c, rows);
    struct cache_class_stats sum = {0};
    for (unsigned k = 1; k < top; k++) {
        sum.number += rows[k].number;
        sum.bytes += rows[k].bytes;
        sum.get_hits += rows[k].get_hits;
        sum.cmd_set += rows[k].cmd_set;
        sum.delete_hits += rows[k].delete_hits;
        sum.incr_hits += rows[k].incr_hits + rows[k].decr_hits;
        sum.touch_hits += rows[k].touch_hits;
        sum.cas_hits += rows[k].cas_hits;
        sum.evicted += rows[k].evicted;
    }
    assert_int_equal(sum.number, st.curr_items);
    assert_int_equal(sum.bytes, st.bytes);
    assert_int_equal(sum.evicted, st.evictions);
    assert_int_equal(sum.get_hits, get_hits);
    assert_int_equal(sum.cmd_set, cmd_set);
    assert_int_equal(sum.delete_hits, delete_hits);
    assert_int_equal(sum.incr_hits, delta_hits);
    assert_int_equal(sum.touch_hits, touch_hits);
    assert_int_equal(sum.cas_hits, cas_hits);
    assert_true(st.evictions > 0);           /* the budget was under pressure */
    assert_int_equal(st.malloced, st.bytes); /* every reference released */
    assert_true(st.malloced <= MAX_BYTES);
    assert_true(st.curr_items <= KEYS);

    /* Every key still present is well formed. */
    char key[32];
    for (unsigned k = 0; k < KEYS; k++) {
        int nkey = key_name(key, k);
        struct item *it = cache_get(c, key, (size_t)nkey, NULL);
        if (it != NULL) {
            assert_true(item_ok(it, key, nkey));
            cache_release(c, it);
        }
    }
    /* And after a flush every key can be stored and read back. */
    cache_flush(c, 0);
    for (unsigned k = 0; k < KEYS; k++) {
        int nkey = key_name(key, k);
        enum cache_result res;
        struct item *it = cache_reserve(c, key, (size_t)nkey, 0, 0, 1, &res);
        assert_non_null(it);
        memcpy(item_data_mut(it), "5", 1);
        assert_int_equal(cache_commit(c, it, CACHE_SET, 0, NULL), CACHE_STORED);
    }
    for (unsigned k = 0; k < KEYS; k++) {
        int nkey = key_name(key, k);
        struct item *it = cache_get(c, key, (size_t)nkey, NULL);
        assert_non_null(it);
        assert_true(item_ok(it, key, nkey));
        cache_release(c, it);
    }
    cache_destroy(&c);
    assert_int_equal(mem_bytes(MEM_CACHE), 0);
}

struct incr_arg {
    struct cache *c;
    int n;
};

static void *incr_main(void *arg)
{
    struct incr_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        if (cache_delta(a->c, "ctr", 3, true, 1, 0, NULL, NULL) != CACHE_OK)
            return (void *)1;
        /* Readers force the copy path now and then. */
        struct item *it = cache_get(a->c, "ctr", 3, NULL);
        if (it == NULL)
            return (void *)1;
        if (i % 3 == 0)
            cache_delta(a->c, "ctr", 3, false, 0, 0, NULL, NULL);
        cache_release(a->c, it);
    }
    return NULL;
}

static void test_concurrent_incr(void **state)
{
    (void)state;
    struct cache_config cfg = {.max_bytes = 1 << 20, .item_size_max = 1 << 20, .shards = 4};
    struct cache *c = NULL;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    enum cache_result res;
    struct item *it = cache_reserve(c, "ctr", 3, 0, 0, 1, &res);
    memcpy(item_data_mut(it), "0", 1);
    assert_int_equal(cache_commit(c, it, CACHE_SET, 0, NULL), CACHE_STORED);
    pthread_t tid[THREADS];
    struct incr_arg arg = {c, 20000};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&tid[i], NULL, incr_main, &arg), 0);
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        assert_int_equal(pthread_join(tid[i], &ret), 0);
        assert_null(ret);
    }
    uint64_t v = 0;
    assert_int_equal(cache_delta(c, "ctr", 3, false, 0, 0, &v, NULL), CACHE_OK);
    assert_int_equal(v, THREADS * 20000);
    struct cache_stats st;
    cache_stats_read(c, &st);
    assert_int_equal(st.curr_items, 1);
    assert_int_equal(st.malloced, st.bytes);
    cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_operations),
        cmocka_unit_test(test_concurrent_incr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
