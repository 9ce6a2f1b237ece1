#!/usr/bin/env bash
# The contract promises a Swift client library: a package outside this repository must be able to depend
# on HeatGateClient by version. This clones the current commit, tags it, and builds a scratch package that
# depends on it with `from:` (SwiftPM refuses versioned dependencies with unsafe flags, so this fails if
# Package.swift ever sets one unconditionally) and reads a store through DecisionLookup.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/heatgate-client-dep.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/heatgate"
# The working tree's Package.swift, so an uncommitted change is what gets checked.
cp "$root/Package.swift" "$work/heatgate/Package.swift"
git -C "$work/heatgate" -c user.name=check -c user.email=check@localhost commit -qam "check" --allow-empty
git -C "$work/heatgate" tag 99.0.0
mkdir -p "$work/consumer/Sources/consumer"
cat >"$work/consumer/Package.swift" <<SWIFT
// swift-tools-version:6.1
import PackageDescription
let package = Package(
    name: "consumer",
    dependencies: [.package(url: "file://$work/heatgate", from: "99.0.0")],
    targets: [
        .executableTarget(
            name: "consumer", dependencies: [.product(name: "HeatGateClient", package: "heatgate")])
    ]
)
SWIFT
cat >"$work/consumer/Sources/consumer/main.swift" <<'SWIFT'
import HeatGateClient

// No store there: the read contract says the proposal is executed as it stands.
do {
    _ = try DecisionLookup(stateDir: "/nonexistent/heatgate")
    print("unexpected: a store opened")
} catch {
    print("no store: \(error)")
}
SWIFT
# Without the Makefile's HEATGATE_UNCHECKED_EXCLUSIVITY, as another package's build would be.
(cd "$work/consumer" && env -u HEATGATE_UNCHECKED_EXCLUSIVITY swift build -q 2>&1 | tail -20)
out=$("$work/consumer/.build/debug/consumer")
echo "client-dependency: a package depending on HeatGateClient from: 99.0.0 builds and runs: $out"
