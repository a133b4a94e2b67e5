#!/bin/bash
# build-rpm.sh VERSION OUTDIR "UNITS" [RPMBUILD_ARGS...] - builds the
# strata .rpm (`make rpm`): a source tarball of the staged tree and the
# sysusers.d file in OUTDIR/SOURCES, then rpmbuild -bb of
# packaging/rpm/strata.spec with the version from the VERSION file. The
# package lands in OUTDIR/RPMS/<arch>/.
set -euo pipefail
version=$1
out=$2
units=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)

# Debian's rpm (CI builds the .rpm on Debian 12) needs three workarounds;
# none applies on Fedora or RHEL, where rpmbuild runs with the spec alone.
debian=()
if [ -e /etc/debian_version ]; then
    # rpm cannot see the -dev packages dpkg installed: dpkg checks the same
    # libraries, named in packaging/debian/control, instead of rpmbuild.
    dpkg-checkbuilddeps "$here/packaging/debian/control"
    debian+=(--nodeps)
    # brp-compress uses bash's `read -d` under #!/bin/sh (dash): run it with
    # bash so the man pages are compressed as on Fedora.
    debian+=(--define '__brp_compress /bin/bash %{_rpmconfigdir}/brp-compress %{?_prefix}')
    # Without redhat-rpm-config there is no -debuginfo split, which is what
    # strips binaries on Fedora; brp-strip alone only drops debug sections.
    debian+=(--define "__brp_strip %{_rpmconfigdir}/brp-strip $here/packaging/rpm/debian-strip.sh")
fi

rm -rf "$out"
mkdir -p "$out/SOURCES"
top=$(cd "$out" && pwd)
"$here/packaging/stage-source.sh" "$here" "$top/strata-$version"
tar -C "$top" --owner=0 --group=0 --sort=name -czf "$top/SOURCES/strata-$version.tar.gz" \
    "strata-$version"
rm -rf "${top:?}/strata-$version"
cp "$here/packaging/sysusers/strata.conf" "$top/SOURCES/strata.sysusers"

# rpm's changelog date format, of the last commit (reproducible rebuilds).
epoch=$(git -C "$here" log -1 --format=%ct 2>/dev/null || true)
[ -n "$epoch" ] || epoch=$(date +%s)
export SOURCE_DATE_EPOCH=$epoch

rpmbuild -bb "${debian[@]}" "$@" \
    --define "_topdir $top" \
    --define "strata_version $version" \
    --define "strata_units $units" \
    --define "strata_date $(LC_ALL=C date -u -d "@$epoch" '+%a %b %d %Y')" \
    --define "strata_maintainer $(sed -n 's/^Maintainer: *//p' "$here/packaging/debian/control")" \
    "$here/packaging/rpm/strata.spec"
find "$top/RPMS" -name '*.rpm' | sort
