/* test_hintlog.c - the hint log of hinted handoff (server/hintlog.c): round
 * trip, restart, torn tails at every cut, bit flips, the byte bound,
 * partial replay across restarts, drop_older, gc_grace and the throttle,
 * segment rotation and deletion, and concurrent appends replayed once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "server/hintlog.h"

static const uint8_t TARGET[WIRE_NODE_ID_LEN] = {0xde, 0xad, 0xbe, 0xef, 1, 2,  3,  4,
                                                 5,    6,    7,    8,    9, 10, 11, 12};
#define TARGET_HEX "deadbeef0102030405060708090a0b0c"

struct fx {
    char base[256];
    char dir[512];
};

/* ---- Helpers --------------------------------------------------------------- */

static void rmrf(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[1024];
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            struct stat sb;
            if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
                rmrf(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    snprintf(f->base, sizeof(f->base), "%s/strata-hint-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->base) == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/%s", f->base, TARGET_HEX);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rmrf(f->base);
    free(f);
    return 0;
}

/* Hint number i: key "k<i>", a value of i*7%150 bytes, every 13th a
 * tombstone. */
struct hbuf {
    char key[32];
    uint8_t value[256];
    struct wire_record rec;
};

static const struct wire_record *make_rec(struct hbuf *b, unsigned i)
{
    int kl = snprintf(b->key, sizeof(b->key), "k%06u", i);
    bool tomb = i % 13 == 5;
    size_t vl = tomb ? 0 : (i * 7) % 150;
    for (size_t j = 0; j < vl; j++)
        b->value[j] = (uint8_t)(i * 31 + j);
    b->rec = (struct wire_record){
        .key = (const uint8_t *)b->key,
        .key_len = (size_t)kl,
        .value = b->value,
        .value_len = vl,
        .flags = i * 3,
        .expiry = tomb ? 1700000000u + i : 0,
        .version = {.hlc = 1000000 + i, .node = 7},
        .tombstone = tomb,
    };
    return &b->rec;
}

static void check_rec(const struct wire_record *got, unsigned i)
{
    struct hbuf b;
    const struct wire_record *want = make_rec(&b, i);
    assert_int_equal(got->key_len, want->key_len);
    assert_memory_equal(got->key, want->key, want->key_len);
    assert_int_equal(got->value_len, want->value_len);
    if (want->value_len > 0)
        assert_memory_equal(got->value, want->value, want->value_len);
    assert_int_equal(got->flags, want->flags);
    assert_int_equal(got->expiry, want->expiry);
    assert_int_equal(got->version.hlc, want->version.hlc);
    assert_int_equal(got->version.node, want->version.node);
    assert_int_equal(got->tombstone, want->tombstone);
}

static unsigned rec_index(const struct wire_record *r)
{
    char k[32] = {0};
    memcpy(k, r->key, r->key_len < 31 ? r->key_len : 31);
    return (unsigned)strtoul(k + 1, NULL, 10);
}

static struct hintlog *open_store(struct fx *f, uint64_t max_bytes, uint64_t seg_bytes)
{
    struct hintlog_options o;
    hintlog_options_default(&o);
    if (max_bytes)
        o.max_bytes = max_bytes;
    if (seg_bytes)
        o.segment_bytes = seg_bytes;
    struct hintlog *s = NULL;
    assert_int_equal(hintlog_open(f->base, TARGET, &o, &s), ST_OK);
    assert_non_null(s);
    return s;
}

static void append_range(struct hintlog *s, unsigned from, unsigned to, uint64_t ms0)
{
    for (unsigned i = from; i < to; i++) {
        struct hbuf b;
        assert_int_equal(hintlog_append(s, make_rec(&b, i), ms0 + i, NULL), ST_OK);
    }
}

/* Replays everything pending: the indices, in order, into out (or checks
 * them against from..). Commits all at the end when `commit`. */
static unsigned replay_all(struct hintlog *s, unsigned *out, unsigned max, bool commit)
{
    struct hintlog_cursor *c = NULL;
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c), ST_OK);
    unsigned n = 0;
    for (;;) {
        struct hintlog_hint h;
        uint64_t wait;
        enum st_status st;
        enum hintlog_next r = hintlog_replay_next(c, 0, &h, &wait, &st);
        assert_int_equal(st, ST_OK);
        if (r == HINTLOG_END)
            break;
        if (r == HINTLOG_WAIT)
            continue;
        unsigned i = rec_index(&h.rec);
        check_rec(&h.rec, i);
        assert_true(n < max);
        out[n++] = i;
    }
    if (commit)
        assert_int_equal(hintlog_replay_commit_all(c), ST_OK);
    hintlog_replay_end(&c);
    assert_null(c);
    return n;
}

