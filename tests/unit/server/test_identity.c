/*
 * test_identity.c - the node identity file (server/identity.c,
 * docs/formats/identity.md): first start, restarts and generations, wiped
 * and foreign directories, every byte flipped and every truncation refused
 * with the file untouched, a hand-built golden file, the HLC bound and short
 * id rewrites, and crashes and failed syncs through the fault env.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <xxhash.h>

#include "common/ring.h"
#include "server/identity.h"
#include "storage/env.h"
#include "tests/unit/storage/testutil.h"

/* 2024-01-01T00:00:00Z in ms. */
#define T0 UINT64_C(1704067200000)
#define T0_S (T0 / 1000)

struct fx {
    char *dir;
    char node[4200], tmp[4200];
    struct identity_options opt;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp();
    assert_non_null(f->dir);
    snprintf(f->node, sizeof(f->node), "%s/%s", f->dir, IDENTITY_FILE);
    snprintf(f->tmp, sizeof(f->tmp), "%s/%s", f->dir, IDENTITY_TMP_FILE);
    f->opt.env = NULL;
    f->opt.now_ms = T0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmtemp(&f->dir);
    free(f);
    return 0;
}

static enum st_status load(struct fx *f, const char *cluster, uint32_t vnodes, struct identity **id,
                           struct identity_load_info *info)
{
    return identity_load_or_create_opt(&f->opt, f->dir, cluster, vnodes, id, info);
}

/* Loads and expects success with `want`; returns the identity. */
static struct identity *load_ok(struct fx *f, const char *cluster, uint32_t vnodes,
                                enum identity_result want)
{
    struct identity *id = NULL;
    struct identity_load_info info;
    assert_int_equal(load(f, cluster, vnodes, &id, &info), ST_OK);
    assert_int_equal(info.result, want);
    assert_non_null(id);
    return id;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Recomputes the trailing checksum of a file image. */
static void reseal(uint8_t *p, size_t n)
{
    put_u64(p + n - 8, XXH3_64bits(p, n - 8));
}

/* Expects a refused load with `st`/`want`, NODE unchanged (bytes equal to
 * `before`, or still absent when before is NULL) and no NODE.tmp left. */
static void expect_refused(struct fx *f, const char *cluster, uint32_t vnodes, enum st_status st,
                           enum identity_result want, const uint8_t *before, size_t before_len)
{
    struct identity *id = (struct identity *)1;
    struct identity_load_info info;
    assert_int_equal(load(f, cluster, vnodes, &id, &info), st);
    assert_int_equal(info.result, want);
    assert_null(id);
    size_t len = 0;
    unsigned char *now = tu_read_file(f->node, &len);
    if (before == NULL) {
        assert_null(now);
    } else {
        assert_non_null(now);
        assert_int_equal(len, before_len);
        assert_memory_equal(now, before, len);
    }
    free(now);
}

static void test_first_start(void **state)
{
    struct fx *f = *state;
    assert_false(file_exists(f->node));
    struct identity *id = load_ok(f, "prod-eu", RING_DEFAULT_VNODES, IDENTITY_CREATED);
    const uint8_t *nid = identity_id(id);
    assert_int_equal(nid[6] >> 4, 4);      /* UUID version 4 */
    assert_int_equal(nid[8] & 0xc0, 0x80); /* RFC 4122 variant */
    assert_int_not_equal(identity_short_id(id), 0);
    assert_true(identity_generation(id) == T0_S);
    assert_true(identity_created_ms(id) == T0);
    assert_string_equal(identity_cluster_name(id), "prod-eu");
    assert_true(identity_hlc_bound(id) == 0);
    assert_int_equal(identity_vnode_count(id), RING_DEFAULT_VNODES);
    const uint64_t *t = identity_tokens(id);
    for (uint32_t i = 1; i < RING_DEFAULT_VNODES; i++)
        assert_true(t[i] > t[i - 1]); /* sorted and distinct */
    /* Tokens are spread: not all in one small corner of the circle. */
    assert_true(t[RING_DEFAULT_VNODES - 1] - t[0] > UINT64_MAX / 4);

    size_t len = 0;
    unsigned char *b = tu_read_file(f->node, &len);
    assert_non_null(b);
    assert_int_equal(len, 72 + 8 * RING_DEFAULT_VNODES + strlen("prod-eu"));
    assert_memory_equal(b, "STRTNODE", 8);
    free(b);
    assert_false(file_exists(f->tmp));

    /* The ring accepts what the identity describes. */
    struct ring_node rn;
    identity_ring_node(id, &rn);
    assert_memory_equal(rn.id, nid, RING_ID_LEN);
    assert_int_equal(rn.short_id, identity_short_id(id));
    assert_int_equal(rn.ntokens, RING_DEFAULT_VNODES);
    struct ring *r = NULL;
    assert_int_equal(ring_build(&rn, 1, &r), ST_OK);
    assert_int_equal(ring_find(r, nid), 0);
    ring_free(&r);

    identity_destroy(&id);
    assert_null(id);
    identity_destroy(&id); /* NULL is fine */
    identity_destroy(NULL);
}

static void test_one_and_max_vnodes(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "c", RING_MAX_VNODES, IDENTITY_CREATED);
    assert_int_equal(identity_vnode_count(id), RING_MAX_VNODES);
    const uint64_t *t = identity_tokens(id);
    for (uint32_t i = 1; i < RING_MAX_VNODES; i++)
        assert_true(t[i] > t[i - 1]);
    identity_destroy(&id);
    id = load_ok(f, "c", RING_MAX_VNODES, IDENTITY_LOADED);
    assert_int_equal(identity_vnode_count(id), RING_MAX_VNODES);
    identity_destroy(&id);

