"""Unit tests of the history checker (history.py) that the fault tests use.
Hand-built histories with explicit times, plus the recorder driven by
threads against an in-memory store. No server, no processes, no fixtures
from conftest.py; the whole file runs in well under a second."""

import random
import socket
import sys
import threading
import time

import pytest

from history import (FAIL, INFO, OK, TOMBSTONE, History, check, format_summary, outcome_of,
                     summarize)

MS = 1_000_000  # hand-built times are in ns; steps of a millisecond read well


def hist():
    return History(run_id="t")


def w(h, client, value, start, end, outcome=OK, key="k", kind="set"):
    return h.add(client, kind, key, value, start * MS, end * MS, outcome)


def d(h, client, start, end, outcome=OK, key="k"):
    return h.add(client, "delete", key, None, start * MS, end * MS, outcome)


def r(h, client, value, start, end, key="k", final=False, outcome=OK):
    return h.add(client, "get", key, value, start * MS, end * MS, outcome, final=final)


def final(h, value, at=100, key="k"):
    return r(h, "final", value, at, at + 1, key=key, final=True)


def kinds(result):
    return sorted(v.kind for v in result.violations)


# -- the basic rules --------------------------------------------------------

def test_clean_history_passes():
    h = hist()
    w(h, "c1", "a", 0, 2)
    r(h, "c2", None, 1, 2)          # concurrent with the first write: old state
    r(h, "c2", "a", 3, 4)
    w(h, "c1", "b", 5, 7)
    r(h, "c2", "b", 6, 8)           # concurrent with its write: may see it
    d(h, "c1", 9, 10)
    r(h, "c2", None, 11, 12)
    w(h, "c1", "c", 13, 14)
    w(h, "c1", "x", 0, 1, key="other")
    final(h, "c")
    final(h, "x", key="other")
    res = check(h, linearizable=True, monotonic_reads_per_client=True)
    assert res.ok, res.report()
    assert "no violation" in res.report()
    res.assert_ok()


def test_phantom_read_detected():
    h = hist()
    w(h, "c1", "a", 0, 1)
    bad = r(h, "c2", "never-written", 2, 3)
    final(h, "a")
    res = check(h)
    assert kinds(res) == ["phantom"]
    v = res.violations[0]
    assert v.op is bad and v.key == b"k"
    assert "never-written" in res.report() and "no operation wrote" in res.report()
    with pytest.raises(AssertionError, match="phantom"):
        res.assert_ok()


def test_phantom_names_the_key_the_value_was_written_on():
    h = hist()
    w(h, "c1", "a", 0, 1, key="k1")
    r(h, "c2", "a", 2, 3, key="k2")
    final(h, "a", key="k1")
    res = check(h)
    assert kinds(res) == ["phantom"]
    assert "written on key b'k1'" in res.report()


def test_failed_write_value_read_is_a_violation():
    h = hist()
    w(h, "c1", "a", 0, 1)
    failed = w(h, "c1", "b", 2, 3, outcome=FAIL)
    r(h, "c2", "b", 4, 5)
    final(h, "a")
    res = check(h)
    assert kinds(res) == ["failed-write-read"]
    assert res.violations[0].related == [("write", failed)]


def test_failed_write_value_as_final_value_is_a_violation():
    h = hist()
    w(h, "c1", "a", 0, 1, outcome=FAIL)
    final(h, "a")
    assert kinds(check(h)) == ["failed-write-read"]


def test_read_from_the_future_detected():
    h = hist()
    r(h, "c2", "a", 0, 1)
    w(h, "c1", "a", 2, 3)
    final(h, "a")
    assert kinds(check(h)) == ["future-read"]


def test_read_may_see_a_write_still_in_flight():
    h = hist()
    w(h, "c1", "a", 0, 10)
    r(h, "c2", "a", 1, 2)
    final(h, "a")
    assert check(h, linearizable=True).ok


# -- final reads: acknowledged writes are not lost --------------------------

def test_lost_acknowledged_write_detected():
    h = hist()
    old = w(h, "c1", "old", 0, 1)
    new = w(h, "c2", "new", 2, 3)
    fin = final(h, "old")
    res = check(h)
    assert kinds(res) == ["lost-write"]
    v = res.violations[0]
    assert v.op is fin
    assert v.related == [("value from", old), ("acked write", new)]
    text = res.report()
    # The report names the key, the value, both writes with times and outcomes.
    for part in ("key b'k'", "b'old'", "b'new'", "#%d" % old.id, "#%d is lost" % new.id,
                 "0.000000 -> 0.001000", "0.002000 -> 0.003000", "] ok"):
        assert part in text, (part, text)


