/* test_ketama.c - placement agrees with libmemcached's own weighted ketama
 * (linked here as the reference), and ejection moves only the ejected
 * server's keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <libmemcached/memcached.h>

#include "common/ketama.h"

enum { KEYS = 100000 };

static void key_of(unsigned i, char *buf, size_t cap, size_t *len)
{
    /* keys of several shapes: short, long, prefixed, binary-looking */
    int n;
    switch (i % 4) {
    case 0: n = snprintf(buf, cap, "%u", i); break;
    case 1: n = snprintf(buf, cap, "user:%u:profile", i); break;
    case 2: n = snprintf(buf, cap, "k%08x-%0120u", i * 2654435761u, i); break;
    default: n = snprintf(buf, cap, "sess_%x_%u", i * 40503u, i % 977); break;
    }
    *len = (size_t)n;
}

/* Builds both sides over the same list and compares every key. */
static void agree(const struct ketama_server *s, unsigned n)
{
    memcached_st *mc = memcached_create(NULL);
    assert_non_null(mc);
    assert_int_equal(memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1),
                     MEMCACHED_SUCCESS);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(memcached_server_add_with_weight(mc, s[i].host, s[i].port, s[i].weight),
                         MEMCACHED_SUCCESS);
    struct ketama *k = NULL;
    assert_int_equal(ketama_build(s, n, &k), ST_OK);
    unsigned per[16] = {0};
    for (unsigned i = 0; i < KEYS; i++) {
        char key[200];
        size_t len;
        key_of(i, key, sizeof(key), &len);
        uint32_t theirs = memcached_generate_hash(mc, key, len);
        uint32_t ours = ketama_pick(k, key, len, NULL, NULL);
        if (theirs != ours)
            fail_msg("key %.*s: libmemcached picks server %u, ketama %u", (int)len, key, theirs,
                     ours);
        per[ours % 16]++;
    }
    /* not vacuous: with more than one server, each one gets keys */
    for (unsigned i = 0; n > 1 && i < n && i < 16; i++)
        assert_true(per[i] > 0);
    ketama_destroy(&k);
    memcached_free(mc);
}

static void test_equal_weights(void **state)
{
    (void)state;
    const struct ketama_server s[] = {
        {"127.0.0.1", 11211, 1}, {"127.0.0.1", 11212, 1}, {"127.0.0.1", 22122, 1}};
    agree(s, 3);
}

static void test_default_port_and_names(void **state)
{
    (void)state;
    /* port 11211 is left out of the point names; hosts are not resolved */
    const struct ketama_server s[] = {{"cache-a.example", 11211, 1},
                                      {"cache-b.example", 11211, 1},
                                      {"10.1.2.3", 11211, 1},
                                      {"10.1.2.4", 11311, 1},
                                      {"cache-c", 11212, 1}};
    agree(s, 5);
}

static void test_weights(void **state)
{
    (void)state;
    const struct ketama_server a[] = {{"10.0.0.1", 11211, 1}, {"10.0.0.2", 11211, 3}};
    agree(a, 2);
    const struct ketama_server b[] = {{"10.0.0.1", 11211, 100},
                                      {"10.0.0.2", 11211, 7},
                                      {"10.0.0.3", 11211, 33},
                                      {"10.0.0.4", 11400, 1}};
    agree(b, 4);
    struct ketama *k = NULL;
    assert_int_equal(ketama_build(b, 4, &k), ST_OK);
    assert_true(ketama_points(k, 0) > ketama_points(k, 2));
    assert_true(ketama_points(k, 2) > ketama_points(k, 1));
    ketama_destroy(&k);
}

static void test_one_server(void **state)
{
    (void)state;
    const struct ketama_server s[] = {{"127.0.0.1", 5000, 1}};
    agree(s, 1);
}

static void test_many_servers(void **state)
{
    (void)state;
    struct ketama_server s[12];
    char names[12][32];
    for (unsigned i = 0; i < 12; i++) {
        snprintf(names[i], sizeof(names[i]), "192.168.7.%u", 10 + i);
        s[i] = (struct ketama_server){names[i], (uint16_t)(11211 + i % 3), 1 + i % 4};
    }
    agree(s, 12);
}

static bool up_except(void *arg, uint32_t index)
{
    return index != *(uint32_t *)arg;
}

static void test_ejection_moves_only_its_keys(void **state)
{
    (void)state;
    const struct ketama_server s[] = {{"127.0.0.1", 11211, 1},
                                      {"127.0.0.1", 11212, 2},
                                      {"127.0.0.1", 11213, 1},
                                      {"127.0.0.1", 11214, 1}};
    struct ketama *k = NULL;
    assert_int_equal(ketama_build(s, 4, &k), ST_OK);
    uint32_t down = 1;
    unsigned moved = 0;
    for (unsigned i = 0; i < KEYS; i++) {
        char key[200];
        size_t len;
        key_of(i, key, sizeof(key), &len);
        uint32_t before = ketama_pick(k, key, len, NULL, NULL);
        uint32_t after = ketama_pick(k, key, len, up_except, &down);
        assert_int_not_equal(after, down);
        if (before != down)
            assert_int_equal(after, before);
        else
            moved++;
    }
    assert_true(moved > KEYS / 10); /* weight 2 of 5: about 40% */
    ketama_destroy(&k);
}

static bool none_up(void *arg, uint32_t index)
{
    (void)arg;
    (void)index;
    return false;
}

static void test_bad_lists(void **state)
{
    (void)state;
    struct ketama *k = (struct ketama *)1;
    const struct ketama_server zero[] = {{"h", 1, 0}};
    assert_int_equal(ketama_build(zero, 1, &k), ST_INVAL);
    assert_null(k);
    const struct ketama_server empty[] = {{"", 1, 1}};
    assert_int_equal(ketama_build(empty, 1, &k), ST_INVAL);
    assert_int_equal(ketama_build(empty, 0, &k), ST_INVAL);
    const struct ketama_server one[] = {{"h", 1, 1}, {"g", 2, 1}};
    assert_int_equal(ketama_build(one, 2, &k), ST_OK);
    assert_int_equal(ketama_pick(k, "x", 1, none_up, NULL), KETAMA_NONE);
    ketama_destroy(&k);
    ketama_destroy(&k); /* accepts NULL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_weights), cmocka_unit_test(test_default_port_and_names),
        cmocka_unit_test(test_weights),       cmocka_unit_test(test_one_server),
        cmocka_unit_test(test_many_servers),  cmocka_unit_test(test_ejection_moves_only_its_keys),
        cmocka_unit_test(test_bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
