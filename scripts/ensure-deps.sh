#!/usr/bin/env bash
# Installs the Debian packages that building and testing HeatGate need, when they are missing.
# As root it runs `apt-get update` once and installs them; otherwise it names the command to run.
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(liblmdb-dev libzmq3-dev)
missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# One `apt-get update` per run of CI or a developer's session, however many steps need packages.
marker=${TMPDIR:-/tmp}/.heatgate-apt-updated
if [ ! -e "$marker" ] || [ -n "$(find "$marker" -mmin +240 2>/dev/null)" ]; then
    apt-get update -qq
    touch "$marker"
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
