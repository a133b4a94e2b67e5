/*
 * wire.h - the cluster protocol's frame and body codec (the internal binary
 * protocol between strata-proxy and strata-node, and between nodes; spec in
 * docs/formats/cluster-protocol.md, keep the two in step). Parses frames in
 * place from a connection's input bytes and composes them into a growable
 * output buffer. Pure functions on caller-owned memory, any thread.
 *
 * Frame header (32 bytes, integers little-endian), followed by the body:
 *
 *   byte  0..3   magic         ASCII "STRC"
 *         4      version       protocol version of this frame (1)
 *         5      opcode        enum wire_opcode
 *         6..7   flags         WIRE_FLAG_*; undefined bits must be 0
 *         8..15  request id    chosen by the requester, echoed by the response
 *        16..19  body length   n; header + n must not exceed the receiver's limit
 *        20..23  header check  low 32 bits of XXH3_64bits(bytes 0..19)
 *        24..31  body check    XXH3_64bits(the n body bytes)
 *        32..    body          n bytes, per opcode (wire_compose_* / wire_parse_*)
 *
 * Body fields: fixed-width little-endian integers; byte strings are an
 * unsigned LEB128 varint length (shortest form, at most 10 bytes) followed by
 * that many bytes. A body must be consumed exactly: trailing bytes are
 * malformed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define WIRE_MAGIC "STRC" /* 4 bytes, no NUL on the wire */
#define WIRE_HEADER_LEN 32
/* Versions this build reads and writes. HANDSHAKE frames always travel as
 * version 1 (see the spec, "Versions"). */
#define WIRE_VERSION_MIN 1
#define WIRE_VERSION_MAX 1
/* Default frame-size limit (header included): the receiver's limit is an
 * argument of wire_parse_frame and wire_end_frame. */
#define WIRE_FRAME_MAX_DEFAULT (16u << 20)

/* Frame flags. Undefined bits must be zero (the parser rejects them), so a
 * later version can give them a meaning. Never renumber. */
#define WIRE_FLAG_RESPONSE 0x0001u /* a response; id is the request's */
#define WIRE_FLAG_DIGEST 0x0002u   /* READ: digest instead of data (request and response) */
#define WIRE_FLAG_FRESH 0x0004u    /* WRITE: versions stamped now by the coordinator */
#define WIRE_FLAGS_DEFINED 0x0007u

/* Field limits checked by the body codecs. */
#define WIRE_NODE_ID_LEN 16
#define WIRE_REC_KEY_MAX 250 /* memcached's key limit; keys are 1..250 bytes */
#define WIRE_CLUSTER_MAX 255 /* cluster name, 1..255 bytes */
#define WIRE_ADDR_MAX 512    /* listen address "host:port", 1..512 bytes */
#define WIRE_MSG_MAX 1024    /* refusal and error messages, 0..1024 bytes */

/* Opcodes; the numbers are on the wire: never renumber. The high nibble
 * groups them: 0x0_ connection, 0x1_ membership, 0x2_ data, 0x3_ repair. */
enum wire_opcode {
    WIRE_OP_HANDSHAKE = 0x01,
    WIRE_OP_PING = 0x02,
    WIRE_OP_ERROR = 0x03, /* response only */
    WIRE_OP_RING = 0x04,  /* the ring as a node sees it (a proxy's placement) */
    WIRE_OP_GOSSIP_SYN = 0x10,
    WIRE_OP_GOSSIP_ACK = 0x11,
    WIRE_OP_GOSSIP_ACK2 = 0x12,
    WIRE_OP_READ = 0x20,
    WIRE_OP_WRITE = 0x21,
    WIRE_OP_RMW = 0x22,
    WIRE_OP_COORD_READ = 0x23,  /* a read the receiving node coordinates at a level */
    WIRE_OP_COORD_WRITE = 0x24, /* a record the receiving node writes at a level */
    WIRE_OP_MERKLE_TREE = 0x30,
    WIRE_OP_RANGE_READ = 0x31,
    WIRE_OP_HINT_REPLAY = 0x32,
};

/* Name of an opcode ("HANDSHAKE"), NULL when the number is not assigned. */
const char *wire_opcode_name(uint8_t opcode);

