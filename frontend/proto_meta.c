/*
 * proto_meta.c - meta protocol commands (see proto_meta.h):
 *
 *   line ─► mc_meta_parse ─► mg/md/ma/me: executor's meta_* ─► reply
 *                          └► ms: reserve ─► CONN_NREAD ─► nread_done
 *                                 ─► store ─► reply
 *
 * Replies are "<code>[ <return flags>]\r\n" with the return flags in the
 * order the client asked for them (then Z, X, W). Quiet mode (q) hides the
 * nominal reply only (mg's EN; ms/md/ma's HD), never an error.
 */
#include "frontend/proto_meta.h"

#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_meta.h"
#include "common/mem.h"
#include "frontend/call.h"
#include "frontend/conn.h"
#include "frontend/fe.h"
#include "frontend/worker.h"

#define LIT(s) s, sizeof(s) - 1
/* Longest reply line: code, base64 key with " b", opaque, numbers. */
#define META_LINE_MAX 1024

/* What an ms needs once its data has arrived. */
struct proto_meta_set {
    char order[4];                   /* 'O', 'k', 'c' as requested */
    char opaque[MC_META_OPAQUE_MAX]; /* the O token, letter included */
    size_t nopaque;
    char key[MC_KEY_MAX];
    size_t nkey;
    bool key_binary;
    bool quiet;
    unsigned mflags;
};

/* A reply line under construction. */
struct meta_line {
    char buf[META_LINE_MAX];
    size_t n;
};

static void line_put(struct meta_line *l, const char *s, size_t n)
{
    memcpy(l->buf + l->n, s, n);
    l->n += n;
}

static void line_flag_u64(struct meta_line *l, char flag, uint64_t v)
{
    l->buf[l->n++] = ' ';
    l->buf[l->n++] = flag;
    l->n += mc_u64_to_str(v, l->buf + l->n);
}

static void line_flag_ttl(struct meta_line *l, int64_t ttl)
{
    if (ttl < 0)
        line_put(l, LIT(" t-1"));
    else
        line_flag_u64(l, 't', (uint64_t)ttl);
}

/* " k<key>", base64 with a following " b" for binary keys. */
static void line_key(struct meta_line *l, const char *key, size_t nkey, bool binary)
{
    line_put(l, LIT(" k"));
    if (binary) {
        l->n += mc_base64_encode(key, nkey, l->buf + l->n);
        line_put(l, LIT(" b"));
    } else {
        line_put(l, key, nkey);
    }
}

static void line_opaque(struct meta_line *l, const struct mc_meta_token *t)
{
    l->buf[l->n++] = ' ';
    line_put(l, t->p, t->n);
}

static enum proto_action reply(struct conn *c, const char *s, size_t n)
{
    return outq_add(conn_out(c), s, n) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

static enum proto_action reply_error(struct conn *c, const char *line)
{
    return reply(c, line, strlen(line));
}

/* Sends the line with "\r\n" and, if `it` is not NULL, its value. Takes
 * the item reference. */
static enum proto_action reply_line(struct conn *c, struct meta_line *l, void *it)
{
    line_put(l, LIT("\r\n"));
    enum st_status s = outq_add(conn_out(c), l->buf, l->n);
    if (it == NULL || s != ST_OK) {
        if (it != NULL)
            c->xo->release(c->exec, it);
        return s == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
    }
    struct fe_item_view v;
    c->xo->view(c->exec, it, &v);
    return outq_add_value(conn_out(c), it, v.value, v.nvalue, "\r\n", 2) == ST_OK ? PROTO_NEXT
                                                                                  : PROTO_CLOSE;
}

/* Echoes O and k for replies without an item (miss, NF, EX). */
static void line_echo(struct meta_line *l, const struct mc_meta_request *req)
{
    for (unsigned i = 0; i < req->nflags; i++) {
        const struct mc_meta_token *t = &req->flags[i];
        if (t->p[0] == 'O')
            line_opaque(l, t);
        else if (t->p[0] == 'k')
            line_key(l, req->key, req->nkey, req->key_binary);
    }
}

static void ttl_positions(const struct mc_meta_request *req, struct fe_meta_ttl *ttl)
{
    *ttl = (struct fe_meta_ttl)FE_META_TTL_NONE;
    for (unsigned i = 0; i < req->nflags; i++) {
        switch (req->flags[i].p[0]) {
        case 't': ttl->t_pos = (int)i; break;
        case 'T': ttl->touch_pos = (int)i; break;
        case 'N': ttl->vivify_pos = (int)i; break;
        case 'R': ttl->recache_pos = (int)i; break;
        default: break;
        }
    }
    ttl->touch_exptime = clock_exptime(req->ttl);
    ttl->vivify_exptime = clock_exptime(req->vivify_ttl);
    ttl->recache_time = clock_exptime(req->recache_ttl);
}

/*
 * An mg whose opaque is too long: memcached notices only while wording the
 * reply, so the lookup has happened (a miss is counted, N has created the
 * item, T before the opaque has touched it) and then the reply is the
 * error. Its "locked" flags (N T R l h) delay the bump to after the reply,
 * which then never comes; without them the lookup itself has bumped.
 */
static void mg_failed_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    (void)call;
    if (a->item != NULL)
        c->xo->release(c->exec, a->item);
    if (reply_error(c, "CLIENT_ERROR opaque token too long\r\n") == PROTO_CLOSE)
        c->close_after_write = true;
}

