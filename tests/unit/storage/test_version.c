/* test_version.c - version edits and the manifest (storage/version.c):
 * encode/decode round trip, truncated and bit-flipped edits (ST_CORRUPT,
 * never a crash), manifest replay after a sequence of edits, a torn last
 * manifest record, and overlapping levels refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/mem.h"
#include "storage/filename.h"
#include "storage/version.h"
#include "testutil.h"

struct fx {
    char *dir;
    struct vset *vs;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp();
    assert_int_equal(vset_create(env_posix(), f->dir, &f->vs), ST_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    vset_destroy(&f->vs);
    tu_rmtemp(&f->dir);
    free(f);
    return 0;
}

static size_t key(uint8_t *out, const char *k, uint64_t token)
{
    ikey_encode(out, token, k, strlen(k), (struct lsm_version){1, 0});
    return strlen(k) + IKEY_OVERHEAD;
}

static void add_file(struct version_edit *e, struct vset *vs, int level, uint64_t number,
                     uint64_t lo, uint64_t hi)
{
    uint8_t a[64], b[64];
    size_t al = key(a, "a", lo), bl = key(b, "b", hi);
    assert_int_equal(
        version_edit_add(e, vs, level, number, 1000 + number, a, al, b, bl, 10, 2, 77, 500), ST_OK);
}

static void test_edit_roundtrip_and_corruption(void **state)
{
    struct fx *f = *state;
    struct version_edit e;
    version_edit_init(&e);
    e.has_log_number = true;
    e.log_number = 42;
    e.has_next_file = true;
    e.next_file = 99;
    add_file(&e, f->vs, 0, 7, 1, 5);
    add_file(&e, f->vs, 3, 8, 10, 20);
    assert_int_equal(version_edit_set_newest(&e, 8, (struct lsm_version){1234567, 3}), ST_OK);
    assert_int_equal(version_edit_set_newest(&e, 9, (struct lsm_version){1, 1}), ST_CORRUPT);
    assert_int_equal(version_edit_set_oldest(&e, 8, (struct lsm_version){1200, 9}), ST_OK);
    assert_int_equal(version_edit_set_oldest(&e, 9, (struct lsm_version){1, 1}), ST_CORRUPT);
    assert_int_equal(version_edit_delete(&e, 1, 4), ST_OK);
    struct buf b = {0};
    assert_int_equal(version_edit_encode(&e, &b), ST_OK);
    struct version_edit d;
    version_edit_init(&d);
    assert_int_equal(version_edit_decode(&d, f->vs, b.data, b.len), ST_OK);
    assert_true(d.has_log_number && d.log_number == 42);
    assert_true(d.has_next_file && d.next_file == 99);
    assert_int_equal(d.nadded, 2);
    assert_int_equal(d.added[1].level, 3);
    assert_true(d.added[1].meta->number == 8);
    assert_true(d.added[1].meta->size == 1008);
    assert_true(d.added[1].meta->earliest_expiry == 77);
    assert_memory_equal(d.added[1].meta->largest, e.added[1].meta->largest,
                        e.added[1].meta->largest_len);
    /* The newest version travels (tag 6) only for the file that has one. */
    assert_false(d.added[0].meta->newest_known);
    assert_true(d.added[1].meta->newest_known);
    assert_true(d.added[1].meta->newest.hlc == 1234567 && d.added[1].meta->newest.node == 3);
    /* So does the oldest (tag 7); unknown bounds read as the widest. */
    assert_false(d.added[0].meta->oldest_known);
    assert_true(d.added[1].meta->oldest_known);
    assert_true(d.added[1].meta->oldest.hlc == 1200 && d.added[1].meta->oldest.node == 9);
    assert_true(file_oldest(d.added[0].meta).hlc == 0);
    assert_true(file_newest(d.added[0].meta).hlc == UINT64_MAX);
    assert_int_equal(d.ndeleted, 1);
    assert_true(d.deleted[0].level == 1 && d.deleted[0].number == 4);
    version_edit_deinit(&d);
    /* Truncations: fail cleanly (a cut on a field boundary may decode a
     * shorter valid edit; it never crashes). */
    for (size_t cut = 0; cut < b.len; cut++) {
        version_edit_init(&d);
        enum st_status st = version_edit_decode(&d, f->vs, b.data, cut);
        assert_true(st == ST_OK || st == ST_CORRUPT);
        version_edit_deinit(&d);
    }
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (uint8_t)(1u << bit);
            version_edit_init(&d);
            enum st_status st = version_edit_decode(&d, f->vs, b.data, b.len);
            assert_true(st == ST_OK || st == ST_CORRUPT);
            version_edit_deinit(&d);
            b.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    buf_deinit(&b);
    version_edit_deinit(&e);
    /* Decoded-and-dropped metas queued their numbers: drain the queue. */
    uint64_t *obs;
    size_t n;
    vset_take_obsolete(f->vs, &obs, &n);
    if (obs != NULL)
        mem_free(MEM_STORAGE, obs, n * sizeof(uint64_t));
}

