"""Tiers benchmark: strata-proxy's L1 + local backend against redis-server
with an append-only file, the cost of a backend on L1 hits, and the backend
paths themselves, driven by strata-bench.

a. `strata-proxy --backend local --sync interval` (text protocol) against
   `redis-server --appendonly yes --appendfsync everysec` (RESP), then
   `--sync always` against `--appendfsync always`: SET ops/s and latency,
   GET ops/s and latency on preloaded keys, and the restart time with
   BENCH_RESTART_KEYS keys (load them, SIGTERM, start again, time until a
   GET of a loaded key answers with its value).
b. GET hits in L1: strata-proxy without a backend against strata-proxy
   --backend local, same preloaded and read keys, BENCH_ROUNDS rounds
   alternating, medians; target: ops/s ratio >= 1.0.
c. The backend paths of --backend local: L1 miss -> backend get (restarted
   proxy, every key read once), write-through sets, write-behind sets.

Every server runs on a free loopback port (bound to port 0 first) in its own
process group and temporary directory, and is stopped by PID (its group:
SIGTERM, SIGKILL after STOP_SECONDS) in a finally block, whatever happens. A
strata-proxy that refuses a flag at start (exit 64: not built yet) gives a
"not built" row instead of a failure. See docs/BENCH.md.
"""
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
KEYS = int(os.environ.get("BENCH_KEYS", "100000"))
RESTART_KEYS = int(os.environ.get("BENCH_RESTART_KEYS", "1000000"))
# the restart is measured in the everysec / interval pair; 1 adds the always
# pair (loading 1M keys one fsync at a time can take minutes)
RESTART_ALWAYS = os.environ.get("BENCH_RESTART_ALWAYS", "0") == "1"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))          # part b only
THREADS = int(os.environ.get("BENCH_THREADS", "2"))         # strata-bench threads
CONNS = int(os.environ.get("BENCH_CONNS", "8"))            # per strata-bench thread
DEPTH = int(os.environ.get("BENCH_DEPTH", "4"))            # requests in flight per connection
LOAD_TIMEOUT = float(os.environ.get("BENCH_LOAD_TIMEOUT", "120"))  # one preload
REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
JSON_OUT = os.environ.get("BENCH_JSON", "")
VALUE = 100
START_SECONDS = 30     # a server answers after start (not a restart: see RESTART_SECONDS)
RESTART_SECONDS = 300  # a restarted server answers a GET of a loaded key with its value
STOP_SECONDS = 60      # SIGTERM to exit; SIGKILL after
CHECK_KEYS = 200       # loaded keys read back after a restart
# strata-proxy's exits for a refused option (sysexits EX_USAGE, EX_CONFIG):
# a flag or mode that is not built yet
REFUSED = (64, 78)
PROXY_FLAGS = ["-l", "127.0.0.1", "-t", "2", "-m", "1024", "-c", "4096"]
# part a: (label, strata flags, redis appendfsync, restart measured)
DURABILITY = [
    ("everysec / interval", ["--sync", "interval"], "everysec", True),
    ("always / always", ["--sync", "always"], "always", RESTART_ALWAYS),
]
IN_FLIGHT = THREADS * CONNS * DEPTH

everything = []  # every Server started, stopped again at exit whatever happens


class NotBuilt(Exception):
    """strata-proxy refused its flags at start (exit 64 or 78)."""


