/*
 * sstable.c - SSTable builder and reader (format in sstable.h and
 * docs/formats/sstable.md). Builders run on the flush and compaction
 * threads; tables and their iterators on any reader thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <zstd.h>

#include "common/log.h"
#include "common/mem.h"
#include "storage/block.h"
#include "storage/bloom.h"
#include "storage/filename.h"
#include "storage/killpoint.h"
#include "storage/sstable.h"

/* ------------------------------------------------------------ builder */

struct sst_builder {
    struct lsm_env *env;
    struct env_file *file;
    char tmp_path[FILENAME_MAX_PATH];
    char path[FILENAME_MAX_PATH];
    char dir[FILENAME_MAX_PATH];
    uint64_t number;
    struct sst_builder_opts opts;
    ZSTD_CCtx *cctx;
    struct block_builder data;
    struct block_builder index;
    struct buf comp; /* compression output */
    uint64_t *tokens;
    size_t ntokens, tokens_cap;
    uint64_t offset;
    struct sst_props props;
    struct buf smallest, largest;
    uint64_t count;
};

enum st_status sst_builder_create(struct lsm_env *env, const char *dir, uint64_t number,
                                  const struct sst_builder_opts *opts, struct sst_builder **out)
{
    struct sst_builder *b = mem_calloc(MEM_STORAGE, 1, sizeof(*b));
    if (b == NULL)
        return ST_NOMEM;
    b->env = env;
    b->number = number;
    b->opts = *opts;
    b->index.restart_interval = 1; /* seeks binary-search the index */
    snprintf(b->dir, sizeof(b->dir), "%s", dir);
    filename_path(b->tmp_path, dir, FILENAME_SST_TMP, number);
    filename_path(b->path, dir, FILENAME_SST, number);
    b->props.min_token = UINT64_MAX;
    b->props.min_version = (struct lsm_version){UINT64_MAX, UINT16_MAX};
    if (opts->compression_level != 0) {
        b->cctx = ZSTD_createCCtx();
        if (b->cctx == NULL) {
            mem_free(MEM_STORAGE, b, sizeof(*b));
            return ST_NOMEM;
        }
    }
    enum st_status st = env->open(env, b->tmp_path, ENV_OPEN_CREATE, &b->file);
    if (st != ST_OK) {
        int e = errno;
        ZSTD_freeCCtx(b->cctx);
        mem_free(MEM_STORAGE, b, sizeof(*b));
        errno = e;
        return st;
    }
    *out = b;
    return ST_OK;
}

static void builder_free(struct sst_builder *b)
{
    if (b->file != NULL)
        b->env->close(b->env, b->file);
    ZSTD_freeCCtx(b->cctx);
    block_builder_deinit(&b->data);
    block_builder_deinit(&b->index);
    buf_deinit(&b->comp);
    buf_deinit(&b->smallest);
    buf_deinit(&b->largest);
    if (b->tokens != NULL)
        mem_free(MEM_STORAGE, b->tokens, b->tokens_cap * sizeof(uint64_t));
    mem_free(MEM_STORAGE, b, sizeof(*b));
}

void sst_builder_abandon(struct sst_builder **bp)
{
    if (bp == NULL || *bp == NULL)
        return;
    struct sst_builder *b = *bp;
    *bp = NULL;
    if (b->file != NULL) {
        b->env->close(b->env, b->file);
        b->file = NULL;
    }
    b->env->unlink(b->env, b->tmp_path);
    builder_free(b);
}

