/*
 * main.c - lsm-bench: a db_bench-style benchmark that runs the same
 * workloads, in one process, through Strata's engine, LevelDB and RocksDB
 * (engine.h), once with compression off for all three and once with each
 * engine's production compression, then prints the report (report.c).
 * Single-threaded driver; worker threads only inside a workload.
 *
 *   for each compression setting (off, default), for each engine:
 *     fillseq (new db)
 *     fillrandom (new db) ─► overwrite ─► settle ─► readrandom
 *        ─► seekrandom ─► scan ─► full compaction
 *        ─► readwhilewriting (1 reader, 1 writer)
 *   then --sync-rounds rounds, settings and engines taking turns:
 *     fillsync, 1 writer (new db)   fillsync, N writers (new db)
 *   ─► medians ─► two tables, ratios, targets, amplification
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
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "tools/lsm/bench/bench.h"
#include "tools/lsm/bench/engine.h"

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

/* Bytes the process (every thread) passed to write(2)-family calls:
 * "wchar" of /proc/self/io; 0 if unavailable. No engine writes its files
 * through mmap, so this counts WAL, tables, manifests and info logs. */
static uint64_t process_written(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return v;
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
    const struct bench_opts *o;
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

static void begin(struct bench_result *r, double *t0, double *c0)
{
    memset(r, 0, sizeof(*r));
    *t0 = mono();
    *c0 = cpu();
}

static void end(struct bench_result *r, const struct bench_opts *o, double t0, double c0,
                uint64_t ops)
{
    r->secs = mono() - t0;
    r->cpu_secs = cpu() - c0;
    r->ops = ops;
    r->bytes = ops * (KEY_LEN + o->value_len);
    r->done = true;
}

/* `num` writes, keys in order or uniform; marks each key in `seen` (one bit
 * per key, may be NULL) and returns how many were new. */
static uint64_t fill(struct engine_db *db, const struct bench_opts *o, bool seq, uint64_t seed,
                     uint64_t *seen, struct bench_result *r)
{
    const struct engine *e = db->eng;
    double t0, c0;
    uint64_t s = seed, fresh_keys = 0;
    char key[KEY_LEN];
    begin(r, &t0, &c0);
    for (uint64_t i = 0; i < o->num; i++) {
        uint64_t k = seq ? i : rnd(&s) % o->num;
        make_key(k, key);
        if (e->put(db, key, KEY_LEN, value_at(&s), o->value_len) != 0)
            die("put");
        if (seen != NULL && !(seen[k / 64] & (1ull << (k % 64)))) {
            seen[k / 64] |= 1ull << (k % 64);
            fresh_keys++;
        }
    }
    end(r, o, t0, c0, o->num);
    return fresh_keys;
}

static void readrandom(struct engine_db *db, const struct bench_opts *o, uint64_t n, uint64_t seed,
                       struct bench_result *r)
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

/* `n` iterators, each from a uniform random key: seekrandom reads one
 * record (len 1, keys_in_db 0), the scan `len` records (ours: a token
 * range sized by keys_in_db). ops = iterators; bytes = records read. */
static void scanrandom(struct engine_db *db, const struct bench_opts *o, uint64_t n, size_t len,
                       uint64_t keys_in_db, uint64_t seed, struct bench_result *r)
{
    const struct engine *e = db->eng;
    double t0, c0;
    uint64_t s = seed, records = 0;
    char key[KEY_LEN];
    begin(r, &t0, &c0);
    for (uint64_t i = 0; i < n; i++) {
        size_t got = 0;
        make_key(rnd(&s) % o->num, key);
        if (e->scan(db, key, KEY_LEN, len, keys_in_db, &got) != 0)
            die("scan");
        records += got;
    }
    end(r, o, t0, c0, n);
    r->bytes = records * (KEY_LEN + o->value_len);
    r->found = records;
}

/* `writers` threads, each `per` random writes (0 = until the reader in the
 * calling thread has done `reads` gets). */
static void writers_run(struct engine_db *db, const struct bench_opts *o, int writers, uint64_t per,
                        uint64_t reads, uint64_t seed, struct bench_result *r)
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
        struct bench_result rr;
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

/* ---- files ---- */

/* Bytes of regular files under a directory, and of table files among
 * them (ours and RocksDB: *.sst, LevelDB: *.ldb). */
static uint64_t du_total, du_tables;
static int du_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    if (flag != FTW_F)
        return 0;
    du_total += (uint64_t)sb->st_size;
    const char *ext = path + f->base + strcspn(path + f->base, ".");
    if (strcmp(ext, ".sst") == 0 || strcmp(ext, ".ldb") == 0)
        du_tables += (uint64_t)sb->st_size;
    return 0;
}

