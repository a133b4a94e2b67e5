"""version, verbosity, quit, line endings, and the replies to malformed
commands (unknown verbs, wrong arity, bad numbers, bad data blocks)."""

import pytest

from helpers import (IS_MEMCACHED, assert_healthy, expected_version_line, parse_stats,
                     run_script, strata_semver)


def ids_of(cases):
    return [c[0] for c in cases]


def test_version(conn):
    reply = expected_version_line()
    assert reply.startswith(b"VERSION 1.6.")
    conn.call(b"version\r\n", reply)
    conn.call(b"version ignored arguments\r\n", reply)
    conn.call(b"version\n", reply)


def test_stats_version_matches_version_command(conn):
    version = parse_stats(conn.stats())["version"]
    assert b"VERSION " + version.encode() + b"\r\n" == expected_version_line()
    assert version == "1.6.18"


def test_strata_version_has_its_own_stat(conn):
    stats = parse_stats(conn.stats())
    if IS_MEMCACHED:
        assert "strata_version" not in stats
    else:
        assert stats["strata_version"] == strata_semver()


def test_verbosity(conn):
    run_script(conn, b"", [
        (b"verbosity 1\r\n", b"OK\r\n"),
        (b"verbosity 0\r\n", b"OK\r\n"),
        (b"verbosity 1 2\r\n", b"OK\r\n"),           # a 2nd argument is ignored
        (b"verbosity\r\n", b"ERROR\r\n"),
        (b"verbosity 1 2 3\r\n", b"ERROR\r\n"),
        (b"verbosity abc\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"verbosity noreply\r\nverbosity 0\r\n", b"OK\r\n"),  # silent failure
    ])


@pytest.mark.parametrize("request_, replies", [
    (b"quit\r\n", b""),
    (b"quit now\r\n", b""),
    # Replies to commands before quit are sent; what follows quit is ignored.
    (b"set quit_k 0 0 1\r\nx\r\nget quit_k\r\nquit\r\nget quit_k\r\n",
     b"STORED\r\nVALUE quit_k 0 1\r\nx\r\nEND\r\n"),
], ids=["quit", "quit-with-argument", "quit-in-pipeline"])
def test_quit_closes_connection(server, request_, replies):
    with server.connect() as c:
        c.send(request_)
        data, how = c.read_to_eof()
        assert (data, how) == (replies, "eof")


LINE_ENDING_CASES = [
    ("bare-lf-commands", [
        (b"set {k} 0 0 1\nx\r\n", b"STORED\r\n"),
        (b"get {k}\n", b"VALUE {k} 0 1\r\nx\r\nEND\r\n"),
        (b"append {k} 0 0 1\ny\r\n", b"STORED\r\n"),
        (b"get {k}\n", b"VALUE {k} 0 2\r\nxy\r\nEND\r\n"),
    ]),
    ("bare-lf-arith-delete", [
        (b"set {k} 0 0 1\r\n1\r\n", b"STORED\r\n"),
        (b"incr {k} 1\n", b"2\r\n"),
        (b"decr {k} 1\n", b"1\r\n"),
        (b"touch {k} 100\n", b"TOUCHED\r\n"),
        (b"delete {k}\n", b"DELETED\r\n"),
    ]),
    # The data block must end in \r\n exactly.
    ("data-ending-in-bare-lf", [
        (b"set {k} 0 0 1\r\nx\nget {k}\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    ]),
    # A \r right before the \n is stripped once; a second one stays.
    ("extra-cr", [
        (b"set {k} 0 0 1\r\r\nq\r\n", b"STORED\r\n"),
        (b"version\r\r\n", b"ERROR\r\n"),
    ]),
]


@pytest.mark.parametrize("steps", [c[1] for c in LINE_ENDING_CASES],
                         ids=ids_of(LINE_ENDING_CASES))
def test_line_endings(conn, key, steps):
    run_script(conn, key, steps)


ERROR_CASES = [
    ("unknown-command", b"foo\r\n", b"ERROR\r\n"),
    ("unknown-with-args", b"foo bar baz\r\n", b"ERROR\r\n"),
    ("empty-line", b"\r\n", b"ERROR\r\n"),
    ("uppercase-verb", b"GET {k}\r\n", b"ERROR\r\n"),
    ("mixed-case-verb", b"Get {k}\r\n", b"ERROR\r\n"),
    ("uppercase-set-then-data", b"SET {k} 0 0 1\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
    ("tab-separator", b"get\t{k}\r\n", b"ERROR\r\n"),
    ("get-no-key", b"get\r\n", b"ERROR\r\n"),
    ("get-trailing-space-no-key", b"get \r\n", b"ERROR\r\n"),
    ("gets-no-key", b"gets\r\n", b"ERROR\r\n"),
    ("gat-no-args", b"gat\r\n", b"ERROR\r\n"),
    ("set-4-tokens", b"set {k} 0 0\r\n", b"ERROR\r\n"),
    ("set-7-tokens", b"set {k} 0 0 1 noreply extra\r\n", b"ERROR\r\n"),
    ("set-8-tokens", b"set {k} 0 0 1 2 3 4\r\n", b"ERROR\r\n"),
    ("append-4-tokens", b"append {k} 0 0\r\n", b"ERROR\r\n"),
    ("cas-without-unique", b"cas {k} 0 0 1\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
    ("cas-8-tokens", b"cas {k} 0 0 1 1 noreply x\r\n", b"ERROR\r\n"),
    ("incr-no-delta", b"incr {k}\r\n", b"ERROR\r\n"),
    ("incr-too-many", b"incr {k} 1 2 3\r\n", b"ERROR\r\n"),
    ("delete-no-key", b"delete\r\n", b"ERROR\r\n"),
    ("delete-extra-arg", b"delete {k} 1 2\r\n",
     b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
    ("touch-no-args", b"touch\r\n", b"ERROR\r\n"),
    ("touch-no-exptime", b"touch {k}\r\n", b"ERROR\r\n"),
    ("touch-too-many", b"touch {k} 1 noreply x\r\n", b"ERROR\r\n"),
    ("stats-unknown-subcommand", b"stats foo\r\n", b"ERROR\r\n"),
    ("stats-version-is-not-a-subcommand", b"stats version\r\n", b"ERROR\r\n"),
    ("stats-noreply", b"stats noreply\r\n", b"ERROR\r\n"),
    ("stats-tab", b"stats\tsettings\r\n", b"ERROR\r\n"),
    # Quirks of memcached 1.6.18 that are accepted (README.md).
    ("touch-extra-arg-ignored", b"touch {k} 1 2\r\n", b"NOT_FOUND\r\n"),
    ("decr-extra-arg-ignored", b"decr {k} 1 2\r\n", b"NOT_FOUND\r\n"),
    ("gat-without-key-is-empty", b"gat 10\r\n", b"END\r\n"),
]


@pytest.mark.parametrize("request_, reply", [c[1:] for c in ERROR_CASES],
                         ids=ids_of(ERROR_CASES))
def test_malformed_commands(conn, bystander, server, key, request_, reply):
    run_script(conn, key, [(request_, reply)])
    conn.call(b"get %s\r\n" % key, b"END\r\n")
    assert_healthy(server, bystander)


BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"

# A storage command whose numbers do not parse gets CLIENT_ERROR and its data
# line is NOT swallowed: it is read as a command of its own ("x" -> ERROR).
BAD_NUMBER_CASES = [
    ("flags-not-a-number", b"set {k} x 0 1\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("flags-negative", b"set {k} -1 0 1\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("flags-hex", b"set {k} 0x1 0 1\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("flags-over-64-bits", b"set {k} 18446744073709551616 0 1\r\nx\r\n",
     BAD_FORMAT + b"ERROR\r\n"),
    ("exptime-not-a-number", b"set {k} 0 abc 1\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("exptime-fraction", b"set {k} 0 1.5 1\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("exptime-over-64-bits", b"set {k} 0 9999999999999999999999 1\r\nx\r\n",
     BAD_FORMAT + b"ERROR\r\n"),
    ("bytes-not-a-number", b"set {k} 0 0 x\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("bytes-negative", b"set {k} 0 0 -1\r\n", BAD_FORMAT),
    ("bytes-4294967295", b"set {k} 0 0 4294967295\r\n", BAD_FORMAT),
    ("bytes-int-max", b"set {k} 0 0 2147483647\r\n", BAD_FORMAT),
    ("cas-unique-not-a-number", b"cas {k} 0 0 1 abc\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("cas-unique-negative", b"cas {k} 0 0 1 -1\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("add-bad-flags", b"add {k} z 0 1\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("append-bad-bytes", b"append {k} 0 0 z\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n"),
]


@pytest.mark.parametrize("request_, reply", [c[1:] for c in BAD_NUMBER_CASES],
                         ids=ids_of(BAD_NUMBER_CASES))
def test_bad_numbers(conn, bystander, server, key, request_, reply):
    run_script(conn, key, [(request_, reply)])
    conn.call(b"get %s\r\n" % key, b"END\r\n")
    assert_healthy(server, bystander)


# Exactly <bytes>+2 bytes are read as the data block; if they do not end in
# \r\n the reply is CLIENT_ERROR bad data chunk, the old value is kept, and
# parsing resumes right after those bytes.
BAD_CHUNK_CASES = [
    ("one-extra-byte", b"set {k} 0 0 1\r\nxyz\r\n",
     b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    ("rest-read-as-command", b"set {k} 0 0 1\r\nxyzw\r\n",
     b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    ("short-data-then-blank-line", b"set {k} 0 0 3\r\nxy\r\n\r\n",
     b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    ("swallows-into-next-command", b"set {k} 0 0 1\r\nx\nversion\r\n",
     b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    ("noreply-still-silent", b"set {k} 0 0 1 noreply\r\nxyz\r\n", b"ERROR\r\n"),
    ("append", b"append {k} 0 0 1\r\nxyz\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    ("cas", b"cas {k} 0 0 1 1\r\nxyz\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
]


@pytest.mark.parametrize("request_, reply", [c[1:] for c in BAD_CHUNK_CASES],
                         ids=ids_of(BAD_CHUNK_CASES))
def test_bad_data_chunk_keeps_old_value(conn, bystander, server, key, request_, reply):
    run_script(conn, key, [
        (b"set {k} 3 0 2\r\nab\r\n", b"STORED\r\n"),
        (request_, reply),
        (b"get {k}\r\n", b"VALUE {k} 3 2\r\nab\r\nEND\r\n"),
    ])
    assert_healthy(server, bystander)
