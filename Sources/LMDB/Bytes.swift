/// A value whose bytes can be lent as one contiguous buffer, to use as an LMDB key or value.
///
/// A Foundation-free stand-in for `ContiguousBytes`: the hot path passes `UnsafeRawBufferPointer`
/// or a stack buffer, convenience callers pass `[UInt8]` or `String` (UTF-8, no terminator).
public protocol ContiguousRawBytes {
    /// Calls `body` with the value's bytes, valid only for the call.
    func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension UnsafeRawBufferPointer: ContiguousRawBytes {
    @inlinable
    public func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(self)
    }
}

extension UnsafeMutableRawBufferPointer: ContiguousRawBytes {
    @inlinable
    public func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(self))
    }
}

extension Array: ContiguousRawBytes where Element == UInt8 {
    @inlinable
    public func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes { try body($0) }
    }
}

extension ArraySlice: ContiguousRawBytes where Element == UInt8 {
    @inlinable
    public func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes { try body($0) }
    }
}

extension String: ContiguousRawBytes {
    @inlinable
    public func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var string = self  // withUTF8 is mutating only to make a bridged string native; ours are native
        return try string.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

extension Substring: ContiguousRawBytes {
    @inlinable
    public func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var string = self
        return try string.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

/// Calls `body` with the 8 big-endian bytes of `value`, held on the stack.
///
/// Big-endian keys sort by LMDB's default byte-wise comparison in numeric order, which is what
/// time-ordered tables (`expiry ‖ key`) need; `Database.Flags.integerKey` would sort native-endian
/// integers but cannot take a suffix.
@inlinable
public func withBigEndianKey<R>(_ value: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeBytes(of: value.bigEndian) { try body($0) }
}

/// Calls `body` with the key `prefix (8 bytes, big-endian) ‖ suffix`, built in a temporary buffer.
///
/// The buffer comes from `withUnsafeTemporaryAllocation`, so it lives on the stack for key-sized
/// suffixes and costs no allocation.
/// - Parameters:
///   - prefix: the ordering part of the key, such as an expiry time.
///   - suffix: the bytes that follow it, such as the entry's own key.
///   - body: receives the composed key, valid only for the call.
@inlinable
public func withBigEndianKey<R>(
    _ prefix: UInt64,
    suffix: some ContiguousRawBytes,
    _ body: (UnsafeRawBufferPointer) throws -> R
) rethrows -> R {
    try suffix.withRawBytes { tail in
        try withUnsafeTemporaryAllocation(byteCount: 8 + tail.count, alignment: 1) { buffer in
            buffer.storeBytes(of: prefix.bigEndian, as: UInt64.self)
            UnsafeMutableRawBufferPointer(rebasing: buffer[8...]).copyMemory(from: tail)
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }
}

/// Reads the big-endian `UInt64` at the start of `bytes`, as written by `withBigEndianKey`.
///
/// - Returns: the number, or `nil` when `bytes` is shorter than 8 bytes.
@inlinable
public func decodeBigEndianUInt64(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
    guard bytes.count >= 8 else { return nil }
    return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
}
