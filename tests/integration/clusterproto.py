"""Cluster protocol (strata-node's cluster port): frame and body codec, a
streaming frame parser and a client, for the integration tests.

The spec is docs/formats/cluster-protocol.md; the C codec common/wire.h +
common/wire.c is the reference this module matches byte for byte (checked by
test_clusterproto.py against bytes the C codec composed). Names follow
wire.h without its WIRE_ / wire_ prefix: WIRE_OP_READ is OP_READ,
WIRE_FLAG_DIGEST is FLAG_DIGEST, wire_compose_read is compose_read,
wire_parse_read is parse_read, and so on.

A frame is a 32-byte header (integers little-endian) then its body:

    magic "STRC" | version u8 | opcode u8 | flags u16 | request id u64 |
    body length u32 | header check u32 | body check u64 | body

    header check = low 32 bits of XXH3_64bits(header bytes 0..19)
    body check   = XXH3_64bits(body)

Layers:
- parse_frame(buf, limit) -> ParseResult(result, frame, need), exactly
  wire_parse_frame's answers (OK, NEED_MORE, BAD_MAGIC, BAD_VERSION,
  OVERSIZED, BAD_CHECKSUM, MALFORMED), in its order; FrameParser on top for
  a byte stream (feed bytes, take frames, raises WireError on a bad one).
- encode_frame(opcode, body, flags, id) composes a valid frame (checks
  flags and the size limit, like wire_begin_frame / wire_end_frame);
  raw_frame(...) composes any header on purpose (wrong magic, version,
  length or checks) for malformed-input tests; reseal_header() recomputes
  the header check after an edit.
- Body fields: put_u8 .. put_u64, put_varint, put_raw, put_bytes return
  bytes (no bounds checked: build broken bodies with them); Reader reads
  them with wire.c's rules (shortest-form varints, bounds) and raises
  WireError(MALFORMED).
- Bodies: compose_X(...) -> bytes (raises ValueError on a field out of its
  bounds, as the C composer sets ST_INVAL) and parse_X(body) -> value
  (raises WireError(MALFORMED) when the body does not decode exactly), for
  HANDSHAKE (request and reply), PING, ERROR, RECORD, READ (request, data
  reply, digest reply), WRITE (request; its response is empty), MERKLE_TREE
  and RANGE_READ (request and response; compose_*(..., check=False) writes
  a request that breaks the rules, for the server's refusals). RMW has
  compose_rmw and parse_rmw_reply. decode_body picks the parser from a
  frame's opcode and flags.
- record_digest(rec): wire_record_digest.
- ClusterClient: a dialer over a socket with bounded reads; requests
  matched to responses by id, several in flight, answered in any order.

xxhash (Debian python3-xxhash) is needed for the checks only, and only when
a check is computed: importing this module never fails for want of it. A
check computed without it skips the calling test, or fails it under CI=true
(strata_deps.require_module).
"""

import collections
import dataclasses
import socket
import struct
import time

try:
    import xxhash
except ImportError:  # reported when a check is first needed (see _xxh3)
    xxhash = None

# ---- Constants (wire.h) ----------------------------------------------------

MAGIC = b"STRC"
HEADER_LEN = 32
VERSION_MIN = 1
VERSION_MAX = 1
FRAME_MAX_DEFAULT = 16 << 20  # header included

FLAG_RESPONSE = 0x0001
FLAG_DIGEST = 0x0002
FLAG_FRESH = 0x0004  # WRITE: versions stamped now by the coordinator
FLAGS_DEFINED = 0x0007

NODE_ID_LEN = 16
REC_KEY_MAX = 250
CLUSTER_MAX = 255
ADDR_MAX = 512
MSG_MAX = 1024
RACK_MAX = 64           # a ring node's rack name (RING)
RING_VNODES_MAX = 1024  # tokens of a ring node (RING)
RING_NODES_MAX = 65536  # nodes of a RING answer
MERKLE_DEPTH_MAX = 20
MERKLE_HASHES_MAX = 65536  # per MERKLE_TREE request (n << step) or response

# Fewest bytes a RECORD takes (wire.c RECORD_MIN_LEN): 1-byte key with its
# length, version, flags, expiry, tombstone, empty value's length.
RECORD_MIN_LEN = 1 + 1 + 8 + 2 + 4 + 8 + 1 + 1

# Header offsets (wire.c OFF_*).
OFF_VERSION = 4
OFF_OPCODE = 5
OFF_FLAGS = 6
OFF_ID = 8
OFF_BODY_LEN = 16
OFF_HEADER_CHECK = 20
OFF_BODY_CHECK = 24

# Opcodes (enum wire_opcode).
OP_HANDSHAKE = 0x01
OP_PING = 0x02
OP_ERROR = 0x03
OP_RING = 0x04
OP_GOSSIP_SYN = 0x10
OP_GOSSIP_ACK = 0x11
OP_GOSSIP_ACK2 = 0x12
OP_READ = 0x20
OP_WRITE = 0x21
OP_RMW = 0x22
OP_COORD_READ = 0x23
OP_COORD_WRITE = 0x24
OP_MERKLE_TREE = 0x30
OP_RANGE_READ = 0x31
OP_HINT_REPLAY = 0x32

