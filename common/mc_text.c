/*
 * mc_text.c - memcached text protocol: command line parser and reply
 * helpers (see mc_text.h). The acceptance rules mirror memcached 1.6.18's
 * proto_text.c, verified against the real server by tests/integration.
 */
#include "common/mc_text.h"

#include <limits.h>
#include <string.h>

#include "common/numparse.h"

/* Commands have at most 8 tokens; more only matter to say "too many". */
#define MC_MAX_TOKENS 8

struct token {
    const char *p;
    size_t len;
};

/*
 * Splits on spaces (only spaces, as memcached), collapsing runs. Fills up to
 * MC_MAX_TOKENS and returns the total count; *rest points just past the
 * first `keep` tokens so get-family commands can walk their keys lazily.
 */
static size_t tokenize(const char *line, size_t len, struct token *tok, size_t keep,
                       const char **rest)
{
    size_t n = 0, i = 0;
    *rest = line + len;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        if (n < MC_MAX_TOKENS) {
            tok[n].p = line + start;
            tok[n].len = i - start;
        }
        n++;
        if (n == keep) {
            *rest = line + i;
            /* Caller only wants the head: count the remainder as "more". */
            while (i < len && line[i] == ' ')
                i++;
            return i < len ? n + 1 : n;
        }
    }
    return n;
}

static bool tok_is(const struct token *t, const char *s)
{
    size_t n = strlen(s);
    return t->len == n && memcmp(t->p, s, n) == 0;
}

bool mc_key_valid(const char *key, size_t nkey)
{
    /* memcached 1.6's text protocol checks the length only: keys reach us
     * split on spaces, and control bytes are accepted (load generators such
     * as memaslap send them), so we accept them too. */
    (void)key;
    return nkey > 0 && nkey <= MC_KEY_MAX;
}

bool mc_text_next_key(const char **cursor, const char *end, const char **key, size_t *nkey)
{
    const char *p = *cursor;
    while (p < end && *p == ' ')
        p++;
    if (p == end) {
        *cursor = p;
        return false;
    }
    const char *s = p;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    p = sp != NULL ? sp : end;
    *key = s;
    *nkey = (size_t)(p - s);
    *cursor = p;
    return true;
}

static enum mc_parse client_error(struct mc_request *req, const char *msg)
{
    req->error = msg;
    return MC_PARSE_CLIENT_ERROR;
}

static const char ERR_FORMAT[] = "CLIENT_ERROR bad command line format";
static const char ERR_EXPTIME[] = "CLIENT_ERROR invalid exptime argument";
static const char ERR_DELTA[] = "CLIENT_ERROR invalid numeric delta argument";
static const char ERR_DELETE[] =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

static bool set_noreply(struct mc_request *req, const struct token *tok, size_t n)
{
    req->noreply = n <= MC_MAX_TOKENS && tok_is(&tok[n - 1], "noreply");
    return req->noreply;
}

static enum mc_parse parse_keys(struct mc_request *req, const char *rest, const char *end)
{
    req->keys = rest;
    req->keys_len = (size_t)(end - rest);
    req->keys_error = NULL;
    const char *cur = rest, *k;
    size_t nk;
    while (mc_text_next_key(&cur, end, &k, &nk)) {
        if (!mc_key_valid(k, nk)) {
            req->keys_len = (size_t)(k - rest);
            req->keys_error = ERR_FORMAT;
            break;
        }
    }
    return MC_PARSE_OK;
}

static enum mc_parse parse_get(struct mc_request *req, const char *line, size_t len, bool touch)
{
    struct token tok[MC_MAX_TOKENS];
    const char *rest;
    size_t head = touch ? 2 : 1;
    size_t n = tokenize(line, len, tok, head, &rest);
    if (n < 2)
        return MC_PARSE_ERROR;
    if (touch && !numparse_i32_trunc(tok[1].p, tok[1].len, &req->exptime))
        return client_error(req, ERR_EXPTIME);
    return parse_keys(req, rest, line + len);
}

static enum mc_parse parse_storage(struct mc_request *req, const struct token *tok, size_t n,
                                   bool cas)
{
    size_t want = cas ? 6 : 5;
    if (n != want && n != want + 1)
        return MC_PARSE_ERROR;
    set_noreply(req, tok, n);
    req->key = tok[1].p;
    req->nkey = tok[1].len;
    if (!mc_key_valid(req->key, req->nkey))
        return client_error(req, ERR_FORMAT);
    if (!numparse_u32_trunc(tok[2].p, tok[2].len, &req->flags) ||
        !numparse_i32_trunc(tok[3].p, tok[3].len, &req->exptime) ||
        !numparse_i32_trunc(tok[4].p, tok[4].len, &req->nbytes))
        return client_error(req, ERR_FORMAT);
    if (cas && !numparse_u64(tok[5].p, tok[5].len, &req->cas))
        return client_error(req, ERR_FORMAT);
    if (req->nbytes < 0 || req->nbytes > INT_MAX - 2)
        return client_error(req, ERR_FORMAT);
    return MC_PARSE_OK;
}

