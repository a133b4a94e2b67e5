"""Operation history recorder and checker for Strata's fault tests.

Client threads record every operation (invoke and completion time, kind,
key, value, outcome ok / fail / info) in a History while a fault is
injected; afterwards, once every client has stopped, the test reads every
key at the strongest consistency (final reads) and check() looks for the
anomalies that a replicated last-write-wins register must not show:
phantom values, values of definitely failed writes, reads from the future,
acknowledged writes lost from the final state, and optionally stale or
non-monotonic reads during the run. Pure Python: no sockets, no processes.
See docs/HISTORY_CHECKER.md for the model, the rules and the limits.
"""

import bisect
import contextlib
import math
import os
import threading
import time

__all__ = [
    "OK", "FAIL", "INFO", "TOMBSTONE", "Op", "Call", "History", "Violation",
    "CheckResult", "check", "outcome_of", "summarize", "format_summary",
]

# Outcomes. FAIL is a definite failure: the operation had no effect. INFO is
# indeterminate: it may or may not have taken effect, now or later.
OK = "ok"
FAIL = "fail"
INFO = "info"
OUTCOMES = (OK, FAIL, INFO)

WRITE_KINDS = ("set", "cas", "delete")
READ_KINDS = ("get",)
KINDS = WRITE_KINDS + READ_KINDS

INF = math.inf


class _Tombstone:
    """The value of an absent key: what a delete writes and a miss reads."""

    __slots__ = ()

    def __repr__(self):
        return "<absent>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


TOMBSTONE = _Tombstone()
_UNSET = object()


def _as_bytes(x, what):
    if isinstance(x, bytes):
        return x
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    if isinstance(x, str):
        return x.encode("utf-8")
    raise TypeError("%s must be bytes or str, not %s" % (what, type(x).__name__))


def _as_value(x):
    """None and TOMBSTONE mean absent; text and bytes compare as bytes."""
    if x is None or x is TOMBSTONE:
        return TOMBSTONE
    return _as_bytes(x, "value")


def _show(b, limit=48):
    if b is TOMBSTONE:
        return "<absent>"
    r = repr(b)
    return r if len(r) <= limit else r[:limit - 4] + "...'"


class Op:
    """One client operation. start/end are time.monotonic_ns() values (or
    any integer clock for hand-built histories); end is None while the
    operation is pending. value is the value written (TOMBSTONE for a
    delete) or, for a successful read, the value read (TOMBSTONE for a
    miss). Writes are set, cas (a write with a precondition, which the
    checker does not model) and delete; reads are get."""

    __slots__ = ("id", "client", "kind", "key", "value", "start", "end",
                 "outcome", "note", "final")

    def __init__(self, id, client, kind, key, value, start, final=False):
        self.id = id
        self.client = client
        self.kind = kind
        self.key = key
        self.value = value
        self.start = start
        self.end = None
        self.outcome = None
        self.note = None
        self.final = final

    @property
    def is_write(self):
        return self.kind in WRITE_KINDS

    @property
    def is_read(self):
        return self.kind in READ_KINDS

    @property
    def effective_end(self):
        """When the write's effect is known to be over: its completion if it
        was acknowledged; never (+inf) if it is indeterminate or pending,
        since it may still take effect (a hint replayed, a late replica)."""
        return self.end if self.outcome == OK else INF

    def describe(self, t0=0):
        def at(t):
            return "%.6f" % ((t - t0) / 1e9)
        if self.end is None:
            span = "%s s -> pending" % at(self.start)
        elif self.outcome == INFO:
            span = "%s -> %s s, gave up" % (at(self.start), at(self.end))
        else:
            span = "%s -> %s s" % (at(self.start), at(self.end))
        if self.is_read:
            what = "%s%s -> %s" % (self.kind, " (final)" if self.final else "",
                                   _show(self.value) if self.outcome == OK else "?")
        elif self.kind == "delete":
            what = "delete"
        else:
            what = "%s %s" % (self.kind, _show(self.value))
        s = "#%d %s %s [%s] %s" % (self.id, self.client, what, span,
                                     self.outcome or "pending")
        if self.note:
            s += " (%s)" % self.note
        return s

    def __repr__(self):
        return "<Op %s key=%s>" % (self.describe(), _show(self.key))


