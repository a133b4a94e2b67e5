/*
 * db_fixture.h - the fixture the engine tests share (header-only, one copy
 * per test executable): a database in a fresh temporary directory on the
 * fault env with a fake clock and small sizes, plus put/expect helpers.
 */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/env.h"
#include "storage/include/lsm.h"
#include "testutil.h"

struct fx {
    char *dir;
    struct lsm_env *fenv;
    uint64_t now;
    struct lsm_options o;
    struct lsm_db *db;
};

static inline uint64_t fake_now(void *arg)
{
    return __atomic_load_n((uint64_t *)arg, __ATOMIC_RELAXED);
}

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp();
    assert_int_equal(env_fault_create(env_posix(), &f->fenv), ST_OK);
    f->now = 1700000000;
    lsm_options_init(&f->o);
    f->o.env = f->fenv;
    f->o.now_fn = fake_now;
    f->o.now_arg = &f->now;
    f->o.memtable_size = 256u << 10;
    f->o.l1_target_size = 256u << 10;
    f->o.target_file_size = 128u << 10;
    f->o.block_size = 4096;
    f->o.sync_mode = LSM_SYNC_NONE;
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    lsm_close(&f->db);
    env_fault_destroy(&f->fenv);
    tu_rmtemp(&f->dir);
    free(f);
    return 0;
}

static inline void open_db(struct fx *f)
{
    assert_int_equal(lsm_open(f->dir, &f->o, &f->db), ST_OK);
}

static inline struct lsm_version ver(uint64_t hlc)
{
    return (struct lsm_version){hlc, 1};
}

static inline enum st_status put(struct lsm_db *db, const char *k, const char *v, uint64_t hlc)
{
    struct lsm_record r = {
        .key = (const uint8_t *)k,
        .key_len = strlen(k),
        .value = (const uint8_t *)v,
        .value_len = strlen(v),
        .flags = 7,
        .version = ver(hlc),
    };
    return lsm_put(db, &r);
}

/* Asserts the value of k (NULL = absent). */
static inline void expect(struct lsm_db *db, const char *k, const char *v)
{
    struct lsm_record *r = NULL;
    assert_int_equal(lsm_get(db, k, strlen(k), 0, &r), ST_OK);
    if (v == NULL) {
        if (r != NULL)
            fail_msg("key %s: expected absent, got %.*s", k, (int)r->value_len,
                     (const char *)r->value);
        return;
    }
    if (r == NULL)
        fail_msg("key %s: expected %s, got absent", k, v);
    assert_int_equal(r->value_len, strlen(v));
    assert_memory_equal(r->value, v, strlen(v));
    assert_int_equal(r->key_len, strlen(k));
    assert_memory_equal(r->key, k, strlen(k));
    lsm_record_free(&r);
    assert_null(r);
}
