/*
 * kvstore.c - memcached's read-modify-writes on the engine (see
 * kvstore.h). Any thread; the per-key locks serialise writes of a key.
 *
 *   (lock) lsm_get ─► rmw_decide (memcached's rules) ─► lsm_put/lsm_delete
 *          at max(clock, read version + 1) ─► (unlock)
 */
#include "kvstore/kvstore.h"

#include <pthread.h>
#include <string.h>

#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "storage/include/lsm.h"

struct kvstore {
    struct lsm_db *db;
    struct hlc *clock;
    uint16_t node_id;
    size_t max_value_len;
    bool blind_sets;
    pthread_mutex_t locks[KVSTORE_LOCKS];
};

enum st_status kvstore_create(const struct kvstore_config *cfg, struct kvstore **out)
{
    struct kvstore *ks = mem_calloc(MEM_OTHER, 1, sizeof(*ks));
    if (ks == NULL)
        return ST_NOMEM;
    ks->db = cfg->db;
    ks->clock = cfg->clock;
    ks->node_id = cfg->node_id;
    ks->max_value_len = cfg->max_value_len;
    ks->blind_sets = cfg->blind_sets;
    for (unsigned i = 0; i < KVSTORE_LOCKS; i++)
        pthread_mutex_init(&ks->locks[i], NULL);
    *out = ks;
    return ST_OK;
}

void kvstore_destroy(struct kvstore **ksp)
{
    struct kvstore *ks = *ksp;
    if (ks == NULL)
        return;
    *ksp = NULL;
    for (unsigned i = 0; i < KVSTORE_LOCKS; i++)
        pthread_mutex_destroy(&ks->locks[i]);
    mem_free(MEM_OTHER, ks, sizeof(*ks));
}

struct lsm_db *kvstore_db(const struct kvstore *ks)
{
    return ks->db;
}

struct hlc *kvstore_clock(const struct kvstore *ks)
{
    return ks->clock;
}

unsigned kvstore_stripe(const void *key, size_t nkey)
{
    return (unsigned)(lsm_token(key, nkey) & (KVSTORE_LOCKS - 1));
}

void kvstore_lock(struct kvstore *ks, const void *key, size_t nkey)
{
    pthread_mutex_lock(&ks->locks[kvstore_stripe(key, nkey)]);
}

void kvstore_unlock(struct kvstore *ks, const void *key, size_t nkey)
{
    pthread_mutex_unlock(&ks->locks[kvstore_stripe(key, nkey)]);
}

void kvstore_lock_stripe(struct kvstore *ks, unsigned stripe)
{
    pthread_mutex_lock(&ks->locks[stripe]);
}

bool kvstore_trylock_stripe(struct kvstore *ks, unsigned stripe)
{
    return pthread_mutex_trylock(&ks->locks[stripe]) == 0;
}

void kvstore_unlock_stripe(struct kvstore *ks, unsigned stripe)
{
    pthread_mutex_unlock(&ks->locks[stripe]);
}

enum st_status kvstore_read(struct kvstore *ks, const void *key, size_t nkey,
                            struct lsm_record **out)
{
    *out = NULL;
    enum st_status st = lsm_get(ks->db, key, nkey, 0, out);
    if (st != ST_OK)
        log_warn("kvstore: read of a key failed: %s", st_status_name(st));
    return st;
}

static enum st_status engine_read(void *arg, const void *key, size_t nkey, struct lsm_record **cur)
{
    struct kvstore *ks = arg;
    return lsm_get(ks->db, key, nkey, 0, cur);
}

static enum st_status engine_write(void *arg, const struct lsm_record *rec)
{
    struct kvstore *ks = arg;
    return rec->tombstone ? lsm_delete(ks->db, rec->key, rec->key_len, rec->version, rec->expiry)
                          : lsm_put(ks->db, rec);
}

/* kvstore_rmw_into's records: read from the engine, written to a batch. */
struct into {
    struct kvstore *ks;
    struct lsm_batch *batch;
};

static enum st_status into_read(void *arg, const void *key, size_t nkey, struct lsm_record **cur)
{
    struct into *in = arg;
    return lsm_get(in->ks->db, key, nkey, 0, cur);
}

static enum st_status into_write(void *arg, const struct lsm_record *rec)
{
    struct into *in = arg;
    return rec->tombstone
               ? lsm_batch_delete(in->batch, rec->key, rec->key_len, rec->version, rec->expiry)
               : lsm_batch_put(in->batch, rec);
}

enum st_status kvstore_apply(struct kvstore *ks, const struct lsm_record *rec)
{
    enum st_status st = engine_write(ks, rec);
    if (st == ST_OK)
        hlc_observe(ks->clock, rec->version.hlc);
    else
        log_warn("kvstore: write failed: %s", st_status_name(st));
    return st;
}

