/*
 * version.c - versions, version edits and the manifest-backed version set
 * (version.h, docs/formats/manifest.md). Edits are applied by the flush and
 * compaction threads (serialised by apply_mu); readers pin versions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "storage/filename.h"
#include "storage/killpoint.h"
#include "storage/sstable.h"
#include "storage/version.h"

struct vset {
    struct lsm_env *env;
    char dir[FILENAME_MAX_PATH];
    pthread_mutex_t mu;       /* current, obsolete */
    pthread_mutex_t apply_mu; /* serialises log_and_apply and snapshots */
    struct version *current;
    atomic_uint_fast64_t next_file;
    uint64_t log_number;
    uint64_t manifest_number;
    struct logfile_writer *manifest;
    uint64_t manifest_limit; /* roll over to a new manifest past this */
    uint64_t *obsolete;
    size_t nobsolete, obsolete_cap;
};

/* ------------------------------------------------------------ file meta */

static void meta_unref(struct file_meta **mp)
{
    struct file_meta *m = *mp;
    *mp = NULL;
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct vset *vs = m->vs;
    pthread_mutex_lock(&vs->mu);
    if (vs->nobsolete == vs->obsolete_cap) {
        size_t ncap = vs->obsolete_cap ? vs->obsolete_cap * 2 : 16;
        uint64_t *n = mem_realloc(MEM_STORAGE, vs->obsolete, vs->obsolete_cap * sizeof(uint64_t),
                                  ncap * sizeof(uint64_t));
        if (n != NULL) {
            vs->obsolete = n;
            vs->obsolete_cap = ncap;
        }
    }
    /* If the queue cannot grow the file is left for the cleanup at open. */
    if (vs->nobsolete < vs->obsolete_cap)
        vs->obsolete[vs->nobsolete++] = m->number;
    pthread_mutex_unlock(&vs->mu);
    mem_free(MEM_STORAGE, m, sizeof(*m));
}

/* ---------------------------------------------------------------- edits */

void version_edit_init(struct version_edit *e)
{
    memset(e, 0, sizeof(*e));
}

void version_edit_deinit(struct version_edit *e)
{
    for (size_t i = 0; i < e->nadded; i++)
        meta_unref(&e->added[i].meta);
    if (e->added != NULL)
        mem_free(MEM_STORAGE, e->added, e->added_cap * sizeof(*e->added));
    if (e->deleted != NULL)
        mem_free(MEM_STORAGE, e->deleted, e->deleted_cap * sizeof(*e->deleted));
    memset(e, 0, sizeof(*e));
}

static enum st_status grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return ST_OK;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = mem_realloc(MEM_STORAGE, *arr, *cap * elem, ncap * elem);
    if (p == NULL)
        return ST_NOMEM;
    *arr = p;
    *cap = ncap;
    return ST_OK;
}

enum st_status version_edit_add(struct version_edit *e, struct vset *vs, int level, uint64_t number,
                                uint64_t size, const uint8_t *smallest, size_t smallest_len,
                                const uint8_t *largest, size_t largest_len, uint64_t records,
                                uint64_t tombstones, uint64_t earliest_expiry, uint64_t raw_bytes)
{
    if (smallest_len > IKEY_MAX_LEN || largest_len > IKEY_MAX_LEN)
        return ST_INVAL;
    enum st_status st = grow((void **)&e->added, &e->added_cap, e->nadded, sizeof(*e->added));
    if (st != ST_OK)
        return st;
    struct file_meta *m = mem_calloc(MEM_STORAGE, 1, sizeof(*m));
    if (m == NULL)
        return ST_NOMEM;
    atomic_init(&m->refs, 1);
    m->vs = vs;
    m->number = number;
    m->size = size;
    memcpy(m->smallest, smallest, smallest_len);
    m->smallest_len = (uint16_t)smallest_len;
    memcpy(m->largest, largest, largest_len);
    m->largest_len = (uint16_t)largest_len;
    m->records = records;
    m->tombstones = tombstones;
    m->earliest_expiry = earliest_expiry;
    m->raw_bytes = raw_bytes;
    e->added[e->nadded].level = level;
    e->added[e->nadded].meta = m;
    e->nadded++;
    return ST_OK;
}

/* The meta of new file `number` of this edit, NULL if it adds none. */
static struct file_meta *added_meta(struct version_edit *e, uint64_t number)
{
    for (size_t i = 0; i < e->nadded; i++)
        if (e->added[i].meta->number == number)
            return e->added[i].meta;
    return NULL;
}

enum st_status version_edit_set_newest(struct version_edit *e, uint64_t number,
                                       struct lsm_version newest)
{
    struct file_meta *m = added_meta(e, number);
    if (m == NULL)
        return ST_CORRUPT;
    m->newest = newest;
    m->newest_known = true;
    return ST_OK;
}

enum st_status version_edit_set_oldest(struct version_edit *e, uint64_t number,
                                       struct lsm_version oldest)
{
    struct file_meta *m = added_meta(e, number);
    if (m == NULL)
        return ST_CORRUPT;
    m->oldest = oldest;
    m->oldest_known = true;
    return ST_OK;
}

struct lsm_version file_newest(const struct file_meta *m)
{
    return m->newest_known ? m->newest : (struct lsm_version){UINT64_MAX, UINT16_MAX};
}

