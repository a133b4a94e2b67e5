/*
 * main.c - lsm-bench: a db_bench-style benchmark that runs the same
 * workloads, in one process, through Strata's engine, LevelDB and RocksDB
 * (engine.h), then prints ops/s, MB/s and CPU µs/op per engine, the ratios
 * ours/LevelDB and ours/RocksDB, and our write and space amplification.
 * Single-threaded driver; worker threads only inside a workload.
 *
 *   for each engine:
 *     fillseq (new db)
 *     fillrandom (new db) ─► overwrite ─► settle ─► full compaction
 *        ─► readrandom ─► readwhilewriting (1 reader, 1 writer)
 *   then --sync-rounds rounds, engines taking turns:
 *     fillsync, 1 writer (new db)   fillsync, 8 writers (new db)
 *   ─► medians ─► table, ratios, targets
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "tools/lsm/bench/engine.h"

#define KEY_LEN 16
#define MAX_ENGINES 3
#define MAX_WRITERS 64
#define MAX_ROUNDS 9

enum workload {
    W_FILLSEQ,
    W_FILLRANDOM,
    W_OVERWRITE,
    W_COMPACT,
    W_READRANDOM,
    W_READWHILEWRITING,
    W_FILLSYNC1,
    W_FILLSYNCN,
    W_COUNT
};

static const char *const workload_name[W_COUNT] = {
    "fillseq",    "fillrandom",       "overwrite",  "compact",
    "readrandom", "readwhilewriting", "fillsync-1", "fillsync-N",
};

struct opts {
    uint64_t num;
    uint64_t reads;
    uint64_t rww_reads;
    uint64_t sync_ops;
    int sync_writers;
    int sync_rounds; /* fillsync repetitions; the median is reported */
    size_t value_len;
    const char *dir;
    const char *phases; /* "seq,random,sync" or a subset */
    const struct engine *engines[MAX_ENGINES];
    int n_engines;
    struct engine_cfg cfg;
};

struct result {
    bool done;
    double secs;
    uint64_t ops;
    uint64_t bytes;
    double cpu_secs;
    uint64_t found;
    uint64_t side_ops; /* readwhilewriting: writes done meanwhile */
};

struct engine_run {
    const struct engine *eng;
    char desc[128];
    struct result r[W_COUNT];
    struct engine_amp amp_settled, amp_compacted, amp_end, amp_sync;
    uint64_t disk_settled, disk_compacted;
};

/* ---- timing ---- */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Process CPU time (all threads: the engines' background work counts). */
static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- keys and values ---- */

static uint64_t rnd(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    uint64_t x = *s;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void make_key(uint64_t k, char *buf)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%016llu", (unsigned long long)k);
    memcpy(buf, tmp, KEY_LEN);
}

/* Values are slices of a pool in which every 100-byte run is 50 random
 * printable bytes repeated (db_bench's compression ratio 0.5). */
#define POOL_LEN (1u << 20)
static char *value_pool;

static void pool_setup(void)
{
    value_pool = mem_alloc(MEM_OTHER, POOL_LEN + 4096);
    if (value_pool == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(EX_OSERR);
    }
    uint64_t s = 42;
    for (size_t i = 0; i + 100 <= POOL_LEN + 4096; i += 100) {
        for (int j = 0; j < 50; j++)
            value_pool[i + (size_t)j] = (char)(' ' + rnd(&s) % 95);
        memcpy(value_pool + i + 50, value_pool + i, 50);
    }
}

static const char *value_at(uint64_t *s)
{
    return value_pool + rnd(s) % POOL_LEN;
}

/* ---- workloads ---- */

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "lsm-bench: %s failed\n", what);
    exit(1);
}

struct writer_arg {
    struct engine_db *db;
    const struct opts *o;
    uint64_t ops; /* 0 = until *stop */
    uint64_t seed;
    uint64_t done;
    atomic_bool *stop;
    atomic_int *ready;
};

static void *writer_main(void *p)
{
    struct writer_arg *w = p;
    const struct engine *e = w->db->eng;
    uint64_t s = w->seed;
    char key[KEY_LEN];
    atomic_fetch_add(w->ready, 1);
    for (uint64_t i = 0; w->ops == 0 || i < w->ops; i++) {
        if (w->stop != NULL && atomic_load_explicit(w->stop, memory_order_relaxed))
            break;
        make_key(rnd(&s) % w->o->num, key);
        if (e->put(w->db, key, KEY_LEN, value_at(&s), w->o->value_len) != 0)
            die("put");
        w->done++;
    }
    return NULL;
}