static enum proto_action meta_get_failed(struct conn *c, const struct mc_meta_request *req,
                                         struct fe_meta_ttl *ttl)
{
    bool locked = false;
    for (unsigned i = 0; i < req->nflags; i++) {
        const struct mc_meta_token *t = &req->flags[i];
        if (t->p[0] == 'O' && t->n > MC_META_OPAQUE_MAX && ttl->fail_pos < 0)
            ttl->fail_pos = (int)i;
        if (memchr("NTRlh", t->p[0], 5) != NULL)
            locked = true;
    }
    if (c->xo->meta_get_async != NULL) {
        /* the flags before the opaque act where the executor keeps the
         * item (a server behind a router); the reply is the error */
        struct fe_call *call = fe_call_new(c, mg_failed_cont, 0);
        if (call == NULL)
            return reply_error(c, "SERVER_ERROR out of memory\r\n");
        c->xo->meta_get_async(c->wctx, req->key, req->nkey, ttl, req->no_bump || locked, call);
        return PROTO_NEXT;
    }
    struct fe_meta_info info;
    void *it = c->xo->meta_get(c->wctx, req->key, req->nkey, ttl, req->no_bump || locked, &info);
    if (it != NULL)
        c->xo->release(c->exec, it);
    return reply_error(c, "CLIENT_ERROR opaque token too long\r\n");
}

/* Words an mg's reply from the lookup's result. Takes the item. */
static enum proto_action meta_get_answer(struct conn *c, const struct mc_meta_request *req,
                                         void *it, const struct fe_meta_info *infop)
{
    struct fe_meta_info info = *infop;
    struct meta_line l = {.n = 0};
    if (it == NULL) {
        if (req->quiet)
            return PROTO_NEXT;
        line_put(&l, LIT("EN"));
        line_echo(&l, req);
        return reply_line(c, &l, NULL);
    }
    struct fe_item_view v;
    c->xo->view(c->exec, it, &v);
    if (req->value) {
        line_put(&l, LIT("VA "));
        l.n += mc_u64_to_str(v.nvalue, l.buf + l.n);
    } else {
        line_put(&l, LIT("HD"));
    }
    for (unsigned i = 0; i < req->nflags; i++) {
        const struct mc_meta_token *t = &req->flags[i];
        switch (t->p[0]) {
        case 's': line_flag_u64(&l, 's', v.nvalue); break;
        case 't': line_flag_ttl(&l, info.ttl); break;
        case 'c': line_flag_u64(&l, 'c', v.cas); break;
        case 'f': line_flag_u64(&l, 'f', v.flags); break;
        case 'l': line_flag_u64(&l, 'l', info.idle); break;
        case 'h': line_put(&l, info.fetched ? " h1" : " h0", 3); break;
        case 'O': line_opaque(&l, t); break;
        case 'k': line_key(&l, v.key, v.nkey, info.key_binary); break;
        default: break;
        }
    }
    if (info.token_sent)
        line_put(&l, LIT(" Z"));
    if (info.stale)
        line_put(&l, LIT(" X"));
    if (info.won)
        line_put(&l, LIT(" W"));
    if (!req->value) {
        c->xo->release(c->exec, it);
        it = NULL;
    }
    return reply_line(c, &l, it);
}

