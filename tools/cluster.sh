#!/bin/bash
# cluster.sh BIN [BASE_PORT [CLUSTER_BASE_PORT]] - three strata-nodes on
# loopback in the foreground (make cluster): memcached ports BASE..BASE+2,
# cluster ports CLUSTER_BASE..+2, data and logs under build/cluster/.
# Ctrl-C stops them all (by pid).
set -u
BIN=${1:?strata-node binary}
BASE=${2:-11311}
CBASE=${3:-7311}
DIR=build/cluster
mkdir -p "$DIR"
pids=()
stop() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    echo "cluster stopped"
    exit 0
}
trap stop INT TERM
seed="127.0.0.1:$CBASE"
for i in 0 1 2; do
    "$BIN" -d "$DIR/node$i" -p $((BASE + i)) -P $((CBASE + i)) -s "$seed" -v \
        >>"$DIR/node$i.log" 2>&1 &
    pids+=($!)
done
sleep 1
for i in 0 1 2; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "node$i did not start; its log:"; tail -n 20 "$DIR/node$i.log"
        stop
    fi
done
cat <<MSG
three strata-nodes on 127.0.0.1 (data and logs in $DIR/):
  memcached protocol: $((BASE)), $((BASE + 1)), $((BASE + 2))   e.g. memcstat --servers=127.0.0.1:$BASE
  cluster ports:      $((CBASE)), $((CBASE + 1)), $((CBASE + 2))
  membership and ring: printf 'stats cluster\r\n' | nc 127.0.0.1 $BASE
Every key is replicated to all three (N=3) at QUORUM; any node
coordinates any command (docs/NODE.md). strata-admin -n 127.0.0.1:$BASE
status | ring | hints | repair.
Ctrl-C stops all three.
MSG
wait
