/*
 * tiers.h - what lies below strata-proxy's L1: the backend (today the
 * local engine, `backend = local`) and the per-prefix policies that say
 * how commands reach it (docs/TIERS.md). proxy/cmd.c asks tiers_policy()
 * first; for a key whose policy is cache-only (and for every key without
 * a backend) it gets NULL and runs on L1 alone, as memcached.
 *
 * The local backend runs on the calling worker: the engine is in this
 * process and its writes are group-committed across workers. A key's
 * backend operation and the L1 update that follows it run under that
 * key's lock (kvstore's striped locks), as does a miss's read and fill,
 * so no fill ever puts back a value a write has replaced, and concurrent
 * misses for one key read the backend once (the second finds L1 filled).
 * Worker threads.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/wire.h"
#include "frontend/exec.h"
#include "proxy/policy.h"

struct cache;
struct item;
struct settings;
struct tiers;
struct writebehind;

/* Opens the backend the settings name (NULL *out for backend = none).
 * Prints why on failure and returns an exit code, else 0. */
int tiers_open(const struct settings *s, struct cache *l1, unsigned workers, struct tiers **out);
/* The main loop's maintenance tick: renews the clock's stored bound.
 * Accepts NULL. */
void tiers_tick(struct tiers *t);
/* Closes the engine (its WAL synced). Accepts NULL. */
void tiers_close(struct tiers **t);

/* The policy of key when something below L1 applies; NULL: L1 only. */
const struct policy *tiers_policy(const struct tiers *t, const char *key, size_t nkey);

/* backend = cluster: the policy of key when below L1 applies (NULL: L1
 * only, or no cluster), the backend, and the hook main calls once the
 * workers' loops have stopped (their links close before their bases). */
const struct policy *tiers_cluster_policy(const struct tiers *t, const char *key, size_t nkey);
struct cbackend *tiers_cbackend(const struct tiers *t);
void tiers_workers_stopped(struct tiers *t);

/* The cluster's L1 side (cmd_cluster.c), ordered by the fill gate: a
 * read's generation when it is sent; its record filled if no write of the
 * key's slot came between; a write's outcome applied to L1 (the record
 * filled, or the copy dropped). */
bool tiers_l1_has(struct tiers *t, const char *key, size_t nkey);
/* The cluster's reads in flight, shared by every worker (single flight
 * across workers): the list head of key's slot (cmd_cluster.c's), locked
 * until tiers_flights_unlock. tiers_l1_has may be called meanwhile; no
 * other tiers_ function. */
void **tiers_flights_lock(struct tiers *t, const char *key, size_t nkey);
void tiers_flights_unlock(struct tiers *t, const char *key, size_t nkey);
uint64_t tiers_gate_begin(struct tiers *t, const char *key, size_t nkey);
/* Another proxy wrote key (its invalidation reached the peer port):
 * cluster reads in flight do not fill L1 with what they bring back. */
void tiers_gate_bump(struct tiers *t, const char *key, size_t nkey);
/* A cluster read answered by the L2 pool (proxy/cl2.h): `stats tiers`. */
void tiers_count_pool_hit(struct tiers *t, unsigned worker);
void tiers_cluster_fill(struct tiers *t, unsigned worker, const struct policy *pol,
                        const struct wire_record *rec, uint64_t gen);
void tiers_cluster_written(struct tiers *t, unsigned worker, const struct policy *pol,
                           const char *key, size_t nkey, const struct wire_rmw_reply *reply,
                           bool read_back);
/* A cluster read that found nothing (sent at gate generation gen): the
 * negative cache remembers it for the policy's negative_ttl unless a write
 * came between. */
void tiers_cluster_miss(struct tiers *t, unsigned worker, const struct policy *pol, const char *key,
                        size_t nkey, uint64_t gen);
/* True when write-behind's journal holds a pending write of key: L1 then
 * holds it (gated as a fill), or nothing for a pending delete; the
 * cluster is not read. */
bool tiers_cluster_pending(struct tiers *t, unsigned worker, const struct policy *pol,
                           const char *key, size_t nkey);