@pytest.mark.parametrize("final_value", ["before", "indeterminate"])
def test_indeterminate_write_may_or_may_not_be_final(final_value):
    h = hist()
    w(h, "c1", "before", 0, 1)
    w(h, "c1", "indeterminate", 2, 3, outcome=INFO)
    final(h, final_value)
    res = check(h)
    assert res.ok, res.report()


def test_indeterminate_write_can_surface_after_a_later_acknowledged_one():
    # A timed-out write may be applied late (a hint replayed): it has no end.
    h = hist()
    w(h, "c1", "late", 0, 1, outcome=INFO)
    w(h, "c2", "acked", 5, 6)
    final(h, "late")
    assert check(h).ok


def test_indeterminate_write_does_not_supersede():
    h = hist()
    w(h, "c1", "a", 0, 1)
    w(h, "c1", "b", 2, 3, outcome=INFO)
    w(h, "c1", "c", 4, 5, outcome=FAIL)
    final(h, "a")
    assert check(h).ok


@pytest.mark.parametrize("final_value", ["a", "b"])
def test_pending_write_counts_as_indeterminate(final_value):
    h = hist()
    w(h, "c1", "a", 0, 1)
    h.add("c2", "set", "k", "b", start=2 * MS)  # never completed (a client thread died)
    final(h, final_value)
    assert check(h).ok
    assert summarize(h)["pending"] == 1


@pytest.mark.parametrize("final_value", ["x", "y"])
def test_concurrent_writes_either_value_may_win(final_value):
    h = hist()
    w(h, "c1", "x", 0, 10)
    w(h, "c2", "y", 5, 15)
    final(h, final_value)
    assert check(h).ok


def test_value_older_than_a_concurrent_pair_is_lost():
    h = hist()
    w(h, "c1", "old", 0, 1)
    w(h, "c1", "x", 2, 10)
    w(h, "c2", "y", 5, 15)
    final(h, "old")
    assert kinds(check(h)) == ["lost-write"]


# -- deletes and not found ----------------------------------------------------

def test_delete_then_final_not_found_passes():
    h = hist()
    w(h, "c1", "a", 0, 1)
    d(h, "c1", 2, 3)
    final(h, None)
    assert check(h).ok


def test_final_not_found_without_any_delete_fails():
    h = hist()
    w(h, "c1", "a", 0, 1)
    final(h, None)
    res = check(h)
    assert kinds(res) == ["lost-write"]
    assert "no delete on this key can explain the miss" in res.report()


def test_final_not_found_after_only_unacknowledged_writes_passes():
    h = hist()
    w(h, "c1", "a", 0, 1, outcome=INFO)
    w(h, "c1", "b", 2, 3, outcome=FAIL)
    final(h, None)
    assert check(h).ok


def test_set_after_delete_then_final_not_found_fails():
    h = hist()
    d(h, "c1", 0, 1)
    w(h, "c1", "a", 2, 3)
    final(h, None)
    res = check(h)
    assert kinds(res) == ["lost-write"]
    assert "latest delete" in res.report()


@pytest.mark.parametrize("final_value", [None, "a"])
def test_indeterminate_delete_explains_either_state(final_value):
    h = hist()
    w(h, "c1", "a", 0, 1)
    d(h, "c1", 2, 3, outcome=INFO)
    final(h, final_value)
    assert check(h).ok


def test_failed_delete_cannot_explain_not_found():
    h = hist()
    w(h, "c1", "a", 0, 1)
    d(h, "c1", 2, 3, outcome=FAIL)
    final(h, None)
    assert kinds(check(h)) == ["lost-write"]


def test_value_older_than_an_acknowledged_delete_is_lost():
    h = hist()
    w(h, "c1", "a", 0, 1)
    d(h, "c1", 2, 3)
    final(h, "a")
    assert kinds(check(h)) == ["lost-write"]


def test_cas_is_a_write_and_a_failed_cas_has_no_effect():
    h = hist()
    w(h, "c1", "a", 0, 1)
    w(h, "c2", "b", 2, 3, kind="cas")
    w(h, "c3", "c", 4, 5, kind="cas", outcome=FAIL)
    final(h, "b")
    assert check(h).ok
    h2 = hist()
    w(h2, "c1", "a", 0, 1)
    w(h2, "c2", "b", 2, 3, kind="cas")
    final(h2, "a")
    assert kinds(check(h2)) == ["lost-write"]
    h3 = hist()
    w(h3, "c1", "a", 0, 1)
    w(h3, "c3", "c", 4, 5, kind="cas", outcome=FAIL)
    final(h3, "c")
    assert kinds(check(h3)) == ["failed-write-read"]