    tu_rmrf(f->dir);
    id = load_ok(f, "c", 1, IDENTITY_CREATED);
    assert_int_equal(identity_vnode_count(id), 1);
    identity_destroy(&id);
    id = load_ok(f, "c", 1, IDENTITY_LOADED);
    identity_destroy(&id);
}

static void test_restart_keeps_identity(void **state)
{
    struct fx *f = *state;
    struct identity *a = load_ok(f, "prod", 8, IDENTITY_CREATED);
    uint8_t nid[RING_ID_LEN];
    uint64_t tokens[8];
    memcpy(nid, identity_id(a), RING_ID_LEN);
    memcpy(tokens, identity_tokens(a), sizeof(tokens));
    uint16_t sid = identity_short_id(a);
    uint64_t gen = identity_generation(a);
    identity_destroy(&a);

    /* Same second: generation + 1. */
    for (int i = 1; i <= 5; i++) {
        struct identity *b = load_ok(f, "prod", 8, IDENTITY_LOADED);
        assert_memory_equal(identity_id(b), nid, RING_ID_LEN);
        assert_int_equal(identity_short_id(b), sid);
        assert_memory_equal(identity_tokens(b), tokens, sizeof(tokens));
        assert_true(identity_created_ms(b) == T0);
        assert_true(identity_generation(b) == gen + (uint64_t)i);
        assert_string_equal(identity_cluster_name(b), "prod");
        identity_destroy(&b);
    }
    gen += 5;

    /* A later start: the wall clock in seconds, when that is higher. */
    f->opt.now_ms = T0 + 3600 * 1000;
    struct identity *c = load_ok(f, "prod", 8, IDENTITY_LOADED);
    assert_true(identity_generation(c) == T0_S + 3600);
    identity_destroy(&c);
    /* The wall clock stepped back: still stored + 1. */
    f->opt.now_ms = T0 - 86400 * 1000;
    c = load_ok(f, "prod", 8, IDENTITY_LOADED);
    assert_true(identity_generation(c) == T0_S + 3601);
    assert_true(identity_created_ms(c) == T0);
    identity_destroy(&c);
    (void)gen;
}

static void test_restored_backup_generation(void **state)
{
    /* A data directory restored from an old copy still starts a generation
     * above the one peers saw last (the wall clock has moved on). */
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    identity_destroy(&id);
    size_t len = 0;
    unsigned char *backup = tu_read_file(f->node, &len);
    f->opt.now_ms = T0 + 10000;
    for (int i = 0; i < 3; i++) {
        id = load_ok(f, "prod", 4, IDENTITY_LOADED);
        identity_destroy(&id);
    }
    tu_write_file(f->node, backup, len);
    free(backup);
    f->opt.now_ms = T0 + 20000;
    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_true(identity_generation(id) == T0_S + 20);
    identity_destroy(&id);
}

