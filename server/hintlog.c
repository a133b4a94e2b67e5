/*
 * hintlog.c - the per-target hint log of hinted handoff (format atop
 * hintlog.h and in docs/formats/hints.md). Coordinator workers append, a
 * background thread syncs, the hint replayer reads through a cursor. A
 * store mutex guards the segment list and counters; a second mutex
 * serializes syncs so that fdatasync runs with the store mutex released.
 *
 * Lock order: sync_mu, then mu. File descriptors written by appends are
 * closed only by hintlog_sync (after syncing them) or hintlog_close, so a
 * sync can use one outside mu while an append rotates or a commit deletes
 * its segment.
 */
#include "server/hintlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"

#define SEG_SUFFIX ".hint"
#define POS_NAME "REPLAY"
#define POS_TMP_NAME "REPLAY.tmp"
#define CORRUPT_SUFFIX ".corrupt"
#define RD_CHUNK (64u << 10)
/* Records skipped (too old, corrupt) by one hintlog_replay_next call before
 * it returns HINTLOG_WAIT: background work does a bounded amount per tick. */
#define SKIP_BUDGET 4096u
#define RATE_MAX 1000000000000ull /* bytes/s; above this the throttle is off */

/* ---- Little-endian fields ------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t check32(const void *p, size_t n)
{
    return (uint32_t)XXH3_64bits(p, n);
}

/* ---- The store ----------------------------------------------------------- */

struct seg {
    uint64_t number;
    uint64_t size;     /* valid bytes, header included: where the next append goes */
    uint64_t records;  /* valid hints in it */
    uint64_t first_ms; /* created_ms of its first hint */
    uint64_t min_ms;   /* over its hints; UINT64_MAX when none */
    uint64_t max_ms;   /* over its hints; 0 when none */
    uint64_t scanned;  /* damage below this offset was counted at open */
};

/* A replay position: everything before (seg, off) is done; idx hints of seg
 * lie before off. */
struct pos {
    uint64_t seg;
    uint64_t off;
    uint64_t idx;
};

struct hintlog {
    pthread_mutex_t mu;
    pthread_mutex_t sync_mu;
    char *dir;    /* <base>/<hex id> */
    char *base;   /* <base> */
    char *parent; /* the directory holding <base> */
    uint8_t target[WIRE_NODE_ID_LEN];
    struct hintlog_options opt;

    /* Guarded by mu. */
    struct seg *segs; /* by number; segs[nsegs-1] is the one wfd appends to */
    size_t nsegs;
    size_t cap_segs;
    int wfd;      /* -1: the next append creates a segment */
    int *retired; /* written fds waiting for a sync to sync and close them */
    size_t nretired;
    size_t cap_retired;
    uint64_t next_number;
    struct pos committed; /* seg == segs[0].number, or next_number when none */
    uint64_t head_ms;     /* created_ms of the first pending hint of segs[0] */
    uint64_t disk_bytes;
    uint64_t total_records;
    uint64_t appended_seq;
    uint64_t synced_seq;
    bool dir_dirty;    /* a file was created in dir since the last sync */
    bool base_dirty;   /* dir was created */
    bool parent_dirty; /* base was created */
    bool failed;
    bool cursor_open;
    struct hintlog_stats st; /* counters only */
};

static int pos_cmp(uint64_t aseg, uint64_t aoff, uint64_t bseg, uint64_t boff)
{
    if (aseg != bseg)
        return aseg < bseg ? -1 : 1;
    if (aoff != boff)
        return aoff < boff ? -1 : 1;
    return 0;
}

static void seg_path(const struct hintlog *s, uint64_t number, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%08" PRIu64 SEG_SUFFIX, s->dir, number);
}

static void hex_id(const uint8_t id[WIRE_NODE_ID_LEN], char out[2 * WIRE_NODE_ID_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < WIRE_NODE_ID_LEN; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * WIRE_NODE_ID_LEN] = 0;
}

static char *str_dup(const char *p, size_t n)
{
    char *s = mem_alloc(MEM_OTHER, n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static void str_free(char **p)
{
    if (*p != NULL)
        mem_free(MEM_OTHER, *p, strlen(*p) + 1);
    *p = NULL;
}

static enum st_status write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return ST_IO;
        }
        p += k;
        n -= (size_t)k;
    }
    return ST_OK;
}

static enum st_status fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ST_IO;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc == 0 ? ST_OK : ST_IO;
}

/* Creates a directory; *created says whether it did. */
static enum st_status make_dir(const char *path, bool *created)
{
    *created = false;
    if (mkdir(path, 0755) == 0) {
        *created = true;
        return ST_OK;
    }
    struct stat sb;
    if (errno == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ST_OK;
    if (errno == EEXIST)
        errno = ENOTDIR;
    return ST_IO;
}

static enum st_status reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return ST_OK;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    void *p = mem_realloc(MEM_OTHER, *arr, *cap * elem, ncap * elem);
    if (p == NULL)
        return ST_NOMEM;
    *arr = p;
    *cap = ncap;
    return ST_OK;
}

/* ---- Reading segments ------------------------------------------------------
 * A window over a segment file. Bytes are read only below the limit the
 * caller passes, which never exceeds a complete append: bytes below it are
 * final (segments are append-only), so the window never goes stale.
 */

struct rd {
    int fd;
    uint64_t number; /* segment the fd reads */
    uint8_t *buf;
    size_t cap;
    uint64_t base; /* file offset of buf[0] */
    size_t len;
};

static void rd_init(struct rd *r)
{
    *r = (struct rd){.fd = -1, .number = UINT64_MAX};
}

static void rd_close(struct rd *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->number = UINT64_MAX;
    r->len = 0;
}

static void rd_deinit(struct rd *r)
{
    rd_close(r);
    mem_free(MEM_OTHER, r->buf, r->cap);
    rd_init(r);
}

/* Points r at segment `number`. ST_OK; ST_IO (errno ENOENT: the segment was
 * deleted meanwhile). */
