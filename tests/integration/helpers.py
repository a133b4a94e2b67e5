"""Helpers for Strata's integration tests: start/stop a memcached-protocol
server (strata-proxy or stock memcached) on a free loopback port, and talk to
it over raw sockets with every wait bounded in time.

Used by conftest.py and the test_*.py files; nothing here asserts protocol
behaviour except the small check helpers at the bottom.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time

# Missing tools and libraries: skip locally, fail under CI=true.
from strata_deps import require_file, require_module, require_tool  # noqa: F401

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Every socket operation and every wait is bounded by one of these.
IO_TIMEOUT = 5.0          # a reply that does not come within this is a failure
READY_TIMEOUT = 5.0       # a started server must answer `version` within this
STOP_TIMEOUT = 5.0        # SIGTERM grace period before SIGKILL
QUIET_PERIOD = 0.3        # how long "nothing is sent back" is watched for

SERVER_KIND = os.environ.get("STRATA_TEST_SERVER", "strata")
if SERVER_KIND not in ("strata", "strata-async", "strata-router", "memcached"):
    raise RuntimeError("STRATA_TEST_SERVER must be 'strata', 'strata-async', 'strata-router' or "
                       "'memcached', not %r" % SERVER_KIND)
# strata-async: strata-proxy with every lookup completed on a later event-loop
# turn through the front end's asynchronous reply path (--test-async-reads),
# so the whole suite checks that replies and effects keep memcached's order.
# strata-router: strata-proxy in routing mode (--l1 off --l2-servers, its
# commands pipelined to the server) in front of a stock memcached that
# each server of the tests starts for itself; tools/run-tests.sh runs the
# protocol files through it (docs/L2.md).
IS_STRATA = SERVER_KIND in ("strata", "strata-async", "strata-router")
IS_ROUTER = SERVER_KIND == "strata-router"
STRATA_EXTRA_ARGS = ["--test-async-reads"] if SERVER_KIND == "strata-async" else []
IS_MEMCACHED = SERVER_KIND == "memcached"

MEMCACHED_VERSION = b"1.6.18"

CRLF = b"\r\n"


def repo_path(path):
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def server_binary():
    if IS_STRATA:
        return repo_path(os.environ.get("STRATA_PROXY_BIN",
                                        "build/release/bin/strata-proxy"))
    return os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")


def external_addr():
    """(host, port) of an already-running daemon from STRATA_TEST_ADDR, or None."""
    value = os.environ.get("STRATA_TEST_ADDR")
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return (host or "127.0.0.1", int(port))


def strata_semver():
    """Strata's own version (the VERSION file at the repository root)."""
    with open(os.path.join(REPO_ROOT, "VERSION")) as f:
        return f.read().strip()


def expected_version_line():
    """The exact `version` reply: memcached's plain release number on both
    servers (strata's own version is `stats` strata_version)."""
    return b"VERSION " + MEMCACHED_VERSION + CRLF


def raise_nofile_limit():
    """Soft RLIMIT_NOFILE -> hard, so thousands of client sockets fit; the
    servers we start inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# STRATA_TEST_PORTS=FIRST-LAST: the block of ports this test process hands
# out (tools/run-tests.sh gives each of the pytest processes it runs at
# once a block of its own, below the kernel's ephemeral range). Unset: any
# port the kernel picks.
TEST_PORTS = os.environ.get("STRATA_TEST_PORTS", "")
_port_lock = threading.Lock()
_port_next = None


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago (the caller retries
    if somebody takes it in between).

    With STRATA_TEST_PORTS, the next free one of that block, round robin:
    no other test process run alongside hands out the same ports, no
    client's connect() takes one as its source port (the kernel picks those
    from its ephemeral range), and a port given up a moment ago is not
    given out again soon - which matters when a test restarts a server on
    its own address and there is no retrying on another port. Otherwise one
    from the kernel's ephemeral range (bind to port 0)."""
    if not TEST_PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    global _port_next
    first, last = (int(p) for p in TEST_PORTS.split("-"))
    with _port_lock:
        for _ in range(last - first + 1):
            port = _port_next if _port_next is not None else first
            _port_next = port + 1 if port < last else first
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    # no SO_REUSEADDR: a port with connections still in
                    # TIME_WAIT is passed over too
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port left in STRATA_TEST_PORTS=%s" % TEST_PORTS)