/* A failure of the server (fe_server_error's line). */
static enum proto_action server_error(struct conn *c, enum fe_result r)
{
    const char *line = fe_server_error(r);
    return reply(c, line, strlen(line));
}

/* An mg whose lookup completes later: the line is kept and parsed again
 * for the reply, the request's views pointing into the copy. */
struct mg_later {
    size_t len;
    char line[];
};

static void mg_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    struct mg_later *g = fe_call_extra(call);
    struct mc_meta_request req;
    if (mc_meta_parse(g->line, g->len, &req) != MC_PARSE_OK) {
        if (a->item != NULL)
            c->xo->release(c->exec, a->item);
        c->close_after_write = true;
        return;
    }
    if (fe_server_error(a->result) != NULL) {
        if (a->item != NULL)
            c->xo->release(c->exec, a->item);
        server_error(c, a->result);
        return;
    }
    if (meta_get_answer(c, &req, a->item, &a->info) == PROTO_CLOSE)
        c->close_after_write = true;
}

/* A meta command whose result comes later, its line kept to word the
 * reply (re-parsed then, the request's views pointing into the copy). */
static struct fe_call *line_call(struct conn *c, fe_cont cont, const char *line, size_t len)
{
    struct fe_call *call = fe_call_new(c, cont, sizeof(struct mg_later) + len);
    if (call != NULL) {
        struct mg_later *g = fe_call_extra(call);
        g->len = len;
        memcpy(g->line, line, len);
    }
    return call;
}

static enum proto_action meta_get(struct conn *c, const struct mc_meta_request *req,
                                  const char *line, size_t len)
{
    struct fe_meta_ttl ttl;
    ttl_positions(req, &ttl);
    if (req->opaque_too_long)
        return meta_get_failed(c, req, &ttl);
    if (c->xo->meta_get_async != NULL) {
        struct fe_call *call = line_call(c, mg_cont, line, len);
        if (call == NULL)
            return reply_error(c, "SERVER_ERROR out of memory\r\n");
        c->xo->meta_get_async(c->wctx, req->key, req->nkey, &ttl, req->no_bump, call);
        return PROTO_NEXT;
    }
    struct fe_meta_info info;
    void *it = c->xo->meta_get(c->wctx, req->key, req->nkey, &ttl, req->no_bump, &info);
    return meta_get_answer(c, req, it, &info);
}

static enum proto_action reply_deferred(struct conn *c)
{
    const char *line = c->deferred_line;
    c->deferred_line = NULL;
    return line == NULL ? PROTO_NEXT : reply_error(c, line);
}