static enum st_status rd_open(struct rd *r, const struct hintlog *s, uint64_t number)
{
    if (r->fd >= 0 && r->number == number)
        return ST_OK;
    rd_close(r);
    char path[PATH_MAX];
    seg_path(s, number, path, sizeof(path));
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return ST_IO;
    r->number = number;
    return ST_OK;
}

/* *p = the bytes [off, off+n), n <= limit - off. ST_OK; ST_IO; ST_NOMEM;
 * ST_CORRUPT (the file is shorter than the limit says). */
static enum st_status rd_view(struct rd *r, uint64_t off, size_t n, uint64_t limit,
                              const uint8_t **p)
{
    ASSERT(off <= limit && n <= limit - off);
    if (off >= r->base && off - r->base <= r->len && n <= r->len - (off - r->base)) {
        *p = r->buf + (off - r->base);
        return ST_OK;
    }
    size_t want = n < RD_CHUNK ? RD_CHUNK : n;
    if (want > limit - off)
        want = (size_t)(limit - off);
    if (want > r->cap) {
        uint8_t *b = mem_realloc(MEM_OTHER, r->buf, r->cap, want);
        if (b == NULL)
            return ST_NOMEM;
        r->buf = b;
        r->cap = want;
    }
    r->base = off;
    r->len = 0;
    while (r->len < want) {
        ssize_t k = pread(r->fd, r->buf + r->len, want - r->len, (off_t)(off + r->len));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            r->len = 0;
            return ST_IO;
        }
        if (k == 0)
            break;
        r->len += (size_t)k;
    }
    if (r->len < n)
        return ST_CORRUPT;
    *p = r->buf;
    return ST_OK;
}

enum scan_ev {
    EV_REC,     /* a valid hint at [start, end) */
    EV_CORRUPT, /* a damaged region [start, end), valid bytes follow */
    EV_TORN,    /* damage from start to the limit, nothing valid after */
    EV_END,     /* off == limit */
};

struct scan {
    uint64_t start;
    uint64_t end;
    uint64_t created_ms;
    struct wire_record rec; /* views into the reader's window */
};

/* Whether a whole valid record starts at off (and its parts, in *o). */
static enum st_status rec_at(struct rd *r, uint64_t off, uint64_t limit, bool *ok, struct scan *o)
{
    *ok = false;
    const uint8_t *h;
    if (limit - off < HINTLOG_RECORD_HEADER)
        return ST_OK;
    enum st_status st = rd_view(r, off, HINTLOG_RECORD_HEADER, limit, &h);
    if (st != ST_OK)
        return st;
    uint32_t n = get32(h);
    if (n < HINTLOG_BODY_MIN || n > HINTLOG_BODY_MAX || get32(h + 4) != check32(h, 4) ||
        n > limit - off - HINTLOG_RECORD_HEADER)
        return ST_OK;
    st = rd_view(r, off, HINTLOG_RECORD_HEADER + n, limit, &h);
    if (st != ST_OK)
        return st;
    if (XXH3_64bits(h + 16, 8 + (size_t)n) != get64(h + 8))
        return ST_OK;
    struct wire_reader wr;
    wire_reader_init(&wr, h + HINTLOG_RECORD_HEADER, n);
    wire_get_record(&wr, &o->rec);
    if (!wire_reader_done(&wr))
        return ST_OK;
    o->start = off;
    o->end = off + HINTLOG_RECORD_HEADER + n;
    o->created_ms = get64(h + 16);
    *ok = true;
    return ST_OK;
}

static enum st_status zeros_to(struct rd *r, uint64_t off, uint64_t limit, bool *zero)
{
    *zero = true;
    while (off < limit) {
        size_t n = limit - off < RD_CHUNK ? (size_t)(limit - off) : RD_CHUNK;
        const uint8_t *p;
        enum st_status st = rd_view(r, off, n, limit, &p);
        if (st != ST_OK)
            return st;
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0) {
                *zero = false;
                return ST_OK;
            }
        off += n;
    }
    return ST_OK;
}

/*
 * What lies at off (the rules of hints.md "Reading"): a record; a damaged
 * region that valid bytes follow (a record whose length check holds but
 * whose checksum or body fails is skipped by its length; one whose header
 * fails is skipped to the next offset where a whole valid record starts);
 * or damage up to the limit (torn).
 */
static enum st_status scan_next(struct rd *r, uint64_t off, uint64_t limit, enum scan_ev *ev,
                                struct scan *o)
{
    o->start = off;
    o->end = limit;
    if (off >= limit) {
        *ev = EV_END;
        return ST_OK;
    }
    bool ok;
    enum st_status st = rec_at(r, off, limit, &ok, o);
    if (st != ST_OK || ok) {
        *ev = EV_REC;
        return st;
    }
    *ev = EV_TORN;
    if (limit - off < HINTLOG_RECORD_HEADER)
        return ST_OK;
    const uint8_t *h;
    st = rd_view(r, off, HINTLOG_RECORD_HEADER, limit, &h);
    if (st != ST_OK)
        return st;
    uint32_t n = get32(h);
    bool hdr_ok = n >= HINTLOG_BODY_MIN && n <= HINTLOG_BODY_MAX && get32(h + 4) == check32(h, 4);
    if (hdr_ok) {
        if (n > limit - off - HINTLOG_RECORD_HEADER)
            return ST_OK; /* the payload runs past the end */
        uint64_t end = off + HINTLOG_RECORD_HEADER + n;
        bool zero;
        if ((st = zeros_to(r, end, limit, &zero)) != ST_OK)
            return st;
        if (!zero) {
            *ev = EV_CORRUPT;
            o->end = end;
        }
        return ST_OK;
    }
    for (uint64_t q = off + 1; q + HINTLOG_RECORD_HEADER <= limit; q++) {
        struct scan tmp;
        if ((st = rec_at(r, q, limit, &ok, &tmp)) != ST_OK)
            return st;
        if (ok) {
            *ev = EV_CORRUPT;
            o->end = q;
            return ST_OK;
        }
    }
    return ST_OK;
}

/* ---- Segment list (all _locked: the caller holds mu) ----------------------- */