static uint64_t disk_bytes(const char *dir, uint64_t *tables)
{
    du_total = 0;
    du_tables = 0;
    nftw(dir, du_one, 16, FTW_PHYS);
    *tables = du_tables;
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

static struct engine_db *fresh(const struct engine *e, const struct bench_opts *o,
                               enum bench_comp comp, const char *tag, bool sync, char *path,
                               size_t cap)
{
    snprintf(path, cap, "%s/%s-%s", o->dir, e->name, tag);
    rmrf(path);
    struct engine_cfg cfg = o->cfg;
    cfg.compress = comp == COMP_DEFAULT;
    cfg.sync = sync;
    struct engine_db *db = NULL;
    char err[512];
    if (e->open(path, &cfg, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "lsm-bench: %s\n", err);
        exit(1);
    }
    return db;
}

/* ---- phases ---- */

static const char *const comp_tag[COMP_COUNT] = {"raw", "default"};

static void progress(const struct bench_run *br, enum bench_comp comp, enum workload w,
                     const struct bench_opts *o)
{
    const struct bench_result *r = &br->r[w];
    fprintf(stderr, "  %-7s %-8s %-17s %10.0f ops/s  %6.2f s\n", comp_tag[comp], br->eng->name,
            report_workload_name(w, o), r->secs > 0 ? (double)r->ops / r->secs : 0, r->secs);
}

/* fillrandom ─► overwrite ─► settle ─► reads and scans on the settled
 * LSM ─► full compaction ─► readwhilewriting */
static void run_random(struct bench_run *br, enum bench_comp comp, const struct bench_opts *o)
{
    const struct engine *e = br->eng;
    char path[4096];
    size_t words = (size_t)((o->num + 63) / 64);
    uint64_t *seen = mem_calloc(MEM_OTHER, words, sizeof(*seen));
    if (seen == NULL)
        die("allocation");
    struct engine_db *db = fresh(e, o, comp, "random", false, path, sizeof(path));
    uint64_t w0 = process_written();
    br->live_keys = fill(db, o, false, 2, seen, &br->r[W_FILLRANDOM]);
    progress(br, comp, W_FILLRANDOM, o);
    br->live_keys += fill(db, o, false, 3, seen, &br->r[W_OVERWRITE]);
    progress(br, comp, W_OVERWRITE, o);
    mem_free(MEM_OTHER, seen, words * sizeof(*seen));
    /* A 10M-key run needs longer than 1M to work off its backlog. */
    unsigned max_ms = (unsigned)(60000 * (o->num / 1000000 + 1));
    e->settle(db, max_ms);
    br->process_written = process_written() - w0;
    br->user_written = br->r[W_FILLRANDOM].bytes + br->r[W_OVERWRITE].bytes;
    e->stats(db, &br->settled);
    br->disk_settled = disk_bytes(path, &br->tables_settled);

    e->stats(db, &br->read0);
    readrandom(db, o, o->reads, 4, &br->r[W_READRANDOM]);
    e->stats(db, &br->read1);
    progress(br, comp, W_READRANDOM, o);
    scanrandom(db, o, o->seeks, 1, 0, 8, &br->r[W_SEEKRANDOM]);
    progress(br, comp, W_SEEKRANDOM, o);
    scanrandom(db, o, o->scans, o->scan_len, br->live_keys, 9, &br->r[W_SCAN]);
    progress(br, comp, W_SCAN, o);

    double t0, c0;
    begin(&br->r[W_COMPACT], &t0, &c0);
    if (e->compact(db) != 0)
        die("compaction");
    end(&br->r[W_COMPACT], o, t0, c0, 0);
    br->r[W_COMPACT].bytes = 0;
    e->stats(db, &br->compacted);
    br->disk_compacted = disk_bytes(path, &br->tables_compacted);
    fprintf(stderr, "  %-7s %-8s %-17s %21.2f s\n", comp_tag[comp], e->name, "compact",
            br->r[W_COMPACT].secs);

    e->stats(db, &br->rww0);
    writers_run(db, o, 1, 0, o->rww_reads, 5, &br->r[W_READWHILEWRITING]);
    e->stats(db, &br->rww1);
    progress(br, comp, W_READWHILEWRITING, o);
    e->stats(db, &br->end);
    e->close(db);
    rmrf(path);
}

static void run_engine(struct bench_run *br, enum bench_comp comp, const struct bench_opts *o)
{
    const struct engine *e = br->eng;
    struct engine_cfg cfg = o->cfg;
    cfg.compress = comp == COMP_DEFAULT;
    e->describe(&cfg, br->desc, sizeof(br->desc));
    if (strstr(o->phases, "seq") != NULL) {
        char path[4096];
        struct engine_db *db = fresh(e, o, comp, "fillseq", false, path, sizeof(path));
        fill(db, o, true, 1, NULL, &br->r[W_FILLSEQ]);
        progress(br, comp, W_FILLSEQ, o);
        e->close(db);
        rmrf(path);
    }
    if (strstr(o->phases, "random") != NULL)
        run_random(br, comp, o);
}

/* One round of fillsync (1 writer, then N writers, each on a new db);
 * results go to one[], many[] at index `round`. */
static void run_sync(struct bench_run *br, enum bench_comp comp, const struct bench_opts *o,
                     int round, struct bench_result *one, struct bench_result *many)
{
    const struct engine *e = br->eng;
    char path[4096];
    struct engine_db *db = fresh(e, o, comp, "sync1", true, path, sizeof(path));
    writers_run(db, o, 1, o->sync_ops, 0, 6 + (uint64_t)round * 100, &one[round]);
    e->close(db);
    rmrf(path);

    db = fresh(e, o, comp, "syncN", true, path, sizeof(path));
    writers_run(db, o, o->sync_writers, o->sync_ops, 0, 7 + (uint64_t)round * 100, &many[round]);
    e->stats(db, &br->sync);
    e->close(db);
    rmrf(path);
}

static double rate(const struct bench_result *r)
{
    return r->done && r->secs > 0 ? (double)r->ops / r->secs : 0;
}

/* The result with the median rate of n (insertion sort; n is small). */
static struct bench_result median(struct bench_result *r, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && rate(&r[j - 1]) > rate(&r[j]); j--) {
            struct bench_result t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
        }
    return r[n / 2];
}

