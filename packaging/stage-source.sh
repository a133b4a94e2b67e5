#!/bin/bash
# stage-source.sh SRC DEST - copies the Strata source tree at SRC into DEST
# (created; must not exist) for a package build: the files git tracks plus
# new files it does not ignore, as they are in the work tree, so uncommitted
# work is packaged too. Without git: everything but build/ and .git/.
set -euo pipefail
src=$1
dest=$2
if [ -e "$dest" ]; then
    echo "stage-source: $dest exists" >&2
    exit 1
fi
mkdir -p "$dest"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # --cached also lists tracked files deleted from the work tree: skip them.
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
        done | tar --null --no-recursion -T - -cf -) | tar -C "$dest" -xf -
else
    (cd "$src" && tar --exclude=./build --exclude=./.git -cf - .) | tar -C "$dest" -xf -
fi
