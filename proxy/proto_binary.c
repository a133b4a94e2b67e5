/*
 * proto_binary.c - memcached binary protocol front end (see
 * proto_binary.h). Worker thread of the connection.
 *
 *   header (24 B) ─► shape check ─► extras + key buffered ─► cmd_* ─► response
 *        │               ├─ unknown opcode: UNKNOWN_COMMAND, body skipped
 *        │               └─ inconsistent lengths: EINVAL, then close
 *        └─ bad magic: close (the stream cannot be resynchronised)
 *
 * Quiet opcodes send nothing on success; errors are always sent, except a
 * GETQ/GETKQ miss. Values of storage requests are read straight into the
 * reserved item (the cache pre-writes the "\r\n" the text protocol uses).
 */
#include "proxy/proto_binary.h"

#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_binary.h"
#include "common/mc_text.h"
#include "proxy/cmd.h"
#include "proxy/conn.h"
#include "proxy/proxy.h"
#include "proxy/stats.h"
#include "proxy/version.h"
#include "proxy/worker.h"

/* Values up to this size are copied into the reply arena (see proto_text). */
#define COPY_VALUE_MAX 1024
/* A storage request whose value is over the item limit is answered E2BIG
 * and its value skipped, as memcached does, unless the claimed body is so
 * large (or negative as an int) that skipping it would mean reading it:
 * then the connection is closed instead. */
#define SWALLOW_MAX ((uint32_t)INT32_MAX)

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
    if (h.magic != MC_BIN_REQ_MAGIC || mc_bin_check_shape(&h) != MC_BIN_SHAPE_OK)
        return true;
    return c->rlen >= MC_BIN_HEADER_LEN + (size_t)h.extlen + h.keylen;
}

