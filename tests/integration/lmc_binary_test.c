/*
 * lmc_binary_test: libmemcached's C API with MEMCACHED_BEHAVIOR_BINARY_PROTOCOL
 * on, against a running memcached-compatible server (strata-proxy or stock
 * memcached). Run by tests/integration/test_binary.py::test_libmemcached_binary_c_api;
 * single-threaded cmocka program.
 *
 *   lmc_binary_test [host:port]   (default: $STRATA_TEST_ADDR, else 127.0.0.1:11211)
 *
 * Build: cc -std=c11 lmc_binary_test.c $(pkg-config --cflags --libs libmemcached cmocka)
 *
 * Return codes asserted here are libmemcached 1.1.4's mapping of the binary
 * status the server sent (e.g. "non-numeric value" comes back as
 * MEMCACHED_UNKNOWN_READ_FAILURE), probed against memcached 1.6.18.
 * memcached_verbosity() is not exercised: memcached 1.6.18 has no binary
 * VERBOSITY opcode and libmemcached reports success whatever happens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libmemcached/memcached.h>

static char server_host[256] = "127.0.0.1";
static in_port_t server_port = 11211;

/* Keys are prefixed with the pid so that runs sharing a server never meet. */
static char key_prefix[32];

#define KEYS_PER_TEST 4

struct lmc_fixture {
    memcached_st *mc;
    char keys[KEYS_PER_TEST][128]; /* make_key() hands them out in turn */
    unsigned next_key;
};

static const char *make_key(struct lmc_fixture *f, const char *name)
{
    char *key = f->keys[f->next_key++ % KEYS_PER_TEST];
    snprintf(key, sizeof(f->keys[0]), "%s%s", key_prefix, name);
    return key;
}

static memcached_st *new_client(int noreply)
{
    memcached_st *mc = memcached_create(NULL);
    if (mc == NULL)
        return NULL;
    if (memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1) != MEMCACHED_SUCCESS ||
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1) != MEMCACHED_SUCCESS ||
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_NOREPLY, (uint64_t)noreply) !=
            MEMCACHED_SUCCESS ||
        memcached_server_add(mc, server_host, server_port) != MEMCACHED_SUCCESS) {
        memcached_free(mc);
        return NULL;
    }
    return mc;
}

static int setup(void **state)
{
    struct lmc_fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->mc = new_client(0);
    if (f->mc == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct lmc_fixture *f = *state;
    memcached_free(f->mc);
    free(f);
    return 0;
}

/* After the last result of an mget, libmemcached reports END or NOTFOUND. */
static void assert_fetch_ended(memcached_return_t rc)
{
    assert_true(rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND);
}

static void set_string(memcached_st *mc, const char *key, const char *value, uint32_t flags)
{
    memcached_return_t rc = memcached_set(mc, key, strlen(key), value, strlen(value), 0, flags);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
}

/* Asserts key holds exactly `expected` with `expected_flags`. */
static void assert_value(memcached_st *mc, const char *key, const char *expected,
                         uint32_t expected_flags)
{
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char *value = memcached_get(mc, key, strlen(key), &len, &flags, &rc);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
    assert_int_equal(len, strlen(expected));
    if (len > 0) { /* an empty value comes back as NULL */
        assert_non_null(value);
        assert_memory_equal(value, expected, len);
    }
    assert_int_equal(flags, expected_flags);
    free(value);
}

static void assert_missing(memcached_st *mc, const char *key)
{
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char *value = memcached_get(mc, key, strlen(key), &len, &flags, &rc);
    assert_null(value);
    assert_int_equal(rc, MEMCACHED_NOTFOUND);
}

static void test_set_get(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "set");
    set_string(f->mc, key, "hello world", 42);
    assert_value(f->mc, key, "hello world", 42);
    set_string(f->mc, key, "", 0);
    assert_value(f->mc, key, "", 0);
    set_string(f->mc, key, "x", 0xffffffffu);
    assert_value(f->mc, key, "x", 0xffffffffu);
    assert_missing(f->mc, make_key(f, "never-set"));
}

static void test_binary_safe_value(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "binval");
    const char value[] = "a\0b\r\nEND\r\n\xff";
    size_t value_len = sizeof(value) - 1;
    assert_int_equal(memcached_set(f->mc, key, strlen(key), value, value_len, 0, 1),
                     MEMCACHED_SUCCESS);
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char *got = memcached_get(f->mc, key, strlen(key), &len, &flags, &rc);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
    assert_int_equal(len, value_len);
    assert_memory_equal(got, value, value_len);
    free(got);
}

