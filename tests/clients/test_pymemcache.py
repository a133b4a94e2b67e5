"""pymemcache (python3-pymemcache), text protocol: the client checks of
README.md, as plain pytest tests against this module's own server."""

import pytest

from clientdata import (ALL_BYTES, EXPIRY_TTL, incompressible, large_size,
                        too_large_size, wait_gone)


@pytest.fixture(scope="module")
def pymemcache(need):
    need.python_module("pymemcache.client.base", "python3-pymemcache")
    import pymemcache.exceptions
    return pymemcache


@pytest.fixture
def client(pymemcache, server):
    c = pymemcache.client.base.Client(server.addr, connect_timeout=5, timeout=5, default_noreply=False)
    yield c
    c.close()


def test_set_get(client):
    assert client.set("sg", b"value", flags=0) is True
    assert client.get("sg") == b"value"
    assert client.get("sg_missing") is None


def test_noreply_set(pymemcache, server):
    """The client's default: storage commands with noreply."""
    c = pymemcache.client.base.Client(server.addr, connect_timeout=5, timeout=5)
    try:
        assert c.set("nr", b"quiet") is True
        assert c.get("nr") == b"quiet"
    finally:
        c.close()


def test_multi_get(client):
    client.set("mg1", b"one")
    client.set("mg2", b"two")
    assert client.get_many(["mg1", "mg_missing", "mg2"]) == {"mg1": b"one", "mg2": b"two"}


def test_add(client):
    assert client.add("ad", b"first") is True
    assert client.add("ad", b"second") is False
    assert client.get("ad") == b"first"


def test_replace(client):
    assert client.replace("rp", b"x") is False
    assert client.get("rp") is None
    client.set("rp", b"old")
    assert client.replace("rp", b"new") is True
    assert client.get("rp") == b"new"


def test_append_prepend(client):
    client.set("ap", b"mid")
    assert client.append("ap", b"-end") is True
    assert client.prepend("ap", b"start-") is True
    assert client.get("ap") == b"start-mid-end"
    assert client.append("ap_missing", b"x") is False
    assert client.prepend("ap_missing", b"x") is False


def test_cas_success(client):
    client.set("cs", b"a")
    value, unique = client.gets("cs")
    assert value == b"a" and unique
    assert client.cas("cs", b"b", unique) is True
    assert client.get("cs") == b"b"


def test_cas_conflict(client):
    client.set("cc", b"a")
    _, unique = client.gets("cc")
    client.set("cc", b"changed")
    assert client.cas("cc", b"b", unique) is False
    assert client.get("cc") == b"changed"
    client.delete("cc")
    assert client.cas("cc", b"c", unique) is None  # NOT_FOUND


def test_incr_decr(client):
    client.set("n", b"10")
    assert client.incr("n", 5) == 15
    assert client.decr("n", 3) == 12
    assert client.decr("n", 100) == 0          # decr stops at 0
    client.set("n", b"18446744073709551615")
    assert client.incr("n", 1) == 0            # incr wraps at 2**64


def test_incr_decr_missing(client):
    assert client.incr("n_missing", 1) is None
    assert client.decr("n_missing", 1) is None
    assert client.get("n_missing") is None


def test_delete(client):
    client.set("de", b"x")
    assert client.delete("de") is True
    assert client.get("de") is None
    assert client.delete("de") is False


def test_touch(client):
    """touch moves the TTL: a touched item outlives an untouched one set
    with the same TTL at the same time."""
    client.set("to", b"x", expire=EXPIRY_TTL)
    client.set("to_control", b"x", expire=EXPIRY_TTL)
    assert client.touch("to", 100) is True
    assert client.touch("to_missing", 100) is False
    assert wait_gone(client.get, "to_control") is not None
    assert client.get("to") == b"x"


def test_expiry(client):
    client.set("ex", b"x", expire=EXPIRY_TTL)
    assert client.get("ex") == b"x"
    took = wait_gone(client.get, "ex")
    assert took is not None, "item with TTL %d s still there after the deadline" % EXPIRY_TTL


def test_binary_value(client):
    assert client.set("bin", ALL_BYTES) is True
    assert client.get("bin") == ALL_BYTES


def test_large_value(client, target):
    value = incompressible(large_size(target.item_size_max))
    assert client.set("large", value) is True
    assert client.get("large") == value


def test_too_large(client, target, pymemcache):
    before = target.counters()["store_too_large"]
    client.set("too_large", b"old")
    with pytest.raises(pymemcache.exceptions.MemcacheServerError) as err:
        client.set("too_large", incompressible(too_large_size(target.item_size_max)))
    assert "object too large for cache" in str(err.value)
    assert target.counters()["store_too_large"] == before + 1
    # memcached drops the old value of a refused set
    assert client.get("too_large") is None


def test_after_too_large(client, target, pymemcache):
    try:
        client.set("atl", incompressible(too_large_size(target.item_size_max)))
    except pymemcache.exceptions.MemcacheServerError:
        pass
    assert client.set("atl_small", b"fine") is True
    assert client.get("atl_small") == b"fine"


def test_stats(client, target):
    stats = client.stats()
    assert stats[b"pid"] == target.pid
    assert stats[b"version"] == target.version.encode()
    settings = client.stats("settings")
    assert settings[b"item_size_max"] == target.item_size_max


def test_version(client, target):
    assert client.version() == target.version.encode()
