import BenchSupport
import Foundation
import HeatGateCore
import HeatGateServer
import HeatGateStore
import LMDB
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// P3 with two stores (issue 17): one decision per transaction at a steady `rate`, as `GateStore.putDecision`
/// writes it (journal append, latest put, TTL put) plus the counters, and how long until each commit is on
/// the disk.
///
/// - `two`: the daemon's hot store (`hot: true`: `MDB_WRITEMAP|MDB_NOSYNC`, its 64 MiB map allocated) in
///   `hotDir` (/dev/shm), and the real ``Replicator`` on a thread of its own copying it into a durable store
///   (LMDB's synced commits) in `diskDir`; each commit also carries the sweep's share the daemon folds in
///   (a TTL chunk and a trim of the hot journal's tail to ``Gate/hotJournalRows``, two records each, as
///   `Sweeper` budgets one added decision). "On disk" is hot commit → end of the replicator round that
///   committed it to the durable store.
/// - `old`: the single store before issue 17 (`MDB_NOSYNC` on the disk, `pwrite` per commit) and the
///   daemon's ``Flusher``; "on disk" is commit → end of the first `mdb_env_sync` that covers it.
///
/// Decisions are encoded on the fly outside the timed part (P2 measures encoding); the loop sleeps to an
/// absolute schedule (never spins), so a late wake-up is followed by commits back to back until on time.
func benchTwoStores(
    kind: String, hotDir: String, diskDir: String, rate: Double, seconds: Double, positions: Int
) throws -> [String: Any] {
    let n = max(1, Int(rate * seconds))
    let two = kind == "two"
    let store: GateStore
    var durable: GateStore?
    var replicator: Replicator?
    if two {
        store = try GateStore(directory: hotDir, mapSizeMB: 64, durable: false, hot: true)
        let d = try GateStore(directory: diskDir, mapSizeMB: GateConfig().mapSizeMB, durable: true)
        durable = d
        replicator = try Replicator(hot: store, durable: d, retention: GateConfig().journalRetentionSec)
    } else {
        store = try GateStore(directory: diskDir, mapSizeMB: 4096, durable: false)
    }
    let wall0 = BenchSupport.wallClock()
    var source = DecisionSource(positions: positions, start: wall0)
    let commitAt = Handoff([UInt64](repeating: 0, count: n + 2))
    // (highest seq on the disk, when it got there), in order.
    let onDisk = Handoff([(seq: UInt64, at: UInt64)]())
    let shared = SharedFlags()
    let thread: pthread_t
    if let replicator {
        thread = startThread {
            replicator.run(
                stop: { shared.stop.load(ordering: .relaxed) }, now: { BenchSupport.wallClock() },
                recovered: { onDisk.value.append((replicator.durableLastSeq, BenchSupport.monotonicNanos())) })
        }
    } else {
        let box = Handoff(store)
        thread = startThread {
            Flusher.run(
                committed: { UInt64(shared.committed.load(ordering: .acquiring)) },
                stop: { shared.stop.load(ordering: .relaxed) }, sync: { try box.value.sync() },
                flushed: { covered, _, end in
                    onDisk.value.append((covered, end))
                    shared.flushed.store(covered, ordering: .releasing)
                })
        }
    }
    // Stopped and joined on every path: a copier left running would read stores being unmapped.
    var stopped = false
    func stopThread() {
        guard !stopped else { return }
        stopped = true
        shared.stop.store(true, ordering: .relaxed)
        pthread_join(thread, nil)
    }
    defer { stopThread() }
    var mapGrowths = 0
    var perCommit = LatencyRecorder()
    var jsonBytes = 0
    var commits = 0
    var lastSeq: UInt64 = 0
    let keep = Gate.hotJournalRows
    let noSymbols: [SymbolKey] = []
    let t0 = BenchSupport.monotonicNanos() + 1_000_000
    for i in 0..<UInt64(n) {
        sleepUntil(t0 + UInt64(Double(i) / rate * 1e9))
        let now = wall0 + Double(i) / rate
        try source.next(i, now: now) { seq, symbol, expiresAt, json in
            let c0 = BenchSupport.monotonicNanos()
            // As `Gate.commit`: a full map doubles (the hot store's growth beyond its first 64 MiB) and the
            // transaction is retried.
            for attempt in 1...8 {
                do {
                    let txn = try store.environment.beginWrite()
                    try store.putDecision(txn, seq: seq, symbol: symbol, expiresAt: expiresAt, json: json)
                    if let replicator {
                        _ = try store.sweepExpired(txn, now: now, limit: 2)
                        _ = try store.trimTail(
                            txn, keep: keep, durableSeq: replicator.durableLastSeq, durableEvent: 0, limit: 2)
                    }
                    try store.putCounters(txn, nextSeq: seq + 1, nextEvent: 1)
                    try txn.commit()
                    break
                } catch let e as LMDBError where e == .mapFull && attempt < 8 {
                    try store.setMapSize(try store.environment.info().mapSize * 2)
                    mapGrowths += 1
                }
            }
            // Stamped before the copier is told, so no disk time can precede it.
            let committed = BenchSupport.monotonicNanos()
            if Int(seq) < commitAt.value.count { commitAt.value[Int(seq)] = committed }
            if let replicator {
                replicator.committed(symbols: noSymbols)
            } else {
                shared.committed.store(commits + 1, ordering: .releasing)
            }
            perCommit.record(BenchSupport.monotonicNanos() - c0)
            jsonBytes += json.count
            commits += 1
            lastSeq = seq
        }
    }
    let elapsed = Double(BenchSupport.monotonicNanos() - t0) / 1e9
    // Let the copy or flush catch up (at most 10 s), then stop the thread.
    let deadline = BenchSupport.monotonicNanos() + 10_000_000_000
    while BenchSupport.monotonicNanos() < deadline {
        let done = replicator?.caughtUp ?? (shared.flushed.load(ordering: .acquiring) >= UInt64(commits))
        if done { break }
        sleepFor(1_000_000)
    }
    sleepFor(5_000_000)
    stopThread()
    // For `old` the flusher reports a commit count; commit k is seq k there too (one decision each).
    var lag = LatencyRecorder()
    var next: UInt64 = 1
    for (seq, at) in onDisk.value {
        while next <= seq, Int(next) < commitAt.value.count {
            let c = commitAt.value[Int(next)]
            // A copier can commit a row the loop has committed but not yet stamped (it was preempted
            // in between): count it as 0, never as a wrapped-around 60 s.
            if c != 0 { lag.record(at > c ? at - c : 0) }
            next += 1
        }
    }
    var r: [String: Any] = [
        "store": two ? "hot (tmpfs, WRITEMAP|NOSYNC) + Replicator → durable (synced)" : "MDB_NOSYNC on disk + Flusher",
        "kind": kind, "rate_per_s": rate, "achieved_per_s": Double(commits) / elapsed, "decisions": commits,
        "mean_json_bytes": commits > 0 ? jsonBytes / commits : 0, "hot_dir": two ? hotDir : "",
        "disk_dir": diskDir, "disk_rounds": onDisk.value.count,
        "rows_per_disk_round": onDisk.value.isEmpty ? 0 : Double(commits) / Double(onDisk.value.count),
        "commits_not_seen_on_disk": Int(lastSeq) - Int(next - 1),
    ]
    r["per_commit"] = dict(perCommit.summary())
    r["commit_to_disk"] = dict(lag.summary())
    if two {
        r["hot_data_mdb_bytes"] = diskBytes("\(hotDir)/data.mdb")
        r["durable_data_mdb_bytes"] = diskBytes("\(diskDir)/data.mdb")
        r["hot_journal_rows"] = try store.counts().journal
        r["durable_journal_rows"] = try durable?.counts().journal ?? 0
        r["replicator_rounds"] = replicator?.counts.rounds ?? 0
        r["hot_map_growths"] = mapGrowths
        r["hot_map_bytes"] = (try? store.environment.info().mapSize) ?? -1
    } else {
        r["data_mdb_bytes"] = diskBytes("\(diskDir)/data.mdb")
    }
    return r
}

