"""strata-proxy's tiers (docs/TIERS.md): a backend below L1 and a policy
per key prefix. Every command in every mode (cache-only, read-through,
write-through, write-around) against `backend = local`, checked three
ways: the replies (memcached's, byte for byte where memcached fixes them),
what the stats say reached the backend and L1, and what is left after a
restart on the same data directory. Then CAS uniques as backend versions,
flush_all, acknowledged writes across SIGKILL and SIGTERM (history
checker), one backend read for concurrent misses, l1_ttl_cap, the config
(flags, INI sections, refusals with EX_CONFIG) and a refused set.

The cache-only part (test_command_cache_only) runs on memcached too and
passes the same assertions; everything that needs a backend is strata-only.
Each test has its own data directory (tmp_path) and its own processes,
stopped by pid.
"""

import re
import signal
import struct
import subprocess
import threading
import time

import pytest

import binproto as bp
import helpers
from helpers import CRLF, Conn, gets_unique, read_meta_reply

# Backend tests run once, in the strata run: the local backend's commands
# are synchronous, so --test-async-reads (strata-async) only replays the
# front end's deferred path, which the main suite covers there.
strata_only = pytest.mark.skipif(helpers.SERVER_KIND != "strata",
                                 reason="needs strata-proxy's backend (docs/TIERS.md); "
                                        "runs in the strata run")

EX_CONFIG = 78
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
ITEM_SIZE_MAX = 1024 * 1024  # the default -I 1m

# One proxy holds a prefix per mode; "wt:" keys fall to the default policy
# (write-through, the default with a backend).
MODES = ("co", "rt", "wt", "wa")
MODE_NAMES = {"co": "cache-only", "rt": "read-through", "wt": "write-through",
              "wa": "write-around"}
MODE_POLICIES = ["--policy", "co:=cache-only", "--policy", "rt:=read-through",
                 "--policy", "wa:=write-around"]
# Preparing backend data for read-through keys: a key matches one prefix
# only, so the prefix is write-through for the first start.
SEED_POLICIES = ["--policy", "co:=cache-only", "--policy", "rt:=write-through",
                 "--policy", "wa:=write-through"]

SEED = (5, b"10", -1)  # (flags, value, ttl) of a seeded key
SEED_REQUEST = b"set %s 5 0 2\r\n10\r\n"


def backend_args(data_dir, *more):
    return ["--backend", "local", "--data-dir", str(data_dir), *more]


def seed(conn, key):
    conn.call(SEED_REQUEST % key, b"STORED\r\n")


def counters(conn):
    """The backend's and L1's counters of `stats backend` and `stats tiers`."""
    out = {}
    for name, value in conn.stats_dict(b"backend").items():
        if value.isdigit():
            out["backend." + name] = int(value)
    for name, value in conn.stats_dict(b"tiers").items():
        out["tiers." + name] = int(value)
    return out


def delta(after, before, name):
    return after[name] - before[name]


def read_state(conn, key):
    """(flags, value, ttl) of key as `mg <key> f t v` shows it, None for EN."""
    conn.send(b"mg %s f t v\r\n" % key)
    reply = read_meta_reply(conn)
    if reply == b"EN\r\n":
        return None
    m = re.match(rb"VA (\d+)((?: [^ \r\n]+)*)\r\n", reply)
    assert m, "unexpected mg reply %r" % reply[:200]
    data = reply[m.end():]
    assert len(data) == int(m.group(1)) + 2 and data.endswith(CRLF), reply[:200]
    toks = {t[:1]: t[1:] for t in m.group(2).split()}
    return int(toks[b"f"]), data[:-2], int(toks[b"t"])


def same_state(got, want):
    """got matches want; a positive expected TTL may have run down by 3 s."""
    if got is None or want is None:
        return got is want
    if got[:2] != want[:2]:
        return False
    return got[2] == want[2] if want[2] <= 0 else want[2] - 3 <= got[2] <= want[2]


def kill9(srv):
    """SIGKILL the server we started, by pid, and forget it."""
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(helpers.STOP_TIMEOUT)
    srv.proc = None


def mc_get(conn, key):
    """The value of key, None for a miss; ConnectionError if the reply is cut."""
    conn.send(b"get %s\r\n" % key)
    line = conn.read_line()
    if line == b"END\r\n":
        return None
    if not line.startswith(b"VALUE "):
        raise ConnectionError("bad get reply %r" % line[:80])
    size = int(line.split()[3])
    data = conn.read_exact(size + 2)
    if len(data) != size + 2 or conn.read_line() != b"END\r\n":
        raise ConnectionError("get reply cut")
    return data[:-2]


# ---- command scripts ------------------------------------------------------
#
# A script is a list of steps run on one text connection: (request, exact
# reply), (request, Re(pattern)) or a callable(conn, key). {k} is the key.

class Re:
    def __init__(self, pattern):
        self.pattern = pattern


def _reply_for(conn, request):
    if request.startswith((b"get", b"gets", b"gat", b"gats")):
        return conn.read_until(b"END\r\n")
    if request[:2] in (b"mg", b"ms", b"md", b"ma", b"mn"):
        return read_meta_reply(conn)
    return conn.read_line()


def run_steps(conn, key, steps):
    for step in steps:
        if callable(step):
            step(conn, key)
            continue
        request, expected = step
        request = request.replace(b"{k}", key)
        conn.send(request)
        got = _reply_for(conn, request)  # a whole reply, without waiting for more
        if isinstance(expected, Re):
            pattern = expected.pattern.replace(b"{k}", re.escape(key))
            assert re.fullmatch(pattern, got, re.S), "%r -> %r" % (request, got)
        else:
            expected = expected.replace(b"{k}", key)
            assert got == expected, "%r -> %r, expected %r" % (request, got, expected)


def say(conn, request, expected):
    """One exact request/reply step (the reply read as a whole, not by length)."""
    run_steps(conn, b"", [(request, expected)])


def step_cas_ok(conn, key):
    u = gets_unique(conn, key)
    say(conn, b"cas %s 9 0 3 %d\r\ncas\r\n" % (key, u), b"STORED\r\n")


def step_cas_stale(conn, key):
    u = gets_unique(conn, key)
    say(conn, b"set %s 5 0 2\r\n20\r\n" % key, b"STORED\r\n")
    say(conn, b"cas %s 9 0 3 %d\r\ncas\r\n" % (key, u), b"EXISTS\r\n")


