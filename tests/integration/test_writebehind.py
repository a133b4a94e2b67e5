"""strata-proxy's write-behind mode and its journal (docs/TIERS.md, "The
journal"): replies as memcached gives them, values readable at once and
pending while the backend is down, coalescing (one pending record per
key), the drainer applying every key's latest value with the version the
client was given, acknowledged writes across SIGKILL (50,000+ pending) and
SIGTERM (drain timeout), the journal's bounds with overflow = error and
overflow = write-through, reads of pending writes (and pending deletes)
that L1 no longer holds, and the drainer's backoff.

The backend is made "down" with --test-backend-pause-file: while that
file exists the drainer finds the backend failing and every write stays
pending. Each test has its own data directory (tmp_path) and its own
processes, started on free loopback ports and stopped by pid.
Everything here needs a backend: strata-only.
"""

import os
import re
import signal
import subprocess
import time

import pytest

import helpers
from helpers import CRLF, gets_unique, read_meta_reply, wait_until

# once, in the strata run (as test_tiers.py's backend tests)
pytestmark = pytest.mark.skipif(helpers.SERVER_KIND != "strata",
                                reason="needs strata-proxy's backend and journal (docs/TIERS.md); "
                                       "runs in the strata run")

OUT_OF_MEMORY = b"SERVER_ERROR out of memory storing object\r\n"
# A start applies what the journal holds before it serves: allow for it.
READY_TIMEOUT = 20.0
# The drainer backs off to 1 s between failing passes: a drain that can
# start only after that wait, plus the work, is well within this.
DRAIN_TIMEOUT = 15.0


class Proxy(helpers.Server):
    """helpers.Server with a longer readiness wait (start-up replay)."""

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with helpers.Conn(self.addr, timeout=1.0) as c:
                    return int(c.stats_dict().get("pid", -1)) == self.proc.pid
            except (OSError, AssertionError, ValueError):
                time.sleep(0.02)
        return False


@pytest.fixture
def start():
    """start(data_dir, *flags, memory_mb=64): a strata-proxy with
    `--backend local --data-dir data_dir` and the flags; every process
    still running at the end is killed by its pid."""
    if helpers.external_addr():
        pytest.skip("needs servers of its own; not possible with STRATA_TEST_ADDR")
    started = []

    def run(data_dir, *flags, memory_mb=64):
        p = Proxy(["--backend", "local", "--data-dir", str(data_dir), *flags],
                  memory_mb=memory_mb)
        p.start()
        started.append(p)
        return p

    yield run
    kill_all(started)


def kill_all(proxies):
    """SIGKILL each proxy still running, by its pid; forget its log."""
    for p in proxies:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)
        p.stop()  # the process has exited: only removes its log


def wb_flags(pause, *more):
    """The default policy write-behind, the backend down while `pause` exists."""
    return ["--mode", "write-behind", "--test-backend-pause-file", str(pause), *more]


def pause_backend(pause):
    open(pause, "w").close()


def resume_backend(pause):
    os.unlink(pause)


def kill(proxy):
    """SIGKILL by pid; waits for it."""
    proxy.proc.send_signal(signal.SIGKILL)
    proxy.proc.wait(10)
    proxy.stop()


def terminate(proxy, timeout):
    """SIGTERM by pid: (exit status or a description, seconds it took, log)."""
    t0 = time.monotonic()
    proxy.proc.send_signal(signal.SIGTERM)
    try:
        status = proxy.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proxy.proc.kill()
        proxy.proc.wait(10)
        status = "still running %.0f s after SIGTERM" % timeout
    elapsed = time.monotonic() - t0
    log = proxy.log()
    proxy.stop()
    return status, elapsed, log


def journal(conn):
    return {k: int(v) for k, v in conn.stats_dict(b"journal").items()}


def backend_stats(conn):
    return {k: int(v) for k, v in conn.stats_dict(b"backend").items() if v.isdigit()}


def wait_drained(conn, timeout=DRAIN_TIMEOUT):
    """Waits until `stats journal` pending is 0; returns the journal stats."""
    last = {}

    def drained():
        last.update(journal(conn))
        return last["pending"] == 0
    wait_until(drained, timeout, interval=0.05)
    return last


