/*
 * db_read.c - the read path: point lookups that resolve last-write-wins
 * across layers (the highest version of the key wins, wherever it is),
 * snapshots and token-range iterators. Any user thread; takes db->mu only
 * to pin the memtables and the version, never during I/O.
 *
 *   get ──► pin (mem, imm, version) ──► mem ──► imm? ──► L0 files?
 *       ──► L1..Ln? (binary search, bloom, block cache) ──► expiry/tombstone
 *   (? = only while that layer's version bounds allow a higher version than
 *    the one in hand: written in version order, the first hit ends it)
 */
#include <string.h>

#include "common/mem.h"
#include "storage/db_int.h"
#include "storage/ikey.h"
#include "storage/iter.h"

struct lsm_snapshot {
    struct memtable *mem;
    struct memtable *imm; /* may be NULL */
    struct version *v;
    uint64_t seq;
};

static void pin(struct lsm_db *db, struct lsm_snapshot *s)
{
    pthread_mutex_lock(&db->mu);
    s->mem = db->mem;
    memtable_ref(s->mem);
    s->imm = db->imm;
    if (s->imm != NULL)
        memtable_ref(s->imm);
    s->seq = atomic_load(&db->last_seq);
    pthread_mutex_unlock(&db->mu);
    /* After the memtables: a flush that moves imm into a file installs the
     * version before dropping imm, so nothing falls between the two pins. */
    s->v = vset_current(db->vs);
}

static void unpin(struct lsm_snapshot *s)
{
    memtable_unref(&s->mem);
    memtable_unref(&s->imm);
    version_unref(&s->v);
}

/*
 * The highest version of the key in the pinned memtables and tables, into
 * ko/vo. The active memtable is read first; the immutable one and the
 * tables only when their version bounds allow a higher version than the
 * one already found (for keys written in version order, never). Counts the
 * gets that had to look past their first hit, and those that found a
 * higher version there.
 */
static enum st_status lookup_pinned(struct lsm_db *db, const struct lsm_snapshot *s,
                                    const uint8_t *ikey, size_t iklen, bool *found, struct buf *ko,
                                    struct buf *vo)
{
    struct get_trace trace = {0};
    uint64_t best_hlc = 0;
    struct memtable *mts[2] = {s->mem, s->imm};
    *found = false;
    for (int i = 0; i < 2; i++) {
        const uint8_t *fk, *fv;
        size_t fkl, fvl;
        uint64_t lo, hi;
        if (mts[i] == NULL)
            continue;
        bool had = *found;
        if (had && (!memtable_hlc_bounds(mts[i], &lo, &hi) || hi < best_hlc))
            continue; /* holds nothing at or above what we have */
        if (had)
            trace.probes_after_hit++;
        if (!memtable_get(mts[i], ikey, iklen, s->seq, &fk, &fkl, &fv, &fvl))
            continue;
        if (had && ikey_compare(fk, fkl, ko->data, ko->len) >= 0)
            continue; /* not newer than the active memtable's */
        ko->len = vo->len = 0;
        enum st_status st = buf_append(ko, fk, fkl);
        if (st == ST_OK)
            st = buf_append(vo, fv, fvl);
        if (st != ST_OK)
            return st;
        *found = true;
        trace.newer_after_hit = had;
        struct ikey k;
        ikey_decode(ko->data, ko->len, &k);
        best_hlc = k.version.hlc;
    }
    enum st_status st = version_get(s->v, db->tc, ikey, iklen, found, ko, vo, &trace);
    if (trace.probes_after_hit > 0)
        atomic_fetch_add_explicit(&db->st.gets_past_first_hit, 1, memory_order_relaxed);
    if (trace.newer_after_hit)
        atomic_fetch_add_explicit(&db->st.gets_newer_below, 1, memory_order_relaxed);
    return st;
}

static enum st_status db_lookup(struct lsm_db *db, const void *key, size_t key_len, bool *found,
                                struct buf *ko, struct buf *vo)
{
    uint8_t ik[IKEY_MAX_LEN];
    ikey_encode(ik, lsm_token(key, key_len), key, key_len, (struct lsm_version){0, 0});
    struct lsm_snapshot s;
    pin(db, &s);
    s.seq = UINT64_MAX;
    enum st_status st = lookup_pinned(db, &s, ik, key_len + IKEY_OVERHEAD, found, ko, vo);
    unpin(&s);
    return st;
}

/* Whether a record is visible to a reader with `flags`. */
static bool visible(const struct lsm_db *db, enum rval_kind kind, uint64_t expiry, unsigned flags,
                    uint64_t now)
{
    if (kind == RVAL_TOMBSTONE)
        return (flags & LSM_READ_TOMBSTONES) != 0;
    (void)db;
    if (expiry != 0 && expiry <= now)
        return (flags & LSM_READ_EXPIRED) != 0;
    return true;
}