def meta_cas(conn, key):
    conn.send(b"mg %s c\r\n" % key)
    line = conn.read_line()
    m = re.fullmatch(rb"HD c(\d+)\r\n", line)
    assert m, "mg c -> %r" % line
    return int(m.group(1))


def step_mg_c_is_the_gets_unique(conn, key):
    assert meta_cas(conn, key) == gets_unique(conn, key)


def step_ms_cas(conn, key):
    u = meta_cas(conn, key)
    say(conn, b"ms %s 2 C%d\r\nzz\r\n" % (key, u), b"HD\r\n")
    say(conn, b"ms %s 2 C%d\r\nyy\r\n" % (key, u), b"EX\r\n")


def binary_step(opcode, status=bp.SUCCESS, value=b"", extras=b"", req_value=b"",
                req_extras=b"", key_back=False):
    """A binary request on a connection of its own (the protocol is chosen
    by a connection's first byte); the response's CAS is not checked."""
    def step(conn, key):
        with Conn(conn.addr) as b:
            b.send(bp.request(opcode, key, req_value, req_extras, opaque=7))
            r = bp.read_response(b)
            assert r is not None, "no binary response to opcode 0x%02x" % opcode
            want_value = bp.ERROR_TEXT[status] if status != bp.SUCCESS else value
            got = (r.opcode, r.status, r.opaque, r.extras, r.key, r.value)
            want = (opcode, status, 7, extras, key if key_back else b"", want_value)
            assert got == want, "binary 0x%02x on %r: %s" % (opcode, key, r.brief())
    return step


class Spec:
    """One command (sequence) and what it leaves behind.

    kind: read (changes nothing), write (the key holds a value afterwards,
    written by the command), delete, failed (a conditional write refused,
    the key keeps its value), miss (the key stays absent), vivify (mg N:
    an L1 placeholder only). final: (flags, value, ttl) as memcached shows
    it afterwards, None for absent."""

    def __init__(self, name, steps, final, kind, seeded=True, reads=False):
        # reads: the script's command returns the value (gat, mg T), so in
        # write-around its own read fills L1 again after the backend touch
        self.name, self.steps, self.final, self.kind, self.seeded, self.reads = (
            name, steps, final, kind, seeded, reads)

    def __repr__(self):
        return self.name

    def l1_final(self, mode):
        """What a read shows right after the script, in mode."""
        if mode == "rt" and self.kind == "delete":
            return SEED  # the delete was L1-only: the next read fills again
        return self.final

    def durable_final(self, mode):
        """What a read shows after a restart, in mode."""
        if mode == "co":
            return None
        if mode == "rt":
            return SEED if self.seeded else None
        return None if self.kind == "vivify" else self.final


BIN_FLAGS5 = struct.pack(">I", 5)

