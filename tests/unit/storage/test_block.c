/* test_block.c - data/index blocks with prefix-compressed keys and restart
 * points (storage/block.c): round trip, seek, and truncated or bit-flipped
 * contents (ST_CORRUPT, never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/mem.h"
#include "storage/block.h"
#include "storage/ikey.h"

/* Keys with one token (long shared prefixes), sorted by construction. */
static size_t mk(uint8_t *out, int i)
{
    char key[32];
    int l = snprintf(key, sizeof(key), "user:%06d", i);
    ikey_encode(out, 77, key, (size_t)l, (struct lsm_version){100, 1});
    return (size_t)l + IKEY_OVERHEAD;
}

static struct block *build(int n, struct buf *copy, uint32_t interval)
{
    struct block_builder b = {0};
    block_builder_reset(&b);
    b.restart_interval = interval;
    for (int i = 0; i < n; i++) {
        uint8_t k[64];
        size_t kl = mk(k, i * 2);
        char v[32];
        int vl = snprintf(v, sizeof(v), "value-%d", i);
        assert_int_equal(block_builder_add(&b, k, kl, (uint8_t *)v, (size_t)vl), ST_OK);
    }
    assert_int_equal(block_builder_finish(&b), ST_OK);
    if (copy != NULL) {
        copy->len = 0;
        buf_append(copy, b.data.data, b.data.len);
    }
    uint8_t *d = mem_alloc(MEM_STORAGE, b.data.len);
    memcpy(d, b.data.data, b.data.len);
    struct block *blk = NULL;
    assert_int_equal(block_create(d, b.data.len, b.data.len, &blk), ST_OK);
    block_builder_deinit(&b);
    return blk;
}

static void roundtrip_and_seek(uint32_t interval)
{
    enum { N = 1000 };
    struct block *blk = build(N, NULL, interval);
    struct block_iter it;
    block_iter_init(&it, blk);
    block_iter_seek_first(&it);
    for (int i = 0; i < N; i++) {
        assert_true(it.valid);
        uint8_t k[64];
        size_t kl = mk(k, i * 2);
        assert_int_equal(it.key_len, kl);
        assert_memory_equal(it.key, k, kl);
        char v[32];
        int vl = snprintf(v, sizeof(v), "value-%d", i);
        assert_int_equal(it.value_len, (size_t)vl);
        assert_memory_equal(it.value, v, (size_t)vl);
        block_iter_next(&it);
    }
    assert_false(it.valid);
    assert_int_equal(block_iter_status(&it), ST_OK);
    /* Seek to present and absent (odd) keys. */
    for (int t = -1; t < 2 * N + 1; t++) {
        uint8_t k[64];
        size_t kl = mk(k, t < 0 ? 0 : t);
        block_iter_seek(&it, k, kl);
        int want = t < 0 ? 0 : (t + 1) / 2;
        if (want >= N) {
            assert_false(it.valid);
            continue;
        }
        assert_true(it.valid);
        uint8_t w[64];
        size_t wl = mk(w, want * 2);
        assert_memory_equal(it.key, w, wl);
    }
    block_iter_deinit(&it);
    block_unref(&blk);
    assert_null(blk);
}

/* Data blocks (a restart per 16 entries), index blocks (every entry) and
 * an odd interval: seeks binary-search the restarts in place. */
static void test_roundtrip_and_seek(void **state)
{
    (void)state;
    roundtrip_and_seek(0);
    roundtrip_and_seek(1);
    roundtrip_and_seek(3);
}

/* A restart offset that names an entry sharing bytes with its predecessor
 * (possible only in a corrupt block) is reported, not followed. */
static void test_restart_into_shared_entry(void **state)
{
    (void)state;
    struct buf good = {0};
    struct block *blk = build(40, &good, 0);
    block_unref(&blk);
    /* Point the second restart (entry 16) at entry 1, which shares the
     * key prefix with entry 0; entry 1 starts where a one-entry block's
     * restart array does. */
    struct block *solo = build(1, NULL, 0);
    size_t second_entry = solo->restarts_off;
    block_unref(&solo);
    uint32_t nrestarts = dec_u32le(good.data + good.len - 4);
    assert_int_equal(nrestarts, 3);
    size_t roff = good.len - 4 - 4 * (size_t)nrestarts;
    enc_u32le(good.data + roff + 4, (uint32_t)second_entry);
    uint8_t *d = mem_alloc(MEM_STORAGE, good.len);
    memcpy(d, good.data, good.len);
    struct block *b = NULL;
    assert_int_equal(block_create(d, good.len, good.len, &b), ST_OK);
    struct block_iter it;
    block_iter_init(&it, b);
    uint8_t k[64];
    size_t kl = mk(k, 70);
    block_iter_seek(&it, k, kl);
    assert_false(it.valid);
    assert_int_equal(block_iter_status(&it), ST_CORRUPT);
    block_iter_deinit(&it);
    block_unref(&b);
    buf_deinit(&good);
}

static void scan_all(struct block *blk)
{
    struct block_iter it;
    block_iter_init(&it, blk);
    block_iter_seek_first(&it);
    int n = 0;
    while (it.valid && n < 100000) {
        block_iter_next(&it);
        n++;
    }
    uint8_t k[64];
    size_t kl = mk(k, 500);
    block_iter_seek(&it, k, kl);
    assert_true(block_iter_status(&it) == ST_OK || block_iter_status(&it) == ST_CORRUPT);
    block_iter_deinit(&it);
}

static void truncated_and_flipped(uint32_t interval)
{
    struct buf good = {0};
    struct block *blk = build(100, &good, interval);
    block_unref(&blk);
    for (size_t cut = 0; cut < good.len; cut++) {
        uint8_t *d = mem_alloc(MEM_STORAGE, cut ? cut : 1);
        memcpy(d, good.data, cut);
        struct block *b = NULL;
        enum st_status st = block_create(d, cut, cut ? cut : 1, &b);
        assert_true(st == ST_OK || st == ST_CORRUPT);
        if (st == ST_OK) {
            scan_all(b);
            block_unref(&b);
        }
    }
    for (size_t i = 0; i < good.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *d = mem_alloc(MEM_STORAGE, good.len);
            memcpy(d, good.data, good.len);
            d[i] ^= (uint8_t)(1u << bit);
            struct block *b = NULL;
            enum st_status st = block_create(d, good.len, good.len, &b);
            assert_true(st == ST_OK || st == ST_CORRUPT);
            if (st == ST_OK) {
                scan_all(b);
                block_unref(&b);
            }
        }
    }
    buf_deinit(&good);
}

static void test_truncated_and_flipped(void **state)
{
    (void)state;
    truncated_and_flipped(0);
    truncated_and_flipped(1);
}

static void test_empty_block(void **state)
{
    (void)state;
    struct block_builder b = {0};
    block_builder_reset(&b);
    assert_int_equal(block_builder_finish(&b), ST_OK);
    uint8_t *d = mem_alloc(MEM_STORAGE, b.data.len);
    memcpy(d, b.data.data, b.data.len);
    struct block *blk = NULL;
    assert_int_equal(block_create(d, b.data.len, b.data.len, &blk), ST_OK);
    struct block_iter it;
    block_iter_init(&it, blk);
    block_iter_seek_first(&it);
    assert_false(it.valid);
    block_iter_deinit(&it);
    block_unref(&blk);
    block_builder_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_seek),
        cmocka_unit_test(test_restart_into_shared_entry),
        cmocka_unit_test(test_truncated_and_flipped),
        cmocka_unit_test(test_empty_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
