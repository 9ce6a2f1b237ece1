import HeatGateCore
import HeatGateStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A monotonically increasing count, written by one thread and read by the scraper: relaxed atomics,
/// no lock on the decision path.
public final class Counter: Sendable {
    let value = Atomic<UInt64>(0)

    public init() {}

    public func add(_ n: UInt64 = 1) { value.wrappingAdd(n, ordering: .relaxed) }

    public var load: UInt64 { value.load(ordering: .relaxed) }
}

/// A value that goes up and down, stored as the bits of a `Double`.
public final class Gauge: Sendable {
    let bits = Atomic<UInt64>(0)

    public init() {}

    public func set(_ v: Double) { bits.store(v.bitPattern, ordering: .relaxed) }

    public var load: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }
}

/// A fixed-bucket histogram of seconds whose buckets fit microseconds.
public final class LatencyHistogram: Sendable {
    /// Upper bounds in seconds: 0.5 µs … 100 ms.
    public static let bounds: [Double] = [
        0.5e-6, 1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 100e-3,
    ]
    let buckets: [Counter] = LatencyHistogram.bounds.map { _ in Counter() } + [Counter()]
    let sumNanos = Counter()
    let count = Counter()

    public init() {}

    public func record(nanoseconds ns: UInt64) {
        let s = Double(ns) * 1e-9
        var i = 0
        while i < Self.bounds.count && s > Self.bounds[i] { i += 1 }
        buckets[i].add()
        sumNanos.add(ns)
        count.add()
    }
}

/// Every metric of SPEC §8, rendered as Prometheus text.
public final class Metrics: Sendable {
    public let processed = Counter()
    /// `p26_actions_downgraded_total`, indexed by (from, to, reason).
    let downgradedByKey: [Counter]
    /// Downgrades of any kind, for the heartbeat.
    public let downgraded = Counter()
    /// `p26_failures_total{reason}`: decisions whose heat inputs were unusable, by reason.
    let failuresByReason: [Counter]
    /// `p26_fail_closed_total{reason}`.
    let failClosedByReason: [Counter]
    let rejectedByReason: [Counter]
    public let rejected = Counter()
    public let heat = Gauge()
    public let bucket = Gauge()
    public let enforceMode = Gauge()
    public let killSwitch = Gauge()
    public let equity = Gauge()
    public let positions = Gauge()
    public let inputsAge = Gauge()
    /// `p26_clock_skew_seconds`: how far the furthest state `ts` lay ahead of the gate's clock.
    public let clockSkew = Gauge()
    /// `p26_symbols`: symbols the book holds (at most 100 000; idle ones without a position are reclaimed).
    public let symbols = Gauge()
    /// `p26_symbols_reclaimed_total`, copied from the engine.
    public let symbolsReclaimed = Gauge()
    /// `p26_repeat_window_evictions_total`, copied from the engine's repeat window.
    public let repeatEvictions = Gauge()
    /// `p26_repeat_window_capacity`: entries of the repeat window.
    public let repeatCapacity = Gauge()
    public let latency = LatencyHistogram()
    public let storeWrites = Counter()
    /// The replicator whose lag and rounds `p26_durable_*` report (set once the stores are open).
    public let replicator = Mutex<Replicator?>(nil)
    public let storeWriteFailures = Counter()
    public let sweptLatest = Counter()
    public let sweptJournal = Counter()
    public let sweptEvents = Counter()
    public let sweptTTL = Counter()
    /// Time spent removing swept records, in nanoseconds (commits excluded: most share the batch's).
    public let sweepNanos = Counter()
    /// Sends the XPUB socket refused. Without `XPUB_NODROP` it drops at each subscriber's own high-water
    /// mark without telling the sender, so this counts only what failed for the whole socket.
    public let publishDropped = Counter()
    /// `p26_subscribers`: live subscriptions to decision topics, from the XPUB's notices.
    public let subscribers = Gauge()
    /// `p26_subscriber_joins_total`: subscriptions to decision topics seen, reconnects included.
    public let subscriberJoins = Counter()
    /// `p26_curve_refused_total`: CURVE handshakes the ZAP handler refused.
    public let curveRefused = Counter()
    public let lastSeq = Counter()
    /// `p26_guard_tripped{reason}`: the guard's reason + 1 while it stands tripped, 0 otherwise.
    public let guardTripped = Gauge()
    let version: String
    /// Wall-clock seconds when the daemon started: `process_start_time_seconds`.
    public let processStartTime = Gauge()

