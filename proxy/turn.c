/*
 * turn.c - a worker's writes to the local engine, gathered into one
 * engine batch until a reply would report them (see tiers.h).
 *
 *   write ─► key's stripe locked (kept) ─► RMW into the worker's batch
 *         ─► L1 updated ─► reply queued on the connection
 *   the connection's replies about to leave (before_reply), or the end of
 *   the loop turn (proxy/batch.c) ─► lsm_write(batch) ─► stripes unlocked
 *
 * One WAL append and one memtable insert per connection's run of commands
 * instead of one per write, and the engine's group commit sees one writer
 * per batch instead of one per command. The stripes stay locked until the
 * batch is in the engine, so no other thread reads a key's engine record
 * while its newer value waits in a batch (a read of the key below L1
 * takes its lock first).
 *
 * Deadlock freedom: a worker takes a stripe with trylock while it holds
 * any; when that fails, or the stripe is already its own (a second write
 * of a key, or of a key sharing the stripe), it writes its batch and
 * releases everything before it waits. A thread that waits holds nothing,
 * so no two wait on each other. Worker threads.
 */
#include <stdatomic.h>
#include <string.h>

#include "cache/cache.h"
#include "common/log.h"
#include "common/mem.h"
#include "kvstore/kvstore.h"
#include "proxy/tiers.h"
#include "proxy/tiers_int.h"
#include "storage/include/lsm.h"

struct turn {
    struct lsm_batch *batch;
    bool failed;   /* a batch of this turn did not reach the engine */
    bool unsynced; /* a write of this turn waits for tiers_sync (sync = always) */
    uint64_t held_bits[KVSTORE_LOCKS / 64];
    unsigned *held; /* the stripes held, nheld of them */
    size_t nheld, held_cap;
    char *keys; /* the keys written: length byte, then the key */
    size_t keys_len, keys_cap;
};

static struct turn *turn_of(struct tiers *t, unsigned w)
{
    return t != NULL && t->turns != NULL ? t->turns[w] : NULL;
}

enum st_status turn_create(struct turn **out)
{
    struct turn *tn = mem_calloc(MEM_OTHER, 1, sizeof(*tn));
    if (tn == NULL || lsm_batch_create(&tn->batch) != ST_OK) {
        mem_free(MEM_OTHER, tn, sizeof(*tn));
        return ST_NOMEM;
    }
    *out = tn;
    return ST_OK;
}

void turn_destroy(struct turn **tp)
{
    struct turn *tn = *tp;
    if (tn == NULL)
        return;
    *tp = NULL;
    lsm_batch_destroy(&tn->batch);
    mem_free(MEM_OTHER, tn->held, tn->held_cap * sizeof(*tn->held));
    mem_free(MEM_OTHER, tn->keys, tn->keys_cap);
    mem_free(MEM_OTHER, tn, sizeof(*tn));
}

static bool holds(const struct turn *tn, unsigned s)
{
    return (tn->held_bits[s / 64] >> (s % 64)) & 1u;
}

/* Writes w's batch to the engine and releases its stripes. A batch that
 * failed takes its keys out of L1 (which holds their unwritten values)
 * first, and fails the turn's answers. */
static void turn_commit(struct tiers *t, struct turn *tn)
{
    if (lsm_batch_count(tn->batch) > 0) {
        enum st_status st = lsm_write(t->db, tn->batch);
        if (st != ST_OK) {
            log_warn("backend local: a batch of %zu writes failed: %s", lsm_batch_count(tn->batch),
                     st_status_name(st));
            tn->failed = true;
            /* the engine is read-only now: later writes go to it directly
             * and fail there, each with its own answer */
            atomic_store_explicit(&t->engine_failed, true, memory_order_relaxed);
            for (size_t off = 0; off < tn->keys_len; off += 1 + (unsigned char)tn->keys[off])
                cache_delete(t->l1, tn->keys + off + 1, (unsigned char)tn->keys[off], 0);
        }
        lsm_batch_clear(tn->batch);
    }
    for (size_t i = 0; i < tn->nheld; i++) {
        unsigned s = tn->held[i];
        tn->held_bits[s / 64] &= ~(1ull << (s % 64));
        kvstore_unlock_stripe(t->ks, s);
    }
    tn->nheld = 0;
    tn->keys_len = 0;
}