/* fsync latency on a VM drifts by 2x within minutes: the settings and
 * engines take turns, round after round, and each keeps its median. */
static void run_sync_rounds(struct bench_run runs[COMP_COUNT][MAX_ENGINES],
                            const struct bench_opts *o)
{
    static struct bench_result one[COMP_COUNT][MAX_ENGINES][MAX_ROUNDS];
    static struct bench_result many[COMP_COUNT][MAX_ENGINES][MAX_ROUNDS];
    for (int r = 0; r < o->sync_rounds; r++)
        for (int c = 0; c < COMP_COUNT; c++)
            for (int i = 0; o->comps[c] && i < o->n_engines; i++)
                run_sync(&runs[c][i], (enum bench_comp)c, o, r, one[c][i], many[c][i]);
    for (int c = 0; c < COMP_COUNT; c++)
        for (int i = 0; o->comps[c] && i < o->n_engines; i++) {
            runs[c][i].r[W_FILLSYNC1] = median(one[c][i], o->sync_rounds);
            runs[c][i].r[W_FILLSYNCN] = median(many[c][i], o->sync_rounds);
            progress(&runs[c][i], (enum bench_comp)c, W_FILLSYNC1, o);
            progress(&runs[c][i], (enum bench_comp)c, W_FILLSYNCN, o);
        }
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: lsm-bench [--num N] [--engines strata,leveldb,rocksdb]\n"
                    "  [--compression off,default] [--phases seq,random,sync]\n"
                    "  [--memtable-mb 4] [--cache-mb 64] [--block-size 4096]\n"
                    "  [--bloom-bits 10] [--zstd-level 3 (RocksDB)] [--strata-zstd-level N (ours; "
                    "default: the engine's)] [--compress-from-level N]\n"
                    "  [--l1-mb 10] [--file-mb 2]\n"
                    "  [--reads N] [--rww-reads N] [--seeks N] [--scans N] [--scan-len 1000]\n"
                    "  [--sync-ops 2000] [--sync-writers 8] [--sync-rounds 5]\n"
                    "  [--dir DIR]\n"
                    "defaults: --reads N, --rww-reads N/2, --seeks N/10, --scans N/500 (at\n"
                    "least 100); --compress-from-level: ours' default (lsm_options_init)\n");
    exit(EX_USAGE);
}

static void parse_list(const char *arg, struct bench_opts *o, bool engines)
{
    char list[256];
    snprintf(list, sizeof(list), "%s", arg);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (!engines) {
            if (strcmp(t, "off") == 0)
                o->comps[COMP_OFF] = true;
            else if (strcmp(t, "default") == 0)
                o->comps[COMP_DEFAULT] = true;
            else
                usage();
            continue;
        }
        const struct engine *e = strcmp(t, "strata") == 0    ? &engine_strata
                                 : strcmp(t, "leveldb") == 0 ? &engine_leveldb
                                 : strcmp(t, "rocksdb") == 0 ? &engine_rocksdb
                                                             : NULL;
        if (e == NULL || o->n_engines == MAX_ENGINES)
            usage();
        o->engines[o->n_engines++] = e;
    }
}

