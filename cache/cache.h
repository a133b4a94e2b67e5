/*
 * cache.h - the L1 item store: a memory-bounded, thread-safe hash table with
 * LRU eviction, TTL, CAS and flush_all, with memcached 1.6 semantics.
 *
 * A library: no sockets, no threads of its own, no event loop. Daemon worker
 * threads call every function concurrently; the daemon's timer calls
 * cache_maintain() for bounded background work (reclaiming expired items,
 * moving hash buckets while the table grows).
 *
 * Concurrency: the key space is split into lock stripes ("shards") by key
 * hash; each shard owns its hash table, LRU list and counters, and one mutex
 * guards them. No operation takes more than one shard lock at a time, except
 * eviction fallback, which only try-locks other shards. The memory budget is
 * global (one atomic counter).
 *
 * Items: one allocation holding header, key and value followed by "\r\n".
 * Items are reference-counted: a reference returned by a function below is
 * owned by the caller until cache_release() (or cache_commit(), which takes
 * it). An item unlinked while referenced (deleted, replaced, evicted,
 * flushed) stays readable until its last reference goes.
 *
 * Time is relative seconds (common/clock.h rel_time_t); exptime 0 means
 * never, any exptime <= now means expired. Converting client exptimes is the
 * caller's job (clock_exptime()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/status.h"

struct cache;
struct item;
struct cache_item_view;

#define CACHE_KEY_MAX 250
/* Size classes reported in stats; item sizes map onto mem.h classes. */
#define CACHE_CLASSES_MAX 128

typedef rel_time_t (*cache_clock_fn)(void);

struct cache_config {
    size_t max_bytes;         /* budget for items, counted in allocator bytes */
    size_t item_size_max;     /* largest item (header+key+value+flags) accepted;
                                   0 = default (1 MiB, capped at max_bytes) */
    bool evictions;           /* false: refuse stores when full (memcached -M) */
    unsigned shards;          /* lock stripes, power of two; 0 = default (64) */
    unsigned hashpower_init;  /* initial buckets = 2^hashpower per cache; 0 = default (16) */
    rel_time_t bump_interval; /* an item moves to the LRU head at most once per
                                   this many seconds; 0 = default (2) */
    cache_clock_fn clock;     /* NULL = clock_now(); tests pass a fake clock */
    /* Called for each item evicted from an LRU tail to make room (not for
     * expired or flushed items reclaimed on the way), with the item's view
     * (as cache_walk_step's visit), under its shard's lock, from whichever
     * thread evicts: copy what you need, call nothing of the cache. NULL:
     * nobody is told. (The proxy's `watch evictions`.) */
    void (*on_evict)(void *arg, const struct cache_item_view *v);
    void *evict_arg; /* passed to on_evict */
};

/* Results of operations (outcomes, not failures). */
enum cache_result {
    CACHE_OK = 0, /* found / done */
    CACHE_STORED,
    CACHE_NOT_STORED,  /* add on existing, replace/append/prepend on missing */
    CACHE_EXISTS,      /* cas mismatch */
    CACHE_NOT_FOUND,   /* miss (cas, delete, touch, delta) */
    CACHE_NON_NUMERIC, /* incr/decr on a value that is not a decimal number */
    CACHE_TOO_LARGE,   /* item over item_size_max */
    CACHE_NO_MEMORY,   /* nothing could be evicted (or evictions off) */
};

/* Why a lookup missed; feeds get_misses / get_expired / get_flushed. */
enum cache_miss {
    CACHE_MISS_NONE = 0, /* it was a hit */
    CACHE_MISS_ABSENT,
    CACHE_MISS_EXPIRED,
    CACHE_MISS_FLUSHED,
};

enum cache_store_mode {
    CACHE_SET,
    CACHE_ADD,
    CACHE_REPLACE,
    CACHE_APPEND,  /* keeps the stored item's flags and exptime */
    CACHE_PREPEND, /* keeps the stored item's flags and exptime */
    CACHE_CAS,
    /* a copy of a lower tier's record (an item from cache_reserve_fill
     * whose version is cas_in): stored unless the linked item is as new
     * (its CAS >= cas_in). A late fill never replaces a newer value. Not
     * counted as a client's store. */
    CACHE_FILL,
};