struct lsm_version file_oldest(const struct file_meta *m)
{
    return m->oldest_known ? m->oldest : (struct lsm_version){0, 0};
}

enum st_status version_edit_delete(struct version_edit *e, int level, uint64_t number)
{
    enum st_status st =
        grow((void **)&e->deleted, &e->deleted_cap, e->ndeleted, sizeof(*e->deleted));
    if (st != ST_OK)
        return st;
    e->deleted[e->ndeleted].level = level;
    e->deleted[e->ndeleted].number = number;
    e->ndeleted++;
    return ST_OK;
}

void version_edit_forget_added(struct version_edit *e)
{
    for (size_t i = 0; i < e->nadded; i++) {
        struct file_meta *m = e->added[i].meta;
        e->added[i].meta = NULL;
        /* A meta some version also holds stays alive with it. */
        if (m != NULL && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
            mem_free(MEM_STORAGE, m, sizeof(*m));
    }
    e->nadded = 0;
}

/* Appends one TLV field whose body is in `body`. */
static enum st_status put_field(struct buf *out, uint64_t tag, const struct buf *body)
{
    enum st_status st = buf_append_varint(out, tag);
    if (st == ST_OK)
        st = buf_append_varint(out, body->len);
    if (st == ST_OK)
        st = buf_append(out, body->data, body->len);
    return st;
}

enum st_status version_edit_encode(const struct version_edit *e, struct buf *out)
{
    struct buf b = {0};
    enum st_status st = ST_OK;
#define TRY(x)                   \
    do {                         \
        if ((st = (x)) != ST_OK) \
            goto done;           \
    } while (0)
    TRY(buf_append(&b, VERSION_FORMAT_NAME, strlen(VERSION_FORMAT_NAME)));
    TRY(put_field(out, 1, &b));
    if (e->has_log_number) {
        b.len = 0;
        TRY(buf_append_varint(&b, e->log_number));
        TRY(put_field(out, 2, &b));
    }
    if (e->has_next_file) {
        b.len = 0;
        TRY(buf_append_varint(&b, e->next_file));
        TRY(put_field(out, 3, &b));
    }
    for (size_t i = 0; i < e->ndeleted; i++) {
        b.len = 0;
        TRY(buf_append_varint(&b, (uint64_t)e->deleted[i].level));
        TRY(buf_append_varint(&b, e->deleted[i].number));
        TRY(put_field(out, 4, &b));
    }
    for (size_t i = 0; i < e->nadded; i++) {
        const struct file_meta *m = e->added[i].meta;
        b.len = 0;
        TRY(buf_append_varint(&b, (uint64_t)e->added[i].level));
        TRY(buf_append_varint(&b, m->number));
        TRY(buf_append_varint(&b, m->size));
        TRY(buf_append_varint(&b, m->smallest_len));
        TRY(buf_append(&b, m->smallest, m->smallest_len));
        TRY(buf_append_varint(&b, m->largest_len));
        TRY(buf_append(&b, m->largest, m->largest_len));
        TRY(buf_append_varint(&b, m->records));
        TRY(buf_append_varint(&b, m->tombstones));
        TRY(buf_append_varint(&b, m->earliest_expiry));
        TRY(buf_append_varint(&b, m->raw_bytes));
        TRY(put_field(out, 5, &b));
        if (m->newest_known) {
            b.len = 0;
            TRY(buf_append_varint(&b, m->number));
            TRY(buf_append_varint(&b, m->newest.hlc));
            TRY(buf_append_varint(&b, m->newest.node));
            TRY(put_field(out, 6, &b));
        }
        if (m->oldest_known) {
            b.len = 0;
            TRY(buf_append_varint(&b, m->number));
            TRY(buf_append_varint(&b, m->oldest.hlc));
            TRY(buf_append_varint(&b, m->oldest.node));
            TRY(put_field(out, 7, &b));
        }
    }
#undef TRY
done:
    buf_deinit(&b);
    return st;
}

static bool get_key(const uint8_t **p, const uint8_t *end, const uint8_t **key, size_t *len)
{
    uint64_t n;
    if (!dec_varint(p, end, &n) || n < IKEY_OVERHEAD + 1 || n > IKEY_MAX_LEN ||
        n > (uint64_t)(end - *p))
        return false;
    *key = *p;
    *len = (size_t)n;
    *p += n;
    return true;
}

enum st_status version_edit_decode(struct version_edit *e, struct vset *vs, const uint8_t *p,
                                   size_t len)
{
    const uint8_t *end = p + len;
    bool named = false;
    while (p < end) {
        uint64_t tag, flen;
        if (!dec_varint(&p, end, &tag) || !dec_varint(&p, end, &flen) || flen > (uint64_t)(end - p))
            return ST_CORRUPT;
        const uint8_t *f = p, *fend = p + flen;
        p = fend;
        uint64_t a, b, c, d, g, h, k;
        const uint8_t *sk, *lk;
        size_t skl, lkl;
        enum st_status st;
        switch (tag) {
        case 1:
            if (flen != strlen(VERSION_FORMAT_NAME) || memcmp(f, VERSION_FORMAT_NAME, flen) != 0)
                return ST_CORRUPT;
            named = true;
            break;
        case 2:
            if (!dec_varint(&f, fend, &a))
                return ST_CORRUPT;
            e->has_log_number = true;
            e->log_number = a;
            break;
        case 3:
            if (!dec_varint(&f, fend, &a))
                return ST_CORRUPT;
            e->has_next_file = true;
            e->next_file = a;
            break;
        case 4:
            if (!dec_varint(&f, fend, &a) || !dec_varint(&f, fend, &b) || a >= LSM_MAX_LEVELS)
                return ST_CORRUPT;
            if ((st = version_edit_delete(e, (int)a, b)) != ST_OK)
                return st;
            break;
        case 5:
            if (!dec_varint(&f, fend, &a) || !dec_varint(&f, fend, &b) ||
                !dec_varint(&f, fend, &c) || !get_key(&f, fend, &sk, &skl) ||
                !get_key(&f, fend, &lk, &lkl) || !dec_varint(&f, fend, &d) ||
                !dec_varint(&f, fend, &g) || !dec_varint(&f, fend, &h) ||
                !dec_varint(&f, fend, &k) || a >= LSM_MAX_LEVELS ||
                ikey_compare(sk, skl, lk, lkl) > 0)
                return ST_CORRUPT;
            if ((st = version_edit_add(e, vs, (int)a, b, c, sk, skl, lk, lkl, d, g, h, k)) != ST_OK)
                return st;
            break;
        case 6:
            if (!dec_varint(&f, fend, &a) || !dec_varint(&f, fend, &b) ||
                !dec_varint(&f, fend, &c) || c > UINT16_MAX)
                return ST_CORRUPT;
            if ((st = version_edit_set_newest(e, a, (struct lsm_version){b, (uint16_t)c})) != ST_OK)
                return st;
            break;
        case 7:
            if (!dec_varint(&f, fend, &a) || !dec_varint(&f, fend, &b) ||
                !dec_varint(&f, fend, &c) || c > UINT16_MAX)
                return ST_CORRUPT;
            if ((st = version_edit_set_oldest(e, a, (struct lsm_version){b, (uint16_t)c})) != ST_OK)
                return st;
            break;
        default: break; /* a field from a newer writer */
        }
    }
    return named ? ST_OK : ST_CORRUPT;
}

/* ------------------------------------------------------------- versions */

static struct version *version_new(void)
{
    struct version *v = mem_calloc(MEM_STORAGE, 1, sizeof(*v));
    if (v != NULL)
        atomic_init(&v->refs, 1); /* no files: newest_from all {0, 0} */
    return v;
}

void version_ref(struct version *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void version_unref(struct version **vp)
{
    if (vp == NULL || *vp == NULL)
        return;
    struct version *v = *vp;
    *vp = NULL;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (size_t i = 0; i < v->nfiles[l]; i++)
            meta_unref(&v->files[l][i]);
        if (v->files[l] != NULL)
            mem_free(MEM_STORAGE, v->files[l], v->nfiles[l] * sizeof(struct file_meta *));
    }
    mem_free(MEM_STORAGE, v, sizeof(*v));
}

uint64_t version_level_bytes(const struct version *v, int level)
{
    uint64_t total = 0;
    for (size_t i = 0; i < v->nfiles[level]; i++)
        total += v->files[level][i]->size;
    return total;
}

static int cmp_l0(const void *a, const void *b)
{
    const struct file_meta *x = *(struct file_meta *const *)a;
    const struct file_meta *y = *(struct file_meta *const *)b;
    return x->number < y->number ? 1 : x->number > y->number ? -1 : 0;
}

static int cmp_level(const void *a, const void *b)
{
    const struct file_meta *x = *(struct file_meta *const *)a;
    const struct file_meta *y = *(struct file_meta *const *)b;
    return ikey_compare(x->smallest, x->smallest_len, y->smallest, y->smallest_len);
}

/* Builds base + edit. ST_CORRUPT when levels >= 1 would overlap or a
 * deleted file is missing. */
static enum st_status version_apply(const struct version *base, const struct version_edit *e,
                                    struct version **out)
{
    struct version *v = version_new();
    if (v == NULL)
        return ST_NOMEM;
    enum st_status st = ST_OK;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        size_t n = base ? base->nfiles[l] : 0;
        for (size_t i = 0; i < e->nadded; i++)
            n += e->added[i].level == l;
        if (n == 0)
            continue;
        v->files[l] = mem_alloc(MEM_STORAGE, n * sizeof(struct file_meta *));
        if (v->files[l] == NULL) {
            st = ST_NOMEM;
            goto err;
        }
        size_t k = 0;
        for (size_t i = 0; base && i < base->nfiles[l]; i++) {
            struct file_meta *m = base->files[l][i];
            bool del = false;
            for (size_t j = 0; j < e->ndeleted && !del; j++)
                del = e->deleted[j].level == l && e->deleted[j].number == m->number;
            if (del)
                continue;
            atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
            v->files[l][k++] = m;
        }
        for (size_t i = 0; i < e->nadded; i++) {
            if (e->added[i].level != l)
                continue;
            struct file_meta *m = e->added[i].meta;
            atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
            v->files[l][k++] = m;
        }
        v->nfiles[l] = k;
        /* Shrink bookkeeping: the array keeps n slots; record n for free. */
        if (k != n) {
            struct file_meta **s =
                mem_realloc(MEM_STORAGE, v->files[l], n * sizeof(struct file_meta *),
                            (k ? k : 1) * sizeof(struct file_meta *));
            if (s == NULL) {
                st = ST_NOMEM;
                v->nfiles[l] = n; /* keep free() size right */
                for (size_t i = k; i < n; i++)
                    v->files[l][i] = NULL;
                goto err;
            }
            v->files[l] = s;
            if (k == 0) {
                mem_free(MEM_STORAGE, s, sizeof(struct file_meta *));
                v->files[l] = NULL;
            }
        }
        if (k > 1)
            qsort(v->files[l], k, sizeof(struct file_meta *), l == 0 ? cmp_l0 : cmp_level);
        for (size_t i = 1; l > 0 && i < k; i++) {
            if (ikey_compare(v->files[l][i - 1]->largest, v->files[l][i - 1]->largest_len,
                             v->files[l][i]->smallest, v->files[l][i]->smallest_len) >= 0) {
                log_error("storage: level %d files %llu and %llu overlap", l,
                          (unsigned long long)v->files[l][i - 1]->number,
                          (unsigned long long)v->files[l][i]->number);
                st = ST_CORRUPT;
                goto err;
            }
        }
    }
    struct lsm_version bound = {0, 0};
    for (int l = LSM_MAX_LEVELS - 1; l >= 0; l--) {
        for (size_t i = 0; i < v->nfiles[l]; i++) {
            struct lsm_version n = file_newest(v->files[l][i]);
            if (version_compare(n, bound) > 0)
                bound = n;
        }
        v->newest_from[l] = bound;
    }
    *out = v;
    return ST_OK;
err:
    version_unref(&v);
    return st;
}

