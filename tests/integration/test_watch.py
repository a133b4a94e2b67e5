"""The `watch` command: a connection that receives log lines (fetches,
stores, evictions, connection events) instead of replies.

Lines are compared field by field (`key=value` words); ts, gid and cfd vary
from run to run and are checked for their form and consistency only.
Strata logs one item_get per client-visible lookup where memcached logs
every internal lookup (a `set` logs a fetch first), and fills in the class
and fd of a refused store that memcached 1.6.18 garbles: see
docs/COMPATIBILITY.md section 6; the tests of those differences branch on
IS_MEMCACHED.
"""

import re
import socket
import time

import pytest

import binproto
from helpers import CRLF, IS_MEMCACHED, Conn, expected_version_line

OK = b"OK\r\n"
PIPELINE_ERROR = b"ERROR cannot pipeline other commands before watch\r\n"
TOO_MANY = b"WATCHER_TOO_MANY log watcher limit reached\r\n"
WATCHER_LIMIT = 20  # memcached's WATCHER_LIMIT
LINE_WAIT = 10.0  # memcached's logger thread sleeps up to 1 s between passes

# The fields of each line type, in order.
FIELDS = {
    "item_get": ["ts", "gid", "type", "key", "status", "clsid", "cfd", "size"],
    "item_store": ["ts", "gid", "type", "key", "status", "cmd", "ttl", "clsid", "cfd", "size"],
    "eviction": ["ts", "gid", "type", "key", "fetch", "ttl", "la", "clsid", "size"],
    "conn_new": ["ts", "gid", "type", "rip", "rport", "transport", "cfd"],
    "conn_close": ["ts", "gid", "type", "rip", "rport", "transport", "reason", "cfd"],
}
INT_FIELDS = {"gid", "clsid", "cfd", "size", "ttl", "la", "rport"}


def parse_line(raw):
    """{field: value} of one log line, after checking its form: memcached's
    lines end with a bare LF, fields in a fixed order, ts as seconds.micro
    with the microseconds not zero-padded (memcached prints them with %d)."""
    assert raw.endswith(b"\n") and not raw.endswith(b"\r\n"), raw
    words = raw[:-1].decode("ascii").split(" ")
    line = dict(w.split("=", 1) for w in words)
    assert [w.split("=", 1)[0] for w in words] == FIELDS[line["type"]], raw
    m = re.fullmatch(r"(\d+)\.(\d+)", line["ts"])
    assert m, raw
    micro = m.group(2)
    assert int(micro) < 1000000 and (micro == "0" or not micro.startswith("0")), raw
    assert abs(int(m.group(1)) - time.time()) < 3600, raw
    for name in INT_FIELDS & set(line):
        line[name] = int(line[name])
    return line


def uri_encode(key):
    """memcached's uriencode: every byte but A-Z a-z 0-9 - . _ ~ as %XX."""
    plain = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return "".join(chr(b) if b in plain else "%%%02X" % b for b in key)