class Conn:
    """One client connection with an input buffer and bounded reads."""

    def __init__(self, addr, timeout=IO_TIMEOUT):
        self.addr = addr
        self.timeout = timeout
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sent = 0  # bytes given to send() (ReadWatch leaves them out)

    @classmethod
    def from_socket(cls, sock, timeout=IO_TIMEOUT):
        """Wrap an already-connected socket (e.g. one with special options)."""
        c = cls.__new__(cls)
        c.addr, c.timeout, c.sock, c.buf, c.sent = sock.getpeername(), timeout, sock, b"", 0
        sock.settimeout(timeout)
        return c

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def send_in_background(self, data):
        """Send a large request from a thread so that the server's replies can
        be read meanwhile (neither side blocks on a full socket buffer).
        Returns the thread; join() it after reading."""
        def run():
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # the reader sees what the server did
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def _fill(self, deadline):
        """Read once more into the buffer. False on EOF or at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _take(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_exact(self, n, timeout=None):
        """n bytes, or fewer if the server stops sending (EOF or timeout)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n and self._fill(deadline):
            pass
        return self._take(n)

    def read_until(self, terminator, timeout=None):
        """Bytes up to and including the first occurrence of terminator at the
        start of a line (or the start of the stream); everything so far if it
        does not come."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if self.buf.startswith(terminator):
                return self._take(len(terminator))
            i = self.buf.find(b"\n" + terminator)
            if i >= 0:
                return self._take(i + 1 + len(terminator))
            if not self._fill(deadline):
                return self._take(len(self.buf))

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf and self._fill(deadline):
            pass
        i = self.buf.find(b"\n")
        return self._take(i + 1 if i >= 0 else len(self.buf))

    def read_available(self, quiet=QUIET_PERIOD):
        """Whatever arrives until the connection has been quiet for `quiet`."""
        while self._fill(time.monotonic() + quiet):
            pass
        return self._take(len(self.buf))

    def read_to_eof(self, timeout=None):
        """(bytes, how) where how is 'eof', 'reset' or 'open' (timed out)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._take(len(self.buf)), "open"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return self._take(len(self.buf)), "reset"
            if not chunk:
                return self._take(len(self.buf)), "eof"
            self.buf += chunk

    def call(self, request, expected, timeout=None):
        """Send request, read exactly len(expected) bytes, assert they are
        expected. Extra bytes stay buffered and fail the next call."""
        self.send(request)
        got = self.read_exact(len(expected), timeout)
        assert got == expected, "request %r" % (request[:200],)
        return got

    def stats(self, sub=b""):
        """Raw reply of `stats [sub]` up to and including END\\r\\n."""
        cmd = b"stats " + sub if sub else b"stats"
        self.send(cmd + CRLF)
        raw = self.read_until(b"END\r\n")
        assert raw.endswith(b"END\r\n"), "no END after %r: %r" % (cmd, raw[-200:])
        return raw

    def stats_dict(self, sub=b""):
        return parse_stats(self.stats(sub))

    def version(self, timeout=None):
        self.send(b"version\r\n")
        return self.read_line(timeout)


def parse_stats(raw):
    """{name: value} (str) of a stats reply; format is checked elsewhere."""
    out = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if line.startswith("STAT "):
            parts = line.split(" ", 2)
            out[parts[1]] = parts[2] if len(parts) > 2 else ""
    return out


def stats_value(conn, name, sub=b""):
    return int(conn.stats_dict(sub)[name])


