/*
 * logfile.c - record framing for WAL segments and the manifest (format in
 * logfile.h and docs/formats/wal.md). Writers are used by one thread at a
 * time (the commit leader, the manifest lock holder); readers at recovery.
 */
#include <errno.h>
#include <string.h>

#include "common/mem.h"
#include "storage/logfile.h"

struct logfile_writer {
    struct lsm_env *env;
    struct env_file *file;
    uint64_t size;
    uint64_t number;
};

struct logfile_reader {
    uint8_t *data;
    size_t len;
    size_t pos;
    bool newest;
    bool torn;
    uint64_t number;
};

enum st_status logfile_writer_create(struct lsm_env *env, const char *path, const char *magic,
                                     uint64_t number, struct logfile_writer **out)
{
    struct logfile_writer *w = mem_calloc(MEM_STORAGE, 1, sizeof(*w));
    if (w == NULL)
        return ST_NOMEM;
    w->env = env;
    w->number = number;
    enum st_status st = env->open(env, path, ENV_OPEN_CREATE, &w->file);
    if (st != ST_OK)
        goto err;
    uint8_t hdr[LOGFILE_HEADER_SIZE];
    memcpy(hdr, magic, 8);
    enc_u32le(hdr + 8, LOGFILE_VERSION);
    enc_u64le(hdr + 12, number);
    enc_u32le(hdr + 20, (uint32_t)checksum(hdr, 20));
    st = env->append(env, w->file, hdr, sizeof(hdr));
    if (st != ST_OK)
        goto err;
    w->size = sizeof(hdr);
    *out = w;
    return ST_OK;
err:;
    int e = errno;
    logfile_writer_destroy(&w);
    errno = e;
    return st;
}

void logfile_writer_destroy(struct logfile_writer **w)
{
    if (w == NULL || *w == NULL)
        return;
    if ((*w)->file != NULL)
        (*w)->env->close((*w)->env, (*w)->file);
    mem_free(MEM_STORAGE, *w, sizeof(**w));
    *w = NULL;
}

enum st_status logfile_frame(struct buf *b, const void *payload, size_t n)
{
    if (n == 0 || n > LOGFILE_MAX_RECORD)
        return ST_INVAL;
    enum st_status st = buf_reserve(b, LOGFILE_RECORD_HEADER + n);
    if (st != ST_OK)
        return st;
    uint8_t *h = b->data + b->len;
    enc_u32le(h, (uint32_t)n);
    enc_u32le(h + 4, (uint32_t)checksum(h, 4));
    enc_u64le(h + 8, checksum(payload, n));
    memcpy(h + LOGFILE_RECORD_HEADER, payload, n);
    b->len += LOGFILE_RECORD_HEADER + n;
    return ST_OK;
}

void logfile_frame_inplace(uint8_t *rec, size_t n)
{
    enc_u32le(rec, (uint32_t)n);
    enc_u32le(rec + 4, (uint32_t)checksum(rec, 4));
    enc_u64le(rec + 8, checksum(rec + LOGFILE_RECORD_HEADER, n));
}

enum st_status logfile_writer_append(struct logfile_writer *w, const void *framed, size_t n)
{
    enum st_status st = w->env->append(w->env, w->file, framed, n);
    if (st == ST_OK)
        w->size += n;
    return st;
}

enum st_status logfile_writer_add(struct logfile_writer *w, const void *payload, size_t n)
{
    struct buf b = {0};
    enum st_status st = logfile_frame(&b, payload, n);
    if (st == ST_OK)
        st = logfile_writer_append(w, b.data, b.len);
    buf_deinit(&b);
    return st;
}

enum st_status logfile_writer_sync(struct logfile_writer *w)
{
    return w->env->sync(w->env, w->file);
}

uint64_t logfile_writer_size(const struct logfile_writer *w)
{
    return w->size;
}

uint64_t logfile_writer_number(const struct logfile_writer *w)
{
    return w->number;
}

