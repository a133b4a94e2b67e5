/*
 * wire.c - cluster protocol frame and body codec (see wire.h and
 * docs/formats/cluster-protocol.md). Called by connection code on any
 * thread; no state outside the caller's buffers and readers.
 */
#include "common/wire.h"

#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "common/assert.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/ring.h"

_Static_assert(WIRE_REC_KEY_MAX == MC_KEY_MAX, "records carry memcached keys");
_Static_assert(WIRE_NODE_ID_LEN == RING_ID_LEN, "handshakes carry ring node ids");
_Static_assert(sizeof(WIRE_MAGIC) - 1 == 4, "the magic is 4 bytes");

/* Header offsets (the table in wire.h). */
#define OFF_VERSION 4
#define OFF_OPCODE 5
#define OFF_FLAGS 6
#define OFF_ID 8
#define OFF_BODY_LEN 16
#define OFF_HEADER_CHECK 20
#define OFF_BODY_CHECK 24
_Static_assert(OFF_BODY_CHECK + 8 == WIRE_HEADER_LEN, "header layout");

/* Fewest bytes a RECORD takes: 1-byte key with its length, version, flags,
 * expiry, tombstone, empty value's length. */
#define RECORD_MIN_LEN (1 + 1 + 8 + 2 + 4 + 8 + 1 + 1)
/* Longest RECORD encoding before the value bytes (the digest's seed input). */
#define RECORD_PREFIX_MAX (2 + WIRE_REC_KEY_MAX + 8 + 2 + 4 + 8 + 1 + 10)

/* Smallest buffer allocation: a few small frames without regrowing. */
#define BUF_MIN_CAP 256

