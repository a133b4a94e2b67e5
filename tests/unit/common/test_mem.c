/* test_mem.c - size-class arithmetic and counters of common/mem.c, checked
 * against literal class boundaries and the allocator's own block sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#ifndef STRATA_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>
#endif

#include "common/mem.h"

static void test_class_roundtrip(void **state)
{
    (void)state;
    /* Every size maps to the smallest class that holds it. */
    for (size_t size = 1; size < (1u << 22); size += (size < 4096 ? 1 : 997)) {
        unsigned cls = mem_class_of(size);
        assert_true(mem_class_size(cls) >= size);
        if (cls > 0)
            assert_true(mem_class_size(cls - 1) < size);
    }
}

static void test_known_classes(void **state)
{
    (void)state;
    const size_t want[] = {8,   16,  32,  48,  64,  80,  96,  112, 128,
                           160, 192, 224, 256, 320, 384, 448, 512, 640};
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(mem_class_size(i), want[i]);
}

/* Sizes on both sides of class boundaries and the bytes jemalloc hands out
 * for them (its documented geometry with 4 KiB pages: 8, multiples of 16 to
 * 128, then four classes per doubling, small, large and huge alike),
 * written out here instead of computed by the code under test. */
static const struct {
    size_t size, usable;
} boundaries[] = {
    {1, 8},
    {8, 8},
    {9, 16},
    {17, 32},
    {128, 128},
    {129, 160},
    {161, 192},
    {256, 256},
    {257, 320},
    {1024, 1024},
    {1025, 1280},
    {4096, 4096},
    {4097, 5120},
    {14336, 14336},
    {14337, 16384},
    {16385, 20480},
    {65536, 65536},
    {65537, 81920},
    {1u << 20, 1u << 20},
    {(1u << 20) + 1, 1310720},
    {(4u << 20) + 1, 5u << 20},
};

static void test_class_boundaries(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(boundaries) / sizeof(boundaries[0]); i++) {
        size_t size = boundaries[i].size, usable = boundaries[i].usable;
        if (mem_usable(size) != usable || mem_class_size(mem_class_of(size)) != usable)
            fail_msg("size %zu: mem_usable %zu, class arithmetic %zu, want %zu", size,
                     mem_usable(size), mem_class_size(mem_class_of(size)), usable);
    }
}

/* The bytes counted for an allocation are the bytes the allocator really
 * gave it: jemalloc reports the block's real size (sallocx); under
 * sanitizers (libc malloc, whose sizes mem.h only models) the block holds
 * at least what was counted for it. */
static void test_usable_is_what_the_allocator_gives(void **state)
{
    (void)state;
    for (size_t size = 1; size < (1u << 21); size += (size < 4096 ? 7 : 4093)) {
        void *p = mem_alloc(MEM_OTHER, size);
        assert_non_null(p);
#ifndef STRATA_NO_JEMALLOC
        if (sallocx(p, 0) != mem_usable(size))
            fail_msg("size %zu: jemalloc gave %zu bytes, mem_usable says %zu", size, sallocx(p, 0),
                     mem_usable(size));
#else
        assert_true(mem_usable(size) >= size);
        assert_true(malloc_usable_size(p) >= size);
#endif
        mem_free(MEM_OTHER, p, size);
    }
}

static void test_counters(void **state)
{
    (void)state;
    size_t before = mem_bytes(MEM_OTHER);
    void *p = mem_alloc(MEM_OTHER, 100);
    assert_non_null(p);
    assert_int_equal(mem_bytes(MEM_OTHER), before + mem_usable(100));
    p = mem_realloc(MEM_OTHER, p, 100, 1000);
    assert_non_null(p);
    assert_int_equal(mem_bytes(MEM_OTHER), before + mem_usable(1000));
    mem_free(MEM_OTHER, p, 1000);
    assert_int_equal(mem_bytes(MEM_OTHER), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_roundtrip),
        cmocka_unit_test(test_known_classes),
        cmocka_unit_test(test_class_boundaries),
        cmocka_unit_test(test_usable_is_what_the_allocator_gives),
        cmocka_unit_test(test_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
