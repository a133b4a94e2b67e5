/*
 * env_fault.c - a fault-injecting env for tests (storage/env.h).
 *
 * Wraps a real env and remembers, per file, how much was synced and, per
 * directory, which entries changed since its last sync_dir. env_fault_crash
 * then turns the directory into what a power loss could leave: unsynced
 * bytes dropped, unsynced creations/renames/unlinks undone. It can also fail
 * the Nth append or sync with a chosen errno. Thread-safe (one mutex).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "storage/env.h"

/* One path the env has seen written, with its durable length. */
struct fault_node {
    struct fault_node *next;
    char *path;
    uint64_t synced_len;
};

enum fault_undo_kind { UNDO_CREATE, UNDO_RENAME, UNDO_UNLINK };

/* A directory change not yet made durable by sync_dir. */
struct fault_undo {
    struct fault_undo *next; /* newer first */
    enum fault_undo_kind kind;
    char *path;  /* created / renamed-to / unlinked path */
    char *from;  /* rename source */
    void *saved; /* durable bytes of the overwritten or unlinked file */
    size_t saved_len;
    int had_saved;
};

struct fault_env {
    struct lsm_env vt; /* first: the env pointer is the fault_env pointer */
    struct lsm_env *base;
    pthread_mutex_t mu;
    struct fault_node *nodes;
    struct fault_undo *undo;
    uint64_t count[ENV_FAULT_OPS];
    uint64_t fail_left[ENV_FAULT_OPS]; /* 0 = disarmed */
    int fail_err[ENV_FAULT_OPS];
    int fail_sticky[ENV_FAULT_OPS];
    int failing[ENV_FAULT_OPS]; /* sticky failure in progress */
};

struct env_file {
    struct env_file *inner;
    struct fault_node *node; /* NULL for read-only files */
};

