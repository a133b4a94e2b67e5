"""memcached's operator commands: stats detail, stats cachedump,
cache_memlimit, lru_crawler, slabs, lru, stats extstore. Same assertions on
strata-proxy and memcached 1.6.18, except where docs/COMPATIBILITY.md
("Operator commands") lists a difference; there each server's exact answer
is asserted."""

import re
import time

import pytest

import binproto as bp
from helpers import CRLF, IS_MEMCACHED, assert_healthy, parse_stats, wait_for_stat

METADUMP_LINE = re.compile(
    rb"key=(\S+) exp=(-1|\d+) la=(\d+) cas=(\d+) fetch=(yes|no) cls=(\d+) size=(\d+)\n")
CACHEDUMP_LINE = re.compile(rb"ITEM (\S+) \[(\d+) b; (\d+) s\]\r\n")


def store(conn, key, value, ttl=0, flags=0):
    conn.call(b"set %s %d %d %d\r\n%s\r\n" % (key, flags, ttl, len(value), value), b"STORED\r\n")


def read_dump(conn, end, timeout=10.0):
    """Lines of a metadump/mgdump up to its end line (excluded)."""
    data = conn.read_until(end, timeout=timeout)
    assert data.endswith(end), "dump did not end: %r" % data[-200:]
    return data[:-len(end)]


def item_class(conn, key):
    """The class id `lru_crawler metadump` reports for a key."""
    conn.send(b"lru_crawler metadump all\r\n")
    for m in METADUMP_LINE.finditer(read_dump(conn, b"END\r\n")):
        if m.group(1) == key:
            return int(m.group(6))
    raise AssertionError("key %r not in metadump" % key)


# ---- stats detail ----

def test_stats_detail_counts_per_prefix(private_server):
    with private_server.connect() as c:
        c.call(b"stats detail on\r\n", b"OK\r\n")
        store(c, b"pfx:a", b"abc")
        store(c, b"noprefix", b"x")
        c.send(b"get pfx:a pfx:b noprefix\r\n")
        c.read_until(b"END\r\n")
        store(c, b"pfx:c", b"x")
        c.call(b"delete pfx:zz\r\n", b"NOT_FOUND\r\n")
        c.call(b"delete pfx:c\r\n", b"DELETED\r\n")
        c.call(b"gat 0 pfx:a\r\n", b"VALUE pfx:a 0 3\r\nabc\r\nEND\r\n")
        # meta commands are not counted by memcached
        c.call(b"mg pfx:a v\r\n", b"VA 3\r\nabc\r\n")
        c.call(b"stats detail dump\r\n", b"PREFIX pfx get 3 hit 2 set 2 del 2\r\nEND\r\n")
        c.call(b"stats detail off\r\n", b"OK\r\n")
        c.call(b"get pfx:a\r\n", b"VALUE pfx:a 0 3\r\nabc\r\nEND\r\n")
        # off stops counting, the counts stay
        c.call(b"stats detail dump\r\n", b"PREFIX pfx get 3 hit 2 set 2 del 2\r\nEND\r\n")
        assert parse_stats(c.stats(b"settings"))["detail_enabled"] == "no"
        c.call(b"stats reset\r\n", b"RESET\r\n")
        c.call(b"stats detail dump\r\n", b"END\r\n")


def test_stats_detail_usage_errors(conn):
    usage = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"
    conn.call(b"stats detail\r\n", usage)
    conn.call(b"stats detail bogus\r\n", usage)
    conn.call(b"stats detail onx\r\n", usage)
    # only the first argument is read
    conn.call(b"stats detail off extra\r\n", b"OK\r\n")


def test_stats_detail_settings_and_delimiter(server_factory):
    srv = server_factory("-D", "/")
    with srv.connect() as c:
        assert parse_stats(c.stats(b"settings"))["stat_key_prefix"] == "/"
        c.call(b"stats detail on\r\n", b"OK\r\n")
        store(c, b"a/b", b"1")
        store(c, b"a:b", b"1")
        c.call(b"stats detail dump\r\n", b"PREFIX a get 0 hit 0 set 1 del 0\r\nEND\r\n")


