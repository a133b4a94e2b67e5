"""pylibmc (python3-pylibmc, over libmemcached), text and binary protocol:
the client checks of README.md as plain pytest tests. Where libmemcached
reports an outcome differently per protocol (binary `replace` of a missing
key raises NotFound, text returns False) each mode's exact answer is
asserted."""

import pytest

from clientdata import (ALL_BYTES, EXPIRY_TTL, incompressible, large_size,
                        too_large_size, wait_gone)


@pytest.fixture(scope="module")
def pylibmc(need):
    return need.python_module("pylibmc", "python3-pylibmc")


@pytest.fixture(scope="module", params=["text", "binary"])
def mode(request):
    return request.param


@pytest.fixture
def client(pylibmc, server, mode):
    c = pylibmc.Client(["%s:%d" % server.addr], binary=(mode == "binary"),
                       behaviors={"cas": True, "connect_timeout": 5000,
                                  "receive_timeout": 5000000, "send_timeout": 5000000})
    yield c
    c.disconnect_all()


@pytest.fixture
def k(mode):
    """Key prefix: both modes share the module's server."""
    return lambda name: "%s_%s" % (mode, name)


def test_set_get(client, k):
    assert client.set(k("sg"), b"value") is True
    assert client.get(k("sg")) == b"value"
    assert client.get(k("sg_missing")) is None


def test_multi_get(client, k):
    client.set(k("mg1"), b"one")
    client.set(k("mg2"), b"two")
    got = client.get_multi([k("mg1"), k("mg_missing"), k("mg2")])
    assert got == {k("mg1"): b"one", k("mg2"): b"two"}


def test_add(client, k):
    assert client.add(k("ad"), b"first") is True
    assert client.add(k("ad"), b"second") is False
    assert client.get(k("ad")) == b"first"


def test_replace(client, k, mode, pylibmc):
    if mode == "text":
        assert client.replace(k("rp"), b"x") is False
    else:
        with pytest.raises(pylibmc.NotFound):
            client.replace(k("rp"), b"x")
    assert client.get(k("rp")) is None
    client.set(k("rp"), b"old")
    assert client.replace(k("rp"), b"new") is True
    assert client.get(k("rp")) == b"new"


def test_append_prepend(client, k):
    client.set(k("ap"), b"mid")
    assert client.append(k("ap"), b"-end") is True
    assert client.prepend(k("ap"), b"start-") is True
    assert client.get(k("ap")) == b"start-mid-end"
    assert client.append(k("ap_missing"), b"x") is False
    assert client.prepend(k("ap_missing"), b"x") is False


def test_cas_success(client, k, target):
    client.set(k("cs"), b"a")
    value, unique = client.gets(k("cs"))
    assert value == b"a" and unique
    hits = target.counters()["cas_hits"]
    assert client.cas(k("cs"), b"b", unique) is True
    assert client.get(k("cs")) == b"b"
    assert target.counters()["cas_hits"] == hits + 1


def test_cas_conflict(client, k, pylibmc, target):
    client.set(k("cc"), b"a")
    _, unique = client.gets(k("cc"))
    client.set(k("cc"), b"changed")
    badval = target.counters()["cas_badval"]
    assert client.cas(k("cc"), b"b", unique) is False
    assert client.get(k("cc")) == b"changed"
    assert target.counters()["cas_badval"] == badval + 1
    client.delete(k("cc"))
    with pytest.raises(pylibmc.NotFound):
        client.cas(k("cc"), b"c", unique)


def test_incr_decr(client, k):
    client.set(k("n"), b"10")
    assert client.incr(k("n"), 5) == 15
    assert client.decr(k("n"), 3) == 12
    assert client.decr(k("n"), 100) == 0
    client.set(k("n"), b"18446744073709551615")
    assert client.incr(k("n"), 1) == 0


