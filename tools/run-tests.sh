#!/bin/bash
# run-tests.sh BUILD_DIR [SERVERS]
#
# Runs every unit test executable under BUILD_DIR/tests/unit, then the
# pytest suites (tests/integration, and tests/clients when it exists)
# against each server of the comma-separated SERVERS list (default: all =
# strata,strata-async,strata-router,memcached): strata-proxy; strata-proxy
# with every lookup completing through the asynchronous reply path
# (strata-async, tests/integration only, docs/FRONTEND.md); strata-proxy in
# routing mode in front of a stock memcached (strata-router: the protocol
# files of tests/integration/router_known.py, with the differences it
# lists skipped); stock memcached, the protocol oracle. Prints passed/failed/skipped for every part, lists each
# skipped test with its reason, and ends with one line
# "N passed, N failed, N skipped" (CI reads that line); exits non-zero if
# anything failed. Under CI=true a test skipped for a missing dependency
# fails instead (tests/integration/strata_deps.py).
#
# The pytest parts (one suite against one server) run at the same time,
# each in a background job with its own output file, printed afterwards in
# the fixed order below: most of their time is spent waiting (server starts,
# TTLs, timeouts), not on the CPU, so even two cores run them side by side
# in about the time of the longest one. They share nothing: each part
# takes its servers' ports from a block of its own (STRATA_TEST_PORTS,
# helpers.free_port), every test writes under its own temporary directory,
# and the compiled client programs go to a directory per server
# (tests/clients/conftest.py).
set -u
B=${1:?build dir}
WHICH=${2:-all}
PYTHON=${PYTHON:-/usr/bin/python3}
# STRATA_TEST_DIRS (space-separated) narrows the pytest suites run.
read -r -a PYTEST_DIRS <<<"${STRATA_TEST_DIRS:-tests/integration tests/clients}"
passed=0
failed=0
skipped=0
failures=()

# add_counts PART PASSED FAILED SKIPPED
add_counts() {
    passed=$(($passed + $2))
    failed=$(($failed + $3))
    skipped=$(($skipped + $4))
    [ "$3" -ne 0 ] && failures+=("$1")
    printf '  %-58s %4d passed, %d failed, %d skipped\n' "$1" "$2" "$3" "$4"
}

run_unit() {
    local t out rc p f s
    echo "== unit tests ($B)"
    for t in $(find "$B/tests/unit" -type f -perm -u+x | sort); do
        out=$("$t" 2>&1)
        rc=$?
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -n1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -n1)
        s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:/\1/p' | tail -n1)
        p=${p:-0}
        f=${f:-0}
        s=${s:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1 # crashed or sanitizer report before cmocka's summary
        fi
        if [ "$f" -ne 0 ]; then
            printf '%s\n' "$out" | tail -n 40
        fi
        if [ "$s" -ne 0 ]; then
            printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \(test_[A-Za-z0-9_]*\)$/    skipped: \1/p' | sort -u
        fi
        add_counts "unit ${t#$B/tests/unit/}" "$p" "$f" "$s"
    done
}

# Prints the skipped tests of a junit XML file with their reasons, then a
# last line "passed failed skipped".
junit_counts() {
    "$PYTHON" - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skip = sum(int(s.get("skipped", 0)) for s in suites)
for case in root.iter("testcase"):
    for s in case.findall("skipped"):
        print("    skipped: %s::%s: %s" % (case.get("classname", ""), case.get("name", ""),
                                           s.get("message", "")))
print(t - bad - skip, bad, skip)
PY
}

# run_pytest DIR SERVER OUT: runs one part with its output to OUT.log and
# its counts to OUT.counts ("passed failed skipped"); add_counts is left to
# the caller, which runs this in the background.
run_pytest() {
    local dir=$1 server=$2 out=$3 xml rc res p f s
    xml=$out.xml
    {
        echo "== $dir against $server"
        # strata_deps (-p) brings the CI rule on dependency skips to suites whose
        # conftest does not import it; conftests that do import it are unaffected.
        STRATA_TEST_SERVER=$server STRATA_PROXY_BIN="$B/bin/strata-proxy" STRATA_BUILD_DIR="$B" \
            STRATA_NODE_BIN="$B/bin/strata-node" \
            STRATA_LMC_TEST_BIN="$B/tests/integration/lmc_test" \
            STRATA_LMC_BINARY_TEST_BIN="$B/tests/integration/lmc_binary_test" \
            PYTHONPATH="tests/integration${PYTHONPATH:+:$PYTHONPATH}" \
            "$PYTHON" -m pytest $dir -q -p no:cacheprovider -p strata_deps \
            --continue-on-collection-errors --junitxml="$xml" </dev/null
        rc=$?
        res=$(junit_counts "$xml")
        printf '%s\n' "$res" | sed '$d'
        read -r p f s <<<"$(printf '%s\n' "$res" | tail -n1)"
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # e.g. nothing collected
        echo "$p $f $s" >"$out.counts"
    } >"$out.log" 2>&1
}

[ "$WHICH" = all ] && WHICH=strata,strata-async,strata-router,memcached
IFS=, read -r -a servers <<<"$WHICH"

run_unit

# Every part in the background at once; the parts of one server are not
# kept in sequence, since nothing carries over from one to the next.
parts=()
for server in "${servers[@]}"; do
    for dir in "${PYTEST_DIRS[@]}"; do
        # The client libraries' suites add nothing the protocol suite does
        # not already check about reply order.
        [ "$server" = strata-async ] && [ "$dir" != tests/integration ] && continue
        if [ "$server" = strata-router ]; then
            # the protocol files only (their paths, space-separated)
            [ "$dir" = tests/integration ] || continue
            files=$("$PYTHON" -c 'import sys; sys.path.insert(0, "tests/integration")
import router_known; print(" ".join("tests/integration/" + f for f in router_known.FILES))')
            parts+=("$files|$server")
            continue
        fi
        [ -d "$dir" ] && parts+=("$dir|$server")
    done
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each part hands out its servers' ports from a block of its own out of
# 20000-31999 (helpers.free_port): two parts never pick the same port, and
# clients' source ports, which the kernel takes from 32768 up, never take
# one of them either.
block=$((12000 / (${#parts[@]} > 0 ? ${#parts[@]} : 1)))
echo "== pytest: ${#parts[@]} part(s) at once; each one's output follows when all are done"
for i in "${!parts[@]}"; do
    STRATA_TEST_PORTS=$((20000 + i * block))-$((20000 + (i + 1) * block - 1)) \
        run_pytest "${parts[$i]%|*}" "${parts[$i]#*|}" "$work/$i" &
done
wait
for i in "${!parts[@]}"; do
    cat "$work/$i.log"
    # No counts: the job died before writing them (counted as a failure).
    read -r p f s <"$work/$i.counts" 2>/dev/null || { p=0 f=1 s=0; }
    add_counts "${parts[$i]%|*} against ${parts[$i]#*|}" "$p" "$f" "$s"
done

echo "== summary"
for part in "${failures[@]+"${failures[@]}"}"; do
    echo "  failed: $part"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