SPECS = [
    # text retrieval
    Spec("get", [(b"get {k}\r\n", b"VALUE {k} 5 2\r\n10\r\nEND\r\n")], SEED, "read"),
    Spec("gets", [(b"gets {k}\r\n", Re(rb"VALUE {k} 5 2 [1-9]\d*\r\n10\r\nEND\r\n"))],
         SEED, "read"),
    Spec("get-miss", [(b"get {k}\r\n", b"END\r\n")], None, "miss", seeded=False),
    Spec("gat", [(b"gat 100 {k}\r\n", b"VALUE {k} 5 2\r\n10\r\nEND\r\n")],
         (5, b"10", 100), "write", reads=True),
    Spec("gats", [(b"gats 100 {k}\r\n", Re(rb"VALUE {k} 5 2 [1-9]\d*\r\n10\r\nEND\r\n"))],
         (5, b"10", 100), "write", reads=True),
    Spec("gat-miss", [(b"gat 100 {k}\r\n", b"END\r\n")], None, "miss", seeded=False),
    # text storage
    Spec("set", [(b"set {k} 6 100 3\r\nnew\r\n", b"STORED\r\n")], (6, b"new", 100), "write"),
    Spec("set-new", [(b"set {k} 6 0 3\r\nnew\r\n", b"STORED\r\n")], (6, b"new", -1), "write",
         seeded=False),
    Spec("add-existing", [(b"add {k} 7 0 3\r\nadd\r\n", b"NOT_STORED\r\n")], SEED, "failed"),
    Spec("add-new", [(b"add {k} 7 0 3\r\nadd\r\n", b"STORED\r\n")], (7, b"add", -1), "write",
         seeded=False),
    Spec("replace", [(b"replace {k} 8 0 3\r\nrep\r\n", b"STORED\r\n")], (8, b"rep", -1),
         "write"),
    Spec("replace-missing", [(b"replace {k} 8 0 3\r\nrep\r\n", b"NOT_STORED\r\n")], None,
         "miss", seeded=False),
    Spec("append", [(b"append {k} 0 0 1\r\nx\r\n", b"STORED\r\n")], (5, b"10x", -1), "write"),
    Spec("prepend", [(b"prepend {k} 0 0 1\r\nx\r\n", b"STORED\r\n")], (5, b"x10", -1),
         "write"),
    Spec("append-missing", [(b"append {k} 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")], None, "miss",
         seeded=False),
    Spec("cas", [step_cas_ok], (9, b"cas", -1), "write"),
    Spec("cas-stale", [step_cas_stale], (5, b"20", -1), "write"),
    Spec("cas-missing", [(b"cas {k} 0 0 1 12345\r\nx\r\n", b"NOT_FOUND\r\n")], None, "miss",
         seeded=False),
    Spec("incr", [(b"incr {k} 5\r\n", b"15\r\n")], (5, b"15", -1), "write"),
    # memcached writes a shorter result in place, padded with spaces
    Spec("decr", [(b"decr {k} 3\r\n", b"7\r\n")], (5, b"7 ", -1), "write"),
    Spec("incr-missing", [(b"incr {k} 1\r\n", b"NOT_FOUND\r\n")], None, "miss", seeded=False),
    Spec("touch", [(b"touch {k} 100\r\n", b"TOUCHED\r\n")], (5, b"10", 100), "write"),
    Spec("touch-missing", [(b"touch {k} 100\r\n", b"NOT_FOUND\r\n")], None, "miss",
         seeded=False),
    # deletes read the key first: read-through deletes the L1 copy only
    # (a key L1 does not hold: test_read_through_fills_and_never_writes_the_backend)
    Spec("delete", [(b"get {k}\r\n", b"VALUE {k} 5 2\r\n10\r\nEND\r\n"),
                    (b"delete {k}\r\n", b"DELETED\r\n")], None, "delete"),
    Spec("delete-missing", [(b"delete {k}\r\n", b"NOT_FOUND\r\n")], None, "miss",
         seeded=False),
    # meta get
    Spec("mg-flags", [(b"mg {k} s v f t k\r\n", b"VA 2 s2 f5 t-1 k{k}\r\n10\r\n"),
                      step_mg_c_is_the_gets_unique], SEED, "read"),
    Spec("mg-T", [(b"mg {k} T100 v t\r\n", b"VA 2 t100\r\n10\r\n")], (5, b"10", 100), "write",
         reads=True),
    Spec("mg-miss", [(b"mg {k} v\r\n", b"EN\r\n")], None, "miss", seeded=False),
    Spec("mg-N", [(b"mg {k} N30 v\r\n", b"VA 0 W\r\n\r\n")], (0, b"", 30), "vivify",
         seeded=False),
    # meta set, with its modes (E add, A append, P prepend, R replace, S set)
    Spec("ms", [(b"ms {k} 3 F6 T100\r\nnew\r\n", b"HD\r\n")], (6, b"new", 100), "write"),
    Spec("ms-MS", [(b"ms {k} 3 MS F6\r\nnew\r\n", b"HD\r\n")], (6, b"new", -1), "write"),
    Spec("ms-ME-existing", [(b"ms {k} 3 ME F7\r\nadd\r\n", b"NS\r\n")], SEED, "failed"),
    Spec("ms-ME-new", [(b"ms {k} 3 ME F7\r\nadd\r\n", b"HD\r\n")], (7, b"add", -1), "write",
         seeded=False),
    Spec("ms-MA", [(b"ms {k} 1 MA\r\nx\r\n", b"HD\r\n")], (5, b"10x", -1), "write"),
    Spec("ms-MA-missing", [(b"ms {k} 1 MA\r\nx\r\n", b"NS\r\n")], None, "miss", seeded=False),
    Spec("ms-MP", [(b"ms {k} 1 MP\r\nx\r\n", b"HD\r\n")], (5, b"x10", -1), "write"),
    Spec("ms-MR", [(b"ms {k} 1 MR F3\r\nz\r\n", b"HD\r\n")], (3, b"z", -1), "write"),
    Spec("ms-MR-missing", [(b"ms {k} 1 MR F3\r\nz\r\n", b"NS\r\n")], None, "miss",
         seeded=False),
    Spec("ms-C", [step_ms_cas], (0, b"zz", -1), "write"),
    # meta delete
    Spec("md", [(b"mg {k} v\r\n", b"VA 2\r\n10\r\n"), (b"md {k}\r\n", b"HD\r\n")], None,
         "delete"),
    Spec("md-q", [(b"mg {k} v\r\n", b"VA 2\r\n10\r\n"), (b"md {k} q\r\nmn\r\n", b"MN\r\n")],
         None, "delete"),
    Spec("md-missing", [(b"md {k}\r\n", b"NF\r\n")], None, "miss", seeded=False),
    # meta arithmetic
    Spec("ma", [(b"ma {k}\r\n", b"HD\r\n")], (5, b"11", -1), "write"),
    Spec("ma-MD-D-v", [(b"ma {k} MD D5 v\r\n", b"VA 1\r\n5\r\n")], (5, b"5 ", -1), "write"),
    Spec("ma-T", [(b"ma {k} T100 D2 v t\r\n", b"VA 2 t100\r\n12\r\n")], (5, b"12", 100),
         "write"),
    Spec("ma-N-J", [(b"ma {k} N0 J13 v\r\n", b"VA 2\r\n13\r\n")], (0, b"13", -1), "write",
         seeded=False),
    Spec("ma-missing", [(b"ma {k} v\r\n", b"NF\r\n")], None, "miss", seeded=False),
    # binary protocol
    Spec("bin-getk", [binary_step(bp.GETK, value=b"10", extras=BIN_FLAGS5, key_back=True)],
         SEED, "read"),
    Spec("bin-set", [binary_step(bp.SET, req_value=b"bin",
                                 req_extras=bp.storage_extras(6, 0))], (6, b"bin", -1), "write"),
    Spec("bin-add-existing", [binary_step(bp.ADD, bp.KEY_EEXISTS, req_value=b"new",
                                          req_extras=bp.storage_extras(0, 0))], SEED, "failed"),
    Spec("bin-append", [binary_step(bp.APPEND, req_value=b"x")], (5, b"10x", -1), "write"),
    Spec("bin-incr", [binary_step(bp.INCREMENT, value=struct.pack(">Q", 15),
                                  req_extras=bp.arith_extras(5, 0, 0))], (5, b"15", -1), "write"),
    Spec("bin-incr-initial", [binary_step(bp.INCREMENT, value=struct.pack(">Q", 7),
                                          req_extras=bp.arith_extras(1, 7, 0))], (0, b"7", -1),
         "write", seeded=False),
    Spec("bin-touch", [binary_step(bp.TOUCH, extras=BIN_FLAGS5,
                                   req_extras=bp.expiry_extras(100))],
         (5, b"10", 100), "write", reads=True),
    Spec("bin-delete", [(b"get {k}\r\n", b"VALUE {k} 5 2\r\n10\r\nEND\r\n"),
                        binary_step(bp.DELETE)], None, "delete"),
]

# l1_fills of the read right after the script, by kind and mode (None: not
# fixed by docs/TIERS.md). write-around drops the copy a write leaves.
FILLS_AFTER = {
    "read": dict(co=0, rt=0, wt=0, wa=0),
    "write": dict(co=0, rt=0, wt=0, wa=1),
    "delete": dict(co=0, rt=1, wt=0, wa=0),
    "failed": dict(co=0, rt=0, wt=None, wa=None),
    "miss": dict(co=0, rt=0, wt=0, wa=0),
    "vivify": dict(co=0, rt=0, wt=0, wa=0),
}


