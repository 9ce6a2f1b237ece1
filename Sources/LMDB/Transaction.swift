internal import CLMDB

/// A handle to a database (`MDB_dbi`) inside an environment: the main one or a named one.
///
/// Open each database once, at start, and share the handle: it stays valid for every later
/// transaction of the environment (lmdb.h: `mdb_dbi_open` must not run in two transactions at once).
public struct Database: Sendable, Hashable {
    /// The raw `MDB_dbi`.
    public let rawValue: UInt32

    /// Options for `mdb_dbi_open`.
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `MDB_CREATE`: create the database if it does not exist (write transactions only).
        public static let create = Flags(rawValue: UInt32(MDB_CREATE))
        /// `MDB_INTEGERKEY`: keys are native-endian `UInt32` or `Int` (`size_t`) integers.
        public static let integerKey = Flags(rawValue: UInt32(MDB_INTEGERKEY))
        /// `MDB_DUPSORT`: a key may hold several sorted values.
        public static let dupSort = Flags(rawValue: UInt32(MDB_DUPSORT))
        /// `MDB_REVERSEKEY`: compare keys from their last byte to their first.
        public static let reverseKey = Flags(rawValue: UInt32(MDB_REVERSEKEY))
    }
}

/// Options for `mdb_put` and `mdb_cursor_put`.
public struct PutFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `MDB_NOOVERWRITE`: keep an existing value; the put returns `false` instead of writing.
    public static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// `MDB_NODUPDATA`: in a `.dupSort` database, skip an existing key/value pair; the put returns `false`.
    public static let noDupData = PutFlags(rawValue: UInt32(MDB_NODUPDATA))
    /// `MDB_CURRENT`: (cursor) replace the value at the cursor; the key must be the current one.
    public static let current = PutFlags(rawValue: UInt32(MDB_CURRENT))
    /// `MDB_APPEND`: the key sorts after every existing key; a fast bulk load. Out of order throws `.keyExist`.
    public static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
    /// `MDB_APPENDDUP`: as `.append`, for values of one key in a `.dupSort` database.
    public static let appendDup = PutFlags(rawValue: UInt32(MDB_APPENDDUP))

    /// The code that means "already there" rather than failure: `MDB_KEYEXIST` when the caller asked
    /// not to overwrite.
    var tolerated: Int32 {
        isDisjoint(with: [.noOverwrite, .noDupData]) ? MDB_SUCCESS : MDB_KEYEXIST
    }
}

extension MDB_val {
    init(_ bytes: UnsafeRawBufferPointer) {
        // LMDB never writes through a key or value it is given; the C type is just not const.
        self.init(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
    }
}

extension UnsafeRawBufferPointer {
    init(_ value: MDB_val) {
        self.init(start: value.mv_data, count: value.mv_size)
    }
}

/// An LMDB transaction (`MDB_txn`), read-only or read-write.
///
/// Non-copyable, so exactly one owner ends it: `commit()`, `abort()`, or dropping it (which aborts).
/// The closure forms `Environment.read(_:)` and `Environment.write(_:)` lend it as `borrowing`, so it
/// cannot outlive them. It is not `Sendable`: LMDB ties a transaction to one thread.
///
/// Values returned as `UnsafeRawBufferPointer` point into the memory map, with no copy. They stay
/// valid until the transaction ends, and in a write transaction only until the next write to the
/// same database; copy them (`getBytes`) to keep them longer. Never write through them.
public struct Transaction: ~Copyable {
    let handle: OpaquePointer
    /// Keeps the environment open while the transaction lives (closing it under a live transaction
    /// is undefined). Unmanaged because `discard self` requires trivially destroyed fields.
    let environment: Unmanaged<Environment>

    init(_ environment: Environment, readOnly: Bool) throws(LMDBError) {
        var begun: OpaquePointer?
        try lmdbCall { mdb_txn_begin(environment.handle, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &begun) }
        guard let begun else { throw LMDBError.noMemory }
        self.handle = begun
        self.environment = .passRetained(environment)
    }

    deinit {
        mdb_txn_abort(handle)
        environment.release()
    }

    /// Commits the transaction (`mdb_txn_commit`). The transaction is over even if this throws.
    /// - Throws: `LMDBError`, for example `.mapFull`, `.noSpace` or `.ioError`.
    public consuming func commit() throws {
        let handle = self.handle
        let environment = self.environment
        discard self
        defer { environment.release() }
        try lmdbCall { mdb_txn_commit(handle) }
    }

