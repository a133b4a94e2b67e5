/*
 * env.h - the table of file-I/O functions every storage file goes through.
 *
 * env_posix.c implements it on POSIX calls; env_fault.c wraps another env
 * to inject faults for tests (drop unsynced data, forget unsynced directory
 * entries, fail the Nth write or sync with EIO/ENOSPC). Any thread; a file
 * handle is used by one thread at a time except pread, which is concurrent.
 * Every function returns ST_OK or ST_IO with errno set where the call failed.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/include/lsm.h"

struct env_file; /* an open file, owned by the caller until close */
struct env_lock; /* a held LOCK file */

enum env_open_mode {
    ENV_OPEN_READ = 0, /* existing file, read only */
    ENV_OPEN_CREATE,   /* new file (truncated if present), append only */
    ENV_OPEN_APPEND,   /* existing file, appended at its end */
};

/* Called by listdir for each entry (not "." or ".."); nonzero stops. */
typedef int (*env_listdir_cb)(void *arg, const char *name);

struct lsm_env {
    enum st_status (*open)(struct lsm_env *env, const char *path, enum env_open_mode mode,
                           struct env_file **out);
    /* Closes and frees; accepts NULL. Does not sync. */
    void (*close)(struct lsm_env *env, struct env_file *f);
    /* Reads up to n bytes at off; *got < n only at end of file. */
    enum st_status (*pread)(struct lsm_env *env, struct env_file *f, void *buf, size_t n,
                            uint64_t off, size_t *got);
    /* Appends all n bytes at the end (retrying short writes). */
    enum st_status (*append)(struct lsm_env *env, struct env_file *f, const void *buf, size_t n);
    /* fdatasync: appended data reaches the disk. */
    enum st_status (*sync)(struct lsm_env *env, struct env_file *f);
    enum st_status (*size)(struct lsm_env *env, struct env_file *f, uint64_t *out);
    /* Atomic rename(2); durable only after sync_dir of the directory. */
    enum st_status (*rename)(struct lsm_env *env, const char *from, const char *to);
    enum st_status (*unlink)(struct lsm_env *env, const char *path);
    /* Creates a directory; ST_OK if it already exists. */
    enum st_status (*mkdir)(struct lsm_env *env, const char *path);
    enum st_status (*listdir)(struct lsm_env *env, const char *path, env_listdir_cb cb, void *arg);
    /* fsync of a directory: its entries (creates, renames) become durable. */
    enum st_status (*sync_dir)(struct lsm_env *env, const char *path);
    /* Exclusive advisory lock on `path` (created if missing); ST_IO with
     * errno EWOULDBLOCK when another process holds it. */
    enum st_status (*lock)(struct lsm_env *env, const char *path, struct env_lock **out);
    void (*unlock)(struct lsm_env *env, struct env_lock *l);
    /* Whether `path` exists (ST_OK and *exists). */
    enum st_status (*exists)(struct lsm_env *env, const char *path, int *exists);
};

/* The process-wide POSIX env (stateless, never freed). */
struct lsm_env *env_posix(void);

/* ---- fault-injecting env (env_fault.c), for tests ---- */

enum env_fault_op {
    ENV_FAULT_WRITE = 0, /* append */
    ENV_FAULT_SYNC,      /* sync and sync_dir */
    ENV_FAULT_OPS
};

/* Wraps `base` (borrowed). ST_NOMEM. */
enum st_status env_fault_create(struct lsm_env *base, struct lsm_env **out);
/* REQUIRES: no file of it is open. NULLs *env; accepts NULL. */
void env_fault_destroy(struct lsm_env **env);
/*
 * From now on, the `nth` call (1 = the next) of kind `op` fails with `err`
 * (EIO, ENOSPC...) without doing anything; if `sticky`, every later call of
 * that kind fails too. nth = 0 disarms.
 */
void env_fault_fail(struct lsm_env *env, enum env_fault_op op, uint64_t nth, int err, int sticky);
/*
 * Simulates a power loss: every file is cut back to its last synced length,
 * and creations, renames and unlinks not followed by a sync_dir of their
 * directory are undone (in reverse order). REQUIRES: no file is open (close
 * the db, or call it after the test dropped its handles).
 */
enum st_status env_fault_crash(struct lsm_env *env);
/* Calls of kind `op` seen so far (failed or not). */
uint64_t env_fault_count(struct lsm_env *env, enum env_fault_op op);
/* Bytes appended to its files and not synced yet: what env_fault_crash
 * would cut off now (directory entries aside). Lets a test wait for a
 * background sync instead of sleeping. */
uint64_t env_fault_unsynced_bytes(struct lsm_env *env);
