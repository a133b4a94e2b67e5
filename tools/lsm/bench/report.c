/*
 * report.c - lsm-bench's report: for each compression setting a table of
 * every workload per engine (ops/s, MB/s, CPU), the ratio of ours to the
 * faster of LevelDB and RocksDB with the target, and the amplification
 * figures. Called once, from the harness thread, after every run.
 */
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "tools/lsm/bench/bench.h"
#include "tools/lsm/bench/engine.h"

/* Workloads in table order, with whether a ratio target applies. */
static const char *const workload_name[W_COUNT] = {
    "fillrandom", "overwrite",  "readrandom", "readwhilewriting", "fillsync-1",
    "fillsync-N", "seekrandom", "scan-N",     "fillseq",          "compact",
};

const char *report_workload_name(enum workload w, const struct bench_opts *o)
{
    static char sync_name[32], scan_name[32];
    if (w == W_FILLSYNCN) {
        snprintf(sync_name, sizeof(sync_name), "fillsync-%d", o->sync_writers);
        return sync_name;
    }
    if (w == W_SCAN) {
        snprintf(scan_name, sizeof(scan_name), "scan-%zu", o->scan_len);
        return scan_name;
    }
    return workload_name[w];
}

static double rate(const struct bench_result *r)
{
    return r->done && r->secs > 0 ? (double)r->ops / r->secs : 0;
}

/* a / b as a fraction of counters that an engine may not report. */
static double frac(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
    if (a1 == ENGINE_UNKNOWN || b1 == ENGINE_UNKNOWN || b1 <= b0)
        return -1;
    return (double)(a1 - a0) / (double)(b1 - b0);
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

/* The workload's note for one engine's row. */
static void note(const struct bench_run *br, enum workload w, const struct bench_opts *o, char *buf,
                 size_t cap)
{
    const struct bench_result *r = &br->r[w];
    size_t len = 0;
    buf[0] = 0;
    switch (w) {
    case W_READRANDOM:
    case W_READWHILEWRITING:
        len += (size_t)snprintf(buf, cap, "%.0f%% found",
                                r->ops ? 100.0 * (double)r->found / (double)r->ops : 0);
        if (w == W_READWHILEWRITING)
            len += (size_t)snprintf(buf + len, cap - len, ", writer %.0f ops/s meanwhile",
                                    r->secs > 0 ? (double)r->side_ops / r->secs : 0);
        break;
    case W_SEEKRANDOM:
        len += (size_t)snprintf(buf, cap, "1 record per seek, new iterator each");
        break;
    case W_SCAN:
        len += (size_t)snprintf(buf, cap, "ops = scans; %.0f records/scan; MB/s of records",
                                r->ops ? (double)r->found / (double)r->ops : 0);
        break;
    case W_FILLSYNC1:
    case W_FILLSYNCN:
        len += (size_t)snprintf(buf, cap, "%d writer(s) x %llu ops, median of %d",
                                w == W_FILLSYNC1 ? 1 : o->sync_writers,
                                (unsigned long long)o->sync_ops, o->sync_rounds);
        break;
    default: break;
    }
    if (br->eng == &engine_rocksdb && len < cap)
        snprintf(buf + len, cap - len, "%s*", len ? " " : "");
}

static void ratio_table(const struct bench_run *runs, int n, int ours, int ldb, int rdb,
                        const struct bench_opts *o)
{
    static const enum workload order[] = {
        W_FILLRANDOM, W_OVERWRITE,  W_READRANDOM, W_READWHILEWRITING, W_FILLSYNC1,
        W_FILLSYNCN,  W_SEEKRANDOM, W_SCAN,       W_FILLSEQ,
    };
    printf("\n%-17s", "ops/s");
    for (int i = 0; i < n; i++)
        printf(" %11s", runs[i].eng->name);
    printf("   %-13s %s\n", "ours/faster", "target: ours >= 1.0x the faster of LevelDB, RocksDB");
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        enum workload w = order[k];
        if (!runs[ours].r[w].done)
            continue;
        printf("%-17s", report_workload_name(w, o));
        for (int i = 0; i < n; i++)
            printf(" %11.0f", rate(&runs[i].r[w]));
        double us = rate(&runs[ours].r[w]);
        double l = ldb >= 0 ? rate(&runs[ldb].r[w]) : 0;
        double rr = rdb >= 0 ? rate(&runs[rdb].r[w]) : 0;
        double best = l > rr ? l : rr;
        const char *faster = best <= 0 ? "" : l > rr ? "LevelDB" : "RocksDB";
        char ratio[32] = "-";
        if (best > 0)
            snprintf(ratio, sizeof(ratio), "%.2f", us / best);
        if (w == W_FILLSEQ)
            printf("   %-13s (no target)\n", ratio);
        else if (best <= 0)
            printf("   %-13s ?\n", ratio);
        else
            printf("   %-13s %s (vs %s)\n", ratio, us >= best ? "met" : "MISSED", faster);
    }
}

