/*
 * cmd.h - the command layer every protocol front end calls (text, meta and
 * binary): one function per memcached operation,
 * independent of wire format, doing the tier work and the counting.
 * Worker thread; `w` is the calling worker (its counter shard).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

struct worker;

/* get/gets (touch false) or gat/gats (touch true, new exptime). Returns a
 * reference the caller releases, or NULL on a miss. */
struct item *cmd_get(struct worker *w, const char *key, size_t nkey, bool touch,
                     rel_time_t exptime);

/*
 * First half of a storage command: an item to read the value into
 * (nbytes + 2 bytes with the terminator). NULL with *res = CACHE_TOO_LARGE
 * or CACHE_NO_MEMORY when it cannot be stored; the caller must then discard
 * the value. A refused SET also drops the key's old value.
 */
struct item *cmd_reserve(struct worker *w, const char *key, size_t nkey, uint32_t flags,
                         rel_time_t exptime, size_t nbytes, enum cache_store_mode mode,
                         enum cache_result *res);

/* Second half: the value has arrived complete and well-terminated.
 * Takes the item reference. *cas_out (if not NULL) gets the new CAS. */
enum cache_result cmd_store(struct worker *w, struct item *it, enum cache_store_mode mode,
                            uint64_t cas_in, uint64_t *cas_out);

/* A value arrived with a bad terminator: count it, drop the item. */
void cmd_store_aborted(struct worker *w, struct item *it);

/* cas_in 0: unconditional; otherwise CACHE_EXISTS when it differs. */
enum cache_result cmd_delete(struct worker *w, const char *key, size_t nkey, uint64_t cas_in);
enum cache_result cmd_touch(struct worker *w, const char *key, size_t nkey, rel_time_t exptime);
/* cas_in 0: unconditional; otherwise CACHE_EXISTS when it differs. */
enum cache_result cmd_delta(struct worker *w, const char *key, size_t nkey, bool incr,
                            uint64_t delta, uint64_t cas_in, uint64_t *value, uint64_t *cas_out);
/* ---- meta commands: the cache's meta calls, counted as memcached does ---- */

/* mg: a hit counts cmd_touch/touch_hits when T is given, else cmd_get and
 * get_hits; a miss cmd_get/get_misses; a vivified item is a get hit. A
 * hit of a failing request (ttl->fail_pos >= 0) counts nothing. */
struct item *cmd_meta_get(struct worker *w, const char *key, size_t nkey,
                          const struct cache_meta_ttl *ttl, bool no_bump,
                          struct cache_meta_info *info);
/* ms: cmd_store with cache_meta_commit flags. */
enum cache_result cmd_meta_store(struct worker *w, struct item *it, enum cache_store_mode mode,
                                 uint64_t cas_in, unsigned mflags, uint64_t *cas_out);
/* md: delete_hits for a real delete, delete_misses for NF and EX; an
 * invalidation counts nothing. */
enum cache_result cmd_meta_delete(struct worker *w, const char *key, size_t nkey, bool has_cas,
                                  uint64_t cas_in, bool invalidate, bool new_ttl,
                                  rel_time_t exptime);
/* ma: incr/decr hits and misses; an auto-created item counts neither. */
enum cache_result cmd_meta_delta(struct worker *w, const char *key, size_t nkey,
                                 struct cache_meta_arith *a);
/* me: counts cmd_meta. */
struct item *cmd_meta_debug(struct worker *w, const char *key, size_t nkey,
                            struct cache_meta_info *info);

/* flush_all with memcached's delay semantics (delay <= 0: now; else an
 * exptime, relative or absolute). */
void cmd_flush_all(struct worker *w, int64_t delay);
