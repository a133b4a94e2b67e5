/*
 * wire_text.c - the memcached text protocol as strata-bench speaks it:
 * "get k1 k2 ...", "set k 0 T N", and the reply lines VALUE / END / STORED /
 * NOT_STORED / EXISTS / NOT_FOUND (wire.c handles the stream and the error
 * lines). Pure functions, connection thread.
 */
#include <string.h>

#include "common/mc_text.h"
#include "tools/strata-bench/wire_int.h"

size_t wire_text_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n)
{
    char *p = buf;
    memcpy(p, "get", 3);
    p += 3;
    for (unsigned i = 0; i < n; i++) {
        *p++ = ' ';
        p += keys_format(ks, ids[i], p);
    }
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

size_t wire_text_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                             uint32_t exptime)
{
    char *p = buf;
    memcpy(p, "set ", 4);
    p += 4;
    p += keys_format(ks, id, p);
    memcpy(p, " 0 ", 3);
    p += 3;
    p += mc_u64_to_str(exptime, p);
    *p++ = ' ';
    p += mc_u64_to_str(vlen, p);
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

static bool line_is(const char *line, size_t n, const char *word)
{
    size_t k = strlen(word);
    return n == k && memcmp(line, word, k) == 0;
}

/* "VALUE <key> <flags> <bytes>[ <cas>]" */
static enum wire_line value_line(struct wire_parser *p, const char *line, size_t n,
                                 struct wire_event *ev)
{
    const char *cur = line + 6, *end = line + n, *key, *flags, *bytes, *cas, *extra;
    size_t nkey, nflags, nbytes, ncas, nextra;
    uint64_t v, vlen;
    if (!wire_token(&cur, end, &key, &nkey) || nkey > WIRE_KEY_MAX ||
        !wire_token(&cur, end, &flags, &nflags) || !wire_u64(flags, nflags, &v) || v > UINT32_MAX ||
        !wire_token(&cur, end, &bytes, &nbytes) || !wire_u64(bytes, nbytes, &vlen) ||
        vlen > INT32_MAX) {
        wire_event_bad(p, ev, "malformed VALUE line", line, n);
        return WIRE_LINE_EVENT;
    }
    if (wire_token(&cur, end, &cas, &ncas) &&
        (!wire_u64(cas, ncas, &v) || wire_token(&cur, end, &extra, &nextra))) {
        wire_event_bad(p, ev, "malformed VALUE line", line, n);
        return WIRE_LINE_EVENT;
    }
    memcpy(p->key, key, nkey);
    memset(&p->pending, 0, sizeof(p->pending));
    p->pending.type = WIRE_EV_HIT;
    p->pending.key = p->key;
    p->pending.nkey = nkey;
    p->pending.vlen = vlen;
    p->left = vlen;
    return WIRE_LINE_VALUE;
}

enum wire_line wire_text_line(struct wire_parser *p, const char *line, size_t n,
                              struct wire_event *ev)
{
    if (n > 6 && memcmp(line, "VALUE ", 6) == 0)
        return value_line(p, line, n, ev);
    if (line_is(line, n, "END"))
        ev->type = WIRE_EV_END;
    else if (line_is(line, n, "STORED"))
        ev->type = WIRE_EV_STORED;
    else if (line_is(line, n, "NOT_STORED") || line_is(line, n, "EXISTS") ||
             line_is(line, n, "NOT_FOUND"))
        wire_event_text(p, ev, WIRE_EV_NOT_STORED, line, n);
    else if (!wire_error_line(p, line, n, ev))
        wire_event_bad(p, ev, "unknown reply line", line, n);
    return WIRE_LINE_EVENT;
}