/*
 * What parsing a frame or a body found. Everything but WIRE_OK and
 * WIRE_NEED_MORE means the peer cannot be trusted to be in step any more:
 * the caller closes the connection (see the spec for the ERROR it may send
 * first).
 */
enum wire_result {
    WIRE_OK = 0,
    WIRE_NEED_MORE,    /* a frame has begun but is incomplete: read more */
    WIRE_BAD_MAGIC,    /* not this protocol (first 4 bytes) */
    WIRE_BAD_VERSION,  /* a version outside WIRE_VERSION_MIN..MAX */
    WIRE_OVERSIZED,    /* header + body length exceeds the limit */
    WIRE_BAD_CHECKSUM, /* header check or body check mismatch */
    WIRE_MALFORMED,    /* verified bytes that are not a valid message */
};

/* Short lowercase name of a result, for logs. Never NULL. */
const char *wire_result_name(enum wire_result r);

/* ---- Frames ------------------------------------------------------------ */

struct wire_frame {
    uint8_t version;
    uint8_t opcode;
    uint16_t flags;
    uint64_t id;
    const uint8_t *body; /* view into the parsed buffer; NULL unless WIRE_OK */
    uint32_t body_len;
    size_t size; /* WIRE_HEADER_LEN + body_len: bytes the frame takes */
};

/*
 * Parses the frame at the start of buf[0..len) without copying: buf may hold
 * part of a frame, one frame, or several (only the first is looked at).
 * `limit` is the largest frame (header included) the caller accepts.
 * Never reads outside buf[0..len), whatever the bytes.
 *
 * Returns
 * - WIRE_OK: *f is the frame; f->body points into buf and is valid while buf
 *   is; the caller consumes f->size bytes and calls again for the next frame.
 * - WIRE_NEED_MORE: *need is the smallest total len (from buf's start) that
 *   can change the answer: WIRE_HEADER_LEN while the header is incomplete,
 *   then the whole frame's size (never above limit). len == 0 is NEED_MORE.
 * - WIRE_BAD_MAGIC / WIRE_BAD_VERSION: as soon as the bytes that show it
 *   have arrived, even before a whole header (a memcached client that typed
 *   into the cluster port is refused at once).
 * - WIRE_BAD_CHECKSUM: the header check (as soon as the header is in) or the
 *   body check (once the body is in) does not match.
 * - WIRE_OVERSIZED: the verified header declares a frame over `limit`; the
 *   body is not waited for.
 * - WIRE_MALFORMED: the verified header has an undefined flag bit set.
 * For WIRE_OVERSIZED and WIRE_MALFORMED the header passed its check: *f holds
 * its fields (body NULL, body_len as declared) so the caller may answer
 * ERROR to f->id before closing. Otherwise *f is written only on WIRE_OK and
 * *need only on WIRE_NEED_MORE.
 */
enum wire_result wire_parse_frame(const uint8_t *buf, size_t len, size_t limit,
                                  struct wire_frame *f, size_t *need);

/*
 * Output buffer: frames are composed at its end. Its fields are public so a
 * connection can write data[0..len) and keep it on the stack, but only this
 * module changes them.
 *
 * Errors are sticky: an append that cannot allocate (ST_NOMEM) or a body
 * composer given an invalid field (ST_INVAL) records the error in `err` and
 * every later append is a no-op, so a caller composes a whole frame and
 * checks once, at wire_end_frame. Growing moves `data`: earlier pointers
 * into it are invalid after any append.
 */
struct wire_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    enum st_status err;
};

/* Empty buffer, no allocation yet. */
void wire_buf_init(struct wire_buf *b);
/* Frees the memory (accounted to MEM_CONN); b may be init'ed again. */
void wire_buf_deinit(struct wire_buf *b);
/* Forgets the contents and any error, keeps the memory. */
void wire_buf_clear(struct wire_buf *b);

/*
 * Starts a frame at the end of b: appends a header whose length and checks
 * are filled in by wire_end_frame. Returns the mark to hand to it (the
 * frame's offset in b). The body is then appended with the wire_put_* and
 * wire_compose_* functions. Undefined flag bits set b->err to ST_INVAL.
 */
size_t wire_begin_frame(struct wire_buf *b, uint8_t opcode, uint16_t flags, uint64_t id);

