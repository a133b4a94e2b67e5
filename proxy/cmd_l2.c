/*
 * cmd_l2.c - memcached's commands over the L2 pool (see cmd_l2.h): each
 * command is sent to its key's server as one meta request and answered
 * from the reply; L1, when on, keeps what gets brought back.
 *
 *   get:    L1 hit ─► answer | miss ─► mg k v f c t ─► VA: fill L1 unless a
 *           write of the key's slot came between (the gate) ─► answer;
 *           EN, or the server failed ─► a miss
 *   write:  ms / md / ma / mg T ─► the reply ─► L1's copy dropped (gate
 *           bumped) ─► answer; the server failed ─► SERVER_ERROR
 */
#include "proxy/cmd_l2.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "common/clock.h"
#include "common/mc_reply.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/numparse.h"
#include "frontend/call.h"
#include "frontend/count.h"
#include "frontend/fe.h"
#include "frontend/worker.h"
#include "proxy/cmd.h"
#include "proxy/l2.h"
#include "proxy/policy.h"
#include "proxy/proxy.h"
#include "proxy/tiers.h"

enum wkind { K_GET, K_MG, K_STORE, K_DELETE, K_MD, K_TOUCH, K_DELTA, K_MA };

/* A command waiting on its L2 server. */
struct lwait {
    struct fe_call *call;
    struct worker *w;
    enum wkind kind;
    uint64_t gen; /* the gate's, when a read was sent */
    bool touch;   /* K_GET: gat */
    bool fill;    /* a read whose answer may go into L1 */
    enum fe_store_mode mode;
    bool incr;
    struct fe_meta_ttl ttl;
    struct fe_meta_arith arith;
    size_t nkey;
    char key[];
};

static struct proxy *proxy_of(struct worker *w)
{
    return w->fe->exec;
}

static const struct fe_exec_ops *l1(void)
{
    return &cmd_exec_ops;
}

static struct lwait *lwait_new(struct worker *w, struct fe_call *call, enum wkind kind,
                               const char *key, size_t nkey)
{
    struct lwait *lw = mem_calloc(MEM_CONN, 1, sizeof(*lw) + nkey);
    if (lw == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(call, &a);
        return NULL;
    }
    lw->call = call;
    lw->w = w;
    lw->kind = kind;
    lw->nkey = nkey;
    memcpy(lw->key, key, nkey);
    return lw;
}

static void lwait_free(struct lwait *lw)
{
    mem_free(MEM_CONN, lw, sizeof(*lw) + lw->nkey);
}

/* ------------------------------------------------------------ requests */

/* A relative exptime as the TTL token memcached takes: 0 never, -1
 * already expired, seconds up to 30 days, else the unix time. */
static int64_t ttl_of(rel_time_t exptime)
{
    if (exptime == 0)
        return 0;
    rel_time_t now = clock_now();
    if (exptime <= now)
        return -1;
    int64_t left = (int64_t)(exptime - now);
    return left <= 60 * 60 * 24 * 30 ? left : (int64_t)clock_process_started() + exptime;
}

/* --------------------------------------------------------------- L1 */

/* Other proxies drop their L1 copy of a key this proxy wrote. */
static void invalidate_peers(struct worker *w, const char *key, size_t nkey)
{
    l2_invalidate(proxy_of(w)->l2, w, key, nkey);
}

/* Reads sent before now do not fill L1 with what they bring back (the
 * pool's fill gate, proxy/l2.h). */
static void gate_bump(struct l2 *l, const char *key, size_t nkey)
{
    uint64_t *gen = l2_gate_lock(l, key, nkey);
    if (gen != NULL)
        (*gen)++;
    l2_gate_unlock(l, key, nkey);
}

/* The L1 copy goes (a write completed), and reads sent before do not
 * fill: both under the gate, so no fill slips in between. */