static char *fault_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mem_alloc(MEM_STORAGE, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static void fault_strfree(char *s)
{
    if (s != NULL)
        mem_free(MEM_STORAGE, s, strlen(s) + 1);
}

static struct fault_node *node_find_locked(struct fault_env *fe, const char *path)
{
    for (struct fault_node *n = fe->nodes; n != NULL; n = n->next)
        if (strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

static struct fault_node *node_get_locked(struct fault_env *fe, const char *path)
{
    struct fault_node *n = node_find_locked(fe, path);
    if (n != NULL)
        return n;
    n = mem_calloc(MEM_STORAGE, 1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->path = fault_strdup(path);
    if (n->path == NULL) {
        mem_free(MEM_STORAGE, n, sizeof(*n));
        return NULL;
    }
    n->next = fe->nodes;
    fe->nodes = n;
    return n;
}

static void node_drop_locked(struct fault_env *fe, const char *path)
{
    for (struct fault_node **p = &fe->nodes; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->path, path) == 0) {
            struct fault_node *n = *p;
            *p = n->next;
            fault_strfree(n->path);
            mem_free(MEM_STORAGE, n, sizeof(*n));
            return;
        }
    }
}

static void undo_free(struct fault_undo *u)
{
    fault_strfree(u->path);
    fault_strfree(u->from);
    if (u->saved != NULL)
        mem_free(MEM_STORAGE, u->saved, u->saved_len);
    mem_free(MEM_STORAGE, u, sizeof(*u));
}

/* Reads the durable part of `path` (up to its synced length if tracked). */
static int save_file_locked(struct fault_env *fe, const char *path, struct fault_undo *u)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    off_t end = lseek(fd, 0, SEEK_END);
    size_t len = end > 0 ? (size_t)end : 0;
    struct fault_node *n = node_find_locked(fe, path);
    if (n != NULL && n->synced_len < len)
        len = (size_t)n->synced_len;
    u->saved = mem_alloc(MEM_STORAGE, len ? len : 1);
    u->saved_len = len ? len : 1;
    if (u->saved != NULL && len > 0 && pread(fd, u->saved, len, 0) != (ssize_t)len)
        len = 0;
    close(fd);
    u->had_saved = 1;
    /* saved_len is the allocation size; remember the content length in
     * the first use: content = saved[0..len). */
    if (u->saved != NULL && len == 0) {
        mem_free(MEM_STORAGE, u->saved, u->saved_len);
        u->saved = NULL;
        u->saved_len = 0;
    } else {
        u->saved_len = len;
    }
    return 1;
}

static void undo_push_locked(struct fault_env *fe, struct fault_undo *u)
{
    u->next = fe->undo;
    fe->undo = u;
}

/* Returns nonzero (and sets errno) when this call of kind op must fail. */
static int fault_should_fail_locked(struct fault_env *fe, enum env_fault_op op)
{
    fe->count[op]++;
    if (fe->failing[op]) {
        errno = fe->fail_err[op];
        return 1;
    }
    if (fe->fail_left[op] == 0)
        return 0;
    if (--fe->fail_left[op] > 0)
        return 0;
    if (fe->fail_sticky[op])
        fe->failing[op] = 1;
    errno = fe->fail_err[op];
    return 1;
}

static enum st_status fault_open(struct lsm_env *env, const char *path, enum env_open_mode mode,
                                 struct env_file **out)
{
    struct fault_env *fe = (struct fault_env *)env;
    struct env_file *f = mem_calloc(MEM_STORAGE, 1, sizeof(*f));
    if (f == NULL)
        return ST_NOMEM;
    int existed = access(path, F_OK) == 0;
    enum st_status st = fe->base->open(fe->base, path, mode, &f->inner);
    if (st != ST_OK) {
        int err = errno;
        mem_free(MEM_STORAGE, f, sizeof(*f));
        errno = err;
        return st;
    }
    if (mode != ENV_OPEN_READ) {
        pthread_mutex_lock(&fe->mu);
        struct fault_node *n = node_find_locked(fe, path);
        if (n == NULL) {
            n = node_get_locked(fe, path);
            if (n != NULL && mode == ENV_OPEN_APPEND) {
                uint64_t sz = 0;
                fe->base->size(fe->base, f->inner, &sz);
                n->synced_len = sz; /* untracked content counts as durable */
            }
        }
        if (n != NULL && mode == ENV_OPEN_CREATE)
            n->synced_len = 0;
        if (n != NULL && !existed) {
            struct fault_undo *u = mem_calloc(MEM_STORAGE, 1, sizeof(*u));
            if (u != NULL) {
                u->kind = UNDO_CREATE;
                u->path = fault_strdup(path);
                undo_push_locked(fe, u);
            }
        }
        f->node = n;
        pthread_mutex_unlock(&fe->mu);
    }
    *out = f;
    return ST_OK;
}

static void fault_close(struct lsm_env *env, struct env_file *f)
{
    struct fault_env *fe = (struct fault_env *)env;
    if (f == NULL)
        return;
    fe->base->close(fe->base, f->inner);
    mem_free(MEM_STORAGE, f, sizeof(*f));
}

static enum st_status fault_pread(struct lsm_env *env, struct env_file *f, void *buf, size_t n,
                                  uint64_t off, size_t *got)
{
    struct fault_env *fe = (struct fault_env *)env;
    return fe->base->pread(fe->base, f->inner, buf, n, off, got);
}

static enum st_status fault_append(struct lsm_env *env, struct env_file *f, const void *buf,
                                   size_t n)
{
    struct fault_env *fe = (struct fault_env *)env;
    pthread_mutex_lock(&fe->mu);
    int fail = fault_should_fail_locked(fe, ENV_FAULT_WRITE);
    int err = errno;
    pthread_mutex_unlock(&fe->mu);
    if (fail) {
        errno = err;
        return ST_IO;
    }
    return fe->base->append(fe->base, f->inner, buf, n);
}

static enum st_status fault_sync(struct lsm_env *env, struct env_file *f)
{
    struct fault_env *fe = (struct fault_env *)env;
    pthread_mutex_lock(&fe->mu);
    int fail = fault_should_fail_locked(fe, ENV_FAULT_SYNC);
    int err = errno;
    pthread_mutex_unlock(&fe->mu);
    if (fail) {
        errno = err;
        return ST_IO;
    }
    /* The size before the sync: bytes appended while it runs (the WAL
     * appends the next commit group meanwhile) are not covered by it. */
    uint64_t sz = 0;
    enum st_status st = fe->base->size(fe->base, f->inner, &sz);
    if (st == ST_OK)
        st = fe->base->sync(fe->base, f->inner);
    if (st == ST_OK && f->node != NULL) {
        pthread_mutex_lock(&fe->mu);
        if (sz > f->node->synced_len)
            f->node->synced_len = sz;
        pthread_mutex_unlock(&fe->mu);
    }
    return st;
}

static enum st_status fault_size(struct lsm_env *env, struct env_file *f, uint64_t *out)
{
    struct fault_env *fe = (struct fault_env *)env;
    return fe->base->size(fe->base, f->inner, out);
}

static enum st_status fault_rename(struct lsm_env *env, const char *from, const char *to)
{
    struct fault_env *fe = (struct fault_env *)env;
    pthread_mutex_lock(&fe->mu);
    struct fault_undo *u = mem_calloc(MEM_STORAGE, 1, sizeof(*u));
    if (u == NULL) {
        pthread_mutex_unlock(&fe->mu);
        return ST_NOMEM;
    }
    u->kind = UNDO_RENAME;
    u->path = fault_strdup(to);
    u->from = fault_strdup(from);
    save_file_locked(fe, to, u); /* the file the rename replaces, if any */
    enum st_status st = fe->base->rename(fe->base, from, to);
    if (st != ST_OK) {
        int err = errno;
        undo_free(u);
        pthread_mutex_unlock(&fe->mu);
        errno = err;
        return st;
    }
    undo_push_locked(fe, u);
    struct fault_node *n = node_find_locked(fe, from);
    node_drop_locked(fe, to);
    if (n != NULL) {
        char *p = fault_strdup(to);
        if (p != NULL) {
            fault_strfree(n->path);
            n->path = p;
        }
    }
    pthread_mutex_unlock(&fe->mu);
    return ST_OK;
}

static enum st_status fault_unlink(struct lsm_env *env, const char *path)
{
    struct fault_env *fe = (struct fault_env *)env;
    pthread_mutex_lock(&fe->mu);
    struct fault_undo *u = mem_calloc(MEM_STORAGE, 1, sizeof(*u));
    if (u == NULL) {
        pthread_mutex_unlock(&fe->mu);
        return ST_NOMEM;
    }
    u->kind = UNDO_UNLINK;
    u->path = fault_strdup(path);
    save_file_locked(fe, path, u);
    enum st_status st = fe->base->unlink(fe->base, path);
    if (st != ST_OK) {
        int err = errno;
        undo_free(u);
        pthread_mutex_unlock(&fe->mu);
        errno = err;
        return st;
    }
    undo_push_locked(fe, u);
    node_drop_locked(fe, path);
    pthread_mutex_unlock(&fe->mu);
    return ST_OK;
}

static enum st_status fault_mkdir(struct lsm_env *env, const char *path)
{
    struct fault_env *fe = (struct fault_env *)env;
    return fe->base->mkdir(fe->base, path);
}

static enum st_status fault_listdir(struct lsm_env *env, const char *path, env_listdir_cb cb,
                                    void *arg)
{
    struct fault_env *fe = (struct fault_env *)env;
    return fe->base->listdir(fe->base, path, cb, arg);
}

/* Whether `path` names an entry directly inside directory `dir`. */
static int in_dir(const char *path, const char *dir)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    if (slash == NULL)
        return dlen == 1 && dir[0] == '.';
    return (size_t)(slash - path) == dlen && memcmp(path, dir, dlen) == 0;
}