/* Writes one block's stored bytes and trailer; returns its handle. */
static enum st_status write_block(struct sst_builder *b, const uint8_t *data, size_t len,
                                  bool compress, uint64_t *off, uint64_t *size)
{
    const uint8_t *stored = data;
    size_t stored_len = len;
    uint8_t type = SST_COMP_NONE;
    if (compress && b->cctx != NULL && len >= 64) {
        size_t bound = ZSTD_compressBound(len);
        b->comp.len = 0;
        enum st_status st = buf_reserve(&b->comp, bound);
        if (st != ST_OK)
            return st;
        size_t n =
            ZSTD_compressCCtx(b->cctx, b->comp.data, bound, data, len, b->opts.compression_level);
        if (!ZSTD_isError(n) && n < len - len / 8) {
            stored = b->comp.data;
            stored_len = n;
            type = SST_COMP_ZSTD;
        }
    }
    uint8_t trailer[SST_TRAILER_SIZE];
    trailer[0] = type;
    XXH3_state_t *xs = XXH3_createState();
    if (xs == NULL)
        return ST_NOMEM;
    XXH3_64bits_reset(xs);
    XXH3_64bits_update(xs, stored, stored_len);
    XXH3_64bits_update(xs, trailer, 1);
    enc_u64le(trailer + 1, XXH3_64bits_digest(xs));
    XXH3_freeState(xs);
    enum st_status st = b->env->append(b->env, b->file, stored, stored_len);
    if (st == ST_OK)
        st = b->env->append(b->env, b->file, trailer, sizeof(trailer));
    if (st != ST_OK)
        return st;
    *off = b->offset;
    *size = stored_len;
    b->offset += stored_len + SST_TRAILER_SIZE;
    return ST_OK;
}

static enum st_status flush_data_block(struct sst_builder *b)
{
    if (b->data.count == 0)
        return ST_OK;
    enum st_status st = block_builder_finish(&b->data);
    if (st != ST_OK)
        return st;
    uint64_t off, size;
    st = write_block(b, b->data.data.data, b->data.data.len, true, &off, &size);
    if (st != ST_OK)
        return st;
    b->props.data_blocks++;
    b->props.data_bytes += size + SST_TRAILER_SIZE;
    uint8_t handle[20];
    size_t hl = enc_varint(handle, off);
    hl += enc_varint(handle + hl, size);
    st = block_builder_add(&b->index, b->largest.data, b->largest.len, handle, hl);
    block_builder_reset(&b->data);
    return st;
}

enum st_status sst_builder_add(struct sst_builder *b, const uint8_t *ikey, size_t ikey_len,
                               const uint8_t *rval, size_t rval_len)
{
    struct ikey k;
    enum rval_kind kind;
    uint32_t flags;
    uint64_t expiry;
    const uint8_t *v;
    size_t vl;
    if (!ikey_decode(ikey, ikey_len, &k) ||
        !rval_decode(rval, rval_len, &kind, &flags, &expiry, &v, &vl))
        return ST_INVAL;
    enum st_status st;
    if (b->ntokens == 0 || b->tokens[b->ntokens - 1] != k.token) {
        if (b->ntokens == b->tokens_cap) {
            size_t ncap = b->tokens_cap ? b->tokens_cap * 2 : 1024;
            uint64_t *nt = mem_realloc(MEM_STORAGE, b->tokens, b->tokens_cap * sizeof(uint64_t),
                                       ncap * sizeof(uint64_t));
            if (nt == NULL)
                return ST_NOMEM;
            b->tokens = nt;
            b->tokens_cap = ncap;
        }
        b->tokens[b->ntokens++] = k.token;
    }
    if (b->count == 0 && (st = buf_append(&b->smallest, ikey, ikey_len)) != ST_OK)
        return st;
    b->largest.len = 0;
    if ((st = buf_append(&b->largest, ikey, ikey_len)) != ST_OK)
        return st;
    if ((st = block_builder_add(&b->data, ikey, ikey_len, rval, rval_len)) != ST_OK)
        return st;
    b->count++;
    struct sst_props *p = &b->props;
    p->records++;
    if (kind == RVAL_TOMBSTONE)
        p->tombstones++;
    else if (expiry != 0 && (p->earliest_expiry == 0 || expiry < p->earliest_expiry))
        p->earliest_expiry = expiry;
    if (k.token < p->min_token)
        p->min_token = k.token;
    if (k.token > p->max_token)
        p->max_token = k.token;
    if (version_compare(k.version, p->min_version) < 0)
        p->min_version = k.version;
    if (version_compare(k.version, p->max_version) > 0)
        p->max_version = k.version;
    p->raw_key_bytes += k.key_len;
    p->raw_value_bytes += vl;
    if (block_builder_size(&b->data) >= b->opts.block_size)
        return flush_data_block(b);
    return ST_OK;
}

