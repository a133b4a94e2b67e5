/*
 * lmc_test: libmemcached's C API, text protocol, against a running
 * memcached-compatible server (strata-proxy or stock memcached).
 * Run by tests/integration/test_clients.py; single-threaded cmocka program.
 *
 *   lmc_test [host:port]      (default: $STRATA_TEST_ADDR, else 127.0.0.1:11211)
 *
 * Build: cc -std=c11 lmc_test.c $(pkg-config --cflags --libs libmemcached cmocka)
 *
 * memcached_increment_with_initial() and _decrement_with_initial() are not
 * exercised: libmemcached refuses them in text mode without sending anything
 * (MEMCACHED_INVALID_ARGUMENTS), so they say nothing about the server.
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

/* After the last result of an mget, libmemcached reports END or NOTFOUND
 * (depending on its version) for the same bytes from the server. */
static void assert_fetch_ended(memcached_return_t rc)
{
    assert_true(rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND);
}

/* Keys are prefixed with the pid so that runs sharing a server never meet. */
static char key_prefix[32];

struct lmc_fixture {
    memcached_st *mc;
    char key[128];
};

static const char *make_key(struct lmc_fixture *f, const char *name)
{
    snprintf(f->key, sizeof(f->key), "%s%s", key_prefix, name);
    return f->key;
}

static int setup(void **state)
{
    struct lmc_fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->mc = memcached_create(NULL);
    if (f->mc == NULL)
        goto err;
    if (memcached_behavior_set(f->mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0) != MEMCACHED_SUCCESS)
        goto err;
    if (memcached_behavior_set(f->mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1) != MEMCACHED_SUCCESS)
        goto err;
    if (memcached_server_add(f->mc, server_host, server_port) != MEMCACHED_SUCCESS)
        goto err;
    *state = f;
    return 0;
err:
    memcached_free(f->mc);
    free(f);
    return -1;
}

static int teardown(void **state)
{
    struct lmc_fixture *f = *state;
    memcached_free(f->mc);
    free(f);
    return 0;
}

static void set_string(struct lmc_fixture *f, const char *key, const char *value, uint32_t flags)
{
    memcached_return_t rc = memcached_set(f->mc, key, strlen(key), value, strlen(value), 0, flags);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
}

/* Asserts key holds exactly `expected` with `expected_flags`. */
static void assert_value(struct lmc_fixture *f, const char *key, const char *expected,
                         uint32_t expected_flags)
{
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char *value = memcached_get(f->mc, key, strlen(key), &len, &flags, &rc);
    assert_int_equal(rc, MEMCACHED_SUCCESS);
    assert_int_equal(len, strlen(expected));
    if (len > 0) { /* an empty value comes back as NULL */
        assert_non_null(value);
        assert_memory_equal(value, expected, len);
    }
    assert_int_equal(flags, expected_flags);
    free(value);
}

static void assert_missing(struct lmc_fixture *f, const char *key)
{
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char *value = memcached_get(f->mc, key, strlen(key), &len, &flags, &rc);
    assert_null(value);
    assert_int_equal(rc, MEMCACHED_NOTFOUND);
}

static void test_set_get(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "set");
    set_string(f, key, "hello world", 42);
    assert_value(f, key, "hello world", 42);
    set_string(f, key, "", 0);
    assert_value(f, key, "", 0);
    assert_missing(f, make_key(f, "never-set"));
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
    set_string(f, key, big, 1);
    assert_value(f, key, big, 1);
    free(big);
}

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
    set_string(f, keys[0], "zero", 0);
    set_string(f, keys[2], "two", 2);
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

static void test_add_replace(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "add");
    memcached_delete(f->mc, key, strlen(key), 0);
    assert_int_equal(memcached_replace(f->mc, key, strlen(key), "r", 1, 0, 0), MEMCACHED_NOTSTORED);
    assert_int_equal(memcached_add(f->mc, key, strlen(key), "a", 1, 0, 3), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_add(f->mc, key, strlen(key), "b", 1, 0, 0), MEMCACHED_NOTSTORED);
    assert_value(f, key, "a", 3);
    assert_int_equal(memcached_replace(f->mc, key, strlen(key), "rr", 2, 0, 4), MEMCACHED_SUCCESS);
    assert_value(f, key, "rr", 4);
}