static void l1_drop(struct lwait *lw)
{
    struct proxy *p = proxy_of(lw->w);
    if (!p->settings.l1)
        return; /* routing: nothing fills */
    uint64_t *gen = l2_gate_lock(p->l2, lw->key, lw->nkey);
    (*gen)++;
    cache_delete(p->cache, lw->key, lw->nkey, 0);
    l2_gate_unlock(p->l2, lw->key, lw->nkey);
}

static uint64_t gate_begin(struct l2 *l, const char *key, size_t nkey)
{
    uint64_t g = *l2_gate_lock(l, key, nkey);
    l2_gate_unlock(l, key, nkey);
    return g;
}

/* The exptime an L1 copy gets: the server's TTL, within the policy's
 * l1_ttl_cap. False when it has expired already. */
static bool l1_exptime(struct proxy *p, const struct lwait *lw, const struct mc_reply *r,
                       rel_time_t *out)
{
    size_t n;
    const char *t = mc_reply_flag(r, 't', &n);
    int32_t ttl = -1;
    if (t != NULL && !numparse_i32_trunc(t, n, &ttl))
        ttl = -1;
    if (t != NULL && ttl == 0)
        return false; /* expires now */
    const struct policy *pol = policies_match(p->settings.policies, lw->key, lw->nkey);
    unsigned cap = pol != NULL ? pol->l1_ttl_cap : 0;
    if (ttl < 0 || (cap > 0 && (unsigned)ttl > cap))
        ttl = cap > 0 ? (int32_t)cap : -1;
    *out = ttl < 0 ? 0 : clock_now() + (rel_time_t)ttl;
    return true;
}

/*
 * The item a VA reply answers with: a copy of the value carrying the
 * server's CAS (so gets/cas through the proxy use the server's), put in
 * L1 as well when the read may fill and no write came between.
 */
static struct item *item_of(struct lwait *lw, const struct mc_reply *r)
{
    struct proxy *p = proxy_of(lw->w);
    uint64_t cas = 0, flags64 = 0;
    mc_reply_flag_u64(r, 'c', &cas);
    mc_reply_flag_u64(r, 'f', &flags64);
    rel_time_t exptime = 0;
    bool fill = lw->fill && p->settings.l1 && l1_exptime(p, lw, r, &exptime);
    enum cache_result cr;
    struct item *it = cache_reserve_fill(p->cache, lw->key, lw->nkey, (uint32_t)flags64, exptime,
                                         r->nvalue, cas, &cr);
    if (it == NULL)
        return NULL;
    if (r->nvalue > 0)
        memcpy(item_data_mut(it), r->value, r->nvalue);
    if (!fill)
        return it;
    struct item *copy = cache_reserve_fill(p->cache, lw->key, lw->nkey, (uint32_t)flags64, exptime,
                                           r->nvalue, cas, &cr);
    if (copy == NULL)
        return it;
    if (r->nvalue > 0)
        memcpy(item_data_mut(copy), r->value, r->nvalue);
    if (*l2_gate_lock(p->l2, lw->key, lw->nkey) == lw->gen)
        cache_commit(p->cache, copy, CACHE_FILL, cas, NULL);
    else
        cache_release(p->cache, copy);
    l2_gate_unlock(p->l2, lw->key, lw->nkey);
    return it;
}

/* Commands of one connection run pipelined (cmd_l2_exec): a write or a
 * read that changes the server's copy drops L1's as it is sent, so a read
 * behind it on the connection misses L1 and goes to the server behind it
 * on the link; the drop at completion then covers reads of other
 * connections sent meanwhile. */
static void send_line(struct lwait *lw, struct l2_line *ln, const void *data, size_t ndata,
                      l2_done_fn done)
{
    if (!lw->fill)
        l1_drop(lw);
    l2_line_end(ln);
    l2_request(proxy_of(lw->w)->l2, lw->w, lw->key, lw->nkey, ln->buf, ln->n, data, ndata, done,
               lw);
}