static enum proto_action meta_set(struct conn *c, const struct mc_meta_request *req)
{
    size_t nbytes = (size_t)req->vlen + 2;
    enum fe_store_mode mode = FE_SET;
    unsigned mflags = req->key_binary ? FE_META_KEY_BINARY : 0;
    rel_time_t exptime = req->has_ttl ? clock_exptime(req->ttl) : 0;
    switch (req->mode) {
    case 'E': mode = FE_ADD; break;
    case 'A': mode = FE_APPEND; break;
    case 'P': mode = FE_PREPEND; break;
    case 'R': mode = FE_REPLACE; break;
    default: break;
    }
    /* memcached 1.6.18 parses N on ms and ignores it: an append or
     * prepend on a miss is NS, and nothing is created. */
    if (req->has_cas && (mode == FE_SET || mode == FE_REPLACE))
        mode = FE_CAS;
    if (req->invalidate && mode == FE_CAS)
        mflags |= FE_META_INVALIDATE;
    enum fe_result res;
    /* memcached drops the old value of a refused ms in every mode */
    void *it = c->xo->reserve(c->wctx, req->key, req->nkey, req->client_flags, exptime,
                              (size_t)req->vlen, FE_SET, &res);
    if (it == NULL) {
        c->deferred_line = res == FE_TOO_LARGE ? "SERVER_ERROR object too large for cache\r\n"
                                               : "SERVER_ERROR out of memory storing object\r\n";
        conn_begin_swallow(c, nbytes, reply_deferred);
        return PROTO_NEXT;
    }
    if (c->meta_set == NULL) {
        c->meta_set = mem_alloc(MEM_CONN, sizeof(*c->meta_set));
        if (c->meta_set == NULL) {
            c->xo->release(c->exec, it);
            return PROTO_CLOSE;
        }
    }
    struct proto_meta_set *ms = c->meta_set;
    size_t norder = 0;
    ms->nopaque = 0;
    for (unsigned i = 0; i < req->nflags; i++) {
        const struct mc_meta_token *t = &req->flags[i];
        if (t->p[0] == 'O') {
            memcpy(ms->opaque, t->p, t->n);
            ms->nopaque = t->n;
        }
        if (t->p[0] == 'O' || t->p[0] == 'k' || t->p[0] == 'c')
            ms->order[norder++] = t->p[0];
    }
    ms->order[norder] = '\0';
    memcpy(ms->key, req->key, req->nkey);
    ms->nkey = req->nkey;
    ms->key_binary = req->key_binary;
    ms->quiet = req->quiet;
    ms->mflags = mflags;
    conn_begin_nread(c, it, 2, mode, req->has_cas ? req->cas : 0, req->quiet);
    c->nread_meta = true;
    return PROTO_NEXT;
}

static enum proto_action ms_answer(struct conn *c, const struct proto_meta_set *ms,
                                   enum fe_result r, uint64_t cas);

static void ms_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    if (ms_answer(c, fe_call_extra(call), a->result, a->cas) == PROTO_CLOSE)
        c->close_after_write = true;
}

enum proto_action proto_meta_nread_done(struct conn *c)
{
    void *it = c->it;
    struct proto_meta_set *ms = c->meta_set;
    c->it = NULL;
    c->nread_meta = false;
    if (!conn_tail_is_crlf(c)) {
        c->xo->store_aborted(c->wctx, it);
        return reply(c, LIT("CLIENT_ERROR bad data chunk\r\n"));
    }
    if (c->xo->store_async != NULL) {
        /* the reply's flags go with the call: a pipelined connection
         * parses its next ms into c->meta_set before this one answers */
        struct fe_call *call = fe_call_new(c, ms_cont, sizeof(*ms));
        if (call == NULL) {
            c->xo->release(c->exec, it);
            return ms_answer(c, ms, FE_NO_MEMORY, 0);
        }
        memcpy(fe_call_extra(call), ms, sizeof(*ms));
        c->xo->store_async(c->wctx, it, c->mode, c->cas_in, ms->mflags, call);
        return PROTO_NEXT;
    }
    uint64_t cas = 0;
    enum fe_result r = c->xo->store(c->wctx, it, c->mode, c->cas_in, ms->mflags, &cas);
    return ms_answer(c, ms, r, cas);
}

/* An ms's reply, from its flags. */
static enum proto_action ms_answer(struct conn *c, const struct proto_meta_set *ms,
                                   enum fe_result r, uint64_t cas)
{
    struct meta_line l = {.n = 0};
    switch (r) {
    case FE_STORED:
        if (ms->quiet)
            return PROTO_NEXT;
        line_put(&l, LIT("HD"));
        break;
    case FE_NOT_STORED: line_put(&l, LIT("NS")); break;
    case FE_EXISTS: line_put(&l, LIT("EX")); break;
    case FE_NOT_FOUND: line_put(&l, LIT("NF")); break;
    case FE_TOO_LARGE: return reply(c, LIT("SERVER_ERROR object too large for cache\r\n"));
    case FE_FAILED:
    case FE_UNAVAILABLE:
    case FE_TIMEOUT:
    case FE_BUSY: return server_error(c, r);
    default: return reply(c, LIT("SERVER_ERROR out of memory storing object\r\n"));
    }
    for (const char *o = ms->order; *o != '\0'; o++) {
        if (*o == 'O') {
            l.buf[l.n++] = ' ';
            line_put(&l, ms->opaque, ms->nopaque);
        } else if (*o == 'k') {
            line_key(&l, ms->key, ms->nkey, ms->key_binary);
        } else {
            line_flag_u64(&l, 'c', cas);
        }
    }
    return reply_line(c, &l, NULL);
}