/* Room to retire the append fd without allocating, reserved whenever an fd
 * becomes the append fd: deleting a segment then cannot fail. */
static enum st_status retire_reserve_locked(struct hintlog *s, size_t extra)
{
    return reserve((void **)&s->retired, &s->cap_retired, s->nretired + extra, sizeof(int));
}

static void retire_wfd_locked(struct hintlog *s)
{
    if (s->wfd < 0)
        return;
    if (NEVER(s->nretired >= s->cap_retired)) {
        close(s->wfd); /* unreachable: the slot was reserved */
    } else {
        s->retired[s->nretired++] = s->wfd;
    }
    s->wfd = -1;
}

static void set_head_start_locked(struct hintlog *s)
{
    if (s->nsegs > 0) {
        s->committed = (struct pos){s->segs[0].number, HINTLOG_SEGMENT_HEADER, 0};
        s->head_ms = s->segs[0].first_ms;
    } else {
        s->committed = (struct pos){s->next_number, HINTLOG_SEGMENT_HEADER, 0};
        s->head_ms = 0;
    }
}

/* Deletes segs[0]; a position inside it moves to the next segment. */
static void delete_head_locked(struct hintlog *s)
{
    ASSERT(s->nsegs > 0);
    struct seg *g = &s->segs[0];
    uint64_t number = g->number;
    char path[PATH_MAX];
    seg_path(s, number, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        log_warn("hintlog: cannot delete %s: %s", path, strerror(errno));
    s->total_records -= g->records;
    s->disk_bytes -= g->size;
    if (s->nsegs == 1)
        retire_wfd_locked(s); /* it was the append segment */
    memmove(&s->segs[0], &s->segs[1], (s->nsegs - 1) * sizeof(s->segs[0]));
    s->nsegs--;
    if (s->committed.seg <= number)
        set_head_start_locked(s);
}

/* Deletes the segments the position has gone through, so that afterwards
 * committed.seg == segs[0].number (or next_number when none is left). */
static void normalize_locked(struct hintlog *s)
{
    while (s->nsegs > 0 && s->committed.seg > s->segs[0].number)
        delete_head_locked(s);
    if (s->nsegs == 0 || s->committed.seg < s->segs[0].number)
        set_head_start_locked(s);
    while (s->nsegs > 0 && s->committed.off >= s->segs[0].size)
        delete_head_locked(s);
}

static uint64_t pending_locked(const struct hintlog *s)
{
    return s->total_records > s->committed.idx ? s->total_records - s->committed.idx : 0;
}

/* Persists the position. Not synced: losing it only replays hints again. */
static enum st_status write_pos_locked(struct hintlog *s)
{
    uint8_t b[HINTLOG_POS_SIZE];
    memcpy(b, HINTLOG_POS_MAGIC, 8);
    put32(b + 8, HINTLOG_VERSION);
    memcpy(b + 12, s->target, WIRE_NODE_ID_LEN);
    put64(b + 28, s->committed.seg);
    put64(b + 36, s->committed.off);
    put32(b + 44, check32(b, 44));
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/" POS_TMP_NAME, s->dir);
    snprintf(path, sizeof(path), "%s/" POS_NAME, s->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto err;
    enum st_status st = write_all(fd, b, sizeof(b));
    int e = errno;
    close(fd);
    errno = e;
    if (st != ST_OK || rename(tmp, path) != 0)
        goto err;
    return ST_OK;
err:
    log_warn("hintlog: cannot write %s: %s", path, strerror(errno));
    return ST_IO;
}

/* ---- Open and close ------------------------------------------------------- */

void hintlog_options_default(struct hintlog_options *o)
{
    o->max_bytes = HINTLOG_MAX_BYTES_DEFAULT;
    o->segment_bytes = HINTLOG_SEGMENT_BYTES_DEFAULT;
}

static bool parse_seg_name(const char *name, uint64_t *number)
{
    size_t len = strlen(name), sl = strlen(SEG_SUFFIX);
    if (len <= sl || len - sl > 20 || strcmp(name + len - sl, SEG_SUFFIX) != 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len - sl; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *number = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The numbers of the segment files in s->dir, sorted; removes a leftover
 * position temporary. */
static enum st_status list_segments(struct hintlog *s, uint64_t **out, size_t *n, size_t *cap)
{
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return ST_IO;
    enum st_status st = ST_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t number;
        if (strcmp(e->d_name, POS_TMP_NAME) == 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
            unlink(path);
        } else if (parse_seg_name(e->d_name, &number)) {
            if ((st = reserve((void **)out, cap, *n + 1, sizeof(**out))) != ST_OK)
                break;
            (*out)[(*n)++] = number;
        }
    }
    closedir(d);
    if (st == ST_OK && *n > 1)
        qsort(*out, *n, sizeof(**out), cmp_u64);
    return st;
}

static void read_pos(struct hintlog *s, uint64_t *seg, uint64_t *off)
{
    *seg = 0;
    *off = 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" POS_NAME, s->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    uint8_t b[HINTLOG_POS_SIZE + 1];
    ssize_t k = pread(fd, b, sizeof(b), 0);
    close(fd);
    if (k != HINTLOG_POS_SIZE || memcmp(b, HINTLOG_POS_MAGIC, 8) != 0 ||
        get32(b + 8) != HINTLOG_VERSION || memcmp(b + 12, s->target, WIRE_NODE_ID_LEN) != 0 ||
        get32(b + 44) != check32(b, 44)) {
        log_warn("hintlog: %s is invalid, replaying from the oldest hint", path);
        return;
    }
    *seg = get64(b + 28);
    *off = get64(b + 36);
}

/* Sets a file with a bad header aside, where the next open will not read
 * it again, and counts it. */
static void set_aside(struct hintlog *s, const char *path)
{
    char dst[PATH_MAX + sizeof(CORRUPT_SUFFIX)];
    snprintf(dst, sizeof(dst), "%s" CORRUPT_SUFFIX, path);
    log_error("hintlog: %s has a bad header, moved to %s", path, dst);
    if (rename(path, dst) != 0)
        log_error("hintlog: cannot rename %s: %s", path, strerror(errno));
    s->st.dropped_corrupt++;
}

/* What recovering the position segment found. */
struct head_scan {
    uint64_t pos_off; /* the persisted offset */
    uint64_t off;     /* end of the last record starting before it */
    uint64_t idx;
    uint64_t first_ms; /* first record at or after it */
    bool have_first;
};

/*
 * Reads segment `number` at open: validates its header, counts its records,
 * truncates a torn tail, counts damage. *keep false: the file was removed or
 * set aside. `hs` non-NULL for the position's segment.
 */
static enum st_status recover_segment(struct hintlog *s, struct rd *r, uint64_t number,
                                      struct seg *g, bool *keep, struct head_scan *hs)
{
    *keep = false;
    char path[PATH_MAX];
    seg_path(s, number, path, sizeof(path));
    enum st_status st = rd_open(r, s, number);
    if (st != ST_OK)
        return st;
    struct stat sb;
    if (fstat(r->fd, &sb) != 0) {
        rd_close(r);
        return ST_IO;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < HINTLOG_SEGMENT_HEADER) {
        /* A crash between creating the file and writing its header. */
        rd_close(r);
        log_warn("hintlog: %s: torn header (%" PRIu64 " bytes), removed", path, size);
        unlink(path);
        s->st.torn_tails++;
        s->st.torn_bytes += size;
        return ST_OK;
    }
    const uint8_t *h;
    if ((st = rd_view(r, 0, HINTLOG_SEGMENT_HEADER, size, &h)) != ST_OK) {
        rd_close(r);
        return st;
    }
    if (memcmp(h, HINTLOG_MAGIC, 8) != 0 || get32(h + 8) != HINTLOG_VERSION ||
        memcmp(h + 12, s->target, WIRE_NODE_ID_LEN) != 0 || get64(h + 28) != number ||
        get32(h + 36) != check32(h, 36)) {
        rd_close(r);
        set_aside(s, path);
        return ST_OK;
    }
    *g = (struct seg){.number = number, .min_ms = UINT64_MAX};
    uint64_t off = HINTLOG_SEGMENT_HEADER;
    for (;;) {
        enum scan_ev ev;
        struct scan o;
        if ((st = scan_next(r, off, size, &ev, &o)) != ST_OK) {
            rd_close(r);
            return st;
        }
        if (ev == EV_END)
            break;
        if (ev == EV_TORN) {
            log_warn("hintlog: %s: torn tail at %" PRIu64 " (%" PRIu64 " bytes), truncated", path,
                     off, size - off);
            if (truncate(path, (off_t)off) != 0) {
                rd_close(r);
                return ST_IO;
            }
            s->st.torn_tails++;
            s->st.torn_bytes += size - off;
            size = off;
            break;
        }
        if (ev == EV_CORRUPT) {
            log_error("hintlog: %s: damaged bytes %" PRIu64 "..%" PRIu64 " skipped", path, o.start,
                      o.end);
            s->st.dropped_corrupt++;
            off = o.end;
            continue;
        }
        if (g->records == 0)
            g->first_ms = o.created_ms;
        g->records++;
        g->min_ms = o.created_ms < g->min_ms ? o.created_ms : g->min_ms;
        g->max_ms = o.created_ms > g->max_ms ? o.created_ms : g->max_ms;
        if (hs != NULL) {
            if (o.start < hs->pos_off) {
                hs->off = o.end;
                hs->idx++;
            } else if (!hs->have_first) {
                hs->first_ms = o.created_ms;
                hs->have_first = true;
            }
        }
        off = o.end;
    }
    rd_close(r);
    g->size = size;
    g->scanned = size;
    *keep = true;
    return ST_OK;
}

static enum st_status recover(struct hintlog *s)
{
    uint64_t *nums = NULL;
    size_t n = 0, cap = 0;
    struct rd r;
    rd_init(&r);
    enum st_status st = list_segments(s, &nums, &n, &cap);
    if (st != ST_OK)
        goto out;
    uint64_t pseg, poff;
    read_pos(s, &pseg, &poff);
    s->next_number = pseg + 1;
    if (n > 0 && nums[n - 1] >= s->next_number)
        s->next_number = nums[n - 1] + 1;
    struct head_scan hs = {.pos_off = poff, .off = HINTLOG_SEGMENT_HEADER};
    bool pos_found = false;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        seg_path(s, nums[i], path, sizeof(path));
        if (nums[i] < pseg) {
            /* Replayed; its deletion did not happen or was lost. */
            unlink(path);
            continue;
        }
        struct seg g;
        bool keep;
        st = recover_segment(s, &r, nums[i], &g, &keep, nums[i] == pseg ? &hs : NULL);
        if (st != ST_OK)
            goto out;
        if (!keep)
            continue;
        if (g.records == 0) {
            unlink(path); /* nothing valid left in it */
            continue;
        }
        if ((st = reserve((void **)&s->segs, &s->cap_segs, s->nsegs + 1, sizeof(g))) != ST_OK)
            goto out;
        s->segs[s->nsegs++] = g;
        s->disk_bytes += g.size;
        s->total_records += g.records;
        pos_found |= nums[i] == pseg;
    }
    set_head_start_locked(s);
    if (pos_found && s->segs[0].number == pseg) {
        /* All its valid hints done: damage after them is not waited for. */
        s->committed.off = hs.idx >= s->segs[0].records ? s->segs[0].size : hs.off;
        s->committed.idx = hs.idx;
        if (hs.have_first)
            s->head_ms = hs.first_ms;
    }
    normalize_locked(s);
    if (s->nsegs > 0) {
        char path[PATH_MAX];
        seg_path(s, s->segs[s->nsegs - 1].number, path, sizeof(path));
        if ((st = retire_reserve_locked(s, 1)) != ST_OK)
            goto out;
        s->wfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (s->wfd < 0)
            st = ST_IO;
    }
out:;
    int e = errno;
    rd_deinit(&r);
    mem_free(MEM_OTHER, nums, cap * sizeof(*nums));
    errno = e;
    return st;
}

enum st_status hintlog_open(const char *base_dir, const uint8_t target[WIRE_NODE_ID_LEN],
                            const struct hintlog_options *o, struct hintlog **out)
{
    struct hintlog_options opt;
    if (o == NULL)
        hintlog_options_default(&opt);
    else
        opt = *o;
    size_t blen = strlen(base_dir);
    if (opt.max_bytes < HINTLOG_MAX_BYTES_MIN || opt.segment_bytes < HINTLOG_SEGMENT_BYTES_MIN ||
        opt.segment_bytes > HINTLOG_SEGMENT_BYTES_MAX || blen == 0 || blen > PATH_MAX - 128)
        return ST_INVAL;
    struct hintlog *s = mem_calloc(MEM_OTHER, 1, sizeof(*s));
    if (s == NULL)
        return ST_NOMEM;
    enum st_status st = ST_NOMEM;
    s->wfd = -1;
    s->opt = opt;
    memcpy(s->target, target, WIRE_NODE_ID_LEN);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->sync_mu, NULL);
    while (blen > 1 && base_dir[blen - 1] == '/')
        blen--;
    char hex[2 * WIRE_NODE_ID_LEN + 1];
    hex_id(target, hex);
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%.*s/%s", (int)blen, base_dir, hex);
    s->dir = str_dup(buf, strlen(buf));
    s->base = str_dup(base_dir, blen);
    const char *slash = memrchr(base_dir, '/', blen);
    if (slash == NULL)
        s->parent = str_dup(".", 1);
    else if (slash == base_dir)
        s->parent = str_dup("/", 1);
    else
        s->parent = str_dup(base_dir, (size_t)(slash - base_dir));
    if (s->dir == NULL || s->base == NULL || s->parent == NULL)
        goto err;
    if ((st = make_dir(s->base, &s->parent_dirty)) != ST_OK)
        goto err;
    if ((st = make_dir(s->dir, &s->base_dirty)) != ST_OK)
        goto err;
    if ((st = recover(s)) != ST_OK)
        goto err;
    *out = s;
    return ST_OK;
err:;
    int e = errno;
    if (st == ST_IO)
        log_error("hintlog: cannot open %s: %s", s->dir ? s->dir : base_dir, strerror(e));
    hintlog_close(&s);
    errno = e;
    return st;
}

void hintlog_close(struct hintlog **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    struct hintlog *s = *sp;
    ASSERT(!s->cursor_open);
    if (s->wfd >= 0)
        close(s->wfd);
    for (size_t i = 0; i < s->nretired; i++)
        close(s->retired[i]);
    mem_free(MEM_OTHER, s->retired, s->cap_retired * sizeof(int));
    mem_free(MEM_OTHER, s->segs, s->cap_segs * sizeof(struct seg));
    str_free(&s->dir);
    str_free(&s->base);
    str_free(&s->parent);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->sync_mu);
    mem_free(MEM_OTHER, s, sizeof(*s));
    *sp = NULL;
}