static void test_large_value(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "large");
    size_t size = 512 * 1024;
    char *big = malloc(size + 1);
    assert_non_null(big);
    for (size_t i = 0; i < size; i++)
        big[i] = (char)('a' + i % 26);
    big[size] = '\0';
    set_string(f->mc, key, big, 1);
    assert_value(f->mc, key, big, 1);
    free(big);
}

/* Binary mget is a run of GETKQ ended by a NOOP. */
static void test_mget_fetch_result(void **state)
{
    struct lmc_fixture *f = *state;
    char keys[3][128];
    const char *key_ptrs[3];
    size_t key_lens[3];
    for (int i = 0; i < 3; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%smget%d", key_prefix, i);
        key_ptrs[i] = keys[i];
        key_lens[i] = strlen(keys[i]);
    }
    set_string(f->mc, keys[0], "zero", 0);
    set_string(f->mc, keys[2], "two", 2);
    memcached_delete(f->mc, keys[1], key_lens[1], 0);

    assert_int_equal(memcached_mget(f->mc, key_ptrs, key_lens, 3), MEMCACHED_SUCCESS);
    int seen = 0;
    memcached_return_t rc;
    memcached_result_st *result;
    while ((result = memcached_fetch_result(f->mc, NULL, &rc)) != NULL) {
        const char *k = memcached_result_key_value(result);
        size_t klen = memcached_result_key_length(result);
        if (klen == key_lens[0] && memcmp(k, keys[0], klen) == 0) {
            assert_int_equal(memcached_result_length(result), 4);
            assert_memory_equal(memcached_result_value(result), "zero", 4);
            assert_int_equal(memcached_result_flags(result), 0);
            seen |= 1;
        } else if (klen == key_lens[2] && memcmp(k, keys[2], klen) == 0) {
            assert_int_equal(memcached_result_length(result), 3);
            assert_memory_equal(memcached_result_value(result), "two", 3);
            assert_int_equal(memcached_result_flags(result), 2);
            seen |= 4;
        } else {
            fail_msg("unexpected key in mget result");
        }
        assert_true(memcached_result_cas(result) != 0);
        memcached_result_free(result);
    }
    assert_fetch_ended(rc);
    assert_int_equal(seen, 5);
}

static memcached_return_t count_result(const memcached_st *mc, memcached_result_st *result,
                                       void *context)
{
    (void)mc;
    int *count = context;
    if (memcached_result_length(result) == 1 && memcached_result_value(result)[0] == 'v')
        (*count)++;
    return MEMCACHED_SUCCESS;
}

static void test_mget_execute(void **state)
{
    struct lmc_fixture *f = *state;
    enum { N = 50 };
    char keys[N][128];
    const char *key_ptrs[N];
    size_t key_lens[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%sexec%d", key_prefix, i);
        key_ptrs[i] = keys[i];
        key_lens[i] = strlen(keys[i]);
        if (i % 2 == 0)
            set_string(f->mc, keys[i], "v", 0);
        else
            memcached_delete(f->mc, keys[i], key_lens[i], 0);
    }
    int count = 0;
    memcached_execute_fn callbacks[] = {count_result};
    assert_int_equal(memcached_mget_execute(f->mc, key_ptrs, key_lens, N, callbacks, &count, 1),
                     MEMCACHED_SUCCESS);
    assert_int_equal(memcached_fetch_execute(f->mc, callbacks, &count, 1), MEMCACHED_SUCCESS);
    assert_int_equal(count, N / 2);
}

static void test_by_key(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "bykey");
    const char *group = "group";
    assert_int_equal(
        memcached_set_by_key(f->mc, group, strlen(group), key, strlen(key), "g", 1, 0, 9),
        MEMCACHED_SUCCESS);
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char *value =
        memcached_get_by_key(f->mc, group, strlen(group), key, strlen(key), &len, &flags, &rc);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
    assert_int_equal(len, 1);
    assert_int_equal(flags, 9);
    free(value);
    assert_int_equal(memcached_delete_by_key(f->mc, group, strlen(group), key, strlen(key), 0),
                     MEMCACHED_SUCCESS);
    assert_missing(f->mc, key);
}