def store_many(conn, requests, batch=1000):
    """Sends storage requests pipelined, `batch` per buffer, and returns
    their one-line replies in order."""
    replies = []
    for i in range(0, len(requests), batch):
        chunk = requests[i:i + batch]
        conn.send(b"".join(chunk))
        for _ in chunk:
            line = conn.read_line(timeout=30)
            assert line.endswith(CRLF), "reply %d incomplete: %r" % (len(replies), line)
            replies.append(line)
    return replies


def set_request(key, value, flags=0, exptime=0):
    return b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exptime, len(value), value)


def set_all(conn, items, batch=1000):
    """Sets every (key, value) pipelined; asserts each is STORED."""
    replies = store_many(conn, [set_request(k, v) for k, v in items], batch)
    bad = [(items[i][0], r) for i, r in enumerate(replies) if r != b"STORED\r\n"]
    assert not bad, "%d sets not STORED, first %r" % (len(bad), bad[:3])


def get_many(conn, keys, batch=100):
    """{key: (flags, value)} of the keys that hit, by multi-get."""
    out = {}
    for i in range(0, len(keys), batch):
        chunk = keys[i:i + batch]
        conn.send(b"get " + b" ".join(chunk) + CRLF)
        while True:
            line = conn.read_line()
            if line == b"END\r\n":
                break
            m = re.fullmatch(rb"VALUE (\S+) (\d+) (\d+)\r\n", line)
            assert m, "unexpected get reply line %r" % line
            data = conn.read_exact(int(m.group(3)) + 2)
            assert data.endswith(CRLF), "value of %r incomplete" % m.group(1)
            out[m.group(1)] = (int(m.group(2)), data[:-2])
    return out


def get_one(conn, key):
    """The value of key, or None on a miss."""
    got = get_many(conn, [key])
    return got[key][1] if key in got else None


def assert_values(conn, expected, what):
    """expected: {key: value or None (absent)}; reads all by multi-get and
    reports the first differences."""
    keys = sorted(expected)
    got = get_many(conn, keys)
    wrong = [(k, expected[k], got.get(k, (None, None))[1]) for k in keys
             if got.get(k, (None, None))[1] != expected[k]]
    assert not wrong, "%s: %d of %d keys differ (key, expected, got), first: %r" % (
        what, len(wrong), len(keys), wrong[:5])


# ------------------------------------------------------------- 1. basics

# (request, exact reply memcached 1.6.18 gives, appends to the journal)
BASIC_SCRIPT = [
    (b"set b:k1 5 0 3\r\nabc\r\n", b"STORED\r\n", 1),
    (b"get b:k1\r\n", b"VALUE b:k1 5 3\r\nabc\r\nEND\r\n", 0),
    (b"add b:k1 6 0 1\r\nx\r\n", b"NOT_STORED\r\n", 0),
    (b"add b:k2 6 0 2\r\nyy\r\n", b"STORED\r\n", 1),
    (b"replace b:missing 0 0 1\r\nz\r\n", b"NOT_STORED\r\n", 0),
    (b"replace b:k2 7 0 2\r\nzz\r\n", b"STORED\r\n", 1),
    (b"append b:k1 9 0 2\r\nde\r\n", b"STORED\r\n", 1),
    (b"prepend b:k1 9 0 1\r\n_\r\n", b"STORED\r\n", 1),
    (b"append b:missing 0 0 1\r\nx\r\n", b"NOT_STORED\r\n", 0),
    (b"get b:k1 b:k2 b:missing\r\n",
     b"VALUE b:k1 5 6\r\n_abcde\r\nVALUE b:k2 7 2\r\nzz\r\nEND\r\n", 0),
    (b"set b:n 3 0 2\r\n10\r\n", b"STORED\r\n", 1),
    (b"incr b:n 5\r\n", b"15\r\n", 1),
    (b"decr b:n 3\r\n", b"12\r\n", 1),
    (b"incr b:n 990\r\n", b"1002\r\n", 1),
    (b"incr b:k2 1\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", 0),
    (b"incr b:missing 1\r\n", b"NOT_FOUND\r\n", 0),
    (b"get b:n\r\n", b"VALUE b:n 3 4\r\n1002\r\nEND\r\n", 0),
    (b"cas b:missing 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n", 0),
    (b"set b:gone 0 0 4\r\ngone\r\n", b"STORED\r\n", 1),
    (b"delete b:gone\r\n", b"DELETED\r\n", 1),
    (b"delete b:gone\r\n", b"NOT_FOUND\r\n", 0),
    (b"get b:gone\r\n", b"END\r\n", 0),
    (b"touch b:missing 10\r\n", b"NOT_FOUND\r\n", 0),
    (b"set b:ttl 1 1000 3\r\nttl\r\n", b"STORED\r\n", 1),
    (b"touch b:ttl 2000\r\n", b"TOUCHED\r\n", 1),
]
# Distinct keys written: b:k1 b:k2 b:n b:gone (a pending delete) b:ttl,
# b:cas, b:hot.
BASIC_FINAL = {b"b:k1": (5, b"_abcde"), b"b:k2": (7, b"zz"), b"b:n": (3, b"1002"),
               b"b:ttl": (1, b"ttl"), b"b:cas": (2, b"second"), b"b:hot": (0, b"hot99")}
