// swift-tools-version:6.1
import PackageDescription

/// The single-writer modules (engine, store, gate loop) drop Swift's *dynamic* exclusivity checks: each
/// access to a class's stored property otherwise costs a runtime call, which measured 63 ns → 13 ns a
/// decision (contract §10 P1, `make bench`). The static checks still run, and these objects belong to one
/// thread; dynamic checks never caught cross-thread races anyway.
///
/// Unsafe flags make SwiftPM refuse the package as a versioned dependency, and the contract promises a
/// Swift client library (`HeatGateClient`). So the flag is set only when `HEATGATE_UNCHECKED_EXCLUSIVITY=1`
/// is in the build's environment: the Makefile exports it (build, test, bench) and packaging/build-deb.sh
/// sets it for the shipped binary; a package that depends on HeatGate by version gets no unsafe flag.
let uncheckedExclusivity: [SwiftSetting] =
    Context.environment["HEATGATE_UNCHECKED_EXCLUSIVITY"] == "1"
    ? [.unsafeFlags(["-enforce-exclusivity=unchecked"])] : []

let package = Package(
    name: "HeatGate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "heatgate", targets: ["heatgate"]),
        .library(name: "HeatGateCore", targets: ["HeatGateCore"]),
        .library(name: "HeatGateStore", targets: ["HeatGateStore"]),
        .library(name: "HeatGateServer", targets: ["HeatGateServer"]),
        .library(name: "HeatGateClient", targets: ["HeatGateClient"]),
        .library(name: "HeatGateOps", targets: ["HeatGateOps"]),
        // The wrappers, for bench/ (its load generator and echo speak ZeroMQ; the store benchmark opens LMDB).
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
        .library(name: "LMDB", targets: ["LMDB"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // C libraries, found in /usr/include without pkg-config (STYLE.md §3).
        .systemLibrary(name: "CLMDB", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),

        // Thin typed wrappers: no domain knowledge.
        // LMDB links statically so the shipped binary needs only libzmq5 beyond the C/C++ runtime.
        .target(name: "LMDB", dependencies: ["CLMDB"], linkerSettings: [.linkedLibrary(":liblmdb.a")]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),

        // The pure engine and wire format.
        .target(name: "HeatGateCore", swiftSettings: uncheckedExclusivity),
        // The LMDB schema, journal and sweeps.
        .target(name: "HeatGateStore", dependencies: ["HeatGateCore", "LMDB"], swiftSettings: uncheckedExclusivity),
        // The daemon.
        .target(
            name: "HeatGateServer", dependencies: ["HeatGateCore", "HeatGateStore", "LMDB", "ZeroMQ"],
            swiftSettings: uncheckedExclusivity),
        // The Apply Layer's side.
        .target(name: "HeatGateClient", dependencies: ["HeatGateCore", "HeatGateStore", "LMDB", "ZeroMQ"]),
        // Operations: the shadow report and verdict, the ops ledger, config rewrites (no sockets but HTTP GET).
        .target(name: "HeatGateOps", dependencies: ["HeatGateCore", "HeatGateStore"]),
        .executableTarget(
            name: "heatgate",
            dependencies: [
                "HeatGateCore", "HeatGateStore", "HeatGateServer", "HeatGateClient", "HeatGateOps", "ZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .target(
            name: "HeatGateTestSupport", dependencies: ["HeatGateCore", "HeatGateClient", "ZeroMQ"],
            path: "Tests/HeatGateTestSupport"),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "HeatGateCoreTests", dependencies: ["HeatGateCore", "HeatGateTestSupport"]),
        .testTarget(
            name: "HeatGateStoreTests", dependencies: ["HeatGateStore", "HeatGateCore", "LMDB", "HeatGateTestSupport"]),
        .testTarget(
            name: "HeatGateServerTests",
            dependencies: [
                "HeatGateServer", "HeatGateClient", "HeatGateStore", "LMDB", "ZeroMQ", "HeatGateTestSupport",
            ]
        ),
        .testTarget(
            name: "HeatGateClientTests",
            dependencies: ["HeatGateClient", "HeatGateCore", "HeatGateStore", "ZeroMQ", "HeatGateTestSupport"]
        ),
        .testTarget(
            name: "HeatGateOpsTests",
            dependencies: ["HeatGateOps", "HeatGateServer", "HeatGateStore", "HeatGateCore", "HeatGateTestSupport"]
        ),
    ]
)

// Strict settings for every Swift target, in one place (STYLE.md §8).
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ])
    target.swiftSettings = settings
}
