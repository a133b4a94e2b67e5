#!/bin/bash
# run-tests.sh BUILD_DIR all|strata
#
# Runs every unit test executable under BUILD_DIR/tests/unit, then the
# integration suite against strata-proxy and (with `all`) against stock
# memcached, the protocol oracle. Prints per-suite results and one closing
# "N passed, N failed" line; exits non-zero if anything failed.
set -u
B=${1:?build dir}
WHICH=${2:-all}
PYTHON=${PYTHON:-/usr/bin/python3}
passed=0
failed=0
failures=()

run_unit() {
    local t out p f
    for t in $(find "$B/tests/unit" -type f -perm -u+x | sort); do
        out=$("$t" 2>&1)
        local rc=$?
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -n1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -n1)
        p=${p:-0}
        f=${f:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1 # crashed or sanitizer report before cmocka's summary
        fi
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$f" -ne 0 ]; then
            failures+=("unit: $t")
            printf '%s\n' "$out" | tail -n 40
        fi
        printf '  unit %-45s %3d passed, %d failed\n' "${t#$B/tests/unit/}" "$p" "$f"
    done
}

run_integration() { # server
    local server=$1 xml
    xml=$(mktemp)
    echo "== integration tests against $server"
    STRATA_TEST_SERVER=$server STRATA_PROXY_BIN="$B/bin/strata-proxy" \
        STRATA_LMC_TEST_BIN="$B/tests/integration/lmc_test" \
        STRATA_LMC_BINARY_TEST_BIN="$B/tests/integration/lmc_binary_test" \
        "$PYTHON" -m pytest tests/integration -q -p no:cacheprovider --junitxml="$xml"
    local rc=$?
    local counts
    counts=$("$PYTHON" - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1"); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skip = sum(int(s.get("skipped", 0)) for s in suites)
print(t - bad - skip, bad)
PY
)
    rm -f "$xml"
    local p=${counts% *} f=${counts#* }
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -ne 0 ] && failures+=("integration against $server")
}

echo "== unit tests ($B)"
run_unit
run_integration strata
if [ "$WHICH" = all ]; then
    run_integration memcached
fi

if [ ${#failures[@]} -ne 0 ]; then
    echo "failed suites:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