BASIC_ABSENT = [b"b:gone", b"b:missing"]


def test_basic_commands_pending_then_applied(start, tmp_path):
    data, pause = tmp_path / "data", tmp_path / "pause"
    pause_backend(pause)
    p = start(data, *wb_flags(pause, "--journal-drain-timeout", "1"))
    appended = 0
    with p.connect() as c:
        for request, reply, appends in BASIC_SCRIPT:
            c.call(request, reply)
            appended += appends
        # cas through the journal: the unique gets gives is the pending
        # write's version; a stale one is refused
        c.call(b"set b:cas 2 0 5\r\nfirst\r\n", b"STORED\r\n")
        u1 = gets_unique(c, b"b:cas")
        c.call(b"cas b:cas 2 0 6 %d\r\nsecond\r\n" % u1, b"STORED\r\n")
        c.call(b"cas b:cas 2 0 5 %d\r\nthird\r\n" % u1, b"EXISTS\r\n")
        appended += 2
        # 100 writes of one key coalesce into one pending record
        set_all(c, [(b"b:hot", b"hot%02d" % i) for i in range(100)])
        appended += 100

        uniques = {k: gets_unique(c, k) for k in BASIC_FINAL}
        assert uniques[b"b:cas"] != u1
        got = get_many(c, sorted(BASIC_FINAL) + BASIC_ABSENT)
        assert got == BASIC_FINAL, "read at once"

        j = journal(c)
        assert j["pending"] == len(BASIC_FINAL) + 1, j  # + the pending delete of b:gone
        assert j["appended"] == appended, j
        assert j["applied"] == 0 and j["bytes"] > 0, j
        b = backend_stats(c)
        assert b["engine_puts"] == 0 and b["engine_deletes"] == 0, \
            "the backend was written while down: %r" % b

        # L1 emptied: the reads come from the journal, pending delete included
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert get_many(c, sorted(BASIC_FINAL) + BASIC_ABSENT) == BASIC_FINAL, \
            "pending writes read back after flush_all"
        time.sleep(0.3)
        j = journal(c)
        assert j["pending"] == len(BASIC_FINAL) + 1 and j["applied"] == 0, \
            "applied while the backend is down: %r" % j
        assert j["retried"] > 0, j

        resume_backend(pause)
        j = wait_drained(c)
        assert j["pending"] == 0, "not drained within %.0f s: %r" % (DRAIN_TIMEOUT, j)
        assert j["applied"] == len(BASIC_FINAL) + 1, j
        assert j["bytes"] == 0, j
        b = backend_stats(c)
        assert b["engine_puts"] >= len(BASIC_FINAL), b
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert get_many(c, sorted(BASIC_FINAL) + BASIC_ABSENT) == BASIC_FINAL, \
            "read from the backend after the drain"
    status, _, log = terminate(p, 10)
    assert status == 0, log

    # without write-behind: what is there is the backend's alone
    p = start(data, "--mode", "write-through")
    with p.connect() as c:
        assert get_many(c, sorted(BASIC_FINAL) + BASIC_ABSENT) == BASIC_FINAL, \
            "the backend after a restart in write-through"
        for k, u in uniques.items():
            assert gets_unique(c, k) == u, "%r: the backend's version is not the one " \
                "the client was given" % k
        c.send(b"mg b:ttl t\r\n")
        m = re.fullmatch(rb"HD t(\d+)\r\n", read_meta_reply(c))
        assert m and 1900 <= int(m.group(1)) <= 2000, "ttl of b:ttl: %r" % m
        c.call(b"cas b:cas 2 0 5 %d\r\nfifth\r\n" % uniques[b"b:cas"], b"STORED\r\n")
    status, _, log = terminate(p, 10)
    assert status == 0, log


