#!/bin/sh
# check-deps.sh - enforces ARCHITECTURE.md's layering through #include lines:
# common <- cache, common <- storage, common <- frontend,
# {common,storage} <- kvstore,
# {common,frontend,cache,storage,kvstore} <- proxy,
# {common,frontend,storage,kvstore} <- server.
# cache/ and storage/ never include libevent.
set -eu
fail=0
check() { # dir, forbidden-pattern, reason
    hits=$(grep -rnE "^#include [<\"]($2)" "$1" 2>/dev/null || true)
    if [ -n "$hits" ]; then
        echo "$1 must not include $2 ($3):"; echo "$hits"; fail=1
    fi
}
check common 'cache/|storage/|frontend/|proxy/|server/|tools/' 'common is the bottom layer'
check cache 'storage/|frontend/|proxy/|server/|tools/|event2/' 'cache/ uses common only'
check frontend 'cache/|storage/|proxy/|server/|tools/' 'frontend/ uses common only'
[ -d storage ] && check storage 'cache/|frontend/|proxy/|server/|tools/|event2/' 'storage/ uses common only'
check kvstore 'cache/|frontend/|proxy/|server/|tools/|event2/' 'kvstore/ uses common and storage'
[ -d server ] && check server 'cache/|proxy/|tools/' 'server/ uses common, frontend, storage and kvstore'
check proxy 'server/|tools/' 'proxy/ uses common, frontend, cache, storage, kvstore'
[ "$fail" -eq 0 ] && echo "include layering ok"
exit $fail