uint64_t sst_builder_size(const struct sst_builder *b)
{
    return b->offset + block_builder_size(&b->data);
}

uint64_t sst_builder_count(const struct sst_builder *b)
{
    return b->count;
}

static enum st_status encode_props(const struct sst_props *p, struct buf *out)
{
    const uint64_t vals[] = {
        0,
        p->records,
        p->tombstones,
        p->min_token,
        p->max_token,
        p->min_version.hlc,
        p->min_version.node,
        p->max_version.hlc,
        p->max_version.node,
        p->earliest_expiry,
        p->data_blocks,
        p->raw_key_bytes,
        p->raw_value_bytes,
        p->data_bytes,
    };
    for (uint64_t tag = 1; tag < sizeof(vals) / sizeof(vals[0]); tag++) {
        enum st_status st = buf_append_varint(out, tag);
        if (st == ST_OK)
            st = buf_append_varint(out, vals[tag]);
        if (st != ST_OK)
            return st;
    }
    return ST_OK;
}

enum st_status sst_builder_finish(struct sst_builder **bp, struct sst_info *info)
{
    struct sst_builder *b = *bp;
    struct buf tmp = {0};
    uint64_t foff = 0, fsize = 0, poff = 0, psize = 0, ioff = 0, isize = 0;
    enum st_status st = ST_INVAL;
    if (b->count == 0)
        goto err;
    if ((st = flush_data_block(b)) != ST_OK)
        goto err;
    if (b->opts.bloom_bits_per_key > 0 &&
        (st = bloom_build(b->tokens, b->ntokens, b->opts.bloom_bits_per_key, &tmp)) != ST_OK)
        goto err;
    if ((st = write_block(b, tmp.data, tmp.len, false, &foff, &fsize)) != ST_OK)
        goto err;
    tmp.len = 0;
    if ((st = encode_props(&b->props, &tmp)) != ST_OK ||
        (st = write_block(b, tmp.data, tmp.len, false, &poff, &psize)) != ST_OK)
        goto err;
    if ((st = block_builder_finish(&b->index)) != ST_OK ||
        (st = write_block(b, b->index.data.data, b->index.data.len, true, &ioff, &isize)) != ST_OK)
        goto err;
    uint8_t f[SST_FOOTER_SIZE];
    enc_u64le(f, foff);
    enc_u64le(f + 8, fsize);
    enc_u64le(f + 16, poff);
    enc_u64le(f + 24, psize);
    enc_u64le(f + 32, ioff);
    enc_u64le(f + 40, isize);
    enc_u32le(f + 48, SST_FORMAT_VERSION);
    enc_u32le(f + 52, 0);
    enc_u64le(f + 56, checksum(f, 56));
    memcpy(f + 64, SST_MAGIC, 8);
    if ((st = b->env->append(b->env, b->file, f, sizeof(f))) != ST_OK)
        goto err;
    b->offset += sizeof(f);
    if ((st = b->env->sync(b->env, b->file)) != ST_OK)
        goto err;
    b->env->close(b->env, b->file);
    b->file = NULL;
    KILL_POINT("sst.before_rename");
    if ((st = b->env->rename(b->env, b->tmp_path, b->path)) != ST_OK)
        goto err;
    KILL_POINT("sst.after_rename");
    if ((st = b->env->sync_dir(b->env, b->dir)) != ST_OK) {
        /* The name may not be durable: the file must not be used. */
        b->env->unlink(b->env, b->path);
        goto err;
    }
    info->number = b->number;
    info->size = b->offset;
    memcpy(info->smallest, b->smallest.data, b->smallest.len);
    info->smallest_len = b->smallest.len;
    memcpy(info->largest, b->largest.data, b->largest.len);
    info->largest_len = b->largest.len;
    info->props = b->props;
    buf_deinit(&tmp);
    builder_free(b);
    *bp = NULL;
    return ST_OK;
err:;
    int e = errno;
    buf_deinit(&tmp);
    sst_builder_abandon(bp);
    errno = e;
    return st;
}

/* ------------------------------------------------------------- reader */

