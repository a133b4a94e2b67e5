#!/bin/bash
# run.sh LSM_BENCH [lsm-bench options] - the script behind `make
# bench-storage`: runs lsm-bench (ours vs LevelDB vs RocksDB, see
# docs/STORAGE_BENCH.md) and keeps a copy of the report, with the date and
# commit, in build/bench-storage-<date>.txt.
set -euo pipefail
bin=$1
shift
out=build/bench-storage-$(date +%Y%m%d-%H%M%S).txt
{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
    echo "# $bin $*"
    "$bin" "$@"
} | tee "$out"
echo "report kept in $out"