class Server:
    """A strata-proxy or memcached process on 127.0.0.1, or an external
    daemon (STRATA_TEST_ADDR) when proc is None."""

    def __init__(self, extra_args=(), memory_mb=64):
        self.extra_args = [str(a) for a in extra_args]
        self.memory_mb = memory_mb
        self.backing = None  # strata-router: the memcached behind the router
        self.proc = None
        self.port = None
        self.addr = None
        self.log_path = None
        self.args = None

    @classmethod
    def external(cls, addr):
        s = cls()
        s.addr = addr
        s.port = addr[1]
        return s

    def command_line(self, port):
        args = [server_binary(), "-p", str(port), "-l", "127.0.0.1", "-U", "0",
                "-t", "4", "-m", str(self.memory_mb)] + STRATA_EXTRA_ARGS + self.extra_args
        if IS_MEMCACHED and os.geteuid() == 0:
            args += ["-u", "root"]
        if IS_ROUTER:
            args += ["--l1", "off", "--l2-servers", "127.0.0.1:%d" % self.backing.port]
        return args

    def start(self, attempts=5):
        binary = server_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(
                "server binary %s not found or not executable: build it (make) or set "
                "STRATA_PROXY_BIN / MEMCACHED_BIN, or STRATA_TEST_SERVER=memcached"
                % binary)
        if IS_ROUTER and self.backing is None:
            self.backing = Backing(self.memory_mb).start()
        last_log = ""
        for _ in range(attempts):
            port = free_port()
            fd, self.log_path = tempfile.mkstemp(prefix="strata-it-server-", suffix=".log")
            self.args = self.command_line(port)
            with os.fdopen(fd, "wb") as log:
                self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
            self.port = port
            self.addr = ("127.0.0.1", port)
            if self._wait_ready():
                return self
            last_log = self.log()
            self.stop()
        raise RuntimeError("server did not start: %s\n--- log ---\n%s"
                           % (" ".join(self.args), last_log))

    def _wait_ready(self):
        """True once the process we started (checked by its pid in `stats`,
        so a foreign daemon on a reused port cannot fool us) answers."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with Conn(self.addr, timeout=1.0) as c:
                    if int(c.stats_dict().get("pid", -1)) == self.proc.pid:
                        return True
                    return False
            except (OSError, AssertionError, ValueError):
                time.sleep(0.02)
        return False

    def log(self):
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode("latin-1")

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Returns the exit status
        if this call stopped the process (None if it was not running), and
        for strata asserts it is 0: a clean shutdown, and no sanitizer
        report (ASan/UBSan make the exit status non-zero)."""
        if self.proc is None:
            return None
        status = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                status = "killed after %.0f s" % STOP_TIMEOUT
        log = self.log()
        self.proc = None
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
            self.log_path = None
        if self.backing is not None:
            self.backing.stop()
            self.backing = None
        if IS_STRATA and status is not None:
            assert status == 0, "strata-proxy did not exit cleanly (%s):\n%s" % (status, log)
        return status

    def connect(self, timeout=IO_TIMEOUT):
        return Conn(self.addr, timeout)

    def process_alive(self):
        return self.proc is None or self.proc.poll() is None

    def answers_version(self):
        try:
            with self.connect(timeout=2.0) as c:
                return c.version() == expected_version_line()
        except OSError:
            return False


class Backing:
    """strata-router: the stock memcached a router routes to, stopped by
    pid."""

    def __init__(self, memory_mb):
        self.memory_mb = memory_mb
        self.proc = None
        self.port = None

    def start(self, attempts=5):
        for _ in range(attempts):
            port = free_port()
            args = [os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached"), "-p", str(port),
                    "-l", "127.0.0.1", "-U", "0", "-t", "2", "-m", str(self.memory_mb)]
            if os.geteuid() == 0:
                args += ["-u", "root"]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with Conn(("127.0.0.1", port), timeout=1.0) as c:
                        if c.version().startswith(b"VERSION"):
                            self.port = port
                            return self
                except (OSError, AssertionError):
                    time.sleep(0.02)
            self.stop()
        raise RuntimeError("the memcached behind the router did not start")

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
            self.proc = None


def assert_healthy(server, *open_conns):
    """The server process is still running, a fresh connection answers
    `version`, and so does every connection opened before the bad input."""
    assert server.process_alive(), "server process died:\n" + server.log()
    assert server.answers_version(), "server no longer answers on a new connection"
    for c in open_conns:
        assert c.version() == expected_version_line(), "a pre-opened connection broke"


STAT_LINE = re.compile(rb"STAT ([^ \r\n]+) ([^ \r\n]+)\r\n")


