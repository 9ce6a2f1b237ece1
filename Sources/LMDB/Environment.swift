internal import CLMDB

#if canImport(Glibc)
    import Glibc
    /// Unix permission bits for the files an environment creates.
    public typealias FileMode = Glibc.mode_t
#elseif canImport(Musl)
    import Musl
    public typealias FileMode = Musl.mode_t
#elseif canImport(Darwin)
    import Darwin
    public typealias FileMode = Darwin.mode_t
#endif

/// An open LMDB environment: one memory-mapped file holding the main database and any named ones.
///
/// `@unchecked Sendable` because LMDB documents an `MDB_env` as usable from any thread at once:
/// transactions begin, syncs and stats may run concurrently, and the class holds nothing but the
/// immutable handle. The exceptions are LMDB's own and are on the methods that have them
/// (`setMapSize(_:)`). What is not thread-safe is a transaction, so `Transaction` is not `Sendable`.
///
/// Open an environment once per process and path: lmdb.h warns that opening the same file twice in
/// one process breaks its `fcntl` locks when either copy closes. The environment closes
/// (`mdb_env_close`) when the last reference goes; transactions keep it alive while they run.
public final class Environment: @unchecked Sendable {
    let handle: OpaquePointer

    /// The directory (or, with `.noSubdir`, the file) the environment was opened at.
    public let path: String