struct sst_table {
    atomic_int refs;
    struct lsm_env *env;
    struct env_file *file;
    char path[FILENAME_MAX_PATH];
    uint64_t number;
    uint64_t data_end; /* end of the data blocks: handles must stay below */
    struct bcache *cache;
    struct sst_counters *counters;
    struct block *index;
    uint8_t *filter;
    size_t filter_len, filter_cap;
    struct sst_props props;
};

/* One zstd decompression context per reader thread, freed at thread exit
 * (creating one per block read costs more than the read itself). */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static bool dctx_key_ok;

static void dctx_free(void *p)
{
    ZSTD_freeDCtx(p);
}

static void dctx_key_init(void)
{
    /* On failure every read creates its own context. */
    dctx_key_ok = pthread_key_create(&dctx_key, dctx_free) == 0;
}

static ZSTD_DCtx *dctx_get(void)
{
    pthread_once(&dctx_once, dctx_key_init);
    if (!dctx_key_ok)
        return NULL;
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (d == NULL && (d = ZSTD_createDCtx()) != NULL && pthread_setspecific(dctx_key, d) != 0) {
        ZSTD_freeDCtx(d);
        d = NULL;
    }
    return d;
}

/* Reads a block's stored bytes + trailer, verifies, decompresses. The
 * result is a MEM_STORAGE buffer of *cap bytes holding *len content bytes. */
static enum st_status read_raw(struct sst_table *t, uint64_t off, uint64_t size, uint8_t **out,
                               size_t *len, size_t *cap)
{
    if (size > SST_MAX_BLOCK)
        return ST_CORRUPT;
    size_t n = (size_t)size + SST_TRAILER_SIZE;
    uint8_t *raw = mem_alloc(MEM_STORAGE, n);
    if (raw == NULL)
        return ST_NOMEM;
    size_t got = 0;
    enum st_status st = t->env->pread(t->env, t->file, raw, n, off, &got);
    if (st != ST_OK || got != n) {
        mem_free(MEM_STORAGE, raw, n);
        return st != ST_OK ? st : ST_CORRUPT;
    }
    uint8_t type = raw[size];
    if (checksum(raw, (size_t)size + 1) != dec_u64le(raw + size + 1)) {
        mem_free(MEM_STORAGE, raw, n);
        return ST_CORRUPT;
    }
    if (type == SST_COMP_NONE) {
        *out = raw;
        *len = (size_t)size;
        *cap = n;
        return ST_OK;
    }
    if (type != SST_COMP_ZSTD) {
        mem_free(MEM_STORAGE, raw, n);
        return ST_CORRUPT;
    }
    unsigned long long csize = ZSTD_getFrameContentSize(raw, (size_t)size);
    if (csize == ZSTD_CONTENTSIZE_ERROR || csize == ZSTD_CONTENTSIZE_UNKNOWN ||
        csize > SST_MAX_BLOCK) {
        mem_free(MEM_STORAGE, raw, n);
        return ST_CORRUPT;
    }
    size_t dcap = csize ? (size_t)csize : 1;
    uint8_t *d = mem_alloc(MEM_STORAGE, dcap);
    if (d == NULL) {
        mem_free(MEM_STORAGE, raw, n);
        return ST_NOMEM;
    }
    ZSTD_DCtx *dctx = dctx_get();
    size_t dn = dctx != NULL ? ZSTD_decompressDCtx(dctx, d, dcap, raw, (size_t)size)
                             : ZSTD_decompress(d, dcap, raw, (size_t)size);
    mem_free(MEM_STORAGE, raw, n);
    if (ZSTD_isError(dn) || dn != csize) {
        mem_free(MEM_STORAGE, d, dcap);
        return ST_CORRUPT;
    }
    *out = d;
    *len = dn;
    *cap = dcap;
    return ST_OK;
}

static enum st_status read_block(struct sst_table *t, uint64_t off, uint64_t size,
                                 struct block **out)
{
    if (t->cache != NULL && (*out = bcache_lookup(t->cache, t->number, off)))
        return ST_OK;
    uint8_t *data;
    size_t len, cap;
    enum st_status st = read_raw(t, off, size, &data, &len, &cap);
    if (st != ST_OK)
        return st;
    if ((st = block_create(data, len, cap, out)) != ST_OK)
        return st;
    if (t->cache != NULL)
        bcache_insert(t->cache, t->number, off, *out, cap + sizeof(struct block));
    return ST_OK;
}