/*
 * Finishes the frame begun at `mark`: fills its body length and checks.
 * Returns ST_OK; or, with the partial frame removed (b->len back to mark)
 * and b->err cleared, the sticky error (ST_NOMEM, ST_INVAL), or ST_INVAL
 * when the frame would exceed `limit` (the peer's frame-size limit) or a
 * 32-bit body length. Frames before mark are untouched.
 * REQUIRES: mark came from wire_begin_frame on b, with no frame ended since.
 */
enum st_status wire_end_frame(struct wire_buf *b, size_t mark, size_t limit);

/* Drops the frame begun at `mark` and clears b->err. */
void wire_abort_frame(struct wire_buf *b, size_t mark);

/* ---- Body fields: writer ------------------------------------------------- */

void wire_put_u8(struct wire_buf *b, uint8_t v);
void wire_put_u16(struct wire_buf *b, uint16_t v);
void wire_put_u32(struct wire_buf *b, uint32_t v);
void wire_put_u64(struct wire_buf *b, uint64_t v);
/* LEB128, shortest form. */
void wire_put_varint(struct wire_buf *b, uint64_t v);
/* n bytes as they are (fixed-size fields such as a node id). */
void wire_put_raw(struct wire_buf *b, const void *p, size_t n);
/* A byte string: varint n, then the n bytes. p may be NULL when n == 0. */
void wire_put_bytes(struct wire_buf *b, const void *p, size_t n);

/* ---- Body fields: reader ------------------------------------------------- */

/*
 * Bounds-checked reader over a body. A read that would pass the end, or a
 * value that breaks its rule, sets `bad` and returns 0 / NULL; once bad,
 * every read returns 0 / NULL, so a decoder reads all its fields and checks
 * once. Fields are public for stack allocation; use the functions.
 */
struct wire_reader {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
};

/* Reader over p[0..len); the bytes are borrowed for the reader's life. */
void wire_reader_init(struct wire_reader *r, const uint8_t *p, size_t len);
/* True when nothing went wrong and every byte was read. */
bool wire_reader_done(const struct wire_reader *r);

uint8_t wire_get_u8(struct wire_reader *r);
uint16_t wire_get_u16(struct wire_reader *r);
uint32_t wire_get_u32(struct wire_reader *r);
uint64_t wire_get_u64(struct wire_reader *r);
/* Bad on more than 10 bytes, a value over 64 bits, or a longer form than
 * needed (every value has one encoding, so a body has one byte string). */
uint64_t wire_get_varint(struct wire_reader *r);
/* View of the next n bytes (never NULL when not bad, even for n == 0). */
const uint8_t *wire_get_raw(struct wire_reader *r, size_t n);
/* View of a byte string of at most `max` bytes; its length in *n (0 when
 * bad). */
const uint8_t *wire_get_bytes(struct wire_reader *r, size_t max, size_t *n);

/* ---- Bodies ---------------------------------------------------------------
 * wire_compose_X appends X's body to b (between wire_begin_frame and
 * wire_end_frame); an invalid field (a length out of its bounds) sets b->err
 * to ST_INVAL. wire_parse_X decodes a whole body: WIRE_OK, or WIRE_MALFORMED
 * when it is short, has trailing bytes or breaks a field's rule. Parsed
 * pointers are views into the body, valid while it is.
 */

/* HANDSHAKE request: the dialer introduces itself. */
struct wire_handshake {
    uint8_t version; /* highest protocol version the dialer speaks */
    const char *cluster;
    size_t cluster_len; /* 1..WIRE_CLUSTER_MAX */
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint16_t short_id;   /* the version tie-break (struct wire_version.node) */
    uint64_t generation; /* grows at each start of the node */
    const char *addr;
    size_t addr_len; /* 1..WIRE_ADDR_MAX, the dialer's cluster listen address */
};

void wire_compose_handshake(struct wire_buf *b, const struct wire_handshake *h);
enum wire_result wire_parse_handshake(const uint8_t *body, size_t len, struct wire_handshake *h);

/* Why a handshake was refused. On the wire: never renumber. */
enum wire_refuse {
    WIRE_REFUSE_CLUSTER = 1,    /* cluster name differs */
    WIRE_REFUSE_VERSION = 2,    /* no protocol version in common */
    WIRE_REFUSE_ID = 3,         /* node id / short id pair conflicts with a known node */
    WIRE_REFUSE_GENERATION = 4, /* an older generation than one already seen */
    WIRE_REFUSE_SELF = 5,       /* the dialer is the acceptor itself */
    WIRE_REFUSE_REMOVED = 6,    /* the dialer was decommissioned */
    WIRE_REFUSE_SHUTDOWN = 7,   /* the acceptor is stopping */
};

