/*
 * meta.c - the cache side of memcached's meta commands (see cache.h):
 * lookups that report and change an item's stale/win-token state, create
 * items on a miss (vivify) and act on TTL flags in request order. Every
 * decision about the win token is made under the shard lock, which is what
 * makes exactly one of many concurrent clients win. Worker threads.
 */
#include <string.h>

#include "cache/cache_int.h"
#include "common/assert.h"

static int64_t meta_ttl_of(rel_time_t exptime, rel_time_t now)
{
    /* memcached prints exptime - now as unsigned 32 bits */
    return exptime == 0 ? -1 : (int64_t)(uint32_t)(exptime - now);
}

static int meta_ttl_last(const struct cache_meta_ttl *m)
{
    int last = m->t_pos;
    if (m->touch_pos > last)
        last = m->touch_pos;
    if (m->vivify_pos > last)
        last = m->vivify_pos;
    if (m->recache_pos > last)
        last = m->recache_pos;
    return last;
}

/*
 * Acts on T, N and R in request order, starting from the item's exptime.
 * Returns the exptime the item ends with; *reported gets the TTL where t
 * stands, *won whether N (on a created item) or R gave the token.
 */
static rel_time_t meta_ttl_walk(const struct cache_meta_ttl *m, rel_time_t exptime, bool created,
                                bool token_sent, rel_time_t now, int64_t *reported, bool *won)
{
    rel_time_t cur = exptime;
    int last = meta_ttl_last(m);
    for (int pos = 0; pos <= last && pos != m->fail_pos; pos++) {
        if (pos == m->touch_pos) {
            cur = m->touch_exptime;
        } else if (pos == m->vivify_pos) {
            if (created) {
                cur = m->vivify_exptime;
                *won = true;
            }
        } else if (pos == m->recache_pos) {
            if (!token_sent && !created && cur != 0 && cur < m->recache_time)
                *won = true;
        } else if (pos == m->t_pos) {
            *reported = meta_ttl_of(cur, now);
        }
    }
    return cur;
}

/* Creates and links an empty item for a vivifying miss (value "" or the
 * given bytes). Returns it with one extra reference for the caller, or
 * NULL. REQUIRES: sh's lock; the key is absent. */
static struct item *meta_create_locked(struct cache *c, struct cache_shard *sh, uint64_t hv,
                                       const char *key, size_t nkey, const char *value,
                                       size_t nvalue, rel_time_t now)
{
    enum cache_result res;
    size_t total = item_total(nkey, nvalue, 0);
    if (total > c->item_size_max)
        return NULL;
    void *mem = budget_alloc(c, sh, true, mem_usable(total), item_class_of_size(total), now, &res);
    if (mem == NULL)
        return NULL;
    struct item *it = item_init(mem, key, nkey, 0, 0, nvalue, now);
    memcpy(it->data + nkey, value, nvalue);
    it->cas = cache_next_cas(c);
    item_ref(it); /* the caller's; the first becomes the table's */
    shard_link_locked(sh, it, hv, now);
    return it;
}

/* The item state mg/me report (flags and idle time). REQUIRES: the lock. */
static void meta_info_fill(struct cache_meta_info *info, const struct item *it, rel_time_t now)
{
    info->token_sent = (it->iflags & ITEM_TOKEN_SENT) != 0;
    info->stale = (it->iflags & ITEM_STALE) != 0;
    info->fetched = (it->iflags & ITEM_FETCHED) != 0;
    info->key_binary = (it->iflags & ITEM_KEY_BINARY) != 0;
    info->idle = now >= it->atime ? now - it->atime : 0;
}

struct item *cache_meta_get(struct cache *c, const char *key, size_t nkey,
                            const struct cache_meta_ttl *ttl, bool no_bump,
                            struct cache_meta_info *info, enum cache_miss *miss)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    enum cache_miss why;
    memset(info, 0, sizeof(*info));
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *it = shard_find_locked(c, sh, hv, key, nkey, now, &why);
    if (it != NULL) {
        item_ref(it);
    } else if (ttl->vivify_pos >= 0) {
        it = meta_create_locked(c, sh, hv, key, nkey, "", 0, now);
        info->created = it != NULL;
    }
    if (it != NULL) {
        meta_info_fill(info, it, now);
        info->ttl = meta_ttl_of(item_exptime_load(it), now);
        rel_time_t exptime = meta_ttl_walk(ttl, item_exptime_load(it), info->created,
                                           info->token_sent, now, &info->ttl, &info->won);
        atomic_store_explicit(&it->exptime, exptime, memory_order_relaxed);
        /* A stale item hands its token to the first fetch after the mark. */
        if (info->stale && !info->token_sent)
            info->won = true;
        if (ttl->fail_pos >= 0)
            info->won = false; /* the failed request's reply carries no W */
        if (info->won)
            it->iflags |= ITEM_TOKEN_SENT;
        if (!no_bump)
            lru_touch_locked(c, sh, it, now, true);
        /* memcached counts a failed hit nowhere */
        if (ttl->fail_pos < 0 && ttl->touch_pos >= 0)
            sh->cls[item_clsid(it)].st.touch_hits++;
        else if (ttl->fail_pos < 0)
            sh->cls[item_clsid(it)].st.get_hits++;
    }
    shard_leave(sh);
    if (miss != NULL)
        *miss = it != NULL ? CACHE_MISS_NONE : why;
    return it;
}