static void test_wiped_dir_new_identity(void **state)
{
    struct fx *f = *state;
    struct identity *a = load_ok(f, "prod", 16, IDENTITY_CREATED);
    assert_int_equal(identity_store_hlc_bound(a, UINT64_C(123456789)), ST_OK);
    uint8_t old[RING_ID_LEN];
    uint64_t old_tokens[16];
    memcpy(old, identity_id(a), RING_ID_LEN);
    memcpy(old_tokens, identity_tokens(a), sizeof(old_tokens));
    identity_destroy(&a);

    tu_rmrf(f->dir); /* wiped, directory gone too: it is recreated */
    assert_false(file_exists(f->dir));
    struct identity *b = load_ok(f, "prod", 16, IDENTITY_CREATED);
    assert_memory_not_equal(identity_id(b), old, RING_ID_LEN);
    assert_memory_not_equal(identity_tokens(b), old_tokens, sizeof(old_tokens));
    assert_true(identity_hlc_bound(b) == 0);
    identity_destroy(&b);

    /* Emptied but kept: the same. */
    unlink(f->node);
    struct identity *c = load_ok(f, "prod", 16, IDENTITY_CREATED);
    identity_destroy(&c);
}

static void test_new_nested_dir(void **state)
{
    struct fx *f = *state;
    char sub[4300];
    snprintf(sub, sizeof(sub), "%s/data/", f->dir); /* trailing slash too */
    struct identity *id = NULL;
    struct identity_load_info info;
    assert_int_equal(identity_load_or_create_opt(&f->opt, sub, "x", 2, &id, &info), ST_OK);
    assert_int_equal(info.result, IDENTITY_CREATED);
    identity_destroy(&id);
    /* A parent that does not exist is not created. */
    snprintf(sub, sizeof(sub), "%s/no/such/dir", f->dir);
    assert_int_equal(identity_load_or_create_opt(&f->opt, sub, "x", 2, &id, &info), ST_IO);
    assert_int_equal(info.result, IDENTITY_ERR_IO);
    assert_null(id);
}

static void test_every_byte_flipped(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod-eu", 4, IDENTITY_CREATED);
    assert_int_equal(identity_store_hlc_bound(id, UINT64_C(0x0123456789abcdef)), ST_OK);
    identity_destroy(&id);
    size_t len = 0;
    unsigned char *good = tu_read_file(f->node, &len);
    assert_non_null(good);
    unsigned char *bad = malloc(len);
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t m = 0; m < sizeof(masks); m++) {
        for (size_t i = 0; i < len; i++) {
            memcpy(bad, good, len);
            bad[i] ^= masks[m];
            tu_write_file(f->node, bad, len);
            /* Every flip is seen: magic, length, then the checksum covers
             * the rest (version included). */
            expect_refused(f, "prod-eu", 4, ST_CORRUPT, IDENTITY_ERR_CORRUPT, bad, len);
        }
    }
    free(bad);
    tu_write_file(f->node, good, len);
    id = load_ok(f, "prod-eu", 4, IDENTITY_LOADED);
    identity_destroy(&id);
    free(good);
}

static void test_truncated_and_extended(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod", 3, IDENTITY_CREATED);
    identity_destroy(&id);
    size_t len = 0;
    unsigned char *good = tu_read_file(f->node, &len);
    for (size_t n = 0; n < len; n++) {
        tu_write_file(f->node, good, n);
        expect_refused(f, "prod", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, good, n);
    }
    /* Extended by garbage, by zeros, by a lot. */
    unsigned char *big = calloc(1, len + 20000);
    memcpy(big, good, len);
    for (size_t extra = 1; extra <= 20000; extra = extra * 7 + 1) {
        tu_write_file(f->node, big, len + extra);
        expect_refused(f, "prod", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, big, len + extra);
    }
    free(big);
    free(good);
}

