/*
 * proto_binary.c - memcached binary protocol front end (see
 * proto_binary.h). Worker thread of the connection.
 *
 *   header (24 B) ─► extras + key buffered ─► shape check ─► executor ─► response
 *        │                    │                   ├─ unknown opcode: body skipped,
 *        │                    │                   │  then UNKNOWN_COMMAND
 *        │                    │                   ├─ inconsistent lengths, key over
 *        │                    │                   │  250 bytes: EINVAL, then close
 *        │                    │                   └─ body shorter than key + extras:
 *        │                    │                      UNKNOWN_COMMAND, then close
 *        │                    └─ over 16 KB: close (memcached's read buffer)
 *        └─ bad magic: close once earlier replies are out (no resync possible)
 *
 * Exact memcached 1.6.18 behaviour, tested against it: a refused value (too
 * large, SASL, unknown opcode) is answered only after it has been read and
 * dropped, so a header claiming 2 GB gets no answer and costs no memory;
 * but a length of 2^31 or more is negative in memcached's int, so that
 * one is answered at once and nothing is skipped (mc_bin_len_is_negative);
 * exptimes are unsigned 32-bit; a CAS in the header turns SET/ADD/REPLACE
 * into compare-and-swap and guards APPEND/PREPEND/DELETE.
 *
 * Quiet opcodes send nothing on success; errors are always sent, except a
 * GETQ/GETKQ miss. Values of storage requests are read straight into the
 * reserved item (the cache pre-writes the "\r\n" the text protocol uses).
 */
#include "frontend/proto_binary.h"

#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_binary.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "frontend/call.h"
#include "frontend/conn.h"
#include "frontend/fe.h"
#include "frontend/worker.h"

static const uint8_t *peek(const struct conn *c)
{
    return (const uint8_t *)c->rbuf + c->rpos;
}

bool proto_binary_ready(const struct conn *c)
{
    if (c->rlen < MC_BIN_HEADER_LEN)
        return false;
    struct mc_bin_header h;
    mc_bin_decode_header(peek(c), &h);
    if (h.magic != MC_BIN_REQ_MAGIC)
        return true;
    /* As memcached: whatever the lengths say, nothing is decided before
     * header, extras and key are in (or its read buffer is full). */
    size_t head = MC_BIN_HEADER_LEN + (size_t)h.extlen + h.keylen;
    if (head > MC_BIN_HEAD_MAX)
        return c->rlen >= MC_BIN_HEAD_MAX;
    return c->rlen >= head;
}

/* An unsigned 32-bit exptime from extras (memcached reads them unsigned:
 * 0xffffffff is a date in 2106, not "already expired"). */
static rel_time_t exptime_at(const uint8_t *p)
{
    return clock_exptime((int64_t)mc_bin_get32(p));
}

