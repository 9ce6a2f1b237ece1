import HeatGateCore
import HeatGateStore
import LMDB

#if canImport(Glibc)
    import Glibc
#endif

/// The engine and its store, without sockets: what `heatgate run` and `heatgate replay` share.
///
/// Messages are handled in batches. Each message goes through the engine at once; what it produced is
/// kept in memory; then one short write transaction persists the batch (group commit), and only after it
/// commits are the decisions handed out for publishing. A decision a subscriber has seen is therefore
/// always in the store. If the store cannot be written even after growing the map, the batch's decisions
/// are never published and the engine is rebuilt from the store, so memory, disk and the published `seq`
/// never disagree.
public final class Gate {
    /// One decision ready to publish after commit.
    public struct Published {
        public var symbolId: Int32
        public var seq: UInt64
        public var payload: Range<Int>
        /// A duplicate republishes the stored decision.
        public var duplicate: Bool
    }

    /// What one message did, for logging and metrics.
    public enum Handled {
        case decision(Decision)
        case duplicate(seq: UInt64)
        case state(StateChange)
        case rejected(Rejection)
    }

    struct StateWrite {
        var kind: StateChange
        var symbols: Range<Int>
        var message: Range<Int>
        var ts: Double
        var eventId: UInt64
    }

    public private(set) var engine: Engine
    public let store: GateStore
    public let metrics: Metrics
    /// The largest the map may grow to, in bytes.
    public var maxMapBytes = 64 << 30
    public private(set) var mapBytes: Int
    var nextEvent: UInt64
    /// The batch's encoded decisions.
    var out = JSONWriter(capacity: 1 << 16)
    public private(set) var published: [Published] = []
    var pendingDecisions: [(seq: UInt64, symbolId: Int32, expiresAt: Double, payload: Range<Int>, latest: Bool)] = []
    var stateWrites: [StateWrite] = []
    var stateSymbols: [Int32] = []
    var stateMessages: [UInt8] = []
    var equityDirty = false
    /// Symbols the engine freed whose book rows the next commit deletes.
    var reclaimed: [SymbolKey] = []
    var scratch = JSONWriter(capacity: 512)
    /// The TTL and retention sweeps, one chunk folded into each batch's commit while due.
    public var sweeper: Sweeper
    /// Chunks committed so far (in a batch or alone).
    public private(set) var sweepChunks = 0
    /// Why the last sweep chunk failed, until the daemon takes it to log.
    var sweepError: String?

    /// The durable store beside the hot one (SPEC §5), and what copies into it; `nil` for replay's single
    /// store.
    public let durable: GateStore?
    public let replicator: Replicator?
    /// Journal rows the hot store keeps beyond what the durable store holds (gap fills of the last
    /// seconds; older ones read the durable store).
    public static let hotJournalRows = 16_384

    /// Opens the store in `directory` and restores the engine from it: one store, no durable copy
    /// (`heatgate replay` and tests).
    /// - Throws: ``StoreError`` or a restore failure.
    public convenience init(
        config: GateConfig, directory: String? = nil, durable: Bool = false, metrics: Metrics = Metrics(), now: Double
    )
        throws
    {
        let store = try GateStore(
            directory: directory ?? config.stateDir, mapSizeMB: config.mapSizeMB, durable: durable)
        try self.init(config: config, store: store, durableStore: nil, metrics: metrics, now: now)
    }

    /// A gate on a hot store and, when given, the durable store it is copied to.
    /// - Throws: ``StoreError`` or a restore failure.
    public init(config: GateConfig, store: GateStore, durableStore: GateStore?, metrics: Metrics, now: Double) throws {
        self.store = store
        durable = durableStore
        replicator = try durableStore.map {
            try Replicator(hot: store, durable: $0, retention: config.journalRetentionSec)
        }
        mapBytes = (try? store.environment.info().mapSize) ?? config.mapSizeMB << 20
        self.metrics = metrics
        repeatCapacity = RepeatWindow.capacity(ttl: config.calibratedTTLSec, peakRate: config.repeatPeakRate)
        engine = Engine(policy: Policy(config), repeatCapacity: repeatCapacity)
        sweeper = Sweeper(retention: config.journalRetentionSec)
        nextEvent = 1
        try rebuild(now: now)
        published.reserveCapacity(1024)
        pendingDecisions.reserveCapacity(1024)
        stateWrites.reserveCapacity(1024)
    }