def outcome_of(kind, reply):
    """OK, FAIL or INFO for a memcached reply (a text or meta reply line,
    bytes or str) or for the exception raised instead of a reply.

    Definite (FAIL, no effect): CLIENT_ERROR, ERROR, NOT_STORED/NS,
    EXISTS/EX, NOT_FOUND/NF on a set or cas, and ConnectionRefusedError (the
    request was never sent). Indeterminate (INFO): SERVER_ERROR (on a
    replicated write it names a timeout and the write may have been
    applied), any other exception (timeout, reset, EOF), an empty or
    unknown reply. A delete answered NOT_FOUND/NF is OK: the key is absent
    afterwards either way. Reads: OK for VALUE/END (text) and VA/EN/HD
    (meta), anything else FAIL (a read has no effect, so FAIL and INFO mean
    the same for it; the caller still passes the value it parsed)."""
    if kind not in KINDS:
        raise ValueError("unknown kind %r" % (kind,))
    if isinstance(reply, BaseException):
        if isinstance(reply, ConnectionRefusedError):
            return FAIL
        return INFO if kind in WRITE_KINDS else FAIL
    line = _as_bytes(reply, "reply").strip()
    token = line.split(b" ", 1)[0] if line else b""
    if kind in READ_KINDS:
        return OK if token in (b"VALUE", b"END", b"VA", b"EN", b"HD") else FAIL
    if token in (b"STORED", b"HD", b"DELETED"):
        return OK
    if token in (b"NOT_FOUND", b"NF"):
        return OK if kind == "delete" else FAIL
    if token in (b"NOT_STORED", b"NS", b"EXISTS", b"EX", b"CLIENT_ERROR", b"ERROR"):
        return FAIL
    return INFO  # SERVER_ERROR, nothing, or something unexpected


class Call:
    """What History.record() yields: the pending operation and the ways to
    complete it (each records the completion time when called)."""

    def __init__(self, history, op):
        self.history = history
        self.op = op

    @property
    def value(self):
        """The value to write (bytes), generated unique if not given."""
        return None if self.op.value is TOMBSTONE else self.op.value

    @property
    def done(self):
        return self.op.end is not None

    def ok(self, value=_UNSET):
        """Acknowledged. A read passes the value it got (None: not found)."""
        self.history.complete(self.op, OK, value)

    def fail(self, note=None):
        """Definitely failed: no effect."""
        self.history.complete(self.op, FAIL, note=note)

    def info(self, note=None):
        """Indeterminate: may or may not have taken effect."""
        self.history.complete(self.op, INFO, note=note)

    def reply(self, reply, value=_UNSET):
        """Complete from a memcached reply line or exception (outcome_of)."""
        outcome = outcome_of(self.op.kind, reply)
        if isinstance(reply, BaseException):
            note = repr(reply)
        else:
            note = None if outcome == OK else _as_bytes(reply, "reply").strip()[:80].decode(
                "latin-1")
        if outcome == OK and self.op.is_read:
            self.history.complete(self.op, OK, value)
        else:
            self.history.complete(self.op, outcome, note=note)


