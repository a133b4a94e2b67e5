/*
 * flush.c - flush_all. A flush never walks the items: it records a CAS
 * cutoff (every item whose CAS is below it is invalid, and lookups, the
 * eviction walk and cache_maintain drop such items lazily). A delayed flush
 * is kept pending until some operation sees its time arrive and turns it
 * into a cutoff. The cutoff only grows, so a later flush never brings
 * back what an earlier one hid. Called by worker threads.
 */
#include "cache/cache_int.h"

/* REQUIRES: flush_lock. Invalidates every item with a CAS handed out so
 * far. Items committed concurrently may land on either side. */
static void flush_cut_locked(struct cache *c)
{
    uint64_t cutoff = atomic_load_explicit(&c->cas_last, memory_order_relaxed) + 1;
    if (cutoff > atomic_load_explicit(&c->flush_cutoff, memory_order_relaxed))
        atomic_store_explicit(&c->flush_cutoff, cutoff, memory_order_release);
}

void flush_apply_pending(struct cache *c, rel_time_t now)
{
    /* Threads that saw the pending time arrive wait here until the cutoff
     * is in place, so none of them hands out a CAS that the cutoff would
     * wrongly cover: a store at or after `at` survives the flush. */
    pthread_mutex_lock(&c->flush_lock);
    rel_time_t at = atomic_load_explicit(&c->flush_pending, memory_order_relaxed);
    if (at != 0 && now >= at) {
        flush_cut_locked(c);
        atomic_store_explicit(&c->flush_pending, 0, memory_order_release);
    }
    pthread_mutex_unlock(&c->flush_lock);
}

void cache_flush(struct cache *c, rel_time_t at)
{
    rel_time_t now = c->clock();
    pthread_mutex_lock(&c->flush_lock);
    if (at == CLOCK_LONG_AGO) {
        /* Cutoffs only ever grow: what earlier flushes hid stays hidden. */
        atomic_store_explicit(&c->flush_pending, 0, memory_order_release);
    } else if (at == 0 || at <= now) {
        flush_cut_locked(c);
        atomic_store_explicit(&c->flush_pending, 0, memory_order_release);
    } else {
        atomic_store_explicit(&c->flush_pending, at, memory_order_release);
    }
    pthread_mutex_unlock(&c->flush_lock);
}