static void begin(struct result *r, double *t0, double *c0)
{
    memset(r, 0, sizeof(*r));
    *t0 = mono();
    *c0 = cpu();
}

static void end(struct result *r, const struct opts *o, double t0, double c0, uint64_t ops)
{
    r->secs = mono() - t0;
    r->cpu_secs = cpu() - c0;
    r->ops = ops;
    r->bytes = ops * (KEY_LEN + o->value_len);
    r->done = true;
}

static void fill(struct engine_db *db, const struct opts *o, bool seq, uint64_t seed,
                 struct result *r)
{
    const struct engine *e = db->eng;
    double t0, c0;
    uint64_t s = seed;
    char key[KEY_LEN];
    begin(r, &t0, &c0);
    for (uint64_t i = 0; i < o->num; i++) {
        make_key(seq ? i : rnd(&s) % o->num, key);
        if (e->put(db, key, KEY_LEN, value_at(&s), o->value_len) != 0)
            die("put");
    }
    end(r, o, t0, c0, o->num);
}

static void readrandom(struct engine_db *db, const struct opts *o, uint64_t n, uint64_t seed,
                       struct result *r)
{
    const struct engine *e = db->eng;
    double t0, c0;
    uint64_t s = seed, found = 0;
    char key[KEY_LEN];
    begin(r, &t0, &c0);
    for (uint64_t i = 0; i < n; i++) {
        bool f;
        make_key(rnd(&s) % o->num, key);
        if (e->get(db, key, KEY_LEN, &f) != 0)
            die("get");
        found += f;
    }
    end(r, o, t0, c0, n);
    r->found = found;
}

/* `writers` threads, each `per` random writes (0 = until the reader in the
 * calling thread has done `reads` gets). */
static void writers_run(struct engine_db *db, const struct opts *o, int writers, uint64_t per,
                        uint64_t reads, uint64_t seed, struct result *r)
{
    pthread_t tid[MAX_WRITERS];
    struct writer_arg wa[MAX_WRITERS];
    atomic_bool stop = false;
    atomic_int ready = 0;
    for (int i = 0; i < writers; i++) {
        wa[i] = (struct writer_arg){.db = db,
                                    .o = o,
                                    .ops = per,
                                    .seed = seed + (uint64_t)i * 7919,
                                    .stop = per == 0 ? &stop : NULL,
                                    .ready = &ready};
        if (pthread_create(&tid[i], NULL, writer_main, &wa[i]) != 0)
            die("pthread_create");
    }
    while (atomic_load(&ready) < writers)
        sched_yield();
    double t0, c0;
    begin(r, &t0, &c0);
    uint64_t total = 0;
    if (per == 0) {
        struct result rr;
        readrandom(db, o, reads, seed ^ 0xabcdef, &rr);
        atomic_store(&stop, true);
        for (int i = 0; i < writers; i++)
            pthread_join(tid[i], NULL);
        end(r, o, t0, c0, reads);
        r->found = rr.found;
        for (int i = 0; i < writers; i++)
            r->side_ops += wa[i].done;
        return;
    }
    for (int i = 0; i < writers; i++) {
        pthread_join(tid[i], NULL);
        total += wa[i].done;
    }
    end(r, o, t0, c0, total);
}

/* Bytes of regular files under a directory. */
static uint64_t du_total;
static int du_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)path;
    (void)f;
    if (flag == FTW_F)
        du_total += (uint64_t)sb->st_size;
    return 0;
}

static uint64_t disk_bytes(const char *dir)
{
    du_total = 0;
    nftw(dir, du_one, 16, FTW_PHYS);
    return du_total;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(path);
}

static void rmrf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct engine_db *fresh(const struct engine *e, const struct opts *o, const char *tag,
                               bool sync, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s-%s", o->dir, e->name, tag);
    rmrf(path);
    struct engine_cfg cfg = o->cfg;
    cfg.sync = sync;
    struct engine_db *db = NULL;
    char err[512];
    if (e->open(path, &cfg, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "lsm-bench: %s\n", err);
        exit(1);
    }
    return db;
}

