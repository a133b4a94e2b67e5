/*
 * tcache.h - the table cache: open SSTable readers by file number, LRU
 * bounded by a file-descriptor budget. Any thread (one mutex; opening a
 * table happens outside it). A table handed out stays usable after
 * eviction until its caller unrefs it.
 */
#pragma once

#include <stdint.h>

#include "common/status.h"
#include "storage/sstable.h"

struct tcache;

/* `dir`, `env`, `bc` and `counters` are borrowed for the cache's life. */
enum st_status tcache_create(struct lsm_env *env, const char *dir, uint32_t max_open,
                             struct bcache *bc, struct sst_counters *counters, struct tcache **out);
void tcache_destroy(struct tcache **tc);
/* A new reference to table `number`, opening it if needed. Errors as
 * sst_table_open (the table is not cached then). */
enum st_status tcache_get(struct tcache *tc, uint64_t number, struct sst_table **out);
/* Forgets table `number` (it was deleted). */
void tcache_evict(struct tcache *tc, uint64_t number);
/* Tables opened since creation (misses). */
uint64_t tcache_opens(struct tcache *tc);
