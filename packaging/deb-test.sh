#!/usr/bin/env bash
# Installs, upgrades, removes and purges the .deb in a fresh Debian 12 root, and checks what a
# Debian user expects at each step. Run as root (`make deb-test`).
#
# Usage: packaging/deb-test.sh [--bootstrap-only]
# Environment:
#   DEB_TEST_CACHE=DIR   where the bootstrapped root is cached (default /var/cache/heatgate-debootstrap)
#   DEB_TEST_MIRROR=URL  Debian mirror (default http://deb.debian.org/debian)
#   DEB_TEST_KEEP=1      keep the test root afterwards (its path is printed)
#   HEATGATE_REQUIRE_SUBCOMMANDS=1  a missing subcommand (check-config, replay, kill, get) fails
#                        instead of being skipped
#
# The root is made once with debootstrap (minbase + systemd, adduser, libzmq5) and cached as a
# tarball; each run unpacks a fresh copy. No systemd runs inside: the maintainer scripts must
# cope, as they do in any chroot or image build.
# shellcheck disable=SC2016 # dpkg-query formats like '${Status}' are dpkg's, not the shell's
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
pkg=quantum-portfolio-heat-gate
unit=$pkg.service
conffile=/etc/quantum/portfolio-heat-gate.env
aunit=quantum-heatgate-redis-adapter.service
aconf=/etc/quantum/heatgate-redis-adapter.env
pydir=/usr/lib/python3/dist-packages/heatgate
statedir=/var/lib/$pkg
svcuser=quantum-heatgate
group=quantum

suite=bookworm
mirror=${DEB_TEST_MIRROR:-http://deb.debian.org/debian}
cache=${DEB_TEST_CACHE:-/var/cache/heatgate-debootstrap}
# procps: /bin/kill for ExecReload; python3: the adapter's interpreter (Depends of the package;
# dpkg -i does not fetch them).
include=systemd,adduser,libzmq5,procps,python3
# Installed with apt after debootstrap (whose own resolver fails on python3-zmq): the Recommends,
# so the adapter runs, and redis-server, for the adapter to start under the booted root.
extra="python3-zmq python3-lmdb python3-redis redis-server"
tarball=$cache/$suite-minbase-$(echo "$include $extra" | md5sum | cut -c1-8).tar.gz

[ "$(id -u)" -eq 0 ] || { echo "deb-test: must run as root (debootstrap, chroot)" >&2; exit 2; }
"$repo/scripts/ensure-deps.sh" debootstrap dpkg-dev binutils

log() { echo "deb-test: $*" >&2; }

# --- The cached root ----------------------------------------------------------------------
bootstrap() {
    [ -s "$tarball" ] && return 0
    mkdir -p "$cache"
    local tmp start
    tmp=$(mktemp -d "$cache/root.XXXXXX")
    start=$(date +%s)
    log "debootstrap $suite (minbase + $include, then $extra) from $mirror; cached at $tarball"
    if ! debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -20 "$cache/debootstrap.log" >&2
        umount_below "$tmp"; rm -rf --one-file-system "$tmp"
        log "debootstrap failed (log: $cache/debootstrap.log)"; exit 1
    fi
    mount -t proc proc "$tmp/proc"
    # shellcheck disable=SC2086 # a list of package names
    if ! chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $extra \
        </dev/null >>"$cache/debootstrap.log" 2>&1; then
        tail -20 "$cache/debootstrap.log" >&2
        umount_below "$tmp"; rm -rf --one-file-system "$tmp"
        log "apt-get install $extra failed (log: $cache/debootstrap.log)"; exit 1
    fi
    umount_below "$tmp"
    apt_clean_root "$tmp"
    chmod 0755 "$tmp"   # mktemp made it 0700; the root's own users must reach /
    tar -C "$tmp" --numeric-owner -czf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf --one-file-system "$tmp"
    log "debootstrap took $(( $(date +%s) - start )) s"
}

apt_clean_root() { rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages; }

# Unmounts everything mounted at or below $1, deepest first.
umount_below() {
    local m
    awk -v r="$(realpath "$1")" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}

boot_start=$(date +%s)
bootstrap
boot_secs=$(( $(date +%s) - boot_start ))
[ "${1:-}" = "--bootstrap-only" ] && exit 0

# --- Results ------------------------------------------------------------------------------
passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() {
    if [ "${HEATGATE_REQUIRE_SUBCOMMANDS:-0}" = 1 ]; then fail "$* (required: HEATGATE_REQUIRE_SUBCOMMANDS=1)"
    else skipped=$((skipped + 1)); echo "SKIP: $*"; fi
}
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi; }
check_not() { local what=$1; shift; if "$@" >/dev/null 2>&1; then fail "$what"; else pass "$what"; fi; }
# check_denied DESCRIPTION COMMAND...: passes when the command fails for lack of permission (and
# not, say, because the command could not run at all).
check_denied() {
    local what=$1 out; shift
    if out=$("$@" 2>&1); then fail "$what (it succeeded)"
    elif grep -q 'Permission denied' <<<"$out"; then pass "$what"
    else fail "$what (failed for another reason: $out)"; fi
}

