"""`stats` and its subcommands: the format monitoring tools parse
(Prometheus' memcached_exporter, collectd), the fields they need with
sane values, and the counters' behaviour. Implementation-specific values
(hash table, slab and LRU details) are checked for format only
(COMPATIBILITY.md, difference 4)."""

import re
import struct
import time

import pytest

from helpers import (IS_MEMCACHED, assert_healthy, expected_version_line, parse_stats,
                     stat_lines, wait_for_stat)

NUMBER = re.compile(r"-?\d+(\.\d+)?")
TIMEVAL = re.compile(r"\d+\.\d{6}")

# General stats the exporter (pkg/exporter/exporter.go) parses as numbers
# when present; the first four must be present or it reports up=0.
EXPORTER_REQUIRED = ["cmd_set", "cas_misses", "cas_hits", "cas_badval"]
EXPORTER_NUMERIC = EXPORTER_REQUIRED + [
    "uptime", "time", "cmd_flush", "bytes", "limit_maxbytes", "curr_items", "total_items",
    "bytes_read", "bytes_written", "curr_connections", "total_connections",
    "rejected_connections", "conn_yields", "listen_disabled_num", "evictions", "reclaimed",
    "store_too_large", "store_no_memory", "lru_crawler_starts", "direct_reclaims",
    "crawler_items_checked", "crawler_reclaimed", "moves_to_cold", "moves_to_warm",
    "moves_within_lru", "total_malloced", "accepting_conns",
] + ["%s_%s" % (op, outcome) for op in ("get", "delete", "incr", "decr", "cas", "touch")
     for outcome in ("hits", "misses")]
# Per slab class (`stats slabs`, exporter with --enable-slab).
EXPORTER_SLAB_REQUIRED = ["cmd_set", "cas_hits", "cas_badval"]

# Must all be in plain `stats` (total_malloced may be in `stats slabs`).
REQUIRED_GENERAL = """
pid uptime time version libevent pointer_size rusage_user rusage_system
max_connections curr_connections total_connections rejected_connections
connection_structures listen_disabled_num cmd_get cmd_set cmd_flush cmd_touch
get_hits get_misses get_expired get_flushed delete_misses delete_hits
incr_misses incr_hits decr_misses decr_hits cas_misses cas_hits cas_badval
touch_hits touch_misses store_too_large store_no_memory auth_cmds auth_errors
bytes_read bytes_written limit_maxbytes accepting_conns threads conn_yields
bytes curr_items total_items expired_unfetched evicted_unfetched evictions
reclaimed""".split()
STRING_VALUED = {"version", "libevent", "strata_version"}  # COMPATIBILITY.md, 2

REQUIRED_SETTINGS = ["maxbytes", "maxconns", "tcpport", "udpport", "verbosity",
                     "num_threads", "item_size_max", "evictions", "cas_enabled"]


def store_some_items(conn, key, sizes=(10, 500, 5000)):
    for size in sizes:
        conn.call(b"set %s_%d 0 0 %d\r\n%s\r\n" % (key, size, size, b"v" * size), b"STORED\r\n")
    conn.call(b"get %s_%d\r\n" % (key, sizes[0]),
              b"VALUE %s_%d 0 %d\r\n%s\r\nEND\r\n" % (key, sizes[0], sizes[0], b"v" * sizes[0]))


def slab_rows(pairs, pattern):
    """{class_id: {name: value}} from per-class rows, asserting that every
    row with a ':' matches pattern (with the class id as group 1)."""
    classes = {}
    for name, value in pairs:
        if ":" not in name:
            continue
        m = re.fullmatch(pattern, name)
        assert m, "bad per-class stat name %r" % name
        classes.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return classes


def test_general_stats_exporter_rules(conn, key):
    store_some_items(conn, key)
    pairs = stat_lines(conn.stats())
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)), "duplicate stats"
    stats = dict(pairs)
    assert all(":" not in n for n in names)
    for name in EXPORTER_REQUIRED:
        assert name in stats, name
    for name, value in pairs:
        if name in ("rusage_user", "rusage_system"):
            assert TIMEVAL.fullmatch(value), (name, value)
        elif name not in STRING_VALUED:
            assert NUMBER.fullmatch(value), (name, value)


