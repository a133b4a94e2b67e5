"""L2 benchmark, part 1: strata-proxy's routing mode (`--l1 off
--l2-servers`, docs/L2.md) against twemproxy (Debian's nutcracker) in front
of the same two stock memcached servers, driven by strata-bench.

Two memcached servers (-t 1 -m 256 -U 0 each), nutcracker with one pool over
them (md5 hash, ketama distribution, timeout 500 ms, no auto-eject, one
connection per server) and `strata-proxy -t 1 --l1 off --l2-servers` over
the same two. Each proxy is checked first (a set and a get through it), then
BENCH_KEYS keys are preloaded through each. Then GET and SET of preloaded
keys (100-byte values, uniform keys) at depth 1 and depth 16, strata-bench
2 threads x 8 connections, text protocol, BENCH_SECONDS per run, the same
load against both proxies, BENCH_ROUNDS rounds, the order of the two proxies
alternating between workloads and rounds; each figure is the best over the
rounds (highest ops/s, lowest latency and CPU). Targets: ops/s strata /
twemproxy >= 1.5, p99 strata / twemproxy <= 1.0; a missed target is a
figure, not a failure. Last, for reference, the same four loads with no
proxy, straight to one of the two memcached servers (every key loaded
there first), printed beside 1.5x twemproxy: what one hop less gives on
the box (two servers behind a proxy can pass one server alone when the
servers, not the hops, are the bottleneck, as with GET at depth 16).

Every server runs on a free loopback port (bound to port 0 first) in its own
process group, and is stopped by PID (its group: SIGTERM, SIGKILL after
STOP_SECONDS) in a finally block, also on failure or Ctrl-C. nutcracker's
config, log and pid file live in a temporary directory under /tmp, removed
at the end. Exit status 1 if something failed to run (a server that did not
start or exited, a strata-bench run with errors, unexpected or unanswered
replies or connection failures, a GET that missed a preloaded key, errors in
strata-proxy's `stats l2`), else 0. See docs/BENCH.md.

usage: bench/l2.py [STRATA_PROXY STRATA_BENCH]   (default build/release/bin/)
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))        # strata-bench threads
CONNS = int(os.environ.get("BENCH_CONNS", "8"))            # per strata-bench thread
LOAD_TIMEOUT = float(os.environ.get("BENCH_LOAD_TIMEOUT", "120"))  # one preload
MEMCACHED = os.environ.get("MEMCACHED", "/usr/bin/memcached")
NUTCRACKER = os.environ.get("NUTCRACKER", "/usr/sbin/nutcracker")
JSON_OUT = os.environ.get("BENCH_JSON", "")
VALUE = 100
START_SECONDS = 30     # a server answers after start
STOP_SECONDS = 60      # SIGTERM to exit; SIGKILL after
OPS_TARGET = 1.5       # ops/s strata / twemproxy at least
P99_TARGET = 1.0       # p99 strata / twemproxy at most
MEMCACHED_FLAGS = ["-U", "0", "-l", "127.0.0.1", "-t", "1", "-m", "256"]
# one worker, as twemproxy has one thread: on the 2-vCPU box, where the
# servers and the load generator share the CPUs, a second worker only adds
# wakeups (measured: -t 1 gave 15-25% more ops/s than -t 2 at both depths);
# BENCH_PROXY_THREADS overrides it
PROXY_FLAGS = ["-l", "127.0.0.1", "-t", os.environ.get("BENCH_PROXY_THREADS", "1"), "--l1", "off"]
# twemproxy's pool, set up to compare with strata's routing mode: ketama
# over MD5 (libmemcached's placement, as l2_servers), no ejection, one
# connection per server, the same 500 ms timeout as l2_timeout_ms
NUTCRACKER_POOL = """\
l2bench:
  listen: 127.0.0.1:{port}
  hash: md5
  distribution: ketama
  timeout: 500
  auto_eject_hosts: false
  server_connections: 1
  servers:
   - 127.0.0.1:{p1}:1
   - 127.0.0.1:{p2}:1