    /// Abandons every change of the transaction (`mdb_txn_abort`).
    public consuming func abort() {
        let handle = self.handle
        let environment = self.environment
        discard self
        mdb_txn_abort(handle)
        environment.release()
    }

    /// The transaction's id (`mdb_txn_id`): for a read transaction, the snapshot it sees.
    public var id: Int {
        mdb_txn_id(handle)
    }

    /// Opens a database (`mdb_dbi_open`).
    ///
    /// A read-only transaction can open an existing database (without `.create`), which is how a
    /// read-only client finds the tables. The handle outlives the transaction only if it commits.
    /// - Parameters:
    ///   - name: a named database (needs `maxDatabases` > 0), or `nil` for the main database.
    ///   - flags: `.create` (the default) and the database's key options.
    /// - Throws: `LMDBError`: `.notFound` if it does not exist and `.create` was not given, `.dbsFull`,
    ///   `.incompatible` if the flags disagree with the stored database.
    public func openDatabase(_ name: String?, flags: Database.Flags = [.create]) throws -> Database {
        var dbi: MDB_dbi = 0
        if let name {
            try lmdbCall { mdb_dbi_open(handle, name, flags.rawValue, &dbi) }
        } else {
            try lmdbCall { mdb_dbi_open(handle, nil, flags.rawValue, &dbi) }
        }
        return Database(rawValue: dbi)
    }

    /// Looks up `key` without copying (`mdb_get`).
    ///
    /// - Returns: the value inside the map, valid until the transaction ends or (in a write
    ///   transaction) the next write; `nil` when the key is absent.
    /// - Throws: `LMDBError`, for example `.badValSize` for an empty key.
    @inlinable
    public func get(_ db: Database, _ key: some ContiguousRawBytes) throws -> UnsafeRawBufferPointer? {
        try key.withRawBytes { try _get(db, $0) }
    }

    /// Looks up `key` and copies the value out (`mdb_get`), for callers that keep it.
    /// - Throws: `LMDBError`.
    @inlinable
    public func getBytes(_ db: Database, _ key: some ContiguousRawBytes) throws -> [UInt8]? {
        try get(db, key).map { Array($0) }
    }

    /// Stores `value` under `key` (`mdb_put`).
    ///
    /// - Returns: `true` when written; `false` only when `.noOverwrite` (or `.noDupData`) was given and
    ///   the key (or pair) was already there, in which case nothing changed. Any other `MDB_KEYEXIST`,
    ///   such as `.append` out of order, throws.
    /// - Throws: `LMDBError`: `.mapFull` (abort, `setMapSize`, retry), `.txnFull`, `.badValSize`,
    ///   `.permissionDenied` in a read-only transaction.
    @inlinable
    @discardableResult
    public func put(
        _ db: Database,
        _ key: some ContiguousRawBytes,
        _ value: some ContiguousRawBytes,
        flags: PutFlags = []
    ) throws -> Bool {
        try key.withRawBytes { key in
            try value.withRawBytes { value in try _put(db, key, value, flags: flags) }
        }
    }