# ------------------------------------------- 2. SIGKILL with 50,000 pending

NEW_KEYS = 50_000
SEEDED = 2_000


def test_sigkill_with_50000_pending_keeps_every_acknowledged_write(start, tmp_path):
    """The load uses --journal-sync interval so that 60,000+ acknowledged
    writes take well under a second (with `always` each pipelined write on
    one connection waits for its fdatasync); durability under SIGKILL does
    not depend on it: the process dies, not the machine, so what the
    journal wrote is in the kernel's page cache. The restart uses interval
    too: the start-up replay marks each record drained in the journal."""
    data, pause = tmp_path / "data", tmp_path / "pause"
    flags = wb_flags(pause, "--journal-sync", "interval")
    p = start(data, *flags)
    expected = {}
    with p.connect() as c:
        # seeded keys reach the backend first
        seed = [(b"s%05d" % i, b"old-%d" % i) for i in range(SEEDED)]
        set_all(c, seed)
        expected.update(seed)
        j = wait_drained(c)
        assert j["pending"] == 0 and j["applied"] == SEEDED, j

        pause_backend(pause)
        t0 = time.monotonic()
        new = [(b"n%06d" % i, b"v1-%d" % i) for i in range(NEW_KEYS)]
        set_all(c, new)
        expected.update(new)
        over = [(b"n%06d" % i, b"v2-%d-%s" % (i, b"x" * (i % 37))) for i in range(0, NEW_KEYS, 5)]
        set_all(c, over)
        expected.update(over)
        reseeded = [(b"s%05d" % i, b"new-%d" % i) for i in range(1000)]
        set_all(c, reseeded)
        expected.update(reseeded)
        deletes = [b"s%05d" % i for i in range(1000, 1500)]
        replies = store_many(c, [b"delete %s\r\n" % k for k in deletes])
        assert set(replies) == {b"DELETED\r\n"}, set(replies)
        expected.update((k, None) for k in deletes)
        load_s = time.monotonic() - t0
        pending_keys = NEW_KEYS + len(reseeded) + len(deletes)
        j = journal(c)
        assert j["pending"] == pending_keys >= 50_000, j
        assert j["appended"] == SEEDED + NEW_KEYS + len(over) + len(reseeded) + len(deletes), j
        assert j["applied"] == SEEDED, j
        # spot check before the kill: the latest values, at once
        sample = [b"n%06d" % i for i in range(0, NEW_KEYS, 997)] + [b"s01000", b"s00003"]
        assert_values(c, {k: expected[k] for k in sample}, "before SIGKILL")
    kill(p)

    resume_backend(pause)
    t0 = time.monotonic()
    p = start(data, *flags)
    start_s = time.monotonic() - t0
    with p.connect() as c:
        j = journal(c)
        # the replay ran before the proxy served its first request
        assert j["pending"] == 0, j
        assert j["applied"] == pending_keys, j
        t0 = time.monotonic()
        assert_values(c, expected, "after SIGKILL and a restart")
        read_s = time.monotonic() - t0
        tiers = c.stats_dict(b"tiers")
        assert int(tiers["backend_reads"]) >= len(expected) - 1000, tiers
    status, _, log = terminate(p, 10)
    assert status == 0, log
    print("load %.2f s, restart with replay %.2f s, read back %.2f s" % (load_s, start_s, read_s))