def test_stats_detail_over_binary(private_server):
    with private_server.connect() as c:
        c.send(bp.request(bp.STAT, key=b"detail on", opaque=1))
        r = bp.read_response(c)
        assert (r.status, r.key, r.value) == (bp.SUCCESS, b"", b"")
        c.send(bp.request(bp.SET, key=b"bin:k", value=b"v", extras=bp.storage_extras()))
        assert bp.read_response(c).status == bp.SUCCESS
        c.send(bp.request(bp.GET, key=b"bin:k"))
        assert bp.read_response(c).status == bp.SUCCESS
        c.send(bp.request(bp.GET, key=b"bin:missing"))
        assert bp.read_response(c).status == bp.KEY_ENOENT
        c.send(bp.request(bp.DELETE, key=b"bin:k"))
        assert bp.read_response(c).status == bp.SUCCESS
        c.send(bp.request(bp.STAT, key=b"detail dump", opaque=2))
        r = bp.read_response(c)
        assert r.key == b"detailed"
        assert b"PREFIX bin get 2 hit 1 set 1 del 1\r\n" in r.value
        assert r.value.endswith(b"END\r\n")
        end = bp.read_response(c)
        assert (end.keylen, end.bodylen) == (0, 0)
        c.send(bp.request(bp.STAT, key=b"detail bogus", opaque=3))
        assert bp.read_response(c).status == bp.KEY_ENOENT
        c.send(bp.request(bp.STAT, key=b"detail off", opaque=4))
        assert bp.read_response(c).status == bp.SUCCESS


# ---- stats cachedump ----

def test_stats_cachedump_errors(conn):
    conn.call(b"stats cachedump\r\n", b"CLIENT_ERROR bad command line\r\n")
    conn.call(b"stats cachedump 1\r\n", b"CLIENT_ERROR bad command line\r\n")
    conn.call(b"stats cachedump x 1\r\n", b"CLIENT_ERROR bad command line format\r\n")
    conn.call(b"stats cachedump -1 0\r\n", b"CLIENT_ERROR bad command line format\r\n")
    conn.call(b"stats cachedump 1 x\r\n", b"CLIENT_ERROR bad command line format\r\n")
    conn.call(b"stats cachedump 64 1\r\n", b"CLIENT_ERROR Illegal slab id\r\n")
    conn.call(b"stats cachedump 0 0\r\n", b"END\r\n")


