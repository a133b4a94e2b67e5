/*
 * mc_binary.h - the memcached binary protocol codec: the 24-byte packet
 * header, opcodes and status codes (constants from memcached's
 * protocol_binary.h, which define the wire format and never change), and
 * the per-opcode shape rules used to reject malformed requests before
 * anything is read or allocated. Pure functions, any thread.
 *
 * Header (all integers big-endian):
 *
 *   byte  0      magic      0x80 request, 0x81 response
 *         1      opcode
 *         2..3   key length
 *         4      extras length
 *         5      data type  (0 = raw bytes)
 *         6..7   vbucket (request) / status (response)
 *         8..11  total body length = extras + key + value
 *        12..15  opaque     (echoed back)
 *        16..23  CAS
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_BIN_HEADER_LEN 24
#define MC_BIN_REQ_MAGIC 0x80
#define MC_BIN_RES_MAGIC 0x81

enum mc_bin_opcode {
    MC_BIN_GET = 0x00,
    MC_BIN_SET = 0x01,
    MC_BIN_ADD = 0x02,
    MC_BIN_REPLACE = 0x03,
    MC_BIN_DELETE = 0x04,
    MC_BIN_INCREMENT = 0x05,
    MC_BIN_DECREMENT = 0x06,
    MC_BIN_QUIT = 0x07,
    MC_BIN_FLUSH = 0x08,
    MC_BIN_GETQ = 0x09,
    MC_BIN_NOOP = 0x0a,
    MC_BIN_VERSION = 0x0b,
    MC_BIN_GETK = 0x0c,
    MC_BIN_GETKQ = 0x0d,
    MC_BIN_APPEND = 0x0e,
    MC_BIN_PREPEND = 0x0f,
    MC_BIN_STAT = 0x10,
    MC_BIN_SETQ = 0x11,
    MC_BIN_ADDQ = 0x12,
    MC_BIN_REPLACEQ = 0x13,
    MC_BIN_DELETEQ = 0x14,
    MC_BIN_INCREMENTQ = 0x15,
    MC_BIN_DECREMENTQ = 0x16,
    MC_BIN_QUITQ = 0x17,
    MC_BIN_FLUSHQ = 0x18,
    MC_BIN_APPENDQ = 0x19,
    MC_BIN_PREPENDQ = 0x1a,
    MC_BIN_VERBOSITY = 0x1b,
    MC_BIN_TOUCH = 0x1c,
    MC_BIN_GAT = 0x1d,
    MC_BIN_GATQ = 0x1e,
    MC_BIN_SASL_LIST_MECHS = 0x20,
    MC_BIN_SASL_AUTH = 0x21,
    MC_BIN_SASL_STEP = 0x22,
    MC_BIN_GATK = 0x23,
    MC_BIN_GATKQ = 0x24,
};

enum mc_bin_status {
    MC_BIN_OK = 0x0000,
    MC_BIN_KEY_ENOENT = 0x0001,
    MC_BIN_KEY_EEXISTS = 0x0002,
    MC_BIN_E2BIG = 0x0003,
    MC_BIN_EINVAL = 0x0004,
    MC_BIN_NOT_STORED = 0x0005,
    MC_BIN_DELTA_BADVAL = 0x0006,
    MC_BIN_AUTH_ERROR = 0x0020,
    MC_BIN_UNKNOWN_COMMAND = 0x0081,
    MC_BIN_ENOMEM = 0x0082,
    MC_BIN_EINTERNAL = 0x0084, /* the server failed (strata-node: its storage) */
    MC_BIN_ETMPFAIL = 0x0086,  /* temporary failure (strata-node: replicas) */
};

struct mc_bin_header {
    uint8_t magic;
    uint8_t opcode;
    uint16_t keylen;
    uint8_t extlen;
    uint8_t datatype;
    uint16_t status; /* vbucket in requests */
    uint32_t bodylen;
    uint32_t opaque;
    uint64_t cas;
};

/* Decodes the 24 header bytes at p (no validation). */
void mc_bin_decode_header(const uint8_t *p, struct mc_bin_header *h);
/* Encodes h into 24 bytes at p. */
void mc_bin_encode_header(uint8_t *p, const struct mc_bin_header *h);

/*
 * memcached reads a request's header, extras and key into its 16 KB read
 * buffer before looking at them; a request whose header, extras and key
 * do not fit gets its connection closed, without an answer, once that much
 * has arrived.
 */
#define MC_BIN_HEAD_MAX 16384

/* What a request header's shape says, once header, extras and key are in. */
enum mc_bin_shape {
    MC_BIN_SHAPE_OK,
    MC_BIN_SHAPE_UNKNOWN, /* unknown opcode: UNKNOWN_COMMAND once the body is skipped */
    MC_BIN_SHAPE_INVALID, /* lengths inconsistent with the opcode: EINVAL, then close */
    MC_BIN_SHAPE_SHORT,   /* body shorter than key + extras: UNKNOWN_COMMAND, then close */
};

/*
 * Checks key/extras/body lengths against the opcode with memcached 1.6's
 * rules, in its order: a body shorter than key and extras, then a key over
 * 250 bytes (any opcode, even an unknown one), then per opcode: e.g. SET
 * needs 8 bytes of extras and a key, GET no extras, a key and no value,
 * INCR 20 bytes of extras and no value. TOUCH, GAT* and STAT do not check
 * for a value (memcached reads their extra body bytes as the next packet).
 * REQUIRES: h->magic == MC_BIN_REQ_MAGIC.
 */
enum mc_bin_shape mc_bin_check_shape(const struct mc_bin_header *h);

/*
 * memcached holds the length of a body it skips (or of a value it refuses)
 * in an int: one of 2^31 bytes or more is negative there, so it answers at
 * once and skips nothing; the bytes that follow are read as the next
 * request. True when `len` is such a length.
 */
static inline bool mc_bin_len_is_negative(uint32_t len)
{
    return len > (uint32_t)INT32_MAX;
}

/* True for the SASL opcodes, which have a shape but are answered
 * UNKNOWN_COMMAND while authentication is not built. */
bool mc_bin_is_sasl(uint8_t opcode);

/* True for the quiet variants (GETQ, SETQ, ...), which send nothing on
 * success. */
bool mc_bin_is_quiet(uint8_t opcode);

/* memcached's error text carried in the body of an error response. */
const char *mc_bin_status_text(enum mc_bin_status s);

static inline uint32_t mc_bin_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t mc_bin_get64(const uint8_t *p)
{
    return (uint64_t)mc_bin_get32(p) << 32 | mc_bin_get32(p + 4);
}

static inline void mc_bin_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void mc_bin_put64(uint8_t *p, uint64_t v)
{
    mc_bin_put32(p, (uint32_t)(v >> 32));
    mc_bin_put32(p + 4, (uint32_t)v);
}