static void expect_replay(struct hintlog *s, unsigned from, unsigned to, bool commit)
{
    unsigned got[4096];
    unsigned n = replay_all(s, got, 4096, commit);
    assert_int_equal(n, to - from);
    for (unsigned k = 0; k < n; k++)
        assert_int_equal(got[k], from + k);
}

static unsigned count_files(const char *dir, const char *suffix, uint64_t *bytes)
{
    unsigned n = 0;
    if (bytes)
        *bytes = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0) {
            n++;
            if (bytes) {
                char p[1024];
                struct stat sb;
                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
                if (stat(p, &sb) == 0)
                    *bytes += (uint64_t)sb.st_size;
            }
        }
    }
    closedir(d);
    return n;
}

/* The largest segment number in dir (0 if none). */
static unsigned long max_segment(const char *dir)
{
    unsigned long m = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char *end;
        unsigned long v = strtoul(e->d_name, &end, 10);
        if (end != e->d_name && strcmp(end, ".hint") == 0 && v > m)
            m = v;
    }
    if (d != NULL)
        closedir(d);
    return m;
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    *len = (size_t)sb.st_size;
    uint8_t *p = malloc(*len + 1);
    assert_int_equal(pread(fd, p, *len, 0), (ssize_t)*len);
    close(fd);
    return p;
}

static void write_whole(const char *path, const uint8_t *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    close(fd);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

static struct hintlog_stats stats(struct hintlog *s, uint64_t now)
{
    struct hintlog_stats st;
    hintlog_get_stats(s, now, &st);
    return st;
}

/* ---- Tests ----------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    size_t mem0 = mem_bytes(MEM_OTHER);
    struct hintlog *s = open_store(f, 0, 0);
    assert_memory_equal(hintlog_target(s), TARGET, WIRE_NODE_ID_LEN);
    for (unsigned i = 0; i < 100; i++) {
        struct hbuf b;
        uint64_t seq = 0;
        assert_int_equal(hintlog_append(s, make_rec(&b, i), 5000 + i, &seq), ST_OK);
        assert_int_equal(seq, i + 1);
    }
    assert_int_equal(hintlog_appended_seq(s), 100);
    assert_int_equal(hintlog_synced_seq(s), 0);
    assert_int_equal(hintlog_sync(s), ST_OK);
    assert_int_equal(hintlog_synced_seq(s), 100);
    struct hintlog_stats st = stats(s, 6000);
    assert_int_equal(st.pending_count, 100);
    assert_int_equal(st.written, 100);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.oldest_ms, 5000);
    assert_int_equal(st.oldest_age_ms, 1000);
    assert_int_equal(st.pending_bytes, st.disk_bytes - HINTLOG_SEGMENT_HEADER);
    uint64_t on_disk;
    assert_int_equal(count_files(f->dir, ".hint", &on_disk), 1);
    assert_int_equal(on_disk, st.disk_bytes);

    /* One cursor at a time. */
    struct hintlog_cursor *c = NULL, *c2 = NULL;
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c), ST_OK);
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c2), ST_AGAIN);
    struct hintlog_hint h;
    uint64_t wait;
    enum st_status err;
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(hintlog_replay_next(c, 0, &h, &wait, &err), HINTLOG_HINT);
        check_rec(&h.rec, i);
        assert_int_equal(h.created_ms, 5000 + i);
    }
    assert_int_equal(hintlog_replay_next(c, 0, &h, &wait, &err), HINTLOG_END);
    /* A mark past the cursor is refused. */
    struct hintlog_mark bad = h.mark;
    bad.off += 1000;
    assert_int_equal(hintlog_replay_commit(c, &bad), ST_INVAL);
    assert_int_equal(hintlog_replay_commit(c, &h.mark), ST_OK);
    hintlog_replay_end(&c);
    st = stats(s, 6000);
    assert_int_equal(st.pending_count, 0);
    assert_int_equal(st.pending_bytes, 0);
    assert_int_equal(st.replayed, 100);
    assert_int_equal(st.segments, 0);
    assert_int_equal(st.disk_bytes, 0);
    assert_int_equal(st.oldest_ms, 0);
    assert_int_equal(count_files(f->dir, ".hint", NULL), 0);

    /* Invalid records and options. */
    struct hbuf b;
    struct wire_record r = *make_rec(&b, 1);
    r.key_len = 0;
    assert_int_equal(hintlog_append(s, &r, 1, NULL), ST_INVAL);
    hintlog_close(&s);
    assert_null(s);
    hintlog_close(&s);
    assert_int_equal(mem_bytes(MEM_OTHER), mem0); /* every size given back matches */
    struct hintlog_options o = {.max_bytes = 100, .segment_bytes = 4096};
    assert_int_equal(hintlog_open(f->base, TARGET, &o, &s), ST_INVAL);
}