# ------------------------------------------------ 3. bounds and overflow

BOUND = 1000


def test_full_journal_overflow_error(start, tmp_path):
    data, pause = tmp_path / "data", tmp_path / "pause"
    p = start(data, "--policy", "we:=write-behind,overflow=error",
              "--journal-max-entries", str(BOUND), "--test-backend-pause-file", str(pause),
              "--journal-drain-timeout", "1")
    with p.connect() as c:
        c.call(b"set we:seeded 0 0 3\r\nold\r\n", b"STORED\r\n")
        assert wait_drained(c)["pending"] == 0
        pause_backend(pause)

        first = [(b"we:a%04d" % i, b"a%d" % i) for i in range(BOUND)]
        set_all(c, first)
        j = journal(c)
        assert j["pending"] == BOUND and j["refused_full"] == 0, j

        # new keys beyond the bound: refused, nothing changed
        beyond = [b"we:b%04d" % i for i in range(200)]
        replies = store_many(c, [set_request(k, b"no") for k in beyond])
        assert replies == [OUT_OF_MEMORY] * len(beyond), \
            "writes beyond the bound: %r" % sorted(set(replies))
        assert get_many(c, beyond) == {}, "a refused write changed something"
        # a write over the seeded key (in the backend, none pending) is new too
        c.call(b"set we:seeded 0 0 3\r\nnew\r\n", OUT_OF_MEMORY)
        assert get_one(c, b"we:seeded") == b"old"
        j = journal(c)
        assert j["pending"] == BOUND and j["refused_full"] == len(beyond) + 1, j

        # already pending keys still take writes (they replace their record)
        over = [(b"we:a%04d" % i, b"A%d" % i) for i in range(0, BOUND, 3)]
        set_all(c, over)
        c.call(b"delete we:a0001\r\n", b"DELETED\r\n")
        c.call(b"append we:a0002 0 0 1\r\n+\r\n", b"STORED\r\n")
        expected = dict(first)
        expected.update(over)
        expected[b"we:a0001"] = None
        expected[b"we:a0002"] = b"a2+"
        expected.update((k, None) for k in beyond)
        expected[b"we:seeded"] = b"old"
        assert_values(c, expected, "while full")
        j = journal(c)
        assert j["pending"] == BOUND and j["refused_full"] == len(beyond) + 1, j

        resume_backend(pause)
        j = wait_drained(c)
        assert j["pending"] == 0 and j["applied"] == 1 + BOUND, j
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert_values(c, expected, "after the drain")
        # room again: new keys are taken
        c.call(b"set we:b0000 0 0 3\r\nyes\r\n", b"STORED\r\n")
        expected[b"we:b0000"] = b"yes"
        assert wait_drained(c)["pending"] == 0
    status, _, log = terminate(p, 10)
    assert status == 0, log

    p = start(data, "--mode", "write-through")
    with p.connect() as c:
        assert_values(c, expected, "after a restart in write-through")


def test_full_journal_overflow_error_refuses_delete_and_touch(start, tmp_path):
    """delete and touch of a key whose write would be a new pending record
    are refused like any other write when the journal is full and overflow
    is error: a SERVER_ERROR, and the key is unchanged. (NOT_FOUND would
    tell the client the key was absent, which it is not.)"""
    data, pause = tmp_path / "data", tmp_path / "pause"
    p = start(data, "--policy", "we:=write-behind,overflow=error",
              "--journal-max-entries", "10", "--test-backend-pause-file", str(pause),
              "--journal-drain-timeout", "1")
    with p.connect() as c:
        c.call(b"set we:seeded 0 100 2\r\n10\r\n", b"STORED\r\n")
        assert wait_drained(c)["pending"] == 0
        pause_backend(pause)
        set_all(c, [(b"we:f%d" % i, b"x") for i in range(10)])
        assert journal(c)["pending"] == 10
        replies = {}
        for name, request in (("delete", b"delete we:seeded\r\n"),
                              ("touch", b"touch we:seeded 5000\r\n"),
                              ("incr", b"incr we:seeded 1\r\n"),
                              ("append", b"append we:seeded 0 0 1\r\n0\r\n"),
                              ("md", b"md we:seeded\r\n")):
            c.send(request)
            replies[name] = c.read_line()
        assert get_one(c, b"we:seeded") == b"10", "a refused write changed the key"
        c.send(b"mg we:seeded t\r\n")
        ttl = read_meta_reply(c)
        wrong = {n: r for n, r in replies.items() if not r.startswith(b"SERVER_ERROR")}
        assert not wrong, "refused writes of an existing key (journal full, overflow=error) " \
            "answered %r; all replies %r" % (wrong, replies)
        m = re.fullmatch(rb"HD t(\d+)\r\n", ttl)
        assert m and int(m.group(1)) <= 100, "touch changed the ttl: %r" % ttl