class Watcher:
    """A connection that has sent `watch` and reads log lines."""

    def __init__(self, server, words=b"", conn=None):
        self.conn = conn or server.connect()
        self.conn.send(b"watch" + (b" " + words if words else b"") + CRLF)
        reply = self.conn.read_line(timeout=LINE_WAIT)
        assert reply == OK, reply
        self.raw = []  # every line received, in order

    def close(self):
        self.conn.close()

    def read_until(self, done, timeout=LINE_WAIT):
        """Parsed lines (skipped=N notices excluded) until done(lines) is
        true; fails at the deadline."""
        deadline = time.monotonic() + timeout
        lines = []
        while not done(lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "log lines did not come: %r" % self.raw[-10:]
            raw = self.conn.read_line(timeout=remaining)
            if not raw.endswith(b"\n"):
                self.conn.buf = raw + self.conn.buf  # partial: keep it
                continue
            self.raw.append(raw)
            if not raw.startswith(b"skipped="):
                lines.append(parse_line(raw))
        return lines

    def lines_for(self, pred, count, timeout=LINE_WAIT):
        """The first `count` parsed lines that satisfy pred."""
        got = self.read_until(lambda ls: len([x for x in ls if pred(x)]) >= count, timeout)
        return [x for x in got if pred(x)]

    def first_of_each(self, *preds, timeout=LINE_WAIT):
        """For each predicate the first line satisfying it, reading until
        all have one. (memcached's logger thread may deliver events of
        different worker threads out of order, so they are read at once.)"""
        def found(lines):
            return [next((x for x in lines if p(x)), None) for p in preds]
        got = self.read_until(lambda ls: None not in found(ls), timeout)
        return found(got)


def of_key(key, *types):
    enc = uri_encode(key)
    return lambda line: line["type"] in types and line.get("key") == enc


@pytest.fixture(scope="module")
def srv(private_server):
    return private_server


def test_watch_answers_ok_and_accepts_every_memcached_type(srv):
    for words in (b"", b"fetchers", b"fetchers mutations evictions connevents",
                  b"rawcmds sysevents proxyreqs proxyevents proxyuser", b" mutations  fetchers "):
        with srv.connect() as c:
            c.send(b"watch " + words + CRLF if words else b"watch\r\n")
            assert c.read_line(timeout=LINE_WAIT) == OK, words


def test_unknown_type_is_error(srv):
    with srv.connect() as c:
        for words in (b"bogus", b"fetchers bogus", b"FETCHERS", b"fetchers,mutations"):
            c.call(b"watch " + words + CRLF, b"ERROR\r\n")
        # A last "noreply" is taken as the flag and silences the error.
        c.send(b"watch noreply\r\nwatch fetchers bogus noreply\r\n")
        assert c.version() == expected_version_line()


def test_pipelined_watch_is_refused(srv):
    with srv.connect() as c:
        c.send(b"version\r\nwatch\r\n")
        expected = expected_version_line() + PIPELINE_ERROR
        assert c.read_exact(len(expected)) == expected
        # still a command connection
        assert c.version() == expected_version_line()


def test_fetchers_hit_and_miss(srv):
    key = b"w\xc3\xa9:/%+k~._-Z9"
    missing = b"watch_missing_key"
    with srv.connect() as c:
        c.call(b"set " + key + b" 5 0 3\r\nabc\r\n", b"STORED\r\n")
        w = Watcher(srv)  # no argument: fetchers
        try:
            c.send(b"get " + key + b" " + missing + CRLF)
            expected = b"VALUE " + key + b" 5 3\r\nabc\r\nEND\r\n"
            assert c.read_exact(len(expected)) == expected
            hit, miss = w.first_of_each(of_key(key, "item_get"), of_key(missing, "item_get"))
        finally:
            w.close()
    assert hit["key"] == "w%C3%A9%3A%2F%25%2Bk~._-Z9"
    assert (hit["status"], hit["size"]) == ("found", 3)
    assert hit["clsid"] > 0
    assert (miss["status"], miss["clsid"], miss["size"]) == ("not_found", 0, 0)
    assert hit["cfd"] == miss["cfd"] > 0
    assert miss["gid"] > hit["gid"]


def test_fetchers_touch_incr_meta_delete(srv):
    """touch, incr, mg and delete each log one lookup of the item as it was
    before the command."""
    key = b"watch_counter"
    with srv.connect() as c:
        c.call(b"set " + key + b" 0 0 1\r\n5\r\n", b"STORED\r\n")
        w = Watcher(srv, b"fetchers")
        try:
            c.call(b"touch " + key + b" 100\r\n", b"TOUCHED\r\n")
            c.call(b"incr " + key + b" 10\r\n", b"15\r\n")
            c.call(b"mg " + key + b" v\r\n", b"VA 2\r\n15\r\n")
            c.call(b"delete " + key + b"\r\n", b"DELETED\r\n")
            c.call(b"delete " + key + b"\r\n", b"NOT_FOUND\r\n")
            lines = w.lines_for(of_key(key, "item_get"), 5)
        finally:
            w.close()
    assert [(x["status"], x["size"]) for x in lines] == [
        ("found", 1), ("found", 1), ("found", 2), ("found", 2), ("not_found", 0)]
    assert all(x["clsid"] > 0 for x in lines[:4])
    assert lines[4]["clsid"] == 0
    gids = [x["gid"] for x in lines]
    assert gids == sorted(gids) and len(set(gids)) == 5


def test_mutations(srv):
    key, ttl_key = b"watch_mut", b"watch_mut_ttl"
    big = b"watch_too_large"
    with srv.connect() as c:
        w = Watcher(srv, b"mutations")
        try:
            c.call(b"set " + key + b" 0 0 4\r\nabcd\r\n", b"STORED\r\n")
            c.call(b"add " + key + b" 0 0 2\r\nxy\r\n", b"NOT_STORED\r\n")
            c.call(b"set " + ttl_key + b" 0 100 1\r\nz\r\n", b"STORED\r\n")
            c.send(b"set " + big + b" 0 0 1100000\r\n")
            c.send(b"v" * 1100000 + CRLF)
            expected = b"SERVER_ERROR object too large for cache\r\n"
            assert c.read_exact(len(expected)) == expected
            stores = w.lines_for(lambda x: x["type"] == "item_store", 4)
        finally:
            w.close()
    s1, s2, s3, s4 = stores
    assert (s1["key"], s1["status"], s1["cmd"], s1["ttl"], s1["size"]) == (
        "watch_mut", "stored", "set", 0, 4)
    assert (s2["key"], s2["status"], s2["cmd"], s2["ttl"], s2["size"]) == (
        "watch_mut", "not_stored", "add", 0, 2)
    assert (s3["key"], s3["status"], s3["cmd"], s3["size"]) == ("watch_mut_ttl", "stored", "set", 1)
    assert s3["ttl"] in (99, 100)
    assert s1["clsid"] > 0 and s1["clsid"] == s2["clsid"] == s3["clsid"]
    assert s1["cfd"] == s2["cfd"] == s3["cfd"]
    assert (s4["key"], s4["status"], s4["cmd"], s4["ttl"], s4["size"]) == (
        "watch_too_large", "too_large", "set", 0, 0)
    if not IS_MEMCACHED:
        # memcached 1.6.18 passes the refused store's fd as its class and
        # prints an uninitialised cfd; strata prints class 0 and the fd.
        assert (s4["clsid"], s4["cfd"]) == (0, s1["cfd"])


def test_fetch_logged_per_lookup_not_per_internal_lookup(srv):
    """memcached logs an item_get for the lookup inside a set; strata logs
    fetches that clients asked for only (docs/COMPATIBILITY.md)."""
    key = b"watch_set_fetch"
    with srv.connect() as c:
        w = Watcher(srv, b"fetchers mutations")
        try:
            c.call(b"set " + key + b" 0 0 1\r\nq\r\n", b"STORED\r\n")
            c.call(b"get " + key + CRLF, b"VALUE " + key + b" 0 1\r\nq\r\nEND\r\n")
            lines = w.lines_for(of_key(key, "item_get", "item_store"), 3 if IS_MEMCACHED else 2)
        finally:
            w.close()
    seen = [(x["type"], x["status"]) for x in lines]
    if IS_MEMCACHED:
        assert seen == [("item_get", "not_found"), ("item_store", "stored"),
                        ("item_get", "found")]
    else:
        assert seen == [("item_store", "stored"), ("item_get", "found")]


def test_binary_protocol_is_watched(srv):
    key = b"watch_binary"
    with srv.connect() as c:
        w = Watcher(srv, b"mutations")
        try:
            c.send(binproto.request(binproto.SET, key, b"hello", binproto.storage_extras()))
            assert binproto.read_response(c).status == binproto.SUCCESS
            store, = w.lines_for(of_key(key, "item_store"), 1)
        finally:
            w.close()
        w = Watcher(srv, b"fetchers")
        try:
            c.send(binproto.request(binproto.GET, key))
            assert binproto.read_response(c).value == b"hello"
            fetch, = w.lines_for(of_key(key, "item_get"), 1)
        finally:
            w.close()
    assert (store["status"], store["cmd"], store["size"]) == ("stored", "set", 5)
    assert (fetch["status"], fetch["size"], fetch["clsid"]) == ("found", 5, store["clsid"])


def test_connevents(srv):
    w = Watcher(srv, b"connevents fetchers")
    try:
        c = srv.connect()
        rport = c.sock.getsockname()[1]
        c.call(b"get watch_conn_key\r\n", b"END\r\n")
        c.close()
        q = srv.connect()
        qport = q.sock.getsockname()[1]
        q.send(b"quit\r\n")
        assert q.read_to_eof()[1] == "eof"
        q.close()
        new, fetch, close, qnew, qclose = w.first_of_each(
            lambda x: x.get("rport") == rport and x["type"] == "conn_new",
            lambda x: x.get("key") == "watch_conn_key",
            lambda x: x.get("rport") == rport and x["type"] == "conn_close",
            lambda x: x.get("rport") == qport and x["type"] == "conn_new",
            lambda x: x.get("rport") == qport and x["type"] == "conn_close")
    finally:
        w.close()
    assert (new["rip"], new["transport"]) == ("127.0.0.1", "tcp")
    assert fetch["type"] == "item_get"
    assert (close["rip"], close["transport"], close["reason"]) == ("127.0.0.1", "tcp", "normal")
    assert new["cfd"] == fetch["cfd"] == close["cfd"] > 0
    assert new["gid"] < fetch["gid"] < close["gid"]
    assert qclose["reason"] == "normal"  # quit
    assert qnew["gid"] < qclose["gid"]


def test_conn_close_reason_error(srv):
    """A connection the server drops for a protocol error closes with
    reason=error (a line over 2048 bytes without a newline)."""
    w = Watcher(srv, b"connevents")
    try:
        c = srv.connect()
        port = c.sock.getsockname()[1]
        c.send(b"x" * 5000)
        assert c.read_to_eof()[1] in ("eof", "reset")
        c.close()
        new, close = w.first_of_each(
            lambda x: x.get("rport") == port and x["type"] == "conn_new",
            lambda x: x.get("rport") == port and x["type"] == "conn_close")
    finally:
        w.close()
    assert close["reason"] == "error"
    assert new["cfd"] == close["cfd"]


def test_conn_close_reason_idle_timeout(server_factory):
    """-o idle_timeout closes an idle client with reason=idle_timeout; the
    watcher, idle too, is not closed (on both a watcher is not a client
    waiting for a command)."""
    srv = server_factory("-o", "idle_timeout=1")
    w = Watcher(srv, b"connevents")
    try:
        c = srv.connect()
        port = c.sock.getsockname()[1]
        assert c.read_to_eof(timeout=15)[1] in ("eof", "reset")
        c.close()
        close, = w.first_of_each(
            lambda x: x.get("rport") == port and x["type"] == "conn_close", timeout=15)
    finally:
        w.close()
    assert close["reason"] == "idle_timeout"


def test_watcher_logbuf_size_option(server_factory):
    """-o watcher_logbuf_size is in KB and shows in bytes in stats settings."""
    srv = server_factory("-o", "watcher_logbuf_size=64")
    c = srv.connect()
    c.send(b"stats settings\r\n")
    rows = {}
    while True:
        line = c.read_line()
        if line == b"END\r\n":
            break
        _, name, value = line.decode().split()
        rows[name] = value
    c.close()
    assert rows["watcher_logbuf_size"] == str(64 * 1024)


def test_watcher_ignores_commands(srv):
    key = b"watch_ignored_marker"
    w = Watcher(srv, b"fetchers")
    try:
        w.conn.send(b"version\r\nget watch_from_watcher\r\nset x 0 0 1\r\nx\r\n")
        with srv.connect() as c:
            c.call(b"get " + key + CRLF, b"END\r\n")
        lines = w.lines_for(of_key(key, "item_get"), 1)
    finally:
        w.close()
    assert all(raw.startswith(b"ts=") for raw in w.raw), w.raw
    assert not [x for x in lines if x["key"] == "watch_from_watcher"]


def test_several_watchers_each_get_the_lines(srv):
    key = b"watch_shared"
    watchers = [Watcher(srv, b"fetchers") for _ in range(3)]
    try:
        with srv.connect() as c:
            c.call(b"get " + key + CRLF, b"END\r\n")
        seen = [w.lines_for(of_key(key, "item_get"), 1)[0] for w in watchers]
    finally:
        for w in watchers:
            w.close()
    assert seen[0]["status"] == "not_found"
    assert seen[0] == seen[1] == seen[2]  # the same event: same ts and gid


def test_watcher_stats(server_factory):
    """stats counts watchers (log_watchers) and the lines they were sent
    (log_watcher_sent); stats reset zeroes the lines, not the watchers.
    memcached's logger thread adds its counts up now and then: poll."""
    srv = server_factory()
    c = srv.connect()

    def wait_stats(pred):
        deadline = time.monotonic() + LINE_WAIT
        while True:
            st = c.stats_dict()
            if pred(st):
                return st
            assert time.monotonic() < deadline, st
            time.sleep(0.05)

    st = c.stats_dict()
    assert (st["log_watchers"], st["log_watcher_sent"], st["log_watcher_skipped"]) == \
        ("0", "0", "0")
    watchers = [Watcher(srv, b"fetchers") for _ in range(2)]
    try:
        c.call(b"get watch_stats_key\r\n", b"END\r\n")
        for w in watchers:
            w.lines_for(of_key(b"watch_stats_key", "item_get"), 1)
        wait_stats(lambda st: st["log_watchers"] == "2" and int(st["log_watcher_sent"]) >= 2)
        c.call(b"stats reset\r\n", b"RESET\r\n")
        st = c.stats_dict()
        assert st["log_watchers"] == "2"
        assert int(st["log_watcher_sent"]) < 2
    finally:
        for w in watchers:
            w.close()
    wait_stats(lambda st: st["log_watchers"] == "0")
    c.close()


def test_watcher_limit(server_factory):
    srv = server_factory()
    watchers = [Watcher(srv) for _ in range(WATCHER_LIMIT)]
    try:
        with srv.connect() as c:
            c.send(b"watch\r\n")
            assert c.read_line(timeout=LINE_WAIT) == TOO_MANY
            assert c.version() == expected_version_line()  # still usable
        watchers.pop().close()
        # memcached notices a closed watcher on its logger thread's next pass
        deadline = time.monotonic() + LINE_WAIT
        while True:
            with srv.connect() as c:
                c.send(b"watch\r\n")
                reply = c.read_line(timeout=LINE_WAIT)
            if reply == OK:
                break
            assert reply == TOO_MANY
            assert time.monotonic() < deadline, "the closed watcher's slot was not freed"
            time.sleep(0.05)
    finally:
        for w in watchers:
            w.close()


def test_evictions(server_factory):
    srv = server_factory(memory_mb=2)
    value = b"e" * 100000
    w = Watcher(srv, b"evictions")
    try:
        with srv.connect() as c:
            c.call(b"set watch_ev0 0 1000 %d\r\n" % len(value) + value + CRLF, b"STORED\r\n")
            c.call(b"get watch_ev0\r\n",
                   b"VALUE watch_ev0 0 %d\r\n" % len(value) + value + b"\r\nEND\r\n")
            # 8 MB into 2 MB: the first keys are evicted
            for i in range(1, 80):
                c.call(b"set watch_ev%d 0 0 %d\r\n" % (i, len(value)) + value + CRLF,
                       b"STORED\r\n")
        first, other = w.first_of_each(lambda x: x["key"] == "watch_ev0",
                                       lambda x: x["key"] == "watch_ev1")
    finally:
        w.close()
    assert first["type"] == other["type"] == "eviction"
    assert (first["fetch"], first["size"]) == ("yes", 100000)
    assert 900 < first["ttl"] <= 1000
    assert (other["fetch"], other["ttl"], other["size"]) == ("no", -1, 100000)
    assert first["la"] >= 0 and other["la"] >= 0
    assert first["clsid"] == other["clsid"] > 0


def test_slow_watcher_gets_skipped_notice(srv):
    """A watcher that does not read loses lines once its buffer (256 KB) is
    full, and is told how many before the next line it gets."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(srv.addr)
    w = Watcher(srv, b"fetchers", conn=Conn.from_socket(sock))
    # ~850-byte lines (250-byte keys, each byte %XX-encoded): a flood of
    # 6,400 gets of 50 keys makes 270 MB of them, far beyond the socket
    # buffers, the output queue and 256 KB. memcached's logger thread
    # gathers lines from a 64 KB buffer per worker thread, dropping what
    # overflows those unreported, and sleeps up to a second while idle: the
    # flood comes from four connections (four worker threads), and may
    # have to be repeated (the logger is awake then) before the watcher's
    # own buffer overflows.
    keys = [(b"%c" % (0x21 + i % 10)) * 250 for i in range(50)]
    line = b"get " + b" ".join(keys) + CRLF
    marker = b"watch_after_flood"
    clients = [srv.connect() for _ in range(4)]
    try:
        for _ in range(5):
            for _ in range(400):
                for c in clients:
                    c.send(line * 4)
                for c in clients:
                    for _ in range(4):
                        assert c.read_line() == b"END\r\n"
            # Read while asking again until a line after the flood gets
            # through.
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, "no line after the flood"
                clients[0].call(b"get " + marker + CRLF, b"END\r\n")
                try:
                    w.lines_for(of_key(marker, "item_get"), 1, timeout=0.5)
                    break
                except AssertionError:
                    pass
            if any(r.startswith(b"skipped=") for r in w.raw):
                break
    finally:
        w.close()
        for c in clients:
            c.close()
    skipped = [r for r in w.raw if r.startswith(b"skipped=")]
    assert skipped, "no skipped=N notice in %d lines" % len(w.raw)
    for r in skipped:
        assert re.fullmatch(rb"skipped=[1-9][0-9]*\n", r), r
        # the notice comes right before a line that was not dropped
        assert w.raw[w.raw.index(r) + 1].startswith(b"ts="), r
    for r in w.raw:
        assert r.startswith(b"skipped=") or r.startswith(b"ts="), r
