internal import CLMDB

/// A cursor over one database (`MDB_cursor`), lent by `Transaction.withCursor(_:_:)`.
///
/// Each move returns the entry it lands on, or `nil` past either end. Keys and values point into the
/// map, valid as `Transaction` describes; a step costs no allocation, so a range scan is
/// `setRange(start)` then `next()` until a key passes the bound.
public struct Cursor: ~Copyable {
    /// A key and its value, both inside the memory map.
    public typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    let handle: OpaquePointer

    /// Moves to the first entry (`mdb_cursor_get` with `MDB_FIRST`).
    /// - Throws: `LMDBError`.
    public func first() throws -> Entry? {
        try position(MDB_FIRST)
    }

    /// Moves to the last entry (`MDB_LAST`).
    /// - Throws: `LMDBError`.
    public func last() throws -> Entry? {
        try position(MDB_LAST)
    }

    /// Moves to the next entry (`MDB_NEXT`); from an unpositioned cursor, the first.
    /// - Throws: `LMDBError`.
    public func next() throws -> Entry? {
        try position(MDB_NEXT)
    }

    /// Moves to the previous entry (`MDB_PREV`); from an unpositioned cursor, the last.
    /// - Throws: `LMDBError`.
    public func prev() throws -> Entry? {
        try position(MDB_PREV)
    }

    /// Returns the entry at the cursor without moving (`MDB_GET_CURRENT`).
    /// - Returns: `nil` when the entry under the cursor was deleted.
    /// - Throws: `LMDBError`: `.invalidArgument` if the cursor was never positioned.
    public func current() throws -> Entry? {
        try position(MDB_GET_CURRENT)
    }

    /// Moves to exactly `key` (`MDB_SET_KEY`).
    /// - Returns: the entry, or `nil` when `key` is absent.
    /// - Throws: `LMDBError`.
    @inlinable
    public func set(_ key: some ContiguousRawBytes) throws -> Entry? {
        try key.withRawBytes { try _set($0, range: false) }
    }

    /// Moves to the first key greater than or equal to `key` (`MDB_SET_RANGE`).
    /// - Returns: the entry, or `nil` when every key is smaller.
    /// - Throws: `LMDBError`.
    @inlinable
    public func setRange(_ key: some ContiguousRawBytes) throws -> Entry? {
        try key.withRawBytes { try _set($0, range: true) }
    }

    /// Deletes the entry at the cursor (`mdb_cursor_del`).
    ///
    /// The cursor stays in place, so the following `next()` returns the entry after the deleted one:
    /// deleting while scanning forward skips nothing.
    /// - Parameter allDuplicates: in a `.dupSort` database, delete every value of the key
    ///   (`MDB_NODUPDATA`).
    /// - Throws: `LMDBError`.
    public func deleteCurrent(allDuplicates: Bool = false) throws {
        try lmdbCall { mdb_cursor_del(handle, allDuplicates ? UInt32(MDB_NODUPDATA) : 0) }
    }

    /// Stores `value` under `key` and moves the cursor there (`mdb_cursor_put`).
    ///
    /// With `.current`, replaces the value at the cursor (the key must be the current one).
    /// - Returns: `false` only when `.noOverwrite`/`.noDupData` found the key or pair; see `Transaction.put`.
    /// - Throws: `LMDBError`.
    @inlinable
    @discardableResult
    public func put(_ key: some ContiguousRawBytes, _ value: some ContiguousRawBytes, flags: PutFlags = []) throws
        -> Bool
    {
        try key.withRawBytes { key in
            try value.withRawBytes { value in try _put(key, value, flags: flags) }
        }
    }

    func position(_ op: MDB_cursor_op, _ key: UnsafeRawBufferPointer? = nil) throws(LMDBError) -> Entry? {
        var rawKey = key.map(MDB_val.init) ?? MDB_val()
        var rawValue = MDB_val()
        guard try lmdbCall(tolerating: MDB_NOTFOUND, { mdb_cursor_get(handle, &rawKey, &rawValue, op) }) else {
            return nil
        }
        return (UnsafeRawBufferPointer(rawKey), UnsafeRawBufferPointer(rawValue))
    }

    @usableFromInline
    func _set(_ key: UnsafeRawBufferPointer, range: Bool) throws(LMDBError) -> Entry? {
        try position(range ? MDB_SET_RANGE : MDB_SET_KEY, key)
    }

    @usableFromInline
    func _put(
        _ key: UnsafeRawBufferPointer,
        _ value: UnsafeRawBufferPointer,
        flags: PutFlags
    ) throws(LMDBError) -> Bool {
        var rawKey = MDB_val(key)
        var rawValue = MDB_val(value)
        return try lmdbCall(tolerating: flags.tolerated) { mdb_cursor_put(handle, &rawKey, &rawValue, flags.rawValue) }
    }
}