def test_full_journal_overflow_write_through(start, tmp_path):
    """overflow = write-through (the default): a write past the bounds goes
    to the backend at once and is acknowledged; a key whose older value is
    pending and whose newer write went through reads the newer value, also
    after the drain and a restart. The bytes bound (1 MB, its minimum) is
    what sends an overwrite of a pending key through."""
    data, pause = tmp_path / "data", tmp_path / "pause"
    pause_backend(pause)
    p = start(data, *wb_flags(pause, "--journal-max-entries", str(BOUND),
                              "--journal-max-bytes", "1", "--journal-drain-timeout", "1"))
    with p.connect() as c:
        first = [(b"ww:a%04d" % i, b"a%d" % i) for i in range(BOUND)]
        set_all(c, first)
        j = journal(c)
        assert j["pending"] == BOUND, j
        puts0 = backend_stats(c)["engine_puts"]
        assert puts0 == 0

        beyond = [(b"ww:b%04d" % i, b"b%d" % i) for i in range(200)]
        set_all(c, beyond)  # all STORED
        j = journal(c)
        assert j["pending"] == BOUND, j
        assert backend_stats(c)["engine_puts"] == len(beyond), \
            "writes beyond the bound did not go to the backend"
        expected = dict(first)
        expected.update(beyond)
        assert_values(c, expected, "with the journal full")
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert_values(c, expected, "from the journal and the backend, L1 emptied")

        # a pending key's overwrite too large for the bytes bound: through
        big = b"B" * 1_040_000
        assert journal(c)["bytes"] + len(big) > 1 << 20
        c.call(set_request(b"ww:a0007", big), b"STORED\r\n")
        expected[b"ww:a0007"] = big
        j = journal(c)
        assert j["pending"] == BOUND - 1, "the older pending write of ww:a0007 stays: %r" % j
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert get_one(c, b"ww:a0007") == big, "the older pending value came back"
        # that freed an entry: the next new key is journaled again (pending
        # over the backend's older value), the one after goes through
        puts1 = backend_stats(c)["engine_puts"]
        c.call(b"set ww:b0003 0 0 5\r\nnewer\r\n", b"STORED\r\n")
        assert journal(c)["pending"] == BOUND
        c.call(b"set ww:b0004 0 0 6\r\nnewer4\r\n", b"STORED\r\n")
        assert journal(c)["pending"] == BOUND
        assert backend_stats(c)["engine_puts"] == puts1 + 1
        expected[b"ww:b0003"] = b"newer"
        expected[b"ww:b0004"] = b"newer4"
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert_values(c, expected, "journal full again, L1 emptied")

        resume_backend(pause)
        j = wait_drained(c)
        assert j["pending"] == 0 and j["applied"] == BOUND, j
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert_values(c, expected, "after the drain")
    status, _, log = terminate(p, 10)
    assert status == 0, log

    p = start(data, "--mode", "write-through")
    with p.connect() as c:
        assert_values(c, expected, "after a restart in write-through")


# ---------------------------------------------------------- 4. SIGTERM

TERM_KEYS = 3000