/* ------------------------------------------------------------- replies */

static void answer(struct lwait *lw, struct fe_answer *a)
{
    fe_call_done(lw->call, a);
    lwait_free(lw);
}

/* A read's reply: the value, or a miss (also when the server failed: a
 * cache that cannot answer misses). */
static void on_read(void *arg, enum l2_result r, const struct mc_reply *reply)
{
    struct lwait *lw = arg;
    struct worker *w = lw->w;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    bool hit = r == L2_OK && reply->code == MC_REPLY_VA;
    if (hit)
        a.item = item_of(lw, reply);
    if (lw->kind == K_MG && a.item != NULL) {
        a.info.won = mc_reply_has(reply, 'W');
        a.info.token_sent = mc_reply_has(reply, 'Z');
        a.info.stale = mc_reply_has(reply, 'X');
        a.info.created = a.info.won && lw->ttl.vivify_pos >= 0 && reply->nvalue == 0;
        uint64_t v = 0;
        a.info.fetched = mc_reply_flag_u64(reply, 'h', &v) && v != 0;
        if (mc_reply_flag_u64(reply, 'l', &v))
            a.info.idle = (rel_time_t)v;
        size_t n;
        const char *t = mc_reply_flag(reply, 't', &n);
        int32_t ttl = -1;
        if (t != NULL && numparse_i32_trunc(t, n, &ttl))
            a.info.ttl = ttl;
        else
            a.info.ttl = -1;
    }
    if (lw->kind == K_GET)
        fe_count_lookup(&w->stats, lw->touch, a.item != NULL);
    else
        fe_count_meta_lookup(&w->stats, &lw->ttl, a.item != NULL);
    if (lw->touch || (lw->kind == K_MG && !lw->fill))
        l1_drop(lw); /* the read changed the server's copy */
    answer(lw, &a);
}

/* A write's outcome from its reply. */
static enum fe_result result_of(enum l2_result r, const struct mc_reply *reply)
{
    if (r == L2_TIMEOUT)
        return FE_TIMEOUT;
    if (r != L2_OK)
        return FE_FAILED;
    switch (reply->code) {
    case MC_REPLY_HD:
    case MC_REPLY_VA: return FE_OK;
    case MC_REPLY_NS: return FE_NOT_STORED;
    case MC_REPLY_EX: return FE_EXISTS;
    case MC_REPLY_NF:
    case MC_REPLY_EN: return FE_NOT_FOUND;
    case MC_REPLY_CLIENT_ERROR:
        if (reply->ntext >= 11 && memcmp(reply->text, "cannot incr", 11) == 0)
            return FE_NON_NUMERIC;
        return FE_FAILED;
    case MC_REPLY_SERVER_ERROR:
        if (reply->ntext >= 9 && memcmp(reply->text, "object to", 9) == 0)
            return FE_TOO_LARGE;
        if (reply->ntext >= 13 && memcmp(reply->text, "out of memory", 13) == 0)
            return FE_NO_MEMORY;
        return FE_FAILED;
    default: return FE_FAILED;
    }
}