/* Whether a file's key range may contain the user key of ikey. */
static bool file_may_hold(const struct file_meta *m, const uint8_t *ikey, size_t len)
{
    return ikey_user_compare(ikey, len, m->smallest, m->smallest_len) >= 0 &&
           ikey_user_compare(ikey, len, m->largest, m->largest_len) <= 0;
}

/*
 * The files of level `l` that may hold the user key of ikey by position:
 * [*first, return value). All of L0 (its files overlap); in a sorted,
 * disjoint level at most one, found by binary search on the largest keys.
 * The caller still checks the file's range (file_may_hold).
 */
static size_t level_candidates(const struct version *v, int l, const uint8_t *ikey, size_t len,
                               size_t *first)
{
    size_t n = v->nfiles[l];
    *first = 0;
    if (l == 0)
        return n;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        struct file_meta *m = v->files[l][mid];
        if (ikey_user_compare(m->largest, m->largest_len, ikey, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    return lo < n ? lo + 1 : lo;
}

static enum st_status file_get(struct tcache *tc, const struct file_meta *m, const uint8_t *ikey,
                               size_t len, bool *found, struct buf *ko, struct buf *vo)
{
    struct sst_table *t = NULL;
    enum st_status st = tcache_get(tc, m->number, &t);
    if (st != ST_OK)
        return st;
    st = sst_table_get(t, ikey, len, found, ko, vo);
    sst_table_unref(&t);
    return st;
}

/* Whether the entry in ko is newer than the best held in best_k. */
static bool newer_entry(const struct buf *ko, bool have, const struct buf *best_k)
{
    /* Same user key: internal-key order is version descending. */
    return !have || ikey_compare(ko->data, ko->len, best_k->data, best_k->len) < 0;
}

static struct lsm_version entry_version(const struct buf *ko)
{
    struct ikey k;
    ikey_decode(ko->data, ko->len, &k);
    return k.version;
}

enum st_status version_get(struct version *v, struct tcache *tc, const uint8_t *ikey,
                           size_t ikey_len, bool *found, struct buf *ikey_out, struct buf *rval_out,
                           struct get_trace *trace)
{
    struct buf k2 = {0}, v2 = {0};
    enum st_status st = ST_OK;
    struct lsm_version best = *found ? entry_version(ikey_out) : (struct lsm_version){0, 0};
    for (int l = 0; l < LSM_MAX_LEVELS && st == ST_OK; l++) {
        if (*found && version_compare(v->newest_from[l], best) <= 0)
            break; /* nothing below can be newer than what we hold */
        size_t i, end = level_candidates(v, l, ikey, ikey_len, &i);
        for (; i < end; i++) {
            struct file_meta *m = v->files[l][i];
            if (!file_may_hold(m, ikey, ikey_len))
                continue;
            if (*found && version_compare(file_newest(m), best) <= 0)
                continue;
            bool had = *found;
            if (had && trace != NULL)
                trace->probes_after_hit++;
            bool hit = false;
            if ((st = file_get(tc, m, ikey, ikey_len, &hit, &k2, &v2)) != ST_OK)
                break;
            if (hit && newer_entry(&k2, *found, ikey_out)) {
                struct buf t = *ikey_out;
                *ikey_out = k2;
                k2 = t;
                t = *rval_out;
                *rval_out = v2;
                v2 = t;
                *found = true;
                best = entry_version(ikey_out);
                if (had && trace != NULL)
                    trace->newer_after_hit = true;
            }
        }
    }
    buf_deinit(&k2);
    buf_deinit(&v2);
    return st;
}

bool version_older_outside(const struct version *v,
                           bool (*is_input)(const struct file_meta *m, const void *arg),
                           const void *arg, const uint8_t *ikey, size_t ikey_len,
                           struct lsm_version ver)
{
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        size_t i, end = level_candidates(v, l, ikey, ikey_len, &i);
        for (; i < end; i++) {
            struct file_meta *m = v->files[l][i];
            if (file_may_hold(m, ikey, ikey_len) && version_compare(file_oldest(m), ver) <= 0 &&
                !is_input(m, arg))
                return true;
        }
    }
    return false;
}

/* ------------------------------------------------------ level iterator */

struct level_iter {
    struct iter base;
    struct version *v;
    struct file_meta **files;
    size_t n;
    size_t idx;
    struct tcache *tc;
    struct iter *cur;
    enum st_status status;
};

static void li_open(struct level_iter *li, size_t idx)
{
    iter_destroy(&li->cur);
    li->idx = idx;
    if (idx >= li->n)
        return;
    struct sst_table *t = NULL;
    enum st_status st = tcache_get(li->tc, li->files[idx]->number, &t);
    if (st == ST_OK) {
        st = sst_iter_create(t, &li->cur);
        sst_table_unref(&t);
    }
    if (st != ST_OK) {
        li->status = st;
        li->idx = li->n;
    }
}

static void li_skip(struct level_iter *li)
{
    while (li->cur != NULL && !li->cur->ops->valid(li->cur)) {
        enum st_status st = li->cur->ops->status(li->cur);
        if (st != ST_OK) {
            li->status = st;
            iter_destroy(&li->cur);
            return;
        }
        li_open(li, li->idx + 1);
        if (li->cur != NULL)
            li->cur->ops->seek_first(li->cur);
    }
}

static void li_seek_first(struct iter *it)
{
    struct level_iter *li = (struct level_iter *)it;
    li_open(li, 0);
    if (li->cur != NULL)
        li->cur->ops->seek_first(li->cur);
    li_skip(li);
}

static void li_seek(struct iter *it, const uint8_t *k, size_t kl)
{
    struct level_iter *li = (struct level_iter *)it;
    size_t lo = 0, hi = li->n;
    while (lo < hi) { /* first file whose largest >= k */
        size_t mid = (lo + hi) / 2;
        if (ikey_compare(li->files[mid]->largest, li->files[mid]->largest_len, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    li_open(li, lo);
    if (li->cur != NULL)
        li->cur->ops->seek(li->cur, k, kl);
    li_skip(li);
}

static void li_next(struct iter *it)
{
    struct level_iter *li = (struct level_iter *)it;
    if (li->cur == NULL)
        return;
    li->cur->ops->next(li->cur);
    li_skip(li);
}

static bool li_valid(const struct iter *it)
{
    const struct level_iter *li = (const struct level_iter *)it;
    return li->status == ST_OK && li->cur != NULL && li->cur->ops->valid(li->cur);
}

static void li_entry(const struct iter *it, const uint8_t **k, size_t *kl, const uint8_t **v,
                     size_t *vl)
{
    const struct level_iter *li = (const struct level_iter *)it;
    li->cur->ops->entry(li->cur, k, kl, v, vl);
}

static enum st_status li_status(const struct iter *it)
{
    return ((const struct level_iter *)it)->status;
}

static void li_destroy(struct iter *it)
{
    struct level_iter *li = (struct level_iter *)it;
    iter_destroy(&li->cur);
    version_unref(&li->v);
    mem_free(MEM_STORAGE, li, sizeof(*li));
}

static const struct iter_ops level_iter_ops = {
    .seek_first = li_seek_first,
    .seek = li_seek,
    .next = li_next,
    .valid = li_valid,
    .entry = li_entry,
    .status = li_status,
    .destroy = li_destroy,
};

enum st_status version_level_iter_create(struct version *v, struct file_meta **files, size_t n,
                                         struct tcache *tc, struct iter **out)
{
    struct level_iter *li = mem_calloc(MEM_STORAGE, 1, sizeof(*li));
    if (li == NULL)
        return ST_NOMEM;
    li->base.ops = &level_iter_ops;
    version_ref(v);
    li->v = v;
    li->files = files;
    li->n = n;
    li->idx = n;
    li->tc = tc;
    li->status = ST_OK;
    *out = &li->base;
    return ST_OK;
}

/* An iterator over one L0 file that also pins the version. */
struct pinned_iter {
    struct iter base;
    struct version *v;
    struct iter *inner;
};

static void pi_seek_first(struct iter *it)
{
    struct pinned_iter *p = (struct pinned_iter *)it;
    p->inner->ops->seek_first(p->inner);
}

static void pi_seek(struct iter *it, const uint8_t *k, size_t kl)
{
    struct pinned_iter *p = (struct pinned_iter *)it;
    p->inner->ops->seek(p->inner, k, kl);
}

static void pi_next(struct iter *it)
{
    struct pinned_iter *p = (struct pinned_iter *)it;
    p->inner->ops->next(p->inner);
}

static bool pi_valid(const struct iter *it)
{
    const struct pinned_iter *p = (const struct pinned_iter *)it;
    return p->inner->ops->valid(p->inner);
}

static void pi_entry(const struct iter *it, const uint8_t **k, size_t *kl, const uint8_t **v,
                     size_t *vl)
{
    const struct pinned_iter *p = (const struct pinned_iter *)it;
    p->inner->ops->entry(p->inner, k, kl, v, vl);
}

static enum st_status pi_status(const struct iter *it)
{
    const struct pinned_iter *p = (const struct pinned_iter *)it;
    return p->inner->ops->status(p->inner);
}

static void pi_destroy(struct iter *it)
{
    struct pinned_iter *p = (struct pinned_iter *)it;
    iter_destroy(&p->inner);
    version_unref(&p->v);
    mem_free(MEM_STORAGE, p, sizeof(*p));
}

static const struct iter_ops pinned_iter_ops = {
    .seek_first = pi_seek_first,
    .seek = pi_seek,
    .next = pi_next,
    .valid = pi_valid,
    .entry = pi_entry,
    .status = pi_status,
    .destroy = pi_destroy,
};

static enum st_status push_iter(struct iter ***its, size_t *n, size_t *cap, struct iter *it)
{
    enum st_status st = grow((void **)its, cap, *n, sizeof(struct iter *));
    if (st != ST_OK) {
        iter_destroy(&it);
        return st;
    }
    (*its)[(*n)++] = it;
    return ST_OK;
}

enum st_status version_add_iters(struct version *v, struct tcache *tc, struct iter ***its,
                                 size_t *n, size_t *cap)
{
    enum st_status st;
    for (size_t i = 0; i < v->nfiles[0]; i++) {
        struct sst_table *t = NULL;
        struct iter *inner = NULL;
        if ((st = tcache_get(tc, v->files[0][i]->number, &t)) != ST_OK)
            return st;
        st = sst_iter_create(t, &inner);
        sst_table_unref(&t);
        if (st != ST_OK)
            return st;
        struct pinned_iter *p = mem_calloc(MEM_STORAGE, 1, sizeof(*p));
        if (p == NULL) {
            iter_destroy(&inner);
            return ST_NOMEM;
        }
        p->base.ops = &pinned_iter_ops;
        version_ref(v);
        p->v = v;
        p->inner = inner;
        if ((st = push_iter(its, n, cap, &p->base)) != ST_OK)
            return st;
    }
    for (int l = 1; l < LSM_MAX_LEVELS; l++) {
        if (v->nfiles[l] == 0)
            continue;
        struct iter *li = NULL;
        if ((st = version_level_iter_create(v, v->files[l], v->nfiles[l], tc, &li)) != ST_OK ||
            (st = push_iter(its, n, cap, li)) != ST_OK)
            return st;
    }
    return ST_OK;
}

/* ---------------------------------------------------------- version set */

enum st_status vset_create(struct lsm_env *env, const char *dir, struct vset **out)
{
    struct vset *vs = mem_calloc(MEM_STORAGE, 1, sizeof(*vs));
    if (vs == NULL)
        return ST_NOMEM;
    vs->env = env;
    snprintf(vs->dir, sizeof(vs->dir), "%s", dir);
    pthread_mutex_init(&vs->mu, NULL);
    pthread_mutex_init(&vs->apply_mu, NULL);
    atomic_init(&vs->next_file, 2);
    vs->manifest_limit = VSET_MANIFEST_LIMIT;
    vs->current = version_new();
    if (vs->current == NULL) {
        vset_destroy(&vs);
        return ST_NOMEM;
    }
    *out = vs;
    return ST_OK;
}

void vset_destroy(struct vset **vsp)
{
    if (vsp == NULL || *vsp == NULL)
        return;
    struct vset *vs = *vsp;
    version_unref(&vs->current);
    logfile_writer_destroy(&vs->manifest);
    if (vs->obsolete != NULL)
        mem_free(MEM_STORAGE, vs->obsolete, vs->obsolete_cap * sizeof(uint64_t));
    pthread_mutex_destroy(&vs->mu);
    pthread_mutex_destroy(&vs->apply_mu);
    mem_free(MEM_STORAGE, vs, sizeof(*vs));
    *vsp = NULL;
}

/* Reads CURRENT: "MANIFEST-NNNNNN\n". */
static enum st_status read_current(struct vset *vs, uint64_t *number, bool *exists)
{
    char path[FILENAME_MAX_PATH];
    filename_path(path, vs->dir, FILENAME_CURRENT, 0);
    int ex = 0;
    enum st_status st = vs->env->exists(vs->env, path, &ex);
    if (st != ST_OK)
        return st;
    *exists = ex != 0;
    if (!ex)
        return ST_OK;
    struct env_file *f = NULL;
    if ((st = vs->env->open(vs->env, path, ENV_OPEN_READ, &f)) != ST_OK)
        return st;
    char buf[64];
    size_t got = 0;
    st = vs->env->pread(vs->env, f, buf, sizeof(buf) - 1, 0, &got);
    vs->env->close(vs->env, f);
    if (st != ST_OK)
        return st;
    buf[got] = 0;
    if (got == 0 || buf[got - 1] != '\n') {
        log_error("storage: %s is malformed", path);
        return ST_CORRUPT;
    }
    buf[got - 1] = 0;
    if (filename_parse(buf, number) != FILENAME_MANIFEST) {
        log_error("storage: %s names no manifest", path);
        return ST_CORRUPT;
    }
    return ST_OK;
}

enum st_status vset_recover(struct vset *vs, bool *exists)
{
    uint64_t mnum = 0;
    enum st_status st = read_current(vs, &mnum, exists);
    if (st != ST_OK || !*exists)
        return st;
    char path[FILENAME_MAX_PATH];
    filename_path(path, vs->dir, FILENAME_MANIFEST, mnum);
    struct logfile_reader *r = NULL;
    if ((st = logfile_reader_open(vs->env, path, LOGFILE_MAGIC_MANIFEST, true, &r)) != ST_OK) {
        log_error("storage: cannot read manifest %s: %s", path, st_status_name(st));
        return st;
    }
    struct version *v = version_new();
    if (v == NULL) {
        logfile_reader_destroy(&r);
        return ST_NOMEM;
    }
    bool have_next = false;
    uint64_t next_file = 2, log_number = 0;
    size_t records = 0;
    for (;;) {
        const uint8_t *p;
        size_t n;
        bool eof;
        if ((st = logfile_reader_next(r, &p, &n, &eof)) != ST_OK || eof)
            break;
        struct version_edit e;
        version_edit_init(&e);
        struct version *nv = NULL;
        st = version_edit_decode(&e, vs, p, n);
        if (st == ST_OK)
            st = version_apply(v, &e, &nv);
        if (st == ST_OK) {
            version_unref(&v);
            v = nv;
            if (e.has_next_file) {
                next_file = e.next_file;
                have_next = true;
            }
            if (e.has_log_number)
                log_number = e.log_number;
        }
        version_edit_deinit(&e);
        if (st != ST_OK)
            break;
        records++;
    }
    if (st == ST_OK && (records == 0 || !have_next))
        st = ST_CORRUPT;
    if (st != ST_OK) {
        log_error("storage: manifest %s is corrupt (record at offset %llu): %s", path,
                  (unsigned long long)logfile_reader_offset(r), st_status_name(st));
        logfile_reader_destroy(&r);
        version_unref(&v);
        return st;
    }
    logfile_reader_destroy(&r);
    /* No file number in the manifest may be handed out again. */
    for (int l = 0; l < LSM_MAX_LEVELS; l++)
        for (size_t i = 0; i < v->nfiles[l]; i++)
            if (v->files[l][i]->number >= next_file)
                next_file = v->files[l][i]->number + 1;
    if (mnum >= next_file)
        next_file = mnum + 1;
    version_unref(&vs->current);
    vs->current = v;
    atomic_store(&vs->next_file, next_file);
    vs->log_number = log_number;
    vs->manifest_number = mnum;
    return ST_OK;
}

static enum st_status write_current(struct vset *vs, uint64_t mnum)
{
    char tmp[FILENAME_MAX_PATH], cur[FILENAME_MAX_PATH], line[64];
    filename_path(tmp, vs->dir, FILENAME_CURRENT_TMP, 0);
    filename_path(cur, vs->dir, FILENAME_CURRENT, 0);
    int n = snprintf(line, sizeof(line), "MANIFEST-%06llu\n", (unsigned long long)mnum);
    struct env_file *f = NULL;
    enum st_status st = vs->env->open(vs->env, tmp, ENV_OPEN_CREATE, &f);
    if (st != ST_OK)
        return st;
    st = vs->env->append(vs->env, f, line, (size_t)n);
    if (st == ST_OK)
        st = vs->env->sync(vs->env, f);
    vs->env->close(vs->env, f);
    KILL_POINT("current.before_rename");
    if (st == ST_OK)
        st = vs->env->rename(vs->env, tmp, cur);
    if (st == ST_OK)
        KILL_POINT("current.after_rename");
    if (st == ST_OK)
        st = vs->env->sync_dir(vs->env, vs->dir);
    return st;
}

static enum st_status write_snapshot_locked(struct vset *vs);

enum st_status vset_write_snapshot(struct vset *vs)
{
    pthread_mutex_lock(&vs->apply_mu);
    enum st_status st = write_snapshot_locked(vs);
    pthread_mutex_unlock(&vs->apply_mu);
    return st;
}

void vset_set_manifest_limit(struct vset *vs, uint64_t bytes)
{
    pthread_mutex_lock(&vs->apply_mu);
    vs->manifest_limit = bytes;
    pthread_mutex_unlock(&vs->apply_mu);
}

/* REQUIRES: vs->apply_mu held. */
static enum st_status write_snapshot_locked(struct vset *vs)
{
    uint64_t old = vs->manifest_number;
    bool had_old = vs->manifest != NULL || old != 0;
    uint64_t mnum = vset_new_file_number(vs);
    char path[FILENAME_MAX_PATH];
    filename_path(path, vs->dir, FILENAME_MANIFEST, mnum);
    struct version_edit e;
    version_edit_init(&e);
    struct buf b = {0};
    struct logfile_writer *w = NULL;
    enum st_status st = ST_OK;
    struct version *v = vs->current;
    e.has_log_number = true;
    e.log_number = vs->log_number;
    for (int l = 0; l < LSM_MAX_LEVELS && st == ST_OK; l++)
        for (size_t i = 0; i < v->nfiles[l] && st == ST_OK; i++) {
            struct file_meta *m = v->files[l][i];
            st = version_edit_add(&e, vs, l, m->number, m->size, m->smallest, m->smallest_len,
                                  m->largest, m->largest_len, m->records, m->tombstones,
                                  m->earliest_expiry, m->raw_bytes);
            if (st == ST_OK && m->newest_known)
                st = version_edit_set_newest(&e, m->number, m->newest);
            if (st == ST_OK && m->oldest_known)
                st = version_edit_set_oldest(&e, m->number, m->oldest);
        }
    e.has_next_file = true;
    e.next_file = atomic_load(&vs->next_file);
    if (st == ST_OK)
        st = version_edit_encode(&e, &b);
    if (st == ST_OK)
        st = logfile_writer_create(vs->env, path, LOGFILE_MAGIC_MANIFEST, mnum, &w);
    if (st == ST_OK)
        st = logfile_writer_add(w, b.data, b.len);
    if (st == ST_OK)
        st = logfile_writer_sync(w);
    if (st == ST_OK)
        st = write_current(vs, mnum);
    buf_deinit(&b);
    /* The snapshot's metas are copies of live files: never queue them. */
    version_edit_forget_added(&e);
    version_edit_deinit(&e);
    if (st != ST_OK) {
        logfile_writer_destroy(&w);
        vs->env->unlink(vs->env, path);
        return st;
    }
    logfile_writer_destroy(&vs->manifest);
    vs->manifest = w;
    vs->manifest_number = mnum;
    if (had_old && old != mnum) {
        filename_path(path, vs->dir, FILENAME_MANIFEST, old);
        vs->env->unlink(vs->env, path);
    }
    return ST_OK;
}

enum st_status vset_log_and_apply(struct vset *vs, struct version_edit *e)
{
    pthread_mutex_lock(&vs->apply_mu);
    struct version *nv = NULL;
    struct buf b = {0};
    enum st_status st = ST_IO;
    if (vs->manifest == NULL)
        goto out;
    e->has_next_file = true;
    e->next_file = atomic_load(&vs->next_file);
    if ((st = version_apply(vs->current, e, &nv)) != ST_OK)
        goto out;
    if ((st = version_edit_encode(e, &b)) != ST_OK)
        goto out;
    st = logfile_writer_add(vs->manifest, b.data, b.len);
    KILL_POINT("manifest.before_sync");
    if (st == ST_OK)
        st = logfile_writer_sync(vs->manifest);
    if (st == ST_OK)
        KILL_POINT("manifest.after_sync");
    if (st != ST_OK) {
        log_error("storage: manifest write failed: %s", strerror(errno));
        /* The manifest tail is unknown now: never append to it again. */
        logfile_writer_destroy(&vs->manifest);
        goto out;
    }
    if (e->has_log_number)
        vs->log_number = e->log_number;
    pthread_mutex_lock(&vs->mu);
    struct version *old = vs->current;
    vs->current = nv;
    nv = NULL;
    pthread_mutex_unlock(&vs->mu);
    version_unref(&old);
    if (logfile_writer_size(vs->manifest) > vs->manifest_limit) {
        /* Roll over: the edit is durable in the old manifest already; a
         * failed rollover leaves the old one in use (and reports it). */
        enum st_status rs = write_snapshot_locked(vs);
        if (rs != ST_OK)
            log_warn("storage: manifest rollover failed: %s", st_status_name(rs));
    }
out:
    version_unref(&nv);
    buf_deinit(&b);
    pthread_mutex_unlock(&vs->apply_mu);
    return st;
}

struct version *vset_current(struct vset *vs)
{
    pthread_mutex_lock(&vs->mu);
    struct version *v = vs->current;
    version_ref(v);
    pthread_mutex_unlock(&vs->mu);
    return v;
}

uint64_t vset_new_file_number(struct vset *vs)
{
    return atomic_fetch_add(&vs->next_file, 1);
}

void vset_mark_file_number_used(struct vset *vs, uint64_t n)
{
    uint64_t cur = atomic_load(&vs->next_file);
    while (cur <= n && !atomic_compare_exchange_weak(&vs->next_file, &cur, n + 1))
        ;
}

uint64_t vset_log_number(struct vset *vs)
{
    pthread_mutex_lock(&vs->apply_mu);
    uint64_t n = vs->log_number;
    pthread_mutex_unlock(&vs->apply_mu);
    return n;
}

uint64_t vset_manifest_number(struct vset *vs)
{
    return vs->manifest_number;
}

void vset_take_obsolete(struct vset *vs, uint64_t **out, size_t *n)
{
    pthread_mutex_lock(&vs->mu);
    *out = vs->nobsolete ? vs->obsolete : NULL;
    *n = vs->nobsolete;
    if (vs->nobsolete) {
        /* Hand over the array: the caller frees n * 8 bytes, so shrink the
         * allocation to match. */
        uint64_t *a = mem_realloc(MEM_STORAGE, vs->obsolete, vs->obsolete_cap * sizeof(uint64_t),
                                  vs->nobsolete * sizeof(uint64_t));
        *out = a != NULL ? a : vs->obsolete;
        if (a == NULL) { /* keep the queue; try again later */
            *out = NULL;
            *n = 0;
            pthread_mutex_unlock(&vs->mu);
            return;
        }
        vs->obsolete = NULL;
        vs->nobsolete = vs->obsolete_cap = 0;
    }
    pthread_mutex_unlock(&vs->mu);
}

bool vset_is_live(struct vset *vs, uint64_t number)
{
    pthread_mutex_lock(&vs->mu);
    struct version *v = vs->current;
    bool live = false;
    for (int l = 0; l < LSM_MAX_LEVELS && !live; l++)
        for (size_t i = 0; i < v->nfiles[l] && !live; i++)
            live = v->files[l][i]->number == number;
    pthread_mutex_unlock(&vs->mu);
    return live;
}
