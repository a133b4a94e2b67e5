/* assert.c - the failure path of ASSERT/ALWAYS/NEVER (debug builds). */
#include "common/assert.h"

void assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
