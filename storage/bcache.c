/*
 * bcache.c - sharded LRU block cache (bcache.h). Each shard: a chained
 * hash table plus a doubly linked LRU list, under one mutex.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "common/mem.h"
#include "storage/bcache.h"

#define BCACHE_SHARDS 16
#define BCACHE_BUCKETS 4096 /* per shard; chains absorb the rest */

struct bc_entry {
    struct bc_entry *hnext;
    struct bc_entry *prev, *next; /* LRU: head = most recent */
    uint64_t file, off;
    struct block *blk;
    size_t charge;
};

struct bc_shard {
    pthread_mutex_t mu;
    struct bc_entry *buckets[BCACHE_BUCKETS];
    struct bc_entry lru; /* sentinel */
    size_t bytes;
    size_t capacity;
};

struct bcache {
    struct bc_shard shards[BCACHE_SHARDS];
    atomic_uint_fast64_t hits, misses;
};

static uint64_t bc_hash(uint64_t file, uint64_t off)
{
    uint64_t h = file * 0x9e3779b97f4a7c15ull ^ (off + 0x632be59bd9b4e019ull);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

enum st_status bcache_create(size_t capacity, struct bcache **out)
{
    struct bcache *c = mem_calloc(MEM_STORAGE, 1, sizeof(*c));
    if (c == NULL)
        return ST_NOMEM;
    for (int i = 0; i < BCACHE_SHARDS; i++) {
        struct bc_shard *s = &c->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->lru.prev = s->lru.next = &s->lru;
        s->capacity = capacity / BCACHE_SHARDS;
    }
    *out = c;
    return ST_OK;
}

static void lru_unlink(struct bc_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push(struct bc_shard *s, struct bc_entry *e)
{
    e->next = s->lru.next;
    e->prev = &s->lru;
    s->lru.next->prev = e;
    s->lru.next = e;
}

/* Removes e from its chain and the LRU, frees it. */
static void entry_remove_locked(struct bc_shard *s, struct bc_entry *e)
{
    struct bc_entry **pp = &s->buckets[bc_hash(e->file, e->off) / BCACHE_SHARDS % BCACHE_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    s->bytes -= e->charge;
    block_unref(&e->blk);
    mem_free(MEM_STORAGE, e, sizeof(*e));
}

void bcache_destroy(struct bcache **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct bcache *c = *cp;
    for (int i = 0; i < BCACHE_SHARDS; i++) {
        struct bc_shard *s = &c->shards[i];
        while (s->lru.next != &s->lru)
            entry_remove_locked(s, s->lru.next);
        pthread_mutex_destroy(&s->mu);
    }
    mem_free(MEM_STORAGE, c, sizeof(*c));
    *cp = NULL;
}

struct block *bcache_lookup(struct bcache *c, uint64_t file, uint64_t off)
{
    uint64_t h = bc_hash(file, off);
    struct bc_shard *s = &c->shards[h % BCACHE_SHARDS];
    struct block *b = NULL;
    pthread_mutex_lock(&s->mu);
    for (struct bc_entry *e = s->buckets[h / BCACHE_SHARDS % BCACHE_BUCKETS]; e != NULL;
         e = e->hnext) {
        if (e->file == file && e->off == off) {
            lru_unlink(e);
            lru_push(s, e);
            b = e->blk;
            block_ref(b);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add_explicit(b ? &c->hits : &c->misses, 1, memory_order_relaxed);
    return b;
}

void bcache_insert(struct bcache *c, uint64_t file, uint64_t off, struct block *b, size_t charge)
{
    uint64_t h = bc_hash(file, off);
    struct bc_shard *s = &c->shards[h % BCACHE_SHARDS];
    if (charge > s->capacity)
        return; /* would evict everything and itself */
    struct bc_entry *e = mem_alloc(MEM_STORAGE, sizeof(*e));
    if (e == NULL)
        return; /* caching is best effort */
    block_ref(b);
    e->file = file;
    e->off = off;
    e->blk = b;
    e->charge = charge;
    pthread_mutex_lock(&s->mu);
    struct bc_entry **bucket = &s->buckets[h / BCACHE_SHARDS % BCACHE_BUCKETS];
    for (struct bc_entry *o = *bucket; o != NULL; o = o->hnext) {
        if (o->file == file && o->off == off) {
            entry_remove_locked(s, o);
            break;
        }
    }
    e->hnext = *bucket;
    *bucket = e;
    lru_push(s, e);
    s->bytes += charge;
    while (s->bytes > s->capacity && s->lru.prev != e)
        entry_remove_locked(s, s->lru.prev);
    pthread_mutex_unlock(&s->mu);
}

void bcache_erase_file(struct bcache *c, uint64_t file)
{
    for (int i = 0; i < BCACHE_SHARDS; i++) {
        struct bc_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        for (struct bc_entry *e = s->lru.next, *nx; e != &s->lru; e = nx) {
            nx = e->next;
            if (e->file == file)
                entry_remove_locked(s, e);
        }
        pthread_mutex_unlock(&s->mu);
    }
}

size_t bcache_bytes(struct bcache *c)
{
    size_t total = 0;
    for (int i = 0; i < BCACHE_SHARDS; i++) {
        pthread_mutex_lock(&c->shards[i].mu);
        total += c->shards[i].bytes;
        pthread_mutex_unlock(&c->shards[i].mu);
    }
    return total;
}

void bcache_counters(struct bcache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
    *misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
}