/* Queues one response packet; every part is copied. */
static enum proto_action respond(struct conn *c, uint8_t opcode, uint32_t opaque, uint16_t status,
                                 uint64_t cas, const void *ext, uint8_t extlen, const void *key,
                                 uint16_t keylen, const void *val, uint32_t vlen)
{
    size_t total = MC_BIN_HEADER_LEN + extlen + (size_t)keylen + vlen;
    uint8_t *p = (uint8_t *)outq_reserve(&c->out, total);
    if (p == NULL)
        return PROTO_CLOSE;
    struct mc_bin_header h = {
        .magic = MC_BIN_RES_MAGIC, .opcode = opcode, .keylen = keylen, .extlen = extlen,
        .status = status, .bodylen = (uint32_t)(extlen + keylen + vlen), .opaque = opaque,
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
    return outq_commit(&c->out, total) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

static enum proto_action respond_error(struct conn *c, uint8_t opcode, uint32_t opaque,
                                       enum mc_bin_status status)
{
    const char *text = mc_bin_status_text(status);
    return respond(c, opcode, opaque, (uint16_t)status, 0, NULL, 0, NULL, 0, text,
                   (uint32_t)strlen(text));
}

static enum proto_action respond_ok(struct conn *c, const struct mc_bin_header *h, uint64_t cas)
{
    if (mc_bin_is_quiet(h->opcode))
        return PROTO_NEXT;
    return respond(c, h->opcode, h->opaque, MC_BIN_OK, cas, NULL, 0, NULL, 0, NULL, 0);
}

static enum mc_bin_status status_of(enum cache_result r)
{
    switch (r) {
    case CACHE_OK:
    case CACHE_STORED: return MC_BIN_OK;
    case CACHE_NOT_STORED: return MC_BIN_NOT_STORED;
    case CACHE_EXISTS: return MC_BIN_KEY_EEXISTS;
    case CACHE_NOT_FOUND: return MC_BIN_KEY_ENOENT;
    case CACHE_NON_NUMERIC: return MC_BIN_DELTA_BADVAL;
    case CACHE_TOO_LARGE: return MC_BIN_E2BIG;
    case CACHE_NO_MEMORY: return MC_BIN_ENOMEM;
    }
    return MC_BIN_ENOMEM;
}

static enum proto_action do_get(struct conn *c, const struct mc_bin_header *h, const uint8_t *ext,
                                const char *key)
{
    bool touch = h->opcode == MC_BIN_TOUCH || h->opcode == MC_BIN_GAT ||
                 h->opcode == MC_BIN_GATQ || h->opcode == MC_BIN_GATK || h->opcode == MC_BIN_GATKQ;
    bool with_key = h->opcode == MC_BIN_GETK || h->opcode == MC_BIN_GETKQ ||
                    h->opcode == MC_BIN_GATK || h->opcode == MC_BIN_GATKQ;
    bool with_value = h->opcode != MC_BIN_TOUCH;
    rel_time_t exptime = touch ? clock_exptime((int32_t)mc_bin_get32(ext)) : 0;

    struct item *it = cmd_get(c->w, key, h->keylen, touch, exptime);
    if (it == NULL) {
        if (mc_bin_is_quiet(h->opcode))
            return PROTO_NEXT;
        if (with_key) /* memcached answers a GETK miss with the key, no text */
            return respond(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT, 0, NULL, 0, key,
                           h->keylen, NULL, 0);
        return respond_error(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT);
    }
    uint8_t flags[4];
    mc_bin_put32(flags, item_flags(it));
    uint32_t vlen = with_value ? (uint32_t)item_nvalue(it) : 0;
    uint16_t keylen = with_key ? h->keylen : 0;
    enum proto_action a;
    if (vlen <= COPY_VALUE_MAX) {
        a = respond(c, h->opcode, h->opaque, MC_BIN_OK, item_cas(it), flags, 4, key, keylen,
                    item_value(it), vlen);
        cache_release(c->p->cache, it);
        return a;
    }
    /* Large value: header, flags and key copied; the value sent from the item. */
    size_t head = MC_BIN_HEADER_LEN + 4 + keylen;
    uint8_t *p = (uint8_t *)outq_reserve(&c->out, head);
    if (p == NULL) {
        cache_release(c->p->cache, it);
        return PROTO_CLOSE;
    }
    struct mc_bin_header rh = {
        .magic = MC_BIN_RES_MAGIC, .opcode = h->opcode, .keylen = keylen, .extlen = 4,
        .bodylen = 4 + keylen + vlen, .opaque = h->opaque, .cas = item_cas(it),
    };
    mc_bin_encode_header(p, &rh);
    memcpy(p + MC_BIN_HEADER_LEN, flags, 4);
    memcpy(p + MC_BIN_HEADER_LEN + 4, key, keylen);
    if (outq_commit(&c->out, head) != ST_OK) {
        cache_release(c->p->cache, it);
        return PROTO_CLOSE;
    }
    return outq_add_item(&c->out, it, item_value(it), vlen) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

static enum cache_store_mode store_mode(uint8_t op)
{
    switch (op) {
    case MC_BIN_ADD: case MC_BIN_ADDQ: return CACHE_ADD;
    case MC_BIN_REPLACE: case MC_BIN_REPLACEQ: return CACHE_REPLACE;
    case MC_BIN_APPEND: case MC_BIN_APPENDQ: return CACHE_APPEND;
    case MC_BIN_PREPEND: case MC_BIN_PREPENDQ: return CACHE_PREPEND;
    default: return CACHE_SET;
    }
}

static enum proto_action do_store(struct conn *c, const struct mc_bin_header *h,
                                  const uint8_t *ext, const char *key)
{
    uint32_t vlen = h->bodylen - h->extlen - h->keylen;
    enum cache_store_mode mode = store_mode(h->opcode);
    /* SET/ADD/REPLACE carry flags and exptime; APPEND/PREPEND keep the old. */
    uint32_t flags = h->extlen == 8 ? mc_bin_get32(ext) : 0;
    int32_t exptime = h->extlen == 8 ? (int32_t)mc_bin_get32(ext + 4) : 0;
    /* A CAS in a SET header makes it a compare-and-swap. */
    if (mode == CACHE_SET && h->cas != 0)
        mode = CACHE_CAS;
    enum cache_result res;
    struct item *it = cmd_reserve(c->w, key, h->keylen, flags, clock_exptime(exptime), vlen,
                                  mode, &res);
    if (it == NULL) {
        conn_begin_swallow(c, vlen);
        return respond_error(c, h->opcode, h->opaque, status_of(res));
    }
    c->bin_opcode = h->opcode;
    c->bin_opaque = h->opaque;
    conn_begin_nread(c, it, vlen, mode, h->cas, mc_bin_is_quiet(h->opcode));
    return PROTO_NEXT;
}

enum proto_action proto_binary_nread_done(struct conn *c)
{
    struct item *it = c->it;
    c->it = NULL;
    uint64_t cas = 0;
    enum cache_result r = cmd_store(c->w, it, c->mode, c->cas_in, &cas);
    if (r == CACHE_STORED)
        return c->noreply ? PROTO_NEXT
                          : respond(c, c->bin_opcode, c->bin_opaque, MC_BIN_OK, cas, NULL, 0,
                                    NULL, 0, NULL, 0);
    /* memcached reports a failed add as "exists" and a failed replace as
     * "not found"; append/prepend say "not stored". */
    enum mc_bin_status st = status_of(r);
    if (r == CACHE_NOT_STORED && c->mode == CACHE_ADD)
        st = MC_BIN_KEY_EEXISTS;
    else if (r == CACHE_NOT_STORED && c->mode == CACHE_REPLACE)
        st = MC_BIN_KEY_ENOENT;
    return respond_error(c, c->bin_opcode, c->bin_opaque, st);
}

/* INCR/DECR: extras are delta (8), initial (8), expiration (4); an
 * expiration of 0xffffffff means "do not create a missing key". */
static enum proto_action do_delta(struct conn *c, const struct mc_bin_header *h,
                                  const uint8_t *ext, const char *key)
{
    bool incr = h->opcode == MC_BIN_INCREMENT || h->opcode == MC_BIN_INCREMENTQ;
    uint64_t delta = mc_bin_get64(ext), initial = mc_bin_get64(ext + 8);
    uint32_t expiration = mc_bin_get32(ext + 16);
    uint64_t value = 0, cas = 0;
    enum cache_result r = cmd_delta(c->w, key, h->keylen, incr, delta, &value, &cas);
    for (int attempt = 0; r == CACHE_NOT_FOUND && expiration != 0xffffffffu && attempt < 2;
         attempt++) {
        char num[24];
        size_t n = mc_u64_to_str(initial, num);
        struct item *it = cmd_reserve(c->w, key, h->keylen, 0,
                                      clock_exptime((int32_t)expiration), n, CACHE_ADD, &r);
        if (it == NULL)
            break;
        memcpy(item_data_mut(it), num, n);
        r = cmd_store(c->w, it, CACHE_ADD, 0, &cas);
        if (r == CACHE_STORED) {
            value = initial;
            r = CACHE_OK;
        } else if (r == CACHE_NOT_STORED) { /* created meanwhile: apply the delta */
            r = cmd_delta(c->w, key, h->keylen, incr, delta, &value, &cas);
        }
    }
    if (r != CACHE_OK)
        return respond_error(c, h->opcode, h->opaque, status_of(r));
    if (mc_bin_is_quiet(h->opcode))
        return PROTO_NEXT;
    uint8_t body[8];
    mc_bin_put64(body, value);
    return respond(c, h->opcode, h->opaque, MC_BIN_OK, cas, NULL, 0, NULL, 0, body, 8);
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
    if (respond(ctx->c, ctx->h->opcode, ctx->h->opaque, MC_BIN_OK, 0, NULL, 0, name,
                (uint16_t)nn, value, (uint32_t)nv) != PROTO_NEXT)
        ctx->failed = true;
}

static enum proto_action do_stat(struct conn *c, const struct mc_bin_header *h, const char *key)
{
    struct stat_ctx ctx = {c, h, false};
    const char *special = NULL;
    if (!stats_reply(c->p, key, h->keylen, emit_stat, &ctx, &special) ||
        (special != NULL && strcmp(special, "RESET") != 0))
        return respond_error(c, h->opcode, h->opaque, MC_BIN_KEY_ENOENT);
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
        return PROTO_CLOSE;
    }
    switch (mc_bin_check_shape(&h)) {
    case MC_BIN_SHAPE_OK:
        break;
    case MC_BIN_SHAPE_UNKNOWN:
        conn_consume(c, MC_BIN_HEADER_LEN);
        if (h.bodylen > SWALLOW_MAX)
            return PROTO_CLOSE;
        conn_begin_swallow(c, h.bodylen);
        return respond_error(c, h.opcode, h.opaque, MC_BIN_UNKNOWN_COMMAND);
    case MC_BIN_SHAPE_INVALID:
        conn_consume(c, MC_BIN_HEADER_LEN);
        c->close_after_write = true;
        return respond_error(c, h.opcode, h.opaque, MC_BIN_EINVAL);
    }
    if (h.bodylen > SWALLOW_MAX) {
        c->close_after_write = true;
        return respond_error(c, h.opcode, h.opaque, MC_BIN_E2BIG);
    }
    const uint8_t *ext = peek(c) + MC_BIN_HEADER_LEN;
    const char *key = (const char *)ext + h.extlen;
    /* The views stay valid: consuming moves indices, not bytes. */
    conn_consume(c, MC_BIN_HEADER_LEN + (size_t)h.extlen + h.keylen);
    log_debug("<%d binary opcode 0x%02x key %.*s", c->fd, h.opcode, (int)h.keylen, key);

    switch (h.opcode) {
    case MC_BIN_GET: case MC_BIN_GETQ: case MC_BIN_GETK: case MC_BIN_GETKQ:
    case MC_BIN_TOUCH: case MC_BIN_GAT: case MC_BIN_GATQ: case MC_BIN_GATK: case MC_BIN_GATKQ:
        return do_get(c, &h, ext, key);
    case MC_BIN_SET: case MC_BIN_SETQ: case MC_BIN_ADD: case MC_BIN_ADDQ:
    case MC_BIN_REPLACE: case MC_BIN_REPLACEQ: case MC_BIN_APPEND: case MC_BIN_APPENDQ:
    case MC_BIN_PREPEND: case MC_BIN_PREPENDQ:
        return do_store(c, &h, ext, key);
    case MC_BIN_DELETE: case MC_BIN_DELETEQ: {
        enum cache_result r = cmd_delete(c->w, key, h.keylen, h.cas);
        return r == CACHE_OK ? respond_ok(c, &h, 0) : respond_error(c, h.opcode, h.opaque, status_of(r));
    }
    case MC_BIN_INCREMENT: case MC_BIN_INCREMENTQ: case MC_BIN_DECREMENT: case MC_BIN_DECREMENTQ:
        return do_delta(c, &h, ext, key);
    case MC_BIN_QUIT: case MC_BIN_QUITQ:
        c->close_after_write = true;
        return respond_ok(c, &h, 0);
    case MC_BIN_FLUSH: case MC_BIN_FLUSHQ:
        cmd_flush_all(c->w, h.extlen == 4 ? (int32_t)mc_bin_get32(ext) : 0);
        return respond_ok(c, &h, 0);
    case MC_BIN_NOOP:
        return respond_ok(c, &h, 0);
    case MC_BIN_VERSION:
        return respond(c, h.opcode, h.opaque, MC_BIN_OK, 0, NULL, 0, NULL, 0,
                       PROXY_VERSION_STRING, (uint32_t)strlen(PROXY_VERSION_STRING));
    case MC_BIN_VERBOSITY: {
        uint32_t level = mc_bin_get32(ext);
        log_set_level(level == 0 ? LOG_LVL_WARN : level == 1 ? LOG_LVL_INFO : LOG_LVL_DEBUG);
        return respond_ok(c, &h, 0);
    }
    case MC_BIN_STAT:
        return do_stat(c, &h, key);
    default:
        return respond_error(c, h.opcode, h.opaque, MC_BIN_UNKNOWN_COMMAND);
    }
}