/// Builds both stores as the daemon leaves them after `decisions` decisions over `positions` positions: the
/// daemon's own ``Gate`` (engine, encoder, group commit of 512, the sweep folded into every commit) on a hot
/// store in `runDir`, its ``Replicator`` on a thread copying into the durable store in `stateDir`, the hot
/// store stamped with this boot and state directory as the daemon stamps it. Decisions are 100 µs apart
/// and the last is made now (10 000/s for 100 s per 1 000 000): every one is within its TTL at a restart.
func buildTwoStores(stateDir: String, runDir: String, positions: Int, decisions: Int) throws -> [String: Any] {
    var config = GateConfig()
    config.stateDir = stateDir
    config.runDirSetting = runDir
    let durable = try GateStore(directory: stateDir, mapSizeMB: config.mapSizeMB, durable: true)
    // 256 MiB, not the daemon's first 64: a build outruns the copy, and the map would otherwise grow
    // (safe since the replicator reads under the map lock, but a pause the build need not take).
    let hot = try GateStore(directory: runDir, mapSizeMB: 256, durable: false, hot: true)
    try hot.environment.write { txn in
        try hot.putIdentity(txn, bootId: StorePaths.bootId(), stateDir: StorePaths.absolutePath(stateDir))
    }
    let start = BenchSupport.wallClock() - Double(decisions) * 1e-4
    let gate = try Gate(config: config, store: hot, durableStore: durable, metrics: Metrics(), now: start)
    guard let replicator = gate.replicator else { throw BenchError("no replicator") }
    let shared = SharedFlags()
    let thread = startThread {
        replicator.run(stop: { shared.stop.load(ordering: .relaxed) }, now: { BenchSupport.wallClock() })
    }
    defer {
        shared.stop.store(true, ordering: .relaxed)
        pthread_join(thread, nil)
    }
    let t0 = BenchSupport.monotonicNanos()
    let now = try feed(gate, positions: positions, decisions: decisions, start: start, sweeping: true)
    // The rest of the hot journal's trim, and the durable copy, as the running daemon would finish them.
    for _ in 0..<4096 {
        gate.sweeper.due = true
        gate.sweepAlone(now: now)
        if !gate.sweeper.due { break }
    }
    let deadline = BenchSupport.monotonicNanos() + 120_000_000_000
    while !replicator.caughtUp, BenchSupport.monotonicNanos() < deadline { sleepFor(2_000_000) }
    let took = Double(BenchSupport.monotonicNanos() - t0) / 1e9
    let d = try durable.counts()
    let h = try hot.counts()
    return [
        "positions": positions, "decisions": decisions, "build_s": took, "last_seq": gate.engine.nextSeq - 1,
        "durable": ["journal": d.journal, "events": d.events, "book": d.book, "latest": d.latest],
        "hot": ["journal": h.journal, "events": h.events, "book": h.book, "latest": h.latest, "ttl": h.ttl],
        "replicator_rounds": replicator.counts.rounds, "caught_up": replicator.caughtUp,
    ]
}

/// Writes `count` batches of 512 consecutive journaled decisions (as stored, concatenated) from `store`,
/// spread over its journal, into `dir` (`batch-NNNN.json`), for measuring per-batch compression.
func exportBatches(_ store: GateStore, to dir: String, count: Int, lastSeq: UInt64) throws -> Int {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let batches = max(1, Int(lastSeq / 512))
    let step = max(1, batches / max(count, 1))
    var written = 0
    for b in stride(from: 0, to: batches, by: step) where written < count {
        let rows = try store.decisions(from: UInt64(b * 512 + 1), limit: 512)
        var bytes: [UInt8] = []
        for r in rows { bytes += r.json }
        try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/batch-\(String(format: "%04d", written)).json"))
        written += 1
    }
    return written
}
