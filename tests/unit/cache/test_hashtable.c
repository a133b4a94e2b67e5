/*
 * test_hashtable.c - the shard hash table (cache/hashtable.c) on its own,
 * and incremental growth through the public API: 200,000 keys stay
 * retrievable while tables double and after.
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
#include "cache/hashtable.h"
#include "cache/item.h"
#include "common/mem.h"

/* ---- the table on its own ---- */

static struct item *make_item(int i)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "key:%d", i);
    struct item *it = calloc(1, item_total((size_t)n, 0, 0));
    assert_non_null(it);
    it->nkey = (uint8_t)n;
    memcpy(it->data, key, (size_t)n);
    return it;
}

static bool table_has(struct hashtable *ht, struct item *it)
{
    struct item **link = hashtable_find(ht, item_hash(it->data, it->nkey), it->data, it->nkey);
    return link != NULL && *link == it;
}

static void test_table_grows_incrementally(void **state)
{
    (void)state;
    enum { N = 5000 };
    static struct item *items[N];
    struct hashtable ht;
    assert_int_equal(hashtable_init(&ht, 4), ST_OK);
    bool saw_growing = false;
    for (int i = 0; i < N; i++) {
        items[i] = make_item(i);
        hashtable_insert(&ht, items[i], item_hash(items[i]->data, items[i]->nkey));
        /* Load factor bounded by 1.5 (plus what arrives mid-growth). */
        assert_true(ht.count <= hashtable_nbuckets(&ht) * 3);
        if (hashtable_growing(&ht)) {
            saw_growing = true;
            /* Half moved: everything is found in one table or the other. */
            if (ht.migrate_pos == 0 || i % 97 == 0)
                for (int j = 0; j <= i; j++)
                    assert_true(table_has(&ht, items[j]));
        }
        hashtable_migrate(&ht, 1);
    }
    assert_true(saw_growing);
    assert_int_equal(ht.count, N);
    while (hashtable_growing(&ht))
        hashtable_migrate(&ht, 7);
    assert_true(hashtable_nbuckets(&ht) * 3 >= (size_t)N * 2);
    for (int i = 0; i < N; i++)
        assert_true(table_has(&ht, items[i]));
    /* Removal by item and by link, including while growing. */
    for (int i = 0; i < N; i += 2) {
        struct item *it = items[i];
        hashtable_remove(&ht, it, item_hash(it->data, it->nkey));
    }
    for (int i = 1; i < N; i += 2) {
        struct item *it = items[i];
        struct item **link = hashtable_find(&ht, item_hash(it->data, it->nkey), it->data, it->nkey);
        assert_non_null(link);
        hashtable_remove_at(&ht, link);
        assert_false(table_has(&ht, it));
    }
    assert_int_equal(ht.count, 0);
    hashtable_deinit(&ht);
    for (int i = 0; i < N; i++)
        free(items[i]);
}

static void test_table_lookup_while_half_moved(void **state)
{
    (void)state;
    enum { N = 25 };
    struct item *items[N];
    struct hashtable ht;
    assert_int_equal(hashtable_init(&ht, 4), ST_OK); /* grows past 24 items */
    for (int i = 0; i < N; i++) {
        items[i] = make_item(i);
        hashtable_insert(&ht, items[i], item_hash(items[i]->data, items[i]->nkey));
    }
    assert_true(hashtable_growing(&ht));
    size_t bytes_growing = hashtable_bytes(&ht);
    for (int step = 0; hashtable_growing(&ht); step++) {
        for (int i = 0; i < N; i++)
            assert_true(table_has(&ht, items[i]));
        /* A miss is a miss in either table. */
        assert_null(hashtable_find(&ht, item_hash("nope", 4), "nope", 4));
        assert_int_equal(hashtable_migrate(&ht, 1), 1);
    }
    assert_int_equal(hashtable_nbuckets(&ht), 32);
    assert_true(hashtable_bytes(&ht) < bytes_growing);
    assert_int_equal(hashtable_migrate(&ht, 1), 0);
    for (int i = 0; i < N; i++)
        assert_true(table_has(&ht, items[i]));
    hashtable_deinit(&ht);
    for (int i = 0; i < N; i++)
        free(items[i]);
}

