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

/* The trailer's last byte: what the entry holds. */
#define ENTRY_VALUE 0x01 /* the record's value, then the trailer */
#define ENTRY_GONE 0x02  /* the trailer alone: deleted or invalidated at its version */

/* What a value of the pool is (CL2_VALUE, CL2_GONE, or CL2_FOREIGN
 * without our trailer), and its version. */
static enum cl2_state entry_parse(const char *value, size_t n, struct wire_version *v)
{
    if (n < CL2_TRAILER || memcmp(value + n - 4, magic, 3) != 0)
        return CL2_FOREIGN;
    const uint8_t *tr = (const uint8_t *)value + n - CL2_TRAILER;
    if (tr[13] != ENTRY_VALUE && !(tr[13] == ENTRY_GONE && n == CL2_TRAILER))
        return CL2_FOREIGN;
    v->hlc = get_be(tr, 8);
    v->node = (uint16_t)get_be(tr + 8, 2);
    return tr[13] == ENTRY_VALUE ? CL2_VALUE : CL2_GONE;
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
    struct cl2_seen seen = {.state = CL2_UNKNOWN};
    if (r == L2_OK && reply->code == MC_REPLY_EN)
        seen.state = CL2_ABSENT;
    if (r == L2_OK && reply->code == MC_REPLY_VA) {
        struct wire_version v = {0, 0};
        seen.state = entry_parse(reply->value, reply->nvalue, &v);
        seen.version = v;
        mc_reply_flag_u64(reply, 'c', &seen.cas);
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
            .value_len = reply->nvalue >= CL2_TRAILER ? reply->nvalue - CL2_TRAILER : 0,
            .flags = (uint32_t)flags,
            .expiry = ttl < 0 ? 0 : (uint64_t)clock_unix_now() + (uint64_t)ttl,
            .version = v,
        };
        if (seen.state == CL2_VALUE && ttl != 0) /* 0: it expires now */
            found = &rec;
    }
    cl2_read_done done = pr->done;
    void *darg = pr->arg;
    size_t size = sizeof(*pr) + pr->nkey;
    done(darg, found, &seen);
    mem_free(MEM_CONN, pr, size);
}

void cl2_read(struct worker *w, const char *key, size_t nkey, cl2_read_done done, void *arg)
{
    struct pending_read *pr = mem_alloc(MEM_CONN, sizeof(*pr) + nkey);
    if (pr == NULL) {
        done(arg, NULL, &(struct cl2_seen){.state = CL2_UNKNOWN});
        return;
    }
    pr->done = done;
    pr->arg = arg;
    pr->nkey = nkey;
    memcpy(pr->key, key, nkey);
    struct l2_line ln;
    l2_line_start(&ln, "mg", key, nkey);
    l2_line_text(&ln, " v f t c");
    l2_line_end(&ln);
    l2_request(pool_of(w), w, key, nkey, ln.buf, ln.n, NULL, 0, on_read, pr);
}

/* -------------------------------------------------------------- writes */

/* The TTL token of an entry of rec: its remaining life, within the
 * policy's l2_ttl_cap; false when it has none left. A "gone" entry lives
 * the cap, or CL2_GONE_TTL without one: long enough for every read in
 * flight when it was written to have tried its fill. */