static void test_restart_keeps_pending(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 0, 0);
    append_range(s, 0, 50, 100);
    hintlog_close(&s); /* no sync: the page cache keeps it across a close */
    s = open_store(f, 0, 0);
    struct hintlog_stats st = stats(s, 0);
    assert_int_equal(st.pending_count, 50);
    assert_int_equal(st.oldest_ms, 100);
    assert_int_equal(st.torn_tails, 0);
    expect_replay(s, 0, 50, false); /* not committed: pending still */
    append_range(s, 50, 60, 100);
    hintlog_close(&s);
    s = open_store(f, 0, 0);
    assert_int_equal(stats(s, 0).pending_count, 60);
    expect_replay(s, 0, 60, true);
    hintlog_close(&s);
    s = open_store(f, 0, 0);
    assert_int_equal(stats(s, 0).pending_count, 0);
    expect_replay(s, 0, 0, true);
    hintlog_close(&s);
}

/* Writes n hints in one segment; ends[i] = end offset of hint i. */
static void write_segment(struct fx *f, unsigned n, uint64_t *ends, char *path, size_t pathlen)
{
    struct hintlog *s = open_store(f, 0, 0);
    for (unsigned i = 0; i < n; i++) {
        struct hbuf b;
        assert_int_equal(hintlog_append(s, make_rec(&b, i), 100 + i, NULL), ST_OK);
        ends[i] = stats(s, 0).disk_bytes;
    }
    assert_int_equal(hintlog_sync(s), ST_OK);
    hintlog_close(&s);
    snprintf(path, pathlen, "%s/00000001.hint", f->dir);
    assert_int_equal(file_size(path), ends[n - 1]);
}

static void test_torn_tail_every_offset(void **state)
{
    struct fx *f = *state;
    log_set_level(LOG_LVL_ERROR);
    enum { N = 6 };
    uint64_t ends[N];
    char path[1024];
    write_segment(f, N, ends, path, sizeof(path));
    size_t len;
    uint8_t *orig = read_whole(path, &len);
    uint64_t start = ends[N - 2];
    for (uint64_t cut = start; cut < len; cut++) {
        write_whole(path, orig, (size_t)cut);
        struct hintlog *s = open_store(f, 0, 0);
        struct hintlog_stats st = stats(s, 0);
        assert_int_equal(st.pending_count, N - 1);
        assert_int_equal(st.torn_tails, cut > start ? 1 : 0);
        assert_int_equal(st.torn_bytes, cut - start);
        assert_int_equal(st.dropped_corrupt, 0);
        assert_int_equal(file_size(path), start);
        if (cut % 7 == 0) {
            /* Appending after the truncation works. */
            struct hbuf b;
            assert_int_equal(hintlog_append(s, make_rec(&b, N - 1), 1, NULL), ST_OK);
            hintlog_close(&s);
            s = open_store(f, 0, 0);
            assert_int_equal(stats(s, 0).torn_tails, 0);
            expect_replay(s, 0, N, false);
        } else {
            expect_replay(s, 0, N - 1, false);
        }
        hintlog_close(&s);
    }
    /* A tail of zeros (the size grew, the data did not land) is torn too. */
    uint8_t *z = malloc(len);
    memcpy(z, orig, len);
    memset(z + start + 10, 0, len - start - 10);
    write_whole(path, z, len);
    struct hintlog *s = open_store(f, 0, 0);
    assert_int_equal(stats(s, 0).torn_tails, 1);
    expect_replay(s, 0, N - 1, false);
    hintlog_close(&s);
    /* A file cut inside its header is removed, counted torn. */
    write_whole(path, orig, HINTLOG_SEGMENT_HEADER - 1);
    s = open_store(f, 0, 0);
    assert_int_equal(stats(s, 0).torn_tails, 1);
    assert_int_equal(stats(s, 0).pending_count, 0);
    assert_int_equal(count_files(f->dir, ".hint", NULL), 0);
    hintlog_close(&s);
    free(z);
    free(orig);
    log_set_level(LOG_LVL_WARN);
}