OPCODE_NAMES = {
    OP_HANDSHAKE: "HANDSHAKE", OP_PING: "PING", OP_ERROR: "ERROR", OP_RING: "RING",
    OP_GOSSIP_SYN: "GOSSIP_SYN", OP_GOSSIP_ACK: "GOSSIP_ACK", OP_GOSSIP_ACK2: "GOSSIP_ACK2",
    OP_READ: "READ", OP_WRITE: "WRITE", OP_RMW: "RMW", OP_COORD_READ: "COORD_READ",
    OP_COORD_WRITE: "COORD_WRITE",
    OP_MERKLE_TREE: "MERKLE_TREE", OP_RANGE_READ: "RANGE_READ", OP_HINT_REPLAY: "HINT_REPLAY",
}

# Handshake refusal reasons (enum wire_refuse).
REFUSE_CLUSTER = 1
REFUSE_VERSION = 2
REFUSE_ID = 3
REFUSE_GENERATION = 4
REFUSE_SELF = 5
REFUSE_REMOVED = 6
REFUSE_SHUTDOWN = 7
REFUSE_NAMES = {REFUSE_CLUSTER: "CLUSTER", REFUSE_VERSION: "VERSION", REFUSE_ID: "ID",
                REFUSE_GENERATION: "GENERATION", REFUSE_SELF: "SELF",
                REFUSE_REMOVED: "REMOVED", REFUSE_SHUTDOWN: "SHUTDOWN"}

# ERROR codes (enum wire_error_code).
ERR_UNKNOWN_OPCODE = 1
ERR_BAD_REQUEST = 2
ERR_NOT_READY = 3
ERR_OVERLOADED = 4
ERR_TIMEOUT = 5
ERR_NOT_PRIMARY = 6
ERR_STORAGE = 7
ERR_TOO_LARGE = 8
ERR_INTERNAL = 9
ERR_CLOCK = 10
ERROR_NAMES = {ERR_UNKNOWN_OPCODE: "UNKNOWN_OPCODE", ERR_BAD_REQUEST: "BAD_REQUEST",
               ERR_NOT_READY: "NOT_READY", ERR_OVERLOADED: "OVERLOADED",
               ERR_TIMEOUT: "TIMEOUT", ERR_NOT_PRIMARY: "NOT_PRIMARY",
               ERR_STORAGE: "STORAGE", ERR_TOO_LARGE: "TOO_LARGE", ERR_INTERNAL: "INTERNAL",
               ERR_CLOCK: "CLOCK"}

# Outcome byte of a handshake reply, found byte of READ replies (wire.c).
HANDSHAKE_ACCEPT = 0
HANDSHAKE_REFUSE = 1
READ_NOT_FOUND = 0
READ_FOUND = 1

# Parse results (enum wire_result) and their names (wire_result_name).
OK = 0
NEED_MORE = 1
BAD_MAGIC = 2
BAD_VERSION = 3
OVERSIZED = 4
BAD_CHECKSUM = 5
MALFORMED = 6
RESULT_NAMES = {OK: "ok", NEED_MORE: "need more bytes", BAD_MAGIC: "bad magic",
                BAD_VERSION: "unsupported version", OVERSIZED: "frame over the size limit",
                BAD_CHECKSUM: "checksum mismatch", MALFORMED: "malformed"}

U64_MAX = (1 << 64) - 1

# Every wait of ClusterClient is bounded (as helpers.IO_TIMEOUT).
DEFAULT_TIMEOUT = 5.0

_HEADER_PREFIX = struct.Struct("<4sBBHQI")  # bytes 0..19: what the header check covers
_HEADER = struct.Struct("<4sBBHQIIQ")       # all 32 bytes


def opcode_name(opcode):
    """Name of an opcode ("HANDSHAKE"), None when the number is unassigned."""
    return OPCODE_NAMES.get(opcode)


def result_name(result):
    return RESULT_NAMES.get(result, "unknown result")


class WireError(Exception):
    """A parse result other than OK / NEED_MORE: the stream cannot be
    trusted any more. `frame` holds the header fields when the header passed
    its check (OVERSIZED, or MALFORMED from reserved flags), else None."""

    def __init__(self, result, detail="", frame=None):
        self.result = result
        self.detail = detail
        self.frame = frame
        super().__init__(result_name(result) + (": " + detail if detail else ""))


class ProtocolError(Exception):
    """Frames that parse but break the protocol's rules between the two
    sides (a request arriving at the dialer, a response with the wrong
    opcode)."""


class ConnectionClosed(ConnectionError):
    """The peer closed (or reset) the connection; `data` is what was
    buffered and not parsed as a frame."""

    def __init__(self, message, data=b""):
        super().__init__(message)
        self.data = data


class ClusterTimeout(TimeoutError):
    """A bounded wait expired."""


# ---- Checks ------------------------------------------------------------------

def _xxh3(data, seed=0):
    global xxhash
    if xxhash is None:
        from strata_deps import require_module
        xxhash = require_module("xxhash", "python3-xxhash")
    return xxhash.xxh3_64_intdigest(bytes(data), seed)


def header_check(header):
    """Low 32 bits of XXH3_64bits of the header's bytes 0..19."""
    return _xxh3(bytes(header[:OFF_HEADER_CHECK])) & 0xFFFFFFFF


def body_check(body):
    """XXH3_64bits of the body bytes (of b"" for an empty body)."""
    return _xxh3(body)


# ---- Frames ------------------------------------------------------------------

# One frame. body is the body bytes (None when the header was refused
# before the body: OVERSIZED / MALFORMED); size = HEADER_LEN + body_len.
Frame = collections.namedtuple("Frame", "version opcode flags id body body_len size")

