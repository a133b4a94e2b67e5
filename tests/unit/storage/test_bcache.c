/* test_bcache.c - the LRU block cache (storage/bcache.c): hits and misses,
 * byte budget with least-recently-used eviction, references surviving
 * eviction, per-file erase. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/mem.h"
#include "storage/bcache.h"

/* An empty block: no entries, one restart at offset 0. */
static struct block *mkblock(void)
{
    uint8_t *e = mem_calloc(MEM_STORAGE, 1, 8);
    e[4] = 1;
    struct block *b = NULL;
    assert_int_equal(block_create(e, 8, 8, &b), ST_OK);
    return b;
}

static void test_lru_budget(void **state)
{
    (void)state;
    struct bcache *c = NULL;
    /* 16 shards of 1000 bytes each. */
    assert_int_equal(bcache_create(16000, &c), ST_OK);
    struct block *blocks[200];
    for (int i = 0; i < 200; i++) {
        blocks[i] = mkblock();
        bcache_insert(c, 1, (uint64_t)i * 4096, blocks[i], 100);
    }
    assert_true(bcache_bytes(c) <= 16000);
    assert_true(bcache_bytes(c) >= 8000);
    /* The most recent insert is cached; the very first was evicted. */
    struct block *b = bcache_lookup(c, 1, 199 * 4096);
    assert_ptr_equal(b, blocks[199]);
    block_unref(&b);
    assert_null(bcache_lookup(c, 1, 0));
    uint64_t hits, misses;
    bcache_counters(c, &hits, &misses);
    assert_true(hits == 1 && misses == 1);
    /* Evicted blocks stay valid for their holders. */
    for (int i = 0; i < 200; i++)
        assert_true(atomic_load(&blocks[i]->refs) >= 1);
    bcache_erase_file(c, 1);
    assert_int_equal(bcache_bytes(c), 0);
    for (int i = 0; i < 200; i++)
        block_unref(&blocks[i]);
    /* Entries bigger than a shard are not cached. */
    struct block *big = mkblock();
    bcache_insert(c, 2, 0, big, 5000);
    assert_null(bcache_lookup(c, 2, 0));
    block_unref(&big);
    bcache_destroy(&c);
    assert_null(c);
}

static void test_recency(void **state)
{
    (void)state;
    struct bcache *c = NULL;
    assert_int_equal(bcache_create(16 * 300, &c), ST_OK);
    /* Find three keys of one shard by probing: insert, check eviction. */
    struct block *a = mkblock(), *x;
    bcache_insert(c, 9, 0, a, 100);
    int inserted = 0;
    for (uint64_t off = 1; inserted < 200; off++) {
        x = mkblock();
        bcache_insert(c, 9, off, x, 100);
        block_unref(&x);
        inserted++;
        /* Keep `a` hot. */
        struct block *h = bcache_lookup(c, 9, 0);
        assert_non_null(h);
        block_unref(&h);
    }
    block_unref(&a);
    bcache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_budget),
        cmocka_unit_test(test_recency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