# -- consistency options ------------------------------------------------------

def stale_read_history():
    h = hist()
    w(h, "c1", "a", 0, 1)
    w(h, "c1", "b", 2, 3)
    r(h, "c2", "a", 4, 5)           # stale: b was acknowledged before it began
    final(h, "b")
    return h


def test_stale_reads_allowed_by_default():
    assert check(stale_read_history()).ok
    assert check(stale_read_history(), monotonic_reads_per_client=True).ok


def test_stale_reads_flagged_when_linearizable():
    res = check(stale_read_history(), linearizable=True)
    assert kinds(res) == ["stale-read"]
    assert "not visible" in res.report()


def nonmonotonic_history():
    h = hist()
    w(h, "c1", "a", 0, 1)
    w(h, "c1", "b", 2, 3)
    r(h, "c2", "b", 4, 5)
    r(h, "c2", "a", 6, 7)           # c2 goes back in time
    r(h, "c3", "a", 8, 9)           # another client reads the old value later
    final(h, "b")
    return h


def test_monotonic_reads_per_client():
    assert check(nonmonotonic_history()).ok
    res = check(nonmonotonic_history(), monotonic_reads_per_client=True)
    assert kinds(res) == ["nonmonotonic-read"]
    assert res.violations[0].op.client == "c2"
    assert "client c2 got b'a' after it read b'b'" in res.report()


def test_linearizable_flags_read_inversions_across_clients():
    res = check(nonmonotonic_history(), linearizable=True)
    assert kinds(res) == ["nonmonotonic-read", "read-inversion",
                          "stale-read", "stale-read"]


def test_monotonic_reads_allow_concurrent_writes_in_any_order():
    h = hist()
    w(h, "c1", "x", 0, 10)
    w(h, "c2", "y", 0, 10)
    for i, value in enumerate(["x", "y", "x", "y"]):
        r(h, "c3", value, 11 + 2 * i, 12 + 2 * i)
    final(h, "y")
    assert check(h, monotonic_reads_per_client=True, linearizable=True).ok


def test_monotonic_reads_and_misses():
    h = hist()
    w(h, "c1", "a", 0, 1)
    r(h, "c2", "a", 2, 3)
    r(h, "c2", None, 4, 5)          # no delete: the key cannot become absent
    final(h, "a")
    assert kinds(check(h, monotonic_reads_per_client=True)) == ["nonmonotonic-read"]
    h = hist()
    w(h, "c1", "a", 0, 1)
    r(h, "c2", "a", 2, 3)
    d(h, "c1", 4, 5)
    r(h, "c2", None, 6, 7)
    final(h, None)
    assert check(h, monotonic_reads_per_client=True).ok


@pytest.mark.parametrize("skew_ms, ok", [(5, True), (1, False)])
def test_clock_skew_tolerance(skew_ms, ok):
    h = hist()
    w(h, "c1", "a", 0, 1)
    w(h, "c2", "b", 3, 4)           # began 2 ms after a ended
    final(h, "a")
    res = check(h, clock_skew_ns=skew_ms * MS)
    assert res.ok is ok, res.report()
    if not ok:
        assert "clock skew tolerance 1.000 ms" in res.report()


# -- completeness and usage errors --------------------------------------------

def test_missing_final_read_reported():
    h = hist()
    w(h, "c1", "a", 0, 1)
    w(h, "c1", "b", 0, 1, key="read-finally")
    final(h, "b", key="read-finally")
    res = check(h)
    assert kinds(res) == ["no-final-read"]
    assert res.violations[0].key == b"k"
    assert check(h, require_final=False).ok


def test_failed_final_read_does_not_count():
    h = hist()
    w(h, "c1", "a", 0, 1)
    r(h, "final", None, 10, 11, final=True, outcome=INFO)
    assert kinds(check(h)) == ["no-final-read"]


def test_final_read_before_quiescence_is_rejected():
    h = hist()
    w(h, "c1", "a", 0, 10)
    final(h, "a", at=5)
    with pytest.raises(ValueError, match="final read"):
        check(h)


def test_value_written_twice_is_rejected():
    h = hist()
    w(h, "c1", "a", 0, 1)
    w(h, "c2", "a", 2, 3)
    final(h, "a")
    with pytest.raises(ValueError, match="written twice"):
        check(h)


