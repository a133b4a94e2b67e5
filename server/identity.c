/*
 * identity.c - the node identity file <data>/NODE (server/identity.h,
 * docs/formats/identity.md): load or create at startup with a generation
 * bump, then atomic rewrites for the HLC bound (background tick) and a new
 * short id (gossip thread). All file I/O goes through the storage env, so
 * tests can fail writes and simulate power losses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <xxhash.h>

#include "common/log.h"
#include "common/mem.h"
#include "server/identity.h"
#include "storage/coding.h"
#include "storage/env.h"

#define HEADER_LEN 64 /* bytes before the tokens */
#define CHECKSUM_LEN 8
#define MIN_FILE_LEN (HEADER_LEN + 8 + 1 + CHECKSUM_LEN) /* one token, 1-byte name */
#define MAX_FILE_LEN (HEADER_LEN + 8 * RING_MAX_VNODES + IDENTITY_CLUSTER_MAX + CHECKSUM_LEN)

struct identity {
    struct lsm_env *env; /* borrowed */
    char *dir, *path, *tmp_path;
    size_t dir_size, path_size, tmp_size; /* allocation sizes */
    uint8_t id[RING_ID_LEN];
    char cluster[IDENTITY_CLUSTER_MAX + 1];
    uint16_t cluster_len;
    uint32_t ntokens;
    uint64_t *tokens; /* ntokens, ascending */
    uint64_t generation;
    uint64_t created_ms;
    _Atomic uint16_t short_id;  /* written under mu */
    _Atomic uint64_t hlc_bound; /* written under mu; what NODE holds */
    pthread_mutex_t mu;         /* serialises file writes */
    uint8_t *buf;               /* encode buffer, file_len bytes; under mu */
    size_t file_len;
};

const char *identity_result_name(enum identity_result r)
{
    switch (r) {
    case IDENTITY_LOADED: return "loaded";
    case IDENTITY_CREATED: return "created";
    case IDENTITY_ERR_ARGS: return "invalid arguments";
    case IDENTITY_ERR_IO: return "i/o error";
    case IDENTITY_ERR_CORRUPT: return "corrupt";
    case IDENTITY_ERR_VERSION: return "unsupported format version";
    case IDENTITY_ERR_CLUSTER: return "cluster name mismatch";
    case IDENTITY_ERR_ORPHAN_DATA: return "data without identity";
    }
    return "unknown";
}

static size_t file_len_for(uint32_t ntokens, size_t cluster_len)
{
    return HEADER_LEN + 8 * (size_t)ntokens + cluster_len + CHECKSUM_LEN;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Fills buf from getrandom(2), retrying interrupted and short reads. */
static enum st_status fill_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            log_error("identity: getrandom: %s", strerror(errno));
            return ST_IO;
        }
        p += r;
        n -= (size_t)r;
    }
    return ST_OK;
}

static bool cluster_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > IDENTITY_CLUSTER_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x, y;
    memcpy(&x, a, sizeof(x));
    memcpy(&y, b, sizeof(y));
    return x < y ? -1 : x > y;
}

void identity_format_id(const uint8_t id[RING_ID_LEN], char out[IDENTITY_ID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < RING_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id[i] >> 4];
        out[o++] = hex[id[i] & 15];
    }
    out[o] = 0;
}

/* ---- encoding ---- */

/* Encodes the identity with the given short id and bound into id->buf.
 * REQUIRES: id->mu held, or the identity not shared yet. */
static void encode(struct identity *id, uint16_t short_id, uint64_t hlc_bound)
{
    uint8_t *p = id->buf;
    memcpy(p, IDENTITY_MAGIC, 8);
    enc_u32le(p + 8, IDENTITY_FORMAT_VERSION);
    enc_u32le(p + 12, (uint32_t)id->file_len);
    memcpy(p + 16, id->id, RING_ID_LEN);
    enc_u16le(p + 32, short_id);
    enc_u16le(p + 34, id->cluster_len);
    enc_u32le(p + 36, id->ntokens);
    enc_u64le(p + 40, id->generation);
    enc_u64le(p + 48, id->created_ms);
    enc_u64le(p + 56, hlc_bound);
    uint8_t *q = p + HEADER_LEN;
    for (uint32_t i = 0; i < id->ntokens; i++, q += 8)
        enc_u64le(q, id->tokens[i]);
    memcpy(q, id->cluster, id->cluster_len);
    q += id->cluster_len;
    enc_u64le(q, XXH3_64bits(p, (size_t)(q - p)));
}