static void progress(const struct engine_run *er, enum workload w)
{
    const struct result *r = &er->r[w];
    fprintf(stderr, "  %-8s %-17s %10.0f ops/s  %6.2f s\n", er->eng->name, workload_name[w],
            r->secs > 0 ? (double)r->ops / r->secs : 0, r->secs);
}

static void run_random(struct engine_run *er, const struct opts *o);

static void run_engine(struct engine_run *er, const struct opts *o)
{
    const struct engine *e = er->eng;
    char path[4096];
    e->describe(er->desc, sizeof(er->desc));

    struct engine_db *db;
    if (strstr(o->phases, "seq") != NULL) {
        db = fresh(e, o, "fillseq", false, path, sizeof(path));
        fill(db, o, true, 1, &er->r[W_FILLSEQ]);
        progress(er, W_FILLSEQ);
        e->close(db);
        rmrf(path);
    }
    if (strstr(o->phases, "random") != NULL)
        run_random(er, o);
}

/* fillrandom ─► overwrite ─► settle ─► compaction ─► reads */
static void run_random(struct engine_run *er, const struct opts *o)
{
    const struct engine *e = er->eng;
    char path[4096];
    struct engine_db *db = fresh(e, o, "random", false, path, sizeof(path));
    fill(db, o, false, 2, &er->r[W_FILLRANDOM]);
    progress(er, W_FILLRANDOM);
    fill(db, o, false, 3, &er->r[W_OVERWRITE]);
    progress(er, W_OVERWRITE);
    e->settle(db, 60000);
    e->amp(db, &er->amp_settled);
    er->disk_settled = disk_bytes(path);
    double t0, c0;
    begin(&er->r[W_COMPACT], &t0, &c0);
    if (e->compact(db) != 0)
        die("compaction");
    end(&er->r[W_COMPACT], o, t0, c0, 0);
    er->r[W_COMPACT].bytes = 0;
    e->amp(db, &er->amp_compacted);
    er->disk_compacted = disk_bytes(path);
    fprintf(stderr, "  %-8s %-17s %21.2f s\n", e->name, "compact", er->r[W_COMPACT].secs);
    readrandom(db, o, o->reads, 4, &er->r[W_READRANDOM]);
    progress(er, W_READRANDOM);
    writers_run(db, o, 1, 0, o->rww_reads, 5, &er->r[W_READWHILEWRITING]);
    progress(er, W_READWHILEWRITING);
    e->amp(db, &er->amp_end);
    e->close(db);
    rmrf(path);
}

/* One round of fillsync (1 writer, then N writers, each on a new db);
 * results go to one[], many[] at index `round`. */
static void run_sync(struct engine_run *er, const struct opts *o, int round, struct result *one,
                     struct result *many)
{
    const struct engine *e = er->eng;
    char path[4096];
    struct engine_db *db = fresh(e, o, "sync1", true, path, sizeof(path));
    writers_run(db, o, 1, o->sync_ops, 0, 6 + (uint64_t)round * 100, &one[round]);
    e->close(db);
    rmrf(path);

    db = fresh(e, o, "syncN", true, path, sizeof(path));
    writers_run(db, o, o->sync_writers, o->sync_ops, 0, 7 + (uint64_t)round * 100, &many[round]);
    e->amp(db, &er->amp_sync);
    e->close(db);
    rmrf(path);
}

/* ---- report ---- */

static double rate(const struct result *r)
{
    return r->done && r->secs > 0 ? (double)r->ops / r->secs : 0;
}

/* The result with the median rate of n (insertion sort; n is small). */
static struct result median(struct result *r, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && rate(&r[j - 1]) > rate(&r[j]); j--) {
            struct result t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
        }
    return r[n / 2];
}

