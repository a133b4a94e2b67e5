"""Storage and retrieval commands of the text protocol: set, add, replace,
append, prepend, cas, get, gets, gat, gats, delete, touch, and noreply.
Every expected reply is the exact bytes memcached 1.6.18 sends."""

import pytest

from helpers import gets_unique, run_script, stats_value

# (id, [(request, exact reply), ...]); {k} is the test's own key.
STORAGE_CASES = [
    ("set-get", [
        (b"set {k} 5 0 3\r\nabc\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 5 3\r\nabc\r\nEND\r\n"),
    ]),
    ("set-replaces-value-and-flags", [
        (b"set {k} 5 0 3\r\nabc\r\n", b"STORED\r\n"),
        (b"set {k} 6 0 2\r\nxy\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 6 2\r\nxy\r\nEND\r\n"),
    ]),
    ("empty-value", [
        (b"set {k} 0 0 0\r\n\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 0\r\n\r\nEND\r\n"),
    ]),
    ("binary-value-with-crlf-inside", [
        (b"set {k} 0 0 6\r\n\r\n\x00\xff\r\n\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 6\r\n\r\n\x00\xff\r\n\r\nEND\r\n"),
    ]),
    ("get-miss", [
        (b"get {k}\r\n", b"END\r\n"),
    ]),
    ("add-new", [
        (b"add {k} 1 0 1\r\na\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 1 1\r\na\r\nEND\r\n"),
    ]),
    ("add-existing-not-stored", [
        (b"set {k} 1 0 1\r\na\r\n", b"STORED\r\n"),
        (b"add {k} 2 0 1\r\nb\r\n", b"NOT_STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 1 1\r\na\r\nEND\r\n"),
    ]),
    ("replace-missing-not-stored", [
        (b"replace {k} 0 0 1\r\na\r\n", b"NOT_STORED\r\n"),
        (b"get {k}\r\n", b"END\r\n"),
    ]),
    ("replace-existing", [
        (b"set {k} 1 0 1\r\na\r\n", b"STORED\r\n"),
        (b"replace {k} 2 0 2\r\nbb\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 2 2\r\nbb\r\nEND\r\n"),
    ]),
    ("append-prepend-keep-flags", [
        (b"set {k} 7 0 1\r\nb\r\n", b"STORED\r\n"),
        (b"append {k} 9 0 1\r\nc\r\n", b"STORED\r\n"),
        (b"prepend {k} 3 0 1\r\na\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 7 3\r\nabc\r\nEND\r\n"),
    ]),
    ("append-missing-not-stored", [
        (b"append {k} 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
        (b"get {k}\r\n", b"END\r\n"),
    ]),
    ("prepend-missing-not-stored", [
        (b"prepend {k} 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
        (b"get {k}\r\n", b"END\r\n"),
    ]),
    ("flags-max-u32", [
        (b"set {k} 4294967295 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 4294967295 1\r\nx\r\nEND\r\n"),
    ]),
    # memcached 1.6.18 parses flags as a 64-bit number and keeps the low
    # 32 bits (README.md, "memcached quirks").
    ("flags-truncated-to-32-bits", [
        (b"set {k} 4294967296 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 1\r\nx\r\nEND\r\n"),
        (b"set {k} 18446744073709551615 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 4294967295 1\r\nx\r\nEND\r\n"),
    ]),
    ("leading-zeros-and-extra-spaces", [
        (b"set  {k}  00  0  01\r\nx\r\n", b"STORED\r\n"),
        (b"get  {k} \r\n", b"VALUE {k} 0 1\r\nx\r\nEND\r\n"),
    ]),
    ("delete", [
        (b"set {k} 0 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"delete {k}\r\n", b"DELETED\r\n"),
        (b"get {k}\r\n", b"END\r\n"),
        (b"delete {k}\r\n", b"NOT_FOUND\r\n"),
    ]),
    # The legacy "delete <key> 0" form is accepted; any other time is not.
    ("delete-legacy-zero-time", [
        (b"set {k} 0 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"delete {k} 0\r\n", b"DELETED\r\n"),
        (b"delete {k} 5\r\n",
         b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
        (b"delete {k} noreply x\r\n",
         b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
        (b"delete {k} 0 noreply x\r\n", b"ERROR\r\n"),
    ]),
    ("touch", [
        (b"touch {k} 100\r\n", b"NOT_FOUND\r\n"),
        (b"set {k} 0 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"touch {k} 100\r\n", b"TOUCHED\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 1\r\nx\r\nEND\r\n"),
    ]),
    ("gat-gats-miss", [
        (b"gat 100 {k}\r\n", b"END\r\n"),
        (b"gats 100 {k}\r\n", b"END\r\n"),
    ]),
    ("gat-returns-value-without-cas", [
        (b"set {k} 3 0 2\r\nhi\r\n", b"STORED\r\n"),
        (b"gat 100 {k}\r\n", b"VALUE {k} 3 2\r\nhi\r\nEND\r\n"),
    ]),
    ("cas-missing-not-found", [
        (b"cas {k} 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n"),
    ]),
    ("get-does-not-take-noreply", [
        (b"set {k} 0 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"get {k} noreply\r\n", b"VALUE {k} 0 1\r\nx\r\nEND\r\n"),
    ]),
]


@pytest.mark.parametrize("steps", [c[1] for c in STORAGE_CASES],
                         ids=[c[0] for c in STORAGE_CASES])
def test_storage_commands(conn, key, steps):
    run_script(conn, key, steps)


def test_get_many_keys_with_duplicates_and_misses(conn, key):
    a, b, miss = key + b"_a", key + b"_b", key + b"_miss"
    conn.call(b"set %s 1 0 1\r\nA\r\nset %s 2 0 2\r\nBB\r\n" % (a, b), b"STORED\r\nSTORED\r\n")
    conn.call(b"get %s %s %s %s %s\r\n" % (b, miss, a, b, a),
              b"VALUE %s 2 2\r\nBB\r\nVALUE %s 1 1\r\nA\r\nVALUE %s 2 2\r\nBB\r\n"
              b"VALUE %s 1 1\r\nA\r\nEND\r\n" % (b, a, b, a))


# Values are sent from the item above some size and copied below it, with
# the "\r\n" appended either way (items do not store it): sizes around
# that boundary, with zero and non-zero flags, in one multi-get and with
# flags changed by a later set.
@pytest.mark.parametrize("flags", [0, 4294967295])
def test_values_around_the_copy_boundary(conn, key, flags):
    sizes = list(range(1018, 1030)) + [4095, 70000]
    keys = [b"%s_%d" % (key, n) for n in sizes]
    values = [bytes((i * 7 + n) % 256 for i in range(n - 2)) + b"\r\n" for n in sizes]
    for k, v in zip(keys, values):
        conn.call(b"set %s %d 0 %d\r\n%s\r\n" % (k, flags, len(v), v), b"STORED\r\n")
    expected = b"".join(b"VALUE %s %d %d\r\n%s\r\n" % (k, flags, len(v), v)
                        for k, v in zip(keys, values))
    conn.call(b"get " + b" ".join(keys) + b"\r\n", expected + b"END\r\n", timeout=10)
    for k, v in zip(keys, values):
        conn.call(b"mg %s v f s\r\n" % k, b"VA %d f%d s%d\r\n%s\r\n" % (len(v), flags, len(v), v))
        conn.call(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v), b"STORED\r\n")
        conn.call(b"get %s\r\n" % k, b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, len(v), v))


def test_gets_and_gats_return_the_same_cas_unique(conn, key):
    conn.call(b"set %s 4 0 2\r\nhi\r\n" % key, b"STORED\r\n")
    unique = gets_unique(conn, key)
    conn.call(b"gats 100 %s %s\r\n" % (key, key),
              b"VALUE %s 4 2 %d\r\nhi\r\nVALUE %s 4 2 %d\r\nhi\r\nEND\r\n"
              % (key, unique, key, unique))


def test_cas_stored_exists_not_found_and_counters(conn, key):
    before = conn.stats_dict()
    conn.call(b"set %s 0 0 1\r\na\r\n" % key, b"STORED\r\n")
    unique = gets_unique(conn, key)
    conn.call(b"cas %s 8 0 1 %d\r\nb\r\n" % (key, unique), b"STORED\r\n")
    conn.call(b"get %s\r\n" % key, b"VALUE %s 8 1\r\nb\r\nEND\r\n" % key)
    conn.call(b"cas %s 0 0 1 %d\r\nc\r\n" % (key, unique), b"EXISTS\r\n")
    conn.call(b"get %s\r\n" % key, b"VALUE %s 8 1\r\nb\r\nEND\r\n" % key)
    conn.call(b"delete %s\r\n" % key, b"DELETED\r\n")
    conn.call(b"cas %s 0 0 1 %d\r\nd\r\n" % (key, unique), b"NOT_FOUND\r\n")
    after = conn.stats_dict()
    for name in ("cas_hits", "cas_badval", "cas_misses"):
        assert int(after[name]) - int(before[name]) == 1, name


# Which commands give an item a new CAS unique (probed on memcached 1.6.18:
# every modification does; touch, gat and gats do not).
CAS_CHANGES = [
    (b"set {k} 0 0 1\r\n5\r\n", b"STORED\r\n", True),
    (b"replace {k} 0 0 1\r\n5\r\n", b"STORED\r\n", True),
    (b"append {k} 0 0 1\r\n5\r\n", b"STORED\r\n", True),
    (b"prepend {k} 0 0 1\r\n5\r\n", b"STORED\r\n", True),
    (b"incr {k} 1\r\n", b"2\r\n", True),
    (b"decr {k} 1\r\n", b"0\r\n", True),
    (b"touch {k} 1000\r\n", b"TOUCHED\r\n", False),
    (b"gat 1000 {k}\r\n", b"VALUE {k} 0 1\r\n1\r\nEND\r\n", False),
    (b"gats 1000 {k}\r\n", None, False),
]


@pytest.mark.parametrize("request_, reply, changes", CAS_CHANGES,
                         ids=[c[0].split()[0].decode() for c in CAS_CHANGES])
def test_cas_unique_changes_on_modification(conn, key, request_, reply, changes):
    conn.call(b"set %s 0 0 1\r\n1\r\n" % key, b"STORED\r\n")
    before = gets_unique(conn, key)
    if reply is None:  # gats: the reply carries the (unchanged) unique
        reply = b"VALUE {k} 0 1 %d\r\n1\r\nEND\r\n" % before
    run_script(conn, key, [(request_, reply)])
    after = gets_unique(conn, key)
    assert (after != before) == changes, (before, after)


def test_cas_uniques_differ_between_items(conn, key):
    uniques = set()
    for i in range(5):
        k = key + b"_%d" % i
        conn.call(b"set %s 0 0 1\r\nx\r\n" % k, b"STORED\r\n")
        uniques.add(gets_unique(conn, k))
    assert len(uniques) == 5


# noreply: nothing is sent back, the next command's reply comes next, and
# the command still takes effect.
NOREPLY_CASES = [
    ("set", [], b"set {k} 1 0 1 noreply\r\na\r\n", b"VALUE {k} 1 1\r\na\r\nEND\r\n"),
    ("add", [], b"add {k} 1 0 1 noreply\r\na\r\n", b"VALUE {k} 1 1\r\na\r\nEND\r\n"),
    ("replace", [b"set {k} 0 0 1\r\na\r\n"], b"replace {k} 2 0 1 noreply\r\nb\r\n",
     b"VALUE {k} 2 1\r\nb\r\nEND\r\n"),
    ("append", [b"set {k} 0 0 1\r\na\r\n"], b"append {k} 0 0 1 noreply\r\nb\r\n",
     b"VALUE {k} 0 2\r\nab\r\nEND\r\n"),
    ("prepend", [b"set {k} 0 0 1\r\na\r\n"], b"prepend {k} 0 0 1 noreply\r\nb\r\n",
     b"VALUE {k} 0 2\r\nba\r\nEND\r\n"),
    ("incr", [b"set {k} 0 0 1\r\n5\r\n"], b"incr {k} 3 noreply\r\n",
     b"VALUE {k} 0 1\r\n8\r\nEND\r\n"),
    ("decr", [b"set {k} 0 0 1\r\n5\r\n"], b"decr {k} 3 noreply\r\n",
     b"VALUE {k} 0 1\r\n2\r\nEND\r\n"),
    ("delete", [b"set {k} 0 0 1\r\na\r\n"], b"delete {k} noreply\r\n", b"END\r\n"),
    ("touch", [b"set {k} 0 0 1\r\na\r\n"], b"touch {k} 100 noreply\r\n",
     b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
    ("flush_all", [b"set {k} 0 0 1\r\na\r\n"], b"flush_all noreply\r\n", b"END\r\n"),
    ("flush_all-zero", [b"set {k} 0 0 1\r\na\r\n"], b"flush_all 0 noreply\r\n", b"END\r\n"),
    ("verbosity", [b"set {k} 0 0 1\r\na\r\n"], b"verbosity 0 noreply\r\n",
     b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
    # Failures are silent too.
    ("add-not-stored", [b"set {k} 0 0 1\r\na\r\n"], b"add {k} 0 0 1 noreply\r\nb\r\n",
     b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
    ("replace-not-stored", [], b"replace {k} 0 0 1 noreply\r\nb\r\n", b"END\r\n"),
    ("append-not-stored", [], b"append {k} 0 0 1 noreply\r\nb\r\n", b"END\r\n"),
    ("cas-exists", [b"set {k} 0 0 1\r\na\r\n"], b"cas {k} 0 0 1 1 noreply\r\nb\r\n",
     b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
    ("cas-not-found", [], b"cas {k} 0 0 1 1 noreply\r\nb\r\n", b"END\r\n"),
    ("incr-not-found", [], b"incr {k} 1 noreply\r\n", b"END\r\n"),
    ("decr-not-found", [], b"decr {k} 1 noreply\r\n", b"END\r\n"),
    ("delete-not-found", [], b"delete {k} noreply\r\n", b"END\r\n"),
    ("touch-not-found", [], b"touch {k} 1 noreply\r\n", b"END\r\n"),
    ("incr-non-numeric", [b"set {k} 0 0 1\r\na\r\n"], b"incr {k} 1 noreply\r\n",
     b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
    ("incr-bad-delta", [b"set {k} 0 0 1\r\n1\r\n"], b"incr {k} x noreply\r\n",
     b"VALUE {k} 0 1\r\n1\r\nEND\r\n"),
    ("verbosity-bad-level", [], b"verbosity x noreply\r\n", b"END\r\n"),
    ("flush_all-bad-delay", [b"set {k} 0 0 1\r\na\r\n"], b"flush_all x noreply\r\n",
     b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
    # A bad number is silent, but the data line is then read as a command.
    ("set-bad-flags", [], b"set {k} x 0 1 noreply\r\nz\r\n", b"ERROR\r\nEND\r\n"),
    # A bad data chunk is silent; the 2 bytes read in place of "\r\n" are
    # dropped and the rest of the line ("\r\n") is an empty command.
    ("set-bad-data-chunk", [], b"set {k} 0 0 1 noreply\r\nxyz\r\n", b"ERROR\r\nEND\r\n"),
]


@pytest.mark.parametrize("setup, request_, followup_reply",
                         [c[1:] for c in NOREPLY_CASES], ids=[c[0] for c in NOREPLY_CASES])
def test_noreply(conn, key, setup, request_, followup_reply):
    for step in setup:
        conn.call(step.replace(b"{k}", key), b"STORED\r\n")
    conn.call(request_.replace(b"{k}", key) + b"get " + key + b"\r\n",
              followup_reply.replace(b"{k}", key))


def test_set_counts_in_stats(conn, key):
    before = conn.stats_dict()
    conn.call(b"set %s 0 0 1\r\na\r\nget %s %s_miss\r\ndelete %s\r\ndelete %s\r\n"
              b"touch %s 1\r\n" % (key, key, key, key, key, key),
              b"STORED\r\nVALUE %s 0 1\r\na\r\nEND\r\nDELETED\r\nNOT_FOUND\r\nNOT_FOUND\r\n"
              % key)
    after = conn.stats_dict()
    deltas = {name: int(after[name]) - int(before[name]) for name in
              ("cmd_set", "cmd_get", "get_hits", "get_misses", "delete_hits",
               "delete_misses", "cmd_touch", "touch_misses", "total_items")}
    assert deltas == {"cmd_set": 1, "cmd_get": 2, "get_hits": 1, "get_misses": 1,
                      "delete_hits": 1, "delete_misses": 1, "cmd_touch": 1,
                      "touch_misses": 1, "total_items": 1}


def test_curr_items_and_bytes_follow_the_data(conn, key):
    base_items = stats_value(conn, "curr_items")
    base_bytes = stats_value(conn, "bytes")
    for i in range(3):
        conn.call(b"set %s_%d 0 0 100\r\n%s\r\n" % (key, i, b"v" * 100), b"STORED\r\n")
    assert stats_value(conn, "curr_items") == base_items + 3
    grown = stats_value(conn, "bytes")
    assert grown >= base_bytes + 300
    for i in range(3):
        conn.call(b"delete %s_%d\r\n" % (key, i), b"DELETED\r\n")
    assert stats_value(conn, "curr_items") == base_items
    assert stats_value(conn, "bytes") == base_bytes


def test_gat_counts_as_touch_not_get(conn, key):
    """memcached counts gat/gats keys in cmd_touch/touch_hits/touch_misses
    and not in cmd_get/get_hits/get_misses."""
    conn.call(b"set %s 0 0 1\r\nx\r\n" % key, b"STORED\r\n")
    before = conn.stats_dict()
    conn.call(b"gat 100 %s %s_miss\r\n" % (key, key), b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key)
    after = conn.stats_dict()
    deltas = {name: int(after[name]) - int(before[name]) for name in
              ("cmd_touch", "touch_hits", "touch_misses", "cmd_get", "get_hits", "get_misses")}
    assert deltas == {"cmd_touch": 2, "touch_hits": 1, "touch_misses": 1,
                      "cmd_get": 0, "get_hits": 0, "get_misses": 0}