def test_sigterm_drains_pending_writes(start, tmp_path):
    """Backend back just before SIGTERM: the drain (default journal_sync
    always, timeout 5 s) applies everything, the exit is clean, and a
    restart without write-behind finds every write in the backend."""
    data, pause = tmp_path / "data", tmp_path / "pause"
    pause_backend(pause)
    p = start(data, *wb_flags(pause, "--journal-drain-timeout", "5"))
    items = [(b"t%05d" % i, b"term-%d" % i) for i in range(TERM_KEYS)]
    with p.connect() as c:
        set_all(c, items)
        j = journal(c)
        assert j["pending"] == TERM_KEYS and j["applied"] == 0, j
    resume_backend(pause)
    status, elapsed, log = terminate(p, 15)
    assert status == 0, "exit after SIGTERM: %s\n%s" % (status, log)
    assert elapsed < 6.5, "SIGTERM took %.1f s" % elapsed
    assert "stay in the journal" not in log, log

    p = start(data, "--mode", "write-through")
    with p.connect() as c:
        assert_values(c, dict(items), "after SIGTERM's drain, in write-through")


def test_sigterm_with_backend_down_keeps_the_journal(start, tmp_path):
    """Backend down through SIGTERM with --journal-drain-timeout 1: the
    exit comes after about a second and is clean, the writes stay in the
    journal, and the next start (backend up) applies them before serving."""
    data, pause = tmp_path / "data", tmp_path / "pause"
    pause_backend(pause)
    flags = wb_flags(pause, "--journal-drain-timeout", "1")
    p = start(data, *flags)
    items = [(b"d%05d" % i, b"down-%d" % i) for i in range(TERM_KEYS)]
    with p.connect() as c:
        set_all(c, items)
        assert journal(c)["pending"] == TERM_KEYS
    status, elapsed, log = terminate(p, 15)
    assert status == 0, "exit after SIGTERM: %s\n%s" % (status, log)
    assert 0.8 <= elapsed < 3.5, "SIGTERM with drain timeout 1 took %.2f s" % elapsed
    assert "%d acknowledged writes stay in the journal" % TERM_KEYS in log, log

    resume_backend(pause)
    p = start(data, *flags)
    with p.connect() as c:
        j = journal(c)
        assert j["pending"] == 0 and j["applied"] == TERM_KEYS, j
        assert backend_stats(c)["engine_puts"] >= TERM_KEYS
        assert_values(c, dict(items), "after the next start")
    status, _, log = terminate(p, 10)
    assert status == 0, log


def test_restart_without_write_behind_applies_the_journal(start, tmp_path):
    """docs/TIERS.md: "the next start applies everything left before it
    serves"; the acknowledged writes left in the journal by a SIGKILL must
    not vanish when the next start has no write-behind policy."""
    data, pause = tmp_path / "data", tmp_path / "pause"
    pause_backend(pause)
    p = start(data, *wb_flags(pause))
    items = [(b"r%04d" % i, b"left-%d" % i) for i in range(100)]
    with p.connect() as c:
        set_all(c, items)
        assert journal(c)["pending"] == len(items)
    kill(p)
    resume_backend(pause)

    p = start(data, "--mode", "write-through")
    with p.connect() as c:
        assert_values(c, dict(items), "restart in write-through after SIGKILL")


# ----------------------------------------- 5. reads of evicted pending writes

BIG = 10_000
EVICT_KEYS = 400  # 4 MB of 10 KB values through a 1 MB L1


def evict_all(conn, prefix):
    set_all(conn, [(prefix + b"%04d" % i, b"e" * BIG) for i in range(EVICT_KEYS)], batch=50)


def in_l1(conn, key):
    """Whether L1 holds key (`me` shows L1 only and never fills)."""
    conn.send(b"me " + key + CRLF)
    line = conn.read_line()
    assert line == b"EN\r\n" or line.startswith(b"ME " + key + b" "), line
    return line != b"EN\r\n"


