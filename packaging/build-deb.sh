#!/usr/bin/env bash
# Builds dist/quantum-portfolio-heat-gate_<version>_amd64.deb from this checkout.
#
# Usage: packaging/build-deb.sh [VERSION]
#   VERSION   upstream version (default: packaging/VERSION); the Debian revision -1 is appended
#             unless VERSION already has one (DEB_REVISION overrides the 1).
# Environment:
#   HEATGATE_BIN=PATH       package this binary instead of building one (it is still checked)
#   HEATGATE_REQUIRE_HELP=1 fail when the binary has no subcommand --help yet (for the man page)
#   NO_LINTIAN=1            skip lintian (the test script runs it once itself)
#
# The .deb is assembled by hand in .build-deb/ (a debian/ layout, so that dpkg-shlibdeps and
# dpkg-gencontrol compute Depends and Installed-Size the Debian way) and packed with
# `dpkg-deb --build --root-owner-group`: no root needed, nothing of the build user leaks in.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
pkg=quantum-portfolio-heat-gate

upstream=${1:-$(tr -d '[:space:]' <"$here/VERSION")}
if [[ $upstream == *-* ]]; then debver=$upstream; else debver=$upstream-${DEB_REVISION:-1}; fi
[[ $debver =~ ^[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$ ]] || { echo "build-deb: bad version: $debver" >&2; exit 2; }

log() { echo "build-deb: $*" >&2; }

# Tools: dpkg-dev (dpkg-shlibdeps, dpkg-gencontrol), binutils (strip, readelf), the libraries the
# binary links (for dpkg-shlibdeps to find their packages), prometheus (promtool).
# python3-zmq, python3-lmdb: the adapter's man page comes from its own --help.
"$root/scripts/ensure-deps.sh" dpkg-dev binutils libzmq3-dev liblmdb-dev prometheus python3-zmq python3-lmdb
if [ -z "${NO_LINTIAN:-}" ]; then "$root/scripts/ensure-deps.sh" lintian; fi

# --- The binary ---------------------------------------------------------------------------
if [ -n "${HEATGATE_BIN:-}" ]; then
    bin=$HEATGATE_BIN
    log "packaging prebuilt $bin"
else
    # Release, static Swift runtime, no rpath into the toolchain (STYLE.md Practice 12), and
    # full RELRO (-z now) on top of the toolchain's PIE and partial RELRO.
    export HEATGATE_UNCHECKED_EXCLUSIVITY=1  # the shipped binary keeps the measured hot path (Package.swift)
    build=(swift build -c release --static-swift-stdlib --disable-local-rpath
           -Xlinker -z -Xlinker now --product heatgate)
    log "${build[*]}"
    (cd "$root" && "${build[@]}") >&2
    bin=$(cd "$root" && "${build[@]}" --show-bin-path)/heatgate
fi
"$here/check-binary.sh" "$bin"

# --- Checks on the shipped text files -----------------------------------------------------
conf=$here/debian/portfolio-heat-gate.env
adapter_conf=$here/debian/heatgate-redis-adapter.env
pysrc=$root/clients/python/src
for f in "$conf" "$adapter_conf"; do
    if grep -q $'\r' "$f"; then log "conffile has CR line endings: $f"; exit 1; fi
done
# The adapter's conffile names every HEATGATE_ADAPTER_* variable the adapter reads, and nothing else.
want=$(grep -o 'env("[A-Z_]*"' "$pysrc/heatgate/redis_adapter.py" | sed 's/env("//; s/"$//' | LC_ALL=C sort -u)
have=$(sed -n 's/^#HEATGATE_ADAPTER_\([A-Z_]*\)=.*/\1/p' "$adapter_conf" | grep -vx CURVE_SECRET_KEY | LC_ALL=C sort -u)
want=$(grep -vx CURVE_SECRET_KEY <<<"$want")   # a secret: documented, kept out of the 0644 file
if [ "$want" != "$have" ]; then
    log "$adapter_conf does not list exactly the adapter's variables:"
    diff <(echo "$want") <(echo "$have") >&2 || true
    exit 1
fi
promtool check rules "$here/heatgate-alerts.yml" >&2
(cd "$here" && promtool test rules heatgate-alerts.test.yml) >&2

# --- The debian/ layout ---------------------------------------------------------------------
work=$root/.build-deb
src=$work/src
dest=$src/debian/$pkg
rm -rf "$work"
mkdir -p "$src/debian" "$dest/DEBIAN"
cp "$here/debian/control" "$src/debian/control"

# The changelog's top entry must carry the version being built; a build of another version
# (a test upgrade, a CI build) gets an entry of its own, in the staging copy only.
top=$(dpkg-parsechangelog -l "$here/debian/changelog" -SVersion)
if [ "$top" != "$debver" ]; then
    log "changelog tops at $top; adding an entry for $debver in the build copy"
    {
        printf '%s (%s) bookworm; urgency=medium\n\n' "$pkg" "$debver"
        printf '  * Build of %s from %s.\n\n' "$debver" \
            "$(git -C "$root" describe --always --dirty 2>/dev/null || echo 'an unversioned tree')"
        printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$here/debian/changelog" -SMaintainer)" "$(date -R)"
        cat "$here/debian/changelog"
    } >"$src/debian/changelog"
else
    cp "$here/debian/changelog" "$src/debian/changelog"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$src/debian/changelog" -STimestamp)}

umask 022
doc=$dest/usr/share/doc/$pkg
install -D -m 0755 "$bin" "$dest/usr/bin/heatgate"
# As dh_strip does for executables.
strip --remove-section=.comment --remove-section=.note "$dest/usr/bin/heatgate"
"$here/check-binary.sh" --stripped "$dest/usr/bin/heatgate"

install -D -m 0644 "$here/debian/$pkg.service" "$dest/lib/systemd/system/$pkg.service"
install -D -m 0644 "$conf" "$dest/etc/quantum/portfolio-heat-gate.env"
install -D -m 0644 "$here/heatgate-alerts.yml" "$dest/usr/share/$pkg/heatgate-alerts.yml"
# The Grafana dashboard (checked against a live daemon's /metrics by tests/python/test_dashboard.py)
# and a provisioning example; the JSON must at least parse here.
/usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$here/grafana/heatgate.json"
install -D -m 0644 "$here/grafana/heatgate.json" "$dest/usr/share/$pkg/grafana/heatgate.json"
install -D -m 0644 "$here/grafana/provisioning.yml" "$dest/usr/share/$pkg/grafana/provisioning.yml"
# The Python package (clients/python/src/heatgate: its .py files, no bytecode; the postinst
# byte-compiles them with py3compile, the prerm removes that with py3clean, as dh_python3 does),
# its adapter's launcher, unit and conffile.
pydest=$dest/usr/lib/python3/dist-packages/heatgate
install -d "$pydest"
find "$pysrc/heatgate" -maxdepth 1 -type f -name '*.py' -exec install -m 0644 -t "$pydest" {} +
install -D -m 0755 "$here/debian/heatgate-redis-adapter" "$dest/usr/bin/heatgate-redis-adapter"
install -D -m 0644 "$here/debian/quantum-heatgate-redis-adapter.service" \
    "$dest/lib/systemd/system/quantum-heatgate-redis-adapter.service"
install -D -m 0644 "$adapter_conf" "$dest/etc/quantum/heatgate-redis-adapter.env"
install -D -m 0644 "$here/debian/copyright" "$doc/copyright"
install -D -m 0644 "$here/debian/README.Debian" "$doc/README.Debian"
install -D -m 0644 "$here/debian/lintian-overrides" "$dest/usr/share/lintian/overrides/$pkg"
gzip -9n <"$src/debian/changelog" >"$doc/changelog.Debian.gz"
mkdir -p "$dest/usr/share/man/man1"
"$here/gen-man.sh" "$dest/usr/bin/heatgate" "$debver" "$conf" | gzip -9n >"$dest/usr/share/man/man1/heatgate.1.gz"
PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$here/gen-man-adapter.py" "$pysrc" "$debver" | gzip -9n >"$dest/usr/share/man/man1/heatgate-redis-adapter.1.gz"
chmod 0644 "$doc/changelog.Debian.gz" "$dest/usr/share/man/man1/heatgate.1.gz" \
    "$dest/usr/share/man/man1/heatgate-redis-adapter.1.gz"

install -m 0755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$dest/DEBIAN/"
install -m 0644 "$here/debian/conffiles" "$dest/DEBIAN/conffiles"

# Depends from the libraries the binary really needs, then the control file.
# No debhelper here, so nothing adds to misc:Depends (init-system-helpers is Essential).
echo 'misc:Depends=' >"$src/debian/substvars"
(cd "$src" && dpkg-shlibdeps -Tdebian/substvars -e"debian/$pkg/usr/bin/heatgate")
(cd "$src" && dpkg-gencontrol -p"$pkg" -v"$debver" -Tdebian/substvars -P"debian/$pkg")

# md5sums of everything but the conffiles (dpkg tracks those itself), as dh_md5sums writes it.
(cd "$dest" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort |
    grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) | xargs -d '\n' md5sum) >"$dest/DEBIAN/md5sums"
chmod 0644 "$dest/DEBIAN/md5sums" "$dest/DEBIAN/control"
find "$dest" -type d -exec chmod 0755 {} +

mkdir -p "$root/dist"
deb=$root/dist/${pkg}_${debver}_amd64.deb
dpkg-deb --build --root-owner-group -Zxz "$dest" "$deb" >&2
log "Depends: $(dpkg-deb -f "$deb" Depends)"

if [ -z "${NO_LINTIAN:-}" ]; then
    log "lintian $deb"
    lintian --info --fail-on error,warning "$deb" >&2
fi
echo "$deb"