static void put16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32le(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Writes v as a shortest-form LEB128 varint at p (room for 10); returns its
 * size. */
static size_t varint_encode(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* The 32-bit header check covers bytes 0..19: everything before it. */
static uint32_t header_check(const uint8_t *h)
{
    return (uint32_t)XXH3_64bits(h, OFF_HEADER_CHECK);
}

const char *wire_opcode_name(uint8_t opcode)
{
    switch (opcode) {
    case WIRE_OP_HANDSHAKE: return "HANDSHAKE";
    case WIRE_OP_PING: return "PING";
    case WIRE_OP_ERROR: return "ERROR";
    case WIRE_OP_RING: return "RING";
    case WIRE_OP_GOSSIP_SYN: return "GOSSIP_SYN";
    case WIRE_OP_GOSSIP_ACK: return "GOSSIP_ACK";
    case WIRE_OP_GOSSIP_ACK2: return "GOSSIP_ACK2";
    case WIRE_OP_READ: return "READ";
    case WIRE_OP_WRITE: return "WRITE";
    case WIRE_OP_RMW: return "RMW";
    case WIRE_OP_COORD_READ: return "COORD_READ";
    case WIRE_OP_COORD_WRITE: return "COORD_WRITE";
    case WIRE_OP_MERKLE_TREE: return "MERKLE_TREE";
    case WIRE_OP_RANGE_READ: return "RANGE_READ";
    case WIRE_OP_HINT_REPLAY: return "HINT_REPLAY";
    default: return NULL;
    }
}

const char *wire_result_name(enum wire_result r)
{
    switch (r) {
    case WIRE_OK: return "ok";
    case WIRE_NEED_MORE: return "need more bytes";
    case WIRE_BAD_MAGIC: return "bad magic";
    case WIRE_BAD_VERSION: return "unsupported version";
    case WIRE_OVERSIZED: return "frame over the size limit";
    case WIRE_BAD_CHECKSUM: return "checksum mismatch";
    case WIRE_MALFORMED: return "malformed";
    }
    return "unknown result";
}

/* ---- Frames ------------------------------------------------------------ */

enum wire_result wire_parse_frame(const uint8_t *buf, size_t len, size_t limit,
                                  struct wire_frame *f, size_t *need)
{
    /* Magic and version are judged on whatever part of them has arrived:
     * a wrong first byte is as conclusive as four. */
    size_t have = len < OFF_VERSION ? len : OFF_VERSION;
    if (have > 0 && memcmp(buf, WIRE_MAGIC, have) != 0)
        return WIRE_BAD_MAGIC;
    /* Version before the header check: a later version may lay out (and
     * check) the rest of its header differently; magic and version are the
     * prefix all versions share. */
    if (len > OFF_VERSION &&
        (buf[OFF_VERSION] < WIRE_VERSION_MIN || buf[OFF_VERSION] > WIRE_VERSION_MAX))
        return WIRE_BAD_VERSION;
    if (len < WIRE_HEADER_LEN) {
        *need = WIRE_HEADER_LEN;
        return WIRE_NEED_MORE;
    }
    /* The header has its own check so that a damaged length is caught now,
     * not after waiting for a body that is never coming. */
    if (get32le(buf + OFF_HEADER_CHECK) != header_check(buf))
        return WIRE_BAD_CHECKSUM;

    struct wire_frame h = {
        .version = buf[OFF_VERSION],
        .opcode = buf[OFF_OPCODE],
        .flags = get16le(buf + OFF_FLAGS),
        .id = get64le(buf + OFF_ID),
        .body = NULL,
        .body_len = get32le(buf + OFF_BODY_LEN),
    };
    /* 64-bit sum: no overflow whatever size_t is. */
    uint64_t size = (uint64_t)WIRE_HEADER_LEN + h.body_len;
    h.size = (size_t)size;
    if (size > limit) {
        *f = h;
        return WIRE_OVERSIZED;
    }
    if ((h.flags & ~WIRE_FLAGS_DEFINED) != 0) {
        *f = h;
        return WIRE_MALFORMED;
    }
    if (len < size) {
        *need = (size_t)size;
        return WIRE_NEED_MORE;
    }
    h.body = buf + WIRE_HEADER_LEN;
    if (get64le(buf + OFF_BODY_CHECK) != XXH3_64bits(h.body, h.body_len))
        return WIRE_BAD_CHECKSUM;
    *f = h;
    return WIRE_OK;
}

/* ---- Output buffer ------------------------------------------------------- */

void wire_buf_init(struct wire_buf *b)
{
    *b = (struct wire_buf){.data = NULL, .len = 0, .cap = 0, .err = ST_OK};
}

void wire_buf_deinit(struct wire_buf *b)
{
    mem_free(MEM_CONN, b->data, b->cap);
    wire_buf_init(b);
}

void wire_buf_clear(struct wire_buf *b)
{
    b->len = 0;
    b->err = ST_OK;
}

/* Room for n more bytes, or NULL with b->err set. Returns where they go; the
 * caller writes them and the length has already been advanced. */
static uint8_t *buf_append(struct wire_buf *b, size_t n)
{
    if (b->err != ST_OK)
        return NULL;
    if (n > SIZE_MAX - b->len) {
        b->err = ST_NOMEM;
        return NULL;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = mem_realloc(MEM_CONN, b->data, b->cap, cap);
        if (p == NULL) {
            b->err = ST_NOMEM;
            return NULL;
        }
        b->data = p;
        b->cap = cap;
    }
    uint8_t *at = b->data + b->len;
    b->len += n;
    return at;
}

/* An invalid field of a frame being composed: the frame must not be sent. */
static bool put_check(struct wire_buf *b, bool ok)
{
    if (!ok && b->err == ST_OK)
        b->err = ST_INVAL;
    return ok;
}

size_t wire_begin_frame(struct wire_buf *b, uint8_t opcode, uint16_t flags, uint64_t id)
{
    size_t mark = b->len;
    /* a receiver would drop the connection over an undefined flag */
    if (!put_check(b, (flags & ~WIRE_FLAGS_DEFINED) == 0))
        return mark;
    uint8_t *h = buf_append(b, WIRE_HEADER_LEN);
    if (h == NULL)
        return mark;
    memcpy(h, WIRE_MAGIC, 4);
    /* Frames are composed at the highest version this build speaks; the
     * connection layer will pick the agreed one once there is a second. */
    h[OFF_VERSION] = WIRE_VERSION_MAX;
    h[OFF_OPCODE] = opcode;
    put16le(h + OFF_FLAGS, flags);
    put64le(h + OFF_ID, id);
    memset(h + OFF_BODY_LEN, 0, WIRE_HEADER_LEN - OFF_BODY_LEN); /* set at the end */
    return mark;
}

enum st_status wire_end_frame(struct wire_buf *b, size_t mark, size_t limit)
{
    enum st_status st = b->err;
    if (st == ST_OK && NEVER(mark > b->len || b->len - mark < WIRE_HEADER_LEN))
        st = ST_INVAL;
    if (st == ST_OK) {
        size_t size = b->len - mark;
        if (size > limit || size - WIRE_HEADER_LEN > UINT32_MAX)
            st = ST_INVAL;
    }
    if (st != ST_OK) {
        wire_abort_frame(b, mark);
        return st;
    }
    uint8_t *h = b->data + mark;
    size_t body_len = b->len - mark - WIRE_HEADER_LEN;
    put32le(h + OFF_BODY_LEN, (uint32_t)body_len);
    put32le(h + OFF_HEADER_CHECK, header_check(h));
    put64le(h + OFF_BODY_CHECK, XXH3_64bits(h + WIRE_HEADER_LEN, body_len));
    return ST_OK;
}

void wire_abort_frame(struct wire_buf *b, size_t mark)
{
    if (mark < b->len)
        b->len = mark;
    b->err = ST_OK;
}

/* ---- Body fields: writer ------------------------------------------------- */

void wire_put_u8(struct wire_buf *b, uint8_t v)
{
    uint8_t *p = buf_append(b, 1);
    if (p != NULL)
        *p = v;
}

void wire_put_u16(struct wire_buf *b, uint16_t v)
{
    uint8_t *p = buf_append(b, 2);
    if (p != NULL)
        put16le(p, v);
}

void wire_put_u32(struct wire_buf *b, uint32_t v)
{
    uint8_t *p = buf_append(b, 4);
    if (p != NULL)
        put32le(p, v);
}

void wire_put_u64(struct wire_buf *b, uint64_t v)
{
    uint8_t *p = buf_append(b, 8);
    if (p != NULL)
        put64le(p, v);
}

void wire_put_varint(struct wire_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    wire_put_raw(b, tmp, varint_encode(tmp, v));
}

void wire_put_raw(struct wire_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return; /* p may be NULL, and so may b->data */
    uint8_t *at = buf_append(b, n);
    if (at != NULL)
        memcpy(at, p, n);
}

void wire_put_bytes(struct wire_buf *b, const void *p, size_t n)
{
    wire_put_varint(b, n);
    wire_put_raw(b, p, n);
}

/* ---- Body fields: reader ------------------------------------------------- */

void wire_reader_init(struct wire_reader *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->end = len > 0 ? p + len : p; /* no arithmetic on a NULL empty body */
    r->bad = false;
}

bool wire_reader_done(const struct wire_reader *r)
{
    return !r->bad && r->p == r->end;
}

/* View of the next n bytes, advancing past them; NULL (and bad) when fewer
 * remain. Compares against the bytes left, never forms a pointer past end. */
static const uint8_t *take(struct wire_reader *r, size_t n)
{
    if (r->bad || n > (size_t)(r->end - r->p)) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    return at;
}

uint8_t wire_get_u8(struct wire_reader *r)
{
    const uint8_t *p = take(r, 1);
    return p != NULL ? p[0] : 0;
}

uint16_t wire_get_u16(struct wire_reader *r)
{
    const uint8_t *p = take(r, 2);
    return p != NULL ? get16le(p) : 0;
}

uint32_t wire_get_u32(struct wire_reader *r)
{
    const uint8_t *p = take(r, 4);
    return p != NULL ? get32le(p) : 0;
}

uint64_t wire_get_u64(struct wire_reader *r)
{
    const uint8_t *p = take(r, 8);
    return p != NULL ? get64le(p) : 0;
}

uint64_t wire_get_varint(struct wire_reader *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift <= 63; shift += 7) {
        const uint8_t *p = take(r, 1);
        if (p == NULL)
            return 0;
        uint8_t byte = *p;
        /* the 10th byte holds bit 63 only */
        if (shift == 63 && byte > 1)
            break;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (byte < 0x80) {
            /* a last byte of 0 after others adds nothing: a longer form */
            if (byte == 0 && shift > 0)
                break;
            return v;
        }
    }
    r->bad = true;
    return 0;
}

const uint8_t *wire_get_raw(struct wire_reader *r, size_t n)
{
    return take(r, n);
}

const uint8_t *wire_get_bytes(struct wire_reader *r, size_t max, size_t *n)
{
    uint64_t len = wire_get_varint(r);
    if (!r->bad && len > max)
        r->bad = true;
    const uint8_t *p = r->bad ? NULL : take(r, (size_t)len);
    *n = p != NULL ? (size_t)len : 0;
    return p;
}

/* A byte string whose length must lie in [min, max]. */
static const uint8_t *get_bytes_in(struct wire_reader *r, size_t min, size_t max, size_t *n)
{
    const uint8_t *p = wire_get_bytes(r, max, n);
    if (p != NULL && *n < min) {
        r->bad = true;
        *n = 0;
        return NULL;
    }
    return p;
}

/* A bool byte: 0 or 1, anything else is malformed. */
static bool get_bool(struct wire_reader *r)
{
    uint8_t v = wire_get_u8(r);
    if (v > 1)
        r->bad = true;
    return v == 1;
}

static enum wire_result finish(const struct wire_reader *r)
{
    return wire_reader_done(r) ? WIRE_OK : WIRE_MALFORMED;
}

/* ---- Bodies -------------------------------------------------------------- */

void wire_compose_handshake(struct wire_buf *b, const struct wire_handshake *h)
{
    if (!put_check(b, h->cluster_len >= 1 && h->cluster_len <= WIRE_CLUSTER_MAX &&
                          h->addr_len >= 1 && h->addr_len <= WIRE_ADDR_MAX))
        return;
    wire_put_u8(b, h->version);
    wire_put_bytes(b, h->cluster, h->cluster_len);
    wire_put_raw(b, h->node_id, WIRE_NODE_ID_LEN);
    wire_put_u16(b, h->short_id);
    wire_put_u64(b, h->generation);
    wire_put_bytes(b, h->addr, h->addr_len);
}

enum wire_result wire_parse_handshake(const uint8_t *body, size_t len, struct wire_handshake *h)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    h->version = wire_get_u8(&r);
    h->cluster = (const char *)get_bytes_in(&r, 1, WIRE_CLUSTER_MAX, &h->cluster_len);
    const uint8_t *id = wire_get_raw(&r, WIRE_NODE_ID_LEN);
    if (id != NULL)
        memcpy(h->node_id, id, WIRE_NODE_ID_LEN);
    h->short_id = wire_get_u16(&r);
    h->generation = wire_get_u64(&r);
    h->addr = (const char *)get_bytes_in(&r, 1, WIRE_ADDR_MAX, &h->addr_len);
    return finish(&r);
}

