/* mc_binary.c - memcached binary protocol header codec and request shape
 * rules (see mc_binary.h). */
#include "common/mc_binary.h"

#include "common/mc_text.h"

void mc_bin_decode_header(const uint8_t *p, struct mc_bin_header *h)
{
    h->magic = p[0];
    h->opcode = p[1];
    h->keylen = (uint16_t)(p[2] << 8 | p[3]);
    h->extlen = p[4];
    h->datatype = p[5];
    h->status = (uint16_t)(p[6] << 8 | p[7]);
    h->bodylen = mc_bin_get32(p + 8);
    h->opaque = mc_bin_get32(p + 12);
    h->cas = mc_bin_get64(p + 16);
}

void mc_bin_encode_header(uint8_t *p, const struct mc_bin_header *h)
{
    p[0] = h->magic;
    p[1] = h->opcode;
    p[2] = (uint8_t)(h->keylen >> 8);
    p[3] = (uint8_t)h->keylen;
    p[4] = h->extlen;
    p[5] = h->datatype;
    p[6] = (uint8_t)(h->status >> 8);
    p[7] = (uint8_t)h->status;
    mc_bin_put32(p + 8, h->bodylen);
    mc_bin_put32(p + 12, h->opaque);
    mc_bin_put64(p + 16, h->cas);
}

bool mc_bin_is_quiet(uint8_t op)
{
    switch (op) {
    case MC_BIN_GETQ:
    case MC_BIN_GETKQ:
    case MC_BIN_SETQ:
    case MC_BIN_ADDQ:
    case MC_BIN_REPLACEQ:
    case MC_BIN_DELETEQ:
    case MC_BIN_INCREMENTQ:
    case MC_BIN_DECREMENTQ:
    case MC_BIN_QUITQ:
    case MC_BIN_FLUSHQ:
    case MC_BIN_APPENDQ:
    case MC_BIN_PREPENDQ:
    case MC_BIN_GATQ:
    case MC_BIN_GATKQ: return true;
    default: return false;
    }
}

/* Shape rule of one opcode: extras length, key presence, value presence. */
enum key_rule { KEY_NONE, KEY_REQUIRED, KEY_OPTIONAL };
/* VALUE_UNCHECKED: memcached never looks at the body length beyond key and
 * extras (TOUCH, GAT*, STAT). */
enum value_rule { VALUE_NONE, VALUE_ALLOWED, VALUE_UNCHECKED };

struct shape {
    int extlen; /* exact extras length; -1: 0 or 4 (flush), -2: 0 or 4 (verbosity: 4) */
    enum key_rule key;
    enum value_rule value;
};

static bool shape_of(uint8_t op, struct shape *s)
{
    switch (op) {
    case MC_BIN_GET:
    case MC_BIN_GETQ:
    case MC_BIN_GETK:
    case MC_BIN_GETKQ:
    case MC_BIN_DELETE:
    case MC_BIN_DELETEQ: *s = (struct shape){0, KEY_REQUIRED, VALUE_NONE}; return true;
    case MC_BIN_SET:
    case MC_BIN_SETQ:
    case MC_BIN_ADD:
    case MC_BIN_ADDQ:
    case MC_BIN_REPLACE:
    case MC_BIN_REPLACEQ: *s = (struct shape){8, KEY_REQUIRED, VALUE_ALLOWED}; return true;
    case MC_BIN_APPEND:
    case MC_BIN_APPENDQ:
    case MC_BIN_PREPEND:
    case MC_BIN_PREPENDQ: *s = (struct shape){0, KEY_REQUIRED, VALUE_ALLOWED}; return true;
    case MC_BIN_INCREMENT:
    case MC_BIN_INCREMENTQ:
    case MC_BIN_DECREMENT:
    case MC_BIN_DECREMENTQ: *s = (struct shape){20, KEY_REQUIRED, VALUE_NONE}; return true;
    case MC_BIN_QUIT:
    case MC_BIN_QUITQ:
    case MC_BIN_NOOP:
    case MC_BIN_VERSION: *s = (struct shape){0, KEY_NONE, VALUE_NONE}; return true;
    case MC_BIN_FLUSH:
    case MC_BIN_FLUSHQ: *s = (struct shape){-1, KEY_NONE, VALUE_NONE}; return true;
    case MC_BIN_STAT: *s = (struct shape){0, KEY_OPTIONAL, VALUE_UNCHECKED}; return true;
    case MC_BIN_TOUCH:
    case MC_BIN_GAT:
    case MC_BIN_GATQ:
    case MC_BIN_GATK:
    case MC_BIN_GATKQ: *s = (struct shape){4, KEY_REQUIRED, VALUE_UNCHECKED}; return true;
    case MC_BIN_SASL_LIST_MECHS: *s = (struct shape){0, KEY_NONE, VALUE_NONE}; return true;
    case MC_BIN_SASL_AUTH:
    case MC_BIN_SASL_STEP: *s = (struct shape){0, KEY_REQUIRED, VALUE_ALLOWED}; return true;
    default: return false;
    }
}

enum mc_bin_shape mc_bin_check_shape(const struct mc_bin_header *h)
{
    struct shape s;
    /* memcached's order: lengths, key length, then the opcode */
    if ((uint32_t)h->keylen + h->extlen > h->bodylen)
        return MC_BIN_SHAPE_SHORT;
    if (h->keylen > MC_KEY_MAX)
        return MC_BIN_SHAPE_INVALID;
    if (!shape_of(h->opcode, &s))
        return MC_BIN_SHAPE_UNKNOWN;
    if (s.extlen >= 0 ? h->extlen != s.extlen : (h->extlen != 0 && h->extlen != 4))
        return MC_BIN_SHAPE_INVALID;
    if ((s.key == KEY_REQUIRED && h->keylen == 0) || (s.key == KEY_NONE && h->keylen != 0))
        return MC_BIN_SHAPE_INVALID;
    if (s.value == VALUE_NONE && h->bodylen != (uint32_t)h->keylen + h->extlen)
        return MC_BIN_SHAPE_INVALID;
    return MC_BIN_SHAPE_OK;
}

bool mc_bin_is_sasl(uint8_t op)
{
    return op == MC_BIN_SASL_LIST_MECHS || op == MC_BIN_SASL_AUTH || op == MC_BIN_SASL_STEP;
}

const char *mc_bin_status_text(enum mc_bin_status s)
{
    switch (s) {
    case MC_BIN_OK: return "";
    case MC_BIN_KEY_ENOENT: return "Not found";
    case MC_BIN_KEY_EEXISTS: return "Data exists for key.";
    case MC_BIN_E2BIG: return "Too large.";
    case MC_BIN_EINVAL: return "Invalid arguments";
    case MC_BIN_NOT_STORED: return "Not stored.";
    case MC_BIN_DELTA_BADVAL: return "Non-numeric server-side value for incr or decr";
    case MC_BIN_AUTH_ERROR: return "Auth failure.";
    case MC_BIN_UNKNOWN_COMMAND: return "Unknown command";
    case MC_BIN_ENOMEM: return "Out of memory allocating item"; /* memcached: stores only */
    case MC_BIN_EINTERNAL: return "Internal error";
    case MC_BIN_ETMPFAIL: return "Temporary failure";
    }
    return "UNHANDLED ERROR";
}