/* Per size class counters, summed over shards. */
struct cache_class_stats {
    size_t chunk_size;        /* allocator bytes of an item of this class */
    uint64_t number;          /* items linked */
    uint64_t bytes;           /* allocator bytes of linked items */
    uint64_t bytes_requested; /* header+key+value+flags of linked items */
    rel_time_t age; /* now - last access of the LRU-oldest item in this class (0 if none) */
    uint64_t evicted, evicted_nonzero, evicted_unfetched, evicted_active;
    rel_time_t evicted_time; /* seconds since last access of the last evicted item */
    uint64_t expired_unfetched, reclaimed, outofmemory;
    uint64_t get_hits, cmd_set, delete_hits, incr_hits, decr_hits;
    uint64_t cas_hits, cas_badval, touch_hits;
    uint64_t crawler_reclaimed, crawler_items_checked;
};

struct cache_stats {
    uint64_t curr_items, total_items;
    uint64_t bytes; /* allocator bytes of linked items */
    uint64_t limit_maxbytes;
    uint64_t evictions, evicted_unfetched, evicted_active, expired_unfetched;
    uint64_t reclaimed;        /* expired items whose memory was reused/freed */
    uint64_t hash_bytes;       /* memory of the hash tables */
    unsigned hash_power_level; /* log2 of buckets per shard (largest shard) */
    bool hash_is_expanding;
    uint64_t malloced; /* allocator bytes of all items (linked or referenced) */
};

/*
 * Creates a cache. Returns ST_OK and sets *out, or ST_NOMEM / ST_INVAL
 * (shards not a power of two, item_size_max > max_bytes, ...).
 */
enum st_status cache_create(struct cache **out, const struct cache_config *cfg);
/* Frees everything. Accepts NULL and *c == NULL; sets *c to NULL.
 * REQUIRES: no references outstanding, no concurrent callers. */
void cache_destroy(struct cache **c);

/* ---- lookups: each returns a reference the caller must release ---- */

/*
 * Looks a key up. Returns the item (a new reference) on a hit, NULL on a
 * miss; *miss (if not NULL) says why. Expired or flushed items found are
 * unlinked on the way (lazy expiry). A hit may move the item in the LRU.
 * Counts get_hits per class.
 */
struct item *cache_get(struct cache *c, const char *key, size_t nkey, enum cache_miss *miss);

/* As cache_get, and sets the exptime of a hit (gat/gats). Counts touch_hits. */
struct item *cache_get_and_touch(struct cache *c, const char *key, size_t nkey, rel_time_t exptime,
                                 enum cache_miss *miss);

/* ---- storage: reserve, fill, commit ---- */

/*
 * Allocates an unlinked item for key with room for exactly nvalue bytes
 * of value, evicting from the LRU as needed. Returns the item (the
 * caller's reference) or NULL with *res set to CACHE_TOO_LARGE or
 * CACHE_NO_MEMORY. The caller writes nvalue bytes at item_data_mut(); the
 * cache checks nothing about them.
 * The reserved item counts against max_bytes until committed or released.
 */
struct item *cache_reserve(struct cache *c, const char *key, size_t nkey, uint32_t flags,
                           rel_time_t exptime, size_t nvalue, enum cache_result *res);

/*
 * cache_reserve() for CACHE_FILL: an item that carries `version`, a lower
 * tier's, as the CAS clients see (stored after the value: 8 bytes more).
 */
struct item *cache_reserve_fill(struct cache *c, const char *key, size_t nkey, uint32_t flags,
                                rel_time_t exptime, size_t nvalue, uint64_t version,
                                enum cache_result *res);

/*
 * Links a reserved item according to mode; takes the caller's reference in
 * every case. For CACHE_CAS, cas_in is the unique to compare; for
 * CACHE_APPEND/CACHE_PREPEND a non-zero cas_in must match too (CACHE_EXISTS
 * otherwise; memcached's binary protocol sends one). On success
 * the item gets a new CAS unique, written to *cas_out if not NULL.
 * Returns CACHE_STORED, CACHE_NOT_STORED (add/replace/append/prepend
 * preconditions), CACHE_EXISTS / CACHE_NOT_FOUND (cas), CACHE_TOO_LARGE or
 * CACHE_NO_MEMORY (append/prepend result too large / no memory).
 * SET that fails for lack of memory removes the old value, as memcached
 * does, so a stale value never survives a failed overwrite: see
 * cache_reserve_failed().
 */