static enum mc_parse parse_key_cmd(struct mc_request *req, const struct token *tok, size_t n)
{
    set_noreply(req, tok, n);
    req->key = tok[1].p;
    req->nkey = tok[1].len;
    return mc_key_valid(req->key, req->nkey) ? MC_PARSE_OK : client_error(req, ERR_FORMAT);
}

static enum mc_parse parse_delete(struct mc_request *req, const struct token *tok, size_t n)
{
    if (n < 2 || n > 4)
        return MC_PARSE_ERROR;
    if (n > 2) {
        bool hold_is_zero = tok_is(&tok[2], "0");
        bool noreply = set_noreply(req, tok, n);
        bool valid = (n == 3 && (hold_is_zero || noreply)) || (n == 4 && hold_is_zero && noreply);
        if (!valid)
            return client_error(req, ERR_DELETE);
    }
    req->key = tok[1].p;
    req->nkey = tok[1].len;
    return mc_key_valid(req->key, req->nkey) ? MC_PARSE_OK : client_error(req, ERR_FORMAT);
}

static enum mc_parse parse_flush_all(struct mc_request *req, const struct token *tok, size_t n)
{
    if (n > 3)
        return MC_PARSE_ERROR;
    req->exptime = 0;
    bool noreply = n > 1 && set_noreply(req, tok, n);
    if (n != (noreply ? 2u : 1u) && !numparse_i32_trunc(tok[1].p, tok[1].len, &req->exptime))
        return client_error(req, ERR_EXPTIME);
    return MC_PARSE_OK;
}

/* stats and the operator commands: the words after the verb, unparsed. */
static enum mc_parse parse_args(struct mc_request *req, const char *line, size_t len,
                                const struct token *tok)
{
    const char *args = tok[0].p + tok[0].len;
    const char *end = line + len;
    while (args < end && *args == ' ')
        args++;
    req->args = args;
    req->args_len = (size_t)(end - args);
    return MC_PARSE_OK;
}

enum mc_parse mc_text_parse(const char *line, size_t len, struct mc_request *req)
{
    struct token tok[MC_MAX_TOKENS];
    const char *rest;
    memset(req, 0, sizeof(*req));

    /* memcached reads the line as a C string: a NUL byte ends it. */
    len = strnlen(line, len);
    size_t n = tokenize(line, len, tok, 0, &rest);
    if (n == 0 || tok[0].len < 2)
        return MC_PARSE_ERROR;
    const struct token *c = &tok[0];

    switch (c->p[0]) {
    case 'g':
        if (tok_is(c, "get") || tok_is(c, "gets")) {
            req->cmd = c->len == 3 ? MC_CMD_GET : MC_CMD_GETS;
            return parse_get(req, line, len, false);
        }
        if (tok_is(c, "gat") || tok_is(c, "gats")) {
            req->cmd = c->len == 3 ? MC_CMD_GAT : MC_CMD_GATS;
            return parse_get(req, line, len, true);
        }
        return MC_PARSE_ERROR;
    case 's':
        if (tok_is(c, "set")) {
            req->cmd = MC_CMD_SET;
            return parse_storage(req, tok, n, false);
        }
        if (tok_is(c, "stats")) {
            req->cmd = MC_CMD_STATS;
            return parse_args(req, line, len, tok);
        }
        if (tok_is(c, "shutdown")) {
            req->cmd = MC_CMD_SHUTDOWN;
            return MC_PARSE_OK;
        }
        if (tok_is(c, "slabs")) {
            req->cmd = MC_CMD_SLABS;
            return parse_args(req, line, len, tok);
        }
        return MC_PARSE_ERROR;
    case 'a':
        if (tok_is(c, "add") || tok_is(c, "append")) {
            req->cmd = c->len == 3 ? MC_CMD_ADD : MC_CMD_APPEND;
            return parse_storage(req, tok, n, false);
        }
        return MC_PARSE_ERROR;
    case 'c':
        if (tok_is(c, "cas")) {
            req->cmd = MC_CMD_CAS;
            return parse_storage(req, tok, n, true);
        }
        if (tok_is(c, "cache_memlimit")) {
            req->cmd = MC_CMD_CACHE_MEMLIMIT;
            return parse_args(req, line, len, tok);
        }
        return MC_PARSE_ERROR;
    case 'i':
    case 'd':
        if (tok_is(c, "incr") || tok_is(c, "decr")) {
            if (n != 3 && n != 4)
                return MC_PARSE_ERROR;
            req->cmd = c->p[0] == 'i' ? MC_CMD_INCR : MC_CMD_DECR;
            enum mc_parse r = parse_key_cmd(req, tok, n);
            if (r != MC_PARSE_OK)
                return r;
            if (!numparse_u64(tok[2].p, tok[2].len, &req->delta))
                return client_error(req, ERR_DELTA);
            return MC_PARSE_OK;
        }
        if (tok_is(c, "delete")) {
            req->cmd = MC_CMD_DELETE;
            return parse_delete(req, tok, n);
        }
        return MC_PARSE_ERROR;
    case 't':
        if (tok_is(c, "touch")) {
            if (n != 3 && n != 4)
                return MC_PARSE_ERROR;
            req->cmd = MC_CMD_TOUCH;
            enum mc_parse r = parse_key_cmd(req, tok, n);
            if (r != MC_PARSE_OK)
                return r;
            if (!numparse_i32_trunc(tok[2].p, tok[2].len, &req->exptime))
                return client_error(req, ERR_EXPTIME);
            return MC_PARSE_OK;
        }
        return MC_PARSE_ERROR;
    default: break;
    }