/* Decoded fields of a file, before they become an identity. */
struct image {
    uint8_t id[RING_ID_LEN];
    uint16_t short_id;
    uint16_t cluster_len;
    uint32_t ntokens;
    uint64_t generation, created_ms, hlc_bound;
    const uint8_t *tokens; /* into the file bytes */
    const uint8_t *cluster;
};

/* Verifies and decodes a file's bytes. ST_CORRUPT with *result set to
 * IDENTITY_ERR_CORRUPT or IDENTITY_ERR_VERSION, and *why a reason. */
static enum st_status decode(const uint8_t *p, size_t n, struct image *img,
                             enum identity_result *result, const char **why)
{
    *result = IDENTITY_ERR_CORRUPT;
    if (n < 16 || memcmp(p, IDENTITY_MAGIC, 8) != 0) {
        *why = "bad magic";
        return ST_CORRUPT;
    }
    if (dec_u32le(p + 12) != n || n < 16 + CHECKSUM_LEN) {
        *why = "length field does not match the file size (truncated or extended)";
        return ST_CORRUPT;
    }
    if (XXH3_64bits(p, n - CHECKSUM_LEN) != dec_u64le(p + n - CHECKSUM_LEN)) {
        *why = "checksum mismatch";
        return ST_CORRUPT;
    }
    if (dec_u32le(p + 8) != IDENTITY_FORMAT_VERSION) {
        *result = IDENTITY_ERR_VERSION;
        *why = "unknown format version (written by a newer strata?)";
        return ST_CORRUPT;
    }
    /* From here the bytes are what a writer of version 1 wrote: a failed
     * check is a bug, not bit rot, but the answer is the same. */
    if (n < MIN_FILE_LEN || n > MAX_FILE_LEN) {
        *why = "file size out of range";
        return ST_CORRUPT;
    }
    memcpy(img->id, p + 16, RING_ID_LEN);
    img->short_id = dec_u16le(p + 32);
    img->cluster_len = dec_u16le(p + 34);
    img->ntokens = dec_u32le(p + 36);
    img->generation = dec_u64le(p + 40);
    img->created_ms = dec_u64le(p + 48);
    img->hlc_bound = dec_u64le(p + 56);
    if (img->ntokens == 0 || img->ntokens > RING_MAX_VNODES || img->cluster_len == 0 ||
        img->cluster_len > IDENTITY_CLUSTER_MAX ||
        file_len_for(img->ntokens, img->cluster_len) != n) {
        *why = "vnode count or cluster name length out of range";
        return ST_CORRUPT;
    }
    img->tokens = p + HEADER_LEN;
    img->cluster = img->tokens + 8 * (size_t)img->ntokens;
    if (img->short_id == 0) {
        *why = "short id is 0";
        return ST_CORRUPT;
    }
    if (img->generation == 0) {
        *why = "generation is 0";
        return ST_CORRUPT;
    }
    for (uint32_t i = 1; i < img->ntokens; i++) {
        if (dec_u64le(img->tokens + 8 * (size_t)i) <=
            dec_u64le(img->tokens + 8 * (size_t)(i - 1))) {
            *why = "vnode tokens not strictly ascending";
            return ST_CORRUPT;
        }
    }
    if (!cluster_name_ok((const char *)img->cluster, img->cluster_len)) {
        *why = "cluster name is not printable ASCII";
        return ST_CORRUPT;
    }
    return ST_OK;
}

/* ---- construction ---- */

static char *path_join(const char *dir, const char *name, size_t *size)
{
    *size = strlen(dir) + 1 + strlen(name) + 1;
    char *p = mem_alloc(MEM_OTHER, *size);
    if (p != NULL)
        snprintf(p, *size, "%s/%s", dir, name);
    return p;
}

void identity_destroy(struct identity **idp)
{
    if (idp == NULL || *idp == NULL)
        return;
    struct identity *id = *idp;
    mem_free(MEM_OTHER, id->dir, id->dir_size);
    mem_free(MEM_OTHER, id->path, id->path_size);
    mem_free(MEM_OTHER, id->tmp_path, id->tmp_size);
    mem_free(MEM_OTHER, id->tokens, 8 * (size_t)id->ntokens);
    mem_free(MEM_OTHER, id->buf, id->file_len);
    pthread_mutex_destroy(&id->mu);
    mem_free(MEM_OTHER, id, sizeof(*id));
    *idp = NULL;
}

