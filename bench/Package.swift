// swift-tools-version:6.1
import PackageDescription

// HeatGate's benchmarks (SPEC §10), a package of their own so benchmark tooling stays out of the main build.
//
// - `Benchmarks/HotPath`: P1 and P2 with package-benchmark (`swift package benchmark`).
// - `hg-loadgen` and `hg-echo`: the paired programs of P4/P5 (open-loop generator + receiver; the zero-work
//   ZeroMQ echo that is the transport floor). Each runs alone; `--help` on each.
// - `hg-bench`: the harness behind `make bench`: probe, P3, P4–P8 against the real daemon, the Redis + Python
//   baseline, results in `results/`, and `../BENCHMARKS.md`.
let package = Package(
    name: "HeatGateBench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "HeatGate", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", exact: "0.2.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CBenchShims"),
        .target(
            name: "BenchSupport",
            dependencies: [
                "CBenchShims",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "hg-loadgen",
            dependencies: [
                "BenchSupport",
                .product(name: "ZeroMQ", package: "HeatGate"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "hg-echo",
            dependencies: [
                "BenchSupport",
                .product(name: "ZeroMQ", package: "HeatGate"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "hg-bench",
            dependencies: [
                "BenchSupport",
                .product(name: "HeatGateCore", package: "HeatGate"),
                .product(name: "HeatGateStore", package: "HeatGate"),
                .product(name: "HeatGateServer", package: "HeatGate"),
                .product(name: "LMDB", package: "HeatGate"),
                .product(name: "ZeroMQ", package: "HeatGate"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "HotPath",
            dependencies: [
                "BenchSupport",
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "HeatGateCore", package: "HeatGate"),
            ],
            path: "Benchmarks/HotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)

// The project's strict settings (STYLE.md §8), for every target here too.
for target in package.targets where target.name != "CBenchShims" {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ])
    target.swiftSettings = settings
}
