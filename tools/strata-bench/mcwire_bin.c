/*
 * mcwire_bin.c - the memcached binary protocol as strata-bench speaks it:
 * GETK (GETKQ per key and a closing NOOP for multi-key gets) and SET
 * requests; responses parsed from their 24-byte header, values skipped as
 * they stream. Pure functions, connection thread.
 */

/*
 *   header  0 magic | 1 opcode | 2-3 key length | 4 extras length |
 *           5 data type | 6-7 vbucket (request) or status (response) |
 *           8-11 total body length | 12-15 opaque | 16-23 CAS
 *   body    extras, key, value; all integers big-endian
 */
#include <stdio.h>
#include <string.h>

#include "tools/strata-bench/mcwire_int.h"

static void put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint16_t get16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint16_t)(u[0] << 8 | u[1]);
}

static uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static void header(char *p, uint8_t opcode, uint16_t nkey, uint8_t nextras, uint32_t body,
                   uint32_t opaque)
{
    memset(p, 0, MCWIRE_BIN_HEADER);
    p[0] = (char)MCWIRE_BIN_REQ;
    p[1] = (char)opcode;
    put16(p + 2, nkey);
    p[4] = (char)nextras;
    put32(p + 8, body);
    put32(p + 12, opaque);
}

size_t mcwire_bin_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n,
                              uint32_t opaque)
{
    char *p = buf;
    uint8_t op = n == 1 ? MCWIRE_BIN_GETK : MCWIRE_BIN_GETKQ;
    for (unsigned i = 0; i < n; i++) {
        size_t nkey = keys_format(ks, ids[i], p + MCWIRE_BIN_HEADER);
        header(p, op, (uint16_t)nkey, 0, (uint32_t)nkey, opaque);
        p += MCWIRE_BIN_HEADER + nkey;
    }
    if (n > 1) {
        header(p, MCWIRE_BIN_NOOP, 0, 0, 0, opaque);
        p += MCWIRE_BIN_HEADER;
    }
    return (size_t)(p - buf);
}

size_t mcwire_bin_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                              uint32_t exptime, uint32_t opaque)
{
    size_t nkey = keys_format(ks, id, buf + MCWIRE_BIN_HEADER + 8);
    header(buf, MCWIRE_BIN_SET, (uint16_t)nkey, 8, (uint32_t)(8 + nkey) + vlen, opaque);
    put32(buf + MCWIRE_BIN_HEADER, 0); /* flags */
    put32(buf + MCWIRE_BIN_HEADER + 4, exptime);
    return MCWIRE_BIN_HEADER + 8 + nkey;
}

static bool is_get(uint8_t op)
{
    return op == MCWIRE_BIN_GET || op == MCWIRE_BIN_GETK || op == MCWIRE_BIN_GETKQ;
}

/* What a response with this opcode and status means. */
static enum mcwire_ev classify(uint8_t op, uint16_t status)
{
    if (op == MCWIRE_BIN_NOOP && status == MCWIRE_BIN_OK)
        return MCWIRE_EV_END;
    if (is_get(op))
        return status == MCWIRE_BIN_OK       ? MCWIRE_EV_HIT
               : status == MCWIRE_BIN_ENOENT ? MCWIRE_EV_MISS
                                             : MCWIRE_EV_ERROR;
    if (op == MCWIRE_BIN_SET)
        return status == MCWIRE_BIN_OK ? MCWIRE_EV_STORED
               : status == MCWIRE_BIN_EEXISTS || status == MCWIRE_BIN_NOT_STORED ||
                       status == MCWIRE_BIN_ENOENT
                   ? MCWIRE_EV_NOT_STORED
                   : MCWIRE_EV_ERROR;
    return status == MCWIRE_BIN_OK ? MCWIRE_EV_BAD : MCWIRE_EV_ERROR;
}

/* Appends body bytes of an error response to its message. */
static void keep_text(struct mcwire_parser *p, const char *bytes, size_t n)
{
    if (p->pending.type != MCWIRE_EV_ERROR && p->pending.type != MCWIRE_EV_NOT_STORED)
        return;
    size_t room = MCWIRE_TEXT_MAX > p->pending.ntext ? MCWIRE_TEXT_MAX - p->pending.ntext : 0;
    if (n > room)
        n = room;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)bytes[i];
        p->text[p->pending.ntext++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    p->text[p->pending.ntext] = '\0';
}

size_t mcwire_bin_parse(struct mcwire_parser *p, const char *buf, size_t len,
                        struct mcwire_event *ev)
{
    size_t used = 0;
    if (p->state == MCWIRE_ST_HEAD) {
        if (len < MCWIRE_BIN_HEADER)
            return 0;
        if ((unsigned char)buf[0] != MCWIRE_BIN_RES) {
            mcwire_event_bad(p, ev, "bad magic in binary response", buf, MCWIRE_BIN_HEADER);
            return 0;
        }
        uint8_t op = (uint8_t)buf[1];
        uint16_t nkey = get16(buf + 2);
        uint8_t nextras = (uint8_t)buf[4];
        uint16_t status = get16(buf + 6);
        uint32_t body = get32(buf + 8);
        if (nkey > MCWIRE_KEY_MAX || (uint32_t)nkey + nextras > body) {
            mcwire_event_bad(p, ev, "inconsistent binary response header", buf, MCWIRE_BIN_HEADER);
            return 0;
        }
        size_t head = MCWIRE_BIN_HEADER + nextras + nkey;
        if (len < head)
            return 0;
        memset(&p->pending, 0, sizeof(p->pending));
        p->pending.type = classify(op, status);
        if (p->pending.type == MCWIRE_EV_BAD) {
            mcwire_event_bad(p, ev, "unexpected binary response opcode", buf, MCWIRE_BIN_HEADER);
            return 0;
        }
        p->pending.opcode = op;
        p->pending.status = status;
        p->pending.has_opaque = true;
        p->pending.opaque = get32(buf + 12);
        memcpy(p->key, buf + MCWIRE_BIN_HEADER + nextras, nkey);
        p->pending.key = p->key;
        p->pending.nkey = nkey;
        p->left = body - nextras - nkey;
        if (p->pending.type == MCWIRE_EV_HIT)
            p->pending.vlen = p->left;
        if (p->pending.type == MCWIRE_EV_ERROR || p->pending.type == MCWIRE_EV_NOT_STORED) {
            int w = snprintf(p->text, sizeof(p->text), "status 0x%04x: ", status);
            p->pending.text = p->text;
            p->pending.ntext = w > 0 ? (size_t)w : 0;
        }
        used = head;
        p->state = MCWIRE_ST_DATA;
    }
    size_t avail = len - used;
    size_t skip = p->left < avail ? (size_t)p->left : avail;
    keep_text(p, buf + used, skip);
    used += skip;
    p->left -= skip;
    if (p->left > 0)
        return used;
    p->state = MCWIRE_ST_HEAD;
    *ev = p->pending;
    return used;
}