static void test_bitflip(void **state)
{
    struct fx *f = *state;
    log_set_level(LOG_LVL_ERROR);
    enum { N = 5 };
    uint64_t ends[N];
    char path[1024];
    write_segment(f, N, ends, path, sizeof(path));
    size_t len;
    uint8_t *orig = read_whole(path, &len);
    /* Every byte of the middle record (hint 2), one bit each: detected,
     * counted once, every other hint kept (resync on the next record). */
    for (uint64_t off = ends[1]; off < ends[2]; off++) {
        uint8_t *p = malloc(len);
        memcpy(p, orig, len);
        p[off] ^= (uint8_t)(1u << (off % 8));
        write_whole(path, p, len);
        free(p);
        struct hintlog *s = open_store(f, 0, 0);
        struct hintlog_stats st = stats(s, 0);
        assert_int_equal(st.dropped_corrupt, 1);
        assert_int_equal(st.torn_tails, 0);
        assert_int_equal(st.pending_count, N - 1);
        unsigned got[N];
        unsigned n = replay_all(s, got, N, false);
        assert_int_equal(n, N - 1);
        assert_int_equal(got[0], 0);
        assert_int_equal(got[1], 1);
        assert_int_equal(got[2], 3);
        assert_int_equal(got[3], 4);
        hintlog_close(&s);
        /* The file is left as it is: counted again at each open. */
        assert_int_equal(file_size(path), len);
    }
    /* Two records garbled as one region: both lost, one region counted. */
    uint8_t *p = malloc(len);
    memcpy(p, orig, len);
    p[ends[0] + 1] ^= 0x40;
    p[ends[1] + 30] ^= 0x01;
    write_whole(path, p, len);
    struct hintlog *s = open_store(f, 0, 0);
    assert_int_equal(stats(s, 0).dropped_corrupt, 1);
    assert_int_equal(stats(s, 0).pending_count, N - 2);
    hintlog_close(&s);
    /* A damaged segment header: the file is set aside and counted. */
    memcpy(p, orig, len);
    p[13] ^= 0x10;
    write_whole(path, p, len);
    s = open_store(f, 0, 0);
    assert_int_equal(stats(s, 0).dropped_corrupt, 1);
    assert_int_equal(stats(s, 0).pending_count, 0);
    char aside[1100];
    snprintf(aside, sizeof(aside), "%s.corrupt", path);
    assert_int_equal(file_size(aside), len);
    /* New hints go to a new segment. */
    append_range(s, 0, 3, 0);
    hintlog_close(&s);
    s = open_store(f, 0, 0);
    expect_replay(s, 0, 3, true);
    hintlog_close(&s);
    free(p);
    free(orig);
    log_set_level(LOG_LVL_WARN);
}

static void test_bound(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 8192, 2048);
    unsigned n = 0;
    for (;; n++) {
        struct hbuf b;
        enum st_status st = hintlog_append(s, make_rec(&b, n), n, NULL);
        if (st == ST_NOMEM)
            break;
        assert_int_equal(st, ST_OK);
        assert_true(n < 1000);
    }
    assert_true(n > 20);
    uint64_t disk;
    count_files(f->dir, ".hint", &disk);
    struct hintlog_stats st = stats(s, 0);
    assert_true(st.disk_bytes <= 8192);
    assert_int_equal(disk, st.disk_bytes);
    for (unsigned i = 0; i < 100; i++) {
        struct hbuf b;
        assert_int_equal(hintlog_append(s, make_rec(&b, n), i, NULL), ST_NOMEM);
    }
    uint64_t disk2;
    count_files(f->dir, ".hint", &disk2);
    assert_int_equal(disk2, disk);
    st = stats(s, 0);
    assert_int_equal(st.dropped_full, 101);
    assert_int_equal(st.written, n);
    assert_int_equal(st.pending_count, n);
    /* Replaying frees the space. */
    expect_replay(s, 0, n, true);
    assert_int_equal(stats(s, 0).disk_bytes, 0);
    append_range(s, 0, 10, 0);
    hintlog_close(&s);
}

/* Takes `take` hints, commits the mark of hint `upto` (0-based, < take). */
static void replay_partial(struct hintlog *s, unsigned first, unsigned take, unsigned upto)
{
    struct hintlog_cursor *c = NULL;
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c), ST_OK);
    struct hintlog_mark marks[256];
    for (unsigned k = 0; k < take; k++) {
        struct hintlog_hint h;
        uint64_t wait;
        enum st_status st;
        assert_int_equal(hintlog_replay_next(c, 0, &h, &wait, &st), HINTLOG_HINT);
        check_rec(&h.rec, first + k);
        marks[k] = h.mark;
    }
    assert_int_equal(hintlog_replay_commit(c, &marks[upto]), ST_OK);
    if (upto > 0) /* an older mark afterwards is a no-op */
        assert_int_equal(hintlog_replay_commit(c, &marks[upto - 1]), ST_OK);
    hintlog_replay_end(&c);
}

