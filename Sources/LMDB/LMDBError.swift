internal import CLMDB

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A status code returned by an LMDB call: one of LMDB's own `MDB_*` codes or an `errno` value.
///
/// LMDB reports system failures as plain `errno` values and its own conditions as negative codes
/// (`MDB_KEYEXIST` ... `MDB_BAD_DBI`), so both live in one type, as in swift-system's `Errno`.
/// `description` is the library's own text, from `mdb_strerror`.
public struct LMDBError: Error, RawRepresentable, Hashable, CustomStringConvertible, Sendable {
    /// The raw LMDB or `errno` code.
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The text `mdb_strerror` gives for the code, for example
    /// `MDB_MAP_FULL: Environment mapsize limit reached`.
    public var description: String {
        String(cString: mdb_strerror(rawValue))
    }

    // LMDB's own codes, in lmdb.h's order.

    /// `MDB_KEYEXIST`: the key/data pair already exists.
    public static var keyExist: Self { Self(rawValue: MDB_KEYEXIST) }
    /// `MDB_NOTFOUND`: no matching key/data pair. Lookups turn it into `nil` or `false`.
    public static var notFound: Self { Self(rawValue: MDB_NOTFOUND) }
    /// `MDB_PAGE_NOTFOUND`: a requested page was not found (usually corruption).
    public static var pageNotFound: Self { Self(rawValue: MDB_PAGE_NOTFOUND) }
    /// `MDB_CORRUPTED`: a located page was the wrong type.
    public static var corrupted: Self { Self(rawValue: MDB_CORRUPTED) }
    /// `MDB_PANIC`: an earlier fatal error; the environment must be closed.
    public static var panic: Self { Self(rawValue: MDB_PANIC) }
    /// `MDB_VERSION_MISMATCH`: the environment was written by an incompatible library version.
    public static var versionMismatch: Self { Self(rawValue: MDB_VERSION_MISMATCH) }
    /// `MDB_INVALID`: the file is not an LMDB file.
    public static var invalid: Self { Self(rawValue: MDB_INVALID) }
    /// `MDB_MAP_FULL`: the map size is reached; abort, grow with `Environment.setMapSize(_:)`, retry.
    public static var mapFull: Self { Self(rawValue: MDB_MAP_FULL) }
    /// `MDB_DBS_FULL`: more named databases than `maxDatabases`.
    public static var dbsFull: Self { Self(rawValue: MDB_DBS_FULL) }
    /// `MDB_READERS_FULL`: every reader slot is taken (see `Environment.readerCheck()`).
    public static var readersFull: Self { Self(rawValue: MDB_READERS_FULL) }
    /// `MDB_TLS_FULL`: too many thread-local keys in use.
    public static var tlsFull: Self { Self(rawValue: MDB_TLS_FULL) }
    /// `MDB_TXN_FULL`: the transaction has too many dirty pages.
    public static var txnFull: Self { Self(rawValue: MDB_TXN_FULL) }
    /// `MDB_CURSOR_FULL`: cursor stack too deep.
    public static var cursorFull: Self { Self(rawValue: MDB_CURSOR_FULL) }
    /// `MDB_PAGE_FULL`: a page has no room.
    public static var pageFull: Self { Self(rawValue: MDB_PAGE_FULL) }
    /// `MDB_MAP_RESIZED`: another process grew the map; call `Environment.setMapSize(0)` to adopt it.
    public static var mapResized: Self { Self(rawValue: MDB_MAP_RESIZED) }
    /// `MDB_INCOMPATIBLE`: the operation or database flags do not match the database.
    public static var incompatible: Self { Self(rawValue: MDB_INCOMPATIBLE) }
    /// `MDB_BAD_RSLOT`: reader slot misuse, such as two read transactions on one thread without `.noTLS`.
    public static var badReaderSlot: Self { Self(rawValue: MDB_BAD_RSLOT) }
    /// `MDB_BAD_TXN`: the transaction must abort, has a child, or is reset.
    public static var badTxn: Self { Self(rawValue: MDB_BAD_TXN) }
    /// `MDB_BAD_VALSIZE`: a key or value has an unsupported size (empty key, key over `maxKeySize`).
    public static var badValSize: Self { Self(rawValue: MDB_BAD_VALSIZE) }
    /// `MDB_BAD_DBI`: the database handle was closed or changed unexpectedly.
    public static var badDBI: Self { Self(rawValue: MDB_BAD_DBI) }

    // errno values LMDB passes through.

    /// `EINVAL`: an invalid parameter, or an operation in the wrong state (renewing an active reader).
    public static var invalidArgument: Self { Self(rawValue: EINVAL) }
    /// `EACCES`: a write in a read-only transaction or environment.
    public static var permissionDenied: Self { Self(rawValue: EACCES) }
    /// `ENOENT`: the environment directory or file does not exist.
    public static var noSuchFile: Self { Self(rawValue: ENOENT) }
    /// `EEXIST`: the file exists (for example the target of `Environment.copy(to:compact:)`).
    public static var fileExists: Self { Self(rawValue: EEXIST) }
    /// `ENOMEM`: out of memory.
    public static var noMemory: Self { Self(rawValue: ENOMEM) }
    /// `ENOSPC`: no space left on the device.
    public static var noSpace: Self { Self(rawValue: ENOSPC) }
    /// `EIO`: a low-level I/O error.
    public static var ioError: Self { Self(rawValue: EIO) }
    /// `EAGAIN`: the environment is locked by another process (`mdb_env_open`).
    public static var wouldBlock: Self { Self(rawValue: EAGAIN) }
    /// `EINTR`: the call was interrupted by a signal.
    public static var interrupted: Self { Self(rawValue: EINTR) }
}

/// The one door from an LMDB status code to Swift: every C call that returns a status goes through it.
///
/// - Parameters:
///   - tolerated: the one code that is an answer rather than a failure (`MDB_NOTFOUND` for lookups,
///     `MDB_KEYEXIST` for `MDB_NOOVERWRITE` puts); it makes the call return `false` instead of throwing.
///   - retryingInterrupts: retry on `EINTR`. Only idempotent calls (syncs) may say so: retrying a
///     commit would touch a transaction LMDB has already freed.
///   - call: the C call.
/// - Returns: `true` on `MDB_SUCCESS`, `false` on `tolerated`.
/// - Throws: `LMDBError` for any other code.
@inline(__always)
@discardableResult
func lmdbCall(
    tolerating tolerated: Int32 = MDB_SUCCESS,
    retryingInterrupts: Bool = false,
    _ call: () -> Int32
) throws(LMDBError) -> Bool {
    while true {
        let code = call()
        if code == MDB_SUCCESS { return true }
        if code == tolerated { return false }
        if retryingInterrupts && code == EINTR { continue }
        throw LMDBError(rawValue: code)
    }
}
