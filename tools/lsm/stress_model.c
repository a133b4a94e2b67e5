/*
 * stress_model.c - lsm-stress's expected state (stress_model.h): key and
 * value derivation, the per-thread operation streams, last-write-wins
 * application, the state file and the acknowledgement log. Pure functions
 * and plain file I/O; any thread, one stream per thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/mem.h"
#include "tools/lsm/stress_model.h"

uint64_t sm_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t sm_rand(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    uint64_t x = *state;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- keys and values ---- */

size_t sm_key(uint32_t idx, char *buf)
{
    /* "s" + 7 digits, then 0..40 filler bytes derived from the index, so
     * key lengths vary and prefix compression sees shared prefixes. */
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789-_";
    int n = snprintf(buf, SM_KEY_CAP, "s%07u", idx);
    uint64_t h = sm_mix(idx);
    size_t fill = h % 41;
    uint64_t r = h;
    for (size_t i = 0; i < fill; i++)
        buf[n + i] = alphabet[sm_rand(&r) % (sizeof(alphabet) - 1)];
    return (size_t)n + fill;
}

bool sm_key_parse(const uint8_t *key, size_t len, uint32_t *idx)
{
    if (len < 8 || len > SM_KEY_CAP || key[0] != 's')
        return false;
    uint32_t v = 0;
    for (int i = 1; i < 8; i++) {
        if (key[i] < '0' || key[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(key[i] - '0');
    }
    char buf[SM_KEY_CAP];
    size_t n = sm_key(v, buf);
    if (n != len || memcmp(buf, key, len) != 0)
        return false;
    *idx = v;
    return true;
}

void sm_value(uint32_t idx, const struct sm_entry *e, uint8_t *buf)
{
    uint64_t r = sm_mix(((uint64_t)idx << 20) ^ e->hlc ^ ((uint64_t)e->node << 52) ^ e->value_len);
    size_t i = 0;
    for (; i + 8 <= e->value_len; i += 8) {
        uint64_t x = sm_rand(&r);
        memcpy(buf + i, &x, 8);
    }
    if (i < e->value_len) {
        uint64_t x = sm_rand(&r);
        memcpy(buf + i, &x, e->value_len - i);
    }
}

bool sm_match(uint32_t idx, const struct sm_entry *m, const struct lsm_record *r, uint64_t now_hi,
              bool tomb_may_vanish, uint8_t *scratch)
{
    switch (m->kind) {
    case SM_NONE: return r == NULL;
    case SM_TOMB:
        if (r == NULL)
            return tomb_may_vanish;
        return r->tombstone && r->version.hlc == m->hlc && r->version.node == m->node;
    default:
        if (r == NULL) /* compaction drops records expired before its now */
            return m->expiry != 0 && m->expiry <= now_hi;
        if (r->tombstone || r->version.hlc != m->hlc || r->version.node != m->node ||
            r->flags != m->flags || r->expiry != m->expiry || r->value_len != m->value_len)
            return false;
        sm_value(idx, m, scratch);
        return memcmp(r->value, scratch, m->value_len) == 0;
    }
}

/* ---- operation streams ---- */

void sm_gen_init(struct sm_gen *g, const struct sm_config *cfg, uint32_t cycle, uint32_t thread,
                 uint64_t t0)
{
    *g = (struct sm_gen){
        .cfg = cfg,
        .rng = sm_mix(cfg->seed ^ sm_mix(((uint64_t)cycle << 16) | thread)),
        .t0 = t0,
        .cycle = cycle,
        .thread = thread,
        .next = 0,
    };
}

static uint32_t pick_key(struct sm_gen *g)
{
    uint32_t t = g->cfg->threads;
    uint32_t owned = (g->cfg->keys - g->thread + t - 1) / t;
    uint64_t r = sm_rand(&g->rng);
    uint32_t hot = owned / 16 > 0 ? owned / 16 : 1;
    /* Half the picks go to a hot sixteenth: overwrites, repeats in batches. */
    uint32_t j = (uint32_t)((r >> 8) % ((r & 1) ? hot : owned));
    return g->thread + t * j;
}

static uint32_t pick_len(struct sm_gen *g)
{
    uint64_t r = sm_rand(&g->rng);
    uint32_t p = (uint32_t)(r % 100);
    r >>= 8;
    if (p < 2)
        return 0;
    if (p < 60)
        return 8 + (uint32_t)(r % 113);
    if (p < 90)
        return 120 + (uint32_t)(r % 1081);
    if (p < 99 || r % 2 == 0) /* 0.5% of values are 16..128 KiB */
        return 1200 + (uint32_t)(r % 15185);
    return 16384 + (uint32_t)(r % (SM_MAX_VALUE - 16384 + 1));
}

static uint64_t pick_expiry(struct sm_gen *g)
{
    uint64_t r = sm_rand(&g->rng);
    switch (r % 4) {
    case 0: return g->t0 - 5;                /* already expired when written */
    case 1: return g->t0 + 1 + (r >> 8) % 3; /* expires during or after the run */
    case 2: return g->t0 + 4 + (r >> 8) % 8;
    default: return g->t0 + 3600;
    }
}

static void make_put(struct sm_gen *g, struct sm_entry *e, uint64_t hlc, bool expiring)
{
    *e = (struct sm_entry){
        .hlc = hlc,
        .node = (uint16_t)(1 + g->thread),
        .kind = SM_LIVE,
        .flags = (uint32_t)sm_rand(&g->rng),
        .value_len = pick_len(g),
        .expiry = expiring ? pick_expiry(g) : 0,
    };
}

static void make_del(struct sm_gen *g, struct sm_entry *e, uint64_t hlc)
{
    *e = (struct sm_entry){.hlc = hlc, .node = (uint16_t)(1 + g->thread), .kind = SM_TOMB};
}

static void push_recent(struct sm_gen *g, uint32_t key)
{
    g->recent[g->nrecent % SM_RECENT] = key;
    g->nrecent++;
}

/* The key of a stale write. `latest`: one of the 16 keys this stream wrote
 * last (after a flush or compaction: their newest versions just moved into
 * a table). Otherwise half of the picks are among the last SM_RECENT keys
 * (newest version in the memtable, the immutable one, L0 or deeper), the
 * rest anywhere (versions of earlier cycles, deep in the levels or in the
 * single run a full compaction left). */
static uint32_t pick_stale_key(struct sm_gen *g, bool latest)
{
    uint64_t r = sm_rand(&g->rng);
    uint32_t have = g->nrecent < SM_RECENT ? g->nrecent : SM_RECENT;
    if (have == 0 || (!latest && r % 2 == 0))
        return pick_key(g);
    uint32_t window = latest || (r >> 1) % 2 == 0 ? (have < 16 ? have : 16) : have;
    uint32_t age = (uint32_t)((r >> 8) % window);
    return g->recent[(g->nrecent - 1 - age) % SM_RECENT];
}

/*
 * A stale entry against `cur`, the key's newest record: a version below
 * cur's (just below, below on the node only, or far below, from an earlier
 * cycle) with a new put or a tombstone, or cur itself replayed (live
 * only). False when cur may not be targeted (see SM_TOMB_SAFE_GRACE).
 * Lowers *deadline to cur's expiry when cur expires. Several stale writes
 * may share a version below the newest with different contents: none of
 * them is ever read, since the newest shadows them for as long as any may
 * exist.
 */
static bool make_stale(struct sm_gen *g, const struct sm_entry *cur, struct sm_entry *e,
                       uint64_t *deadline)
{
    bool long_gc = g->cfg->gc_grace >= SM_TOMB_SAFE_GRACE;
    bool ok = (cur->kind == SM_LIVE && cur->expiry == 0) || (long_gc && cur->kind == SM_TOMB) ||
              (long_gc && cur->kind == SM_LIVE && cur->expiry >= g->t0 + SM_STALE_EXPIRY_MIN);
    if (!ok)
        return false;
    if (cur->kind == SM_LIVE && cur->expiry != 0 && (*deadline == 0 || cur->expiry < *deadline))
        *deadline = cur->expiry;
    uint64_t r = sm_rand(&g->rng);
    if (r % 8 == 0 && cur->kind == SM_LIVE) {
        /* The same write replayed: equal version, same record. Not for a
         * tombstone: its deletion time (deleted_at 0 = now) would differ,
         * and of two records with one version either may be read. */
        *e = *cur;
        return true;
    }
    uint64_t hlc = cur->hlc;
    uint16_t node = (uint16_t)(r >> 16);
    switch ((r >> 3) % 3) {
    case 0:
        if (cur->node > 0) {
            hlc = cur->hlc;
            node = (uint16_t)((r >> 16) % cur->node);
        } else {
            hlc--;
        }
        break;
    case 1: hlc--; break;
    default: {
        uint64_t span = hlc - 1 < (1ull << 40) ? hlc - 1 : (1ull << 40);
        hlc -= 1 + (r >> 24) % span;
        break;
    }
    }
    if ((r >> 5) % 3 == 0)
        make_del(g, e, hlc);
    else
        make_put(g, e, hlc, (r >> 7) % 4 == 0);
    e->node = node;
    return true;
}

/* A single put or delete that is stale against `key`; false if the key's
 * record may not be targeted. */
static bool make_stale_op(struct sm_gen *g, const struct sm_entry *model, uint32_t key,
                          struct sm_op *op)
{
    op->n = 1;
    op->key[0] = key;
    if (!make_stale(g, &model[key], &op->rec[0], &op->deadline))
        return false;
    op->kind = op->rec[0].kind == SM_TOMB ? SM_OP_DEL : SM_OP_PUT;
    op->stale[0] = true;
    op->nstale = 1;
    return true;
}

static void make_batch(struct sm_gen *g, const struct sm_entry *model, uint64_t base,
                       struct sm_op *op)
{
    op->kind = SM_OP_BATCH;
    op->n = 2 + (int)(sm_rand(&g->rng) % (SM_MAX_BATCH - 1));
    int fresh[SM_MAX_BATCH], nfresh = 0;
    for (int i = 0; i < op->n; i++) {
        /* One entry in eight is stale against the key's record before the
         * batch (so older than every new entry of the batch as well). */
        if (sm_rand(&g->rng) % 8 == 0) {
            uint32_t k = pick_stale_key(g, false);
            if (make_stale(g, &model[k], &op->rec[i], &op->deadline)) {
                op->key[i] = k;
                op->stale[i] = true;
                op->nstale++;
                continue;
            }
        }
        op->key[i] = pick_key(g);
        uint32_t q = (uint32_t)(sm_rand(&g->rng) % 10);
        if (q < 7)
            make_put(g, &op->rec[i], base | (uint64_t)i, q == 0);
        else
            make_del(g, &op->rec[i], base | (uint64_t)i);
        fresh[nfresh++] = i;
    }
    /* Among the new entries: sometimes two exchange versions, and one in
     * four batches repeats a key with an older version later in the batch
     * (a key repeated in a batch competes with itself). Stale entries are
     * left alone: given a new version they could equal a stored one. */
    uint64_t r = sm_rand(&g->rng);
    if (nfresh >= 2 && r % 4 == 0) {
        int a = fresh[(r >> 8) % (uint64_t)nfresh];
        int b = fresh[(r >> 16) % (uint64_t)nfresh];
        uint64_t h = op->rec[a].hlc;
        op->rec[a].hlc = op->rec[b].hlc;
        op->rec[b].hlc = h;
    }
    if (nfresh >= 2 && (r >> 2) % 4 == 0) {
        int j = 1 + (int)((r >> 24) % (uint64_t)(nfresh - 1));
        int i = (int)((r >> 32) % (uint64_t)j);
        int ej = fresh[j], ei = fresh[i];
        op->key[ej] = op->key[ei];
        if (op->rec[ej].hlc > op->rec[ei].hlc) {
            uint64_t h = op->rec[ei].hlc;
            op->rec[ei].hlc = op->rec[ej].hlc;
            op->rec[ej].hlc = h;
        }
        op->stale[ej] = true;
        op->nstale++;
    }
    for (int i = 0; i < nfresh; i++)
        push_recent(g, op->key[fresh[i]]);
}

void sm_gen_next(struct sm_gen *g, const struct sm_entry *model, struct sm_op *op)
{
    /* Versions grow with (cycle, op index, entry): a new write always wins
     * over anything written in an earlier cycle or operation. */
    uint64_t base = ((uint64_t)(g->cycle + 1) << 36) | (g->next << 4);
    g->next++;
    op->n = 1;
    op->nstale = 0;
    op->deadline = 0;
    memset(op->stale, 0, sizeof(op->stale));
    /* Right after this stream flushed or compacted: stale writes against
     * the keys it wrote just before, whose newest versions now sit in a
     * table while the stale ones go to the memtable. */
    if (g->follow_up > 0) {
        g->follow_up--;
        if (make_stale_op(g, model, pick_stale_key(g, true), op))
            return;
    }
    uint32_t p = (uint32_t)(sm_rand(&g->rng) % 10000);
    if (p < 50) {
        op->kind = p < 4 ? SM_OP_COMPACT : SM_OP_FLUSH;
        op->n = 0;
        g->follow_up = 1 + (uint32_t)(sm_rand(&g->rng) % 4);
        return;
    }
    if (p < 2000) {
        /* A deliberately stale single put or delete (see make_stale);
         * a plain put when the key's record may not be targeted. */
        if (make_stale_op(g, model, pick_stale_key(g, false), op))
            return;
        op->kind = SM_OP_PUT;
        make_put(g, &op->rec[0], base, false);
        push_recent(g, op->key[0]);
        return;
    }
    uint32_t q = (uint32_t)(sm_rand(&g->rng) % 85);
    if (q >= 70) {
        make_batch(g, model, base, op);
        return;
    }
    op->key[0] = pick_key(g);
    if (q < 45) {
        op->kind = SM_OP_PUT;
        make_put(g, &op->rec[0], base, false);
    } else if (q < 55) {
        op->kind = SM_OP_PUT;
        make_put(g, &op->rec[0], base, true);
    } else {
        op->kind = SM_OP_DEL;
        make_del(g, &op->rec[0], base);
    }
    push_recent(g, op->key[0]);
}

void sm_apply(struct sm_entry *model, const struct sm_op *op, bool *applied)
{
    for (int i = 0; i < op->n; i++) {
        struct sm_entry *cur = &model[op->key[i]];
        const struct sm_entry *e = &op->rec[i];
        bool newer = cur->kind == SM_NONE || e->hlc > cur->hlc ||
                     (e->hlc == cur->hlc && e->node > cur->node);
        if (newer)
            *cur = *e;
        if (applied != NULL)
            applied[i] = newer;
    }
}

/* ---- state file ---- */

/* Layout (host byte order: a local file of one machine's test run):
 *   0  "SMSTATE1"        8 bytes
 *   8  seed              u64
 *  16  keys, threads, style, gc_grace, cycle, 0   6 x u32
 *  40  entries           keys x struct sm_entry (32 bytes each)
 *  ..  XXH3-64 of everything before                u64 */
#define STATE_MAGIC "SMSTATE1"
#define STATE_HEADER 40

_Static_assert(sizeof(struct sm_entry) == 32, "state file entry size");

int sm_state_create(struct sm_state *st, const struct sm_config *cfg)
{
    st->cfg = *cfg;
    st->cycle = 0;
    st->e = mem_calloc(MEM_OTHER, cfg->keys, sizeof(*st->e));
    return st->e != NULL ? 0 : -1;
}

void sm_state_deinit(struct sm_state *st)
{
    if (st->e != NULL)
        mem_free(MEM_OTHER, st->e, (size_t)st->cfg.keys * sizeof(*st->e));
    st->e = NULL;
}

/* Reads a whole file into a buffer of *cap bytes (free with mem_free). */
static int read_all(const char *path, uint8_t **out, size_t *len, size_t *cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *b = mem_alloc(MEM_OTHER, n + 1);
    size_t got = 0;
    while (b != NULL && got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (b == NULL)
        return -1;
    *out = b;
    *len = got;
    *cap = n + 1;
    return 0;
}

int sm_state_load(const char *path, struct sm_state *st)
{
    uint8_t *b = NULL;
    size_t len = 0, cap = 0;
    if (read_all(path, &b, &len, &cap) != 0)
        return -1;
    int rc = -1;
    uint32_t u[6];
    if (len < STATE_HEADER + 8 || memcmp(b, STATE_MAGIC, 8) != 0)
        goto out;
    memcpy(u, b + 16, sizeof(u));
    size_t want = STATE_HEADER + (size_t)u[0] * sizeof(struct sm_entry) + 8;
    uint64_t sum;
    memcpy(&sum, b + len - 8, 8);
    if (u[0] == 0 || len != want || XXH3_64bits(b, len - 8) != sum)
        goto out;
    memset(st, 0, sizeof(*st));
    memcpy(&st->cfg.seed, b + 8, 8);
    st->cfg.keys = u[0];
    st->cfg.threads = u[1];
    st->cfg.style = u[2];
    st->cfg.gc_grace = u[3];
    st->cycle = u[4];
    st->e = mem_alloc(MEM_OTHER, (size_t)u[0] * sizeof(*st->e));
    if (st->e == NULL)
        goto out;
    memcpy(st->e, b + STATE_HEADER, (size_t)u[0] * sizeof(*st->e));
    rc = 0;
out:
    if (rc != 0)
        errno = EINVAL;
    mem_free(MEM_OTHER, b, cap);
    return rc;
}

static int write_full(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int sm_state_save(const char *path, const struct sm_state *st)
{
    size_t body = (size_t)st->cfg.keys * sizeof(*st->e);
    size_t len = STATE_HEADER + body + 8;
    uint8_t *b = mem_alloc(MEM_OTHER, len);
    if (b == NULL)
        return -1;
    memcpy(b, STATE_MAGIC, 8);
    memcpy(b + 8, &st->cfg.seed, 8);
    uint32_t u[6] = {st->cfg.keys, st->cfg.threads, st->cfg.style, st->cfg.gc_grace, st->cycle, 0};
    memcpy(b + 16, u, sizeof(u));
    memcpy(b + STATE_HEADER, st->e, body);
    uint64_t sum = XXH3_64bits(b, len - 8);
    memcpy(b + len - 8, &sum, 8);

    char tmp[4096], dir[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(dir, sizeof(dir), "%s", path);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        rc = write_full(fd, b, len) == 0 && fdatasync(fd) == 0 ? 0 : -1;
        close(fd);
    }
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc == 0) {
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            rc = fsync(dfd);
            close(dfd);
        }
    }
    mem_free(MEM_OTHER, b, len);
    return rc;
}

/* ---- acknowledgement log ---- */

/* Record: magic u32, cycle u32, thread u32, check u32, value u64 (host
 * order); check = low 32 bits of XXH3 over the other 20 bytes. */
#define ACK_MAGIC 0x4b434153u /* "SACK" */
#define ACK_LEN 24

int sm_ack_open(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

static uint32_t ack_check(const uint8_t *rec)
{
    uint8_t tmp[20];
    memcpy(tmp, rec, 12);
    memcpy(tmp + 12, rec + 16, 8);
    return (uint32_t)XXH3_64bits(tmp, sizeof(tmp));
}

int sm_ack_write(int fd, uint32_t cycle, uint32_t thread, uint64_t value)
{
    uint8_t rec[ACK_LEN];
    uint32_t h[3] = {ACK_MAGIC, cycle, thread};
    memcpy(rec, h, 12);
    memcpy(rec + 16, &value, 8);
    uint32_t c = ack_check(rec);
    memcpy(rec + 12, &c, 4);
    /* O_APPEND: one write is placed atomically at the end, so records of
     * concurrent threads never interleave. */
    return write(fd, rec, ACK_LEN) == ACK_LEN ? 0 : -1;
}

int sm_ack_read(const char *path, uint32_t cycle, uint32_t threads, uint64_t *acked, uint64_t *t0,
                bool *started)
{
    for (uint32_t t = 0; t < threads; t++)
        acked[t] = 0;
    *started = false;
    *t0 = 0;
    uint8_t *b = NULL;
    size_t len = 0, cap = 0;
    if (read_all(path, &b, &len, &cap) != 0)
        return errno == ENOENT ? 0 : -1;
    for (size_t off = 0; off + ACK_LEN <= len;) {
        uint32_t h[4];
        uint64_t v;
        memcpy(h, b + off, 16);
        memcpy(&v, b + off + 16, 8);
        if (h[0] != ACK_MAGIC || h[3] != ack_check(b + off)) {
            off++; /* torn record: resynchronise on the next magic */
            continue;
        }
        off += ACK_LEN;
        if (h[1] != cycle)
            continue;
        if (h[2] == SM_ACK_START) {
            *started = true;
            *t0 = v;
        } else if (h[2] < threads && v + 1 > acked[h[2]]) {
            acked[h[2]] = v + 1;
        }
    }
    mem_free(MEM_OTHER, b, cap);
    return 0;
}
