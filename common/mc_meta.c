/*
 * mc_meta.c - meta command line parser and base64 key codec (see
 * mc_meta.h). The checks run in memcached 1.6.18's order, because the
 * order decides which error line a bad request gets and whether the data
 * block of an ms is swallowed or parsed as the next command.
 */
#include "common/mc_meta.h"

#include <string.h>

#include "common/numparse.h"

#define BAD_FORMAT "CLIENT_ERROR bad command line format\r\n"
#define BAD_TOKEN "CLIENT_ERROR bad token in command line format\r\n"
/* memcached limits tokens (command, key, flags and a terminal one) to 20. */
#define MC_META_NTOKENS_MAX 20

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

size_t mc_base64_decode(const char *in, size_t n, char *out, size_t cap)
{
    if (n == 0 || n % 4 != 0)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char ch = in[i + (size_t)j];
            if (ch == '=' && last && j >= 2) {
                pad++;
                v[j] = 0;
                continue;
            }
            if (pad > 0 || (v[j] = b64_value(ch)) < 0)
                return 0;
        }
        unsigned triple =
            (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        size_t bytes = 3 - (size_t)pad;
        if (o + bytes > cap)
            return 0;
        out[o++] = (char)(triple >> 16);
        if (bytes > 1)
            out[o++] = (char)(triple >> 8);
        if (bytes > 2)
            out[o++] = (char)triple;
    }
    return o;
}

size_t mc_base64_encode(const char *in, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        size_t left = n - i;
        unsigned triple = (unsigned)s[i] << 16;
        if (left > 1)
            triple |= (unsigned)s[i + 1] << 8;
        if (left > 2)
            triple |= s[i + 2];
        out[o++] = b64_alphabet[(triple >> 18) & 63];
        out[o++] = b64_alphabet[(triple >> 12) & 63];
        out[o++] = left > 1 ? b64_alphabet[(triple >> 6) & 63] : '=';
        out[o++] = left > 2 ? b64_alphabet[triple & 63] : '=';
    }
    return o;
}

bool mc_meta_is_meta(const char *line, size_t len)
{
    return len >= 2 && line[0] == 'm' && (len == 2 || line[2] == ' ');
}

/* Splits on spaces, skipping empty tokens (memcached's tokenizer). Returns
 * the number of tokens, which may exceed `max` (only `max` are stored). */
static size_t meta_tokenize(const char *line, size_t len, struct mc_meta_token *tok, size_t max)
{
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        if (n < max)
            tok[n] = (struct mc_meta_token){line + start, i - start};
        n++;
    }
    return n;
}

static bool meta_decode_key(struct mc_meta_request *req)
{
    size_t n = mc_base64_decode(req->key, req->nkey, req->keybuf, sizeof(req->keybuf));
    req->key_binary = true;
    req->key = req->keybuf;
    req->nkey = n;
    return n != 0;
}

/*
 * memcached's flag preparse: every flag is checked even after an error
 * (the last error's line wins), except a duplicate or unknown flag, which
 * stops at once. Returns false with req->error set.
 */
static bool meta_preparse(struct mc_meta_request *req)
{
    bool seen[128] = {false};
    const char *err = NULL;
    bool failed = false;
    for (unsigned i = 0; i < req->nflags; i++) {
        const struct mc_meta_token *t = &req->flags[i];
        unsigned char o = (unsigned char)t->p[0];
        const char *arg = t->p + 1;
        size_t narg = t->n - 1;
        if (o >= 127 || seen[o]) {
            req->error = "CLIENT_ERROR duplicate flag\r\n";
            return false;
        }
        seen[o] = true;
        switch (o) {
        case 'b':
            if (!meta_decode_key(req)) {
                err = "CLIENT_ERROR error decoding key\r\n";
                failed = true;
            }
            break;
        case 'N':
            req->has_vivify = true;
            if (!numparse_i32_trunc(arg, narg, &req->vivify_ttl)) {
                err = BAD_TOKEN;
                failed = true;
            }
            break;
        case 'T':
            req->has_ttl = true;
            if (!numparse_i32_trunc(arg, narg, &req->ttl)) {
                err = BAD_TOKEN;
                failed = true;
            }
            break;
        case 'R':
            req->has_recache = true;
            if (!numparse_i32_trunc(arg, narg, &req->recache_ttl)) {
                err = BAD_TOKEN;
                failed = true;
            }
            break;
        case 'O':
            if (t->n > MC_META_OPAQUE_MAX)
                req->opaque_too_long = true;
            break;
        case 'l':
        case 'P':
        case 'L':
        case 'k':
        case 's':
        case 't':
        case 'c':
        case 'f':
        case 'h': break;
        case 'v': req->value = true; break;
        case 'u': req->no_bump = true; break;
        case 'q': req->quiet = true; break;
        case 'I': req->invalidate = true; break;
        case 'F':
            /* memcached leaves its default error line for a bad F */
            if (!numparse_u32_trunc(arg, narg, &req->client_flags))
                failed = true;
            break;
        case 'C':
            if (!numparse_u64(arg, narg, &req->cas)) {
                err = BAD_TOKEN;
                failed = true;
            } else {
                req->has_cas = true;
            }
            break;
        case 'M':
            if (t->n != 2) {
                err = "CLIENT_ERROR incorrect length for M token\r\n";
                failed = true;
            } else {
                req->mode = t->p[1];
            }
            break;
        case 'J':
            if (!numparse_u64(arg, narg, &req->initial)) {
                err = "CLIENT_ERROR invalid numeric initial value\r\n";
                failed = true;
            }
            break;
        case 'D':
            if (!numparse_u64(arg, narg, &req->delta)) {
                err = "CLIENT_ERROR invalid numeric delta value\r\n";
                failed = true;
            }
            break;
        default: req->error = "CLIENT_ERROR invalid flag\r\n"; return false;
        }
    }
    if (failed)
        req->error = err != NULL ? err : BAD_FORMAT;
    return !failed;
}