enum st_status lsm_get(struct lsm_db *db, const void *key, size_t key_len, unsigned read_flags,
                       struct lsm_record **out)
{
    *out = NULL;
    if (key == NULL || key_len == 0 || key_len > LSM_MAX_KEY_LEN)
        return ST_INVAL;
    atomic_fetch_add_explicit(&db->st.gets, 1, memory_order_relaxed);
    struct buf ko = {0}, vo = {0};
    bool found = false;
    enum st_status st = db_lookup(db, key, key_len, &found, &ko, &vo);
    if (st != ST_OK || !found)
        goto out;
    struct ikey k;
    enum rval_kind kind;
    uint32_t flags;
    uint64_t expiry;
    const uint8_t *v;
    size_t vl;
    if (!ikey_decode(ko.data, ko.len, &k) ||
        !rval_decode(vo.data, vo.len, &kind, &flags, &expiry, &v, &vl)) {
        st = ST_CORRUPT;
        goto out;
    }
    if (!visible(db, kind, expiry, read_flags, db_now(db)))
        goto out;
    size_t total = sizeof(struct lsm_record) + key_len + vl;
    struct lsm_record *r = mem_alloc(MEM_STORAGE, total);
    if (r == NULL) {
        st = ST_NOMEM;
        goto out;
    }
    uint8_t *p = (uint8_t *)(r + 1);
    memcpy(p, key, key_len);
    if (vl > 0)
        memcpy(p + key_len, v, vl);
    *r = (struct lsm_record){
        .key = p,
        .key_len = key_len,
        .value = p + key_len,
        .value_len = vl,
        .flags = flags,
        .expiry = expiry,
        .version = k.version,
        .tombstone = kind == RVAL_TOMBSTONE,
    };
    *out = r;
out:
    buf_deinit(&ko);
    buf_deinit(&vo);
    return st;
}

void lsm_record_free(struct lsm_record **rec)
{
    if (rec == NULL || *rec == NULL)
        return;
    struct lsm_record *r = *rec;
    mem_free(MEM_STORAGE, r, sizeof(*r) + r->key_len + r->value_len);
    *rec = NULL;
}

enum st_status lsm_record_copy(const struct lsm_record *in, struct lsm_record **out)
{
    struct lsm_record *r = mem_alloc(MEM_STORAGE, sizeof(*r) + in->key_len + in->value_len);
    if (r == NULL)
        return ST_NOMEM;
    uint8_t *p = (uint8_t *)(r + 1);
    memcpy(p, in->key, in->key_len);
    if (in->value_len > 0)
        memcpy(p + in->key_len, in->value, in->value_len);
    *r = *in;
    r->key = p;
    r->value = p + in->key_len;
    *out = r;
    return ST_OK;
}

/* ----------------------------------------------------------- snapshots */

enum st_status lsm_snapshot_create(struct lsm_db *db, struct lsm_snapshot **out)
{
    struct lsm_snapshot *s = mem_alloc(MEM_STORAGE, sizeof(*s));
    if (s == NULL)
        return ST_NOMEM;
    pin(db, s);
    *out = s;
    return ST_OK;
}

void lsm_snapshot_destroy(struct lsm_db *db, struct lsm_snapshot **snap)
{
    (void)db;
    if (snap == NULL || *snap == NULL)
        return;
    unpin(*snap);
    mem_free(MEM_STORAGE, *snap, sizeof(**snap));
    *snap = NULL;
}

/* ------------------------------------------------------ memtable iters */

struct mt_iter {
    struct iter base;
    struct memtable_iter it;
    struct memtable *m; /* reference */
};

static void mti_seek_first(struct iter *it)
{
    memtable_iter_seek_first(&((struct mt_iter *)it)->it);
}

static void mti_seek(struct iter *it, const uint8_t *k, size_t kl)
{
    memtable_iter_seek(&((struct mt_iter *)it)->it, k, kl);
}

static void mti_next(struct iter *it)
{
    memtable_iter_next(&((struct mt_iter *)it)->it);
}

static bool mti_valid(const struct iter *it)
{
    return memtable_iter_valid(&((const struct mt_iter *)it)->it);
}

static void mti_entry(const struct iter *it, const uint8_t **k, size_t *kl, const uint8_t **v,
                      size_t *vl)
{
    memtable_iter_entry(&((const struct mt_iter *)it)->it, k, kl, v, vl);
}

static enum st_status mti_status(const struct iter *it)
{
    (void)it;
    return ST_OK;
}

static void mti_destroy(struct iter *it)
{
    struct mt_iter *m = (struct mt_iter *)it;
    memtable_unref(&m->m);
    mem_free(MEM_STORAGE, m, sizeof(*m));
}

static const struct iter_ops mt_iter_ops = {
    .seek_first = mti_seek_first,
    .seek = mti_seek,
    .next = mti_next,
    .valid = mti_valid,
    .entry = mti_entry,
    .status = mti_status,
    .destroy = mti_destroy,
};

static enum st_status mt_iter_create(struct memtable *m, uint64_t seq, struct iter **out)
{
    struct mt_iter *mi = mem_calloc(MEM_STORAGE, 1, sizeof(*mi));
    if (mi == NULL)
        return ST_NOMEM;
    mi->base.ops = &mt_iter_ops;
    memtable_ref(m);
    mi->m = m;
    memtable_iter_init(&mi->it, m, seq);
    *out = &mi->base;
    return ST_OK;
}

