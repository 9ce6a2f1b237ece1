import BenchSupport
import HeatGateCore
import HeatGateServer
import HeatGateStore
import LMDB
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An engine with a COLD book of `positions` positions (the same as the daemon gets from hg-loadgen).
func makeEngine(positions: Int, now: Double) -> Engine {
    let engine = Engine(policy: Policy(GateConfig()))
    for m in Workload.book(Workload.fixedSymbols(positions), now: now) {
        let bytes = Array(m.utf8)
        _ = bytes.withUnsafeBytes { engine.process($0, now: now) }
    }
    return engine
}

/// Real decisions, encoded: `count` of them over the book's symbols, `spacing` seconds apart from `start`.
struct DecisionSource {
    let engine: Engine
    var frame: ProposalFrame
    let names: [[UInt8]]
    var out = JSONWriter(capacity: 4096)

    init(positions: Int, start: Double) {
        engine = makeEngine(positions: positions, now: start)
        let symbols = Workload.fixedSymbols(positions)
        names = symbols.map { Array($0.utf8) }
        frame = ProposalFrame(run: "st", symbol: symbols[0])
    }

    /// Decision `i` at time `now`; calls `body` with its seq, symbol, expiry and JSON.
    mutating func next(
        _ i: UInt64, now: Double, _ body: (UInt64, SymbolKey, Double, UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        frame.setSymbol(names[Int(i % UInt64(names.count))])
        frame.fill(index: i, intendedNanos: i, epoch: now)
        let engine = self.engine
        var out = self.out
        defer { self.out = out }
        try frame.bytes.withUnsafeBytes { b in
            guard case .decision(let d, let p) = engine.process(b, now: now) else { return }
            out.reset()
            let symbol = engine.symbol(d.symbolId)
            DecisionEncoder.encode(d, proposal: p, source: b, symbol: symbol, into: &out)
            try out.bytes.withUnsafeBytes { try body(d.seq, symbol, d.expiresAt, $0) }
        }
    }
}

/// P3: one decision persisted, amortised over a write transaction of `batch` decisions, in the daemon's
/// durability mode (MDB_NOSYNC: commits pwrite() into the page cache; a flusher thread calls mdb_env_sync as
/// soon as something was committed, back to back, as `Daemon` does); and how long until each commit was on disk.
///
/// - Parameter pace: when set, one transaction every `pace` seconds (slept to, never spun), as the daemon
///   commits at a steady rate; when nil, back to back (the cost of a burst).
func benchStoreWrite(dir: String, decisions n: Int, batch: Int, pace: Double? = nil) throws -> [String: Any] {
    let store = try GateStore(directory: dir, mapSizeMB: 4096, durable: false)
    let now = BenchSupport.wallClock()
    var source = DecisionSource(positions: 1000, start: now)
    // Encode first: P3 is the store write alone (P2 covers the encoding).
    var payloads: [(UInt64, SymbolKey, Double, [UInt8])] = []
    payloads.reserveCapacity(n)
    for i in 0..<UInt64(n) { source.next(i, now: now) { payloads.append(($0, $1, $2, Array($3))) } }

    let txns = (n + batch - 1) / batch
    let commitTimes = Handoff([UInt64](repeating: 0, count: txns))
    let syncs = Handoff([(covered: Int, end: UInt64, took: UInt64)]())
    let storeBox = Handoff(store)
    let shared = SharedFlags()
    // The daemon's own flusher loop.
    let flusher = startThread {
        Flusher.run(
            committed: { UInt64(shared.committed.load(ordering: .acquiring)) },
            stop: { shared.stop.load(ordering: .relaxed) }, sync: { try storeBox.value.sync() },
            flushed: { covered, start, end in syncs.value.append((Int(covered), end, end - start)) })
    }
    var perDecision = LatencyRecorder()
    var k = 0
    let paceStart = BenchSupport.monotonicNanos() + 1_000_000
    for t in 0..<txns {
        if let pace { sleepUntil(paceStart + UInt64(Double(t) * pace * 1e9)) }
        let t0 = BenchSupport.monotonicNanos()
        let txn = try store.environment.beginWrite()
        let end = min(k + batch, n)
        while k < end {
            let (seq, sym, exp, json) = payloads[k]
            try json.withUnsafeBytes { try store.putDecision(txn, seq: seq, symbol: sym, expiresAt: exp, json: $0) }
            k += 1
        }
        try store.putCounters(txn, nextSeq: UInt64(k + 1), nextEvent: 1)
        try txn.commit()
        let t1 = BenchSupport.monotonicNanos()
        commitTimes.value[t] = t1
        shared.committed.store(t + 1, ordering: .releasing)
        perDecision.record((t1 - t0) / UInt64(end - (t * batch)))
    }
    sleepFor(20_000_000)
    shared.stop.store(true, ordering: .relaxed)
    pthread_join(flusher, nil)
    var lag = LatencyRecorder()
    var syncTook = LatencyRecorder()
    var from = 0
    for s in syncs.value {
        syncTook.record(s.took)
        while from < s.covered {
            lag.record(s.end - commitTimes.value[from])
            from += 1
        }
    }
    var r: [String: Any] = [
        "paced_txn_per_s": pace.map { 1 / $0 } ?? 0, "batch": batch, "decisions": n,
        "mean_json_bytes": payloads.reduce(0) { $0 + $1.3.count } / n,
    ]
    r["per_decision"] = dict(perDecision.summary())
    r["commit_to_disk"] = dict(lag.summary())
    r["commits_not_seen_on_disk"] = txns - from
    r["sync_duration"] = dict(syncTook.summary())
    r["syncs"] = syncs.value.count
    return r
}

final class SharedFlags: Sendable {
    let committed = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    /// Commits the last flush covered.
    let flushed = Atomic<UInt64>(0)
}

func dict(_ pairs: [(String, Double)]) -> [String: Any] {
    var d: [String: Any] = [:]
    for (k, v) in pairs { d[k] = v }
    return d
}

/// Hands `gate` the book of `positions` symbols, then `decisions` proposals 100 µs apart from `start` (1M
/// decisions span 100 s of proposal time), committing every 512 messages as the daemon's group commit does,
/// with a sweep chunk in each commit when `sweeping`.
/// - Returns: the proposal time of the last one.
func feed(_ gate: Gate, positions: Int, decisions: Int, start: Double, sweeping: Bool) throws -> Double {
    let names = Workload.fixedSymbols(positions)
    var pending = 0
    var now = start
    gate.beginBatch()
    func flush() throws {
        if sweeping { gate.sweeper.due = true }
        guard try gate.commit(now: now) else { throw BenchError("store write failed: \(gate.lastStoreError)") }
        gate.beginBatch()
        pending = 0
    }
    for m in Workload.book(names, now: start) {
        let bytes = Array(m.utf8)
        bytes.withUnsafeBytes { _ = gate.handle($0, now: start) }
        pending += 1
        if pending == 512 { try flush() }
    }
    var frame = ProposalFrame(run: "st", symbol: names[0])
    let nameBytes = names.map { Array($0.utf8) }
    for i in 0..<UInt64(decisions) {
        now = start + Double(i) * 1e-4
        frame.setSymbol(nameBytes[Int(i % UInt64(nameBytes.count))])
        frame.fill(index: i, intendedNanos: i, epoch: now)
        frame.bytes.withUnsafeBytes { _ = gate.handle($0, now: now) }
        pending += 1
        if pending == 512 { try flush() }
    }
    try flush()
    return now
}

/// Feeds `positions` position messages and `decisions` proposals through the daemon's own `Gate` (engine,
/// encoder, store, group commit of 512), as the daemon would, into `dir`.
func buildStore(dir: String, positions: Int, decisions: Int, start: Double) throws -> [String: Any] {
    var config = GateConfig()
    config.stateDir = dir
    config.mapSizeMB = 4096
    let gate = try Gate(config: config, directory: dir, durable: false, now: start)
    let t0 = BenchSupport.monotonicNanos()
    _ = try feed(gate, positions: positions, decisions: decisions, start: start, sweeping: false)
    try gate.store.sync()
    let took = Double(BenchSupport.monotonicNanos() - t0) / 1e9
    let c = try gate.store.counts()
    return [
        "positions": positions, "decisions": decisions, "build_s": took, "journal": c.journal, "events": c.events,
        "latest": c.latest, "ttl": c.ttl, "book": c.book, "last_seq": gate.engine.nextSeq - 1,
    ]
}

/// P7: writes `n` decisions whose TTL has passed (over 10 000 symbols, 100 µs apart, expiring 300 s later),
/// then sweeps them in the daemon's chunks of 1 000: per-record cost and the longest chunk; the same for the
/// journal's retention sweep.
func populateExpired(dir: String, records n: Int, start: Double) throws -> GateStore {
    let store = try GateStore(directory: dir, mapSizeMB: 4096, durable: false)
    var source = DecisionSource(positions: 10_000, start: start)
    var i: UInt64 = 0
    while i < UInt64(n) {
        let txn = try store.environment.beginWrite()
        let end = min(i + 1000, UInt64(n))
        while i < end {
            try source.next(i, now: start + Double(i) * 1e-4) { seq, sym, exp, json in
                try store.putDecision(txn, seq: seq, symbol: sym, expiresAt: exp, json: json)
            }
            i += 1
        }
        try store.putCounters(txn, nextSeq: i + 1, nextEvent: 1)
        try txn.commit()
    }
    try store.sync()
    return store
}

func benchSweep(_ store: GateStore, now: Double, chunk: Int) throws -> [String: Any] {
    let before = try store.counts()
    var chunks = LatencyRecorder()
    let t0 = BenchSupport.monotonicNanos()
    var removedLatest = 0
    var guardCount = 0
    while guardCount < 10_000_000 {
        guardCount += 1
        let c0 = BenchSupport.monotonicNanos()
        let r = try store.sweepExpired(now: now, limit: chunk)
        chunks.record(BenchSupport.monotonicNanos() - c0)
        removedLatest += r.removed
        if !r.more { break }
    }
    let ttlTook = BenchSupport.monotonicNanos() - t0
    let mid = try store.counts()
    var jchunks = LatencyRecorder()
    let j0 = BenchSupport.monotonicNanos()
    var journalRemoved = 0
    guardCount = 0
    while guardCount < 10_000_000 {
        guardCount += 1
        let c0 = BenchSupport.monotonicNanos()
        let r = try store.sweepJournal(now: now, retention: 1, limit: chunk)
        jchunks.record(BenchSupport.monotonicNanos() - c0)
        journalRemoved += r.decisions + r.events
        if !r.more { break }
    }
    let journalTook = BenchSupport.monotonicNanos() - j0
    let ttlRemoved = before.ttl - mid.ttl
    return [
        "ttl_entries_swept": ttlRemoved, "latest_removed": removedLatest,
        "ttl_per_record_us": ttlRemoved > 0 ? Double(ttlTook) / Double(ttlRemoved) / 1000 : 0,
        "ttl_chunk": dict(chunks.summary()), "ttl_total_s": Double(ttlTook) / 1e9,
        "journal_records_swept": journalRemoved,
        "journal_per_record_us": journalRemoved > 0 ? Double(journalTook) / Double(journalRemoved) / 1000 : 0,
        "journal_chunk": dict(jchunks.summary()), "journal_total_s": Double(journalTook) / 1e9,
        "chunk_limit": chunk,
    ]
}