# --- The two packages: VERSION, and VERSION+1 with a changed conffile ---------------------
v1=$(tr -d '[:space:]' <"$here/VERSION")
v2=$(awk -F. -v OFS=. '{ $NF = $NF + 1; print }' <<<"$v1")
log "building $v1 and $v2"
deb1=$("$here/build-deb.sh" "$v1" | tail -1)
deb2=$(NO_LINTIAN=1 "$here/build-deb.sh" "$v2" | tail -1)

# --- A fresh root, with /proc, torn down whatever happens ---------------------------------
R=$(mktemp -d /var/tmp/heatgate-deb-test.XXXXXX)
nspawn_pid=""
stop_container() {
    [ -n "$nspawn_pid" ] || return 0
    # SIGTERM makes nspawn ask the container's systemd for an orderly shutdown.
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
    nspawn_pid=""
}
cleanup() {
    stop_container
    umount_below "$R"
    rm -f "$R.nspawn.log"
    if [ "${DEB_TEST_KEEP:-0}" = 1 ]; then log "root kept at $R"; else rm -rf --one-file-system "$R"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tar -C "$R" --numeric-owner -xzf "$tarball"
chmod 0755 "$R"     # the same, for roots cached before that chmod and for mktemp's 0700
mount -t proc proc "$R/proc"
[ -c "$R/dev/null" ] || mount --bind /dev "$R/dev"
[ ! -e "$R/run/systemd/system" ] || { log "the root claims a running systemd"; exit 1; }

# The v2 package gets a changed conffile, so that the upgrade meets a real conflict (both the
# admin and the package changed it), which --force-confold must settle for the admin.
work=$R/tmp/debs
mkdir -p "$work/v2"
dpkg-deb -R "$deb2" "$work/v2"
printf '\n# Added in %s: a packaging change, to be offered as .dpkg-dist.\n' "$v2" >>"$work/v2$conffile"
dpkg-deb --build --root-owner-group "$work/v2" "$work/${pkg}_${v2}.deb" >/dev/null
rm -rf "$work/v2"
cp "$deb1" "$work/${pkg}_${v1}.deb"

in_root() { chroot "$R" "$@"; }
dpkg_root() { chroot "$R" env DEBIAN_FRONTEND=noninteractive dpkg "$@" </dev/null; }
# Runs a command in the root as USER, with the unit's umask.
as_user() { local u=$1; shift; chroot "$R" runuser -u "$u" -- sh -c 'umask 0027; exec "$@"' sh "$@"; }
mode_of() { in_root stat -c '%U:%G %a' "$1" 2>/dev/null; }
has_subcommand() { in_root heatgate "$1" --help 2>&1 | grep -q "^USAGE: heatgate $1\b"; }
# The configuration arguments a subcommand takes: --config with the conffile when its help
# offers it. Callers also set the relevant keys in the environment (SPEC §6: environment wins
# over the file), so the check does not hang on the CLI's choice of flags.
config_args() { if in_root heatgate "$1" --help 2>&1 | grep -q -- '--config'; then echo "--config $conffile"; fi; }

# --- Install ------------------------------------------------------------------------------
echo "== install $v1"
if dpkg_root -i "/tmp/debs/${pkg}_${v1}.deb"; then pass "dpkg -i $v1 without systemd running"; else fail "dpkg -i $v1"; exit 1; fi
check "status installed, version $v1-1" test "$(in_root dpkg-query -W -f='${Status} ${Version}' $pkg)" = "install ok installed $v1-1"
check "dpkg --verify: files match md5sums" test -z "$(in_root dpkg --verify $pkg)"

gid=$(in_root getent group $group | cut -d: -f3)
check "group $group exists and is a system group (gid $gid)" test -n "$gid" -a "${gid:-9999}" -lt 1000
IFS=: read -r _ _ uid ugid _ uhome ushell < <(in_root getent passwd $svcuser || true)
check "user $svcuser is a system user (uid $uid)" test -n "$uid" -a "${uid:-9999}" -lt 1000
check "user $svcuser has primary group $group" test "$ugid" = "$gid"
check "user $svcuser cannot log in (shell $ushell)" test "$ushell" = /usr/sbin/nologin
check "user $svcuser's home is the state dir" test "$uhome" = "$statedir"

check "/usr/bin/heatgate root:root 755" test "$(mode_of /usr/bin/heatgate)" = "root:root 755"
check "/usr/bin/heatgate is stripped, NEEDED/RUNPATH clean" "$here/check-binary.sh" --stripped "$R/usr/bin/heatgate"
check "heatgate runs in the root (libraries resolved)" in_root heatgate --help
check "no unresolved library in the root" bash -c "! chroot '$R' ldd /usr/bin/heatgate | grep -q 'not found'"
check "unit root:root 644" test "$(mode_of /lib/systemd/system/$unit)" = "root:root 644"
check "unit enabled (multi-user.target.wants)" test -L "$R/etc/systemd/system/multi-user.target.wants/$unit"
check "conffile root:root 644" test "$(mode_of $conffile)" = "root:root 644"
check "conffile registered with dpkg" bash -c "chroot '$R' dpkg-query -W -f='\${Conffiles}' $pkg | grep -q ' $conffile '"
check "conffile has LF line endings" bash -c "! grep -q \$'\\r' '$R$conffile'"
for kv in P26_MODE=shadow P26_STATE_DIR=$statedir P26_RUN_DIR=/run/$pkg \
          P26_CONTROL_ENDPOINT=ipc:///run/$pkg/control.sock; do
    check "conffile sets $kv" grep -qx "$kv" "$R$conffile"
done
missing=""
for key in P26_MODE HEAT_MIN HEAT_MAX HEAT_COLD_ACTION HEAT_WARM_ACTION HEAT_HOT_ACTION \
           P26_FAIL_MODE P26_STATE_MAX_AGE_SEC P26_PROPOSAL_MAX_AGE_SEC P26_CALIBRATED_TTL_SEC \
           P26_JOURNAL_RETENTION_SEC P26_STATE_DIR P26_INGEST_ENDPOINT P26_PUBLISH_ENDPOINT \
           P26_CONTROL_ENDPOINT P26_METRICS_BIND P26_METRICS_PORT P26_LOG_LEVEL P26_LOG_FORMAT \
           P26_MAP_SIZE_MB P26_HEARTBEAT_SEC P26_REPEAT_PEAK_RATE P26_RUN_DIR; do
    grep -q "^$key=" "$R$conffile" || missing="$missing $key"
done
check "conffile sets every SPEC §6 key${missing:+ (missing:$missing)}" test -z "$missing"
check "state dir $svcuser:$group 750" test "$(mode_of $statedir)" = "$svcuser:$group 750"
for f in usr/share/man/man1/heatgate.1.gz usr/share/doc/$pkg/changelog.Debian.gz; do
    check "/$f is valid gzip" gzip -t "$R/$f"
done
check "/usr/share/doc/$pkg/copyright" test -s "$R/usr/share/doc/$pkg/copyright"
check "heatgate(1) renders without groff warnings" bash -c "[ -z \"\$(MANWIDTH=80 man --warnings -l '$R/usr/share/man/man1/heatgate.1.gz' 2>&1 >/dev/null)\" ]"
check "alert rules installed and valid" promtool check rules "$R/usr/share/$pkg/heatgate-alerts.yml"
check "Grafana dashboard installed and parses" /usr/bin/python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["uid"] == "heatgate"' "$R/usr/share/$pkg/grafana/heatgate.json"
check "  ... with its provisioning example" grep -q "path: /usr/share/$pkg/grafana" "$R/usr/share/$pkg/grafana/provisioning.yml"

# The Python package and the Redis adapter.
want=$(cd "$repo/clients/python/src/heatgate" && ls -- *.py | LC_ALL=C sort)
have=$(in_root dpkg -L $pkg | sed -n "s|^$pydir/||p" | LC_ALL=C sort)
check "the package ships exactly clients/python's .py files in $pydir" test "$want" = "$have"
check "  ... and no bytecode" bash -c "! chroot '$R' dpkg -L $pkg | grep -q -e __pycache__ -e '\.pyc\$'"
check "  ... which the postinst byte-compiled (py3compile)" bash -c "ls '$R$pydir/__pycache__' | grep -q '^redis_adapter\..*\.pyc\$'"
check "/usr/bin/heatgate-redis-adapter root:root 755" test "$(mode_of /usr/bin/heatgate-redis-adapter)" = "root:root 755"
check "heatgate-redis-adapter --help runs in the root" bash -c "chroot '$R' heatgate-redis-adapter --help | grep -q '^usage: heatgate-redis-adapter'"
check "  ... and as $svcuser" bash -c "chroot '$R' runuser -u $svcuser -- heatgate-redis-adapter --help | grep -q HEATGATE_ADAPTER_"
check "adapter unit root:root 644" test "$(mode_of /lib/systemd/system/$aunit)" = "root:root 644"
check_not "adapter unit not enabled (no multi-user.target.wants link)" test -e "$R/etc/systemd/system/multi-user.target.wants/$aunit"
check "  ... systemctl is-enabled says disabled" test "$(in_root systemctl is-enabled $aunit 2>&1)" = disabled
check "adapter conffile root:root 644" test "$(mode_of $aconf)" = "root:root 644"
check "adapter conffile registered with dpkg" bash -c "chroot '$R' dpkg-query -W -f='\${Conffiles}' $pkg | grep -q ' $aconf '"
check "adapter conffile: every setting commented out" bash -c "! grep -v -e '^#' -e '^\$' '$R$aconf' | grep -q ."
check "heatgate-redis-adapter(1) renders without groff warnings" bash -c "[ -z \"\$(MANWIDTH=80 man --warnings -l '$R/usr/share/man/man1/heatgate-redis-adapter.1.gz' 2>&1 >/dev/null)\" ]"

# Which subcommands this binary has decides which checks below run or are skipped.
daemon=0; status_cmd=0; status_args=""
has_subcommand run && daemon=1
if has_subcommand status; then status_cmd=1; status_args=$(config_args status); fi

# --- The unit, as systemd reads it in that root ---------------------------------------------
echo "== unit"
# --man=no: the root has no man-db; the page itself is checked below with `man -l`.
if out=$(in_root systemd-analyze verify --man=no "/lib/systemd/system/$unit" 2>&1) && [ -z "$out" ]; then
    pass "systemd-analyze verify $unit (in the root)"
else
    fail "systemd-analyze verify $unit: $out"
fi
if out=$(in_root systemd-analyze verify --man=no "/lib/systemd/system/$aunit" 2>&1) && [ -z "$out" ]; then
    pass "systemd-analyze verify $aunit (in the root)"
else
    fail "systemd-analyze verify $aunit: $out"
fi
# Exposure score: systemd's 0-10 scale, shown x10 by --threshold; fail above 1.5.
for u in $unit $aunit; do
    if out=$(systemd-analyze security --offline=yes --root="$R" --threshold=15 "/lib/systemd/system/$u" 2>&1); then
        pass "systemd-analyze security $u: $(grep -o 'exposure level.*' <<<"$out")"
    else
        fail "systemd-analyze security $u above 1.5: $(tail -1 <<<"$out")"
    fi
done

# --- The installed binary: check-config and replay -----------------------------------------
echo "== binary"
if has_subcommand check-config; then
    if out=$(as_user $svcuser heatgate check-config --config $conffile 2>&1); then
        pass "check-config accepts the shipped conffile (as $svcuser)"
    else
        fail "check-config on the shipped conffile: $out"
    fi
    # With no --config the CLI reads the packaged file, so an operator's `heatgate kill on` acts on
    # the gate's own store (an older binary read ./data instead).
    if out=$(as_user $svcuser heatgate check-config 2>&1) && grep -q "^ok: $conffile\$" <<<"$out" \
        && grep -q "state_dir=$statedir" <<<"$out"; then
        pass "without --config the CLI reads $conffile"
    elif grep -q 'HEATGATE_CONFIG' <<<"$(in_root heatgate check-config --help 2>&1)"; then
        fail "without --config the CLI did not read $conffile: $out"
    else
        skip "the installed binary has no default config file yet"
    fi
    sed -e 's/^HEAT_MIN=.*/HEAT_MIN=0.9/' -e 's/^HEAT_MAX=.*/HEAT_MAX=0.5/' "$R$conffile" >"$R/tmp/bad.env"
    if out=$(in_root heatgate check-config --config /tmp/bad.env 2>&1); then
        fail "check-config accepted HEAT_MIN=0.9 > HEAT_MAX=0.5"
    elif grep -q 'HEAT_M' <<<"$out"; then
        pass "check-config refuses HEAT_MIN > HEAT_MAX, naming the key"
    else
        fail "check-config refused HEAT_MIN > HEAT_MAX without naming the key: $out"
    fi
else
    skip "heatgate check-config: the installed binary has no such subcommand yet"
fi

if has_subcommand replay; then
    # Equity 100 000, one position of 5 000 at sigma 0.02: heat 0.001, COLD; the full close is
    # calibrated to PARTIAL_25 and, in shadow mode, executed as proposed.
    cp "$here/test/replay.jsonl" "$R/tmp/replay.jsonl"
    if out=$(as_user $svcuser heatgate replay /tmp/replay.jsonl 2>"$R/tmp/replay.err"); then
        if why=$(python3 "$here/test/check-replay.py" <<<"$out" 2>&1); then
            pass "replay: one COLD decision, FULL_CLOSE_PROPOSED calibrated to PARTIAL_25 (as $svcuser)"
        else
            fail "replay printed an unexpected decision: $why"
        fi
    else
        fail "replay exited non-zero: $(cat "$R/tmp/replay.err")"
    fi
else
    skip "heatgate replay: the installed binary has no such subcommand yet"
fi

# --- Who can read the store ---------------------------------------------------------------
echo "== state dir access"
in_root useradd --no-create-home --shell /usr/sbin/nologin --groups $group applylayer
in_root useradd --no-create-home --shell /usr/sbin/nologin outsider
# A file as the daemon writes it: its user, the unit's UMask=0027.
as_user $svcuser sh -c "echo probe > $statedir/probe" || true
check "a file the service writes is 640" test "$(mode_of $statedir/probe)" = "$svcuser:$group 640"
check "a member of $group lists the state dir" as_user applylayer ls $statedir
check "a member of $group reads a file in it" as_user applylayer cat $statedir/probe
check "another user can run commands in the root (control for the next checks)" as_user outsider ls /var/lib
check_denied "a member of $group cannot write in it" as_user applylayer touch $statedir/intruder
check_denied "another user cannot list the state dir" as_user outsider ls $statedir
check_denied "another user cannot read a file in it" as_user outsider cat $statedir/probe
rm -f "$R$statedir/probe"

# The same through the store itself: the service user writes (kill switch on), a member of
# quantum reads it with `heatgate get`, the Apply Layer's read contract.
if has_subcommand kill && has_subcommand get; then
    store_env=(env "P26_STATE_DIR=$statedir")
    # shellcheck disable=SC2046 # config_args is empty or two words
    if out=$(as_user $svcuser "${store_env[@]}" heatgate kill on --reason deb-test $(config_args kill) 2>&1); then
        pass "heatgate kill on, as $svcuser, with no daemon running"
        rc=0; out=$(as_user applylayer "${store_env[@]}" heatgate get BTCUSDT --plan-id p1 --action FULL_CLOSE_PROPOSED $(config_args get) 2>&1) || rc=$?
        if [ $rc -eq 4 ]; then pass "heatgate get as a member of $group: exit 4 (kill switch on)"
        else fail "heatgate get as a member of $group: exit $rc, want 4: $out"; fi
        # Someone outside the group cannot read the store. `get` then falls back to the original
        # proposal (exit 3), as the read contract says for a store it cannot use.
        rc=0; out=$(as_user outsider "${store_env[@]}" heatgate get BTCUSDT --plan-id p1 --action FULL_CLOSE_PROPOSED $(config_args get) 2>&1) || rc=$?
        if [ $rc -eq 3 ] && grep -q 'Permission denied' <<<"$out"; then
            pass "heatgate get as another user: permission denied, exit 3 (fail-open)"
        else fail "heatgate get as another user: exit $rc, want 3 and 'Permission denied': $out"; fi
        as_user $svcuser "${store_env[@]}" heatgate kill off --reason deb-test $(config_args kill) >/dev/null 2>&1 || true
    else
        fail "heatgate kill on as $svcuser: $out"
    fi
else
    skip "store read by a member of $group through heatgate kill/get: no such subcommands yet"
fi
# The ops ledger: root and the service user append to one chain, and both verify it (issue 15).
if has_subcommand ledger; then
    lg=(ledger append --ledger "$statedir/ops-ledger.jsonl" --risk-class LOW_RISK_CONFIG --objective deb-test)
    # kill on/off above already wrote their own entries (kill is recorded in the ledger).
    before=$(wc -l <"$R$statedir/ops-ledger.jsonl" 2>/dev/null || echo 0)
    want_entries=$((before + 3))
    if has_subcommand kill; then
        check "  ... kill on and kill off, as $svcuser, are the ledger's first 2 entries (have $before)" test "$before" = 2
    fi
    ok=1
    in_root env P26_STATE_DIR=$statedir heatgate "${lg[@]}" --operation "first, by root" >/dev/null 2>&1 || ok=0
    as_user $svcuser env P26_STATE_DIR=$statedir heatgate "${lg[@]}" --operation "second, by $svcuser" >/dev/null 2>&1 || ok=0
    in_root env P26_STATE_DIR=$statedir heatgate "${lg[@]}" --operation "third, by root" >/dev/null 2>&1 || ok=0
    check "ledger: root, $svcuser, root each append" test $ok = 1
    check "  ... the ledger and its head stay $svcuser:$group 640" \
        test "$(mode_of $statedir/ops-ledger.jsonl) $(mode_of $statedir/ops-ledger.jsonl.head)" = "$svcuser:$group 640 $svcuser:$group 640"
    out=$(as_user $svcuser env P26_STATE_DIR=$statedir heatgate ledger verify --ledger $statedir/ops-ledger.jsonl 2>&1) || true
    check "  ... $svcuser verifies one chain of $want_entries entries, the kill entries and 3 appends ($out)" grep -q "^ok: .* $want_entries entries" <<<"$out"
    out=$(in_root env P26_STATE_DIR=$statedir heatgate ledger verify --ledger $statedir/ops-ledger.jsonl 2>&1) || true
    check "  ... and so does root" grep -q "^ok: .* $want_entries entries" <<<"$out"
else
    skip "ops ledger by root and $svcuser: the binary has no ledger subcommand"
fi
echo deb-test-data >"$R$statedir/keep-me"

# --- Upgrade with a locally edited conffile -------------------------------------------------
echo "== upgrade to $v2 with a locally edited conffile"
sed -i 's/^P26_MODE=shadow$/P26_MODE=enforce/' "$R$conffile"
echo "# local edit by deb-test" >>"$R$conffile"
local_sum=$(md5sum <"$R$conffile")
uid_before=$(in_root id -u $svcuser)
if dpkg_root -i --force-confdef --force-confold "/tmp/debs/${pkg}_${v2}.deb"; then
    pass "dpkg -i $v2 --force-confdef --force-confold, non-interactive"
else
    fail "upgrade to $v2"
fi
check "status installed, version $v2-1" test "$(in_root dpkg-query -W -f='${Status} ${Version}' $pkg)" = "install ok installed $v2-1"
check "the local conffile edit survived" test "$(md5sum <"$R$conffile")" = "$local_sum"
check "  ... and still says P26_MODE=enforce" grep -qx P26_MODE=enforce "$R$conffile"
check "the new packaged conffile is offered as .dpkg-dist" grep -q "Added in $v2" "$R$conffile.dpkg-dist"
check "store data survived the upgrade" test "$(cat "$R$statedir/keep-me")" = deb-test-data
check "state dir still $svcuser:$group 750" test "$(mode_of $statedir)" = "$svcuser:$group 750"
check "user $svcuser kept its uid" test "$(in_root id -u $svcuser)" = "$uid_before"
check "unit still enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/$unit"
check_not "adapter unit still not enabled" test -e "$R/etc/systemd/system/multi-user.target.wants/$aunit"
check "heatgate-redis-adapter --help runs after the upgrade" in_root heatgate-redis-adapter --help
if has_subcommand check-config; then
    check "check-config accepts the edited conffile" as_user $svcuser heatgate check-config --config $conffile
fi

# --- Remove, then purge ---------------------------------------------------------------------
echo "== remove"
check "dpkg -r" dpkg_root -r $pkg
check "status config-files" test "$(in_root dpkg-query -W -f='${Status}' $pkg)" = "deinstall ok config-files"
check_not "/usr/bin/heatgate is gone" test -e "$R/usr/bin/heatgate"
check_not "the unit file is gone" test -e "$R/lib/systemd/system/$unit"
check_not "the adapter, its unit and $pydir (bytecode included) are gone" \
    test -e "$R/usr/bin/heatgate-redis-adapter" -o -e "$R/lib/systemd/system/$aunit" -o -e "$R$pydir"
check "the adapter conffile is kept" test -f "$R$aconf"
check "the conffile is kept, with the local edit" grep -qx P26_MODE=enforce "$R$conffile"
check "the store is kept" test -f "$R$statedir/keep-me"
check "user and group are kept" in_root id $svcuser

echo "== purge"
check "dpkg -P" dpkg_root -P $pkg
check_not "dpkg knows nothing of $pkg" bash -c "chroot '$R' dpkg-query -W -f='\${Status}' $pkg 2>/dev/null | grep -q ."
check_not "the conffile is gone" test -e "$R$conffile"
check_not "the adapter conffile is gone" test -e "$R$aconf"
check_not "the .dpkg-dist copy is gone" test -e "$R$conffile.dpkg-dist"
check_not "/etc/quantum is gone (it was empty)" test -e "$R/etc/quantum"
check_not "the state dir is gone" test -e "$R$statedir"
check_not "no enablement symlink is left" test -L "$R/etc/systemd/system/multi-user.target.wants/$unit"
check_not "no mask is left" test -L "$R/etc/systemd/system/$unit"
check "user $svcuser and group $group are kept (Debian convention)" in_root id $svcuser

echo "== reinstall over the kept user and group"
check "dpkg -i $v1 again" dpkg_root -i "/tmp/debs/${pkg}_${v1}.deb"
check "user $svcuser kept uid $uid_before" test "$(in_root id -u $svcuser)" = "$uid_before"
check "state dir recreated $svcuser:$group 750" test "$(mode_of $statedir)" = "$svcuser:$group 750"
check "dpkg -P again" dpkg_root -P $pkg

# --- Under a running systemd: the same root booted with systemd-nspawn ---------------------
# The chroot above has no systemd; here the unit really starts, with every sandboxing option
# applied, so a hardening setting that the binary cannot live with shows up as a failure.
# --private-network: the daemon binds its loopback ports in its own network namespace, never
# the host's.
echo "== under systemd (systemd-nspawn --boot)"
"$repo/scripts/ensure-deps.sh" systemd-container
umount_below "$R"
mkdir -p "$R/var/tmp/debs"      # nspawn mounts a fresh /tmp
cp "$work"/*.deb "$R/var/tmp/debs/"
systemd-nspawn -q --register=no --keep-unit --private-network -D "$R" --boot </dev/null >"$R.nspawn.log" 2>&1 &
nspawn_pid=$!
init_pid="" state="" seen=""
# Up to 120 s: on a loaded 2-core host the boot (redis-server included) has taken over 60 s.
for _ in $(seq 1 120); do
    [ -n "$init_pid" ] || init_pid=$(pgrep -P "$nspawn_pid" | head -1 || true)
    if [ -n "$init_pid" ]; then
        state=$(nsenter -t "$init_pid" -a systemctl is-system-running 2>/dev/null || true)
        [ -z "$state" ] || seen=$state
        case $state in running|degraded) break ;; esac
    fi
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 1
done
in_sys() { nsenter -t "$init_pid" -a env PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@" </dev/null; }
unit_prop() { in_sys systemctl show -p "$1" --value "$unit"; }
if [ "$state" != running ] && [ "$state" != degraded ]; then
    skip "could not boot the root with systemd-nspawn here (state '${state:-none}', last seen '${seen:-none}', init pid '${init_pid:-none}'): the unit was not started"
    sed 's/^/    nspawn: /' "$R.nspawn.log" | tail -15 >&2
else
    pass "root booted under systemd-nspawn (system $state)"
    # readyz: one GET of /readyz inside the container, no retry; prints the status line.
    readyz() { in_sys bash -c 'exec 3<>/dev/tcp/127.0.0.1/8056 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && head -1 <&3' 2>/dev/null | tr -d '\r' || true; }
    check "dpkg -i $v1 under a running systemd" in_sys dpkg -i "/var/tmp/debs/${pkg}_${v1}.deb"
    # Type=notify: the postinst's start returned only once the daemon sent READY=1, which it sends when
    # /readyz turns 200. So: active and ready at once, no waiting.
    r=$(readyz)
    check "Type=notify: the start in postinst returned with the unit active and /readyz 200 at once ($r)" \
        test "$(in_sys systemctl is-active $unit)" = active -a -n "$(grep ' 200' <<<"$r")"
    check "enabled" test "$(in_sys systemctl is-enabled $unit)" = enabled
    if [ "$daemon" = 1 ]; then
        for _ in $(seq 1 10); do [ "$(in_sys systemctl is-active $unit)" = active ] && break; sleep 1; done
        pid1=$(unit_prop MainPID); sleep 3
        if [ "$(in_sys systemctl is-active $unit)" = active ] && [ "$(unit_prop MainPID)" = "$pid1" ] && [ "$pid1" != 0 ]; then
            pass "postinst started the daemon; it stays up under the hardened unit (pid $pid1)"
        else
            fail "the daemon does not stay up: $(in_sys journalctl -u $unit --no-pager -n 15 2>&1)"
        fi
        check "the store is in the StateDirectory" bash -c "ls '$R$statedir' | grep -q ."
        # The container's /run is its own tmpfs: look from inside.
        check "the control socket is in the RuntimeDirectory" in_sys test -S "/run/$pkg/control.sock"
        check "the hot store is in the RuntimeDirectory (P26_RUN_DIR)" in_sys test -f "/run/$pkg/data.mdb"
        check "  ... $group reads it: data.mdb 640, lock.mdb 660" \
            test "$(in_sys stat -c '%G %a' /run/$pkg/data.mdb /run/$pkg/lock.mdb | tr '\n' ' ')" = "$group 640 $group 660 "
        hot_inode=$(in_sys stat -c %i "/run/$pkg/data.mdb")
        check "the RuntimeDirectory is $svcuser:$group 750" test "$(in_sys stat -c '%U:%G %a' /run/$pkg)" = "$svcuser:$group 750"
        ready=""
        for _ in $(seq 1 10); do
            ready=$(in_sys bash -c 'exec 3<>/dev/tcp/127.0.0.1/8056 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && head -1 <&3' 2>/dev/null || true)
            grep -q ' 200' <<<"$ready" && break; sleep 1
        done
        check "GET /readyz on 127.0.0.1:8056 answers 200 ($(tr -d '\r' <<<"$ready"))" grep -q ' 200' <<<"$ready"
        check "STATUS= from the daemon in systemctl status ($(unit_prop StatusText))" grep -q '^mode=shadow .*last_seq=' <<<"$(unit_prop StatusText)"
        check "WATCHDOG_USEC given to the daemon (WatchdogUSec=$(unit_prop WatchdogUSec))" test "$(unit_prop WatchdogUSec)" = 10s
        # A reload: the daemon answers SIGHUP with RELOADING=1 (the unit goes "reloading") and READY=1
        # (back to "active"), within milliseconds. systemd 252 logs each notification it gets at debug
        # level, so the manager logs at debug for the reload and the journal shows the sequence.
        in_sys systemd-analyze log-level debug
        since=$(in_sys date '+%Y-%m-%d %H:%M:%S')
        sleep 1
        check "systemctl reload" in_sys systemctl reload $unit
        sleep 1
        in_sys systemd-analyze log-level info
        notes=$(in_sys journalctl -u $unit --since "$since" --no-pager -o cat | grep "notification message from PID $pid1" | grep -v 'WATCHDOG=1)' || true)
        if grep -q '(RELOADING=1, MONOTONIC_USEC=[0-9]*' <<<"$notes" \
            && sed -n '/RELOADING=1/,$p' <<<"$notes" | grep -q '(READY=1'; then
            pass "reload reported: RELOADING=1 with MONOTONIC_USEC, then READY=1"
        else
            fail "reload not reported as RELOADING=1 then READY=1: $notes"
        fi
        check "  ... the daemon is still up, same pid" test "$(in_sys systemctl is-active $unit) $(unit_prop MainPID)" = "active $pid1"
        check "  ... and ready at once afterwards" grep -q ' 200' <<<"$(readyz)"
        # systemctl restart returns only when the new process is ready.
        check "systemctl restart" in_sys systemctl restart $unit
        r=$(readyz)
        check "  ... returned with /readyz 200 at once ($r)" grep -q ' 200' <<<"$r"
        check "  ... the hot store survived the restart (RuntimeDirectoryPreserve=yes)" \
            test "$(in_sys stat -c %i "/run/$pkg/data.mdb")" = "$hot_inode"
        pid1=$(unit_prop MainPID)
        # The watchdog: a stopped process sends no WATCHDOG=1; after WatchdogSec=10s systemd aborts it and
        # Restart=on-failure starts a new one.
        restarts=$(unit_prop NRestarts)
        in_sys kill -STOP "$pid1"
        newpid=$pid1
        for _ in $(seq 1 40); do
            sleep 1
            newpid=$(unit_prop MainPID)
            [ "$newpid" != "$pid1" ] && [ "$newpid" != 0 ] && [ "$(in_sys systemctl is-active $unit)" = active ] && break
        done
        if [ "$newpid" != "$pid1" ] && [ "$newpid" != 0 ] && [ "$(unit_prop NRestarts)" -gt "$restarts" ]; then
            pass "SIGSTOP: the watchdog restarted the daemon (pid $pid1 -> $newpid)"
        else
            fail "SIGSTOP: no watchdog restart (pid $pid1 -> $newpid): $(in_sys journalctl -u $unit --no-pager -n 10 2>&1)"
        fi
        check "  ... the journal says why (watchdog timeout)" bash -c "nsenter -t $init_pid -a journalctl -u $unit --no-pager -o cat | grep -qi 'watchdog timeout'"
        check "  ... the new daemon is ready" grep -q ' 200' <<<"$(readyz)"
        pid1=$newpid
        if [ "$status_cmd" = 1 ]; then
            # shellcheck disable=SC2086
            check "heatgate status answers from the running daemon" \
                in_sys env P26_CONTROL_ENDPOINT=ipc:///run/$pkg/control.sock heatgate status $status_args
        fi
        # The Redis adapter: installed, neither enabled nor started; an operator starts it.
        aprop() { in_sys systemctl show -p "$1" --value "$aunit"; }
        check "the adapter unit is not enabled" test "$(in_sys systemctl is-enabled $aunit)" = disabled
        check "  ... and not started" test "$(in_sys systemctl is-active $aunit)" = inactive
        apid1=""
        if [ "$(in_sys systemctl is-active redis-server.service)" = active ]; then
            echo HEATGATE_ADAPTER_STATUS_FILE=/run/quantum-heatgate-redis-adapter/status.json >>"$R$aconf"
            check "systemctl start $aunit" in_sys systemctl start $aunit
            st=""
            for _ in $(seq 1 20); do
                st=$(in_sys cat /run/quantum-heatgate-redis-adapter/status.json 2>/dev/null || true)
                grep -q '"gate_up": true' <<<"$st" && break; sleep 1
            done
            apid1=$(aprop MainPID)
            if grep -q '"gate_up": true' <<<"$st" && [ "$(in_sys systemctl is-active $aunit)" = active ]; then
                pass "the adapter runs under its hardened unit, reads Redis and sees the gate's heartbeats (pid $apid1)"
            else
                fail "the adapter under its unit: status '${st:-none}': $(in_sys journalctl -u $aunit --no-pager -n 15 2>&1)"
            fi
        else
            skip "redis-server is not active in the booted root: the adapter was not started"
        fi
        check "dpkg -i $v2 restarts the daemon" in_sys dpkg -i --force-confdef --force-confold "/var/tmp/debs/${pkg}_${v2}.deb"
        sleep 2
        pid2=$(unit_prop MainPID)
        check "  ... new pid, active" test "$(in_sys systemctl is-active $unit)" = active -a "$pid2" != "$pid1" -a "$pid2" != 0
        if [ -n "$apid1" ]; then
            apid2=$(aprop MainPID)
            check "  ... and the running adapter was restarted (new pid)" \
                test "$(in_sys systemctl is-active $aunit)" = active -a "$apid2" != "$apid1" -a "$apid2" != 0
        fi
    else
        # `systemctl start` returns once a Type=simple service has forked: wait for its exit.
        for _ in $(seq 1 10); do [ "$(unit_prop ExecMainCode)" != 0 ] && break; sleep 1; done
        check "ExecStart ran inside the sandbox and exited 0 (code/status $(unit_prop ExecMainCode)/$(unit_prop ExecMainStatus))" \
            test "$(unit_prop ExecMainCode)/$(unit_prop ExecMainStatus)" = "1/0"
        check "  ... and wrote to the journal" bash -c "nsenter -t $init_pid -a journalctl -u $unit --no-pager -o cat | grep -q ."
        skip "daemon stays up, reload, restart on upgrade: the binary has no 'run' daemon yet (it exits at once)"
    fi
    check "dpkg -r under a running systemd" in_sys dpkg -r $pkg
    check "  ... the daemon stopped in order (its 'heatgate stopped' line)" bash -c "nsenter -t $init_pid -a journalctl -u $unit --no-pager -o cat | grep -q 'heatgate stopped'"
    check "  ... the service is stopped" test "$(in_sys systemctl is-active $unit)" != active
    check "  ... the adapter is stopped" test "$(in_sys systemctl is-active $aunit)" != active
    check "  ... the runtime directory is gone" in_sys test ! -e "/run/$pkg"
    check "dpkg -P under a running systemd" in_sys dpkg -P $pkg
    check "  ... systemd no longer knows the unit" bash -c "! nsenter -t $init_pid -a systemctl cat $unit >/dev/null 2>&1"
fi
stop_container

if [ "$boot_secs" -gt 5 ]; then log "debootstrap: ${boot_secs}s (fresh root, now cached)"
else log "debootstrap: cached root (${boot_secs}s)"; fi
echo "deb-test: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
