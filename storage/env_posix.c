/*
 * env_posix.c - the POSIX implementation of the env table (storage/env.h).
 * Used by every engine thread; stateless apart from per-file descriptors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "storage/env.h"

struct env_file {
    int fd;
};

struct env_lock {
    int fd;
};

static enum st_status posix_open(struct lsm_env *env, const char *path, enum env_open_mode mode,
                                 struct env_file **out)
{
    (void)env;
    int flags = O_CLOEXEC;
    switch (mode) {
    case ENV_OPEN_READ: flags |= O_RDONLY; break;
    case ENV_OPEN_CREATE: flags |= O_WRONLY | O_CREAT | O_TRUNC; break;
    case ENV_OPEN_APPEND: flags |= O_WRONLY | O_APPEND; break;
    }
    int fd;
    do {
        fd = open(path, flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return ST_IO;
    struct env_file *f = mem_alloc(MEM_STORAGE, sizeof(*f));
    if (f == NULL) {
        close(fd);
        return ST_NOMEM;
    }
    f->fd = fd;
    *out = f;
    return ST_OK;
}

static void posix_close(struct lsm_env *env, struct env_file *f)
{
    (void)env;
    if (f == NULL)
        return;
    close(f->fd);
    mem_free(MEM_STORAGE, f, sizeof(*f));
}

static enum st_status posix_pread(struct lsm_env *env, struct env_file *f, void *buf, size_t n,
                                  uint64_t off, size_t *got)
{
    (void)env;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ST_IO;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return ST_OK;
}

static enum st_status posix_append(struct lsm_env *env, struct env_file *f, const void *buf,
                                   size_t n)
{
    (void)env;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(f->fd, (const char *)buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ST_IO;
        }
        done += (size_t)w;
    }
    return ST_OK;
}

static enum st_status posix_sync(struct lsm_env *env, struct env_file *f)
{
    (void)env;
    return fdatasync(f->fd) == 0 ? ST_OK : ST_IO;
}

static enum st_status posix_size(struct lsm_env *env, struct env_file *f, uint64_t *out)
{
    (void)env;
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return ST_IO;
    *out = (uint64_t)st.st_size;
    return ST_OK;
}

static enum st_status posix_rename(struct lsm_env *env, const char *from, const char *to)
{
    (void)env;
    return rename(from, to) == 0 ? ST_OK : ST_IO;
}

static enum st_status posix_unlink(struct lsm_env *env, const char *path)
{
    (void)env;
    return unlink(path) == 0 ? ST_OK : ST_IO;
}

static enum st_status posix_mkdir(struct lsm_env *env, const char *path)
{
    (void)env;
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return ST_OK;
    return ST_IO;
}

static enum st_status posix_listdir(struct lsm_env *env, const char *path, env_listdir_cb cb,
                                    void *arg)
{
    (void)env;
    DIR *d = opendir(path);
    if (d == NULL)
        return ST_IO;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (cb(arg, e->d_name) != 0)
            break;
        errno = 0;
    }
    int err = errno;
    closedir(d);
    errno = err;
    return err == 0 ? ST_OK : ST_IO;
}

static enum st_status posix_sync_dir(struct lsm_env *env, const char *path)
{
    (void)env;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ST_IO;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc == 0 ? ST_OK : ST_IO;
}

static enum st_status posix_lock(struct lsm_env *env, const char *path, struct env_lock **out)
{
    (void)env;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return ST_IO;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return ST_IO;
    }
    struct env_lock *l = mem_alloc(MEM_STORAGE, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return ST_NOMEM;
    }
    l->fd = fd;
    *out = l;
    return ST_OK;
}

static void posix_unlock(struct lsm_env *env, struct env_lock *l)
{
    (void)env;
    if (l == NULL)
        return;
    close(l->fd); /* releases the flock */
    mem_free(MEM_STORAGE, l, sizeof(*l));
}

static enum st_status posix_exists(struct lsm_env *env, const char *path, int *exists)
{
    (void)env;
    struct stat st;
    if (stat(path, &st) == 0) {
        *exists = 1;
        return ST_OK;
    }
    if (errno == ENOENT) {
        *exists = 0;
        return ST_OK;
    }
    return ST_IO;
}

static struct lsm_env posix_env = {
    .open = posix_open,
    .close = posix_close,
    .pread = posix_pread,
    .append = posix_append,
    .sync = posix_sync,
    .size = posix_size,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .mkdir = posix_mkdir,
    .listdir = posix_listdir,
    .sync_dir = posix_sync_dir,
    .lock = posix_lock,
    .unlock = posix_unlock,
    .exists = posix_exists,
};

struct lsm_env *env_posix(void)
{
    return &posix_env;
}