static bool decode_props(const uint8_t *p, size_t len, struct sst_props *out)
{
    const uint8_t *end = p + len;
    memset(out, 0, sizeof(*out));
    while (p < end) {
        uint64_t tag, v;
        if (!dec_varint(&p, end, &tag) || !dec_varint(&p, end, &v))
            return false;
        switch (tag) {
        case 1: out->records = v; break;
        case 2: out->tombstones = v; break;
        case 3: out->min_token = v; break;
        case 4: out->max_token = v; break;
        case 5: out->min_version.hlc = v; break;
        case 6: out->min_version.node = (uint16_t)v; break;
        case 7: out->max_version.hlc = v; break;
        case 8: out->max_version.node = (uint16_t)v; break;
        case 9: out->earliest_expiry = v; break;
        case 10: out->data_blocks = v; break;
        case 11: out->raw_key_bytes = v; break;
        case 12: out->raw_value_bytes = v; break;
        case 13: out->data_bytes = v; break;
        default: break; /* a newer writer's property */
        }
    }
    return true;
}

static void table_free(struct sst_table *t)
{
    if (t->file != NULL)
        t->env->close(t->env, t->file);
    block_unref(&t->index);
    if (t->filter != NULL)
        mem_free(MEM_STORAGE, t->filter, t->filter_cap);
    mem_free(MEM_STORAGE, t, sizeof(*t));
}

enum st_status sst_table_open(struct lsm_env *env, const char *dir, uint64_t number,
                              struct bcache *cache, struct sst_counters *counters,
                              struct sst_table **out)
{
    struct sst_table *t = mem_calloc(MEM_STORAGE, 1, sizeof(*t));
    if (t == NULL)
        return ST_NOMEM;
    atomic_init(&t->refs, 1);
    t->env = env;
    t->number = number;
    t->cache = cache;
    t->counters = counters;
    filename_path(t->path, dir, FILENAME_SST, number);
    uint64_t size = 0;
    uint8_t f[SST_FOOTER_SIZE];
    size_t got = 0;
    uint8_t *praw = NULL;
    size_t plen = 0, pcap = 0;
    enum st_status st = env->open(env, t->path, ENV_OPEN_READ, &t->file);
    if (st != ST_OK) {
        int e = errno;
        log_error("storage: cannot open sstable %s: %s", t->path, strerror(e));
        table_free(t);
        errno = e;
        return st;
    }
    if ((st = env->size(env, t->file, &size)) != ST_OK)
        goto err;
    st = ST_CORRUPT;
    if (size < SST_FOOTER_SIZE)
        goto err;
    if ((st = env->pread(env, t->file, f, sizeof(f), size - SST_FOOTER_SIZE, &got)) != ST_OK)
        goto err;
    st = ST_CORRUPT;
    if (got != sizeof(f) || memcmp(f + 64, SST_MAGIC, 8) != 0 ||
        checksum(f, 56) != dec_u64le(f + 56) || dec_u32le(f + 48) != SST_FORMAT_VERSION)
        goto err;
    uint64_t foff = dec_u64le(f), fsize = dec_u64le(f + 8);
    uint64_t poff = dec_u64le(f + 16), psize = dec_u64le(f + 24);
    uint64_t ioff = dec_u64le(f + 32), isize = dec_u64le(f + 40);
    uint64_t limit = size - SST_FOOTER_SIZE;
    /* Blocks are laid out filter, props, index, footer, in that order. */
    if (fsize > limit || foff > limit - fsize - SST_TRAILER_SIZE || psize > limit ||
        poff < foff + fsize + SST_TRAILER_SIZE || poff > limit - psize - SST_TRAILER_SIZE ||
        isize > limit || ioff < poff + psize + SST_TRAILER_SIZE ||
        ioff > limit - isize - SST_TRAILER_SIZE)
        goto err;
    t->data_end = foff;
    if ((st = read_raw(t, foff, fsize, &t->filter, &t->filter_len, &t->filter_cap)) != ST_OK)
        goto err;
    if ((st = read_raw(t, poff, psize, &praw, &plen, &pcap)) != ST_OK)
        goto err;
    bool ok = decode_props(praw, plen, &t->props);
    mem_free(MEM_STORAGE, praw, pcap);
    st = ST_CORRUPT;
    if (!ok)
        goto err;
    uint8_t *idata;
    size_t ilen, icap;
    if ((st = read_raw(t, ioff, isize, &idata, &ilen, &icap)) != ST_OK ||
        (st = block_create(idata, ilen, icap, &t->index)) != ST_OK)
        goto err;
    *out = t;
    return ST_OK;
err:
    if (st == ST_CORRUPT)
        log_error("storage: sstable %s is corrupt", t->path);
    else
        log_error("storage: cannot read sstable %s: %s", t->path, st_status_name(st));
    table_free(t);
    return st;
}