/* Queues one response packet; every part is copied. */
static enum proto_action respond(struct conn *c, uint8_t opcode, uint32_t opaque, uint16_t status,
                                 uint64_t cas, const void *ext, uint8_t extlen, const void *key,
                                 uint16_t keylen, const void *val, uint32_t vlen)
{
    size_t total = MC_BIN_HEADER_LEN + extlen + (size_t)keylen + vlen;
    uint8_t *p = (uint8_t *)outq_reserve(conn_out(c), total);
    if (p == NULL)
        return PROTO_CLOSE;
    struct mc_bin_header h = {
        .magic = MC_BIN_RES_MAGIC,
        .opcode = opcode,
        .keylen = keylen,
        .extlen = extlen,
        .status = status,
        .bodylen = (uint32_t)(extlen + keylen + vlen),
        .opaque = opaque,
        .cas = cas,
    };
    mc_bin_encode_header(p, &h);
    size_t off = MC_BIN_HEADER_LEN;
    if (extlen > 0)
        memcpy(p + off, ext, extlen);
    off += extlen;
    if (keylen > 0)
        memcpy(p + off, key, keylen);
    off += keylen;
    if (vlen > 0)
        memcpy(p + off, val, vlen);
    return outq_commit(conn_out(c), total) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

static enum proto_action respond_error(struct conn *c, uint8_t opcode, uint32_t opaque,
                                       enum mc_bin_status status)
{
    const char *text = mc_bin_status_text(status);
    return respond(c, opcode, opaque, (uint16_t)status, 0, NULL, 0, NULL, 0, text,
                   (uint32_t)strlen(text));
}

/* after_swallow callback: the error prepared in c->bin_* once the refused
 * body is gone. */
static enum proto_action respond_deferred(struct conn *c)
{
    return respond_error(c, c->bin_opcode, c->bin_opaque, c->bin_status);
}

/* Answers `status` once `body` more bytes have been read and dropped; at
 * once, skipping nothing, when memcached's int sees a negative length. */
static enum proto_action refuse_after_body(struct conn *c, const struct mc_bin_header *h,
                                           uint32_t body, enum mc_bin_status status)
{
    if (mc_bin_len_is_negative(body))
        return respond_error(c, h->opcode, h->opaque, status);
    c->bin_opcode = h->opcode;
    c->bin_opaque = h->opaque;
    c->bin_status = (uint16_t)status;
    conn_begin_swallow(c, body, respond_deferred);
    return PROTO_NEXT;
}

static enum proto_action respond_ok(struct conn *c, const struct mc_bin_header *h, uint64_t cas)
{
    if (mc_bin_is_quiet(h->opcode))
        return PROTO_NEXT;
    return respond(c, h->opcode, h->opaque, MC_BIN_OK, cas, NULL, 0, NULL, 0, NULL, 0);
}

static enum mc_bin_status status_of(enum fe_result r)
{
    switch (r) {
    case FE_OK:
    case FE_STORED: return MC_BIN_OK;
    case FE_NOT_STORED: return MC_BIN_NOT_STORED;
    case FE_EXISTS: return MC_BIN_KEY_EEXISTS;
    case FE_NOT_FOUND: return MC_BIN_KEY_ENOENT;
    case FE_NON_NUMERIC: return MC_BIN_DELTA_BADVAL;
    case FE_TOO_LARGE: return MC_BIN_E2BIG;
    case FE_NO_MEMORY: return MC_BIN_ENOMEM;
    case FE_FAILED: return MC_BIN_EINTERNAL;
    case FE_UNAVAILABLE:
    case FE_TIMEOUT:
    case FE_BUSY: return MC_BIN_ETMPFAIL;
    }
    return MC_BIN_ENOMEM;
}

/* stats detail's record of a command on a key (when the daemon keeps it). */
static void note(struct conn *c, enum fe_note what, const char *key, size_t nkey, bool hit)
{
    if (c->xo->note != NULL)
        c->xo->note(c->wctx, what, key, nkey, hit);
}

/* Queues the answer of a get-family request h (key: its key) given the
 * lookup's result. Takes the item reference. */
static enum proto_action get_answer(struct conn *c, const struct mc_bin_header *h, const char *key,
                                    void *it)
{
    bool with_key = h->opcode == MC_BIN_GETK || h->opcode == MC_BIN_GETKQ ||
                    h->opcode == MC_BIN_GATK || h->opcode == MC_BIN_GATKQ;
    bool with_value = h->opcode != MC_BIN_TOUCH;
    if (it == NULL) {
        if (mc_bin_is_quiet(h->opcode))
            return PROTO_NEXT;
        if (with_key) /* memcached answers a GETK miss with the key, no text */
            return respond(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT, 0, NULL, 0, key, h->keylen,
                           NULL, 0);
        return respond_error(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT);
    }
    uint8_t flags[4];
    struct fe_item_view v;
    c->xo->view(c->exec, it, &v);
    mc_bin_put32(flags, v.flags);
    uint32_t vlen = with_value ? (uint32_t)v.nvalue : 0;
    uint16_t keylen = with_key ? h->keylen : 0;
    enum proto_action a;
    if (vlen <= OUTQ_COPY_MAX) {
        a = respond(c, h->opcode, h->opaque, MC_BIN_OK, v.cas, flags, 4, key, keylen, v.value,
                    vlen);
        c->xo->release(c->exec, it);
        return a;
    }
    /* Large value: header, flags and key copied; the value sent from the item. */
    size_t head = MC_BIN_HEADER_LEN + 4 + keylen;
    uint8_t *p = (uint8_t *)outq_reserve(conn_out(c), head);
    if (p == NULL) {
        c->xo->release(c->exec, it);
        return PROTO_CLOSE;
    }
    struct mc_bin_header rh = {
        .magic = MC_BIN_RES_MAGIC,
        .opcode = h->opcode,
        .keylen = keylen,
        .extlen = 4,
        .bodylen = 4 + keylen + vlen,
        .opaque = h->opaque,
        .cas = v.cas,
    };
    mc_bin_encode_header(p, &rh);
    memcpy(p + MC_BIN_HEADER_LEN, flags, 4);
    memcpy(p + MC_BIN_HEADER_LEN + 4, key, keylen);
    if (outq_commit(conn_out(c), head) != ST_OK) {
        c->xo->release(c->exec, it);
        return PROTO_CLOSE;
    }
    return outq_add_ref(conn_out(c), it, v.value, vlen) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

/* A get-family request whose lookup completes later: its header and key. */
struct get_later {
    struct mc_bin_header h;
    char key[];
};

static void get_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    struct get_later *g = fe_call_extra(call);
    note(c, FE_NOTE_GET, g->key, g->h.keylen, a->item != NULL);
    if (get_answer(c, &g->h, g->key, a->item) == PROTO_CLOSE)
        c->close_after_write = true;
}

static enum proto_action do_get(struct conn *c, const struct mc_bin_header *h, const uint8_t *ext,
                                const char *key)
{
    bool touch = h->opcode == MC_BIN_TOUCH || h->opcode == MC_BIN_GAT || h->opcode == MC_BIN_GATQ ||
                 h->opcode == MC_BIN_GATK || h->opcode == MC_BIN_GATKQ;
    rel_time_t exptime = touch ? exptime_at(ext) : 0;
    if (c->xo->get_async != NULL) {
        struct fe_call *call = fe_call_new(c, get_cont, sizeof(struct get_later) + h->keylen);
        if (call == NULL)
            return respond_error(c, h->opcode, h->opaque, MC_BIN_ENOMEM);
        struct get_later *g = fe_call_extra(call);
        g->h = *h;
        memcpy(g->key, key, h->keylen);
        c->xo->get_async(c->wctx, key, h->keylen, touch, exptime, call);
        return PROTO_NEXT;
    }
    void *it = c->xo->get(c->wctx, key, h->keylen, touch, exptime);
    note(c, FE_NOTE_GET, key, h->keylen, it != NULL);
    return get_answer(c, h, key, it);
}

/* A DELETE whose result comes later: its header. */
static void delete_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    struct mc_bin_header *h = fe_call_extra(call);
    enum proto_action act = a->result == FE_OK
                                ? respond_ok(c, h, 0)
                                : respond_error(c, h->opcode, h->opaque, status_of(a->result));
    if (act == PROTO_CLOSE)
        c->close_after_write = true;
}