static enum st_status fault_sync_dir(struct lsm_env *env, const char *path)
{
    struct fault_env *fe = (struct fault_env *)env;
    pthread_mutex_lock(&fe->mu);
    int fail = fault_should_fail_locked(fe, ENV_FAULT_SYNC);
    int err = errno;
    if (fail) {
        pthread_mutex_unlock(&fe->mu);
        errno = err;
        return ST_IO;
    }
    enum st_status st = fe->base->sync_dir(fe->base, path);
    if (st == ST_OK) {
        for (struct fault_undo **p = &fe->undo; *p != NULL;) {
            struct fault_undo *u = *p;
            if (in_dir(u->path, path)) {
                *p = u->next;
                undo_free(u);
            } else {
                p = &u->next;
            }
        }
    }
    pthread_mutex_unlock(&fe->mu);
    return st;
}

static enum st_status fault_lock(struct lsm_env *env, const char *path, struct env_lock **out)
{
    struct fault_env *fe = (struct fault_env *)env;
    return fe->base->lock(fe->base, path, out);
}

static void fault_unlock(struct lsm_env *env, struct env_lock *l)
{
    struct fault_env *fe = (struct fault_env *)env;
    fe->base->unlock(fe->base, l);
}

static enum st_status fault_exists(struct lsm_env *env, const char *path, int *exists)
{
    struct fault_env *fe = (struct fault_env *)env;
    return fe->base->exists(fe->base, path, exists);
}