    /// Reloads the engine from the store: at start, and after a batch that could not be persisted.
    func rebuild(now: Double) throws {
        let restored = try store.restore(now: now, repeatLimit: repeatCapacity, journal: durable)
        let fresh = Engine(policy: engine.policy, repeatCapacity: repeatCapacity)
        // In memory it is the current one (a rebuild after a failed batch); at start, the stored one.
        fresh.restoreGuardTrip(engine.guardTrip ?? (firstRestore ? restored.guardTrip : nil))
        firstRestore = false
        fresh.nextSeq = restored.nextSeq
        fresh.killSwitch = restored.killSwitch.on
        killSwitchUnreadable = restored.killSwitch.unreadable
        if let e = restored.equity { fresh.restoreEquity(e.value, ts: e.ts) }
        for s in restored.symbols {
            do { try fresh.restore(s, now: now) } catch { continue }
        }
        for p in restored.recentPlans.reversed() {
            fresh.rememberDecision(planKey: p.planKey, seq: p.seq, expiresAt: p.expiresAt, now: now)
        }
        restoredRepeats = restored.recentPlans.count
        engine = fresh
        nextEvent = restored.nextEvent
    }

    /// Entries of the repeat window (from `P26_CALIBRATED_TTL_SEC` and `P26_REPEAT_PEAK_RATE` at start).
    public let repeatCapacity: Int
    var firstRestore = true
    /// Repeat-window entries read back from the journal at the last restore.
    public private(set) var restoredRepeats = 0
    /// Whether the stored kill-switch record was unreadable at the last read (it then counts as on).
    public private(set) var killSwitchUnreadable = false

    /// Reads the kill switch from the store into the engine, so a switch set by `heatgate kill` (even from
    /// another process) holds from the next proposal on, and shows in `status`, the heartbeat and
    /// `p26_kill_switch` even while no proposal comes (the daemon calls this at least every 100 ms).
    /// - Returns: whether the stored record is unreadable (counted as on), for the daemon to log.
    @discardableResult
    public func refreshKillSwitch() -> Bool {
        if let flags = try? store.environment.read({ txn in try store.killSwitchFlags(txn) }) {
            engine.killSwitch = flags.on
            killSwitchUnreadable = flags.unreadable
        }
        return killSwitchUnreadable
    }

    /// Applies a new policy (mode, thresholds, bucket actions) from the next message on.
    public func apply(_ policy: Policy) { engine.policy = policy }

    // MARK: - Batches

    /// Starts a batch: clears the last one and reads the kill switch, so a switch set by `heatgate kill`
    /// (even from another process) holds from the next proposal on.
    public func beginBatch() {
        out.reset()
        published.removeAll(keepingCapacity: true)
        pendingDecisions.removeAll(keepingCapacity: true)
        stateWrites.removeAll(keepingCapacity: true)
        stateSymbols.removeAll(keepingCapacity: true)
        stateMessages.removeAll(keepingCapacity: true)
        equityDirty = false
        refreshKillSwitch()
    }

