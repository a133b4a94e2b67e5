"""strata-proxy's L2 pool (docs/L2.md) in front of stock memcached servers
started here on 127.0.0.1, with L1 on (a near cache) and off (routing
mode):

- placement: every key lands on the server libmemcached's weighted
  ketama names, computed here independently (MD5 in Python);
- the near cache: a value read from L2 is kept in L1 and served from it;
  a write through the proxy drops the L1 copy;
- a server killed under load: every request is answered within the
  request timeout (gets as misses, writes SERVER_ERROR), the server is
  ejected (stats l2), its keys go to the next server;
- a server that comes back after an ejection never serves what it held
  before (it is flushed before it serves again);
- a slow (stopped) server: its requests time out within the bound, keys
  on the other server are answered at full speed meanwhile;
- a server answering garbage: the connection is reset, the client gets a
  miss or SERVER_ERROR, never another key's value.

Runs once, in the strata run (the executor is asynchronous already).
"""

import hashlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import helpers
from helpers import Conn

pytestmark = pytest.mark.skipif(helpers.SERVER_KIND != "strata",
                                reason="L2 pool tests run once, in the strata run")

TIMEOUT_MS = 300
MISS = b"END\r\n"
STORED = b"STORED\r\n"


class Memcached:
    """A stock memcached on 127.0.0.1, stopped by pid."""

    def __init__(self, port=None):
        self.port = port
        self.proc = None

    def start(self):
        for _ in range(5):
            port = self.port or helpers.free_port()
            args = [os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached"), "-p", str(port),
                    "-l", "127.0.0.1", "-U", "0", "-m", "64", "-t", "2"]
            if os.geteuid() == 0:
                args += ["-u", "root"]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with Conn(("127.0.0.1", port), timeout=1) as c:
                        c.send(b"version\r\n")
                        if c.read_line().startswith(b"VERSION"):
                            self.port = port
                            return self
                except OSError:
                    time.sleep(0.02)
            self.stop()
        raise RuntimeError("memcached did not start")

    @property
    def spec(self):
        return "127.0.0.1:%d" % self.port

    def connect(self):
        return Conn(("127.0.0.1", self.port))

    def get(self, key):
        with self.connect() as c:
            return read_value(c, key)

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def pool():
    started = []

    def start(n):
        for _ in range(n):
            started.append(Memcached().start())
        return started[-n:]

    yield start
    for m in started:
        m.stop()


def proxy(servers, *more, l1="on"):
    if helpers.external_addr():
        pytest.skip("needs a server of its own")
    spec = ",".join(s if isinstance(s, str) else s.spec for s in servers)
    return helpers.Server(["--l2-servers", spec, "--l1", l1, "--l2-timeout-ms", str(TIMEOUT_MS),
                           *more]).start()


def l2_stats(srv):
    with srv.connect() as c:
        return c.stats_dict(b"l2")


# ------------------------------------------------------------- placement

