// P1 and P2 of SPEC §10: the engine's hot path, with no I/O, measured by package-benchmark.
//
// Each sample times `scalingFactor` operations (1 000), and the reported figures are per operation: p50 and
// p99 are over those per-operation averages. `mallocCountTotal` comes from the malloc interposer: P1's goal
// is 0 per decision. `HEATGATE_BENCH_SMOKE=1` shortens every benchmark to prove the tools run.

import BenchSupport
import Benchmark
import HeatGateCore

#if canImport(Glibc)
    import Glibc
#endif

let smoke = getenv("HEATGATE_BENCH_SMOKE") != nil
/// Open positions in the book: SPEC §10 P6 sizes the book at 10 000; the heat is incremental, so this
/// changes nothing for P1/P2 but memory locality.
let bookSize = 10_000

/// An engine holding a COLD book of `bookSize` positions and fresh equity.
func makeEngine(now: Double, config: GateConfig = GateConfig()) -> Engine {
    let engine = Engine(policy: Policy(config))
    for message in Workload.book(Workload.symbols(bookSize), now: now) {
        let bytes = Array(message.utf8)
        let outcome = bytes.withUnsafeBytes { engine.process($0, now: now) }
        guard case .state = outcome else { fatalError("setup message refused: \(outcome)") }
    }
    return engine
}

/// P1's loop on an engine in enforce mode, with the rollback guard on or off and nothing else different.
func guardLoop(_ benchmark: Benchmark, guardOn: Bool) {
    let now = wallClock()
    var config = GateConfig()
    for (k, v) in [
        ("P26_MODE", "enforce"), ("P26_GUARD_ENABLED", guardOn ? "true" : "false"),
        ("P26_GUARD_MAX_DOWNGRADE_SHARE", "1"), ("P26_GUARD_MAX_INPUTS_BAD_SEC", "86400"),
    ] {
        try! config.set(k, v)
    }
    let engine = makeEngine(now: now, config: config)
    let proposal = decideLoop(benchmark, engine, now: now)
    let last = engine.decide(proposal, now: now)
    precondition(last.mode == .enforce && last.downgraded, "not an enforce-mode downgrade: \(last)")
    precondition(engine.guardTrip == nil, "the guard tripped: the benchmark measured shadow decisions")
}

/// P1's measured loop: decides one parsed proposal with a distinct plan key each time, as in production
/// (the dedupe cache insert touches a different line each time). Returns the proposal, for checks after.
func decideLoop(_ benchmark: Benchmark, _ engine: Engine, now: Double) -> Proposal {
    var frame = ProposalFrame(run: "p1", symbol: "BTCUSDT")
    frame.fill(index: 0, intendedNanos: 0, epoch: now)
    let parsed = frame.bytes.withUnsafeBytes { engine.process($0, now: now) }
    guard case .decision(_, var proposal) = parsed else { fatalError("not a decision: \(parsed)") }
    var key: UInt64 = 1
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        proposal.planKey = key
        key &+= 0x9E37_79B9_7F4A_7C15
        blackHole(engine.decide(proposal, now: now))
    }
    benchmark.stopMeasurement()
    return proposal
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: smoke ? 1 : 10,
        scalingFactor: .kilo,
        maxDuration: smoke ? .milliseconds(200) : .seconds(5),
        maxIterations: smoke ? 20 : 100_000
    )

    // P1: decide on a parsed proposal. A distinct plan key per decision, as in production (the dedupe
    // cache insert touches a different line each time).
    Benchmark("P1 decide (parsed proposal, 10k positions)") { benchmark in
        let now = wallClock()
        _ = decideLoop(benchmark, makeEngine(now: now), now: now)
    }

    // The rollback guard's cost: P1 in enforce mode with the guard off, and the same engine with it on,
    // every decision a downgrade it counts, set never to trip (a share of 1 cannot be exceeded, so the share
    // is not judged again after the first decisions: bench/README.md, "The guard's cost"). Only
    // `P26_GUARD_ENABLED` differs; the difference of the two is the guard's cost a decision.
    Benchmark("P1 decide, enforce, guard off") { benchmark in
        guardLoop(benchmark, guardOn: false)
    }
    Benchmark("P1 decide, enforce, guard on (every decision counted)") { benchmark in
        guardLoop(benchmark, guardOn: true)
    }

    // The same, with one plan key throughout: the dedupe cache stays in L1. The difference to P1 is the
    // cost of the cache misses of a distinct plan per decision.
    Benchmark("P1 decide, one plan key (dedupe cache hot)") { benchmark in
        let now = wallClock()
        let engine = makeEngine(now: now)
        var frame = ProposalFrame(run: "p1", symbol: "BTCUSDT")
        frame.fill(index: 0, intendedNanos: 0, epoch: now)
        let parsed = frame.bytes.withUnsafeBytes { engine.process($0, now: now) }
        guard case .decision(_, let proposal) = parsed else { fatalError("not a decision: \(parsed)") }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(engine.decide(proposal, now: now))
        }
        benchmark.stopMeasurement()
    }

    // P2: bytes in → parse → decide → encode → bytes out, into a reused writer. Each frame gets its own
    // `plan_id` (12 digits rewritten in place, a few ns) so no proposal is a duplicate.
    Benchmark("P2 bytes->parse->decide->encode->bytes") { benchmark in
        let now = wallClock()
        let engine = makeEngine(now: now)
        var frame = ProposalFrame(run: "p2", symbol: "BTCUSDT")
        var out = JSONWriter(capacity: 4096)
        var i: UInt64 = 1
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            frame.fill(index: i, intendedNanos: i, epoch: now)
            i &+= 1
            frame.bytes.withUnsafeBytes { b in
                guard case .decision(let d, let p) = engine.process(b, now: now) else { fatalError("not a decision") }
                out.reset()
                DecisionEncoder.encode(d, proposal: p, source: b, symbol: engine.symbol(d.symbolId), into: &out)
            }
            blackHole(out.count)
        }
        benchmark.stopMeasurement()
    }
}
