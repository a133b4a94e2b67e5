/*
 * mem.c - allocation wrapper and size-class arithmetic (see mem.h).
 * Called from every thread.
 */
#include "common/mem.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef STRATA_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#ifndef STRATA_NO_JEMALLOC
/*
 * jemalloc's own options, read at its startup. A memory-bounded cache must
 * hand freed memory back promptly (an old hash table after a resize, the
 * buffers of a burst of connections): a background thread purges dirty
 * pages after 1 s instead of waiting for the next allocation in that arena.
 * MALLOC_CONF in the environment still overrides these.
 */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
#endif

static _Atomic size_t mem_counters[MEM_COMPONENTS];

size_t mem_class_size(unsigned cls)
{
    if (cls == 0)
        return 8;
    if (cls <= 8)
        return (size_t)cls * 16;
    unsigned g = (cls - 9) / 4;     /* doubling group above 128 */
    unsigned k = (cls - 9) % 4 + 1; /* 1..4 */
    unsigned lg = 7 + g;
    return ((size_t)1 << lg) + k * ((size_t)1 << (lg - 2));
}

size_t mem_usable(size_t size)
{
#ifndef STRATA_NO_JEMALLOC
    return nallocx(size == 0 ? 1 : size, 0);
#else
    return mem_class_size(mem_class_of(size));
#endif
}

void *mem_alloc(enum mem_component c, size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);
    if (p != NULL)
        atomic_fetch_add_explicit(&mem_counters[c], mem_usable(size), memory_order_relaxed);
    return p;
}

void *mem_calloc(enum mem_component c, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p != NULL)
        atomic_fetch_add_explicit(&mem_counters[c], mem_usable(n * size), memory_order_relaxed);
    return p;
}

void *mem_realloc(enum mem_component c, void *p, size_t old_size, size_t new_size)
{
    void *q = realloc(p, new_size == 0 ? 1 : new_size);
    if (q == NULL)
        return NULL;
    if (p != NULL)
        atomic_fetch_sub_explicit(&mem_counters[c], mem_usable(old_size), memory_order_relaxed);
    atomic_fetch_add_explicit(&mem_counters[c], mem_usable(new_size), memory_order_relaxed);
    return q;
}

void mem_free(enum mem_component c, void *p, size_t size)
{
    if (p == NULL)
        return;
    atomic_fetch_sub_explicit(&mem_counters[c], mem_usable(size), memory_order_relaxed);
#ifndef STRATA_NO_JEMALLOC
    sdallocx(p, size == 0 ? 1 : size, 0);
#else
    free(p);
#endif
}

size_t mem_bytes(enum mem_component c)
{
    return atomic_load_explicit(&mem_counters[c], memory_order_relaxed);
}

size_t mem_bytes_total(void)
{
    size_t sum = 0;
    for (int i = 0; i < MEM_COMPONENTS; i++)
        sum += mem_bytes((enum mem_component)i);
    return sum;
}

const char *mem_allocator_name(void)
{
#ifndef STRATA_NO_JEMALLOC
    return "jemalloc";
#else
    return "libc";
#endif
}
