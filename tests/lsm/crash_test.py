#!/usr/bin/python3
"""crash_test.py - the storage engine's crash driver (make crash-test).

Runs lsm-stress (tools/lsm/stress.c) in a loop of cycles:

    run (writes, overwrites, deletes, batches, older versions written
         after newer ones; acks logged)
      -> SIGKILL at a random moment | SIGKILL at a named kill point
         | simulated power loss | clean close
      -> verify (reopen twice; every acknowledged write present with its
         latest value, no deleted key back, no older version winning, no
         corruption; in half the cycles, drawn at random, then a full
         compaction after which exactly the newest version of each key
         remains) -> next cycle

Invariants: after a SIGKILL every sync mode must keep every acknowledged
write (a process kill loses nothing: the WAL is in the page cache), so those
cycles are verified with the strong invariant; after a simulated power loss
sync=always is verified strong and sync=interval/none with the weaker one
(each writer's keys hold a prefix of its operations). The database lives
across cycles and is recreated every --epoch cycles, alternating leveled and
size-tiered compaction and a long or a 1-second gc_grace.

Short mode (default, CI): --cycles cycles (>= 100) in a fixed mix that
includes every named kill point several times; a kill point never reached
is retried with smaller hit counts and fails the run if still never hit.
Long mode: --seconds S runs that long. The last line is "N passed, N failed".
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Named kill points (storage/killpoint.h) and the range of hit counts to
# draw from: how often each is passed per second of lsm-stress run differs
# by orders of magnitude (every WAL group vs. once per open).
POINTS = {
    "wal.before_append": (1, 4000),
    "wal.after_append": (1, 4000),
    "wal.after_sync": (1, 400),
    "sst.before_rename": (1, 12),
    "sst.after_rename": (1, 12),
    "manifest.before_sync": (1, 12),
    "manifest.after_sync": (1, 12),
    "current.before_rename": (1, 1),
    "current.after_rename": (1, 1),
    "flush.before_install": (1, 6),
    "flush.after_install": (1, 6),
    "compaction.before_install": (1, 4),
    "compaction.after_install": (1, 4),
    "delete.obsolete": (1, 15),
}
SYNCS = ["always", "interval", "none"]
EPOCHS = [("leveled", 864000), ("tiered", 864000), ("leveled", 1), ("tiered", 1)]
POINT_TIMEOUT = 6.0  # seconds to wait for a kill point before a plain SIGKILL


class Driver:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.base = args.dir or tempfile.mkdtemp(prefix="strata-crash-")
        os.makedirs(self.base, exist_ok=True)
        self.passed = 0
        self.failed = 0
        self.cycle = 0
        self.epoch = -1
        self.kinds = {}
        self.reached = {p: 0 for p in POINTS}
        self.not_reached = {p: 0 for p in POINTS}
        self.acked = 0
        self.inflight = 0
        self.lost = 0
        self.stale_ops = 0
        self.stale_entries = 0
        self.compacted = 0
        self.run_checked = 0
        self.run_lines = 0
        self.newer_below = 0

    def log(self, msg):
        print(msg, flush=True)

    def new_epoch(self):
        self.epoch += 1
        style, grace = EPOCHS[self.epoch % len(EPOCHS)]
        self.style = style
        self.db = os.path.join(self.base, "db")
        self.state = os.path.join(self.base, "state")
        shutil.rmtree(self.db, ignore_errors=True)
        seed = self.rng.randrange(1, 1 << 62)
        cmd = [self.a.bin, "init", "--dir", self.db, "--state", self.state,
               "--keys", str(self.a.keys), "--threads", str(self.a.threads),
               "--seed", str(seed), "--style", style, "--gc-grace", str(grace)]
        subprocess.run(cmd, check=True)
        self.log(f"== epoch {self.epoch}: {style} compaction, gc_grace {grace}s,"
                 f" {self.a.keys} keys, {self.a.threads} writers, seed {seed}")

    def save_failure(self, logpath):
        dest = os.path.join(self.base, f"failed-cycle-{self.cycle}")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(self.db, os.path.join(dest, "db"), dirs_exist_ok=True)
        for f in (self.state, self.state + ".acks", logpath):
            if os.path.exists(f):
                shutil.copy(f, dest)
        with open(logpath) as f:
            tail = f.read().splitlines()[-30:]
        for line in tail:
            self.log("    | " + line)
        self.log(f"    kept in {dest}")

    def one_cycle(self, kind, point=None, hit=0, sync=None):
        """Runs one run+verify cycle; returns whether the point fired."""
        self.cycle += 1
        sync = sync or self.rng.choice(SYNCS)
        if point == "wal.after_sync" and sync == "none":
            sync = self.rng.choice(["always", "interval"])
        logpath = os.path.join(self.base, "cycle.log")
        cmd = [self.a.bin, "run", "--dir", self.db, "--state", self.state,
               "--sync", sync]
        env = dict(os.environ)
        env.pop("STRATA_KILL_POINT", None)
        env.pop("STRATA_KILL_POINT_HIT", None)
        what = kind
        delay = None
        if kind == "powerloss":
            ms = self.rng.randrange(50, 1500)
            cmd += ["--power-loss-ms", str(ms)]
            what = f"power loss at {ms} ms"
        elif kind == "clean":
            cmd += ["--seconds", "0.4"]
            what = "clean close"
        elif kind == "point":
            env["STRATA_KILL_POINT"] = point
            env["STRATA_KILL_POINT_HIT"] = str(hit)
            what = f"kill point {point}#{hit}"
        else:
            delay = self.rng.uniform(0.0, 1.5)
            what = f"SIGKILL at {delay * 1000:.0f} ms"
        fired = False
        with open(logpath, "w") as logf:
            p = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
            killed_by_us = False
            try:
                if delay is not None:
                    try:
                        p.wait(timeout=delay)
                    except subprocess.TimeoutExpired:
                        p.send_signal(signal.SIGKILL)
                        killed_by_us = True
                else:
                    limit = POINT_TIMEOUT if kind == "point" else 30.0
                    try:
                        p.wait(timeout=limit)
                    except subprocess.TimeoutExpired:
                        p.send_signal(signal.SIGKILL)
                        killed_by_us = True
            finally:
                rc = p.wait()
        ok = True
        why = ""
        if kind == "point":
            fired = rc == -signal.SIGKILL and not killed_by_us
            if fired:
                self.reached[point] += 1
            else:
                self.not_reached[point] += 1
                what += " (not reached: plain SIGKILL)"
        if rc not in (0, -signal.SIGKILL):
            ok = False
            why = f"run exited with status {rc}"
        if rc == 0 and kind in ("random", "point") and not killed_by_us:
            ok = False
            why = "run exited by itself"
        invariant = "prefix" if kind == "powerloss" and sync != "always" else "strong"
        vout = ""
        if ok:
            self.account_run(logpath)
            vcmd = [self.a.bin, "verify", "--dir", self.db, "--state", self.state,
                    "--invariant", invariant]
            if self.rng.random() < 0.5:
                vcmd.append("--compact")
            v = subprocess.run(vcmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
            with open(logpath, "a") as logf:
                logf.write(v.stdout)
            vout = v.stdout.strip().splitlines()[-1] if v.stdout.strip() else ""
            if v.returncode != 0:
                ok = False
                why = "verification failed"
            else:
                self.account(vout)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        tag = "ok  " if ok else "FAIL"
        self.log(f"cycle {self.cycle:4d} {tag} [{self.style}, sync={sync}] {what}"
                 f" -> {invariant}: {vout.split(': ', 1)[-1] if ok else why}")
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.save_failure(logpath)
            self.new_epoch()  # the database is suspect: start again
        return fired

    def account(self, line):
        # "verify: cycle N ok (strong): A acked ops, I in-flight ops applied,
        #  L acked ops lost (allowed), X live + Y tombstones, S stale ops
        #  (E entries), files ..., open T ms, compacted: R table records
        #  for K keys | not compacted"
        try:
            body = line.split("): ", 1)[1].split(", ")
            self.acked += int(body[0].split()[0])
            self.inflight += int(body[1].split()[0])
            self.lost += int(body[2].split()[0])
            stale = body[4].split()
            self.stale_ops += int(stale[0])
            self.stale_entries += int(stale[3].lstrip("("))
            self.compacted += body[-1].startswith("compacted:")
        except (IndexError, ValueError):
            pass

    def account_run(self, logpath):
        # A run that ended by itself (power loss, clean close) prints
        # "run: cycle N: ... (P past the first hit, B newer below), ...
        #  (C checked), ..."; a killed one prints nothing.
        with open(logpath) as f:
            for line in f:
                if not line.startswith("run: cycle "):
                    continue
                try:
                    self.newer_below += int(line.split(" newer below")[0].split()[-1])
                    self.run_checked += int(line.split(" checked)")[0].split("(")[-1])
                    self.run_lines += 1
                except (IndexError, ValueError):
                    pass

    def pick_random_kind(self):
        r = self.rng.random()
        if r < 0.35:
            return "point"
        if r < 0.70:
            return "random"
        if r < 0.93:
            return "powerloss"
        return "clean"

    def run_short(self):
        n = max(self.a.cycles, 100)
        plan = []
        per_point = 3
        for p in POINTS:
            for _ in range(per_point):
                plan.append(("point", p))
        rest = n - len(plan)
        n_power = rest * 2 // 5
        n_clean = max(rest // 12, 2)
        plan += [("powerloss", None)] * n_power + [("clean", None)] * n_clean
        plan += [("random", None)] * (n - len(plan))
        self.rng.shuffle(plan)
        epoch_len = max(len(plan) // len(EPOCHS), 1)
        for i, (kind, point) in enumerate(plan):
            if i % epoch_len == 0 and self.epoch + 1 < len(EPOCHS):
                self.new_epoch()
            self.do(kind, point)
        # Every kill point must have fired at least once: retry the missing
        # ones with the smallest hit counts.
        for p in POINTS:
            tries = 0
            while self.reached[p] == 0 and tries < 4:
                tries += 1
                self.one_cycle("point", p, 1 + tries // 2)

    def do(self, kind, point=None):
        if kind == "point":
            if point is None:
                point = list(POINTS)[self.cycle % len(POINTS)]
            lo, hi = POINTS[point]
            self.one_cycle("point", point, self.rng.randint(lo, hi))
        else:
            self.one_cycle(kind)

    def run_long(self):
        end = time.monotonic() + self.a.seconds
        while time.monotonic() < end or self.cycle < self.a.cycles:
            if self.cycle % self.a.epoch == 0:
                self.new_epoch()
            self.do(self.pick_random_kind())

    def main(self):
        t0 = time.monotonic()
        self.log(f"crash test: {self.a.bin}, seed {self.a.seed}, dir {self.base}")
        if self.a.seconds > 0:
            self.run_long()
        else:
            self.run_short()
        missing = [p for p in POINTS if self.reached[p] == 0]
        self.log("")
        self.log("kill point coverage (fired / fell back to a plain SIGKILL):")
        for p in POINTS:
            self.log(f"  {p:28s} {self.reached[p]:4d} / {self.not_reached[p]}")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items()))
        self.log(f"cycles: {self.cycle} in {time.monotonic() - t0:.0f} s ({kinds});"
                 f" {self.acked} acknowledged ops verified, {self.inflight} in-flight"
                 f" ops found applied, {self.lost} acked ops lost after simulated"
                 f" power loss with sync=interval/none (allowed)")
        self.log(f"out of order: {self.stale_ops} acknowledged ops with {self.stale_entries}"
                 f" stale entries (older than the key's newest version, or replaying it)"
                 f" verified; {self.compacted}"
                 f" verifies after a full compaction, plus {self.run_checked} full compactions"
                 f" checked inside the {self.run_lines} runs that ended by themselves, whose"
                 f" reads found a newer version below the first hit {self.newer_below} times")
        if missing and self.a.seconds == 0:
            self.log("kill points never reached: " + ", ".join(missing))
            self.failed += len(missing)
        if self.failed == 0 and not self.a.keep:
            shutil.rmtree(self.base, ignore_errors=True)
        self.log(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/release/bin/lsm-stress")
    ap.add_argument("--cycles", type=int, default=120,
                    help="cycles of the short run (>= 100), minimum of a long one")
    ap.add_argument("--seconds", type=float, default=0,
                    help="long run: keep cycling this long (0 = short run)")
    ap.add_argument("--dir", help="work directory (default: a new temp dir)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--epoch", type=int, default=50,
                    help="long run: cycles per database before a fresh one")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    sys.exit(Driver(a).main())


if __name__ == "__main__":
    main()