    static let actions = Action.allCases.count + 1  // + unknown
    static let reasons = Reason.allCases.count

    public init(version: String = HeatGateVersion.current) {
        self.version = version
        downgradedByKey = (0..<(Self.actions * Self.actions * Self.reasons)).map { _ in Counter() }
        failuresByReason = Reason.allCases.map { _ in Counter() }
        failClosedByReason = Reason.allCases.map { _ in Counter() }
        rejectedByReason = RejectReason.allCases.map { _ in Counter() }
        heat.set(.nan)
        inputsAge.set(.nan)
        equity.set(.nan)
        bucket.set(Double(Bucket.unknown.rawValue))
    }

    static func actionIndex(_ a: Action?) -> Int { a.map { Int($0.rawValue) } ?? Action.allCases.count }

    /// Counts one fresh decision.
    public func record(_ d: Decision) {
        processed.add()
        lastSeq.value.store(d.seq, ordering: .relaxed)
        if d.downgraded {
            downgraded.add()
            let i =
                (Self.actionIndex(d.original) * Self.actions + Self.actionIndex(d.calibrated)) * Self.reasons
                + Int(d.reason.rawValue)
            downgradedByKey[i].add()
        }
        if let problem = d.inputProblem { failuresByReason[Int(problem.rawValue)].add() }
        if d.failClosed { failClosedByReason[Int(d.reason.rawValue)].add() }
    }

    public func record(_ r: RejectReason) {
        rejected.add()
        rejectedByReason[RejectReason.allCases.firstIndex(of: r)!].add()
    }

    /// Reads the rejection count of one reason (tests and status).
    public func rejectedCount(_ r: RejectReason) -> UInt64 {
        rejectedByReason[RejectReason.allCases.firstIndex(of: r)!].load
    }

    /// Updates the gauges that describe the book.
    public func observe(_ engine: Engine, now: Double) {
        let (h, b, _) = engine.heatState(now: now)
        heat.set(h)
        bucket.set(Double(b.rawValue))
        enforceMode.set(engine.policy.mode == .enforce ? 1 : 0)
        killSwitch.set(engine.killSwitch ? 1 : 0)
        equity.set(engine.equity ?? .nan)
        positions.set(Double(engine.openPositions))
        inputsAge.set(engine.equityAge(now: now))
        clockSkew.set(engine.maxClockSkew)
        symbols.set(Double(engine.symbolCount))
        symbolsReclaimed.set(Double(engine.reclaimedTotal))
        repeatEvictions.set(Double(engine.repeats.evictions))
        repeatCapacity.set(Double(engine.repeats.capacity))
        guardTripped.set(engine.guardTrip.map { Double($0.reason.rawValue) + 1 } ?? 0)
    }