# What memcached_exporter (pkg/exporter/exporter.go, parseStatsSettings)
# reads from `stats settings`: maxconns always; the rest only when
# lru_crawler is "yes". A value it cannot parse makes it report up=0.
# (collectd's memcached plugin sends only plain `stats`.)
EXPORTER_SETTINGS_NUMBERS = {"maxconns": "max_connections",
                             "lru_crawler_sleep": "lru_crawler_sleep",
                             "lru_crawler_tocrawl": "lru_crawler_to_crawl",
                             "hot_lru_pct": "lru_hot_percent", "warm_lru_pct": "lru_warm_percent",
                             "hot_max_factor": "lru_hot_max_age_factor",
                             "warm_max_factor": "lru_warm_max_age_factor"}
EXPORTER_SETTINGS_BOOLS = {"lru_crawler": "lru_crawler_enabled",
                           "lru_maintainer_thread": "lru_maintainer_thread"}


def exporter_settings_metrics(settings):
    """{metric: value} the exporter makes of a `stats settings` reply, as it
    parses it (a missing key is skipped; a bad value fails the scrape)."""
    names = ["maxconns"]
    if settings.get("lru_crawler") == "yes":
        names += [n for n in list(EXPORTER_SETTINGS_NUMBERS) + list(EXPORTER_SETTINGS_BOOLS)
                  if n != "maxconns"]
    metrics = {}
    for name in names:
        if name not in settings:
            continue
        value = settings[name]
        if name in EXPORTER_SETTINGS_BOOLS:
            assert value in ("yes", "no"), (name, value)
            metrics[EXPORTER_SETTINGS_BOOLS[name]] = 1.0 if value == "yes" else 0.0
        else:
            assert NUMBER.fullmatch(value), (name, value)
            metrics[EXPORTER_SETTINGS_NUMBERS[name]] = float(value)
    return metrics


def test_settings_exporter_rules(server_factory):
    """Every `stats settings` value the exporter reads parses, and says what
    the server does. Both run an LRU crawler with memcached's default
    tunables; only memcached has an LRU maintainer thread (COMPATIBILITY.md,
    difference 4)."""
    srv = server_factory("-c", "500")
    with srv.connect() as c:
        settings = dict(stat_lines(c.stats(b"settings")))
    expected = {"max_connections": 500.0, "lru_crawler_enabled": 1.0,
                "lru_crawler_sleep": 100.0, "lru_crawler_to_crawl": 0.0,
                "lru_maintainer_thread": 1.0 if IS_MEMCACHED else 0.0,
                "lru_hot_percent": 20.0, "lru_warm_percent": 40.0,
                "lru_hot_max_age_factor": 0.2, "lru_warm_max_age_factor": 2.0}
    assert exporter_settings_metrics(settings) == expected


def test_slabs_exporter_rules(conn, key):
    store_some_items(conn, key)
    pairs = stat_lines(conn.stats(b"slabs"))
    classes = slab_rows(pairs, r"(\d+):([a-z_]+)")
    assert classes, "no slab class listed although items are stored"
    for class_id, row in classes.items():
        for name in EXPORTER_SLAB_REQUIRED:
            assert name in row, (class_id, name)
        for name, value in row.items():
            assert NUMBER.fullmatch(value), (class_id, name, value)
    for name, value in pairs:
        if ":" not in name:
            assert NUMBER.fullmatch(value), (name, value)


def test_items_exporter_rules(conn, key):
    store_some_items(conn, key)
    classes = slab_rows(stat_lines(conn.stats(b"items")), r"items:(\d+):([a-z_]+)")
    assert classes, "no item class listed although items are stored"
    assert sum(int(row["number"]) for row in classes.values()) >= 3
    for class_id, row in classes.items():
        assert "age" in row, class_id
        for name, value in row.items():
            assert NUMBER.fullmatch(value), (class_id, name, value)


def test_stats_reply_fits_collectd_buffer(conn, key):
    """collectd's memcached plugin reads `stats` into a 4096-byte buffer."""
    store_some_items(conn, key)
    raw = conn.stats()
    assert len(raw) < 3584, len(raw)