/* The write-behind journal and its drainer; NULL when no policy is
 * write-behind (and no journal was left). */
struct writebehind *tiers_writebehind(const struct tiers *t);
/* True when the negative cache says the backend does not hold key. */
bool tiers_negative(struct tiers *t, unsigned worker, const char *key, size_t nkey);
/* A backend request of the cluster that started at start_us
 * (clock_monotonic_us), for stats backend's percentiles. */
void tiers_record_latency(struct tiers *t, unsigned worker, bool read, enum fe_result r,
                          uint64_t start_us);

/* True when the policy's writes go to the backend (write-through,
 * write-around; write-behind through its journal). */
bool tiers_writes_below(const struct policy *pol);

/* A read's miss path: when L1 lacks key, reads the backend and fills L1
 * (version-gated). `worker`: the caller's index, for its counters. */
void tiers_fill(struct tiers *t, unsigned worker, const struct policy *pol, const char *key,
                size_t nkey);

/* read-through's L1 writes: the key's lock around an L1 command, and the
 * backend's value filled first when `fill` (a write that reads). */
void tiers_l1_begin(struct tiers *t, unsigned worker, const struct policy *pol, const char *key,
                    size_t nkey, bool fill);
void tiers_l1_end(struct tiers *t, const char *key, size_t nkey);

/*
 * A write whose policy writes below: the RMW q (key, op, fields; the
 * levels are the policy's) on the backend (write-behind: against the
 * pending write, into the journal), then L1 made to agree (write-through
 * and write-behind: the written record filled; write-around and deletes:
 * the L1 copy dropped). On failure L1 is left as it was. *reply gets the
 * outcome. Returns FE_OK when the write ran (the outcome is in
 * reply->result), FE_FAILED when the backend failed, FE_NO_MEMORY when
 * the journal is full and the policy's overflow is `error`.
 */
enum fe_result tiers_rmw(struct tiers *t, unsigned worker, const struct policy *pol,
                         struct wire_rmw *q, struct wire_rmw_reply *reply);

/* True when a write's reply waits for one sync at the end of the loop
 * turn (proxy/batch.h): sync = always, or write-behind with journal_sync
 * = always. */
bool tiers_batched(const struct tiers *t);
/*
 * A worker's writes to the local engine (every local backend) go into
 * the worker's batch, their keys locked, until one of these writes it: the
 * front end's before_reply (a connection's replies are about to leave),
 * a lock the worker needs and holds already (proxy/turn.c), and
 * proxy/batch.c's end of the loop turn, which must run whenever a write
 * waits (tiers_turn_waits). No reply reports a write before its batch is
 * in the engine.
 *
 * tiers_turn_flush: writes the batch; false when a batch failed since the
 * last tiers_turn_end (the replies queued since may claim lost writes).
 * tiers_turn_end: the same, as a status (ST_IO), and forgets the failure.
 * tiers_turn_waits: writes wait (to be written or synced), or one failed.
 */
bool tiers_turn_flush(struct tiers *t, unsigned worker);
enum st_status tiers_turn_end(struct tiers *t, unsigned worker);
bool tiers_turn_waits(struct tiers *t, unsigned worker);
/* True when writes of the worker's turn wait for tiers_sync (sync =
 * always): replies must wait for the end of the turn. */
bool tiers_turn_unsynced(struct tiers *t, unsigned worker);

/* Makes every write the engines (backend, journal) have returned from
 * durable: one fdatasync each, shared with other workers. ST_IO. */
enum st_status tiers_sync(struct tiers *t);
/* Worker `worker`'s batch state: `size` zeroed bytes, allocated on first
 * use and freed with the tiers; NULL when out of memory. That worker's
 * thread only. */
void *tiers_worker_batch(struct tiers *t, unsigned worker, size_t size);

/* `stats tiers`, `stats backend`, `stats policies`; false: not ours. */
bool tiers_stats(struct tiers *t, const char *args, size_t len,
                 void (*emit)(void *arg, const char *name, const char *value), void *arg);