def test_pending_writes_read_back_after_l1_eviction(start, tmp_path):
    data, pause = tmp_path / "data", tmp_path / "pause"
    # the backend's older values
    p = start(data, "--mode", "write-through")
    with p.connect() as c:
        c.call(b"set e:del 4 0 3\r\nold\r\n", b"STORED\r\n")
        c.call(b"set e:set 4 0 3\r\nold\r\n", b"STORED\r\n")
        c.call(b"set e:exp 4 0 3\r\nold\r\n", b"STORED\r\n")
    status, _, log = terminate(p, 10)
    assert status == 0, log

    pause_backend(pause)
    p = start(data, *wb_flags(pause, "--journal-drain-timeout", "1"), memory_mb=1)
    with p.connect() as c:
        assert get_one(c, b"e:del") == b"old"  # filled into L1 from the backend
        c.call(b"set e:new 7 0 7\r\npending\r\n", b"STORED\r\n")
        c.call(b"set e:set 8 0 5\r\nnewer\r\n", b"STORED\r\n")
        c.call(b"delete e:del\r\n", b"DELETED\r\n")
        c.call(b"set e:exp 9 1 5\r\nshort\r\n", b"STORED\r\n")
        assert get_one(c, b"e:del") is None
        assert in_l1(c, b"e:new") and in_l1(c, b"e:set")

        evictions0 = int(c.stats_dict()["evictions"])
        evict_all(c, b"e:fill")
        assert int(c.stats_dict()["evictions"]) > evictions0, "nothing evicted"
        assert not in_l1(c, b"e:new") and not in_l1(c, b"e:set"), \
            "the keys were not evicted: the test proves nothing"
        assert journal(c)["pending"] == 4 + EVICT_KEYS

        fills0 = int(c.stats_dict(b"tiers")["l1_fills"])
        got = get_many(c, [b"e:new", b"e:set", b"e:del"])
        assert got == {b"e:new": (7, b"pending"), b"e:set": (8, b"newer")}, \
            "evicted pending writes read back (e:del a pending delete): %r" % got
        assert int(c.stats_dict(b"tiers")["l1_fills"]) >= fills0 + 2
        c.call(b"mg e:set v f\r\n", b"VA 5 f8\r\nnewer\r\n")

        # expired while pending: absent, not the backend's older value
        time.sleep(2.1)
        c.call(b"flush_all\r\n", b"OK\r\n")
        assert get_one(c, b"e:exp") is None, "an expired pending write read the backend's value"
        assert get_one(c, b"e:del") is None

        resume_backend(pause)
        assert wait_drained(c)["pending"] == 0
        c.call(b"flush_all\r\n", b"OK\r\n")
        got = get_many(c, [b"e:new", b"e:set", b"e:del", b"e:exp"])
        assert got == {b"e:new": (7, b"pending"), b"e:set": (8, b"newer")}, got
    status, _, log = terminate(p, 10)
    assert status == 0, log

    p = start(data, "--mode", "write-through")
    with p.connect() as c:
        got = get_many(c, [b"e:new", b"e:set", b"e:del", b"e:exp"])
        assert got == {b"e:new": (7, b"pending"), b"e:set": (8, b"newer")}, \
            "the backend after a restart: %r" % got


# ------------------------------------------------------------ 6. backoff

def test_drainer_backs_off_while_the_backend_is_down(start, tmp_path):
    """docs/TIERS.md: while the backend fails the drainer retries with
    backoff, 10 ms doubling to 1 s. Over about two seconds that is at most
    ~10 retries, whether or not clients keep writing meanwhile."""
    data, pause = tmp_path / "data", tmp_path / "pause"
    pause_backend(pause)
    p = start(data, *wb_flags(pause, "--journal-drain-timeout", "1"))
    with p.connect() as c:
        c.call(b"set w:first 0 0 1\r\nx\r\n", b"STORED\r\n")
        time.sleep(2.0)
        r0 = journal(c)["retried"]
        assert 1 <= r0 <= 12, "retries in 2 s, no writes: %d" % r0

        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 2.0:
            set_all(c, [(b"w:%06d" % (n + i), b"v") for i in range(200)], batch=200)
            n += 200
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        r1 = journal(c)["retried"]
        limit = 4 + int(2 * elapsed)
        assert r1 - r0 <= limit, \
            "%d retries in %.1f s while %d writes arrived (backoff allows ~%d)" % (
                r1 - r0, elapsed, n, limit)
