/*
 * tcache.c - table cache (tcache.h): chained hash + LRU list under a mutex.
 * Opening a missing table runs outside the mutex; two threads racing to
 * open the same table both succeed and the second insert wins.
 */
#include <pthread.h>
#include <stdio.h>

#include "common/mem.h"
#include "storage/filename.h"
#include "storage/tcache.h"

#define TC_BUCKETS 1024

struct tc_entry {
    struct tc_entry *hnext;
    struct tc_entry *prev, *next;
    uint64_t number;
    struct sst_table *t; /* the cache's reference */
};

struct tcache {
    pthread_mutex_t mu;
    struct lsm_env *env;
    char dir[FILENAME_MAX_PATH];
    uint32_t max_open;
    uint32_t count;
    struct bcache *bc;
    struct sst_counters *counters;
    struct tc_entry *buckets[TC_BUCKETS];
    struct tc_entry lru;
    uint64_t opens;
};

enum st_status tcache_create(struct lsm_env *env, const char *dir, uint32_t max_open,
                             struct bcache *bc, struct sst_counters *counters, struct tcache **out)
{
    struct tcache *tc = mem_calloc(MEM_STORAGE, 1, sizeof(*tc));
    if (tc == NULL)
        return ST_NOMEM;
    pthread_mutex_init(&tc->mu, NULL);
    tc->env = env;
    snprintf(tc->dir, sizeof(tc->dir), "%s", dir);
    tc->max_open = max_open ? max_open : 1;
    tc->bc = bc;
    tc->counters = counters;
    tc->lru.prev = tc->lru.next = &tc->lru;
    *out = tc;
    return ST_OK;
}

static void remove_locked(struct tcache *tc, struct tc_entry *e)
{
    struct tc_entry **pp = &tc->buckets[e->number % TC_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    tc->count--;
    sst_table_unref(&e->t);
    mem_free(MEM_STORAGE, e, sizeof(*e));
}

void tcache_destroy(struct tcache **tcp)
{
    if (tcp == NULL || *tcp == NULL)
        return;
    struct tcache *tc = *tcp;
    while (tc->lru.next != &tc->lru)
        remove_locked(tc, tc->lru.next);
    pthread_mutex_destroy(&tc->mu);
    mem_free(MEM_STORAGE, tc, sizeof(*tc));
    *tcp = NULL;
}

static struct tc_entry *find_locked(struct tcache *tc, uint64_t number)
{
    for (struct tc_entry *e = tc->buckets[number % TC_BUCKETS]; e != NULL; e = e->hnext)
        if (e->number == number)
            return e;
    return NULL;
}

static void touch_locked(struct tcache *tc, struct tc_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = tc->lru.next;
    e->prev = &tc->lru;
    tc->lru.next->prev = e;
    tc->lru.next = e;
}

enum st_status tcache_get(struct tcache *tc, uint64_t number, struct sst_table **out)
{
    pthread_mutex_lock(&tc->mu);
    struct tc_entry *e = find_locked(tc, number);
    if (e != NULL) {
        touch_locked(tc, e);
        sst_table_ref(e->t);
        *out = e->t;
        pthread_mutex_unlock(&tc->mu);
        return ST_OK;
    }
    tc->opens++;
    pthread_mutex_unlock(&tc->mu);

    struct sst_table *t = NULL;
    enum st_status st = sst_table_open(tc->env, tc->dir, number, tc->bc, tc->counters, &t);
    if (st != ST_OK)
        return st;
    struct tc_entry *ne = mem_alloc(MEM_STORAGE, sizeof(*ne));
    if (ne == NULL) {
        *out = t; /* usable, just not cached */
        return ST_OK;
    }
    pthread_mutex_lock(&tc->mu);
    if ((e = find_locked(tc, number)) != NULL)
        remove_locked(tc, e);
    ne->number = number;
    ne->t = t;
    sst_table_ref(t);
    ne->hnext = tc->buckets[number % TC_BUCKETS];
    tc->buckets[number % TC_BUCKETS] = ne;
    ne->next = tc->lru.next;
    ne->prev = &tc->lru;
    tc->lru.next->prev = ne;
    tc->lru.next = ne;
    tc->count++;
    while (tc->count > tc->max_open && tc->lru.prev != ne)
        remove_locked(tc, tc->lru.prev);
    pthread_mutex_unlock(&tc->mu);
    *out = t;
    return ST_OK;
}

void tcache_evict(struct tcache *tc, uint64_t number)
{
    pthread_mutex_lock(&tc->mu);
    struct tc_entry *e = find_locked(tc, number);
    if (e != NULL)
        remove_locked(tc, e);
    pthread_mutex_unlock(&tc->mu);
}

uint64_t tcache_opens(struct tcache *tc)
{
    pthread_mutex_lock(&tc->mu);
    uint64_t n = tc->opens;
    pthread_mutex_unlock(&tc->mu);
    return n;
}