static enum proto_action delete_later(struct conn *c, const struct mc_bin_header *h,
                                      const char *key)
{
    struct fe_call *call = fe_call_new(c, delete_cont, sizeof(*h));
    if (call == NULL)
        return respond_error(c, h->opcode, h->opaque, MC_BIN_ENOMEM);
    memcpy(fe_call_extra(call), h, sizeof(*h));
    c->xo->remove_async(c->wctx, key, h->keylen, h->cas, call);
    return PROTO_NEXT;
}

static enum fe_store_mode store_mode(uint8_t op)
{
    switch (op) {
    case MC_BIN_ADD:
    case MC_BIN_ADDQ: return FE_ADD;
    case MC_BIN_REPLACE:
    case MC_BIN_REPLACEQ: return FE_REPLACE;
    case MC_BIN_APPEND:
    case MC_BIN_APPENDQ: return FE_APPEND;
    case MC_BIN_PREPEND:
    case MC_BIN_PREPENDQ: return FE_PREPEND;
    default: return FE_SET;
    }
}

static enum proto_action do_store(struct conn *c, const struct mc_bin_header *h, const uint8_t *ext,
                                  const char *key)
{
    uint32_t vlen = h->bodylen - h->extlen - h->keylen;
    enum fe_store_mode opmode = store_mode(h->opcode);
    enum fe_store_mode mode = opmode;
    /* SET/ADD/REPLACE carry flags and exptime; APPEND/PREPEND keep the old. */
    uint32_t flags = h->extlen == 8 ? mc_bin_get32(ext) : 0;
    rel_time_t exptime = h->extlen == 8 ? exptime_at(ext + 4) : 0;
    /* A CAS in the header makes SET/ADD/REPLACE a compare-and-swap. */
    if (h->cas != 0 && mode != FE_APPEND && mode != FE_PREPEND)
        mode = FE_CAS;
    note(c, FE_NOTE_SET, key, h->keylen, false);
    enum fe_result res;
    /* A refused SET drops the old value even with a CAS: memcached decides
     * that by opcode, before it looks at the CAS. */
    void *it = c->xo->reserve(c->wctx, key, h->keylen, flags, exptime, vlen, opmode, &res);
    if (it == NULL)
        return refuse_after_body(c, h, vlen, status_of(res));
    c->bin_opcode = h->opcode;
    c->bin_opaque = h->opaque;
    conn_begin_nread(c, it, 0, mode, h->cas, mc_bin_is_quiet(h->opcode));
    return PROTO_NEXT;
}