# What parse_frame found: result (OK, NEED_MORE, ...), frame (OK; and
# OVERSIZED / MALFORMED with body None), need (NEED_MORE: the smallest total
# length that can change the answer).
ParseResult = collections.namedtuple("ParseResult", "result frame need")


def parse_frame(buf, limit=FRAME_MAX_DEFAULT):
    """Parses the frame at the start of buf (bytes-like; may hold part of a
    frame, one, or several): wire_parse_frame's checks in its order, with its
    answers. Never raises for any bytes."""
    n = len(buf)
    with memoryview(buf) as mv:
        have = min(n, OFF_VERSION)
        if have > 0 and bytes(mv[:have]) != MAGIC[:have]:
            return ParseResult(BAD_MAGIC, None, None)
        if n > OFF_VERSION and not VERSION_MIN <= mv[OFF_VERSION] <= VERSION_MAX:
            return ParseResult(BAD_VERSION, None, None)
        if n < HEADER_LEN:
            return ParseResult(NEED_MORE, None, HEADER_LEN)
        header = bytes(mv[:HEADER_LEN])
        _, version, opcode, flags, rid, body_len, hcheck, bcheck = _HEADER.unpack(header)
        if hcheck != header_check(header):
            return ParseResult(BAD_CHECKSUM, None, None)
        size = HEADER_LEN + body_len
        head = Frame(version, opcode, flags, rid, None, body_len, size)
        if size > limit:
            return ParseResult(OVERSIZED, head, None)
        if flags & ~FLAGS_DEFINED:
            return ParseResult(MALFORMED, head, None)
        if n < size:
            return ParseResult(NEED_MORE, None, size)
        body = bytes(mv[HEADER_LEN:size])
    if bcheck != body_check(body):
        return ParseResult(BAD_CHECKSUM, None, None)
    return ParseResult(OK, head._replace(body=body), None)


def decode_frame(data, limit=FRAME_MAX_DEFAULT):
    """The one whole frame that data holds (nothing more): Frame, or
    WireError (NEED_MORE included, and MALFORMED for trailing bytes)."""
    result, frame, _ = parse_frame(data, limit)
    if result != OK:
        raise WireError(result, frame=frame)
    if frame.size != len(data):
        raise WireError(MALFORMED, "%d bytes after the frame" % (len(data) - frame.size))
    return frame


def raw_frame(opcode, body=b"", flags=0, id=0, *, magic=MAGIC, version=VERSION_MAX,
              body_len=None, header_check_value=None, body_check_value=None):
    """A frame with any header, unchecked, for malformed-input tests:
    body_len / header_check_value / body_check_value override what the
    header says (default: the true values)."""
    body = bytes(body)
    prefix = struct.pack("<4sBBHQI", magic, version, opcode, flags, id,
                         len(body) if body_len is None else body_len)
    hcheck = header_check(prefix) if header_check_value is None else header_check_value
    bcheck = body_check(body) if body_check_value is None else body_check_value
    return prefix + struct.pack("<IQ", hcheck, bcheck) + body


def reseal_header(frame):
    """frame (bytes-like, at least 32 bytes) with its header check
    recomputed, as after editing a header field on purpose."""
    out = bytearray(frame)
    struct.pack_into("<I", out, OFF_HEADER_CHECK, header_check(out))
    return bytes(out)


def encode_frame(opcode, body=b"", flags=0, id=0, *, version=VERSION_MAX,
                 limit=FRAME_MAX_DEFAULT):
    """A valid frame, as wire_begin_frame / wire_end_frame compose it.
    ValueError (where C returns ST_INVAL) for an undefined flag bit, a frame
    over `limit` (the peer's) or a body over 32 bits."""
    body = bytes(body)
    if flags & ~FLAGS_DEFINED:
        raise ValueError("undefined flag bits 0x%04x" % (flags & ~FLAGS_DEFINED))
    if HEADER_LEN + len(body) > limit or len(body) > 0xFFFFFFFF:
        raise ValueError("frame of %d bytes over the limit %d" % (HEADER_LEN + len(body), limit))
    _check_uint(opcode, 8, "opcode")
    _check_uint(id, 64, "request id")
    _check_uint(version, 8, "version")
    return raw_frame(opcode, body, flags, id, version=version)


class FrameParser:
    """Frames from a byte stream: feed() what a read returned, then take
    next_frame() until it returns None (need more). A bad frame raises
    WireError; the stream is then out of step (close the connection)."""

    def __init__(self, limit=FRAME_MAX_DEFAULT):
        self.limit = limit
        self.buf = bytearray()
        self._need = 1  # don't parse before this many bytes are buffered

    def feed(self, data):
        self.buf += data

    def __len__(self):
        return len(self.buf)

    def next_frame(self):
        """The next whole frame, None if more bytes are needed."""
        if len(self.buf) < self._need:
            return None
        result, frame, need = parse_frame(self.buf, self.limit)
        if result == NEED_MORE:
            # While the header is incomplete every byte may show a bad
            # magic or version: parse again. Then wait for the whole frame.
            self._need = need if need > HEADER_LEN else 1
            return None
        if result != OK:
            raise WireError(result, frame=frame)
        del self.buf[:frame.size]
        self._need = 1
        return frame

    def frames(self):
        """Every whole frame buffered now."""
        out = []
        while True:
            frame = self.next_frame()
            if frame is None:
                return out
            out.append(frame)

    def take_all(self):
        """The unparsed bytes (the buffer is emptied)."""
        data, self.buf, self._need = bytes(self.buf), bytearray(), 1
        return data


# ---- Body fields -------------------------------------------------------------