/* Outcome byte of a handshake reply. On the wire: never renumber. */
enum { HANDSHAKE_ACCEPT = 0, HANDSHAKE_REFUSE = 1 };

void wire_compose_handshake_reply(struct wire_buf *b, const struct wire_handshake_reply *h)
{
    if (h->accept) {
        wire_put_u8(b, HANDSHAKE_ACCEPT);
        wire_put_u8(b, h->version);
        wire_put_raw(b, h->node_id, WIRE_NODE_ID_LEN);
        wire_put_u16(b, h->short_id);
        wire_put_u64(b, h->generation);
        return;
    }
    if (!put_check(b, h->msg_len <= WIRE_MSG_MAX))
        return;
    wire_put_u8(b, HANDSHAKE_REFUSE);
    wire_put_u16(b, h->reason);
    wire_put_bytes(b, h->msg, h->msg_len);
}

enum wire_result wire_parse_handshake_reply(const uint8_t *body, size_t len,
                                            struct wire_handshake_reply *h)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    memset(h, 0, sizeof(*h));
    uint8_t outcome = wire_get_u8(&r);
    if (outcome == HANDSHAKE_ACCEPT) {
        h->accept = true;
        h->version = wire_get_u8(&r);
        const uint8_t *id = wire_get_raw(&r, WIRE_NODE_ID_LEN);
        if (id != NULL)
            memcpy(h->node_id, id, WIRE_NODE_ID_LEN);
        h->short_id = wire_get_u16(&r);
        h->generation = wire_get_u64(&r);
    } else if (outcome == HANDSHAKE_REFUSE) {
        h->reason = wire_get_u16(&r);
        h->msg = (const char *)wire_get_bytes(&r, WIRE_MSG_MAX, &h->msg_len);
    } else {
        r.bad = true;
    }
    return finish(&r);
}

