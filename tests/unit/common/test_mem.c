/* test_mem.c - size-class arithmetic and counters of common/mem.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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
    /* The allocator agrees with the arithmetic (jemalloc's nallocx in
     * release builds). */
    for (size_t size = 1; size < 100000; size += 37)
        assert_int_equal(mem_usable(size), mem_class_size(mem_class_of(size)));
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
        cmocka_unit_test(test_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