/* Builds a version-1 file by hand from docs/formats/identity.md. */
static size_t golden(uint8_t *p, uint16_t short_id, const uint64_t *tokens, uint32_t v,
                     const char *cluster)
{
    size_t c = strlen(cluster), n = 72 + 8 * (size_t)v + c;
    memset(p, 0, n);
    memcpy(p, "STRTNODE", 8);
    p[8] = 1;
    p[12] = (uint8_t)n;
    p[13] = (uint8_t)(n >> 8);
    for (int i = 0; i < 16; i++)
        p[16 + i] = (uint8_t)(0xa0 + i);
    p[32] = (uint8_t)short_id;
    p[33] = (uint8_t)(short_id >> 8);
    p[34] = (uint8_t)c;
    p[36] = (uint8_t)v;
    put_u64(p + 40, 77);                       /* generation */
    put_u64(p + 48, T0 - 5000);                /* created */
    put_u64(p + 56, UINT64_C(0xfedcba987654)); /* hlc bound */
    for (uint32_t i = 0; i < v; i++)
        put_u64(p + 64 + 8 * i, tokens[i]);
    memcpy(p + 64 + 8 * v, cluster, c);
    reseal(p, n);
    return n;
}

static void test_golden_file(void **state)
{
    struct fx *f = *state;
    uint8_t p[512];
    const uint64_t tokens[3] = {5, UINT64_C(1) << 40, UINT64_MAX};
    size_t n = golden(p, 0x1234, tokens, 3, "golden");
    tu_write_file(f->node, p, n);
    struct identity *id = load_ok(f, "golden", 3, IDENTITY_LOADED);
    for (int i = 0; i < 16; i++)
        assert_int_equal(identity_id(id)[i], 0xa0 + i);
    assert_int_equal(identity_short_id(id), 0x1234);
    assert_true(identity_generation(id) == T0_S); /* max(77 + 1, now) */
    assert_true(identity_created_ms(id) == T0 - 5000);
    assert_true(identity_hlc_bound(id) == UINT64_C(0xfedcba987654));
    assert_memory_equal(identity_tokens(id), tokens, sizeof(tokens));
    char text[IDENTITY_ID_STR_LEN];
    identity_format_id(identity_id(id), text);
    assert_string_equal(text, "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf");
    identity_destroy(&id);

    /* The rewrite is the same file but for the generation (and checksum). */
    size_t len = 0;
    unsigned char *b = tu_read_file(f->node, &len);
    assert_int_equal(len, n);
    assert_memory_equal(b, p, 40);
    assert_true(get_u64(b + 40) == T0_S);
    assert_memory_equal(b + 48, p + 48, n - 48 - 8);
    free(b);
}

static void test_semantic_checks(void **state)
{
    /* Files with a valid checksum whose fields break the rules. */
    struct fx *f = *state;
    uint8_t p[512];
    const uint64_t asc[3] = {1, 2, 3}, dup[3] = {1, 2, 2}, desc[3] = {3, 2, 1};
    size_t n;

    n = golden(p, 0, asc, 3, "c"); /* short id 0 */
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);
    n = golden(p, 9, dup, 3, "c");
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);
    n = golden(p, 9, desc, 3, "c");
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);
    n = golden(p, 9, asc, 3, "a\tb"); /* control byte in the name */
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);
    n = golden(p, 9, asc, 3, "c");
    put_u64(p + 40, 0); /* generation 0 */
    reseal(p, n);
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);
    n = golden(p, 9, asc, 3, "c");
    p[36] = 2; /* vnode count disagrees with the length */
    reseal(p, n);
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);
    n = golden(p, 9, asc, 3, "c");
    p[34] = 0; /* empty cluster name */
    reseal(p, n);
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);

    /* Not our magic, even with a matching checksum. */
    n = golden(p, 9, asc, 3, "c");
    memcpy(p, "STRTNOD2", 8);
    reseal(p, n);
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, n);

    /* A newer format version: its own result. */
    n = golden(p, 9, asc, 3, "c");
    p[8] = 2;
    reseal(p, n);
    tu_write_file(f->node, p, n);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_VERSION, p, n);

    /* Empty NODE file. */
    tu_write_file(f->node, p, 0);
    expect_refused(f, "c", 3, ST_CORRUPT, IDENTITY_ERR_CORRUPT, p, 0);

    /* Back to a good one. */
    n = golden(p, 9, asc, 3, "c");
    tu_write_file(f->node, p, n);
    struct identity *id = load_ok(f, "c", 3, IDENTITY_LOADED);
    identity_destroy(&id);
}

