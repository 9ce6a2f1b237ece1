import HeatGateCore
import LMDB
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The kill switch as stored: whether it is on, why, and since when.
public struct KillSwitchState: Equatable, Sendable {
    public var on: Bool
    public var reason: String
    public var ts: Double
    /// The stored record could not be read; it then counts as on.
    public var unreadable: Bool

    public init(on: Bool, reason: String = "", ts: Double = 0, unreadable: Bool = false) {
        self.on = on
        self.reason = reason
        self.ts = ts
        self.unreadable = unreadable
    }
}

/// What the daemon needs back after a restart.
public struct RestoredState: Sendable {
    public var nextSeq: UInt64 = 1
    public var nextEvent: UInt64 = 1
    public var killSwitch = KillSwitchState(on: false)
    public var equity: (value: Double, ts: Double)?
    public var symbols: [SymbolSnapshot] = []
    /// The rollback guard's trip, if it tripped and no `mode enforce` has cleared it since.
    public var guardTrip: GuardTrip?
    /// Unexpired latest decisions, so a `plan_id` decided before the restart is not decided twice.
    public var recentPlans: [(planKey: UInt64, seq: UInt64, expiresAt: Double)] = []
}

/// Where a write failed, for `p26_store_write_failures_total` and the log.
public struct StoreError: Error, CustomStringConvertible {
    public var operation: String
    public var underlying: LMDBError

    public var description: String { "store \(operation) failed: \(underlying)" }

    public init(operation: String, underlying: LMDBError) {
        self.operation = operation
        self.underlying = underlying
    }
}

/// The LMDB schema of SPEC §5 (documented in `docs/store.md`).
///
/// One environment, seven named databases, every value documented JSON:
///
/// | database | key | value |
/// |---|---|---|
/// | `meta` | `schema`, `seq`, `event_seq`, `kill_switch`, `equity` | small JSON objects |
/// | `book` | symbol | `{"symbol","notional_usd","sigma","price","ts"}` |
/// | `latest` | symbol | the latest decision of the symbol (SPEC §4 JSON) |
/// | `ttl` | big-endian `expires_at` ms ‖ symbol | empty: the sweep's index into `latest` |
/// | `journal` | big-endian `seq` | every decision (SPEC §4 JSON) |
/// | `events` | big-endian event id | `{"id","ts","kind","message"}`: every state change |
///
/// The store knows nothing of sockets; the daemon writes it on one thread (LMDB allows one writer).
public final class GateStore: @unchecked Sendable {
    public static let schemaVersion = 1

    public let environment: Environment
    public let directory: String
    let meta: Database
    let book: Database
    let latest: Database
    let ttl: Database
    let journal: Database
    let events: Database
    public let readOnly: Bool
    /// The hot store (`MDB_WRITEMAP|MDB_NOSYNC`, on a memory-backed directory).
    public let hot: Bool
    /// Serialises `setMapSize` (the writer growing the map) with what another thread of the process does
    /// on the environment meanwhile — the replicator's reads of the hot store, the daemon's reads of the
    /// durable one, a flush: LMDB remaps on resize, and allows it only with no transaction of the process
    /// open.
    let mapLock = Mutex<Int>(0)

