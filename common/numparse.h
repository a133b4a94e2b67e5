/*
 * numparse.h - number parsing with memcached 1.6's exact acceptance rules
 * (its safe_strtoull/safe_strtoul/safe_strtol), on (pointer, length) tokens
 * that are not NUL-terminated.
 *
 * Shared rules: optional leading whitespace, optional sign, at least one
 * digit; after the digits the token must end or continue with a whitespace
 * byte (memcached only looks at that one byte). Out-of-range values of the
 * underlying 64-bit C conversion are refused. Pure functions, any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Unsigned 64-bit (CAS uniques, incr/decr deltas and values). A negative
 * number is refused (memcached refuses it when it wraps past 2^63). */
bool numparse_u64(const char *p, size_t len, uint64_t *out);

/* Client flags: parsed as unsigned 64-bit like numparse_u64 and truncated
 * to 32 bits, as memcached 1.6.18 does ("4294967297" stores flags 1). */
bool numparse_u32_trunc(const char *p, size_t len, uint32_t *out);

/* Signed (exptime, value length): parsed as signed 64-bit and truncated to
 * 32 bits, as memcached 1.6.18 does ("4294967296" becomes 0). */
bool numparse_i32_trunc(const char *p, size_t len, int32_t *out);