const uint8_t *hintlog_target(const struct hintlog *s)
{
    return s->target;
}

/* ---- Append and sync ----------------------------------------------------- */

/* Starts segment next_number and makes it the append segment. */
static enum st_status new_segment_locked(struct hintlog *s)
{
    enum st_status st = reserve((void **)&s->segs, &s->cap_segs, s->nsegs + 1, sizeof(*s->segs));
    if (st == ST_OK) /* retiring the old append fd, and later the new one */
        st = retire_reserve_locked(s, 2);
    if (st != ST_OK)
        return st;
    uint64_t number = s->next_number;
    char path[PATH_MAX];
    seg_path(s, number, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("hintlog: cannot create %s: %s", path, strerror(errno));
        return ST_IO;
    }
    uint8_t h[HINTLOG_SEGMENT_HEADER];
    memcpy(h, HINTLOG_MAGIC, 8);
    put32(h + 8, HINTLOG_VERSION);
    memcpy(h + 12, s->target, WIRE_NODE_ID_LEN);
    put64(h + 28, number);
    put32(h + 36, check32(h, 36));
    if (write_all(fd, h, sizeof(h)) != ST_OK) {
        int e = errno;
        close(fd);
        unlink(path);
        errno = e;
        return ST_IO;
    }
    s->next_number++;
    retire_wfd_locked(s);
    s->wfd = fd;
    s->segs[s->nsegs++] = (struct seg){.number = number,
                                       .size = HINTLOG_SEGMENT_HEADER,
                                       .min_ms = UINT64_MAX,
                                       .scanned = HINTLOG_SEGMENT_HEADER};
    s->disk_bytes += HINTLOG_SEGMENT_HEADER;
    s->dir_dirty = true;
    if (s->nsegs == 1)
        set_head_start_locked(s);
    return ST_OK;
}

