/*
 * repair_int.h - the repair service's insides shared by its two halves:
 * repair.c (the initiator, on the service thread) and repair_serve.c (the
 * responder, on the cluster port's main loop).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ring.h"
#include "server/repair.h"

struct event;
struct event_base;
struct lsm_db;
struct lsm_record;
struct lsm_snapshot;
struct merkle_tree;
struct peerlinks;

/* clang-format off */
#define REPAIR_COUNTERS(X)                                                   \
    X(cycles) X(sessions) X(sessions_failed) X(sessions_skipped) X(ranges_equal) \
    X(ranges_differing) X(leaves_differing) X(keys_pulled) X(keys_pushed)    \
    X(bytes_in) X(bytes_out) X(trees_served) X(ranges_served)
/* clang-format on */

/* Trees the responder keeps for the sessions under way. */
#define REPAIR_SERVED_TREES 4

struct served_tree {
    uint64_t session;
    uint64_t used_ms; /* monotonic: the least recently used goes first */
    struct merkle_tree *tree;
};

/* Where the service is: a request moves IDLE to REQUESTED (once), the
 * service thread REQUESTED (or IDLE, when a cycle is due) to RUNNING, the
 * cycle's end back to IDLE. */
enum repair_phase { REPAIR_IDLE, REPAIR_REQUESTED, REPAIR_RUNNING };

#define REPAIR_UNREACHABLE_MAX 16

struct session; /* repair.c */
struct task;    /* repair.c */

struct repair {
    struct repair_config cfg;
    struct lsm_db *db;
    struct members *members;

    /* the service thread */
    pthread_t thread;
    bool thread_started;
    struct event_base *base;
    struct event *tick;
    struct peerlinks *links;
    _Atomic bool stopping;
    _Atomic int phase; /* enum repair_phase */
    uint64_t next_cycle_ms;
    _Atomic uint64_t last_cycle_end; /* unix s of the last full cycle's end, 0 never */
    struct session *s;               /* the session under way */
    struct task *tasks;              /* the cycle under way: its sessions */
    size_t ntasks, next;
    uint64_t paced_until_ms; /* rate_bytes: no transfer starts before */
    char unreachable[REPAIR_UNREACHABLE_MAX][WIRE_ADDR_MAX + 1]; /* this cycle */
    size_t nunreachable;

    /* the responder (main loop) */
    struct served_tree served[REPAIR_SERVED_TREES];

#define X(name) _Atomic uint64_t name;
    REPAIR_COUNTERS(X)
#undef X
};

#define REPAIR_COUNT(r, name, n) atomic_fetch_add_explicit(&(r)->name, (n), memory_order_relaxed)

/*
 * Calls fn(arg, rec) for the newest version of each key with its token in
 * range (tombstones and expired included), in (token, key) order, as of
 * snap (NULL: now), starting after the key `after` (NULL: from the start).
 * fn returns false to stop early. ST_OK or the engine's error.
 */
enum st_status repair_scan(struct lsm_db *db, const struct lsm_snapshot *snap,
                           struct ring_range range, const uint8_t *after, size_t after_len,
                           bool (*fn)(void *arg, const struct lsm_record *rec), void *arg);
