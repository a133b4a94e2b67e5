/*
 * cmd.c - protocol-independent command execution (see cmd.h).
 *
 *   client ─► proto_text (parse) ─► cmd_* ─► L1 cache (cache/)
 *                                      │
 *                                      └─► later: L2 pool, backends and
 *                                          per-prefix policies slot in here,
 *                                          so every protocol gets them
 *
 * Each function does the cache operation and counts it in the calling
 * worker's shard, with memcached's counter semantics. Worker threads.
 */
#include "proxy/cmd.h"

#include "common/clock.h"
#include "proxy/proxy.h"
#include "proxy/worker.h"

static struct cache *cache_of(struct worker *w)
{
    return w->proxy->cache;
}

struct item *cmd_get(struct worker *w, const char *key, size_t nkey, bool touch, rel_time_t exptime)
{
    enum cache_miss miss;
    struct item *it;
    if (touch) {
        /* memcached counts gat/gats keys as touches only, not in cmd_get */
        it = cache_get_and_touch(cache_of(w), key, nkey, exptime, &miss);
        STAT_INCR(&w->stats, cmd_touch);
        if (it != NULL)
            STAT_INCR(&w->stats, touch_hits);
        else
            STAT_INCR(&w->stats, touch_misses);
    } else {
        it = cache_get(cache_of(w), key, nkey, &miss);
        STAT_INCR(&w->stats, cmd_get);
        if (it != NULL)
            STAT_INCR(&w->stats, get_hits);
        else
            STAT_INCR(&w->stats, get_misses);
    }
    if (miss == CACHE_MISS_EXPIRED)
        STAT_INCR(&w->stats, get_expired);
    else if (miss == CACHE_MISS_FLUSHED)
        STAT_INCR(&w->stats, get_flushed);
    return it;
}

struct item *cmd_reserve(struct worker *w, const char *key, size_t nkey, uint32_t flags,
                         rel_time_t exptime, size_t nbytes, enum cache_store_mode mode,
                         enum cache_result *res)
{
    struct item *it = cache_reserve(cache_of(w), key, nkey, flags, exptime, nbytes, res);
    if (it != NULL)
        return it;
    if (*res == CACHE_TOO_LARGE)
        STAT_INCR(&w->stats, store_too_large);
    else
        STAT_INCR(&w->stats, store_no_memory);
    cache_reserve_failed(cache_of(w), key, nkey, mode);
    return NULL;
}

enum cache_result cmd_store(struct worker *w, struct item *it, enum cache_store_mode mode,
                            uint64_t cas_in, uint64_t *cas_out)
{
    return cmd_meta_store(w, it, mode, cas_in, 0, cas_out);
}

void cmd_store_aborted(struct worker *w, struct item *it)
{
    STAT_INCR(&w->stats, cmd_set);
    cache_release(cache_of(w), it);
}

enum cache_result cmd_delete(struct worker *w, const char *key, size_t nkey, uint64_t cas_in)
{
    enum cache_result r = cache_delete(cache_of(w), key, nkey, cas_in);
    if (r == CACHE_OK)
        STAT_INCR(&w->stats, delete_hits);
    else if (r == CACHE_NOT_FOUND)
        STAT_INCR(&w->stats, delete_misses);
    return r;
}

enum cache_result cmd_touch(struct worker *w, const char *key, size_t nkey, rel_time_t exptime)
{
    enum cache_result r = cache_touch(cache_of(w), key, nkey, exptime);
    STAT_INCR(&w->stats, cmd_touch);
    if (r == CACHE_OK)
        STAT_INCR(&w->stats, touch_hits);
    else
        STAT_INCR(&w->stats, touch_misses);
    return r;
}

enum cache_result cmd_delta(struct worker *w, const char *key, size_t nkey, bool incr,
                            uint64_t delta, uint64_t cas_in, uint64_t *value, uint64_t *cas_out)
{
    enum cache_result r = cache_delta(cache_of(w), key, nkey, incr, delta, cas_in, value, cas_out);
    if (r == CACHE_NOT_FOUND) {
        if (incr)
            STAT_INCR(&w->stats, incr_misses);
        else
            STAT_INCR(&w->stats, decr_misses);
    } else if (r == CACHE_OK) {
        if (incr)
            STAT_INCR(&w->stats, incr_hits);
        else
            STAT_INCR(&w->stats, decr_hits);
    }
    return r;
}