static void on_write(void *arg, enum l2_result r, const struct mc_reply *reply)
{
    struct lwait *lw = arg;
    struct worker *w = lw->w;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result = result_of(r, reply);
    /* whatever the outcome, the server's copy may have changed */
    l1_drop(lw);
    if (a.result != FE_FAILED || r == L2_TIMEOUT)
        invalidate_peers(w, lw->key, lw->nkey);
    uint64_t v = 0;
    if (r == L2_OK && mc_reply_flag_u64(reply, 'c', &v))
        a.cas = v;
    switch (lw->kind) {
    case K_STORE:
        if (a.result == FE_OK)
            a.result = FE_STORED;
        fe_count_store(&w->stats, lw->mode, a.result);
        break;
    case K_DELETE:
    case K_MD: fe_count_delete(&w->stats, a.result); break;
    case K_TOUCH: fe_count_touch(&w->stats, a.result); break;
    case K_DELTA:
    case K_MA: {
        uint64_t n = 0;
        if (a.result == FE_OK &&
            !(reply->code == MC_REPLY_VA && numparse_u64(reply->value, reply->nvalue, &n)))
            a.result = FE_FAILED;
        a.value = n;
        if (lw->kind == K_MA) {
            a.arith = lw->arith;
            a.arith.value = n;
            a.arith.cas = a.cas;
            size_t tn;
            const char *t = r == L2_OK ? mc_reply_flag(reply, 't', &tn) : NULL;
            int32_t ttl = -1;
            a.arith.ttl_reported = t != NULL && numparse_i32_trunc(t, tn, &ttl) ? ttl : -1;
        }
        fe_count_delta(&w->stats, lw->kind == K_MA ? lw->arith.incr : lw->incr, a.result, false);
        break;
    }
    default: break;
    }
    answer(lw, &a);
}

/* ------------------------------------------------ the front end's calls */

/* True when key's server is this proxy's own peer port: the command runs
 * on L1, which is the pool's copy, as the peer port would run it. */
static bool local(struct worker *w, const char *key, size_t nkey)
{
    return l2_local(proxy_of(w)->l2, w, key, nkey);
}

static void done_with(struct fe_call *call, struct fe_answer *a)
{
    fe_call_done(call, a);
}

static void c_get(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime,
                  struct fe_call *call)
{
    struct worker *w = wctx;
    struct proxy *p = proxy_of(w);
    if (local(w, key, nkey)) {
        struct fe_answer a = {.item = l1()->get(wctx, key, nkey, touch, exptime)};
        done_with(call, &a);
        return;
    }
    if (!touch && p->settings.l1) {
        struct fe_answer a = {.item = cmd_get_hit(w, key, nkey, false, 0)};
        if (a.item != NULL) {
            fe_call_done(call, &a);
            return;
        }
    }
    struct lwait *lw = lwait_new(w, call, K_GET, key, nkey);
    if (lw == NULL)
        return;
    lw->touch = touch;
    lw->fill = !touch;
    if (p->settings.l1)
        lw->gen = gate_begin(p->l2, key, nkey);
    struct l2_line ln;
    l2_line_start(&ln, "mg", key, nkey);
    l2_line_text(&ln, " v f c t");
    if (touch)
        l2_line_i64(&ln, 'T', ttl_of(exptime));
    send_line(lw, &ln, NULL, 0, on_read);
}

/* mg's flags that act on the server's copy, in the client's order (t
 * reports the TTL before or after T as its position says). */
static void meta_ttl_flags(struct l2_line *ln, const struct fe_meta_ttl *t)
{
    struct {
        int pos;
        char letter;
        int64_t v;
        bool has_v;
    } f[4] = {
        {t->t_pos, 't', 0, false},
        {t->touch_pos, 'T', ttl_of(t->touch_exptime), true},
        {t->vivify_pos, 'N', ttl_of(t->vivify_exptime), true},
        {t->recache_pos, 'R', ttl_of(t->recache_time), true},
    };
    bool sent_t = false;
    for (int round = 0; round < 4; round++) {
        int best = -1;
        for (int i = 0; i < 4; i++)
            if (f[i].pos >= 0 && (best < 0 || f[i].pos < f[best].pos))
                best = i;
        if (best < 0)
            break;
        if (t->fail_pos >= 0 && f[best].pos >= t->fail_pos)
            break;
        if (f[best].has_v)
            l2_line_add(ln, " %c%" PRId64, f[best].letter, f[best].v);
        else
            l2_line_add(ln, " t");
        sent_t |= f[best].letter == 't';
        f[best].pos = -1;
    }
    if (!sent_t)
        l2_line_add(ln, " t"); /* the L1 copy's TTL */
}

