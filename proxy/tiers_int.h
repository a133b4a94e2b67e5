/*
 * tiers_int.h - the state proxy/tiers.c and proxy/writebehind.c share:
 * the backend, L1, counters. Internal to those two files.
 */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/hlc.h"
#include "common/lathist.h"
#include "proxy/policy.h"

struct cache;
struct kvstore;
struct lsm_db;
struct lsm_record;
struct writebehind;
struct cbackend;
struct lsm_batch;
struct turn;

/* Orders a cluster backend's L1 fills against its writes (cmd_cluster.c):
 * a read records its key's slot generation when it is sent; its answer is
 * filled only if no write of a key in that slot updated L1 since. The
 * slot's lock also guards its list of reads in flight (single flight
 * across workers, cmd_cluster.c's). */
#define GATE_SLOTS 256u
struct fill_gate {
    pthread_mutex_t mu[GATE_SLOTS];
    uint64_t gen[GATE_SLOTS];
    void *flights[GATE_SLOTS];
};

/* One worker's counters (written by it alone, read by `stats`). */
struct tier_counters {
    _Atomic uint64_t fills;          /* L1 misses that found the key below */
    _Atomic uint64_t fill_misses;    /* ... that did not */
    _Atomic uint64_t fills_dropped;  /* records L1 could not hold */
    _Atomic uint64_t negative_hits;  /* misses answered from the negative cache */
    _Atomic uint64_t pool_hits;      /* misses answered by the L2 pool (cl2.c) */
    _Atomic uint64_t backend_reads;  /* reads sent to the backend */
    _Atomic uint64_t backend_writes; /* read-modify-writes sent to it */
    _Atomic uint64_t backend_errors; /* of either, failed */
    _Atomic uint64_t l1_invalidations;
    struct lathist read_lat, write_lat;
} __attribute__((aligned(64)));

struct tiers {
    struct cache *l1;
    const struct policies *policies; /* the settings' */
    const char *kind;
    struct lsm_db *db;
    struct hlc clock;
    char data_dir[PATH_MAX];
    uint64_t clock_stored_ms;
    struct kvstore *ks;
    unsigned nworkers;
    struct tier_counters *ctr;  /* one per worker */
    struct writebehind *wb;     /* NULL: no write-behind policy */
    struct cbackend *cb;        /* backend = cluster; NULL for local */
    struct fill_gate gate;      /* backend = cluster */
    _Atomic uint64_t *neg;      /* NEG_SLOTS; NULL when no policy has a negative_ttl */
    bool engine_batched;        /* sync = always: the engine syncs per batch (batch.h) */
    struct turn **turns;        /* per worker, backend = local; NULL for cluster */
    _Atomic bool engine_failed; /* a turn's batch failed: no more batches */
    void **batches;             /* per worker: batch.c's state, allocated on first use */
    _Atomic size_t batch_size;  /* set by each worker on first use: one value */
};

/* Keys the backend recently did not hold (a policy's negative_ttl):
 * direct-mapped by the key's hash, each slot one word (the hash's high 32
 * bits, then the relative time the entry lapses), so it is read and
 * written without a lock. A lost entry costs a backend read; a write of
 * the key clears its slot in the same critical section as its L1 update,
 * which orders it against the read that set it. */
#define NEG_SLOTS 65536u

#define ADD(t, w, field) atomic_fetch_add_explicit(&(t)->ctr[w].field, 1, memory_order_relaxed)

/* Puts rec into L1 at its version; true when L1 now holds it (or a newer
 * one). REQUIRES: the key's lock. */
bool tiers_fill_locked(struct tiers *t, unsigned w, const struct policy *pol,
                       const struct lsm_record *rec);

/*
 * A worker's engine writes of one loop turn (turn.c): written to the
 * engine as one batch when the turn ends (tiers_turn_end), their keys'
 * stripes locked until then. Worker w's thread only.
 */
enum st_status turn_create(struct turn **out);
void turn_destroy(struct turn **tn);
/* Locks key's stripe for w; when w already holds stripes, without ever
 * waiting while it holds one (its batch is written first). */
void turn_lock(struct tiers *t, unsigned w, const char *key, size_t nkey);
void turn_unlock(struct tiers *t, const char *key, size_t nkey);
/* The batch w's writes go into; NULL: into the engine at once (the
 * engine failed a batch before). */
struct lsm_batch *turn_batch(struct tiers *t, unsigned w);
/* A write of w went into the engine or the journal: with sync = always
 * (or journal_sync = always) its replies wait for the end of the turn. */
void turn_wrote(struct tiers *t, unsigned w);
/* A write into turn_batch() is done: key's stripe (locked by turn_lock)
 * stays locked until the batch is written. */
void turn_keep(struct tiers *t, unsigned w, const char *key, size_t nkey);