/* What a storage command's reply needs of its request: taken from c
 * when its value is in, as later commands of a pipelined connection
 * change c before the reply is worded. */
struct store_req {
    bool noreply;
    uint8_t opcode;
    uint32_t opaque;
    enum fe_store_mode mode;
};

static enum proto_action store_answer(struct conn *c, const struct store_req *q, enum fe_result r,
                                      uint64_t cas)
{
    if (r == FE_STORED)
        return q->noreply
                   ? PROTO_NEXT
                   : respond(c, q->opcode, q->opaque, MC_BIN_OK, cas, NULL, 0, NULL, 0, NULL, 0);
    /* memcached reports a failed add as "exists" and a failed replace as
     * "not found"; append/prepend say "not stored". */
    enum mc_bin_status st = status_of(r);
    if (r == FE_NOT_STORED && q->mode == FE_ADD)
        st = MC_BIN_KEY_EEXISTS;
    else if (r == FE_NOT_STORED && q->mode == FE_REPLACE)
        st = MC_BIN_KEY_ENOENT;
    return respond_error(c, q->opcode, q->opaque, st);
}

static void store_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    if (store_answer(c, fe_call_extra(call), a->result, a->cas) == PROTO_CLOSE)
        c->close_after_write = true;
}

enum proto_action proto_binary_nread_done(struct conn *c)
{
    void *it = c->it;
    c->it = NULL;
    struct store_req q = {c->noreply, c->bin_opcode, c->bin_opaque, c->mode};
    if (c->xo->store_async != NULL) {
        struct fe_call *call = fe_call_new(c, store_cont, sizeof(q));
        if (call == NULL) {
            c->xo->release(c->exec, it);
            return store_answer(c, &q, FE_NO_MEMORY, 0);
        }
        memcpy(fe_call_extra(call), &q, sizeof(q));
        c->xo->store_async(c->wctx, it, c->mode, c->cas_in, 0, call);
        return PROTO_NEXT;
    }
    uint64_t cas = 0;
    enum fe_result r = c->xo->store(c->wctx, it, c->mode, c->cas_in, 0, &cas);
    return store_answer(c, &q, r, cas);
}