    if (tok_is(c, "prepend") || tok_is(c, "replace")) {
        req->cmd = c->p[0] == 'p' ? MC_CMD_PREPEND : MC_CMD_REPLACE;
        return parse_storage(req, tok, n, false);
    }
    if (tok_is(c, "bget")) { /* ancient alias memcached still answers */
        req->cmd = MC_CMD_GET;
        return parse_get(req, line, len, false);
    }
    if (tok_is(c, "flush_all")) {
        req->cmd = MC_CMD_FLUSH_ALL;
        return parse_flush_all(req, tok, n);
    }
    if (tok_is(c, "version")) {
        req->cmd = MC_CMD_VERSION;
        return MC_PARSE_OK;
    }
    if (tok_is(c, "lru_crawler") || tok_is(c, "lru") || tok_is(c, "watch")) {
        req->cmd = c->len == 11 ? MC_CMD_LRU_CRAWLER : c->len == 3 ? MC_CMD_LRU : MC_CMD_WATCH;
        return parse_args(req, line, len, tok);
    }
    if (tok_is(c, "repair")) {
        req->cmd = MC_CMD_REPAIR;
        return parse_args(req, line, len, tok);
    }
    if (tok_is(c, "quit")) {
        req->cmd = MC_CMD_QUIT;
        return MC_PARSE_OK;
    }
    if (tok_is(c, "verbosity")) {
        if (n != 2 && n != 3)
            return MC_PARSE_ERROR;
        req->cmd = MC_CMD_VERBOSITY;
        set_noreply(req, tok, n);
        if (!numparse_u32_trunc(tok[1].p, tok[1].len, &req->level))
            return client_error(req, ERR_FORMAT);
        return MC_PARSE_OK;
    }
    /* memcached drops connections that speak HTTP to it, without a reply. */
    if (n <= MC_MAX_TOKENS && tok[n - 1].len >= 5 && memcmp(tok[n - 1].p, "HTTP/", 5) == 0)
        return MC_PARSE_CLOSE;
    return MC_PARSE_ERROR;
}

bool mc_text_is_long_line_ok(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && i <= 100 && buf[i] == ' ')
        i++;
    if (i > 100)
        return false;
    return (len - i >= 4 && memcmp(buf + i, "get ", 4) == 0) ||
           (len - i >= 5 && memcmp(buf + i, "gets ", 5) == 0);
}

void mc_emit_u64(void (*emit)(void *arg, const char *name, const char *value), void *arg,
                 const char *name, uint64_t v)
{
    char buf[24];
    buf[mc_u64_to_str(v, buf)] = '\0';
    emit(arg, name, buf);
}

size_t mc_u64_to_str(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

size_t mc_text_value_header(char *buf, const char *key, size_t nkey, uint32_t flags, size_t nbytes,
                            bool with_cas, uint64_t cas)
{
    char *p = buf;
    memcpy(p, "VALUE ", 6);
    p += 6;
    memcpy(p, key, nkey);
    p += nkey;
    *p++ = ' ';
    p += mc_u64_to_str(flags, p);
    *p++ = ' ';
    p += mc_u64_to_str(nbytes, p);
    if (with_cas) {
        *p++ = ' ';
        p += mc_u64_to_str(cas, p);
    }
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

bool mc_text_args_are(const char *args, size_t len, const char *w)
{
    size_t n = strlen(w);
    return len >= n && memcmp(args, w, n) == 0 && (len == n || args[n] == ' ');
}

static bool delta_is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

bool mc_delta_parse(const char *p, size_t len, uint64_t *out)
{
    size_t i = 0;
    while (i < len && delta_is_space(p[i]))
        i++;
    bool neg = false;
    if (i < len && (p[i] == '+' || p[i] == '-')) {
        neg = p[i] == '-';
        i++;
    }
    size_t first = i;
    uint64_t v = 0;
    bool overflow = false;
    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        v = v * 10 + d;
    }
    if (i == first || overflow)
        return false;
    if (i < len && !delta_is_space(p[i]) && p[i] != '\0')
        return false;
    if (neg) {
        v = (uint64_t)0 - v;
        if ((int64_t)v < 0)
            return false;
    }
    *out = v;
    return true;
}