    /// Reserves `count` bytes under `key` and lets `fill` encode the value in place (`mdb_put` with
    /// `MDB_RESERVE`), saving the copy from a staging buffer.
    ///
    /// `fill` must write every byte; the buffer is valid only during the call. Not for `.dupSort`
    /// databases. If `fill` throws, the reserved bytes are garbage: let the error abort the transaction.
    /// - Returns: `true` when reserved and filled; `false` when `.noOverwrite` found the key (then
    ///   `fill` is not called).
    /// - Throws: `LMDBError` (as `put`) or what `fill` throws.
    @inlinable
    @discardableResult
    public func reserve(
        _ db: Database,
        _ key: some ContiguousRawBytes,
        count: Int,
        flags: PutFlags = [],
        _ fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> Bool {
        try key.withRawBytes { try _reserve(db, $0, count: count, flags: flags, fill) }
    }

    /// Deletes `key` and all its values (`mdb_del`).
    /// - Returns: `false` when the key was not there.
    /// - Throws: `LMDBError`.
    @inlinable
    @discardableResult
    public func delete(_ db: Database, _ key: some ContiguousRawBytes) throws -> Bool {
        try key.withRawBytes { try _delete(db, $0) }
    }

    /// Returns the database's entry count, depth and pages (`mdb_stat`).
    /// - Throws: `LMDBError`.
    public func stat(_ db: Database) throws -> Statistics {
        var raw = MDB_stat()
        try lmdbCall { mdb_stat(handle, db.rawValue, &raw) }
        return Statistics(raw)
    }

    /// Empties the database, or deletes it and closes its handle (`mdb_drop`).
    /// - Parameter delete: `true` deletes the database itself; the handle must not be used afterwards.
    /// - Throws: `LMDBError`.
    public func drop(_ db: Database, delete: Bool = false) throws {
        try lmdbCall { mdb_drop(handle, db.rawValue, delete ? 1 : 0) }
    }

    /// Runs `body` with a cursor over `db` (`mdb_cursor_open`, then `mdb_cursor_close`).
    /// - Throws: `LMDBError` or what `body` throws.
    public func withCursor<R>(_ db: Database, _ body: (borrowing Cursor) throws -> R) throws -> R {
        var opened: OpaquePointer?
        try lmdbCall { mdb_cursor_open(handle, db.rawValue, &opened) }
        guard let opened else { throw LMDBError.noMemory }
        defer { mdb_cursor_close(opened) }
        return try body(Cursor(handle: opened))
    }

    // The non-generic bodies of the inlinable entry points above.

    @usableFromInline
    func _get(_ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var rawKey = MDB_val(key)
        var rawValue = MDB_val()
        guard try lmdbCall(tolerating: MDB_NOTFOUND, { mdb_get(handle, db.rawValue, &rawKey, &rawValue) }) else {
            return nil
        }
        return UnsafeRawBufferPointer(rawValue)
    }

    @usableFromInline
    func _put(
        _ db: Database,
        _ key: UnsafeRawBufferPointer,
        _ value: UnsafeRawBufferPointer,
        flags: PutFlags
    ) throws(LMDBError) -> Bool {
        var rawKey = MDB_val(key)
        var rawValue = MDB_val(value)
        return try lmdbCall(tolerating: flags.tolerated) {
            mdb_put(handle, db.rawValue, &rawKey, &rawValue, flags.rawValue)
        }
    }

    @usableFromInline
    func _reserve(
        _ db: Database,
        _ key: UnsafeRawBufferPointer,
        count: Int,
        flags: PutFlags,
        _ fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> Bool {
        var rawKey = MDB_val(key)
        var rawValue = MDB_val(mv_size: count, mv_data: nil)
        let reserved = try lmdbCall(tolerating: flags.tolerated) {
            mdb_put(handle, db.rawValue, &rawKey, &rawValue, flags.rawValue | UInt32(MDB_RESERVE))
        }
        guard reserved else { return false }
        try fill(UnsafeMutableRawBufferPointer(start: rawValue.mv_data, count: count))
        return true
    }

    @usableFromInline
    func _delete(_ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> Bool {
        var rawKey = MDB_val(key)
        return try lmdbCall(tolerating: MDB_NOTFOUND) { mdb_del(handle, db.rawValue, &rawKey, nil) }
    }
}

/// A long-lived read transaction for a hot read path, parked between uses.
///
/// Beginning a read transaction allocates and claims a reader slot; `renew()` and `reset()` reuse
/// both (`mdb_txn_renew`, `mdb_txn_reset`). A parked (reset) reader holds no snapshot, so it does not
/// stop writers from reusing pages; an active one does, so keep each use short. It starts parked.
///
/// Unless the environment has `.noTLS`, a thread may have only one active read transaction: do not
/// call `Environment.read(_:)` on a thread while its reader is renewed.
public struct ReadTransaction: ~Copyable {
    /// The underlying transaction. Use it only between `renew()` and `reset()`; on a parked reader
    /// LMDB refuses reads with `.invalidArgument`.
    public let transaction: Transaction

    init(_ environment: Environment) throws(LMDBError) {
        transaction = try Transaction(environment, readOnly: true)
        mdb_txn_reset(transaction.handle)
    }

    /// Releases the snapshot and parks the reader (`mdb_txn_reset`). Pointers read from it become
    /// invalid. Resetting a parked reader does nothing.
    public func reset() {
        mdb_txn_reset(transaction.handle)
    }

    /// Takes a fresh snapshot of the latest commit (`mdb_txn_renew`).
    /// - Throws: `LMDBError`: `.invalidArgument` if the reader is already active, `.readersFull`,
    ///   `.mapResized`.
    public func renew() throws {
        try lmdbCall { mdb_txn_renew(transaction.handle) }
    }

    /// Renews the reader, runs `body` on the latest snapshot and parks it again, even if `body`
    /// throws. Pointers obtained inside are invalid once `body` returns.
    /// - Throws: `LMDBError` from `renew()` or what `body` throws.
    public func read<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        try renew()
        defer { reset() }
        return try body(transaction)
    }
}
