import HeatGateCore
import HeatGateStore
import LMDB
import Synchronization

/// What the Apply Layer must execute for a proposal (SPEC §5, the fail-open rule).
public enum Resolution: Equatable, Sendable {
    /// Use this decision's `action`.
    case useDecision(action: String, decision: String)
    /// Execute the proposal as it stands, and why.
    case useOriginal(reason: OriginalReason)
    /// The kill switch is on: execute nothing.
    case killSwitch(reason: String)

    public enum OriginalReason: String, Sendable {
        /// No decision for the symbol (never decided, swept, or the gate has no store yet).
        case noDecision = "no_decision"
        /// The latest decision's `expires_at` has passed.
        case expired
        /// The latest decision is for another `plan_id`: a calibration for an older proposal never shadows
        /// a newer one.
        case otherPlan = "other_plan"
        /// The latest decision is for this `plan_id` but another action (the plan was revised, say from a
        /// full close to a 25 % exit): its action must not be applied to this one.
        case otherAction = "other_action"
    }

    /// The action to execute for a proposal whose own action is `original`; `nil` means execute nothing.
    public func action(original: String) -> String? {
        switch self {
        case .useDecision(let action, _): action
        case .useOriginal: original
        case .killSwitch: nil
        }
    }
}

/// The Apply Layer's read contract, reading the store directly (no daemon needed), and the journal reads
/// a ``DecisionSubscriber`` fills gaps with.
///
/// Open one per process and state directory, and keep it: lmdb.h warns that opening one environment
/// twice in a process breaks its locks when either copy closes, so a subscriber in the same process
/// takes this object rather than opening its own. It is `Sendable`: every read goes through one parked
/// read transaction (`mdb_txn_renew`/`mdb_txn_reset`) behind a mutex, so a lookup costs one reader renew,
/// two `mdb_get`s and a scan of one JSON object — no allocation but the returned decision's copy.
///
/// A gate that is down or slow never blocks an exit: every miss resolves to "execute the original".
/// When the daemon grows its map (`MDB_MAP_RESIZED`), the reader adopts the new size and retries.
public final class DecisionLookup: Sendable {
    /// When the store is opened.
    public enum Opening: Sendable {
        /// In the initialiser, which throws when there is no readable store.
        case now
        /// At the first read, and again at every read until it succeeds (for a client that may start
        /// before the gate ever ran). Reads throw while there is no store.
        case lazily
    }

    /// The gate's state directory: the durable store (SPEC §5), read for the kill switch when the hot
    /// store is missing, and for gap fills older than the hot store's tail.
    public let stateDir: String
    /// The hot store's directory (`P26_RUN_DIR`), where decisions and the kill switch are read.
    public let runDir: String
    let mapSizeMB: Int
    let state = Mutex(ReaderState())

    /// One store and its parked reader.
    struct Slot {
        var store: GateStore?
        var reader: ParkedReader?
    }

    struct ReaderState {
        var hot = Slot()
        var durable = Slot()
        var mapResizes = 0
    }

    /// How many times the reader adopted a map the daemon had grown (`MDB_MAP_RESIZED`).
    public var mapResizesAdopted: Int { state.withLock { $0.mapResizes } }

    /// Owns one parked read transaction (`ReadTransaction` is `~Copyable`; a class lets it sit in an
    /// optional behind the mutex).
    ///
    /// `@unchecked Sendable` because it is only ever touched under ``state``'s lock, and the environment
    /// has `MDB_NOTLS`, so the reader may be renewed on whichever thread holds the lock.
    final class ParkedReader: @unchecked Sendable {
        let transaction: ReadTransaction
        init(_ environment: Environment) throws {
            transaction = try environment.makeReadTransaction()
        }
    }

    /// Opens the store in `stateDir` read-only.
    ///
    /// - Parameters:
    ///   - stateDir: `P26_STATE_DIR` of the gate.
    ///   - mapSizeMB: 0 (the default) maps as much as the store holds now; the reader follows the
    ///     daemon's growth through `MDB_MAP_RESIZED` either way.
    ///   - opening: ``Opening/now`` (the default) or ``Opening/lazily``.
    /// - Throws: ``StoreError`` when opening now and there is no readable store there.
    ///   - runDir: `P26_RUN_DIR` of the gate; `nil` takes the one the gate last ran with
    ///     (`<stateDir>/run_dir`), else derives it as the gate does (``StorePaths/readerRunDir(stateDir:)``).
    public init(stateDir: String, runDir: String? = nil, mapSizeMB: Int = 0, opening: Opening = .now) throws {
        self.stateDir = stateDir
        self.runDir = runDir ?? StorePaths.readerRunDir(stateDir: stateDir)
        self.mapSizeMB = mapSizeMB
        if opening == .now {
            do {
                try read("open") { _, _ in () }
            } catch {
                // No hot store (the gate is down after a reboot, say): the durable one still answers for
                // the kill switch. When neither opens, the durable store's error names the cause (a
                // missing hot store is the usual case and says less).
                _ = try durableKillSwitch()
            }
        }
    }