    /// Handles one message within the batch.
    @discardableResult
    public func handle(_ bytes: UnsafeRawBufferPointer, now: Double) -> Handled {
        switch engine.process(bytes, now: now) {
        case .decision(let d, let p):
            let start = out.count
            DecisionEncoder.encode(d, proposal: p, source: bytes, symbol: engine.symbol(d.symbolId), into: &out)
            // A hold for the kill switch or staleness is journaled and published, but is not the symbol's
            // latest decision: while the switch is on the Apply Layer executes nothing anyway (it reads the
            // switch), and once it is off, or a fresh copy comes, the hold must not keep blocking the exit
            // for the rest of the TTL.
            pendingDecisions.append((d.seq, d.symbolId, d.expiresAt, start..<out.count, d.isRemembered))
            published.append(Published(symbolId: d.symbolId, seq: d.seq, payload: start..<out.count, duplicate: false))
            metrics.record(d)
            return .decision(d)
        case .duplicate(let seq, let p):
            published.append(Published(symbolId: p.symbolId, seq: seq, payload: 0..<0, duplicate: true))
            return .duplicate(seq: seq)
        case .state(let kind):
            let symStart = stateSymbols.count
            stateSymbols.append(contentsOf: engine.dirtySymbols)
            let msgStart = stateMessages.count
            stateMessages.append(contentsOf: bytes)
            if kind == .portfolio { equityDirty = true }
            stateWrites.append(
                StateWrite(
                    kind: kind, symbols: symStart..<stateSymbols.count, message: msgStart..<stateMessages.count,
                    ts: now, eventId: nextEvent))
            nextEvent += 1
            return .state(kind)
        case .rejected(let r):
            metrics.record(r.reason)
            return .rejected(r)
        }
    }

    /// Persists the batch in one transaction, growing the map when it is full.
    ///
    /// - Returns: `true` when committed (publish ``published`` then); `false` when the batch could not be
    ///   stored: its decisions are dropped and the engine is rebuilt from the store.
    /// - Throws: only when even the rebuild fails (the store is unreadable).
    public func commit(now: Double) throws -> Bool {
        reclaimed.append(contentsOf: engine.takeReclaimedSymbols())
        if pendingDecisions.isEmpty && stateWrites.isEmpty && reclaimed.isEmpty
            && !published.contains(where: \.duplicate)
        {
            return true
        }
        var lastError: (any Error)?
        var sweeping = sweeper.due
        for _ in 0..<8 {
            do {
                let chunk = try writeBatch(now: now, sweeping: sweeping)
                if let replicator {
                    replicator.committed(symbols: changedSymbols())
                }
                reclaimed.removeAll(keepingCapacity: true)
                metrics.storeWrites.add()
                if let chunk { finishSweep(chunk) }
                return true
            } catch let e as SweepFailure {
                // The batch goes through without the sweep; the sweep waits for its next round.
                sweeping = false
                failSweep(e.error)
            } catch let e as LMDBError where e == .mapFull {
                lastError = e
                guard mapBytes * 2 <= maxMapBytes, (try? store.setMapSize(mapBytes * 2)) != nil else { break }
                mapBytes *= 2
            } catch {
                lastError = error
                break
            }
        }
        metrics.storeWriteFailures.add()
        lastStoreError = (lastError.map { "\($0)" } ?? "unknown") + diskSpaceNote()
        published.removeAll(keepingCapacity: true)
        // The rebuilt engine has the reclaimed symbols back from the store, rows and all.
        reclaimed.removeAll(keepingCapacity: true)
        try rebuild(now: now)
        return false
    }

    /// The symbols whose book rows the batch wrote or removed, for the replicator.
    func changedSymbols() -> [SymbolKey] {
        var out = reclaimed
        for w in stateWrites {
            for i in w.symbols { out.append(engine.symbol(stateSymbols[i])) }
        }
        return out
    }

    /// LMDB reports a short write as EIO; saying how much space is left names the usual cause.
    func diskSpaceNote() -> String {
        var fs = statvfs()
        guard statvfs(store.directory, &fs) == 0 else { return "" }
        let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
        return free < 4 << 20 ? " (disk full: \(free) bytes free in \(store.directory))" : ""
    }

    /// Why the last failed commit failed.
    public private(set) var lastStoreError = ""

    /// A sweep chunk failed inside a batch's transaction, which is then unusable: the batch is written again
    /// without it.
    struct SweepFailure: Error {
        var error: any Error
    }

