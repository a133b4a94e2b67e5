#!/bin/bash
# run.sh [PKG_OUT] - the packaging tests (docs/PACKAGING.md), run by
# `make package-test` after `make deb rpm` (PKG_OUT defaults to build/pkg).
#
#   deb   metadata, computed Depends, conffiles, maintainer scripts (run
#         against stubs: strata-proxy enabled and started on install,
#         strata-node neither), file list, lintian
#   rpm   --requires/--provides/--scripts, %config(noreplace), file list,
#         rpmlint, install into a scratch root (--nodeps --noscripts) with
#         file list, permissions and `rpm -V` checked
#   live  (root only) installs the .deb on this machine (strata-proxy
#         enabled, strata-node not enabled and not running; the test then
#         enables it as the operator would), runs each unit's
#         ExecStart as its user on free ports (strata-proxy with a notify
#         socket), talks memcached protocol (strata-node: stats cluster and
#         the other groups, repair, strata-admin), stops it with SIGTERM;
#         systemd-analyze verify; upgrade to N+1 (built from a temp copy of
#         the tree with a bumped VERSION, changed units and changed
#         conffiles) keeping conffile edits and the node's data; remove;
#         purge. Removes everything it installed.
#
# Prints one "N passed, N failed" line at the end; exits 1 if any failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${1:-build/pkg}
OUT=$(cd "$OUT" && pwd)
HERE=$ROOT/tests/packaging
PY=${PYTHON:-/usr/bin/python3}
VERSION=$(cat VERSION)
DEB=$(ls "$OUT"/deb/strata_"$VERSION"-*_*.deb 2>/dev/null | head -n1)
RPM=$(ls "$OUT"/rpm/RPMS/*/strata-"$VERSION"-*.rpm 2>/dev/null | grep -v -- '-debug' | head -n1)
WORK=$(mktemp -d /tmp/strata-pkgtest.XXXXXX)
chmod 755 "$WORK"
T0=$SECONDS

passed=0
failed=0
skipped=0
failures=()

ok() { passed=$((passed + 1)); echo "  ok    $1"; }
fail() {
    failed=$((failed + 1))
    failures+=("$1")
    echo "  FAIL  $1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -n 40 | sed 's/^/        /'; fi
}
skip() { skipped=$((skipped + 1)); echo "  skip  $1"; }
section() { echo "== $1 ($((SECONDS - T0)) s)"; }

# check NAME CMD... - passes when CMD exits 0 (bounded to 120 s).
check() {
    local name=$1 out
    shift
    if out=$(timeout 120 "$@" 2>&1); then ok "$name"; else fail "$name" "$out"; fi
}
# expect NAME CONDITION-CMD... - like check, for shell tests without output.
expect() { check "$@"; }
# tally CMD... - runs a pkgcheck.py command and counts its ok/FAIL lines.
tally() {
    local line
    while IFS= read -r line; do
        case $line in
        "ok "*) ok "${line#ok }" ;;
        "FAIL "*) fail "${line#FAIL }" ;;
        *) echo "$line" ;;
        esac
    done < <(timeout 120 "$PY" "$HERE/pkgcheck.py" "$@" 2>&1)
}
contains() { grep -qE -- "$2" <<<"$1"; } # contains TEXT REGEX

# What the expected file lists expand to (packaging/module.mk).
mapfile -t PKG_INFO < <(make -s --no-print-directory pkg-info)
BINS=$(printf '%s\n' "${PKG_INFO[@]}" | sed -n 's/^bin=//p')
UNITS=$(printf '%s\n' "${PKG_INFO[@]}" | sed -n 's/^unit=//p')
CONFS=$(printf '%s\n' "${PKG_INFO[@]}" | sed -n 's/^conf=//p')
# Units the packages install but neither enable nor start (docs/PACKAGING.md,
# "strata-node.service"): the operator does, after configuring the node.
MANUAL_UNITS=strata-node.service
AUTO_UNITS=$(for u in $UNITS; do case " $MANUAL_UNITS " in *" $u "*) ;; *) echo "$u" ;; esac; done)

# --- the machine is left as it was found -------------------------------------
user_existed=no
getent passwd strata >/dev/null && user_existed=yes
group_existed=no
getent group strata >/dev/null && group_existed=yes
installed_by_us=no
PROXY_PIDS=()
cleanup() {
    local p
    for p in "${PROXY_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    if [ "$installed_by_us" = yes ] && dpkg-query -W -f='${db:Status-Status}' strata 2>/dev/null |
        grep -qv '^not-installed$'; then
        dpkg --purge strata >/dev/null 2>&1 || true
    fi
    if [ "$installed_by_us" = yes ]; then
        [ "$user_existed" = no ] && userdel strata >/dev/null 2>&1
        [ "$group_existed" = no ] && groupdel strata >/dev/null 2>&1
        rm -rf /var/lib/strata
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build N+1 first: a build failure is a test failure, not a broken run ---
section "build N+1 from a temp copy of the tree"
NEXT_VERSION=$(awk -F. -v OFS=. '{ $NF = $NF + 1; print }' VERSION)
NEXT=$WORK/next/strata
NEXT_DEB=
if packaging/stage-source.sh "$ROOT" "$NEXT" >"$WORK/next-build.log" 2>&1; then
    echo "$NEXT_VERSION" >"$NEXT/VERSION"
    sed -i 's/^Description=.*/& (upgrade test)/' "$NEXT"/packaging/systemd/*.service
    for c in $CONFS; do
        echo "# changed upstream in $NEXT_VERSION (upgrade test)" >>"$NEXT/packaging/conf/$c"
    done
    if timeout 300 make -C "$NEXT" deb PKG_OUT="$WORK/next/pkg" >>"$WORK/next-build.log" 2>&1; then
        NEXT_DEB=$(ls "$WORK"/next/pkg/deb/strata_"$NEXT_VERSION"-*.deb)
        ok "builds strata $NEXT_VERSION (N+1) from a copy of the tree"
    else
        fail "builds strata $NEXT_VERSION (N+1) from a copy of the tree" "$(tail -n 30 "$WORK/next-build.log")"
    fi
else
    fail "stages a copy of the tree" "$(cat "$WORK/next-build.log")"
fi

# --- .deb -------------------------------------------------------------------
section "deb: $(basename "${DEB:-missing}")"
if [ -z "$DEB" ]; then
    fail "the .deb of $VERSION exists under $OUT/deb (make deb)"
else
    expect "Version is $VERSION-<revision>" \
        bash -c "dpkg-deb -f '$DEB' Version | grep -qx '$VERSION-[0-9]*'"
    depends=$(dpkg-deb -f "$DEB" Depends)
    echo "        Depends: $depends"
    for lib in 'libc6 \(>=' 'libevent-core-2\.1-7' 'libjemalloc2' 'libsystemd0' 'libinih1' \
        'libxxhash0' 'systemd \| systemd-standalone-sysusers'; do
        if contains "$depends" "$lib"; then ok "Depends (computed) has $lib"; else fail "Depends (computed) has $lib" "$depends"; fi
    done
    check "Architecture is the build machine's ($(dpkg --print-architecture))" \
        bash -c "[ \"\$(dpkg-deb -f '$DEB' Architecture)\" = \"\$(dpkg --print-architecture)\" ]"
    mkdir -p "$WORK/deb-control"
    dpkg-deb -e "$DEB" "$WORK/deb-control"
    # One conffile per config of packaging/conf/ (PKG_INFO), nothing else.
    conffiles=$(sort "$WORK/deb-control/conffiles" 2>/dev/null)
    want_conffiles=$(for c in $CONFS; do echo "/etc/strata/$c"; done | sort)
    if [ "$conffiles" = "$want_conffiles" ]; then ok "conffiles: $(echo $want_conffiles)"; else fail "conffiles: $(echo $want_conffiles)" "$conffiles"; fi
    expect "postinst creates the user with systemd-sysusers" grep -q 'systemd-sysusers.* strata.conf' "$WORK/deb-control/postinst"
    # The maintainer scripts run against stubs, as on a machine running
    # systemd (docs/PACKAGING.md): strata-proxy enabled and started on
    # install, restarted on upgrade; strata-node neither enabled nor started
    # on install, try-restarted on upgrade; both stopped on remove and
    # disabled on purge.
    tally maintscripts "$WORK/deb-control" "$(echo $UNITS)" "$MANUAL_UNITS"

    dpkg-deb -c "$DEB" | awk '{ $3 = $4 = $5 = ""; print }' | sed 's/   */ /g' >"$WORK/deb-files.txt"
    tally filelist "$HERE/expected/deb.txt" "$WORK/deb-files.txt" "${PKG_INFO[@]}"

    lint=$(timeout 120 lintian --pedantic --fail-on none "$DEB" 2>&1 | grep -v '^running with root privileges')
    echo "${lint:-(nothing to report)}" | sed 's/^/        lintian: /'
    if ! grep -qE '^[EW]: ' <<<"$lint"; then ok "lintian: no errors or warnings (overrides say why)"; else fail "lintian: no errors or warnings" "$lint"; fi

    mkdir -p "$WORK/deb-root"
    dpkg-deb -x "$DEB" "$WORK/deb-root"
    for b in $BINS; do
        expect "$b is stripped and hardened (PIE, RELRO+BIND_NOW)" bash -c \
            "file '$WORK/deb-root/usr/bin/$b' | grep -q 'pie executable.*, stripped' &&
             readelf -d '$WORK/deb-root/usr/bin/$b' | grep -q 'BIND_NOW' &&
             readelf -l '$WORK/deb-root/usr/bin/$b' | grep -q GNU_RELRO"
    done
    expect "strata-proxy links libsystemd (Type=notify works)" \
        bash -c "readelf -d '$WORK/deb-root/usr/bin/strata-proxy' | grep -q 'NEEDED.*libsystemd.so'"
    tally conf-covers "$WORK/deb-root/etc/strata/proxy.conf" "$WORK/deb-root/usr/bin/strata-proxy"
    tally man-covers "$WORK/deb-root/usr/share/man/man8/strata-proxy.8.gz" "$WORK/deb-root/usr/bin/strata-proxy"
    tally node-conf "$WORK/deb-root/etc/strata/node.conf" "$WORK/deb-root/usr/bin/strata-node"
    for b in strata-node strata-admin; do
        tally man-covers-help "$WORK/deb-root/usr/share/man/man8/$b.8.gz" "$WORK/deb-root/usr/bin/$b"
    done
    for b in $BINS; do
        expect "$b has a man page" bash -c "ls '$WORK'/deb-root/usr/share/man/man?/'$b'.?.gz"
    done
    for c in proxy node; do
        check "the shipped $c.conf passes strata-$c --check-config" \
            "$WORK/deb-root/usr/bin/strata-$c" --config "$WORK/deb-root/etc/strata/$c.conf" --check-config
    done
    # The units create the data directories of the shipped configs for their user.
    expect "proxy.conf's data_dir is a StateDirectory= of strata-proxy.service" bash -c \
        "grep -qx 'backend = local' '$WORK/deb-root/etc/strata/proxy.conf' &&
         grep -qx 'data_dir = /var/lib/strata/proxy' '$WORK/deb-root/etc/strata/proxy.conf' &&
         grep -qxE 'StateDirectory=(.* )?strata/proxy( .*)?' '$WORK/deb-root/lib/systemd/system/strata-proxy.service'"
    expect "node.conf's data_dir is a StateDirectory= of strata-node.service" bash -c \
        "grep -qx '#data_dir = /var/lib/strata/node' '$WORK/deb-root/etc/strata/node.conf' &&
         grep -qxE 'StateDirectory=(.* )?strata/node( .*)?' '$WORK/deb-root/lib/systemd/system/strata-node.service'"
fi

# --- .rpm -------------------------------------------------------------------
section "rpm: $(basename "${RPM:-missing}")"
if [ -z "$RPM" ]; then
    fail "the .rpm of $VERSION exists under $OUT/rpm/RPMS (make rpm)"
else
    q() { rpm -qp "$@" "$RPM" 2>/dev/null; }
    expect "Version is $VERSION" bash -c "[ \"\$(rpm -qp --qf '%{VERSION}' '$RPM')\" = '$VERSION' ]"
    requires=$(q --requires)
    echo "$requires" | sed 's/^/        requires: /'
    for r in 'libevent_core-2\.1\.so\.7\(\)\(64bit\)' 'libjemalloc\.so\.2\(\)\(64bit\)' \
        'libsystemd\.so\.0\(\)\(64bit\)' 'libinih\.so\.[0-9]+\(\)\(64bit\)' \
        'libxxhash\.so\.0\(\)\(64bit\)' 'libc\.so\.6\(GLIBC_' '^/usr/bin/systemd-sysusers$'; do
        if contains "$requires" "$r"; then ok "requires (automatic) $r"; else fail "requires $r" "$requires"; fi
    done
    if ! contains "$requires" '-dev|devel|\.so\(\)|/usr/local'; then ok "requires nothing from build time"; else fail "requires nothing from build time" "$requires"; fi
    provides=$(q --provides)
    for p in "^strata = $VERSION-" "^strata\(x86-64\) = $VERSION-" "^config\(strata\) = $VERSION-"; do
        if contains "$provides" "$p"; then ok "provides $p"; else fail "provides $p" "$provides"; fi
    done
    scripts=$(q --scripts)
    units_re=$(echo $UNITS | sed 's/\./\\./g')
    auto_re=$(echo $AUTO_UNITS | sed 's/\./\\./g')
    for s in 'preinstall scriptlet' 'systemd-sysusers --replace=/usr/lib/sysusers.d/strata.conf' \
        '^u strata - ".*" /var/lib/strata$' \
        'postinstall scriptlet' "systemctl --no-reload preset $auto_re( |\$)" \
        'preuninstall scriptlet' "if \\[ \\\$1 -eq 0 \\].*disable --now $units_re" \
        'postuninstall scriptlet' "if \\[ \\\$1 -ge 1 \\].*try-restart $units_re"; do
        if contains "$scripts" "$s"; then ok "scripts: $s"; else fail "scripts: $s" "$scripts"; fi
    done
    # strata-node is not preset: the operator enables it (docs/PACKAGING.md).
    post=$(sed -n '/^postinstall scriptlet/,/^[a-z]* scriptlet/{/^[a-z]* scriptlet/!p}' <<<"$scripts")
    for u in $MANUAL_UNITS; do
        if [ -n "$post" ] && ! contains "$post" "$u"; then ok "scripts: postinstall does not preset $u"; else fail "scripts: postinstall does not preset $u" "$post"; fi
    done
    flags=$(q --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' | grep '^c' | sort)
    want_flags=$(for c in $CONFS; do echo "cn /etc/strata/$c"; done | sort)
    if [ "$flags" = "$want_flags" ]; then ok "%config(noreplace): $(echo $CONFS)"; else fail "%config(noreplace): $(echo $CONFS)" "$flags"; fi
    q --qf '[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}|%{FILELINKTOS}\n]' |
        sed -e 's/|$//' -e 's/|/ -> /' >"$WORK/rpm-files.txt"
    tally filelist "$HERE/expected/rpm.txt" "$WORK/rpm-files.txt" "${PKG_INFO[@]}"

    lint=$(timeout 120 rpmlint -c packaging/rpm/rpmlint.toml "$RPM" 2>&1)
    echo "$lint" | grep -E '^[a-z].*: [EW]: |errors' | sed 's/^/        rpmlint: /'
    if grep -qE '\b0 errors' <<<"$lint" && ! grep -qE ': E: ' <<<"$lint"; then ok "rpmlint: no errors"; else fail "rpmlint: no errors" "$lint"; fi

    # Scratch root: rpm's own database there, no scriptlets.
    R=$WORK/rpm-root
    mkdir -p "$R"
    check "rpm --initdb in a scratch root" rpm --root "$R" --dbpath /var/lib/rpm --initdb
    check "rpm -i --root DIR --nodeps --noscripts" \
        rpm -i --root "$R" --dbpath /var/lib/rpm --nodeps --noscripts "$RPM"
    check "rpm -q finds it in the scratch root" rpm -q --root "$R" --dbpath /var/lib/rpm "strata-$VERSION"
    check "rpm -V: files, digests, modes as packaged" \
        rpm -V --nodeps --root "$R" --dbpath /var/lib/rpm strata
    # Every packaged path with its packaged mode and owner; no other file
    # (rpm only adds parent directories and its database).
    rpm_paths=$(rpm -qlp "$RPM" 2>/dev/null)
    extra=$(find "$R" -path "$R/var/lib/rpm" -prune -o ! -type d -print | sed "s|^$R||" |
        grep -vxF -f <(echo "$rpm_paths"))
    missing=$(echo "$rpm_paths" | while read -r f; do [ -e "$R$f" ] || [ -L "$R$f" ] || echo "$f"; done)
    if [ -z "$extra$missing" ]; then ok "scratch root holds the packaged files, nothing else"; else fail "scratch root holds the packaged files, nothing else" "extra: $extra
missing: $missing"; fi
    # Owners only as root: rpm run by another user cannot chown.
    if [ "$(id -u)" -eq 0 ]; then what="modes and owners" fmt='%A %U/%G' cols='$3, $1, $2'; else what="modes" fmt='%A' cols='$3, $1'; fi
    want=$(awk "{ print $cols }" "$WORK/rpm-files.txt" | sort)
    got=$(echo "$rpm_paths" | while read -r f; do echo "$f $(stat -c "$fmt" "$R$f")"; done | sort)
    if [ "$want" = "$got" ]; then ok "scratch root: $what as packaged"; else fail "scratch root: $what as packaged" "$(diff <(echo "$want") <(echo "$got"))"; fi
    for b in strata-proxy strata-node; do
        check "$b from the scratch root runs (-V)" bash -c "'$R/usr/bin/$b' -V | grep -q '^$b $VERSION'"
    done
    check "strata-admin from the scratch root runs (-h)" bash -c "'$R/usr/bin/strata-admin' -h | grep -q 'status'"
    check "rpm -e --root DIR --noscripts" rpm -e --root "$R" --dbpath /var/lib/rpm --noscripts strata
    left=$(cd "$R" && find . -path ./var/lib/rpm -prune -o ! -type d -print)
    if [ -z "$left" ]; then ok "rpm -e leaves no file in the scratch root"; else fail "rpm -e leaves no file in the scratch root" "$left"; fi
fi

# --- live install, run, upgrade, remove, purge ----------------------------
section "live: install the .deb on this machine"
live_reason=
[ "$(id -u)" -eq 0 ] || live_reason="needs root"
[ -n "$DEB" ] || live_reason="no .deb"
if [ -z "$live_reason" ] && dpkg-query -W -f='${db:Status-Status}' strata 2>/dev/null | grep -qv '^not-installed$'; then
    live_reason="a strata package is already installed here; not touching it"
fi
if [ -n "$live_reason" ]; then
    skip "live install tests: $live_reason"
else
    export DEBIAN_FRONTEND=noninteractive
    installed_by_us=yes
    check "apt-get install ./$(basename "$DEB")" \
        apt-get install -y -q --no-install-recommends "$DEB"
    check "dpkg: strata $VERSION installed" \
        bash -c "dpkg-query -W -f='\${db:Status-Status} \${Version}' strata | grep -qx 'installed $VERSION-[0-9]*'"
    pw=$(getent passwd strata)
    if [ -n "$pw" ]; then ok "user strata created"; else fail "user strata created"; fi
    IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
    if [ -n "$uid" ] && [ "$uid" -lt 1000 ]; then ok "strata is a system user (uid $uid)"; else fail "strata is a system user" "$pw"; fi
    if [ "$home" = /var/lib/strata ] && [ "${shell##*/}" = nologin ]; then ok "strata: home /var/lib/strata, shell nologin"; else fail "strata: home /var/lib/strata, shell nologin" "$pw"; fi
    if [ "$(getent group strata | cut -d: -f3)" = "$gid" ]; then ok "group strata is its primary group"; else fail "group strata is its primary group" "$(getent group strata)"; fi
    check "postinst is idempotent (dpkg-reconfigure-like rerun)" \
        /var/lib/dpkg/info/strata.postinst configure "$VERSION-1"
    UNIT=/lib/systemd/system/strata-proxy.service
    NODE_UNIT=/lib/systemd/system/strata-node.service
    for u in $UNITS; do
        expect "$u installed in /lib/systemd/system" test -f "/lib/systemd/system/$u"
    done
    for u in $AUTO_UNITS; do
        expect "$u enabled for multi-user.target" \
            test -L "/etc/systemd/system/multi-user.target.wants/$u"
    done
    # After install and the postinst rerun above: not enabled, not running.
    for u in $MANUAL_UNITS; do
        expect "$u not enabled (no multi-user.target.wants link)" \
            test ! -e "/etc/systemd/system/multi-user.target.wants/$u" -a ! -L "/etc/systemd/system/multi-user.target.wants/$u"
        check "systemctl is-enabled $u: disabled" \
            bash -c "out=\$(systemctl is-enabled '$u' 2>&1); echo \"\$out\"; [ \"\$out\" = disabled ]"
        if [ -d /run/systemd/system ]; then
            check "$u not active" bash -c "! systemctl is-active --quiet '$u'"
        fi
        # The installed binary only: other tests may run their own build.
        check "no process runs /usr/bin/${u%.service}" bash -c \
            "for e in /proc/[0-9]*/exe; do case \$(readlink \$e 2>/dev/null) in
             '/usr/bin/${u%.service}'*) echo \"\${e%/exe}\"; exit 1 ;; esac; done; exit 0"
    done
    # What both units share: the user, the restart policy, the hardening.
    for k in User=strata Group=strata Restart=on-failure \
        ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes NoNewPrivileges=yes \
        MemoryDenyWriteExecute=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
        'CapabilityBoundingSet=' 'LimitNOFILE=[0-9]+' 'StateDirectoryMode=0750'; do
        for u in "$UNIT" "$NODE_UNIT"; do
            expect "${u##*/}: $k" grep -qxE "$k" "$u"
        done
    done
    # the local backend's data: /var/lib/strata/proxy (proxy.conf's data_dir)
    for k in Type=notify 'StateDirectory=strata strata/proxy' \
        'ExecStart=/usr/bin/strata-proxy --config /etc/strata/proxy.conf'; do
        expect "strata-proxy.service: $k" grep -qxE "$k" "$UNIT"
    done
    # strata-node does not talk sd_notify; its data directory is
    # /var/lib/strata/node (node.conf's default data_dir).
    for k in Type=exec 'StateDirectory=strata strata/node' \
        'RestartPreventExitStatus=64 65 78' \
        'ExecStart=/usr/bin/strata-node --config /etc/strata/node.conf'; do
        expect "strata-node.service: $k" grep -qxE "$k" "$NODE_UNIT"
    done
    nofile=$(sed -n 's/^LimitNOFILE=//p' "$UNIT")
    if [ "${nofile:-0}" -ge $((1024 + 32 + 2 * 64)) ]; then ok "LimitNOFILE=$nofile covers the default conn_limit"; else fail "LimitNOFILE covers conn_limit" "$nofile"; fi
    if command -v systemd-analyze >/dev/null; then
        man_opt=--man=no
        command -v man >/dev/null && man_opt=--man=yes
        for u in "$UNIT" "$NODE_UNIT"; do
            check "systemd-analyze verify $man_opt ${u##*/}" \
                bash -c "out=\$(systemd-analyze verify $man_opt '$u' 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
            exposure=$(systemd-analyze security --offline=yes "$u" 2>/dev/null | tail -n 1)
            echo "        systemd-analyze security: $exposure"
            score=$(sed -n 's/.*exposure level for .*: \([0-9.]*\).*/\1/p' <<<"$exposure")
            if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then ok "systemd-analyze security ${u##*/}: exposure $score <= 2.0"; else fail "systemd-analyze security ${u##*/}: exposure <= 2.0" "$exposure"; fi
        done
        # Checking Documentation=man:... made man-db cache formatted pages.
        for b in $BINS; do
            rm -f /var/cache/man/cat8/"$b".8.gz /var/cache/man/*/cat8/"$b".8.gz
        done
    else
        skip "systemd-analyze verify: not installed"
    fi
    for c in proxy node; do
        check "installed $c.conf passes --check-config" \
            /usr/bin/strata-$c --config /etc/strata/$c.conf --check-config
    done

    section "live: run strata-proxy.service's ExecStart as strata"
    # What systemd does before ExecStart for StateDirectory=strata strata/proxy.
    install -d -m 0750 -o strata -g strata /var/lib/strata /var/lib/strata/proxy
    PORT=$("$PY" "$HERE/pkgcheck.py" free-port)
    tally run-unit "$UNIT" "$PORT" "$WORK/run1" --expect-version "$VERSION" --expect-maxbytes $((64 << 20))

    section "live: enable strata-node.service, run its ExecStart as strata"
    # The operator's step once node.conf is set (here: the shipped one, a
    # cluster of one). Not `--now`: the test starts the ExecStart itself,
    # on free ports, whether or not systemd runs.
    for u in $MANUAL_UNITS; do
        check "systemctl enable $u (the operator, after editing the config)" systemctl enable "$u"
        expect "$u enabled for multi-user.target" \
            test -L "/etc/systemd/system/multi-user.target.wants/$u"
    done
    # What systemd does for StateDirectory=strata strata/node: the node's
    # data goes where the service would keep it (purge deletes it).
    install -d -m 0750 -o strata -g strata /var/lib/strata /var/lib/strata/node
    read -r PORT CPORT < <("$PY" "$HERE/pkgcheck.py" free-port 2 | xargs)
    tally run-node "$NODE_UNIT" "$PORT" "$CPORT" "$WORK/node1" --admin /usr/bin/strata-admin \
        --expect-version "$VERSION" --expect-threads 4 --set pkgtest-node

    section "live: upgrade to $NEXT_VERSION keeping conffile edits"
    # The admin's edits, and data the services left in their state directory.
    sed -i 's/^#memory_limit = 64$/memory_limit = 128/' /etc/strata/proxy.conf
    echo "# edited by the admin (upgrade test)" >>/etc/strata/proxy.conf
    edited=$(md5sum </etc/strata/proxy.conf)
    sed -i 's/^#threads = 4$/threads = 2/' /etc/strata/node.conf
    echo "# edited by the admin (upgrade test)" >>/etc/strata/node.conf
    node_edited=$(md5sum </etc/strata/node.conf)
    echo data >/var/lib/strata/data && chown strata:strata /var/lib/strata/data
    if [ -z "$NEXT_DEB" ]; then
        fail "upgrade: no N+1 package (see its build above)"
    else
        check "dpkg -i --force-confold $(basename "$NEXT_DEB")" \
            dpkg -i --force-confold "$NEXT_DEB"
        check "dpkg: strata $NEXT_VERSION installed" \
            bash -c "dpkg-query -W -f='\${db:Status-Status} \${Version}' strata | grep -qx 'installed $NEXT_VERSION-[0-9]*'"
        if [ "$(md5sum </etc/strata/proxy.conf)" = "$edited" ]; then ok "the admin's proxy.conf edit is kept"; else fail "the admin's proxy.conf edit is kept" "$(diff "$NEXT/packaging/conf/proxy.conf" /etc/strata/proxy.conf)"; fi
        if [ "$(md5sum </etc/strata/node.conf)" = "$node_edited" ]; then ok "the admin's node.conf edit is kept"; else fail "the admin's node.conf edit is kept" "$(diff "$NEXT/packaging/conf/node.conf" /etc/strata/node.conf)"; fi
        for c in $CONFS; do
            expect "the new upstream conffile is set aside as $c.dpkg-dist" \
                grep -q "changed upstream in $NEXT_VERSION" "/etc/strata/$c.dpkg-dist"
        done
        for u in $UNITS; do
            expect "$u is updated" grep -q '^Description=.*(upgrade test)$' "/lib/systemd/system/$u"
            # strata-node: the operator's enable above is kept.
            expect "$u stays enabled" test -L "/etc/systemd/system/multi-user.target.wants/$u"
        done
        for b in strata-proxy strata-node; do
            check "$b is updated" bash -c "/usr/bin/$b -V | grep -q '^$b $NEXT_VERSION '"
        done
        expect "service data survives the upgrade" test -f /var/lib/strata/data
        expect "the node's identity survives the upgrade" test -f /var/lib/strata/node/NODE
        PORT=$("$PY" "$HERE/pkgcheck.py" free-port)
        tally run-unit "$UNIT" "$PORT" "$WORK/run2" --expect-version "$NEXT_VERSION" --expect-maxbytes $((128 << 20)) --expect-kept
        read -r PORT CPORT < <("$PY" "$HERE/pkgcheck.py" free-port 2 | xargs)
        tally run-node "$NODE_UNIT" "$PORT" "$CPORT" "$WORK/node2" --admin /usr/bin/strata-admin \
            --expect-version "$NEXT_VERSION" --expect-threads 2 --expect-key pkgtest-node --set pkgtest-node2
    fi

    section "live: remove, then purge"
    check "dpkg --remove strata" dpkg --remove strata
    check "dpkg: state config-files after remove" \
        bash -c "dpkg-query -W -f='\${db:Status-Status}' strata | grep -qx config-files"
    for b in $BINS; do
        expect "remove: $b gone" test ! -e "/usr/bin/$b"
    done
    for u in $UNITS; do
        expect "remove: $u gone" test ! -e "/lib/systemd/system/$u"
    done
    expect "remove: sysusers.d file gone" test ! -e /usr/lib/sysusers.d/strata.conf
    for c in $CONFS; do
        expect "remove: conffile $c kept" test -f "/etc/strata/$c"
    done
    expect "remove: /var/lib/strata kept" test -f /var/lib/strata/data
    expect "remove: the node's data kept" test -f /var/lib/strata/node/NODE
    check "remove: user strata kept" getent passwd strata
    check "dpkg --purge strata" dpkg --purge strata
    check "purge: dpkg forgets strata" \
        bash -c "! dpkg-query -W -f='\${db:Status-Status}' strata 2>/dev/null | grep -qv not-installed"
    expect "purge: /etc/strata gone (with .dpkg-dist)" test ! -e /etc/strata
    expect "purge: /var/lib/strata gone" test ! -e /var/lib/strata
    for u in $UNITS; do
        expect "purge: $u disabled (its enable link gone)" \
            test ! -L "/etc/systemd/system/multi-user.target.wants/$u"
    done
    left=$(find /etc /lib /usr /var -xdev \( -path /usr/local -o -path /var/tmp -o -path /var/cache/apt \) \
        -prune -o -name '*strata*' -print 2>/dev/null)
    if [ -z "$left" ]; then ok "purge: no file named *strata* left in /etc /lib /usr /var"; else fail "purge: no file named *strata* left" "$left"; fi
    # Debian's policy: a package does not delete its system user.
    check "purge: user strata kept (Debian policy; the test deletes it)" getent passwd strata
fi

echo "== done in $((SECONDS - T0)) s"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