def test_incr_decr_missing(client, k, pylibmc):
    with pytest.raises(pylibmc.NotFound):
        client.incr(k("n_missing"), 1)
    with pytest.raises(pylibmc.NotFound):
        client.decr(k("n_missing"), 1)
    assert client.get(k("n_missing")) is None


def test_delete(client, k):
    client.set(k("de"), b"x")
    assert client.delete(k("de")) is True
    assert client.get(k("de")) is None
    assert client.delete(k("de")) is False


def test_touch(client, k, target):
    client.set(k("to"), b"x", time=EXPIRY_TTL)
    client.set(k("to_control"), b"x", time=EXPIRY_TTL)
    touches = target.counters()["cmd_touch"]
    assert client.touch(k("to"), 100) is True
    assert client.touch(k("to_missing"), 100) is False
    assert target.counters()["cmd_touch"] == touches + 2
    assert wait_gone(client.get, k("to_control")) is not None
    assert client.get(k("to")) == b"x"


def test_expiry(client, k):
    client.set(k("ex"), b"x", time=EXPIRY_TTL)
    assert client.get(k("ex")) == b"x"
    assert wait_gone(client.get, k("ex")) is not None, "item with a TTL never expired"


def test_binary_value(client, k):
    assert client.set(k("bin"), ALL_BYTES) is True
    assert client.get(k("bin")) == ALL_BYTES


def test_large_value(client, k, target):
    value = incompressible(large_size(target.item_size_max))
    assert client.set(k("large"), value) is True
    assert client.get(k("large")) == value


def test_too_large(client, k, pylibmc, target, mode):
    """The server refuses it and the client reports TooBig (libmemcached
    has no size limit of its own: the refused set removed the old value,
    which only the server can do). memcached 1.6.18 counts the refusal in
    store_too_large over the text protocol only."""
    before = target.counters()["store_too_large"]
    client.set(k("too_large"), b"old")
    with pytest.raises(pylibmc.TooBig):
        client.set(k("too_large"), incompressible(too_large_size(target.item_size_max)))
    assert client.get(k("too_large")) is None
    if mode == "text":
        assert target.counters()["store_too_large"] == before + 1


def test_after_too_large(client, k, pylibmc, target):
    with pytest.raises(pylibmc.TooBig):
        client.set(k("atl"), incompressible(too_large_size(target.item_size_max)))
    assert client.set(k("atl_small"), b"fine") is True
    assert client.get(k("atl_small")) == b"fine"


def test_stats(client, target, server):
    (name, stats), = client.get_stats()
    assert name.decode() == "%s:%d (0)" % server.addr
    assert int(stats["pid"]) == target.pid
    assert stats["version"] == target.version.encode()


def test_multi_ops(client, k):
    """set_multi / incr_multi / delete_multi (libmemcached pipelines them)."""
    keys = [k("mo1"), k("mo2")]
    assert client.set_multi({keys[0]: b"1", keys[1]: b"2"}) == []   # no failed keys
    assert client.incr_multi(keys, delta=5) is None
    assert client.get_multi(keys) == {keys[0]: b"6", keys[1]: b"7"}
    # False: one key (the missing one) was not deleted
    assert client.delete_multi(keys + [k("mo_missing")]) is False
    assert client.get_multi(keys) == {}


def test_noreply(pylibmc, server, mode, client, k):
    """libmemcached's noreply behaviour (text: `noreply`, binary: quiet
    opcodes), checked through a second, normal client."""
    quiet = pylibmc.Client(["%s:%d" % server.addr], binary=(mode == "binary"),
                           behaviors={"_noreply": True})
    try:
        quiet.set(k("nr"), b"quiet")
        quiet.set(k("nr2"), b"gone")
        quiet.delete(k("nr2"))
        assert quiet.get(k("nr")) == b"quiet"   # a get waits for the replies before it
        assert client.get(k("nr")) == b"quiet"
        assert client.get(k("nr2")) is None
    finally:
        quiet.disconnect_all()