void wire_compose_ping(struct wire_buf *b, uint64_t hlc)
{
    wire_put_u64(b, hlc);
}

enum wire_result wire_parse_ping(const uint8_t *body, size_t len, uint64_t *hlc)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    *hlc = wire_get_u64(&r);
    return finish(&r);
}

void wire_compose_error(struct wire_buf *b, const struct wire_error *e)
{
    if (!put_check(b, e->msg_len <= WIRE_MSG_MAX))
        return;
    wire_put_u16(b, e->code);
    wire_put_bytes(b, e->msg, e->msg_len);
}

enum wire_result wire_parse_error(const uint8_t *body, size_t len, struct wire_error *e)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    e->code = wire_get_u16(&r);
    e->msg = (const char *)wire_get_bytes(&r, WIRE_MSG_MAX, &e->msg_len);
    return finish(&r);
}

/* ---- Records ------------------------------------------------------------- */

static bool record_valid(const struct wire_record *rec)
{
    return rec->key_len >= 1 && rec->key_len <= WIRE_REC_KEY_MAX &&
           (!rec->tombstone || rec->value_len == 0);
}

void wire_put_record(struct wire_buf *b, const struct wire_record *rec)
{
    if (!put_check(b, record_valid(rec)))
        return;
    wire_put_bytes(b, rec->key, rec->key_len);
    wire_put_u64(b, rec->version.hlc);
    wire_put_u16(b, rec->version.node);
    wire_put_u32(b, rec->flags);
    wire_put_u64(b, rec->expiry);
    wire_put_u8(b, rec->tombstone ? 1 : 0);
    wire_put_bytes(b, rec->value, rec->value_len);
}

void wire_get_record(struct wire_reader *r, struct wire_record *rec)
{
    rec->key = get_bytes_in(r, 1, WIRE_REC_KEY_MAX, &rec->key_len);
    rec->version.hlc = wire_get_u64(r);
    rec->version.node = wire_get_u16(r);
    rec->flags = wire_get_u32(r);
    rec->expiry = wire_get_u64(r);
    rec->tombstone = get_bool(r);
    /* A value cannot be longer than what is left of the body: SIZE_MAX
     * lets the byte-count check in take() decide. */
    rec->value = wire_get_bytes(r, SIZE_MAX, &rec->value_len);
    if (rec->tombstone && rec->value_len != 0)
        r->bad = true;
}

