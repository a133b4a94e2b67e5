/* test_killpoint.c - SIGKILL at every named kill point (storage/killpoint.h)
 * while a child process writes, then reopen and verify: every acknowledged
 * write present with its latest value, nothing else, no corruption. A short
 * in-process version of the crash driver. tests/module.mk links it against
 * an engine built with kill points in every mode; if they are compiled out
 * anyway the tests fail (a skip would hide that nothing was tested). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "storage/include/lsm.h"
#include "storage/killpoint.h"
#include "testutil.h"

#define NKEYS 300
#define NWRITES 4000

static void options(struct lsm_options *o)
{
    lsm_options_init(o);
    o->memtable_size = 64u << 10;
    o->l0_compaction_trigger = 2;
    o->l1_target_size = 64u << 10;
    o->target_file_size = 64u << 10;
    o->block_size = 4096;
    o->sync_mode = LSM_SYNC_INTERVAL;
    o->sync_interval_writes = 20;
    o->sync_interval_ms = 5;
}

/* Write i: key i % NKEYS := "v<i>" at version i + 1; every 7th write is a
 * delete instead. */
static void key_of(int i, char *k, size_t cap)
{
    snprintf(k, cap, "key%04d", i % NKEYS);
}

static _Noreturn void child(const char *dir, int fd)
{
    struct lsm_options o;
    options(&o);
    struct lsm_db *db = NULL;
    if (lsm_open(dir, &o, &db) != ST_OK)
        _exit(2);
    for (int i = 0; i < NWRITES; i++) {
        char k[32], v[32];
        key_of(i, k, sizeof(k));
        snprintf(v, sizeof(v), "v%d", i);
        enum st_status st;
        struct lsm_version ver = {(uint64_t)i + 1, 1};
        if (i % 7 == 6) {
            st = lsm_delete(db, k, strlen(k), ver, 0);
        } else {
            struct lsm_record r = {.key = (uint8_t *)k,
                                   .key_len = strlen(k),
                                   .value = (uint8_t *)v,
                                   .value_len = strlen(v),
                                   .version = ver};
            st = lsm_put(db, &r);
        }
        if (st != ST_OK)
            _exit(3);
        if (write(fd, &i, sizeof(i)) != sizeof(i))
            _exit(4);
    }
    lsm_close(&db);
    _exit(0);
}

/* Runs one kill scenario; returns whether the child was killed. */
static bool run_point(const char *point, int hit)
{
    char *dir = tu_mkdtemp();
    assert_non_null(dir);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        killpoint_arm(point, hit);
        child(dir, p[1]);
    }
    close(p[1]);
    int acked = -1, i;
    while (read(p[0], &i, sizeof(i)) == sizeof(i))
        acked = i;
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail_msg("%s: child failed with status %d", point, status);

    struct lsm_options o;
    options(&o);
    struct lsm_db *db = NULL;
    for (int round = 0; round < 2; round++) {
        enum st_status st = lsm_open(dir, &o, &db);
        if (st != ST_OK)
            fail_msg("%s#%d: reopen failed: %s", point, hit, st_status_name(st));
        /* The write after the last ack may or may not have happened. */
        for (int key = 0; key < NKEYS; key++) {
            int last = -1, inflight = -1;
            for (int w = key; w <= acked; w += NKEYS)
                last = w;
            int next = acked + 1;
            if (next < NWRITES && next % NKEYS == key)
                inflight = next;
            char k[32];
            key_of(key, k, sizeof(k));
            struct lsm_record *r = NULL;
            st = lsm_get(db, k, strlen(k), 0, &r);
            if (st != ST_OK)
                fail_msg("%s: get %s: %s", point, k, st_status_name(st));
            bool ok = false;
            for (int c = 0; c < 2 && !ok; c++) {
                int w = c == 0 ? last : inflight;
                if (c == 1 && w < 0)
                    break;
                bool want_absent = w < 0 || w % 7 == 6;
                if (want_absent) {
                    ok = r == NULL;
                } else if (r != NULL) {
                    char v[32];
                    snprintf(v, sizeof(v), "v%d", w);
                    ok = r->value_len == strlen(v) && memcmp(r->value, v, r->value_len) == 0;
                }
            }
            if (!ok)
                fail_msg("%s#%d: key %s wrong after crash (acked %d, got %.*s)", point, hit, k,
                         acked, r ? (int)r->value_len : 6, r ? (const char *)r->value : "absent");
            lsm_record_free(&r);
        }
        lsm_close(&db);
    }
    tu_rmtemp(&dir);
    return killed;
}

static void require_kill_points(void)
{
    if (!killpoint_enabled())
        fail_msg("kill points are compiled out: link this test against the engine built "
                 "with -DSTRATA_KILL_POINTS (libstrata_storage_kp.a, tests/module.mk)");
}

static void test_every_kill_point(void **state)
{
    (void)state;
    require_kill_points();
    static const struct {
        const char *name;
        int hit;
    } points[] = {
        {"wal.before_append", 500},      {"wal.after_append", 1500},
        {"wal.after_sync", 30},          {"sst.before_rename", 2},
        {"sst.after_rename", 3},         {"manifest.before_sync", 3},
        {"manifest.after_sync", 4},      {"current.before_rename", 1},
        {"current.after_rename", 1},     {"flush.before_install", 2},
        {"flush.after_install", 3},      {"compaction.before_install", 1},
        {"compaction.after_install", 1}, {"delete.obsolete", 2},
    };
    int killed = 0;
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++)
        killed += run_point(points[i].name, points[i].hit);
    /* Every point is reachable by this workload. */
    assert_int_equal(killed, (int)(sizeof(points) / sizeof(points[0])));
}

static void test_random_kills(void **state)
{
    (void)state;
    require_kill_points();
    /* A few extra cycles at varying depths of the busiest points. */
    const char *names[] = {"wal.after_append", "flush.after_install", "manifest.after_sync"};
    for (int c = 0; c < 6; c++)
        run_point(names[c % 3], 1 + (c * 37) % (c % 3 == 0 ? 3000 : 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kill_point),
        cmocka_unit_test(test_random_kills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