def _check_uint(v, bits, what="value"):
    if not isinstance(v, int) or not 0 <= v < 1 << bits:
        raise ValueError("%s %r is not a u%d" % (what, v, bits))


def put_u8(v):
    _check_uint(v, 8)
    return bytes((v,))


def put_u16(v):
    _check_uint(v, 16)
    return struct.pack("<H", v)


def put_u32(v):
    _check_uint(v, 32)
    return struct.pack("<I", v)


def put_u64(v):
    _check_uint(v, 64)
    return struct.pack("<Q", v)


def put_varint(v):
    """Unsigned LEB128, shortest form (1..10 bytes)."""
    _check_uint(v, 64)
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def put_raw(data):
    return bytes(data)


def put_bytes(data):
    """A byte string: varint length, then the bytes (no bound checked)."""
    data = bytes(data)
    return put_varint(len(data)) + data


class Reader:
    """Bounds-checked reader over a body with wire.c's rules; any broken
    rule raises WireError(MALFORMED). finish() checks every byte was read."""

    def __init__(self, body):
        self.data = bytes(body)
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def done(self):
        return self.pos == len(self.data)

    def finish(self):
        if not self.done():
            raise WireError(MALFORMED, "%d trailing bytes" % self.remaining())

    def get_raw(self, n):
        if n > self.remaining():
            raise WireError(MALFORMED, "%d bytes wanted, %d left" % (n, self.remaining()))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def get_u8(self):
        return self.get_raw(1)[0]

    def get_u16(self):
        return struct.unpack("<H", self.get_raw(2))[0]

    def get_u32(self):
        return struct.unpack("<I", self.get_raw(4))[0]

    def get_u64(self):
        return struct.unpack("<Q", self.get_raw(8))[0]

    def get_bool(self):
        v = self.get_u8()
        if v > 1:
            raise WireError(MALFORMED, "bool byte %d" % v)
        return v == 1

    def get_varint(self):
        """wire_get_varint: at most 10 bytes, at most 64 bits, shortest form."""
        v = 0
        for shift in range(0, 64, 7):
            byte = self.get_u8()
            if shift == 63 and byte > 1:
                raise WireError(MALFORMED, "varint over 64 bits")
            v |= (byte & 0x7F) << shift
            if byte < 0x80:
                if byte == 0 and shift > 0:
                    raise WireError(MALFORMED, "varint not in its shortest form")
                return v
        raise WireError(MALFORMED, "varint over 10 bytes")

    def get_bytes(self, max_len=None, min_len=0):
        """A byte string of min_len..max_len bytes (max None: bounded by
        what is left)."""
        n = self.get_varint()
        if max_len is not None and n > max_len:
            raise WireError(MALFORMED, "byte string of %d bytes, at most %d" % (n, max_len))
        out = self.get_raw(n)
        if n < min_len:
            raise WireError(MALFORMED, "byte string of %d bytes, at least %d" % (n, min_len))
        return out


def _check_len(data, lo, hi, what):
    if not lo <= len(data) <= hi:
        raise ValueError("%s of %d bytes, not %d..%d" % (what, len(data), lo, hi))


def _check_node_id(node_id):
    if len(bytes(node_id)) != NODE_ID_LEN:
        raise ValueError("node id of %d bytes, not %d" % (len(bytes(node_id)), NODE_ID_LEN))


def _b(data):
    return data.encode() if isinstance(data, str) else bytes(data)


# ---- Bodies: HANDSHAKE -------------------------------------------------------

@dataclasses.dataclass
class Handshake:
    """HANDSHAKE request (struct wire_handshake)."""
    version: int
    cluster: bytes
    node_id: bytes
    short_id: int
    generation: int
    addr: bytes


def compose_handshake(h):
    cluster, addr = _b(h.cluster), _b(h.addr)
    _check_len(cluster, 1, CLUSTER_MAX, "cluster name")
    _check_len(addr, 1, ADDR_MAX, "listen address")
    _check_node_id(h.node_id)
    return (put_u8(h.version) + put_bytes(cluster) + put_raw(h.node_id) +
            put_u16(h.short_id) + put_u64(h.generation) + put_bytes(addr))


def parse_handshake(body):
    r = Reader(body)
    h = Handshake(version=r.get_u8(), cluster=r.get_bytes(CLUSTER_MAX, 1),
                  node_id=r.get_raw(NODE_ID_LEN), short_id=r.get_u16(),
                  generation=r.get_u64(), addr=r.get_bytes(ADDR_MAX, 1))
    r.finish()
    return h


@dataclasses.dataclass
class HandshakeReply:
    """HANDSHAKE response (struct wire_handshake_reply). Accept: version,
    node_id, short_id, generation (the acceptor's). Refuse: reason, msg.
    The fields of the other outcome are zero, as wire_parse_handshake_reply
    leaves them."""
    accept: bool
    version: int = 0
    node_id: bytes = bytes(NODE_ID_LEN)
    short_id: int = 0
    generation: int = 0
    reason: int = 0
    msg: bytes = b""

    def reason_name(self):
        return REFUSE_NAMES.get(self.reason, str(self.reason))


def compose_handshake_reply(h):
    if h.accept:
        _check_node_id(h.node_id)
        return (put_u8(HANDSHAKE_ACCEPT) + put_u8(h.version) + put_raw(h.node_id) +
                put_u16(h.short_id) + put_u64(h.generation))
    msg = _b(h.msg)
    _check_len(msg, 0, MSG_MAX, "refusal message")
    return put_u8(HANDSHAKE_REFUSE) + put_u16(h.reason) + put_bytes(msg)