void kvstore_wire_of(const struct lsm_record *in, struct wire_record *out)
{
    *out = (struct wire_record){
        .key = in->key,
        .key_len = in->key_len,
        .value = in->tombstone ? NULL : in->value,
        .value_len = in->tombstone ? 0 : in->value_len,
        .flags = in->flags,
        .expiry = in->expiry,
        .version = {in->version.hlc, in->version.node},
        .tombstone = in->tombstone,
    };
}

void kvstore_lsm_of(const struct wire_record *in, struct lsm_record *out)
{
    *out = (struct lsm_record){
        .key = in->key,
        .key_len = in->key_len,
        .value = in->value,
        .value_len = in->value_len,
        .flags = in->flags,
        .expiry = in->expiry,
        .version = {in->version.hlc, in->version.node},
        .tombstone = in->tombstone,
    };
}

uint64_t kvstore_expiry_of(rel_time_t exptime)
{
    return exptime == 0 ? 0 : (uint64_t)clock_process_started() + exptime;
}

int64_t kvstore_ttl_left(uint64_t expiry)
{
    if (expiry == 0)
        return -1;
    int64_t left = (int64_t)expiry - (int64_t)clock_unix_now();
    return left < 0 ? 0 : left;
}

/* ------------------------------------------------------------ the RMW */

/* The value an RMW store writes, given the live record (NULL: none):
 * *v / *n, *flags and *expiry. *owned is a buffer to free (append,
 * prepend, incr/decr results). The outcome when nothing is to be
 * written. REQUIRES: the key's lock. */
static enum wire_rmw_result rmw_decide(const struct wire_rmw *q, const struct lsm_record *cur,
                                       struct lsm_record *out, char *num, size_t numcap,
                                       char **owned, size_t *nowned, bool *created)
{
    *out = (struct lsm_record){
        .key = q->key,
        .key_len = q->key_len,
        .value = q->value,
        .value_len = q->value_len,
        .flags = q->flags,
        .expiry = q->expiry,
    };
    switch ((enum wire_rmw_op)q->op) {
    case WIRE_RMW_SET: return WIRE_RMW_STORED;
    case WIRE_RMW_ADD: return cur != NULL ? WIRE_RMW_NOT_STORED : WIRE_RMW_STORED;
    case WIRE_RMW_REPLACE: return cur == NULL ? WIRE_RMW_NOT_STORED : WIRE_RMW_STORED;
    case WIRE_RMW_CAS:
        return cur == NULL                     ? WIRE_RMW_NOT_FOUND
               : cur->version.hlc != q->cas_in ? WIRE_RMW_EXISTS
                                               : WIRE_RMW_STORED;
    case WIRE_RMW_APPEND:
    case WIRE_RMW_PREPEND: {
        if (cur == NULL)
            return WIRE_RMW_NOT_STORED;
        size_t n = cur->value_len + q->value_len;
        char *v = mem_alloc(MEM_CONN, n ? n : 1);
        if (v == NULL)
            return 0; /* out of memory: the caller fails */
        bool append = q->op == WIRE_RMW_APPEND;
        size_t first = append ? cur->value_len : q->value_len;
        memcpy(v, append ? (const void *)cur->value : q->value, first);
        memcpy(v + first, append ? (const void *)q->value : cur->value, n - first);
        *owned = v;
        *nowned = n ? n : 1;
        out->value = (const uint8_t *)v;
        out->value_len = n;
        out->flags = cur->flags; /* the stored item keeps its flags and TTL */
        out->expiry = cur->expiry;
        return WIRE_RMW_STORED;
    }
    case WIRE_RMW_DELETE:
        if (cur == NULL)
            return WIRE_RMW_NOT_FOUND;
        if (q->cas_in != 0 && cur->version.hlc != q->cas_in)
            return WIRE_RMW_EXISTS;
        out->tombstone = true;
        out->value_len = 0;
        out->expiry = (uint64_t)clock_unix_now(); /* the deletion time, once */
        return WIRE_RMW_STORED;
    case WIRE_RMW_TOUCH:
        if (cur == NULL)
            return WIRE_RMW_NOT_FOUND;
        out->value = cur->value;
        out->value_len = cur->value_len;
        out->flags = cur->flags;
        return WIRE_RMW_STORED;
    case WIRE_RMW_INCR:
    case WIRE_RMW_DECR: {
        uint64_t v;
        if (cur == NULL) {
            if ((q->rflags & WIRE_RMW_VIVIFY) == 0)
                return WIRE_RMW_NOT_FOUND;
            v = q->initial;
            out->flags = 0;
            *created = true;
        } else if (q->cas_in != 0 && cur->version.hlc != q->cas_in) {
            return WIRE_RMW_EXISTS;
        } else if (cur->value_len == 0 ||
                   !mc_delta_parse((const char *)cur->value, cur->value_len, &v)) {
            return WIRE_RMW_NON_NUMERIC;
        } else {
            v = q->op == WIRE_RMW_INCR ? v + q->delta : (q->delta > v ? 0 : v - q->delta);
            out->flags = cur->flags;
            out->expiry = cur->expiry;
        }
        size_t n = mc_u64_to_str(v, num);
        /* a shorter result keeps the stored length, padded with spaces, as
         * memcached's in-place update does */
        if (cur != NULL && n < cur->value_len && cur->value_len <= numcap) {
            memset(num + n, ' ', cur->value_len - n);
            n = cur->value_len;
        }
        out->value = (const uint8_t *)num;
        out->value_len = n;
        if (q->rflags & WIRE_RMW_RETOUCH)
            out->expiry = q->expiry2;
        return WIRE_RMW_STORED;
    }
    }
    return 0;
}