    /// The durable store's kill switch: what readers honour while the hot store is missing.
    /// - Throws: ``StoreError`` when the durable store cannot be read either.
    public func durableKillSwitch() throws -> KillSwitchState {
        try withDurable("read the durable kill switch") { store, txn in try store.killSwitchState(txn) }
    }

    func withDurable<R: Sendable>(
        _ operation: String, _ body: (GateStore, borrowing Transaction) throws -> R
    ) throws -> R {
        try read(operation, \.durable, directory: stateDir, body)
    }

    /// Resolves a proposal for `symbol` with `planId` and `action` to the action to execute (SPEC §5).
    ///
    /// The kill switch and the latest decision are read in one snapshot. The decision's `action` is used
    /// only when the record exists, `now < expires_at`, its `plan_id` is `planId` and its
    /// `original_action`, normalised (SPEC §2), is `action` normalised.
    /// - Parameters:
    ///   - symbol: the proposal's symbol.
    ///   - planId: the proposal's `plan_id`, or for a proposal without one the id the gate derives
    ///     (``PlanIdentity/key(ofProposal:)``, or ``lookup(proposal:now:)`` which does it).
    ///   - action: the proposal's action token, as the producer wrote it.
    ///   - now: the clock, epoch seconds.
    /// - Returns: ``Resolution``.
    /// - Throws: ``StoreError`` when the store cannot be read; the caller then executes the original.
    public func lookup(symbol: String, planId: String, action: String, now: Double) throws -> Resolution {
        try withKillFallback {
            try hotLookup(symbol: symbol, planId: planId, action: action, now: now)
        }
    }

    /// When the hot store cannot be read, the durable kill switch still stops exits; otherwise the error
    /// stands and the caller executes the original.
    func withKillFallback(_ body: () throws -> Resolution) throws -> Resolution {
        do {
            return try body()
        } catch {
            if let kill = try? durableKillSwitch(), kill.on {
                return .killSwitch(reason: kill.unreadable ? "unreadable kill-switch record" : kill.reason)
            }
            throw error
        }
    }

    func hotLookup(symbol: String, planId: String, action: String, now: Double) throws -> Resolution {
        try read("lookup") { store, txn in
            let kill = try store.killSwitchState(txn)
            if kill.on { return .killSwitch(reason: kill.unreadable ? "unreadable kill-switch record" : kill.reason) }
            guard let bytes = try store.latestDecision(txn, symbol: symbol) else {
                return .useOriginal(reason: .noDecision)
            }
            return Self.resolve(bytes, planId: planId, action: action, now: now)
        }
    }

    /// Resolves a proposal given as the JSON object the producer sent: its symbol, plan id (derived as the
    /// gate derives it when it has none) and action are read as the gate reads them.
    /// - Throws: ``Rejection`` when the gate would refuse the proposal (it was never decided: execute it
    ///   as it stands), ``StoreError`` when the store cannot be read.
    public func lookup(proposal: [UInt8], now: Double) throws -> Resolution {
        let key = try PlanIdentity.key(ofProposal: proposal)
        return try lookup(symbol: key.symbol, planId: key.planId, action: key.action, now: now)
    }

    /// Applies the contract to one stored decision, scanning it in place.
    static func resolve(_ bytes: UnsafeRawBufferPointer, planId: String, action wanted: String, now: Double)
        -> Resolution
    {
        var expires: Double?
        var samePlan = false
        var sameAction = false
        var action: String?
        guard var it = try? JSONObjectIterator(bytes) else { return .useOriginal(reason: .noDecision) }
        while let m = try? it.next() {
            if bytes.equals(m.key, "expires_at") {
                expires = m.value.kind == .number ? parseDouble(bytes, m.value.range) : nil
            } else if bytes.equals(m.key, "plan_id") {
                samePlan = m.value.kind == .string && stringEquals(bytes, m.value, planId)
            } else if bytes.equals(m.key, "original_action"), m.value.kind == .string {
                sameAction =
                    decodeString(bytes, m.value).map {
                        PlanIdentity.sameAction(Array($0.utf8), Array(wanted.utf8))
                    } ?? false
            } else if bytes.equals(m.key, "action"), m.value.kind == .string {
                action = decodeString(bytes, m.value)
            }
        }
        guard let expires, now < expires else { return .useOriginal(reason: .expired) }
        guard samePlan else { return .useOriginal(reason: .otherPlan) }
        guard sameAction else { return .useOriginal(reason: .otherAction) }
        guard let action else { return .useOriginal(reason: .noDecision) }
        return .useDecision(action: action, decision: String(decoding: bytes, as: UTF8.self))
    }

