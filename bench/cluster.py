"""Cluster benchmark: three strata-nodes on loopback against one, driven by
strata-bench through the memcached port.

Configurations, each on fresh nodes and fresh data directories: one node with
-N 1, then three nodes with -N 3 at ONE, QUORUM and ALL (the consistency
levels are node flags, so the three nodes are restarted for each). In each, a
write phase (sets only, on a cluster that starts empty), a preload of every
key, and a read phase (gets only); against the cluster one strata-bench per
node runs at the same time, against the single node one strata-bench with as
many threads and connections in all. The QUORUM cluster then runs each phase
again with half the requests in flight, and lower still (at most
BENCH_HALF_STEPS steps) while ops/s stays above 0.6 of the peak:
strata-bench is a closed loop without a rate limit, so this is how "half of
peak load" is approximated, and the table shows what fraction of the peak
ops/s each step came to. CPU per operation is each node's utime+stime
(/proc/PID/stat) over the phase divided by the operations completed
cluster-wide. Nodes are stopped by PID at the end, whatever happens. See
docs/BENCH.md.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
KEYS = int(os.environ.get("BENCH_KEYS", "100000"))
CONNS = int(os.environ.get("BENCH_CONNS", "8"))    # per strata-bench thread
DEPTH = int(os.environ.get("BENCH_DEPTH", "4"))    # requests in flight per connection
JSON_OUT = os.environ.get("BENCH_JSON", "")
VALUE = 100
NODES = 3
NODE_FLAGS = ["-l", "127.0.0.1", "-t", "2", "--repair-interval", "0"]
START_SECONDS = 10     # a node answers on its memcached port
JOIN_SECONDS = 30      # every node sees ring_nodes 3, every member up
GOSSIP_ROUND = 1.1     # coordinators' views follow `stats cluster` a round later
STOP_SECONDS = 10

# name, replicas, consistency (read and write), nodes
CONFIGS = [
    ("N=1 single node", 1, "one", 1),
    ("N=3 ONE", 3, "one", NODES),
    ("N=3 QUORUM", 3, "quorum", NODES),
    ("N=3 ALL", 3, "all", NODES),
]
HALF = "N=3 QUORUM"    # the configuration run again at lower concurrency
HALF_FRACTION = 0.6    # "about half of peak": lower the concurrency until ops/s is at most this
HALF_STEPS = int(os.environ.get("BENCH_HALF_STEPS", "4"))  # 1: only half the concurrency
# cluster-port counters whose growth during a phase is worth a note
COORD_TROUBLE = ["coord_unavailable", "coord_timeouts", "coord_failures", "coord_replica_failures",
                 "coord_hints", "coord_clock_refusals", "link_timeouts", "link_overloaded", "link_down",
                 "clock_refusals", "storage_errors"]
HINTS_SECONDS = 60     # hints written during a phase are replayed before the next one


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One strata-node on free loopback ports with its own data directory."""

    def __init__(self, name, node_bin, flags, attempts=3):
        self.name = name
        self.data_dir = tempfile.mkdtemp(prefix="strata-bench-node-")
        # stderr to a file: a pipe nobody reads could fill and block the node
        self.log = tempfile.TemporaryFile()
        self.proc = None
        try:
            for _ in range(attempts):  # another process may take a free port in between
                self.port, self.cport = free_port(), free_port()
                self.proc = subprocess.Popen([node_bin, "-d", self.data_dir, "-p", str(self.port),
                                              "-P", str(self.cport)] + NODE_FLAGS + flags,
                                             stdin=subprocess.DEVNULL, stdout=self.log,
                                             stderr=subprocess.STDOUT)
                if self._wait_ready():
                    return
                self.stop(signal.SIGKILL)
            raise RuntimeError(f"{name} did not start: {self.log_tail()}")
        except BaseException:  # Ctrl-C too: nobody else knows this process yet
            self.stop(signal.SIGKILL)
            self.remove()
            raise

    def _wait_ready(self):
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if int(self.stats().get("pid", -1)) == self.proc.pid:
                    return True
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        return False

    def log_tail(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-600:]

    @property
    def pid(self):
        return self.proc.pid

    def command(self, req, end):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(req)
            buf = b""
            while not buf.endswith(end) and buf != b"ERROR\r\n":
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
        return buf.decode(errors="replace")

    def stats(self, sub=""):
        text = self.command(f"stats {sub}".strip().encode() + b"\r\n", b"END\r\n")
        return dict(l.split(" ", 2)[1:] for l in text.splitlines() if l.startswith("STAT "))

    def joined(self, k):
        """Whether this node shows ring_nodes k and k members, all up."""
        st = self.stats("cluster")
        members = [v for n, v in st.items() if n.startswith("member_")]
        return (int(st.get("ring_nodes", -1)) == k and len(members) == k
                and all(" state=up " in f" {m} " for m in members))

    def served(self):
        st = self.stats()
        return int(st["cmd_get"]) + int(st["cmd_set"])

    def hints_pending(self):
        return int(self.stats("hints").get("hints_pending", 0))

    def counters(self):
        st = self.stats("cluster")
        return {k: int(st.get(k, 0)) for k in COORD_TROUBLE}

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, sig=signal.SIGTERM):
        """Stops by PID; returns the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed after SIGTERM timed out"
        return self.proc.returncode

    def remove(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_nodes(node_bin, replicas, level, k):
    """k nodes joined through the first one's cluster port, waited on until
    each sees all k up. Stops what it started if anything fails."""
    flags = ["-N", str(replicas), "--read-consistency", level, "--write-consistency", level]
    nodes = []
    try:
        for i in range(k):
            seeds = ["-s", f"127.0.0.1:{nodes[0].cport}"] if i > 0 else []
            nodes.append(Node(f"node{i + 1}", node_bin, flags + seeds))
        if k > 1:
            deadline = time.monotonic() + JOIN_SECONDS
            while True:
                try:
                    if all(n.joined(k) for n in nodes):
                        break
                except OSError:
                    pass
                for n in nodes:
                    if n.proc.poll() is not None:
                        raise RuntimeError(f"{n.name} exited while joining: {n.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster did not converge in {JOIN_SECONDS} s: " + "; ".join(
                        f"{n.name}: {n.stats('cluster').get('ring_nodes')} in ring" for n in nodes))
                time.sleep(0.2)
            time.sleep(GOSSIP_ROUND)
        return nodes
    except BaseException:
        stop_nodes(nodes, [])
        raise


def machine_busy_seconds():
    """CPU time all CPUs spent outside idle and iowait (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system


def counters(nodes):
    return [n.counters() for n in nodes]


def grown(before, after):
    """The COORD_TROUBLE counters that grew, summed over the nodes."""
    d = {k: sum(b[k] - a[k] for a, b in zip(before, after)) for k in COORD_TROUBLE}
    return {k: v for k, v in d.items() if v}


def drain_hints(nodes):
    """Waits (bounded) until no node holds a hint; returns (seconds, left)."""
    t0 = time.monotonic()
    while True:
        left = sum(n.hints_pending() for n in nodes)
        if left == 0 or time.monotonic() - t0 > HINTS_SECONDS:
            return time.monotonic() - t0, left
        time.sleep(0.2)


def stop_nodes(nodes, problems, where=""):
    for n in nodes:
        if n.proc is not None and n.proc.poll() is not None:
            problems.append(f"{where}{n.name} exited before the end (status {n.proc.returncode}): "
                            f"{n.log_tail()}")
        else:
            status = n.stop()
            if status not in (0, None):
                problems.append(f"{where}{n.name} did not exit cleanly on SIGTERM ({status}): "
                                f"{n.log_tail()}")
        n.remove()


class BenchProc:
    """A strata-bench process whose output goes to files, not pipes."""

    def __init__(self, bench_bin, node, flags):
        self.node = node
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.proc = subprocess.Popen([bench_bin, "-s", f"127.0.0.1:{node.port}"] + flags,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)

    def finish(self, timeout):
        """Waits (bounded); returns (summary dict or None, rc, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None, "timeout", f"strata-bench still running after {timeout:.0f} s, killed"
        self.out.seek(0)
        self.err.seek(0)
        try:
            summary = json.loads(self.out.read())
        except ValueError:
            summary = None
        return summary, self.proc.returncode, self.err.read().decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def preload(bench_bin, node):
    """Sets every key once through one node."""
    b = BenchProc(bench_bin, node, ["-k", str(KEYS), "-v", str(VALUE), "-t", "2", "-c", "4",
                                    "--preload-only", "--preload-depth", "16", "-q", "--json"])
    try:
        summary, rc, err = b.finish(120)
    finally:
        b.kill()
    if rc != 0 or summary is None:
        raise RuntimeError(f"preload through {node.name} failed (exit {rc}):\n{err[-2000:]}")
    return summary["preload"]


def phase(bench_bin, nodes, ratio, conns, depth):
    """One measured phase: a strata-bench per node at once (one thread each,
    `conns` connections of `depth` requests in flight); against a single
    node one strata-bench with as many threads and connections as the
    cluster phase has in all."""
    threads = 1 if len(nodes) > 1 else NODES
    flags = ["-t", str(threads), "-c", str(conns), "-d", str(depth), "-k", str(KEYS),
             "-v", str(VALUE), "-r", ratio, "-T", str(SECONDS), "-q", "--json"]
    c0 = [n.cpu_seconds() for n in nodes]
    s0 = [n.served() for n in nodes]
    k0 = counters(nodes)
    m0, o0, t0 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    benches = []
    try:
        for n in nodes:
            benches.append(BenchProc(bench_bin, n, flags))
        outs = [b.finish(SECONDS + 60) for b in benches]
    finally:
        for b in benches:
            b.kill()
    m1, o1, t1 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    r = {"ok": True, "reports": [], "conns": conns * threads * len(nodes), "depth": depth,
         "inflight": conns * threads * len(nodes) * depth}
    runs = []
    for n, (summary, rc, err) in zip(nodes, outs):
        run = summary.get("run") if summary else None
        if rc != 0 or run is None:
            r["ok"] = False
        if rc != 0 or run is None or err.strip():
            r["reports"].append(f"strata-bench against {n.name}: exit {rc}, "
                                f"{summary.get('result') if summary else 'no summary'}\n    "
                                + "\n    ".join(err.strip().splitlines()[:12]))
        if run is not None:
            runs.append(run)
    if any(n.proc.poll() is not None for n in nodes):
        r["ok"] = False  # stop_nodes() reports which one and its log
        r["reports"].append("a node exited during the phase")
        return r
    c1 = [n.cpu_seconds() for n in nodes]
    s1 = [n.served() for n in nodes]
    k1 = counters(nodes)
    if not runs:
        return r
    ops = sum(x["requests"] for x in runs)
    gets = sum(x["gets"] for x in runs)
    hits = sum(x["hits"] for x in runs)
    r.update({
        "ops": sum(x["ops_per_sec"] for x in runs),
        # no histograms in the JSON summary: the worst of the processes
        "p50": max(x["latency_us"]["p50"] for x in runs),
        "p99": max(x["latency_us"]["p99"] for x in runs),
        "hit": hits / gets if gets else None,
        "node_us": [(b - a) * 1e6 / max(1, ops) for a, b in zip(c0, c1)],
        "bench_us": sum(x["cpu_user_sec"] + x["cpu_sys_sec"] for x in runs) * 1e6 / max(1, ops),
        "fail": sum(x["errors"] + x["unexpected"] + x["unanswered"] + x["conn_failures"]
                    for x in runs),
        "stalled": sum(s.get("stalled_seconds", 0) for s, _, _ in outs if s),
        "served": sum(b - a for a, b in zip(s0, s1)),
        "expected": sum(x["get_keys"] + x["sets"] for x in runs),
        "counters": grown(k0, k1),
        # CPU that neither the nodes, strata-bench nor this script used
        "other_cpu": (m1 - m0) - sum(b - a for a, b in zip(c0, c1)) - (o1 - o0)
                     - sum(x["cpu_user_sec"] + x["cpu_sys_sec"] for x in runs),
        "wall": t1 - t0,
    })
    r["node_us_total"] = sum(r["node_us"])
    if r["fail"]:
        r["ok"] = False
    return r


def fmt(v, spec):
    return format(v, spec) if v is not None else format("-", spec.split(".")[0])


def lower(conns, depth):
    """The next step down from conns x depth: half the depth, then half the
    connections; None below 1 x 1."""
    if depth > 1:
        return conns, depth // 2
    return (conns // 2, 1) if conns > 1 else None


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: cluster.py STRATA_NODE STRATA_BENCH")
    node_bin, bench_bin = sys.argv[1], sys.argv[2]
    for b in (node_bin, bench_bin):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"missing executable {b} (run make first)")
    # SIGTERM/SIGINT unwind through the finally blocks that stop the nodes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    rows = []       # (config, op, result)
    problems, notes = [], []
    version = "?"

    def measure(cname, nodes, label, op, conns, depth):
        # replica writes that became hints are replayed before measuring
        took, left = drain_hints(nodes)
        if left:
            notes.append(f"{cname}: {left} hints still pending after {took:.0f} s")
        elif took > 0.5:
            notes.append(f"{cname}: waited {took:.1f} s for hints to be replayed before a {op} phase")
        r = phase(bench_bin, nodes, "0:1" if op == "write" else "1:0", conns, depth)
        rows.append((label, op, r))
        if any(n.proc.poll() is not None for n in nodes):
            problems.extend(f"{label} {op}: {m}" for m in r["reports"])
            raise RuntimeError("a node exited; the rest of this configuration is skipped")
        print(f"  {label:18} {op:5} {r['inflight']:3} in flight: " + (
            f"{r['ops']:>8.0f} ops/s p99 {r['p99']:.0f} us, nodes "
            f"{r['node_us_total']:.1f} us/op, {r['fail']} failed" if "ops" in r else "FAILED"),
              file=sys.stderr)
        where = f"{label} {op} ({r['inflight']} in flight)"
        if not r["ok"]:
            problems.extend(f"{where}: {m}" for m in r["reports"] or ["failed requests"])
        else:
            notes.extend(f"{where}: {m}" for m in r["reports"])
        if "ops" in r:
            if r["counters"]:
                notes.append(f"{where}: stats cluster grew: " + ", ".join(
                    f"{name} +{v}" for name, v in r["counters"].items()))
            if r["other_cpu"] > 0.05 * r["wall"] * os.cpu_count():
                notes.append(f"{where}: other processes used {r['other_cpu']:.1f} CPU-s of the "
                             f"{r['wall'] * os.cpu_count():.0f} the machine had during the phase")
            if r["stalled"]:
                notes.append(f"{where}: {r['stalled']} stalled seconds (no request completed)")
            if r["expected"] and abs(r["served"] - r["expected"]) > 0.01 * r["expected"] + 100:
                notes.append(f"{where}: nodes counted {r['served']} requests (cmd_get+cmd_set), "
                             f"strata-bench completed {r['expected']}")
        return r

    for cname, replicas, level, k in CONFIGS:
        nodes = []
        try:
            t0 = time.monotonic()
            nodes = start_nodes(node_bin, replicas, level, k)
            version = nodes[0].stats().get("strata_version", "?")
            print(f"{cname}: {k} node(s) up in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            peak = {"write": measure(cname, nodes, cname, "write", CONNS, DEPTH)}
            k0 = counters(nodes)
            p = preload(bench_bin, nodes[0])
            print(f"  preloaded {KEYS} keys x {VALUE} B through node1 in {p['seconds']:.2f} s",
                  file=sys.stderr)
            trouble = grown(k0, counters(nodes))
            if trouble:
                notes.append(f"{cname} preload: stats cluster grew: " + ", ".join(
                    f"{name} +{v}" for name, v in trouble.items()))
            peak["read"] = measure(cname, nodes, cname, "read", CONNS, DEPTH)
            if cname == HALF:
                # Half of peak load: half the concurrency first, then lower
                # while ops/s stays above HALF_FRACTION of the peak.
                for op in ("write", "read"):
                    step = lower(CONNS, DEPTH)
                    for _ in range(HALF_STEPS):
                        if step is None or "ops" not in peak[op]:
                            break
                        r = measure(cname, nodes, f"{cname} lower", op, *step)
                        if "ops" not in r or r["ops"] <= HALF_FRACTION * peak[op]["ops"]:
                            break
                        step = lower(*step)
        except (RuntimeError, OSError) as e:
            problems.append(f"{cname}: {e!s}")
        finally:
            stop_nodes(nodes, problems, f"{cname}: ")

    # key, heading, width, decimals
    cols = [("inflight", "in flight", 9, 0), ("ops", "ops/s", 8, 0), ("p50", "p50 us", 8, 1),
            ("p99", "p99 us", 8, 1), ("hit", "hit %", 6, 1)]
    ncols = [f"node{i + 1}" for i in range(NODES)]
    print()
    print(f"Cluster benchmark: strata-node {version} -t 2, {NODES} nodes on loopback vs 1 node; "
          f"strata-bench text protocol, {KEYS} keys x {VALUE} B, {SECONDS:g} s per phase; "
          f"one strata-bench per node (1 thread x {CONNS} conns x depth {DEPTH}), "
          f"single node: 1 strata-bench ({NODES} threads x {CONNS} conns x depth {DEPTH})")
    header = (f"{'config':18} {'op':5} " + " ".join(f"{h:>{w}}" for _, h, w, _ in cols)
              + " " + " ".join(f"{h:>6}" for h in ncols) + f" {'nodes':>6} {'bench':>6} {'failed':>6}")
    print(f"{'':18} {'':5} " + " " * (sum(w + 1 for _, _, w, _ in cols))
          + f"{' CPU us per op ':-^{7 * (NODES + 2) - 1}}")
    print(header)
    print("-" * len(header))
    for label, op, r in rows:
        if "ops" not in r:
            print(f"{label:18} {op:5} {r['inflight']:>9} FAILED")
            continue
        m = dict(r)
        if m["hit"] is not None:
            m["hit"] *= 100
        nus = r["node_us"] + [None] * (NODES - len(r["node_us"]))
        print(f"{label:18} {op:5} " + " ".join(fmt(m[k], f">{w}.{d}f") for k, _, w, d in cols) + " "
              + " ".join(fmt(v, ">6.2f") for v in nus)
              + f" {r['node_us_total']:>6.2f} {r['bench_us']:>6.2f} {r['fail']:>6}")
    print("-" * len(header))

    def found(label, op):
        return [r for lb, o, r in rows if lb == label and o == op and "ops" in r]

    targets = {}
    single_w, quorum_w = found("N=1 single node", "write"), found(HALF, "write")
    if single_w and quorum_w:
        x = quorum_w[0]["ops"] / single_w[0]["ops"]
        targets["quorum_write_vs_single"] = {"ratio": x, "target": 1 / 3, "pass": x >= 1 / 3}
        print(f"QUORUM writes N=3 / N=1 writes: {quorum_w[0]['ops']:.0f} / {single_w[0]['ops']:.0f} "
              f"= {x:.2f} (target >= 0.33) {'PASS' if x >= 1 / 3 else 'MISS'}")
    for op in ("write", "read"):
        peak, steps = found(HALF, op), found(f"{HALF} lower", op)
        if peak and steps:
            half = steps[-1]  # the first at or below HALF_FRACTION, else the lowest tried
            frac, p99 = half["ops"] / peak[0]["ops"], half["p99"]
            targets[f"half_load_p99_{op}"] = {"fraction_of_peak": frac, "p99_us": p99,
                                              "inflight": half["inflight"],
                                              "peak_inflight": peak[0]["inflight"],
                                              "target_us": 2000, "pass": p99 <= 2000}
            print(f"p99 at ~half of peak load, QUORUM {op}s: {p99 / 1000:.2f} ms at {frac:.2f} of peak "
                  f"ops/s ({half['inflight']} in flight, peak {peak[0]['inflight']}) (target <= 2 ms) "
                  f"{'PASS' if p99 <= 2000 else 'MISS'}")
    print(f"half load is approximated by concurrency, as strata-bench has no rate limit: the QUORUM "
          f"cluster again at half the requests in flight, then halved again (depth first, then "
          f"connections) until ops/s is at most {HALF_FRACTION:g} of the peak (at most {HALF_STEPS} "
          f"steps); the target line uses the last step")
    print("in flight = strata-bench connections x depth, all processes; p50/p99 = the worst of the "
          "per-node strata-bench processes; CPU us per op = a node's utime+stime over the phase / "
          "operations completed cluster-wide (nodes = their sum); bench = strata-bench's own CPU per op")
    print(f"total time {time.monotonic() - started:.0f} s; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs (nodes and strata-bench share them)")
    if notes:
        print("\nNOTES:")
        for n in notes:
            print("  " + n)
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("  " + p)
    if JSON_OUT:
        with open(JSON_OUT, "w") as f:
            json.dump({"rows": [{"config": lb, "op": o, **{k: v for k, v in r.items() if k != "reports"}}
                                for lb, o, r in rows],
                       "targets": targets, "notes": notes, "problems": problems}, f, indent=1)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