static void test_manifest_replay(void **state)
{
    struct fx *f = *state;
    bool exists = true;
    assert_int_equal(vset_recover(f->vs, &exists), ST_OK);
    assert_false(exists);
    assert_int_equal(vset_write_snapshot(f->vs), ST_OK);
    /* Flushes to L0, then a compaction moving them to L1. */
    for (uint64_t i = 0; i < 3; i++) {
        struct version_edit e;
        version_edit_init(&e);
        uint64_t num = vset_new_file_number(f->vs);
        add_file(&e, f->vs, 0, num, 1, 100);
        e.has_log_number = true;
        e.log_number = num + 1;
        assert_int_equal(vset_log_and_apply(f->vs, &e), ST_OK);
        version_edit_deinit(&e);
    }
    struct version *v = vset_current(f->vs);
    assert_int_equal(v->nfiles[0], 3);
    assert_true(v->files[0][0]->number > v->files[0][1]->number);
    struct version_edit e;
    version_edit_init(&e);
    for (size_t i = 0; i < 3; i++)
        version_edit_delete(&e, 0, v->files[0][i]->number);
    uint64_t out1 = vset_new_file_number(f->vs), out2 = vset_new_file_number(f->vs);
    add_file(&e, f->vs, 1, out1, 1, 50);
    add_file(&e, f->vs, 1, out2, 60, 100);
    version_unref(&v);
    assert_int_equal(vset_log_and_apply(f->vs, &e), ST_OK);
    version_edit_deinit(&e);
    /* An overlapping file in L1 is refused and changes nothing. */
    version_edit_init(&e);
    add_file(&e, f->vs, 1, vset_new_file_number(f->vs), 40, 70);
    assert_int_equal(vset_log_and_apply(f->vs, &e), ST_CORRUPT);
    version_edit_deinit(&e);
    uint64_t log_number = vset_log_number(f->vs);
    uint64_t *obs;
    size_t n;
    vset_take_obsolete(f->vs, &obs, &n);
    assert_true(n >= 3); /* the three L0 files */
    mem_free(MEM_STORAGE, obs, n * sizeof(uint64_t));

    /* Replay in a fresh vset. */
    struct vset *vs2 = NULL;
    assert_int_equal(vset_create(env_posix(), f->dir, &vs2), ST_OK);
    assert_int_equal(vset_recover(vs2, &exists), ST_OK);
    assert_true(exists);
    v = vset_current(vs2);
    assert_int_equal(v->nfiles[0], 0);
    assert_int_equal(v->nfiles[1], 2);
    assert_true(v->files[1][0]->number == out1);
    assert_true(v->files[1][1]->number == out2);
    assert_true(vset_log_number(vs2) == log_number);
    assert_true(vset_new_file_number(vs2) > out2);
    version_unref(&v);

    /* A torn last record is ignored: cut the manifest inside it. */
    char cur[4200];
    snprintf(cur, sizeof(cur), "%s/MANIFEST-%06llu", f->dir,
             (unsigned long long)vset_manifest_number(f->vs));
    size_t len;
    unsigned char *m = tu_read_file(cur, &len);
    tu_write_file(cur, m, len - 3);
    struct vset *vs3 = NULL;
    assert_int_equal(vset_create(env_posix(), f->dir, &vs3), ST_OK);
    assert_int_equal(vset_recover(vs3, &exists), ST_OK);
    v = vset_current(vs3);
    assert_int_equal(v->nfiles[0], 3); /* before the compaction edit */
    version_unref(&v);
    vset_destroy(&vs3);
    /* A flipped byte in an earlier record is corruption. */
    m[LOGFILE_HEADER_SIZE + LOGFILE_RECORD_HEADER + 2] ^= 0x01;
    tu_write_file(cur, m, len);
    assert_int_equal(vset_create(env_posix(), f->dir, &vs3), ST_OK);
    assert_int_equal(vset_recover(vs3, &exists), ST_CORRUPT);
    vset_destroy(&vs3);
    /* CURRENT naming a missing manifest is reported. */
    tu_write_file(cur, m, 0);
    unlink(cur);
    assert_int_equal(vset_create(env_posix(), f->dir, &vs3), ST_OK);
    assert_true(vset_recover(vs3, &exists) != ST_OK);
    vset_destroy(&vs3);
    free(m);
    vset_destroy(&vs2);
}

static void add_bounded(struct version_edit *e, struct vset *vs, int level, uint64_t number,
                        uint64_t lo, uint64_t hi, uint64_t oldest, uint64_t newest)
{
    add_file(e, vs, level, number, lo, hi);
    assert_int_equal(version_edit_set_oldest(e, number, (struct lsm_version){oldest, 0}), ST_OK);
    assert_int_equal(version_edit_set_newest(e, number, (struct lsm_version){newest, 0}), ST_OK);
}

