#!/bin/bash
# bench/run.sh BUILD_DIR - the L1 path side by side with stock memcached.
#
# Starts memcached and strata-proxy with the same flags (-t 2 -m 1024) on
# free loopback ports, preloads the same keys into both and drives each with
# the same strata-bench workloads, alternating servers, BENCH_ROUNDS rounds,
# medians; then compares RSS after 1,000,000 items. See docs/BENCH.md for
# the columns and the knobs (BENCH_ROUNDS, BENCH_SECONDS, BENCH_PROTOCOL,
# BENCH_JSON, MEMCACHED).
set -euo pipefail
B=${1:-build/release}
exec "${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/l1_vs_memcached.py" \
    "$B/bin/strata-proxy" "$B/bin/strata-bench"
