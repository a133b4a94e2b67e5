#!/bin/bash
# bench/run.sh BUILD_DIR - the L1 path side by side with stock memcached.
#
# Starts memcached and strata-proxy with the same flags (-t 2 -m 1024) on
# free loopback ports and drives each with the same memcaslap workloads
# (libmemcached's load generator; strata-bench replaces it later), alternating
# servers, ROUNDS rounds, medians. Prints ops/s and the server CPU time per
# request (utime+stime from /proc divided by requests served), which is far
# steadier than ops/s when client and server share two cores.
set -euo pipefail
B=${1:-build/release}
exec /usr/bin/python3 "$(dirname "$0")/l1_vs_memcached.py" "$B/bin/strata-proxy"
