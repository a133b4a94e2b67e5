"""The Python codec of the cluster protocol (clusterproto.py) on its own:
no server, no process. Collected in every run of the integration suite
(strata, strata-async, memcached); it does not depend on which server runs.

Byte-exactness with the C codec (common/wire.c) rests on bytes the C codec
produced, not on this module's own reading of the spec:
- C_HEADER_PREFIX: the literal header bytes of test_header_golden in
  tests/unit/common/test_wire.c;
- C_FRAMES / C_BIG_FRAMES / C_STREAM_*: the first 18 sample frames of
  test_wire.c (its `samples` table up to "write-ack", composed by wire.c
  with ids 1..18, back to back, as test_frames_back_to_back composes
  them; the table has grown since, RMW and anti-entropy bodies after
  those 18), taken from the C unit test's buffer (8489 bytes): the small
  frames as hex, the three big ones (1,024-byte message, 250-byte key with
  a 3,000-byte value, the 3-record WRITE) and the whole stream as length +
  SHA-256;
- C_DIGESTS: wire_record_digest of test_wire.c's records, as computed by
  wire.c.
The anti-entropy bodies (MERKLE_TREE, RANGE_READ) are pinned instead by
vectors computed by hand from docs/formats/cluster-protocol.md's tables,
the same bytes test_wire.c's test_anti_entropy_golden checks wire.c
against (AE_GOLDEN).
The rest mirrors the C unit tests: truncations, bit flips, limits, field
rules.

If wire.c's encoding ever changes on purpose, take the C stream again from
the built unit test (no rebuild needed beyond `make`):

    gdb -q -batch -ex 'break test_frames_back_to_back' -ex run \
        -ex 'break wire_parse_frame' -ex continue \
        -ex 'dump binary memory /tmp/stream.bin buf buf+len' -ex kill \
        build/release/tests/unit/common/test_wire

(the first wire_parse_frame call there is on all 18 frames back to back);
C_DIGESTS came from breaking on wire_record_digest in test_record_digest,
setting *rec's fields and `finish`.
"""

import dataclasses
import hashlib
import os
import re
import socket
import struct
import time

import pytest

import clusterproto as cp
from strata_deps import require_module

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(autouse=True, scope="module")
def xxhash_module():
    # Locally a skip, under CI=true a failure (strata_deps.py).
    return require_module("xxhash", "python3-xxhash")


# ---- Samples: test_wire.c's, field for field -------------------------------------

BIG_KEY = bytes(ord("a") + i % 26 for i in range(cp.REC_KEY_MAX))
BIG_VALUE = bytes((i * 7 + 3) & 0xFF for i in range(3000))
LONG_MSG = b"m" * cp.MSG_MAX

REC_PLAIN = cp.Record(key=b"user:42", value=b"hello world", flags=0xDEADBEEF,
                      expiry=1700000000, version=cp.Version(0x0123456789ABCDEF, 7))
REC_TOMB = cp.Record(key=b"gone", value=b"", flags=0, expiry=1700000123,
                     version=cp.Version(cp.U64_MAX, 0xFFFF), tombstone=True)
REC_BIG = cp.Record(key=BIG_KEY, value=BIG_VALUE, flags=1, expiry=0, version=cp.Version(1, 0))

HS_SAMPLE = cp.Handshake(version=cp.VERSION_MAX, cluster=b"prod-eu",
                         node_id=bytes(0xA0 + i for i in range(16)), short_id=0x1234,
                         generation=0x0011223344556677, addr=b"10.0.0.5:7311")
HS_ACCEPT = cp.HandshakeReply(accept=True, version=1, node_id=bytes(0x10 + i for i in range(16)),
                              short_id=9, generation=77)
HS_REFUSE = cp.HandshakeReply(accept=False, reason=cp.REFUSE_CLUSTER,
                              msg=b"cluster name prod-eu != prod-us")
HS_REFUSE_EMPTY = cp.HandshakeReply(accept=False, reason=cp.REFUSE_SHUTDOWN)

R, D = cp.FLAG_RESPONSE, cp.FLAG_DIGEST

# (name, opcode, flags, body, what decode_body gives back): test_wire.c's
# `samples`, in its order (ids 1..18 in the C stream).
SAMPLES = [
    ("handshake", cp.OP_HANDSHAKE, 0, cp.compose_handshake(HS_SAMPLE), HS_SAMPLE),
    ("accept", cp.OP_HANDSHAKE, R, cp.compose_handshake_reply(HS_ACCEPT), HS_ACCEPT),
    ("refuse", cp.OP_HANDSHAKE, R, cp.compose_handshake_reply(HS_REFUSE), HS_REFUSE),
    ("refuse-empty", cp.OP_HANDSHAKE, R, cp.compose_handshake_reply(HS_REFUSE_EMPTY),
     HS_REFUSE_EMPTY),
    ("ping", cp.OP_PING, 0, cp.compose_ping(0x1122334455667788), 0x1122334455667788),
    ("pong", cp.OP_PING, R, cp.compose_ping(0x1122334455667788), 0x1122334455667788),
    ("error", cp.OP_ERROR, R, cp.compose_error(cp.Error(cp.ERR_NOT_PRIMARY, b"not primary")),
     cp.Error(cp.ERR_NOT_PRIMARY, b"not primary")),
    ("error-long", cp.OP_ERROR, R, cp.compose_error(cp.Error(cp.ERR_INTERNAL, LONG_MSG)),
     cp.Error(cp.ERR_INTERNAL, LONG_MSG)),
    ("read", cp.OP_READ, 0, cp.compose_read(b"user:42"), b"user:42"),
    ("read-digest", cp.OP_READ, D, cp.compose_read(b"user:42"), b"user:42"),
    ("read-found", cp.OP_READ, R, cp.compose_read_reply(REC_PLAIN), REC_PLAIN),
    ("read-tomb", cp.OP_READ, R, cp.compose_read_reply(REC_TOMB), REC_TOMB),
    ("read-big", cp.OP_READ, R, cp.compose_read_reply(REC_BIG), REC_BIG),
    ("read-miss", cp.OP_READ, R, cp.compose_read_reply(None), None),
    ("digest-found", cp.OP_READ, R | D, None, None),  # filled in by sample_body()
    ("digest-miss", cp.OP_READ, R | D, cp.compose_digest_reply(None), cp.Digest(found=False)),
    ("write", cp.OP_WRITE, 0, cp.compose_write([REC_PLAIN, REC_TOMB, REC_BIG]),
     [REC_PLAIN, REC_TOMB, REC_BIG]),
    ("write-ack", cp.OP_WRITE, R, b"", None),
]
SAMPLE_NAMES = [s[0] for s in SAMPLES]

# The bodies' parsers, to hand every body to every parser.
PARSERS = [cp.parse_handshake, cp.parse_handshake_reply, cp.parse_ping, cp.parse_error,
           cp.parse_read, cp.parse_read_reply, cp.parse_digest_reply, cp.parse_write,
           cp.parse_merkle_req, cp.parse_merkle_reply, cp.parse_range_req,
           cp.parse_range_reply, cp.parse_empty]

# ---- Golden bytes from the C codec -----------------------------------------------

# test_wire.c test_header_golden: PING response, id 0x0102030405060708, hlc
# 0x1122334455667788: bytes 0..19 of the frame.
C_HEADER_PREFIX = bytes([ord("S"), ord("T"), ord("R"), ord("C"), 1, 0x02, 0x01, 0x00, 8, 7,
                         6, 5, 4, 3, 2, 1, 8, 0, 0, 0])

