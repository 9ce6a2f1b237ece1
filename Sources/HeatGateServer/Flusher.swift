#if canImport(Glibc)
    import Glibc
#endif

/// Makes `MDB_NOSYNC` commits durable: the single store of 0.1.0, which the daemon no longer uses (it has
/// the hot and durable stores and the ``Replicator``, SPEC §5); `hg-bench` keeps it as the baseline the two
/// stores are measured against. LMDB `pwrite()`s the pages into the page cache (a crash of the process
/// loses nothing) and this loop, on a thread of its own, flushes them (`mdb_env_sync`) as soon as something
/// was committed, at most once per ``interval``.
///
/// The interval trades the disk traffic for the time to disk. LMDB copies every page it changes, so each
/// commit dirties new pages, and a flush writes each dirty page once: at 10 000 decisions/s a 2 ms
/// interval wrote 110 MB/s, 4 ms writes 67 MB/s (50 000/s: 231 → 136 MB/s; the decision p99 stayed
/// within run-to-run noise). A commit is then on disk within an interval plus one or two flushes, inside
/// SPEC §10 P3's 10 ms.
public enum Flusher {
    /// The shortest time between two flushes.
    public static let interval: UInt64 = 4_000_000
    /// How often an idle flusher looks for new commits.
    static let idlePoll: UInt32 = 1_000

    /// Runs until `stop()` is true.
    /// - Parameters:
    ///   - committed: a count of commits so far (any counter that grows with each commit).
    ///   - sync: the flush; its errors are the store's to report, the loop goes on.
    ///   - flushed: called after each flush with the count it covered and its start and end (ns).
    public static func run(
        committed: () -> UInt64, stop: () -> Bool, sync: () throws -> Void,
        flushed: (_ covered: UInt64, _ start: UInt64, _ end: UInt64) -> Void = { _, _, _ in }
    ) {
        var done: UInt64 = 0
        while !stop() {
            let count = committed()
            guard count != done else {
                usleep(idlePoll)
                continue
            }
            let start = monotonicNanos()
            try? sync()
            let end = monotonicNanos()
            done = count
            flushed(count, start, end)
            let took = end &- start
            if took < interval { usleep(UInt32((interval - took) / 1000)) }
        }
    }
}