/* Allocates an identity with its paths and room for ntokens tokens and the
 * encode buffer; fields other than those are zero. */
static enum st_status identity_new(struct lsm_env *env, const char *dir, uint32_t ntokens,
                                   size_t cluster_len, struct identity **out)
{
    struct identity *id = mem_calloc(MEM_OTHER, 1, sizeof(*id));
    if (id == NULL)
        return ST_NOMEM;
    pthread_mutex_init(&id->mu, NULL);
    id->env = env;
    id->ntokens = ntokens;
    id->file_len = file_len_for(ntokens, cluster_len);
    id->dir_size = strlen(dir) + 1;
    id->dir = mem_alloc(MEM_OTHER, id->dir_size);
    id->path = path_join(dir, IDENTITY_FILE, &id->path_size);
    id->tmp_path = path_join(dir, IDENTITY_TMP_FILE, &id->tmp_size);
    id->tokens = mem_calloc(MEM_OTHER, ntokens, 8);
    id->buf = mem_alloc(MEM_OTHER, id->file_len);
    if (id->dir == NULL || id->path == NULL || id->tmp_path == NULL || id->tokens == NULL ||
        id->buf == NULL) {
        identity_destroy(&id);
        return ST_NOMEM;
    }
    memcpy(id->dir, dir, id->dir_size);
    *out = id;
    return ST_OK;
}

/*
 * Writes the identity with `short_id` and `bound` to NODE.tmp, syncs it,
 * renames it over NODE and syncs the directory. On failure the temporary
 * file is removed when it can be (a later write truncates it anyway).
 * REQUIRES: id->mu held, or the identity not shared yet.
 */
static enum st_status write_file(struct identity *id, uint16_t short_id, uint64_t bound)
{
    struct lsm_env *env = id->env;
    encode(id, short_id, bound);
    struct env_file *f = NULL;
    const char *what = "create";
    enum st_status st = env->open(env, id->tmp_path, ENV_OPEN_CREATE, &f);
    if (st == ST_OK) {
        what = "write";
        st = env->append(env, f, id->buf, id->file_len);
        if (st == ST_OK) {
            what = "sync";
            st = env->sync(env, f);
        }
        int err = errno;
        env->close(env, f);
        errno = err;
        if (st == ST_OK) {
            what = "rename";
            st = env->rename(env, id->tmp_path, id->path);
        }
    }
    if (st != ST_OK) {
        int err = errno;
        log_error("identity: cannot %s %s: %s", what, id->tmp_path, strerror(err));
        env->unlink(env, id->tmp_path);
        errno = err;
        return st;
    }
    if ((st = env->sync_dir(env, id->dir)) != ST_OK)
        log_error("identity: cannot sync directory %s: %s", id->dir, strerror(errno));
    return st;
}

static enum st_status finish(struct identity_load_info *info, enum identity_result r,
                             enum st_status st)
{
    if (info != NULL)
        info->result = r;
    return st;
}

/* Parent directory of `dir` into out (PATH-sized). */
static void parent_of(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    while (n > 0 && dir[n - 1] != '/')
        n--;
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 0)
        snprintf(out, cap, ".");
    else
        snprintf(out, cap, "%.*s", (int)n, dir);
}

/* Directory scan for a missing NODE: the first entry that may be data. */
struct scan {
    char first[256];
    size_t others;
};

static int scan_entry(void *arg, const char *name)
{
    struct scan *s = arg;
    if (strcmp(name, IDENTITY_TMP_FILE) == 0 || strcmp(name, "LOCK") == 0 ||
        strcmp(name, "lost+found") == 0)
        return 0;
    if (s->others++ == 0)
        snprintf(s->first, sizeof(s->first), "%s", name);
    return 0;
}

