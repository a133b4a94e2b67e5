/*
 * conn.h - a client connection: its buffers and its state machine (read a
 * command line, read a value into an item, swallow a refused value, write
 * replies). The protocol modules (proto_text.c) work on the fields below;
 * nothing outside proxy/ sees them. Worker thread of the connection only,
 * except the atomics read by `stats conns`.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/status.h"
#include "frontend/exec.h"
#include "frontend/outq.h"
#include "frontend/proto.h"

struct conn;
struct conn_slot;
struct worker;
struct fe;
struct event;
struct proto_meta_set;

enum conn_state {
    CONN_PARSE_CMD, /* waiting for / parsing command lines */
    CONN_NREAD,     /* reading a value into c->it */
    CONN_SWALLOW,   /* discarding the value of a refused storage command */
    CONN_STREAM,    /* a producer writes a long reply (metadump, watch) */
    CONN_CLOSING,
};

/* What a stream producer says after a call (see conn_begin_stream). */
enum conn_stream_step {
    CONN_STREAM_MORE, /* queued some output; call again once it drains */
    CONN_STREAM_IDLE, /* nothing to send now; call again shortly */
    CONN_STREAM_DONE, /* finished: the connection reads commands again */
    CONN_STREAM_FAIL, /* out of memory or broken: close the connection */
};

/* Produces the next part of a streamed reply into c->out. */
typedef enum conn_stream_step (*conn_stream_fn)(struct conn *c, void *arg);
/* Releases the producer's state when the stream ends or the connection
 * closes. */
typedef void (*conn_stream_free_fn)(void *arg);

/* Chosen by the first byte a client sends, as memcached does. */
enum conn_proto {
    CONN_PROTO_UNKNOWN,
    CONN_PROTO_TEXT,   /* text and meta commands */
    CONN_PROTO_BINARY, /* first byte 0x80 */
};

struct conn {
    struct conn *prev, *next; /* worker's list, under worker->conns_lock */
    struct worker *w;
    struct fe *fe;
    /* The executor commands go to, its context and this worker's. */
    const struct fe_exec_ops *xo;
    void *exec;
    void *wctx;
    int fd;
    struct event *rev, *wev;
    _Atomic int state;          /* enum conn_state; read by stats conns */
    _Atomic bool write_blocked; /* replies wait for the socket to drain */
    _Atomic rel_time_t last_cmd;
    char peer[64]; /* "tcp:127.0.0.1:12345" */

    char *rbuf; /* unread input is rbuf[rpos, rpos + rlen) */
    size_t rcap, rpos, rlen;

    struct outq out;

    /* CONN_NREAD: the value being read for a storage command */
    void *it;          /* reserved item (executor's); owned by the connection */
    char *dst;         /* next value byte to fill */
    size_t left;       /* value bytes still to read */
    uint8_t tail_left; /* terminator bytes still to read into tail */
    char tail[2];      /* the "\r\n" a text value must end with */
    enum fe_store_mode mode;
    uint64_t cas_in;
    bool noreply;

    size_t swallow; /* CONN_SWALLOW: bytes still to discard */
    /* memcached answers a refused value only once it has been read: the
     * reply is queued by this callback when the swallow ends. */
    enum proto_action (*after_swallow)(struct conn *c);
    const char *deferred_line; /* text reply for after_swallow, with CRLF */
    uint16_t bin_status;       /* binary status for after_swallow */

    /* CONN_NREAD of an ms: its reply is worded by proto_meta */
    bool nread_meta;
    struct proto_meta_set *meta_set; /* allocated on the first ms */

    /* CONN_STREAM: the producer and its state (owned by the connection
     * until stream_free is called) */
    conn_stream_fn stream_fill;
    conn_stream_free_fn stream_free;
    void *stream_arg;
    bool stream_discard_input;  /* watch: input is ignored, not kept */
    struct event *stream_timer; /* wakes an idle producer */

    enum conn_proto proto;
    uint8_t bin_opcode; /* binary request whose value is being read */
    uint32_t bin_opaque;

    bool eof;               /* the client shut down its sending side */
    bool close_after_write; /* quit, shutdown or a fatal error: close once replies are out */
    bool quitting;          /* close_after_write for quit: `watch` says reason=normal */
    bool paused;            /* reading stopped: too much unsent output */

    /* Replies of commands that complete later (conn_defer), in request
     * order: slots[0..] wait behind c->out; a done slot at the tail takes
     * the replies of commands answered at once meanwhile. */
    struct conn_slot *slots, *slots_tail;
    struct conn_slot *completing; /* conn_slot_enter .. conn_slot_done */
    struct conn_slot *spare;      /* freed slots kept for reuse */
    unsigned nspare;
    size_t slot_bytes;       /* reply bytes held in done slots other than the tail */
    unsigned slots_pending;  /* slots whose command has not completed */
    bool in_handler;         /* guards against freeing inside processing */
    bool reply_waiting;      /* replies held for the executor (before_reply) */
    struct conn *reply_next; /* ... in the worker's reply_waiters */
    bool dead;               /* close requested while in_handler */
};

