/*
 * journal.c - write-behind's pending writes in an engine of their own
 * (see journal.h).
 *
 * A journal record is the client's key, its version, its flags, and a
 * value of 9 bytes of header then the data:
 *
 *   offset  size  field
 *   0       1     'S' a pending store, 'D' a pending delete (no data)
 *   1       8     the record's expiry, absolute unix seconds, 0 never (LE)
 *   9       n     the value (stores)
 *
 * The engine sees expiry 0 for every journal record: a pending write whose
 * TTL has passed is still pending (it must reach the backend, where it
 * replaces an older value), it only reads as absent. A drained write is
 * a tombstone at the same hlc with node id 0xffff, which supersedes the
 * record drained and loses to any later write of the key (whose hlc is
 * higher).
 */
#include "proxy/journal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"

#define HEADER 9u
#define DRAINED_NODE 0xffffu

struct journal {
    struct lsm_db *db;
    uint64_t max_entries, max_bytes;
    _Atomic uint64_t pending, bytes;
    _Atomic uint64_t appended, applied, retried, refused_full, oldest_ms;
};

static void put_u64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The bytes a pending record counts for. */
static uint64_t size_of(const struct lsm_record *rec)
{
    return rec->key_len + rec->value_len + HEADER;
}

/* A journal record (its encoded value) as the client's record; false for
 * one that is not a journal record. */
static bool decode(const struct lsm_record *raw, struct lsm_record *out)
{
    if (raw->value_len < HEADER || (raw->value[0] != 'S' && raw->value[0] != 'D'))
        return false;
    *out = *raw;
    out->tombstone = raw->value[0] == 'D';
    out->expiry = get_u64(raw->value + 1);
    out->value = raw->value + HEADER;
    out->value_len = raw->value_len - HEADER;
    return true;
}

static bool count_one(void *arg, const struct lsm_record *rec)
{
    struct journal *j = arg;
    j->pending++;
    j->bytes += size_of(rec);
    return true;
}

enum st_status journal_open(const struct journal_config *cfg, struct journal **out)
{
    *out = NULL;
    struct journal *j = mem_calloc(MEM_OTHER, 1, sizeof(*j));
    if (j == NULL)
        return ST_NOMEM;
    struct lsm_options o;
    lsm_options_init(&o);
    o.sync_mode = cfg->sync;
    o.sync_interval_ms = cfg->sync_interval_ms;
    o.max_value_len = cfg->max_value_len + HEADER;
    o.gc_grace_seconds = 0; /* drained markers need not outlive compaction */
    o.memtable_size = 16u << 20;
    j->max_entries = cfg->max_entries;
    j->max_bytes = cfg->max_bytes;
    enum st_status st = lsm_open(cfg->dir, &o, &j->db);
    if (st == ST_OK)
        st = journal_scan(j, count_one, j);
    if (st != ST_OK) {
        journal_close(&j);
        return st;
    }
    *out = j;
    return ST_OK;
}

void journal_close(struct journal **jp)
{
    struct journal *j = *jp;
    if (j == NULL)
        return;
    *jp = NULL;
    lsm_close(&j->db);
    mem_free(MEM_OTHER, j, sizeof(*j));
}

enum st_status journal_get(struct journal *j, const void *key, size_t nkey, struct lsm_record **out)
{
    *out = NULL;
    struct lsm_record *raw = NULL;
    enum st_status st = lsm_get(j->db, key, nkey, 0, &raw);
    if (st != ST_OK || raw == NULL)
        return st;
    struct lsm_record rec;
    if (!decode(raw, &rec)) {
        lsm_record_free(&raw);
        return ST_CORRUPT;
    }
    st = lsm_record_copy(&rec, out);
    if (st == ST_OK)
        (*out)->tombstone = rec.tombstone;
    lsm_record_free(&raw);
    return st;
}