/* One row of the amplification table: each engine's figure formatted by
 * `cell`. */
typedef void (*report_cell_fn)(const struct bench_run *br, char *buf, size_t cap);

static void amp_row(const char *label, const struct bench_run *runs, int n, report_cell_fn cell)
{
    printf("%-44s", label);
    for (int i = 0; i < n; i++) {
        char buf[64];
        cell(&runs[i], buf, sizeof(buf));
        printf(" %15s", buf);
    }
    printf("\n");
}

static void cell_write_amp(const struct bench_run *br, char *buf, size_t cap)
{
    if (br->process_written == 0 || br->user_written == 0)
        snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%.2f", (double)br->process_written / (double)br->user_written);
}

static void cell_disk(const struct bench_run *br, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.1f / %.1f", (double)br->disk_settled / 1e6,
             (double)br->disk_compacted / 1e6);
}

static void cell_tables(const struct bench_run *br, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.1f / %.1f", (double)br->tables_settled / 1e6,
             (double)br->tables_compacted / 1e6);
}

static void cell_space_amp(const struct bench_run *br, char *buf, size_t cap)
{
    if (br->tables_compacted == 0)
        snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%.2f", (double)br->tables_settled / (double)br->tables_compacted);
}

static void cell_disk_user(const struct bench_run *br, char *buf, size_t cap)
{
    double live = (double)br->live_keys * (KEY_LEN + 100.0);
    if (br->r[W_OVERWRITE].ops > 0)
        live = (double)br->live_keys *
               ((double)br->r[W_OVERWRITE].bytes / (double)br->r[W_OVERWRITE].ops);
    if (live <= 0)
        snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%.2f / %.2f", (double)br->disk_settled / live,
                 (double)br->disk_compacted / live);
}

static void cell_compact(const struct bench_run *br, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.1f", br->r[W_COMPACT].secs);
}

static void cell_group(const struct bench_run *br, char *buf, size_t cap)
{
    double one = rate(&br->r[W_FILLSYNC1]);
    snprintf(buf, cap, "%.1fx", one > 0 ? rate(&br->r[W_FILLSYNCN]) / one : 0);
}

static void ours_figures(const struct bench_run *er, const struct bench_opts *o)
{
    const struct engine_stats *s = &er->settled, *c = &er->compacted;
    printf("ours (lsm_stats): write amplification %.2f after fillrandom+overwrite, settled "
           "((WAL + flush + compaction bytes) / user bytes)\n",
           s->write_amp);
    printf("ours (lsm_stats): space amplification %.2f settled, %.2f after full compaction "
           "(table bytes / largest sorted run; target <= 1.15 after full compaction: %s)\n",
           s->space_amp, c->space_amp, c->space_amp <= 1.15 ? "met" : "MISSED");
    double past = frac(er->read0.gets_past_first_hit, er->read1.gets_past_first_hit, er->read0.gets,
                       er->read1.gets);
    double newer = frac(er->read0.gets_newer_below, er->read1.gets_newer_below, er->read0.gets,
                        er->read1.gets);
    double rpast = frac(er->rww0.gets_past_first_hit, er->rww1.gets_past_first_hit, er->rww0.gets,
                        er->rww1.gets);
    double rnewer =
        frac(er->rww0.gets_newer_below, er->rww1.gets_newer_below, er->rww0.gets, er->rww1.gets);
    printf("ours (lsm_stats): gets_past_first_hit / gets %.2f%% in readrandom (gets_newer_below "
           "%.2f%%), %.2f%% in readwhilewriting (%.2f%%)\n",
           100 * past, 100 * newer, 100 * rpast, 100 * rnewer);
    double hits = (double)(er->read1.cache_hits - er->read0.cache_hits);
    double misses = (double)(er->read1.cache_misses - er->read0.cache_misses);
    printf("ours (lsm_stats): table records per live key %.2f settled, %.2f after full "
           "compaction; block cache hit rate in readrandom %.0f%%; write stalls %.2f s over "
           "fillrandom+overwrite",
           er->live_keys ? (double)s->table_records / (double)er->live_keys : 0,
           er->live_keys ? (double)c->table_records / (double)er->live_keys : 0,
           hits + misses > 0 ? 100.0 * hits / (hits + misses) : 0, (double)s->stall_micros / 1e6);
    if (er->r[W_FILLSYNCN].done && er->sync.wal_syncs > 0)
        printf("; fillsync-%d %.1f writes per WAL fdatasync", o->sync_writers,
               (double)er->r[W_FILLSYNCN].ops / (double)er->sync.wal_syncs);
    printf("\n");
}

