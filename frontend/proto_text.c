/*
 * proto_text.c - memcached text protocol front end (see proto_text.h):
 * parse (common/mc_text) → execute (cmd.h) → queue the reply. Worker thread
 * of the connection.
 *
 * noreply: memcached suppresses every reply of a command that carries it,
 * errors included, once the command line was understood well enough to see
 * the flag; "ERROR" for an unknown command or a wrong argument count is
 * always sent. We follow that exactly.
 */
#include "frontend/proto_text.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_meta.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "frontend/call.h"
#include "frontend/conn.h"
#include "frontend/fe.h"
#include "frontend/proto_meta.h"
#include "frontend/worker.h"

#define LIT(s) s, sizeof(s) - 1

static enum proto_action reply(struct conn *c, const char *s, size_t n)
{
    /* Out of memory for a reply line: the stream would desync; drop it. */
    return outq_add(conn_out(c), s, n) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

static enum proto_action reply_line(struct conn *c, const char *line)
{
    size_t n = strlen(line);
    char *p = outq_reserve(conn_out(c), n + 2);
    if (p == NULL)
        return PROTO_CLOSE;
    memcpy(p, line, n);
    p[n] = '\r';
    p[n + 1] = '\n';
    return outq_commit(conn_out(c), n + 2) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

static enum proto_action reply_maybe(struct conn *c, bool noreply, const char *s, size_t n)
{
    return noreply ? PROTO_NEXT : reply(c, s, n);
}

/* Appends one hit of a get-family command. Takes the item reference. */
static enum st_status add_value(struct conn *c, void *it, bool with_cas)
{
    struct fe_item_view v;
    c->xo->view(c->exec, it, &v);
    char *p = outq_reserve(conn_out(c), MC_VALUE_HEADER_MAX);
    if (p == NULL) {
        c->xo->release(c->exec, it);
        return ST_NOMEM;
    }
    size_t n = mc_text_value_header(p, v.key, v.nkey, v.flags, v.nvalue, with_cas, v.cas);
    enum st_status s = outq_commit(conn_out(c), n);
    if (s != ST_OK) {
        c->xo->release(c->exec, it);
        return s;
    }
    return outq_add_value(conn_out(c), it, v.value, v.nvalue, "\r\n", 2);
}

/* stats detail's record of a command on a key (when the daemon keeps it). */
static void note(struct conn *c, enum fe_note what, const char *key, size_t nkey, bool hit)
{
    if (c->xo->note != NULL)
        c->xo->note(c->wctx, what, key, nkey, hit);
}

/* One key of a get-family command whose lookup completes later. */
struct get_later {
    bool with_cas;
    size_t nkey;
    char key[];
};

static void get_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    struct get_later *g = fe_call_extra(call);
    void *it = a->item;
    note(c, FE_NOTE_GET, g->key, g->nkey, it != NULL);
    /* The lines of the keys before this one may be gone already: an error
     * here cannot replace the whole reply as at once. A lookup that failed
     * (replicas unavailable) ends the reply with its error and closes, as
     * memcached does when it cannot finish a get's reply. */
    const char *err = fe_server_error(a->result);
    if (err != NULL) {
        reply(c, err, strlen(err));
        conn_end_output(c);
    } else if (it != NULL && add_value(c, it, g->with_cas) != ST_OK) {
        c->close_after_write = true;
    }
}

/* The lookup of one key through the executor's asynchronous path. */
static bool get_later(struct conn *c, const char *key, size_t nkey, bool touch, bool with_cas,
                      rel_time_t exptime)
{
    struct fe_call *call = fe_call_new(c, get_cont, sizeof(struct get_later) + nkey);
    if (call == NULL)
        return false;
    struct get_later *g = fe_call_extra(call);
    g->with_cas = with_cas;
    g->nkey = nkey;
    memcpy(g->key, key, nkey);
    c->xo->get_async(c->wctx, key, nkey, touch, exptime, call);
    return true;
}

static enum proto_action do_get(struct conn *c, const struct mc_request *req)
{
    bool touch = req->cmd == MC_CMD_GAT || req->cmd == MC_CMD_GATS;
    bool with_cas = req->cmd == MC_CMD_GETS || req->cmd == MC_CMD_GATS;
    rel_time_t exptime = touch ? clock_exptime(req->exptime) : 0;
    /* A bad key after good ones replaces the whole reply, which only the
     * synchronous path can do (it rolls its values back). */
    bool later = c->xo->get_async != NULL && req->keys_error == NULL;
    struct outq_mark mark;
    outq_mark(conn_out(c), &mark);

