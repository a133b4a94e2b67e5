/*
 * detail.c - per-prefix statistics (see detail.h): a chained hash map of
 * prefixes under one mutex. It is a debugging aid that memcached guards
 * with its global stats lock too; only its off switch is on the hot path.
 */
#include "proxy/detail.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/mem.h"

#define DETAIL_BUCKETS 4096 /* power of two */

struct prefix {
    struct prefix *next;
    uint64_t gets, hits, sets, dels;
    size_t len;
    char name[];
};

struct detail {
    _Atomic bool enabled;
    char delimiter;
    pthread_mutex_t lock; /* guards everything below */
    struct prefix *buckets[DETAIL_BUCKETS];
    size_t count;
};

enum st_status detail_create(struct detail **out, char delimiter, bool enabled)
{
    struct detail *d = mem_calloc(MEM_OTHER, 1, sizeof(*d));
    if (d == NULL)
        return ST_NOMEM;
    d->delimiter = delimiter;
    atomic_store_explicit(&d->enabled, enabled, memory_order_relaxed);
    pthread_mutex_init(&d->lock, NULL);
    *out = d;
    return ST_OK;
}

static void prefix_free(struct prefix *p)
{
    mem_free(MEM_OTHER, p, sizeof(*p) + p->len + 1);
}

void detail_clear(struct detail *d)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < DETAIL_BUCKETS; i++) {
        struct prefix *p = d->buckets[i];
        while (p != NULL) {
            struct prefix *next = p->next;
            prefix_free(p);
            p = next;
        }
        d->buckets[i] = NULL;
    }
    d->count = 0;
    pthread_mutex_unlock(&d->lock);
}

void detail_destroy(struct detail **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    detail_clear(*dp);
    pthread_mutex_destroy(&(*dp)->lock);
    mem_free(MEM_OTHER, *dp, sizeof(**dp));
    *dp = NULL;
}

void detail_set_enabled(struct detail *d, bool on)
{
    atomic_store_explicit(&d->enabled, on, memory_order_relaxed);
}

bool detail_enabled(const struct detail *d)
{
    return atomic_load_explicit(&d->enabled, memory_order_relaxed);
}

/* The prefix's entry, created if new; NULL if the key has no delimiter
 * (memcached also stops at a NUL byte) or the map is full. */
static struct prefix *prefix_find_locked(struct detail *d, const char *key, size_t nkey)
{
    size_t len = 0;
    while (len < nkey && key[len] != '\0' && key[len] != d->delimiter)
        len++;
    if (len == nkey || key[len] != d->delimiter)
        return NULL;
    struct prefix **head = &d->buckets[XXH3_64bits(key, len) & (DETAIL_BUCKETS - 1)];
    for (struct prefix *p = *head; p != NULL; p = p->next)
        if (p->len == len && memcmp(p->name, key, len) == 0)
            return p;
    if (d->count >= DETAIL_PREFIXES_MAX)
        return NULL;
    struct prefix *p = mem_calloc(MEM_OTHER, 1, sizeof(*p) + len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p->name, key, len);
    p->len = len;
    p->next = *head;
    *head = p;
    d->count++;
    return p;
}

enum what { REC_GET, REC_HIT, REC_SET, REC_DEL };

static void record(struct detail *d, const char *key, size_t nkey, enum what w)
{
    if (!detail_enabled(d))
        return;
    pthread_mutex_lock(&d->lock);
    struct prefix *p = prefix_find_locked(d, key, nkey);
    if (p != NULL) {
        switch (w) {
        case REC_HIT:
            p->hits++;
            p->gets++; /* a hit is a get too */
            break;
        case REC_GET: p->gets++; break;
        case REC_SET: p->sets++; break;
        case REC_DEL: p->dels++; break;
        }
    }
    pthread_mutex_unlock(&d->lock);
}

void detail_record_get(struct detail *d, const char *key, size_t nkey, bool hit)
{
    record(d, key, nkey, hit ? REC_HIT : REC_GET);
}

void detail_record_set(struct detail *d, const char *key, size_t nkey)
{
    record(d, key, nkey, REC_SET);
}

void detail_record_delete(struct detail *d, const char *key, size_t nkey)
{
    record(d, key, nkey, REC_DEL);
}

static int prefix_cmp(const void *a, const void *b)
{
    const struct prefix *x = *(const struct prefix *const *)a;
    const struct prefix *y = *(const struct prefix *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->name, y->name, n);
    return r != 0 ? r : (x->len > y->len) - (x->len < y->len);
}

#define LINE_FIXED (sizeof("PREFIX  get  hit  set  del \r\n") + 4 * 20)

enum st_status detail_dump(struct detail *d, struct detail_text *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&d->lock);
    size_t nall = d->count;
    struct prefix **all = NULL;
    if (nall > 0 && (all = mem_alloc(MEM_OTHER, nall * sizeof(*all))) == NULL) {
        pthread_mutex_unlock(&d->lock);
        return ST_NOMEM;
    }
    size_t n = 0, cap = sizeof("END\r\n");
    for (size_t i = 0; i < DETAIL_BUCKETS; i++)
        for (struct prefix *p = d->buckets[i]; p != NULL; p = p->next) {
            all[n++] = p;
            cap += LINE_FIXED + p->len;
        }
    char *buf = mem_alloc(MEM_OTHER, cap);
    if (buf != NULL) {
        if (n > 0)
            qsort(all, n, sizeof(*all), prefix_cmp);
        size_t pos = 0;
        for (size_t i = 0; i < n; i++)
            pos += (size_t)snprintf(buf + pos, cap - pos,
                                    "PREFIX %.*s get %" PRIu64 " hit %" PRIu64 " set %" PRIu64
                                    " del %" PRIu64 "\r\n",
                                    (int)all[i]->len, all[i]->name, all[i]->gets, all[i]->hits,
                                    all[i]->sets, all[i]->dels);
        memcpy(buf + pos, "END\r\n", 5);
        out->buf = buf;
        out->len = pos + 5;
        out->cap = cap;
    }
    pthread_mutex_unlock(&d->lock);
    if (all != NULL)
        mem_free(MEM_OTHER, all, nall * sizeof(*all));
    return buf != NULL ? ST_OK : ST_NOMEM;
}

void detail_text_free(struct detail_text *t)
{
    if (t->buf != NULL)
        mem_free(MEM_OTHER, t->buf, t->cap);
    memset(t, 0, sizeof(*t));
}
