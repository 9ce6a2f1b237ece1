import HeatGateCore
import LMDB
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What one replication round copies from the hot store to the durable one.
struct ReplicaChanges {
    var journal: [(seq: UInt64, json: [UInt8])] = []
    var events: [(id: UInt64, json: [UInt8])] = []
    /// Book rows of the symbols that changed; `nil` value: the row is gone from the hot store.
    var book: [(symbol: [UInt8], row: [UInt8]?)] = []
    /// `book` is the whole hot book: durable rows not in it are removed.
    var fullBook = false
    /// Meta records to write; `nil`: removed from the hot store (the guard trip, once cleared).
    var meta: [(key: String, value: [UInt8]?)] = []
    /// The hot store had more rows than one round takes.
    var more = false

    var isEmpty: Bool { journal.isEmpty && events.isEmpty && book.isEmpty && meta.isEmpty && !fullBook }
}

extension GateStore {
    /// The meta keys the replicator carries over. Not the kill switch: only `heatgate kill` writes it, to
    /// both stores, durable first; a copy from the hot store could put back a value older than the one the
    /// CLI has just made durable.
    static let replicatedMeta = ["schema", "seq", "event_seq", "equity", "guard_trip"]

    /// What the durable store (whose last journal `seq` and event id are given) lacks, from one snapshot
    /// of this (hot) store: at most `limit` journal rows and as many events.
    func changes(
        afterSeq: UInt64, afterEvent: UInt64, symbols: Set<SymbolKey>, fullBook: Bool, limit: Int
    ) throws -> ReplicaChanges {
        var c = ReplicaChanges()
        c.fullBook = fullBook
        // Under the map lock: the daemon may grow the hot map (MDB_MAP_FULL), which LMDB allows only with no
        // transaction of this process open (found by hg-bench store2: a SIGSEGV in this read at 50 000/s).
        try mapLock.withLock { _ in try changesLocked(&c, afterSeq, afterEvent, symbols, fullBook, limit) }
        return c
    }

    func changesLocked(
        _ c: inout ReplicaChanges, _ afterSeq: UInt64, _ afterEvent: UInt64, _ symbols: Set<SymbolKey>,
        _ fullBook: Bool, _ limit: Int
    ) throws {
        try run("replicate: read the hot store") {
            try environment.read { txn in
                let (j, moreJ) = try Self.rows(txn, journal, after: afterSeq, limit: limit)
                let (e, moreE) = try Self.rows(txn, events, after: afterEvent, limit: limit)
                c.journal = j.map { (seq: $0.0, json: $0.1) }
                c.events = e.map { (id: $0.0, json: $0.1) }
                c.more = moreJ || moreE
                if fullBook {
                    try txn.withCursor(book) { cur in
                        var entry = try cur.first()
                        while let (k, v) = entry {
                            c.book.append((Array(k), Array(v)))
                            entry = try cur.next()
                        }
                    }
                } else {
                    for s in symbols {
                        let row = try s.withBytes { try txn.getBytes(book, $0) }
                        c.book.append((s.withBytes { Array($0) }, row))
                    }
                }
                for key in Self.replicatedMeta {
                    // A round that takes only part of the rows leaves the counters for the last one: a
                    // durable `next_seq` ahead of its journal would skip numbers after a power cut.
                    if c.more && (key == "seq" || key == "event_seq") { continue }
                    let v = try txn.getBytes(meta, key)
                    // Only the guard trip is ever removed; the others are absent only in a new store.
                    if v != nil || key == "guard_trip" { c.meta.append((key, v)) }
                }
            }
        }
    }

    /// At most `limit` rows of `db` with keys above `after`, and whether more follow.
    static func rows(_ txn: borrowing Transaction, _ db: Database, after: UInt64, limit: Int) throws -> (
        [(UInt64, [UInt8])], Bool
    ) {
        try txn.withCursor(db) { cur in
            var out: [(UInt64, [UInt8])] = []
            var entry = try withBigEndianKey(after &+ 1) { try cur.setRange($0) }
            while let (k, v) = entry, let key = decodeBigEndianUInt64(k) {
                if out.count == limit { return (out, true) }
                out.append((key, Array(v)))
                entry = try cur.next()
            }
            return (out, false)
        }
    }