enum st_status env_fault_create(struct lsm_env *base, struct lsm_env **out)
{
    struct fault_env *fe = mem_calloc(MEM_STORAGE, 1, sizeof(*fe));
    if (fe == NULL)
        return ST_NOMEM;
    fe->vt = (struct lsm_env){
        .open = fault_open,
        .close = fault_close,
        .pread = fault_pread,
        .append = fault_append,
        .sync = fault_sync,
        .size = fault_size,
        .rename = fault_rename,
        .unlink = fault_unlink,
        .mkdir = fault_mkdir,
        .listdir = fault_listdir,
        .sync_dir = fault_sync_dir,
        .lock = fault_lock,
        .unlock = fault_unlock,
        .exists = fault_exists,
    };
    fe->base = base;
    pthread_mutex_init(&fe->mu, NULL);
    *out = &fe->vt;
    return ST_OK;
}

static void fault_clear_locked(struct fault_env *fe)
{
    while (fe->nodes != NULL) {
        struct fault_node *n = fe->nodes;
        fe->nodes = n->next;
        fault_strfree(n->path);
        mem_free(MEM_STORAGE, n, sizeof(*n));
    }
    while (fe->undo != NULL) {
        struct fault_undo *u = fe->undo;
        fe->undo = u->next;
        undo_free(u);
    }
}

void env_fault_destroy(struct lsm_env **env)
{
    if (env == NULL || *env == NULL)
        return;
    struct fault_env *fe = (struct fault_env *)*env;
    fault_clear_locked(fe);
    pthread_mutex_destroy(&fe->mu);
    mem_free(MEM_STORAGE, fe, sizeof(*fe));
    *env = NULL;
}

void env_fault_fail(struct lsm_env *env, enum env_fault_op op, uint64_t nth, int err, int sticky)
{
    struct fault_env *fe = (struct fault_env *)env;
    pthread_mutex_lock(&fe->mu);
    fe->fail_left[op] = nth;
    fe->fail_err[op] = err;
    fe->fail_sticky[op] = sticky;
    fe->failing[op] = 0;
    pthread_mutex_unlock(&fe->mu);
}

uint64_t env_fault_count(struct lsm_env *env, enum env_fault_op op)
{
    struct fault_env *fe = (struct fault_env *)env;
    pthread_mutex_lock(&fe->mu);
    uint64_t c = fe->count[op];
    pthread_mutex_unlock(&fe->mu);
    return c;
}

uint64_t env_fault_unsynced_bytes(struct lsm_env *env)
{
    struct fault_env *fe = (struct fault_env *)env;
    uint64_t total = 0;
    pthread_mutex_lock(&fe->mu);
    for (struct fault_node *n = fe->nodes; n != NULL; n = n->next) {
        struct stat sb;
        if (stat(n->path, &sb) == 0 && (uint64_t)sb.st_size > n->synced_len)
            total += (uint64_t)sb.st_size - n->synced_len;
    }
    pthread_mutex_unlock(&fe->mu);
    return total;
}

static int write_whole(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int rc = (len == 0 || write(fd, buf, len) == (ssize_t)len) ? 0 : -1;
    close(fd);
    return rc;
}

enum st_status env_fault_crash(struct lsm_env *env)
{
    struct fault_env *fe = (struct fault_env *)env;
    enum st_status st = ST_OK;
    pthread_mutex_lock(&fe->mu);
    /* Unsynced bytes go first, while paths still name the live files. */
    for (struct fault_node *n = fe->nodes; n != NULL; n = n->next)
        if (access(n->path, F_OK) == 0 && truncate(n->path, (off_t)n->synced_len) != 0)
            st = ST_IO;
    /* Then directory changes, newest first. */
    for (struct fault_undo *u = fe->undo; u != NULL; u = u->next) {
        switch (u->kind) {
        case UNDO_CREATE: unlink(u->path); break;
        case UNDO_RENAME:
            if (rename(u->path, u->from) != 0)
                st = ST_IO;
            if (u->had_saved && write_whole(u->path, u->saved, u->saved_len) != 0)
                st = ST_IO;
            break;
        case UNDO_UNLINK:
            if (u->had_saved && write_whole(u->path, u->saved, u->saved_len) != 0)
                st = ST_IO;
            break;
        }
    }
    fault_clear_locked(fe);
    for (int i = 0; i < ENV_FAULT_OPS; i++) {
        fe->fail_left[i] = 0;
        fe->failing[i] = 0;
    }
    pthread_mutex_unlock(&fe->mu);
    return st;
}