/* The reply of INCR/DECR. */
static enum proto_action delta_answer(struct conn *c, const struct mc_bin_header *h,
                                      enum fe_result r, uint64_t value, uint64_t cas)
{
    if (r != FE_OK)
        return respond_error(c, h->opcode, h->opaque, status_of(r));
    if (mc_bin_is_quiet(h->opcode))
        return PROTO_NEXT;
    uint8_t body[8];
    mc_bin_put64(body, value);
    return respond(c, h->opcode, h->opaque, MC_BIN_OK, cas, NULL, 0, NULL, 0, body, 8);
}

/* An INCR/DECR whose result comes later: its header. */
static void delta_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    const struct mc_bin_header *h = fe_call_extra(call);
    if (delta_answer(c, h, a->result, a->arith.value, a->arith.cas) == PROTO_CLOSE)
        c->close_after_write = true;
}

/* INCR/DECR: extras are delta (8), initial (8), expiration (4); an
 * expiration of 0xffffffff means "do not create a missing key". An
 * executor that completes later gets it as ma does (N: create with the
 * initial value), so the decision is one atomic step where the data is. */
static enum proto_action do_delta(struct conn *c, const struct mc_bin_header *h, const uint8_t *ext,
                                  const char *key)
{
    bool incr = h->opcode == MC_BIN_INCREMENT || h->opcode == MC_BIN_INCREMENTQ;
    uint64_t delta = mc_bin_get64(ext), initial = mc_bin_get64(ext + 8);
    uint32_t expiration = mc_bin_get32(ext + 16);
    if (c->xo->meta_delta_async != NULL) {
        struct fe_call *call = fe_call_new(c, delta_cont, sizeof(*h));
        if (call == NULL)
            return respond_error(c, h->opcode, h->opaque, MC_BIN_ENOMEM);
        memcpy(fe_call_extra(call), h, sizeof(*h));
        struct fe_meta_arith a = {
            .incr = incr,
            .delta = delta,
            .cas_in = h->cas,
            .vivify = expiration != 0xffffffffu,
            .initial = initial,
            .ttl = FE_META_TTL_NONE,
        };
        if (a.vivify) { /* N, the only TTL flag: the created item's exptime */
            a.ttl.vivify_pos = 0;
            a.ttl.vivify_exptime = exptime_at(ext + 16);
        }
        c->xo->meta_delta_async(c->wctx, key, h->keylen, &a, call);
        return PROTO_NEXT;
    }
    uint64_t value = 0, cas = 0;
    enum fe_result r = c->xo->delta(c->wctx, key, h->keylen, incr, delta, h->cas, &value, &cas);
    for (int attempt = 0; r == FE_NOT_FOUND && expiration != 0xffffffffu && attempt < 2;
         attempt++) {
        char num[24];
        size_t n = mc_u64_to_str(initial, num);
        void *it = c->xo->reserve(c->wctx, key, h->keylen, 0, exptime_at(ext + 16), n, FE_ADD, &r);
        if (it == NULL)
            break;
        struct fe_item_view v;
        c->xo->view(c->exec, it, &v);
        memcpy(v.value, num, n);
        r = c->xo->store(c->wctx, it, FE_ADD, 0, 0, &cas);
        if (r == FE_STORED) {
            value = initial;
            r = FE_OK;
        } else if (r == FE_NOT_STORED) { /* created meanwhile: apply the delta */
            r = c->xo->delta(c->wctx, key, h->keylen, incr, delta, h->cas, &value, &cas);
        }
    }
    return delta_answer(c, h, r, value, cas);
}

struct stat_ctx {
    struct conn *c;
    const struct mc_bin_header *h;
    bool failed;
};

static void emit_stat(void *arg, const char *name, const char *value)
{
    struct stat_ctx *ctx = arg;
    size_t nn = strlen(name), nv = strlen(value);
    if (respond(ctx->c, ctx->h->opcode, ctx->h->opaque, MC_BIN_OK, 0, NULL, 0, name, (uint16_t)nn,
                value, (uint32_t)nv) != PROTO_NEXT)
        ctx->failed = true;
}