def parse_handshake_reply(body):
    r = Reader(body)
    outcome = r.get_u8()
    if outcome == HANDSHAKE_ACCEPT:
        h = HandshakeReply(accept=True, version=r.get_u8(), node_id=r.get_raw(NODE_ID_LEN),
                           short_id=r.get_u16(), generation=r.get_u64())
    elif outcome == HANDSHAKE_REFUSE:
        h = HandshakeReply(accept=False, reason=r.get_u16(), msg=r.get_bytes(MSG_MAX))
    else:
        raise WireError(MALFORMED, "handshake outcome %d" % outcome)
    r.finish()
    return h


# ---- Bodies: PING, ERROR -----------------------------------------------------

def compose_ping(hlc):
    return put_u64(hlc)


def parse_ping(body):
    r = Reader(body)
    hlc = r.get_u64()
    r.finish()
    return hlc


@dataclasses.dataclass
class Error:
    """ERROR response (struct wire_error)."""
    code: int
    msg: bytes = b""

    def name(self):
        return ERROR_NAMES.get(self.code, str(self.code))


def compose_error(e):
    msg = _b(e.msg)
    _check_len(msg, 0, MSG_MAX, "error message")
    return put_u16(e.code) + put_bytes(msg)


def parse_error(body):
    r = Reader(body)
    e = Error(code=r.get_u16(), msg=r.get_bytes(MSG_MAX))
    r.finish()
    return e


# ---- Records ----------------------------------------------------------------

# struct wire_version: larger (hlc, then node) is newer, as tuples compare.
Version = collections.namedtuple("Version", "hlc node")


@dataclasses.dataclass
class Record:
    """A RECORD (struct wire_record, same field names)."""
    key: bytes
    value: bytes = b""
    flags: int = 0
    expiry: int = 0
    version: Version = Version(0, 0)
    tombstone: bool = False


def _check_record(rec):
    _check_len(_b(rec.key), 1, REC_KEY_MAX, "key")
    if rec.tombstone and len(rec.value) != 0:
        raise ValueError("a tombstone with a value")


def _record_prefix(rec):
    """RECORD encoding up to and including the value's length varint."""
    return (put_bytes(_b(rec.key)) + put_u64(rec.version[0]) + put_u16(rec.version[1]) +
            put_u32(rec.flags) + put_u64(rec.expiry) + put_u8(1 if rec.tombstone else 0) +
            put_varint(len(rec.value)))


def put_record(rec):
    """RECORD encoding (wire_put_record); ValueError for an invalid record."""
    _check_record(rec)
    return _record_prefix(rec) + bytes(rec.value)


def get_record(r):
    """Reads a RECORD from Reader r (wire_get_record)."""
    key = r.get_bytes(REC_KEY_MAX, 1)
    hlc = r.get_u64()
    node = r.get_u16()
    flags = r.get_u32()
    expiry = r.get_u64()
    tombstone = r.get_bool()
    value = r.get_bytes()
    if tombstone and value:
        raise WireError(MALFORMED, "a tombstone with a value")
    return Record(key=key, value=value, flags=flags, expiry=expiry,
                  version=Version(hlc, node), tombstone=tombstone)


def record_digest(rec):
    """wire_record_digest: XXH3_64bits_withSeed(value, seed) with seed =
    XXH3_64bits(the RECORD encoding up to and including the value's length
    varint)."""
    _check_record(rec)
    return _xxh3(bytes(rec.value), _xxh3(_record_prefix(rec)))


# ---- Bodies: READ, WRITE ------------------------------------------------------

def compose_read(key):
    key = _b(key)
    _check_len(key, 1, REC_KEY_MAX, "key")
    return put_bytes(key)


def parse_read(body):
    """READ request (either flag): the key."""
    r = Reader(body)
    key = r.get_bytes(REC_KEY_MAX, 1)
    r.finish()
    return key


def compose_read_reply(rec):
    """READ data response: rec, or None for "no version held"."""
    if rec is None:
        return put_u8(READ_NOT_FOUND)
    return put_u8(READ_FOUND) + put_record(rec)


def parse_read_reply(body):
    """READ data response: the Record, or None when not found."""
    r = Reader(body)
    rec = get_record(r) if r.get_bool() else None
    r.finish()
    return rec


@dataclasses.dataclass
class Digest:
    """READ digest response (struct wire_digest); version and digest are
    zero when not found."""
    found: bool
    version: Version = Version(0, 0)
    digest: int = 0


def compose_digest_reply(rec):
    """READ digest response of rec (None: not found)."""
    if rec is None:
        return put_u8(READ_NOT_FOUND)
    return (put_u8(READ_FOUND) + put_u64(rec.version[0]) + put_u16(rec.version[1]) +
            put_u64(record_digest(rec)))


def parse_digest_reply(body):
    r = Reader(body)
    if r.get_bool():
        d = Digest(found=True, version=Version(r.get_u64(), r.get_u16()), digest=r.get_u64())
    else:
        d = Digest(found=False)
    r.finish()
    return d


def compose_write(recs):
    recs = list(recs)
    if not recs:
        raise ValueError("a WRITE carries at least one record")
    for rec in recs:
        _check_record(rec)
    return put_varint(len(recs)) + b"".join(put_record(rec) for rec in recs)