def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def ketama(servers):
    """libmemcached's weighted continuum, written from its definition:
    servers [(host, port, weight)] -> sorted [(point, index)]."""
    total = sum(w for _, _, w in servers)
    points = []
    for i, (host, port, weight) in enumerate(servers):
        pct = f32(f32(weight) / f32(total))
        share = int(f32(f32(f32(pct * 160) / 4) * len(servers)) + 1e-10) * 4
        for j in range(share // 4):
            name = ("%s-%d" % (host, j)) if port == 11211 else ("%s:%d-%d" % (host, port, j))
            d = hashlib.md5(name.encode()).digest()
            for x in range(4):
                points.append((struct.unpack("<I", d[4 * x:4 * x + 4])[0], i))
    return sorted(points)


def server_of(continuum, key):
    h = struct.unpack("<I", hashlib.md5(key).digest()[:4])[0]
    for point, index in continuum:
        if point >= h:
            return index
    return continuum[0][1]


def test_keys_land_where_ketama_places_them(pool):
    servers = pool(3)
    srv = proxy(servers, l1="off")
    try:
        continuum = ketama([("127.0.0.1", m.port, 1) for m in servers])
        keys = [b"place:%d" % i for i in range(300)]
        with srv.connect() as c:
            for k in keys:
                c.call(b"set " + k + b" 0 0 2\r\nv" + k[-1:] + b"\r\n", STORED)
        per = [0, 0, 0]
        for k in keys:
            owner = server_of(continuum, k)
            per[owner] += 1
            for i, m in enumerate(servers):
                got = m.get(k)
                assert (got is not None) == (i == owner), (k, i, owner)
        assert min(per) > 30, per  # not vacuous: every server holds keys
    finally:
        srv.stop()


# ------------------------------------------------------------ routing mode

def test_routing_mode_every_command(pool):
    """Each command's reply through the router is memcached's own, and
    lands on the server (checked there)."""
    (m,) = pool(1)
    srv = proxy([m], l1="off")
    try:
        with srv.connect() as c:
            c.call(b"set a 5 0 2\r\nhi\r\n", STORED)
            c.call(b"get a\r\n", b"VALUE a 5 2\r\nhi\r\nEND\r\n")
            c.call(b"add a 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")
            c.call(b"replace nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")
            c.call(b"append a 0 0 1\r\n!\r\n", STORED)
            c.call(b"prepend a 0 0 1\r\n<\r\n", STORED)
            assert m.get(b"a") == b"<hi!"
            c.send(b"gets a\r\n")
            cas = int(c.read_line().split()[4])
            c.read_exact(6)
            assert c.read_line() == MISS
            c.call(b"cas a 0 0 1 %d\r\nc\r\n" % (cas + 1000), b"EXISTS\r\n")
            c.call(b"cas a 0 0 1 %d\r\nc\r\n" % cas, STORED)
            c.call(b"cas nope 0 0 1 1\r\nc\r\n", b"NOT_FOUND\r\n")
            c.call(b"incr a 1\r\n",
                   b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
            c.call(b"set n 0 0 2\r\n10\r\n", STORED)
            c.call(b"incr n 5\r\n", b"15\r\n")
            c.call(b"decr n 20\r\n", b"0\r\n")
            c.call(b"incr nope 1\r\n", b"NOT_FOUND\r\n")
            c.call(b"touch n 100\r\n", b"TOUCHED\r\n")
            c.call(b"touch nope 100\r\n", b"NOT_FOUND\r\n")
            c.call(b"delete n\r\n", b"DELETED\r\n")
            c.call(b"delete n\r\n", b"NOT_FOUND\r\n")
            assert m.get(b"n") is None
            c.call(b"gat 0 a\r\n", b"VALUE a 0 1\r\nc\r\nEND\r\n")
            c.call(b"ms m 3 T0 F7\r\nabc\r\n", b"HD\r\n")
            c.call(b"mg m v f\r\n", b"VA 3 f7\r\nabc\r\n")
            c.call(b"mg nope v\r\n", b"EN\r\n")
            c.call(b"ma m\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
            c.call(b"md m q\r\nmn\r\n", b"MN\r\n")
            assert m.get(b"m") is None
            # a value of the item size limit's order crosses the link whole
            big = os.urandom(500000).hex().encode()[:900000]
            c.call(b"set big 0 0 %d\r\n%s\r\n" % (len(big), big), STORED)
            c.call(b"get big\r\n", b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(big), big))
        st = l2_stats(srv)
        assert st["servers"] == "1"
        assert int(st["%s:requests" % m.spec]) >= 25
        assert int(st["%s:hits" % m.spec]) >= 3
        assert int(st["%s:misses" % m.spec]) >= 1
        assert st["%s:state" % m.spec] == "up"
    finally:
        srv.stop()


def test_binary_keys_cross_as_base64(pool):
    """A binary-protocol key with a space in it reaches the server intact."""
    import binproto
    (m,) = pool(1)
    srv = proxy([m], l1="off")
    try:
        with srv.connect() as c:
            c.send(binproto.request(binproto.SET, key=b"a b", value=b"v1",
                                    extras=struct.pack(">II", 0, 0)))
            assert binproto.read_response(c).status == 0
            c.send(binproto.request(binproto.GET, key=b"a b"))
            r = binproto.read_response(c)
            assert r.status == 0 and r.value == b"v1"
        with m.connect() as d:
            d.send(b"mg YSBi b v\r\n")  # base64 of "a b"
            assert d.read_line() == b"VA 2\r\n"
    finally:
        srv.stop()


def pipeline_script():
    """One client's pipeline over keys spread on two servers: writes and
    reads of the same keys, back to back, in every protocol the router
    speaks (no CAS values: those differ between servers)."""
    out = []
    for i in range(40):
        k = b"pl:%d" % i
        out += [b"set %s 1 0 2\r\nv%d\r\n" % (k, i % 10), b"get %s\r\n" % k,
                b"append %s 0 0 1\r\n+\r\n" % k, b"get %s\r\n" % k,
                b"set %s 0 0 2 noreply\r\n%02d\r\n" % (k, i), b"incr %s 3\r\n" % k,
                b"mg %s v f\r\n" % k, b"ms %s 1 MA\r\n!\r\n" % k, b"mg %s v\r\n" % k,
                b"touch %s 100\r\n" % k, b"delete %s\r\n" % k, b"get %s\r\n" % k,
                b"add %s 0 0 1\r\na\r\n" % k, b"add %s 0 0 1\r\nb\r\n" % k,
                b"md %s q\r\n" % k, b"mg %s v q\r\n" % k, b"ma %s N0 J7 v\r\n" % k, b"mn\r\n"]
    out.append(b"get " + b" ".join(b"pl:%d" % i for i in range(40)) + b"\r\n")
    return b"".join(out)


def replies_to(conn, script):
    conn.send(script + b"ms pl:end 6 T0\r\nMARKER\r\nmg pl:end v\r\n")
    return conn.read_until(b"MARKER\r\n", timeout=20)


@pytest.mark.parametrize("l1", ["off", "on"])
def test_a_pipeline_keeps_its_order(pool, l1):
    """Commands of one connection run pipelined through the pool (each
    starts before the one before it is answered); a pipeline of writes
    and reads of the same keys gets, byte for byte, what one memcached
    answers to it, with L1 off (routing) and on (a near cache whose copy
    a write behind a read must not serve)."""
    m1, m2, ref = pool(3)
    srv = proxy([m1, m2], l1=l1)
    try:
        script = pipeline_script()
        with ref.connect() as d:
            expected = replies_to(d, script)
        with srv.connect() as c:
            # L1 holds every key's first value before the pipeline runs
            c.send(b"".join(b"set pl:%d 0 0 3\r\nold\r\n" % i for i in range(40)))
            for _ in range(40):
                assert c.read_line() == STORED
            for i in range(40):
                c.call(b"get pl:%d\r\n" % i, b"VALUE pl:%d 0 3\r\nold\r\nEND\r\n" % i)
            assert replies_to(c, script) == expected
        st = l2_stats(srv)
        assert int(st["%s:requests" % m1.spec]) > 100
        assert int(st["%s:requests" % m2.spec]) > 100
    finally:
        srv.stop()


def test_replies_held_behind_a_waiting_command_are_bounded(pool):
    """A pipelined connection whose oldest command waits on a stopped
    server goes on with the commands behind it only while the replies
    they leave waiting stay within max_output: 50 L1 hits of 60 KB behind
    it are not all run at once (the proxy's get_hits says how many ran);
    once the server answers, all 51 replies arrive in order."""
    a, b = pool(2)
    srv = proxy([a, b], "--max-output", "200000", "--l2-timeout-ms", "5000",
                "--l2-eject-after", "1000")
    try:
        continuum = ketama([("127.0.0.1", a.port, 1), ("127.0.0.1", b.port, 1)])
        keys = [b"held:%d" % i for i in range(100)]
        slow = next(k for k in keys if server_of(continuum, k) == 0)
        big = next(k for k in keys if server_of(continuum, k) == 1)
        value = b"v" * 60000
        with srv.connect() as c:
            c.call(b"set %s 0 0 %d\r\n%s\r\n" % (big, len(value), value), STORED)
            assert read_value(c, big) == value  # now in L1
        a.proc.send_signal(signal.SIGSTOP)
        try:
            with srv.connect() as c, srv.connect() as admin:
                hits = int(admin.stats_dict()["get_hits"])
                c.send(b"get " + slow + b"\r\n" +
                       b"".join(b"get " + big + b"\r\n" for _ in range(50)))
                time.sleep(0.5)
                ran = int(admin.stats_dict()["get_hits"]) - hits
                assert 1 <= ran <= 5, ran  # 200 KB of 60 KB replies, not 50
                a.proc.send_signal(signal.SIGCONT)
                assert c.read_line(timeout=10) == MISS  # the slow key: not there
                for _ in range(50):
                    assert c.read_line(timeout=10) == b"VALUE %s 0 %d\r\n" % (big, len(value))
                    assert c.read_exact(len(value) + 2) == value + b"\r\n"
                    assert c.read_line() == MISS
                assert int(admin.stats_dict()["get_hits"]) - hits == 50
        finally:
            a.proc.send_signal(signal.SIGCONT)
    finally:
        srv.stop()


def test_a_pipeline_longer_than_the_bound_is_answered_in_order(pool):
    """A connection starts at most 1,024 commands before their answers
    come (frontend/conn.c); a pipeline of 5,000 gets in one write waits at
    the bound and is answered whole, in order."""
    m1, m2 = pool(2)
    srv = proxy([m1, m2], l1="off")
    try:
        with srv.connect() as c:
            c.send(b"".join(b"ms lp:%d 4 T0\r\n%04d\r\n" % (i, i) for i in range(5000)))
            for _ in range(5000):
                assert c.read_line(timeout=20) == b"HD\r\n"
            c.send(b"".join(b"get lp:%d\r\n" % i for i in range(5000)))
            for i in range(5000):
                assert c.read_line(timeout=20) == b"VALUE lp:%d 0 4\r\n" % i
                assert c.read_exact(6) == b"%04d\r\n" % i
                assert c.read_line() == MISS
        helpers.assert_healthy(srv)
    finally:
        srv.stop()


# ------------------------------------------------------------- near cache

def test_l1_keeps_what_l2_returned_and_writes_drop_it(pool):
    (m,) = pool(1)
    srv = proxy([m])
    try:
        with m.connect() as d:
            d.call(b"set k 3 0 5\r\nfirst\r\n", STORED)
        with srv.connect() as c:
            c.call(b"get k\r\n", b"VALUE k 3 5\r\nfirst\r\nEND\r\n")
            before = int(l2_stats(srv)["%s:requests" % m.spec])
            for _ in range(5):
                c.call(b"get k\r\n", b"VALUE k 3 5\r\nfirst\r\nEND\r\n")
            assert int(l2_stats(srv)["%s:requests" % m.spec]) == before  # L1 answered
            # gets through the proxy carries the server's CAS: cas works
            with m.connect() as d:
                d.send(b"gets k\r\n")
                server_cas = d.read_line().split()[4]
                d.read_exact(7)
                d.read_line()
            c.send(b"gets k\r\n")
            assert c.read_line().split()[4] == server_cas
            c.read_exact(7)
            c.read_line()
            c.call(b"set k 0 0 6\r\nsecond\r\n", STORED)
            c.call(b"get k\r\n", b"VALUE k 0 6\r\nsecond\r\nEND\r\n")
            assert m.get(b"k") == b"second"
            c.call(b"delete k\r\n", b"DELETED\r\n")
            c.call(b"get k\r\n", MISS)
    finally:
        srv.stop()


# ------------------------------------------------------------------ faults

def timed(c, request, expect_prefixes):
    started = time.monotonic()
    c.send(request)
    line = c.read_line()
    took = time.monotonic() - started
    assert any(line.startswith(p) for p in expect_prefixes), (request, line)
    if line.startswith(b"VALUE"):
        c.read_exact(int(line.split()[3]) + 2)
        assert c.read_line() == MISS
    return took


def test_server_killed_under_load(pool):
    a, b = pool(2)
    srv = proxy([a, b], "--l2-eject-after", "2", "--l2-retry-ms", "60000", l1="off")
    try:
        continuum = ketama([("127.0.0.1", a.port, 1), ("127.0.0.1", b.port, 1)])
        keys = [b"load:%d" % i for i in range(200)]
        on_a = [k for k in keys if server_of(continuum, k) == 0]
        assert on_a and len(on_a) < len(keys)
        stop = threading.Event()
        worst = [0.0]
        errors = []

        def client(n):
            try:
                with srv.connect() as c:
                    i = 0
                    while not stop.is_set() and i < 20000:
                        k = keys[(i * 7 + n) % len(keys)]
                        if i % 2:
                            took = timed(c, b"set " + k + b" 0 0 1\r\nx\r\n",
                                         [STORED, b"SERVER_ERROR"])
                        else:
                            took = timed(c, b"get " + k + b"\r\n", [b"VALUE", MISS])
                        worst[0] = max(worst[0], took)
                        i += 1
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        a.stop()  # SIGKILL
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert not errors, errors
        # never hung past the request timeout (plus scheduling slack)
        assert worst[0] < TIMEOUT_MS / 1000 + 1.0, worst[0]
        st = l2_stats(srv)
        assert st["%s:state" % a.spec] == "ejected"
        assert int(st["%s:ejections" % a.spec]) == 1
        # its keys now live on the next server, and are served
        with srv.connect() as c:
            for k in on_a[:20]:
                c.call(b"set " + k + b" 0 0 3\r\nnew\r\n", STORED)
                c.call(b"get " + k + b"\r\n", b"VALUE " + k + b" 0 3\r\nnew\r\nEND\r\n")
                assert b.get(k) == b"new"
        assert srv.process_alive()
    finally:
        srv.stop()


def test_returning_server_never_serves_what_it_held(pool):
    a, b = pool(2)
    srv = proxy([a, b], "--l2-eject-after", "1", "--l2-retry-ms", "500", l1="off")
    try:
        continuum = ketama([("127.0.0.1", a.port, 1), ("127.0.0.1", b.port, 1)])
        keys = [k for k in (b"ret:%d" % i for i in range(100)) if server_of(continuum, k) == 0]
        with srv.connect() as c:
            for k in keys:
                c.call(b"set " + k + b" 0 0 3\r\nold\r\n", STORED)
        assert a.get(keys[0]) == b"old"
        a.proc.send_signal(signal.SIGSTOP)  # a stops answering: timeouts eject it
        with srv.connect() as c:
            timed(c, b"get " + keys[0] + b"\r\n", [MISS])
            assert l2_stats(srv)["%s:state" % a.spec] == "ejected"
            for k in keys:
                c.call(b"set " + k + b" 0 0 3\r\nnew\r\n", STORED)  # onto b
        a.proc.send_signal(signal.SIGCONT)  # a comes back holding "old"
        assert a.get(keys[0]) == b"old"
        deadline = time.monotonic() + 10
        seen = set()
        with srv.connect() as c:
            while time.monotonic() < deadline:
                for k in keys:
                    c.send(b"get " + k + b"\r\n")
                    line = c.read_line()
                    if line != MISS:
                        seen.add(c.read_exact(5)[:3])
                        c.read_line()
                if l2_stats(srv)["%s:state" % a.spec] == "up":
                    break
                time.sleep(0.05)
        assert l2_stats(srv)["%s:state" % a.spec] == "up"
        assert b"old" not in seen
        assert a.get(keys[0]) is None  # flushed before it served again
        with srv.connect() as c:
            for k in keys:
                c.call(b"get " + k + b"\r\n", MISS)
    finally:
        srv.stop()


def test_slow_server_is_bounded_and_others_unaffected(pool):
    a, b = pool(2)
    srv = proxy([a, b], "--l2-eject-after", "1000", l1="off")
    try:
        continuum = ketama([("127.0.0.1", a.port, 1), ("127.0.0.1", b.port, 1)])
        keys = [b"slow:%d" % i for i in range(100)]
        on_a = [k for k in keys if server_of(continuum, k) == 0]
        on_b = [k for k in keys if server_of(continuum, k) == 1]
        a.proc.send_signal(signal.SIGSTOP)
        results = {}

        def slow_client():
            with srv.connect() as c:
                results["slow"] = [timed(c, b"get " + k + b"\r\n", [MISS]) for k in on_a[:3]]

        t = threading.Thread(target=slow_client)
        t.start()
        fast = []
        with srv.connect() as c:
            for k in on_b[:50]:
                fast.append(timed(c, b"get " + k + b"\r\n", [MISS]))
        t.join(10)
        a.proc.send_signal(signal.SIGCONT)
        for took in results["slow"]:
            assert TIMEOUT_MS / 1000 * 0.8 < took < TIMEOUT_MS / 1000 + 1.0, results
        assert sorted(fast)[len(fast) // 2] < 0.05, fast  # median: not behind the slow one
        assert int(l2_stats(srv)["%s:timeouts" % a.spec]) >= 3
    finally:
        srv.stop()


class Garbage:
    """A fake memcached that answers each request with `reply(line)`."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.resets = 0
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def spec(self):
        return "127.0.0.1:%d" % self.port

    def serve(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(s,), daemon=True).start()

    def conn(self, s):
        buf = b""
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    self.resets += 1
                    return
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if line.startswith(b"ms "):
                        n = int(line.split()[2])
                        while len(buf) < n + 2:
                            buf += s.recv(65536)
                        buf = buf[n + 2:]
                    s.sendall(self.reply(line))
        except OSError:
            self.resets += 1

    def close(self):
        self.sock.close()


def opaque(line):
    return [t for t in line.split() if t.startswith(b"O")][0]


@pytest.mark.parametrize("name,reply", [
    ("not-a-reply", lambda line: b"HELLO THERE\r\n"),
    ("truncated-value", lambda line: b"VA 100 " + opaque(line) + b"\r\nshort"),
    ("other-token", lambda line: b"VA 6 O999999\r\nPOISON\r\n"),
    ("no-token", lambda line: b"VA 6\r\nPOISON\r\n"),
    ("huge-length", lambda line: b"VA 99999999999 " + opaque(line) + b"\r\n"),
])
def test_garbage_replies_reset_the_link(name, reply):
    g = Garbage(reply)
    srv = proxy([g.spec], "--l2-eject-after", "1000", l1="off")
    try:
        with srv.connect() as c:
            took = timed(c, b"get k1\r\n", [MISS])
            assert took < TIMEOUT_MS / 1000 + 1.0
            timed(c, b"set k2 0 0 1\r\nx\r\n", [b"SERVER_ERROR"])
        st = l2_stats(srv)
        assert int(st["%s:resets" % g.spec]) >= 2
        assert int(st["%s:hits" % g.spec]) == 0  # no POISON was ever a value
        assert srv.process_alive()
    finally:
        srv.stop()
        g.close()


def test_replies_swapped_between_clients_are_refused():
    """Two clients' gets on one link (one worker) answered in reverse
    order: the tokens do not match, the link resets, nobody gets the
    other's value."""
    pending = []
    lock = threading.Lock()

    def reply(line):
        with lock:
            pending.append(line)
            if len(pending) < 2:
                return b""
            first, second = pending[0], pending[1]
            pending.clear()
        out = b""
        for ln in (second, first):
            key = ln.split()[1]
            out += b"VA %d %s\r\n%s\r\n" % (len(key), opaque(ln), key)
        return out

    g = Garbage(reply)
    srv = proxy([g.spec], "-t", "1", "--l2-eject-after", "1000", l1="off")
    try:
        with srv.connect() as c1, srv.connect() as c2:
            c1.send(b"get alpha\r\n")
            c2.send(b"get bravo\r\n")
            for c, key in ((c1, b"alpha"), (c2, b"bravo")):
                line = c.read_line()
                if line != MISS:
                    assert line == b"VALUE %s 0 %d\r\n" % (key, len(key))
                    assert c.read_exact(len(key) + 2) == key + b"\r\n"
                    assert c.read_line() == MISS
        assert int(l2_stats(srv)["%s:resets" % g.spec]) >= 1
    finally:
        srv.stop()
        g.close()


def test_bad_l2_servers_refuse_to_start():
    for spec in ("nohost", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:11211:0",
                 "no.such.host.invalid:11211"):
        p = subprocess.run([helpers.server_binary(), "-p", str(helpers.free_port()), "--l2-servers", spec],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        assert p.returncode != 0, spec
        assert b"l2_servers" in p.stderr, (spec, p.stderr)
    p = subprocess.run([helpers.server_binary(), "-p", str(helpers.free_port()), "--l1", "off"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert p.returncode != 0 and b"l2_servers" in p.stderr


# ------------------------------------------------------------- peer port

def test_proxies_pool_their_l1_through_peer_ports():
    """Two proxies whose pool is each other's peer port: a value set
    through one is read through the other; the peer port serves L1 alone
    (a miss there is a miss, never a request to the pool)."""
    if helpers.external_addr():
        pytest.skip("needs servers of its own")
    peers = [helpers.free_port(), helpers.free_port()]
    spec = ",".join("127.0.0.1:%d" % p for p in peers)
    a = helpers.Server(["--peer-port", peers[0], "--l2-servers", spec]).start()
    b = helpers.Server(["--peer-port", peers[1], "--l2-servers", spec]).start()
    try:
        continuum = ketama([("127.0.0.1", p, 1) for p in peers])
        keys = [b"pool:%d" % i for i in range(60)]
        with a.connect() as c:
            for k in keys:
                c.call(b"set " + k + b" 1 0 2\r\nv" + k[-1:] + b"\r\n", STORED)
        with b.connect() as c:
            for k in keys:
                c.call(b"get " + k + b"\r\n",
                       b"VALUE " + k + b" 1 2\r\nv" + k[-1:] + b"\r\nEND\r\n")
        # each key is in its owner's L1, which that owner's peer port serves
        for i, port in enumerate(peers):
            with Conn(("127.0.0.1", port)) as d:
                for k in keys:
                    d.send(b"mg " + k + b" v\r\n")
                    line = d.read_line()
                    if server_of(continuum, k) == i:
                        assert line == b"VA 2\r\n", (k, i)
                    if line.startswith(b"VA"):  # the owner's, or a near-cache copy
                        d.read_exact(4)
        # a peer-port miss does not recurse into the pool
        with Conn(("127.0.0.1", peers[0])) as d:
            before = l2_stats(a)
            d.call(b"get nowhere\r\n", MISS)
            assert l2_stats(a) == before
    finally:
        a.stop()
        b.stop()


def test_peer_port_refused_with_a_backend_or_its_own_port(tmp_path):
    port = helpers.free_port()
    for args in (["--peer-port", str(port), "--backend", "local", "--data-dir", str(tmp_path)],
                 ["--peer-port", str(port), "--l2-servers", "127.0.0.1:1", "--l1", "off"],
                 ["-p", str(port), "--peer-port", str(port)]):
        if "-p" not in args:
            args = ["-p", str(helpers.free_port())] + args
        p = subprocess.run([helpers.server_binary()] + args, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10)
        assert p.returncode != 0 and b"peer_port" in p.stderr, (args, p.stderr)


# ----------------------------------------------------------- coherence

def read_value(c, key):
    c.send(b"get " + key + b"\r\n")
    line = c.read_line()
    if line == MISS:
        return None
    value = c.read_exact(int(line.split()[3]) + 2)[:-2]
    assert c.read_line() == MISS
    return value


def test_writes_invalidate_other_proxies_l1(pool):
    """Three proxies with L1 in front of one memcached, each listing the
    others' peer ports: after a write through one, the others' next reads
    (once the invalidations had the time to cross loopback) see the new
    value, though each held the old one in L1."""
    (m,) = pool(1)
    ports = [helpers.free_port() for _ in range(3)]
    proxies = []
    try:
        for i in range(3):
            peers = ",".join("127.0.0.1:%d" % p for j, p in enumerate(ports) if j != i)
            proxies.append(proxy([m], "--peer-port", ports[i], "--peers", peers))
        keys = [b"coh:%d" % i for i in range(50)]
        conns = [p.connect() for p in proxies]
        for k in keys:
            conns[0].call(b"set " + k + b" 0 0 3\r\nold\r\n", STORED)
        for c in conns:  # every L1 now holds "old"
            for k in keys:
                assert read_value(c, k) == b"old"
        before = int(l2_stats(proxies[1])["%s:requests" % m.spec])
        for k in keys:
            assert read_value(conns[1], k) == b"old"
        assert int(l2_stats(proxies[1])["%s:requests" % m.spec]) == before  # from L1
        for k in keys:
            conns[0].call(b"set " + k + b" 0 0 3\r\nnew\r\n", STORED)
        time.sleep(0.2)
        for c in conns:
            for k in keys:
                assert read_value(c, k) == b"new", k
        # deletes and incr through the middle proxy reach the others too
        conns[1].call(b"delete " + keys[0] + b"\r\n", b"DELETED\r\n")
        conns[1].call(b"set n 0 0 1\r\n1\r\n", STORED)
        for c in conns:
            read_value(c, b"n")
        conns[1].call(b"incr n 41\r\n", b"42\r\n")
        time.sleep(0.2)
        for c in conns:
            assert read_value(c, keys[0]) is None
            assert read_value(c, b"n") == b"42"
        st = l2_stats(proxies[1])
        assert st["peers"] == "2"
        assert int(st["127.0.0.1:%d:requests" % ports[0]]) >= 2
        for c in conns:
            c.close()
    finally:
        for p in proxies:
            p.stop()


def test_peers_are_reloaded_on_sighup(pool, tmp_path):
    """Proxy A reads `peers` from its config file again on SIGHUP: a peer
    added then hears A's writes, one removed no longer does, a peer in
    both lists keeps its counters, and a list that does not resolve
    leaves the old one in place."""
    (m,) = pool(1)
    ports = [helpers.free_port() for _ in range(3)]
    conf = tmp_path / "a.conf"

    def configure(peers):
        conf.write_text("[proxy]\npeers = %s\n" % peers)

    def reload_to(n):
        a.proc.send_signal(signal.SIGHUP)
        assert helpers.wait_until(lambda: l2_stats(a)["peers"] == str(n), timeout=5), a.log()

    configure("127.0.0.1:%d" % ports[1])
    b = proxy([m], "--peer-port", ports[1])
    c = proxy([m], "--peer-port", ports[2])
    a = proxy([m], "--peer-port", ports[0], "--config", str(conf))
    conns = []
    try:
        conns = [p.connect() for p in (a, b, c)]
        keys = [b"rl:%d" % i for i in range(20)]

        def write_all(value):
            for k in keys:
                conns[0].call(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(value), value), STORED)
            time.sleep(0.2)

        def seen(conn):
            return {read_value(conn, k) for k in keys}

        write_all(b"v1")
        assert seen(conns[1]) == {b"v1"} and seen(conns[2]) == {b"v1"}  # in both L1s now
        write_all(b"v2")
        assert seen(conns[1]) == {b"v2"}
        assert seen(conns[2]) == {b"v1"}  # not a peer yet: its L1 copy stays
        b_spec = "127.0.0.1:%d" % ports[1]
        b_requests = int(l2_stats(a)["%s:requests" % b_spec])
        assert b_requests >= len(keys)

        configure("127.0.0.1:%d,127.0.0.1:%d" % (ports[1], ports[2]))
        reload_to(2)
        assert int(l2_stats(a)["%s:requests" % b_spec]) >= b_requests  # kept, not reset
        assert seen(conns[2]) == {b"v1"}
        write_all(b"v3")
        assert seen(conns[1]) == {b"v3"} and seen(conns[2]) == {b"v3"}

        configure("127.0.0.1:%d" % ports[2])
        reload_to(1)
        assert "%s:requests" % b_spec not in l2_stats(a)
        write_all(b"v4")
        assert seen(conns[2]) == {b"v4"}
        assert seen(conns[1]) == {b"v3"}  # no longer a peer

        configure("127.0.0.1:%d,no-such-host.invalid:1" % ports[1])
        a.proc.send_signal(signal.SIGHUP)
        assert helpers.wait_until(lambda: "old peers stay" in a.log(), timeout=5), a.log()
        assert l2_stats(a)["peers"] == "1"
        write_all(b"v5")
        assert seen(conns[2]) == {b"v5"}
        assert "peers reloaded: 2 (1 kept, 1 added, 0 removed)" in a.log()
        assert "peers reloaded: 1 (1 kept, 0 added, 1 removed)" in a.log()
        helpers.assert_healthy(a)
    finally:
        for conn in conns:
            conn.close()
        for p in (a, b, c):
            p.stop()


def test_unreachable_peer_is_bounded_by_the_l1_ttl_cap(pool):
    """Proxy A's peer list names a port where nobody listens instead of B's:
    B misses A's invalidations, serves its old L1 copy, and sees the new
    value once its l1_ttl_cap (2 s) ran out."""
    (m,) = pool(1)
    nobody = helpers.free_port()
    b = proxy([m], "--policy", "=cache-only,l1_ttl_cap=2")
    a = proxy([m], "--peers", "127.0.0.1:%d" % nobody)
    try:
        with a.connect() as ca, b.connect() as cb:
            ca.call(b"set k 0 0 3\r\nold\r\n", STORED)
            assert read_value(cb, b"k") == b"old"
            filled = time.monotonic()
            ca.call(b"set k 0 0 3\r\nnew\r\n", STORED)
            time.sleep(0.2)
            assert read_value(cb, b"k") == b"old"  # no invalidation came
            while time.monotonic() - filled < 3.5:
                if read_value(cb, b"k") == b"new":
                    break
                time.sleep(0.05)
            assert read_value(cb, b"k") == b"new"
            assert time.monotonic() - filled < 3.5
        st = l2_stats(a)
        assert int(st["127.0.0.1:%d:dropped" % nobody]) + \
            int(st["127.0.0.1:%d:resets" % nobody]) >= 1
    finally:
        a.stop()
        b.stop()


def test_flush_all_reaches_every_server(pool):
    a, b = pool(2)
    srv = proxy([a, b])
    try:
        keys = [b"fl:%d" % i for i in range(40)]
        with srv.connect() as c:
            for k in keys:
                c.call(b"set " + k + b" 0 0 1\r\nx\r\n", STORED)
            assert all(read_value(c, k) == b"x" for k in keys)  # in L1 too
            c.call(b"flush_all\r\n", b"OK\r\n")
            c.call(b"mn\r\n", b"MN\r\n")
            assert helpers.wait_until(lambda: all(m.get(k) is None for m in (a, b) for k in keys))
            assert all(read_value(c, k) is None for k in keys)
            c.call(b"set after 0 0 1\r\ny\r\n", STORED)
            assert read_value(c, b"after") == b"y"
    finally:
        srv.stop()


# ------------------------------------------------------- over a backend

def backed_proxy(cl, m, *more):
    from test_tiers_cluster import cluster_args, seeds_of
    return proxy([m], *cluster_args(seeds_of(cl)), *more)


def tiers_stats(srv):
    with srv.connect() as c:
        return c.stats_dict(b"tiers")


def test_l2_between_l1_and_the_cluster(pool, tmp_path):
    """Two proxies over a one-node cluster with one memcached as L2: what
    one proxy read or wrote is found by the other in the pool (the nodes
    are not read), with the record's version as its CAS; a write updates
    the pool's entry; a delete removes it; a value someone else put in
    the pool without the trailer is not trusted."""
    from nodes import Cluster
    (m,) = pool(1)
    with Cluster(tmp_path / "cl", 1) as cl:
        cl.start()
        a = backed_proxy(cl, m)
        b = backed_proxy(cl, m)
        try:
            with a.connect() as ca, b.connect() as cb:
                ca.call(b"set k 7 0 5\r\nfirst\r\n", STORED)
                ca.send(b"gets k\r\n")
                line = ca.read_line()
                version = line.split()[4]
                ca.read_exact(7)
                ca.read_line()
                # the pool is updated after the answer: nothing waits for it
                raw = helpers.wait_until(lambda: m.get(b"k"))
                assert raw is not None and raw[:5] == b"first" and raw[-4:] == b"SL2\x01"
                reads = int(tiers_stats(b)["backend_reads"])
                cb.send(b"gets k\r\n")
                assert cb.read_line() == b"VALUE k 7 5 " + version + b"\r\n"
                assert cb.read_exact(7) == b"first\r\n"
                assert cb.read_line() == MISS
                st = tiers_stats(b)
                assert int(st["l2_hits"]) == 1
                assert int(st["backend_reads"]) == reads  # the nodes were not asked
                # the version from the pool works for cas through the nodes
                cb.call(b"cas k 7 0 6 " + version + b"\r\nsecond\r\n", STORED)
                assert helpers.wait_until(lambda: (m.get(b"k") or b"")[:6] == b"second")  # update
                cb.call(b"delete k\r\n", b"DELETED\r\n")
                # the entry becomes "gone" (the trailer alone, kind 0x02)
                assert helpers.wait_until(lambda: (m.get(b"k") or b"")[-4:] == b"SL2\x02")
                assert len(m.get(b"k")) == 14
                # a miss everywhere, filled from the nodes into the pool
                ca.call(b"set j 0 0 2\r\nv1\r\n", STORED)
                assert helpers.wait_until(lambda: m.get(b"j"))
                with m.connect() as d:
                    d.call(b"delete j\r\n", b"DELETED\r\n")
                assert read_value(cb, b"j") == b"v1"  # from the nodes
                assert helpers.wait_until(lambda: (m.get(b"j") or b"")[:2] == b"v1")  # filled
                # a foreign value in the pool is a miss, the nodes answer
                with m.connect() as d:
                    d.call(b"set f 0 0 6\r\nforged\r\n", STORED)
                ca.call(b"set f 0 0 4\r\nreal\r\n", STORED)  # updates the pool
                assert helpers.wait_until(lambda: (m.get(b"f") or b"")[:4] == b"real")
                with m.connect() as d:
                    d.call(b"set f 0 0 6\r\nforged\r\n", STORED)
                with b.connect() as cb2:
                    assert read_value(cb2, b"f") == b"real"
        finally:
            a.stop()
            b.stop()


def pool_entry(value, hlc, node=1, kind=1):
    """An entry as proxy/cl2.h lays it out: value, then the trailer."""
    return value + struct.pack(">QH", hlc, node) + b"SL2" + bytes([kind])


def entry_version(raw):
    return struct.unpack(">QH", raw[-14:-4])


def test_pool_entries_are_version_gated(pool, tmp_path):
    """What goes into the pool replaces only an older entry: a write does
    not replace a newer record another proxy put there, a fill of a value
    the nodes returned does not replace a newer "gone" entry (the delete
    it missed), and in invalidate mode a write leaves a "gone" entry that
    the next read's fill replaces with the value."""
    from nodes import Cluster
    (m,) = pool(1)
    future = 1 << 62  # an HLC no write of this test reaches
    with Cluster(tmp_path / "cl", 1) as cl:
        cl.start()
        a = backed_proxy(cl, m)
        b = backed_proxy(cl, m)
        inv = backed_proxy(cl, m, "--policy", "inv:=write-through,l2_on_write=invalidate")
        try:
            with a.connect() as ca, b.connect() as cb, inv.connect() as ci, m.connect() as d:
                # a newer record in the pool (another proxy's, arrived first)
                newer = pool_entry(b"newer", future)
                d.call(b"set w 0 0 %d\r\n%s\r\n" % (len(newer), newer), STORED)
                ca.call(b"set w 0 0 5\r\nolder\r\n", STORED)
                time.sleep(0.3)
                assert m.get(b"w") == newer  # the older write did not replace it
                # an older record in the pool is replaced by the write
                old = pool_entry(b"stale", 1)
                d.call(b"set x 0 0 %d\r\n%s\r\n" % (len(old), old), STORED)
                ca.call(b"set x 0 0 5\r\nfresh\r\n", STORED)
                assert helpers.wait_until(lambda: (m.get(b"x") or b"")[:5] == b"fresh")
                # a "gone" entry newer than what the nodes hold: the fill of
                # the nodes' value (a read that started before the delete)
                # does not bring the value back into the pool
                ca.call(b"set g 0 0 3\r\nabc\r\n", STORED)
                assert helpers.wait_until(lambda: (m.get(b"g") or b"")[:3] == b"abc")
                gone = pool_entry(b"", future, kind=2)
                d.call(b"set g 0 0 %d\r\n%s\r\n" % (len(gone), gone), STORED)
                assert read_value(cb, b"g") == b"abc"  # a miss in the pool: the nodes
                time.sleep(0.3)
                assert m.get(b"g") == gone
                # invalidate mode: the write leaves "gone" at its version; a
                # read fills the value of that version over it
                ci.call(b"set inv:k 0 0 2\r\nv1\r\n", STORED)
                assert helpers.wait_until(lambda: (m.get(b"inv:k") or b"")[-4:] == b"SL2\x02")
                gone_version = entry_version(m.get(b"inv:k"))
                with b.connect() as cb2:  # an L1 without the key: pool, then nodes
                    assert read_value(cb2, b"inv:k") == b"v1"
                assert helpers.wait_until(lambda: (m.get(b"inv:k") or b"")[:2] == b"v1")
                assert entry_version(m.get(b"inv:k")) == gone_version
        finally:
            for p in (a, b, inv):
                p.stop()


def test_pool_down_reads_go_to_the_nodes(tmp_path):
    from nodes import Cluster
    nobody = helpers.free_port()
    with Cluster(tmp_path / "cl", 1) as cl:
        cl.start()
        srv = backed_proxy(cl, "127.0.0.1:%d" % nobody)
        try:
            with srv.connect() as c:
                c.call(b"set k 0 0 1\r\nx\r\n", STORED)
            with srv.connect() as c:  # a fresh L1 miss: the pool fails, the nodes answer
                c.call(b"flush_all\r\n", b"OK\r\n")
                assert read_value(c, b"k") == b"x"
        finally:
            srv.stop()


def test_peers_invalidate_over_a_backend(pool, tmp_path):
    """Two proxies over a one-node cluster, L2 in front, each listing the
    other's peer port: a write through one drops the other's L1 copy."""
    from nodes import Cluster
    (m,) = pool(1)
    ports = [helpers.free_port(), helpers.free_port()]
    with Cluster(tmp_path / "cl", 1) as cl:
        cl.start()
        a = backed_proxy(cl, m, "--peer-port", ports[0], "--peers", "127.0.0.1:%d" % ports[1])
        b = backed_proxy(cl, m, "--peer-port", ports[1], "--peers", "127.0.0.1:%d" % ports[0])
        try:
            with a.connect() as ca, b.connect() as cb:
                keys = [b"pk:%d" % i for i in range(20)]
                for k in keys:
                    ca.call(b"set " + k + b" 0 0 3\r\nold\r\n", STORED)
                for k in keys:
                    assert read_value(cb, k) == b"old"  # now in B's L1
                for k in keys:
                    ca.call(b"set " + k + b" 0 0 3\r\nnew\r\n", STORED)
                time.sleep(0.2)
                for k in keys:
                    assert read_value(cb, k) == b"new", k
        finally:
            a.stop()
            b.stop()


def closed_loop(c, keys, value, answers=20000, seconds=20):
    """Keeps 4 gets in flight on c, sending the next as each answer comes;
    returns how many were answered (each one checked)."""
    import random
    rnd = random.Random(7)
    c.sock.settimeout(3)
    inflight = answered = 0
    deadline = time.monotonic() + seconds
    while answered < answers and time.monotonic() < deadline:
        while inflight < 4:
            c.send(b"get " + keys[rnd.randrange(len(keys))] + b"\r\n")
            inflight += 1
        line = c.read_line(timeout=3)
        assert line.startswith(b"VALUE"), (answered, line)
        assert c.read_exact(len(value) + 2) == value + b"\r\n"
        assert c.read_line(timeout=3) == MISS
        inflight -= 1
        answered += 1
    return answered


def test_closed_loop_pipeline_mixing_l1_hits_and_pool_reads(pool):
    """A client that keeps 4 gets in flight, sending the next as each
    answer comes, over keys some in L1 (answered at once) and some only
    in the pool (answered later): every get is answered. A front-end bug
    (a connection resumed reading while its read event was queued active,
    and libevent then never registered it again) stalled this within a
    few thousand requests."""
    (m,) = pool(1)
    srv = proxy([m], "-t", "1")
    try:
        keys = [b"cl:%d" % i for i in range(3000)]
        with m.connect() as d:
            for k in keys:
                d.send(b"set " + k + b" 0 0 3\r\nabc\r\n")
            for k in keys:
                assert d.read_line() == STORED
        with srv.connect() as c:
            assert closed_loop(c, keys, b"abc") >= 5000  # bounded by time on a slow box
    finally:
        srv.stop()


def test_closed_loop_pipeline_over_the_cluster(pool, tmp_path):
    """The same closed loop through a proxy over a one-node cluster with
    the pool in between, whose commands run one at a time (the connection
    pauses reading while one waits): every get is answered. The front
    end's resume without a read (CONN_RESUME) once re-registered a paused
    connection's read event wrongly and stalled this (bench-l2 part 3 fell
    from 86,534 to 368 ops/s)."""
    from nodes import Cluster
    (m,) = pool(1)
    with Cluster(tmp_path / "cl", 1) as cl:
        cl.start()
        writer = backed_proxy(cl, m)
        reader = backed_proxy(cl, m, "-t", "1")
        try:
            keys = [b"cc:%d" % i for i in range(2000)]
            with writer.connect() as w:
                w.send(b"".join(b"set " + k + b" 0 0 3\r\nabc\r\n" for k in keys))
                for _ in keys:
                    assert w.read_line(timeout=20) == STORED
            with reader.connect() as c:
                assert closed_loop(c, keys, b"abc", answers=8000) >= 3000
        finally:
            writer.stop()
            reader.stop()


def test_gutter_pool_takes_the_keys_of_an_ejected_server(pool):
    """With l2_gutter, the keys of an ejected server go to the gutter
    server, set with a TTL of at most l2_gutter_ttl; the other server's
    keys stay where they are."""
    a, b, g = pool(3)
    srv = proxy([a, b], "--l2-gutter", g.spec, "--l2-gutter-ttl", "5",
                "--l2-eject-after", "1", "--l2-retry-ms", "60000", l1="off")
    try:
        continuum = ketama([("127.0.0.1", a.port, 1), ("127.0.0.1", b.port, 1)])
        keys = [b"gut:%d" % i for i in range(60)]
        on_a = [k for k in keys if server_of(continuum, k) == 0]
        on_b = [k for k in keys if server_of(continuum, k) == 1]
        a.proc.send_signal(signal.SIGSTOP)
        with srv.connect() as c:
            timed(c, b"get " + on_a[0] + b"\r\n", [MISS])  # times out: a is ejected
            assert l2_stats(srv)["%s:state" % a.spec] == "ejected"
            for k in keys:
                c.call(b"set " + k + b" 0 0 3\r\nnew\r\n", STORED)
            for k in keys:
                assert read_value(c, k) == b"new"
        for k in on_a:
            with g.connect() as d:
                d.send(b"mg " + k + b" t v\r\n")
                line = d.read_line()
                assert line.startswith(b"VA 3 t"), (k, line)
                assert 0 < int(line.split()[2][1:]) <= 5
                d.read_exact(5)
        for k in on_b:
            assert g.get(k) is None and b.get(k) == b"new"
        st = l2_stats(srv)
        assert st["gutter"] == "1" and st["%s:role" % g.spec] == "gutter"
        assert int(st["%s:gutter_requests" % g.spec]) >= 2 * len(on_a)
    finally:
        a.proc.send_signal(signal.SIGCONT)
        srv.stop()
