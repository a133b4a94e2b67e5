"""L1 benchmark: strata-proxy against stock memcached, driven by strata-bench.

Both servers run with the same flags (-t 2 -m 1024) on free loopback ports and
hold the same preloaded keys. Each workload runs BENCH_SECONDS against each
server, alternating which goes first, BENCH_ROUNDS rounds; the table shows the
medians. Server CPU per request is utime+stime of the server process
(/proc/PID/stat) over the requests it served (`stats` cmd_get + cmd_set, so a
multi-get of 10 keys counts 10): it is far steadier than ops/s when client
and server share two cores. Servers are stopped by PID at the end, whatever
happens. See docs/BENCH.md.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
PROTOCOL = os.environ.get("BENCH_PROTOCOL", "text")
MEMCACHED = os.environ.get("MEMCACHED", "/usr/bin/memcached")
JSON_OUT = os.environ.get("BENCH_JSON", "")
KEYS = 100_000
VALUE = 100
RSS_ITEMS = 1_000_000
RSS_SETTLE_SECONDS = 3
SERVER_FLAGS = ["-U", "0", "-t", "2", "-m", "1024", "-c", "4096"]

# name, strata-bench flags (on top of the common ones)
WORKLOADS = [
    ("1 get hits, 200 conns, depth 1", ["-t", "2", "-c", "100", "-d", "1", "-r", "1:0"]),
    ("2 get hits, 16 conns, depth 16", ["-t", "2", "-c", "8", "-d", "16", "-r", "1:0"]),
    ("3 get/set 90/10 zipf, depth 16",
     ["-t", "2", "-c", "8", "-d", "16", "-r", "9:1", "-D", "zipf", "-z", "0.99"]),
    ("4 multiget 10 keys, 16 conns", ["-t", "2", "-c", "8", "-d", "1", "-r", "1:0", "-m", "10"]),
]
COMMON = ["-k", str(KEYS), "-v", str(VALUE), "-P", PROTOCOL, "-T", str(SECONDS), "-q", "--json"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on a free loopback port."""

    def __init__(self, name, argv):
        self.name = name
        self.port = free_port()
        # stderr to a file: a pipe nobody reads could fill and block the server
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv + ["-p", str(self.port), "-l", "127.0.0.1"] + SERVER_FLAGS,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited at start: {self.log_tail()}")
            try:
                self.command(b"version\r\n", b"\r\n")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"{name} did not start on port {self.port}")

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
            while not buf.endswith(end):
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
        return buf.decode(errors="replace")

    def stats(self):
        text = self.command(b"stats\r\n", b"END\r\n")
        return dict(l.split(" ", 2)[1:] for l in text.splitlines() if l.startswith("STAT "))

    def served(self):
        st = self.stats()
        return int(st["cmd_get"]) + int(st["cmd_set"])

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench(bench_bin, server, flags):
    """Runs strata-bench once; returns (summary dict or None, rc, stderr)."""
    argv = [bench_bin, "-s", f"127.0.0.1:{server.port}"] + flags
    p = subprocess.run(argv, capture_output=True, text=True, timeout=SECONDS + 120)
    try:
        summary = json.loads(p.stdout)
    except ValueError:
        summary = None
    return summary, p.returncode, p.stderr


def measure(bench_bin, server, flags):
    c0, r0 = server.cpu_seconds(), server.served()
    summary, rc, err = bench(bench_bin, server, COMMON + flags)
    c1, r1 = server.cpu_seconds(), server.served()
    if summary is None or summary["run"] is None:
        return {"ok": False, "rc": rc, "stderr": err}
    run = summary["run"]
    served = r1 - r0
    expected = run["get_keys"] + run["sets"]
    return {
        "ok": rc == 0,
        "rc": rc,
        "stderr": err,
        "ops": run["ops_per_sec"],
        "p50": run["latency_us"]["p50"],
        "p99": run["latency_us"]["p99"],
        "hit": run["hit_ratio"],
        "srv_us": (c1 - c0) * 1e6 / max(1, served),
        "bench_us": run["cpu_us_per_request"],
        "fail": run["errors"] + run["unexpected"] + run["unanswered"] + run["conn_failures"],
        # the server's own request count against what strata-bench completed
        "served": served,
        "expected": expected,
        "result": summary["result"],
    }


def preload(bench_bin, server, keys, prefix):
    summary, rc, err = bench(bench_bin, server, ["-k", str(keys), "-v", str(VALUE), "-x", prefix,
                                                 "-P", PROTOCOL, "-t", "2", "-c", "4", "--preload-only",
                                                 "--preload-depth", "64", "-q", "--json"])
    if rc != 0 or summary is None:
        raise SystemExit(f"preload of {server.name} failed (exit {rc}):\n{err[-2000:]}")
    return summary["preload"]