"""
# label, strata-bench flags on top of the common ones
WORKLOADS = [
    ("GET d1", ["-r", "1:0", "-d", "1"]),
    ("GET d16", ["-r", "1:0", "-d", "16"]),
    ("SET d1", ["-r", "0:1", "-d", "1"]),
    ("SET d16", ["-r", "0:1", "-d", "16"]),
]
PROXIES = ("twemproxy", "strata")

everything = []  # every Server started, stopped again at exit whatever happens


class StartFailed(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[0].strip() if lines else "(no output)"


def killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Server:
    """A memcached, nutcracker or strata-proxy on a free loopback port, in
    its own process group. argv_for(port) gives its command line."""

    def __init__(self, name, argv_for, log_path=None):
        self.name, self.argv_for, self.log_path = name, argv_for, log_path
        self.port = None
        self.proc = None
        self.log = None
        self.group_gone = True
        everything.append(self)

    def argv(self):
        return self.argv_for(self.port)

    def command_line(self):
        return " ".join(self.argv())

    def start(self, attempts=3):
        """Starts on a new free port and waits until it answers a get.
        Raises StartFailed with the server's output."""
        rc, out = None, ""
        for _ in range(attempts):  # another process may take a free port in between
            self.port = free_port()
            # output to a file: a pipe nobody reads could fill and block the server
            self.log = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self.group_gone = False
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if self.ping():
                        return self
                except OSError:
                    pass
                time.sleep(0.02)
            rc = self.proc.poll()
            out = self.log_tail()
            self.stop(signal.SIGKILL)
            if "in use" not in out:
                break
        what = f"exited {rc}" if rc is not None else f"did not answer in {START_SECONDS} s"
        raise StartFailed(f"{self.name} {what} at start ({self.command_line()}):\n    "
                          + "\n    ".join(out.strip().splitlines()[-12:]))

    def log_tail(self, n=4000):
        text = ""
        if self.log is not None:
            self.log.seek(0)
            text = self.log.read().decode(errors="replace")
        if self.log_path and os.path.exists(self.log_path):
            with open(self.log_path, errors="replace") as f:
                text += f.read()
        return text[-n:]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exchange(self, req, done, timeout=5):
        """Sends req on a new connection, reads until done(buf) is true."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(req)
            buf = b""
            while not done(buf):
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError(f"connection closed after {buf[:200]!r}")
                buf += chunk
        return buf

    def ping(self):
        # a get, not `version`: all three answer it (twemproxy forwards it)
        ans = self.exchange(b"get strata-l2-ping\r\n", lambda b: b.endswith(b"END\r\n")
                            or b.endswith(b"ERROR\r\n") or b"ERROR" in b)
        return ans.endswith(b"END\r\n")

    def check(self):
        """A set and a get of k through the server; None if both answer as
        they should, else what came back."""
        try:
            st = self.exchange(b"set k 0 0 1\r\nx\r\n", lambda b: b.endswith(b"\r\n"))
            if st != b"STORED\r\n":
                return f"set k answered {st[:200]!r}"
            got = self.exchange(b"get k\r\n", lambda b: b.endswith(b"END\r\n") or b"ERROR" in b)
            if got != b"VALUE k 0 1\r\nx\r\nEND\r\n":
                return f"get k answered {got[:200]!r}"
        except OSError as e:
            return f"{type(e).__name__}: {e}"
        return None

    def stats(self, sub=""):
        """`stats [sub]` as a dict (memcached, strata-proxy)."""
        req = f"stats {sub}".strip().encode() + b"\r\n"
        text = self.exchange(req, lambda b: b.endswith(b"END\r\n") or b.endswith(b"ERROR\r\n"))
        return dict(l.split(" ", 2)[1:] for l in text.decode(errors="replace").splitlines()
                    if l.startswith("STAT ") and l.count(" ") >= 2)

    def cpu_seconds(self):
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0

    def stop(self, sig=signal.SIGTERM):
        """Signals the process group, waits (SIGKILL to the group after
        STOP_SECONDS). Returns the exit status or a note."""
        if self.proc is None or self.group_gone:
            return self.proc.returncode if self.proc else None
        status = self.proc.poll()
        if status is None:
            killpg(self.proc.pid, sig)
            try:
                status = self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                status = f"killed: no exit {STOP_SECONDS} s after SIGTERM"
        # once: after this the group id may be reused by an unrelated process
        killpg(self.proc.pid, signal.SIGKILL)
        self.group_gone = True
        return status


def run_bench(bench_bin, server, flags, timeout):
    """Runs strata-bench (own process group, output to files) against
    server; returns (summary dict or None, exit status, stderr)."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    argv = [bench_bin, "-s", f"127.0.0.1:{server.port}", "-P", "text", "-q", "--json"] + flags
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                         start_new_session=True)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        killpg(p.pid, signal.SIGTERM)  # strata-bench still prints its summary
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            killpg(p.pid, signal.SIGKILL)
            p.wait()
        err.seek(0, 2)
        err.write(f"\nstrata-bench still running after {timeout:.0f} s, stopped\n".encode())
    finally:
        if p.poll() is None:
            killpg(p.pid, signal.SIGKILL)
            p.wait()
    out.seek(0)
    err.seek(0)
    try:
        summary = json.loads(out.read())
    except ValueError:
        summary = None
    return summary, p.returncode, err.read().decode(errors="replace")