def test_keys_are_checked_independently():
    h = hist()
    w(h, "c1", "a", 0, 1, key="k1")
    w(h, "c1", "b", 2, 3, key="k1")
    w(h, "c1", "a2", 0, 1, key="k2")
    final(h, "a", key="k1")
    final(h, "a2", key="k2")
    res = check(h)
    assert [(v.kind, v.key) for v in res.violations] == [("lost-write", b"k1")]


def test_report_is_bounded():
    h = hist()
    for i in range(30):
        r(h, "c1", "p%d" % i, i, i + 1)
    res = check(h, require_final=False)
    assert len(res.violations) == 30
    text = res.report(limit=5)
    assert "30 violations (phantom 30)" in text and "... and 25 more" in text


# -- outcomes of memcached replies --------------------------------------------

@pytest.mark.parametrize("kind, reply, outcome", [
    ("set", b"STORED\r\n", OK),
    ("set", b"NOT_STORED\r\n", FAIL),
    ("set", b"CLIENT_ERROR bad data chunk\r\n", FAIL),
    ("set", b"ERROR\r\n", FAIL),
    ("set", b"SERVER_ERROR timeout waiting for 2 of 3 replicas\r\n", INFO),
    ("set", b"SERVER_ERROR out of memory storing object\r\n", INFO),
    ("set", b"", INFO),
    ("set", b"HD\r\n", OK),
    ("set", b"NS\r\n", FAIL),
    ("cas", b"STORED\r\n", OK),
    ("cas", b"EXISTS\r\n", FAIL),
    ("cas", b"NOT_FOUND\r\n", FAIL),
    ("cas", b"EX\r\n", FAIL),
    ("delete", b"DELETED\r\n", OK),
    ("delete", b"NOT_FOUND\r\n", OK),
    ("delete", "NF", OK),
    ("delete", b"SERVER_ERROR timeout\r\n", INFO),
    ("get", b"END\r\n", OK),
    ("get", b"VALUE k 0 1\r\n", OK),
    ("get", b"EN\r\n", OK),
    ("get", b"", FAIL),
    ("get", b"VAL", FAIL),
    ("set", b"STO", INFO),
    ("get", b"SERVER_ERROR timeout\r\n", FAIL),
    ("set", socket.timeout("timed out"), INFO),
    ("set", ConnectionResetError(), INFO),
    ("delete", BrokenPipeError(), INFO),
    ("set", ConnectionRefusedError(), FAIL),
    ("get", socket.timeout("timed out"), FAIL),
])
def test_outcome_of_memcached_replies(kind, reply, outcome):
    assert outcome_of(kind, reply) == outcome


# -- the recorder -------------------------------------------------------------

def test_new_value_is_unique_and_padded():
    h = History(run_id="r1")
    assert h.new_value("c1") == b"r1-c1-1"
    assert h.new_value("c1") == b"r1-c1-2"
    assert h.new_value("c2") == b"r1-c2-1"
    padded = h.new_value("c1", size=32)
    assert len(padded) == 32 and padded.startswith(b"r1-c1-3.")
    assert len(History().run_id) == 6  # random per History


def test_record_context_manager():
    h = History(run_id="r")
    with h.record("c1", "set", "k") as call:
        assert call.value == b"r-c1-1"
        call.reply(b"STORED\r\n")
    with h.record("c1", "get", "k") as call:
        call.ok(b"r-c1-1")
    with h.record("c1", "set", "k") as call:
        raise socket.timeout("timed out")           # swallowed, indeterminate
    with h.record("c1", "set", "k") as call:
        raise ConnectionRefusedError()              # never sent: definite failure
    with h.record("c1", "delete", "k") as call:
        call.reply(b"SERVER_ERROR timeout\r\n")
    with h.record("c1", "set", "k") as call:
        pass                                        # not completed: indeterminate
    with pytest.raises(KeyError):
        with h.record("c1", "set", "k") as call:
            raise KeyError("a bug in the test")     # recorded, then propagated
    with pytest.raises(TypeError):
        with h.record("c1", "get", "k") as call:
            call.ok()                               # a read must say what it read
    with h.record("final", "get", "k", final=True) as call:
        call.ok(None)
    ops = h.ops()
    assert [(op.kind, op.outcome) for op in ops] == [
        ("set", OK), ("get", OK), ("set", INFO), ("set", FAIL), ("delete", INFO),
        ("set", INFO), ("set", INFO), ("get", INFO), ("get", OK)]
    assert ops[2].note == "TimeoutError('timed out')"
    assert ops[4].note == "SERVER_ERROR timeout" and ops[4].value is TOMBSTONE
    assert ops[5].note == "not completed by the test"
    assert ops[-1].final and ops[-1].value is TOMBSTONE
    assert all(op.start <= op.end for op in ops)
    with pytest.raises(RuntimeError, match="completed twice"):
        h.complete(ops[0], OK)
    res = h.check()
    assert res.ok, res.report()   # the delete may have happened


