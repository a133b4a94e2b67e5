# tools/lsm/: the storage engine's stress/crash tool and db_bench-style benchmark.
