import HeatGateStore
import LMDB

/// The TTL and retention sweeps (SPEC §5), in bounded chunks that ride in the batches' own transactions.
///
/// Once due (the daemon marks it so once a second), every batch commit also removes one chunk: expired
/// latest decisions and their TTL entries first, then journal records and events past retention. The
/// chunk is part of the batch's write transaction, so while decisions flow the sweep costs no commit of
/// its own (a commit `pwrite()`s every page it dirtied; one per chunk between batches made the decision
/// p99 during a sweep 3–5× the idle one, SPEC §10 P7). When no batch comes, the daemon runs a chunk in a
/// transaction of its own. A chunk takes at least what the batch added (two records per decision: a TTL
/// entry and a journal record), so the sweep keeps up with any rate; it continues until nothing expired
/// is left.
public struct Sweeper {
    /// Records removed per chunk beyond what the batch added (the backlog).
    public static let chunk = 64

    /// What one chunk removed.
    public struct Chunk {
        public var latest = 0
        public var ttlEntries = 0
        public var journal = 0
        public var events = 0
        /// The TTL sweep found nothing more to remove (this chunk went on to the journal).
        public var ttlFinished = false
        /// `false` once both sweeps found nothing more to remove.
        public var more = false
        /// Whether this chunk took from the backlog, and how long it ran (ns).
        var backlog = false
        public var nanos: UInt64 = 0
    }

    /// Set once a second by the daemon; cleared when a sweep has removed everything due.
    public var due = false
    /// Journal retention (`P26_JOURNAL_RETENTION_SEC`).
    public var retention: Double
    /// The share of time the backlog may take: after a chunk that took `t`, the next backlog chunk waits
    /// `t × (1 − share) / share`. What a batch added is always removed with it, so the sweep keeps up at
    /// any rate, while a large backlog drains in the background (1 000 000 expired records in a few
    /// seconds) without crowding the decisions out of two cores.
    public var backlogShare = 0.15
    var ttlDone = false
    /// When the next backlog chunk may run (monotonic ns).
    var backlogAfter: UInt64 = 0

    /// With a durable store beside it (SPEC §5), the hot store keeps only a tail of its journal and events:
    /// the newest `keep` rows, and any the durable store does not hold yet. Retention is then the
    /// replicator's, in the durable store. `nil` (replay's single store): retention applies here.
    public var tail: (keep: Int, durableSeq: UInt64, durableEvent: UInt64)?

    public init(retention: Double) { self.retention = retention }

    /// Removes one chunk within `txn`: `2 × added` records, plus ``chunk`` from the backlog when its share
    /// of time allows. Changes nothing in `self`: ``finish(_:)`` applies the result once the transaction
    /// has committed.
    func run(_ store: GateStore, _ txn: borrowing Transaction, now: Double, added: Int) throws -> Chunk {
        let started = monotonicNanos()
        var c = Chunk()
        c.backlog = backlogAllowed(at: started)
        var budget = 2 * added + (c.backlog ? Self.chunk : 0)
        c.more = true
        guard budget > 0 else { return c }
        c.more = false
        if !ttlDone {
            let r = try store.sweepExpired(txn, now: now, limit: budget)
            (c.latest, c.ttlEntries, c.more) = (r.removed, r.entries, r.more)
            budget -= r.entries
        }
        if !c.more {
            c.ttlFinished = true
            if budget > 0 {
                let r =
                    try tail.map {
                        try store.trimTail(
                            txn, keep: $0.keep, durableSeq: $0.durableSeq, durableEvent: $0.durableEvent, limit: budget)
                    } ?? store.sweepJournal(txn, now: now, retention: retention, limit: budget)
                (c.journal, c.events, c.more) = (r.decisions, r.events, r.more)
            } else {
                c.more = true
            }
        }
        c.nanos = monotonicNanos() &- started
        return c
    }

    /// Whether a backlog chunk may run now.
    func backlogAllowed(at now: UInt64) -> Bool { now >= backlogAfter }

    /// Records a committed chunk: moves on to the journal once the TTL sweep is through, and stops when
    /// both are.
    mutating func finish(_ c: Chunk) {
        if c.backlog {
            backlogAfter = monotonicNanos() + UInt64(Double(c.nanos) * (1 - backlogShare) / backlogShare)
        }
        if c.more {
            ttlDone = ttlDone || c.ttlFinished
        } else {
            abandon()
        }
    }

    /// Stops this round (the chunk failed, or everything is swept); the next starts when due again.
    mutating func abandon() {
        due = false
        ttlDone = false
    }
}
