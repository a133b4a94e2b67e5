#!/bin/bash
# run-tests.sh BUILD_DIR [SERVERS]
#
# Runs every unit test executable under BUILD_DIR/tests/unit, then the
# pytest suites (tests/integration, and tests/clients when it exists)
# against each server of the comma-separated SERVERS list (default: all =
# strata,strata-async,memcached): strata-proxy; strata-proxy with every
# lookup completing through the asynchronous reply path (strata-async,
# tests/integration only, docs/FRONTEND.md); stock memcached, the protocol
# oracle. Prints passed/failed/skipped for every part, lists each
# skipped test with its reason, and ends with one line
# "N passed, N failed, N skipped" (CI reads that line); exits non-zero if
# anything failed. Under CI=true a test skipped for a missing dependency
# fails instead (tests/integration/strata_deps.py).
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

run_pytest() { # dir server
    local dir=$1 server=$2 xml rc out p f s
    xml=$(mktemp)
    echo "== $dir against $server"
    # strata_deps (-p) brings the CI rule on dependency skips to suites whose
    # conftest does not import it; conftests that do import it are unaffected.
    STRATA_TEST_SERVER=$server STRATA_PROXY_BIN="$B/bin/strata-proxy" STRATA_BUILD_DIR="$B" \
        STRATA_NODE_BIN="$B/bin/strata-node" \
        STRATA_LMC_TEST_BIN="$B/tests/integration/lmc_test" \
        STRATA_LMC_BINARY_TEST_BIN="$B/tests/integration/lmc_binary_test" \
        PYTHONPATH="tests/integration${PYTHONPATH:+:$PYTHONPATH}" \
        "$PYTHON" -m pytest "$dir" -q -p no:cacheprovider -p strata_deps \
        --continue-on-collection-errors --junitxml="$xml"
    rc=$?
    out=$(junit_counts "$xml")
    rm -f "$xml"
    printf '%s\n' "$out" | sed '$d'
    read -r p f s <<<"$(printf '%s\n' "$out" | tail -n1)"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # e.g. nothing collected
    add_counts "$dir against $server" "$p" "$f" "$s"
}

[ "$WHICH" = all ] && WHICH=strata,strata-async,memcached
IFS=, read -r -a servers <<<"$WHICH"

run_unit
for server in "${servers[@]}"; do
    for dir in "${PYTEST_DIRS[@]}"; do
        # The client libraries' suites add nothing the protocol suite does
        # not already check about reply order.
        [ "$server" = strata-async ] && [ "$dir" != tests/integration ] && continue
        [ -d "$dir" ] && run_pytest "$dir" "$server"
    done
done

echo "== summary"
for part in "${failures[@]+"${failures[@]}"}"; do
    echo "  failed: $part"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