static void test_partial_commit_restart(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 0, 1024);
    append_range(s, 0, 100, 0);
    unsigned files = count_files(f->dir, ".hint", NULL);
    assert_true(files >= 5);
    char seg1[1024];
    snprintf(seg1, sizeof(seg1), "%s/00000001.hint", f->dir);
    size_t seg1_len;
    uint8_t *seg1_data = read_whole(seg1, &seg1_len);
    replay_partial(s, 0, 37, 30);
    assert_int_equal(stats(s, 0).pending_count, 69);
    assert_int_equal(stats(s, 0).replayed, 31);
    unsigned files2 = count_files(f->dir, ".hint", NULL);
    assert_true(files2 < files);
    assert_int_equal(access(seg1, F_OK), -1);
    hintlog_close(&s);

    /* A replayed segment whose deletion was lost (crash) is deleted at open,
     * not replayed. */
    write_whole(seg1, seg1_data, seg1_len);
    free(seg1_data);
    s = open_store(f, 0, 1024);
    assert_int_equal(access(seg1, F_OK), -1);
    assert_int_equal(stats(s, 0).pending_count, 69);
    replay_partial(s, 31, 10, 4); /* through hint 35 */
    hintlog_close(&s);
    s = open_store(f, 0, 1024);
    assert_int_equal(stats(s, 0).pending_count, 64);
    expect_replay(s, 36, 100, false);
    /* A lost position file only replays more (from the oldest segment). */
    char pos[1024];
    snprintf(pos, sizeof(pos), "%s/REPLAY", f->dir);
    hintlog_close(&s);
    log_set_level(LOG_LVL_ERROR);
    write_whole(pos, (const uint8_t *)"garbage", 7);
    s = open_store(f, 0, 1024);
    log_set_level(LOG_LVL_WARN);
    uint64_t pending = stats(s, 0).pending_count;
    assert_true(pending >= 64 && pending < 100);
    unsigned got[128];
    unsigned n = replay_all(s, got, 128, true);
    assert_int_equal(n, pending);
    assert_int_equal(got[n - 1], 99);
    assert_int_equal(got[n - 64], 36);
    hintlog_close(&s);
    s = open_store(f, 0, 1024);
    assert_int_equal(stats(s, 0).pending_count, 0);
    assert_int_equal(count_files(f->dir, ".hint", NULL), 0);
    hintlog_close(&s);
}

static void test_drop_older(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 0, 1024);
    for (unsigned i = 0; i < 100; i++) {
        struct hbuf b;
        assert_int_equal(hintlog_append(s, make_rec(&b, i), 10000 + i * 100, NULL), ST_OK);
    }
    assert_int_equal(stats(s, 0).oldest_ms, 10000);
    uint64_t dropped = 0;
    assert_int_equal(hintlog_drop_older(s, 10000, &dropped), ST_OK);
    assert_int_equal(dropped, 0);
    assert_int_equal(hintlog_drop_older(s, 14050, &dropped), ST_OK);
    assert_int_equal(dropped, 41);
    struct hintlog_stats st = stats(s, 20000);
    assert_int_equal(st.pending_count, 59);
    assert_int_equal(st.dropped_old, 41);
    assert_int_equal(st.oldest_ms, 14100);
    assert_int_equal(st.oldest_age_ms, 5900);
    hintlog_close(&s);
    s = open_store(f, 0, 1024);
    assert_int_equal(stats(s, 0).pending_count, 59);
    assert_int_equal(stats(s, 0).oldest_ms, 14100);
    /* A cursor open across a drop catches up with it. */
    struct hintlog_cursor *c = NULL;
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c), ST_OK);
    struct hintlog_hint h;
    uint64_t wait;
    enum st_status err;
    assert_int_equal(hintlog_replay_next(c, 0, &h, &wait, &err), HINTLOG_HINT);
    check_rec(&h.rec, 41);
    assert_int_equal(hintlog_drop_older(s, 10000 + 60 * 100, &dropped), ST_OK);
    assert_int_equal(dropped, 19);
    assert_int_equal(hintlog_replay_commit(c, &h.mark), ST_OK); /* behind: no-op */
    assert_int_equal(hintlog_replay_next(c, 0, &h, &wait, &err), HINTLOG_HINT);
    check_rec(&h.rec, 60);
    hintlog_replay_end(&c);
    assert_int_equal(stats(s, 0).pending_count, 40);
    assert_int_equal(hintlog_drop_older(s, UINT64_MAX, &dropped), ST_OK);
    assert_int_equal(dropped, 40);
    st = stats(s, 0);
    assert_int_equal(st.pending_count, 0);
    assert_int_equal(st.segments, 0);
    assert_int_equal(count_files(f->dir, ".hint", NULL), 0);
    hintlog_close(&s);
}