void sst_table_ref(struct sst_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void sst_table_unref(struct sst_table **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    struct sst_table *t = *tp;
    *tp = NULL;
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        table_free(t);
}

const struct sst_props *sst_table_props(const struct sst_table *t)
{
    return &t->props;
}

uint64_t sst_table_number(const struct sst_table *t)
{
    return t->number;
}

static enum st_status decode_handle(const struct sst_table *t, const uint8_t *p, size_t len,
                                    uint64_t *off, uint64_t *size)
{
    const uint8_t *end = p + len;
    if (!dec_varint(&p, end, off) || !dec_varint(&p, end, size) || *size > t->data_end ||
        *off > t->data_end - *size || t->data_end - *size - *off < SST_TRAILER_SIZE)
        return ST_CORRUPT;
    return ST_OK;
}

static void log_read_error(const struct sst_table *t, enum st_status st)
{
    log_error("storage: reading sstable %s failed: %s", t->path, st_status_name(st));
}

enum st_status sst_table_get(struct sst_table *t, const uint8_t *ikey, size_t ikey_len, bool *found,
                             struct buf *ikey_out, struct buf *rval_out)
{
    *found = false;
    uint64_t token = dec_u64be(ikey);
    if (t->filter_len > 0 && !bloom_may_contain(t->filter, t->filter_len, token)) {
        if (t->counters != NULL)
            atomic_fetch_add_explicit(&t->counters->bloom_useful, 1, memory_order_relaxed);
        return ST_OK;
    }
    uint8_t probe[IKEY_MAX_LEN];
    size_t klen = ikey_len - IKEY_OVERHEAD;
    memcpy(probe, ikey, 8 + klen);
    memset(probe + 8 + klen, 0xff, 10);
    struct block_iter ii, di;
    block_iter_init(&ii, t->index);
    block_iter_seek(&ii, probe, ikey_len);
    enum st_status st = block_iter_status(&ii);
    if (st != ST_OK || !ii.valid)
        goto out_index;
    uint64_t off, size;
    struct block *blk = NULL;
    if ((st = decode_handle(t, ii.value, ii.value_len, &off, &size)) != ST_OK ||
        (st = read_block(t, off, size, &blk)) != ST_OK)
        goto out_index;
    block_iter_init(&di, blk);
    block_unref(&blk);
    block_iter_seek(&di, probe, ikey_len);
    st = block_iter_status(&di);
    if (st == ST_OK && di.valid && ikey_same_user_key(di.key, di.key_len, ikey, ikey_len)) {
        ikey_out->len = 0;
        rval_out->len = 0;
        if ((st = buf_append(ikey_out, di.key, di.key_len)) == ST_OK &&
            (st = buf_append(rval_out, di.value, di.value_len)) == ST_OK)
            *found = true;
    }
    block_iter_deinit(&di);
out_index:
    block_iter_deinit(&ii);
    if (st == ST_CORRUPT || st == ST_IO)
        log_read_error(t, st);
    return st;
}

/* ----------------------------------------------------------- iterator */

struct sst_iter {
    struct iter base;
    struct sst_table *t;
    struct block_iter index;
    struct block_iter data;
    bool data_init;
    enum st_status status;
};

static void si_set_error(struct sst_iter *si, enum st_status st)
{
    if (si->status == ST_OK) {
        si->status = st;
        log_read_error(si->t, st);
    }
    if (si->data_init) {
        block_iter_deinit(&si->data);
        si->data_init = false;
    }
}

/* Loads the data block the index cursor points at. */
static bool si_load(struct sst_iter *si)
{
    if (si->data_init) {
        block_iter_deinit(&si->data);
        si->data_init = false;
    }
    if (block_iter_status(&si->index) != ST_OK) {
        si_set_error(si, block_iter_status(&si->index));
        return false;
    }
    if (!si->index.valid)
        return false;
    uint64_t off, size;
    struct block *blk = NULL;
    enum st_status st = decode_handle(si->t, si->index.value, si->index.value_len, &off, &size);
    if (st == ST_OK)
        st = read_block(si->t, off, size, &blk);
    if (st != ST_OK) {
        si_set_error(si, st);
        return false;
    }
    block_iter_init(&si->data, blk);
    block_unref(&blk);
    si->data_init = true;
    return true;
}

/* Moves past exhausted data blocks. */
static void si_skip_empty(struct sst_iter *si)
{
    while (si->status == ST_OK && si->data_init && !si->data.valid) {
        if (block_iter_status(&si->data) != ST_OK) {
            si_set_error(si, block_iter_status(&si->data));
            return;
        }
        block_iter_next(&si->index);
        if (!si_load(si))
            return;
        block_iter_seek_first(&si->data);
    }
}

static void si_seek_first(struct iter *it)
{
    struct sst_iter *si = (struct sst_iter *)it;
    if (si->status != ST_OK)
        return;
    block_iter_seek_first(&si->index);
    if (si_load(si)) {
        block_iter_seek_first(&si->data);
        si_skip_empty(si);
    }
}

static void si_seek(struct iter *it, const uint8_t *k, size_t kl)
{
    struct sst_iter *si = (struct sst_iter *)it;
    if (si->status != ST_OK)
        return;
    block_iter_seek(&si->index, k, kl);
    if (si_load(si)) {
        block_iter_seek(&si->data, k, kl);
        si_skip_empty(si);
    }
}

static void si_next(struct iter *it)
{
    struct sst_iter *si = (struct sst_iter *)it;
    if (!si->data_init || !si->data.valid)
        return;
    block_iter_next(&si->data);
    si_skip_empty(si);
}

static bool si_valid(const struct iter *it)
{
    const struct sst_iter *si = (const struct sst_iter *)it;
    return si->status == ST_OK && si->data_init && si->data.valid;
}

static void si_entry(const struct iter *it, const uint8_t **k, size_t *kl, const uint8_t **v,
                     size_t *vl)
{
    const struct sst_iter *si = (const struct sst_iter *)it;
    *k = si->data.key;
    *kl = si->data.key_len;
    *v = si->data.value;
    *vl = si->data.value_len;
}

static enum st_status si_status(const struct iter *it)
{
    return ((const struct sst_iter *)it)->status;
}

static void si_destroy(struct iter *it)
{
    struct sst_iter *si = (struct sst_iter *)it;
    if (si->data_init)
        block_iter_deinit(&si->data);
    block_iter_deinit(&si->index);
    sst_table_unref(&si->t);
    mem_free(MEM_STORAGE, si, sizeof(*si));
}

static const struct iter_ops sst_iter_ops = {
    .seek_first = si_seek_first,
    .seek = si_seek,
    .next = si_next,
    .valid = si_valid,
    .entry = si_entry,
    .status = si_status,
    .destroy = si_destroy,
};

enum st_status sst_iter_create(struct sst_table *t, struct iter **out)
{
    struct sst_iter *si = mem_calloc(MEM_STORAGE, 1, sizeof(*si));
    if (si == NULL)
        return ST_NOMEM;
    si->base.ops = &sst_iter_ops;
    sst_table_ref(t);
    si->t = t;
    block_iter_init(&si->index, t->index);
    si->status = ST_OK;
    *out = &si->base;
    return ST_OK;
}
