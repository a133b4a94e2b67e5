"""memcached binary protocol: compose request packets and read response
packets over a helpers.Conn (bounded reads). Used by test_binary.py.

A packet is a 24-byte header (network byte order) then extras, key, value:

    magic u8 | opcode u8 | key length u16 | extras length u8 | data type u8 |
    vbucket (request) or status (response) u16 | total body length u32 |
    opaque u32 | cas u64

Nothing here asserts server behaviour; `request()` can build malformed
headers on purpose (explicit keylen/extlen/bodylen/magic).
"""

import collections
import struct

HEADER = struct.Struct(">BBHBBHIIQ")
HEADER_LEN = HEADER.size  # 24

REQ_MAGIC = 0x80
RES_MAGIC = 0x81

# Opcodes
GET, SET, ADD, REPLACE, DELETE, INCREMENT, DECREMENT, QUIT = range(0x00, 0x08)
FLUSH, GETQ, NOOP, VERSION, GETK, GETKQ, APPEND, PREPEND = range(0x08, 0x10)
STAT, SETQ, ADDQ, REPLACEQ, DELETEQ, INCREMENTQ, DECREMENTQ, QUITQ = range(0x10, 0x18)
FLUSHQ, APPENDQ, PREPENDQ = 0x18, 0x19, 0x1a
TOUCH, GAT, GATQ = 0x1c, 0x1d, 0x1e
SASL_LIST_MECHS, SASL_AUTH, SASL_STEP = 0x20, 0x21, 0x22
GATK, GATKQ = 0x23, 0x24

# Status codes
SUCCESS = 0x0000
KEY_ENOENT = 0x0001
KEY_EEXISTS = 0x0002
E2BIG = 0x0003
EINVAL = 0x0004
NOT_STORED = 0x0005
DELTA_BADVAL = 0x0006
AUTH_ERROR = 0x0020
UNKNOWN_COMMAND = 0x0081
ENOMEM = 0x0082

# memcached's error bodies (write_bin_error): the status code's text. An
# out-of-memory error carries a specific text instead, e.g. "Out of memory
# allocating item".
ERROR_TEXT = {
    KEY_ENOENT: b"Not found",
    KEY_EEXISTS: b"Data exists for key.",
    E2BIG: b"Too large.",
    EINVAL: b"Invalid arguments",
    NOT_STORED: b"Not stored.",
    DELTA_BADVAL: b"Non-numeric server-side value for incr or decr",
    AUTH_ERROR: b"Auth failure.",
    UNKNOWN_COMMAND: b"Unknown command",
    ENOMEM: b"Out of memory",
}

DONT_CREATE = 0xffffffff  # incr/decr expiration: fail with KEY_ENOENT on a miss


def request(opcode, key=b"", value=b"", extras=b"", opaque=0, cas=0, *,
            magic=REQ_MAGIC, datatype=0, vbucket=0,
            keylen=None, extlen=None, bodylen=None):
    """A request packet. keylen/extlen/bodylen override the lengths written
    in the header (for malformed packets); the body is always
    extras + key + value as given."""
    body = extras + key + value
    return HEADER.pack(magic, opcode,
                       len(key) if keylen is None else keylen,
                       len(extras) if extlen is None else extlen,
                       datatype, vbucket,
                       len(body) if bodylen is None else bodylen,
                       opaque, cas) + body


def storage_extras(flags=0, exptime=0):
    """SET/ADD/REPLACE extras: flags u32, expiration u32."""
    return struct.pack(">II", flags, exptime)


def arith_extras(delta=1, initial=0, exptime=0):
    """INCREMENT/DECREMENT extras: delta u64, initial u64, expiration u32."""
    return struct.pack(">QQI", delta, initial, exptime)


def expiry_extras(exptime):
    """TOUCH/GAT/GATK extras, and FLUSH's optional delay: u32."""
    return struct.pack(">I", exptime)


def get_flags(extras):
    return struct.unpack(">I", extras)[0]


def counter_value(body):
    """INCREMENT/DECREMENT success body: the new value, u64."""
    return struct.unpack(">Q", body)[0]


class Response(collections.namedtuple(
        "Response", "magic opcode keylen extlen datatype status bodylen opaque cas "
                    "extras key value")):
    """One response packet; extras/key/value are split by the header's
    lengths."""

    def brief(self):
        return "op=0x%02x status=0x%04x opaque=%d cas=%d extras=%r key=%r value=%r" % (
            self.opcode, self.status, self.opaque, self.cas, self.extras, self.key,
            self.value[:80])


def parse(data):
    """(Response, rest) from bytes holding at least one whole packet, or
    (None, data) if it is incomplete."""
    if len(data) < HEADER_LEN:
        return None, data
    fields = HEADER.unpack(data[:HEADER_LEN])
    keylen, extlen, bodylen = fields[2], fields[3], fields[6]
    end = HEADER_LEN + bodylen
    if len(data) < end:
        return None, data
    body = data[HEADER_LEN:end]
    return Response(*fields, body[:extlen], body[extlen:extlen + keylen],
                    body[extlen + keylen:]), data[end:]


def parse_all(data):
    """Every whole packet in data; asserts nothing is left over."""
    out = []
    while data:
        resp, data2 = parse(data)
        assert resp is not None, "incomplete packet at the end: %r" % data[:100]
        out.append(resp)
        data = data2
    return out


def read_response(conn, timeout=None):
    """Read one response packet from a helpers.Conn; None if the server
    closed or stayed silent (the bytes read so far are left in conn.buf)."""
    header = conn.read_exact(HEADER_LEN, timeout)
    if len(header) < HEADER_LEN:
        conn.buf = header + conn.buf
        return None
    bodylen = HEADER.unpack(header)[6]
    body = conn.read_exact(bodylen, timeout)
    if len(body) < bodylen:
        conn.buf = header + body + conn.buf
        return None
    resp, rest = parse(header + body)
    assert rest == b""
    return resp


def response(opcode, status=SUCCESS, key=b"", value=b"", extras=b"", opaque=0, cas=0):
    """The exact bytes of a response packet (for replies whose CAS is known,
    usually 0)."""
    body = extras + key + value
    return HEADER.pack(RES_MAGIC, opcode, len(key), len(extras), 0, status, len(body),
                       opaque, cas) + body


def error_response(opcode, status, opaque=0):
    """memcached's error packet: no extras, no key, the status text as
    value, CAS 0."""
    return response(opcode, status, value=ERROR_TEXT[status], opaque=opaque)