uint64_t wire_record_digest(const struct wire_record *rec)
{
    uint8_t prefix[RECORD_PREFIX_MAX];
    size_t key_len = rec->key_len;
    if (NEVER(key_len > WIRE_REC_KEY_MAX))
        key_len = WIRE_REC_KEY_MAX;
    size_t n = varint_encode(prefix, key_len);
    if (key_len > 0)
        memcpy(prefix + n, rec->key, key_len);
    n += key_len;
    put64le(prefix + n, rec->version.hlc);
    put16le(prefix + n + 8, rec->version.node);
    put32le(prefix + n + 10, rec->flags);
    put64le(prefix + n + 14, rec->expiry);
    prefix[n + 22] = rec->tombstone ? 1 : 0;
    n += 23;
    n += varint_encode(prefix + n, rec->value_len);
    ASSERT(n <= sizeof(prefix));
    return XXH3_64bits_withSeed(rec->value, rec->value_len, XXH3_64bits(prefix, n));
}

/* Found byte of READ replies. */
enum { READ_NOT_FOUND = 0, READ_FOUND = 1 };

void wire_compose_read(struct wire_buf *b, const uint8_t *key, size_t key_len)
{
    if (!put_check(b, key_len >= 1 && key_len <= WIRE_REC_KEY_MAX))
        return;
    wire_put_bytes(b, key, key_len);
}

enum wire_result wire_parse_read(const uint8_t *body, size_t len, const uint8_t **key,
                                 size_t *key_len)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    *key = get_bytes_in(&r, 1, WIRE_REC_KEY_MAX, key_len);
    return finish(&r);
}

void wire_compose_read_reply(struct wire_buf *b, const struct wire_record *rec)
{
    if (rec == NULL) {
        wire_put_u8(b, READ_NOT_FOUND);
        return;
    }
    if (!put_check(b, record_valid(rec)))
        return;
    wire_put_u8(b, READ_FOUND);
    wire_put_record(b, rec);
}

enum wire_result wire_parse_read_reply(const uint8_t *body, size_t len, bool *found,
                                       struct wire_record *rec)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    *found = get_bool(&r);
    if (*found)
        wire_get_record(&r, rec);
    return finish(&r);
}

void wire_compose_digest_reply(struct wire_buf *b, const struct wire_record *rec)
{
    if (rec == NULL) {
        wire_put_u8(b, READ_NOT_FOUND);
        return;
    }
    if (!put_check(b, record_valid(rec)))
        return;
    wire_put_u8(b, READ_FOUND);
    wire_put_u64(b, rec->version.hlc);
    wire_put_u16(b, rec->version.node);
    wire_put_u64(b, wire_record_digest(rec));
}

enum wire_result wire_parse_digest_reply(const uint8_t *body, size_t len, struct wire_digest *d)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    memset(d, 0, sizeof(*d));
    d->found = get_bool(&r);
    if (d->found) {
        d->version.hlc = wire_get_u64(&r);
        d->version.node = wire_get_u16(&r);
        d->digest = wire_get_u64(&r);
    }
    return finish(&r);
}

void wire_compose_write(struct wire_buf *b, const struct wire_record *recs, size_t n)
{
    /* Validate all first: no half-written body to leave behind. */
    bool ok = n >= 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = record_valid(&recs[i]);
    if (!put_check(b, ok))
        return;
    wire_put_varint(b, n);
    for (size_t i = 0; i < n; i++)
        wire_put_record(b, &recs[i]);
}

/* True when exactly n valid records follow in r up to the body's end
 * (len bytes in all); r stays where it is. A count the bytes cannot hold
 * is refused before any record is read. */
static bool records_follow(const struct wire_reader *r, uint64_t n, size_t len)
{
    if (r->bad || n > (uint64_t)(len / RECORD_MIN_LEN))
        return false;
    struct wire_reader scan = *r;
    struct wire_record rec;
    for (uint64_t i = 0; i < n && !scan.bad; i++)
        wire_get_record(&scan, &rec);
    return wire_reader_done(&scan);
}

enum wire_result wire_parse_write(const uint8_t *body, size_t len, struct wire_reader *r,
                                  size_t *count)
{
    wire_reader_init(r, body, len);
    uint64_t n = wire_get_varint(r);
    if (n == 0 || !records_follow(r, n, len))
        return WIRE_MALFORMED;
    *count = (size_t)n;
    return WIRE_OK;
}

/* ---- Consistency levels -------------------------------------------------- */

const char *wire_cl_name(uint8_t cl)
{
    switch (cl) {
    case WIRE_CL_ONE: return "ONE";
    case WIRE_CL_QUORUM: return "QUORUM";
    case WIRE_CL_ALL: return "ALL";
    case WIRE_CL_ANY: return "ANY";
    default: return NULL;
    }
}

bool wire_cl_parse(const char *s, enum wire_cl *out)
{
    for (uint8_t cl = WIRE_CL_ONE; cl <= WIRE_CL_ANY; cl++) {
        if (strcasecmp(s, wire_cl_name(cl)) == 0) {
            *out = (enum wire_cl)cl;
            return true;
        }
    }
    return false;
}