int main(int argc, char **argv)
{
    struct bench_opts o = {
        .num = 1000000,
        .scan_len = 1000,
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
                .strata_zstd_level = STRATA_LEVEL_DEFAULT,
                .compress_from = -1,
                .l1_bytes = 10u << 20,
                .file_bytes = 2u << 20},
    };
    const char *engines = "strata,leveldb,rocksdb", *comps = "off,default";
    static const struct option lo[] = {
        {"num", required_argument, NULL, 'n'},
        {"engines", required_argument, NULL, 'e'},
        {"compression", required_argument, NULL, 'Z'},
        {"memtable-mb", required_argument, NULL, 'm'},
        {"cache-mb", required_argument, NULL, 'c'},
        {"block-size", required_argument, NULL, 'b'},
        {"bloom-bits", required_argument, NULL, 'f'},
        {"zstd-level", required_argument, NULL, 'z'},
        {"strata-zstd-level", required_argument, NULL, 'y'},
        {"compress-from-level", required_argument, NULL, 'C'},
        {"l1-mb", required_argument, NULL, 'L'},
        {"file-mb", required_argument, NULL, 'F'},
        {"phases", required_argument, NULL, 'p'},
        {"reads", required_argument, NULL, 'r'},
        {"rww-reads", required_argument, NULL, 'w'},
        {"seeks", required_argument, NULL, 'k'},
        {"scans", required_argument, NULL, 'S'},
        {"scan-len", required_argument, NULL, 'l'},
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
        case 'Z': comps = optarg; break;
        case 'm': o.cfg.memtable_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'c': o.cfg.block_cache_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'b': o.cfg.block_size = strtoull(optarg, NULL, 10); break;
        case 'f': o.cfg.bloom_bits = atoi(optarg); break;
        case 'z': o.cfg.zstd_level = atoi(optarg); break;
        case 'y': o.cfg.strata_zstd_level = atoi(optarg); break;
        case 'C': o.cfg.compress_from = atoi(optarg); break;
        case 'L': o.cfg.l1_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'F': o.cfg.file_bytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'p': o.phases = optarg; break;
        case 'r': o.reads = strtoull(optarg, NULL, 10); break;
        case 'w': o.rww_reads = strtoull(optarg, NULL, 10); break;
        case 'k': o.seeks = strtoull(optarg, NULL, 10); break;
        case 'S': o.scans = strtoull(optarg, NULL, 10); break;
        case 'l': o.scan_len = strtoull(optarg, NULL, 10); break;
        case 's': o.sync_ops = strtoull(optarg, NULL, 10); break;
        case 'W': o.sync_writers = atoi(optarg); break;
        case 'R': o.sync_rounds = atoi(optarg); break;
        case 'd': o.dir = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || o.num == 0 || o.scan_len == 0 || o.sync_writers < 1 ||
        o.sync_writers > MAX_WRITERS || o.sync_rounds < 1 || o.sync_rounds > MAX_ROUNDS)
        usage();
    parse_list(engines, &o, true);
    parse_list(comps, &o, false);
    if (o.reads == 0)
        o.reads = o.num;
    if (o.rww_reads == 0)
        o.rww_reads = o.num / 2;
    if (o.seeks == 0)
        o.seeks = o.num / 10 > 0 ? o.num / 10 : 1;
    if (o.scans == 0)
        o.scans = o.num / 500 > 100 ? o.num / 500 : 100;
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
    setvbuf(stdout, NULL, _IOLBF, 0);
    pool_setup();
    static struct bench_run runs[COMP_COUNT][MAX_ENGINES];
    double t0 = mono();
    for (int k = 0; k < COMP_COUNT; k++)
        for (int i = 0; o.comps[k] && i < o.n_engines; i++) {
            runs[k][i].eng = o.engines[i];
            fprintf(stderr, "== %s, compression %s\n", o.engines[i]->name,
                    k == COMP_OFF ? "off" : "default");
            run_engine(&runs[k][i], (enum bench_comp)k, &o);
        }
    if (strstr(o.phases, "sync") != NULL)
        run_sync_rounds(runs, &o);
    report_print(runs, &o);
    printf("\nwhole run: %.0f s\n", mono() - t0);
    if (o.dir == tmpl)
        rmrf(tmpl);
    mem_free(MEM_OTHER, value_pool, POOL_LEN + 4096);
    return 0;
}
