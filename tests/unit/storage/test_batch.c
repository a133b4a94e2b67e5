/* test_batch.c - the WAL batch payload codec (storage/db_write.c,
 * db_batch_encode / db_batch_replay): round trip into a memtable (puts,
 * tombstones, empty values), and every truncation and bit flip of a payload
 * (ST_CORRUPT or a clean decode, never a crash or an out-of-bounds read). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/db_int.h"
#include "storage/ikey.h"
#include "storage/memtable.h"

static size_t make_entries(struct wentry *e, char keys[][16], char vals[][16])
{
    size_t n = 6;
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], 16, "bk%zu", i);
        snprintf(vals[i], 16, "val-%zu", i * 7);
        e[i] = (struct wentry){
            .token = lsm_token(keys[i], strlen(keys[i])),
            .key = (const uint8_t *)keys[i],
            .key_len = strlen(keys[i]),
            .value = (const uint8_t *)vals[i],
            .value_len = i == 2 ? 0 : strlen(vals[i]),
            .flags = (uint32_t)i,
            .expiry = 1000 + i,
            .version = {i + 1, (uint16_t)i},
            .tombstone = i == 4,
        };
        if (e[i].tombstone)
            e[i].value_len = 0;
    }
    return n;
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct wentry e[8];
    char keys[8][16], vals[8][16];
    size_t n = make_entries(e, keys, vals);
    struct buf b = {0};
    assert_int_equal(db_batch_encode(e, n, &b), ST_OK);
    struct memtable *m = NULL;
    assert_int_equal(memtable_create(1u << 20, &m), ST_OK);
    uint64_t seq = 10;
    assert_int_equal(db_batch_replay(m, b.data, b.len, &seq), ST_OK);
    assert_true(seq == 16); /* one sequence number per entry */
    assert_true(memtable_count(m) == 6);
    for (size_t i = 0; i < n; i++) {
        uint8_t ik[IKEY_MAX_LEN];
        ikey_encode(ik, e[i].token, e[i].key, e[i].key_len, e[i].version);
        const uint8_t *fk, *fv;
        size_t fkl, fvl;
        bool found =
            memtable_get(m, ik, e[i].key_len + IKEY_OVERHEAD, UINT64_MAX, &fk, &fkl, &fv, &fvl);
        assert_true(found);
        enum rval_kind kind;
        uint32_t flags;
        uint64_t expiry;
        const uint8_t *v;
        size_t vl;
        assert_true(rval_decode(fv, fvl, &kind, &flags, &expiry, &v, &vl));
        assert_int_equal(kind == RVAL_TOMBSTONE, e[i].tombstone);
        assert_int_equal(flags, e[i].flags);
        assert_true(expiry == e[i].expiry);
        assert_int_equal(vl, e[i].value_len);
        assert_memory_equal(v, e[i].value, vl);
    }
    memtable_unref(&m);
    buf_deinit(&b);
}

static void test_truncated_and_flipped(void **state)
{
    (void)state;
    struct wentry e[8];
    char keys[8][16], vals[8][16];
    size_t n = make_entries(e, keys, vals);
    struct buf b = {0};
    assert_int_equal(db_batch_encode(e, n, &b), ST_OK);
    for (size_t cut = 0; cut < b.len; cut++) {
        struct memtable *m = NULL;
        assert_int_equal(memtable_create(1u << 16, &m), ST_OK);
        uint64_t seq = 0;
        /* An exact copy so ASan sees reads past the cut. */
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b.data, cut);
        assert_int_equal(db_batch_replay(m, copy, cut, &seq), ST_CORRUPT);
        free(copy);
        memtable_unref(&m);
    }
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            struct memtable *m = NULL;
            assert_int_equal(memtable_create(1u << 16, &m), ST_OK);
            uint8_t *copy = malloc(b.len);
            memcpy(copy, b.data, b.len);
            copy[i] ^= (uint8_t)(1u << bit);
            uint64_t seq = 0;
            enum st_status st = db_batch_replay(m, copy, b.len, &seq);
            assert_true(st == ST_OK || st == ST_CORRUPT);
            free(copy);
            memtable_unref(&m);
        }
    }
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncated_and_flipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
