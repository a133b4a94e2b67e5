/*
 * mcwire_resp.c - the Redis protocol (RESP2) as strata-bench speaks it, to
 * load redis-server with the same workloads: GET and SET of one key as
 * arrays of bulk strings, and the replies $<len> (a value follows), $-1
 * (miss), +OK and -ERR ... (mcwire.c handles the stream: the line, then the
 * value and its CRLF). Pure functions, connection thread.
 */

/*
 *   GET k      "*2\r\n$3\r\nGET\r\n$<nkey>\r\n<key>\r\n"
 *   SET k v    "*3\r\n$3\r\nSET\r\n$<nkey>\r\n<key>\r\n$<vlen>\r\n" <value> "\r\n"
 *   replies    "$<len>\r\n<data>\r\n" hit, "$-1\r\n" miss, "+OK\r\n" stored,
 *              "-<message>\r\n" error; anything else (integers, arrays,
 *              other simple strings) is not a reply to GET or SET
 */
#include <string.h>

#include "common/assert.h"
#include "common/mc_text.h"
#include "tools/strata-bench/mcwire_int.h"

/* Writes "$<n>\r\n<bytes>\r\n". */
static size_t bulk(char *buf, const char *bytes, size_t n)
{
    char *p = buf;
    *p++ = '$';
    p += mc_u64_to_str(n, p);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, bytes, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

size_t mcwire_resp_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n)
{
    /* opts.c refuses --multiget above 1 with RESP: MGET answers with an
     * array, which the stream parser does not follow */
    ASSERT(n == 1);
    (void)n;
    char key[KEYS_LEN_MAX];
    size_t nkey = keys_format(ks, ids[0], key);
    static const char head[] = "*2\r\n$3\r\nGET\r\n";
    memcpy(buf, head, sizeof(head) - 1);
    return sizeof(head) - 1 + bulk(buf + sizeof(head) - 1, key, nkey);
}

size_t mcwire_resp_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen)
{
    char key[KEYS_LEN_MAX];
    size_t nkey = keys_format(ks, id, key);
    static const char head[] = "*3\r\n$3\r\nSET\r\n";
    char *p = buf;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    p += bulk(p, key, nkey);
    *p++ = '$';
    p += mc_u64_to_str(vlen, p);
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

enum mcwire_line mcwire_resp_line(struct mcwire_parser *p, const char *line, size_t n,
                                  struct mcwire_event *ev)
{
    if (n >= 1 && line[0] == '$') {
        uint64_t vlen;
        if (n == 3 && line[1] == '-' && line[2] == '1') {
            ev->type = MCWIRE_EV_MISS;
            return MCWIRE_LINE_EVENT;
        }
        if (!mcwire_u64(line + 1, n - 1, &vlen) || vlen > INT32_MAX) {
            mcwire_event_bad(p, ev, "malformed bulk string length", line, n);
            return MCWIRE_LINE_EVENT;
        }
        memset(&p->pending, 0, sizeof(p->pending));
        p->pending.type = MCWIRE_EV_HIT;
        p->pending.vlen = vlen;
        p->left = vlen;
        return MCWIRE_LINE_VALUE;
    }
    if (n == 3 && memcmp(line, "+OK", 3) == 0)
        ev->type = MCWIRE_EV_STORED;
    else if (n >= 1 && line[0] == '-')
        mcwire_event_text(p, ev, MCWIRE_EV_ERROR, line + 1, n - 1);
    else
        mcwire_event_bad(p, ev, "not a RESP reply to GET or SET", line, n);
    return MCWIRE_LINE_EVENT;
}