static enum proto_action md_answer(struct conn *c, const struct mc_meta_request *req,
                                   enum fe_result r)
{
    struct meta_line l = {.n = 0};
    switch (r) {
    case FE_OK:
        if (req->quiet)
            return PROTO_NEXT;
        line_put(&l, LIT("HD"));
        break;
    case FE_EXISTS: line_put(&l, LIT("EX")); break;
    case FE_NO_MEMORY: return reply(c, LIT("SERVER_ERROR out of memory\r\n"));
    case FE_FAILED:
    case FE_UNAVAILABLE:
    case FE_TIMEOUT:
    case FE_BUSY: return server_error(c, r);
    default: line_put(&l, LIT("NF")); break;
    }
    line_echo(&l, req);
    return reply_line(c, &l, NULL);
}

static void md_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    struct mg_later *g = fe_call_extra(call);
    struct mc_meta_request req;
    if (mc_meta_parse(g->line, g->len, &req) != MC_PARSE_OK ||
        md_answer(c, &req, a->result) == PROTO_CLOSE)
        c->close_after_write = true;
}

static enum proto_action meta_delete(struct conn *c, const struct mc_meta_request *req,
                                     const char *line, size_t len)
{
    if (req->opaque_too_long)
        return reply_error(c, "CLIENT_ERROR opaque token too long\r\n");
    rel_time_t exptime = clock_exptime(req->ttl);
    if (c->xo->meta_delete_async != NULL) {
        struct fe_call *call = line_call(c, md_cont, line, len);
        if (call == NULL)
            return md_answer(c, req, FE_NO_MEMORY);
        c->xo->meta_delete_async(c->wctx, req->key, req->nkey, req->has_cas, req->cas,
                                 req->invalidate, req->has_ttl, exptime, call);
        return PROTO_NEXT;
    }
    enum fe_result r = c->xo->meta_delete(c->wctx, req->key, req->nkey, req->has_cas, req->cas,
                                          req->invalidate, req->has_ttl, exptime);
    return md_answer(c, req, r);
}

static enum proto_action ma_answer(struct conn *c, const struct mc_meta_request *req,
                                   enum fe_result r, const struct fe_meta_arith *a);

static void ma_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    struct mg_later *g = fe_call_extra(call);
    struct mc_meta_request req;
    if (mc_meta_parse(g->line, g->len, &req) != MC_PARSE_OK ||
        ma_answer(c, &req, a->result, &a->arith) == PROTO_CLOSE)
        c->close_after_write = true;
}

static enum proto_action meta_arith(struct conn *c, const struct mc_meta_request *req,
                                    const char *line, size_t len)
{
    struct fe_meta_arith a = {
        .incr = true,
        .delta = req->delta,
        .cas_in = req->has_cas ? req->cas : 0,
        .vivify = req->has_vivify,
        .initial = req->initial,
    };
    switch (req->mode) {
    case 0:
    case 'I':
    case '+': break;
    case 'D':
    case '-': a.incr = false; break;
    default: return reply_error(c, "CLIENT_ERROR invalid mode for ma M token\r\n");
    }
    ttl_positions(req, &a.ttl);
    a.ttl.recache_pos = -1;
    if (c->xo->meta_delta_async != NULL) {
        struct fe_call *call = line_call(c, ma_cont, line, len);
        if (call == NULL)
            return ma_answer(c, req, FE_NO_MEMORY, &a);
        c->xo->meta_delta_async(c->wctx, req->key, req->nkey, &a, call);
        return PROTO_NEXT;
    }
    enum fe_result r = c->xo->meta_delta(c->wctx, req->key, req->nkey, &a);
    return ma_answer(c, req, r, &a);
}