enum cache_result cache_commit(struct cache *c, struct item *it, enum cache_store_mode mode,
                               uint64_t cas_in, uint64_t *cas_out);

/* After cache_reserve() failed for a SET: unlinks the key's old value. */
void cache_reserve_failed(struct cache *c, const char *key, size_t nkey,
                          enum cache_store_mode mode);

/* Drops a reference. Accepts NULL. Frees the item if it was the last one
 * and the item is unlinked (also used to discard a reserved item). */
void cache_release(struct cache *c, struct item *it);

/* ---- other commands ---- */

/* DELETE. cas_in 0 = unconditional. CACHE_OK, CACHE_NOT_FOUND, CACHE_EXISTS. */
enum cache_result cache_delete(struct cache *c, const char *key, size_t nkey, uint64_t cas_in);

/* TOUCH: sets a new exptime. CACHE_OK or CACHE_NOT_FOUND. Does not change CAS. */
enum cache_result cache_touch(struct cache *c, const char *key, size_t nkey, rel_time_t exptime);

/*
 * INCR/DECR with memcached semantics: the value must parse as an unsigned
 * 64-bit decimal (memcached's safe_strtoull: leading spaces allowed, digits,
 * then end or a whitespace byte); incr wraps at 2^64, decr floors at 0. The
 * result keeps the item's length when it fits, padded with spaces on the
 * right (memcached's in-place update); when it does not fit the item grows
 * to the length of the number. Flags and exptime are kept; CAS changes.
 * A non-zero cas_in must equal the item's CAS (CACHE_EXISTS otherwise);
 * as in memcached, an empty value is refused before the CAS is compared
 * (CACHE_NON_NUMERIC even on a mismatch), any other value after.
 * Returns CACHE_OK with *result (and *cas_out if not NULL), CACHE_NOT_FOUND,
 * CACHE_NON_NUMERIC (also for an empty value or one over 20 digits+padding
 * that does not parse), CACHE_NO_MEMORY.
 */
enum cache_result cache_delta(struct cache *c, const char *key, size_t nkey, bool incr,
                              uint64_t delta, uint64_t cas_in, uint64_t *result, uint64_t *cas_out);

/*
 * FLUSH_ALL: at == 0 or at <= now invalidates every item stored before this
 * call; otherwise every item stored before time `at` becomes invalid when
 * the clock reaches `at` (items stored at or after `at` survive). A later
 * flush replaces a pending delayed one. at == CLOCK_LONG_AGO (a time before
 * the process started) invalidates nothing, as nothing is that old, and
 * drops a pending delayed flush (memcached 1.6.18).
 * Items a flush has invalidated stay invalid whatever later flushes say
 * (memcached keeps one cutoff that the next flush_all overwrites, which
 * can bring them back; see docs/COMPATIBILITY.md).
 */
void cache_flush(struct cache *c, rel_time_t at);

/* ---- meta protocol (cache/meta.c): stale items and win tokens ----
 *
 * memcached's meta commands add two item states: STALE (marked by an
 * invalidating delete or an invalidating store with an older CAS; the
 * item is still served) and TOKEN_SENT (one client has been told it "won"
 * the right to refresh the item; the others are told so, until a store
 * replaces the item). A fetch that finds a stale item whose token was not
 * sent yet wins it. All of it is decided under the shard lock, so exactly
 * one concurrent client wins.
 */

/* Flags of cache_meta_commit(). */
#define CACHE_META_INVALIDATE \
    0x1u                           /* CACHE_CAS: an older, non-zero cas_in stores
                                      the item marked stale, with the old TTL and
                                      token (cas_in 0 is a mismatch, as without) */
#define CACHE_META_KEY_BINARY 0x2u /* the key came base64-encoded (echoed so) */

/* cache_commit() with meta options; cache_commit(..) is this with 0. */
enum cache_result cache_meta_commit(struct cache *c, struct item *it, enum cache_store_mode mode,
                                    uint64_t cas_in, unsigned mflags, uint64_t *cas_out);

/*
 * The TTL-related flags of a meta request. memcached acts on them left to
 * right, so their positions on the line (any increasing numbers, -1 when
 * absent) matter: "t T30" reports the old TTL, "T30 t" the new one, and R
 * compares against the TTL as T left it.
 */