    /// Opens (creating when needed) the store in `directory`.
    ///
    /// - Parameters:
    ///   - directory: the store's directory; created with mode 0750 when missing.
    ///   - mapSizeMB: the map size (the most the store may grow to before the daemon grows it).
    ///   - readOnly: open for reading only, as `heatgate get` and the Apply Layer do.
    ///   - durable: `true` (the durable store of SPEC §5, and the CLI's rare writes such as the kill
    ///     switch) commits in LMDB's default, crash-safe mode: data pages flushed, then the meta page.
    ///     `false` (the hot store, on a memory-backed directory) writes through the memory map
    ///     (`MDB_WRITEMAP|MDB_NOSYNC`) and flushes nothing: a commit is a few memory writes, safe against a
    ///     crash of the process, and lost with the host — the durable store, written off the decision
    ///     path by ``Replicator``, is what survives that.
    /// - Throws: ``StoreError`` naming the path.
    ///   - hot: with `durable` false, the daemon's hot store: written through the map, its file allocated
    ///     in full (on tmpfs). Without it a non-durable store `pwrite()`s its pages unflushed (`heatgate
    ///     replay`'s scratch store).
    public init(
        directory: String, mapSizeMB: Int = 1024, readOnly: Bool = false, durable: Bool = true, hot: Bool = false
    ) throws {
        self.directory = directory
        self.readOnly = readOnly
        self.hot = hot && !durable && !readOnly
        if !readOnly {
            Self.makeDirectories(directory)
            // LMDB maps lock.mdb (the reader table) and writes it at once; on a full disk a sparse page
            // there is a SIGBUS inside mdb_env_open. Allocating it first makes that an error here.
            let lock = Glibc.open(directory + "/lock.mdb", O_RDWR | O_CREAT | O_CLOEXEC, 0o660)
            if lock >= 0 {
                let err = posix_fallocate(lock, 0, 16 << 10)
                close(lock)
                if err == ENOSPC {
                    throw StoreError(
                        operation: "open \(directory): reserve the lock file (disk full)",
                        underlying: LMDBError(rawValue: err))
                }
            }
        }
        var flags: Environment.Flags = [.noTLS]
        if readOnly { flags.insert(.readOnly) }
        // The hot store lives on tmpfs: there is no writeback to wait on, so writing through the map costs
        // a memory store per byte (on a disk-backed map each flush write-protected the pages under
        // writeback and the next writes faulted: 43 000 faults/s and a p99 of 8 ms at 10 000/s).
        if !durable && !readOnly { flags.insert(.noSync) }
        if self.hot { flags.insert(.writeMap) }
        do {
            environment = try Environment(
                path: directory, mapSize: mapSizeMB << 20, maxDatabases: 8, maxReaders: 126, flags: flags,
                mode: 0o660)
        } catch let e as LMDBError {
            throw StoreError(operation: "open \(directory)", underlying: e)
        }
        if !readOnly {
            // Readers (the Apply Layer, in the daemon's group) must write LMDB's reader table in lock.mdb;
            // a service umask such as 0027 would leave it 0640 and lock them out, so set it explicitly.
            chmod(directory + "/lock.mdb", 0o660)
            // The data itself is read-only for the group: only the daemon (and root) change it.
            chmod(directory + "/data.mdb", 0o640)
        }
        func open(_ txn: borrowing Transaction, _ name: String) throws -> Database {
            try txn.openDatabase(name, flags: readOnly ? [] : [.create])
        }
        do {
            let dbs: [Database]
            if readOnly {
                dbs = try environment.read { txn in
                    try ["meta", "book", "latest", "ttl", "journal", "events"].map { try open(txn, $0) }
                }
            } else {
                dbs = try environment.write { txn in
                    let dbs = try ["meta", "book", "latest", "ttl", "journal", "events"].map { try open(txn, $0) }
                    if try txn.get(dbs[0], "schema") == nil {
                        try txn.put(dbs[0], "schema", #"{"schema_version":\#(Self.schemaVersion)}"#)
                    }
                    return dbs
                }
            }
            (meta, book, latest, ttl, journal, events) = (dbs[0], dbs[1], dbs[2], dbs[3], dbs[4], dbs[5])
        } catch let e as StoreError {
            throw StoreError(operation: "open \(directory): \(e.operation)", underlying: e.underlying)
        } catch let e as LMDBError {
            throw StoreError(
                operation: e == .notFound ? "open \(directory) (no HeatGate store there yet)" : "open \(directory)",
                underlying: e)
        }
        if self.hot { try reserveMap(mapSizeMB << 20) }
    }

    // MARK: - Restore

    /// Reads back the book, equity, switches, sequence and repeat window.
    /// - Parameter repeatLimit: the most repeat-window entries to read back (the window's capacity).
    /// - Throws: ``StoreError``.
    /// - Parameter journal: the durable store, whose journal continues this (hot) store's tail: the
    ///   repeat window reads on into it.
    public func restore(now: Double, repeatLimit: Int = Int.max, journal older: GateStore? = nil) throws
        -> RestoredState
    {
        var s = RestoredState()
        var below: UInt64?
        var done = false
        try run("restore") {
            try environment.read { txn in
                if let v = try txn.get(meta, "seq"), let n = try? JSON.parse(v)["next_seq"]?.number {
                    s.nextSeq = UInt64(n)
                }
                if let v = try txn.get(meta, "event_seq"), let n = try? JSON.parse(v)["next_event"]?.number {
                    s.nextEvent = UInt64(n)
                }
                if let v = try txn.get(meta, "kill_switch") { s.killSwitch = Self.killSwitch(from: v) }
                if let v = try txn.get(meta, "guard_trip") { s.guardTrip = Self.guardTrip(from: v) }
                if let v = try txn.get(meta, "equity"), let j = try? JSON.parse(v), let e = j["equity_usd"]?.number,
                    let ts = j["ts"]?.number
                {
                    s.equity = (e, ts)
                }
                try txn.withCursor(book) { c in
                    var entry = try c.first()
                    while let (_, value) = entry {
                        if let snapshot = Self.bookRow(value) { s.symbols.append(snapshot) }
                        entry = try c.next()
                    }
                }
                // The repeat window (SPEC §2): every decision still within its TTL, newest first from the
                // journal's tail, so a proposal decided before a restart is not decided twice. Holds for the
                // kill switch or staleness are never remembered, here as live. Bounded by the window itself.
                (below, done) = try Self.scanRepeats(txn, journal, below: nil, now: now, limit: repeatLimit, into: &s)
            }
            // The hot store keeps a tail of the journal; the durable one has what came before it.
            // Under the durable store's map lock: its replicator may be growing the map meanwhile.
            if let older, !done {
                try older.mapLock.withLock { _ in
                    try older.environment.read { txn in
                        _ = try Self.scanRepeats(
                            txn, older.journal, below: below ?? UInt64.max, now: now, limit: repeatLimit, into: &s)
                    }
                }
            }
        }
        // The journal is the truth for seq: a decision committed there is never reused.
        if let last = try lastSeq(), last >= s.nextSeq { s.nextSeq = last + 1 }
        if let older, let last = try older.mapLock.withLock({ _ in try older.lastSeq() }), last >= s.nextSeq {
            s.nextSeq = last + 1
        }
        return s
    }

    /// Reads repeat-window entries from the journal `db`, newest first, from just below `below` (`nil`: from
    /// the end) until a decision past its TTL or `limit` entries.
    /// - Returns: the lowest `seq` read, and whether the scan is complete (no older store need be read).
    static func scanRepeats(
        _ txn: borrowing Transaction, _ db: Database, below: UInt64?, now: Double, limit: Int,
        into s: inout RestoredState
    ) throws -> (lowest: UInt64?, done: Bool) {
        try txn.withCursor(db) { c in
            var entry: Cursor.Entry?
            if let below {
                entry = try withBigEndianKey(below) { try c.setRange($0) }
                entry = entry == nil ? try c.last() : try c.prev()
                if let (k, _) = entry, let seq = decodeBigEndianUInt64(k), seq >= below { entry = nil }
            } else {
                entry = try c.last()
            }
            var lowest: UInt64?
            while let (key, value) = entry {
                guard s.recentPlans.count < limit else { return (lowest, true) }
                let seq = decodeBigEndianUInt64(key)
                lowest = seq ?? lowest
                guard let record = Self.repeatRecord(value) else {
                    entry = try c.prev()
                    continue
                }
                guard record.expiresAt > now else { return (lowest, true) }
                if record.remembered, let seq {
                    s.recentPlans.append((record.key, seq, record.expiresAt))
                }
                entry = try c.prev()
            }
            return (lowest, false)
        }
    }

    /// What the repeat window needs of a journaled decision: its key (symbol, normalised original action,
    /// plan id: ``PlanIdentity/repeatKey(symbol:action:planId:)``), its expiry and whether it is remembered
    /// at all (not a hold for the kill switch or staleness).
    static func repeatRecord(_ v: UnsafeRawBufferPointer) -> (key: UInt64, expiresAt: Double, remembered: Bool)? {
        guard var it = try? JSONObjectIterator(v) else { return nil }
        var symbol: SymbolKey?
        var action: [UInt8]?
        var plan: [UInt8]?
        var expires: Double?
        var remembered = true
        func text(_ m: JSONMember) -> [UInt8]? {
            guard m.value.kind == .string else { return nil }
            return m.value.hasEscapes ? unescapeJSONString(v, m.value.content) : Array(v[m.value.content])
        }
        while let m = try? it.next() {
            let k = m.key
            if v.equals(k, "plan_id") {
                plan = text(m)
            } else if v.equals(k, "symbol") {
                symbol = text(m).flatMap { t in t.withUnsafeBytes { SymbolKey(bytes: $0, range: 0..<$0.count) } }
            } else if v.equals(k, "original_action") {
                action = text(m)
            } else if v.equals(k, "reason") {
                remembered = !(v.equals(m.value.content, "kill_switch") || v.equals(m.value.content, "proposal_stale"))
            } else if v.equals(k, "expires_at") {
                expires = m.value.kind == .number ? parseDouble(v, m.value.range) : nil
                // The encoder writes the passed-through proposal last: nothing after expires_at is needed.
                break
            }
        }
        guard let symbol, let action, let plan, let expires else { return nil }
        return (PlanIdentity.repeatKey(symbol: symbol, action: action, planId: plan), expires, remembered)
    }

    /// The kill switch as stored, by the one parser every reader uses (the daemon, `heatgate get`, the
    /// client library; the Python resolver mirrors it): on unless the record is a JSON object whose `on`
    /// is `false`. A record that cannot be read counts as on — an unreadable switch must stop exits, not
    /// release them — and says so in ``KillSwitchState/unreadable``.
    /// - Parameter withReason: `false` skips decoding the reason (the daemon's per-batch read allocates
    ///   nothing).
    public static func killSwitch(from v: UnsafeRawBufferPointer, withReason: Bool = true) -> KillSwitchState {
        var state = KillSwitchState(on: true, unreadable: true)
        guard var it = try? JSONObjectIterator(v) else { return state }
        var sawOn = false
        do {
            while let m = try it.next() {
                if v.equals(m.key, "on") {
                    sawOn = m.value.kind == .true || m.value.kind == .false
                    state.on = m.value.kind != .false
                } else if withReason, v.equals(m.key, "reason"), m.value.kind == .string {
                    state.reason =
                        (m.value.hasEscapes ? unescapeJSONString(v, m.value.content) : Array(v[m.value.content]))
                        .map { String(decoding: $0, as: UTF8.self) } ?? ""
                } else if v.equals(m.key, "ts"), m.value.kind == .number {
                    state.ts = parseDouble(v, m.value.range) ?? 0
                }
            }
        } catch {
            return KillSwitchState(on: true, unreadable: true)
        }
        if !sawOn { state.on = true }
        state.unreadable = !sawOn
        return state
    }

    // MARK: - Writes inside the daemon's batch transaction

    /// Stores one decision: the journal (by `seq`), the symbol's latest decision, and its TTL entry.
    /// - Parameter asLatest: `false` journals the decision without making it the symbol's latest (the
    ///   kill switch's holds: see ``Gate``).
    public func putDecision(
        _ txn: borrowing Transaction, seq: UInt64, symbol: SymbolKey, expiresAt: Double, json: UnsafeRawBufferPointer,
        asLatest: Bool = true
    ) throws {
        _ = try withBigEndianKey(seq) { key in try txn.put(journal, key, json, flags: .append) }
        guard asLatest else { return }
        try symbol.withBytes { sym in
            // The decision it replaces no longer needs its TTL entry: one entry per symbol, not per decision,
            // so the index stays as small as `latest` (at 10 000/s and a 300 s TTL it held 3 000 000).
            if let old = try txn.get(latest, sym), let oldExpiry = Self.expiresAt(old) {
                _ = try Self.withTTLKey(oldExpiry, sym) { key in try txn.delete(ttl, key) }
            }
            try txn.put(latest, sym, json)
            // The entry's value is the decision's seq, so the sweep can tell whether the symbol's latest
            // decision is still this one from the first bytes of the record, without reading it all.
            _ = try Self.withTTLKey(expiresAt, sym) { key in
                try withBigEndianKey(seq) { value in try txn.put(ttl, key, value) }
            }
        }
    }

    static func withTTLKey<R>(
        _ expiresAt: Double, _ symbol: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: 8 + symbol.count, alignment: 8) { buf in
            let ms = saturatingMillis((expiresAt * 1000).rounded(.up))
            withUnsafeBytes(of: ms.bigEndian) { buf.copyMemory(from: $0) }
            UnsafeMutableRawBufferPointer(rebasing: buf[8...]).copyMemory(from: symbol)
            return try body(UnsafeRawBufferPointer(buf))
        }
    }