static void c_meta_get(void *wctx, const char *key, size_t nkey, const struct fe_meta_ttl *ttl,
                       bool no_bump, struct fe_call *call)
{
    struct worker *w = wctx;
    struct proxy *p = proxy_of(w);
    bool acts = ttl->touch_pos >= 0 || ttl->vivify_pos >= 0 || ttl->recache_pos >= 0;
    if (local(w, key, nkey)) {
        struct fe_answer a;
        memset(&a, 0, sizeof(a));
        a.item = l1()->meta_get(wctx, key, nkey, ttl, no_bump, &a.info);
        done_with(call, &a);
        return;
    }
    if (!acts && p->settings.l1) {
        struct cache_meta_info info;
        struct item *it = cache_meta_peek(p->cache, key, nkey, &info);
        if (it != NULL) {
            cache_release(p->cache, it);
            struct fe_answer a;
            memset(&a, 0, sizeof(a));
            a.item = l1()->meta_get(wctx, key, nkey, ttl, no_bump, &a.info);
            if (a.item != NULL) {
                fe_call_done(call, &a);
                return;
            }
        }
    }
    struct lwait *lw = lwait_new(w, call, K_MG, key, nkey);
    if (lw == NULL)
        return;
    lw->ttl = *ttl;
    lw->fill = !acts;
    if (p->settings.l1)
        lw->gen = gate_begin(p->l2, key, nkey);
    struct l2_line ln;
    l2_line_start(&ln, "mg", key, nkey);
    l2_line_text(&ln, " v f c h l");
    if (no_bump)
        l2_line_text(&ln, " u"); /* not marked fetched, not bumped */
    meta_ttl_flags(&ln, ttl);
    send_line(lw, &ln, NULL, 0, on_read);
}

static void c_store(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                    unsigned mflags, struct fe_call *call)
{
    struct worker *w = wctx;
    struct proxy *p = proxy_of(w);
    struct fe_item_view v;
    l1()->view(p, item, &v);
    if (local(w, v.key, v.nkey)) {
        char lw_key_copy[MC_KEY_MAX];
        memcpy(lw_key_copy, v.key, v.nkey); /* the store takes the item */
        struct fe_answer a;
        memset(&a, 0, sizeof(a));
        a.result = l1()->store(wctx, item, mode, cas_in, mflags, &a.cas);
        invalidate_peers(w, lw_key_copy, v.nkey);
        done_with(call, &a);
        return;
    }
    struct lwait *lw = lwait_new(w, call, K_STORE, v.key, v.nkey);
    if (lw == NULL) {
        l1()->release(p, item);
        return;
    }
    lw->mode = mode;
    struct l2_line ln;
    l2_line_start(&ln, "ms", v.key, v.nkey);
    struct item *it = item;
    l2_line_u64(&ln, 0, v.nvalue);
    l2_line_u64(&ln, 'F', v.flags);
    l2_line_i64(&ln, 'T', ttl_of(item_exptime(it)));
    l2_line_text(&ln, (const char *[]){[FE_SET] = " MS c",
                                       [FE_ADD] = " ME c",
                                       [FE_REPLACE] = " MR c",
                                       [FE_APPEND] = " MA c",
                                       [FE_PREPEND] = " MP c",
                                       [FE_CAS] = " MS c"}[mode]);
    if (mode == FE_CAS || cas_in != 0)
        l2_line_u64(&ln, 'C', cas_in);
    if (mflags & FE_META_INVALIDATE)
        l2_line_text(&ln, " I");
    send_line(lw, &ln, v.value, v.nvalue, on_write);
    l1()->release(p, item); /* the request holds its own copy of the value */
}

