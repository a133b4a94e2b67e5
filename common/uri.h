/*
 * uri.h - percent-encoding of keys for operator output (lru_crawler
 * metadump, watch log lines), byte for byte as memcached's uriencode.
 * Pure function, any thread.
 */
#pragma once

#include <stddef.h>

/* Longest encoding of n bytes: every byte may become three. */
#define URI_ENCODED_MAX(n) (3 * (n))

/*
 * Writes s[0, n) to out with every byte except A-Z a-z 0-9 - . _ ~ as
 * "%XX" (uppercase hex). Returns the bytes written; no terminator.
 * REQUIRES: out has room for URI_ENCODED_MAX(n) bytes.
 */
size_t uri_encode(const char *s, size_t n, char *out);