    /// Options for `mdb_env_open`.
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `MDB_WRITEMAP`: a writable map; faster writes, but stray pointer writes can corrupt the file.
        public static let writeMap = Flags(rawValue: UInt32(MDB_WRITEMAP))
        /// `MDB_MAPASYNC`: with `.writeMap`, flush asynchronously; a crash may lose the last commits
        /// (not integrity). Pair with a periodic `sync(force: true)`.
        public static let mapAsync = Flags(rawValue: UInt32(MDB_MAPASYNC))
        /// `MDB_NOSYNC`: no flush on commit; a crash may lose the last commits. Pair with `sync(force:)`.
        public static let noSync = Flags(rawValue: UInt32(MDB_NOSYNC))
        /// `MDB_NOMETASYNC`: flush data but not the meta page on commit.
        public static let noMetaSync = Flags(rawValue: UInt32(MDB_NOMETASYNC))
        /// `MDB_RDONLY`: no writes; for clients that only read the store.
        public static let readOnly = Flags(rawValue: UInt32(MDB_RDONLY))
        /// `MDB_NOSUBDIR`: `path` is the data file itself (the lock file is `path-lock`).
        public static let noSubdir = Flags(rawValue: UInt32(MDB_NOSUBDIR))
        /// `MDB_NOTLS`: reader slots belong to transactions, not threads. Needed when one thread holds
        /// a `ReadTransaction` and also uses `read(_:)`, or when a parked reader moves between threads.
        public static let noTLS = Flags(rawValue: UInt32(MDB_NOTLS))
        /// `MDB_NORDAHEAD`: no OS read-ahead; helps random reads on maps larger than RAM.
        public static let noReadAhead = Flags(rawValue: UInt32(MDB_NORDAHEAD))
        /// `MDB_NOLOCK`: no locking at all; the caller serialises every access itself.
        public static let noLock = Flags(rawValue: UInt32(MDB_NOLOCK))
    }

    /// Environment facts from `mdb_env_info`.
    public struct Info: Sendable, Hashable {
        /// The map size in bytes.
        public var mapSize: Int
        /// The number of the last page used in the data file.
        public var lastPageNumber: Int
        /// The id of the last committed write transaction.
        public var lastTransactionID: Int
        /// The number of reader slots in the lock file.
        public var maxReaders: Int
        /// The high-water mark of reader slots used (not the number of active readers).
        public var readerSlotsUsed: Int
    }

    /// Opens (creating if needed) the environment at `path`; wraps `mdb_env_create`,
    /// `mdb_env_set_mapsize`, `mdb_env_set_maxdbs`, `mdb_env_set_maxreaders` and `mdb_env_open`.
    ///
    /// The directory must exist. Stale reader slots left by crashed processes are cleared right after
    /// opening (`mdb_reader_check`), as lmdb.h's caveats ask.
    /// - Parameters:
    ///   - path: the environment directory (or the data file with `.noSubdir`).
    ///   - mapSize: the map size in bytes, the most the data file may grow to. It reserves address
    ///     space, not memory or disk. LMDB raises it to at least the data already in the file.
    ///   - maxDatabases: how many named databases may be opened; 0 allows only the main database.
    ///   - maxReaders: reader slots, shared by every process that opens the environment.
    ///   - flags: `mdb_env_open` options.
    ///   - mode: permissions for the data and lock files when they are created.
    /// - Throws: `LMDBError`, for example `.noSuchFile` for a missing directory or `.invalid` for a
    ///   file that is not LMDB's.
    public init(
        path: String,
        mapSize: Int,
        maxDatabases: Int = 0,
        maxReaders: Int = 126,
        flags: Flags = [],
        mode: FileMode = 0o640
    ) throws {
        var created: OpaquePointer?
        try lmdbCall { mdb_env_create(&created) }
        guard let env = created else { throw LMDBError.noMemory }
        do {
            try lmdbCall { mdb_env_set_mapsize(env, mapSize) }
            try lmdbCall { mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases)) }
            try lmdbCall { mdb_env_set_maxreaders(env, UInt32(maxReaders)) }
            try lmdbCall { mdb_env_open(env, path, flags.rawValue, mode) }
            var dead: Int32 = 0
            try lmdbCall { mdb_reader_check(env, &dead) }
        } catch {
            mdb_env_close(env)  // lmdb.h: a failed open still needs its handle closed
            throw error
        }
        self.handle = env
        self.path = path
    }

    deinit {
        mdb_env_close(handle)
    }

    /// The largest key (and `.dupSort` value) the environment accepts, in bytes
    /// (`mdb_env_get_maxkeysize`).
    public var maxKeySize: Int {
        Int(mdb_env_get_maxkeysize(handle))
    }

    /// Runs `body` in a read-only transaction (`mdb_txn_begin` with `MDB_RDONLY`).
    ///
    /// The transaction sees the snapshot committed when it began. It commits when `body` returns, so
    /// databases opened inside stay open (LMDB closes them on abort), and aborts when `body` throws.
    /// Without `.noTLS` a thread may run only one transaction at a time: do not nest `read` or
    /// `write` calls on one thread. Pointers obtained inside are invalid once `body` returns.
    /// - Throws: `LMDBError` from LMDB (`.readersFull`, `.mapResized`) or what `body` throws.
    public func read<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        let transaction = try Transaction(self, readOnly: true)
        let result = try body(transaction)
        try transaction.commit()
        return result
    }

    /// Runs `body` in the write transaction, committing when it returns and aborting when it throws.
    ///
    /// Write transactions are serialised across threads and processes: the call waits for any other
    /// writer. The closure is synchronous on purpose: LMDB ties a write transaction to its thread, so
    /// it must never cross an `await`. Keep it short; readers keep working meanwhile.
    /// - Throws: `LMDBError` from LMDB (`.mapFull`, `.txnFull`, a failed commit) or what `body` throws.
    @discardableResult
    public func write<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        let transaction = try Transaction(self, readOnly: false)
        let result = try body(transaction)
        try transaction.commit()
        return result
    }

    /// Begins a write transaction that the caller commits or aborts (`mdb_txn_begin`), for group
    /// commit: apply a batch, then `commit()` once.
    ///
    /// Unavailable from async code because LMDB ties a write transaction to the thread that began it;
    /// a suspended task may resume on another. Dropping the transaction without `commit()` aborts it.
    /// - Throws: `LMDBError`.
    @available(*, noasync, message: "a write transaction must stay on one thread; use write(_:)")
    public func beginWrite() throws -> Transaction {
        try Transaction(self, readOnly: false)
    }

    /// Makes a parked read transaction for a hot read path, to `renew()` and `reset()` without
    /// allocating (`mdb_txn_begin` with `MDB_RDONLY`, then `mdb_txn_reset`).
    /// - Throws: `LMDBError`, for example `.readersFull` or `.badReaderSlot` (see `Flags.noTLS`).
    public func makeReadTransaction() throws -> ReadTransaction {
        try ReadTransaction(self)
    }

    /// Flushes the map to disk (`mdb_env_sync`).
    ///
    /// With `.noSync` or `.mapAsync`, commits are durable only after this; call it from a background
    /// timer rather than per commit. Retries `EINTR`.
    /// - Parameter force: flush synchronously even under `.noSync`/`.mapAsync`; with `false` the
    ///   flush is skipped under `.noSync` and only scheduled under `.mapAsync`.
    /// - Throws: `LMDBError`, for example `.ioError`, or `.permissionDenied` on a read-only environment.
    public func sync(force: Bool = true) throws {
        try lmdbCall(retryingInterrupts: true) { mdb_env_sync(handle, force ? 1 : 0) }
    }

    /// Clears reader slots left by dead processes (`mdb_reader_check`).
    ///
    /// A stale reader pins old pages, so the file grows; run this at start (the initialiser does) and
    /// periodically in a long-lived daemon.
    /// - Returns: how many stale slots were cleared.
    /// - Throws: `LMDBError`.
    @discardableResult
    public func readerCheck() throws -> Int32 {
        var dead: Int32 = 0
        try lmdbCall { mdb_reader_check(handle, &dead) }
        return dead
    }

    /// Sets the map size (`mdb_env_set_mapsize`), to grow it after `.mapFull` or to adopt another
    /// process's larger map after `.mapResized` (pass 0).
    ///
    /// LMDB requires that no transaction is active in this process: call it between transactions,
    /// from the writer, with every `ReadTransaction` reset. LMDB itself refuses (`.invalidArgument`)
    /// while a write transaction is open.
    /// - Parameter size: the new size in bytes; 0 keeps the current size or adopts a larger one on disk.
    /// - Throws: `LMDBError`.
    public func setMapSize(_ size: Int) throws {
        try lmdbCall { mdb_env_set_mapsize(handle, size) }
    }

    /// The data file's descriptor (`mdb_env_get_fd`), for `fstat`, `posix_fallocate` and the like. With
    /// `.writeMap`, writing into a block the file system cannot allocate raises `SIGBUS` rather than an
    /// error: reserve space through this descriptor first.
    /// - Throws: `LMDBError`.
    public func fileDescriptor() throws -> Int32 {
        var fd: Int32 = -1
        try lmdbCall { mdb_env_get_fd(handle, &fd) }
        return fd
    }

    /// Returns the map size, last page, last transaction id and reader slots (`mdb_env_info`).
    /// - Throws: `LMDBError`.
    public func info() throws -> Info {
        var raw = MDB_envinfo()
        try lmdbCall { mdb_env_info(handle, &raw) }
        return Info(
            mapSize: raw.me_mapsize,
            lastPageNumber: raw.me_last_pgno,
            lastTransactionID: raw.me_last_txnid,
            maxReaders: Int(raw.me_maxreaders),
            readerSlotsUsed: Int(raw.me_numreaders)
        )
    }

    /// Returns the B-tree statistics of the main database (`mdb_env_stat`).
    /// - Throws: `LMDBError`.
    public func stat() throws -> Statistics {
        var raw = MDB_stat()
        try lmdbCall { mdb_env_stat(handle, &raw) }
        return Statistics(raw)
    }

    /// Writes a consistent copy of the environment, for backups (`mdb_env_copy2`).
    ///
    /// It runs as a read transaction, so writers are not blocked.
    /// - Parameters:
    ///   - path: an existing, empty directory (a file path with `.noSubdir`).
    ///   - compact: omit free pages and renumber pages (`MDB_CP_COMPACT`); slower, smaller.
    /// - Throws: `LMDBError`, for example `.fileExists` if the target already holds a data file.
    public func copy(to path: String, compact: Bool = false) throws {
        try lmdbCall { mdb_env_copy2(handle, path, compact ? UInt32(MDB_CP_COMPACT) : 0) }
    }
}

/// B-tree statistics of a database or environment (`MDB_stat`).
public struct Statistics: Sendable, Hashable {
    /// The page size in bytes.
    public var pageSize: Int
    /// The depth of the B-tree.
    public var depth: Int
    /// Internal (non-leaf) pages.
    public var branchPages: Int
    /// Leaf pages.
    public var leafPages: Int
    /// Overflow pages, used by values too large for a leaf.
    public var overflowPages: Int
    /// Key/value entries.
    public var entries: Int

    init(_ raw: MDB_stat) {
        pageSize = Int(raw.ms_psize)
        depth = Int(raw.ms_depth)
        branchPages = raw.ms_branch_pages
        leafPages = raw.ms_leaf_pages
        overflowPages = raw.ms_overflow_pages
        entries = raw.ms_entries
    }
}
