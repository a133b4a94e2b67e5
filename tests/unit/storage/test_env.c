/* test_env.c - the POSIX env and the fault-injecting env (storage/env.h):
 * unsynced data dropped, unsynced creations/renames/unlinks undone by a
 * simulated crash (and counted before it), Nth write/sync failing with the
 * chosen errno. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storage/env.h"
#include "testutil.h"

struct fx {
    char *dir;
    struct lsm_env *env;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp();
    assert_int_equal(env_fault_create(env_posix(), &f->env), ST_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    env_fault_destroy(&f->env);
    assert_null(f->env);
    tu_rmtemp(&f->dir);
    free(f);
    return 0;
}

static void path_of(const struct fx *f, const char *name, char *out)
{
    snprintf(out, 4200, "%s/%s", f->dir, name);
}

static void write_str(struct lsm_env *env, const char *path, const char *s, bool sync)
{
    struct env_file *file = NULL;
    assert_int_equal(env->open(env, path, ENV_OPEN_CREATE, &file), ST_OK);
    assert_int_equal(env->append(env, file, s, strlen(s)), ST_OK);
    if (sync)
        assert_int_equal(env->sync(env, file), ST_OK);
    env->close(env, file);
}

static void test_posix_basics(void **state)
{
    struct fx *f = *state;
    struct lsm_env *env = env_posix();
    char p[4200], q[4200];
    path_of(f, "a", p);
    path_of(f, "b", q);
    write_str(env, p, "hello", true);
    struct env_file *file = NULL;
    assert_int_equal(env->open(env, p, ENV_OPEN_APPEND, &file), ST_OK);
    assert_int_equal(env->append(env, file, " world", 6), ST_OK);
    env->close(env, file);
    assert_int_equal(env->open(env, p, ENV_OPEN_READ, &file), ST_OK);
    uint64_t size;
    assert_int_equal(env->size(env, file, &size), ST_OK);
    assert_int_equal(size, 11);
    char buf[32];
    size_t got;
    assert_int_equal(env->pread(env, file, buf, sizeof(buf), 6, &got), ST_OK);
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "world", 5);
    env->close(env, file);
    assert_int_equal(env->rename(env, p, q), ST_OK);
    int ex;
    assert_int_equal(env->exists(env, p, &ex), ST_OK);
    assert_false(ex);
    assert_int_equal(env->exists(env, q, &ex), ST_OK);
    assert_true(ex);
    assert_int_equal(env->sync_dir(env, f->dir), ST_OK);
    assert_int_equal(env->unlink(env, q), ST_OK);
    assert_int_equal(env->open(env, q, ENV_OPEN_READ, &file), ST_IO);
    assert_int_equal(errno, ENOENT);
    /* The lock is exclusive within the process too (flock per open). */
    struct env_lock *l1 = NULL, *l2 = NULL;
    path_of(f, "LOCK", p);
    assert_int_equal(env->lock(env, p, &l1), ST_OK);
    assert_int_equal(env->lock(env, p, &l2), ST_IO);
    env->unlock(env, l1);
    assert_int_equal(env->lock(env, p, &l2), ST_OK);
    env->unlock(env, l2);
}

static void test_crash_drops_unsynced(void **state)
{
    struct fx *f = *state;
    char p[4200];
    path_of(f, "data", p);
    struct env_file *file = NULL;
    assert_int_equal(f->env->open(f->env, p, ENV_OPEN_CREATE, &file), ST_OK);
    assert_int_equal(f->env->append(f->env, file, "synced", 6), ST_OK);
    assert_int_equal(env_fault_unsynced_bytes(f->env), 6);
    assert_int_equal(f->env->sync(f->env, file), ST_OK);
    assert_int_equal(env_fault_unsynced_bytes(f->env), 0);
    assert_int_equal(f->env->sync_dir(f->env, f->dir), ST_OK);
    assert_int_equal(f->env->append(f->env, file, "-lost", 5), ST_OK);
    f->env->close(f->env, file);
    /* What the crash is about to cut off. */
    assert_int_equal(env_fault_unsynced_bytes(f->env), 5);
    assert_int_equal(env_fault_crash(f->env), ST_OK);
    assert_int_equal(env_fault_unsynced_bytes(f->env), 0);
    size_t len;
    unsigned char *d = tu_read_file(p, &len);
    assert_non_null(d);
    assert_int_equal(len, 6);
    assert_memory_equal(d, "synced", 6);
    free(d);
}

