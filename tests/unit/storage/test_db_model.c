/* test_db_model.c - the engine against an in-memory model: thousands of
 * random puts, deletes, batches, expiries, flushes, compactions and
 * reopens (leveled and size-tiered), one run with injected EIO; after each
 * step the engine must agree with the model, and a failed write must never
 * have been acknowledged. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db_fixture.h"

#define MODEL_KEYS 400

struct model_ent {
    bool present; /* a record (put or tombstone) exists */
    bool tombstone;
    struct lsm_version v;
    uint64_t expiry;
    char value[32];
};

static uint64_t rnd_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static int vcmp(struct lsm_version a, struct lsm_version b)
{
    if (a.hlc != b.hlc)
        return a.hlc < b.hlc ? -1 : 1;
    return a.node < b.node ? -1 : a.node > b.node;
}

static void model_check(struct fx *f, const struct model_ent *m)
{
    int live = 0;
    for (int i = 0; i < MODEL_KEYS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "m%d", i);
        struct lsm_record *r = NULL;
        assert_int_equal(lsm_get(f->db, k, strlen(k), LSM_READ_TOMBSTONES, &r), ST_OK);
        bool expired = m[i].present && !m[i].tombstone && m[i].expiry != 0 && m[i].expiry <= f->now;
        if (!m[i].present || expired) {
            if (r != NULL)
                fail_msg("key %s present, model says absent", k);
            continue;
        }
        if (r == NULL)
            fail_msg("key %s absent, model says present", k);
        assert_int_equal(r->tombstone, m[i].tombstone);
        assert_true(vcmp(r->version, m[i].v) == 0);
        if (!m[i].tombstone) {
            assert_int_equal(r->value_len, strlen(m[i].value));
            assert_memory_equal(r->value, m[i].value, r->value_len);
            live++;
        }
        lsm_record_free(&r);
    }
    /* The iterator agrees on the live set. */
    struct lsm_iter *it = NULL;
    assert_int_equal(lsm_iter_create(f->db, NULL, 0, UINT64_MAX, 0, &it), ST_OK);
    struct lsm_record r;
    int n = 0;
    while (lsm_iter_next(it, &r)) {
        int i = atoi((const char *)r.key + 1);
        assert_true(i >= 0 && i < MODEL_KEYS);
        assert_true(m[i].present && !m[i].tombstone);
        n++;
    }
    assert_int_equal(lsm_iter_status(it), ST_OK);
    lsm_iter_destroy(&it);
    assert_int_equal(n, live);
}

/* Reads key i from the engine into *out (present/tombstone/version/value
 * as model_check would compare them). */
static void engine_state(struct fx *f, int i, struct model_ent *out)
{
    char k[16];
    snprintf(k, sizeof(k), "m%d", i);
    struct lsm_record *r = NULL;
    assert_int_equal(lsm_get(f->db, k, strlen(k), LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &r),
                     ST_OK);
    memset(out, 0, sizeof(*out));
    if (r == NULL)
        return;
    out->present = true;
    out->tombstone = r->tombstone;
    out->v = r->version;
    out->expiry = r->expiry;
    snprintf(out->value, sizeof(out->value), "%.*s", (int)r->value_len, (const char *)r->value);
    lsm_record_free(&r);
}

static bool same_state(const struct model_ent *a, const struct model_ent *b)
{
    if (a->present != b->present)
        return false;
    if (!a->present)
        return true;
    return a->tombstone == b->tombstone && vcmp(a->v, b->v) == 0 &&
           (a->tombstone || (a->expiry == b->expiry && strcmp(a->value, b->value) == 0));
}

/* Closes (whatever state the engine is in) and reopens without faults. */
static void reopen_clean(struct fx *f)
{
    env_fault_fail(f->fenv, ENV_FAULT_WRITE, 0, 0, 0);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 0, 0, 0);
    lsm_close(&f->db);
    open_db(f);
}

/*
 * Random puts, deletes, batches (LWW against random versions), flushes,
 * full compactions, reopens, power losses and clock steps, checked against
 * an in-memory model. With `faults`, random writes and syncs also fail
 * with EIO: the failing operation must not be acknowledged, the engine
 * must refuse writes until reopened, and after the reopen a failed batch is
 * either entirely present or entirely absent while every acknowledged
 * write is present.
 */
