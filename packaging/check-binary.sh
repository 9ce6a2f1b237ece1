#!/usr/bin/env bash
# Binary hygiene of the shipped heatgate (STYLE.md Practice 12):
#   - a dynamically linked x86-64 ELF executable;
#   - NEEDED holds only libc, libm, libstdc++, libgcc_s, libzmq (and the loader): the Swift
#     runtime is linked statically, so nothing from the toolchain is needed at run time;
#   - no RPATH or RUNPATH (a leftover path into the build machine's toolchain);
#   - stripped (no .symtab), when --stripped is given (the packaged copy).
# Usage: packaging/check-binary.sh [--stripped] BINARY
set -euo pipefail

want_stripped=0
if [ "${1:-}" = "--stripped" ]; then want_stripped=1; shift; fi
bin=${1:?usage: check-binary.sh [--stripped] BINARY}
[ -f "$bin" ] || { echo "check-binary: no such file: $bin" >&2; exit 2; }

fail=0
bad() { echo "check-binary: FAIL: $*" >&2; fail=1; }

header=$(readelf -h "$bin" 2>/dev/null) || { echo "check-binary: FAIL: not an ELF file: $bin" >&2; exit 1; }
grep -q 'Machine:.*X86-64' <<<"$header" || bad "not an x86-64 binary"
grep -Eq 'Type:[[:space:]]+(EXEC|DYN)' <<<"$header" || bad "not an executable"

dynamic=$(readelf -d "$bin")
mapfile -t needed < <(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dynamic")
[ ${#needed[@]} -gt 0 ] || bad "no NEEDED entries (statically linked?)"

allowed='^(libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|libzmq\.so\.5|ld-linux-x86-64\.so\.2)$'
for lib in "${needed[@]}"; do
    if [[ ! $lib =~ $allowed ]]; then bad "unexpected NEEDED library: $lib"; fi
done

if grep -Eq '\((RPATH|RUNPATH)\)' <<<"$dynamic"; then
    bad "has $(grep -E '\((RPATH|RUNPATH)\)' <<<"$dynamic" | sed 's/^ *//')"
fi

if [ $want_stripped -eq 1 ] && readelf -S "$bin" | grep -q '\.symtab'; then
    bad "not stripped (.symtab present)"
fi

if [ $fail -ne 0 ]; then exit 1; fi
zmq=""
printf '%s\n' "${needed[@]}" | grep -q '^libzmq\.so\.5$' && zmq=" (libzmq linked)" || zmq=" (libzmq not linked yet)"
echo "check-binary: OK: $bin NEEDED=${needed[*]}; no RPATH/RUNPATH$zmq"