struct item *cache_meta_peek(struct cache *c, const char *key, size_t nkey,
                             struct cache_meta_info *info)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    enum cache_miss why;
    memset(info, 0, sizeof(*info));
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *it = shard_find_locked(c, sh, hv, key, nkey, now, &why);
    if (it != NULL) {
        item_ref(it);
        meta_info_fill(info, it, now);
        /* me prints now - exptime (a sign slip memcached 1.6.18 has) */
        rel_time_t exptime = item_exptime_load(it);
        info->ttl = exptime == 0 ? -1 : (int64_t)(int32_t)(now - exptime);
    }
    shard_leave(sh);
    return it;
}

/*
 * Returns the linked item to mark stale in place of `it`: `it` itself when
 * only the table holds it, else a linked copy, so that holders reading its
 * CAS without the lock never see it change (new references need our lock).
 * NULL if the copy cannot be allocated. REQUIRES: sh's lock; it linked.
 */
static struct item *meta_private_locked(struct cache *c, struct cache_shard *sh, uint64_t hv,
                                        struct item *it, rel_time_t now)
{
    if (atomic_load_explicit(&it->refcount, memory_order_acquire) == 1)
        return it;
    enum cache_result res;
    item_ref(it); /* keeps the eviction walk off it while we allocate */
    void *mem = budget_alloc(c, sh, true, item_usable(it), item_clsid(it), now, &res);
    atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_relaxed); /* still linked */
    if (mem == NULL)
        return NULL;
    struct item *nit = item_init(mem, it->data, it->nkey, item_flags_get(it), item_exptime_load(it),
                                 it->nvalue, now);
    memcpy(nit->data + nit->nkey, it->data + it->nkey, it->nvalue);
    nit->iflags = (uint8_t)(it->iflags & ITEM_META_BITS);
    nit->versioned = it->versioned;
    if (it->versioned) {
        uint64_t v = item_visible_cas(it);
        memcpy(nit->data + item_version_offset(nit), &v, sizeof(v));
    }
    nit->cas = it->cas;
    shard_unlink_locked(c, sh, it);
    shard_link_locked(sh, nit, hv, now);
    return nit;
}

enum cache_result cache_meta_delete(struct cache *c, const char *key, size_t nkey, bool has_cas,
                                    uint64_t cas_in, bool invalidate, bool new_ttl,
                                    rel_time_t exptime)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    enum cache_result res = CACHE_OK;
    enum cache_miss miss;
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *it = shard_find_locked(c, sh, hv, key, nkey, now, &miss);
    if (it == NULL) {
        res = CACHE_NOT_FOUND;
    } else if (has_cas && cas_in != item_visible_cas(it)) {
        res = CACHE_EXISTS;
    } else if (invalidate && (it = meta_private_locked(c, sh, hv, it, now)) == NULL) {
        res = CACHE_NO_MEMORY;
    } else if (invalidate) {
        if (new_ttl)
            atomic_store_explicit(&it->exptime, exptime, memory_order_relaxed);
        it->iflags |= ITEM_STALE;
        it->iflags &= (uint8_t)~ITEM_TOKEN_SENT; /* the next fetch wins */
        item_set_cas(it, cache_next_cas(c));
    } else {
        sh->cls[item_clsid(it)].st.delete_hits++;
        shard_unlink_locked(c, sh, it);
    }
    shard_leave(sh);
    return res;
}

enum cache_result cache_meta_delta(struct cache *c, const char *key, size_t nkey,
                                   struct cache_meta_arith *a)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    enum cache_result res = CACHE_OK;
    enum cache_miss miss;
    a->created = false;
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *it = shard_find_locked(c, sh, hv, key, nkey, now, &miss);
    struct item *cur = NULL;
    if (it == NULL) {
        if (!a->vivify) {
            res = CACHE_NOT_FOUND;
            goto out;
        }
        char num[CACHE_DELTA_DIGITS];
        size_t len = delta_format(a->initial, num);
        cur = meta_create_locked(c, sh, hv, key, nkey, num, len, now);
        if (cur == NULL) {
            res = CACHE_NO_MEMORY;
            goto out;
        }
        atomic_fetch_sub_explicit(&cur->refcount, 1, memory_order_relaxed); /* still linked */
        a->created = true;
        a->value = a->initial;
    } else if (it->nvalue == 0) {
        res = CACHE_NON_NUMERIC; /* memcached checks this before the CAS */
        goto out;
    } else if (a->cas_in != 0 && item_visible_cas(it) != a->cas_in) {
        res = CACHE_EXISTS;
        goto out;
    } else {
        res = delta_apply_locked(c, sh, hv, it, a->incr, a->delta, now, &a->value, &cur);
        if (res != CACHE_OK)
            goto out;
    }
    a->cas = item_visible_cas(cur);
    a->ttl_reported = 0;
    bool won = false;
    rel_time_t exptime = meta_ttl_walk(&a->ttl, item_exptime_load(cur), a->created, true, now,
                                       &a->ttl_reported, &won);
    /* A grown result is a new item; memcached sets T on the old one. */
    if (a->created || cur == it)
        atomic_store_explicit(&cur->exptime, exptime, memory_order_relaxed);
out:
    shard_leave(sh);
    return res;
}