static bool key_is(const char *key, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(key, word, n) == 0;
}

static bool key_starts(const char *key, size_t n, const char *word)
{
    return n >= strlen(word) && memcmp(key, word, strlen(word)) == 0;
}

/* The "detailed" row of a binary stats detail dump. */
struct detail_emit {
    struct conn *c;
    const struct mc_bin_header *h;
    enum proto_action action;
};

static void emit_detail(void *arg, const char *text, size_t len)
{
    struct detail_emit *e = arg;
    e->action = respond(e->c, e->h->opcode, e->h->opaque, MC_BIN_OK, 0, NULL, 0, "detailed", 8,
                        text, (uint32_t)len);
}

/* Binary STAT groups as memcached 1.6.18 matches them: "reset" and
 * "settings" by prefix, "items", "slabs" and "sizes" exactly; no "conns"
 * or "detail" in this protocol. */
/* memcached's binary "detail ..." keys, matched by prefix as it does:
 * " on", " off", " dump" (the text in one "detailed" row), else ENOENT. */
static enum proto_action do_stat_detail(struct conn *c, const struct mc_bin_header *h,
                                        const char *sub, size_t n)
{
    enum fe_detail what;
    if (key_starts(sub, n, " dump"))
        what = FE_DETAIL_DUMP;
    else if (key_starts(sub, n, " on"))
        what = FE_DETAIL_ON;
    else if (key_starts(sub, n, " off"))
        what = FE_DETAIL_OFF;
    else
        return respond_error(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT);
    if (c->xo->detail == NULL)
        return respond_error(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT);
    struct detail_emit e = {c, h, PROTO_NEXT};
    if (c->xo->detail(c->exec, what, emit_detail, &e) != ST_OK)
        return respond_error(c, h->opcode, h->opaque, MC_BIN_ENOMEM);
    if (e.action == PROTO_CLOSE)
        return PROTO_CLOSE;
    return respond(c, h->opcode, h->opaque, MC_BIN_OK, 0, NULL, 0, NULL, 0, NULL, 0);
}

static enum proto_action do_stat(struct conn *c, const struct mc_bin_header *h, const char *key)
{
    struct stat_ctx ctx = {c, h, false};
    const char *special = NULL;
    size_t n = h->keylen;
    if (key_starts(key, n, "detail"))
        return do_stat_detail(c, h, key + 6, n - 6);
    const char *group = n == 0                           ? ""
                        : key_starts(key, n, "reset")    ? "reset"
                        : key_starts(key, n, "settings") ? "settings"
                        : key_is(key, n, "items")        ? "items"
                        : key_is(key, n, "slabs")        ? "slabs"
                        : key_is(key, n, "sizes")        ? "sizes"
                                                         : NULL;
    if (group == NULL)
        return respond_error(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT);
    c->xo->stats(c->exec, group, strlen(group), emit_stat, &ctx, &special);
    if (ctx.failed)
        return PROTO_CLOSE;
    /* An empty packet ends the list. */
    return respond(c, h->opcode, h->opaque, MC_BIN_OK, 0, NULL, 0, NULL, 0, NULL, 0);
}