    const char *cur = req->keys, *end = req->keys + req->keys_len, *key;
    size_t nkey;
    while (mc_text_next_key(&cur, end, &key, &nkey)) {
        if (later) {
            if (!get_later(c, key, nkey, touch, with_cas, exptime)) {
                c->close_after_write = true; /* earlier keys are on their way */
                return reply(c, LIT("SERVER_ERROR out of memory writing get response\r\n"));
            }
            continue;
        }
        void *it = c->xo->get(c->wctx, key, nkey, touch, exptime);
        note(c, FE_NOTE_GET, key, nkey, it != NULL);
        if (it != NULL && add_value(c, it, with_cas) != ST_OK) {
            outq_rollback(conn_out(c), &mark);
            return reply(c, LIT("SERVER_ERROR out of memory writing get response\r\n"));
        }
    }
    if (req->keys_error != NULL) { /* a key too long after these */
        outq_rollback(conn_out(c), &mark);
        return reply_line(c, req->keys_error);
    }
    return reply(c, LIT("END\r\n"));
}

static enum fe_store_mode store_mode(enum mc_cmd cmd)
{
    switch (cmd) {
    case MC_CMD_ADD: return FE_ADD;
    case MC_CMD_REPLACE: return FE_REPLACE;
    case MC_CMD_APPEND: return FE_APPEND;
    case MC_CMD_PREPEND: return FE_PREPEND;
    case MC_CMD_CAS: return FE_CAS;
    default: return FE_SET;
    }
}

static enum proto_action reply_deferred(struct conn *c)
{
    const char *line = c->deferred_line;
    c->deferred_line = NULL;
    return line == NULL ? PROTO_NEXT : reply(c, line, strlen(line));
}

static enum proto_action do_store(struct conn *c, const struct mc_request *req)
{
    enum fe_store_mode mode = store_mode(req->cmd);
    note(c, FE_NOTE_SET, req->key, req->nkey, false);
    size_t nbytes = (size_t)req->nbytes + 2; /* the value and its "\r\n" */
    enum fe_result res;
    void *it = c->xo->reserve(c->wctx, req->key, req->nkey, req->flags, clock_exptime(req->exptime),
                              (size_t)req->nbytes, mode, &res);
    if (it == NULL) {
        /* memcached answers once the refused value has been read */
        c->deferred_line = req->noreply          ? NULL
                           : res == FE_TOO_LARGE ? "SERVER_ERROR object too large for cache\r\n"
                                                 : "SERVER_ERROR out of memory storing object\r\n";
        conn_begin_swallow(c, nbytes, reply_deferred);
        return PROTO_NEXT;
    }
    conn_begin_nread(c, it, 2, mode, req->cas, req->noreply);
    return PROTO_NEXT;
}

/* A failure of the server (fe_server_error's line). */
static enum proto_action server_error(struct conn *c, bool noreply, enum fe_result r)
{
    const char *line = fe_server_error(r);
    return reply_maybe(c, noreply, line, strlen(line));
}

/* The reply of a storage command. */
static enum proto_action store_reply(struct conn *c, bool noreply, enum fe_result r, uint64_t value)
{
    (void)value;
    switch (r) {
    case FE_STORED: return reply_maybe(c, noreply, LIT("STORED\r\n"));
    case FE_NOT_STORED: return reply_maybe(c, noreply, LIT("NOT_STORED\r\n"));
    case FE_EXISTS: return reply_maybe(c, noreply, LIT("EXISTS\r\n"));
    case FE_NOT_FOUND: return reply_maybe(c, noreply, LIT("NOT_FOUND\r\n"));
    case FE_TOO_LARGE:
        return reply_maybe(c, noreply, LIT("SERVER_ERROR object too large for cache\r\n"));
    case FE_FAILED:
    case FE_UNAVAILABLE:
    case FE_TIMEOUT:
    case FE_BUSY: return server_error(c, noreply, r);
    default: return reply_maybe(c, noreply, LIT("SERVER_ERROR out of memory storing object\r\n"));
    }
}

/* The reply of incr/decr. */
static enum proto_action delta_reply(struct conn *c, bool noreply, enum fe_result r, uint64_t value)
{
    switch (r) {
    case FE_OK: {
        if (noreply)
            return PROTO_NEXT;
        char buf[24];
        size_t n = mc_u64_to_str(value, buf);
        buf[n++] = '\r';
        buf[n++] = '\n';
        return reply(c, buf, n);
    }
    case FE_NOT_FOUND: return reply_maybe(c, noreply, LIT("NOT_FOUND\r\n"));
    case FE_NON_NUMERIC:
        return reply_maybe(c, noreply,
                           LIT("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    case FE_FAILED:
    case FE_UNAVAILABLE:
    case FE_TIMEOUT:
    case FE_BUSY: return server_error(c, noreply, r);
    default: return reply_maybe(c, noreply, LIT("SERVER_ERROR out of memory\r\n"));
    }
}

static enum proto_action delete_reply(struct conn *c, bool noreply, enum fe_result r,
                                      uint64_t value)
{
    (void)value;
    if (fe_server_error(r) != NULL)
        return server_error(c, noreply, r);
    if (r == FE_NO_MEMORY)
        return reply_maybe(c, noreply, LIT("SERVER_ERROR out of memory\r\n"));
    return r == FE_OK ? reply_maybe(c, noreply, LIT("DELETED\r\n"))
                      : reply_maybe(c, noreply, LIT("NOT_FOUND\r\n"));
}

static enum proto_action touch_reply(struct conn *c, bool noreply, enum fe_result r, uint64_t value)
{
    (void)value;
    if (fe_server_error(r) != NULL)
        return server_error(c, noreply, r);
    if (r == FE_NO_MEMORY)
        return reply_maybe(c, noreply, LIT("SERVER_ERROR out of memory\r\n"));
    return r == FE_OK ? reply_maybe(c, noreply, LIT("TOUCHED\r\n"))
                      : reply_maybe(c, noreply, LIT("NOT_FOUND\r\n"));
}

/* A write whose result comes later: its reply function and noreply. */
struct noreply_later {
    bool noreply;
    enum proto_action (*reply)(struct conn *c, bool noreply, enum fe_result r, uint64_t value);
};

static void noreply_cont(struct conn *c, struct fe_call *call, const struct fe_answer *a)
{
    struct noreply_later *n = fe_call_extra(call);
    if (n->reply(c, n->noreply, a->result, a->value) == PROTO_CLOSE)
        c->close_after_write = true;
}

/* A new call for a write's reply; NULL when out of memory. */
static struct fe_call *write_call(struct conn *c, bool noreply,
                                  enum proto_action (*replyfn)(struct conn *, bool, enum fe_result,
                                                               uint64_t))
{
    struct fe_call *call = fe_call_new(c, noreply_cont, sizeof(struct noreply_later));
    if (call != NULL) {
        struct noreply_later *n = fe_call_extra(call);
        n->noreply = noreply;
        n->reply = replyfn;
    }
    return call;
}

enum proto_action proto_text_nread_done(struct conn *c)
{
    void *it = c->it;
    c->it = NULL;
    if (!conn_tail_is_crlf(c)) {
        c->xo->store_aborted(c->wctx, it);
        return reply_maybe(c, c->noreply, LIT("CLIENT_ERROR bad data chunk\r\n"));
    }
    if (c->xo->store_async != NULL) {
        struct fe_call *call = write_call(c, c->noreply, store_reply);
        if (call == NULL) {
            c->xo->release(c->exec, it);
            return store_reply(c, c->noreply, FE_NO_MEMORY, 0);
        }
        c->xo->store_async(c->wctx, it, c->mode, c->cas_in, 0, call);
        return PROTO_NEXT;
    }
    return store_reply(c, c->noreply, c->xo->store(c->wctx, it, c->mode, c->cas_in, 0, NULL), 0);
}

static enum proto_action do_delta(struct conn *c, const struct mc_request *req)
{
    bool incr = req->cmd == MC_CMD_INCR;
    if (c->xo->delta_async != NULL) {
        struct fe_call *call = write_call(c, req->noreply, delta_reply);
        if (call == NULL)
            return delta_reply(c, req->noreply, FE_NO_MEMORY, 0);
        c->xo->delta_async(c->wctx, req->key, req->nkey, incr, req->delta, 0, call);
        return PROTO_NEXT;
    }
    uint64_t value = 0;
    enum fe_result r =
        c->xo->delta(c->wctx, req->key, req->nkey, incr, req->delta, 0, &value, NULL);
    return delta_reply(c, req->noreply, r, value);
}

static enum proto_action do_delete(struct conn *c, const struct mc_request *req)
{
    note(c, FE_NOTE_DELETE, req->key, req->nkey, false);
    if (c->xo->remove_async != NULL) {
        struct fe_call *call = write_call(c, req->noreply, delete_reply);
        if (call == NULL)
            return reply_maybe(c, req->noreply, LIT("SERVER_ERROR out of memory\r\n"));
        c->xo->remove_async(c->wctx, req->key, req->nkey, 0, call);
        return PROTO_NEXT;
    }
    return delete_reply(c, req->noreply, c->xo->remove(c->wctx, req->key, req->nkey, 0), 0);
}

static enum proto_action do_touch(struct conn *c, const struct mc_request *req)
{
    rel_time_t exptime = clock_exptime(req->exptime);
    if (c->xo->touch_async != NULL) {
        struct fe_call *call = write_call(c, req->noreply, touch_reply);
        if (call == NULL)
            return reply_maybe(c, req->noreply, LIT("SERVER_ERROR out of memory\r\n"));
        c->xo->touch_async(c->wctx, req->key, req->nkey, exptime, call);
        return PROTO_NEXT;
    }
    return touch_reply(c, req->noreply, c->xo->touch(c->wctx, req->key, req->nkey, exptime), 0);
}

/* An operator command the daemon answers, or ERROR if it has none. */
static enum proto_action text_command(struct conn *c, const struct mc_request *req,
                                      const char *line, size_t len)
{
    if (c->xo->text_command == NULL)
        return reply(c, LIT("ERROR\r\n"));
    return c->xo->text_command(c, req, line, len);
}

struct stats_ctx {
    struct conn *c;
    bool failed;
};

static void emit_stat(void *arg, const char *name, const char *value)
{
    struct stats_ctx *ctx = arg;
    size_t nn = strlen(name), nv = strlen(value);
    char *p = outq_reserve(conn_out(ctx->c), 5 + nn + 1 + nv + 2);
    if (p == NULL) {
        ctx->failed = true;
        return;
    }
    memcpy(p, "STAT ", 5);
    memcpy(p + 5, name, nn);
    p[5 + nn] = ' ';
    memcpy(p + 6 + nn, value, nv);
    memcpy(p + 6 + nn + nv, "\r\n", 2);
    if (outq_commit(conn_out(ctx->c), 8 + nn + nv) != ST_OK)
        ctx->failed = true;
}

/* The text of a stats detail dump. */
static void emit_detail(void *arg, const char *text, size_t len)
{
    struct stats_ctx *ctx = arg;
    if (reply(ctx->c, text, len) == PROTO_CLOSE)
        ctx->failed = true;
}

/* stats detail on|off|dump: memcached reads only the first argument. */
static enum proto_action do_stats_detail(struct conn *c, const char *args, size_t len)
{
    while (len > 0 && *args == ' ') {
        args++;
        len--;
    }
    const char *sp = memchr(args, ' ', len);
    size_t n = sp != NULL ? (size_t)(sp - args) : len;
    enum fe_detail what;
    if (n == 2 && memcmp(args, "on", 2) == 0)
        what = FE_DETAIL_ON;
    else if (n == 3 && memcmp(args, "off", 3) == 0)
        what = FE_DETAIL_OFF;
    else if (n == 4 && memcmp(args, "dump", 4) == 0)
        what = FE_DETAIL_DUMP;
    else
        return reply(c, LIT("CLIENT_ERROR usage: stats detail on|off|dump\r\n"));
    if (c->xo->detail == NULL)
        return reply(c, LIT("ERROR\r\n"));
    struct stats_ctx ctx = {c, false};
    if (c->xo->detail(c->exec, what, emit_detail, &ctx) != ST_OK)
        return reply(c, LIT("SERVER_ERROR out of memory writing stats\r\n"));
    if (ctx.failed)
        return PROTO_CLOSE;
    return what == FE_DETAIL_DUMP ? PROTO_NEXT : reply(c, LIT("OK\r\n"));
}

static enum proto_action do_stats(struct conn *c, const struct mc_request *req, const char *line,
                                  size_t len)
{
    /* memcached's subcommands whose replies are not STAT lines */
    if (mc_text_args_are(req->args, req->args_len, "detail"))
        return do_stats_detail(c, req->args + 6, req->args_len - 6);
    if (mc_text_args_are(req->args, req->args_len, "cachedump"))
        return text_command(c, req, line, len);
    struct stats_ctx ctx = {c, false};
    const char *special = NULL;
    if (!c->xo->stats(c->exec, req->args, req->args_len, emit_stat, &ctx, &special))
        return reply(c, LIT("ERROR\r\n"));
    if (ctx.failed)
        return PROTO_CLOSE;
    if (special != NULL)
        return reply_line(c, special);
    return reply(c, LIT("END\r\n"));
}

static enum proto_action do_verbosity(struct conn *c, const struct mc_request *req)
{
    /* memcached's levels: 0 quiet, 1 = -v, 2+ = -vv */
    enum log_level lvl = req->level == 0   ? LOG_LVL_WARN
                         : req->level == 1 ? LOG_LVL_INFO
                                           : LOG_LVL_DEBUG;
    log_set_level(lvl);
    return reply_maybe(c, req->noreply, LIT("OK\r\n"));
}

/*
 * `shutdown [graceful]`, as memcached 1.6.18: refused without -A; with it,
 * this connection closes without a reply and the process stops as on
 * SIGINT (plain) or SIGUSR1 (graceful), both draining replies for
 * --shutdown-timeout. Any other argument is an invalid mode.
 */
static enum proto_action do_shutdown(struct conn *c, const char *line, size_t len)
{
    if (!c->fe->settings.shutdown_command)
        return reply(c, LIT("ERROR: shutdown not enabled\r\n"));
    const char *p = line, *end = line + len, *arg = NULL;
    size_t nwords = 0, arglen = 0;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        const char *w = p;
        while (p < end && *p != ' ')
            p++;
        if (p > w && ++nwords == 2) {
            arg = w;
            arglen = (size_t)(p - w);
        }
    }
    bool graceful = nwords == 2 && arglen == 8 && memcmp(arg, "graceful", 8) == 0;
    if (nwords != 1 && !graceful)
        return reply(c, LIT("CLIENT_ERROR invalid shutdown mode\r\n"));
    log_warn("shutdown%s command from %s", graceful ? " graceful" : "", c->peer);
    c->close_after_write = true;
    kill(getpid(), graceful ? SIGUSR1 : SIGINT);
    return PROTO_NEXT;
}

enum proto_action proto_text_line(struct conn *c, const char *line, size_t len)
{
    log_debug("<%d %.*s", c->fd, (int)(len > 200 ? 200 : len), line);
    if (mc_meta_is_meta(line, len))
        return proto_meta_line(c, line, len);
    struct mc_request req;
    enum mc_parse r = mc_text_parse(line, len, &req);
    if (req.cmd == MC_CMD_FLUSH_ALL && r != MC_PARSE_ERROR && !c->fe->settings.flush_enabled) {
        /* -F: memcached counts the command, then refuses it before it
         * looks at the delay */
        c->xo->flush_all(c->wctx, 0, false);
        return reply_maybe(c, req.noreply, LIT("CLIENT_ERROR flush_all not allowed\r\n"));
    }
    switch (r) {
    case MC_PARSE_OK: break;
    case MC_PARSE_ERROR: return reply(c, LIT("ERROR\r\n"));
    case MC_PARSE_CLIENT_ERROR: return req.noreply ? PROTO_NEXT : reply_line(c, req.error);
    case MC_PARSE_CLOSE:
        c->close_after_write = true;
        return PROTO_NEXT; /* earlier replies go out */
    }