static void print_table(const struct bench_run *runs, int n, enum bench_comp comp,
                        const struct bench_opts *o)
{
    printf("\n==== (%c) %s ====\n", comp == COMP_OFF ? 'a' : 'b',
           comp == COMP_OFF ? "compression OFF for every engine"
                            : "each engine with its production default compression");
    for (int i = 0; i < n; i++)
        printf("  %-8s %s\n", runs[i].eng->name, runs[i].desc);
    printf("\n%-17s %-9s %11s %8s %10s   %s\n", "workload", "engine", "ops/s", "MB/s", "CPU µs/op",
           "notes");
    for (int w = 0; w < W_COUNT; w++) {
        if (w == W_COMPACT || !runs[0].r[w].done)
            continue;
        for (int i = 0; i < n; i++) {
            const struct bench_result *r = &runs[i].r[w];
            char buf[160];
            note(&runs[i], (enum workload)w, o, buf, sizeof(buf));
            printf("%-17s %-9s %11.0f %8.1f %10.2f   %s\n",
                   i == 0 ? report_workload_name((enum workload)w, o) : "", runs[i].eng->name,
                   rate(r), r->secs > 0 ? (double)r->bytes / r->secs / 1e6 : 0,
                   r->ops ? r->cpu_secs * 1e6 / (double)r->ops : 0, buf);
        }
    }
    printf("* Debian's librocksdb is built with assertions on, which slows its writes by "
           "25-35%%.\n");

    int ours = -1, ldb = -1, rdb = -1;
    for (int i = 0; i < n; i++) {
        if (runs[i].eng == &engine_strata)
            ours = i;
        if (runs[i].eng == &engine_leveldb)
            ldb = i;
        if (runs[i].eng == &engine_rocksdb)
            rdb = i;
    }
    if (ours >= 0 && (ldb >= 0 || rdb >= 0))
        ratio_table(runs, n, ours, ldb, rdb, o);

    printf("\n%-44s", "");
    for (int i = 0; i < n; i++)
        printf(" %15s", runs[i].eng->name);
    printf("\n");
    if (runs[0].r[W_OVERWRITE].done) {
        amp_row("write amp: bytes written / user bytes (1)", runs, n, cell_write_amp);
        amp_row("on-disk MB, settled / after full compaction", runs, n, cell_disk);
        amp_row("table MB, settled / after full compaction", runs, n, cell_tables);
        amp_row("space amp: table MB settled / compacted", runs, n, cell_space_amp);
        amp_row("on-disk / live user bytes (2), same points", runs, n, cell_disk_user);
        amp_row("full compaction, s", runs, n, cell_compact);
    }
    if (runs[0].r[W_FILLSYNC1].done) {
        char label[64];
        snprintf(label, sizeof(label), "group commit: fillsync-%d / fillsync-1", o->sync_writers);
        amp_row(label, runs, n, cell_group);
    }
    if (runs[0].r[W_OVERWRITE].done)
        printf("(1) bytes the process passed to write(2) (/proc/self/io wchar: WAL, tables, "
               "manifest, info log) from the start of fillrandom until settled after overwrite,\n"
               "    / key+value bytes written by fillrandom+overwrite. "
               "(2) live user bytes = distinct keys written x %zu B.\n",
               KEY_LEN + o->value_len);
    if (ours >= 0 && runs[ours].r[W_OVERWRITE].done)
        ours_figures(&runs[ours], o);
}

void report_print(struct bench_run runs[COMP_COUNT][MAX_ENGINES], const struct bench_opts *o)
{
    printf("\nlsm-bench: %llu keys, %d-byte keys, %zu-byte values (half compressible), WAL on, "
           "sync off except fillsync\n",
           (unsigned long long)o->num, KEY_LEN, o->value_len);
    printf("same for all: memtable %zu MiB, block cache %zu MiB, %zu KiB blocks, bloom %d "
           "bits/key, L1 %zu MiB x10, %zu MiB files, zstd level %d where zstd is used\n",
           o->cfg.memtable_bytes >> 20, o->cfg.block_cache_bytes >> 20, o->cfg.block_size >> 10,
           o->cfg.bloom_bits, o->cfg.l1_bytes >> 20, o->cfg.file_bytes >> 20, o->cfg.zstd_level);
    printf("reads, seeks, scans and full compaction on the db left by fillrandom+overwrite once "
           "settled; readwhilewriting after the full compaction\n");
    machine_facts(o->dir);
    for (int c = 0; c < COMP_COUNT; c++)
        if (o->comps[c])
            print_table(runs[c], o->n_engines, (enum bench_comp)c, o);
}