static void test_cluster_mismatch(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    identity_destroy(&id);
    size_t len = 0;
    unsigned char *b = tu_read_file(f->node, &len);
    expect_refused(f, "staging", 4, ST_INVAL, IDENTITY_ERR_CLUSTER, b, len);
    expect_refused(f, "Prod", 4, ST_INVAL, IDENTITY_ERR_CLUSTER, b, len);
    expect_refused(f, "prod ", 4, ST_INVAL, IDENTITY_ERR_CLUSTER, b, len);
    expect_refused(f, "pro", 4, ST_INVAL, IDENTITY_ERR_CLUSTER, b, len);
    free(b);
    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    identity_destroy(&id);
}

static void test_vnode_count_changed(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    uint64_t tokens[4];
    memcpy(tokens, identity_tokens(id), sizeof(tokens));
    identity_destroy(&id);
    struct identity_load_info info;
    assert_int_equal(load(f, "prod", 32, &id, &info), ST_OK);
    assert_int_equal(info.result, IDENTITY_LOADED);
    assert_true(info.vnodes_differ);
    assert_int_equal(identity_vnode_count(id), 4);
    assert_memory_equal(identity_tokens(id), tokens, sizeof(tokens));
    identity_destroy(&id);
    assert_int_equal(load(f, "prod", 4, &id, &info), ST_OK);
    assert_false(info.vnodes_differ);
    identity_destroy(&id);
}