    switch (req.cmd) {
    case MC_CMD_GET:
    case MC_CMD_GETS:
    case MC_CMD_GAT:
    case MC_CMD_GATS: return do_get(c, &req);
    case MC_CMD_SET:
    case MC_CMD_ADD:
    case MC_CMD_REPLACE:
    case MC_CMD_APPEND:
    case MC_CMD_PREPEND:
    case MC_CMD_CAS: return do_store(c, &req);
    case MC_CMD_INCR:
    case MC_CMD_DECR: return do_delta(c, &req);
    case MC_CMD_DELETE: return do_delete(c, &req);
    case MC_CMD_TOUCH: return do_touch(c, &req);
    case MC_CMD_FLUSH_ALL:
        c->xo->flush_all(c->wctx, req.exptime, true);
        return reply_maybe(c, req.noreply, LIT("OK\r\n"));
    case MC_CMD_VERSION: return reply(c, LIT("VERSION " MC_COMPAT_VERSION "\r\n"));
    case MC_CMD_VERBOSITY: return do_verbosity(c, &req);
    case MC_CMD_QUIT: c->close_after_write = c->quitting = true; return PROTO_NEXT;
    case MC_CMD_STATS: return do_stats(c, &req, line, len);
    case MC_CMD_SHUTDOWN: return do_shutdown(c, line, len);
    case MC_CMD_CACHE_MEMLIMIT:
    case MC_CMD_LRU_CRAWLER:
    case MC_CMD_SLABS:
    case MC_CMD_LRU:
    case MC_CMD_WATCH:
    case MC_CMD_REPAIR: return text_command(c, &req, line, len);
    }
    return reply(c, LIT("ERROR\r\n"));
}