static void count_miss(struct worker *w, enum cache_miss miss)
{
    if (miss == CACHE_MISS_EXPIRED)
        STAT_INCR(&w->stats, get_expired);
    else if (miss == CACHE_MISS_FLUSHED)
        STAT_INCR(&w->stats, get_flushed);
}

struct item *cmd_meta_get(struct worker *w, const char *key, size_t nkey,
                          const struct cache_meta_ttl *ttl, bool no_bump,
                          struct cache_meta_info *info)
{
    enum cache_miss miss;
    struct item *it = cache_meta_get(cache_of(w), key, nkey, ttl, no_bump, info, &miss);
    if (it != NULL && ttl->fail_pos >= 0)
        return it; /* memcached counts a failed hit nowhere (a miss, yes) */
    if (it != NULL && ttl->touch_pos >= 0) {
        STAT_INCR(&w->stats, cmd_touch);
        STAT_INCR(&w->stats, touch_hits);
    } else if (it != NULL) {
        STAT_INCR(&w->stats, cmd_get);
        STAT_INCR(&w->stats, get_hits);
    } else {
        STAT_INCR(&w->stats, cmd_get);
        STAT_INCR(&w->stats, get_misses);
        count_miss(w, miss);
    }
    return it;
}

enum cache_result cmd_meta_store(struct worker *w, struct item *it, enum cache_store_mode mode,
                                 uint64_t cas_in, unsigned mflags, uint64_t *cas_out)
{
    STAT_INCR(&w->stats, cmd_set);
    enum cache_result r = cache_meta_commit(cache_of(w), it, mode, cas_in, mflags, cas_out);
    if (mode == CACHE_CAS) {
        if (r == CACHE_STORED)
            STAT_INCR(&w->stats, cas_hits);
        else if (r == CACHE_EXISTS)
            STAT_INCR(&w->stats, cas_badval);
        else if (r == CACHE_NOT_FOUND)
            STAT_INCR(&w->stats, cas_misses);
    }
    if (r == CACHE_NO_MEMORY)
        STAT_INCR(&w->stats, store_no_memory);
    else if (r == CACHE_TOO_LARGE)
        STAT_INCR(&w->stats, store_too_large);
    return r;
}

enum cache_result cmd_meta_delete(struct worker *w, const char *key, size_t nkey, bool has_cas,
                                  uint64_t cas_in, bool invalidate, bool new_ttl,
                                  rel_time_t exptime)
{
    enum cache_result r =
        cache_meta_delete(cache_of(w), key, nkey, has_cas, cas_in, invalidate, new_ttl, exptime);
    if (r == CACHE_OK && !invalidate)
        STAT_INCR(&w->stats, delete_hits);
    else if (r == CACHE_NOT_FOUND || r == CACHE_EXISTS)
        STAT_INCR(&w->stats, delete_misses);
    return r;
}

enum cache_result cmd_meta_delta(struct worker *w, const char *key, size_t nkey,
                                 struct cache_meta_arith *a)
{
    enum cache_result r = cache_meta_delta(cache_of(w), key, nkey, a);
    if (r == CACHE_NOT_FOUND) {
        if (a->incr)
            STAT_INCR(&w->stats, incr_misses);
        else
            STAT_INCR(&w->stats, decr_misses);
    } else if (r == CACHE_OK && !a->created) {
        if (a->incr)
            STAT_INCR(&w->stats, incr_hits);
        else
            STAT_INCR(&w->stats, decr_hits);
    }
    return r;
}

struct item *cmd_meta_debug(struct worker *w, const char *key, size_t nkey,
                            struct cache_meta_info *info)
{
    STAT_INCR(&w->stats, cmd_meta);
    return cache_meta_peek(cache_of(w), key, nkey, info);
}

void cmd_flush_all(struct worker *w, int64_t delay)
{
    STAT_INCR(&w->stats, cmd_flush);
    /* memcached: a delay of 0 or less flushes now; otherwise the delay is
     * an exptime (relative or absolute), converted the same way. */
    rel_time_t at = delay > 0 ? clock_exptime(delay) : 0;
    cache_flush(cache_of(w), at);
}
