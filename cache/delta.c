/*
 * delta.c - incr/decr with memcached 1.6 semantics: the value is parsed the
 * way memcached's safe_strtoull parses item data, the result is written in
 * place (padded with spaces) when it fits and nobody else holds the item,
 * and into a new item otherwise. Called by worker threads.
 */
#include <string.h>

#include "cache/cache_int.h"
#include "common/assert.h"
#include "common/mc_text.h"

size_t delta_format(uint64_t v, char *buf)
{
    char tmp[CACHE_DELTA_DIGITS];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

enum cache_result delta_apply_locked(struct cache *c, struct cache_shard *sh, uint64_t hv,
                                     struct item *it, bool incr, uint64_t delta, rel_time_t now,
                                     uint64_t *result, struct item **out)
{
    char num[CACHE_DELTA_DIGITS];
    uint64_t value;
    enum cache_result res = CACHE_OK;
    if (it->nvalue == 0 || !mc_delta_parse(it->data + it->nkey, it->nvalue, &value))
        return CACHE_NON_NUMERIC;
    if (incr) {
        value += delta; /* wraps modulo 2^64, as memcached */
        sh->cls[item_clsid(it)].st.incr_hits++;
    } else {
        value = delta > value ? 0 : value - delta;
        sh->cls[item_clsid(it)].st.decr_hits++;
    }
    size_t len = delta_format(value, num);
    if (len <= it->nvalue && atomic_load_explicit(&it->refcount, memory_order_acquire) == 1) {
        /* Only the table holds it, and new references need our lock:
         * nobody can be reading the bytes we overwrite. The acquire pairs
         * with the release in cache_release(), so the last reader's reads
         * happen before our writes. */
        char *v = it->data + it->nkey;
        memcpy(v, num, len);
        memset(v + len, ' ', it->nvalue - len);
        item_set_cas(it, cache_next_cas(c));
        lru_touch_locked(c, sh, it, now, false);
    } else {
        /* Someone is sending the old value, or the number grew. */
        size_t nvalue = len <= it->nvalue ? it->nvalue : len;
        uint32_t flags = item_flags_get(it);
        size_t total = item_total(it->nkey, nvalue, flags);
        size_t usable = mem_usable(total);
        unsigned clsid = item_class_of_size(total);
        item_ref(it); /* keeps the eviction walk off it while we allocate */
        void *mem = budget_alloc(c, sh, true, usable, clsid, now, &res);
        atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_relaxed); /* still linked */
        if (mem == NULL)
            return res;
        struct item *nit =
            item_init(mem, it->data, it->nkey, flags, item_exptime_load(it), nvalue, now);
        char *v = nit->data + nit->nkey;
        memcpy(v, num, len);
        memset(v + len, ' ', nvalue - len);
        shard_unlink_locked(c, sh, it);
        nit->cas = cache_next_cas(c);
        shard_link_locked(sh, nit, hv, now);
        it = nit;
    }
    *result = value;
    *out = it;
    return CACHE_OK;
}

enum cache_result cache_delta(struct cache *c, const char *key, size_t nkey, bool incr,
                              uint64_t delta, uint64_t cas_in, uint64_t *result, uint64_t *cas_out)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    enum cache_result res;
    enum cache_miss miss;
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *it = shard_find_locked(c, sh, hv, key, nkey, now, &miss);
    uint64_t value;
    if (it == NULL) {
        res = CACHE_NOT_FOUND;
    } else if (it->nvalue == 0) {
        res = CACHE_NON_NUMERIC; /* memcached checks this before the CAS */
    } else if (cas_in != 0 && item_visible_cas(it) != cas_in) {
        res = CACHE_EXISTS;
    } else {
        res = delta_apply_locked(c, sh, hv, it, incr, delta, now, &value, &it);
        if (res == CACHE_OK) {
            if (result != NULL)
                *result = value;
            if (cas_out != NULL)
                *cas_out = item_visible_cas(it);
        }
    }
    shard_leave(sh);
    return res;
}
