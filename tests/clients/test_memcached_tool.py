"""memcached-tool (the memcached package's Perl script,
/usr/share/memcached/scripts/memcached-tool) against this module's own
server: display, stats, settings, dump and keys. `dump` and `keys` read
`lru_crawler metadump all` and read until a line starting with END, so
they hang on a server that answers anything else (e.g. ERROR): the
metadump fixture asks the server first and fails those tests at once with
its reply; every tool run is also bounded by TOOL_TIMEOUT."""

import re
import subprocess

import pytest

from clientdata import ALL_BYTES

TOOL = "/usr/share/memcached/scripts/memcached-tool"
TOOL_TIMEOUT = 10

TTL = 1000
# (key, flags, exptime, value): keys metadump must %-encode (':', '/', '%',
# UTF-8), a binary value, one with a TTL, one in a bigger slab class.
ITEMS = [
    (b"mt_plain", 0, 0, b"v1"),
    (b"mt:a/b%c", 5, 0, b"special key"),
    ("mt_cl\u00e9".encode(), 9, 0, b"utf-8 key"),
    (b"mt_bin", 7, 0, ALL_BYTES),
    (b"mt_ttl", 3, TTL, b"expires"),
    (b"mt_big", 11, 0, bytes(range(256)) * 400),
]


@pytest.fixture(scope="module")
def tool(need):
    perl = need.executable("perl", "perl")
    need.file(TOOL, "memcached")
    return perl


@pytest.fixture(scope="module")
def stored(server):
    """ITEMS stored on the module's fresh server; returns the server's
    clock (stats `time`) at that moment."""
    with server.connect() as c:
        for key, flags, exptime, value in ITEMS:
            c.call(b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exptime, len(value), value),
                   b"STORED\r\n")
        return int(c.stats_dict()["time"])


@pytest.fixture(scope="module")
def metadump(server, stored):
    """The server's raw reply to `lru_crawler metadump all`: lines, then
    END (memcached-tool's dump and keys depend on that END)."""
    with server.connect() as c:
        c.send(b"lru_crawler metadump all\r\n")
        reply = b""
        for _ in range(len(ITEMS) + 1):   # item lines, then END
            line = c.read_line()
            reply += line
            if not line.startswith(b"key="):
                break
    if not reply.endswith(b"END\r\n"):
        pytest.fail("`lru_crawler metadump all` answered %r, not metadump lines and END: "
                    "memcached-tool dump/keys would wait forever" % reply[-200:], pytrace=False)
    return reply


def run_tool(tool, server, *mode):
    args = [tool, TOOL, "%s:%d" % server.addr] + list(mode)
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail("memcached-tool %s did not finish within %d s (stdout so far: %r)"
                    % (" ".join(mode), TOOL_TIMEOUT, (e.stdout or b"")[-300:]), pytrace=False)
    assert done.returncode == 0, (done.returncode, done.stderr)
    return done


def table(stdout):
    """Lines `<name> <value>` of the stats/settings modes, after the header."""
    lines = stdout.decode("latin-1").splitlines()
    return lines[0], dict(line.split() for line in lines[1:])


def test_display(tool, server, stored):
    out = run_tool(tool, server).stdout.decode().splitlines()
    assert out[0] == ("  #  Item_Size  Max_age   Pages   Count   Full?  Evicted "
                      "Evict_Time OOM")
    row = re.compile(r" *(\d+) +([\d.]+[BK]) +(\d+)s +(\d+) +(\d+) +(yes| no) +(\d+) +(\d+) +(\d+)")
    counts = {}
    for line in out[1:]:
        m = row.fullmatch(line)
        assert m, "malformed display row %r" % line
        assert int(m.group(4)) > 0, "a class without pages is listed: %r" % line
        counts[int(m.group(1))] = int(m.group(5))
    assert sum(counts.values()) == len(ITEMS), out
    assert len(counts) >= 2, "the big item should be in a class of its own: %r" % out
    # the tool's counts are the server's per-class `stats items` numbers
    with server.connect() as c:
        items = c.stats_dict(b"items")
    for cls, count in counts.items():
        assert int(items["items:%d:number" % cls]) == count