static bool never_input(const struct file_meta *m, const void *arg)
{
    (void)m;
    (void)arg;
    return false;
}

static bool is_listed(const struct file_meta *m, const void *arg)
{
    return m->number == *(const uint64_t *)arg;
}

/* newest_from bounds each level and everything below it; a file outside
 * a compaction may hold an older version only if its range holds the key
 * and its oldest version is not above the one in question. */
static void test_version_bounds(void **state)
{
    struct fx *f = *state;
    bool exists;
    assert_int_equal(vset_recover(f->vs, &exists), ST_OK);
    assert_int_equal(vset_write_snapshot(f->vs), ST_OK);
    struct version_edit e;
    version_edit_init(&e);
    add_bounded(&e, f->vs, 0, 10, 1, 100, 50, 60);  /* L0: versions 50..60 */
    add_bounded(&e, f->vs, 1, 11, 1, 40, 20, 30);   /* L1: 20..30 */
    add_bounded(&e, f->vs, 1, 12, 41, 100, 25, 45); /* L1: 25..45 */
    add_bounded(&e, f->vs, 3, 13, 1, 100, 5, 10);   /* L3: 5..10 */
    assert_int_equal(vset_log_and_apply(f->vs, &e), ST_OK);
    version_edit_deinit(&e);
    struct version *v = vset_current(f->vs);
    assert_true(v->newest_from[0].hlc == 60);
    assert_true(v->newest_from[1].hlc == 45);
    assert_true(v->newest_from[2].hlc == 10);
    assert_true(v->newest_from[3].hlc == 10);
    assert_true(v->newest_from[4].hlc == 0);
    uint8_t k[64];
    size_t kl = key(k, "a", 30); /* token 30, "a": in files 10, 11, 13 */
    struct lsm_version at = {4, 0};
    assert_false(version_older_outside(v, never_input, NULL, k, kl, at)); /* all newer */
    at.hlc = 5;
    assert_true(version_older_outside(v, never_input, NULL, k, kl, at)); /* file 13 */
    uint64_t excl = 13;
    assert_false(version_older_outside(v, is_listed, &excl, k, kl, at));
    at.hlc = 20;
    assert_true(version_older_outside(v, is_listed, &excl, k, kl, at)); /* file 11 */
    kl = key(k, "a", 50); /* in files 10, 12, 13: 12's oldest is 25 */
    at.hlc = 24;
    assert_false(version_older_outside(v, is_listed, &excl, k, kl, at));
    version_unref(&v);
    /* The bounds survive a replay. */
    struct vset *vs2 = NULL;
    assert_int_equal(vset_create(env_posix(), f->dir, &vs2), ST_OK);
    assert_int_equal(vset_recover(vs2, &exists), ST_OK);
    v = vset_current(vs2);
    assert_true(v->newest_from[1].hlc == 45);
    assert_true(v->files[1][1]->oldest_known && v->files[1][1]->oldest.hlc == 25);
    version_unref(&v);
    vset_destroy(&vs2);
}

static void test_manifest_rollover(void **state)
{
    struct fx *f = *state;
    bool exists;
    assert_int_equal(vset_recover(f->vs, &exists), ST_OK);
    assert_int_equal(vset_write_snapshot(f->vs), ST_OK);
    vset_set_manifest_limit(f->vs, 300);
    uint64_t first = vset_manifest_number(f->vs);
    uint64_t nums[20];
    for (int i = 0; i < 20; i++) {
        struct version_edit e;
        version_edit_init(&e);
        nums[i] = vset_new_file_number(f->vs);
        add_file(&e, f->vs, 2, nums[i], (uint64_t)i * 10, (uint64_t)i * 10 + 5);
        assert_int_equal(vset_log_and_apply(f->vs, &e), ST_OK);
        version_edit_deinit(&e);
    }
    assert_true(vset_manifest_number(f->vs) != first);
    assert_int_equal(tu_count_suffix(f->dir, "CURRENT"), 1);
    int manifests = 0;
    DIR *d = opendir(f->dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        manifests += strncmp(de->d_name, "MANIFEST-", 9) == 0;
    closedir(d);
    assert_int_equal(manifests, 1);
    struct vset *vs2 = NULL;
    assert_int_equal(vset_create(env_posix(), f->dir, &vs2), ST_OK);
    assert_int_equal(vset_recover(vs2, &exists), ST_OK);
    struct version *v = vset_current(vs2);
    assert_int_equal(v->nfiles[2], 20);
    for (int i = 0; i < 20; i++)
        assert_true(v->files[2][i]->number == nums[i]);
    version_unref(&v);
    vset_destroy(&vs2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_edit_roundtrip_and_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