static bool ttl_of(const struct policy *pol, const struct wire_record *rec, bool gone, int64_t *out)
{
    int64_t ttl = 0;
    if (gone) {
        *out =
            pol->l2_ttl_cap > 0 && pol->l2_ttl_cap < CL2_GONE_TTL ? pol->l2_ttl_cap : CL2_GONE_TTL;
        return true;
    }
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

/*
 * One entry on its way into the pool, version-gated: it replaces what
 * the pool holds only if that is older (or a "gone" entry of the same
 * version, which a value read back after the write replaces), so entries
 * arriving out of order, from this proxy or others, never bring back an
 * older record. The pool's state is known from a read (a fill) or read
 * here (mg k c v); then `ms ... ME` where there was nothing, `ms ... MS
 * C<cas>` over an older entry; a race lost (NS, EX, NF) reads again, at
 * most PUT_TRIES times.
 */
#define PUT_TRIES 4

struct put {
    struct worker *w;
    struct wire_version v;
    bool gone;
    uint32_t flags;
    int64_t ttl;
    unsigned tries;
    size_t nkey, ndata;
    char *data; /* the entry: value and trailer */
    char key[];
};

static void put_free(struct put *p)
{
    mem_free(MEM_CONN, p->data, p->ndata);
    mem_free(MEM_CONN, p, sizeof(*p) + p->nkey);
}

static void put_read(struct put *p);

/* True when an entry (kind, version) in the pool must give way to p. */
static bool put_wins(const struct put *p, enum cl2_state state, struct wire_version v)
{
    switch (state) {
    case CL2_ABSENT:
    case CL2_FOREIGN: return true;
    case CL2_VALUE: return wire_version_newer(p->v, v);
    case CL2_GONE:
        return wire_version_newer(p->v, v) ||
               (!p->gone && p->v.hlc == v.hlc && p->v.node == v.node);
    case CL2_UNKNOWN: break;
    }
    return false;
}

static void on_put(void *arg, enum l2_result r, const struct mc_reply *reply)
{
    struct put *p = arg;
    if (r == L2_OK &&
        (reply->code == MC_REPLY_NS || reply->code == MC_REPLY_EX || reply->code == MC_REPLY_NF) &&
        ++p->tries < PUT_TRIES) {
        put_read(p); /* another entry came between: look again */
        return;
    }
    put_free(p);
}

/* Sends p over what the pool holds (state, its cas), if p is newer. */
static void put_over(struct put *p, enum cl2_state state, uint64_t cas, struct wire_version v)
{
    if (!put_wins(p, state, v)) {
        put_free(p);
        return;
    }
    struct l2_line ln;
    l2_line_start(&ln, "ms", p->key, p->nkey);
    l2_line_u64(&ln, 0, p->ndata);
    l2_line_u64(&ln, 'F', p->flags);
    l2_line_i64(&ln, 'T', p->ttl);
    if (state == CL2_ABSENT) {
        l2_line_text(&ln, " ME");
    } else {
        l2_line_text(&ln, " MS");
        l2_line_u64(&ln, 'C', cas);
    }
    l2_line_end(&ln);
    struct worker *w = p->w;
    l2_request(pool_of(w), w, p->key, p->nkey, ln.buf, ln.n, p->data, p->ndata, on_put, p);
}

static void on_put_read(void *arg, const struct wire_record *rec, const struct cl2_seen *seen)
{
    (void)rec;
    struct put *p = arg;
    if (seen->state == CL2_UNKNOWN) { /* the pool failed: nothing to order against */
        put_free(p);
        return;
    }
    put_over(p, seen->state, seen->cas, seen->version);
}

static void put_read(struct put *p)
{
    cl2_read(p->w, p->key, p->nkey, on_put_read, p);
}

/* rec as an entry (or, gone, the trailer alone at rec's version), put
 * over what `seen` says the pool held, or over what a read finds. */
static void put_start(struct worker *w, const struct policy *pol, const char *key, size_t nkey,
                      const struct wire_record *rec, bool gone, const struct cl2_seen *seen)
{
    int64_t ttl;
    if (!ttl_of(pol, rec, gone, &ttl))
        return;
    size_t vlen = gone ? 0 : rec->value_len;
    struct put *p = mem_alloc(MEM_CONN, sizeof(*p) + nkey);
    char *data = mem_alloc(MEM_CONN, vlen + CL2_TRAILER);
    if (p == NULL || data == NULL) {
        if (p != NULL)
            mem_free(MEM_CONN, p, sizeof(*p) + nkey);
        if (data != NULL)
            mem_free(MEM_CONN, data, vlen + CL2_TRAILER);
        return;
    }
    if (vlen > 0)
        memcpy(data, rec->value, vlen);
    put_be((uint8_t *)data + vlen, rec->version.hlc, 8);
    put_be((uint8_t *)data + vlen + 8, rec->version.node, 2);
    memcpy(data + vlen + 10, magic, 3);
    data[vlen + 13] = (char)(gone ? ENTRY_GONE : ENTRY_VALUE);
    *p = (struct put){.w = w,
                      .v = rec->version,
                      .gone = gone,
                      .flags = gone ? 0 : rec->flags,
                      .ttl = ttl,
                      .nkey = nkey,
                      .ndata = vlen + CL2_TRAILER,
                      .data = data};
    memcpy(p->key, key, nkey);
    if (seen != NULL && seen->state != CL2_UNKNOWN)
        put_over(p, seen->state, seen->cas, seen->version);
    else
        put_read(p);
}

void cl2_fill(struct worker *w, const struct policy *pol, const struct wire_record *rec,
              const struct cl2_seen *seen)
{
    if (rec->tombstone)
        return; /* the nodes' miss: nothing to add */
    put_start(w, pol, (const char *)rec->key, rec->key_len, rec, false, seen);
}

void cl2_written(struct worker *w, const struct policy *pol, const char *key, size_t nkey,
                 const struct wire_rmw_reply *reply)
{
    if (reply->result == WIRE_RMW_STORED && reply->has_record) {
        bool gone = pol->l2_on_write != L2_ON_WRITE_UPDATE;
        put_start(w, pol, key, nkey, &reply->rec, gone, NULL);
        return;
    }
    if (reply->result == WIRE_RMW_STORED && reply->cas != 0) {
        /* a delete (its tombstone is not sent back): "gone" at its HLC,
         * ahead of any record of that HLC, as the node is not known */
        struct wire_record rec = {.version = {.hlc = reply->cas, .node = UINT16_MAX}};
        put_start(w, pol, key, nkey, &rec, true, NULL);
        return;
    }
    if (reply->result != WIRE_RMW_STORED && reply->result != WIRE_RMW_NOT_FOUND)
        return;                          /* refused: nothing changed below */
    l2_delete(pool_of(w), w, key, nkey); /* nothing to order by: drop the entry */
}

void cl2_invalidate_peers(struct worker *w, const char *key, size_t nkey,
                          const struct wire_rmw_reply *reply)
{
    struct l2 *l = pool_of(w);
    if (l == NULL || (reply->result != WIRE_RMW_STORED && reply->result != WIRE_RMW_NOT_FOUND))
        return;
    l2_invalidate(l, w, key, nkey);
}