/* HANDSHAKE response: accept (with the acceptor's identity) or refuse. */
struct wire_handshake_reply {
    bool accept;
    /* accept */
    uint8_t version; /* version of every later frame on the connection */
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint16_t short_id;
    uint64_t generation;
    /* refuse */
    uint16_t reason; /* enum wire_refuse; unknown codes are kept */
    const char *msg;
    size_t msg_len; /* 0..WIRE_MSG_MAX */
};

void wire_compose_handshake_reply(struct wire_buf *b, const struct wire_handshake_reply *h);
enum wire_result wire_parse_handshake_reply(const uint8_t *body, size_t len,
                                            struct wire_handshake_reply *h);

/* PING request and response: the sender's hybrid logical clock, so idle
 * peers still keep their clocks close. */
void wire_compose_ping(struct wire_buf *b, uint64_t hlc);
enum wire_result wire_parse_ping(const uint8_t *body, size_t len, uint64_t *hlc);

/* ERROR response codes. On the wire: never renumber. */
enum wire_error_code {
    WIRE_ERR_UNKNOWN_OPCODE = 1, /* opcode not assigned or not implemented */
    WIRE_ERR_BAD_REQUEST = 2,    /* body or flags invalid; the connection closes */
    WIRE_ERR_NOT_READY = 3,      /* no handshake yet, or the node is starting */
    WIRE_ERR_OVERLOADED = 4,     /* too many requests in flight: retry elsewhere */
    WIRE_ERR_TIMEOUT = 5,
    WIRE_ERR_NOT_PRIMARY = 6, /* RMW sent to a node that is not the key's primary */
    WIRE_ERR_STORAGE = 7,     /* the storage engine failed (I/O, corruption) */
    WIRE_ERR_TOO_LARGE = 8,   /* request or response over the frame limit */
    WIRE_ERR_INTERNAL = 9,
    WIRE_ERR_CLOCK = 10, /* a FRESH version too far behind this node's clock */
};

struct wire_error {
    uint16_t code; /* enum wire_error_code; unknown codes are kept */
    const char *msg;
    size_t msg_len; /* 0..WIRE_MSG_MAX */
};

void wire_compose_error(struct wire_buf *b, const struct wire_error *e);
enum wire_result wire_parse_error(const uint8_t *body, size_t len, struct wire_error *e);

/* ---- Records (READ, WRITE, and later hints and streaming) ---------------- */

/* Same meaning as struct lsm_version: larger (hlc, then node) is newer. */
struct wire_version {
    uint64_t hlc;
    uint16_t node;
};

/* True when a's version is newer than b's (hlc, then node). */
static inline bool wire_version_newer(struct wire_version a, struct wire_version b)
{
    return a.hlc != b.hlc ? a.hlc > b.hlc : a.node > b.node;
}

/* A record as struct lsm_record has it (same field names). */
struct wire_record {
    const uint8_t *key;
    size_t key_len; /* 1..WIRE_REC_KEY_MAX */
    const uint8_t *value;
    size_t value_len; /* 0 for a tombstone */
    uint32_t flags;   /* memcached client flags */
    uint64_t expiry;  /* absolute unix seconds, 0 = never; tombstone: deletion time */
    struct wire_version version;
    bool tombstone;
};

/* RECORD, the unit of READ and WRITE bodies. */
void wire_put_record(struct wire_buf *b, const struct wire_record *rec);
/* Reads a RECORD; on a broken rule marks r bad (and *rec is unspecified). */
void wire_get_record(struct wire_reader *r, struct wire_record *rec);

/* READ request (with WIRE_FLAG_DIGEST or without): the key. */
void wire_compose_read(struct wire_buf *b, const uint8_t *key, size_t key_len);
enum wire_result wire_parse_read(const uint8_t *body, size_t len, const uint8_t **key,
                                 size_t *key_len);

/* READ data response: the newest version the replica holds (a tombstone or
 * an expired record included, the coordinator resolves), or NULL for none. */
