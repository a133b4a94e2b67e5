/*
 * ketama.c - libmemcached's weighted ketama continuum (see ketama.h).
 *
 *   per server i:  share = floor(weight_i / total * 160 / 4 * n) * 4
 *                  for j in 0 .. share/4 - 1:
 *                      d = MD5("host-j")   ("host:port-j" off port 11211)
 *                      4 points: d's bytes 0-3, 4-7, 8-11, 12-15 (little endian)
 *   sort by (point, server index)
 *   key:           MD5(key)'s bytes 0-3 (little endian) ─► first point >= it
 */
#include "common/ketama.h"

#include <math.h>
#include <md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

struct point {
    uint32_t value;
    uint32_t server;
};

struct ketama {
    uint32_t nservers;
    uint32_t npoints;
    struct point *points;    /* sorted by (value, server) */
    uint32_t *server_points; /* per server: how many it has */
};

static void md5_of(const void *data, size_t len, uint8_t out[16])
{
    MD5_CTX ctx;
    MD5Init(&ctx);
    MD5Update(&ctx, data, len);
    MD5Final(out, &ctx);
}

static uint32_t le32_at(const uint8_t *d)
{
    return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

uint32_t ketama_hash(const char *key, size_t nkey)
{
    uint8_t d[16];
    md5_of(key, nkey, d);
    return le32_at(d);
}

static int point_cmp(const void *a, const void *b)
{
    const struct point *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->server < y->server ? -1 : x->server > y->server;
}

/*
 * A server's share of points, computed in single precision as
 * libmemcached does: the float rounding decides a server's count at
 * the edges, and the count decides placement.
 */
static uint32_t share_of(uint32_t weight, uint64_t total, uint32_t n)
{
    float pct = (float)weight / (float)total;
    return (uint32_t)floorf(pct * KETAMA_POINTS_PER_SERVER / 4 * (float)n + 0.0000000001F) * 4;
}

enum st_status ketama_build(const struct ketama_server *servers, unsigned n, struct ketama **out)
{
    *out = NULL;
    if (n == 0 || n > KETAMA_MAX_SERVERS)
        return ST_INVAL;
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (servers[i].weight == 0 || servers[i].host == NULL || servers[i].host[0] == '\0')
            return ST_INVAL;
        total += servers[i].weight;
    }
    struct ketama *k = mem_calloc(MEM_OTHER, 1, sizeof(*k));
    if (k == NULL)
        return ST_NOMEM;
    k->nservers = n;
    k->server_points = mem_calloc(MEM_OTHER, n, sizeof(*k->server_points));
    uint64_t want = 0;
    for (unsigned i = 0; i < n; i++)
        want += share_of(servers[i].weight, total, n);
    k->points = want > 0 ? mem_calloc(MEM_OTHER, want, sizeof(*k->points)) : NULL;
    if (k->server_points == NULL || (want > 0 && k->points == NULL)) {
        ketama_destroy(&k);
        return ST_NOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t share = share_of(servers[i].weight, total, n);
        for (uint32_t j = 0; j < share / 4; j++) {
            char name[320];
            int len = servers[i].port == KETAMA_DEFAULT_PORT
                          ? snprintf(name, sizeof(name), "%s-%u", servers[i].host, j)
                          : snprintf(name, sizeof(name), "%s:%u-%u", servers[i].host,
                                     (unsigned)servers[i].port, j);
            if (len < 0 || (size_t)len >= sizeof(name)) {
                ketama_destroy(&k);
                return ST_INVAL;
            }
            uint8_t d[16];
            md5_of(name, (size_t)len, d);
            for (unsigned x = 0; x < 4; x++)
                k->points[k->npoints++] = (struct point){le32_at(d + 4 * x), i};
        }
        k->server_points[i] = share;
    }
    qsort(k->points, k->npoints, sizeof(*k->points), point_cmp);
    *out = k;
    return ST_OK;
}

void ketama_destroy(struct ketama **kp)
{
    struct ketama *k = *kp;
    if (k == NULL)
        return;
    if (k->points != NULL)
        mem_free(MEM_OTHER, k->points, k->npoints * sizeof(*k->points));
    if (k->server_points != NULL)
        mem_free(MEM_OTHER, k->server_points, k->nservers * sizeof(*k->server_points));
    mem_free(MEM_OTHER, k, sizeof(*k));
    *kp = NULL;
}

uint32_t ketama_pick(const struct ketama *k, const char *key, size_t nkey,
                     bool (*up)(void *arg, uint32_t index), void *arg)
{
    if (k->npoints == 0)
        return KETAMA_NONE;
    if (k->nservers == 1) /* libmemcached does not hash for a single server */
        return up == NULL || up(arg, 0) ? 0 : KETAMA_NONE;
    uint32_t h = ketama_hash(key, nkey);
    uint32_t lo = 0, hi = k->npoints;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (k->points[mid].value < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint32_t i = 0; i < k->npoints; i++) {
        uint32_t s = k->points[(lo + i) % k->npoints].server;
        if (up == NULL || up(arg, s))
            return s;
    }
    return KETAMA_NONE;
}

uint32_t ketama_points(const struct ketama *k, uint32_t index)
{
    return index < k->nservers ? k->server_points[index] : 0;
}