# wire.c's frames of test_wire.c's samples, id = position + 1.
C_FRAMES = {
    "handshake": "53545243010100000100000000000000310000000c560a28a955bcbba1a76852010770726f"
                 "642d6575a0a1a2a3a4a5a6a7a8a9aaabacadaeaf341277665544332211000d31302e302e30"
                 "2e353a37333131",
    "accept": "535452430101010002000000000000001c0000000c7da05d95b9c50c5d845c4700011011121314"
              "15161718191a1b1c1d1e1f09004d00000000000000",
    "refuse": "5354524301010100030000000000000023000000ea37abcf5461bb805737a9c50101001f636c75"
              "73746572206e616d652070726f642d657520213d2070726f642d7573",
    "refuse-empty": "53545243010101000400000000000000040000006666470531e9cf99afe79aac01070000",
    "ping": "5354524301020000050000000000000008000000b9ecda0c659c0cbdb4944a438877665544332211",
    "pong": "5354524301020100060000000000000008000000c2d2f6c2659c0cbdb4944a438877665544332211",
    "error": "535452430103010007000000000000000e000000eeacc39ad06a686081c8f95006000b6e6f742070"
             "72696d617279",
    "read": "53545243012000000900000000000000080000009535511ec86352475774fa4e07757365723a3432",
    "read-digest": "53545243012002000a0000000000000008000000df99181cc86352475774fa4e07757365723a"
                   "3432",
    "read-found": "53545243012001000b000000000000002c000000707776907d08896c4183f8960107757365723a"
                  "3432efcdab89674523010700efbeadde00f1536500000000000b68656c6c6f20776f726c64",
    "read-tomb": "53545243012001000c000000000000001e00000048a3164573a0b532b2c17cc60104676f6e65ff"
                 "ffffffffffffffffff000000007bf15365000000000100",
    "read-miss": "53545243012001000e00000000000000010000004f0d5746dbec4e07f4df4bc400",
    "digest-found": "53545243012003000f00000000000000130000008206f5c17d83609342039f8d01efcdab8967"
                    "45230107005e26a81dfc96b731",
    "digest-miss": "5354524301200300100000000000000001000000854ed7fddbec4e07f4df4bc400",
    "write-ack": "5354524301210100120000000000000000000000acd202aac294d3380580062d",
}
# The big ones: (frame size, SHA-256 of the frame, its first 48 bytes).
C_BIG_FRAMES = {
    "error-long": (1060, "bce578f73095588fb95ed30c17c2da9bf47f5f815229ed5ea0f7c58183389712",
                   "535452430103010008000000000000000404000023266e5a14f82661a661c09d090080086d"
                   "6d6d6d6d6d6d6d6d6d6d6d"),
    "read-big": (3310, "43288b5724d56d5147e8a76188b16223a730c19b23ef0a762b2eb78986587621",
                 "53545243012001000d00000000000000ce0c00000bc0f439a0a8ff08614deeaf01fa01616263"
                 "6465666768696a6b6c6d"),
    "write": (3382, "e7eb0d3ea8a508e38a79c6e00f976d4d8dc080269c739d8770230d9459c6ade4",
              "53545243012100001100000000000000160d00009e4c1a75bb4b8f46cb29307b0307757365723a34"
              "32efcdab89674523"),
}
C_STREAM_LEN = 8489
C_STREAM_SHA256 = "158b7d61491b0fcccaa59c9b4d74cfe873f4f70e4219d49274762a0aa804461f"

# wire_record_digest, computed by wire.c.
C_DIGESTS = [
    (REC_PLAIN, 0x31B796FC1DA8265E),
    (REC_TOMB, 0x8029B8C92F799E9D),
    (REC_BIG, 0xFECF5C23341DFA6B),
    (cp.Record(key=b"k"), 0x3D8286FF72C3FCD9),
    (cp.Record(key=b"a", value=BIG_VALUE[:200], flags=0xFFFFFFFF, expiry=cp.U64_MAX,
               version=cp.Version(0, 0x8000)), 0x5EDB5D28D0430F28),
]


def sample(name):
    for s in SAMPLES:
        if s[0] == name:
            return s
    raise KeyError(name)


def sample_body(s):
    if s[0] == "digest-found":
        return cp.compose_digest_reply(REC_PLAIN)
    return s[3]


def sample_decoded(s):
    if s[0] == "digest-found":
        return cp.Digest(True, REC_PLAIN.version, cp.record_digest(REC_PLAIN))
    return s[4]


def sample_frame(s, rid=None):
    rid = SAMPLES.index(s) + 1 if rid is None else rid
    return cp.encode_frame(s[1], sample_body(s), s[2], rid)


def all_sample_frames():
    return [sample_frame(s) for s in SAMPLES]


def recompose(parser, value):
    """Compose again what parser gave back."""
    return {
        cp.parse_handshake: cp.compose_handshake,
        cp.parse_handshake_reply: cp.compose_handshake_reply,
        cp.parse_ping: cp.compose_ping,
        cp.parse_error: cp.compose_error,
        cp.parse_read: cp.compose_read,
        cp.parse_read_reply: cp.compose_read_reply,
        cp.parse_digest_reply: lambda d: (cp.put_u8(1) + cp.put_u64(d.version.hlc) +
                                          cp.put_u16(d.version.node) + cp.put_u64(d.digest))
        if d.found else cp.put_u8(0),
        cp.parse_write: cp.compose_write,
        cp.parse_empty: lambda _: b"",
    }[parser](value)


def parser_of(s):
    op, flags = s[1], s[2]
    if op == cp.OP_HANDSHAKE:
        return cp.parse_handshake_reply if flags & R else cp.parse_handshake
    if op == cp.OP_PING:
        return cp.parse_ping
    if op == cp.OP_ERROR:
        return cp.parse_error
    if op == cp.OP_READ:
        if not flags & R:
            return cp.parse_read
        return cp.parse_digest_reply if flags & D else cp.parse_read_reply
    return cp.parse_empty if flags & R else cp.parse_write


def is_malformed(parser, body):
    try:
        parser(body)
    except cp.WireError as e:
        assert e.result == cp.MALFORMED
        return True
    return False


# ---- The numbers: the same as wire.h / wire.c --------------------------------------

def read_repo(path):
    with open(os.path.join(REPO_ROOT, path)) as f:
        return f.read()


def test_constants_match_wire_h():
    h = read_repo("common/wire.h")
    c = read_repo("common/wire.c")

    def c_int(text):
        return eval(re.sub(r"(\d)u\b", r"\1", text), {})  # "(16u << 20)", "0x0001u"

    defines = dict(re.findall(r"^#define WIRE_(\w+) (.+?)(?:\s*/\*.*)?$", h, re.M))
    assert defines.pop("MAGIC").strip('"').encode() == cp.MAGIC
    checked = 0
    for name, value in defines.items():
        assert c_int(value) == getattr(cp, name), name
        checked += 1
    # HEADER_LEN .. MSG_MAX, FLAG_FRESH, RMW_*, MERKLE_*: all the numeric defines
    assert checked == 22

    enums = re.findall(r"^\s+WIRE_((?:OP|REFUSE|ERR|CL|RMW)_\w+) = (\w+),", h, re.M)
    assert len(enums) == 15 + 7 + 10 + 4 + 10 + 6
    for name, value in enums:
        assert int(value, 0) == getattr(cp, name), name
    op_names = re.findall(r"case WIRE_OP_(\w+): return \"(\w+)\";", c)
    assert len(op_names) == 15 and all(sym == name for sym, name in op_names)
    assert cp.OPCODE_NAMES == {getattr(cp, "OP_" + name): name for _, name in op_names}
    assert cp.REFUSE_NAMES == {int(v, 0): n[len("REFUSE_"):] for n, v in enums
                               if n.startswith("REFUSE_")}
    assert cp.ERROR_NAMES == {int(v, 0): n[len("ERR_"):] for n, v in enums
                              if n.startswith("ERR_")}
    # the RMW request's fixed part: op, levels, flags, two empty byte
    # strings, flags u32 and five u64 (docs/formats/cluster-protocol.md)
    assert len(cp.compose_rmw(cp.Rmw(op=cp.RMW_TOUCH, key=b"k"))) == 4 + 2 + 1 + 4 + 40 == 51
    # the smallest anti-entropy bodies the spec gives
    root = cp.MerkleReq(session=1, range_start=0, range_end=0, depth=1, as_of=0, gc_grace=0)
    assert len(cp.compose_merkle_req(root)) == 43 + 1 + 8 == 52
    assert len(cp.compose_merkle_reply(cp.MerkleReply([0]))) == 17
    assert len(cp.compose_range_req(cp.RangeReq(0, 0))) == 16 + 1 + 8 == 25
    assert len(cp.compose_range_reply(cp.RangeReply(False))) == 2

    results = re.search(r"enum wire_result \{(.*?)\};", h, re.S).group(1)
    order = re.findall(r"^\s+WIRE_(\w+)", results, re.M)
    assert order == ["OK", "NEED_MORE", "BAD_MAGIC", "BAD_VERSION", "OVERSIZED",
                     "BAD_CHECKSUM", "MALFORMED"]
    assert [getattr(cp, n) for n in order] == list(range(len(order)))
    names = dict(re.findall(r"case WIRE_(\w+): return \"([^\"]+)\";", c))
    assert {getattr(cp, n): names[n] for n in order} == cp.RESULT_NAMES

    offsets = dict(re.findall(r"^#define (OFF_\w+) (\d+)", c, re.M))
    assert {k: int(v) for k, v in offsets.items()} == {k: getattr(cp, k) for k in offsets}
    assert len(offsets) == 7
    assert c_int(re.search(r"#define RECORD_MIN_LEN (\(.*\))", c).group(1)) == \
        cp.RECORD_MIN_LEN == 26
    for name in ("HANDSHAKE_ACCEPT", "HANDSHAKE_REFUSE", "READ_NOT_FOUND", "READ_FOUND"):
        assert int(re.search(name + r" = (\d+)", c).group(1)) == getattr(cp, name), name
    assert cp.opcode_name(0x20) == "READ" and cp.opcode_name(0x05) is None
    assert sum(cp.opcode_name(op) is not None for op in range(256)) == 15


