"""Soak: a strata-node cluster under a QUORUM load while its nodes are
killed and restarted at random (make soak-cluster; docs/NODE.md).

Three nodes (SOAK_NODES), N=3 at QUORUM. SOAK_CLIENTS clients set, get
and delete SOAK_KEYS keys through every node, each operation recorded in
the history checker (tests/integration/history.py). Every SOAK_KILL_EVERY
seconds (randomised) one node is SIGKILLed (never two at once), left dead
for a few seconds, and restarted on the same ports and data. After
SOAK_MINUTES the load stops, the cluster converges, hints drain, and:
every key is read through every node (final reads), the history is
checked (every acknowledged write readable or superseded, no value that
was never written, timeouts indeterminate), and an anti-entropy cycle on
every node moves no key. Prints one summary line per check and exits 1
on any failure.
"""
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import helpers  # noqa: E402
from history import OK, History, summarize  # noqa: E402
from nodes import Cluster  # noqa: E402
from test_replication import (load_client, mc_get, no_hints_pending,  # noqa: E402
                              run_repair, versions)


def env(name, default):
    return type(default)(os.environ.get(name, default))


def main():
    minutes = env("SOAK_MINUTES", 30.0)
    nodes = env("SOAK_NODES", 3)
    clients = env("SOAK_CLIENTS", 4)
    pace = env("SOAK_PACE", 0.004)  # per client: ~1,000 operations/s in all
    nkeys = env("SOAK_KEYS", 64)
    kill_every = env("SOAK_KILL_EVERY", 20.0)
    base = os.environ.get("SOAK_DIR", "build/soak")
    os.makedirs(base, exist_ok=True)
    base = os.path.join(base, time.strftime("run-%Y%m%d-%H%M%S"))
    history = History()
    keys = [b"soak:%s:%d" % (history.run_id.encode(), i) for i in range(nkeys)]
    stop = threading.Event()
    rnd = random.Random(1)
    kills = 0
    t_end = time.monotonic() + minutes * 60
    with Cluster(base, nodes) as cl:
        cl.start()
        addrs = [n.addr for n in cl]
        threads = [threading.Thread(target=load_client,
                                    args=(history, addrs, "c%d" % i, keys, stop, 10 ** 9, pace),
                                    daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        try:
            while time.monotonic() < t_end:
                time.sleep(min(rnd.uniform(0.5, 1.5) * kill_every,
                               max(0.0, t_end - time.monotonic())))
                if time.monotonic() >= t_end:
                    break
                victim = rnd.randrange(nodes)
                cl.kill(victim)
                kills += 1
                time.sleep(rnd.uniform(1.0, 6.0))
                cl.restart(victim)
                cl.wait_converged(timeout=60.0)
                print("soak: %4.1f min, kill %d (node %d), %s" % (
                    (minutes * 60 - (t_end - time.monotonic())) / 60, kills, victim,
                    history.summary().splitlines()[0] if history.summary() else ""),
                    flush=True)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        cl.wait_converged(timeout=60.0)
        assert helpers.wait_until(lambda: no_hints_pending(cl), timeout=120.0, interval=0.2)
        for i, n in enumerate(cl):
            with n.connect() as c:
                history.final_reads(lambda k: mc_get(c, k), keys=keys, client="final%d" % i)
        result = history.check()
        counts = summarize(history.ops())
        acked = sum(1 for op in history.ops() if op.is_write and op.outcome == OK)
        moved = [run_repair(n, timeout=600.0) for n in cl]
        same = all(versions(n, keys) == versions(cl[0], keys) for n in cl)
    print("soak: %.1f minutes, %d nodes, %d clients, %d keys" % (minutes, nodes, clients, nkeys))
    print("soak: operations %d, kills %d, acknowledged writes %d, outcomes %s" % (
        len(history.ops()), kills, acked, dict(counts)))
    print("soak: history check: %s" % ("ok: lost 0, phantom 0" if result.ok else "FAILED"))
    if not result.ok:
        print(result.report())
    print("soak: replicas identical: %s; repair afterwards moved %s" % (
        same, [m["keys_pulled"] + m["keys_pushed"] for m in moved]))
    ok = result.ok and same and all(m["keys_pulled"] + m["keys_pushed"] == 0 for m in moved)
    print("soak: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