def median(runs, key):
    vals = [r[key] for r in runs if r.get("ok") and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return format(v, spec) if v is not None else "-"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def rss_compare(strata_bin, bench_bin):
    servers = []
    try:
        servers = [Server("memcached", memcached_argv()), Server("strata", [strata_bin])]
        out = {}
        for s in servers:
            preload(bench_bin, s, RSS_ITEMS, "rss:")
            # Both servers finish background work first (memcached's hash
            # expansion, strata's incremental rehash and allocator purge).
            time.sleep(RSS_SETTLE_SECONDS)
            st = s.stats()
            out[s.name] = {"rss": s.rss_bytes(), "items": int(st.get("curr_items", 0)),
                           "evictions": int(st.get("evictions", 0))}
        return out
    finally:
        for s in servers:
            s.stop()


def memcached_argv():
    return [MEMCACHED] + (["-u", "root"] if os.geteuid() == 0 else [])


def main():
    strata_bin, bench_bin = sys.argv[1], sys.argv[2]
    for b in (strata_bin, bench_bin, MEMCACHED):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"missing executable {b} (run make first)")
    # SIGTERM/SIGINT unwind through the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    servers = []
    results = {}
    problems = []
    try:
        servers = [Server("memcached", memcached_argv()), Server("strata", [strata_bin])]
        version = servers[0].stats().get("version", "?")
        for s in servers:
            p = preload(bench_bin, s, KEYS, "key:")
            print(f"preloaded {s.name:9}: {KEYS} keys x {VALUE} B in {p['seconds']:.2f} s", file=sys.stderr)
        for wname, flags in WORKLOADS:
            runs = {s.name: [] for s in servers}
            for rnd in range(ROUNDS):
                order = servers if rnd % 2 == 0 else servers[::-1]  # alternate who goes first
                for s in order:
                    r = measure(bench_bin, s, flags)
                    runs[s.name].append(r)
                    line = (f"  {wname:32} {s.name:9} round {rnd + 1}: "
                            + (f"{r['ops']:>9.0f} ops/s p99 {r['p99']:.0f} us, server "
                               f"{r['srv_us']:.2f} us/req" if "ops" in r else f"FAILED (exit {r['rc']})"))
                    print(line, file=sys.stderr)
                    if not r["ok"]:
                        problems.append(f"{wname} against {s.name}, round {rnd + 1}: exit {r['rc']}, "
                                        f"{r.get('result', 'no summary')}\n    "
                                        + "\n    ".join(r["stderr"].strip().splitlines()[:12]))
                    elif r["expected"] and abs(r["served"] - r["expected"]) > 0.01 * r["expected"] + 100:
                        problems.append(f"{wname} against {s.name}, round {rnd + 1}: server counted "
                                        f"{r['served']} requests (cmd_get+cmd_set), strata-bench "
                                        f"completed {r['expected']} (get keys + sets)")
            results[wname] = runs
        for s in servers:
            if s.proc.poll() is not None:
                problems.append(f"{s.name} exited during the benchmark (status {s.proc.returncode}): "
                                f"{s.log_tail()}")
    finally:
        for s in servers:
            s.stop()
    rss = rss_compare(strata_bin, bench_bin)

    # key, heading, width, decimals, has a ratio
    cols = [("ops", "ops/s", 10, 0, True), ("p50", "p50 us", 8, 1, True),
            ("p99", "p99 us", 8, 1, True), ("hit", "hit %", 6, 1, False),
            ("srv_us", "srv us/req", 10, 2, True), ("bench_us", "bench us/req", 12, 2, True),
            ("fail", "failed", 6, 0, False)]
    print()
    print(f"L1 benchmark: strata-proxy vs memcached {version}, both -t 2 -m 1024; strata-bench "
          f"{PROTOCOL} protocol, {KEYS} keys x {VALUE} B preloaded; {SECONDS:g} s per run, "
          f"{ROUNDS} rounds alternating, medians")
    header = f"{'workload':32} {'server':9} " + " ".join(f"{h:>{w}}" for _, h, w, _, _ in cols)
    print(header)
    print("-" * len(header))
    table = {}
    for wname, runs in results.items():
        med = {name: {c[0]: median(rs, c[0]) for c in cols} for name, rs in runs.items()}
        for name in ("memcached", "strata"):
            m = dict(med[name])
            if m["hit"] is not None:
                m["hit"] *= 100
            print(f"{wname:32} {name:9} " + " ".join(fmt(m[k], f">{w}.{d}f") for k, _, w, d, _ in cols))
        rat = {k: ratio(med["strata"][k], med["memcached"][k]) for k, _, _, _, r in cols if r}
        print(f"{'':32} {'ratio':9} " + " ".join(
            fmt(rat[k], f">{w}.2f") if r else " " * w for k, _, w, _, r in cols))
        table[wname] = {"median": med, "ratio": rat}
    mc, st = rss.get("memcached"), rss.get("strata")
    print("-" * len(header))
    print(f"RSS after {RSS_ITEMS:,} items of {VALUE} B: memcached {mc['rss'] / 2**20:.1f} MiB "
          f"({mc['items']:,} items, {mc['evictions']} evictions), strata {st['rss'] / 2**20:.1f} MiB "
          f"({st['items']:,} items, {st['evictions']} evictions), ratio {st['rss'] / max(1, mc['rss']):.2f}")
    print("ratio = strata / memcached; srv us/req = server utime+stime per request served "
          "(a 10-key multiget is 10 requests); bench us/req = strata-bench's own CPU per request")
    print(f"total time {time.monotonic() - started:.0f} s; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs (other processes move ops/s "
          f"and latency, CPU per request much less)")
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("  " + p)
    if JSON_OUT:
        with open(JSON_OUT, "w") as f:
            json.dump({"workloads": table, "rss": rss, "problems": problems}, f, indent=1)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