struct cache_meta_ttl {
    int t_pos;       /* t: report the TTL here */
    int touch_pos;   /* T: set the exptime to touch_exptime */
    int vivify_pos;  /* N: on a miss an empty item was created; set its
                        exptime to vivify_exptime and win */
    int recache_pos; /* R: win if the exptime is set, below recache_time,
                        and no token was sent */
    int fail_pos;    /* a flag here fails the request (mg's too-long
                        opaque): memcached has already acted on the flags
                        before it, and acts on none from it on */
    rel_time_t touch_exptime, vivify_exptime, recache_time;
};

/* What a meta lookup saw (state before this request unless noted). */
struct cache_meta_info {
    bool created;    /* the item was created by vivify (N) */
    bool won;        /* this request won the token (W); now TOKEN_SENT */
    bool token_sent; /* another request holds the token (Z) */
    bool stale;      /* X */
    bool fetched;    /* h: fetched before */
    bool key_binary; /* stored with a base64 key */
    int64_t ttl;     /* t: -1 for no TTL, else the remaining seconds */
    rel_time_t idle; /* l: seconds since the last access */
};

#define CACHE_META_TTL_NONE         \
    {                               \
        -1, -1, -1, -1, -1, 0, 0, 0 \
    }

/*
 * Meta get (mg). On a hit returns a reference and fills *info; applies
 * T/N/R as described above; marks the item fetched and bumps it unless
 * no_bump (u). On a miss with vivify_pos >= 0, creates and links an empty
 * item (flags 0) and returns it with info->created. Counts get_hits, or
 * touch_hits when T is given. NULL on a miss (*miss says why) or when a
 * vivify allocation fails.
 * With ttl->fail_pos >= 0 (the request fails there, as memcached 1.6.18
 * finds out only while wording the reply): the item is still created (N)
 * and the flags before fail_pos are acted on, but no token is handed out,
 * nothing is counted, and the item is bumped and marked fetched only
 * unless no_bump. The reference returned is the caller's to release.
 */
struct item *cache_meta_get(struct cache *c, const char *key, size_t nkey,
                            const struct cache_meta_ttl *ttl, bool no_bump,
                            struct cache_meta_info *info, enum cache_miss *miss);

/* me: looks an item up without bumping or marking it fetched. Returns a
 * reference and fills *info (ttl, idle, fetched, key_binary), or NULL. */
struct item *cache_meta_peek(struct cache *c, const char *key, size_t nkey,
                             struct cache_meta_info *info);

/*
 * md. has_cas: the item's CAS must equal cas_in (CACHE_EXISTS). With
 * invalidate the item is kept, marked stale, its token re-armed, its CAS
 * renewed and, if new_ttl, its exptime set (an item others hold is
 * replaced by a marked copy, so a held item's CAS never changes);
 * otherwise it is unlinked. CACHE_OK, CACHE_NOT_FOUND, CACHE_EXISTS, or
 * CACHE_NO_MEMORY when that copy cannot be made.
 */
enum cache_result cache_meta_delete(struct cache *c, const char *key, size_t nkey, bool has_cas,
                                    uint64_t cas_in, bool invalidate, bool new_ttl,
                                    rel_time_t exptime);

/* ma: incr/decr with autovivify and TTL flags. */
struct cache_meta_arith {
    bool incr;
    uint64_t delta;
    uint64_t cas_in;           /* 0: no compare */
    bool vivify;               /* N: a miss creates the item holding `initial` */
    uint64_t initial;          /* J */
    struct cache_meta_ttl ttl; /* t, T, N (recache_pos unused) */
    /* out, on CACHE_OK: */
    uint64_t value; /* the result, or `initial` when created */
    uint64_t cas;
    bool created;
    int64_t ttl_reported; /* t, as cache_meta_info.ttl */
};

/*
 * cache_delta() with the meta options. T and N(created) change the item's
 * exptime, except when the result grew into a new item, which keeps the
 * old TTL (memcached 1.6.18 sets it on the replaced item). A created item
 * is counted as neither hit nor miss. Returns CACHE_OK, CACHE_NOT_FOUND,
 * CACHE_EXISTS, CACHE_NON_NUMERIC or CACHE_NO_MEMORY.
 */
enum cache_result cache_meta_delta(struct cache *c, const char *key, size_t nkey,
                                   struct cache_meta_arith *a);

/* ---- maintenance and stats ---- */