static void machine_facts(const char *dir)
{
    char model[256] = "?", line[512];
    long mem_kb = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c != NULL) {
                snprintf(model, sizeof(model), "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
            }
            break;
        }
    if (f != NULL)
        fclose(f);
    f = fopen("/proc/meminfo", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemTotal: %ld kB", &mem_kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    struct utsname u;
    uname(&u);
    struct statfs sf;
    const char *fs = "?";
    if (statfs(dir, &sf) == 0) {
        switch ((unsigned long)sf.f_type) {
        case 0xEF53: fs = "ext4"; break;
        case 0x58465342: fs = "xfs"; break;
        case 0x9123683E: fs = "btrfs"; break;
        case 0x01021994: fs = "tmpfs (fsync is free: fillsync meaningless)"; break;
        case 0x794c7630: fs = "overlayfs"; break;
        default: fs = "other"; break;
        }
    }
    printf("machine: %s, %ld CPUs, %.1f GiB RAM, Linux %s, %s at %s\n", model,
           sysconf(_SC_NPROCESSORS_ONLN), (double)mem_kb / (1024.0 * 1024.0), u.release, fs, dir);
}

static void report(struct engine_run *runs, int n, const struct opts *o)
{
    printf("\nlsm-bench: %llu keys, %d-byte keys, %zu-byte values (half "
           "compressible), WAL on, sync off except fillsync\n",
           (unsigned long long)o->num, KEY_LEN, o->value_len);
    printf("same for all: memtable %zu MiB, block cache %zu MiB, %zu KiB "
           "blocks, bloom %d bits/key, zstd level %d (ours, RocksDB), L1 %zu "
           "MiB x10, %zu MiB files\n",
           o->cfg.memtable_bytes >> 20, o->cfg.block_cache_bytes >> 20, o->cfg.block_size >> 10,
           o->cfg.bloom_bits, o->cfg.zstd_level, o->cfg.l1_bytes >> 20, o->cfg.file_bytes >> 20);
    machine_facts(o->dir);
    for (int i = 0; i < n; i++)
        printf("  %-8s %s\n", runs[i].eng->name, runs[i].desc);
    printf("\n%-17s %-9s %11s %8s %10s   %s\n", "workload", "engine", "ops/s", "MB/s", "CPU µs/op",
           "notes");
    for (int w = 0; w < W_COUNT; w++) {
        if (w == W_COMPACT)
            continue;
        for (int i = 0; i < n; i++) {
            const struct result *r = &runs[i].r[w];
            char note[160] = "";
            if (w == W_READRANDOM || w == W_READWHILEWRITING)
                snprintf(note, sizeof(note), "%.0f%% found",
                         r->ops ? 100.0 * (double)r->found / (double)r->ops : 0);
            if (w == W_READWHILEWRITING)
                snprintf(note + strlen(note), sizeof(note) - strlen(note),
                         ", writer %.0f ops/s meanwhile",
                         r->secs > 0 ? (double)r->side_ops / r->secs : 0);
            if (w == W_FILLSYNC1 || w == W_FILLSYNCN)
                snprintf(note, sizeof(note),
                         "%d writer(s) x %llu ops, "
                         "median of %d",
                         w == W_FILLSYNC1 ? 1 : o->sync_writers, (unsigned long long)o->sync_ops,
                         o->sync_rounds);
            if (runs[i].eng == &engine_rocksdb)
                snprintf(note + strlen(note), sizeof(note) - strlen(note), "%s*",
                         note[0] ? " " : "");
            printf("%-17s %-9s %11.0f %8.1f %10.2f   %s\n",
                   i == 0 ? (w == W_FILLSYNCN ? "fillsync-8" : workload_name[w]) : "",
                   runs[i].eng->name, rate(r), r->secs > 0 ? (double)r->bytes / r->secs / 1e6 : 0,
                   r->ops ? r->cpu_secs * 1e6 / (double)r->ops : 0, note);
        }
    }
    printf("* Debian's librocksdb is built with assertions on, which slows its "
           "writes by 25-35%%.\n");

    int ours = -1, ldb = -1, rdb = -1;
    for (int i = 0; i < n; i++) {
        if (runs[i].eng == &engine_strata)
            ours = i;
        if (runs[i].eng == &engine_leveldb)
            ldb = i;
        if (runs[i].eng == &engine_rocksdb)
            rdb = i;
    }
    if (ours >= 0 && (ldb >= 0 || rdb >= 0)) {
        printf("\n%-17s %12s %12s %12s   %s\n", "ratio (ops/s)", "ours/LevelDB", "ours/RocksDB",
               "vs faster", "target >= 1.0");
        for (int w = 0; w < W_COUNT; w++) {
            if (w == W_COMPACT)
                continue;
            double us = rate(&runs[ours].r[w]);
            double l = ldb >= 0 ? rate(&runs[ldb].r[w]) : 0;
            double rr = rdb >= 0 ? rate(&runs[rdb].r[w]) : 0;
            double best = l > rr ? l : rr;
            bool targeted = w != W_FILLSEQ;
            printf("%-17s %12.2f %12.2f %12.2f   %s\n",
                   w == W_FILLSYNCN ? "fillsync-8" : workload_name[w], l > 0 ? us / l : 0,
                   rr > 0 ? us / rr : 0, best > 0 ? us / best : 0,
                   !targeted                ? "(no target)"
                   : best > 0 && us >= best ? "met"
                                            : "MISSED");
        }
    }
    printf("\ngroup commit, fillsync %d writers / 1 writer (target >= 5x for "
           "ours):",
           o->sync_writers);
    for (int i = 0; i < n; i++) {
        double one = rate(&runs[i].r[W_FILLSYNC1]);
        printf("  %s %.1fx", runs[i].eng->name, one > 0 ? rate(&runs[i].r[W_FILLSYNCN]) / one : 0);
    }
    printf("\nfull compaction:");
    for (int i = 0; i < n; i++)
        printf("  %s %.1f s", runs[i].eng->name, runs[i].r[W_COMPACT].secs);
    printf("\non-disk size after overwrite (settled) / after full compaction:");
    for (int i = 0; i < n; i++)
        printf("  %s %.1f / %.1f MB", runs[i].eng->name, (double)runs[i].disk_settled / 1e6,
               (double)runs[i].disk_compacted / 1e6);
    printf("\n");
    if (ours >= 0) {
        const struct engine_run *er = &runs[ours];
        printf("ours: write amplification %.2f after fillrandom+overwrite "
               "((WAL + flush + compaction bytes) / user bytes); space "
               "amplification %.2f settled, %.2f after full compaction "
               "(target <= 1.15)\n",
               er->amp_settled.write_amp, er->amp_settled.space_amp, er->amp_compacted.space_amp);
        const struct engine_amp *a = &er->amp_end;
        uint64_t lookups = a->cache_hits + a->cache_misses;
        printf("ours: write stalls %.2f s over the random phase; block cache "
               "hit rate %.0f%%; fillsync-%d: %.1f writes per WAL fdatasync\n",
               (double)a->stall_micros / 1e6,
               lookups ? 100.0 * (double)a->cache_hits / (double)lookups : 0, o->sync_writers,
               er->amp_sync.wal_syncs
                   ? (double)er->r[W_FILLSYNCN].ops / (double)er->amp_sync.wal_syncs
                   : 0);
    }
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: lsm-bench [--num N] [--engines strata,leveldb,rocksdb]\n"
                    "  [--memtable-mb 4] [--cache-mb 64] [--block-size 4096]\n"
                    "  [--bloom-bits 10] [--zstd-level 3] [--compress-from-level 2]\n"
                    "  [--l1-mb 10] [--file-mb 2]\n"
                    "  [--phases seq,random,sync] [--reads N] [--rww-reads N]\n"
                    "  [--sync-ops 2000] [--sync-writers 8] [--sync-rounds 5]\n"
                    "  [--dir DIR]\n");
    exit(EX_USAGE);
}

