// swift-tools-version:6.1
import PackageDescription

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
        .target(name: "HeatGateCore"),
        // The LMDB schema, journal and sweeps.
        .target(name: "HeatGateStore", dependencies: ["HeatGateCore", "LMDB"]),
        // The daemon.
        .target(name: "HeatGateServer", dependencies: ["HeatGateCore", "HeatGateStore", "ZeroMQ"]),
        // The Apply Layer's side.
        .target(name: "HeatGateClient", dependencies: ["HeatGateCore", "HeatGateStore", "LMDB", "ZeroMQ"]),
        // Operations: the shadow report and verdict, the ops ledger, config rewrites (no sockets but HTTP GET).
        .target(name: "HeatGateOps", dependencies: ["HeatGateCore", "HeatGateStore"]),
        .executableTarget(
            name: "heatgate",
            dependencies: [
                "HeatGateCore", "HeatGateStore", "HeatGateServer", "HeatGateClient", "HeatGateOps",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .target(
            name: "HeatGateTestSupport", dependencies: ["HeatGateCore", "ZeroMQ"], path: "Tests/HeatGateTestSupport"),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "HeatGateCoreTests", dependencies: ["HeatGateCore", "HeatGateTestSupport"]),
        .testTarget(name: "HeatGateStoreTests", dependencies: ["HeatGateStore", "HeatGateTestSupport"]),
        .testTarget(
            name: "HeatGateServerTests",
            dependencies: ["HeatGateServer", "HeatGateClient", "ZeroMQ", "HeatGateTestSupport"]
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
