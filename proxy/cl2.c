/*
 * cl2.c - backend records in the L2 pool (see cl2.h).
 */
#include "proxy/cl2.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/mc_reply.h"
#include "common/mem.h"
#include "common/numparse.h"
#include "frontend/fe.h"
#include "frontend/worker.h"
#include "proxy/l2.h"
#include "proxy/policy.h"
#include "proxy/proxy.h"

static const uint8_t magic[4] = {'S', 'L', '2', 0x01};

static struct l2 *pool_of(struct worker *w)
{
    return ((struct proxy *)w->fe->exec)->l2;
}

bool cl2_enabled(struct worker *w, const struct policy *pol)
{
    return pool_of(w) != NULL && pol->l2;
}

static void put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---------------------------------------------------------------- read */

struct pending_read {
    cl2_read_done done;
    void *arg;
    size_t nkey;
    char key[];
};

static void on_read(void *arg, enum l2_result r, const struct mc_reply *reply)
{
    struct pending_read *pr = arg;
    const struct wire_record *found = NULL;
    struct wire_record rec;
    if (r == L2_OK && reply->code == MC_REPLY_VA && reply->nvalue >= CL2_TRAILER &&
        memcmp(reply->value + reply->nvalue - 4, magic, 4) == 0) {
        const uint8_t *tr = (const uint8_t *)reply->value + reply->nvalue - CL2_TRAILER;
        uint64_t flags = 0;
        mc_reply_flag_u64(reply, 'f', &flags);
        size_t tn;
        const char *t = mc_reply_flag(reply, 't', &tn);
        int32_t ttl = -1;
        if (t == NULL || !numparse_i32_trunc(t, tn, &ttl))
            ttl = -1;
        rec = (struct wire_record){
            .key = (const uint8_t *)pr->key,
            .key_len = pr->nkey,
            .value = (const uint8_t *)reply->value,
            .value_len = reply->nvalue - CL2_TRAILER,
            .flags = (uint32_t)flags,
            .expiry = ttl < 0 ? 0 : (uint64_t)clock_unix_now() + (uint64_t)ttl,
            .version = {.hlc = get_be(tr, 8), .node = (uint16_t)get_be(tr + 8, 2)},
        };
        if (ttl != 0) /* 0: it expires now */
            found = &rec;
    }
    cl2_read_done done = pr->done;
    void *darg = pr->arg;
    size_t size = sizeof(*pr) + pr->nkey;
    done(darg, found);
    mem_free(MEM_CONN, pr, size);
}

void cl2_read(struct worker *w, const char *key, size_t nkey, cl2_read_done done, void *arg)
{
    struct pending_read *pr = mem_alloc(MEM_CONN, sizeof(*pr) + nkey);
    if (pr == NULL) {
        done(arg, NULL);
        return;
    }
    pr->done = done;
    pr->arg = arg;
    pr->nkey = nkey;
    memcpy(pr->key, key, nkey);
    struct l2_line ln;
    l2_line_start(&ln, "mg", key, nkey);
    l2_line_add(&ln, " v f t");
    l2_line_end(&ln);
    l2_request(pool_of(w), w, key, nkey, ln.buf, ln.n, NULL, 0, on_read, pr);
}

/* -------------------------------------------------------------- writes */

/* The TTL token of an entry of rec: its remaining life, within the
 * policy's l2_ttl_cap; false when it has none left. */
static bool ttl_of(const struct policy *pol, const struct wire_record *rec, int64_t *out)
{
    int64_t ttl = 0;
    if (rec->expiry != 0) {
        ttl = (int64_t)rec->expiry - (int64_t)clock_unix_now();
        if (ttl <= 0)
            return false;
    }
    if (pol->l2_ttl_cap > 0 && (ttl == 0 || ttl > (int64_t)pol->l2_ttl_cap))
        ttl = pol->l2_ttl_cap;
    *out = ttl;
    return true;
}

/* rec as an entry: `ms <key> <len> F T M<mode>` and the value with its
 * trailer. */
static void store(struct worker *w, const struct policy *pol, const struct wire_record *rec,
                  char mode)
{
    int64_t ttl;
    if (rec->tombstone || !ttl_of(pol, rec, &ttl))
        return;
    size_t n = rec->value_len + CL2_TRAILER;
    uint8_t *data = mem_alloc(MEM_CONN, n);
    if (data == NULL)
        return;
    if (rec->value_len > 0)
        memcpy(data, rec->value, rec->value_len);
    put_be(data + rec->value_len, rec->version.hlc, 8);
    put_be(data + rec->value_len + 8, rec->version.node, 2);
    memcpy(data + rec->value_len + 10, magic, 4);
    struct l2_line ln;
    l2_line_start(&ln, "ms", (const char *)rec->key, rec->key_len);
    l2_line_add(&ln, " %zu F%" PRIu32 " T%" PRId64 " M%c", n, rec->flags, ttl, mode);
    l2_line_end(&ln);
    /* the request copies the value: it is sent from the link's buffer */
    l2_request(pool_of(w), w, (const char *)rec->key, rec->key_len, ln.buf, ln.n, data, n, NULL,
               NULL);
    mem_free(MEM_CONN, data, n);
}

void cl2_fill(struct worker *w, const struct policy *pol, const struct wire_record *rec)
{
    store(w, pol, rec, 'E');
}

void cl2_written(struct worker *w, const struct policy *pol, const char *key, size_t nkey,
                 const struct wire_rmw_reply *reply)
{
    if (reply->result != WIRE_RMW_STORED && reply->result != WIRE_RMW_NOT_FOUND)
        return; /* refused: nothing changed below */
    if (reply->result == WIRE_RMW_STORED && reply->has_record && !reply->rec.tombstone &&
        pol->l2_on_write == L2_ON_WRITE_UPDATE) {
        store(w, pol, &reply->rec, 'S');
        return;
    }
    struct l2_line ln;
    l2_line_start(&ln, "md", key, nkey);
    l2_line_end(&ln);
    l2_request(pool_of(w), w, key, nkey, ln.buf, ln.n, NULL, 0, NULL, NULL); /* nothing waits */
}

void cl2_invalidate_peers(struct worker *w, const char *key, size_t nkey,
                          const struct wire_rmw_reply *reply)
{
    struct l2 *l = pool_of(w);
    if (l == NULL || (reply->result != WIRE_RMW_STORED && reply->result != WIRE_RMW_NOT_FOUND))
        return;
    struct l2_line ln;
    l2_line_start(&ln, "md", key, nkey);
    l2_line_end(&ln);
    l2_invalidate(l, w, key, nkey, ln.buf, ln.n);
}