/* ----------------------------------------------------------- db iters */

struct lsm_iter {
    struct lsm_db *db;
    struct iter *merged;
    uint64_t token_last;
    unsigned flags;
    uint64_t now;
    bool started;
    bool done;
    enum st_status status;
    uint8_t last_key[IKEY_MAX_LEN]; /* user key of the last entry seen */
    size_t last_key_len;
    uint64_t first_token;
};

enum st_status lsm_iter_create(struct lsm_db *db, const struct lsm_snapshot *snap,
                               uint64_t token_first, uint64_t token_last, unsigned read_flags,
                               struct lsm_iter **out)
{
    if (token_first > token_last)
        return ST_INVAL;
    struct lsm_snapshot own;
    const struct lsm_snapshot *s = snap;
    if (s == NULL) {
        pin(db, &own);
        s = &own;
    }
    struct iter **its = NULL;
    size_t n = 0, cap = 4;
    enum st_status st = ST_NOMEM;
    struct lsm_iter *it = mem_calloc(MEM_STORAGE, 1, sizeof(*it));
    its = mem_alloc(MEM_STORAGE, cap * sizeof(*its));
    if (it == NULL || its == NULL)
        goto err;
    if ((st = mt_iter_create(s->mem, s->seq, &its[n])) != ST_OK)
        goto err;
    n++;
    if (s->imm != NULL) {
        if ((st = mt_iter_create(s->imm, s->seq, &its[n])) != ST_OK)
            goto err;
        n++;
    }
    if ((st = version_add_iters(s->v, db->tc, &its, &n, &cap)) != ST_OK)
        goto err;
    /* The merge frees exactly n entries: shrink the array to n. */
    struct iter **exact = mem_realloc(MEM_STORAGE, its, cap * sizeof(*its), n * sizeof(*its));
    if (exact == NULL) {
        st = ST_NOMEM;
        goto err;
    }
    its = exact;
    cap = n;
    st = iter_merge_create(its, n, &it->merged);
    its = NULL;
    if (st != ST_OK)
        goto err;
    it->db = db;
    it->token_last = token_last;
    it->first_token = token_first;
    it->flags = read_flags;
    it->now = db_now(db);
    it->status = ST_OK;
    if (s == &own)
        unpin(&own);
    *out = it;
    return ST_OK;
err:
    for (size_t i = 0; its != NULL && i < n; i++)
        iter_destroy(&its[i]);
    if (its != NULL)
        mem_free(MEM_STORAGE, its, cap * sizeof(*its));
    if (it != NULL) {
        iter_destroy(&it->merged);
        mem_free(MEM_STORAGE, it, sizeof(*it));
    }
    if (s == &own)
        unpin(&own);
    return st;
}

bool lsm_iter_next(struct lsm_iter *it, struct lsm_record *rec)
{
    if (it->done)
        return false;
    struct iter *m = it->merged;
    if (!it->started) {
        it->started = true;
        uint8_t start[IKEY_OVERHEAD];
        enc_u64be(start, it->first_token);
        memset(start + 8, 0xff, 10); /* empty key: before every real key */
        m->ops->seek(m, start, sizeof(start));
    } else {
        m->ops->next(m);
    }
    for (; m->ops->valid(m); m->ops->next(m)) {
        const uint8_t *k, *v;
        size_t kl, vl;
        m->ops->entry(m, &k, &kl, &v, &vl);
        struct ikey ik;
        enum rval_kind kind;
        uint32_t flags;
        uint64_t expiry;
        const uint8_t *val;
        size_t val_len;
        if (!ikey_decode(k, kl, &ik) ||
            !rval_decode(v, vl, &kind, &flags, &expiry, &val, &val_len)) {
            it->status = ST_CORRUPT;
            it->done = true;
            return false;
        }
        if (ik.token > it->token_last)
            break;
        if (it->last_key_len > 0 && ikey_same_user_key(it->last_key, it->last_key_len, k, kl))
            continue; /* an older version of a key already decided */
        memcpy(it->last_key, k, kl);
        it->last_key_len = kl;
        if (!visible(it->db, kind, expiry, it->flags, it->now))
            continue;
        *rec = (struct lsm_record){
            .key = ik.key,
            .key_len = ik.key_len,
            .value = val,
            .value_len = val_len,
            .flags = flags,
            .expiry = expiry,
            .version = ik.version,
            .tombstone = kind == RVAL_TOMBSTONE,
        };
        return true;
    }
    it->status = m->ops->status(m);
    it->done = true;
    return false;
}

enum st_status lsm_iter_status(const struct lsm_iter *it)
{
    return it->status;
}

void lsm_iter_destroy(struct lsm_iter **itp)
{
    if (itp == NULL || *itp == NULL)
        return;
    iter_destroy(&(*itp)->merged);
    mem_free(MEM_STORAGE, *itp, sizeof(**itp));
    *itp = NULL;
}