    /// Writes `c` into this (durable) store within `txn`.
    func apply(_ c: ReplicaChanges, _ txn: borrowing Transaction) throws {
        for (seq, json) in c.journal {
            _ = try withBigEndianKey(seq) { key in try txn.put(journal, key, json, flags: .append) }
        }
        for (id, json) in c.events {
            _ = try withBigEndianKey(id) { key in try txn.put(events, key, json, flags: .append) }
        }
        if c.fullBook {
            var keep = Set<[UInt8]>()
            for (symbol, _) in c.book { keep.insert(symbol) }
            var gone: [[UInt8]] = []
            try txn.withCursor(book) { cur in
                var entry = try cur.first()
                while let (k, _) = entry {
                    let key = Array(k)
                    if !keep.contains(key) { gone.append(key) }
                    entry = try cur.next()
                }
            }
            for key in gone { _ = try txn.delete(book, key) }
        }
        for (symbol, row) in c.book {
            if let row { try txn.put(book, symbol, row) } else { _ = try txn.delete(book, symbol) }
        }
        for (key, value) in c.meta {
            if let value { try txn.put(meta, key, value) } else { _ = try txn.delete(meta, key) }
        }
    }

    /// The last journal `seq` and event id.
    public func lastKeys() throws -> (seq: UInt64, event: UInt64) {
        try run("read the last keys") {
            try environment.read { txn in
                let seq = try lastSeq(txn)
                let event = try txn.withCursor(events) { c in try c.last().flatMap { decodeBigEndianUInt64($0.key) } }
                return (seq ?? 0, event ?? 0)
            }
        }
    }

    /// The first journal `seq` inside `txn`.
    /// - Throws: `LMDBError`.
    public func firstSeq(_ txn: borrowing Transaction) throws -> UInt64? {
        try txn.withCursor(journal) { c in try c.first().flatMap { decodeBigEndianUInt64($0.key) } }
    }

    // MARK: - The hot store's identity

    /// The boot and state directory the hot store was built for (`meta/boot_id`, `meta/state_dir`).
    public func identity() throws -> (bootId: String?, stateDir: String?) {
        try run("read the hot store's identity") {
            try environment.read { txn in
                let boot = try txn.get(meta, "boot_id").flatMap { try? JSON.parse($0)["boot_id"]?.string }
                let dir = try txn.get(meta, "state_dir").flatMap { try? JSON.parse($0)["state_dir"]?.string }
                return (boot, dir)
            }
        }
    }