/*
 * Bounded background work: examines at most `budget` hash buckets (round
 * robin over shards) to reclaim expired and flushed items, and migrates
 * buckets of tables that are growing. Call from a timer, e.g. every 100 ms.
 * Returns the number of items reclaimed.
 */
size_t cache_maintain(struct cache *c, size_t budget);

/* Fills *st with global counters (sums over shards). */
void cache_stats_read(const struct cache *c, struct cache_stats *st);

/*
 * Fills cls[i] for every class i in 0..CACHE_CLASSES_MAX-1 (zeroed when the
 * class holds and held nothing; cls[0] is always zero as ids start at 1).
 * Class ids match item_class(). Returns the highest class id in use + 1 (0
 * if none).
 */
unsigned cache_class_stats_read(const struct cache *c, struct cache_class_stats *cls);

/* Zeroes the resettable counters (stats reset): hits, sets, evictions, ... */
void cache_stats_reset(struct cache *c);

/* Changes the memory budget at runtime (evicts lazily on later stores;
 * cache_shrink() evicts down to it now). */
void cache_set_max_bytes(struct cache *c, size_t max_bytes);

/*
 * Evicts from the LRU tails of every shard until the items fit the budget
 * (cache_memlimit lowering it). Referenced items cannot go at once. Returns
 * the allocator bytes freed. Takes each shard lock in turn.
 */
size_t cache_shrink(struct cache *c);

/* ---- walking the items (cache/walk.c): dumps and the crawler ---- */

/* One item as a dump sees it; key valid only during the callback. */
struct cache_item_view {
    const char *key;
    size_t nkey;
    size_t nvalue;
    size_t size; /* header, key, value and flags: the item's total */
    uint32_t flags;
    rel_time_t exptime; /* 0: never */
    rel_time_t atime;   /* last access */
    uint64_t cas;
    unsigned clsid;
    bool fetched;
    bool key_binary; /* stored with a base64 key (meta b flag) */
};

/* Called for each item, under its shard's lock: copy what you need, call
 * nothing of the cache. */
typedef void (*cache_visit_fn)(void *arg, const struct cache_item_view *v);

/*
 * A resumable walk over every item, by hash position, that sees each item
 * linked for the whole walk exactly once (even while tables grow) and
 * reclaims the expired and flushed items it meets (counted per class as
 * crawler_reclaimed; every item examined as crawler_items_checked). Zero it
 * to start.
 */
struct cache_walk {
    unsigned shard;
    unsigned power; /* the shard's table size (log2) when its walk began */
    size_t pos;     /* next position in [0, 2^power) */
    bool in_shard;
    uint64_t checked, reclaimed;
};

/*
 * Walks up to `positions` hash positions, calling visit (may be NULL) for
 * each live item whose class is selected by `classes` (NULL: all; else a
 * CACHE_CLASSES_MAX array of flags). Returns true while items remain.
 */
bool cache_walk_step(struct cache *c, struct cache_walk *w, size_t positions, const bool *classes,
                     cache_visit_fn visit, void *arg);

/* Visit for cache_dump_class: false stops the dump. */
typedef bool (*cache_dump_fn)(void *arg, const struct cache_item_view *v);

/*
 * `stats cachedump`: visits the live items of class clsid from each
 * shard's most recently used end, at most `limit` (0: no limit) or until
 * fn returns false. Items with base64 keys are skipped. Returns the number
 * visited.
 */
size_t cache_dump_class(struct cache *c, unsigned clsid, size_t limit, cache_dump_fn fn, void *arg);

/* Bytes of overhead per item beyond key and value (the header), excluding
 * the 4 bytes that non-zero client flags take, allocator rounding and the
 * hash bucket share. */
size_t cache_item_overhead(void);

/* ---- item accessors: valid while the caller holds a reference ---- */

const char *item_key(const struct item *it);
size_t item_nkey(const struct item *it);
/* Value bytes; no terminator is stored (replies add the "\r\n"). */
const char *item_value(const struct item *it);
size_t item_nvalue(const struct item *it);
/* Writable value area (exactly nvalue bytes) of a reserved, unlinked item. */
char *item_data_mut(struct item *it);
/* Bytes the item was allocated for: header, key, value, flags. */
size_t item_bytes(const struct item *it);
uint32_t item_flags(const struct item *it);
uint64_t item_cas(const struct item *it);
rel_time_t item_exptime(const struct item *it);
/* Size class id (1-based like memcached's slab classes). */
unsigned item_class(const struct item *it);
