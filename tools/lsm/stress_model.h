/*
 * stress_model.h - the expected state of lsm-stress (tools/lsm/stress.c):
 * key and value derivation, the deterministic per-thread operation streams,
 * last-write-wins resolution, the state file and the acknowledgement log.
 * Used by both the `run` process (which may be killed at any instant) and
 * the `verify` process that replays the same streams to know what the
 * database must hold.
 *
 * Ownership of keys: writer thread t of T owns the keys whose index is
 * t mod T, so each thread's stream is sequential on its keys and the
 * verifier can replay every stream independently.
 *
 * Writes are blind (storage/include/lsm.h): the engine stores every version
 * and resolves last-write-wins when it reads and compacts, so the model
 * resolves it itself (sm_apply) and the streams deliberately write older
 * versions after newer ones ("stale" writes) to check that the newer one
 * keeps winning in every layer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/include/lsm.h"

#define SM_MAX_THREADS 64
#define SM_MAX_BATCH 12
#define SM_KEY_CAP 64
#define SM_MAX_VALUE (128u << 10)
/* Keys a thread wrote last, the targets of most stale writes. */
#define SM_RECENT 256

/* A gc_grace below this lets compaction drop tombstones during the test (the
 * crash driver uses 1 s); then a write older than a dropped tombstone
 * legitimately applies again, so stale writes only target records that no
 * compaction may drop: live ones that never expire. */
#define SM_TOMB_SAFE_GRACE 864000u
/* With a long gc_grace, stale writes also target tombstones and live records
 * that expire, but only those expiring at least SM_STALE_EXPIRY_MIN seconds
 * after the run's start: once a record has expired, compaction may drop it
 * (expired_grace 0) and an older write arriving after that applies again.
 * The writer issues such a write only while the record's expiry is more
 * than SM_STALE_GUARD seconds away (struct sm_op.deadline), else it stops:
 * the stream is fixed, the clock is not. */
#define SM_STALE_EXPIRY_MIN 8
#define SM_STALE_GUARD 2

enum sm_kind {
    SM_NONE = 0, /* never written */
    SM_LIVE = 1,
    SM_TOMB = 2,
};

/* What a key holds: its newest record. Values are not stored: their bytes
 * are derived from (key index, version, length) by sm_value. */
struct sm_entry {
    uint64_t hlc;
    uint64_t expiry; /* absolute unix seconds, 0 = never (LIVE only) */
    uint32_t flags;
    uint32_t value_len;
    uint16_t node;
    uint8_t kind; /* enum sm_kind */
    uint8_t pad[5];
};

/* Fixed for a database's lifetime; kept in the state file. */
struct sm_config {
    uint64_t seed;
    uint32_t keys;
    uint32_t threads;
    uint32_t style;    /* enum lsm_compaction_style */
    uint32_t gc_grace; /* gc_grace_seconds given to the engine */
};

struct sm_state {
    struct sm_config cfg;
    uint32_t cycle;     /* the run/verify cycle this state starts */
    struct sm_entry *e; /* cfg.keys entries, owned */
};

enum sm_op_kind {
    SM_OP_PUT = 0,
    SM_OP_DEL,
    SM_OP_BATCH,
    SM_OP_FLUSH,   /* lsm_flush: no entries; stale writes follow */
    SM_OP_COMPACT, /* lsm_compact_all: no entries; stale writes follow */
};

/* One operation of a stream; a put or delete has n == 1, a flush or
 * compaction n == 0. */
struct sm_op {
    enum sm_op_kind kind;
    int n;
    /* Entries older than the key's newest version when generated (or equal
     * to it: the same write replayed); they never win. */
    int nstale;
    bool stale[SM_MAX_BATCH];
    /* 0, or the earliest expiry of a live record a stale entry is older
     * than: issue only before deadline - SM_STALE_GUARD. */
    uint64_t deadline;
    uint32_t key[SM_MAX_BATCH];
    struct sm_entry rec[SM_MAX_BATCH]; /* kind LIVE or TOMB */
};

/* The generator of one thread's stream in one cycle. */
struct sm_gen {
    const struct sm_config *cfg;
    uint64_t rng;
    uint64_t t0; /* the run's start time: expiries derive from it */
    uint32_t cycle, thread;
    uint64_t next; /* index of the next operation */
    /* Ring of the keys of this stream's latest (not stale) entries. */
    uint32_t recent[SM_RECENT];
    uint32_t nrecent;   /* entries pushed so far */
    uint32_t follow_up; /* stale writes still due after a flush/compaction */
};

/* splitmix64 step and mixer. */
uint64_t sm_mix(uint64_t x);
uint64_t sm_rand(uint64_t *state);

void sm_gen_init(struct sm_gen *g, const struct sm_config *cfg, uint32_t cycle, uint32_t thread,
                 uint64_t t0);
/* Produces operation g->next (then increments it). Reads only the entries
 * of keys the thread owns in `model`, which must be the state after every
 * earlier operation of the stream. */
void sm_gen_next(struct sm_gen *g, const struct sm_entry *model, struct sm_op *op);
/* Applies `op` to `model` under last-write-wins, as the engine resolves
 * it: an entry replaces the key's record when its version is strictly
 * higher (a tombstone is a version like any other; an equal version is the
 * same write replayed). applied[i] (may be NULL) says whether entry i won. */
void sm_apply(struct sm_entry *model, const struct sm_op *op, bool *applied);

/* Key bytes of index `idx` (8..48 bytes, not NUL-terminated); returns the
 * length. `buf` holds SM_KEY_CAP bytes. */
size_t sm_key(uint32_t idx, char *buf);
/* Inverse of sm_key; false if the bytes are not a key of the model. */
bool sm_key_parse(const uint8_t *key, size_t len, uint32_t *idx);
/* Fills `buf` with the e->value_len value bytes of key `idx` at e's version. */
void sm_value(uint32_t idx, const struct sm_entry *e, uint8_t *buf);
/* Whether record `r` (read with LSM_READ_TOMBSTONES | LSM_READ_EXPIRED;
 * NULL = absent) is what model entry `m` allows. `now_hi` bounds the clock
 * of any compaction that may have dropped an expired record;
 * `tomb_may_vanish` when gc_grace is short enough for tombstones to go. */
bool sm_match(uint32_t idx, const struct sm_entry *m, const struct lsm_record *r, uint64_t now_hi,
              bool tomb_may_vanish, uint8_t *scratch);

/* ---- state file: written to <path>.tmp, fsynced, renamed ---- */
/* 0 ok, -1 error (errno). */
int sm_state_create(struct sm_state *st, const struct sm_config *cfg);
int sm_state_load(const char *path, struct sm_state *st);
int sm_state_save(const char *path, const struct sm_state *st);
void sm_state_deinit(struct sm_state *st);

/* ---- acknowledgement log: one O_APPEND write(2) per acknowledged op ---- */
/* A record names (cycle, thread, op index); thread SM_ACK_START carries the
 * run's start time t0 and is written before any operation is issued. */
#define SM_ACK_START 0xffffu
int sm_ack_open(const char *path);
/* 0 ok, -1 error. One write(2) of one 24-byte record. */
int sm_ack_write(int fd, uint32_t cycle, uint32_t thread, uint64_t value);
/* Reads the records of `cycle`: acked[t] = number of acknowledged
 * operations of thread t (0 if none), *t0 and *started (whether the start
 * record is there). A torn or foreign record is skipped. 0 ok, -1 error. */
int sm_ack_read(const char *path, uint32_t cycle, uint32_t threads, uint64_t *acked, uint64_t *t0,
                bool *started);