enum st_status hintlog_append(struct hintlog *s, const struct wire_record *rec, uint64_t now_ms,
                              uint64_t *seq)
{
    static const uint8_t zero[HINTLOG_RECORD_HEADER];
    struct wire_buf b;
    wire_buf_init(&b);
    wire_put_raw(&b, zero, sizeof(zero));
    wire_put_record(&b, rec);
    enum st_status st = b.err;
    if (st == ST_OK && (b.len - HINTLOG_RECORD_HEADER > HINTLOG_BODY_MAX ||
                        b.len - HINTLOG_RECORD_HEADER < HINTLOG_BODY_MIN))
        st = ST_INVAL;
    if (st != ST_OK) {
        wire_buf_deinit(&b);
        return st;
    }
    size_t n = b.len - HINTLOG_RECORD_HEADER;
    put32(b.data, (uint32_t)n);
    put32(b.data + 4, check32(b.data, 4));
    put64(b.data + 16, now_ms);
    put64(b.data + 8, XXH3_64bits(b.data + 16, 8 + n));

    pthread_mutex_lock(&s->mu);
    if (s->failed) {
        st = ST_IO;
        errno = EIO;
        goto out;
    }
    struct seg *g = s->wfd >= 0 ? &s->segs[s->nsegs - 1] : NULL;
    bool rotate = g == NULL || (g->records > 0 && g->size + b.len > s->opt.segment_bytes);
    uint64_t need = b.len + (rotate ? HINTLOG_SEGMENT_HEADER : 0);
    if (s->disk_bytes + need > s->opt.max_bytes) {
        s->st.dropped_full++;
        st = ST_NOMEM;
        goto out;
    }
    if (rotate && (st = new_segment_locked(s)) != ST_OK)
        goto out;
    g = &s->segs[s->nsegs - 1];
    if ((st = write_all(s->wfd, b.data, b.len)) != ST_OK) {
        int e = errno;
        /* Cut a partial record so the next append does not follow it. */
        if (ftruncate(s->wfd, (off_t)g->size) != 0)
            s->failed = true;
        log_error("hintlog: append to %s failed: %s", s->dir, strerror(e));
        errno = e;
        goto out;
    }
    if (pending_locked(s) == 0)
        s->head_ms = now_ms;
    if (g->records == 0)
        g->first_ms = now_ms;
    g->records++;
    g->min_ms = now_ms < g->min_ms ? now_ms : g->min_ms;
    g->max_ms = now_ms > g->max_ms ? now_ms : g->max_ms;
    g->size += b.len;
    s->disk_bytes += b.len;
    s->total_records++;
    s->st.written++;
    s->appended_seq++;
    if (seq != NULL)
        *seq = s->appended_seq;
out:
    pthread_mutex_unlock(&s->mu);
    wire_buf_deinit(&b);
    return st;
}