static void test_gc_grace_and_throttle(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 0, 0);
    append_range(s, 0, 100, 1000); /* created 1000 + i */
    /* At 11020 with a 10 s gc_grace, hints created before 1020 are dropped. */
    struct hintlog_replay_options o = {.gc_grace_ms = 10000, .rate_bytes_per_sec = 0};
    struct hintlog_cursor *c = NULL;
    assert_int_equal(hintlog_replay_begin(s, &o, 11020, &c), ST_OK);
    struct hintlog_hint h;
    uint64_t wait;
    enum st_status err;
    assert_int_equal(hintlog_replay_next(c, 11020, &h, &wait, &err), HINTLOG_HINT);
    check_rec(&h.rec, 20);
    assert_int_equal(stats(s, 0).dropped_too_old, 20);
    assert_int_equal(hintlog_replay_commit(c, &h.mark), ST_OK);
    hintlog_replay_end(&c);
    struct hintlog_stats st = stats(s, 0);
    assert_int_equal(st.pending_count, 79);
    assert_int_equal(st.replayed, 1);
    assert_int_equal(st.oldest_ms, 1021);

    /* 2000 B/s: a burst of 4 KiB, then a wait, then about 2 bytes a ms. */
    o = (struct hintlog_replay_options){.gc_grace_ms = 0, .rate_bytes_per_sec = 2000};
    assert_int_equal(hintlog_replay_begin(s, &o, 50000, &c), ST_OK);
    uint64_t now = 50000, bytes = 0;
    unsigned got = 0, waits = 0;
    uint64_t prev_end = 0;
    for (;;) {
        enum hintlog_next r = hintlog_replay_next(c, now, &h, &wait, &err);
        assert_int_equal(err, ST_OK);
        if (r == HINTLOG_END)
            break;
        if (r == HINTLOG_WAIT) {
            assert_true(wait > 0);
            waits++;
            now += wait;
            continue;
        }
        check_rec(&h.rec, 21 + got);
        got++;
        if (h.mark.seg == 1 && prev_end != 0)
            bytes += h.mark.off - prev_end;
        prev_end = h.mark.off;
    }
    assert_int_equal(got, 79);
    assert_true(waits > 0);
    /* Elapsed time matches the rate: (bytes - burst) / rate, within 10%. */
    uint64_t elapsed = now - 50000;
    uint64_t expect = bytes > 4096 ? (bytes - 4096) * 1000 / 2000 : 0;
    assert_true(elapsed + 50 >= expect * 9 / 10);
    assert_true(elapsed <= expect * 11 / 10 + 50);
    assert_int_equal(hintlog_replay_commit_all(c), ST_OK);
    hintlog_replay_end(&c);
    assert_int_equal(stats(s, 0).pending_count, 0);
    hintlog_close(&s);
}

static void test_rotation_and_deletion(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 0, 1024);
    append_range(s, 0, 200, 0);
    unsigned files = count_files(f->dir, ".hint", NULL);
    struct hintlog_stats st = stats(s, 0);
    assert_int_equal(files, st.segments);
    assert_true(files >= 10);
    char first[1024];
    snprintf(first, sizeof(first), "%s/00000001.hint", f->dir);
    assert_true(file_size(first) <= 1024);
    /* Commit exactly through the last hint of segment 1: it goes. */
    struct hintlog_cursor *c = NULL;
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c), ST_OK);
    struct hintlog_hint h;
    struct hintlog_mark last1 = {0};
    uint64_t wait;
    enum st_status err;
    unsigned k = 0;
    while (hintlog_replay_next(c, 0, &h, &wait, &err) == HINTLOG_HINT) {
        check_rec(&h.rec, k++);
        if (h.mark.seg == 1)
            last1 = h.mark;
        if (h.mark.seg == 2)
            break;
    }
    assert_int_equal(hintlog_replay_commit(c, &last1), ST_OK);
    assert_int_equal(count_files(f->dir, ".hint", NULL), files - 1);
    assert_int_equal(access(first, F_OK), -1);
    while (hintlog_replay_next(c, 0, &h, &wait, &err) == HINTLOG_HINT)
        check_rec(&h.rec, k++);
    assert_int_equal(k, 200);
    /* Appends while the cursor is at the end are seen by it. */
    append_range(s, 200, 205, 0);
    while (hintlog_replay_next(c, 0, &h, &wait, &err) == HINTLOG_HINT)
        check_rec(&h.rec, k++);
    assert_int_equal(k, 205);
    assert_int_equal(hintlog_replay_commit_all(c), ST_OK);
    hintlog_replay_end(&c);
    assert_int_equal(count_files(f->dir, ".hint", NULL), 0);
    st = stats(s, 0);
    assert_int_equal(st.segments, 0);
    assert_int_equal(st.replayed, 205);
    /* A new segment takes a new number, also after a restart. */
    hintlog_close(&s);
    s = open_store(f, 0, 1024);
    append_range(s, 0, 3, 0);
    assert_int_equal(count_files(f->dir, ".hint", NULL), 1);
    assert_true(max_segment(f->dir) > files);
    assert_int_equal(hintlog_sync(s), ST_OK);
    expect_replay(s, 0, 3, true);
    hintlog_close(&s);
}