static void test_missing_with_data(void **state)
{
    struct fx *f = *state;
    static const char *const data[] = {"CURRENT",    "MANIFEST-000001", "000003.sst",
                                       "000004.wal", "000005.sst.tmp",  "CURRENT.tmp",
                                       "README"};
    char p[4400];
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, data[i]);
        tu_write_file(p, "x", 1);
        expect_refused(f, "prod", 4, ST_CORRUPT, IDENTITY_ERR_ORPHAN_DATA, NULL, 0);
        assert_false(file_exists(f->tmp));
        unlink(p);
    }
    /* A subdirectory (the engine or the hint log kept one level down). */
    snprintf(p, sizeof(p), "%s/hints", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    expect_refused(f, "prod", 4, ST_CORRUPT, IDENTITY_ERR_ORPHAN_DATA, NULL, 0);
    rmdir(p);

    /* What may be there before a first start: LOCK, lost+found, NODE.tmp. */
    snprintf(p, sizeof(p), "%s/LOCK", f->dir);
    tu_write_file(p, "", 0);
    snprintf(p, sizeof(p), "%s/lost+found", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    tu_write_file(f->tmp, "half a file", 11);
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    identity_destroy(&id);
    assert_false(file_exists(f->tmp));
}

static void test_leftover_tmp(void **state)
{
    struct fx *f = *state;
    struct identity *a = load_ok(f, "prod", 4, IDENTITY_CREATED);
    uint8_t nid[RING_ID_LEN];
    memcpy(nid, identity_id(a), RING_ID_LEN);
    identity_destroy(&a);
    /* A crash mid-write leaves a partial or garbage NODE.tmp: ignored,
     * replaced by the next write. */
    tu_write_file(f->tmp, "STRTNODE garbage garbage garbage", 32);
    struct identity *b = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_memory_equal(identity_id(b), nid, RING_ID_LEN);
    assert_false(file_exists(f->tmp));
    identity_destroy(&b);
    /* Even a complete, valid NODE.tmp of another identity is not read. */
    struct fx other = {0};
    other.dir = tu_mkdtemp();
    other.opt.now_ms = T0;
    snprintf(other.node, sizeof(other.node), "%s/%s", other.dir, IDENTITY_FILE);
    struct identity *o = load_ok(&other, "prod", 4, IDENTITY_CREATED);
    identity_destroy(&o);
    size_t len = 0;
    unsigned char *ob = tu_read_file(other.node, &len);
    tu_write_file(f->tmp, ob, len);
    free(ob);
    tu_rmtemp(&other.dir);
    b = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_memory_equal(identity_id(b), nid, RING_ID_LEN);
    identity_destroy(&b);
}

static void test_hlc_bound(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    uint64_t gen = identity_generation(id);
    uint16_t sid = identity_short_id(id);
    uint64_t b1 = (T0 + 2500) << 16;
    assert_int_equal(identity_store_hlc_bound(id, b1), ST_OK);
    assert_true(identity_hlc_bound(id) == b1);
    size_t len1 = 0;
    unsigned char *f1 = tu_read_file(f->node, &len1);

    /* Lower or equal: nothing written, the higher bound stands. */
    assert_int_equal(identity_store_hlc_bound(id, b1 - 1), ST_OK);
    assert_int_equal(identity_store_hlc_bound(id, b1), ST_OK);
    assert_int_equal(identity_store_hlc_bound(id, 0), ST_OK);
    assert_true(identity_hlc_bound(id) == b1);
    size_t len2 = 0;
    unsigned char *f2 = tu_read_file(f->node, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(f1, f2, len1);
    free(f1);
    free(f2);

    uint64_t b2 = (T0 + 3500) << 16;
    assert_int_equal(identity_store_hlc_bound(id, b2), ST_OK);
    assert_int_equal(identity_store_hlc_bound(id, UINT64_MAX), ST_OK);
    assert_true(identity_hlc_bound(id) == UINT64_MAX);
    assert_false(file_exists(f->tmp));
    identity_destroy(&id);

    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_true(identity_hlc_bound(id) == UINT64_MAX);
    assert_int_equal(identity_short_id(id), sid);
    assert_true(identity_generation(id) == gen + 1); /* stores left it alone */
    identity_destroy(&id);
}

struct store_thread {
    struct identity *id;
    uint64_t base;
};

static void *store_loop(void *arg)
{
    struct store_thread *t = arg;
    for (uint64_t i = 1; i <= 50; i++)
        if (identity_store_hlc_bound(t->id, t->base + i * 4) != ST_OK)
            return arg;
    return NULL;
}

static void test_concurrent_stores(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod", 16, IDENTITY_CREATED);
    pthread_t th[4];
    struct store_thread st[4];
    for (int i = 0; i < 4; i++) {
        st[i].id = id;
        st[i].base = (uint64_t)i;
        assert_int_equal(pthread_create(&th[i], NULL, store_loop, &st[i]), 0);
    }
    uint16_t sid = 0;
    assert_int_equal(identity_regenerate_short_id(id, NULL, 0, &sid), ST_OK);
    for (int i = 0; i < 4; i++) {
        void *ret = (void *)1;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_null(ret);
    }
    assert_true(identity_hlc_bound(id) == 3 + 200);
    identity_destroy(&id);
    id = load_ok(f, "prod", 16, IDENTITY_LOADED);
    assert_true(identity_hlc_bound(id) == 203);
    assert_int_equal(identity_short_id(id), sid);
    identity_destroy(&id);
}

static void test_regenerate_short_id(void **state)
{
    struct fx *f = *state;
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    assert_int_equal(identity_store_hlc_bound(id, 999), ST_OK);
    uint8_t nid[RING_ID_LEN];
    memcpy(nid, identity_id(id), RING_ID_LEN);
    for (int i = 0; i < 20; i++) {
        uint16_t old = identity_short_id(id), fresh = 0;
        assert_int_equal(identity_regenerate_short_id(id, NULL, 0, &fresh), ST_OK);
        assert_int_not_equal(fresh, 0);
        assert_int_not_equal(fresh, old);
        assert_int_equal(identity_short_id(id), fresh);
    }
    /* Everything taken but one value: that one. */
    uint16_t *taken = malloc(sizeof(uint16_t) * 65536);
    size_t n = 0;
    for (uint32_t v = 0; v <= UINT16_MAX; v++)
        if (v != 4242)
            taken[n++] = (uint16_t)v;
    uint16_t got = 0;
    if (identity_short_id(id) == 4242) /* make 4242 not the current one */
        assert_int_equal(identity_regenerate_short_id(id, NULL, 0, &got), ST_OK);
    assert_int_equal(identity_regenerate_short_id(id, taken, n, &got), ST_OK);
    assert_int_equal(got, 4242);
    /* Only the current one is free: nothing left, nothing changes. */
    got = 7;
    assert_int_equal(identity_regenerate_short_id(id, taken, n, &got), ST_INVAL);
    assert_int_equal(got, 7);
    assert_int_equal(identity_short_id(id), 4242);
    /* A list with duplicates and zeros. */
    taken[0] = 0;
    taken[1] = 0;
    taken[2] = 4242;
    assert_int_equal(identity_regenerate_short_id(id, taken, 3, &got), ST_OK);
    assert_int_not_equal(got, 4242);
    assert_int_not_equal(got, 0);
    free(taken);
    identity_destroy(&id);

    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_int_equal(identity_short_id(id), got);
    assert_memory_equal(identity_id(id), nid, RING_ID_LEN);
    assert_true(identity_hlc_bound(id) == 999);
    identity_destroy(&id);
}

static void test_invalid_args(void **state)
{
    struct fx *f = *state;
    struct identity *id = NULL;
    struct identity_load_info info;
    char longname[IDENTITY_CLUSTER_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(load(f, NULL, 4, &id, &info), ST_INVAL);
    assert_int_equal(info.result, IDENTITY_ERR_ARGS);
    assert_int_equal(load(f, "", 4, &id, &info), ST_INVAL);
    assert_int_equal(load(f, longname, 4, &id, &info), ST_INVAL);
    assert_int_equal(load(f, "a\nb", 4, &id, &info), ST_INVAL);
    assert_int_equal(load(f, "caf\xc3\xa9", 4, &id, &info), ST_INVAL);
    assert_int_equal(load(f, "prod", 0, &id, &info), ST_INVAL);
    assert_int_equal(load(f, "prod", RING_MAX_VNODES + 1, &id, &info), ST_INVAL);
    assert_int_equal(identity_load_or_create_opt(&f->opt, NULL, "prod", 4, &id, &info), ST_INVAL);
    assert_int_equal(identity_load_or_create_opt(&f->opt, "", "prod", 4, &id, &info), ST_INVAL);
    assert_int_equal(info.result, IDENTITY_ERR_ARGS);
    assert_null(id);
    assert_int_equal(load(f, "prod", 4, NULL, NULL), ST_INVAL);
    assert_false(file_exists(f->node));
    /* The longest name is fine. */
    longname[IDENTITY_CLUSTER_MAX] = 0;
    id = load_ok(f, longname, 4, IDENTITY_CREATED);
    assert_string_equal(identity_cluster_name(id), longname);
    identity_destroy(&id);
    id = load_ok(f, longname, 4, IDENTITY_LOADED);
    identity_destroy(&id);
    /* The plain entry point and a NULL info. */
    assert_int_equal(identity_load_or_create(f->dir, longname, 4, &id, NULL), ST_OK);
    assert_true(identity_generation(id) > T0_S); /* real clock, later than 2024 */
    identity_destroy(&id);
    assert_string_equal(identity_result_name(IDENTITY_ERR_CLUSTER), "cluster name mismatch");
}

static void test_not_a_directory(void **state)
{
    struct fx *f = *state;
    char p[4300];
    snprintf(p, sizeof(p), "%s/file", f->dir);
    tu_write_file(p, "x", 1);
    struct identity *id = NULL;
    struct identity_load_info info;
    assert_int_equal(identity_load_or_create_opt(&f->opt, p, "prod", 4, &id, &info), ST_IO);
    assert_int_equal(info.result, IDENTITY_ERR_IO);
    assert_null(id);
}

/* ---- through the fault env ---- */

static void test_failed_store_keeps_old(void **state)
{
    struct fx *f = *state;
    struct lsm_env *env = NULL;
    assert_int_equal(env_fault_create(env_posix(), &env), ST_OK);
    f->opt.env = env;
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    assert_int_equal(identity_store_hlc_bound(id, 100), ST_OK);

    /* The data write fails: NODE keeps 100, no NODE.tmp left. */
    env_fault_fail(env, ENV_FAULT_WRITE, 1, ENOSPC, 0);
    assert_int_equal(identity_store_hlc_bound(id, 200), ST_IO);
    assert_true(identity_hlc_bound(id) == 100);
    assert_false(file_exists(f->tmp));
    /* The file sync fails: the same. */
    env_fault_fail(env, ENV_FAULT_SYNC, 1, EIO, 0);
    assert_int_equal(identity_store_hlc_bound(id, 200), ST_IO);
    assert_true(identity_hlc_bound(id) == 100);
    assert_false(file_exists(f->tmp));
    /* The short id likewise. */
    uint16_t sid = identity_short_id(id), got = 0;
    env_fault_fail(env, ENV_FAULT_SYNC, 1, EIO, 0);
    assert_int_equal(identity_regenerate_short_id(id, NULL, 0, &got), ST_IO);
    assert_int_equal(identity_short_id(id), sid);
    /* The directory sync fails after the rename, then power is lost: the
     * rename is undone and NODE still holds 100. */
    env_fault_fail(env, ENV_FAULT_SYNC, 2, EIO, 0);
    assert_int_equal(identity_store_hlc_bound(id, 300), ST_IO);
    assert_true(identity_hlc_bound(id) == 100);
    identity_destroy(&id);
    assert_int_equal(env_fault_crash(env), ST_OK);
    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_true(identity_hlc_bound(id) == 100);
    assert_int_equal(identity_short_id(id), sid);
    /* Retried after the failure, it works. */
    assert_int_equal(identity_store_hlc_bound(id, 300), ST_OK);
    identity_destroy(&id);
    f->opt.env = NULL;
    env_fault_destroy(&env);
}

static void test_crash_after_store(void **state)
{
    struct fx *f = *state;
    struct lsm_env *env = NULL;
    assert_int_equal(env_fault_create(env_posix(), &env), ST_OK);
    f->opt.env = env;
    struct identity *id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    uint8_t nid[RING_ID_LEN];
    memcpy(nid, identity_id(id), RING_ID_LEN);
    uint64_t gen = identity_generation(id);
    for (uint64_t b = 1; b <= 5; b++) {
        assert_int_equal(identity_store_hlc_bound(id, b * 1000), ST_OK);
        /* Power lost right after each acknowledged store. */
        assert_int_equal(env_fault_crash(env), ST_OK);
        size_t len = 0;
        unsigned char *bytes = tu_read_file(f->node, &len);
        assert_non_null(bytes);
        assert_true(get_u64(bytes + 56) == b * 1000);
        free(bytes);
    }
    identity_destroy(&id);
    /* And right after a start: the generation bump survived. */
    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    identity_destroy(&id);
    assert_int_equal(env_fault_crash(env), ST_OK);
    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_memory_equal(identity_id(id), nid, RING_ID_LEN);
    assert_true(identity_generation(id) == gen + 2);
    assert_true(identity_hlc_bound(id) == 5000);
    identity_destroy(&id);
    f->opt.env = NULL;
    env_fault_destroy(&env);
}

static void test_crash_during_first_start(void **state)
{
    struct fx *f = *state;
    struct lsm_env *env = NULL;
    assert_int_equal(env_fault_create(env_posix(), &env), ST_OK);
    f->opt.env = env;
    /* The directory sync of the first write fails: the start fails, and a
     * power loss then undoes the rename and the creation of NODE.tmp. */
    env_fault_fail(env, ENV_FAULT_SYNC, 2, EIO, 0);
    struct identity *id = NULL;
    struct identity_load_info info;
    assert_int_equal(load(f, "prod", 4, &id, &info), ST_IO);
    assert_int_equal(info.result, IDENTITY_ERR_IO);
    assert_null(id);
    assert_int_equal(env_fault_crash(env), ST_OK);
    assert_false(file_exists(f->node));
    /* That identity never served: the next start makes a fresh one. */
    id = load_ok(f, "prod", 4, IDENTITY_CREATED);
    assert_false(file_exists(f->tmp));
    identity_destroy(&id);

    /* A generation bump that failed leaves the old generation. */
    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    uint64_t gen = identity_generation(id);
    identity_destroy(&id);
    env_fault_fail(env, ENV_FAULT_SYNC, 1, EIO, 0);
    assert_int_equal(load(f, "prod", 4, &id, &info), ST_IO);
    assert_int_equal(env_fault_crash(env), ST_OK);
    id = load_ok(f, "prod", 4, IDENTITY_LOADED);
    assert_true(identity_generation(id) == gen + 1);
    identity_destroy(&id);
    f->opt.env = NULL;
    env_fault_destroy(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_and_max_vnodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restored_backup_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wiped_dir_new_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_nested_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_byte_flipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_and_extended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_golden_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_semantic_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vnode_count_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_with_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftover_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hlc_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regenerate_short_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_store_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_during_first_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