static void test_add_replace(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "add");
    memcached_delete(f->mc, key, strlen(key), 0);
    /* binary "not found" for replace, "exists" for add */
    assert_int_equal(memcached_replace(f->mc, key, strlen(key), "r", 1, 0, 0), MEMCACHED_NOTFOUND);
    assert_int_equal(memcached_add(f->mc, key, strlen(key), "a", 1, 0, 3), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_add(f->mc, key, strlen(key), "b", 1, 0, 0), MEMCACHED_DATA_EXISTS);
    assert_value(f->mc, key, "a", 3);
    assert_int_equal(memcached_replace(f->mc, key, strlen(key), "rr", 2, 0, 4), MEMCACHED_SUCCESS);
    assert_value(f->mc, key, "rr", 4);
}

static void test_append_prepend(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "append");
    set_string(f->mc, key, "mid", 7);
    assert_int_equal(memcached_append(f->mc, key, strlen(key), "-end", 4, 0, 0), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_prepend(f->mc, key, strlen(key), "start-", 6, 0, 0),
                     MEMCACHED_SUCCESS);
    assert_value(f->mc, key, "start-mid-end", 7);
    const char *missing = make_key(f, "append-missing");
    memcached_delete(f->mc, missing, strlen(missing), 0);
    assert_int_equal(memcached_append(f->mc, missing, strlen(missing), "x", 1, 0, 0),
                     MEMCACHED_NOTSTORED);
    assert_int_equal(memcached_prepend(f->mc, missing, strlen(missing), "x", 1, 0, 0),
                     MEMCACHED_NOTSTORED);
    assert_missing(f->mc, missing);
}

static uint64_t fetch_cas(struct lmc_fixture *f, const char *key)
{
    size_t len = strlen(key);
    memcached_return_t rc;
    assert_int_equal(memcached_mget(f->mc, &key, &len, 1), MEMCACHED_SUCCESS);
    memcached_result_st *result = memcached_fetch_result(f->mc, NULL, &rc);
    assert_non_null(result);
    uint64_t cas = memcached_result_cas(result);
    memcached_result_free(result);
    assert_null(memcached_fetch_result(f->mc, NULL, &rc));
    assert_fetch_ended(rc);
    return cas;
}

static void test_cas(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "cas");
    set_string(f->mc, key, "v1", 0);
    uint64_t cas = fetch_cas(f, key);
    assert_true(cas != 0);
    assert_int_equal(memcached_cas(f->mc, key, strlen(key), "v2", 2, 0, 5, cas), MEMCACHED_SUCCESS);
    assert_value(f->mc, key, "v2", 5);
    assert_int_equal(memcached_cas(f->mc, key, strlen(key), "v3", 2, 0, 0, cas),
                     MEMCACHED_DATA_EXISTS);
    assert_value(f->mc, key, "v2", 5);
    uint64_t newer = fetch_cas(f, key);
    assert_true(newer != cas);
    assert_int_equal(memcached_delete(f->mc, key, strlen(key), 0), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_cas(f->mc, key, strlen(key), "v4", 2, 0, 0, newer),
                     MEMCACHED_NOTFOUND);
    assert_missing(f->mc, key);
}