def parse_write(body):
    """WRITE request: the list of records (wire_parse_write's checks: a
    count of 1..len(body) // RECORD_MIN_LEN, every record valid)."""
    r = Reader(body)
    n = r.get_varint()
    if n == 0 or n > len(body) // RECORD_MIN_LEN:
        raise WireError(MALFORMED, "WRITE count %d for a body of %d bytes" % (n, len(body)))
    recs = [get_record(r) for _ in range(n)]
    r.finish()
    return recs


# ---- Consistency levels and RMW ---------------------------------------------

CL_ONE = 1
CL_QUORUM = 2
CL_ALL = 3
CL_ANY = 4

RMW_ADD, RMW_REPLACE, RMW_APPEND, RMW_PREPEND, RMW_CAS = 1, 2, 3, 4, 5
RMW_DELETE, RMW_TOUCH, RMW_INCR, RMW_DECR, RMW_SET = 6, 7, 8, 9, 10

RMW_RETURN = 0x01
RMW_VIVIFY = 0x02
RMW_RETOUCH = 0x04
RMW_FLAGS_DEFINED = 0x07

RMW_STORED, RMW_NOT_STORED, RMW_EXISTS, RMW_NOT_FOUND = 1, 2, 3, 4
RMW_NON_NUMERIC, RMW_TOO_LARGE = 5, 6


@dataclasses.dataclass
class Rmw:
    """RMW request (struct wire_rmw)."""
    op: int
    key: bytes
    value: bytes = b""
    read_cl: int = CL_QUORUM
    write_cl: int = CL_QUORUM
    rflags: int = 0
    flags: int = 0
    expiry: int = 0
    expiry2: int = 0
    cas_in: int = 0
    delta: int = 0
    initial: int = 0


def compose_rmw(q):
    """RMW request body (no validation: tests send bad ones on purpose)."""
    return (put_u8(q.op) + put_u8(q.read_cl) + put_u8(q.write_cl) + put_u8(q.rflags) +
            put_bytes(_b(q.key)) + put_bytes(_b(q.value)) + put_u32(q.flags) +
            put_u64(q.expiry) + put_u64(q.expiry2) + put_u64(q.cas_in) + put_u64(q.delta) +
            put_u64(q.initial))


@dataclasses.dataclass
class RmwReply:
    """RMW response (struct wire_rmw_reply); record is None when absent."""
    result: int
    cas: int = 0
    number: int = 0
    old_expiry: int = 0
    created: bool = False
    record: Record = None


def parse_rmw_reply(body):
    r = Reader(body)
    rep = RmwReply(result=r.get_u8(), cas=r.get_u64(), number=r.get_u64(),
                   old_expiry=r.get_u64(), created=r.get_bool())
    if r.get_bool():
        rep.record = get_record(r)
    r.finish()
    return rep


# ---- Anti-entropy: MERKLE_TREE and RANGE_READ --------------------------------

@dataclasses.dataclass
class MerkleReq:
    """MERKLE_TREE request (struct wire_merkle_req): for each node index in
    `nodes` (of `level`), the hashes of its 2^step descendants at level +
    step, in the responder's tree of (range_start, range_end] at `depth`,
    built as of `as_of` with `gc_grace` and kept under `session`."""
    session: int
    range_start: int
    range_end: int
    depth: int
    as_of: int
    gc_grace: int
    level: int = 0
    step: int = 0
    nodes: list = dataclasses.field(default_factory=lambda: [0])


def _merkle_req_problem(q):
    """Why q breaks a rule of wire.c's merkle_req_valid and node check, or
    None."""
    n = len(q.nodes)
    if not 1 <= q.depth <= MERKLE_DEPTH_MAX:
        return "depth %d, not 1..%d" % (q.depth, MERKLE_DEPTH_MAX)
    if q.level > q.depth or q.step > q.depth - q.level:
        return "level %d + step %d beyond depth %d" % (q.level, q.step, q.depth)
    if n < 1 or n << q.step > MERKLE_HASHES_MAX:
        return "%d nodes x 2^%d hashes, not 1..%d" % (n, q.step, MERKLE_HASHES_MAX)
    for node in q.nodes:
        if node >= 1 << q.level:
            return "node %d outside level %d" % (node, q.level)
    return None


def compose_merkle_req(q, check=True):
    """MERKLE_TREE request body; ValueError for a rule broken (check=False
    writes it anyway, for refusal tests)."""
    problem = _merkle_req_problem(q) if check else None
    if problem:
        raise ValueError(problem)
    return (put_u64(q.session) + put_u64(q.range_start) + put_u64(q.range_end) +
            put_u8(q.depth) + put_u64(q.as_of) + put_u64(q.gc_grace) + put_u8(q.level) +
            put_u8(q.step) + put_varint(len(q.nodes)) +
            b"".join(put_u64(node) for node in q.nodes))


def parse_merkle_req(body):
    """wire_parse_merkle_req's checks: the count is refused over
    MERKLE_HASHES_MAX before the node indices are read."""
    r = Reader(body)
    fields = [r.get_u64(), r.get_u64(), r.get_u64(), r.get_u8(), r.get_u64(), r.get_u64(),
              r.get_u8(), r.get_u8()]
    n = r.get_varint()
    if n > MERKLE_HASHES_MAX:
        raise WireError(MALFORMED, "%d nodes" % n)
    raw = r.get_raw(8 * n)
    r.finish()
    q = MerkleReq(*fields, nodes=list(struct.unpack("<%dQ" % n, raw)))
    problem = _merkle_req_problem(q)
    if problem:
        raise WireError(MALFORMED, problem)
    return q