unsigned wire_cl_needed(enum wire_cl cl, unsigned n)
{
    ASSERT(n >= 1);
    switch (cl) {
    case WIRE_CL_ONE: return 1;
    case WIRE_CL_QUORUM: return n / 2 + 1;
    case WIRE_CL_ANY: return 1; /* a stored hint counts */
    case WIRE_CL_ALL: break;
    }
    /* ALL; and a number that is not a level (a caller's bug) gets the
     * strictest answer in release builds. */
    ASSERT(cl == WIRE_CL_ALL);
    return n;
}

/* ---- RMW ----------------------------------------------------------------- */

/* The ops that store a client's value: ADD, REPLACE, APPEND, PREPEND, CAS,
 * SET. */
static bool rmw_stores(uint8_t op)
{
    return (op >= WIRE_RMW_ADD && op <= WIRE_RMW_CAS) || op == WIRE_RMW_SET;
}

/* Every rule of an RMW request's fields (the spec's "RMW request"). */
static bool rmw_valid(const struct wire_rmw *q)
{
    bool counter = q->op == WIRE_RMW_INCR || q->op == WIRE_RMW_DECR;
    return q->op >= WIRE_RMW_ADD && q->op <= WIRE_RMW_SET && q->read_cl >= WIRE_CL_ONE &&
           q->read_cl <= WIRE_CL_ALL && q->write_cl >= WIRE_CL_ONE && q->write_cl <= WIRE_CL_ANY &&
           (q->rflags & ~WIRE_RMW_FLAGS_DEFINED) == 0 && q->key_len >= 1 &&
           q->key_len <= WIRE_REC_KEY_MAX && (rmw_stores(q->op) || q->value_len == 0) &&
           (counter || (q->rflags & (WIRE_RMW_VIVIFY | WIRE_RMW_RETOUCH)) == 0);
}

void wire_compose_rmw(struct wire_buf *b, const struct wire_rmw *q)
{
    if (!put_check(b, rmw_valid(q)))
        return;
    wire_put_u8(b, q->op);
    wire_put_u8(b, q->read_cl);
    wire_put_u8(b, q->write_cl);
    wire_put_u8(b, q->rflags);
    wire_put_bytes(b, q->key, q->key_len);
    wire_put_bytes(b, q->value, q->value_len);
    wire_put_u32(b, q->flags);
    wire_put_u64(b, q->expiry);
    wire_put_u64(b, q->expiry2);
    wire_put_u64(b, q->cas_in);
    wire_put_u64(b, q->delta);
    wire_put_u64(b, q->initial);
}

enum wire_result wire_parse_rmw(const uint8_t *body, size_t len, struct wire_rmw *q)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    q->op = wire_get_u8(&r);
    q->read_cl = wire_get_u8(&r);
    q->write_cl = wire_get_u8(&r);
    q->rflags = wire_get_u8(&r);
    q->key = get_bytes_in(&r, 1, WIRE_REC_KEY_MAX, &q->key_len);
    /* bounded by what is left of the body, as a RECORD's value */
    q->value = wire_get_bytes(&r, SIZE_MAX, &q->value_len);
    q->flags = wire_get_u32(&r);
    q->expiry = wire_get_u64(&r);
    q->expiry2 = wire_get_u64(&r);
    q->cas_in = wire_get_u64(&r);
    q->delta = wire_get_u64(&r);
    q->initial = wire_get_u64(&r);
    if (!rmw_valid(q))
        r.bad = true;
    return finish(&r);
}

static bool rmw_reply_valid(const struct wire_rmw_reply *r)
{
    return r->result >= WIRE_RMW_STORED && r->result <= WIRE_RMW_TOO_LARGE &&
           (!r->has_record || (record_valid(&r->rec) && !r->rec.tombstone));
}

void wire_compose_rmw_reply(struct wire_buf *b, const struct wire_rmw_reply *r)
{
    if (!put_check(b, rmw_reply_valid(r)))
        return;
    wire_put_u8(b, r->result);
    wire_put_u64(b, r->cas);
    wire_put_u64(b, r->number);
    wire_put_u64(b, r->old_expiry);
    wire_put_u8(b, r->created ? 1 : 0);
    wire_put_u8(b, r->has_record ? 1 : 0);
    if (r->has_record)
        wire_put_record(b, &r->rec);
}

enum wire_result wire_parse_rmw_reply(const uint8_t *body, size_t len, struct wire_rmw_reply *r)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    memset(r, 0, sizeof(*r));
    r->result = wire_get_u8(&rd);
    r->cas = wire_get_u64(&rd);
    r->number = wire_get_u64(&rd);
    r->old_expiry = wire_get_u64(&rd);
    r->created = get_bool(&rd);
    r->has_record = get_bool(&rd);
    if (r->has_record)
        wire_get_record(&rd, &r->rec);
    if (!rmw_reply_valid(r))
        rd.bad = true;
    return finish(&rd);
}

/* ---- MERKLE_TREE and RANGE_READ ------------------------------------------ */

uint64_t wire_u64_at(const uint8_t *p, size_t i)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[i * 8 + (size_t)k];
    return v;
}