enum st_status journal_put(struct journal *j, const struct lsm_record *rec,
                           const struct lsm_record *replaces)
{
    uint64_t add = rec->key_len + HEADER + (rec->tombstone ? 0 : rec->value_len);
    uint64_t sub = replaces != NULL ? size_of(replaces) : 0;
    uint64_t bytes = atomic_load(&j->bytes);
    if ((replaces == NULL && atomic_load(&j->pending) >= j->max_entries) ||
        (add > sub && bytes + add - sub > j->max_bytes)) {
        atomic_fetch_add(&j->refused_full, 1);
        return ST_AGAIN;
    }
    size_t n = HEADER + (rec->tombstone ? 0 : rec->value_len);
    uint8_t *v = mem_alloc(MEM_CONN, n);
    if (v == NULL)
        return ST_NOMEM;
    v[0] = rec->tombstone ? 'D' : 'S';
    put_u64(v + 1, rec->tombstone ? 0 : rec->expiry);
    if (!rec->tombstone && rec->value_len > 0)
        memcpy(v + HEADER, rec->value, rec->value_len);
    struct lsm_record raw = *rec;
    raw.value = v;
    raw.value_len = n;
    raw.expiry = 0;
    raw.tombstone = false;
    enum st_status st = lsm_put(j->db, &raw);
    mem_free(MEM_CONN, v, n);
    if (st != ST_OK) {
        log_warn("journal: append failed: %s", st_status_name(st));
        return st;
    }
    atomic_fetch_add(&j->bytes, add);
    if (replaces != NULL)
        atomic_fetch_sub(&j->bytes, sub);
    else
        atomic_fetch_add(&j->pending, 1);
    atomic_fetch_add(&j->appended, 1);
    return ST_OK;
}

enum st_status journal_drained(struct journal *j, const struct lsm_record *rec)
{
    struct lsm_record *cur = NULL;
    enum st_status st = journal_get(j, rec->key, rec->key_len, &cur);
    if (st != ST_OK || cur == NULL)
        return st;
    bool same = cur->version.hlc == rec->version.hlc && cur->version.node == rec->version.node;
    uint64_t size = size_of(cur);
    lsm_record_free(&cur);
    if (!same)
        return ST_OK; /* a newer write is pending: it drains next */
    struct lsm_version v = {rec->version.hlc, DRAINED_NODE};
    st = lsm_delete(j->db, rec->key, rec->key_len, v, 0);
    if (st != ST_OK) {
        log_warn("journal: marking a write drained failed: %s", st_status_name(st));
        return st;
    }
    atomic_fetch_sub(&j->pending, 1);
    atomic_fetch_sub(&j->bytes, size);
    return ST_OK;
}

enum st_status journal_scan(struct journal *j, bool (*fn)(void *arg, const struct lsm_record *rec),
                            void *arg)
{
    struct lsm_iter *it = NULL;
    enum st_status st = lsm_iter_create(j->db, NULL, 0, UINT64_MAX, 0, &it);
    if (st != ST_OK)
        return st;
    struct lsm_record raw, rec;
    while (lsm_iter_next(it, &raw)) {
        if (!decode(&raw, &rec)) {
            st = ST_CORRUPT;
            break;
        }
        if (!fn(arg, &rec))
            break;
    }
    if (st == ST_OK)
        st = lsm_iter_status(it);
    lsm_iter_destroy(&it);
    return st;
}

void journal_stats(struct journal *j, struct journal_stats *st)
{
    *st = (struct journal_stats){
        .pending = atomic_load(&j->pending),
        .bytes = atomic_load(&j->bytes),
        .appended = atomic_load(&j->appended),
        .applied = atomic_load(&j->applied),
        .retried = atomic_load(&j->retried),
        .refused_full = atomic_load(&j->refused_full),
        .oldest_ms = atomic_load(&j->oldest_ms),
    };
}

enum st_status journal_sync(struct journal *j)
{
    return lsm_sync(j->db);
}

void journal_count_applied(struct journal *j)
{
    atomic_fetch_add(&j->applied, 1);
}

void journal_count_retried(struct journal *j)
{
    atomic_fetch_add(&j->retried, 1);
}

void journal_set_oldest(struct journal *j, uint64_t hlc_ms)
{
    atomic_store(&j->oldest_ms, hlc_ms);
}

uint64_t journal_pending(struct journal *j)
{
    return atomic_load(&j->pending);
}
