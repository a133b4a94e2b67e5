/*
 * listener.c - listening socket and acceptor (see listener.h). Main thread.
 *
 * Over the connection limit a new client gets memcached's
 * "ERROR Too many open connections" and is closed; accepting itself never
 * stops for that. If the process runs out of file descriptors, accepting
 * pauses briefly (counted in listen_disabled_num) instead of spinning.
 */
#include "frontend/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "frontend/fe.h"
#include "frontend/worker.h"

#define ACCEPT_BACKOFF_MS 10

struct listener {
    struct fe *p;
    struct event_base *base;
    /* Atomic: `stats conns` on a worker reads it while main may stop us. */
    _Atomic int fd;
    struct event *ev;
    struct event *backoff;
    unsigned next_worker;
    const struct fe_exec_ops *xo; /* its connections' executor; NULL: the front end's */
    char addr[80];
};

int listener_fd(const struct listener *l)
{
    return atomic_load_explicit(&l->fd, memory_order_relaxed);
}

const char *listener_addr(const struct listener *l)
{
    return l->addr;
}

static void reject(struct listener *l, int fd)
{
    static const char msg[] = "ERROR Too many open connections\r\n";
    ssize_t w = write(fd, msg, sizeof(msg) - 1);
    (void)w; /* best effort: the client is being turned away anyway */
    close(fd);
    atomic_fetch_add(&l->p->rejected_conns, 1);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    atomic_store(&l->p->accepting, true);
    event_add(l->ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct listener *l = arg;
    struct fe *p = l->p;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                log_warn("accept: %s; pausing accepts", strerror(errno));
                atomic_fetch_add(&p->listen_disabled_num, 1);
                atomic_store(&p->accepting, false);
                event_del(l->ev);
                struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
                evtimer_add(l->backoff, &tv);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        if (atomic_load(&p->curr_conns) >= p->settings.max_conns) {
            reject(l, fd);
            continue;
        }
        atomic_fetch_add(&p->curr_conns, 1);
        struct worker *w = &p->workers[l->next_worker++ % p->nworkers];
        if (worker_dispatch(w, fd, &peer, len, l->xo) != ST_OK) {
            close(fd);
            atomic_fetch_sub(&p->curr_conns, 1);
        }
    }
}

enum st_status listener_create(struct listener **out, struct fe *p, struct event_base *base)
{
    return listener_create_on(out, p, base, p->settings.listen_addr, p->settings.port, NULL);
}

enum st_status listener_create_on(struct listener **out, struct fe *p, struct event_base *base,
                                  const char *listen_addr, unsigned listen_port,
                                  const struct fe_exec_ops *xo)
{
    struct listener *l = mem_calloc(MEM_OTHER, 1, sizeof(*l));
    if (l == NULL)
        return ST_NOMEM;
    l->p = p;
    l->base = base;
    l->fd = -1;
    l->xo = xo;
    *out = l;

    char port[16];
    snprintf(port, sizeof(port), "%u", listen_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(listen_addr, port, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve listen address %s: %s", listen_addr, gai_strerror(rc));
        return ST_INVAL;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, (int)p->settings.backlog) != 0) {
        log_error("cannot listen on %s:%u: %s", listen_addr, listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return ST_IO;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, host, sizeof(host));
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, host, sizeof(host));
    snprintf(l->addr, sizeof(l->addr), res->ai_family == AF_INET ? "tcp:%s:%u" : "tcp6:[%s]:%u",
             host, listen_port);
    freeaddrinfo(res);
    l->fd = fd;
    l->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, l);
    l->backoff = evtimer_new(base, on_backoff, l);
    if (l->ev == NULL || l->backoff == NULL)
        return ST_NOMEM;
    return ST_OK;
}

enum st_status listener_start(struct listener *l)
{
    atomic_store(&l->p->accepting, true);
    return event_add(l->ev, NULL) == 0 ? ST_OK : ST_NOMEM;
}

void listener_stop(struct listener *l)
{
    if (l == NULL)
        return;
    if (l->ev != NULL)
        event_free(l->ev);
    if (l->backoff != NULL)
        event_free(l->backoff);
    l->ev = NULL;
    l->backoff = NULL;
    int fd = atomic_exchange(&l->fd, -1);
    if (fd >= 0)
        close(fd);
    atomic_store(&l->p->accepting, false);
}

void listener_destroy(struct listener **lp)
{
    struct listener *l = lp != NULL ? *lp : NULL;
    if (l == NULL)
        return;
    listener_stop(l);
    mem_free(MEM_OTHER, l, sizeof(*l));
    *lp = NULL;
}