# ---- cache-only: the same on memcached -------------------------------------

@pytest.fixture(scope="module")
def co_server(tmp_path_factory):
    """strata: a backend, the default write-through and co: cache-only;
    memcached: itself."""
    if helpers.external_addr():
        pytest.skip("needs a server of its own; not possible with STRATA_TEST_ADDR")
    args = []
    if helpers.IS_STRATA:
        args = backend_args(tmp_path_factory.mktemp("co-data"), "--policy", "co:=cache-only")
    srv = helpers.Server(args).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_command_cache_only(co_server, spec):
    """A cache-only key behaves as on memcached, and on strata nothing of it
    reaches the backend."""
    key = b"co:" + spec.name.encode()
    with co_server.connect() as c:
        if spec.seeded:
            seed(c, key)
        before = counters(c) if helpers.IS_STRATA else None
        run_steps(c, key, spec.steps)
        state = read_state(c, key)
        assert same_state(state, spec.final), (state, spec.final)
        if helpers.IS_STRATA:
            after = counters(c)
            for name in ("backend.reads", "backend.writes", "backend.engine_puts",
                         "backend.engine_deletes", "backend.engine_gets", "tiers.l1_fills",
                         "tiers.l1_fill_misses", "tiers.l1_invalidations"):
                assert delta(after, before, name) == 0, (name, before, after)
        assert c.version() == helpers.expected_version_line()


# ---- every command in every mode ---------------------------------------------

@strata_only
@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_command_in_every_mode(server_factory, tmp_path, spec):
    """One key per mode: seeded through write-through (co: in L1), the
    script run with the modes' policies, then a restart. Problems of every
    mode are collected and reported together."""
    data = tmp_path / "data"
    keys = {m: ("%s:%s" % (m, spec.name)).encode() for m in MODES}
    if spec.seeded:
        a = server_factory(*backend_args(data), *SEED_POLICIES)
        with a.connect() as c:
            for m in ("rt", "wt", "wa"):
                seed(c, keys[m])
        a.stop()

    problems = []
    b = server_factory(*backend_args(data), *MODE_POLICIES)
    for m in MODES:
        k = keys[m]
        with b.connect() as c:
            try:
                if spec.seeded and m == "co":
                    seed(c, k)
                c0 = counters(c)
                run_steps(c, k, spec.steps)
            except AssertionError as e:
                problems.append("%s: the script failed: %s" % (MODE_NAMES[m], e))
                continue
            c1 = counters(c)
            state = read_state(c, k)
            c2 = counters(c)
        want = spec.l1_final(m)
        if not same_state(state, want):
            problems.append("%s: after the script a read shows %r, expected %r"
                            % (MODE_NAMES[m], state, want))
        fills = 0 if spec.reads and m == "wa" else FILLS_AFTER[spec.kind][m]
        got_fills = delta(c2, c1, "tiers.l1_fills")
        if fills is not None and got_fills != fills:
            problems.append("%s: the read after the script made %d l1_fills, expected %d"
                            % (MODE_NAMES[m], got_fills, fills))
        writes = delta(c1, c0, "backend.writes")
        reads = delta(c1, c0, "backend.reads")
        if m == "co" and (writes, reads) != (0, 0):
            problems.append("cache-only: the script made %d backend writes and %d reads"
                            % (writes, reads))
        if m == "rt" and writes != 0:
            problems.append("read-through: the script made %d backend writes" % writes)
        if m in ("wt", "wa"):
            if spec.kind in ("write", "delete") and writes < 1:
                problems.append("%s: the script made no backend write" % MODE_NAMES[m])
            if spec.kind in ("read", "vivify") and writes != 0:
                problems.append("%s: a read made %d backend writes" % (MODE_NAMES[m], writes))
        if m != "co" and spec.kind == "read" and reads < 1:
            problems.append("%s: the L1 miss did not read the backend" % MODE_NAMES[m])
    b.stop()

    c_srv = server_factory(*backend_args(data), *MODE_POLICIES)
    with c_srv.connect() as c:
        for m in MODES:
            state = read_state(c, keys[m])
            want = spec.durable_final(m)
            if not same_state(state, want):
                problems.append("%s: after the restart a read shows %r, expected %r"
                                % (MODE_NAMES[m], state, want))
    assert not problems, "%s:\n  " % spec.name + "\n  ".join(problems)


@strata_only
def test_write_around_drops_the_copy_and_write_through_keeps_it(server_factory, tmp_path):
    srv = server_factory(*backend_args(tmp_path / "data"), "--policy", "wa:=write-around")
    with srv.connect() as c:
        for key, dropped in ((b"wa:k", True), (b"wt:k", False)):
            c.call(b"set %s 0 0 1\r\na\r\n" % key, b"STORED\r\n")
            t0 = counters(c)
            assert mc_get(c, key) == b"a"
            t1 = counters(c)
            assert delta(t1, t0, "tiers.l1_fills") == (1 if dropped else 0), key
            assert mc_get(c, key) == b"a"
            t2 = counters(c)
            assert delta(t2, t1, "tiers.l1_fills") == 0, "the filled copy is kept"
            c.call(b"set %s 0 0 1\r\nb\r\n" % key, b"STORED\r\n")
            t3 = counters(c)
            assert delta(t3, t2, "backend.writes") == 1
            if dropped:
                assert delta(t3, t2, "tiers.l1_invalidations") >= 1
            assert mc_get(c, key) == b"b"
            t4 = counters(c)
            assert delta(t4, t3, "tiers.l1_fills") == (1 if dropped else 0), key