int main(int argc, char **argv)
{
    struct opts o = {
        .num = 1000000,
        .sync_ops = 2000,
        .sync_writers = 8,
        .sync_rounds = 5,
        .value_len = 100,
        .phases = "seq,random,sync",
        .cfg = {.memtable_bytes = 4u << 20,
                .block_cache_bytes = 64u << 20,
                .block_size = 4096,
                .bloom_bits = 10,
                .zstd_level = 3,
                .compress_from = 2,
                .l1_bytes = 10u << 20,
                .file_bytes = 2u << 20},
    };
    const char *engines = "strata,leveldb,rocksdb";
    static const struct option lo[] = {
        {"num", required_argument, NULL, 'n'},
        {"engines", required_argument, NULL, 'e'},
        {"memtable-mb", required_argument, NULL, 'm'},
        {"cache-mb", required_argument, NULL, 'c'},
        {"block-size", required_argument, NULL, 'b'},
        {"bloom-bits", required_argument, NULL, 'f'},
        {"zstd-level", required_argument, NULL, 'z'},
        {"compress-from-level", required_argument, NULL, 'C'},
        {"l1-mb", required_argument, NULL, 'L'},
        {"file-mb", required_argument, NULL, 'F'},
        {"phases", required_argument, NULL, 'p'},
        {"reads", required_argument, NULL, 'r'},
        {"rww-reads", required_argument, NULL, 'w'},
        {"sync-ops", required_argument, NULL, 's'},
        {"sync-writers", required_argument, NULL, 'W'},
        {"sync-rounds", required_argument, NULL, 'R'},
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n': o.num = strtoull(optarg, NULL, 10); break;
        case 'e': engines = optarg; break;
        case 'm': o.cfg.memtable_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'c': o.cfg.block_cache_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'b': o.cfg.block_size = strtoull(optarg, NULL, 10); break;
        case 'f': o.cfg.bloom_bits = atoi(optarg); break;
        case 'z': o.cfg.zstd_level = atoi(optarg); break;
        case 'C': o.cfg.compress_from = atoi(optarg); break;
        case 'L': o.cfg.l1_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'F': o.cfg.file_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'p': o.phases = optarg; break;
        case 'r': o.reads = strtoull(optarg, NULL, 10); break;
        case 'w': o.rww_reads = strtoull(optarg, NULL, 10); break;
        case 's': o.sync_ops = strtoull(optarg, NULL, 10); break;
        case 'W': o.sync_writers = atoi(optarg); break;
        case 'R': o.sync_rounds = atoi(optarg); break;
        case 'd': o.dir = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || o.num == 0 || o.sync_writers < 1 || o.sync_writers > MAX_WRITERS ||
        o.sync_rounds < 1 || o.sync_rounds > MAX_ROUNDS)
        usage();
    if (o.reads == 0)
        o.reads = o.num;
    if (o.rww_reads == 0)
        o.rww_reads = o.num / 2;
    char tmpl[4096];
    if (o.dir == NULL) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpl, sizeof(tmpl), "%s/lsm-bench-XXXXXX", t && *t ? t : "/tmp");
        if (mkdtemp(tmpl) == NULL) {
            perror("mkdtemp");
            return EX_CANTCREAT;
        }
        o.dir = tmpl;
    } else if (mkdir(o.dir, 0755) != 0 && errno != EEXIST) {
        perror(o.dir);
        return EX_CANTCREAT;
    }
    char list[256];
    snprintf(list, sizeof(list), "%s", engines);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        const struct engine *e = strcmp(t, "strata") == 0    ? &engine_strata
                                 : strcmp(t, "leveldb") == 0 ? &engine_leveldb
                                 : strcmp(t, "rocksdb") == 0 ? &engine_rocksdb
                                                             : NULL;
        if (e == NULL || o.n_engines == MAX_ENGINES)
            usage();
        o.engines[o.n_engines++] = e;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pool_setup();
    struct engine_run runs[MAX_ENGINES];
    memset(runs, 0, sizeof(runs));
    for (int i = 0; i < o.n_engines; i++) {
        runs[i].eng = o.engines[i];
        fprintf(stderr, "== %s\n", o.engines[i]->name);
        run_engine(&runs[i], &o);
    }
    if (strstr(o.phases, "sync") != NULL) {
        /* fsync latency on a VM drifts by 2x within minutes: the engines
         * take turns, round after round, and each keeps its median. */
        struct result one[MAX_ENGINES][MAX_ROUNDS], many[MAX_ENGINES][MAX_ROUNDS];
        for (int r = 0; r < o.sync_rounds; r++)
            for (int i = 0; i < o.n_engines; i++)
                run_sync(&runs[i], &o, r, one[i], many[i]);
        for (int i = 0; i < o.n_engines; i++) {
            runs[i].r[W_FILLSYNC1] = median(one[i], o.sync_rounds);
            runs[i].r[W_FILLSYNCN] = median(many[i], o.sync_rounds);
            progress(&runs[i], W_FILLSYNC1);
            progress(&runs[i], W_FILLSYNCN);
        }
    }
    report(runs, o.n_engines, &o);
    if (o.dir == tmpl)
        rmrf(tmpl);
    mem_free(MEM_OTHER, value_pool, POOL_LEN + 4096);
    return 0;
}