# ---- Golden bytes -----------------------------------------------------------------------

def test_header_golden():
    """test_wire.c test_header_golden, byte by byte."""
    frame = cp.encode_frame(cp.OP_PING, cp.compose_ping(0x1122334455667788), cp.FLAG_RESPONSE,
                            0x0102030405060708)
    assert len(frame) == cp.HEADER_LEN + 8
    assert frame[:20] == C_HEADER_PREFIX
    xxh = require_module("xxhash", "python3-xxhash")
    assert struct.unpack_from("<I", frame, 20)[0] == xxh.xxh3_64_intdigest(frame[:20]) & 0xFFFFFFFF
    body = bytes([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    assert frame[32:] == body
    assert struct.unpack_from("<Q", frame, 24)[0] == xxh.xxh3_64_intdigest(body)
    result, f, _ = cp.parse_frame(frame)
    assert result == cp.OK
    assert f == cp.Frame(version=1, opcode=cp.OP_PING, flags=cp.FLAG_RESPONSE,
                         id=0x0102030405060708, body=body, body_len=8, size=40)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_c_golden_frame(name):
    """Each of the C codec's sample frames: composed here to the same bytes,
    and decoded to the sample's fields; the decoded body composes back to
    the same body."""
    s = sample(name)
    ours = sample_frame(s)
    if name in C_FRAMES:
        assert ours.hex() == C_FRAMES[name]
    else:
        size, digest, head = C_BIG_FRAMES[name]
        assert (len(ours), hashlib.sha256(ours).hexdigest(), ours[:48].hex()) == \
            (size, digest, head)
    frame = cp.decode_frame(ours)
    assert (frame.version, frame.opcode, frame.flags, frame.id) == \
        (1, s[1], s[2], SAMPLES.index(s) + 1)
    assert frame.body_len == len(frame.body) == frame.size - cp.HEADER_LEN
    value = cp.decode_body(frame)
    assert value == sample_decoded(s)
    parser = parser_of(s)
    assert parser(frame.body) == value
    assert recompose(parser, value) == frame.body
    assert cp.encode_frame(frame.opcode, recompose(parser, value), frame.flags, frame.id) == ours


def test_c_golden_stream():
    """All 18 frames back to back are the C unit test's stream, byte for
    byte, and parse back one by one."""
    stream = b"".join(all_sample_frames())
    assert len(stream) == C_STREAM_LEN
    assert hashlib.sha256(stream).hexdigest() == C_STREAM_SHA256
    parser = cp.FrameParser()
    parser.feed(stream)
    frames = parser.frames()
    assert [f.id for f in frames] == list(range(1, len(SAMPLES) + 1))
    assert [(f.opcode, f.flags) for f in frames] == [(s[1], s[2]) for s in SAMPLES]
    assert len(parser) == 0


def test_record_digest_golden():
    for rec, want in C_DIGESTS:
        assert cp.record_digest(rec) == want, rec
    # The spec's definition, spelled out: seed from the encoding up to the
    # value's length, then the value.
    xxh = require_module("xxhash", "python3-xxhash")
    enc = cp.put_record(REC_PLAIN)
    prefix = enc[:len(enc) - len(REC_PLAIN.value)]
    assert cp.record_digest(REC_PLAIN) == xxh.xxh3_64_intdigest(
        REC_PLAIN.value, xxh.xxh3_64_intdigest(prefix))


def test_record_digest_every_field_counts():
    """test_wire.c test_record_digest: each field changes the digest."""
    r = REC_PLAIN
    variants = [
        r,
        dataclasses.replace(r, key=b"user:43"),
        dataclasses.replace(r, version=cp.Version(r.version.hlc + 1, r.version.node)),
        dataclasses.replace(r, version=cp.Version(r.version.hlc, r.version.node + 1)),
        dataclasses.replace(r, flags=r.flags ^ 1),
        dataclasses.replace(r, expiry=r.expiry + 1),
        dataclasses.replace(r, value=b"hello worl"),
        dataclasses.replace(r, value=b"", tombstone=True),
    ]
    digests = [cp.record_digest(v) for v in variants]
    assert len(set(digests)) == len(variants)


# ---- Body fields --------------------------------------------------------------------------

VARINTS = [0, 1, 127, 128, 255, 16383, 16384, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63,
           cp.U64_MAX - 1, cp.U64_MAX]
VARINT_SIZES = [1, 1, 1, 2, 2, 2, 3, 5, 5, 9, 10, 10, 10]


def put_all_fields():
    return (cp.put_u8(0xAB) + cp.put_u16(0xBEEF) + cp.put_u32(0xCAFEF00D) +
            cp.put_u64(0x0123456789ABCDEF) + b"".join(cp.put_varint(v) for v in VARINTS) +
            cp.put_raw(b"0123456789abcdef") + cp.put_bytes(b"abc") + cp.put_bytes(b""))


def get_all_fields(r):
    return ([r.get_u8(), r.get_u16(), r.get_u32(), r.get_u64()] +
            [r.get_varint() for _ in VARINTS] +
            [r.get_raw(16), r.get_bytes(3), r.get_bytes(0)])


def test_fields_round_trip_and_bounds():
    assert [len(cp.put_varint(v)) for v in VARINTS] == VARINT_SIZES
    data = put_all_fields()
    assert data[:15] == bytes.fromhex("abefbe0df0feca efcdab8967452301".replace(" ", ""))
    r = cp.Reader(data)
    assert get_all_fields(r) == [0xAB, 0xBEEF, 0xCAFEF00D, 0x0123456789ABCDEF] + VARINTS + \
        [b"0123456789abcdef", b"abc", b""]
    assert r.done()
    with pytest.raises(cp.WireError):
        r.get_u8()
    for k in range(len(data)):  # every prefix runs out
        with pytest.raises(cp.WireError) as e:
            get_all_fields(cp.Reader(data[:k]))
        assert e.value.result == cp.MALFORMED
    for v in (-1, 1 << 64):
        with pytest.raises(ValueError):
            cp.put_varint(v)
    with pytest.raises(ValueError):
        cp.put_u16(1 << 16)


@pytest.mark.parametrize("data,ok,value", [
    (b"\x00", True, 0),
    (b"\x7f", True, 127),
    (b"\x80\x01", True, 128),
    (b"\x80", False, None),                   # ends inside
    (b"\x80\x00", False, None),               # longer form of 0
    (b"\xff\x80\x00", False, None),           # longer form of 127
    (b"\xff" * 9 + b"\x01", True, cp.U64_MAX),
    (b"\xff" * 9 + b"\x02", False, None),     # 65 bits
    (b"\x80" * 10 + b"\x01", False, None),    # 11 bytes
])
def test_varint_rules(data, ok, value):
    r = cp.Reader(data)
    if ok:
        assert r.get_varint() == value
        assert r.done()
    else:
        with pytest.raises(cp.WireError):
            r.get_varint()


def test_byte_string_rules():
    with pytest.raises(cp.WireError):
        cp.Reader(b"\x04abcd").get_bytes(3)          # over max
    assert cp.Reader(b"\x04abcd").get_bytes(4) == b"abcd"
    with pytest.raises(cp.WireError):
        cp.Reader(b"\x05abcd").get_bytes()           # over what is left
    with pytest.raises(cp.WireError):
        cp.Reader(b"\xff" * 9 + b"\x01").get_bytes()  # a 64-bit length
    with pytest.raises(cp.WireError):
        cp.Reader(b"\x00").get_bytes(10, 1)           # under min


# ---- Bodies ---------------------------------------------------------------------------------

def round_trip(compose, parse, value):
    body = compose(value)
    got = parse(body)
    assert got == value
    assert compose(got) == body
    return body


def test_handshake_round_trips():
    for h in [HS_SAMPLE,
              cp.Handshake(0, b"c", bytes(16), 0, 0, b"a"),
              cp.Handshake(255, b"x" * cp.CLUSTER_MAX, b"\xff" * 16, 0xFFFF, cp.U64_MAX,
                           b"h" * cp.ADDR_MAX)]:
        round_trip(cp.compose_handshake, cp.parse_handshake, h)
    for h in [HS_ACCEPT, HS_REFUSE, HS_REFUSE_EMPTY,
              cp.HandshakeReply(accept=True, version=255, node_id=b"\xff" * 16, short_id=0xFFFF,
                                generation=cp.U64_MAX),
              cp.HandshakeReply(accept=False, reason=0xFFFF, msg=b"z" * cp.MSG_MAX)]:
        round_trip(cp.compose_handshake_reply, cp.parse_handshake_reply, h)
    assert HS_REFUSE.reason_name() == "CLUSTER"
    assert cp.HandshakeReply(accept=False, reason=99).reason_name() == "99"
    # a refusal parses with the accept fields zeroed, as wire.c memsets them
    assert cp.parse_handshake_reply(cp.compose_handshake_reply(HS_REFUSE)).node_id == bytes(16)


def test_ping_error_round_trips():
    for hlc in (0, 1, cp.U64_MAX):
        assert round_trip(cp.compose_ping, cp.parse_ping, hlc) == struct.pack("<Q", hlc)
    for e in [cp.Error(cp.ERR_NOT_READY), cp.Error(0xFFFF, b"x" * cp.MSG_MAX),
              cp.Error(cp.ERR_BAD_REQUEST, b"bad")]:
        round_trip(cp.compose_error, cp.parse_error, e)
    assert cp.Error(cp.ERR_TOO_LARGE).name() == "TOO_LARGE"
    assert cp.Error(77).name() == "77"


def test_read_write_round_trips():
    recs = [REC_PLAIN, REC_TOMB, REC_BIG, cp.Record(key=b"k"),
            cp.Record(key=b"v" * 250, value=b"\x00" * 70000, flags=0xFFFFFFFF,
                      expiry=cp.U64_MAX, version=cp.Version(cp.U64_MAX, 0xFFFF))]
    for rec in recs:
        body = round_trip(cp.compose_read_reply, cp.parse_read_reply, rec)
        assert body[0] == cp.READ_FOUND
        assert len(cp.put_record(rec)) >= cp.RECORD_MIN_LEN
        d = cp.parse_digest_reply(cp.compose_digest_reply(rec))
        assert d == cp.Digest(True, rec.version, cp.record_digest(rec))
    assert len(cp.put_record(cp.Record(key=b"k"))) == cp.RECORD_MIN_LEN
    assert cp.compose_read_reply(None) == b"\x00"
    assert cp.parse_read_reply(b"\x00") is None
    assert cp.parse_digest_reply(b"\x00") == cp.Digest(found=False)
    for key in (b"k", b"user:42", BIG_KEY):
        round_trip(cp.compose_read, cp.parse_read, key)
    for n in (1, 2, 5):
        round_trip(cp.compose_write, cp.parse_write, recs[:n])
    # 200 smallest records: the count takes 2 bytes, still within len / 26
    many = [cp.Record(key=b"k")] * 200
    body = round_trip(cp.compose_write, cp.parse_write, many)
    assert body[:2] == b"\xc8\x01"
    assert cp.parse_empty(b"") is None


def test_decode_body_dispatch():
    def frame(op, flags, body):
        return cp.decode_frame(cp.encode_frame(op, body, flags, 5))
    assert cp.decode_body(frame(cp.OP_READ, 0, cp.compose_read(b"k"))) == b"k"
    assert cp.decode_body(frame(cp.OP_READ, D, cp.compose_read(b"k"))) == b"k"
    assert cp.decode_body(frame(cp.OP_ERROR, R, cp.compose_error(cp.Error(1)))) == cp.Error(1)
    assert cp.decode_body(frame(cp.OP_RMW, 0, b"\x01\x02")) == b"\x01\x02"
    with pytest.raises(cp.WireError):
        cp.decode_body(frame(cp.OP_WRITE, R, b"\x00"))


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_body_truncated_or_long(name):
    """Every proper prefix of a sample body, and the body with one byte
    more, is malformed (test_wire.c test_bodies_truncated_or_long)."""
    s = sample(name)
    parser, body = parser_of(s), sample_body(s)
    parser(body)
    for k in range(len(body)):
        assert is_malformed(parser, body[:k]), "prefix %d of %d parsed" % (k, len(body))
    assert is_malformed(parser, body + b"\x00")


def test_bodies_invalid_fields():
    """test_wire.c test_bodies_invalid_fields."""
    tail = bytes([1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])

    def rec(tomb, *value):
        return tail + bytes([tomb, *value])
    assert cp.parse_read_reply(bytes([1, 1, ord("k")]) + rec(0, 0)).key == b"k"
    assert is_malformed(cp.parse_read_reply, bytes([1, 0]) + rec(0, 0))                # key 0
    assert is_malformed(cp.parse_read_reply, bytes([1, 1, ord("k")]) + rec(2, 0))      # bool 2
    assert is_malformed(cp.parse_read_reply, bytes([1, 1, ord("k")]) + rec(1, 1, 118))  # tomb+value
    assert is_malformed(cp.parse_read_reply, bytes([2, 1, ord("k")]) + rec(0, 0))      # found 2

    assert is_malformed(cp.parse_read, b"\xfb\x01" + b"k" * 251)
    assert cp.parse_read(b"\xfa\x01" + b"k" * 250) == b"k" * 250
    assert is_malformed(cp.parse_read, b"\x00")

    assert is_malformed(cp.parse_write, b"\x00")                  # count 0
    assert is_malformed(cp.parse_write, b"\xff\xff\xff\xff\x0f")  # more than the bytes hold
    one = cp.put_record(cp.Record(key=b"k"))
    assert is_malformed(cp.parse_write, b"\x02" + one + b"\x00" * 25)  # 2nd record broken
    assert is_malformed(cp.parse_write, b"\x02" + one)

    assert is_malformed(cp.parse_handshake_reply, bytes([2, 0, 0, 0]))
    assert is_malformed(cp.parse_error, cp.put_u16(1) + cp.put_bytes(b"x" * (cp.MSG_MAX + 1)))
    assert is_malformed(cp.parse_handshake_reply,
                        b"\x01" + cp.put_u16(1) + cp.put_bytes(b"x" * (cp.MSG_MAX + 1)))

    node_id = HS_SAMPLE.node_id

    def hs(cluster, addr):
        return (cp.put_u8(1) + cp.put_bytes(cluster) + node_id + cp.put_u16(1) + cp.put_u64(1) +
                cp.put_bytes(addr))

    assert cp.parse_handshake(hs(b"c", b"a:1")).cluster == b"c"
    assert is_malformed(cp.parse_handshake, hs(b"", b"a:1"))
    assert is_malformed(cp.parse_handshake, hs(b"c", b""))
    assert is_malformed(cp.parse_handshake, hs(b"c" * 256, b"a:1"))
    assert is_malformed(cp.parse_handshake, hs(b"c", b"a" * 513))

    assert is_malformed(cp.parse_digest_reply, bytes([3]) + bytes(18))


def test_every_parser_on_every_body():
    """A body handed to the wrong parser either decodes or is malformed;
    nothing else escapes."""
    for s in SAMPLES:
        for parser in PARSERS:
            try:
                parser(sample_body(s))
            except cp.WireError as e:
                assert e.result == cp.MALFORMED


def test_compose_rejects_invalid():
    """test_wire.c test_compose_rejects_invalid: ValueError where C sets
    ST_INVAL."""
    bad = [
        lambda: cp.compose_write([dataclasses.replace(REC_BIG, key=b"k" * 251)]),
        lambda: cp.compose_write([dataclasses.replace(REC_PLAIN, key=b"")]),
        lambda: cp.compose_write([dataclasses.replace(REC_PLAIN, tombstone=True)]),
        lambda: cp.compose_write([]),
        lambda: cp.compose_read_reply(dataclasses.replace(REC_BIG, key=b"k" * 251)),
        lambda: cp.compose_handshake(dataclasses.replace(HS_SAMPLE, cluster=b"")),
        lambda: cp.compose_handshake(dataclasses.replace(HS_SAMPLE, cluster=b"c" * 256)),
        lambda: cp.compose_handshake(dataclasses.replace(HS_SAMPLE, addr=b"")),
        lambda: cp.compose_handshake(dataclasses.replace(HS_SAMPLE, addr=b"a" * 513)),
        lambda: cp.compose_handshake(dataclasses.replace(HS_SAMPLE, node_id=b"x" * 15)),
        lambda: cp.compose_handshake(dataclasses.replace(HS_SAMPLE, short_id=1 << 16)),
        lambda: cp.compose_error(cp.Error(1, LONG_MSG + b"m")),
        lambda: cp.compose_handshake_reply(cp.HandshakeReply(False, msg=LONG_MSG + b"m")),
        lambda: cp.compose_read(b""),
        lambda: cp.compose_read(b"k" * 251),
        lambda: cp.encode_frame(cp.OP_PING, cp.compose_ping(1), cp.FLAGS_DEFINED + 1, 3),
        lambda: cp.encode_frame(cp.OP_WRITE, bytes(100), 0, 77, limit=cp.HEADER_LEN + 99),
        lambda: cp.encode_frame(cp.OP_PING, b"", 0, 1 << 64),
    ]
    for i, f in enumerate(bad):
        with pytest.raises(ValueError):
            f()
    assert len(cp.encode_frame(cp.OP_WRITE, bytes(100), 0, 77, limit=cp.HEADER_LEN + 100)) == 132


# ---- Anti-entropy: MERKLE_TREE and RANGE_READ ---------------------------------------------

# Computed by hand from docs/formats/cluster-protocol.md's tables (not by
# the C codec); test_wire.c test_anti_entropy_golden checks wire.c against
# the same bytes. (value, body bytes, compose, parse)
AE_GOLDEN = [
    # session 0x0102030405060708, range (2^64 - 16, 16] (it wraps), depth
    # 15, as of 1700000000, gc grace 864000, level 5, step 5, nodes 3, 31
    (cp.MerkleReq(session=0x0102030405060708, range_start=cp.U64_MAX - 15, range_end=16,
                  depth=15, as_of=1700000000, gc_grace=864000, level=5, step=5, nodes=[3, 31]),
     bytes([0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,    # session
            0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,    # range start
            0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,    # range end
            0x0F,                                              # depth
            0x00, 0xF1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00,    # as of
            0x00, 0x2F, 0x0D, 0x00, 0x00, 0x00, 0x00, 0x00,    # gc grace
            0x05, 0x05,                                        # level, step
            0x02,                                              # count
            0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,    # node 3
            0x1F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),  # node 31
     cp.compose_merkle_req, cp.parse_merkle_req),
    # the root's answer: one hash, 3 records
    (cp.MerkleReply(hashes=[0x1122334455667788], records=3),
     bytes([0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  # count, hash
            0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),      # records
     cp.compose_merkle_reply, cp.parse_merkle_reply),
    # range (2^63, 2^63 + 4096], after "user:42", 1024 records, 1 MiB
    (cp.RangeReq(range_start=1 << 63, range_end=(1 << 63) + 4096, after=b"user:42",
                 max_records=1024, max_bytes=1 << 20),
     bytes([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,   # range start
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,   # range end
            0x07]) + b"user:42" +                             # after
     bytes([0x00, 0x04, 0x00, 0x00,                           # max records
            0x00, 0x00, 0x10, 0x00]),                         # max bytes
     cp.compose_range_req, cp.parse_range_req),
    # the last page: one smallest tombstone
    (cp.RangeReply(more=False, records=[cp.Record(key=b"k", expiry=4, version=cp.Version(2, 3),
                                                  tombstone=True)]),
     bytes([0x00, 0x01,                                       # more, count
            0x01, ord("k"),                                   # key
            0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   # version hlc
            0x03, 0x00,                                       # version node
            0x00, 0x00, 0x00, 0x00,                           # flags
            0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   # expiry: deleted at
            0x01, 0x00]),                                     # tombstone, empty value
     cp.compose_range_reply, cp.parse_range_reply),
]


@pytest.mark.parametrize("value,body,compose,parse", AE_GOLDEN,
                         ids=["merkle-req", "merkle-reply", "range-req", "range-reply"])
def test_anti_entropy_golden(value, body, compose, parse):
    assert compose(value) == body
    assert parse(body) == value
    for k in range(len(body)):
        assert is_malformed(parse, body[:k]), "prefix %d of %d parsed" % (k, len(body))
    assert is_malformed(parse, body + b"\x00")


def test_anti_entropy_golden_frame():
    """The golden MERKLE_TREE request in a frame: header bytes 0..19 by
    hand, and decode_body gives the request back."""
    q, body = AE_GOLDEN[0][0], AE_GOLDEN[0][1]
    frame = cp.encode_frame(cp.OP_MERKLE_TREE, body, 0, 0x0102030405060708)
    assert frame[:20] == bytes([ord("S"), ord("T"), ord("R"), ord("C"), 1, 0x30, 0x00, 0x00,
                                8, 7, 6, 5, 4, 3, 2, 1, 60, 0, 0, 0])
    assert cp.decode_body(cp.decode_frame(frame)) == q
    rq, rbody = AE_GOLDEN[2][0], AE_GOLDEN[2][1]
    frame = cp.encode_frame(cp.OP_RANGE_READ, rbody, 0, 2)
    assert frame[5] == 0x31 and frame[16:20] == bytes([32, 0, 0, 0])
    assert cp.decode_body(cp.decode_frame(frame)) == rq
    rep = AE_GOLDEN[3][0]
    frame = cp.encode_frame(cp.OP_RANGE_READ, AE_GOLDEN[3][1], cp.FLAG_RESPONSE, 2)
    assert cp.decode_body(cp.decode_frame(frame)) == rep


def test_merkle_round_trips():
    """test_wire.c test_merkle_req_round_trip and test_merkle_reply, in
    small: depths, levels, steps, node counts, wrapping and whole-ring
    ranges; sizes as the spec gives them."""
    ranges = [(1000, 2000), (cp.U64_MAX - 99, 100), (42, 42), (0, cp.U64_MAX), (cp.U64_MAX, 0)]
    cases = 0
    for depth in (1, 2, 5, 15, 20):
        for level in range(depth + 1):
            for step in sorted({0, 1, 5, depth - level}):
                if level + step > depth:
                    continue
                for n in (1, 2, 3, 129):
                    if n > 1 << level or n << step > cp.MERKLE_HASHES_MAX:
                        continue
                    nodes = [(1 << level) - 1, 0][:n] + [(i * 7919) % (1 << level)
                                                          for i in range(n - 2)]
                    start, end = ranges[cases % len(ranges)]
                    q = cp.MerkleReq(session=cases * 0x9E3779B97F4A7C15 & cp.U64_MAX,
                                     range_start=start, range_end=end, depth=depth,
                                     as_of=1700000000 + cases, gc_grace=864000, level=level,
                                     step=step, nodes=nodes)
                    body = round_trip(cp.compose_merkle_req, cp.parse_merkle_req, q)
                    assert len(body) == 43 + len(cp.put_varint(n)) + 8 * n
                    cases += 1
    assert cases > 100
    # at the limits: 65,536 nodes (a 3-byte count), 65,536 hashes asked by one
    big = cp.MerkleReq(1, 0, 0, 16, 0, 0, level=16, nodes=list(range(cp.MERKLE_HASHES_MAX)))
    body = round_trip(cp.compose_merkle_req, cp.parse_merkle_req, big)
    assert len(body) == 43 + 3 + 8 * 65536 == 524334
    round_trip(cp.compose_merkle_req, cp.parse_merkle_req,
               cp.MerkleReq(1, 0, 0, 16, 0, 0, level=0, step=16, nodes=[0]))

    for n in (0, 1, 32, 128, cp.MERKLE_HASHES_MAX):
        rep = cp.MerkleReply([(i + 1) * 0x9E3779B97F4A7C15 & cp.U64_MAX for i in range(n)],
                             records=n * 3)
        body = round_trip(cp.compose_merkle_reply, cp.parse_merkle_reply, rep)
        assert len(body) == len(cp.put_varint(n)) + 8 * n + 8


def merkle_raw(depth=5, level=3, step=0, nodes=(0,), count=None):
    """A MERKLE_TREE request body written field by field, unchecked."""
    nodes = list(nodes)
    return (cp.put_u64(7) + cp.put_u64(1) + cp.put_u64(2) + cp.put_u8(depth) + cp.put_u64(3) +
            cp.put_u64(4) + cp.put_u8(level) + cp.put_u8(step) +
            cp.put_varint(len(nodes) if count is None else count) +
            b"".join(cp.put_u64(x) for x in nodes))


@pytest.mark.parametrize("depth,level,step,nodes,ok", [
    (0, 0, 0, [0], False), (1, 0, 0, [0], True), (20, 0, 0, [0], True), (21, 0, 0, [0], False),
    (255, 0, 0, [0], False),
    (5, 5, 0, [31], True), (5, 6, 0, [0], False), (1, 255, 0, [0], False),
    (5, 3, 2, [7], True), (5, 3, 3, [0], False), (5, 0, 5, [0], True), (5, 0, 6, [0], False),
    (20, 0, 255, [0], False),
    (5, 3, 0, [], False),
    (16, 11, 5, list(range(2048)), True), (17, 12, 5, list(range(2049)), False),
    (16, 0, 16, [0], True), (17, 0, 17, [0], False), (20, 2, 14, [0, 1, 2, 3], True),
    (20, 2, 15, [0, 1, 2], False),
    (5, 3, 0, [7], True), (5, 3, 0, [8], False), (5, 0, 0, [1], False),
    (5, 3, 2, [0, 0, cp.U64_MAX], False), (20, 20, 0, [(1 << 20) - 1], True),
    (20, 20, 0, [1 << 20], False),
])
def test_merkle_req_rules(depth, level, step, nodes, ok):
    """test_wire.c test_merkle_req_invalid: each rule refused by the
    composer (ValueError) and by the parser (MALFORMED); the allowed
    neighbours pass both and compose to the hand-built bytes."""
    q = cp.MerkleReq(7, 1, 2, depth, 3, 4, level=level, step=step, nodes=nodes)
    body = merkle_raw(depth, level, step, nodes)
    assert cp.compose_merkle_req(q, check=False) == body
    if ok:
        assert cp.compose_merkle_req(q) == body
        assert cp.parse_merkle_req(body) == q
    else:
        with pytest.raises(ValueError):
            cp.compose_merkle_req(q)
        assert is_malformed(cp.parse_merkle_req, body)


def test_merkle_counts_the_body_does_not_hold():
    assert is_malformed(cp.parse_merkle_req, merkle_raw(nodes=[0, 1, 2], count=4))
    # over the limit with every node present; 64-bit counts
    assert is_malformed(cp.parse_merkle_req,
                        merkle_raw(17, 17, 0, range(cp.MERKLE_HASHES_MAX + 1)))
    assert is_malformed(cp.parse_merkle_req, merkle_raw(count=cp.U64_MAX))
    assert is_malformed(cp.parse_merkle_req, merkle_raw(nodes=[0, 1], count=1 << 61))
    # a count in a longer form than needed
    assert is_malformed(cp.parse_merkle_req, merkle_raw(nodes=[])[:-1] + b"\x81\x00" + bytes(8))
    assert is_malformed(cp.parse_merkle_reply, b"\x02" + bytes(8) + bytes(8))
    assert is_malformed(cp.parse_merkle_reply, cp.put_varint(cp.MERKLE_HASHES_MAX + 1) +
                        bytes(8 * (cp.MERKLE_HASHES_MAX + 1) + 8))
    assert is_malformed(cp.parse_merkle_reply, cp.put_varint(cp.U64_MAX) + bytes(8))
    with pytest.raises(ValueError):
        cp.compose_merkle_reply(cp.MerkleReply([0] * (cp.MERKLE_HASHES_MAX + 1)))


def test_range_round_trips():
    cases = 0
    for after in (b"", b"k", b"user:42", BIG_KEY[:127], BIG_KEY[:128], BIG_KEY):
        for start, end in ((0, 100), (cp.U64_MAX - 7, 7), (5, 5), (0, 0)):
            limits = [(1, 0), (1024, 1 << 20), (0xFFFFFFFF, 0xFFFFFFFF)][cases % 3]
            q = cp.RangeReq(start, end, after, *limits)
            body = round_trip(cp.compose_range_req, cp.parse_range_req, q)
            assert len(body) == 16 + len(cp.put_varint(len(after))) + len(after) + 8
            for k in range(len(body)):
                assert is_malformed(cp.parse_range_req, body[:k])
            assert is_malformed(cp.parse_range_req, body + b"\x00")
            cases += 1
    pages = [cp.RangeReply(False), cp.RangeReply(True), cp.RangeReply(True, [REC_PLAIN]),
             cp.RangeReply(False, [REC_TOMB]), cp.RangeReply(True, [REC_PLAIN, REC_TOMB, REC_BIG]),
             cp.RangeReply(False, [cp.Record(key=bytes([97 + i % 26]), version=cp.Version(i, i),
                                             tombstone=i % 2 == 1) for i in range(200)])]
    for page in pages:
        body = round_trip(cp.compose_range_reply, cp.parse_range_reply, page)
        assert len(body) == 1 + len(cp.put_varint(len(page.records))) + sum(
            len(cp.put_record(rec)) for rec in page.records)
        if len(body) < 4000:
            for k in range(len(body)):
                assert is_malformed(cp.parse_range_reply, body[:k])
        assert is_malformed(cp.parse_range_reply, body + b"\x00")


def test_range_rules():
    """test_wire.c test_range_req_invalid and test_range_reply's rules."""
    def req(after, max_records):
        return cp.put_u64(1) + cp.put_u64(2) + cp.put_bytes(after) + cp.put_u32(max_records) + \
            cp.put_u32(77)
    assert cp.parse_range_req(req(b"k" * 250, 1)).after == b"k" * 250
    assert is_malformed(cp.parse_range_req, req(b"k" * 251, 1))
    assert is_malformed(cp.parse_range_req, req(b"", 0))
    for after, max_records in ((b"k" * 251, 1), (b"", 0), (b"k" * 250, 0)):
        with pytest.raises(ValueError):
            cp.compose_range_req(cp.RangeReq(1, 2, after, max_records, 77))
        assert cp.compose_range_req(cp.RangeReq(1, 2, after, max_records, 77),
                                    check=False) == req(after, max_records)

    one = cp.put_record(cp.Record(key=b"k"))
    assert len(one) == cp.RECORD_MIN_LEN
    for more, count, recs, ok in [(0, 0, 0, True), (1, 0, 0, True), (2, 0, 0, False),
                                  (255, 1, 1, False), (1, 1, 1, True), (1, 2, 1, False),
                                  (0, 1, 2, False), (0, 4, 4, True), (0, 5, 4, False),
                                  (0, 200, 200, True), (0, 201, 200, False),
                                  (1, cp.U64_MAX, 1, False)]:
        body = bytes([more]) + cp.put_varint(count) + one * recs
        assert is_malformed(cp.parse_range_reply, body) != ok, (more, count, recs)
    # a tombstone with a value, a key of 0 or 251 bytes, a tombstone byte
    # of 2: each as the 2nd record of 3
    for tomb, key, value in ((1, b"k", b"v"), (0, b"", b""), (0, b"k" * 251, b""),
                             (2, b"k", b"")):
        bad = (cp.put_bytes(key) + cp.put_u64(1) + cp.put_u16(2) + cp.put_u32(3) +
               cp.put_u64(4) + cp.put_u8(tomb) + cp.put_bytes(value))
        assert is_malformed(cp.parse_range_reply, b"\x01\x03" + one + bad + one)
    for rec in (dataclasses.replace(REC_PLAIN, tombstone=True),
                dataclasses.replace(REC_PLAIN, key=b""),
                dataclasses.replace(REC_PLAIN, key=b"k" * 251)):
        with pytest.raises(ValueError):
            cp.compose_range_reply(cp.RangeReply(True, [REC_TOMB, rec]))


# ---- Frames ----------------------------------------------------------------------------------

def test_frame_truncations():
    """Every proper prefix of every sample frame asks for more, with
    wire_parse_frame's count, and never yields a frame."""
    for s, frame in zip(SAMPLES, all_sample_frames()):
        for k in range(len(frame)):
            result, f, need = cp.parse_frame(frame[:k])
            assert (result, f) == (cp.NEED_MORE, None), "%s: prefix %d" % (s[0], k)
            assert need == (cp.HEADER_LEN if k < cp.HEADER_LEN else len(frame))
        assert cp.parse_frame(frame).result == cp.OK
        with pytest.raises(cp.WireError) as e:
            cp.decode_frame(frame[:-1])
        assert e.value.result == cp.NEED_MORE


def test_frame_bit_flips():
    """Every single-bit flip of every sample frame is caught by the part
    that covers it: magic bytes 0..3, version byte 4, the header check
    (bytes 5..23, itself included), the body check (24..31 and the body)
    (test_wire.c test_frame_bit_flips)."""
    want_at = [cp.BAD_MAGIC] * 4 + [cp.BAD_VERSION] + [cp.BAD_CHECKSUM] * 27
    for s, frame in zip(SAMPLES, all_sample_frames()):
        c = bytearray(frame)
        for bit in range(len(frame) * 8):
            at = bit // 8
            c[at] ^= 1 << (bit % 8)
            result = cp.parse_frame(c).result
            want = want_at[at] if at < cp.HEADER_LEN else cp.BAD_CHECKSUM
            assert result == want, "%s: bit %d (byte %d) gave %s" % (
                s[0], bit, at, cp.result_name(result))
            c[at] ^= 1 << (bit % 8)
        assert bytes(c) == frame


def test_frame_limits():
    """test_wire.c test_frame_limits: oversized from the header alone."""
    frame = cp.encode_frame(cp.OP_WRITE, bytes(range(100)), 0, 77)
    assert cp.parse_frame(frame, limit=len(frame)).result == cp.OK
    result, f, _ = cp.parse_frame(frame, limit=len(frame) - 1)
    assert result == cp.OVERSIZED
    assert (f.id, f.body_len, f.body, f.opcode) == (77, 100, None, cp.OP_WRITE)

    for n in (0xFFFFFFFF, cp.FRAME_MAX_DEFAULT - cp.HEADER_LEN + 1, 1 << 31):
        header = cp.reseal_header(frame[:16] + struct.pack("<I", n) + frame[20:32])
        assert len(header) == cp.HEADER_LEN
        result, f, _ = cp.parse_frame(header)  # 32 bytes are all the parser gets
        assert result == cp.OVERSIZED
        assert (f.body_len, f.size) == (n, n + cp.HEADER_LEN)
        with pytest.raises(cp.WireError) as e:
            p = cp.FrameParser()
            p.feed(header)
            p.next_frame()
        assert e.value.result == cp.OVERSIZED and e.value.frame.id == 77
    # exactly at the limit: wait for it
    at_limit = cp.reseal_header(frame[:16] + struct.pack("<I", cp.FRAME_MAX_DEFAULT - 32) +
                                frame[20:])
    assert cp.parse_frame(at_limit) == (cp.NEED_MORE, None, cp.FRAME_MAX_DEFAULT)
    # a limit below the header size refuses every frame
    empty = cp.reseal_header(frame[:16] + struct.pack("<I", 0) + frame[20:32])
    assert cp.parse_frame(empty, limit=16).result == cp.OVERSIZED
    # raw_frame writes whatever length it is told, with a valid header check
    lie = cp.raw_frame(cp.OP_PING, cp.compose_ping(1), 0, 9, body_len=1 << 30)
    assert cp.parse_frame(lie).result == cp.OVERSIZED


def test_frame_reserved_flags():
    frame = sample_frame(sample("ping"), 9)
    reserved = [bit for bit in range(16) if not cp.FLAGS_DEFINED & 1 << bit]
    assert reserved == list(range(3, 16))
    for bit in reserved:
        c = bytearray(frame)
        c[6 + bit // 8] |= 1 << (bit % 8)
        result, f, _ = cp.parse_frame(cp.reseal_header(c))
        assert result == cp.MALFORMED
        assert f.id == 9 and f.body is None
        assert cp.parse_frame(cp.raw_frame(cp.OP_PING, b"", 1 << bit, 9)).result == cp.MALFORMED


@pytest.mark.parametrize("data,want", [
    (b"", cp.NEED_MORE),
    (b"S", cp.NEED_MORE),
    (b"STRC", cp.NEED_MORE),
    (b"STRC\x01", cp.NEED_MORE),
    (b"get foo\r\n", cp.BAD_MAGIC),
    (b"GET / HTTP/1.1\r\n", cp.BAD_MAGIC),
    (b"\x80\x00", cp.BAD_MAGIC),  # memcached binary
    (b"SX", cp.BAD_MAGIC),
    (b"STRC\x00", cp.BAD_VERSION),
    (b"STRC\x02", cp.BAD_VERSION),
    (b"STRC\xff", cp.BAD_VERSION),
])
def test_frame_early_rejects(data, want):
    result, _, need = cp.parse_frame(data)
    assert result == want
    if want == cp.NEED_MORE:
        assert need == cp.HEADER_LEN


def test_raw_frame_overrides():
    good = cp.encode_frame(cp.OP_PING, cp.compose_ping(5), 0, 3)
    assert cp.raw_frame(cp.OP_PING, cp.compose_ping(5), 0, 3) == good
    assert cp.parse_frame(cp.raw_frame(cp.OP_PING, b"", magic=b"STRX")).result == cp.BAD_MAGIC
    assert cp.parse_frame(cp.raw_frame(cp.OP_PING, b"", version=2)).result == cp.BAD_VERSION
    assert cp.parse_frame(cp.raw_frame(cp.OP_PING, b"", header_check_value=0)).result == \
        cp.BAD_CHECKSUM
    assert cp.parse_frame(cp.raw_frame(cp.OP_PING, b"x", body_check_value=0)).result == \
        cp.BAD_CHECKSUM
    # empty body: the body check is XXH3 of zero bytes
    xxh = require_module("xxhash", "python3-xxhash")
    assert struct.unpack_from("<Q", cp.encode_frame(cp.OP_WRITE, b"", R, 1), 24)[0] == \
        xxh.xxh3_64_intdigest(b"")
    with pytest.raises(cp.WireError) as e:
        cp.decode_frame(good + b"S")
    assert e.value.result == cp.MALFORMED


def test_stream_in_chunks():
    """The 18 frames back to back, fed in chunks of various sizes as reads
    deliver them (test_wire.c test_frames_back_to_back)."""
    frames = all_sample_frames()
    stream = b"".join(frames)
    for chunk in (1, 2, 3, 7, 13, 31, 32, 33, 64, 80, 1000, len(stream)):
        parser, got = cp.FrameParser(), []
        for i in range(0, len(stream), chunk):
            parser.feed(stream[i:i + chunk])
            got += parser.frames()
        assert [f.id for f in got] == list(range(1, len(frames) + 1)), chunk
        assert [f.body for f in got] == [f[cp.HEADER_LEN:] for f in frames]
        assert len(parser) == 0
    # garbage after a frame is refused from its first byte, as in wire.c
    parser = cp.FrameParser()
    parser.feed(stream[:len(frames[0])] + b"ST")
    assert len(parser.frames()) == 1
    parser.feed(b"X")
    with pytest.raises(cp.WireError) as e:
        parser.frames()
    assert e.value.result == cp.BAD_MAGIC


# ---- ClusterClient over a socketpair (no process) -------------------------------------

class Acceptor:
    """The other end of a socketpair, playing the node by hand."""

    def __init__(self, sock):
        self.sock = sock
        sock.settimeout(2.0)
        self.parser = cp.FrameParser()

    def frames(self, n):
        out = []
        while len(out) < n:
            out += self.parser.frames()
            if len(out) < n:
                chunk = self.sock.recv(65536)
                assert chunk, "client closed"
                self.parser.feed(chunk)
        return out

    def answer(self, req, opcode=None, body=b"", flags=cp.FLAG_RESPONSE):
        self.sock.sendall(cp.encode_frame(req.opcode if opcode is None else opcode, body,
                                          flags, req.id))


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    client = cp.ClusterClient.from_socket(a, timeout=2.0)
    yield client, Acceptor(b)
    client.close()
    b.close()


def test_client_handshake(pair):
    client, node = pair
    accept = cp.HandshakeReply(accept=True, version=1, node_id=b"N" * 16, short_id=3,
                               generation=11)
    # The reply is queued before the request is sent: the client's first id is 1.
    node.sock.sendall(cp.encode_frame(cp.OP_HANDSHAKE, cp.compose_handshake_reply(accept),
                                      cp.FLAG_RESPONSE, 1))
    reply = client.handshake("prod-eu", b"\xa0" * 16, 0x1234, 5, "127.0.0.1:7311")
    assert reply == accept and client.peer == accept and client.version == 1
    (req,) = node.frames(1)
    assert (req.opcode, req.flags, req.id, req.version) == (cp.OP_HANDSHAKE, 0, 1, 1)
    assert cp.parse_handshake(req.body) == cp.Handshake(1, b"prod-eu", b"\xa0" * 16, 0x1234, 5,
                                                        b"127.0.0.1:7311")
    # a refusal, and an ERROR answer, come back parsed
    node.sock.sendall(cp.encode_frame(cp.OP_HANDSHAKE, cp.compose_handshake_reply(HS_REFUSE),
                                      cp.FLAG_RESPONSE, 2))
    assert client.handshake("x", bytes(16), 1, 1, "a:1") == HS_REFUSE
    node.sock.sendall(cp.encode_frame(cp.OP_ERROR, cp.compose_error(cp.Error(cp.ERR_NOT_READY)),
                                      cp.FLAG_RESPONSE, 3))
    assert client.handshake("x", bytes(16), 1, 1, "a:1") == cp.Error(cp.ERR_NOT_READY)
    assert client.pending == {} and client.unmatched == {}


def test_client_out_of_order(pair):
    client, node = pair
    ids = [client.send_request(cp.OP_PING, cp.compose_ping(100 + i)) for i in range(3)]
    ids.append(client.send_request(cp.OP_READ, cp.compose_read(b"k"), cp.FLAG_DIGEST))
    assert ids == [1, 2, 3, 4]
    reqs = node.frames(4)
    assert [cp.decode_body(r) for r in reqs] == [100, 101, 102, b"k"]
    assert reqs[3].flags == cp.FLAG_DIGEST
    node.answer(reqs[2], body=cp.compose_ping(7))
    node.answer(reqs[3], body=cp.compose_digest_reply(REC_PLAIN), flags=R | D)
    node.answer(reqs[0], body=cp.compose_ping(5))
    node.answer(reqs[1], cp.OP_ERROR, cp.compose_error(cp.Error(cp.ERR_OVERLOADED, b"busy")))
    assert client.wait(1).body == cp.compose_ping(5)
    assert set(client.unmatched) == {3, 4}
    assert cp.decode_body(client.wait(2)) == cp.Error(cp.ERR_OVERLOADED, b"busy")
    assert cp.decode_body(client.wait(4)) == cp.Digest(True, REC_PLAIN.version,
                                                       C_DIGESTS[0][1])
    assert cp.decode_body(client.wait(3)) == 7
    assert client.pending == {} and client.unmatched == {}
    # convenience calls
    node.sock.sendall(cp.encode_frame(cp.OP_PING, cp.compose_ping(9), R, 5) +
                      cp.encode_frame(cp.OP_READ, cp.compose_read_reply(REC_TOMB), R, 6) +
                      cp.encode_frame(cp.OP_WRITE, b"", R, 7))
    assert client.ping(1) == 9
    assert client.read(b"gone") == REC_TOMB
    assert client.write([REC_PLAIN]) is None
    assert [cp.decode_body(f) for f in node.frames(3)] == [1, b"gone", [REC_PLAIN]]


def test_client_timeout_eof_and_errors(pair):
    client, node = pair
    rid = client.send_request(cp.OP_PING, cp.compose_ping(1))
    start = time.monotonic()
    with pytest.raises(cp.ClusterTimeout):
        client.wait(rid, timeout=0.05)
    assert time.monotonic() - start < 1.0
    with pytest.raises(cp.ClusterTimeout):
        client.read_frame(timeout=0.02)
    # a response of the wrong opcode, a request at the dialer
    (req,) = node.frames(1)
    node.answer(req, cp.OP_READ, cp.compose_read_reply(None))
    with pytest.raises(cp.ProtocolError):
        client.wait(rid)
    node.sock.sendall(cp.encode_frame(cp.OP_PING, cp.compose_ping(1), 0, 1))
    with pytest.raises(cp.ProtocolError):
        client.wait(rid)
    # an ERROR about the whole connection (id 0)
    rid = client.send_request(cp.OP_PING, cp.compose_ping(2))
    node.sock.sendall(cp.encode_frame(cp.OP_ERROR, cp.compose_error(cp.Error(cp.ERR_BAD_REQUEST)),
                                      R, 0))
    with pytest.raises(cp.ProtocolError):
        client.wait(rid)
    assert cp.decode_body(client.unmatched[0]) == cp.Error(cp.ERR_BAD_REQUEST)
    # bytes that are not a frame
    node.sock.sendall(b"SERVER_ERROR\r\n")
    with pytest.raises(cp.WireError) as e:
        client.read_frame()
    assert e.value.result == cp.BAD_MAGIC
    # send_raw, then EOF
    client.send_raw(b"get foo\r\n")
    assert node.sock.recv(100).endswith(b"get foo\r\n")
    node.sock.sendall(b"STRC")
    node.sock.shutdown(socket.SHUT_WR)
    data, how = client.read_to_eof(timeout=1.0)
    assert how == "eof"
    with pytest.raises(cp.ConnectionClosed):
        client.read_frame()


def test_client_eof_while_waiting(pair):
    client, node = pair
    rid = client.send_request(cp.OP_PING, cp.compose_ping(1))
    node.sock.sendall(b"STRC\x01")
    node.sock.close()
    with pytest.raises(cp.ConnectionClosed) as e:
        client.wait(rid)
    assert e.value.data == b"STRC\x01"