def stat_lines(raw):
    """Split a stats reply into (name, value) byte pairs, asserting the
    memcached_exporter acceptance rules: END\\r\\n last, every other line
    exactly `STAT <name> <value>` with single spaces and a non-empty value."""
    assert raw.endswith(b"END\r\n"), raw[-100:]
    body = raw[:-len(b"END\r\n")]
    lines = body.split(b"\r\n")
    assert lines[-1] == b"", "stats body does not end with CRLF"
    pairs = []
    for line in lines[:-1]:
        m = STAT_LINE.fullmatch(line + b"\r\n")
        assert m, "malformed stats line %r" % line
        pairs.append((m.group(1).decode(), m.group(2).decode()))
    return pairs


def unique_key(request, suffix=""):
    """A key made from the test's name, so tests sharing a server do not
    collide (at most 250 bytes)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    return ("t_" + name + suffix)[-200:].encode()


def fill(template, key):
    """Replace every {k} in a request/reply template with the test's key."""
    return template.replace(b"{k}", key)


def run_script(conn, key, steps):
    """Run (request, exact expected reply) pairs in order on one connection."""
    for request, expected in steps:
        conn.call(fill(request, key), fill(expected, key))


def gets_unique(conn, key):
    """The CAS unique of key as returned by `gets`."""
    conn.send(b"gets " + key + CRLF)
    header = conn.read_line()
    m = re.fullmatch(rb"VALUE (\S+) (\d+) (\d+) (\d+)\r\n", header)
    assert m and m.group(1) == key, "unexpected gets reply %r" % header
    body = conn.read_exact(int(m.group(3)) + 2)
    assert body.endswith(CRLF)
    assert conn.read_line() == b"END\r\n"
    return int(m.group(4))


def wait_until(condition, timeout=IO_TIMEOUT, interval=0.01):
    """Polls condition() until it returns a true value or `timeout` seconds
    passed; returns its last value (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class ReadWatch:
    """How many bytes the server has read from its clients since this was
    created, seen through `stats` bytes_read on `admin` (a connection to the
    same server), minus what admin itself sent. The server counts a
    request's bytes when it reads them, so the value includes admin's own
    `stats` request - and that is subtracted too. Lets a test wait until
    the server has seen what another connection sent, instead of sleeping.
    Needs a server where nothing else is sending meanwhile."""

    def __init__(self, admin):
        self.admin = admin
        self.base = int(admin.stats_dict()["bytes_read"])
        self.base_sent = admin.sent

    def others(self):
        read = int(self.admin.stats_dict()["bytes_read"]) - self.base
        return read - (self.admin.sent - self.base_sent)

    def wait_for(self, n, timeout=IO_TIMEOUT):
        """Waits until the server read at least n bytes from other clients;
        returns how many it read (assert >= n)."""
        got = 0

        def enough():
            nonlocal got
            got = self.others()
            return got >= n
        wait_until(enough, timeout)
        return got


def conn_states(admin):
    """{client port: state} of the TCP client connections in `stats conns`,
    as seen from admin."""
    rows = {}
    for fd, field, value in re.findall(rb"STAT (\d+):(\w+) (\S+)\r\n", admin.stats(b"conns")):
        rows.setdefault(fd, {})[field.decode()] = value.decode()
    return {int(row["addr"].rsplit(":", 1)[1]): row["state"] for row in rows.values()
            if row.get("addr", "").startswith("tcp:") and "state" in row}


def wait_for_stat(conn, name, expected, timeout=3.0):
    """Poll `stats` until name == expected (gauges such as curr_connections
    follow closes asynchronously); returns the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = conn.stats_dict()[name]
        if value == str(expected) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def read_meta_reply(conn, timeout=None):
    """One reply of the meta protocol: its line, plus the data block and its
    CRLF when the line is `VA <size> ...`. Whatever arrived if the reply is
    incomplete (EOF or timeout)."""
    line = conn.read_line(timeout)
    m = re.match(rb"VA (\d+)[ \r]", line)
    if m:
        line += conn.read_exact(int(m.group(1)) + 2, timeout)
    return line


def process_rss_kb(pid):
    """Resident set size of a local process in KiB (Linux /proc), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
