#!/bin/bash
# build-deb.sh VERSION OUTDIR - builds the strata .deb with debhelper
# (`make deb`). Stages the source tree in OUTDIR/strata-VERSION, adds
# packaging/debian as debian/ with a changelog entry for VERSION (the VERSION
# file is the only place the version is written), then runs
# dpkg-buildpackage -b. The .deb lands in OUTDIR.
set -euo pipefail
version=$1
out=$2
revision=${DEB_REVISION:-1}
here=$(cd "$(dirname "$0")/.." && pwd)

rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
src="$out/strata-$version"
"$here/packaging/stage-source.sh" "$here" "$src"
cp -r "$here/packaging/debian" "$src/debian"

# The entry's date is the last commit's, so rebuilds of one commit are
# reproducible (dpkg-buildpackage derives SOURCE_DATE_EPOCH from it).
date=$(git -C "$here" log -1 --format=%aD 2>/dev/null || true)
[ -n "$date" ] || date=$(date -R)
maintainer=$(sed -n 's/^Maintainer: *//p' "$src/debian/control")
cat >"$src/debian/changelog" <<CHANGELOG
strata ($version-$revision) unstable; urgency=medium

  * Strata $version, packaged from the source tree (docs/PACKAGING.md).

 -- $maintainer  $date
CHANGELOG

(cd "$src" && dpkg-buildpackage -b -us -uc -jauto)
ls -1 "$out"/*.deb