    /// Writes the batch, and a sweep chunk with it when `sweeping`, in one transaction.
    /// - Returns: the sweep chunk committed with the batch, if any.
    func writeBatch(now: Double, sweeping: Bool) throws -> Sweeper.Chunk? {
        let txn = try store.environment.beginWrite()
        // On any throw below, `txn` is dropped, which aborts it.
        // Reclaimed symbols first: one may come back within the batch and is then written anew below.
        for symbol in reclaimed { try store.deleteSymbol(txn, symbol) }
        try out.bytes.withUnsafeBytes { buf in
            for d in pendingDecisions {
                try store.putDecision(
                    txn, seq: d.seq, symbol: engine.symbol(d.symbolId), expiresAt: d.expiresAt,
                    json: UnsafeRawBufferPointer(rebasing: buf[d.payload]), asLatest: d.latest)
            }
        }
        try stateMessages.withUnsafeBytes { msgs in
            for w in stateWrites {
                for i in w.symbols {
                    try store.putSymbol(txn, engine.snapshot(stateSymbols[i]), scratch: &scratch)
                }
                try store.putEvent(
                    txn, id: w.eventId, kind: w.kind, ts: w.ts,
                    message: UnsafeRawBufferPointer(rebasing: msgs[w.message]),
                    scratch: &scratch)
            }
        }
        if equityDirty, let e = engine.equity {
            try store.putEquity(txn, value: e, ts: engine.equityTs, scratch: &scratch)
        }
        try store.putCounters(txn, nextSeq: engine.nextSeq, nextEvent: nextEvent)
        // Duplicates republish what the journal holds, byte for byte.
        for i in published.indices where published[i].duplicate {
            if let stored = try store.journaled(txn, seq: published[i].seq) {
                let start = out.count
                out.raw(stored, 0..<stored.count)
                published[i].payload = start..<out.count
            } else if let durable, let stored = try? durable.lockedDecision(seq: published[i].seq) {
                // Older than the hot store's tail: the durable store has it.
                let start = out.count
                stored.withUnsafeBytes { out.raw($0, 0..<$0.count) }
                published[i].payload = start..<out.count
            }
        }
        var chunk: Sweeper.Chunk?
        if sweeping {
            updateTail()
            do {
                chunk = try sweeper.run(store, txn, now: now, added: pendingDecisions.count + stateWrites.count)
            } catch {
                throw SweepFailure(error: error)
            }
        }
        try txn.commit()
        published.removeAll { $0.duplicate && $0.payload.isEmpty }
        return chunk
    }

    // MARK: - Sweeps

    /// Runs one sweep chunk in a transaction of its own, for when the sweep is due and no batch came.
    public func sweepAlone(now: Double) {
        guard sweeper.due, sweeper.backlogAllowed(at: monotonicNanos()) else { return }
        updateTail()
        do {
            let chunk = try store.environment.write { txn in
                try sweeper.run(store, txn, now: now, added: 0)
            }
            metrics.storeWrites.add()
            finishSweep(chunk)
        } catch {
            failSweep(error)
        }
    }

    /// What the hot store may trim: only rows the durable store already holds (set before every sweep
    /// chunk; without a durable store, replay's, the sweep applies retention instead).
    func updateTail() {
        guard let replicator else { return }
        sweeper.tail = (
            Self.hotJournalRows, replicator.durableLastSeq, replicator.durableLastEvent
        )
    }

    func finishSweep(_ chunk: Sweeper.Chunk) {
        sweepChunks += 1
        metrics.sweptLatest.add(UInt64(chunk.latest))
        metrics.sweptJournal.add(UInt64(chunk.journal))
        metrics.sweptEvents.add(UInt64(chunk.events))
        metrics.sweptTTL.add(UInt64(chunk.ttlEntries))
        metrics.sweepNanos.add(chunk.nanos)
        sweeper.finish(chunk)
    }

    func failSweep(_ error: any Error) {
        sweeper.abandon()
        sweepError = "\(error)"
    }

    /// Why the last sweep chunk failed, once.
    public func takeSweepError() -> String? {
        defer { sweepError = nil }
        return sweepError
    }

    /// The bytes of a decision to publish.
    public func withPayload<R>(_ p: Published, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try out.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[p.payload])) }
    }

    /// The symbol of a published decision.
    public func symbol(_ p: Published) -> SymbolKey { engine.symbol(p.symbolId) }
}