static void c_remove(void *wctx, const char *key, size_t nkey, uint64_t cas_in,
                     struct fe_call *call)
{
    if (local(wctx, key, nkey)) {
        struct fe_answer a = {.result = l1()->remove(wctx, key, nkey, cas_in)};
        invalidate_peers(wctx, key, nkey);
        done_with(call, &a);
        return;
    }
    struct lwait *lw = lwait_new(wctx, call, K_DELETE, key, nkey);
    if (lw == NULL)
        return;
    struct l2_line ln;
    l2_line_start(&ln, "md", key, nkey);
    if (cas_in != 0)
        l2_line_add(&ln, " C%" PRIu64, cas_in);
    send_line(lw, &ln, NULL, 0, on_write);
}

static void c_touch(void *wctx, const char *key, size_t nkey, rel_time_t exptime,
                    struct fe_call *call)
{
    if (local(wctx, key, nkey)) {
        struct fe_answer a = {.result = l1()->touch(wctx, key, nkey, exptime)};
        done_with(call, &a);
        return;
    }
    struct lwait *lw = lwait_new(wctx, call, K_TOUCH, key, nkey);
    if (lw == NULL)
        return;
    struct l2_line ln;
    l2_line_start(&ln, "mg", key, nkey);
    l2_line_add(&ln, " T%" PRId64, ttl_of(exptime));
    send_line(lw, &ln, NULL, 0, on_write);
}

static void c_delta(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                    uint64_t cas_in, struct fe_call *call)
{
    if (local(wctx, key, nkey)) {
        struct fe_answer a;
        memset(&a, 0, sizeof(a));
        a.result = l1()->delta(wctx, key, nkey, incr, delta, cas_in, &a.value, &a.cas);
        invalidate_peers(wctx, key, nkey);
        done_with(call, &a);
        return;
    }
    struct lwait *lw = lwait_new(wctx, call, K_DELTA, key, nkey);
    if (lw == NULL)
        return;
    lw->incr = incr;
    struct l2_line ln;
    l2_line_start(&ln, "ma", key, nkey);
    l2_line_add(&ln, " M%c D%" PRIu64 " v c", incr ? 'I' : 'D', delta);
    if (cas_in != 0)
        l2_line_add(&ln, " C%" PRIu64, cas_in);
    send_line(lw, &ln, NULL, 0, on_write);
}

static void c_meta_delete(void *wctx, const char *key, size_t nkey, bool has_cas, uint64_t cas_in,
                          bool invalidate, bool new_ttl, rel_time_t exptime, struct fe_call *call)
{
    if (local(wctx, key, nkey)) {
        struct fe_answer a = {.result = l1()->meta_delete(wctx, key, nkey, has_cas, cas_in,
                                                          invalidate, new_ttl, exptime)};
        invalidate_peers(wctx, key, nkey);
        done_with(call, &a);
        return;
    }
    struct lwait *lw = lwait_new(wctx, call, K_MD, key, nkey);
    if (lw == NULL)
        return;
    struct l2_line ln;
    l2_line_start(&ln, "md", key, nkey);
    if (has_cas)
        l2_line_add(&ln, " C%" PRIu64, cas_in);
    if (invalidate)
        l2_line_add(&ln, " I");
    if (new_ttl)
        l2_line_add(&ln, " T%" PRId64, ttl_of(exptime));
    send_line(lw, &ln, NULL, 0, on_write);
}

static void c_meta_delta(void *wctx, const char *key, size_t nkey, const struct fe_meta_arith *a,
                         struct fe_call *call)
{
    if (local(wctx, key, nkey)) {
        struct fe_answer r;
        memset(&r, 0, sizeof(r));
        r.arith = *a;
        r.result = l1()->meta_delta(wctx, key, nkey, &r.arith);
        invalidate_peers(wctx, key, nkey);
        done_with(call, &r);
        return;
    }
    struct lwait *lw = lwait_new(wctx, call, K_MA, key, nkey);
    if (lw == NULL)
        return;
    lw->arith = *a;
    struct l2_line ln;
    l2_line_start(&ln, "ma", key, nkey);
    l2_line_add(&ln, " M%c D%" PRIu64 " v c", a->incr ? 'I' : 'D', a->delta);
    if (a->cas_in != 0)
        l2_line_add(&ln, " C%" PRIu64, a->cas_in);
    if (a->vivify)
        l2_line_add(&ln, " N%" PRId64 " J%" PRIu64, ttl_of(a->ttl.vivify_exptime), a->initial);
    meta_ttl_flags(&ln, &(struct fe_meta_ttl){.t_pos = a->ttl.t_pos,
                                              .touch_pos = a->ttl.touch_pos,
                                              .touch_exptime = a->ttl.touch_exptime,
                                              .vivify_pos = -1,
                                              .recache_pos = -1,
                                              .fail_pos = a->ttl.fail_pos});
    send_line(lw, &ln, NULL, 0, on_write);
}

