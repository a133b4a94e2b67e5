"""The protocol tests whose assertions a router (STRATA_TEST_SERVER=
strata-router: strata-proxy --l1 off in front of a stock memcached) does
not meet, each with the reason. conftest.py skips them in that run, with
the reason as the skip message, so the run's output lists them (no reason
may say "not built" or "not installed": strata_deps.py takes those for a
missing dependency, which fails under CI); docs/L2.md
("Routing mode") keeps the same list. A test that starts passing through
the router should leave this list: CI would not notice, so check with
`tools/run-tests.sh build/release strata-router` when changing the router.
"""

STATS = ("the router's `stats` are its own counters, gauges and resets, not the "
         "server's")
LIMITS = ("-m belongs to the router, which keeps no items; the server's memory "
          "limit is what counts")
EXPTIME = ("an exptime past 2038 does not fit the meta protocol's T token (a "
           "signed 32-bit number): the router cannot pass it on")
FLUSH = ("flush_all goes to the server, whose flush cutoff is memcached's (the test "
         "asserts strata's own L1 semantics, docs/COMPATIBILITY.md)")
ME = "`me` is not forwarded (the executor has no asynchronous debug lookup): the router does not do it yet"
BASE64 = ("a base64 key reaches the server base64 only when text cannot carry it, "
          "and the server echoes it as it stored it: the router does not do it yet")
LONG_OPAQUE = ("an mg whose opaque is too long, with N or on a stale item: the tokens "
               "(W, Z) its flags win or leave on the server are not the ones memcached "
               "leaves: the router does not do it yet")
CREATED = ("whether ma or mg N created the item is not in the server's reply to "
           "the router: the router does not do it yet")

KNOWN = {}
for reason, ids in (
    (STATS, [
        "test_binary.py::test_stat_groups_match_text[items]",
        "test_binary.py::test_libmemcached_binary_c_api",
        "test_binary.py::test_stat_reset[reset]",
        "test_binary.py::test_stat_reset[reset-prefix]",
        "test_meta.py::test_counters[md-invalidate]",
        "test_pipeline_errors.py::test_failing_multiget_has_fetched_the_keys_before[get]",
        "test_pipeline_errors.py::test_failing_multiget_has_fetched_the_keys_before[gets]",
        "test_pipeline_errors.py::test_failing_multiget_has_fetched_the_keys_before[gat]",
        "test_pipeline_errors.py::test_failing_multiget_has_fetched_the_keys_before[gats]",
    ]),
    (LIMITS, [
        "test_binary.py::test_out_of_memory",
        "test_meta.py::test_ms_out_of_memory",
    ]),
    (EXPTIME, [
        "test_binary.py::test_expiration_in_set",
        "test_binary.py::test_touch_family_sets_expiration[TOUCH]",
        "test_binary.py::test_touch_family_sets_expiration[GAT]",
        "test_binary.py::test_touch_family_sets_expiration[GATK]",
    ]),
    (FLUSH, [
        "test_binary.py::test_flush_in_one_second",
        "test_binary.py::test_flush_never_brings_flushed_items_back",
    ]),
    (ME, [
        "test_meta.py::test_me",
        "test_meta.py::test_me_with_ttl",
        "test_meta.py::test_me_base64_key",
    ]),
    (BASE64, [
        "test_meta.py::test_base64_keys",
        "test_meta.py::test_base64_key_of_text_stored_item_echoes_plain",
        "test_meta.py::test_base64_key_of_auto_created_item_echoes_raw_bytes[mg-N]",
        "test_meta.py::test_base64_key_of_auto_created_item_echoes_raw_bytes[ma-N]",
    ]),
    (LONG_OPAQUE, [
        "test_meta.py::test_mg_with_long_opaque_acts_before_failing[" + case + "]"
        for case in ("N-before-creates-with-ttl-no-win", "N-after-creates-without-ttl",
                     "stale-keeps-its-token")
    ]),
    (CREATED, [
        "test_meta.py::test_counters[ma-auto-create]",
        "test_meta.py::test_quiet_mode[ma-q-does-not-hide-auto-create]",
        "test_meta.py::test_ttl_of_items_created_already_expired",
    ]),
):
    for test_id in ids:
        KNOWN[test_id] = reason

# The files the router run covers (tools/run-tests.sh).
FILES = ["test_commands.py", "test_meta.py", "test_arith.py", "test_expiry.py", "test_binary.py",
         "test_pipeline_errors.py"]