void turn_lock(struct tiers *t, unsigned w, const char *key, size_t nkey)
{
    struct turn *tn = turn_of(t, w);
    unsigned s = kvstore_stripe(key, nkey);
    if (tn != NULL && tn->nheld > 0) {
        if (!holds(tn, s) && kvstore_trylock_stripe(t->ks, s))
            return;
        turn_commit(t, tn); /* hold nothing while waiting */
    }
    kvstore_lock_stripe(t->ks, s);
}

void turn_unlock(struct tiers *t, const char *key, size_t nkey)
{
    kvstore_unlock_stripe(t->ks, kvstore_stripe(key, nkey));
}

struct lsm_batch *turn_batch(struct tiers *t, unsigned w)
{
    struct turn *tn = turn_of(t, w);
    if (tn == NULL || atomic_load_explicit(&t->engine_failed, memory_order_relaxed))
        return NULL;
    return tn->batch;
}

/* Makes room for one more held stripe and a key of nkey bytes; false
 * when out of memory. */
static bool turn_reserve(struct turn *tn, size_t nkey)
{
    if (tn->nheld == tn->held_cap) {
        size_t n = tn->held_cap > 0 ? tn->held_cap * 2 : 64;
        unsigned *p = mem_realloc(MEM_OTHER, tn->held, tn->held_cap * sizeof(*p), n * sizeof(*p));
        if (p == NULL)
            return false;
        tn->held = p;
        tn->held_cap = n;
    }
    if (tn->keys_len + 1 + nkey > tn->keys_cap) {
        size_t n = tn->keys_cap > 0 ? tn->keys_cap * 2 : 4096;
        char *p = mem_realloc(MEM_OTHER, tn->keys, tn->keys_cap, n);
        if (p == NULL)
            return false;
        tn->keys = p;
        tn->keys_cap = n;
    }
    return true;
}

void turn_keep(struct tiers *t, unsigned w, const char *key, size_t nkey)
{
    struct turn *tn = turn_of(t, w);
    unsigned s = kvstore_stripe(key, nkey);
    if (!turn_reserve(tn, nkey)) {
        /* no room to remember it: the batch goes to the engine now */
        turn_commit(t, tn);
        if (tn->failed)
            cache_delete(t->l1, key, nkey, 0);
        kvstore_unlock_stripe(t->ks, s);
        return;
    }
    tn->held[tn->nheld++] = s;
    tn->held_bits[s / 64] |= 1ull << (s % 64);
    tn->keys[tn->keys_len] = (char)nkey;
    memcpy(tn->keys + tn->keys_len + 1, key, nkey);
    tn->keys_len += 1 + nkey;
}

/* ------------------------------------------------------ tiers.h's face */

bool tiers_turn_waits(struct tiers *t, unsigned w)
{
    struct turn *tn = turn_of(t, w);
    return tn != NULL && (tn->nheld > 0 || tn->failed || tn->unsynced);
}

bool tiers_turn_unsynced(struct tiers *t, unsigned w)
{
    struct turn *tn = turn_of(t, w);
    return tn != NULL && tn->unsynced;
}

void turn_wrote(struct tiers *t, unsigned w)
{
    struct turn *tn = turn_of(t, w);
    if (tn != NULL && tiers_batched(t))
        tn->unsynced = true;
}

bool tiers_turn_flush(struct tiers *t, unsigned w)
{
    struct turn *tn = turn_of(t, w);
    if (tn == NULL)
        return true;
    turn_commit(t, tn);
    return !tn->failed;
}

enum st_status tiers_turn_end(struct tiers *t, unsigned w)
{
    struct turn *tn = turn_of(t, w);
    if (tn == NULL)
        return ST_OK;
    turn_commit(t, tn);
    bool failed = tn->failed;
    tn->failed = false;
    tn->unsynced = false; /* the caller syncs next */
    return failed ? ST_IO : ST_OK;
}