static void test_append_prepend(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "append");
    set_string(f, key, "mid", 7);
    assert_int_equal(memcached_append(f->mc, key, strlen(key), "-end", 4, 0, 0), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_prepend(f->mc, key, strlen(key), "start-", 6, 0, 0),
                     MEMCACHED_SUCCESS);
    assert_value(f, key, "start-mid-end", 7);
    const char *missing = make_key(f, "append-missing");
    memcached_delete(f->mc, missing, strlen(missing), 0);
    assert_int_equal(memcached_append(f->mc, missing, strlen(missing), "x", 1, 0, 0),
                     MEMCACHED_NOTSTORED);
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
    set_string(f, key, "v1", 0);
    uint64_t cas = fetch_cas(f, key);
    assert_true(cas != 0);
    assert_int_equal(memcached_cas(f->mc, key, strlen(key), "v2", 2, 0, 0, cas), MEMCACHED_SUCCESS);
    assert_value(f, key, "v2", 0);
    assert_int_equal(memcached_cas(f->mc, key, strlen(key), "v3", 2, 0, 0, cas),
                     MEMCACHED_DATA_EXISTS);
    assert_value(f, key, "v2", 0);
    uint64_t newer = fetch_cas(f, key);
    assert_true(newer != cas);
    assert_int_equal(memcached_delete(f->mc, key, strlen(key), 0), MEMCACHED_SUCCESS);
    assert_int_equal(memcached_cas(f->mc, key, strlen(key), "v4", 2, 0, 0, newer),
                     MEMCACHED_NOTFOUND);
}

static void test_incr_decr(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "counter");
    uint64_t value = 0;
    set_string(f, key, "10", 0);
    assert_int_equal(memcached_increment(f->mc, key, strlen(key), 5, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 15);
    assert_int_equal(memcached_decrement(f->mc, key, strlen(key), 3, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 12);
    assert_int_equal(memcached_decrement(f->mc, key, strlen(key), 100, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 0);
    set_string(f, key, "18446744073709551615", 0);
    assert_int_equal(memcached_increment(f->mc, key, strlen(key), 2, &value), MEMCACHED_SUCCESS);
    assert_int_equal(value, 1);

    const char *missing = make_key(f, "counter-missing");
    memcached_delete(f->mc, missing, strlen(missing), 0);
    assert_int_equal(memcached_increment(f->mc, missing, strlen(missing), 1, &value),
                     MEMCACHED_NOTFOUND);
    assert_int_equal(memcached_decrement(f->mc, missing, strlen(missing), 1, &value),
                     MEMCACHED_NOTFOUND);

    const char *text = make_key(f, "counter-text");
    set_string(f, text, "abc", 0);
    assert_int_equal(memcached_increment(f->mc, text, strlen(text), 1, &value),
                     MEMCACHED_CLIENT_ERROR);
}

static void test_delete(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "delete");
    set_string(f, key, "x", 0);
    assert_int_equal(memcached_delete(f->mc, key, strlen(key), 0), MEMCACHED_SUCCESS);
    assert_missing(f, key);
    assert_int_equal(memcached_delete(f->mc, key, strlen(key), 0), MEMCACHED_NOTFOUND);
}

static void test_touch(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "touch");
    set_string(f, key, "x", 0);
    assert_int_equal(memcached_touch(f->mc, key, strlen(key), 100), MEMCACHED_SUCCESS);
    assert_value(f, key, "x", 0);
    /* A negative expiration makes the item expire at once. */
    assert_int_equal(memcached_touch(f->mc, key, strlen(key), -1), MEMCACHED_SUCCESS);
    assert_missing(f, key);
    assert_int_equal(memcached_touch(f->mc, key, strlen(key), 100), MEMCACHED_NOTFOUND);
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

static void test_stat(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "stat");
    set_string(f, key, "x", 0);
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
}

/* Last: empties the whole cache. */
static void test_flush(void **state)
{
    struct lmc_fixture *f = *state;
    const char *key = make_key(f, "flush");
    set_string(f, key, "x", 0);
    assert_int_equal(memcached_flush(f->mc, 0), MEMCACHED_SUCCESS);
    assert_missing(f, key);
    set_string(f, key, "y", 0);
    assert_value(f, key, "y", 0);
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
    snprintf(key_prefix, sizeof(key_prefix), "lmc_%ld_", (long)getpid());

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mget_fetch_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_prepend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incr_decr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
    };
    return cmocka_run_group_tests_name("libmemcached text protocol", tests, NULL, NULL);
}