static bool merkle_req_valid(const struct wire_merkle_req *q)
{
    return q->depth >= 1 && q->depth <= WIRE_MERKLE_DEPTH_MAX && q->level <= q->depth &&
           q->step <= q->depth - q->level && q->n >= 1 &&
           q->n <= (WIRE_MERKLE_HASHES_MAX >> q->step);
}

void wire_compose_merkle_req(struct wire_buf *b, const struct wire_merkle_req *q,
                             const uint64_t *nodes)
{
    bool ok = merkle_req_valid(q);
    for (size_t i = 0; ok && i < q->n; i++)
        ok = nodes[i] < ((uint64_t)1 << q->level);
    if (!put_check(b, ok))
        return;
    wire_put_u64(b, q->session);
    wire_put_u64(b, q->range_start);
    wire_put_u64(b, q->range_end);
    wire_put_u8(b, q->depth);
    wire_put_u64(b, q->as_of);
    wire_put_u64(b, q->gc_grace);
    wire_put_u8(b, q->level);
    wire_put_u8(b, q->step);
    wire_put_varint(b, q->n);
    for (size_t i = 0; i < q->n; i++)
        wire_put_u64(b, nodes[i]);
}

enum wire_result wire_parse_merkle_req(const uint8_t *body, size_t len, struct wire_merkle_req *q)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    q->session = wire_get_u64(&r);
    q->range_start = wire_get_u64(&r);
    q->range_end = wire_get_u64(&r);
    q->depth = wire_get_u8(&r);
    q->as_of = wire_get_u64(&r);
    q->gc_grace = wire_get_u64(&r);
    q->level = wire_get_u8(&r);
    q->step = wire_get_u8(&r);
    uint64_t n = wire_get_varint(&r);
    if (r.bad || n > WIRE_MERKLE_HASHES_MAX)
        return WIRE_MALFORMED;
    q->n = (size_t)n;
    q->nodes = wire_get_raw(&r, q->n * 8);
    if (!wire_reader_done(&r) || !merkle_req_valid(q))
        return WIRE_MALFORMED;
    for (size_t i = 0; i < q->n; i++)
        if (wire_u64_at(q->nodes, i) >= ((uint64_t)1 << q->level))
            return WIRE_MALFORMED;
    return WIRE_OK;
}

void wire_compose_merkle_reply(struct wire_buf *b, const uint64_t *hashes, size_t n,
                               uint64_t records)
{
    if (!put_check(b, n <= WIRE_MERKLE_HASHES_MAX))
        return;
    wire_put_varint(b, n);
    for (size_t i = 0; i < n; i++)
        wire_put_u64(b, hashes[i]);
    wire_put_u64(b, records);
}

enum wire_result wire_parse_merkle_reply(const uint8_t *body, size_t len, const uint8_t **hashes,
                                         size_t *n, uint64_t *records)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    uint64_t count = wire_get_varint(&r);
    if (r.bad || count > WIRE_MERKLE_HASHES_MAX)
        return WIRE_MALFORMED;
    *n = (size_t)count;
    *hashes = wire_get_raw(&r, *n * 8);
    *records = wire_get_u64(&r);
    return wire_reader_done(&r) ? WIRE_OK : WIRE_MALFORMED;
}

void wire_compose_range_req(struct wire_buf *b, const struct wire_range_req *q)
{
    if (!put_check(b, q->after_len <= WIRE_REC_KEY_MAX && q->max_records >= 1))
        return;
    wire_put_u64(b, q->range_start);
    wire_put_u64(b, q->range_end);
    wire_put_bytes(b, q->after, q->after_len);
    wire_put_u32(b, q->max_records);
    wire_put_u32(b, q->max_bytes);
}

enum wire_result wire_parse_range_req(const uint8_t *body, size_t len, struct wire_range_req *q)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    q->range_start = wire_get_u64(&r);
    q->range_end = wire_get_u64(&r);
    q->after = wire_get_bytes(&r, WIRE_REC_KEY_MAX, &q->after_len);
    q->max_records = wire_get_u32(&r);
    q->max_bytes = wire_get_u32(&r);
    return wire_reader_done(&r) && q->max_records >= 1 ? WIRE_OK : WIRE_MALFORMED;
}

void wire_compose_range_reply(struct wire_buf *b, bool more, const struct wire_record *recs,
                              size_t n)
{
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = record_valid(&recs[i]);
    if (!put_check(b, ok))
        return;
    wire_put_u8(b, more ? 1 : 0);
    wire_put_varint(b, n);
    for (size_t i = 0; i < n; i++)
        wire_put_record(b, &recs[i]);
}

enum wire_result wire_parse_range_reply(const uint8_t *body, size_t len, bool *more,
                                        struct wire_reader *r, size_t *count)
{
    wire_reader_init(r, body, len);
    uint8_t m = wire_get_u8(r);
    uint64_t n = wire_get_varint(r);
    if (m > 1 || !records_follow(r, n, len))
        return WIRE_MALFORMED;
    *more = m == 1;
    *count = (size_t)n;
    return WIRE_OK;
}