    /// The Prometheus text exposition (version 0.0.4).
    public func render() -> String {
        var o = ""
        o.reserveCapacity(8192)
        func header(_ name: String, _ type: String, _ help: String) {
            o += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func num(_ v: Double) -> String {
            if v.isNaN { return "NaN" }
            if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
            return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        }
        header(
            "p26_heat_value", "gauge",
            "Portfolio heat: sum of |notional| * sigma over equity (NaN while inputs are unusable).")
        o += "p26_heat_value \(num(heat.load))\n"
        header("p26_bucket", "gauge", "Current heat bucket: 1 for the current state, 0 for the others.")
        let current = Int(bucket.load)
        for b in Bucket.allCases {
            o += "p26_bucket{state=\"\(b.label)\"} \(Int(b.rawValue) == current ? 1 : 0)\n"
        }
        header(
            "p26_actions_downgraded_total", "counter", "Proposals whose calibrated action differs from the original.")
        let names = Action.allCases.map(\.token) + ["UNKNOWN"]
        for (i, c) in downgradedByKey.enumerated() where c.load > 0 {
            let reason = Reason.allCases[i % Self.reasons].label
            let to = names[(i / Self.reasons) % Self.actions]
            let from = names[i / (Self.reasons * Self.actions)]
            o +=
                "p26_actions_downgraded_total{from_action=\"\(from)\",to_action=\"\(to)\",reason=\"\(reason)\"} \(c.load)\n"
        }
        header("p26_proposals_processed_total", "counter", "Proposals decided (a duplicate plan_id counts once).")
        o += "p26_proposals_processed_total \(processed.load)\n"
        header(
            "p26_failures_total", "counter",
            "Decisions made while the heat inputs were unusable (any action), by reason.")
        for r in Reason.allCases where r.isInputReason {
            o += "p26_failures_total{reason=\"\(r.label)\"} \(failuresByReason[Int(r.rawValue)].load)\n"
        }
        header(
            "p26_fail_closed_total", "counter",
            "Full closes cut to PARTIAL_25 because inputs were unusable (P26_FAIL_MODE=closed).")
        for r in Reason.allCases where r.isInputReason {
            o += "p26_fail_closed_total{reason=\"\(r.label)\"} \(failClosedByReason[Int(r.rawValue)].load)\n"
        }
        header("p26_rejected_total", "counter", "Messages refused as bad input, by reason.")
        for (i, r) in RejectReason.allCases.enumerated() {
            o += "p26_rejected_total{reason=\"\(r.label)\"} \(rejectedByReason[i].load)\n"
        }
        header("p26_enforce_mode", "gauge", "1 in enforce mode, 0 in shadow mode.")
        o += "p26_enforce_mode \(num(enforceMode.load))\n"
        header("p26_kill_switch", "gauge", "1 while the kill switch holds every proposal.")
        o += "p26_kill_switch \(num(killSwitch.load))\n"
        header("p26_equity_usd", "gauge", "The latest equity, in USD.")
        o += "p26_equity_usd \(num(equity.load))\n"
        header("p26_positions", "gauge", "Open positions in the book.")
        o += "p26_positions \(num(positions.load))\n"
        header("p26_inputs_age_seconds", "gauge", "Age of the latest equity, in seconds.")
        o += "p26_inputs_age_seconds \(num(inputsAge.load))\n"
        header(
            "p26_clock_skew_seconds", "gauge",
            "The largest amount by which a state message's ts lay ahead of the gate's clock (such state is fresh).")
        o += "p26_clock_skew_seconds \(num(clockSkew.load))\n"
        header("p26_symbols", "gauge", "Symbols the book holds (idle ones without a position are reclaimed when full).")
        o += "p26_symbols \(num(symbols.load))\n"
        header("p26_symbols_reclaimed_total", "counter", "Idle symbols without a position freed for new ones.")
        o += "p26_symbols_reclaimed_total \(num(symbolsReclaimed.load))\n"
        header(
            "p26_repeat_window_evictions_total", "counter",
            "Decisions forgotten by the repeat window before their TTL (raise P26_REPEAT_PEAK_RATE).")
        o += "p26_repeat_window_evictions_total \(num(repeatEvictions.load))\n"
        header("p26_repeat_window_capacity", "gauge", "Entries of the repeat window.")
        o += "p26_repeat_window_capacity \(num(repeatCapacity.load))\n"
        header(
            "p26_decision_latency_seconds", "histogram", "From a proposal's arrival to its decision being published.")
        var cumulative: UInt64 = 0
        for (i, bound) in LatencyHistogram.bounds.enumerated() {
            cumulative += latency.buckets[i].load
            o += "p26_decision_latency_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += latency.buckets[LatencyHistogram.bounds.count].load
        o += "p26_decision_latency_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        o += "p26_decision_latency_seconds_sum \(num(Double(latency.sumNanos.load) * 1e-9))\n"
        o += "p26_decision_latency_seconds_count \(cumulative)\n"
        header("p26_store_writes_total", "counter", "Committed store transactions.")
        o += "p26_store_writes_total \(storeWrites.load)\n"
        header(
            "p26_store_write_failures_total", "counter",
            "Store transactions that failed (their decisions were not published).")
        o += "p26_store_write_failures_total \(storeWriteFailures.load)\n"
        if let r = replicator.withLock({ $0 }) {
            let c = r.counts
            header(
                "p26_durable_lag_seconds", "gauge",
                "How long the oldest hot-store commit the durable store lacks has waited (0: caught up).")
            o += "p26_durable_lag_seconds \(num(r.lagSeconds))\n"
            header("p26_durable_writes_total", "counter", "Durable-store transactions committed by the replicator.")
            o += "p26_durable_writes_total \(c.rounds)\n"
            header(
                "p26_durable_write_failures_total", "counter",
                "Replicator rounds that failed (disk full, I/O error); the hot store keeps what they lacked.")
            o += "p26_durable_write_failures_total \(c.failures)\n"
            header("p26_durable_seq", "gauge", "The highest decision seq in the durable store.")
            o += "p26_durable_seq \(r.durableLastSeq)\n"
        }
        header("p26_swept_total", "counter", "Records removed by the TTL and retention sweeps, by kind.")
        o += "p26_swept_total{kind=\"latest\"} \(sweptLatest.load)\n"
        o += "p26_swept_total{kind=\"journal\"} \(sweptJournal.load)\n"
        o += "p26_swept_total{kind=\"events\"} \(sweptEvents.load)\n"
        o += "p26_swept_total{kind=\"ttl\"} \(sweptTTL.load)\n"
        header(
            "p26_sweep_seconds_total", "counter",
            "Time the sweeps spent removing records (their share of the commits excluded).")
        o += "p26_sweep_seconds_total \(num(Double(sweepNanos.load) * 1e-9))\n"
        header(
            "p26_publish_dropped_total", "counter",
            "Messages the publish socket refused as a whole (a drop for one slow subscriber is not seen here).")
        o += "p26_publish_dropped_total \(publishDropped.load)\n"
        header("p26_subscribers", "gauge", "Live subscriptions to decision topics (calibrated.*).")
        o += "p26_subscribers \(num(subscribers.load))\n"
        header(
            "p26_subscriber_joins_total", "counter",
            "Subscriptions to decision topics since start, reconnects included.")
        o += "p26_subscriber_joins_total \(subscriberJoins.load)\n"
        header(
            "p26_curve_refused_total", "counter",
            "CURVE handshakes refused because the client key is not in P26_CURVE_ALLOWED_CLIENTS.")
        o += "p26_curve_refused_total \(curveRefused.load)\n"
        header(
            "p26_guard_tripped", "gauge",
            "1 for the reason the rollback guard switched the gate to shadow, until mode enforce; 0 otherwise.")
        let tripped = Int(guardTripped.load) - 1
        for r in GuardReason.allCases {
            o += "p26_guard_tripped{reason=\"\(r.label)\"} \(Int(r.rawValue) == tripped ? 1 : 0)\n"
        }
        header("p26_build_info", "gauge", "Build information; always 1.")
        o += "p26_build_info{version=\"\(version)\"} 1\n"
        let p = ProcessStats.read()
        if let cpu = p.cpuSeconds {
            header("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
            o += "process_cpu_seconds_total \(cpu)\n"
        }
        if let rss = p.residentBytes {
            header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
            o += "process_resident_memory_bytes \(rss)\n"
        }
        if let fds = p.openFDs {
            header("process_open_fds", "gauge", "Number of open file descriptors.")
            o += "process_open_fds \(fds)\n"
        }
        header("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        o += "process_start_time_seconds \(num((processStartTime.load * 1000).rounded() / 1000))\n"
        return o
    }
}

/// The version this binary reports.
public enum HeatGateVersion {
    public static let current = "0.1.0"
}

/// Monotonic nanoseconds, for latency.
@inline(__always)
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall-clock epoch seconds, with fraction.
@inline(__always)
public func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
