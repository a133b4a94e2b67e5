/* test_db_wal_errors.c - a failing WAL append or fdatasync (fault env):
 * the writer gets ST_IO, the engine turns read-only, and the log line names
 * the call that failed with the errno that call set (stderr is captured). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db_fixture.h"

/* Redirects stderr (where common/log.c writes) into a temporary file. */
struct captured {
    int saved;
    char path[64];
};

static void capture_start(struct captured *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/strata-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Restores stderr; returns what was logged meanwhile (malloc'd). */
static char *capture_stop(struct captured *c)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    size_t len = 0;
    unsigned char *d = tu_read_file(c->path, &len);
    unlink(c->path);
    assert_non_null(d);
    char *s = malloc(len + 1);
    memcpy(s, d, len);
    s[len] = '\0';
    free(d);
    return s;
}

static void expect_logged(const char *log, const char *want, const char *not_want)
{
    if (strstr(log, want) == NULL)
        fail_msg("log lacks \"%s\":\n%s", want, log);
    if (not_want != NULL && strstr(log, not_want) != NULL)
        fail_msg("log has \"%s\":\n%s", not_want, log);
}

static void expect_read_only(struct lsm_db *db)
{
    struct lsm_stats s;
    lsm_stats(db, &s);
    assert_true(s.read_only);
    assert_int_equal(s.bg_error, ST_IO);
}

/* sync=always: the commit's fdatasync fails with ENOSPC (an errno no
 * other call in the path would leave behind). */
static void test_fdatasync_failure(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    open_db(f);
    assert_int_equal(put(f->db, "before", "1", 1), ST_OK);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, ENOSPC, 0);
    struct captured cap;
    capture_start(&cap);
    enum st_status st = put(f->db, "k", "2", 1);
    char *log = capture_stop(&cap);
    assert_int_equal(st, ST_IO);
    expect_logged(log, "WAL fdatasync failed: No space left on device", "WAL write failed");
    free(log);
    expect_read_only(f->db);
    expect(f->db, "k", NULL);
    expect(f->db, "before", "1");
}

/* The append itself fails: named as the write, with its errno. */
static void test_write_failure(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    open_db(f);
    env_fault_fail(f->fenv, ENV_FAULT_WRITE, 1, EIO, 0);
    struct captured cap;
    capture_start(&cap);
    enum st_status st = put(f->db, "k", "1", 1);
    char *log = capture_stop(&cap);
    assert_int_equal(st, ST_IO);
    expect_logged(log, "WAL write failed: Input/output error", "fdatasync");
    free(log);
    expect_read_only(f->db);
}

/* sync=interval: whichever sync comes first (the commit's, or the
 * background syncer's) fails; writes are refused from then on. */
static void test_interval_fdatasync_failure(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_INTERVAL;
    f->o.sync_interval_ms = 5;
    f->o.sync_interval_writes = 1000000;
    open_db(f);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 0);
    struct captured cap;
    capture_start(&cap);
    enum st_status st = ST_OK;
    /* Writes until one is refused (5 s at most). */
    for (int i = 0; i < 500 && st == ST_OK; i++) {
        st = put(f->db, "k", "v", (uint64_t)i + 1);
        if (st == ST_OK)
            usleep(10000);
    }
    char *log = capture_stop(&cap);
    assert_int_equal(st, ST_IO);
    expect_logged(log, "WAL fdatasync failed: Input/output error", "WAL write failed");
    free(log);
    expect_read_only(f->db);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fdatasync_failure),
        T(test_write_failure),
        T(test_interval_fdatasync_failure),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