@strata_only
def test_read_through_fills_and_never_writes_the_backend(server_factory, tmp_path):
    data = tmp_path / "data"
    a = server_factory(*backend_args(data, "--policy", "rt:=write-through"))
    with a.connect() as c:
        c.call(b"set rt:k 3 0 4\r\nfrom\r\n", b"STORED\r\n")
    a.stop()
    b = server_factory(*backend_args(data, "--policy", "rt:=read-through"))
    with b.connect() as c:
        c0 = counters(c)
        c.call(b"get rt:k\r\n", b"VALUE rt:k 3 4\r\nfrom\r\nEND\r\n")
        c1 = counters(c)
        assert delta(c1, c0, "backend.reads") == 1 and delta(c1, c0, "tiers.l1_fills") == 1
        c.call(b"get rt:k\r\n", b"VALUE rt:k 3 4\r\nfrom\r\nEND\r\n")
        c.call(b"set rt:k 4 0 2\r\nl1\r\n", b"STORED\r\n")
        c.call(b"set rt:new 0 0 1\r\nn\r\n", b"STORED\r\n")
        c.call(b"get rt:k rt:new\r\n", b"VALUE rt:k 4 2\r\nl1\r\nVALUE rt:new 0 1\r\nn\r\nEND\r\n")
        c2 = counters(c)
        assert delta(c2, c1, "backend.reads") == 0, "L1 answered"
        assert delta(c2, c1, "backend.writes") == 0
        assert delta(c2, c1, "backend.engine_puts") == 0
        # a read miss in the backend is a fill miss
        c.call(b"get rt:none\r\n", b"END\r\n")
        c3 = counters(c)
        assert delta(c3, c2, "tiers.l1_fill_misses") == 1
        # delete drops the L1 copy only: the next read fills the backend's value
        c.call(b"delete rt:k\r\n", b"DELETED\r\n")
        c.call(b"get rt:k\r\n", b"VALUE rt:k 3 4\r\nfrom\r\nEND\r\n")
        c4 = counters(c)
        assert delta(c4, c3, "tiers.l1_fills") == 1
        assert delta(c4, c3, "backend.writes") == delta(c4, c3, "backend.engine_deletes") == 0
    b.stop()
    b2 = server_factory(*backend_args(data, "--policy", "rt:=read-through"))
    with b2.connect() as c:
        # a delete of a key L1 does not hold fills it first (the key exists
        # for the client), then drops the L1 copy; the backend keeps it
        c0 = counters(c)
        c.call(b"delete rt:k\r\n", b"DELETED\r\n")
        c.call(b"delete rt:none\r\n", b"NOT_FOUND\r\n")
        assert delta(counters(c), c0, "backend.writes") == 0
        c.call(b"get rt:k rt:new\r\n", b"VALUE rt:k 3 4\r\nfrom\r\nEND\r\n")


# ---- CAS uniques are backend versions -----------------------------------------

@strata_only
def test_cas_uniques_are_backend_versions(server_factory, tmp_path):
    data = tmp_path / "data"
    args = backend_args(data, "--policy", "wa:=write-around")
    srv = server_factory(*args)
    final = {}
    with srv.connect() as c:
        for key in (b"wt:k", b"wa:k"):
            c.call(b"set %s 0 0 1\r\na\r\n" % key, b"STORED\r\n")
            u = gets_unique(c, key)
            assert u >= 1 << 40, "a hybrid-logical-clock version, not a counter: %d" % u
            assert meta_cas(c, key) == u
            c.call(b"cas %s 1 0 1 %d\r\nb\r\n" % (key, u), b"STORED\r\n")
            u2 = gets_unique(c, key)
            assert u2 > u, (u, u2)
            c.call(b"cas %s 2 0 1 %d\r\nc\r\n" % (key, u), b"EXISTS\r\n")
            c.call(b"get %s\r\n" % key, b"VALUE %s 1 1\r\nb\r\nEND\r\n" % key)
            final[key] = u2
    srv.stop()
    srv = server_factory(*args)
    with srv.connect() as c:
        for key, u2 in final.items():
            assert gets_unique(c, key) == u2, "the unique of an unchanged key changed"
            c.call(b"cas %s 3 0 1 %d\r\nd\r\n" % (key, u2 + 1), b"EXISTS\r\n")
            c.call(b"cas %s 3 0 1 %d\r\nd\r\n" % (key, u2), b"STORED\r\n")
            c.call(b"get %s\r\n" % key, b"VALUE %s 3 1\r\nd\r\nEND\r\n" % key)


# ---- flush_all empties L1 only ------------------------------------------------

@strata_only
def test_flush_all_empties_l1_only(server_factory, tmp_path):
    data = tmp_path / "data"
    args = backend_args(data, "--policy", "co:=cache-only", "--policy", "wa:=write-around")
    srv = server_factory(*args)
    with srv.connect() as c:
        for key in (b"co:k", b"wt:k", b"wa:k"):
            c.call(b"set %s 0 0 1\r\nv\r\n" % key, b"STORED\r\n")
            assert mc_get(c, key) == b"v"  # every copy in L1 now
        c0 = counters(c)
        c.call(b"flush_all\r\n", b"OK\r\n")
        c.call(b"get co:k\r\n", b"END\r\n")
        assert mc_get(c, b"wt:k") == b"v"
        assert mc_get(c, b"wa:k") == b"v"
        c1 = counters(c)
        assert delta(c1, c0, "backend.engine_deletes") == 0
    srv.stop()
    srv = server_factory(*args)
    with srv.connect() as c:
        assert [mc_get(c, k) for k in (b"co:k", b"wt:k", b"wa:k")] == [None, b"v", b"v"]
    # the L1 copies were gone: both reads after flush_all filled from the backend
    assert delta(c1, c0, "tiers.l1_fills") == 2, (c0, c1)


# ---- acknowledged writes survive SIGKILL and SIGTERM --------------------------

def _history_client(history, addr, name, keys, ops):
    import random
    rnd = random.Random(name)
    try:
        conn = Conn(addr, timeout=2.0)
    except OSError:
        return
    try:
        for _ in range(ops):
            key, kind = rnd.choice(keys), rnd.choice(("set", "set", "delete", "get"))
            with history.record(name, kind, key) as call:
                if kind == "set":
                    conn.send(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(call.value), call.value))
                    call.reply(conn.read_line())
                elif kind == "delete":
                    conn.send(b"delete %s\r\n" % key)
                    call.reply(conn.read_line())
                else:
                    call.ok(mc_get(conn, key))
            if call.op.outcome != "ok":
                return  # the proxy is gone
    finally:
        conn.close()


