/* test_logfile.c - WAL/manifest record framing (storage/logfile.c): round
 * trip, torn tails (ignored) versus mid-log corruption (ST_CORRUPT), and
 * every truncation and bit flip handled without a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storage/logfile.h"
#include "testutil.h"

struct fx {
    char *dir;
    char path[4096];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp();
    snprintf(f->path, sizeof(f->path), "%s/000001.wal", f->dir);
    *state = f;
    return f->dir ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmtemp(&f->dir);
    free(f);
    return 0;
}

/* Writes records of sizes 1..n*37 with a byte pattern. */
static void write_log(const char *path, int n)
{
    struct logfile_writer *w = NULL;
    assert_int_equal(logfile_writer_create(env_posix(), path, LOGFILE_MAGIC_WAL, 1, &w), ST_OK);
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)(i * 37 % 500) + 1;
        uint8_t buf[600];
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)(i + j);
        assert_int_equal(logfile_writer_add(w, buf, len), ST_OK);
    }
    assert_int_equal(logfile_writer_sync(w), ST_OK);
    logfile_writer_destroy(&w);
    assert_null(w);
}

/* Reads back: returns records read, *st the final status, *torn. */
static int read_log(const char *path, bool newest, enum st_status *st, bool *torn)
{
    struct logfile_reader *r = NULL;
    *torn = false;
    *st = logfile_reader_open(env_posix(), path, LOGFILE_MAGIC_WAL, newest, &r);
    if (*st != ST_OK)
        return 0;
    int n = 0;
    for (;;) {
        const uint8_t *p;
        size_t len;
        bool eof;
        *st = logfile_reader_next(r, &p, &len, &eof);
        if (*st != ST_OK || eof)
            break;
        size_t want = (size_t)(n * 37 % 500) + 1;
        assert_int_equal(len, want);
        for (size_t j = 0; j < len; j++)
            assert_int_equal(p[j], (uint8_t)(n + j));
        n++;
    }
    *torn = logfile_reader_torn(r);
    logfile_reader_destroy(&r);
    return n;
}

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    write_log(f->path, 50);
    enum st_status st;
    bool torn;
    assert_int_equal(read_log(f->path, true, &st, &torn), 50);
    assert_int_equal(st, ST_OK);
    assert_false(torn);
}

static void test_torn_tail_every_cut(void **state)
{
    struct fx *f = *state;
    write_log(f->path, 5);
    size_t len;
    unsigned char *data = tu_read_file(f->path, &len);
    /* Find where the last record starts: read 4 records' lengths. */
    size_t off = LOGFILE_HEADER_SIZE;
    for (int i = 0; i < 4; i++)
        off += LOGFILE_RECORD_HEADER + dec_u32le(data + off);
    for (size_t cut = off; cut < len; cut++) {
        tu_write_file(f->path, data, cut);
        enum st_status st;
        bool torn;
        int n = read_log(f->path, true, &st, &torn);
        assert_int_equal(st, ST_OK);
        assert_int_equal(n, 4);
        assert_int_equal(torn, cut != off);
        /* In an older segment the same damage is corruption. */
        n = read_log(f->path, false, &st, &torn);
        assert_int_equal(st, cut == off ? ST_OK : ST_CORRUPT);
    }
    /* A tail of zeros (size extended, data never written) is torn too. */
    unsigned char *z = calloc(1, len + 100);
    memcpy(z, data, off);
    tu_write_file(f->path, z, len + 100);
    enum st_status st;
    bool torn;
    assert_int_equal(read_log(f->path, true, &st, &torn), 4);
    assert_int_equal(st, ST_OK);
    assert_true(torn);
    free(z);
    free(data);
}

static void test_mid_log_corruption(void **state)
{
    struct fx *f = *state;
    write_log(f->path, 10);
    size_t len;
    unsigned char *data = tu_read_file(f->path, &len);
    /* Flip a payload byte of record 3 (0-based 2). */
    size_t off = LOGFILE_HEADER_SIZE;
    for (int i = 0; i < 2; i++)
        off += LOGFILE_RECORD_HEADER + dec_u32le(data + off);
    data[off + LOGFILE_RECORD_HEADER] ^= 0x10;
    tu_write_file(f->path, data, len);
    enum st_status st;
    bool torn;
    int n = read_log(f->path, true, &st, &torn);
    assert_int_equal(n, 2);
    assert_int_equal(st, ST_CORRUPT);
    /* A flipped length field in the middle is corruption, not a torn tail. */
    data[off + LOGFILE_RECORD_HEADER] ^= 0x10;
    data[off + 1] ^= 0x40;
    tu_write_file(f->path, data, len);
    n = read_log(f->path, true, &st, &torn);
    assert_int_equal(n, 2);
    assert_int_equal(st, ST_CORRUPT);
    free(data);
}

static void test_every_bitflip(void **state)
{
    struct fx *f = *state;
    write_log(f->path, 6);
    size_t len;
    unsigned char *data = tu_read_file(f->path, &len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            data[i] ^= (unsigned char)(1u << bit);
            tu_write_file(f->path, data, len);
            enum st_status st;
            bool torn;
            int n = read_log(f->path, true, &st, &torn);
            /* Never a wrong record (read_log checks contents), never all 6
             * records with a flip anywhere. */
            assert_true(n < 6);
            assert_true(st == ST_OK || st == ST_CORRUPT);
            data[i] ^= (unsigned char)(1u << bit);
        }
    }
    free(data);
}

static void test_bad_header(void **state)
{
    struct fx *f = *state;
    write_log(f->path, 1);
    size_t len;
    unsigned char *data = tu_read_file(f->path, &len);
    data[0] ^= 1;
    tu_write_file(f->path, data, len);
    enum st_status st;
    bool torn;
    read_log(f->path, true, &st, &torn);
    assert_int_equal(st, ST_CORRUPT);
    /* A file cut inside its header: torn when newest, corrupt otherwise. */
    data[0] ^= 1;
    tu_write_file(f->path, data, 10);
    assert_int_equal(read_log(f->path, true, &st, &torn), 0);
    assert_int_equal(st, ST_OK);
    read_log(f->path, false, &st, &torn);
    assert_int_equal(st, ST_CORRUPT);
    /* Wrong magic kind (a manifest read as WAL). */
    struct logfile_reader *r = NULL;
    tu_write_file(f->path, data, len);
    assert_int_equal(logfile_reader_open(env_posix(), f->path, LOGFILE_MAGIC_MANIFEST, true, &r),
                     ST_CORRUPT);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mid_log_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_bitflip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