def test_stats_cachedump_lists_a_class(private_server):
    with private_server.connect() as c:
        keys = [b"cd%03d" % i for i in range(30)]
        for k in keys:
            store(c, k, b"v" * 10, ttl=1000)
        store(c, b"cd_forever", b"v" * 10)
        cls = item_class(c, keys[0])
        c.send(b"stats cachedump %d 0\r\n" % cls)
        raw = c.read_until(b"END\r\n")
        lines = raw[:-len(b"END\r\n")]
        found = {}
        pos = 0
        for m in CACHEDUMP_LINE.finditer(lines):
            assert m.start() == pos, "malformed cachedump line near %r" % lines[pos:pos + 80]
            pos = m.end()
            if m.group(1).startswith(b"cd"):  # other tests' keys share the server
                found[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        assert pos == len(lines)
        now = int(parse_stats(c.stats())["time"])
        for k, (nbytes, exp) in found.items():
            assert nbytes == 10
            if k == b"cd_forever":
                assert exp == 0
            else:
                assert now + 990 <= exp <= now + 1010
        if IS_MEMCACHED:
            # memcached lists only its COLD LRU: fresh items may be missing
            assert set(found) <= set(keys) | {b"cd_forever"}
        else:
            assert set(found) == set(keys) | {b"cd_forever"}
            c.send(b"stats cachedump %d 5\r\n" % cls)
            assert len(CACHEDUMP_LINE.findall(c.read_until(b"END\r\n"))) == 5


# ---- cache_memlimit ----

def test_cache_memlimit_replies(private_server):
    with private_server.connect() as c:
        c.call(b"cache_memlimit\r\n", b"ERROR\r\n")
        c.call(b"cache_memlimit abc\r\n", b"ERROR\r\n")
        c.call(b"cache_memlimit 100 x y\r\n", b"ERROR\r\n")
        c.call(b"cache_memlimit 0\r\n",
               b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n")
        c.call(b"cache_memlimit 7\r\n",
               b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n")
        c.call(b"cache_memlimit 1000000001\r\n",
               b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n")
        c.call(b"cache_memlimit 100\r\n", b"OK\r\n")
        assert parse_stats(c.stats())["limit_maxbytes"] == str(100 << 20)
        c.call(b"cache_memlimit 64 noreply\r\n", b"")
        assert parse_stats(c.stats())["limit_maxbytes"] == str(64 << 20)


def test_cache_memlimit_shrinks_the_cache(server_factory):
    srv = server_factory(memory_mb=64)
    with srv.connect() as c:
        value = b"x" * 4000
        c.send(b"".join(b"set big%05d 0 0 %d noreply\r\n%s\r\n" % (i, len(value), value)
                        for i in range(10000)))
        assert c.version(timeout=30).startswith(b"VERSION")
        before = parse_stats(c.stats())
        assert int(before["bytes"]) > 30 << 20
        c.call(b"cache_memlimit 8\r\n", b"OK\r\n")
        after = parse_stats(c.stats())
        assert after["limit_maxbytes"] == str(8 << 20)
        if not IS_MEMCACHED:
            # strata evicts at once (memcached frees slab pages lazily)
            assert int(after["bytes"]) <= 8 << 20
            assert int(after["evictions"]) > 0
        # new stores keep working under the new limit
        store(c, b"after", b"v")
        c.call(b"get after\r\n", b"VALUE after 0 1\r\nv\r\nEND\r\n")


# ---- lru_crawler ----

def test_lru_crawler_replies(private_server):
    with private_server.connect() as c:
        c.call(b"lru_crawler crawl 0\r\n", b"BADCLASS invalid class id\r\n")
        c.call(b"lru_crawler crawl 64\r\n", b"BADCLASS invalid class id\r\n")
        c.call(b"lru_crawler crawl x\r\n", b"BADCLASS invalid class id\r\n")
        c.call(b"lru_crawler crawl 1,x\r\n", b"BADCLASS invalid class id\r\n")
        c.call(b"lru_crawler tocrawl x\r\n", b"CLIENT_ERROR bad command line format\r\n")
        c.call(b"lru_crawler tocrawl 0\r\n", b"OK\r\n")
        c.call(b"lru_crawler sleep 2000000\r\n",
               b"CLIENT_ERROR sleep must be one second or less\r\n")
        c.call(b"lru_crawler sleep 100\r\n", b"OK\r\n")
        c.call(b"lru_crawler enable\r\n", b"ERROR failed to start lru crawler thread\r\n")
        c.call(b"lru_crawler bogus\r\n", b"ERROR\r\n")
        c.call(b"lru_crawler\r\n", b"ERROR\r\n")
        c.call(b"lru_crawler crawl all extra\r\n", b"ERROR\r\n")
        settings = parse_stats(c.stats(b"settings"))
        assert settings["lru_crawler"] == "yes"
        assert settings["lru_crawler_sleep"] == "100"
        assert "lru_crawler_starts" in parse_stats(c.stats())


def test_lru_crawler_crawl_reclaims_expired_items(server_factory):
    srv = server_factory()
    with srv.connect() as c:
        for i in range(50):
            store(c, b"crawl_exp%02d" % i, b"v", ttl=1)
        store(c, b"crawl_keep", b"v")
        deadline = time.monotonic() + 10
        stats = {}
        # expire them, then crawl until none is left (a crawl may answer
        # BUSY or still be running: retry until the deadline)
        while time.monotonic() < deadline:
            c.send(b"lru_crawler crawl all\r\n")
            line = c.read_line()
            assert line in (b"OK\r\n", b"BUSY currently processing crawler request\r\n")
            stats = parse_stats(c.stats())
            if stats["curr_items"] == "1":
                break
            time.sleep(0.2)
        assert stats["curr_items"] == "1"
        assert int(stats["lru_crawler_starts"]) >= 1
        c.call(b"get crawl_keep\r\n", b"VALUE crawl_keep 0 1\r\nv\r\nEND\r\n")


def test_lru_crawler_disable_enable(server_factory):
    srv = server_factory()
    with srv.connect() as c:
        c.call(b"lru_crawler disable\r\n", b"OK\r\n")
        disabled = b"CLIENT_ERROR lru crawler disabled\r\n"
        # memcached stops its crawler thread asynchronously
        deadline = time.monotonic() + 5
        while parse_stats(c.stats(b"settings"))["lru_crawler"] != "no":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        c.call(b"lru_crawler crawl all\r\n", disabled)
        c.call(b"lru_crawler metadump all\r\n", disabled)
        c.call(b"lru_crawler enable\r\n", b"OK\r\n")
        c.call(b"lru_crawler crawl all\r\n", b"OK\r\n")


def test_lru_crawler_options(server_factory):
    srv = server_factory("-o", "no_lru_crawler,lru_crawler_sleep=50,lru_crawler_tocrawl=7")
    with srv.connect() as c:
        settings = parse_stats(c.stats(b"settings"))
        assert (settings["lru_crawler"], settings["lru_crawler_sleep"],
                settings["lru_crawler_tocrawl"]) == ("no", "50", "7")
        c.call(b"lru_crawler crawl all\r\n", b"CLIENT_ERROR lru crawler disabled\r\n")
        c.call(b"lru_crawler metadump all\r\n", b"CLIENT_ERROR lru crawler disabled\r\n")
        c.call(b"lru_crawler enable\r\n", b"OK\r\n")
        assert parse_stats(c.stats(b"settings"))["lru_crawler"] == "yes"


def test_dumps_disabled_by_dash_x(server_factory):
    with server_factory("-X").connect() as c:
        assert parse_stats(c.stats(b"settings"))["dump_enabled"] == "no"
        c.call(b"stats cachedump 1 1\r\n", b"CLIENT_ERROR stats cachedump not allowed\r\n")
        c.call(b"lru_crawler metadump all\r\n", b"ERROR metadump not allowed\r\n")


def test_metadump_lists_every_live_item(private_server):
    with private_server.connect() as c:
        c.call(b"flush_all\r\n", b"OK\r\n")
        n = 5000
        c.send(b"".join(b"set md%05d 0 0 1 noreply\r\nv\r\n" % i for i in range(n)))
        store(c, b"md%x/y:z", b"v", ttl=1000)  # a key with bytes to encode
        store(c, b"md_gone", b"v", ttl=1)
        c.call(b"get md00001\r\n", b"VALUE md00001 0 1\r\nv\r\nEND\r\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until md_gone has expired
            c.send(b"mg md_gone\r\n")
            if c.read_line() == b"EN\r\n":
                break
            time.sleep(0.1)
        c.send(b"lru_crawler metadump all\r\n")
        body = read_dump(c, b"END\r\n")
        lines = body.split(b"\n")
        assert lines[-1] == b""
        seen = {}
        for line in lines[:-1]:
            m = METADUMP_LINE.fullmatch(line + b"\n")
            assert m, "bad metadump line %r" % line
            assert m.group(1) not in seen, "key listed twice"
            seen[m.group(1)] = m
        expected = {b"md%05d" % i for i in range(n)} | {b"md%25x%2Fy%3Az"}
        assert set(seen) == expected
        assert seen[b"md00001"].group(5) == b"yes"
        assert seen[b"md00002"].group(5) == b"no"
        assert seen[b"md00002"].group(2) == b"-1"
        now = int(parse_stats(c.stats())["time"])
        assert now + 990 <= int(seen[b"md%25x%2Fy%3Az"].group(2)) <= now + 1010
        assert_healthy(private_server, c)


def test_metadump_refuses_pipelined_replies(conn):
    conn.call(b"version\r\nlru_crawler metadump all\r\n",
              b"VERSION 1.6.18\r\nERROR cannot pipeline other commands before metadump\r\n")
    conn.call(b"lru_crawler metadump x\r\n", b"BADCLASS invalid class id\r\n")


def test_metadump_then_more_commands(conn):
    conn.send(b"lru_crawler metadump all\r\nversion\r\n")
    read_dump(conn, b"END\r\n")
    # memcached answers the pipelined command once more input arrives,
    # strata at once: both have answered both after the next command
    conn.send(b"version\r\n")
    assert conn.read_exact(32) == b"VERSION 1.6.18\r\n" * 2


def test_mgdump(conn, key):
    store(conn, key, b"v")
    conn.send(b"lru_crawler mgdump all\r\n")
    if IS_MEMCACHED:
        assert conn.read_line() == b"ERROR\r\n"  # added after 1.6.18
        return
    body = read_dump(conn, b"EN\r\n")
    assert b"mg " + key + CRLF in body
    assert all(line.startswith(b"mg ") for line in body.split(CRLF)[:-1])


# ---- slabs, lru, extstore ----

def test_slabs_commands(conn):
    conn.call(b"slabs automove 0\r\n", b"OK\r\n")
    conn.call(b"slabs automove 2\r\n", b"OK\r\n")
    conn.call(b"slabs automove 3\r\n", b"ERROR\r\n")
    conn.call(b"slabs automove x\r\n", b"CLIENT_ERROR bad command line format\r\n")
    conn.call(b"slabs automove 1\r\n", b"OK\r\n")
    conn.call(b"slabs\r\n", b"ERROR\r\n")
    conn.call(b"slabs bogus\r\n", b"ERROR\r\n")
    conn.call(b"slabs reassign 1\r\n", b"ERROR\r\n")
    if IS_MEMCACHED:
        conn.call(b"slabs reassign 1 1\r\n", b"SAME src and dst class are identical\r\n")
        conn.call(b"slabs reassign 99 1\r\n", b"BADCLASS invalid src or dst class id\r\n")
    else:
        # no slab pages to move (docs/COMPATIBILITY.md)
        conn.call(b"slabs reassign 1 2\r\n", b"CLIENT_ERROR slab reassignment disabled\r\n")
        assert parse_stats(conn.stats(b"settings"))["slab_reassign"] == "no"


def test_lru_commands(conn):
    conn.call(b"lru tune 10 20 0.1 2.0\r\n", b"OK\r\n")
    conn.call(b"lru tune 50 50 0.1 2.0\r\n", b"ERROR hot and warm pcts must not exceed 80\r\n")
    conn.call(b"lru tune 10 20 0 2\r\n", b"ERROR hot/warm age factors must be greater than 0\r\n")
    conn.call(b"lru tune x 20 0.1 2\r\n", b"ERROR\r\n")
    conn.call(b"lru tune 20 40 0.2 2.0\r\n", b"OK\r\n")
    conn.call(b"lru\r\n", b"ERROR\r\n")
    conn.call(b"lru bogus\r\n", b"ERROR\r\n")
    conn.call(b"lru mode x\r\n", b"ERROR\r\n")
    if IS_MEMCACHED:
        conn.call(b"lru mode segmented\r\n", b"OK\r\n")
        conn.call(b"lru temp_ttl -1\r\n", b"OK\r\n")
    else:
        # no LRU maintainer thread: memcached's answer without one
        conn.call(b"lru mode segmented\r\n", b"ERROR\r\n")
        conn.call(b"lru temp_ttl 10\r\n", b"ERROR\r\n")


def test_stats_extstore_is_empty(conn):
    conn.call(b"stats extstore\r\n", b"END\r\n")
