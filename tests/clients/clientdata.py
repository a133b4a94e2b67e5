"""Values and waits shared by the Python client tests (the other languages'
scripts build the same values themselves: see README.md, "The checks")."""

import os
import time

# Every byte value, then CRLF and a fake END line, as a value must carry them.
ALL_BYTES = bytes(range(256)) + b"\r\nEND\r\n" + bytes(range(255, -1, -1))

EXPIRY_TTL = 2          # seconds; a TTL of 1 can expire at once (second ticks)
EXPIRY_DEADLINE = 5.0   # the item must be gone within this after the set
POLL = 0.05


def large_size(item_size_max):
    """A value that must fit: item_size_max - 2048 bytes."""
    return item_size_max - 2048


def too_large_size(item_size_max):
    """A value clearly over the limit."""
    return item_size_max + item_size_max // 2


def incompressible(n):
    """n random bytes, so a compressing client cannot shrink them under the
    limit (or over it)."""
    return os.urandom(n)


def wait_gone(get, key):
    """Poll get(key) until it reports a miss (returns None), at most
    EXPIRY_DEADLINE seconds. Returns the seconds it took, or None."""
    start = time.monotonic()
    while time.monotonic() - start < EXPIRY_DEADLINE:
        if get(key) is None:
            return time.monotonic() - start
        time.sleep(POLL)
    return None