/* ---- RING and COORD_READ -------------------------------------------------- */

void wire_put_ring_head(struct wire_buf *b, const struct wire_ring_head *h)
{
    if (!put_check(b, h->replicas >= 1 && h->replicas <= 64 && h->count <= WIRE_RING_NODES_MAX))
        return;
    wire_put_u64(b, h->version);
    wire_put_u8(b, h->replicas);
    wire_put_varint(b, h->count);
}

void wire_put_ring_node(struct wire_buf *b, const struct wire_ring_node *n)
{
    if (!put_check(b, n->addr_len <= WIRE_ADDR_MAX && n->rack_len <= WIRE_RACK_MAX &&
                          n->state <= 2 && n->ntokens >= 1 && n->ntokens <= WIRE_RING_VNODES_MAX))
        return;
    wire_put_raw(b, n->id, WIRE_NODE_ID_LEN);
    wire_put_u16(b, n->short_id);
    wire_put_bytes(b, n->addr, n->addr_len);
    wire_put_bytes(b, n->rack, n->rack_len);
    wire_put_u8(b, n->state);
    wire_put_varint(b, n->ntokens);
    for (uint32_t i = 0; i < n->ntokens; i++)
        wire_put_u64(b, n->put_tokens[i]);
}

enum wire_result wire_parse_ring_head(const uint8_t *body, size_t len, struct wire_reader *r,
                                      struct wire_ring_head *h)
{
    wire_reader_init(r, body, len);
    h->version = wire_get_u64(r);
    h->replicas = wire_get_u8(r);
    uint64_t count = wire_get_varint(r);
    /* each node takes at least 16 + 2 + 1 + 1 + 1 + 1 + 8 bytes */
    if (h->replicas < 1 || h->replicas > 64 || count > WIRE_RING_NODES_MAX ||
        count > (uint64_t)(r->end - r->p) / 30)
        r->bad = true;
    h->count = r->bad ? 0 : (uint32_t)count;
    return r->bad ? WIRE_MALFORMED : WIRE_OK;
}

void wire_get_ring_node(struct wire_reader *r, struct wire_ring_node *n)
{
    memset(n, 0, sizeof(*n));
    const uint8_t *id = wire_get_raw(r, WIRE_NODE_ID_LEN);
    if (id != NULL)
        memcpy(n->id, id, WIRE_NODE_ID_LEN);
    n->short_id = wire_get_u16(r);
    n->addr = (const char *)wire_get_bytes(r, WIRE_ADDR_MAX, &n->addr_len);
    n->rack = (const char *)wire_get_bytes(r, WIRE_RACK_MAX, &n->rack_len);
    n->state = wire_get_u8(r);
    uint64_t ntokens = wire_get_varint(r);
    if (n->state > 2 || ntokens < 1 || ntokens > WIRE_RING_VNODES_MAX)
        r->bad = true;
    n->ntokens = r->bad ? 0 : (uint32_t)ntokens;
    n->tokens = wire_get_raw(r, (size_t)n->ntokens * 8);
    if (r->bad)
        n->ntokens = 0;
}

uint64_t wire_ring_token(const struct wire_ring_node *n, uint32_t i)
{
    return get64le(n->tokens + (size_t)i * 8);
}

void wire_compose_coord_read(struct wire_buf *b, uint8_t read_cl, const uint8_t *key,
                             size_t key_len)
{
    if (!put_check(b, read_cl >= WIRE_CL_ONE && read_cl <= WIRE_CL_ALL && key_len >= 1 &&
                          key_len <= WIRE_REC_KEY_MAX))
        return;
    wire_put_u8(b, read_cl);
    wire_put_bytes(b, key, key_len);
}

enum wire_result wire_parse_coord_read(const uint8_t *body, size_t len, uint8_t *read_cl,
                                       const uint8_t **key, size_t *key_len)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    *read_cl = wire_get_u8(&r);
    *key = get_bytes_in(&r, 1, WIRE_REC_KEY_MAX, key_len);
    if (*read_cl < WIRE_CL_ONE || *read_cl > WIRE_CL_ALL)
        r.bad = true;
    return finish(&r);
}

void wire_compose_coord_write(struct wire_buf *b, uint8_t write_cl, const struct wire_record *rec)
{
    if (!put_check(b, write_cl >= WIRE_CL_ONE && write_cl <= WIRE_CL_ANY && record_valid(rec)))
        return;
    wire_put_u8(b, write_cl);
    wire_put_record(b, rec);
}

enum wire_result wire_parse_coord_write(const uint8_t *body, size_t len, uint8_t *write_cl,
                                        struct wire_record *rec)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    *write_cl = wire_get_u8(&r);
    wire_get_record(&r, rec);
    if (*write_cl < WIRE_CL_ONE || *write_cl > WIRE_CL_ANY)
        r.bad = true;
    return finish(&r);
}