/* Creates a connection for an accepted socket on worker w, running xo
 * (NULL: the front end's executor). Takes the fd on success. */
enum st_status conn_create(struct worker *w, int fd, const struct sockaddr_storage *peer,
                           socklen_t peerlen, const struct fe_exec_ops *xo);

/* Closes and frees now (unsent replies are dropped). */
void conn_close(struct conn *c);

/* Shutdown: stop taking commands, close once the queued replies are
 * written. May free c. */
void conn_drain(struct conn *c);
/* The replies before_reply held may go (ok), or must not: the connection
 * is closed. Takes c off the worker's reply_waiters (the caller unlinked
 * it). */
void conn_release_replies(struct conn *c, bool ok);

struct conn *conn_next(const struct conn *c);

/* Input buffer pool of worker w (worker thread, or main before it starts):
 * setup sizes it from -o read_buf_mem_limit (0: no pool, a buffer per
 * connection); teardown frees the idle buffers. */
void conn_rbuf_setup(struct worker *w, size_t limit, unsigned threads);
void conn_rbuf_teardown(struct worker *w);

/*
 * memcached's idle_timeout check (worker thread of c): closes c and returns
 * true if it waits for a command (no value being read, no reply waiting
 * for the socket) and its last command is more than `timeout` seconds
 * before `now`. May free c.
 */
bool conn_close_if_idle(struct conn *c, rel_time_t now, unsigned timeout);

/* The state as memcached names it in `stats conns` ("conn_mwrite" while
 * replies wait for the socket). Any thread. */
const char *conn_state_name(const struct conn *c);

/* For protocol modules: start reading the value of item `it` (takes the
 * reference), then `ntail` terminator bytes (0 or 2) into c->tail, which
 * the nread_done callback checks: items do not store the terminator. */
void conn_begin_nread(struct conn *c, void *it, unsigned ntail, enum fe_store_mode mode,
                      uint64_t cas_in, bool noreply);
/* True if the terminator read after a text value is "\r\n". */
bool conn_tail_is_crlf(const struct conn *c);
/* For protocol modules: drop n bytes of buffered input (views into the
 * buffer stay valid until the next read). */
void conn_consume(struct conn *c, size_t n);

/*
 * For operator commands whose reply is long or endless (lru_crawler
 * metadump, watch): from now on, whenever less than a few tens of KB of
 * output are queued, fill(c, arg) is called to queue more, instead of
 * parsing commands. CONN_STREAM_IDLE re-calls it after a short timer;
 * CONN_STREAM_DONE returns to command parsing (input that arrived in the
 * meantime is kept unless discard_input). free(arg) runs exactly once, when
 * the stream ends or the connection closes. Call from a command handler;
 * the first fill happens once the handler returns.
 */
enum st_status conn_begin_stream(struct conn *c, conn_stream_fn fill, conn_stream_free_fn free,
                                 void *arg, bool discard_input);

/*
 * Where a protocol module queues the reply of the command it handles: the
 * connection's queue, or, while an earlier command is still to complete,
 * the slot behind it (replies leave in request order), or, inside
 * conn_slot_enter .. conn_slot_done, the completing slot's queue.
 */
struct outq *conn_out(struct conn *c);

/*
 * Asynchronous completion. A command that cannot answer at once takes a
 * slot: its reply keeps its place among the connection's replies, and
 * the connection runs no further command until every slot is done (so a
 * client sees memcached's order of effects); one command may take several
 * slots (a multiget over several owners). Returns NULL when out of memory
 * (the command then answers at once, e.g. with SERVER_ERROR).
 * Worker thread of c; the completion must come on the same thread, later
 * (not from within the command's handler).
 */
struct conn_slot *conn_defer(struct conn *c);
/* Starts completing s: returns its connection, whose conn_out() is now the
 * slot's queue, or NULL if the connection has closed meanwhile (then just
 * call conn_slot_done). */
struct conn *conn_slot_enter(struct conn_slot *s);
/* The slot's reply is complete; it leaves once every earlier reply has.
 * Frees s. May run the connection's next commands, and may free it. */
void conn_slot_done(struct conn_slot *s);
/* Inside conn_slot_enter .. conn_slot_done: the completing slot's reply is
 * the last thing the connection sends (what was queued behind it, e.g. a
 * multiget's END, is dropped) and then it closes: a reply that failed
 * half-way cannot be framed for the client any more. */
void conn_end_output(struct conn *c);

/* For protocol modules: discard the next nbytes of input, then call
 * `then` (may be NULL) to queue the deferred reply. */
void conn_begin_swallow(struct conn *c, size_t nbytes, enum proto_action (*then)(struct conn *c));