@strata_only
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_acknowledged_writes_survive_a_restart(server_factory, tmp_path, how):
    from history import History, summarize

    args = backend_args(tmp_path / "data", "--sync", "always", "--policy", "wa:=write-around")
    srv = server_factory(*args)
    history = History()
    keys = [b"%sh_%s_%d" % (b"wa:" if i % 2 else b"", history.run_id.encode(), i)
            for i in range(16)]  # write-through and write-around
    threads = [threading.Thread(target=_history_client,
                                args=(history, srv.addr, "c%d" % i, keys, 500), daemon=True)
               for i in range(4)]  # at most 2,000 operations

    def acked_writes():
        return sum(1 for op in history.ops() if op.is_write and op.outcome == "ok")

    for t in threads:
        t.start()
    try:
        assert helpers.wait_until(lambda: acked_writes() >= 600, timeout=20.0, interval=0.005)
        if how == "SIGKILL":
            kill9(srv)
        else:
            srv.stop()  # asserts a clean exit
    finally:
        for t in threads:
            t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    counts = summarize(history.ops())["by_kind"]
    assert sum(v["fail"] + v["info"] for v in counts.values()) > 0, \
        "the load ended before the %s: %s" % (how, history.summary())
    srv = server_factory(*args)
    with srv.connect() as c:
        history.final_reads(lambda k: mc_get(c, k))
    result = history.check()
    assert result.ok, result.report() + "\n" + history.summary()


# ---- concurrent misses: one backend read ----------------------------------------

def concurrent_gets(srv, key, n=16):
    """`get key` from n connections released together; each one's value,
    None for a miss, or the OSError it met."""
    conns = [srv.connect() for _ in range(n)]
    got = [None] * n
    barrier = threading.Barrier(n)

    def reader(i):
        barrier.wait(timeout=5)
        try:
            got[i] = mc_get(conns[i], key)
        except OSError as e:
            got[i] = e

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    finally:
        for c in conns:
            c.close()
    return got


@strata_only
def test_concurrent_misses_read_the_backend_once(server_factory, tmp_path):
    data = tmp_path / "data"
    args = backend_args(data)
    values = {b"sf:%d" % i: (b"%d-" % i) * 20000 for i in range(3)}
    srv = server_factory(*args)
    with srv.connect() as c:
        for key, value in values.items():
            c.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"STORED\r\n")
    srv.stop()
    srv = server_factory(*args)
    admin = srv.connect()
    try:
        for key, value in values.items():
            before = counters(admin)
            got = concurrent_gets(srv, key)
            after = counters(admin)
            assert all(g == value for g in got), [g if g is None or isinstance(g, Exception)
                                                  else g[:20] for g in got]
            assert (delta(after, before, "backend.reads"),
                    delta(after, before, "tiers.l1_fills")) == (1, 1), key
    finally:
        admin.close()


# ---- negative_ttl ---------------------------------------------------------------

@strata_only
def test_negative_ttl_remembers_a_miss_until_a_write(server_factory, tmp_path):
    """A miss below is remembered for negative_ttl: the next misses of the
    key read nothing below; a write of the key (through this proxy)
    forgets it at once; after negative_ttl the backend is read again.
    Prefixes without negative_ttl read the backend on every miss."""
    srv = server_factory(*backend_args(tmp_path / "data"),
                         "--policy", "neg:=write-through,negative_ttl=2")
    with srv.connect() as c:
        c0 = counters(c)
        for _ in range(3):
            c.call(b"get neg:k\r\n", b"END\r\n")
            c.call(b"get plain:k\r\n", b"END\r\n")
        c1 = counters(c)
        assert delta(c1, c0, "backend.reads") == 1 + 3
        assert delta(c1, c0, "tiers.negative_hits") == 2
        c.call(b"set neg:k 0 0 2\r\nv1\r\n", b"STORED\r\n")
        c.call(b"mg neg:k v\r\n", b"VA 2\r\nv1\r\n")
        # a miss after the key is deleted is remembered again
        c.call(b"delete neg:k\r\n", b"DELETED\r\n")
        c.call(b"get neg:k\r\n", b"END\r\n")
        c2 = counters(c)
        c.call(b"get neg:k\r\n", b"END\r\n")
        c3 = counters(c)
        assert delta(c3, c2, "backend.reads") == 0
        time.sleep(2.2)
        c.call(b"get neg:k\r\n", b"END\r\n")
        assert delta(counters(c), c3, "backend.reads") == 1, "the entry lapsed"
        srv.stop()
    # a write that bypassed this proxy's memory (another start) is read
    srv = server_factory(*backend_args(tmp_path / "data"),
                         "--policy", "neg:=write-through,negative_ttl=30")
    with srv.connect() as c:
        c.call(b"get neg:late\r\n", b"END\r\n")
        c.call(b"add neg:late 0 0 1\r\nx\r\n", b"STORED\r\n")
        c.call(b"get neg:late\r\n", b"VALUE neg:late 0 1\r\nx\r\nEND\r\n")


# ---- l1_ttl_cap ---------------------------------------------------------------

@strata_only
def test_l1_ttl_cap_reads_the_backend_again(server_factory, tmp_path):
    srv = server_factory(*backend_args(tmp_path / "data"),
                         "--policy", "cap:=write-through,l1_ttl_cap=1")
    with srv.connect() as c:
        c.call(b"set cap:k 0 0 2\r\nv1\r\n", b"STORED\r\n")
        c.call(b"set cap:long 0 100 2\r\nv2\r\n", b"STORED\r\n")
        c.call(b"set plain:k 0 0 2\r\nv3\r\n", b"STORED\r\n")
        for key in (b"cap:k", b"cap:long"):
            state = read_state(c, key)
            assert state is not None and 0 <= state[2] <= 1, \
                "mg t reports the capped copy's TTL: %r" % (state,)
        c0 = counters(c)
        time.sleep(2.2)
        assert mc_get(c, b"cap:k") == b"v1"
        assert mc_get(c, b"cap:long") == b"v2"
        assert mc_get(c, b"plain:k") == b"v3"
        c1 = counters(c)
        assert delta(c1, c0, "tiers.l1_fills") == 2, "both capped copies expired and filled again"
        assert delta(c1, c0, "backend.reads") == 2
        state = read_state(c, b"cap:long")
        assert state is not None and state[:2] == (0, b"v2") and 0 <= state[2] <= 1, state


# ---- the config -----------------------------------------------------------------

def run_proxy(*args, timeout=10):
    return subprocess.run([helpers.server_binary(), *args], capture_output=True, text=True,
                          timeout=timeout)