def test_required_fields_present(conn):
    stats = parse_stats(conn.stats())
    missing = [n for n in REQUIRED_GENERAL if n not in stats]
    assert not missing
    if "total_malloced" not in stats:
        assert "total_malloced" in parse_stats(conn.stats(b"slabs"))
    settings = parse_stats(conn.stats(b"settings"))
    assert not [n for n in REQUIRED_SETTINGS if n not in settings]


def test_fresh_server_values(server_factory):
    srv = server_factory()
    with srv.connect() as c:
        assert wait_for_stat(c, "curr_connections", 1) == "1"
        stats = parse_stats(c.stats())
    now = time.time()
    assert int(stats["uptime"]) >= 1
    assert abs(int(stats["time"]) - now) <= 2
    assert int(stats["pid"]) == srv.proc.pid
    assert stats["pointer_size"] == str(struct.calcsize("P") * 8)
    assert stats["libevent"]
    expected = {"threads": "4", "max_connections": "1024", "limit_maxbytes": str(64 << 20),
                "curr_connections": "1", "accepting_conns": "1", "curr_items": "0",
                "total_items": "0", "bytes": "0", "evictions": "0", "cmd_get": "0",
                "cmd_set": "0", "rejected_connections": "0", "listen_disabled_num": "0"}
    assert {n: stats[n] for n in expected} == expected


def test_counters_follow_operations(server, key):
    with server.connect() as admin:
        before = parse_stats(admin.stats())
        with server.connect() as c:
            store_some_items(c, key)
            c.call(b"get %s_10 %s_x\r\n" % (key, key), b"VALUE %s_10 0 10\r\n%s\r\nEND\r\n"
                   % (key, b"v" * 10))
            c.call(b"touch %s_10 100\r\ntouch %s_x 100\r\n" % (key, key),
                   b"TOUCHED\r\nNOT_FOUND\r\n")
            during = parse_stats(admin.stats())
            c.call(b"delete %s_10\r\n" % key, b"DELETED\r\n")
            after = parse_stats(admin.stats())

    def delta(name, later=during):
        return int(later[name]) - int(before[name])

    assert {n: delta(n) for n in ("cmd_set", "cmd_get", "get_hits", "get_misses",
                                  "curr_items", "total_items", "cmd_touch", "touch_hits",
                                  "touch_misses", "total_connections")} \
        == {"cmd_set": 3, "cmd_get": 3, "get_hits": 2, "get_misses": 1, "curr_items": 3,
            "total_items": 3, "cmd_touch": 2, "touch_hits": 1, "touch_misses": 1,
            "total_connections": 1}
    assert delta("bytes") >= 5510
    assert delta("bytes_read") >= 5510
    assert delta("bytes_written") >= 20
    assert delta("curr_items", after) == 2
    assert delta("delete_hits", after) == 1
    assert float(after["rusage_user"]) + float(after["rusage_system"]) > 0


def test_curr_connections_follow_clients(private_server):
    with private_server.connect() as admin:
        base = int(wait_for_stat(admin, "curr_connections", 1))
        total = int(admin.stats_dict()["total_connections"])
        clients = [private_server.connect() for _ in range(3)]
        for c in clients:
            assert c.version() == expected_version_line()
        assert wait_for_stat(admin, "curr_connections", base + 3) == str(base + 3)
        assert int(admin.stats_dict()["total_connections"]) == total + 3
        for c in clients:
            c.close()
        assert wait_for_stat(admin, "curr_connections", base) == str(base)


def test_stats_settings_match_command_line(server_factory):
    srv = server_factory("-c", "500", "-I", "2m", "-M")
    with srv.connect() as c:
        settings = parse_stats(c.stats(b"settings"))
        stats = parse_stats(c.stats())
    expected = {"maxbytes": str(64 << 20), "maxconns": "500", "tcpport": str(srv.port),
                "udpport": "0", "verbosity": "0", "num_threads": "4",
                "item_size_max": str(2 << 20), "evictions": "off", "cas_enabled": "yes"}
    assert {n: settings[n] for n in expected} == expected
    assert stats["max_connections"] == "500"


def test_stats_settings_defaults(conn):
    settings = parse_stats(conn.stats(b"settings"))
    assert settings["evictions"] == "on"
    assert settings["item_size_max"] == str(1 << 20)
    assert settings["cas_enabled"] == "yes"