    /// Stores one symbol's part of the book.
    public func putSymbol(_ txn: borrowing Transaction, _ s: SymbolSnapshot, scratch w: inout JSONWriter) throws {
        w.reset()
        w.raw("{\"symbol\":\"")
        s.symbol.withBytes { w.raw($0, 0..<$0.count) }
        w.raw("\",\"notional_usd\":")
        w.double(s.notional)
        w.raw(",\"sigma\":")
        w.double(s.sigma ?? .nan)
        w.raw(",\"price\":")
        w.double(s.price ?? .nan)
        w.raw(",\"ts\":")
        w.fixed(s.ts, decimals: 6)
        w.byte(UInt8(ascii: "}"))
        let bytes = w.bytes
        _ = try s.symbol.withBytes { sym in try bytes.withUnsafeBytes { try txn.put(book, sym, $0) } }
    }

    /// Stores the latest equity.
    public func putEquity(_ txn: borrowing Transaction, value: Double, ts: Double, scratch w: inout JSONWriter) throws {
        w.reset()
        w.raw("{\"equity_usd\":")
        w.double(value)
        w.raw(",\"ts\":")
        w.fixed(ts, decimals: 6)
        w.byte(UInt8(ascii: "}"))
        let bytes = w.bytes
        _ = try bytes.withUnsafeBytes { try txn.put(meta, "equity", $0) }
    }