static void test_incr_decr(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "counter");
    uint64_t value = 0;
    set_string(f->mc, key, "10", 0);
    assert_int_equal(memcached_increment(f->mc, key, strlen(key), 5, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 15);
    assert_int_equal(memcached_decrement(f->mc, key, strlen(key), 3, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 12);
    assert_int_equal(memcached_decrement(f->mc, key, strlen(key), 100, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 0);
    set_string(f->mc, key, "18446744073709551615", 0);
    assert_int_equal(memcached_increment(f->mc, key, strlen(key), 2, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 1);
    assert_value(f->mc, key, "1                   ", 0); /* in place, space-padded */

    const char *missing = make_key(f, "counter-missing");
    memcached_delete(f->mc, missing, strlen(missing), 0);
    assert_int_equal(memcached_increment(f->mc, missing, strlen(missing), 1, &value),
                     MEMCACHED_NOTFOUND);
    assert_int_equal(memcached_decrement(f->mc, missing, strlen(missing), 1, &value),
                     MEMCACHED_NOTFOUND);
    assert_missing(f->mc, missing);

    /* status 0x0006 (non-numeric) is reported by libmemcached this way; the
     * connection stays usable. */
    const char *text = make_key(f, "counter-text");
    set_string(f->mc, text, "abc", 0);
    assert_int_equal(memcached_increment(f->mc, text, strlen(text), 1, &value),
                     MEMCACHED_UNKNOWN_READ_FAILURE);
    assert_value(f->mc, text, "abc", 0);
}

static void test_incr_decr_with_initial(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "initial");
    uint64_t value = 0;
    memcached_delete(f->mc, key, strlen(key), 0);
    assert_int_equal(memcached_increment_with_initial(f->mc, key, strlen(key), 1, 10, 0, &value),
                     MEMCACHED_SUCCESS);
    assert_int_equal(value, 10); /* created with the initial value, delta not applied */
    assert_value(f->mc, key, "10", 0);
    assert_int_equal(memcached_increment_with_initial(f->mc, key, strlen(key), 1, 10, 0, &value),
                     MEMCACHED_SUCCESS);
    assert_int_equal(value, 11);
    assert_int_equal(memcached_decrement_with_initial(f->mc, key, strlen(key), 5, 10, 0, &value),
                     MEMCACHED_SUCCESS);
    assert_int_equal(value, 6);

    const char *dkey = make_key(f, "initial-decr");
    memcached_delete(f->mc, dkey, strlen(dkey), 0);
    assert_int_equal(memcached_decrement_with_initial(f->mc, dkey, strlen(dkey), 5, 7, 100, &value),
                     MEMCACHED_SUCCESS);
    assert_int_equal(value, 7);
    assert_value(f->mc, dkey, "7", 0);

    /* MEMCACHED_EXPIRATION_NOT_ADD (0xffffffff): fail instead of creating. */
    const char *nkey = make_key(f, "initial-noadd");
    memcached_delete(f->mc, nkey, strlen(nkey), 0);
    assert_int_equal(memcached_increment_with_initial(f->mc, nkey, strlen(nkey), 1, 10,
                                                      MEMCACHED_EXPIRATION_NOT_ADD, &value),
                     MEMCACHED_NOTFOUND);
    assert_int_equal(memcached_decrement_with_initial(f->mc, nkey, strlen(nkey), 1, 10,
                                                      MEMCACHED_EXPIRATION_NOT_ADD, &value),
                     MEMCACHED_NOTFOUND);
    assert_missing(f->mc, nkey);
    /* ...but an existing counter is changed as usual. */
    assert_int_equal(memcached_increment_with_initial(f->mc, key, strlen(key), 4, 10,
                                                      MEMCACHED_EXPIRATION_NOT_ADD, &value),
                     MEMCACHED_SUCCESS);
    assert_int_equal(value, 10);
}

static void test_delete(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "delete");
    set_string(f->mc, key, "x", 0);
    assert_int_equal(memcached_delete(f->mc, key, strlen(key), 0), MEMCACHED_SUCCESS);
    assert_missing(f->mc, key);
    assert_int_equal(memcached_delete(f->mc, key, strlen(key), 0), MEMCACHED_NOTFOUND);
}

static void test_touch(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "touch");
    set_string(f->mc, key, "x", 3);
    assert_int_equal(memcached_touch(f->mc, key, strlen(key), 100), MEMCACHED_SUCCESS);
    assert_value(f->mc, key, "x", 3);
    /* 2592001 s is an absolute time (in 1970): the item expires at once. */
    assert_int_equal(memcached_touch(f->mc, key, strlen(key), 2592001), MEMCACHED_SUCCESS);
    assert_missing(f->mc, key);
    assert_int_equal(memcached_touch(f->mc, key, strlen(key), 100), MEMCACHED_NOTFOUND);
}

static void test_exist(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "exist");
    memcached_delete(f->mc, key, strlen(key), 0);
    assert_int_equal(memcached_exist(f->mc, key, strlen(key)), MEMCACHED_NOTFOUND);
    assert_missing(f->mc, key); /* checking did not create it */
    set_string(f->mc, key, "x", 6);
    assert_int_equal(memcached_exist(f->mc, key, strlen(key)), MEMCACHED_SUCCESS);
    assert_value(f->mc, key, "x", 6); /* nor change it */
}