/* ---- growth through the cache ---- */

static const char *key_of(int i, char *buf)
{
    snprintf(buf, 32, "growth:%d", i);
    return buf;
}

static void set_int(struct cache *c, int i)
{
    char key[32];
    char val[32];
    key_of(i, key);
    int n = snprintf(val, sizeof(val), "%d", i);
    enum cache_result res;
    struct item *it = cache_reserve(c, key, strlen(key), (uint32_t)i, 0, (size_t)n, &res);
    assert_non_null(it);
    memcpy(item_data_mut(it), val, (size_t)n);
    assert_int_equal(cache_commit(c, it, CACHE_SET, 0, NULL), CACHE_STORED);
}

static void expect_int(struct cache *c, int i)
{
    char key[32];
    char val[32];
    key_of(i, key);
    int n = snprintf(val, sizeof(val), "%d", i);
    struct item *it = cache_get(c, key, strlen(key), NULL);
    if (it == NULL)
        fail_msg("key %s missing", key);
    assert_int_equal(item_nvalue(it), n);
    assert_memory_equal(item_value(it), val, (size_t)n);
    assert_int_equal(item_flags(it), i);
    cache_release(c, it);
}

static void test_growth_200k(void **state)
{
    (void)state;
    enum { N = 200000 };
    struct cache_config cfg = {
        .max_bytes = 256u << 20,
        .item_size_max = 1 << 20,
        .evictions = true,
        .shards = 4,
        .hashpower_init = 4, /* 16 buckets per shard: many doublings */
    };
    struct cache *c = NULL;
    assert_int_equal(cache_create(&c, &cfg), ST_OK);
    struct cache_stats st;
    cache_stats_read(c, &st);
    unsigned power0 = st.hash_power_level;
    int full_checks = 0;
    srand(11);
    for (int i = 0; i < N; i++) {
        set_int(c, i);
        /* Earlier keys, including ones in buckets not yet moved. */
        expect_int(c, rand() % (i + 1));
        if ((i & 255) == 0) {
            cache_stats_read(c, &st);
            if (st.hash_is_expanding && full_checks < 12 && i > 1000) {
                full_checks++;
                for (int j = 0; j <= i; j++)
                    expect_int(c, j);
            }
        }
    }
    assert_true(full_checks >= 6);
    for (int i = 0; i < N; i++)
        expect_int(c, i);
    /* Finish any growth from the maintenance timer, then check again. */
    for (int guard = 0; guard < 100000; guard++) {
        cache_stats_read(c, &st);
        if (!st.hash_is_expanding)
            break;
        cache_maintain(c, 1000);
    }
    cache_stats_read(c, &st);
    assert_false(st.hash_is_expanding);
    assert_int_equal(st.curr_items, N);
    assert_int_equal(st.evictions, 0);
    /* Per shard ~50,000 items at most 1.5 per bucket: 2^16 buckets. */
    assert_true(st.hash_power_level >= 15);
    assert_true(st.hash_power_level > power0);
    assert_true(st.hash_bytes >= 4 * ((size_t)1 << 15) * sizeof(void *));
    for (int i = 0; i < N; i++)
        expect_int(c, i);
    /* Deleting everything works through the grown tables. */
    char key[32];
    for (int i = 0; i < N; i++) {
        key_of(i, key);
        assert_int_equal(cache_delete(c, key, strlen(key), 0), CACHE_OK);
    }
    cache_stats_read(c, &st);
    assert_int_equal(st.curr_items, 0);
    assert_int_equal(st.malloced, 0);
    cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_grows_incrementally),
        cmocka_unit_test(test_table_lookup_while_half_moved),
        cmocka_unit_test(test_growth_200k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
