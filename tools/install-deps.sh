#!/bin/sh
# install-deps.sh - installs the Debian packages Strata needs, if missing.
#
#   tools/install-deps.sh build   compiler and libraries (make all / make run)
#   tools/install-deps.sh test    + test tools: cmocka, memcached, clients
#   tools/install-deps.sh package + .deb/.rpm tools (make deb/rpm/package-test)
#   tools/install-deps.sh bench   + LevelDB and RocksDB (make bench-storage)
#
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -eu

BUILD_PKGS="build-essential pkg-config libevent-dev libjemalloc-dev libxxhash-dev libzstd-dev libinih-dev libmd-dev libsystemd-dev"
TEST_PKGS="libcmocka-dev libmemcached-dev libmemcached-tools memcached redis-server python3 python3-pytest python3-pymemcache python3-xxhash collectd-core procps clang-format"
# tests/clients: Debian's memcached clients in Python, Perl, PHP, Java, Go
# and Ruby, driven unchanged against both servers.
TEST_PKGS="$TEST_PKGS python3-pylibmc libcache-memcached-perl libcache-memcached-fast-perl php-cli php-memcached libspymemcached-java default-jdk-headless golang-go golang-github-bradfitz-gomemcache-dev ruby ruby-dalli"
# debhelper/dpkg-dev build the .deb, rpm has rpmbuild, scdoc the man pages;
# lintian and rpmlint check the packages, systemd has systemd-analyze and
# systemd-sysusers, man-db lets systemd-analyze check Documentation=, file
# and python3 serve tests/packaging/run.sh.
# The storage benchmark runs the same workloads through LevelDB and RocksDB.
BENCH_PKGS="libleveldb-dev librocksdb-dev"
PACKAGE_PKGS="debhelper dpkg-dev lintian rpm rpmlint scdoc systemd man-db file python3"

case "${1:-build}" in
build) want="$BUILD_PKGS" ;;
test) want="$BUILD_PKGS $TEST_PKGS" ;;
package) want="$BUILD_PKGS $PACKAGE_PKGS" ;;
bench) want="$BUILD_PKGS $TEST_PKGS $BENCH_PKGS" ;;
*) echo "usage: $0 build|test|package|bench" >&2; exit 64 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages:$missing" >&2
    echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# collectd-core would pull in a running service on some images; we only run
# it by hand from the tests, so don't let a policy script start daemons.
apt-get install -y -q --no-install-recommends $missing