/* An ma's reply from its result (a: the arith with its outputs). */
static enum proto_action ma_answer(struct conn *c, const struct mc_meta_request *req,
                                   enum fe_result r, const struct fe_meta_arith *ap)
{
    struct fe_meta_arith a = *ap;
    /* memcached checks the opaque while wording the reply: after the
     * increment or creation has been done */
    if (r == FE_NON_NUMERIC)
        return reply(c, LIT("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    if (fe_server_error(r) != NULL)
        return server_error(c, r);
    if (r == FE_NO_MEMORY)
        return req->has_vivify ? reply(c, LIT("SERVER_ERROR Out of memory allocating new item\r\n"))
                               : reply(c, LIT("SERVER_ERROR out of memory\r\n"));
    if (req->opaque_too_long)
        return reply_error(c, "CLIENT_ERROR opaque token too long\r\n");
    struct meta_line l = {.n = 0};
    if (r != FE_OK) {
        line_put(&l, r == FE_EXISTS ? "EX" : "NF", 2);
        line_echo(&l, req);
        return reply_line(c, &l, NULL);
    }
    /* bug-compatible: q does not hide the HD of an auto-created item */
    if (req->quiet && !a.created)
        return PROTO_NEXT;
    char num[24];
    size_t nnum = mc_u64_to_str(a.value, num);
    if (req->value) {
        line_put(&l, LIT("VA "));
        l.n += mc_u64_to_str(nnum, l.buf + l.n);
    } else {
        line_put(&l, LIT("HD"));
    }
    for (unsigned i = 0; i < req->nflags; i++) {
        const struct mc_meta_token *t = &req->flags[i];
        switch (t->p[0]) {
        case 'c': line_flag_u64(&l, 'c', a.cas); break;
        case 't': line_flag_ttl(&l, a.ttl_reported); break;
        case 'O': line_opaque(&l, t); break;
        case 'k': line_key(&l, req->key, req->nkey, req->key_binary); break;
        default: break;
        }
    }
    if (req->value) {
        line_put(&l, LIT("\r\n"));
        line_put(&l, num, nnum);
    }
    return reply_line(c, &l, NULL);
}

static enum proto_action meta_debug(struct conn *c, const struct mc_meta_request *req)
{
    struct fe_meta_info info;
    void *it = c->xo->meta_debug(c->wctx, req->key, req->nkey, &info);
    if (it == NULL)
        return reply(c, LIT("EN\r\n"));
    struct fe_item_view v;
    c->xo->view(c->exec, it, &v);
    struct meta_line l = {.n = 0};
    line_put(&l, LIT("ME "));
    if (info.key_binary)
        l.n += mc_base64_encode(v.key, v.nkey, l.buf + l.n);
    else
        line_put(&l, v.key, v.nkey);
    l.n += (size_t)snprintf(l.buf + l.n, sizeof(l.buf) - l.n,
                            " exp=%lld la=%u cas=%llu fetch=%s cls=%u size=%zu",
                            (long long)info.ttl, (unsigned)info.idle, (unsigned long long)v.cas,
                            info.fetched ? "yes" : "no", v.clsid, v.bytes);
    c->xo->release(c->exec, it);
    return reply_line(c, &l, NULL);
}

enum proto_action proto_meta_line(struct conn *c, const char *line, size_t len)
{
    struct mc_meta_request req;
    switch (mc_meta_parse(line, len, &req)) {
    case MC_PARSE_OK: break;
    case MC_PARSE_CLIENT_ERROR:
        if (req.swallow) {
            /* memcached answers once the rejected data has been read */
            c->deferred_line = req.error;
            conn_begin_swallow(c, (size_t)req.vlen + 2, reply_deferred);
            return PROTO_NEXT;
        }
        return reply_error(c, req.error);
    default: return reply(c, LIT("ERROR\r\n"));
    }
    switch (req.cmd) {
    case MC_META_GET: return meta_get(c, &req, line, len);
    case MC_META_SET: return meta_set(c, &req);
    case MC_META_DELETE: return meta_delete(c, &req, line, len);
    case MC_META_ARITH: return meta_arith(c, &req, line, len);
    case MC_META_DEBUG: return meta_debug(c, &req);
    case MC_META_NOOP: return reply(c, LIT("MN\r\n"));
    }
    return reply(c, LIT("ERROR\r\n"));
}

void proto_meta_conn_free(struct conn *c)
{
    if (c->meta_set != NULL)
        mem_free(MEM_CONN, c->meta_set, sizeof(*c->meta_set));
    c->meta_set = NULL;
}
