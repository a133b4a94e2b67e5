/*
 * mem.h - the one allocation wrapper: jemalloc in normal builds, libc malloc
 * under sanitizers (build flag STRATA_NO_JEMALLOC), with per-component byte
 * counters for `stats`. Thread-safe; counters are relaxed atomics.
 *
 * Byte counts are what the allocator really hands out (its size class), not
 * what was asked for, so memory limits built on them hold on real RSS.
 */
#pragma once

#include <stddef.h>

enum mem_component {
    MEM_CACHE,   /* L1 items and hash tables */
    MEM_CONN,    /* connections and their buffers */
    MEM_STORAGE, /* LSM engine */
    MEM_OTHER,
    MEM_COMPONENTS /* count, not a component */
};

/* Returns NULL when the allocator fails; never aborts. */
void *mem_alloc(enum mem_component c, size_t size);
void *mem_calloc(enum mem_component c, size_t n, size_t size);
/* REQUIRES: old_size is the size p was allocated (or reallocated) with. */
void *mem_realloc(enum mem_component c, void *p, size_t old_size, size_t new_size);
/* Accepts NULL. REQUIRES: size is the size p was allocated with. */
void mem_free(enum mem_component c, void *p, size_t size);

/* Bytes the allocator really uses for a request of `size` bytes. */
size_t mem_usable(size_t size);

/*
 * Size classes, numbered from 0 (8 bytes), following jemalloc's geometry:
 * multiples of 16 up to 128, then four classes per power of two. Used for
 * `stats slabs`/`stats items` rows. mem_class_of(size) is the class that
 * serves `size`; mem_class_size(i) the bytes of class i.
 */
static inline unsigned mem_class_of(size_t size)
{
    if (size <= 8)
        return 0;
    if (size <= 128)
        return (unsigned)((size + 15) / 16); /* 16 -> 1 ... 128 -> 8 */
    /* Above 128: four classes per doubling; class k of group g spans
     * (2^g + (k-1)*2^(g-2), 2^g + k*2^(g-2)]. */
    /* Shifts, not a division: the cache derives an item's class from its
     * size on every hit (item.h), so this is on the request path. */
    unsigned lg = (unsigned)(sizeof(size_t) * 8 - 1) - (unsigned)__builtin_clzl(size - 1);
    size_t base = (size_t)1 << lg;
    unsigned k = (unsigned)((size - base + ((size_t)1 << (lg - 2)) - 1) >> (lg - 2)); /* 1..4 */
    return 8 + (lg - 7) * 4 + k;
}
size_t mem_class_size(unsigned cls);

/* Bytes currently allocated by component c, and by all components. */
size_t mem_bytes(enum mem_component c);
size_t mem_bytes_total(void);

/* "jemalloc" or "libc". */
const char *mem_allocator_name(void);