def preload(bench_bin, server):
    """Sets key:0 .. key:<KEYS-1> once through server; returns its summary."""
    summary, rc, err = run_bench(bench_bin, server,
                                 ["-t", str(THREADS), "-c", "4", "-k", str(KEYS), "-v", str(VALUE),
                                  "--preload-only", "--preload-depth", "64"], LOAD_TIMEOUT)
    p = summary.get("preload") if summary else None
    if rc != 0 or p is None or p.get("sets", 0) < KEYS:
        raise RuntimeError(f"preload of {KEYS} keys through {server.name} failed (exit {rc}, "
                           f"{summary.get('result') if summary else 'no summary'}):\n    "
                           + "\n    ".join(err.strip().splitlines()[-12:]))
    return p


def measure(bench_bin, server, flags):
    """One measured strata-bench run; a result dict for the tables."""
    c0 = server.cpu_seconds()
    summary, rc, err = run_bench(bench_bin, server,
                                 ["-t", str(THREADS), "-c", str(CONNS), "-k", str(KEYS),
                                  "-v", str(VALUE), "-T", str(SECONDS)] + flags, SECONDS + 60)
    c1 = server.cpu_seconds()
    run = summary.get("run") if summary else None
    r = {"status": "ok", "rc": rc, "stderr": err.strip()}
    if run is None:
        r["status"] = f"failed: strata-bench exit {rc}, {summary.get('result') if summary else 'no summary'}"
        return r
    r.update({
        "ops": run["ops_per_sec"],
        "p50": run["latency_us"]["p50"],
        "p99": run["latency_us"]["p99"],
        "hit": run["hit_ratio"] * 100 if run["hit_ratio"] is not None else None,
        "cpu_us": (c1 - c0) * 1e6 / max(1, run["requests"]),
        "requests": run["requests"],
        "fail": run["errors"] + run["unexpected"] + run["unanswered"] + run["conn_failures"],
        "result": summary.get("result"),
    })
    if rc != 0 or r["fail"]:
        r["status"] = (f"failed: strata-bench exit {rc}, {summary.get('result')} ({run['errors']} errors, "
                       f"{run['unexpected']} unexpected, {run['unanswered']} unanswered, "
                       f"{run['conn_failures']} connection failures)")
    elif r["hit"] is not None and r["hit"] < 100:
        r["status"] = f"failed: {r['hit']:.3f} % hits on preloaded keys (a failed or timed-out get is a miss)"
    if not server.alive():
        r["status"] = f"failed: {server.name} exited during the run"
    return r


def best(runs):
    """The best of the rounds' runs, figure by figure."""
    ok = [r for r in runs if "ops" in r]
    if not ok:
        return None
    b = {"ops": max(r["ops"] for r in ok), "fail": sum(r["fail"] for r in ok), "runs": len(ok),
         "status": "ok" if all(r["status"] == "ok" for r in runs) else "failed"}
    for k in ("p50", "p99", "cpu_us"):
        b[k] = min(r[k] for r in ok)
    hits = [r["hit"] for r in ok if r["hit"] is not None]
    b["hit"] = min(hits) if hits else None
    return b


# ---- output ----

COLS = [("ops", "ops/s", 9, 0), ("p50", "p50 us", 8, 1), ("p99", "p99 us", 8, 1),
        ("hit", "hit %", 6, 1), ("cpu_us", "proxy us/op", 11, 2), ("fail", "failed", 6, 0)]
LW, SW = 10, 10
HEADER = f"{'workload':{LW}} {'proxy':{SW}} " + " ".join(f"{h:>{w}}" for _, h, w, _ in COLS)
RULE = "-" * len(HEADER)


def fmt(v, w, d):
    return f"{v:>{w}.{d}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"


def row(label, proxy, r):
    if r is None:
        return f"{label:{LW}} {proxy:{SW}} (no run)"
    line = f"{label:{LW}} {proxy:{SW}} " + " ".join(fmt(r.get(k), w, d) for k, _, w, d in COLS)
    return line + ("" if r["status"] == "ok" else "  FAILED")


def ratio(a, b, key):
    if not a or not b or a.get(key) in (None, 0) or b.get(key) in (None, 0):
        return None
    return a[key] / b[key]