def start_refused(*args):
    """Starts the proxy for real (on a free port) and expects it to exit at
    once: (exit status, stderr). A proxy that stays up is stopped by pid."""
    p = subprocess.Popen([helpers.server_binary(), "-p", str(helpers.free_port()), "-l",
                          "127.0.0.1", "-U", "0", *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate(timeout=5)
        pytest.fail("strata-proxy %s started instead of refusing" % " ".join(args))
    return p.returncode, err


GOOD_INI = """; tiers
[proxy]
backend = local
data_dir = {data}
sync = always

[policy]
mode = write-through

[policy "x:"]
mode = cache-only

[policy "rt:"]
mode = read-through
l1_ttl_cap = 60
read_consistency = one
write_consistency = any

[policy "wa:"]
mode = write-around
negative_ttl = 0
overflow = error
"""


def policies_listed(conn):
    """[(index, {field: value})] in the order `stats policies` lists them."""
    out = []
    for name, value in helpers.stat_lines(conn.stats(b"policies")):
        m = re.fullmatch(r"policy:(\d+):(\w+)", name)
        assert m, name
        i = int(m.group(1))
        if not out or out[-1][0] != i:
            out.append((i, {}))
        out[-1][1][m.group(2)] = value
    return out


@strata_only
def test_config_file_policy_sections(server_factory, tmp_path):
    data = tmp_path / "data"
    conf = tmp_path / "tiers.conf"
    conf.write_text(GOOD_INI.format(data=data))
    r = run_proxy("--config", str(conf), "--check-config")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "configuration ok", r
    srv = server_factory("--config", str(conf))
    with srv.connect() as c:
        listed = policies_listed(c)
        got = [(i, f.get("prefix"), f.get("mode"), f.get("l1_ttl_cap")) for i, f in listed]
        assert sorted(got) == [(0, "(default)", "write-through", "0"),
                               (1, "x:", "cache-only", "0"),
                               (2, "rt:", "read-through", "60"),
                               (3, "wa:", "write-around", "0")], got
        rt = dict(listed)[2]
        assert (rt["read_consistency"].lower(), rt["write_consistency"].lower()) == ("one", "any")
        c0 = counters(c)
        for key in (b"x:k", b"other:k", b"wa:k", b"rt:k"):
            c.call(b"set %s 0 0 1\r\nv\r\n" % key, b"STORED\r\n")
        c1 = counters(c)
        assert delta(c1, c0, "backend.writes") == 2, "other:k and wa:k only"
        assert c.stats_dict(b"backend")["backend"] == "local"
    srv.stop()
    srv = server_factory("--config", str(conf))
    with srv.connect() as c:
        assert [mc_get(c, k) for k in (b"x:k", b"other:k", b"wa:k", b"rt:k")] == \
            [None, b"v", b"v", None]
    assert [i for i, _ in listed] == [0, 1, 2, 3], \
        "stats policies lists the policies in the order configured: %r" % got


@strata_only
def test_policy_flags_listed_in_order(server_factory, tmp_path):
    srv = server_factory(*backend_args(tmp_path / "data"), "--mode", "write-around",
                         "--policy", "b:=read-through", "--policy", "a:=cache-only",
                         "--policy", "abc:=write-through,l1_ttl_cap=7")
    with srv.connect() as c:
        listed = policies_listed(c)
    got = [(i, f["prefix"], f["mode"], f["l1_ttl_cap"]) for i, f in listed]
    assert sorted(got) == [(0, "(default)", "write-around", "0"), (1, "b:", "read-through", "0"),
                           (2, "a:", "cache-only", "0"), (3, "abc:", "write-through", "7")], got
    assert [i for i, _ in listed] == [0, 1, 2, 3], \
        "stats policies lists the policies in the order configured: %r" % got


def test_longest_prefix_wins(server_factory, tmp_path):
    """abc:k is write-through under `a:` cache-only: it survives a restart,
    a:k does not. (memcached: the same replies without the restart part.)"""
    args = []
    if helpers.IS_STRATA:
        args = backend_args(tmp_path / "data", "--policy", "a:=cache-only",
                            "--policy", "abc:=write-through")
    srv = server_factory(*args)
    with srv.connect() as c:
        c.call(b"set a:k 0 0 1\r\n1\r\nset abc:k 0 0 1\r\n2\r\n", b"STORED\r\nSTORED\r\n")
        c.call(b"get a:k abc:k\r\n", b"VALUE a:k 0 1\r\n1\r\nVALUE abc:k 0 1\r\n2\r\nEND\r\n")
    if not helpers.IS_STRATA:
        return
    srv.stop()
    srv = server_factory(*args)
    with srv.connect() as c:
        c.call(b"get a:k abc:k\r\n", b"VALUE abc:k 0 1\r\n2\r\nEND\r\n")


BAD_FLAGS = [
    (["--backend", "local", "--data-dir", "{d}", "--mode", "bogus"], "bogus"),
    (["--backend", "local", "--data-dir", "{d}", "--policy", "x:=sometimes"], "sometimes"),
    (["--backend", "local", "--data-dir", "{d}", "--policy", "x:=write-through,l1_ttl_cap=abc"],
     "l1_ttl_cap"),
    (["--backend", "local", "--data-dir", "{d}", "--policy", "x:=write-through,l1_ttl_cap=-1"],
     "l1_ttl_cap"),
    (["--backend", "local", "--data-dir", "{d}", "--policy", "x:=write-through,colour=red"],
     "colour"),
    (["--backend", "local", "--data-dir", "{d}", "--policy",
      "x:=read-through,read_consistency=any"], "read_consistency"),
    (["--backend", "local", "--data-dir", "{d}", "--policy", "x:=read-through,overflow=drop"],
     "overflow"),
    (["--backend", "local", "--data-dir", "{d}", "--sync", "sometimes"], "sometimes"),
    (["--backend", "local"], "data_dir"),
    (["--backend", "cluster"], "cluster"),
    (["--backend", "cluster", "--data-dir", "{d}"], "cluster"),
    (["--backend", "tape"], "tape"),
    (["--backend", "local", "--data-dir", "{d}", "--policy", "x:=read-through,negative_ttl=soon"],
     "negative_ttl"),
    (["--backend", "local", "--data-dir", "{d}", "--policy", "x:=write-behind,overflow=drop"],
     "overflow"),
    (["--backend", "local", "--data-dir", "{d}", "--journal-sync", "never"], "journal_sync"),
    (["--policy", "x:=write-through"], "backend"),
    (["--mode", "read-through"], "backend"),
]


@strata_only
@pytest.mark.parametrize("args,needle", BAD_FLAGS, ids=lambda v: v if isinstance(v, str)
                         else " ".join(a for a in v if a != "{d}"))
def test_bad_tier_flags_exit_with_config_error(tmp_path, args, needle):
    args = [a.replace("{d}", str(tmp_path / "data")) for a in args]
    r = run_proxy(*args, "--check-config")
    assert r.returncode == EX_CONFIG, r
    assert needle in r.stderr and r.stderr.startswith("strata-proxy: "), r.stderr
    status, err = start_refused(*args)
    assert status == EX_CONFIG and needle in err, (status, err)


BAD_INI = [
    ("[proxy]\nbackend = local\n", "data_dir"),
    ("[proxy]\nbackend = cluster\n", "cluster"),
    ("[proxy]\nbackend = local\ndata_dir = {d}\n[policy \"x:\"]\nmode = fast\n", "fast"),
    ("[proxy]\nbackend = local\ndata_dir = {d}\n[policy \"x:\"]\nmode = read-through\n"
     "l1_ttl_cap = soon\n", "l1_ttl_cap"),
    ("[proxy]\nbackend = local\ndata_dir = {d}\n[policy \"x:\"]\nmode = read-through\n"
     "colour = red\n", "colour"),
    ("[proxy]\nbackend = local\ndata_dir = {d}\n[policy]\nnegative_ttl = -1\n", "negative_ttl"),
    ("[policy]\nmode = write-through\n", "backend"),
    ("[proxy]\nmode = write-around\n", "backend"),
    ("[policy \"x:\"]\nmode = read-through\n", "backend"),
]


@strata_only
@pytest.mark.parametrize("text,needle", BAD_INI, ids=[n + str(i) for i, (_, n) in
                                                       enumerate(BAD_INI)])
def test_bad_tier_config_file_exits_with_config_error(tmp_path, text, needle):
    conf = tmp_path / "bad.conf"
    conf.write_text(text.replace("{d}", str(tmp_path / "data")))
    r = run_proxy("--config", str(conf), "--check-config")
    assert r.returncode == EX_CONFIG, r
    assert needle in r.stderr, r.stderr
    status, err = start_refused("--config", str(conf))
    assert status == EX_CONFIG and needle in err, (status, err)


@strata_only
def test_good_tier_settings_pass_check_config(tmp_path):
    d = str(tmp_path / "data")
    for args in (["--backend", "none"],
                 ["--backend", "none", "--mode", "cache-only", "--policy", "x:=cache-only"],
                 ["--backend", "local", "--data-dir", d, "--sync", "none"],
                 ["--backend", "local", "--data-dir", d, "--sync", "interval",
                  "--mode", "read-through", "--policy", "x:=write-around,l1_ttl_cap=0",
                  "--policy", "y:=cache-only,negative_ttl=0,read_consistency=all"]):
        r = run_proxy(*args, "--check-config")
        assert r.returncode == 0 and "configuration ok" in r.stdout, (args, r)


# ---- a refused set drops the old value, in the backend too ---------------------

@strata_only
def test_too_large_set_drops_the_old_value_below(server_factory, tmp_path):
    data = tmp_path / "data"
    keys = {m: ("%s:big" % m).encode() for m in MODES}
    a = server_factory(*backend_args(data), *SEED_POLICIES)
    with a.connect() as c:
        for m in ("rt", "wt", "wa"):
            c.call(b"set %s 0 0 3\r\nold\r\n" % keys[m], b"STORED\r\n")
    a.stop()
    big = b"x" * (ITEM_SIZE_MAX + 1)
    b = server_factory(*backend_args(data), *MODE_POLICIES)
    with b.connect() as c:
        c.call(b"set %s 0 0 3\r\nold\r\n" % keys["co"], b"STORED\r\n")
        for m in MODES:
            assert mc_get(c, keys[m]) == b"old", m  # the copy in L1
            c.send(b"set %s 0 0 %d\r\n" % (keys[m], len(big)) + big + CRLF)
            assert c.read_line() == TOO_LARGE, m
        got = {m: mc_get(c, keys[m]) for m in MODES}
        # read-through's backend is not written: the next read fills the old value
        assert got == {"co": None, "rt": b"old", "wt": None, "wa": None}, got
    b.stop()
    b = server_factory(*backend_args(data), *MODE_POLICIES)
    with b.connect() as c:
        got = {m: mc_get(c, keys[m]) for m in MODES}
        assert got == {"co": None, "rt": b"old", "wt": None, "wa": None}, got


# ---- me debugs L1; md I deletes plainly below -----------------------------------

@strata_only
def test_me_shows_l1_only_and_md_invalidate_deletes_plainly(server_factory, tmp_path):
    data = tmp_path / "data"
    args = backend_args(data, "--policy", "co:=cache-only")
    srv = server_factory(*args)
    with srv.connect() as c:
        for key in (b"wt:me", b"wt:inv", b"co:inv"):
            c.call(b"set %s 0 0 2\r\n10\r\n" % key, b"STORED\r\n")
        # memcached's stale item for the cache-only key; a plain delete below
        c.call(b"md co:inv I T30\r\n", b"HD\r\n")
        c.send(b"mg co:inv v\r\n")
        assert read_meta_reply(c) == b"VA 2 X W\r\n10\r\n"
        c0 = counters(c)
        c.call(b"md wt:inv I T30\r\n", b"HD\r\n")
        assert delta(counters(c), c0, "backend.writes") == 1
        c.call(b"mg wt:inv v\r\n", b"EN\r\n")
    srv.stop()
    srv = server_factory(*args)
    with srv.connect() as c:
        c.call(b"mg wt:inv v\r\n", b"EN\r\n")
        c0 = counters(c)
        c.call(b"me wt:me\r\n", b"EN\r\n")  # L1 is empty; me does not fill
        assert delta(counters(c), c0, "backend.reads") == 0
        assert mc_get(c, b"wt:me") == b"10"
        c.send(b"me wt:me\r\n")
        line = c.read_line()
        assert line.startswith(b"ME wt:me ") and b" size=" in line, line