static void test_crash_undoes_dir_ops(void **state)
{
    struct fx *f = *state;
    char a[4200], b[4200], c[4200];
    path_of(f, "a", a);
    path_of(f, "b", b);
    path_of(f, "c", c);
    /* durable: a = "old" */
    write_str(f->env, a, "old", true);
    assert_int_equal(f->env->sync_dir(f->env, f->dir), ST_OK);
    /* not durable: b created and renamed over a; c created and synced but
     * its directory entry never synced. */
    write_str(f->env, b, "new", true);
    assert_int_equal(f->env->rename(f->env, b, a), ST_OK);
    write_str(f->env, c, "ccc", true);
    assert_int_equal(env_fault_crash(f->env), ST_OK);
    size_t len;
    unsigned char *d = tu_read_file(a, &len);
    assert_non_null(d);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "old", 3);
    free(d);
    assert_null(tu_read_file(b, &len));
    assert_null(tu_read_file(c, &len));

    /* An unlink not followed by a dir sync comes back. */
    assert_int_equal(f->env->unlink(f->env, a), ST_OK);
    assert_null(tu_read_file(a, &len));
    assert_int_equal(env_fault_crash(f->env), ST_OK);
    d = tu_read_file(a, &len);
    assert_non_null(d);
    assert_memory_equal(d, "old", 3);
    free(d);

    /* After a dir sync the rename is durable. */
    write_str(f->env, b, "new", true);
    assert_int_equal(f->env->rename(f->env, b, a), ST_OK);
    assert_int_equal(f->env->sync_dir(f->env, f->dir), ST_OK);
    assert_int_equal(env_fault_crash(f->env), ST_OK);
    d = tu_read_file(a, &len);
    assert_memory_equal(d, "new", 3);
    free(d);
}

static void test_fail_nth(void **state)
{
    struct fx *f = *state;
    char p[4200];
    path_of(f, "x", p);
    struct env_file *file = NULL;
    assert_int_equal(f->env->open(f->env, p, ENV_OPEN_CREATE, &file), ST_OK);
    env_fault_fail(f->env, ENV_FAULT_WRITE, 3, ENOSPC, 0);
    assert_int_equal(f->env->append(f->env, file, "1", 1), ST_OK);
    assert_int_equal(f->env->append(f->env, file, "2", 1), ST_OK);
    assert_int_equal(f->env->append(f->env, file, "3", 1), ST_IO);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(f->env->append(f->env, file, "4", 1), ST_OK);
    env_fault_fail(f->env, ENV_FAULT_SYNC, 1, EIO, 1);
    assert_int_equal(f->env->sync(f->env, file), ST_IO);
    assert_int_equal(errno, EIO);
    assert_int_equal(f->env->sync(f->env, file), ST_IO); /* sticky */
    assert_int_equal(f->env->sync_dir(f->env, f->dir), ST_IO);
    env_fault_fail(f->env, ENV_FAULT_SYNC, 0, 0, 0);
    assert_int_equal(f->env->sync(f->env, file), ST_OK);
    assert_true(env_fault_count(f->env, ENV_FAULT_WRITE) == 4);
    f->env->close(f->env, file);
    size_t len;
    unsigned char *d = tu_read_file(p, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "124", 3);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_posix_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_drops_unsynced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_undoes_dir_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_nth, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