    /// The stored kill switch.
    /// - Throws: ``StoreError``.
    public func killSwitch() throws -> KillSwitchState {
        do {
            return try read("read kill switch") { store, txn in try store.killSwitchState(txn) }
        } catch {
            guard let kill = try? durableKillSwitch() else { throw error }
            return kill
        }
    }

    /// The latest decision of a symbol, as stored (the SPEC §4 JSON).
    /// - Throws: ``StoreError``.
    public func latestDecision(symbol: String) throws -> [UInt8]? {
        try read("read latest") { store, txn in try store.latestDecision(txn, symbol: symbol).map { Array($0) } }
    }

    /// Journaled decisions with `seq` in `from...`, at most `limit`, in order.
    /// - Throws: ``StoreError``.
    ///
    /// The hot store keeps the newest rows; older ones come from the durable store.
    public func decisions(from: UInt64, limit: Int) throws -> [(seq: UInt64, json: [UInt8])] {
        let hot = try? read("read journal") { store, txn in
            (first: try store.firstSeq(txn), rows: try store.decisions(txn, from: from, limit: limit))
        }
        if let hot, let first = hot.first, first <= from { return hot.rows }
        var out = try withDurable("read the durable journal") { store, txn in
            try store.decisions(txn, from: from, limit: limit)
        }
        if let first = hot?.first { out.removeAll { $0.seq >= first } }
        if let hot, out.count < limit { out.append(contentsOf: hot.rows.prefix(limit - out.count)) }
        return out
    }

    /// The highest journaled `seq`, `nil` when the journal is empty.
    /// - Throws: ``StoreError``.
    public func lastSeq() throws -> UInt64? {
        if let hot = try? read("read journal", { store, txn in try store.lastSeq(txn) }) { return hot }
        return try withDurable("read the durable journal") { store, txn in try store.lastSeq(txn) }
    }

    /// Runs `body` on a fresh snapshot of the hot store through its parked reader, opening it first if needed.
    func read<R: Sendable>(
        _ operation: String, _ body: (GateStore, borrowing Transaction) throws -> R
    ) throws -> R {
        try read(operation, \.hot, directory: runDir, body)
    }

    /// Runs `body` on a fresh snapshot through the parked reader of one store (hot or durable), opening
    /// the store first if needed.
    ///
    /// `MDB_MAP_RESIZED` (the daemon grew the map past ours) is LMDB's cue to adopt the new size:
    /// `mdb_env_set_mapsize(0)` with no transaction of ours active — true here, behind the mutex — then
    /// a new reader and a retry.
    func read<R: Sendable>(
        _ operation: String, _ slot: WritableKeyPath<ReaderState, Slot>, directory: String,
        _ body: (GateStore, borrowing Transaction) throws -> R
    ) throws -> R {
        try state.withLock { s in
            var attempt = 0
            while true {
                attempt += 1
                let store: GateStore
                if let open = s[keyPath: slot].store {
                    store = open
                } else {
                    store = try GateStore(directory: directory, mapSizeMB: mapSizeMB, readOnly: true)
                    s[keyPath: slot].store = store
                }
                do {
                    if s[keyPath: slot].reader == nil { s[keyPath: slot].reader = try ParkedReader(store.environment) }
                    return try s[keyPath: slot].reader!.transaction.read { txn in try body(store, txn) }
                } catch let e as LMDBError {
                    guard e == .mapResized, attempt < 4 else {
                        throw StoreError(operation: operation, underlying: e)
                    }
                    s[keyPath: slot].reader = nil
                    s.mapResizes += 1
                    do {
                        try store.environment.setMapSize(0)
                    } catch let e as LMDBError {
                        throw StoreError(operation: "\(operation) (adopting the grown map)", underlying: e)
                    }
                }
            }
        }
    }
}

/// Whether a JSON string value equals `s`, without allocating when it has no escapes.
func stringEquals(_ bytes: UnsafeRawBufferPointer, _ v: JSONValue, _ s: String) -> Bool {
    if !v.hasEscapes {
        var s = s
        return s.withUTF8 { u in
            u.count == v.content.count && UnsafeRawBufferPointer(rebasing: bytes[v.content]).elementsEqual(u)
        }
    }
    guard let raw = unescapeJSONString(bytes, v.content) else { return false }
    return raw.elementsEqual(s.utf8)
}

/// A JSON string value as a `String`.
func decodeString(_ bytes: UnsafeRawBufferPointer, _ v: JSONValue) -> String? {
    if !v.hasEscapes { return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[v.content]), as: UTF8.self) }
    return unescapeJSONString(bytes, v.content).map { String(decoding: $0, as: UTF8.self) }
}
