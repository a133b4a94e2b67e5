/* test_outq.c - the reply queue: what a socket receives after adds,
 * references, splices (copied and moved), rollbacks and clears, and that
 * every reference is given back once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "frontend/outq.h"

/* Values referenced by the queues: released[i] counts refs to vals[i]. */
static char vals[4][4096];
static int released[4];

static void on_release(void *ctx, void *ref)
{
    (void)ctx;
    released[(char(*)[4096])ref - vals]++;
}

static void reset_refs(void)
{
    memset(released, 0, sizeof(released));
    for (int i = 0; i < 4; i++)
        memset(vals[i], 'a' + i, sizeof(vals[i]));
}

/* A connection's queue (dst) and a slot's (src), references fresh. */
static void queues(struct outq *dst, struct outq *src)
{
    reset_refs();
    outq_init(dst, on_release, NULL);
    outq_init_small(src, on_release, NULL);
}

/* Writes q to a socket pair and returns what came out (at most cap). */
static size_t drain(struct outq *q, char *out, size_t cap)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    size_t written = 0;
    assert_int_equal(outq_write(q, sv[0], &written), ST_OK);
    assert_int_equal(outq_pending(q), 0);
    close(sv[0]);
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(sv[1], out + n, cap - n)) > 0)
        n += (size_t)r;
    close(sv[1]);
    assert_int_equal(n, written);
    return n;
}

static void test_small_queue_grows_and_keeps_order(void **state)
{
    (void)state;
    reset_refs();
    struct outq q;
    outq_init_small(&q, on_release, NULL);
    char expect[8192];
    size_t n = 0;
    for (int i = 0; i < 200; i++) { /* past the small chunk, many times */
        char line[32];
        int len = snprintf(line, sizeof(line), "LINE %d\r\n", i);
        assert_int_equal(outq_add(&q, line, (size_t)len), ST_OK);
        memcpy(expect + n, line, (size_t)len);
        n += (size_t)len;
    }
    char out[8192];
    assert_int_equal(drain(&q, out, sizeof(out)), n);
    assert_memory_equal(out, expect, n);
    outq_deinit(&q);
}

/* A short reply without references is copied into dst; src keeps its
 * memory and can be filled again. */
static void test_splice_copies_a_short_reply(void **state)
{
    (void)state;
    struct outq dst, src;
    queues(&dst, &src);
    assert_int_equal(outq_add(&dst, "A\r\n", 3), ST_OK);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(outq_add(&src, "STORED\r\n", 8), ST_OK);
        assert_int_equal(outq_add(&src, "END\r\n", 5), ST_OK);
        assert_int_equal(outq_splice(&dst, &src), ST_OK);
        assert_int_equal(outq_pending(&src), 0);
    }
    assert_int_equal(outq_add(&dst, "Z\r\n", 3), ST_OK);
    char out[256];
    const char *want = "A\r\nSTORED\r\nEND\r\nSTORED\r\nEND\r\nSTORED\r\nEND\r\nZ\r\n";
    assert_int_equal(drain(&dst, out, sizeof(out)), strlen(want));
    assert_memory_equal(out, want, strlen(want));
    outq_deinit(&src);
    outq_deinit(&dst);
}

/* A reply holding a referenced value moves whole; the reference is
 * given back once, after the write. */
static void test_splice_moves_references(void **state)
{
    (void)state;
    struct outq dst, src;
    queues(&dst, &src);
    assert_int_equal(outq_add(&src, "VALUE k 0 4096\r\n", 16), ST_OK);
    assert_int_equal(outq_add_value(&src, vals[1], vals[1], 4096, "\r\n", 2), ST_OK);
    assert_int_equal(outq_add(&src, "END\r\n", 5), ST_OK);
    assert_int_equal(released[1], 0); /* large: sent from where it is */
    assert_int_equal(outq_splice(&dst, &src), ST_OK);
    assert_int_equal(released[1], 0);
    static char out[8192];
    size_t n = drain(&dst, out, sizeof(out));
    assert_int_equal(n, 16 + 4096 + 2 + 5);
    assert_memory_equal(out, "VALUE k 0 4096\r\n", 16);
    assert_memory_equal(out + 16, vals[1], 4096);
    assert_memory_equal(out + 16 + 4096, "\r\nEND\r\n", 7);
    assert_int_equal(released[1], 1);
    outq_deinit(&src);
    outq_deinit(&dst);
    assert_int_equal(released[1], 1);
}

/* A copied splice of more than the copy bound falls back to moving. */
static void test_splice_of_a_long_reply(void **state)
{
    (void)state;
    struct outq dst, src;
    queues(&dst, &src);
    for (int i = 0; i < 3; i++)
        assert_int_equal(outq_add(&src, vals[i], 1000), ST_OK);
    assert_int_equal(outq_splice(&dst, &src), ST_OK);
    assert_int_equal(outq_pending(&dst), 3000);
    static char out[4096];
    assert_int_equal(drain(&dst, out, sizeof(out)), 3000);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(out + 1000 * i, vals[i], 1000);
    outq_deinit(&src);
    outq_deinit(&dst);
}

/* Clearing drops unsent bytes and gives references back. */
static void test_clear_releases_and_reuses(void **state)
{
    (void)state;
    reset_refs();
    struct outq q;
    outq_init_small(&q, on_release, NULL);
    assert_int_equal(outq_add_ref(&q, vals[2], vals[2], 2000), ST_OK);
    assert_int_equal(outq_add(&q, "x", 1), ST_OK);
    outq_clear(&q);
    assert_int_equal(released[2], 1);
    assert_int_equal(outq_pending(&q), 0);
    /* a reply larger than the chunk, then a short one */
    char big[3000];
    memset(big, 'q', sizeof(big));
    assert_int_equal(outq_add(&q, big, sizeof(big)), ST_OK);
    outq_clear(&q);
    assert_int_equal(outq_add(&q, "OK\r\n", 4), ST_OK);
    char out[16];
    assert_int_equal(drain(&q, out, sizeof(out)), 4);
    assert_memory_equal(out, "OK\r\n", 4);
    outq_deinit(&q);
    assert_int_equal(released[2], 1);
}

static void test_rollback_after_a_splice(void **state)
{
    (void)state;
    struct outq dst, src;
    queues(&dst, &src);
    assert_int_equal(outq_add(&src, "ONE\r\n", 5), ST_OK);
    assert_int_equal(outq_splice(&dst, &src), ST_OK);
    struct outq_mark m;
    outq_mark(&dst, &m);
    assert_int_equal(outq_add(&dst, "TWO\r\n", 5), ST_OK);
    assert_int_equal(outq_add_ref(&dst, vals[3], vals[3], 1500), ST_OK);
    outq_rollback(&dst, &m);
    assert_int_equal(released[3], 1);
    assert_int_equal(outq_add(&dst, "END\r\n", 5), ST_OK);
    char out[64];
    assert_int_equal(drain(&dst, out, sizeof(out)), 10);
    assert_memory_equal(out, "ONE\r\nEND\r\n", 10);
    outq_deinit(&src);
    outq_deinit(&dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_queue_grows_and_keeps_order),
        cmocka_unit_test(test_splice_copies_a_short_reply),
        cmocka_unit_test(test_splice_moves_references),
        cmocka_unit_test(test_splice_of_a_long_reply),
        cmocka_unit_test(test_clear_releases_and_reuses),
        cmocka_unit_test(test_rollback_after_a_splice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