static enum st_status rmw_run(struct kvstore *ks, const struct kvstore_io *io, bool reads_engine,
                              const struct wire_rmw *q, struct wire_rmw_reply *reply,
                              struct lsm_record **written);

enum st_status kvstore_rmw_locked(struct kvstore *ks, const struct wire_rmw *q,
                                  struct wire_rmw_reply *reply, struct lsm_record **written)
{
    struct kvstore_io io = {.read = engine_read, .write = engine_write, .arg = ks};
    return rmw_run(ks, &io, true, q, reply, written);
}

enum st_status kvstore_rmw_into(struct kvstore *ks, struct lsm_batch *batch,
                                const struct wire_rmw *q, struct wire_rmw_reply *reply,
                                struct lsm_record **written)
{
    struct into in = {ks, batch};
    struct kvstore_io io = {.read = into_read, .write = into_write, .arg = &in};
    return rmw_run(ks, &io, true, q, reply, written);
}

enum st_status kvstore_rmw_via(struct kvstore *ks, const struct kvstore_io *io,
                               const struct wire_rmw *q, struct wire_rmw_reply *reply,
                               struct lsm_record **written)
{
    return rmw_run(ks, io, false, q, reply, written);
}

/* reads_engine: io reads the engine itself, which holds no version above
 * the clock (a set need not read with blind_sets). */
static enum st_status rmw_run(struct kvstore *ks, const struct kvstore_io *io, bool reads_engine,
                              const struct wire_rmw *q, struct wire_rmw_reply *reply,
                              struct lsm_record **written)
{
    *reply = (struct wire_rmw_reply){0};
    if (written != NULL)
        *written = NULL;
    struct lsm_record *cur = NULL;
    char num[24 + MC_KEY_MAX];
    char *owned = NULL;
    size_t nowned = 0;
    /* a set decides nothing from the live record: with blind sets (this
     * kvstore's clock is above every version in the engine) it is not read */
    bool blind = q->op == WIRE_RMW_SET && ks->blind_sets && reads_engine;
    enum st_status st = blind ? ST_OK : io->read(io->arg, q->key, q->key_len, &cur);
    struct lsm_record rec;
    enum wire_rmw_result r = 0;
    if (st == ST_OK) {
        reply->old_expiry = cur != NULL ? cur->expiry : 0;
        r = rmw_decide(q, cur, &rec, num, sizeof(num), &owned, &nowned, &reply->created);
        if (r == 0)
            st = ST_NOMEM;
    }
    if (st == ST_OK && r == WIRE_RMW_STORED && !rec.tombstone && rec.value_len > ks->max_value_len)
        r = WIRE_RMW_TOO_LARGE;
    if (st == ST_OK && r == WIRE_RMW_STORED) {
        /* the result must supersede what it was computed from, even when
         * that came from a peer whose clock is ahead of ours */
        if (cur != NULL)
            hlc_observe(ks->clock, cur->version.hlc);
        uint64_t v = hlc_now(ks->clock);
        if (cur != NULL && v <= cur->version.hlc)
            v = cur->version.hlc + 1;
        rec.version = (struct lsm_version){v, ks->node_id};
        st = io->write(io->arg, &rec);
        if (st == ST_OK) {
            reply->cas = rec.version.hlc;
            if (q->op == WIRE_RMW_INCR || q->op == WIRE_RMW_DECR)
                mc_delta_parse((const char *)rec.value, rec.value_len, &reply->number);
            if (written != NULL && lsm_record_copy(&rec, written) != ST_OK)
                st = ST_NOMEM; /* applied here, but cannot be replicated */
        }
    }
    if (st != ST_OK)
        log_warn("kvstore: read-modify-write failed: %s", st_status_name(st));
    else
        reply->result = (uint8_t)r;
    if (st == ST_OK && (q->rflags & WIRE_RMW_RETURN) && written != NULL && *written != NULL &&
        !(*written)->tombstone) {
        reply->has_record = true;
        kvstore_wire_of(*written, &reply->rec);
    }
    if (owned != NULL)
        mem_free(MEM_CONN, owned, nowned);
    lsm_record_free(&cur);
    return st;
}

enum st_status kvstore_rmw(struct kvstore *ks, const struct wire_rmw *q,
                           struct wire_rmw_reply *reply, struct lsm_record **written)
{
    kvstore_lock(ks, q->key, q->key_len);
    enum st_status st = kvstore_rmw_locked(ks, q, reply, written);
    kvstore_unlock(ks, q->key, q->key_len);
    return st;
}