/* The item a storage command's value is read into. A set refused here
 * (over the item size limit, or no memory for it) drops the server's copy
 * of the key too, as memcached drops the old value of a refused set (the
 * front end passes FE_SET for every ms; add, replace, append and prepend
 * leave it). */
static void *c_reserve(void *wctx, const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                       size_t nbytes, enum fe_store_mode mode, enum fe_result *res)
{
    void *it = l1()->reserve(wctx, key, nkey, flags, exptime, nbytes, mode, res);
    if (it == NULL && mode == FE_SET && !local(wctx, key, nkey)) {
        l2_delete(proxy_of(wctx)->l2, wctx, key, nkey);
        invalidate_peers(wctx, key, nkey);
    }
    return it;
}

/* flush_all flushes L1 and every server of the pool, as a router that
 * broadcasts it (mcrouter does); memcached answers OK whatever happens,
 * so nothing waits for the servers. */
static void c_flush_all(void *wctx, int64_t delay, bool allowed)
{
    struct worker *w = wctx;
    l1()->flush_all(wctx, delay, allowed);
    if (!allowed)
        return;
    char line[48];
    int n = delay > 0 ? snprintf(line, sizeof(line), "flush_all %" PRId64, delay)
                      : snprintf(line, sizeof(line), "flush_all");
    l2_broadcast(proxy_of(w)->l2, w, line, (size_t)n);
}

/* ---------------------------------------------------- the peer port */

/* A peer's delete (an invalidation, or a pool delete) also stops this
 * proxy's reads in flight from filling L1 with what they bring back. */
static enum fe_result p_remove(void *wctx, const char *key, size_t nkey, uint64_t cas_in)
{
    gate_bump(proxy_of(wctx)->l2, key, nkey);
    tiers_gate_bump(proxy_of(wctx)->tiers, key, nkey);
    return l1()->remove(wctx, key, nkey, cas_in);
}

static enum fe_result p_meta_delete(void *wctx, const char *key, size_t nkey, bool has_cas,
                                    uint64_t cas_in, bool invalidate, bool new_ttl,
                                    rel_time_t exptime)
{
    gate_bump(proxy_of(wctx)->l2, key, nkey);
    tiers_gate_bump(proxy_of(wctx)->tiers, key, nkey);
    return l1()->meta_delete(wctx, key, nkey, has_cas, cas_in, invalidate, new_ttl, exptime);
}

const struct fe_exec_ops *cmd_l2_peer_exec(struct fe_exec_ops *storage)
{
    *storage = *l1();
    storage->remove = p_remove;
    storage->meta_delete = p_meta_delete;
    return storage;
}

const struct fe_exec_ops *cmd_l2_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage)
{
    *storage = *inner;
    storage->pipelined = true;
    storage->reserve = c_reserve;
    storage->get_async = c_get;
    storage->meta_get_async = c_meta_get;
    storage->store_async = c_store;
    storage->remove_async = c_remove;
    storage->touch_async = c_touch;
    storage->delta_async = c_delta;
    storage->meta_delete_async = c_meta_delete;
    storage->meta_delta_async = c_meta_delta;
    storage->flush_all = c_flush_all;
    return storage;
}