enum st_status hintlog_sync(struct hintlog *s)
{
    enum st_status st = ST_OK;
    int err = 0;
    pthread_mutex_lock(&s->sync_mu);
    pthread_mutex_lock(&s->mu);
    if (s->failed) {
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_unlock(&s->sync_mu);
        errno = EIO;
        return ST_IO;
    }
    uint64_t target = s->appended_seq;
    /* Segments closed by rotation or deletion first; rotations meanwhile
     * add to the list, which is drained before the append fd is taken. */
    while (s->nretired > 0) {
        int fd = s->retired[--s->nretired];
        pthread_mutex_unlock(&s->mu);
        if (fdatasync(fd) != 0 && err == 0)
            err = errno;
        close(fd);
        pthread_mutex_lock(&s->mu);
    }
    int fd = s->wfd;
    bool dir = s->dir_dirty, base = s->base_dirty, parent = s->parent_dirty;
    s->dir_dirty = s->base_dirty = s->parent_dirty = false;
    bool idle = target == s->synced_seq;
    pthread_mutex_unlock(&s->mu);

    if (fd >= 0 && !idle && fdatasync(fd) != 0 && err == 0)
        err = errno;
    if (dir && fsync_dir(s->dir) != ST_OK && err == 0)
        err = errno;
    if (base && fsync_dir(s->base) != ST_OK && err == 0)
        err = errno;
    if (parent && fsync_dir(s->parent) != ST_OK && err == 0)
        err = errno;

    pthread_mutex_lock(&s->mu);
    if (err == 0) {
        if (target > s->synced_seq)
            s->synced_seq = target;
    } else {
        /* The kernel may have dropped the unsynced pages: those hints are
         * lost, and a later sync could not say which. Refuse appends. */
        s->failed = true;
        st = ST_IO;
        log_error("hintlog: sync of %s failed: %s", s->dir, strerror(err));
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->sync_mu);
    if (err != 0)
        errno = err;
    return st;
}