@dataclasses.dataclass
class MerkleReply:
    """MERKLE_TREE response: hashes[k * 2^step + j] is descendant j of the
    request's nodes[k]; records, how many the responder's tree holds."""
    hashes: list
    records: int = 0


def compose_merkle_reply(rep):
    if len(rep.hashes) > MERKLE_HASHES_MAX:
        raise ValueError("%d hashes, at most %d" % (len(rep.hashes), MERKLE_HASHES_MAX))
    return (put_varint(len(rep.hashes)) + b"".join(put_u64(h) for h in rep.hashes) +
            put_u64(rep.records))


def parse_merkle_reply(body):
    r = Reader(body)
    n = r.get_varint()
    if n > MERKLE_HASHES_MAX:
        raise WireError(MALFORMED, "%d hashes" % n)
    hashes = list(struct.unpack("<%dQ" % n, r.get_raw(8 * n)))
    rep = MerkleReply(hashes, r.get_u64())
    r.finish()
    return rep


@dataclasses.dataclass
class RangeReq:
    """RANGE_READ request (struct wire_range_req): the newest version of
    every key with its token in (range_start, range_end], tombstones and
    expired included, in (token, key) order after the key `after` (b"":
    from the start), at most max_records records and about max_bytes bytes
    a page."""
    range_start: int
    range_end: int
    after: bytes = b""
    max_records: int = 1024
    max_bytes: int = 1 << 20


def compose_range_req(q, check=True):
    after = _b(q.after)
    if check:
        _check_len(after, 0, REC_KEY_MAX, "after key")
        if q.max_records < 1:
            raise ValueError("max_records 0")
    return (put_u64(q.range_start) + put_u64(q.range_end) + put_bytes(after) +
            put_u32(q.max_records) + put_u32(q.max_bytes))


def parse_range_req(body):
    r = Reader(body)
    q = RangeReq(range_start=r.get_u64(), range_end=r.get_u64(), after=r.get_bytes(REC_KEY_MAX),
                 max_records=r.get_u32(), max_bytes=r.get_u32())
    r.finish()
    if q.max_records < 1:
        raise WireError(MALFORMED, "max_records 0")
    return q


@dataclasses.dataclass
class RangeReply:
    """RANGE_READ response: a page of records; more, a next page exists
    (ask again with after = the last record's key)."""
    more: bool
    records: list = dataclasses.field(default_factory=list)


def compose_range_reply(rep):
    for rec in rep.records:
        _check_record(rec)
    return (put_u8(1 if rep.more else 0) + put_varint(len(rep.records)) +
            b"".join(put_record(rec) for rec in rep.records))


def parse_range_reply(body):
    """wire_parse_range_reply's checks: a count of at most
    len(body) // RECORD_MIN_LEN, every record valid."""
    r = Reader(body)
    more = r.get_bool()
    n = r.get_varint()
    if n > len(body) // RECORD_MIN_LEN:
        raise WireError(MALFORMED, "RANGE_READ count %d for a body of %d bytes" % (n, len(body)))
    recs = [get_record(r) for _ in range(n)]
    r.finish()
    return RangeReply(more, recs)


def parse_empty(body):
    """WRITE response: an empty body."""
    if len(body) != 0:
        raise WireError(MALFORMED, "%d bytes in an empty body" % len(body))


def decode_body(frame):
    """The body of a frame by its opcode and flags: Handshake /
    HandshakeReply, PING's hlc (int), Error, READ's key (request), Record or
    None (data response), Digest (digest response), WRITE's list of records
    (request) or None (response), MerkleReq / MerkleReply, RangeReq /
    RangeReply. Bodies of other opcodes come back as bytes.
    WireError(MALFORMED) when the body does not decode."""
    response = bool(frame.flags & FLAG_RESPONSE)
    op, body = frame.opcode, frame.body
    if op == OP_ERROR:
        return parse_error(body)
    if op == OP_HANDSHAKE:
        return parse_handshake_reply(body) if response else parse_handshake(body)
    if op == OP_PING:
        return parse_ping(body)
    if op == OP_READ:
        if not response:
            return parse_read(body)
        if frame.flags & FLAG_DIGEST:
            return parse_digest_reply(body)
        return parse_read_reply(body)
    if op == OP_WRITE:
        return parse_empty(body) if response else parse_write(body)
    if op == OP_MERKLE_TREE:
        return parse_merkle_reply(body) if response else parse_merkle_req(body)
    if op == OP_RANGE_READ:
        return parse_range_reply(body) if response else parse_range_req(body)
    return body


# ---- Client -------------------------------------------------------------------

