"""Real clients against the server: pymemcache, the libmemcached command-line
tools, and lmc_test (libmemcached's C API, built by the Makefile). A missing
client skips its test, or fails it under CI=true (strata_deps.py)."""

import os
import subprocess

import pytest

from helpers import (expected_version_line, parse_stats, repo_path, require_file,
                     require_module, require_tool)


@pytest.fixture
def client(server):
    pymemcache = require_module("pymemcache.client.base", package="python3-pymemcache")
    c = pymemcache.Client(server.addr, connect_timeout=5, timeout=5, default_noreply=False)
    yield c
    c.close()


def test_pymemcache_storage_commands(client, key):
    k = key.decode()
    assert client.set(k, b"v1", expire=100, flags=3)
    assert client.get(k) == b"v1"
    assert client.add(k, b"x") is False
    assert client.add(k + "_new", b"n") is True
    assert client.replace(k, b"v2") is True
    assert client.replace(k + "_missing", b"x") is False
    assert client.append(k, b"-end") is True
    assert client.prepend(k, b"start-") is True
    assert client.get(k) == b"start-v2-end"
    assert client.get_many([k, k + "_new", k + "_missing"]) == {k: b"start-v2-end",
                                                                 k + "_new": b"n"}
    assert client.touch(k, 100) is True
    assert client.touch(k + "_missing", 100) is False
    assert client.delete(k) is True
    assert client.delete(k) is False
    assert client.get(k) is None


def test_pymemcache_cas(client, key):
    k = key.decode()
    client.set(k, b"a")
    value, unique = client.gets(k)
    assert value == b"a" and unique
    assert client.cas(k, b"b", unique) is True
    assert client.cas(k, b"c", unique) is False
    assert client.get(k) == b"b"
    client.delete(k)
    assert client.cas(k, b"d", unique) is None


def test_pymemcache_incr_decr(client, key):
    k = key.decode()
    client.set(k, b"10")
    assert client.incr(k, 5) == 15
    assert client.decr(k, 20) == 0
    assert client.incr(k + "_missing", 1) is None
    assert client.decr(k + "_missing", 1) is None


def test_pymemcache_stats_version_flush(client, key):
    stats = client.stats()
    assert stats[b"pid"] > 0 and stats[b"threads"] == 4
    assert isinstance(stats[b"rusage_user"], float)
    assert stats[b"version"].startswith(b"1.6.")
    settings = client.stats("settings")
    assert settings[b"item_size_max"] == 1024 * 1024
    assert b"VERSION " + client.version() + b"\r\n" == expected_version_line()
    client.set(key.decode(), b"x")
    assert client.flush_all() is True
    assert client.get(key.decode()) is None


def tool(*names):
    """Path of the first libmemcached tool found (Debian 12 renamed memcp to
    memccp, memcat to memccat, memstat to memcstat)."""
    return require_tool(*names, package="libmemcached-tools")


def run_tool(args):
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


def test_libmemcached_tools(server, conn, key, tmp_path):
    servers = "--servers=%s:%d" % server.addr
    memcp, memcat = tool("memccp", "memcp"), tool("memccat", "memcat")
    memrm = tool("memcrm", "memrm")
    path = tmp_path / key.decode()
    path.write_bytes(b"file contents\n\x00\x01binary")

    done = run_tool([memcp, servers, "--flag=7", str(path)])
    assert done.returncode == 0, done.stderr
    conn.call(b"get %s\r\n" % key, b"VALUE %s 7 %d\r\n%s\r\nEND\r\n"
              % (key, len(path.read_bytes()), path.read_bytes()))
    done = run_tool([memcat, servers, key.decode()])
    assert done.returncode == 0, done.stderr
    assert done.stdout == path.read_bytes() + b"\n"  # memccat adds a newline

    assert run_tool([memrm, servers, key.decode()]).returncode == 0
    conn.call(b"get %s\r\n" % key, b"END\r\n")
    assert run_tool([memcat, servers, key.decode()]).returncode != 0


def test_libmemcached_memstat(server):
    memstat = tool("memcstat", "memstat")
    done = run_tool([memstat, "--servers=%s:%d" % server.addr])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "Server: 127.0.0.1 (%d)" % server.addr[1]
    stats = dict(line.strip().split(": ", 1) for line in lines[1:] if ": " in line)
    assert stats["version"].startswith("1.6.")
    with server.connect() as c:
        assert stats["pid"] == parse_stats(c.stats())["pid"]
    assert stats["threads"] == "4"


def test_libmemcached_c_api(server):
    default = "build/release/tests/integration/lmc_test"
    binary = require_file(repo_path(os.environ.get("STRATA_LMC_TEST_BIN", default)),
                          "make %s (needs libmemcached-dev, libcmocka-dev), "
                          "or set STRATA_LMC_TEST_BIN" % default)
    done = subprocess.run([binary, "%s:%d" % server.addr], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