    /// Rebuilds this (hot, empty) store from `durable`: after a reboot, or when the hot store was missing
    /// or made for another state directory. Copies the meta records (the kill switch included), the book,
    /// the journal's newest `tailRows` rows, and makes `latest` (and its TTL index) from the journal's
    /// decisions still within their TTL, newest first; then stamps the boot and state directory.
    /// - Returns: how many journal rows were read and how many latest decisions restored.
    public func rebuild(from durable: GateStore, bootId: String, stateDir: String, now: Double, tailRows: Int)
        throws -> (journal: Int, latest: Int)
    {
        var journalRows = 0
        var latestRows = 0
        try run("rebuild the hot store") {
            let txn = try environment.beginWrite()
            try durable.environment.read { src in
                for key in Self.replicatedMeta + ["kill_switch"] {
                    if let v = try src.get(durable.meta, key) { try txn.put(meta, key, v) }
                }
                try src.withCursor(durable.book) { c in
                    var entry = try c.first()
                    while let (k, v) = entry {
                        try txn.put(book, k, v)
                        entry = try c.next()
                    }
                }
                // Newest first: the tail for gap fills and the latest decision of each symbol.
                var seen = Set<SymbolKey>()
                var tail: [(UInt64, [UInt8])] = []
                try src.withCursor(durable.journal) { c in
                    var entry = try c.last()
                    var pastTTL = 0
                    while let (k, v) = entry, let seq = decodeBigEndianUInt64(k) {
                        journalRows += 1
                        if tail.count < tailRows { tail.append((seq, Array(v))) }
                        if let r = Self.latestCandidate(v), r.expiresAt > now {
                            if seen.insert(r.symbol).inserted {
                                try r.symbol.withBytes { sym in
                                    try txn.put(latest, sym, v)
                                    _ = try Self.withTTLKey(r.expiresAt, sym) { key in
                                        try withBigEndianKey(seq) { value in try txn.put(ttl, key, value) }
                                    }
                                }
                                latestRows += 1
                            }
                            pastTTL = 0
                        } else {
                            pastTTL += 1
                        }
                        // Once the tail is copied and a long run of rows is past its TTL, older rows are
                        // too (TTLs are one setting, so the journal is in expiry order but for reloads).
                        if tail.count == tailRows && pastTTL > 4096 { break }
                        entry = try c.prev()
                    }
                }
                for (seq, json) in tail.reversed() {
                    _ = try withBigEndianKey(seq) { key in try txn.put(journal, key, json, flags: .append) }
                }
                // seq: the journal is the truth, as in restore.
                if let last = try durable.lastSeq(src) {
                    let stored = try src.get(durable.meta, "seq").flatMap { try? JSON.parse($0)["next_seq"]?.number }
                    if UInt64(stored ?? 0) <= last { try txn.put(meta, "seq", #"{"next_seq":\#(last + 1)}"#) }
                }
            }
            try txn.put(meta, "schema", #"{"schema_version":\#(Self.schemaVersion)}"#)
            try putIdentity(txn, bootId: bootId, stateDir: stateDir)
            try txn.commit()
        }
        return (journalRows, latestRows)
    }

    /// Stamps the hot store with this boot and its state directory.
    public func putIdentity(_ txn: borrowing Transaction, bootId: String, stateDir: String) throws {
        var w = JSONWriter(capacity: 256)
        w.raw("{\"boot_id\":")
        w.string(bootId)
        w.byte(UInt8(ascii: "}"))
        _ = try w.bytes.withUnsafeBytes { try txn.put(meta, "boot_id", $0) }
        w.reset()
        w.raw("{\"state_dir\":")
        w.string(stateDir)
        w.byte(UInt8(ascii: "}"))
        _ = try w.bytes.withUnsafeBytes { try txn.put(meta, "state_dir", $0) }
    }

    /// A journaled decision that may be a symbol's latest: not a hold for the kill switch or staleness.
    static func latestCandidate(_ v: UnsafeRawBufferPointer) -> (symbol: SymbolKey, expiresAt: Double)? {
        guard var it = try? JSONObjectIterator(v) else { return nil }
        var symbol: SymbolKey?
        var expires: Double?
        while let m = try? it.next() {
            if v.equals(m.key, "symbol"), m.value.kind == .string, !m.value.hasEscapes {
                symbol = SymbolKey(bytes: v, range: m.value.content)
            } else if v.equals(m.key, "reason") {
                if v.equals(m.value.content, "kill_switch") || v.equals(m.value.content, "proposal_stale") {
                    return nil
                }
            } else if v.equals(m.key, "expires_at") {
                expires = m.value.kind == .number ? parseDouble(v, m.value.range) : nil
                break
            }
        }
        guard let symbol, let expires else { return nil }
        return (symbol, expires)
    }

    /// Trims the hot store's journal and events from the head, within `txn`: rows the durable store
    /// already holds (`seq ≤ durableSeq`, `id ≤ durableEvent`) beyond the newest `keep`, at most `limit`.
    /// - Returns: rows removed of each, and whether more could go.
    public func trimTail(
        _ txn: borrowing Transaction, keep: Int, durableSeq: UInt64, durableEvent: UInt64, limit: Int
    ) throws -> (decisions: Int, events: Int, more: Bool) {
        var more = false
        func trim(_ db: Database, upTo: UInt64) throws -> Int {
            var excess = try txn.stat(db).entries - keep
            guard excess > 0 else { return 0 }
            var count = 0
            try txn.withCursor(db) { c in
                var entry = try c.first()
                while let (k, _) = entry, excess > 0, let key = decodeBigEndianUInt64(k), key <= upTo {
                    if count == limit {
                        more = true
                        break
                    }
                    try c.deleteCurrent()
                    count += 1
                    excess -= 1
                    entry = try c.next()
                }
            }
            return count
        }
        let d = try trim(journal, upTo: durableSeq)
        let e = try trim(events, upTo: durableEvent)
        return (d, e, more)
    }
}

/// Copies the hot store into the durable one, off the decision path (SPEC §5).
///
/// One thread. Each round takes one read snapshot of the hot store — journal rows and events the durable
/// store lacks, the book rows of the symbols the daemon marked changed, the counters and equity — and
/// writes them to the durable store in one transaction in LMDB's default mode: data pages flushed, then
/// the meta page, so what is on the disk is always one committed state (a power cut cannot corrupt it,
/// only lose the rounds not yet committed). Rounds run back to back while there is something to copy, so
/// the durable store trails the hot one by about one disk commit. Retention (`P26_JOURNAL_RETENTION_SEC`)
/// is swept here, in the same transactions.
///
/// When a round fails (disk full, I/O error) nothing is lost: the hot store keeps every row the durable
/// one lacks (the daemon trims only rows at or below ``durableSeq``), the changed symbols stay marked,
/// and the next round, 100 ms later, tries again. ``lagSeconds`` says how far behind it is.
public final class Replicator: @unchecked Sendable {
    public let hot: GateStore
    public let durable: GateStore
    /// Journal retention (`P26_JOURNAL_RETENTION_SEC`); the daemon may change it on reload.
    let retentionBits = Atomic<UInt64>(0)
    /// The highest journal `seq` and event id in the durable store.
    let durableSeq = Atomic<UInt64>(0)
    let durableEvent = Atomic<UInt64>(0)
    /// Hot commits so far (the daemon counts them) and those the durable store holds.
    let committed = Atomic<UInt64>(0)
    let replicated = Atomic<UInt64>(0)
    /// When the oldest hot commit the durable store lacks was made (monotonic ns; 0: none).
    let pendingSince = Atomic<UInt64>(0)
    /// Durable transactions committed, and rounds failed.
    let rounds = Atomic<UInt64>(0)
    let failures = Atomic<UInt64>(0)

    /// The highest journal `seq` and event id the durable store holds.
    public var durableLastSeq: UInt64 { durableSeq.load(ordering: .relaxed) }
    public var durableLastEvent: UInt64 { durableEvent.load(ordering: .relaxed) }
    /// Durable transactions committed, rounds failed.
    public var counts: (rounds: UInt64, failures: UInt64) {
        (rounds.load(ordering: .relaxed), failures.load(ordering: .relaxed))
    }
    /// Whether every hot commit so far is in the durable store.
    public var caughtUp: Bool { committed.load(ordering: .acquiring) == replicated.load(ordering: .acquiring) }
    let changed = Mutex<(symbols: Set<SymbolKey>, all: Bool)>(([], true))
    /// Rows per round, at most (a round after a long outage copies in pieces of this size).
    public var roundRows = 50_000

    /// - Parameters:
    ///   - hot: the hot store, written by the daemon.
    ///   - durable: the durable store, written only here.
    /// - Throws: ``StoreError`` reading the durable store's last keys.
    public init(hot: GateStore, durable: GateStore, retention: Double) throws {
        self.hot = hot
        self.durable = durable
        retentionBits.store(retention.bitPattern, ordering: .relaxed)
        let last = try durable.lastKeys()
        durableSeq.store(last.seq, ordering: .relaxed)
        durableEvent.store(last.event, ordering: .relaxed)
    }

    public var retention: Double {
        get { Double(bitPattern: retentionBits.load(ordering: .relaxed)) }
        set { retentionBits.store(newValue.bitPattern, ordering: .relaxed) }
    }

    /// Called by the daemon after each hot commit, with the symbols whose book rows it wrote or removed.
    public func committed(symbols: some Sequence<SymbolKey>) {
        changed.withLock { c in
            for s in symbols where !c.all { c.symbols.insert(s) }
            // Every symbol is at most one entry: the set is bounded by the book, however far behind.
            if c.symbols.count > 65_536 {
                c.symbols.removeAll()
                c.all = true
            }
        }
        _ = pendingSince.compareExchange(expected: 0, desired: monotonicNanos(), ordering: .relaxed)
        committed.add(1, ordering: .releasing)
    }

    /// How long the oldest hot commit the durable store lacks has waited (0 when caught up).
    public var lagSeconds: Double {
        let since = pendingSince.load(ordering: .relaxed)
        return since == 0 ? 0 : Double(monotonicNanos() &- since) / 1e9
    }

    /// One round: copies what the durable store lacks (at most ``roundRows`` rows) and sweeps retention.
    /// - Returns: whether more is waiting.
    /// - Throws: ``StoreError``; the changed symbols are kept for the next round.
    @discardableResult
    public func round(now: Double) throws -> Bool {
        let seen = committed.load(ordering: .acquiring)
        let started = monotonicNanos()
        let (symbols, all) = changed.withLock { c in
            defer { (c.symbols, c.all) = ([], false) }
            return (c.symbols, c.all)
        }
        do {
            let c = try hot.changes(
                afterSeq: durableSeq.load(ordering: .relaxed), afterEvent: durableEvent.load(ordering: .relaxed),
                symbols: symbols, fullBook: all, limit: roundRows)
            let sweep = retention
            var swept = sweep <= 0
            if !c.isEmpty || sweepDue(now) {
                for attempt in 1...8 {
                    do {
                        try durable.environment.write { txn in
                            try durable.apply(c, txn)
                            if sweep > 0 {
                                let r = try durable.sweepJournal(txn, now: now, retention: sweep, limit: 4096)
                                swept = !r.more
                            }
                        }
                        break
                    } catch let e as LMDBError where e == .mapFull && attempt < 8 {
                        // Only this thread writes the durable store; its map doubles, up to 64 GiB.
                        let size = try durable.environment.info().mapSize
                        guard size < 64 << 30 else { throw StoreError(operation: "replicate", underlying: e) }
                        try durable.setMapSize(size * 2)
                    } catch let e as LMDBError {
                        throw StoreError(operation: "replicate: write the durable store", underlying: e)
                    }
                }
                if swept { lastSweep = now }
                rounds.add(1, ordering: .relaxed)
            }
            if let last = c.journal.last { durableSeq.store(last.seq, ordering: .relaxed) }
            if let last = c.events.last { durableEvent.store(last.id, ordering: .relaxed) }
            if !c.more {
                replicated.store(seen, ordering: .releasing)
                // Caught up with every commit made before this round began; later ones wait since then.
                let pending = committed.load(ordering: .acquiring) != seen
                pendingSince.store(pending ? started : 0, ordering: .relaxed)
            }
            return c.more
        } catch {
            changed.withLock { c in
                c.all = c.all || all
                if !c.all { c.symbols.formUnion(symbols) }
            }
            failures.add(1, ordering: .relaxed)
            throw error
        }
    }

    var lastSweep = 0.0
    func sweepDue(_ now: Double) -> Bool { now - lastSweep >= 1 }

    /// Runs rounds until `stop()`: back to back while there is something to copy, every 100 ms after a
    /// failure; then, stopping, copies what is left (unless the durable store is failing).
    /// - Parameters:
    ///   - failed: called with each failed round's error.
    ///   - recovered: called after each round that committed.
    public func run(
        stop: () -> Bool, now: () -> Double, failed: (String) -> Void = { _ in }, recovered: () -> Void = {}
    ) {
        var failing = false
        while !stop() {
            let pending = !caughtUp
            guard pending || sweepDue(now()) || changed.withLock({ $0.all }) else {
                usleep(500)
                continue
            }
            do {
                try round(now: now())
                failing = false
                recovered()
            } catch {
                failing = true
                failed("\(error)")
                usleep(100_000)
            }
        }
        guard !failing else { return }
        for _ in 0..<1_000 {
            guard (try? round(now: now())) == true else { break }
        }
    }
}

/// Monotonic nanoseconds (the store module's own: it depends on no server code).
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