class FakeStore:
    """An in-memory memcached stand-in; lose_every=N drops every Nth
    acknowledged set (a store that loses acknowledged writes)."""

    def __init__(self, lose_every=0):
        self.lock = threading.Lock()
        self.data = {}
        self.sets = 0
        self.lose_every = lose_every

    def set(self, key, value):
        with self.lock:
            self.sets += 1
            if not (self.lose_every and self.sets % self.lose_every == 0):
                self.data[key] = value
            return b"STORED\r\n"

    def delete(self, key):
        with self.lock:
            return b"DELETED\r\n" if self.data.pop(key, None) is not None else b"NOT_FOUND\r\n"

    def get(self, key):
        with self.lock:
            return self.data.get(key)


def run_clients(h, store, clients=8, ops_per_client=500, keys=(b"k0", b"k1", b"k2")):
    start = threading.Barrier(clients, timeout=10)

    def client(name, seed):
        rnd = random.Random(seed)
        start.wait()
        for _ in range(ops_per_client):
            key = rnd.choice(keys)
            kind = rnd.choice(("set", "set", "get", "get", "delete"))
            with h.record(name, kind, key) as call:
                if kind == "set":
                    call.reply(store.set(key, call.value))
                elif kind == "delete":
                    call.reply(store.delete(key))
                else:
                    call.ok(store.get(key))

    threads = [threading.Thread(target=client, args=("c%d" % i, i), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"
    h.final_reads(store.get)


def test_recorder_is_thread_safe():
    h = History()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that races would show
    try:
        run_clients(h, FakeStore())
    finally:
        sys.setswitchinterval(old)
    ops = h.ops()
    assert len(ops) == 8 * 500 + 3
    assert len({op.id for op in ops}) == len(ops)
    assert [op.id for op in ops] == sorted(op.id for op in ops)
    assert all(a.start <= b.start for a, b in zip(ops, ops[1:]))  # ids follow invocation
    assert all(op.end is not None and op.start <= op.end for op in ops)
    values = [op.value for op in ops if op.kind == "set"]
    assert len(set(values)) == len(values)
    for i in range(8):  # each client's values are numbered 1, 2, 3, ... in order
        seq = [int(op.value.rsplit(b"-", 1)[1]) for op in ops
               if op.kind == "set" and op.client == "c%d" % i]
        assert seq == list(range(1, len(seq) + 1))
    res = h.check(linearizable=True, monotonic_reads_per_client=True)
    assert res.ok, res.report()
    s = summarize(h)
    assert s["ops"] == len(ops) and s["keys"] == 3 and s["final_reads"] == 3
    assert s["pending"] == 0 and s["ops_per_s"] > 0


def test_recorder_and_checker_catch_a_store_that_loses_writes():
    h = History()
    store = FakeStore(lose_every=3)
    for i in range(4):
        with h.record("c1", "set", "k") as call:
            call.reply(store.set(b"k", call.value))
    h.final_reads(store.get)   # the 3rd set was lost, the 4th kept: fine
    assert h.check().ok
    h = History()
    store = FakeStore(lose_every=3)
    for i in range(3):
        with h.record("c1", "set", "k") as call:
            call.reply(store.set(b"k", call.value))
    h.final_reads(store.get)   # the last acknowledged set is lost
    res = h.check()
    assert kinds(res) == ["lost-write"]
    assert "#3 is lost" in res.report()


def test_summary_counts_outcomes():
    h = hist()
    w(h, "c1", "a", 0, 1000)
    w(h, "c1", "b", 1000, 1500, outcome=INFO)
    d(h, "c1", 1500, 1600, outcome=FAIL)
    r(h, "c2", "a", 1600, 2000)
    final(h, "a", at=2000)
    s = summarize(h)
    assert s["by_kind"]["set"] == {OK: 1, FAIL: 0, INFO: 1, "pending": 0}
    assert s["by_kind"]["delete"][FAIL] == 1
    assert s["by_kind"]["get"][OK] == 2
    assert s["duration_s"] == pytest.approx(2.001)
    assert s["ops_per_s"] == pytest.approx(5 / 2.001)
    line = format_summary(s)
    assert line.startswith("5 ops on 1 keys in 2.00 s (2 ops/s): set ok 1 fail 0 info 1;")
    assert "1 final reads; 0 pending" in line
    assert h.summary() == line