/* Reads NODE (which exists) into a new identity; ST_CORRUPT etc. */
static enum st_status load_existing(struct lsm_env *env, const char *dir, const char *path,
                                    struct identity **out, enum identity_result *result)
{
    *result = IDENTITY_ERR_IO;
    struct env_file *f = NULL;
    enum st_status st = env->open(env, path, ENV_OPEN_READ, &f);
    if (st != ST_OK) {
        log_error("identity: cannot open %s: %s", path, strerror(errno));
        return st;
    }
    /* One byte more than the largest valid file, to see an oversized one. */
    size_t cap = MAX_FILE_LEN + 1, got = 0;
    uint8_t *bytes = mem_alloc(MEM_OTHER, cap);
    if (bytes == NULL) {
        env->close(env, f);
        return ST_NOMEM;
    }
    st = env->pread(env, f, bytes, cap, 0, &got);
    int err = errno;
    env->close(env, f);
    if (st != ST_OK) {
        log_error("identity: cannot read %s: %s", path, strerror(err));
        mem_free(MEM_OTHER, bytes, cap);
        return st;
    }
    struct image img;
    const char *why = "";
    if ((st = decode(bytes, got, &img, result, &why)) != ST_OK) {
        log_error("identity: %s is unusable (%s); refusing to start. The data in %s belongs "
                  "to the identity it held: restore the file, or empty the directory to "
                  "join as a new node",
                  path, why, dir);
        mem_free(MEM_OTHER, bytes, cap);
        return st;
    }
    struct identity *id = NULL;
    if ((st = identity_new(env, dir, img.ntokens, img.cluster_len, &id)) != ST_OK) {
        *result = IDENTITY_ERR_IO;
        mem_free(MEM_OTHER, bytes, cap);
        return st;
    }
    memcpy(id->id, img.id, RING_ID_LEN);
    memcpy(id->cluster, img.cluster, img.cluster_len);
    id->cluster[img.cluster_len] = 0;
    id->cluster_len = img.cluster_len;
    for (uint32_t i = 0; i < img.ntokens; i++)
        id->tokens[i] = dec_u64le(img.tokens + 8 * (size_t)i);
    id->generation = img.generation;
    id->created_ms = img.created_ms;
    atomic_init(&id->short_id, img.short_id);
    atomic_init(&id->hlc_bound, img.hlc_bound);
    mem_free(MEM_OTHER, bytes, cap);
    *result = IDENTITY_LOADED;
    *out = id;
    return ST_OK;
}

/* A new identity from getrandom(2), not written yet. */
static enum st_status make_new(struct lsm_env *env, const char *dir, const char *cluster_name,
                               size_t cluster_len, uint32_t vnodes, uint64_t now_ms,
                               struct identity **out)
{
    struct identity *id = NULL;
    enum st_status st = identity_new(env, dir, vnodes, cluster_len, &id);
    if (st != ST_OK)
        return st;
    /* UUID version 4 layout: 122 random bits, readable by common tools. */
    if ((st = fill_random(id->id, RING_ID_LEN)) != ST_OK)
        goto err;
    id->id[6] = (uint8_t)((id->id[6] & 0x0f) | 0x40);
    id->id[8] = (uint8_t)((id->id[8] & 0x3f) | 0x80);
    uint16_t s = 0;
    while (s == 0)
        if ((st = fill_random(&s, sizeof(s))) != ST_OK)
            goto err;
    atomic_init(&id->short_id, s);
    atomic_init(&id->hlc_bound, 0);
    /* Distinct tokens: draw, sort, redraw a duplicate until there is none
     * (with 64-bit tokens this loop essentially never runs twice). */
    if ((st = fill_random(id->tokens, 8 * (size_t)vnodes)) != ST_OK)
        goto err;
    for (;;) {
        qsort(id->tokens, vnodes, sizeof(uint64_t), cmp_u64);
        uint32_t dup = 0;
        for (uint32_t i = 1; i < vnodes && dup == 0; i++)
            if (id->tokens[i] == id->tokens[i - 1])
                dup = i;
        if (dup == 0)
            break;
        if ((st = fill_random(&id->tokens[dup], sizeof(uint64_t))) != ST_OK)
            goto err;
    }
    memcpy(id->cluster, cluster_name, cluster_len);
    id->cluster[cluster_len] = 0;
    id->cluster_len = (uint16_t)cluster_len;
    id->created_ms = now_ms;
    id->generation = now_ms / 1000 > 1 ? now_ms / 1000 : 1;
    *out = id;
    return ST_OK;
err:
    identity_destroy(&id);
    return st;
}