enum proto_action proto_binary_command(struct conn *c)
{
    struct mc_bin_header h;
    mc_bin_decode_header(peek(c), &h);
    if (h.magic != MC_BIN_REQ_MAGIC) {
        log_info("<%d bad binary magic 0x%02x, closing", c->fd, h.magic);
        c->close_after_write = true; /* earlier replies still go out */
        return PROTO_NEXT;
    }
    size_t head = MC_BIN_HEADER_LEN + (size_t)h.extlen + h.keylen;
    if (head > MC_BIN_HEAD_MAX) {
        log_info("<%d binary request head of %zu bytes, closing", c->fd, head);
        c->close_after_write = true; /* earlier replies still go out */
        return PROTO_NEXT;
    }
    switch (mc_bin_check_shape(&h)) {
    case MC_BIN_SHAPE_OK: break;
    case MC_BIN_SHAPE_UNKNOWN:
        /* memcached skips bodylen bytes *after* key and extras */
        conn_consume(c, head);
        return refuse_after_body(c, &h, h.bodylen, MC_BIN_UNKNOWN_COMMAND);
    case MC_BIN_SHAPE_INVALID:
        conn_consume(c, MC_BIN_HEADER_LEN);
        c->close_after_write = true;
        return respond_error(c, h.opcode, h.opaque, MC_BIN_EINVAL);
    case MC_BIN_SHAPE_SHORT:
        conn_consume(c, MC_BIN_HEADER_LEN);
        c->close_after_write = true;
        return respond_error(c, h.opcode, h.opaque, MC_BIN_UNKNOWN_COMMAND);
    }
    const uint8_t *ext = peek(c) + MC_BIN_HEADER_LEN;
    const char *key = (const char *)ext + h.extlen;
    /* The views stay valid: consuming moves indices, not bytes. */
    conn_consume(c, head);
    if (mc_bin_is_sasl(h.opcode)) /* no authentication built yet */
        return refuse_after_body(c, &h, (uint32_t)(h.bodylen - (head - MC_BIN_HEADER_LEN)),
                                 MC_BIN_UNKNOWN_COMMAND);
    log_debug("<%d binary opcode 0x%02x key %.*s", c->fd, h.opcode, (int)h.keylen, key);

    switch (h.opcode) {
    case MC_BIN_GET:
    case MC_BIN_GETQ:
    case MC_BIN_GETK:
    case MC_BIN_GETKQ:
    case MC_BIN_TOUCH:
    case MC_BIN_GAT:
    case MC_BIN_GATQ:
    case MC_BIN_GATK:
    case MC_BIN_GATKQ: return do_get(c, &h, ext, key);
    case MC_BIN_SET:
    case MC_BIN_SETQ:
    case MC_BIN_ADD:
    case MC_BIN_ADDQ:
    case MC_BIN_REPLACE:
    case MC_BIN_REPLACEQ:
    case MC_BIN_APPEND:
    case MC_BIN_APPENDQ:
    case MC_BIN_PREPEND:
    case MC_BIN_PREPENDQ: return do_store(c, &h, ext, key);
    case MC_BIN_DELETE:
    case MC_BIN_DELETEQ: {
        note(c, FE_NOTE_DELETE, key, h.keylen, false);
        if (c->xo->remove_async != NULL)
            return delete_later(c, &h, key);
        enum fe_result r = c->xo->remove(c->wctx, key, h.keylen, h.cas);
        return r == FE_OK ? respond_ok(c, &h, 0)
                          : respond_error(c, h.opcode, h.opaque, status_of(r));
    }
    case MC_BIN_INCREMENT:
    case MC_BIN_INCREMENTQ:
    case MC_BIN_DECREMENT:
    case MC_BIN_DECREMENTQ: return do_delta(c, &h, ext, key);
    case MC_BIN_QUIT:
    case MC_BIN_QUITQ: c->close_after_write = c->quitting = true; return respond_ok(c, &h, 0);
    case MC_BIN_FLUSH:
    case MC_BIN_FLUSHQ:
        if (!c->fe->settings.flush_enabled) /* -F; memcached does not count it here */
            return respond_error(c, h.opcode, h.opaque, MC_BIN_AUTH_ERROR);
        c->xo->flush_all(c->wctx, h.extlen == 4 ? mc_bin_get32(ext) : 0, true);
        return respond_ok(c, &h, 0);
    case MC_BIN_NOOP: return respond_ok(c, &h, 0);
    case MC_BIN_VERSION:
        return respond(c, h.opcode, h.opaque, MC_BIN_OK, 0, NULL, 0, NULL, 0, MC_COMPAT_VERSION,
                       (uint32_t)strlen(MC_COMPAT_VERSION));
    case MC_BIN_STAT: return do_stat(c, &h, key);
    default: return respond_error(c, h.opcode, h.opaque, MC_BIN_UNKNOWN_COMMAND);
    }
}