def test_verbosity_shows_in_settings(conn):
    conn.call(b"verbosity 1\r\n", b"OK\r\n")
    try:
        assert parse_stats(conn.stats(b"settings"))["verbosity"] == "1"
    finally:
        conn.call(b"verbosity 0\r\n", b"OK\r\n")
    assert parse_stats(conn.stats(b"settings"))["verbosity"] == "0"


CONN_ROW = re.compile(r"(\d+):(addr|listen_addr|state|secs_since_last_cmd)")


def test_stats_conns_format(server, conn):
    other = server.connect()
    assert other.version() == expected_version_line()
    pairs = stat_lines(conn.stats(b"conns"))
    rows = {}
    for name, value in pairs:
        m = CONN_ROW.fullmatch(name)
        assert m, name
        rows.setdefault(int(m.group(1)), {})[m.group(2)] = value
    for fd, row in rows.items():
        assert re.fullmatch(r"(tcp|udp|unix):\S+", row["addr"]), row
        assert re.fullmatch(r"conn_[a-z_]+", row["state"]), row
        assert row["secs_since_last_cmd"].isdigit(), row
    mine = [row for row in rows.values()
            if row["addr"] == "tcp:127.0.0.1:%d" % conn.sock.getsockname()[1]]
    assert len(mine) == 1
    assert mine[0]["listen_addr"] == "tcp:127.0.0.1:%d" % server.addr[1]
    assert int(mine[0]["secs_since_last_cmd"]) <= 2
    assert any(row["addr"] == "tcp:127.0.0.1:%d" % other.sock.getsockname()[1]
               for row in rows.values())
    other.close()


def test_stats_sizes(conn):
    conn.call(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n")


def test_stats_reset(private_server):
    with private_server.connect() as c:
        store_some_items(c, b"reset")
        c.call(b"get nothing\r\ndelete nothing\r\nincr nothing 1\r\n",
               b"END\r\nNOT_FOUND\r\nNOT_FOUND\r\n")
        before = parse_stats(c.stats())
        assert int(before["cmd_set"]) > 0
        c.call(b"stats reset\r\n", b"RESET\r\n")
        after = parse_stats(c.stats())
    zeroed = ["cmd_get", "cmd_set", "cmd_touch", "get_hits", "get_misses", "delete_misses",
              "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits",
              "cas_misses", "cas_hits", "cas_badval", "touch_hits", "touch_misses",
              "total_items", "evictions", "reclaimed", "rejected_connections",
              "store_too_large", "store_no_memory", "get_expired", "get_flushed"]
    assert {n: after[n] for n in zeroed} == {n: "0" for n in zeroed}
    # Gauges are not counters: they stay.
    for name in ("curr_items", "bytes", "curr_connections", "limit_maxbytes"):
        assert after[name] == before[name], name
    assert int(after["bytes_read"]) < 100
    assert int(after["uptime"]) >= int(before["uptime"])


def test_eviction_keeps_newest_items(server_factory):
    srv = server_factory(memory_mb=8)
    count, size = 3000, 10000
    value = b"e" * size
    with srv.connect() as c:
        c.send_in_background(b"".join(b"set ev%d 0 0 %d noreply\r\n%s\r\n" % (i, size, value)
                                      for i in range(count))).join(30)
        assert c.version(timeout=30) == expected_version_line()  # all sets processed
        stats = parse_stats(c.stats())
        assert int(stats["evictions"]) > 0
        assert int(stats["total_items"]) == count
        assert int(stats["curr_items"]) + int(stats["evictions"]) == count
        assert int(stats["bytes"]) <= 8 << 20
        newest = [b"ev%d" % i for i in range(count - 50, count)]
        expected = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, size, value) for k in newest)
        c.call(b"get " + b" ".join(newest) + b"\r\n", expected + b"END\r\n")
        c.call(b"get " + b" ".join(b"ev%d" % i for i in range(50)) + b"\r\n", b"END\r\n")
    assert_healthy(srv)


@pytest.mark.parametrize("sub", [b"", b"settings", b"slabs", b"items", b"conns", b"sizes"])
def test_every_stats_reply_ends_with_end(conn, sub):
    stat_lines(conn.stats(sub))