uint64_t hintlog_appended_seq(struct hintlog *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->appended_seq;
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint64_t hintlog_synced_seq(struct hintlog *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->synced_seq;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ---- Dropping old hints -------------------------------------------------- */

enum st_status hintlog_drop_older(struct hintlog *s, uint64_t cutoff_ms, uint64_t *dropped)
{
    uint64_t n = 0;
    enum st_status st = ST_OK;
    struct rd r;
    rd_init(&r);
    pthread_mutex_lock(&s->mu);
    struct pos before = s->committed;
    while (s->nsegs > 0 && s->segs[0].max_ms < cutoff_ms) {
        if (s->segs[0].records > s->committed.idx)
            n += s->segs[0].records - s->committed.idx;
        delete_head_locked(s);
    }
    if (s->nsegs == 0 || s->segs[0].min_ms >= cutoff_ms) {
        s->st.dropped_old += n;
        goto done;
    }
    /* The first segment holds both: drop its leading older hints, reading
     * without the lock (appends go on) and applying if nothing moved. */
    struct pos snap = s->committed;
    uint64_t limit = s->segs[0].size, scanned = s->segs[0].scanned;
    pthread_mutex_unlock(&s->mu);

    struct pos at = snap;
    uint64_t cnt = 0, corrupt = 0, first_ms = 0;
    bool have_first = false;
    st = rd_open(&r, s, snap.seg);
    while (st == ST_OK) {
        enum scan_ev ev;
        struct scan o;
        if ((st = scan_next(&r, at.off, limit, &ev, &o)) != ST_OK || ev == EV_END)
            break;
        if (ev != EV_REC) {
            corrupt += o.start >= scanned;
            at.off = o.end;
            continue;
        }
        if (o.created_ms >= cutoff_ms) {
            first_ms = o.created_ms;
            have_first = true;
            break;
        }
        at.off = o.end;
        at.idx++;
        cnt++;
    }
    if (st == ST_IO && errno == ENOENT)
        st = ST_OK; /* deleted meanwhile by a commit */

    pthread_mutex_lock(&s->mu);
    s->st.dropped_old += n;
    if (st == ST_OK && s->committed.seg == snap.seg && s->committed.off == snap.off) {
        s->committed = at;
        s->st.dropped_old += cnt;
        s->st.dropped_corrupt += corrupt;
        n += cnt;
        if (have_first)
            s->head_ms = first_ms;
        normalize_locked(s);
    }
done:
    if (pos_cmp(s->committed.seg, s->committed.off, before.seg, before.off) != 0) {
        enum st_status pst = write_pos_locked(s);
        if (st == ST_OK)
            st = pst;
    }
    pthread_mutex_unlock(&s->mu);
    rd_deinit(&r);
    if (dropped != NULL)
        *dropped = n;
    return st;
}

/* ---- Stats --------------------------------------------------------------- */

void hintlog_get_stats(struct hintlog *s, uint64_t now_ms, struct hintlog_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->pending_count = pending_locked(s);
    out->disk_bytes = s->disk_bytes;
    out->segments = s->nsegs;
    out->pending_bytes = 0;
    if (s->nsegs > 0) {
        uint64_t done = s->committed.off + (s->nsegs - 1) * (uint64_t)HINTLOG_SEGMENT_HEADER;
        out->pending_bytes = s->disk_bytes > done ? s->disk_bytes - done : 0;
    }
    out->oldest_ms = 0;
    if (out->pending_count > 0) {
        uint64_t m = UINT64_MAX;
        if (s->nsegs > 0 && s->segs[0].records > s->committed.idx)
            m = s->head_ms;
        for (size_t i = 1; i < s->nsegs; i++)
            m = s->segs[i].min_ms < m ? s->segs[i].min_ms : m;
        out->oldest_ms = m == UINT64_MAX ? 0 : m;
    }
    out->oldest_age_ms =
        out->oldest_ms != 0 && now_ms > out->oldest_ms ? now_ms - out->oldest_ms : 0;
    out->appended_seq = s->appended_seq;
    out->synced_seq = s->synced_seq;
    out->failed = s->failed;
    pthread_mutex_unlock(&s->mu);
}

void hintlog_stats_emit(const struct hintlog_stats *st,
                        void (*emit)(void *arg, const char *name, uint64_t value), void *arg)
{
    emit(arg, "pending_count", st->pending_count);
    emit(arg, "pending_bytes", st->pending_bytes);
    emit(arg, "disk_bytes", st->disk_bytes);
    emit(arg, "segments", st->segments);
    emit(arg, "oldest_age_ms", st->oldest_age_ms);
    emit(arg, "written", st->written);
    emit(arg, "replayed", st->replayed);
    emit(arg, "dropped_full", st->dropped_full);
    emit(arg, "dropped_too_old", st->dropped_too_old);
    emit(arg, "dropped_old", st->dropped_old);
    emit(arg, "dropped_corrupt", st->dropped_corrupt);
    emit(arg, "torn_tails", st->torn_tails);
    emit(arg, "torn_bytes", st->torn_bytes);
    emit(arg, "appended_seq", st->appended_seq);
    emit(arg, "synced_seq", st->synced_seq);
    emit(arg, "failed", st->failed ? 1 : 0);
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

enum st_status hintlog_list_targets(const char *base_dir,
                                    void (*found)(void *arg, const uint8_t id[WIRE_NODE_ID_LEN]),
                                    void *arg)
{
    DIR *d = opendir(base_dir);
    if (d == NULL)
        return errno == ENOENT ? ST_OK : ST_IO;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != 2 * WIRE_NODE_ID_LEN)
            continue;
        uint8_t id[WIRE_NODE_ID_LEN];
        bool ok = true;
        for (int i = 0; i < WIRE_NODE_ID_LEN && ok; i++) {
            int hi = hex_val(e->d_name[2 * i]), lo = hex_val(e->d_name[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            id[i] = (uint8_t)(hi << 4 | (lo & 15));
        }
        if (ok)
            found(arg, id);
    }
    closedir(d);
    return ST_OK;
}

/* ---- Replay cursor --------------------------------------------------------- */

struct hintlog_cursor {
    struct hintlog *s;
    struct rd rd;
    struct pos at; /* the next unread byte; everything before was handed out or skipped */
    uint64_t yielded;
    uint64_t committed_yielded;
    uint64_t gc_grace_ms;
    uint64_t rate;  /* bytes per second, 0 = no throttle */
    int64_t tokens; /* milli-bytes; may go negative (one record of debt) */
    int64_t burst;  /* milli-bytes */
    uint64_t refill_ms;
};

enum st_status hintlog_replay_begin(struct hintlog *s, const struct hintlog_replay_options *o,
                                    uint64_t now_ms, struct hintlog_cursor **out)
{
    pthread_mutex_lock(&s->mu);
    bool busy = s->cursor_open;
    s->cursor_open = true;
    struct pos at = s->committed;
    pthread_mutex_unlock(&s->mu);
    if (busy)
        return ST_AGAIN;
    struct hintlog_cursor *c = mem_calloc(MEM_OTHER, 1, sizeof(*c));
    if (c == NULL) {
        pthread_mutex_lock(&s->mu);
        s->cursor_open = false;
        pthread_mutex_unlock(&s->mu);
        return ST_NOMEM;
    }
    c->s = s;
    rd_init(&c->rd);
    c->at = at;
    if (o != NULL) {
        c->gc_grace_ms = o->gc_grace_ms;
        c->rate = o->rate_bytes_per_sec > RATE_MAX ? 0 : o->rate_bytes_per_sec;
    }
    uint64_t burst = c->rate / 4 < 4096 ? 4096 : c->rate / 4;
    c->burst = (int64_t)burst * 1000;
    c->tokens = c->burst;
    c->refill_ms = now_ms;
    *out = c;
    return ST_OK;
}

void hintlog_replay_end(struct hintlog_cursor **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct hintlog_cursor *c = *cp;
    rd_deinit(&c->rd);
    pthread_mutex_lock(&c->s->mu);
    c->s->cursor_open = false;
    pthread_mutex_unlock(&c->s->mu);
    mem_free(MEM_OTHER, c, sizeof(*c));
    *cp = NULL;
}

/* Refills the throttle; the milliseconds to wait before a hint may go. */
static uint64_t throttle_wait(struct hintlog_cursor *c, uint64_t now_ms)
{
    if (c->rate == 0)
        return 0;
    if (now_ms > c->refill_ms) {
        uint64_t el = now_ms - c->refill_ms;
        if (el > 10000 || (int64_t)(el * c->rate) >= c->burst - c->tokens)
            c->tokens = c->burst;
        else
            c->tokens += (int64_t)(el * c->rate);
        c->refill_ms = now_ms;
    }
    if (c->tokens > 0)
        return 0;
    return (uint64_t)(-c->tokens) / c->rate + 1;
}

static bool seg_listed(struct hintlog *s, uint64_t number)
{
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nsegs && !found; i++)
        found = s->segs[i].number == number;
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* Where the cursor reads next, under mu: catches up with a position moved
 * by hintlog_drop_older, steps over deleted and finished segments. False
 * when nothing is pending now. */
static bool cursor_locate_locked(struct hintlog_cursor *c, uint64_t *limit, uint64_t *scanned)
{
    struct hintlog *s = c->s;
    if (pos_cmp(s->committed.seg, s->committed.off, c->at.seg, c->at.off) > 0)
        c->at = s->committed;
    size_t i = 0;
    for (;;) {
        while (i < s->nsegs && s->segs[i].number < c->at.seg)
            i++;
        if (i == s->nsegs)
            return false;
        if (s->segs[i].number != c->at.seg)
            c->at = (struct pos){s->segs[i].number, HINTLOG_SEGMENT_HEADER, 0};
        if (c->at.off < s->segs[i].size)
            break;
        if (i + 1 == s->nsegs)
            return false; /* the end of the append segment */
        c->at = (struct pos){s->segs[i + 1].number, HINTLOG_SEGMENT_HEADER, 0};
    }
    *limit = s->segs[i].size;
    *scanned = s->segs[i].scanned;
    return true;
}

enum hintlog_next hintlog_replay_next(struct hintlog_cursor *c, uint64_t now_ms,
                                      struct hintlog_hint *h, uint64_t *wait_ms, enum st_status *st)
{
    struct hintlog *s = c->s;
    *st = ST_OK;
    *wait_ms = throttle_wait(c, now_ms);
    if (*wait_ms > 0)
        return HINTLOG_WAIT;
    for (unsigned skipped = 0; skipped < SKIP_BUDGET;) {
        uint64_t limit, scanned;
        pthread_mutex_lock(&s->mu);
        bool more = cursor_locate_locked(c, &limit, &scanned);
        pthread_mutex_unlock(&s->mu);
        if (!more)
            return HINTLOG_END;
        if ((*st = rd_open(&c->rd, s, c->at.seg)) != ST_OK) {
            /* Deleted meanwhile by hintlog_drop_older: look again. Still
             * listed: removed behind the store's back, an I/O error. */
            if (errno != ENOENT || seg_listed(s, c->at.seg))
                return HINTLOG_WAIT;
            *st = ST_OK;
            skipped++;
            continue;
        }
        enum scan_ev ev;
        struct scan o;
        if ((*st = scan_next(&c->rd, c->at.off, limit, &ev, &o)) != ST_OK)
            return HINTLOG_WAIT;
        if (ev == EV_END) { /* not reached: locate saw off < limit */
            skipped++;
            continue;
        }
        c->at.off = o.end;
        if (ev != EV_REC) {
            /* Damage the open did not see (appended since, or rotted). */
            if (o.start >= scanned) {
                log_error("hintlog: %s segment %" PRIu64 ": damaged bytes %" PRIu64 "..%" PRIu64
                          " skipped",
                          s->dir, c->at.seg, o.start, o.end);
                pthread_mutex_lock(&s->mu);
                s->st.dropped_corrupt++;
                pthread_mutex_unlock(&s->mu);
            }
            skipped++;
            continue;
        }
        c->at.idx++;
        if (c->gc_grace_ms > 0 && now_ms > o.created_ms && now_ms - o.created_ms > c->gc_grace_ms) {
            pthread_mutex_lock(&s->mu);
            s->st.dropped_too_old++;
            pthread_mutex_unlock(&s->mu);
            skipped++;
            continue;
        }
        c->tokens -= (int64_t)(o.end - o.start) * 1000;
        c->yielded++;
        h->rec = o.rec;
        h->created_ms = o.created_ms;
        h->mark = (struct hintlog_mark){c->at.seg, c->at.off, c->at.idx, c->yielded};
        return HINTLOG_HINT;
    }
    *wait_ms = 0;
    return HINTLOG_WAIT;
}

enum st_status hintlog_replay_commit(struct hintlog_cursor *c, const struct hintlog_mark *m)
{
    struct hintlog *s = c->s;
    if (pos_cmp(m->seg, m->off, c->at.seg, c->at.off) > 0 || m->yielded > c->yielded)
        return ST_INVAL;
    enum st_status st = ST_OK;
    pthread_mutex_lock(&s->mu);
    if (m->yielded > c->committed_yielded) {
        s->st.replayed += m->yielded - c->committed_yielded;
        c->committed_yielded = m->yielded;
    }
    if (pos_cmp(m->seg, m->off, s->committed.seg, s->committed.off) <= 0)
        goto out; /* already done (or dropped meanwhile) */
    s->committed = (struct pos){m->seg, m->off, m->idx};
    normalize_locked(s);
    if (s->nsegs > 0 && s->committed.off > HINTLOG_SEGMENT_HEADER &&
        s->segs[0].records > s->committed.idx) {
        /* The oldest pending hint is the next one: read its time (usually
         * already in the cursor's window). */
        enum scan_ev ev;
        struct scan o;
        if (rd_open(&c->rd, s, s->committed.seg) == ST_OK &&
            scan_next(&c->rd, s->committed.off, s->segs[0].size, &ev, &o) == ST_OK && ev == EV_REC)
            s->head_ms = o.created_ms;
    }
    st = write_pos_locked(s);
out:
    pthread_mutex_unlock(&s->mu);
    return st;
}

enum st_status hintlog_replay_commit_all(struct hintlog_cursor *c)
{
    struct hintlog_mark m = {c->at.seg, c->at.off, c->at.idx, c->yielded};
    return hintlog_replay_commit(c, &m);
}