/* ---- Concurrency ----------------------------------------------------------- */

enum { THREADS = 4, PER_THREAD = 1000 };

struct mt {
    struct hintlog *s;
    unsigned t;
    _Atomic int *writers_left;
    _Atomic unsigned *full;
};

static void *writer(void *arg)
{
    struct mt *m = arg;
    for (unsigned i = 0; i < PER_THREAD; i++) {
        char key[32];
        uint8_t val[64];
        int kl = snprintf(key, sizeof(key), "t%u-%06u", m->t, i);
        size_t vl = (i * 5) % 64;
        memset(val, (int)(m->t * 16 + i % 16), vl);
        struct wire_record r = {.key = (const uint8_t *)key,
                                .key_len = (size_t)kl,
                                .value = val,
                                .value_len = vl,
                                .version = {.hlc = i, .node = (uint16_t)m->t}};
        enum st_status st;
        while ((st = hintlog_append(m->s, &r, 1000 + i, NULL)) == ST_NOMEM) {
            atomic_fetch_add(m->full, 1);
            sched_yield();
        }
        assert_int_equal(st, ST_OK);
    }
    atomic_fetch_sub(m->writers_left, 1);
    return NULL;
}

static void *syncer(void *arg)
{
    struct mt *m = arg;
    while (atomic_load(m->writers_left) > 0) {
        assert_int_equal(hintlog_sync(m->s), ST_OK);
        sched_yield();
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 32 << 10, 4096);
    _Atomic int left = THREADS;
    _Atomic unsigned full = 0;
    struct mt ms[THREADS + 1];
    pthread_t th[THREADS + 1];
    for (unsigned t = 0; t <= THREADS; t++) {
        ms[t] = (struct mt){.s = s, .t = t, .writers_left = &left, .full = &full};
        assert_int_equal(pthread_create(&th[t], NULL, t < THREADS ? writer : syncer, &ms[t]), 0);
    }
    /* The replayer: this thread, committing every 16 hints. */
    static unsigned char seen[THREADS][PER_THREAD];
    memset(seen, 0, sizeof(seen));
    int next_i[THREADS] = {0};
    unsigned total = 0;
    struct hintlog_cursor *c = NULL;
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c), ST_OK);
    for (;;) {
        struct hintlog_hint h;
        uint64_t wait;
        enum st_status err;
        enum hintlog_next r = hintlog_replay_next(c, 0, &h, &wait, &err);
        assert_int_equal(err, ST_OK);
        if (r == HINTLOG_HINT) {
            char key[32] = {0};
            memcpy(key, h.rec.key, h.rec.key_len);
            unsigned t, i;
            assert_int_equal(sscanf(key, "t%u-%u", &t, &i), 2);
            assert_true(t < THREADS && i < PER_THREAD);
            assert_int_equal(h.rec.version.node, t);
            assert_int_equal(h.rec.version.hlc, i);
            assert_int_equal(h.rec.value_len, (i * 5) % 64);
            assert_int_equal(seen[t][i], 0);
            assert_int_equal((int)i, next_i[t]); /* a thread's hints stay in order */
            seen[t][i] = 1;
            next_i[t]++;
            total++;
            if (total % 16 == 0)
                assert_int_equal(hintlog_replay_commit(c, &h.mark), ST_OK);
            continue;
        }
        assert_int_equal(hintlog_replay_commit_all(c), ST_OK);
        if (r == HINTLOG_END && atomic_load(&left) == 0 && stats(s, 0).pending_count == 0)
            break;
        sched_yield();
    }
    hintlog_replay_end(&c);
    for (unsigned t = 0; t <= THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(total, THREADS * PER_THREAD);
    assert_int_equal(hintlog_sync(s), ST_OK);
    struct hintlog_stats st = stats(s, 0);
    assert_int_equal(st.synced_seq, THREADS * PER_THREAD);
    assert_int_equal(st.appended_seq, THREADS * PER_THREAD);
    assert_int_equal(st.written, THREADS * PER_THREAD);
    assert_int_equal(st.replayed, THREADS * PER_THREAD);
    assert_int_equal(st.dropped_full, atomic_load(&full));
    assert_int_equal(st.pending_count, 0);
    assert_false(st.failed);
    hintlog_close(&s);
    /* Nothing comes back after a restart. */
    s = open_store(f, 32 << 10, 4096);
    assert_int_equal(stats(s, 0).pending_count, 0);
    hintlog_close(&s);
}