enum st_status logfile_reader_open(struct lsm_env *env, const char *path, const char *magic,
                                   bool newest, struct logfile_reader **out)
{
    struct env_file *f = NULL;
    enum st_status st = env->open(env, path, ENV_OPEN_READ, &f);
    if (st != ST_OK)
        return st;
    struct logfile_reader *r = mem_calloc(MEM_STORAGE, 1, sizeof(*r));
    uint64_t size = 0;
    if (r == NULL) {
        st = ST_NOMEM;
        goto out;
    }
    r->newest = newest;
    st = env->size(env, f, &size);
    if (st != ST_OK)
        goto out;
    if (size > SIZE_MAX / 2) {
        st = ST_NOMEM;
        goto out;
    }
    r->len = (size_t)size;
    r->data = mem_alloc(MEM_STORAGE, r->len ? r->len : 1);
    if (r->data == NULL) {
        st = ST_NOMEM;
        goto out;
    }
    size_t got = 0;
    st = env->pread(env, f, r->data, r->len, 0, &got);
    if (st != ST_OK)
        goto out;
    r->len = got;
    if (r->len < LOGFILE_HEADER_SIZE) {
        /* A crash between creating the file and writing its header. */
        if (newest) {
            r->torn = r->len > 0;
            r->pos = r->len;
        } else {
            st = ST_CORRUPT;
        }
        goto out;
    }
    if (memcmp(r->data, magic, 8) != 0 || dec_u32le(r->data + 8) != LOGFILE_VERSION ||
        dec_u32le(r->data + 20) != (uint32_t)checksum(r->data, 20)) {
        st = ST_CORRUPT;
        goto out;
    }
    r->number = dec_u64le(r->data + 12);
    r->pos = LOGFILE_HEADER_SIZE;
out:
    env->close(env, f);
    if (st != ST_OK) {
        logfile_reader_destroy(&r);
        return st;
    }
    *out = r;
    return ST_OK;
}

void logfile_reader_destroy(struct logfile_reader **r)
{
    if (r == NULL || *r == NULL)
        return;
    if ((*r)->data != NULL)
        mem_free(MEM_STORAGE, (*r)->data, (*r)->len ? (*r)->len : 1);
    mem_free(MEM_STORAGE, *r, sizeof(**r));
    *r = NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* A bad record at r->pos whose damage may extend to `end`: torn or not. */
static enum st_status bad_record(struct logfile_reader *r, size_t end, bool *eof)
{
    if (r->newest && (end >= r->len || all_zero(r->data + end, r->len - end))) {
        r->torn = true;
        *eof = true;
        return ST_OK;
    }
    return ST_CORRUPT;
}

enum st_status logfile_reader_next(struct logfile_reader *r, const uint8_t **payload, size_t *n,
                                   bool *eof)
{
    *eof = false;
    if (r->torn || r->pos >= r->len) {
        *eof = true;
        return ST_OK;
    }
    size_t left = r->len - r->pos;
    const uint8_t *h = r->data + r->pos;
    if (left < LOGFILE_RECORD_HEADER)
        return bad_record(r, r->len, eof);
    uint32_t len = dec_u32le(h);
    if (dec_u32le(h + 4) != (uint32_t)checksum(h, 4) || len == 0 || len > LOGFILE_MAX_RECORD)
        return bad_record(r, r->pos, eof); /* torn only if zeros follow */
    if (len > left - LOGFILE_RECORD_HEADER)
        return bad_record(r, r->len, eof);
    size_t end = r->pos + LOGFILE_RECORD_HEADER + len;
    if (checksum(h + LOGFILE_RECORD_HEADER, len) != dec_u64le(h + 8))
        return bad_record(r, end, eof);
    *payload = h + LOGFILE_RECORD_HEADER;
    *n = len;
    r->pos = end;
    return ST_OK;
}

bool logfile_reader_torn(const struct logfile_reader *r)
{
    return r->torn;
}

uint64_t logfile_reader_offset(const struct logfile_reader *r)
{
    return r->pos;
}

uint64_t logfile_reader_number(const struct logfile_reader *r)
{
    return r->number;
}