static void run_model(struct fx *f, int steps, bool faults)
{
    static struct model_ent m[MODEL_KEYS];
    memset(m, 0, sizeof(m));
    rnd_state = 0x2545F4914F6CDD1Dull;
    open_db(f);
    struct lsm_batch *b = NULL;
    assert_int_equal(lsm_batch_create(&b), ST_OK);
    int failures = 0;
    for (int step = 0; step < steps; step++) {
        if (faults && rnd() % 40 == 0)
            env_fault_fail(f->fenv, rnd() % 2 ? ENV_FAULT_WRITE : ENV_FAULT_SYNC, 1 + rnd() % 30,
                           EIO, 0);
        uint64_t op = rnd() % 1000;
        if (op < 550 || (op >= 700 && op < 850)) {
            /* put or delete, possibly as part of a batch */
            int nb = op >= 700 ? 1 + (int)(rnd() % 8) : 1;
            struct {
                int i;
                struct model_ent e;
            } pend[8];
            lsm_batch_clear(b);
            for (int j = 0; j < nb; j++) {
                int i = (int)(rnd() % MODEL_KEYS);
                struct model_ent e = {.present = true};
                e.v.hlc = 1 + rnd() % (uint64_t)(step + 10);
                /* A version names one write: unique per record (the node
                 * id part), in random order (the clock part). */
                e.v.node = (uint16_t)(step * 8 + j);
                e.tombstone = rnd() % 5 == 0;
                if (!e.tombstone) {
                    snprintf(e.value, sizeof(e.value), "v%d-%d", step, j);
                    e.expiry = rnd() % 10 == 0 ? f->now + rnd() % 20 : 0;
                }
                char k[16];
                snprintf(k, sizeof(k), "m%d", i);
                if (e.tombstone) {
                    assert_int_equal(lsm_batch_delete(b, k, strlen(k), e.v, 0), ST_OK);
                    e.expiry = f->now;
                } else {
                    struct lsm_record r = {.key = (uint8_t *)k,
                                           .key_len = strlen(k),
                                           .value = (uint8_t *)e.value,
                                           .value_len = strlen(e.value),
                                           .expiry = e.expiry,
                                           .version = e.v};
                    assert_int_equal(lsm_batch_put(b, &r), ST_OK);
                }
                pend[j].i = i;
                pend[j].e = e;
            }
            /* The model after the batch, if it applies. */
            static struct model_ent after[MODEL_KEYS];
            memcpy(after, m, sizeof(m));
            for (int j = 0; j < nb; j++) {
                struct model_ent *cur = &after[pend[j].i];
                if (!cur->present || vcmp(pend[j].e.v, cur->v) > 0)
                    *cur = pend[j].e;
            }
            enum st_status st = lsm_write(f->db, b);
            if (st == ST_OK) {
                memcpy(m, after, sizeof(m));
                continue;
            }
            /* Not acknowledged: the engine is read-only now. */
            assert_true(faults);
            assert_int_equal(st, ST_IO);
            failures++;
            struct lsm_stats s;
            lsm_stats(f->db, &s);
            assert_true(s.read_only);
            assert_int_equal(put(f->db, "m0", "x", UINT64_MAX), ST_IO);
            reopen_clean(f);
            /* All of the batch or none of it. */
            bool all_new = true, all_old = true;
            for (int j = 0; j < nb; j++) {
                struct model_ent e;
                engine_state(f, pend[j].i, &e);
                all_new = all_new && same_state(&e, &after[pend[j].i]);
                all_old = all_old && same_state(&e, &m[pend[j].i]);
            }
            if (!all_new && !all_old)
                fail_msg("step %d: failed batch partially applied", step);
            if (all_new && !all_old)
                memcpy(m, after, sizeof(m));
        } else if (op < 600) {
            enum st_status st = lsm_flush(f->db);
            if (st != ST_OK) {
                assert_true(faults);
                failures++;
                reopen_clean(f);
            }
        } else if (op < 610) {
            enum st_status st = lsm_compact_all(f->db);
            if (st != ST_OK) {
                assert_true(faults);
                failures++;
                reopen_clean(f);
            }
        } else if (op < 630) {
            reopen_clean(f);
        } else if (op < 640) {
            /* power loss: sync=always, so everything acknowledged stays */
            env_fault_fail(f->fenv, ENV_FAULT_WRITE, 1, EIO, 1);
            env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 1);
            lsm_close(&f->db);
            assert_int_equal(env_fault_crash(f->fenv), ST_OK);
            open_db(f);
        } else if (op < 700) {
            __atomic_fetch_add(&f->now, rnd() % 5, __ATOMIC_RELAXED);
        } else {
            /* A background failure (flush/compaction) also makes the engine
             * read-only; reads stay correct meanwhile. */
            model_check(f, m);
        }
    }
    if (faults)
        assert_true(failures > 0);
    reopen_clean(f);
    model_check(f, m);
    lsm_batch_destroy(&b);
}

static void test_randomized_model(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    f->o.memtable_size = 64u << 10;
    f->o.l0_compaction_trigger = 2;
    f->o.l1_target_size = 64u << 10;
    f->o.target_file_size = 64u << 10;
    f->o.gc_grace_seconds = UINT64_MAX / 2; /* never drop: the model keeps all */
    f->o.expired_grace_seconds = UINT64_MAX / 2;
    run_model(f, 3000, false);
}

static void test_randomized_model_tiered(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    f->o.compaction_style = LSM_COMPACTION_TIERED;
    f->o.tiered_min_merge = 2;
    f->o.tiered_max_runs = 5;
    f->o.memtable_size = 64u << 10;
    f->o.gc_grace_seconds = UINT64_MAX / 2;
    f->o.expired_grace_seconds = UINT64_MAX / 2;
    run_model(f, 3000, false);
}

static void test_randomized_faults(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    f->o.memtable_size = 64u << 10;
    f->o.l0_compaction_trigger = 2;
    f->o.l1_target_size = 64u << 10;
    f->o.target_file_size = 64u << 10;
    f->o.gc_grace_seconds = UINT64_MAX / 2;
    f->o.expired_grace_seconds = UINT64_MAX / 2;
    run_model(f, 3000, true);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_randomized_model),
        T(test_randomized_model_tiered),
        T(test_randomized_faults),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