def ratio_row(a, b):
    keys = {"ops", "p50", "p99", "cpu_us"}
    return (f"{'':{LW}} {'ratio':{SW}} "
            + " ".join(fmt(ratio(a, b, k), w, 2) if k in keys else " " * w for k, _, w, _ in COLS)).rstrip()


def verdict(x, target, higher):
    if x is None:
        return "-"
    return "met" if (x >= target if higher else x <= target) else "MISSED"


def version_of(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return first_line(p.stdout + p.stderr)
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(sys.argv) == 3:
        proxy_bin, bench_bin = sys.argv[1], sys.argv[2]
    elif len(sys.argv) == 1:
        proxy_bin = os.path.join(root, "build/release/bin/strata-proxy")
        bench_bin = os.path.join(root, "build/release/bin/strata-bench")
    else:
        raise SystemExit("usage: l2.py [STRATA_PROXY STRATA_BENCH]")
    for b in (proxy_bin, bench_bin, MEMCACHED, NUTCRACKER):
        if not os.access(b, os.X_OK):
            hint = {MEMCACHED: "tools/install-deps.sh test installs memcached",
                    NUTCRACKER: "twemproxy: apt-get install -y nutcracker"}.get(b, "run make first")
            raise SystemExit(f"missing executable {b} ({hint})")
    # SIGTERM/SIGINT unwind through the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    problems, notes = [], []
    results = {w: {p: [] for p in PROXIES} for w, _ in WORKLOADS}
    tmp = tempfile.mkdtemp(prefix="strata-l2-bench-")
    root_user = ["-u", "root"] if os.geteuid() == 0 else []

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def failed(where, r):
        if r and r.get("status", "ok") != "ok":
            problems.append(f"{where}: {r['status']}" + (
                "\n    " + "\n    ".join(r["stderr"].splitlines()[:12]) if r.get("stderr") else ""))

    mc = [Server(f"memcached {i + 1}", lambda port: [MEMCACHED, "-p", str(port)] + MEMCACHED_FLAGS + root_user)
          for i in range(2)]
    nc_conf = os.path.join(tmp, "nutcracker.yml")
    nc_log = os.path.join(tmp, "nutcracker.log")
    nc_stats = free_port()

    def nc_argv(port):
        with open(nc_conf, "w") as f:
            f.write(NUTCRACKER_POOL.format(port=port, p1=mc[0].port, p2=mc[1].port))
        return [NUTCRACKER, "-c", nc_conf, "-o", nc_log, "-p", os.path.join(tmp, "nutcracker.pid"),
                "-s", str(nc_stats), "-a", "127.0.0.1"]

    twem = Server("twemproxy", nc_argv, log_path=nc_log)
    strata = Server("strata", lambda port: [proxy_bin, "-p", str(port)] + PROXY_FLAGS + [
        "--l2-servers", f"127.0.0.1:{mc[0].port},127.0.0.1:{mc[1].port}"])
    proxies = {"twemproxy": twem, "strata": strata}
    mc_version = "?"
    l2_stats = {}
    direct = {}
    ran = False
    try:
        try:
            for s in mc + [twem, strata]:
                s.start()
            log(f"memcached on {mc[0].port} and {mc[1].port}; twemproxy on {twem.port}, strata-proxy on "
                f"{strata.port}")
            mc_version = mc[0].stats().get("version", "?")
            for name in PROXIES:
                bad = proxies[name].check()
                if bad:
                    raise RuntimeError(f"{name} does not answer a set and a get of k: {bad}\n    "
                                       + "\n    ".join(proxies[name].log_tail().strip().splitlines()[-12:]))
            for name in PROXIES:
                p = preload(bench_bin, proxies[name])
                log(f"preloaded {KEYS} keys x {VALUE} B through {name} in {p['seconds']:.2f} s")
            items = [int(s.stats().get("curr_items", 0)) for s in mc]
            # both placements agree (libmemcached's ketama) if the two
            # preloads wrote each key to the same server
            notes.append(f"after both preloads the memcached servers hold {items[0]} + {items[1]} = "
                         f"{sum(items)} items for {KEYS} keys (+1 for k): "
                         + ("twemproxy and strata place every key on the same server"
                            if sum(items) <= KEYS + 1 else "twemproxy and strata place keys differently"))
            for rnd in range(ROUNDS):
                for wi, (wname, flags) in enumerate(WORKLOADS):
                    # alternate who goes first between workloads and between rounds
                    order = PROXIES if (wi + rnd) % 2 == 0 else PROXIES[::-1]
                    for name in order:
                        s = proxies[name]
                        r = measure(bench_bin, s, flags)
                        results[wname][name].append(r)
                        failed(f"{wname} through {name}, round {rnd + 1}", r)
                        log(f"  round {rnd + 1}: {row(wname, name, r) if 'ops' in r else wname + ' ' + name + ' ' + r['status']}")
                        if not s.alive():
                            raise RuntimeError(f"{name} exited during {wname} (status {s.proc.returncode}):\n    "
                                               + "\n    ".join(s.log_tail().strip().splitlines()[-12:]))
            ran = True
            l2_stats = strata.stats("l2")
            grown = {k: v for k, v in l2_stats.items()
                     if k.rsplit(":", 1)[-1] in ("errors", "timeouts", "resets", "ejections", "busy")
                     and v.isdigit() and int(v)}
            per_server = []
            for m in mc:
                a = f"127.0.0.1:{m.port}"
                per_server.append(f"{a} {l2_stats.get(a + ':requests', '?')} requests, reply p50 "
                                  f"{l2_stats.get(a + ':p50_us', '?')} us p99 {l2_stats.get(a + ':p99_us', '?')} us")
            notes.append("strata-proxy stats l2 over the whole bench (power-of-two buckets): "
                         + "; ".join(per_server))
            if grown:
                problems.append("strata-proxy stats l2 counted failures: "
                                + ", ".join(f"{k} {v}" for k, v in sorted(grown.items())))
            for s in mc:
                ev = int(s.stats().get("evictions", 0))
                if ev:
                    notes.append(f"{s.name} evicted {ev} items (-m 256): some GETs missed")
            # for reference: the same load with no proxy, straight to one
            # of the servers (every key loaded there first)
            preload(bench_bin, mc[0])
            for wname, flags in WORKLOADS:
                r = measure(bench_bin, mc[0], flags)
                failed(f"{wname} straight to memcached", r)
                direct[wname] = r
        except (RuntimeError, OSError, StartFailed) as e:
            problems.append(str(e))
        finally:
            for s in [strata, twem] + mc:
                if s.proc is None or s.group_gone:
                    continue
                if s.proc.poll() is not None:
                    problems.append(f"{s.name} exited before the end (status {s.proc.returncode}): "
                                    + first_line(s.log_tail()))
                    s.stop()
                    continue
                status = s.stop(signal.SIGTERM)
                # nutcracker exits 1 on SIGTERM ("signal 15 received, exiting")
                if status != 0 and s is not twem:
                    problems.append(f"{s.name} did not exit cleanly on SIGTERM ({status}): "
                                    + first_line(s.log_tail()))
    finally:
        for s in everything:
            s.stop(signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- tables ----
    med = {w: {p: best(results[w][p]) for p in PROXIES} for w, _ in WORKLOADS}
    print()
    print(f"L2 routing benchmark: {version_of([proxy_bin, '--version'])} --l1 off --l2-servers vs "
          f"twemproxy ({version_of([NUTCRACKER, '--version'])}), both in front of the same two "
          f"memcached {mc_version} (-t 1 -m 256)")
    print(f"strata-bench {THREADS} threads x {CONNS} conns, text protocol, {KEYS} keys x {VALUE} B "
          f"preloaded, uniform keys, {SECONDS:g} s per run, {ROUNDS} round(s) alternating, best of the "
          f"rounds per figure; strata-proxy {' '.join(PROXY_FLAGS)}; twemproxy md5/ketama, timeout 500, "
          f"server_connections 1, no auto-eject")
    print(HEADER)
    print(RULE)
    for wname, _ in WORKLOADS:
        for p in PROXIES:
            print(row(wname, p, med[wname][p]))
        if med[wname]["twemproxy"] and med[wname]["strata"]:
            print(ratio_row(med[wname]["strata"], med[wname]["twemproxy"]))
    print(RULE)
    print("ratio = strata / twemproxy: above 1 is better for ops/s, below 1 for latency and CPU; "
          "proxy us/op = the proxy process's utime+stime over the run / requests completed "
          "(memcached's CPU not included)")

    print()
    th = (f"{'workload':{LW}} {'twem ops/s':>10} {'strata ops/s':>12} {'ratio':>6} {'>= ' + str(OPS_TARGET):>7}"
          f"   {'twem p99 us':>11} {'strata p99 us':>13} {'ratio':>6} {'<= ' + str(P99_TARGET):>7}")
    print(f"targets: ops/s strata / twemproxy >= {OPS_TARGET}, p99 strata / twemproxy <= {P99_TARGET}")
    print(th)
    print("-" * len(th))
    summary = {}
    for wname, _ in WORKLOADS:
        t, s = med[wname]["twemproxy"], med[wname]["strata"]
        ro, rp = ratio(s, t, "ops"), ratio(s, t, "p99")
        summary[wname] = {"ops_ratio": ro, "p99_ratio": rp,
                          "ops_met": ro is not None and ro >= OPS_TARGET,
                          "p99_met": rp is not None and rp <= P99_TARGET}
        print(f"{wname:{LW}} {fmt(t and t['ops'], 10, 0)} {fmt(s and s['ops'], 12, 0)} {fmt(ro, 6, 2)} "
              f"{verdict(ro, OPS_TARGET, True):>7}   {fmt(t and t['p99'], 11, 1)} {fmt(s and s['p99'], 13, 1)} "
              f"{fmt(rp, 6, 2)} {verdict(rp, P99_TARGET, False):>7}")
    print("-" * len(th))
    if direct:
        print()
        print("for reference: the same load with no proxy, straight to one of the two memcached "
              "servers (every key loaded there)")
        dh = (f"{'workload':{LW}} {'memcached ops/s':>15} {'p99 us':>8}   {'twemproxy x ' + str(OPS_TARGET):>16} "
              f"{'strata':>8}  strata / memcached")
        print(dh)
        print("-" * len(dh))
        for wname, _ in WORKLOADS:
            d, t, s = direct.get(wname), med[wname]["twemproxy"], med[wname]["strata"]
            if d is None or "ops" not in d:
                continue
            print(f"{wname:{LW}} {fmt(d['ops'], 15, 0)} {fmt(d['p99'], 8, 1)}   "
                  f"{fmt(t and t['ops'] * OPS_TARGET, 16, 0)} {fmt(s and s['ops'], 8, 0)}  "
                  f"{fmt(s and s['ops'] / d['ops'], 18, 2)}")
        print("-" * len(dh))
    print(f"total time {time.monotonic() - started:.0f} s; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs (memcached, the proxies and "
          f"strata-bench share them)")

    # the same figures as a docs/BENCH.md table
    print()
    print("for docs/BENCH.md:")
    print()
    print("| figure (strata routing / twemproxy) | depth 1 | depth 16 | target |")
    print("|---|---|---|---|")
    for op in ("GET", "SET"):
        for key, label, target, higher in (("ops_ratio", "ops/s", OPS_TARGET, True),
                                           ("p99_ratio", "p99", P99_TARGET, False)):
            vals = [summary[f"{op} d{d}"][key] for d in (1, 16)]
            missed = [f"d{d}" for d, v in zip((1, 16), vals) if verdict(v, target, higher) == "MISSED"]
            if missed:
                state = "**missed**" + (f" ({missed[0]})" if len(missed) == 1 else "")
            else:
                state = "—" if any(v is None for v in vals) else "met"
            print(f"| {op} {label} | {' | '.join(fmt(v, 1, 2) for v in vals)} | "
                  f"{'≥' if higher else '≤'} {target:.1f}: {state} |")

    if not os.environ.get("BENCH_NO_HIT_RATIO"):
        print_hit_ratio(hit_ratio(proxy_bin, bench_bin, root_user, problems))

    if not os.environ.get("BENCH_NO_COHERENCE"):
        delays, lost = staleness(proxy_bin, root_user, problems)
        print_staleness(delays, lost)
        if lost:
            problems.append(f"coherence: {lost} reads never saw the new value within {STALE_BOUND:g} s")

    if notes:
        print("\nNOTES:")
        for n in notes:
            print("  " + n)
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("  " + p)
    if JSON_OUT:
        def clean(x):
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items() if k != "stderr"}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        with open(JSON_OUT, "w") as f:
            json.dump({"runs": clean(results), "best": med, "targets": summary, "direct": clean(direct),
                       "stats_l2": l2_stats,
                       "notes": notes, "problems": problems}, f, indent=1)
    return 1 if problems or not ran else 0


# ---- part 2: L1 coherence between proxies ----

STALE_WRITES = int(os.environ.get("BENCH_STALE_WRITES", "300"))
STALE_BOUND = 2.0  # seconds a reader polls for a write before giving up


class Line:
    """One text-protocol connection for the staleness probe."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, req, end):
        self.s.sendall(req)
        while not self.buf.endswith(end) and b"ERROR" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def get(self, key):
        ans = self.call(b"get " + key + b"\r\n", b"END\r\n")
        return ans.split(b"\r\n")[1] if ans.startswith(b"VALUE") else None

    def close(self):
        self.s.close()


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(p * len(sorted_vals)))]


def staleness(proxy_bin, root_user, problems):
    """Three proxies with L1 in front of one memcached, each listing the
    others' peer ports (`peers`): a write through A, then reads through B
    and C, each of which held the old value in L1, until they see the new
    one. Returns the times (ms) from A's STORED to each reader's first
    read of the new value, which include one read's round trip (the
    probe's resolution)."""
    mc = Server("memcached (coherence)", lambda port: [MEMCACHED, "-p", str(port)] + MEMCACHED_FLAGS
                + root_user)
    peer_ports = [free_port() for _ in range(3)]
    proxies = []
    delays, lost = [], 0
    lines = []
    try:
        mc.start()
        for i in range(3):
            peers = ",".join(f"127.0.0.1:{p}" for j, p in enumerate(peer_ports) if j != i)
            argv = (lambda i=i, peers=peers: lambda port: [
                proxy_bin, "-p", str(port), "-l", "127.0.0.1", "-t", "2",
                "--l2-servers", f"127.0.0.1:{mc.port}", "--peer-port", str(peer_ports[i]),
                "--peers", peers])()
            proxies.append(Server(f"proxy {'ABC'[i]}", argv))
            proxies[-1].start()
        lines = [Line(p.port) for p in proxies]
        for i in range(STALE_WRITES):
            key = b"stale:%d" % (i % 10)
            old = lines[0].get(key)
            for r in lines[1:]:  # each reader's L1 now holds the current value
                if r.get(key) != old:
                    problems.append(f"coherence: a reader did not hold {key!r}'s current value")
            new = b"v%d" % i
            lines[0].call(b"set " + key + b" 0 0 %d\r\n" % len(new) + new + b"\r\n", b"\r\n")
            t0 = time.monotonic()
            for r in lines[1:]:
                while True:
                    if r.get(key) == new:
                        delays.append((time.monotonic() - t0) * 1000)
                        break
                    if time.monotonic() - t0 > STALE_BOUND:
                        lost += 1
                        break
    except (RuntimeError, OSError, StartFailed) as e:
        problems.append(f"coherence: {e}")
    finally:
        for ln in lines:
            ln.close()
        for s in proxies + [mc]:
            if s.proc is not None and not s.group_gone:
                s.stop(signal.SIGTERM)
    return sorted(delays), lost


def print_staleness(delays, lost):
    print()
    print(f"L1 coherence: 3 proxies (L1 on, -t 2, peers = the other two) in front of one memcached; "
          f"{STALE_WRITES} writes through A, each then read through B and C (both held the old value "
          f"in L1) until they see it")
    if not delays:
        print("  no figures (see PROBLEMS)")
        return
    print(f"  time from A's STORED to the new value read through another proxy, ms "
          f"(one read's round trip included): p50 {pct(delays, 0.5):.3f}  p99 {pct(delays, 0.99):.3f}  "
          f"max {delays[-1]:.3f}  ({len(delays)} reads; {lost} not seen within {STALE_BOUND:g} s)")


# ---- part 3: three proxies over a cluster, with the L2 pool and without ----

HR_KEYS = int(os.environ.get("BENCH_HR_KEYS", "30000"))
HR_VALUE = 1000        # 30 MB of values: more than one L1 (8 MB), less than the pool (2 x 64 MB)
HR_L1_MB = 8


def hit_ratio(proxy_bin, bench_bin, root_user, problems):
    """One strata-node; two memcached (-m 64) as the pool; three proxies
    (-t 1 -m 8, backend = cluster), first without l2_servers, then with.
    HR_KEYS keys of HR_VALUE bytes are written once through proxy A; then
    three strata-bench processes read uniform keys through the three
    proxies at once for SECONDS. Returns {config: {ops, l1, l2, nodes}}:
    total ops/s and the share of gets answered by L1, by the pool, by the
    nodes (the proxies' stats tiers)."""
    node_bin = os.path.join(os.path.dirname(proxy_bin), "strata-node")
    tmp = tempfile.mkdtemp(prefix="strata-l2-hr-")
    cport = free_port()
    node = Server("strata-node", lambda port: [node_bin, "-d", os.path.join(tmp, "node"), "-p",
                                                str(port), "-P", str(cport)])
    mc = [Server(f"memcached pool {i + 1}", lambda port: [MEMCACHED, "-p", str(port), "-U", "0",
                                                          "-l", "127.0.0.1", "-t", "1", "-m", "64"]
                 + root_user) for i in range(2)]
    out = {}
    try:
        node.start()
        for m in mc:
            m.start()
        pool = f"127.0.0.1:{mc[0].port},127.0.0.1:{mc[1].port}"
        for config in ("without L2", "with L2"):
            extra = ["--l2-servers", pool] if config == "with L2" else []
            proxies = [Server(f"proxy {'ABC'[i]} ({config})", lambda port, extra=extra: [
                proxy_bin, "-p", str(port), "-l", "127.0.0.1", "-t", "1", "-m", str(HR_L1_MB),
                "--backend", "cluster", "--cluster-seeds", f"127.0.0.1:{cport}",
                "--cluster-poll-ms", "100"] + extra) for i in range(3)]
            try:
                for p in proxies:
                    p.start()
                summary, rc, err = run_bench(bench_bin, proxies[0], [
                    "-t", "1", "-c", "4", "-k", str(HR_KEYS), "-v", str(HR_VALUE),
                    "--preload-only", "--preload-depth", "32"], LOAD_TIMEOUT)
                if rc != 0:
                    raise RuntimeError(f"hit ratio: preload failed ({rc}): {err.strip()[-300:]}")
                before = [p.stats("tiers") for p in proxies]
                gets0 = [int(p.stats().get("cmd_get", 0)) for p in proxies]
                runs = []
                procs = []
                for p in proxies:
                    o, e = tempfile.TemporaryFile(), tempfile.TemporaryFile()
                    argv = [bench_bin, "-s", f"127.0.0.1:{p.port}", "-q", "--json", "-t", "1",
                            "-c", "4", "-d", "4", "-k", str(HR_KEYS), "-v", str(HR_VALUE),
                            "-r", "1:0", "-T", str(SECONDS)]
                    procs.append((subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o,
                                                   stderr=e, start_new_session=True), o))
                for proc, o in procs:
                    proc.wait(timeout=SECONDS + 60)
                    o.seek(0)
                    try:
                        runs.append(json.loads(o.read())["run"])
                    except (ValueError, KeyError):
                        raise RuntimeError("hit ratio: a strata-bench run printed no summary")
                after = [p.stats("tiers") for p in proxies]
                gets = sum(int(p.stats().get("cmd_get", 0)) - g for p, g in zip(proxies, gets0))

                def delta(name):
                    return sum(int(a.get(name, 0)) - int(b.get(name, 0)) for a, b in zip(after, before))
                l2, nodes = delta("l2_hits"), delta("backend_reads")
                out[config] = {"ops": sum(r["ops_per_sec"] for r in runs), "gets": gets,
                               "l1": max(0, gets - l2 - nodes) / max(1, gets),
                               "l2": l2 / max(1, gets), "nodes": nodes / max(1, gets),
                               "p99": max(r["latency_us"]["p99"] for r in runs)}
            finally:
                for p in proxies:
                    if p.proc is not None and not p.group_gone:
                        p.stop(signal.SIGTERM)
    except (RuntimeError, OSError, StartFailed, subprocess.TimeoutExpired) as e:
        problems.append(f"hit ratio: {e}")
    finally:
        for s_ in mc + [node]:
            if s_.proc is not None and not s_.group_gone:
                s_.stop(signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def print_hit_ratio(out):
    print()
    print(f"L2 over a cluster: 3 proxies (-t 1, L1 -m {HR_L1_MB}) over one strata-node, the pool two "
          f"memcached -m 64; {HR_KEYS} keys x {HR_VALUE} B written once, then uniform gets through "
          f"the three proxies at once (strata-bench 1 thread x 4 conns x depth 4 each, {SECONDS:g} s)")
    print(f"{'config':12} {'ops/s':>9} {'p99 us':>9} {'L1':>7} {'L2 pool':>8} {'nodes':>7}")
    for config, r in out.items():
        print(f"{config:12} {r['ops']:9.0f} {r['p99']:9.1f} {r['l1'] * 100:6.1f}% {r['l2'] * 100:7.1f}% "
              f"{r['nodes'] * 100:6.1f}%")
    if len(out) == 2:
        a, b = out["without L2"], out["with L2"]
        print(f"with / without L2: ops/s {b['ops'] / max(1, a['ops']):.2f}, reads reaching the nodes "
              f"{b['nodes'] / max(1e-9, a['nodes']):.2f}")


if __name__ == "__main__":
    sys.exit(main())