enum st_status identity_load_or_create_opt(const struct identity_options *opt, const char *dir,
                                           const char *cluster_name, uint32_t vnodes,
                                           struct identity **out, struct identity_load_info *info)
{
    if (info != NULL) {
        info->result = IDENTITY_ERR_ARGS;
        info->vnodes_differ = false;
    }
    if (out == NULL)
        return ST_INVAL;
    *out = NULL;
    struct lsm_env *env = opt != NULL && opt->env != NULL ? opt->env : env_posix();
    uint64_t now_ms = opt != NULL && opt->now_ms != 0 ? opt->now_ms : wall_ms();
    size_t cluster_len = cluster_name != NULL ? strlen(cluster_name) : 0;
    if (dir == NULL || dir[0] == 0 || strlen(dir) > 4000) {
        log_error("identity: no usable data directory given");
        return finish(info, IDENTITY_ERR_ARGS, ST_INVAL);
    }
    if (!cluster_name_ok(cluster_name, cluster_len)) {
        log_error("identity: cluster name must be 1..%d bytes of printable ASCII",
                  IDENTITY_CLUSTER_MAX);
        return finish(info, IDENTITY_ERR_ARGS, ST_INVAL);
    }
    if (vnodes == 0 || vnodes > RING_MAX_VNODES) {
        log_error("identity: vnodes must be 1..%d, not %u", RING_MAX_VNODES, vnodes);
        return finish(info, IDENTITY_ERR_ARGS, ST_INVAL);
    }

    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, IDENTITY_FILE);
    int dir_exists = 0, node_exists = 0;
    enum st_status st = env->exists(env, dir, &dir_exists);
    if (st == ST_OK && dir_exists)
        st = env->exists(env, path, &node_exists);
    if (st != ST_OK) {
        log_error("identity: cannot look at %s: %s", path, strerror(errno));
        return finish(info, IDENTITY_ERR_IO, st);
    }

    struct identity *id = NULL;
    enum identity_result result;
    char idtext[IDENTITY_ID_STR_LEN];
    if (node_exists) {
        if ((st = load_existing(env, dir, path, &id, &result)) != ST_OK)
            return finish(info, result, st);
        if (id->cluster_len != cluster_len || memcmp(id->cluster, cluster_name, cluster_len) != 0) {
            log_error("identity: %s belongs to cluster \"%s\", not the configured \"%s\"; "
                      "refusing to start",
                      path, id->cluster, cluster_name);
            identity_destroy(&id);
            return finish(info, IDENTITY_ERR_CLUSTER, ST_INVAL);
        }
        if (id->ntokens != vnodes) {
            log_warn("identity: %s holds %u vnode tokens, the configuration asks for %u; "
                     "keeping the stored tokens (changing them is a topology operation)",
                     path, id->ntokens, vnodes);
            if (info != NULL)
                info->vnodes_differ = true;
        }
        /* A new generation: above the stored one, and above the wall clock
         * in seconds so that a data directory restored from a backup (an
         * older stored generation) still announces a restart to peers. */
        uint64_t stored = id->generation;
        id->generation = stored + 1 > now_ms / 1000 ? stored + 1 : now_ms / 1000;
    } else {
        if (dir_exists) {
            struct scan s = {.others = 0};
            if ((st = env->listdir(env, dir, scan_entry, &s)) != ST_OK) {
                log_error("identity: cannot list %s: %s", dir, strerror(errno));
                return finish(info, IDENTITY_ERR_IO, st);
            }
            if (s.others > 0) {
                log_error("identity: %s is missing but %s holds %zu other entr%s (\"%s\"...): "
                          "data without its node identity; refusing to create a new one. "
                          "Restore %s, or empty the directory to join as a new node",
                          path, dir, s.others, s.others == 1 ? "y" : "ies", s.first, path);
                return finish(info, IDENTITY_ERR_ORPHAN_DATA, ST_CORRUPT);
            }
        } else {
            char parent[4200];
            parent_of(dir, parent, sizeof(parent));
            if ((st = env->mkdir(env, dir)) != ST_OK ||
                (st = env->sync_dir(env, parent)) != ST_OK) {
                log_error("identity: cannot create %s: %s", dir, strerror(errno));
                return finish(info, IDENTITY_ERR_IO, st);
            }
        }
        if ((st = make_new(env, dir, cluster_name, cluster_len, vnodes, now_ms, &id)) != ST_OK)
            return finish(info, IDENTITY_ERR_IO, st);
        result = IDENTITY_CREATED;
    }

    /* The generation (or the whole new identity) is durable before the node
     * announces itself. */
    if ((st = write_file(id, atomic_load(&id->short_id), atomic_load(&id->hlc_bound))) != ST_OK) {
        identity_destroy(&id);
        return finish(info, IDENTITY_ERR_IO, st);
    }
    identity_format_id(id->id, idtext);
    if (result == IDENTITY_CREATED)
        log_warn("identity: new node %s (short id %u, %u vnodes, cluster \"%s\") in %s", idtext,
                 (unsigned)atomic_load(&id->short_id), id->ntokens, id->cluster, dir);
    else
        log_info("identity: node %s (short id %u, cluster \"%s\"), generation %llu", idtext,
                 (unsigned)atomic_load(&id->short_id), id->cluster,
                 (unsigned long long)id->generation);
    *out = id;
    return finish(info, result, ST_OK);
}

