/*
 * bcache.h - the LRU block cache: decompressed SSTable blocks keyed by
 * (file number, block offset), with one byte budget shared by every file of
 * a database. Sharded by key hash, one mutex per shard; any thread.
 * Entries hold a block reference; a block handed out stays valid until its
 * caller unrefs it, even if evicted meanwhile.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/block.h"

struct bcache;

/* A cache of `capacity` bytes (0 = caches nothing). ST_NOMEM. */
enum st_status bcache_create(size_t capacity, struct bcache **out);
/* Drops every entry (blocks still referenced elsewhere survive). */
void bcache_destroy(struct bcache **c);
/* Returns a new reference to the cached block, or NULL (a miss). */
struct block *bcache_lookup(struct bcache *c, uint64_t file, uint64_t off);
/* Inserts `b` (taking a new reference) charged at `charge` bytes, evicting
 * least-recently-used entries over capacity. Replaces an existing entry. */
void bcache_insert(struct bcache *c, uint64_t file, uint64_t off, struct block *b, size_t charge);
/* Drops every block of `file` (called when the file is deleted). */
void bcache_erase_file(struct bcache *c, uint64_t file);
size_t bcache_bytes(struct bcache *c);
void bcache_counters(struct bcache *c, uint64_t *hits, uint64_t *misses);