static enum mc_parse meta_fail(struct mc_meta_request *req, const char *error)
{
    req->error = error;
    return MC_PARSE_CLIENT_ERROR;
}

static enum mc_parse meta_parse_set(struct mc_meta_request *req, const struct mc_meta_token *tok,
                                    size_t ntok)
{
    /* Until the length is known nothing can be swallowed: the data block
     * will be read as the next command line. */
    if (ntok == 2)
        return meta_fail(req, BAD_FORMAT);
    if (ntok + 1 > MC_META_NTOKENS_MAX)
        return meta_fail(req, "CLIENT_ERROR options flags too long\r\n");
    if (!numparse_i32_trunc(tok[2].p, tok[2].n, &req->vlen) || req->vlen < 0 ||
        req->vlen > INT32_MAX - 2)
        return meta_fail(req, BAD_FORMAT);
    req->swallow = true;
    req->nflags = (unsigned)(ntok - 3);
    memcpy(req->flags, tok + 3, req->nflags * sizeof(*tok));
    if (!meta_preparse(req))
        return MC_PARSE_CLIENT_ERROR;
    switch (req->mode) {
    case 0:
    case 'E':
    case 'A':
    case 'P':
    case 'R':
    case 'S': break;
    default: return meta_fail(req, "CLIENT_ERROR invalid mode for ms M token\r\n");
    }
    if (req->opaque_too_long)
        return meta_fail(req, "CLIENT_ERROR opaque token too long\r\n");
    req->swallow = false;
    return MC_PARSE_OK;
}

enum mc_parse mc_meta_parse(const char *line, size_t len, struct mc_meta_request *req)
{
    struct mc_meta_token tok[MC_META_TOKENS_MAX];
    memset(req, 0, sizeof(*req));
    req->delta = 1;
    size_t ntok = meta_tokenize(line, len, tok, MC_META_TOKENS_MAX);
    if (ntok == 0 || tok[0].n != 2 || tok[0].p[0] != 'm')
        return MC_PARSE_ERROR;
    switch (tok[0].p[1]) {
    case 'g': req->cmd = MC_META_GET; break;
    case 's': req->cmd = MC_META_SET; break;
    case 'd': req->cmd = MC_META_DELETE; break;
    case 'a': req->cmd = MC_META_ARITH; break;
    case 'n': req->cmd = MC_META_NOOP; return MC_PARSE_OK; /* arguments ignored */
    case 'e': req->cmd = MC_META_DEBUG; break;
    default: return MC_PARSE_ERROR;
    }
    if (ntok < 2)
        return req->cmd == MC_META_DEBUG ? meta_fail(req, BAD_FORMAT) : MC_PARSE_ERROR;
    req->key = tok[1].p;
    req->nkey = tok[1].n;
    if (req->nkey > MC_KEY_MAX)
        return meta_fail(req, BAD_FORMAT);
    switch (req->cmd) {
    case MC_META_DEBUG:
        /* only "me <key> b" decodes; other arguments are ignored */
        if (ntok >= 3 && tok[2].n == 1 && tok[2].p[0] == 'b' && !meta_decode_key(req))
            return meta_fail(req, BAD_FORMAT);
        return MC_PARSE_OK;
    case MC_META_SET: return meta_parse_set(req, tok, ntok);
    default: break;
    }
    if (ntok + 1 > MC_META_NTOKENS_MAX)
        return meta_fail(req, req->cmd == MC_META_GET
                                  ? "CLIENT_ERROR options flags are too long\r\n"
                                  : "CLIENT_ERROR options flags too long\r\n");
    req->nflags = (unsigned)(ntok - 2);
    memcpy(req->flags, tok + 2, req->nflags * sizeof(*tok));
    if (!meta_preparse(req)) {
        /* md and ma answer every preparse failure with one line */
        if (req->cmd != MC_META_GET)
            req->error = "CLIENT_ERROR invalid or duplicate flag\r\n";
        return MC_PARSE_CLIENT_ERROR;
    }
    return MC_PARSE_OK;
}