class History:
    """Thread-safe recorder of client operations.

    run_id goes into every generated value so that values of another run
    (a persistent server, a reused key) can never pass for this run's.
    clock returns integer nanoseconds (time.monotonic_ns)."""

    def __init__(self, run_id=None, clock=time.monotonic_ns):
        self.run_id = run_id if run_id is not None else os.urandom(3).hex()
        self._clock = clock
        self._lock = threading.Lock()
        self._ops = []
        self._next_id = 1
        self._seq = {}

    # -- recording ------------------------------------------------------

    def new_value(self, client, size=0):
        """A value no other operation of this History writes:
        b"<run_id>-<client>-<n>", padded with b"." to size bytes if shorter."""
        with self._lock:
            n = self._seq.get(client, 0) + 1
            self._seq[client] = n
        v = ("%s-%s-%d" % (self.run_id, client, n)).encode("utf-8")
        return v + b"." * (size - len(v)) if size > len(v) else v

    def invoke(self, client, kind, key, value=None, final=False):
        """Record the start of an operation; returns its Op. For set and cas
        a unique value is generated when none is given (Op.value); delete
        writes TOMBSTONE; a read's value is filled in at completion. final
        marks a read made after the fault test quiesced."""
        if kind not in KINDS:
            raise ValueError("unknown kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        if final and kind not in READ_KINDS:
            raise ValueError("only reads can be final")
        key = _as_bytes(key, "key")
        if kind in ("set", "cas"):
            value = self.new_value(client) if value is None else _as_bytes(value, "value")
        elif kind == "delete":
            value = TOMBSTONE
        else:
            value = None
        with self._lock:
            op = Op(self._next_id, client, kind, key, value, self._clock(), final)
            self._next_id += 1
            self._ops.append(op)
        return op

    def complete(self, op, outcome, value=_UNSET, note=None):
        """Record the completion of op. A successful read passes the value it
        read (None or TOMBSTONE: not found)."""
        if outcome not in OUTCOMES:
            raise ValueError("unknown outcome %r" % (outcome,))
        if op.is_read and outcome == OK and value is _UNSET:
            raise TypeError("a successful read needs the value it read (None: not found)")
        now = self._clock()
        with self._lock:
            if op.end is not None:
                raise RuntimeError("operation completed twice: %s" % op.describe())
            if op.is_read and outcome == OK:
                op.value = _as_value(value)
            op.note = note if note is None else str(note)
            op.outcome = outcome
            op.end = now

    @contextlib.contextmanager
    def record(self, client, kind, key, value=None, final=False, suppress=(OSError,)):
        """with history.record(client, kind, key) as call: ... call.ok() /
        call.fail() / call.info() / call.reply(line).

        An exception of a suppress type (default OSError: timeouts, resets,
        refused connections) completes the operation as outcome_of() says
        and is swallowed; any other exception completes it as INFO and
        propagates; leaving the block without completing records INFO."""
        call = Call(self, self.invoke(client, kind, key, value, final))
        try:
            yield call
        except BaseException as e:
            if not call.done:
                outcome = outcome_of(kind, e) if isinstance(e, suppress) else INFO
                self.complete(call.op, outcome, note=repr(e))
            if isinstance(e, suppress):
                return
            raise
        if not call.done:
            self.complete(call.op, INFO, note="not completed by the test")

    def add(self, client, kind, key, value=None, start=0, end=None, outcome=OK,
            final=False, note=None):
        """Append an operation with explicit times (hand-built or replayed
        histories; unit tests). end=None: still pending (no outcome)."""
        if kind not in KINDS:
            raise ValueError("unknown kind %r" % (kind,))
        if end is None:
            outcome = None
        elif outcome not in OUTCOMES:
            raise ValueError("unknown outcome %r" % (outcome,))
        if kind == "delete":
            value = TOMBSTONE
        elif kind in READ_KINDS:
            value = _as_value(value) if outcome == OK else None
        else:
            if value is None:
                raise ValueError("%s needs a value" % kind)
            value = _as_bytes(value, "value")
        with self._lock:
            op = Op(self._next_id, client, kind, _as_bytes(key, "key"), value, start, final)
            self._next_id += 1
            op.end, op.outcome, op.note = end, outcome, note
            self._ops.append(op)
        return op

    def final_reads(self, get, keys=None, client="final"):
        """Final read of each key (default: every key written) with get(key)
        -> bytes or None (not found); get raises OSError on failure, which
        is recorded. Call only after every client thread has stopped."""
        for key in (self.written_keys() if keys is None else keys):
            with self.record(client, "get", key, final=True) as call:
                call.ok(get(key))

    # -- reading --------------------------------------------------------

    def ops(self):
        """A snapshot of the operations, in invocation order."""
        with self._lock:
            return list(self._ops)

    def written_keys(self):
        """Every key with at least one write, sorted."""
        return sorted({op.key for op in self.ops() if op.is_write})

    def check(self, **options):
        """check(self.ops(), **options)."""
        return check(self.ops(), **options)

    def summary(self):
        return format_summary(summarize(self.ops()))


class Violation:
    """One anomaly: kind, key, the offending operation (a read, or None for
    no-final-read), a message, and the operations involved as (role, Op)."""

    KINDS = ("phantom", "failed-write-read", "future-read", "lost-write",
             "stale-read", "nonmonotonic-read", "read-inversion", "no-final-read")

    def __init__(self, kind, key, op, message, related=()):
        self.kind = kind
        self.key = key
        self.op = op
        self.message = message
        self.related = list(related)

    def describe(self, t0=0):
        lines = ["%s on key %s: %s" % (self.kind, _show(self.key, 80), self.message)]
        if self.op is not None:
            lines.append("    %-14s %s" % ("read:", self.op.describe(t0)))
        for role, op in self.related:
            lines.append("    %-14s %s" % (role + ":", op.describe(t0)))
        return "\n".join(lines)

    def __repr__(self):
        return "<Violation %s key=%s>" % (self.kind, _show(self.key))


class CheckResult:
    """violations (list of Violation), ok, report(), assert_ok()."""

    def __init__(self, violations, ops, options):
        self.violations = violations
        self.options = options
        self.ops = len(ops)
        self.keys = len({op.key for op in ops})
        starts = [op.start for op in ops]
        self.t0 = min(starts) if starts else 0

    @property
    def ok(self):
        return not self.violations

    def kinds(self):
        """{violation kind: count}."""
        out = {}
        for v in self.violations:
            out[v.kind] = out.get(v.kind, 0) + 1
        return out

    def report(self, limit=20):
        opts = ", ".join("%s=%s" % kv for kv in sorted(self.options.items()))
        head = "history check (%s): %d ops on %d keys: " % (opts, self.ops, self.keys)
        if self.ok:
            return head + "no violation"
        kinds = ", ".join("%s %d" % kv for kv in sorted(self.kinds().items()))
        lines = [head + "%d violations (%s); times in s from the first invocation"
                 % (len(self.violations), kinds)]
        for v in self.violations[:limit]:
            lines.append(v.describe(self.t0))
        if len(self.violations) > limit:
            lines.append("... and %d more" % (len(self.violations) - limit))
        return "\n".join(lines)

    def assert_ok(self):
        if not self.ok:
            raise AssertionError(self.report())

    def __repr__(self):
        return "<CheckResult %s>" % (self.kinds() or "ok")


# -- the checker ---------------------------------------------------------

_INITIAL_ID = 0


def _initial(key):
    """The key's state before the history: absent, 'written' at -inf."""
    op = Op(_INITIAL_ID, "initial", "delete", key, TOMBSTONE, -INF)
    op.end, op.outcome, op.note = -INF, OK, "initial state"
    return op


def _ms(ns):
    return "%.3f ms" % (ns / 1e6)


def _validate(ops):
    for op in ops:
        if op.kind not in KINDS:
            raise ValueError("unknown kind in %r" % op)
        if op.outcome is not None and op.outcome not in OUTCOMES:
            raise ValueError("unknown outcome in %r" % op)
        if op.end is not None and op.end < op.start:
            raise ValueError("operation ends before it starts: %r" % op)
        if op.final and not op.is_read:
            raise ValueError("only reads can be final: %r" % op)
        if op.is_read and op.outcome == OK and op.value is None:
            raise ValueError("successful read without a value: %r" % op)


def check(ops, linearizable=False, monotonic_reads_per_client=False, clock_skew_ns=0,
          require_final=True):
    """Check a history (an iterable of Op, or a History); returns a
    CheckResult. Keys are checked independently.

    Always: no phantom, no definitely failed write read, no read from the
    future, no lost acknowledged write in the final reads, and (with
    require_final) a successful final read of every written key.
    monotonic_reads_per_client: a client never reads a value older than
    one it read before. linearizable: every read, not only the final ones,
    is checked for freshness, and no read returns an older value than a
    read that completed before it began (any client).
    clock_skew_ns: writes less than this apart in real time count as
    concurrent (last-write-wins on skewed clocks may order them either way).

    Raises ValueError for a history that cannot be checked: a value
    written twice on a key, or a final read that overlaps another
    operation of its key (the test did not quiesce)."""
    if isinstance(ops, History):
        ops = ops.ops()
    ops = list(ops)
    _validate(ops)
    options = {"linearizable": linearizable,
               "monotonic_reads_per_client": monotonic_reads_per_client,
               "clock_skew_ns": clock_skew_ns, "require_final": require_final}
    by_key = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    # Every write by value, across keys: a phantom found on another key
    # is worth saying.
    elsewhere = {}
    for op in ops:
        if op.is_write and op.value is not TOMBSTONE:
            elsewhere.setdefault(op.value, op)
    violations = []
    for key in sorted(by_key):
        violations += _check_key(key, by_key[key], elsewhere, linearizable,
                                 monotonic_reads_per_client, clock_skew_ns, require_final)
    return CheckResult(violations, ops, options)


def _check_key(key, ops, elsewhere, linearizable, monotonic, skew, require_final):
    out = []
    writes = [op for op in ops if op.is_write]
    by_value = {}
    for w in writes:
        if w.value is TOMBSTONE:
            continue
        if w.value in by_value:
            raise ValueError("value %s written twice on key %s (#%d and #%d): values must "
                             "be unique per key" % (_show(w.value), _show(key),
                                                    by_value[w.value].id, w.id))
        by_value[w.value] = w
    # A miss is explained by the initial state or by a delete (ok or
    # indeterminate) invoked before the read ended; of those, the one whose
    # effect ends last is the freshest explanation (prefix maxima by start).
    deletes = sorted((w for w in writes if w.value is TOMBSTONE and w.outcome != FAIL),
                     key=lambda w: w.start)
    delete_starts = [w.start for w in deletes]
    initial = _initial(key)
    freshest_delete = []
    for dl in deletes:
        prev = freshest_delete[-1] if freshest_delete else initial
        freshest_delete.append(dl if dl.effective_end > prev.effective_end else prev)

    # Quiescence: a final read starts after every other operation of its
    # key has finished (or been given up on).
    finals = [op for op in ops if op.final and op.end is not None]
    if finals:
        others = [op for op in ops if not op.final and op.end is not None]
        if others:
            last = max(others, key=lambda o: o.end)
            first = min(finals, key=lambda o: o.start)
            if first.start < last.end:
                raise ValueError(
                    "final read #%d of key %s starts before #%d ended: final reads must "
                    "come after every client stopped\n  %s\n  %s"
                    % (first.id, _show(key), last.id, first.describe(), last.describe()))

    # Rule 1: every value read comes from a write that could have produced it.
    # reads: (read, first, latest) where first is the earliest-starting and
    # latest the latest-ending write that can explain the value read.
    reads = []
    for r in ops:
        if not r.is_read or r.outcome != OK:
            continue
        if r.value is TOMBSTONE:
            n = bisect.bisect_right(delete_starts, r.end)
            reads.append((r, initial, freshest_delete[n - 1] if n else initial))
            continue
        w = by_value.get(r.value)
        if w is None:
            other = elsewhere.get(r.value)
            msg = "returned %s, which no operation wrote on this key" % _show(r.value)
            related = []
            if other is not None:
                msg += " (it was written on key %s)" % _show(other.key)
                related = [("written by", other)]
            out.append(Violation("phantom", key, r, msg, related))
        elif w.outcome == FAIL:
            out.append(Violation(
                "failed-write-read", key, r,
                "returned %s, the value of a write that failed definitely (no effect)"
                % _show(r.value), [("write", w)]))
        elif w.start > r.end:
            out.append(Violation(
                "future-read", key, r,
                "returned %s, whose write was invoked only after the read completed"
                % _show(r.value), [("write", w)]))
        else:
            reads.append((r, w, w))

    # Rule 2 (final reads; every read when linearizable): the value read is
    # not older than an acknowledged write that completed before the read
    # began, i.e. there is no acknowledged w2 with w.end + skew < w2.start
    # and w2.end < r.start for every write w that can explain the value.
    fresh = [rw for rw in reads if rw[0].final or linearizable]
    if fresh:
        acked = sorted((w for w in writes if w.outcome == OK), key=lambda w: w.end)
        i, newest = 0, None  # newest: the acknowledged write with the latest start so far
        for r, _, latest in sorted(fresh, key=lambda rw: rw[0].start):
            while i < len(acked) and acked[i].end < r.start:
                if newest is None or acked[i].start > newest.start:
                    newest = acked[i]
                i += 1
            if newest is None:
                continue
            if latest.effective_end + skew < newest.start:
                out.append(_stale(key, r, latest, newest, skew))

    # Rule 3 (optional): reads never go back in time. A read r1 proves that
    # a write started no earlier than lo(r1) was visible; a later read r2
    # (r1.end < r2.start) whose every explanation ended before that (plus
    # skew) went back.
    if linearizable:
        out += _inversions(key, reads, skew)
    elif monotonic:
        per_client = {}
        for rw in reads:
            per_client.setdefault(rw[0].client, []).append(rw)
        for client in sorted(per_client, key=str):
            out += _inversions(key, per_client[client], skew)

    # Completeness: the final state of every written key was read.
    if require_final and writes and not any(op.final and op.outcome == OK for op in ops):
        n_ok = sum(1 for w in writes if w.outcome == OK)
        last = max(writes, key=lambda w: w.start)
        out.append(Violation(
            "no-final-read", key, None,
            "%d writes (%d acknowledged) but no successful final read: rule 2 not checked"
            % (len(writes), n_ok), [("last write", last)]))
    return out


def _stale(key, r, latest, newest, skew):
    kind = "lost-write" if r.final else "stale-read"
    what = "final read" if r.final else "read"
    gone = "lost" if r.final else "not visible"
    if r.value is TOMBSTONE:
        if latest.id == _INITIAL_ID:
            expl = "no delete on this key can explain the miss"
            related = [("acked write", newest)]
        else:
            expl = ("it began %s after the latest delete that can explain the miss ended"
                    % _ms(newest.start - latest.end))
            related = [("latest del", latest), ("acked write", newest)]
        msg = ("%s found the key absent, but acknowledged write #%d completed before the "
               "read began and %s: #%d is %s" % (what, newest.id, expl, newest.id, gone))
    else:
        msg = ("%s returned %s from write #%d, but acknowledged write #%d began %s after "
               "#%d ended and completed before the read began: #%d is %s"
               % (what, _show(r.value), latest.id, newest.id,
                  _ms(newest.start - latest.end), latest.id, newest.id, gone))
        related = [("value from", latest), ("acked write", newest)]
    if skew:
        msg += " (clock skew tolerance %s)" % _ms(skew)
    return Violation(kind, key, r, msg, related)


def _inversions(key, reads, skew):
    """Pairs r1 -> r2 (r1.end < r2.start) where r2's value is older than
    r1's: every write that can explain r2 ended (+ skew) before the
    earliest-starting write that can explain r1 began."""
    out = []
    by_end = sorted(reads, key=lambda rw: rw[0].end)
    i, best = 0, None  # best: (read, first) of the ended reads with the latest first.start
    for r2, _, latest in sorted(reads, key=lambda rw: rw[0].start):
        while i < len(by_end) and by_end[i][0].end < r2.start:
            r1, first, _ = by_end[i]
            if best is None or first.start > best[1].start:
                best = (r1, first)
            i += 1
        if best is None:
            continue
        r1, w1 = best
        if latest.effective_end + skew < w1.start:
            same = r1.client == r2.client
            kind = "nonmonotonic-read" if same else "read-inversion"
            who = "client %s" % r2.client if same else "read"
            if r2.value is not TOMBSTONE:
                why = "the write of %s ended" % _show(r2.value)
            elif latest.id == _INITIAL_ID:
                why = "no delete can explain the miss, and the key was absent only"
            else:
                why = "the latest delete that can explain the miss ended"
            msg = ("%s got %s after %s read %s (#%d), but %s before the write of %s began" % (
                who, _show(r2.value), "it" if same else "client %s" % r1.client,
                _show(r1.value), r1.id, why, _show(r1.value)))
            if skew:
                msg += " (clock skew tolerance %s)" % _ms(skew)
            related = [("earlier read", r1), ("its write", w1)]
            if latest.id != _INITIAL_ID:
                related.append(("value from", latest))
            out.append(Violation(kind, key, r2, msg, related))
    return out


# -- summary -------------------------------------------------------------

def summarize(ops):
    """Counts for the test log: {"ops", "keys", "pending", "final_reads",
    "by_kind": {kind: {outcome: n}}, "duration_s", "ops_per_s"}."""
    if isinstance(ops, History):
        ops = ops.ops()
    ops = list(ops)
    by_kind = {}
    for op in ops:
        counts = by_kind.setdefault(op.kind, {OK: 0, FAIL: 0, INFO: 0, "pending": 0})
        counts[op.outcome or "pending"] += 1
    done = [op for op in ops if op.end is not None]
    duration = (max(op.end for op in done) - min(op.start for op in ops)) / 1e9 if done else 0.0
    return {
        "ops": len(ops),
        "keys": len({op.key for op in ops}),
        "pending": len(ops) - len(done),
        "final_reads": sum(1 for op in ops if op.final),
        "by_kind": by_kind,
        "duration_s": duration,
        "ops_per_s": len(done) / duration if duration > 0 else 0.0,
    }


def format_summary(s):
    """One line: '1200 ops on 8 keys in 2.10 s (571 ops/s): set ok 500 fail 0
    info 3; get ok 690 ...; 8 final reads; 0 pending'."""
    parts = []
    for kind in KINDS:
        c = s["by_kind"].get(kind)
        if c:
            part = "%s ok %d fail %d info %d" % (kind, c[OK], c[FAIL], c[INFO])
            if c["pending"]:
                part += " pending %d" % c["pending"]
            parts.append(part)
    return "%d ops on %d keys in %.2f s (%.0f ops/s): %s; %d final reads; %d pending" % (
        s["ops"], s["keys"], s["duration_s"], s["ops_per_s"], "; ".join(parts) or "nothing",
        s["final_reads"], s["pending"])