class ClusterClient:
    """The dialer side of a cluster-port connection. Every read is bounded
    by a timeout (ClusterTimeout); EOF or a reset raises ConnectionClosed;
    a frame that does not parse raises WireError.

    Requests get ids 1, 2, 3, ... Several may be in flight: send_request()
    returns the id, wait(id) returns that id's response frame. Frames read
    while waiting for another id are kept in `unmatched` (id -> Frame) until
    waited for, whatever order they come in. An ERROR with id 0 (about the
    whole connection) is kept in `unmatched[0]` and raised as ProtocolError
    by wait()."""

    def __init__(self, addr, timeout=DEFAULT_TIMEOUT, limit=FRAME_MAX_DEFAULT):
        sock = socket.create_connection(addr, timeout=timeout)
        self._setup(sock, timeout, limit)

    @classmethod
    def from_socket(cls, sock, timeout=DEFAULT_TIMEOUT, limit=FRAME_MAX_DEFAULT):
        """Wrap a connected socket (a socketpair end in tests)."""
        c = cls.__new__(cls)
        c._setup(sock, timeout, limit)
        return c

    def _setup(self, sock, timeout, limit):
        self.sock = sock
        self.timeout = timeout
        self.limit = limit
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        self.parser = FrameParser(limit)
        self.next_id = 1
        self.pending = {}    # id -> (opcode, flags, send time) of requests not answered yet
        self.unmatched = {}  # id -> response Frame read but not waited for yet
        self.peer = None     # HandshakeReply of an accepted handshake
        self.version = VERSION_MAX
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending

    def send_raw(self, data):
        """Send bytes as they are (malformed-input tests)."""
        self.sock.sendall(data)

    def send_request(self, opcode, body=b"", flags=0):
        """Send a request frame with the next id; returns the id."""
        rid = self.next_id
        frame = encode_frame(opcode, body, flags, rid, limit=self.limit)
        self.next_id += 1
        self.pending[rid] = (opcode, flags, time.monotonic())
        self.send_raw(frame)
        return rid

    # -- receiving

    def _fill(self, deadline):
        """One read into the parser; ClusterTimeout at the deadline,
        ConnectionClosed at EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClusterTimeout("no whole frame within the timeout (%d bytes buffered)"
                                 % len(self.parser))
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise ClusterTimeout("no whole frame within the timeout (%d bytes buffered)"
                                 % len(self.parser)) from None
        except ConnectionResetError as e:
            self.eof = True
            raise ConnectionClosed("connection reset", bytes(self.parser.buf)) from e
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            self.eof = True
            raise ConnectionClosed("connection closed by the peer", bytes(self.parser.buf))
        self.parser.feed(chunk)

    def read_frame(self, timeout=None):
        """The next frame off the wire, whatever its id (not matched, not
        stored)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self.parser.next_frame()
            if frame is not None:
                return frame
            self._fill(deadline)

    def wait(self, rid, timeout=None):
        """The response frame to request `rid` (ERROR included)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while rid not in self.unmatched:
            if 0 in self.unmatched:
                raise ProtocolError("connection error: %r" % (decode_body(self.unmatched[0]),))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClusterTimeout("no response to request %d within the timeout" % rid)
            self._store(self.read_frame(remaining))
        frame = self.unmatched.pop(rid)
        self.pending.pop(rid, None)
        return frame

    def _store(self, frame):
        if not frame.flags & FLAG_RESPONSE:
            raise ProtocolError("a request frame (opcode 0x%02x, id %d) at the dialer"
                                % (frame.opcode, frame.id))
        sent = self.pending.get(frame.id)
        if sent is not None and frame.opcode not in (sent[0], OP_ERROR) and not (
                sent[0] == OP_GOSSIP_SYN and frame.opcode == OP_GOSSIP_ACK):
            raise ProtocolError("response opcode 0x%02x to a 0x%02x request (id %d)"
                                % (frame.opcode, sent[0], frame.id))
        if frame.id in self.unmatched:
            raise ProtocolError("two responses to id %d" % frame.id)
        self.unmatched[frame.id] = frame

    def request(self, opcode, body=b"", flags=0, timeout=None):
        """Send one request and return its response frame."""
        return self.wait(self.send_request(opcode, body, flags), timeout)

    def call(self, opcode, body=b"", flags=0, timeout=None):
        """request() with the response body decoded (decode_body); an ERROR
        answer comes back as an Error, not raised."""
        return decode_body(self.request(opcode, body, flags, timeout))

    def read_to_eof(self, timeout=None):
        """(bytes, how): what arrives until the peer closes ('eof'),
        resets ('reset') or the timeout passes ('open'), buffered bytes
        first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        data = bytearray(self.parser.take_all())
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(data), "open"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return bytes(data), "reset"
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                return bytes(data), "eof"
            data += chunk

    # -- requests

    def handshake(self, cluster_name, node_id, short_id, generation, listen_addr,
                  version=VERSION_MAX, timeout=None):
        """HANDSHAKE; returns the parsed reply: HandshakeReply (accept or
        refuse), or Error when answered with ERROR. An accept sets
        self.peer and self.version."""
        body = compose_handshake(Handshake(version, _b(cluster_name), bytes(node_id), short_id,
                                           generation, _b(listen_addr)))
        reply = self.call(OP_HANDSHAKE, body, 0, timeout)
        if isinstance(reply, HandshakeReply) and reply.accept:
            self.peer, self.version = reply, reply.version
        return reply

    def ping(self, hlc, timeout=None):
        """PING; the peer's hlc (int), or Error."""
        return self.call(OP_PING, compose_ping(hlc), 0, timeout)

    def read(self, key, digest=False, timeout=None):
        """READ: a Record or None (not found); with digest=True a Digest.
        Error when answered with ERROR."""
        return self.call(OP_READ, compose_read(key), FLAG_DIGEST if digest else 0, timeout)

    def write(self, records, timeout=None):
        """WRITE: None once applied, or Error."""
        return self.call(OP_WRITE, compose_write(records), 0, timeout)

    def merkle_tree(self, q, timeout=None):
        """MERKLE_TREE (a MerkleReq): MerkleReply, or Error."""
        return self.call(OP_MERKLE_TREE, compose_merkle_req(q), 0, timeout)

    def range_read(self, q, timeout=None):
        """RANGE_READ (a RangeReq): one page, RangeReply, or Error."""
        return self.call(OP_RANGE_READ, compose_range_req(q), 0, timeout)