class StartFailed(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[0].strip() if lines else "(no output)"


class Server:
    """A strata-proxy or redis-server on a free loopback port, in its own
    process group, with its own temporary data directory."""

    def __init__(self, name, kind, bin_path, flags=(), data=False):
        self.name, self.kind, self.bin, self.flags = name, kind, bin_path, list(flags)
        self.proto = "resp" if kind == "redis" else "text"
        self.dir = tempfile.mkdtemp(prefix=f"strata-tiers-{kind}-") if data or kind == "redis" else None
        self.port = None
        self.proc = None
        self.log = None
        self.start_error = None  # set when start() gave up: its exit is no surprise
        self.group_gone = True   # the process group was killed after the leader exited
        everything.append(self)

    def argv(self):
        if self.kind == "redis":
            return [self.bin, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--dir", self.dir, "--daemonize", "no"] + self.flags
        extra = ["--data-dir", self.dir] if self.dir else []
        return [self.bin, "-p", str(self.port)] + PROXY_FLAGS + self.flags + extra

    def command_line(self):
        return " ".join(a if a and " " not in a else repr(a) for a in self.argv())

    def spawn(self):
        # output to a file: a pipe nobody reads could fill and block the server
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.group_gone = False

    def start(self, attempts=3):
        """Starts on a new free port and waits until it answers. Raises
        NotBuilt (strata exit 64) or StartFailed with the server's output."""
        for _ in range(attempts):  # another process may take a free port in between
            self.port = free_port()
            self.spawn()
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
            if rc in REFUSED and self.kind == "strata":
                self.start_error = "not built"
                raise NotBuilt(f"{self.name}: strata-proxy exited {rc} at start: {first_line(out)}")
            if "in use" not in out:
                break
        what = f"exited {rc}" if rc is not None else f"did not answer in {START_SECONDS} s"
        self.start_error = what
        raise StartFailed(f"{self.name} {what} at start ({self.command_line()}):\n    "
                          + "\n    ".join(out.strip().splitlines()[-12:]))

    def log_tail(self, n=4000):
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-n:]

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
                    raise OSError("connection closed")
                buf += chunk
        return buf

    def ping(self):
        if self.kind == "redis":
            return self.exchange(b"PING\r\n", lambda b: b.endswith(b"\r\n")).startswith(b"+PONG")
        return self.exchange(b"version\r\n", lambda b: b.endswith(b"\r\n")).startswith(b"VERSION")

    def get_many(self, keys):
        """Pipelined GETs of keys; returns one of "value" (VALUE bytes
        long), "miss", "loading" or "error: ..." per key."""
        if self.kind == "redis":
            req = b"".join(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k.encode()) for k in keys)
        else:
            req = b"".join(b"get %s\r\n" % k.encode() for k in keys)
        out = []

        def done(buf):
            out.clear()
            pos = 0
            while len(out) < len(keys):
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return False
                line = buf[pos:nl].decode(errors="replace")
                pos = nl + 2
                if self.kind == "redis":
                    if line.startswith("$-1"):
                        out.append("miss")
                    elif line.startswith("$"):
                        n = int(line[1:])
                        if len(buf) < pos + n + 2:
                            return False
                        out.append("value" if n == VALUE else f"error: {n}-byte value")
                        pos += n + 2
                    elif line.startswith("-LOADING"):
                        out.append("loading")
                    else:
                        out.append(f"error: {line[:80]}")
                else:
                    if line.startswith("VALUE "):
                        n = int(line.split()[3])
                        if len(buf) < pos + n + 7:
                            return False
                        if buf[pos + n:pos + n + 7] != b"\r\nEND\r\n":
                            raise ValueError(f"no END after the value of {keys[len(out)]}")
                        out.append("value" if n == VALUE else f"error: {n}-byte value")
                        pos += n + 7
                    elif line == "END":
                        out.append("miss")
                    else:
                        out.append(f"error: {line[:80]}")
            return True

        self.exchange(req, done, timeout=10)
        return list(out)

    def stats(self, sub=""):
        """strata-proxy's `stats [sub]` as a dict ({} for redis, or if the
        proxy does not know the group)."""
        if self.kind == "redis":
            return {}
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
        """Signals the process group, waits for the server (SIGKILL to the
        group after STOP_SECONDS), then kills what is left of the group (a
        redis AOF rewrite child). Returns (exit status or a note, seconds)."""
        if self.proc is None or self.group_gone:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        status = self.proc.poll()
        if status is None:
            killpg(self.proc.pid, sig)
            try:
                status = self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                status = f"killed: no exit {STOP_SECONDS} s after SIGTERM"
        took = time.monotonic() - t0
        # once: after this the group id may be reused by an unrelated process
        killpg(self.proc.pid, signal.SIGKILL)
        self.group_gone = True
        return status, took

    def remove(self):
        self.stop(signal.SIGKILL)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_bench(bench_bin, server, flags, timeout):
    """Runs strata-bench (own process group, output to files) against
    server; returns (summary dict or None, exit status, stderr)."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    argv = [bench_bin, "-s", f"127.0.0.1:{server.port}", "-P", server.proto, "-q", "--json"] + flags
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


def concurrency(keys=None):
    return ["-t", str(THREADS), "-c", str(CONNS), "-d", str(DEPTH), "-k", str(keys or KEYS),
            "-v", str(VALUE)]


def preload(bench_bin, server, keys):
    """Sets keys key:0 .. key:<keys-1> once; returns {"seconds", "rate"}."""
    summary, rc, err = run_bench(bench_bin, server,
                                 ["-t", str(THREADS), "-c", "4", "-k", str(keys), "-v", str(VALUE),
                                  "--preload-only", "--preload-depth", "64"], LOAD_TIMEOUT)
    p = summary.get("preload") if summary else None
    if rc != 0 or p is None or p.get("sets", 0) < keys:
        raise RuntimeError(f"preload of {keys} keys into {server.name} failed (exit {rc}, "
                           f"{summary.get('result') if summary else 'no summary'}):\n    "
                           + "\n    ".join(err.strip().splitlines()[-12:]))
    return {"seconds": p["seconds"], "rate": p["ops_per_sec"]}


def measure(bench_bin, server, flags, timeout=None):
    """One measured strata-bench run; a result dict for the tables."""
    c0 = server.cpu_seconds()
    summary, rc, err = run_bench(bench_bin, server, flags, timeout or SECONDS + 60)
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
        "srv_us": (c1 - c0) * 1e6 / max(1, run["requests"]),
        "requests": run["requests"],
        "seconds": run["seconds"],
        "fail": run["errors"] + run["unexpected"] + run["unanswered"] + run["conn_failures"],
    })
    if rc != 0 or r["fail"]:
        r["status"] = f"failed: strata-bench exit {rc}, {summary.get('result')}"
    if not server.alive():
        r["status"] = f"failed: {server.name} exited during the run"
    return r


def sets(bench_bin, server):
    return measure(bench_bin, server, concurrency() + ["-r", "0:1", "-T", str(SECONDS)])


def gets(bench_bin, server):
    return measure(bench_bin, server, concurrency() + ["-r", "1:0", "-T", str(SECONDS)])


def read_once(bench_bin, server, keys):
    """Every key read once: sequential keys, one contiguous range per
    strata-bench thread, as many requests as keys (a multiple of the
    connections, so every connection reads the same number)."""
    n = keys - keys % (THREADS * CONNS)
    return measure(bench_bin, server, concurrency(keys) + ["-r", "1:0", "-D", "sequential",
                                                           "-n", str(n), "-T", str(LOAD_TIMEOUT)],
                   timeout=LOAD_TIMEOUT + 30)


def restart(server, keys, check=True):
    """SIGTERM, start again on the same port and directory, time until a
    GET of a loaded key answers with its value; then (check) read
    CHECK_KEYS loaded keys back. Returns a result dict."""
    r = {"status": "ok"}
    status, r["stop_s"] = server.stop(signal.SIGTERM)
    if status != 0:
        r["note"] = f"{server.name} exit status on SIGTERM: {status}: {first_line(server.log_tail())}"
    probe = f"key:{keys // 2}"
    t0 = time.monotonic()
    server.spawn()
    r["up_s"] = None
    r["misses_before"] = 0
    last = "no answer"
    while True:
        now = time.monotonic()
        if now - t0 > RESTART_SECONDS:
            r["status"] = f"failed: no value for {probe} {RESTART_SECONDS} s after restart (last: {last})"
            return r
        if not server.alive():
            r["status"] = (f"failed: exited {server.proc.returncode} on restart: "
                           + first_line(server.log_tail()))
            return r
        try:
            ans = server.get_many([probe])[0]
            if r["up_s"] is None:
                r["up_s"] = time.monotonic() - t0
            if ans == "value":
                r["value_s"] = time.monotonic() - t0
                break
            if ans == "miss":
                r["misses_before"] += 1
            last = ans
        except (OSError, ValueError, IndexError) as e:
            last = str(e) or type(e).__name__
        time.sleep(0.005)
    if not check:
        return r
    sample = [f"key:{random.randrange(keys)}" for _ in range(CHECK_KEYS)]
    try:
        answers = server.get_many(sample)
        r["found"] = sum(a == "value" for a in answers)
    except OSError as e:
        r["found"] = 0
        r["status"] = f"failed: reading keys back after the restart: {e}"
        return r
    if r["found"] < CHECK_KEYS:
        r["status"] = f"failed: only {r['found']} of {CHECK_KEYS} loaded keys read back after the restart"
    return r


# ---- output ----

COLS = [("ops", "ops/s", 9, 0), ("p50", "p50 us", 8, 1), ("p99", "p99 us", 8, 1),
        ("hit", "hit %", 6, 1), ("srv_us", "srv us/op", 9, 2), ("fail", "failed", 6, 0)]
LW, SW = 38, 8
HEADER = f"{'':{LW}} {'server':{SW}} " + " ".join(f"{h:>{w}}" for _, h, w, _ in COLS)
RULE = "-" * len(HEADER)


def fmt(v, w, d):
    return f"{v:>{w}.{d}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"


def row(label, server, r):
    if r is None:
        return f"{label:{LW}} {server:{SW}} (not run)"
    if "ops" not in r:
        return f"{label:{LW}} {server:{SW}} {r['status']}"
    line = f"{label:{LW}} {server:{SW}} " + " ".join(fmt(r.get(k), w, d) for k, _, w, d in COLS)
    return line + ("" if r["status"] == "ok" else "  FAILED")


def ratio(a, b, key):
    if not a or not b or a.get(key) in (None, 0) or b.get(key) in (None, 0):
        return None
    return a[key] / b[key]


def ratio_row(label, a, b):
    keys = {"ops", "p50", "p99", "srv_us"}
    return (f"{'':{LW}} {label:{SW}} "
            + " ".join(fmt(ratio(a, b, k), w, 2) if k in keys else " " * w for k, _, w, _ in COLS)).rstrip()


def version_of(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        return first_line(out)
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: tiers.py STRATA_PROXY STRATA_BENCH")
    proxy_bin, bench_bin = sys.argv[1], sys.argv[2]
    for b in (proxy_bin, bench_bin, REDIS_SERVER):
        if not os.access(b, os.X_OK):
            hint = "tools/install-deps.sh test installs redis-server" if b == REDIS_SERVER else "run make first"
            raise SystemExit(f"missing executable {b} ({hint})")
    # SIGTERM/SIGINT unwind through the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    random.seed(1)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    problems, notes, not_built = [], [], []
    res = {"a": {}, "b": {}, "c": {}}

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def failed(where, r):
        if r and r.get("status", "ok") != "ok":
            problems.append(f"{where}: {r['status']}" + (
                "\n    " + "\n    ".join(r["stderr"].splitlines()[:12]) if r.get("stderr") else ""))

    def stop_all(servers, where):
        for s in servers:
            if s.proc is None or s.start_error is not None or s.group_gone:
                pass  # never started, or start() already reported it
            elif s.proc.poll() is not None:
                problems.append(f"{where}: {s.name} exited before the end (status {s.proc.returncode}): "
                                + first_line(s.log_tail()))
            else:
                status, _ = s.stop(signal.SIGTERM)
                if status != 0:
                    problems.append(f"{where}: {s.name} did not exit cleanly on SIGTERM ({status}): "
                                    + first_line(s.log_tail()))
            s.remove()

    def tier_note(where, r, st0, st1):
        """A note with the `stats tiers` counters that grew during a phase
        (backend_reads, backend_writes, l1_fills, ...) against its requests."""
        grown = {k: int(v) - int(st0.get(k, 0)) for k, v in st1.items()
                 if v.isdigit() and st0.get(k, "0").isdigit() and int(v) != int(st0.get(k, 0))}
        if grown and "requests" in r:
            notes.append(f"{where}: {r['requests']} requests; stats tiers grew: " + ", ".join(
                f"{k} +{v}" for k, v in sorted(grown.items())))

    def start(server, where, bucket=None):
        """Starts server; None (and a note or a problem) if it cannot."""
        try:
            return server.start()
        except NotBuilt as e:
            not_built.append(f"{where}: {e}")
            if bucket is not None:
                bucket["not_built"] = str(e)
            log(f"  {where}: not built ({e})")
        except StartFailed as e:
            problems.append(f"{where}: {e}")
            log(f"  {where}: FAILED to start")
        return None

    try:
        # ---- a. durability: strata-proxy --backend local vs redis-server AOF ----
        for label, strata_sync, fsync, with_restart in DURABILITY:
            for kind in ("redis", "strata"):
                where = f"a. {label} {kind}"
                out = res["a"].setdefault(label, {}).setdefault(kind, {})
                if kind == "redis":
                    s = Server(f"redis-server appendfsync {fsync}", "redis", REDIS_SERVER,
                               ["--appendonly", "yes", "--appendfsync", fsync])
                else:
                    s = Server(f"strata-proxy --backend local {' '.join(strata_sync)}", "strata",
                               proxy_bin, ["--backend", "local"] + strata_sync, data=True)
                servers = [s]
                try:
                    if start(s, where, out) is None:
                        continue
                    p = preload(bench_bin, s, KEYS)
                    log(f"{where}: preloaded {KEYS} keys in {p['seconds']:.2f} s")
                    out["set"] = sets(bench_bin, s)
                    failed(f"{where} set", out["set"])
                    log(f"  {row('set', kind, out['set'])}")
                    out["get"] = gets(bench_bin, s)
                    failed(f"{where} get", out["get"])
                    log(f"  {row('get', kind, out['get'])}")
                    if not with_restart:
                        continue
                    # restart with RESTART_KEYS keys, on a fresh server
                    stop_all(servers, where)
                    r = Server(s.name, s.kind, s.bin, s.flags, data=True)
                    servers = [r]
                    if start(r, where) is None:
                        continue
                    t0 = time.monotonic()
                    load = preload(bench_bin, r, RESTART_KEYS)
                    out["restart"] = rs = restart(r, RESTART_KEYS)
                    rs["load_s"], rs["load_rate"] = load["seconds"], load["rate"]
                    log(f"  restart: loaded {RESTART_KEYS} keys in {load['seconds']:.1f} s, stop "
                        f"{rs['stop_s']:.2f} s, value after {rs.get('value_s', float('nan')):.2f} s "
                        f"({time.monotonic() - t0:.0f} s in all)")
                    if rs.get("note"):
                        notes.append(f"{where} restart: {rs['note']}")
                    if rs["misses_before"]:
                        notes.append(f"{where} restart: {rs['misses_before']} GETs of {r.name} answered "
                                     f"a miss for a loaded key before the value")
                    failed(f"{where} restart", rs)
                except (RuntimeError, OSError) as e:
                    problems.append(f"{where}: {e}")
                finally:
                    stop_all(servers, where)

        # ---- b. L1 hits: no backend vs --backend local ----
        where = "b. L1 hits"
        l1 = Server("strata-proxy (L1 only)", "strata", proxy_bin)
        be = Server("strata-proxy --backend local", "strata", proxy_bin, ["--backend", "local"], data=True)
        res["b"] = {"l1": [], "backend": [], "warm": {}}
        up = []
        try:
            for s, key in ((l1, "l1"), (be, "backend")):
                if start(s, where, res["b"].setdefault("start", {}).setdefault(key, {})):
                    up.append((s, key))
            for s, key in up:
                p = preload(bench_bin, s, KEYS)
                # a pass that reads every key once fills L1 whatever the write mode left there
                w = res["b"]["warm"][key] = read_once(bench_bin, s, KEYS)
                failed(f"{where}: {s.name} warm-up read", w)
                log(f"{where}: {s.name}: preloaded {KEYS} keys in {p['seconds']:.2f} s, read once "
                    f"({w.get('hit', 0) or 0:.1f} % hits)")
            for rnd in range(ROUNDS):
                for s, key in (up if rnd % 2 == 0 else up[::-1]):  # alternate who goes first
                    r = gets(bench_bin, s)
                    res["b"][key].append(r)
                    failed(f"{where}: {s.name} round {rnd + 1}", r)
                    log(f"  round {rnd + 1}: {row('get hits', key, r)}")
            if any(k == "l1" for _, k in up):
                # reference for part c: sets without a backend
                res["c"]["set_l1"] = sets(bench_bin, l1)
                failed(f"c. set, no backend", res["c"]["set_l1"])
        except (RuntimeError, OSError) as e:
            problems.append(f"{where}: {e}")
        finally:
            stop_all([l1, be], where)

        # ---- c. the backend paths of --backend local ----
        where = "c. backend"
        sync = ["--sync", "interval"]
        # L1 miss -> backend get: preload, restart (L1 empty), read each key once
        s = Server("strata-proxy --backend local (default mode)", "strata", proxy_bin,
                   ["--backend", "local"] + sync, data=True)
        try:
            if start(s, f"{where}: miss", res["c"].setdefault("miss_start", {})):
                preload(bench_bin, s, KEYS)
                rs = restart(s, KEYS, check=False)  # one key read: L1 stays (almost) empty
                if rs["status"] != "ok":
                    failed(f"{where}: restart before the miss phase", rs)
                else:
                    items = int(s.stats().get("curr_items", 0))
                    if items > KEYS // 100:
                        notes.append(f"{where}: L1 held {items} items after the restart: "
                                     f"the miss phase was partly L1 hits")
                    st0 = s.stats("tiers")
                    res["c"]["miss"] = m = read_once(bench_bin, s, KEYS)
                    failed(f"{where}: L1 miss -> backend get", m)
                    log(f"  {row('L1 miss -> backend get', 'strata', m)}")
                    tier_note(f"{where}: L1 miss -> backend get", m, st0, s.stats("tiers"))
        except (RuntimeError, OSError) as e:
            problems.append(f"{where}: miss: {e}")
        finally:
            stop_all([s], where)
        for mode in ("write-through", "write-behind"):
            s = Server(f"strata-proxy --backend local --mode {mode}", "strata", proxy_bin,
                       ["--backend", "local", "--mode", mode] + sync, data=True)
            try:
                if start(s, f"{where}: {mode}", res["c"].setdefault(f"{mode}_start", {})):
                    preload(bench_bin, s, KEYS)
                    st0 = s.stats("tiers")
                    res["c"][mode] = r = sets(bench_bin, s)
                    failed(f"{where}: {mode} set", r)
                    tier_note(f"{where}: {mode} set", r, st0, s.stats("tiers"))
                    log(f"  {row(mode + ' set', 'strata', r)}")
            except (RuntimeError, OSError) as e:
                problems.append(f"{where}: {mode}: {e}")
            finally:
                stop_all([s], where)
    finally:
        for s in everything:
            s.remove()

    # ---- tables ----
    print()
    print(f"Tiers benchmark: {version_of([proxy_bin, '--version'])} vs "
          f"{version_of([REDIS_SERVER, '--version'])}")
    print(f"strata-bench {THREADS} threads x {CONNS} conns x depth {DEPTH} ({IN_FLIGHT} in flight) "
          f"against every server; {KEYS} keys x {VALUE} B preloaded; {SECONDS:g} s per phase; "
          f"strata-proxy {' '.join(PROXY_FLAGS)}, text protocol; redis-server (1 thread), RESP")

    print()
    print("a. strata-proxy --backend local --sync interval|always  vs  "
          "redis-server --appendonly yes --appendfsync everysec|always")
    print(HEADER)
    print(RULE)
    for label, _, _, _ in DURABILITY:
        pair = res["a"].get(label, {})
        rd, st = pair.get("redis", {}), pair.get("strata", {})
        for op in ("set", "get"):
            what = f"{op}, {label}"
            print(row(what, "redis", rd.get(op)) if "not_built" not in rd else f"{what:{LW}} {'redis':{SW}} not started")
            print(row(what, "strata", st.get(op)) if "not_built" not in st
                  else f"{what:{LW}} {'strata':{SW}} not built")
            if rd.get(op) and st.get(op):
                print(ratio_row("ratio", st[op], rd[op]))
    print(RULE)
    print(f"restart with {RESTART_KEYS:,} keys x {VALUE} B: load (strata-bench preload), SIGTERM, "
          f"start again, until a GET of a loaded key returns its value")
    rh = f"{'':{LW}} {'server':{SW}} {'load s':>7} {'sets/s':>8} {'stop s':>7} {'up s':>7} {'value s':>8} {'read back':>9}"
    print(rh)
    for label, _, _, with_restart in DURABILITY:
        if not with_restart:
            print(f"{'restart, ' + label:{LW}} {'':{SW}} not measured (BENCH_RESTART_ALWAYS=1 adds it)")
            continue
        pair = res["a"].get(label, {})
        vals = {}
        for kind in ("redis", "strata"):
            b = pair.get(kind, {})
            r = b.get("restart")
            what = f"restart, {label}"
            if "not_built" in b:
                print(f"{what:{LW}} {kind:{SW}} not built")
            elif r is None:
                print(f"{what:{LW}} {kind:{SW}} (not run)")
            else:
                vals[kind] = r.get("value_s")
                print(f"{what:{LW}} {kind:{SW}} {fmt(r.get('load_s'), 7, 1)} {fmt(r.get('load_rate'), 8, 0)} "
                      f"{fmt(r.get('stop_s'), 7, 2)} {fmt(r.get('up_s'), 7, 2)} {fmt(r.get('value_s'), 8, 2)} "
                      f"{(str(r['found']) + '/' + str(CHECK_KEYS)) if 'found' in r else '-':>9}"
                      + ("" if r["status"] == "ok" else "  FAILED"))
        if vals.get("strata") and vals.get("redis"):
            print(f"{'':{LW}} {'ratio':{SW}} {'':7} {'':8} {'':7} {'':7} {vals['strata'] / vals['redis']:>8.2f}")

    print()
    print(f"b. GET hits in L1: strata-proxy without a backend vs with --backend local; "
          f"{ROUNDS} round(s), alternating, medians")
    print(HEADER)
    print(RULE)
    med = {}
    for key, label in (("l1", "L1 only (no --backend)"), ("backend", "--backend local")):
        runs = [r for r in res["b"].get(key, []) if r.get("status") == "ok" and "ops" in r]
        if res["b"].get("start", {}).get(key, {}).get("not_built"):
            print(f"{'get hits, ' + label:{LW}} {'strata':{SW}} not built")
            continue
        med[key] = {k: statistics.median(r[k] for r in runs) for k, _, _, _ in COLS
                    if runs and all(r.get(k) is not None for r in runs)} if runs else None
        if med[key] is not None:
            med[key]["status"] = "ok"
        print(row(f"get hits, {label}", "strata", med[key]))
    target = None
    if med.get("l1") and med.get("backend"):
        print(ratio_row("ratio", med["backend"], med["l1"]))
        x = med["backend"]["ops"] / med["l1"]["ops"]
        target = {"ratio": x, "target": 1.0, "pass": x >= 1.0}
        print(RULE)
        print(f"ops/s with --backend local / L1 only: {x:.2f} (target >= 1.0) {'PASS' if x >= 1.0 else 'MISS'}")

    print()
    print("c. --backend local --sync interval: the backend paths (strata-proxy, text protocol)")
    print(HEADER)
    print(RULE)
    c = res["c"]
    if c.get("miss_start", {}).get("not_built"):
        print(f"{'L1 miss -> backend get (each key once)':{LW}} {'strata':{SW}} not built")
    else:
        print(row("L1 miss -> backend get (each key once)", "strata", c.get("miss")))
    for mode in ("write-through", "write-behind"):
        if c.get(f"{mode}_start", {}).get("not_built"):
            print(f"{mode + ' set':{LW}} {'strata':{SW}} not built")
        else:
            print(row(f"{mode} set", "strata", c.get(mode)))
    print(row("reference: set, no backend", "strata", c.get("set_l1")))
    print(row("reference: get hits, --backend local", "strata", med.get("backend")))
    print(RULE)
    print("ratio = strata / redis (a) or --backend local / L1 only (b): above 1 is better for ops/s, "
          "below 1 for latency and CPU; srv us/op = the server process's utime+stime over the phase / "
          "requests strata-bench completed; set = overwrites of random preloaded keys, "
          "get = reads of random preloaded keys")
    print(f"total time {time.monotonic() - started:.0f} s; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs (servers and strata-bench share them)")
    if not_built:
        print("\nNOT BUILT (strata-proxy refused a flag at start):")
        for n in not_built:
            print("  " + n)
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
            json.dump({"results": clean(res), "b_median": med, "b_target": target,
                       "not_built": not_built, "notes": notes, "problems": problems}, f, indent=1)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
