/*
 * assert.h - the three kinds of assertion (see STYLE.md "Errors").
 *
 * ASSERT(x)  invariant; aborts in debug and sanitizer builds, compiled out in
 *            release (NDEBUG). Never on bytes from a client, peer or disk.
 * ALWAYS(x)/NEVER(x)  defensive checks that stay in release: they evaluate to
 *            the condition so the caller can take a graceful fallback, and
 *            abort in debug builds so tests notice.
 * PANIC(...) startup-only fatal error: prints and exits with EX_SOFTWARE.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#ifdef NDEBUG
#define ASSERT(x) ((void)0)
#define ALWAYS(x) (x)
#define NEVER(x) (x)
#else
#define ASSERT(x) ((x) ? (void)0 : assert_fail(#x, __FILE__, __LINE__))
#define ALWAYS(x) ((x) ? 1 : (assert_fail(#x, __FILE__, __LINE__), 0))
#define NEVER(x) ((x) ? (assert_fail(#x, __FILE__, __LINE__), 1) : 0)
#endif

#define PANIC(...)                              \
    do {                                        \
        fprintf(stderr, "fatal: " __VA_ARGS__); \
        fputc('\n', stderr);                    \
        exit(EX_SOFTWARE);                      \
    } while (0)

/* Prints the failed expression and aborts. */
_Noreturn void assert_fail(const char *expr, const char *file, int line);