void wire_compose_read_reply(struct wire_buf *b, const struct wire_record *rec);
/* *found false: no record, *rec untouched. */
enum wire_result wire_parse_read_reply(const uint8_t *body, size_t len, bool *found,
                                       struct wire_record *rec);

/*
 * Digest of a record, compared across replicas by digest reads: XXH3-64 of
 * the value bytes seeded with the XXH3-64 of the record's RECORD encoding
 * up to and including the value length (so every field counts, and no
 * buffer is needed). REQUIRES: rec's lengths are within their bounds.
 */
uint64_t wire_record_digest(const struct wire_record *rec);

/* READ digest response (WIRE_FLAG_DIGEST): version and digest of the newest
 * record, or not found. */
struct wire_digest {
    bool found;
    struct wire_version version; /* found only */
    uint64_t digest;             /* found only: wire_record_digest */
};

/* rec NULL: not found. */
void wire_compose_digest_reply(struct wire_buf *b, const struct wire_record *rec);
enum wire_result wire_parse_digest_reply(const uint8_t *body, size_t len, struct wire_digest *d);

/* WRITE request: n >= 1 records; its response has an empty body. */
void wire_compose_write(struct wire_buf *b, const struct wire_record *recs, size_t n);

/*
 * Checks a whole WRITE body, so nothing is applied from a body that turns
 * out broken. On WIRE_OK, *count >= 1 and r is positioned at the first
 * record: exactly *count wire_get_record(r, ...) calls follow, each of which
 * succeeds, after which wire_reader_done(r) holds.
 */
enum wire_result wire_parse_write(const uint8_t *body, size_t len, struct wire_reader *r,
                                  size_t *count);

/* ---- Consistency levels (RMW bodies, and the node's settings) ------------ */

/* How many replicas must answer: ONE 1, QUORUM N/2+1, ALL N; ANY (writes
 * only) 1 counting a stored hint. On the wire: never renumber. */
enum wire_cl {
    WIRE_CL_ONE = 1,
    WIRE_CL_QUORUM = 2,
    WIRE_CL_ALL = 3,
    WIRE_CL_ANY = 4,
};

/* "ONE", "QUORUM", ...; NULL for a number that is not a level. */
const char *wire_cl_name(uint8_t cl);
/* The level named s (case-insensitive); false if none. */
bool wire_cl_parse(const char *s, enum wire_cl *out);
/* Replicas needed at cl with n replicas (ANY: 1). REQUIRES: n >= 1. */
unsigned wire_cl_needed(enum wire_cl cl, unsigned n);

/* ---- RMW: a read-modify-write run at the key's primary ------------------- */

/* The memcached operation an RMW carries. On the wire: never renumber. */
enum wire_rmw_op {
    WIRE_RMW_ADD = 1,     /* store value unless the key is live */
    WIRE_RMW_REPLACE = 2, /* store value if the key is live */
    WIRE_RMW_APPEND = 3,  /* value after the live one (keeps its flags, expiry) */
    WIRE_RMW_PREPEND = 4, /* value before the live one */
    WIRE_RMW_CAS = 5,     /* store value if the live version's hlc is cas_in */
    WIRE_RMW_DELETE = 6,  /* delete if live (and its hlc is cas_in, if non-zero) */
    WIRE_RMW_TOUCH = 7,   /* new expiry for the live record (a new version) */
    WIRE_RMW_INCR = 8,    /* decimal value + delta (wraps at 2^64) */
    WIRE_RMW_DECR = 9,    /* decimal value - delta (floor 0) */
    WIRE_RMW_SET = 10,    /* store value whatever is live (a version above it) */
};

/* RMW request flags (struct wire_rmw.rflags). Undefined bits must be 0. */
#define WIRE_RMW_RETURN 0x01u  /* answer the resulting record (gat, mg T) */
#define WIRE_RMW_VIVIFY 0x02u  /* INCR/DECR: a miss stores `initial` (ma N) */
#define WIRE_RMW_RETOUCH 0x04u /* INCR/DECR: then set expiry2 (ma T) */
#define WIRE_RMW_FLAGS_DEFINED 0x07u

