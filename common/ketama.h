/*
 * ketama.h - key placement over a pool of memcached servers, as
 * libmemcached places keys with MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED: a
 * continuum of MD5-derived points, each server's share of them in
 * proportion to its weight, a key served by the first point at or after
 * its MD5 hash. strata-proxy's L2 pool uses it, so an application that
 * reaches the same memcached servers through libmemcached (or any client
 * with libmemcached's weighted ketama) agrees on where every key lives.
 *
 * A struct ketama is an immutable value: lookups are thread-safe.
 * Ejected servers are skipped at lookup (ketama_pick's `up`), so their
 * keys move to the next point's server and no other key moves.
 * libmemcached's auto-eject rebuilds its continuum instead, which moves
 * keys between live servers when weights differ; docs/L2.md says why we
 * do not.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* libmemcached's constants (facts of its placement, kept as they are). */
#define KETAMA_POINTS_PER_SERVER 160 /* of an average-weight server */
#define KETAMA_DEFAULT_PORT 11211    /* whose port is left out of the point names */
#define KETAMA_MAX_SERVERS 1024
/* "No server": ketama_pick when every server is down, or the pool is empty. */
#define KETAMA_NONE UINT32_MAX

struct ketama;

/* A server as the pool lists it; ketama_build copies the host name. */
struct ketama_server {
    const char *host; /* as configured: "10.0.0.1", "cache1" (not resolved) */
    uint16_t port;
    uint32_t weight; /* > 0 */
};

/* ST_INVAL: no servers, too many, a weight of 0, an empty host. ST_NOMEM. */
enum st_status ketama_build(const struct ketama_server *servers, unsigned n, struct ketama **out);
/* NULLs *k; accepts NULL. */
void ketama_destroy(struct ketama **k);

/* The key's hash on the continuum (libmemcached's MD5 key hash). */
uint32_t ketama_hash(const char *key, size_t nkey);

/* The index (into ketama_build's list) of the server for key: the owner
 * of the first point at or after the key's hash whose server is up
 * (up(arg, index); NULL: all are). KETAMA_NONE when none is up. */
uint32_t ketama_pick(const struct ketama *k, const char *key, size_t nkey,
                     bool (*up)(void *arg, uint32_t index), void *arg);

/* How many points the continuum holds for server `index` (tests, stats). */
uint32_t ketama_points(const struct ketama *k, uint32_t index);