/* ---- Targets and stats ------------------------------------------------------- */

static void found_cb(void *arg, const uint8_t id[WIRE_NODE_ID_LEN])
{
    unsigned *mask = arg;
    if (memcmp(id, TARGET, WIRE_NODE_ID_LEN) == 0)
        *mask |= 1;
    else if (id[0] == 0x11 && id[15] == 0x22)
        *mask |= 2;
    else
        *mask |= 4;
}

struct emitted {
    unsigned n;
    uint64_t pending;
};

static void emit_cb(void *arg, const char *name, uint64_t v)
{
    struct emitted *e = arg;
    e->n++;
    if (strcmp(name, "pending_count") == 0)
        e->pending = v;
}

static void test_targets_and_stats(void **state)
{
    struct fx *f = *state;
    uint8_t other[WIRE_NODE_ID_LEN] = {0x11};
    other[15] = 0x22;
    struct hintlog *a = open_store(f, 0, 0), *b = NULL;
    assert_int_equal(hintlog_open(f->base, other, NULL, &b), ST_OK);
    append_range(a, 0, 3, 0);
    append_range(b, 0, 5, 0);
    char junk[600];
    snprintf(junk, sizeof(junk), "%s/not-a-target", f->base);
    mkdir(junk, 0755);
    unsigned mask = 0;
    assert_int_equal(hintlog_list_targets(f->base, found_cb, &mask), ST_OK);
    assert_int_equal(mask, 3);
    struct hintlog_stats st = stats(b, 0);
    struct emitted e = {0};
    hintlog_stats_emit(&st, emit_cb, &e);
    assert_int_equal(e.pending, 5);
    assert_true(e.n >= 12);
    assert_int_equal(stats(a, 0).pending_count, 3);
    hintlog_close(&a);
    hintlog_close(&b);
    snprintf(junk, sizeof(junk), "%s/missing", f->base);
    assert_int_equal(hintlog_list_targets(junk, found_cb, &mask), ST_OK);
}

static void test_edges(void **state)
{
    struct fx *f = *state;
    struct hintlog *s = open_store(f, 0, 0);
    /* A hint too big for a replay frame is refused, nothing written. */
    size_t big = HINTLOG_BODY_MAX;
    uint8_t *v = calloc(1, big);
    struct wire_record r = {
        .key = (const uint8_t *)"big", .key_len = 3, .value = v, .value_len = big};
    assert_int_equal(hintlog_append(s, &r, 1, NULL), ST_INVAL);
    free(v);
    assert_int_equal(stats(s, 0).disk_bytes, 0);
    /* An empty store: END at once; a sync with nothing to do succeeds. */
    expect_replay(s, 0, 0, true);
    assert_int_equal(hintlog_sync(s), ST_OK);
    /* A segment removed behind the store's back: ST_IO, not a spin. */
    append_range(s, 0, 5, 0);
    char path[1024];
    snprintf(path, sizeof(path), "%s/00000001.hint", f->dir);
    assert_int_equal(unlink(path), 0);
    struct hintlog_cursor *c = NULL;
    assert_int_equal(hintlog_replay_begin(s, NULL, 0, &c), ST_OK);
    struct hintlog_hint h;
    uint64_t wait;
    enum st_status err;
    assert_int_equal(hintlog_replay_next(c, 0, &h, &wait, &err), HINTLOG_WAIT);
    assert_int_equal(err, ST_IO);
    hintlog_replay_end(&c);
    hintlog_close(&s);
    s = open_store(f, 0, 0);
    assert_int_equal(stats(s, 0).pending_count, 0);
    hintlog_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bitflip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_commit_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_older, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_grace_and_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_and_deletion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targets_and_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edges, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