/* RMW request body. */
struct wire_rmw {
    uint8_t op;       /* enum wire_rmw_op */
    uint8_t read_cl;  /* enum wire_cl (not ANY) */
    uint8_t write_cl; /* enum wire_cl */
    uint8_t rflags;   /* WIRE_RMW_* */
    const uint8_t *key;
    size_t key_len; /* 1..WIRE_REC_KEY_MAX */
    const uint8_t *value;
    size_t value_len; /* stores (ADD..CAS) only; 0 otherwise */
    uint32_t flags;   /* stores: the client flags */
    uint64_t expiry;  /* absolute unix s, 0 never: stores, TOUCH; INCR/DECR: vivify's */
    uint64_t expiry2; /* INCR/DECR with RETOUCH: the new expiry */
    uint64_t cas_in;  /* 0: no compare */
    uint64_t delta;   /* INCR/DECR */
    uint64_t initial; /* INCR/DECR with VIVIFY */
};
void wire_compose_rmw(struct wire_buf *b, const struct wire_rmw *q);
enum wire_result wire_parse_rmw(const uint8_t *body, size_t len, struct wire_rmw *q);

/* RMW outcome (struct wire_rmw_reply.result). On the wire: never renumber. */
enum wire_rmw_result {
    WIRE_RMW_STORED = 1,      /* done (stores, delete, touch, incr/decr) */
    WIRE_RMW_NOT_STORED = 2,  /* add on live, replace/append/prepend on missing */
    WIRE_RMW_EXISTS = 3,      /* cas_in differs */
    WIRE_RMW_NOT_FOUND = 4,   /* no live record */
    WIRE_RMW_NON_NUMERIC = 5, /* incr/decr on a non-decimal value */
    WIRE_RMW_TOO_LARGE = 6,   /* the result exceeds the item size limit */
};

/* RMW response body (failures to run it at all are ERROR frames:
 * NOT_PRIMARY, TIMEOUT, STORAGE, OVERLOADED). */
struct wire_rmw_reply {
    uint8_t result;         /* enum wire_rmw_result */
    uint64_t cas;           /* STORED: the new version's hlc */
    uint64_t number;        /* INCR/DECR STORED: the new value (or initial) */
    uint64_t old_expiry;    /* the live record's expiry before (0: never / none) */
    bool created;           /* INCR/DECR with VIVIFY: the miss stored initial */
    bool has_record;        /* RETURN and a live result record */
    struct wire_record rec; /* has_record only */
};
void wire_compose_rmw_reply(struct wire_buf *b, const struct wire_rmw_reply *r);
enum wire_result wire_parse_rmw_reply(const uint8_t *body, size_t len, struct wire_rmw_reply *r);

/* ---- Clients of the cluster: RING and COORD_READ ------------------------- */

#define WIRE_RACK_MAX 64 /* common/ring.h's RING_RACK_MAX */
#define WIRE_RING_VNODES_MAX 1024
#define WIRE_RING_NODES_MAX 65536

/* RING response: how the answering node places keys. `version` moves when
 * its ring changes; `replicas` is N. Then `count` nodes follow, each read
 * with wire_get_ring_node. */
struct wire_ring_head {
    uint64_t version;
    uint8_t replicas; /* 1..64 */
    uint32_t count;   /* 0..WIRE_RING_NODES_MAX */
};

/* A ring node: identity, cluster address ("" when unknown), rack ("" for
 * none), liveness as the answering node's failure detector has it (enum
 * phi_state: 0 up, 1 suspect, 2 down) and its tokens. */
struct wire_ring_node {
    uint8_t id[WIRE_NODE_ID_LEN];
    uint16_t short_id;
    const char *addr;
    size_t addr_len; /* 0..WIRE_ADDR_MAX */
    const char *rack;
    size_t rack_len;            /* 0..WIRE_RACK_MAX */
    uint8_t state;              /* 0..2 */
    uint32_t ntokens;           /* 1..WIRE_RING_VNODES_MAX */
    const uint8_t *tokens;      /* ntokens little-endian u64 (wire_ring_token) */
    const uint64_t *put_tokens; /* compose: the tokens to write */
};

void wire_put_ring_head(struct wire_buf *b, const struct wire_ring_head *h);
void wire_put_ring_node(struct wire_buf *b, const struct wire_ring_node *n);
/* On WIRE_OK, r is at the first of h->count nodes (each one
 * wire_get_ring_node, then wire_reader_done must hold). */
enum wire_result wire_parse_ring_head(const uint8_t *body, size_t len, struct wire_reader *r,
                                      struct wire_ring_head *h);