enum st_status identity_load_or_create(const char *dir, const char *cluster_name, uint32_t vnodes,
                                       struct identity **out, struct identity_load_info *info)
{
    return identity_load_or_create_opt(NULL, dir, cluster_name, vnodes, out, info);
}

/* ---- updates ---- */

enum st_status identity_store_hlc_bound(struct identity *id, uint64_t bound)
{
    pthread_mutex_lock(&id->mu);
    enum st_status st = ST_OK;
    if (bound > atomic_load_explicit(&id->hlc_bound, memory_order_relaxed)) {
        st = write_file(id, atomic_load_explicit(&id->short_id, memory_order_relaxed), bound);
        if (st == ST_OK)
            atomic_store_explicit(&id->hlc_bound, bound, memory_order_relaxed);
    }
    pthread_mutex_unlock(&id->mu);
    return st;
}

enum st_status identity_regenerate_short_id(struct identity *id, const uint16_t *taken,
                                            size_t ntaken, uint16_t *out)
{
    /* One bit per short id: 8 KiB, for a rare event. */
    uint8_t used[(UINT16_MAX + 1) / 8];
    memset(used, 0, sizeof(used));
    pthread_mutex_lock(&id->mu);
    uint16_t cur = atomic_load_explicit(&id->short_id, memory_order_relaxed);
    used[0] |= 1;
    used[cur / 8] |= (uint8_t)(1u << (cur % 8));
    for (size_t i = 0; i < ntaken; i++)
        used[taken[i] / 8] |= (uint8_t)(1u << (taken[i] % 8));
    uint32_t nfree = 0;
    for (uint32_t v = 0; v <= UINT16_MAX; v++)
        nfree += !(used[v / 8] >> (v % 8) & 1);
    enum st_status st = ST_INVAL;
    if (nfree > 0) {
        /* The k-th free value, k uniform in [0, nfree): rejection sampling
         * avoids the modulo bias. */
        uint32_t r = 0, limit = UINT32_MAX - UINT32_MAX % nfree;
        do {
            st = fill_random(&r, sizeof(r));
        } while (st == ST_OK && r >= limit);
        if (st == ST_OK) {
            uint32_t k = r % nfree, v = 0;
            for (;; v++)
                if (!(used[v / 8] >> (v % 8) & 1) && k-- == 0)
                    break;
            uint16_t next = (uint16_t)v;
            st = write_file(id, next, atomic_load_explicit(&id->hlc_bound, memory_order_relaxed));
            if (st == ST_OK) {
                atomic_store_explicit(&id->short_id, next, memory_order_relaxed);
                log_warn("identity: short id %u replaced by %u", (unsigned)cur, (unsigned)next);
                if (out != NULL)
                    *out = next;
            }
        }
    } else {
        log_error("identity: no free short id left to replace %u", (unsigned)cur);
    }
    pthread_mutex_unlock(&id->mu);
    return st;
}

/* ---- accessors ---- */

const uint8_t *identity_id(const struct identity *id)
{
    return id->id;
}

uint64_t identity_generation(const struct identity *id)
{
    return id->generation;
}

uint64_t identity_created_ms(const struct identity *id)
{
    return id->created_ms;
}

const char *identity_cluster_name(const struct identity *id)
{
    return id->cluster;
}

uint32_t identity_vnode_count(const struct identity *id)
{
    return id->ntokens;
}

const uint64_t *identity_tokens(const struct identity *id)
{
    return id->tokens;
}

uint16_t identity_short_id(struct identity *id)
{
    return atomic_load_explicit(&id->short_id, memory_order_relaxed);
}

uint64_t identity_hlc_bound(struct identity *id)
{
    return atomic_load_explicit(&id->hlc_bound, memory_order_relaxed);
}

void identity_ring_node(struct identity *id, struct ring_node *node)
{
    memcpy(node->id, id->id, RING_ID_LEN);
    node->short_id = identity_short_id(id);
    node->rack = NULL;
    node->tokens = id->tokens;
    node->ntokens = id->ntokens;
}