static void test_noreply(void **state)
{
    struct lmc_fixture *f = *state;
    memcached_st *quiet = new_client(1);
    assert_non_null(quiet);
    const char *key = make_key(f, "noreply");
    const char *other = make_key(f, "noreply-counter");
    const char *gone = make_key(f, "noreply-gone");
    /* Quiet commands (SETQ, ADDQ, ...) that all succeed: no replies to read. */
    memcached_delete(f->mc, key, strlen(key), 0);
    assert_int_equal(memcached_add(quiet, key, strlen(key), "b", 1, 0, 1), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_replace(quiet, key, strlen(key), "c", 1, 0, 2), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_append(quiet, key, strlen(key), "d", 1, 0, 0), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_prepend(quiet, key, strlen(key), "a", 1, 0, 0), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_set(quiet, other, strlen(other), "5", 1, 0, 0), MEMCACHED_SUCCESS);
    uint64_t unused;
    assert_int_equal(memcached_increment(quiet, other, strlen(other), 3, &unused),
                     MEMCACHED_SUCCESS);
    assert_int_equal(memcached_decrement(quiet, other, strlen(other), 1, &unused),
                     MEMCACHED_SUCCESS);
    assert_int_equal(memcached_set(quiet, gone, strlen(gone), "x", 1, 0, 0), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_delete(quiet, gone, strlen(gone), 0), MEMCACHED_SUCCESS);
    /* A normal command on the quiet connection gets its own reply. */
    assert_value(quiet, key, "acd", 2);
    assert_value(f->mc, key, "acd", 2);
    assert_value(f->mc, other, "7", 0);
    assert_missing(f->mc, gone);
    memcached_free(quiet);
}

static void test_quit_and_reconnect(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "quit");
    set_string(f->mc, key, "x", 0);
    memcached_quit(f->mc);
    assert_value(f->mc, key, "x", 0); /* reconnects */
}

static void test_version(void **state)
{
    struct lmc_fixture *f = *state;
    assert_int_equal(memcached_version(f->mc), MEMCACHED_SUCCESS);
    const memcached_instance_st *server = memcached_server_instance_by_position(f->mc, 0);
    assert_non_null(server);
    /* both servers answer the plain release number 1.6.18 */
    assert_int_equal(memcached_server_major_version(server), 1);
    assert_int_equal(memcached_server_minor_version(server), 6);
    assert_int_equal(memcached_server_micro_version(server), 18);
}

struct stat_seen {
    int count;
    int item_size_max;
};

static memcached_return_t stat_callback(const memcached_instance_st *server, const char *key,
                                        size_t key_length, const char *value, size_t value_length,
                                        void *context)
{
    (void)server;
    struct stat_seen *seen = context;
    seen->count++;
    if (key_length == strlen("item_size_max") && memcmp(key, "item_size_max", key_length) == 0)
        seen->item_size_max = value_length == 7 && memcmp(value, "1048576", 7) == 0;
    return MEMCACHED_SUCCESS;
}

static void test_stat(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "stat");
    set_string(f->mc, key, "x", 0);
    memcached_return_t rc;
    memcached_stat_st *stat = memcached_stat(f->mc, NULL, &rc);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
    assert_non_null(stat);
    assert_true(stat->pid > 0);
    assert_true(stat->uptime >= 1);
    assert_true(stat->curr_items >= 1);
    assert_true(stat->cmd_set >= 1);
    assert_int_equal(stat->threads, 4);
    assert_true(stat->limit_maxbytes > 0);
    char *version = memcached_stat_get_value(f->mc, stat, "version", &rc);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
    assert_non_null(version);
    assert_memory_equal(version, "1.6.", 4);
    free(version);
    memcached_stat_free(f->mc, stat);

    struct stat_seen seen = {0, 0};
    assert_int_equal(memcached_stat_execute(f->mc, "settings", stat_callback, &seen),
                     MEMCACHED_SUCCESS);
    assert_true(seen.count > 10);
    assert_true(seen.item_size_max);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(memcached_stat_execute(f->mc, "items", stat_callback, &seen),
                     MEMCACHED_SUCCESS);
    assert_true(seen.count > 0);
}

/* Last: empties the whole cache. */
static void test_flush(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "flush");
    set_string(f->mc, key, "x", 0);
    assert_int_equal(memcached_flush(f->mc, 0), MEMCACHED_SUCCESS);
    assert_missing(f->mc, key);
    set_string(f->mc, key, "y", 0);
    assert_value(f->mc, key, "y", 0);
}

static int parse_address(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(server_host))
        return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return -1;
    memcpy(server_host, addr, (size_t)(colon - addr));
    server_host[colon - addr] = '\0';
    server_port = (in_port_t)port;
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : getenv("STRATA_TEST_ADDR");
    if (addr != NULL && parse_address(addr) != 0) {
        fprintf(stderr, "usage: %s [host:port]\n", argv[0]);
        return 2;
    }
    snprintf(key_prefix, sizeof(key_prefix), "lmcb_%ld_", (long)getpid());

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_safe_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mget_fetch_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mget_execute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_by_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_prepend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incr_decr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incr_decr_with_initial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noreply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_and_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
    };
    return cmocka_run_group_tests_name("libmemcached binary protocol", tests, NULL, NULL);
}