void wire_get_ring_node(struct wire_reader *r, struct wire_ring_node *n);
/* The i-th token of a parsed node. */
uint64_t wire_ring_token(const struct wire_ring_node *n, uint32_t i);

/* COORD_READ request: a key the receiver reads as a coordinator would for
 * a client, at read level `read_cl` (1..3). The response is a READ data
 * response (wire_compose_read_reply) holding the live record, or none. */
void wire_compose_coord_read(struct wire_buf *b, uint8_t read_cl, const uint8_t *key,
                             size_t key_len);
enum wire_result wire_parse_coord_read(const uint8_t *body, size_t len, uint8_t *read_cl,
                                       const uint8_t **key, size_t *key_len);

/* COORD_WRITE request: one record (its version chosen by the sender, as
 * a hint's) the receiver writes to the key's replicas as a coordinator,
 * decided at level `write_cl` (1..4). The response has an empty body. */
void wire_compose_coord_write(struct wire_buf *b, uint8_t write_cl, const struct wire_record *rec);
enum wire_result wire_parse_coord_write(const uint8_t *body, size_t len, uint8_t *write_cl,
                                        struct wire_record *rec);

/* ---- Anti-entropy: MERKLE_TREE and RANGE_READ ----------------------------- */

#define WIRE_MERKLE_DEPTH_MAX 20      /* server/merkle.h's MERKLE_MAX_DEPTH */
#define WIRE_MERKLE_HASHES_MAX 65536u /* per request or response */

/* MERKLE_TREE request: for each named node of `level` in the responder's
 * tree of (range_start, range_end] at `depth`, built as of `as_of` with
 * `gc_grace`, the hashes of its 2^step descendants at level + step (level
 * 0, step 0, node 0: the root). The responder keeps the tree under
 * `session` for the requests that follow. */
struct wire_merkle_req {
    uint64_t session;
    uint64_t range_start, range_end;
    uint8_t depth; /* 1..WIRE_MERKLE_DEPTH_MAX */
    uint64_t as_of, gc_grace;
    uint8_t level, step;  /* level + step <= depth */
    size_t n;             /* nodes: 1..; n << step <= WIRE_MERKLE_HASHES_MAX */
    const uint8_t *nodes; /* parse: n little-endian u64 (wire_u64_at) */
};
/* Composes with the node indices from `nodes` (q->nodes is ignored). */
void wire_compose_merkle_req(struct wire_buf *b, const struct wire_merkle_req *q,
                             const uint64_t *nodes);
enum wire_result wire_parse_merkle_req(const uint8_t *body, size_t len, struct wire_merkle_req *q);

/* MERKLE_TREE response: the hashes, and how many records the tree holds. */
void wire_compose_merkle_reply(struct wire_buf *b, const uint64_t *hashes, size_t n,
                               uint64_t records);
/* *hashes: n little-endian u64 (wire_u64_at). */
enum wire_result wire_parse_merkle_reply(const uint8_t *body, size_t len, const uint8_t **hashes,
                                         size_t *n, uint64_t *records);

/* The i-th little-endian u64 of an array parsed above. */
uint64_t wire_u64_at(const uint8_t *p, size_t i);

/* RANGE_READ request: the newest version of every key whose token is in
 * (range_start, range_end], tombstones and expired records included, in
 * (token, key) order, after the key `after` (0 bytes: from the start);
 * at most max_records records and about max_bytes bytes per page. */
struct wire_range_req {
    uint64_t range_start, range_end;
    const uint8_t *after;
    size_t after_len;     /* 0..WIRE_REC_KEY_MAX */
    uint32_t max_records; /* >= 1 */
    uint32_t max_bytes;
};
void wire_compose_range_req(struct wire_buf *b, const struct wire_range_req *q);
enum wire_result wire_parse_range_req(const uint8_t *body, size_t len, struct wire_range_req *q);

/* RANGE_READ response: `more` (a next page exists, after the last key
 * here), then n >= 0 records read as WRITE's (wire_get_record). */
void wire_compose_range_reply(struct wire_buf *b, bool more, const struct wire_record *recs,
                              size_t n);
/* On WIRE_OK, r is at the first of *count records (each wire_get_record
 * succeeds). */
enum wire_result wire_parse_range_reply(const uint8_t *body, size_t len, bool *more,
                                        struct wire_reader *r, size_t *count);
