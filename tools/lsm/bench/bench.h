/*
 * bench.h - what lsm-bench's runner (main.c) hands its report (report.c):
 * options, per-workload results and the figures taken between workloads,
 * for each compression setting and each engine. Single-threaded use.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/lsm/bench/engine.h"

#define KEY_LEN 16
#define MAX_ENGINES 3
#define MAX_WRITERS 64
#define MAX_ROUNDS 9

/* The two tables: every engine raw, then each at its production default. */
enum bench_comp {
    COMP_OFF,
    COMP_DEFAULT,
    COMP_COUNT,
};

/* In the order of the report's tables (not the order they run in). */
enum workload {
    W_FILLRANDOM,
    W_OVERWRITE,
    W_READRANDOM,
    W_READWHILEWRITING,
    W_FILLSYNC1,
    W_FILLSYNCN,
    W_SEEKRANDOM,
    W_SCAN,
    W_FILLSEQ,
    W_COMPACT,
    W_COUNT
};

struct bench_opts {
    uint64_t num;
    uint64_t reads;
    uint64_t rww_reads;
    uint64_t seeks;
    uint64_t scans;
    size_t scan_len;
    uint64_t sync_ops;
    int sync_writers;
    int sync_rounds; /* fillsync repetitions; the median is reported */
    size_t value_len;
    const char *dir;
    const char *phases; /* "seq,random,sync" or a subset */
    bool comps[COMP_COUNT];
    const struct engine *engines[MAX_ENGINES];
    int n_engines;
    struct engine_cfg cfg; /* cfg.compress is set per table */
};

struct bench_result {
    bool done;
    double secs;
    uint64_t ops;
    uint64_t bytes; /* user bytes written or read */
    double cpu_secs;
    uint64_t found;    /* reads: keys found; seeks: records read */
    uint64_t side_ops; /* readwhilewriting: writes done meanwhile;
                          scan: records read */
};

/* One engine under one compression setting. Fields of phases that did not
 * run stay zero. */
struct bench_run {
    const struct engine *eng;
    char desc[256];
    struct bench_result r[W_COUNT];
    /* fillrandom + overwrite, up to the end of the settle that follows */
    uint64_t live_keys;                        /* distinct keys written */
    uint64_t user_written;                     /* key + value bytes of those writes */
    uint64_t process_written;                  /* bytes the process wrote (write(2) family) */
    uint64_t disk_settled, disk_compacted;     /* every file in the db dir */
    uint64_t tables_settled, tables_compacted; /* *.sst / *.ldb files */
    struct engine_stats settled, compacted;
    struct engine_stats read0, read1; /* around readrandom */
    struct engine_stats rww0, rww1;   /* around readwhilewriting */
    struct engine_stats end;          /* after readwhilewriting */
    struct engine_stats sync;         /* after the last fillsync-N */
};

/* Prints the report of `runs[comp][engine]` to stdout. */
void report_print(struct bench_run runs[COMP_COUNT][MAX_ENGINES], const struct bench_opts *o);

/* The workload's name in the report ("fillsync-8" for 8 writers). */
const char *report_workload_name(enum workload w, const struct bench_opts *o);