def test_stats(tool, server, stored, target):
    header, stats = table(run_tool(tool, server, "stats").stdout)
    assert header.split() == ["#%s:%d" % server.addr, "Field", "Value"]
    assert stats["pid"] == str(target.pid)
    assert stats["version"] == target.version
    assert stats["curr_items"] == str(len(ITEMS))


def test_settings(tool, server, target):
    header, settings = table(run_tool(tool, server, "settings").stdout)
    assert header.split() == ["#%s:%d" % server.addr, "Field", "Value"]
    assert settings["item_size_max"] == str(target.item_size_max)
    assert settings["tcpport"] == str(server.port)
    assert settings["maxbytes"] == str(64 * 1024 * 1024)


def parse_dump(data):
    """{key: (flags, exptime, value)} from the `add` commands of a dump."""
    out = {}
    head = re.compile(rb"add (\S+) (\d+) (-?\d+) (\d+)\r\n")
    pos = 0
    while pos < len(data):
        m = head.match(data, pos)
        assert m, "malformed dump at byte %d: %r" % (pos, data[pos:pos + 80])
        start = m.end()
        end = start + int(m.group(4))
        assert data[end:end + 2] == b"\r\n", "value of %r not followed by CRLF" % m.group(1)
        out[m.group(1)] = (int(m.group(2)), int(m.group(3)), data[start:end])
        pos = end + 2
    return out


def check_dump_entries(dump, now):
    assert sorted(dump) == sorted(key for key, *_ in ITEMS)
    for key, flags, exptime, value in ITEMS:
        got_flags, got_exptime, got_value = dump[key]
        assert (got_flags, got_value) == (flags, value), key
        if exptime:
            # metadump's exp is absolute (unix time), which `add` accepts
            assert abs(got_exptime - (now + exptime)) <= 2, (key, got_exptime, now)
        else:
            assert got_exptime == 0, key


def test_dump(tool, server, stored, metadump):
    done = run_tool(tool, server, "dump")
    assert done.stderr.startswith(b"Dumping memcache contents"), done.stderr
    dump = parse_dump(done.stdout)
    check_dump_entries(dump, stored)


def test_dump_replays(tool, server, stored, metadump):
    """The point of a dump: fed back to an empty server, it restores the
    items (keys, flags, values, TTLs)."""
    done = run_tool(tool, server, "dump")
    with server.connect() as c:
        c.call(b"flush_all\r\n", b"OK\r\n")
        c.send(done.stdout)
        replies = c.read_exact(len(b"STORED\r\n") * len(ITEMS))
        assert replies == b"STORED\r\n" * len(ITEMS)
        for key, flags, _, value in ITEMS:
            c.call(b"get %s\r\n" % key,
                   b"VALUE %s %d %d\r\n%s\r\nEND\r\n" % (key, flags, len(value), value))
    check_dump_entries(parse_dump(run_tool(tool, server, "dump").stdout), stored)


def test_keys(tool, server, stored, metadump):
    done = run_tool(tool, server, "keys")
    line = re.compile(r"key=(\S+) exp=(-?\d+) la=(\d+) cas=(\d+) fetch=(yes|no) cls=(\d+) "
                      r"size=(\d+)")
    keys = {}
    for text in done.stdout.decode("ascii").splitlines():
        m = line.fullmatch(text)
        assert m, "malformed metadump line %r" % text
        keys[m.group(1)] = int(m.group(2))
    encoded = {"mt_plain", "mt%3Aa%2Fb%25c", "mt_cl%C3%A9", "mt_bin", "mt_ttl", "mt_big"}
    assert set(keys) == encoded
    assert keys["mt_plain"] == -1
    assert abs(keys["mt_ttl"] - (stored + TTL)) <= 2