    /// Journals one state change: the message as received, when and what kind.
    public func putEvent(
        _ txn: borrowing Transaction, id: UInt64, kind: StateChange, ts: Double, message: UnsafeRawBufferPointer,
        scratch w: inout JSONWriter
    ) throws {
        w.reset()
        w.raw("{\"id\":")
        w.uint(id)
        w.raw(",\"ts\":")
        w.fixed(ts, decimals: 6)
        w.raw(",\"kind\":")
        switch kind {
        case .position: w.raw("\"position\"")
        case .book: w.raw("\"positions\"")
        case .portfolio: w.raw("\"portfolio\"")
        case .market: w.raw("\"market\"")
        }
        w.raw(",\"message\":")
        w.raw(message, 0..<message.count)
        w.byte(UInt8(ascii: "}"))
        let bytes = w.bytes
        _ = try withBigEndianKey(id) { key in
            try bytes.withUnsafeBytes { try txn.put(events, key, $0, flags: .append) }
        }
    }

    /// Records the next `seq` and event id, in the same transaction as the decisions that used them.
    public func putCounters(_ txn: borrowing Transaction, nextSeq: UInt64, nextEvent: UInt64) throws {
        try txn.put(meta, "seq", #"{"next_seq":\#(nextSeq)}"#)
        try txn.put(meta, "event_seq", #"{"next_event":\#(nextEvent)}"#)
    }

    /// A journaled decision, read inside a transaction (for republishing a duplicate).
    public func journaled(_ txn: borrowing Transaction, seq: UInt64) throws -> UnsafeRawBufferPointer? {
        try withBigEndianKey(seq) { key in try txn.get(journal, key) }
    }

    /// Removes one symbol's book row (the engine reclaimed the symbol: no position, idle past the TTL).
    public func deleteSymbol(_ txn: borrowing Transaction, _ symbol: SymbolKey) throws {
        _ = try symbol.withBytes { sym in try txn.delete(book, sym) }
    }

    // MARK: - Reads for clients and operators

    func run<R>(_ op: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as LMDBError {
            throw StoreError(operation: op, underlying: e)
        }
    }

    /// The latest decision of a symbol, as stored.
    public func latestDecision(symbol: String) throws -> [UInt8]? {
        try run("read latest") { try environment.read { txn in try txn.getBytes(latest, symbol) } }
    }

    /// A journaled decision by `seq`.
    public func decision(seq: UInt64) throws -> [UInt8]? {
        try run("read journal") {
            try environment.read { txn in try withBigEndianKey(seq) { try txn.getBytes(journal, $0) } }
        }
    }

    /// A journaled decision by `seq`, read under the lock the map's growth takes (for the daemon, which
    /// reads the durable store while its replicator may grow it).
    public func lockedDecision(seq: UInt64) throws -> [UInt8]? {
        try mapLock.withLock { _ in try decision(seq: seq) }
    }

    /// Journaled decisions with `seq` in `from...`, at most `limit`, in order.
    public func decisions(from: UInt64, limit: Int) throws -> [(seq: UInt64, json: [UInt8])] {
        try run("read journal") {
            try environment.read { txn in
                try txn.withCursor(journal) { c in
                    var out: [(UInt64, [UInt8])] = []
                    var entry = try withBigEndianKey(from) { try c.setRange($0) }
                    while let (k, v) = entry, out.count < limit, let seq = decodeBigEndianUInt64(k) {
                        out.append((seq, Array(v)))
                        entry = try c.next()
                    }
                    return out
                }
            }
        }
    }

    // MARK: - Reads inside a caller's transaction (the client library's parked reader)

    /// The latest decision of a symbol inside `txn`, in place: valid until the transaction ends.
    /// - Throws: `LMDBError`.
    public func latestDecision(_ txn: borrowing Transaction, symbol: String) throws -> UnsafeRawBufferPointer? {
        guard !symbol.isEmpty, symbol.utf8.count <= environment.maxKeySize else { return nil }
        return try txn.get(latest, symbol)
    }

    /// The stored kill switch, inside `txn`.
    /// - Throws: `LMDBError`.
    public func killSwitchState(_ txn: borrowing Transaction) throws -> KillSwitchState {
        try txn.get(meta, "kill_switch").map { Self.killSwitch(from: $0) } ?? KillSwitchState(on: false)
    }

    /// Journaled decisions with `seq` in `from...`, at most `limit`, in order, copied out of `txn`.
    /// - Throws: `LMDBError`.
    public func decisions(_ txn: borrowing Transaction, from: UInt64, limit: Int) throws -> [(
        seq: UInt64, json: [UInt8]
    )] {
        try txn.withCursor(journal) { c in
            var out: [(UInt64, [UInt8])] = []
            out.reserveCapacity(min(limit, 1024))
            var entry = try withBigEndianKey(from) { try c.setRange($0) }
            while let (k, v) = entry, out.count < limit, let seq = decodeBigEndianUInt64(k) {
                out.append((seq, Array(v)))
                entry = try c.next()
            }
            return out
        }
    }

    /// The highest journaled `seq` inside `txn`.
    /// - Throws: `LMDBError`.
    public func lastSeq(_ txn: borrowing Transaction) throws -> UInt64? {
        try txn.withCursor(journal) { c in try c.last().flatMap { decodeBigEndianUInt64($0.key) } }
    }

    /// Calls `body` with every journaled decision, then every event, oldest first (for reports).
    public func forEachJournaled(decision: (JSON) -> Void, event: (JSON) -> Void) throws {
        try run("read journal") {
            try environment.read { txn in
                try Self.scan(txn, journal, decision)
                try Self.scan(txn, events, event)
            }
        }
    }

    static func scan(_ txn: borrowing Transaction, _ db: Database, _ body: (JSON) -> Void) throws {
        try txn.withCursor(db) { c in
            var entry = try c.first()
            while let (_, v) = entry {
                if let j = try? JSON.parse(v) { body(j) }
                entry = try c.next()
            }
        }
    }

    /// The highest journaled `seq`.
    public func lastSeq() throws -> UInt64? {
        try run("read journal") {
            try environment.read { txn in
                try txn.withCursor(journal) { c in try c.last().flatMap { decodeBigEndianUInt64($0.key) } }
            }
        }
    }

    /// The stored kill switch.
    public func killSwitch() throws -> KillSwitchState {
        try run("read kill switch") {
            try environment.read { txn in
                try txn.get(meta, "kill_switch").map { Self.killSwitch(from: $0) } ?? KillSwitchState(on: false)
            }
        }
    }

    /// Reads the kill switch inside an open transaction (the daemon checks it before every batch), with
    /// the parser every reader uses; no reason is decoded, so nothing is allocated.
    public func killSwitchFlags(_ txn: borrowing Transaction) throws -> (on: Bool, unreadable: Bool) {
        guard let v = try txn.get(meta, "kill_switch") else { return (false, false) }
        let state = Self.killSwitch(from: v, withReason: false)
        return (state.on, state.unreadable)
    }

    /// Sets the kill switch, durably: it works whether or not the daemon runs, and the daemon reads it
    /// before its next batch.
    public func setKillSwitch(_ state: KillSwitchState) throws {
        var w = JSONWriter(capacity: 128)
        w.raw("{\"on\":")
        w.bool(state.on)
        w.raw(",\"reason\":")
        w.string(state.reason)
        w.raw(",\"ts\":")
        w.fixed(state.ts, decimals: 6)
        w.byte(UInt8(ascii: "}"))
        let bytes = w.bytes
        try run("write kill switch") {
            try environment.write { txn in try bytes.withUnsafeBytes { try txn.put(meta, "kill_switch", $0) } }
            try environment.sync(force: true)
        }
    }

    /// Records the guard's trip (`nil`: cleared by `mode enforce`) in `meta/guard_trip`, so a restart keeps
    /// the gate in shadow until an operator switches it back. The replicator carries it to the durable
    /// store.
    public func setGuardTrip(_ trip: GuardTrip?) throws {
        try run("write guard trip") {
            try environment.write { txn in
                guard let t = trip else {
                    _ = try txn.delete(meta, "guard_trip")
                    return
                }
                var w = JSONWriter(capacity: 256)
                w.raw("{\"reason\":")
                w.string(t.reason.label)
                w.raw(",\"ts\":")
                w.fixed(t.ts, decimals: 6)
                w.raw(",\"last_enforced_seq\":")
                w.uint(t.lastEnforcedSeq)
                w.raw(",\"full_closes\":")
                w.uint(UInt64(max(0, t.fullCloses)))
                w.raw(",\"downgraded\":")
                w.uint(UInt64(max(0, t.downgraded)))
                w.raw(",\"inputs_bad_sec\":")
                w.double(t.inputsBadSec)
                w.raw(",\"kept_pnl_usd\":")
                w.double(t.keptPnLUSD)
                w.byte(UInt8(ascii: "}"))
                _ = try w.bytes.withUnsafeBytes { try txn.put(meta, "guard_trip", $0) }
            }
        }
    }

    /// A stored guard trip; a record that cannot be read still counts as a trip (the gate stays in shadow),
    /// with reason `downgrade_share` and zero figures.
    static func guardTrip(from v: UnsafeRawBufferPointer) -> GuardTrip {
        let j = try? JSON.parse(v)
        let reason = GuardReason.allCases.first { $0.label == j?["reason"]?.string } ?? .downgradeShare
        func n(_ k: String) -> Double {
            guard let x = j?[k]?.number, x.isFinite else { return 0 }
            return x
        }
        func whole(_ k: String) -> Int { Int(exactly: n(k).rounded(.down)) ?? 0 }
        return GuardTrip(
            reason: reason, ts: n("ts"), lastEnforcedSeq: UInt64(exactly: n("last_enforced_seq").rounded(.down)) ?? 0,
            fullCloses: whole("full_closes"), downgraded: whole("downgraded"), inputsBadSec: n("inputs_bad_sec"),
            keptPnLUSD: n("kept_pnl_usd"))
    }

    /// Entry counts, for status and tests.
    public func counts() throws -> (journal: Int, events: Int, latest: Int, ttl: Int, book: Int) {
        try run("stat") {
            try environment.read { txn in
                (
                    try txn.stat(journal).entries, try txn.stat(events).entries, try txn.stat(latest).entries,
                    try txn.stat(ttl).entries, try txn.stat(book).entries
                )
            }
        }
    }

    // MARK: - Sweeps

    /// Removes latest decisions whose `expires_at` has passed, at most `limit` TTL entries, in one short
    /// write transaction of its own.
    /// - Returns: how many latest decisions were removed, how many TTL entries, and whether more expired
    ///   entries remain.
    public func sweepExpired(now: Double, limit: Int) throws -> (removed: Int, entries: Int, more: Bool) {
        try run("sweep ttl") { try environment.write { try sweepExpired($0, now: now, limit: limit) } }
    }

    /// Removes latest decisions whose `expires_at` has passed, at most `limit` TTL entries, within `txn`
    /// (the daemon folds a chunk into a batch's own transaction: one commit for both).
    /// - Returns: how many latest decisions were removed, how many TTL entries, and whether more expired
    ///   entries remain.
    public func sweepExpired(_ txn: borrowing Transaction, now: Double, limit: Int) throws -> (
        removed: Int, entries: Int, more: Bool
    ) {
        let nowMs = saturatingMillis(now * 1000)
        var removed = 0
        var visited = 0
        var more = false
        try txn.withCursor(ttl) { c in
            var entry = try c.first()
            while let (k, v) = entry, k.count > 8,
                let expiry = decodeBigEndianUInt64(UnsafeRawBufferPointer(rebasing: k[0..<8])), expiry <= nowMs
            {
                if visited == limit {
                    more = true
                    break
                }
                visited += 1
                let symbol = UnsafeRawBufferPointer(rebasing: k[8...])
                let indexed = decodeBigEndianUInt64(v)
                // The symbol may have a newer decision: remove only the one this entry indexes.
                if let record = try txn.get(latest, symbol), Self.leadingSeq(record) == indexed {
                    try txn.delete(latest, symbol)
                    removed += 1
                }
                // LMDB leaves the cursor on the following entry after a delete; MDB_NEXT returns it.
                try c.deleteCurrent()
                entry = try c.next()
            }
        }
        return (removed, visited, more)
    }

    /// Removes journaled decisions and events older than `now - retention`, at most `limit` of each, in
    /// one short write transaction of its own.
    /// - Returns: decisions and events removed, and whether more remain.
    public func sweepJournal(now: Double, retention: Double, limit: Int) throws -> (
        decisions: Int, events: Int, more: Bool
    ) {
        try run("sweep journal") {
            try environment.write { try sweepJournal($0, now: now, retention: retention, limit: limit) }
        }
    }

    /// Removes journaled decisions and events older than `now - retention`, at most `limit` of each,
    /// within `txn`.
    /// - Returns: decisions and events removed, and whether more remain.
    public func sweepJournal(_ txn: borrowing Transaction, now: Double, retention: Double, limit: Int) throws -> (
        decisions: Int, events: Int, more: Bool
    ) {
        let cutoff = now - retention
        var more = false
        func sweep(_ db: Database) throws -> Int {
            var count = 0
            try txn.withCursor(db) { c in
                var entry = try c.first()
                while let (_, v) = entry, let ts = Self.number(v, "ts"), ts < cutoff {
                    if count == limit {
                        more = true
                        break
                    }
                    // Always from the head: MDB_GET_CURRENT on a just-deleted entry is EINVAL.
                    try c.deleteCurrent()
                    count += 1
                    entry = try c.next()
                }
            }
            return count
        }
        let decisionsRemoved = try sweep(journal)
        let eventsRemoved = try sweep(events)
        return (decisionsRemoved, eventsRemoved, more)
    }

    /// One `book` row, read with the allocation-free scanner (restart reads 10 000 of them: SPEC §10 P8).
    static func bookRow(_ v: UnsafeRawBufferPointer) -> SymbolSnapshot? {
        guard var it = try? JSONObjectIterator(v) else { return nil }
        var symbol: SymbolKey?
        var notional = 0.0
        var sigma: Double?
        var price: Double?
        var ts = 0.0
        while let m = try? it.next() {
            let k = m.key
            let number = m.value.kind == .number ? parseDouble(v, m.value.range) : nil
            if v.equals(k, "symbol"), m.value.kind == .string {
                symbol = SymbolKey(bytes: v, range: m.value.content)
            } else if v.equals(k, "notional_usd") {
                notional = number ?? 0
            } else if v.equals(k, "sigma") {
                sigma = number
            } else if v.equals(k, "price") {
                price = number
            } else if v.equals(k, "ts") {
                ts = number ?? 0
            }
        }
        guard let symbol else { return nil }
        return SymbolSnapshot(symbol: symbol, notional: notional, sigma: sigma, price: price, ts: ts)
    }

    /// The `seq` a stored decision starts with (`{"seq":N,...}`, as the encoder writes it).
    static func leadingSeq(_ v: UnsafeRawBufferPointer) -> UInt64? {
        let prefix: StaticString = "{\"seq\":"
        let n = prefix.utf8CodeUnitCount
        guard v.count > n, v.equals(0..<n, prefix) else { return nil }
        var seq: UInt64 = 0
        var i = n
        while i < v.count, v[i] >= 48, v[i] <= 57, i < n + 20 {
            seq = seq &* 10 &+ UInt64(v[i] - 48)
            i += 1
        }
        return i > n ? seq : nil
    }

    /// The `expires_at` of a stored decision, found by its member text (a string member cannot contain
    /// it unescaped, and the encoder writes it before the passed-through proposal).
    static func expiresAt(_ v: UnsafeRawBufferPointer) -> Double? {
        let needle: StaticString = ",\"expires_at\":"
        let n = needle.utf8CodeUnitCount
        guard v.count > n else { return nil }
        var at = 0
        var found = -1
        while at + n <= v.count {
            // memchr for the comma, then compare: memmem is not in Glibc's module map.
            guard let hit = memchr(v.baseAddress! + at, Int32(UInt8(ascii: ",")), v.count - n - at + 1) else { break }
            let i = v.baseAddress!.distance(to: UnsafeRawPointer(hit))
            if v.equals(i..<(i + n), needle) {
                found = i
                break
            }
            at = i + 1
        }
        guard found >= 0 else { return number(v, "expires_at") }
        let start = found + n
        var end = start
        while end < v.count, v[end] != UInt8(ascii: ","), v[end] != UInt8(ascii: "}") { end += 1 }
        return parseDouble(v, start..<end)
    }

    /// Reads one top-level number of a stored JSON object without building a tree.
    static func number(_ v: UnsafeRawBufferPointer, _ key: StaticString) -> Double? {
        guard var it = try? JSONObjectIterator(v) else { return nil }
        while let m = try? it.next() {
            if v.equals(m.key, key) {
                return m.value.kind == .number ? parseDouble(v, m.value.range) : nil
            }
        }
        return nil
    }

    /// Flushes committed writes to disk (`mdb_env_sync`): the daemon calls this every few milliseconds.
    public func sync() throws {
        try mapLock.withLock { _ in try run("sync") { try environment.sync(force: true) } }
    }

    /// Grows the map (after `MDB_MAP_FULL`); no transaction of this process may be open.
    public func setMapSize(_ bytes: Int) throws {
        if hot { try reserveMap(bytes) }
        try mapLock.withLock { size in
            try run("grow map") { try environment.setMapSize(bytes) }
            size = bytes
        }
    }

    /// Allocates the hot store's file up to `bytes`: with `MDB_WRITEMAP` LMDB writes the map in place, and a
    /// page of a sparse file that tmpfs cannot back is a `SIGBUS` at the write. Allocated here, a full
    /// tmpfs (or the unit's memory limit) is an error at open or when the map grows, never a signal, and
    /// the decision path takes no allocation faults.
    func reserveMap(_ bytes: Int) throws {
        let fd = Glibc.open(directory + "/data.mdb", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw StoreError(operation: "open \(directory)/data.mdb", underlying: LMDBError(rawValue: errno))
        }
        defer { close(fd) }
        let err = posix_fallocate(fd, 0, off_t(bytes))
        if err != 0 {
            throw StoreError(
                operation: "reserve \(bytes >> 20) MiB for the hot store in \(directory)"
                    + (err == ENOSPC ? " (no space: the tmpfs or the memory limit is full)" : ""),
                underlying: LMDBError(rawValue: err))
        }
    }

    /// `mkdir -p`, the last component 0750.
    static func makeDirectories(_ path: String) {
        if mkdir(path, 0o750) == 0 || errno == EEXIST { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/").dropLast() {
            prefix += "/" + part
            mkdir(prefix, 0o750)
        }
        mkdir(path, 0o750)
    }
}

/// Milliseconds as a TTL key: a time no clock reaches (or NaN) is clamped, never trapped on.
func saturatingMillis(_ ms: Double) -> UInt64 {
    guard ms.isFinite, ms > 0 else { return ms == .infinity ? UInt64.max : 0 }
    return ms >= 18_446_744_073_709_549_568 ? UInt64.max : UInt64(ms)
}
