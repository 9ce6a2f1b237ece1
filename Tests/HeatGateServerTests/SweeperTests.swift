import Foundation
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import Testing

@testable import HeatGateServer

/// The sweep folded into the batches' commits (SPEC §5 sweeps, §10 P7), on a real store.
@Suite struct SweeperTests {
    static let start = 1_764_000_000.0

    /// A gate whose store holds `expired` decisions (TTL 1 s, decided from `start` on), one per symbol: a
    /// symbol's new decision removes the TTL entry of the one it replaces, so each symbol has one.
    func gateWithExpired(_ expired: Int, dir: TemporaryDirectory, retention: Double = 604_800) throws -> Gate {
        var config = GateConfig()
        config.calibratedTTLSec = 1
        config.journalRetentionSec = retention
        let gate = try Gate(config: config, directory: dir.path, metrics: Metrics(), now: Self.start)
        var lines = Array(example[0...1])
        lines += (0..<max(expired, 1)).map {
            #"{"type":"position","symbol":"S\#($0)","position_notional_usd":"100","sigma":"0.1"}"#
        }
        try batch(gate, lines, now: Self.start)
        // One batch a millisecond: each decision gets its own TTL entry (expiry, symbol).
        for i in 0..<expired {
            try batch(gate, [proposal("old\(i)", symbol: "S\(i)")], now: Self.start + Double(i) / 1000)
        }
        #expect(try gate.store.counts().ttl == expired)
        return gate
    }

    @discardableResult
    func batch(_ gate: Gate, _ lines: [String], now: Double) throws -> Bool {
        gate.beginBatch()
        for l in lines { Array(l.utf8).withUnsafeBytes { _ = gate.handle($0, now: now) } }
        return try gate.commit(now: now)
    }

    @Test func aBatchRemovesAChunkInItsOwnCommit() throws {
        let dir = TemporaryDirectory("hg-sweep")
        let gate = try gateWithExpired(300, dir: dir)
        let later = Self.start + 10
        let writes = gate.metrics.storeWrites.load
        gate.sweeper.due = true
        #expect(try batch(gate, [proposal("new1")], now: later))
        #expect(gate.metrics.storeWrites.load == writes + 1, "one commit for the batch and the chunk")
        // The backlog chunk plus what the batch added (a TTL entry and a journal record).
        #expect(gate.metrics.sweptTTL.load == UInt64(Sweeper.chunk + 2))
        let counts = try gate.store.counts()
        #expect(counts.ttl == 300 - (Sweeper.chunk + 2) + 1)
        #expect(counts.journal == 301, "the journal keeps decisions for its retention")
        #expect(gate.published.map(\.seq) == [301], "the batch's decision is published")
        #expect(try gate.store.decision(seq: 301) != nil)
    }

    @Test func theBacklogWaitsForItsShareButABatchAlwaysRemovesWhatItAdded() throws {
        let dir = TemporaryDirectory("hg-sweep")
        let gate = try gateWithExpired(300, dir: dir)
        let later = Self.start + 10
        gate.sweeper.backlogShare = 1e-9  // after one backlog chunk, the next waits for ages
        gate.sweeper.due = true
        try batch(gate, [proposal("new1")], now: later)
        let first = gate.metrics.sweptTTL.load
        #expect(first == UInt64(Sweeper.chunk + 2))
        try batch(gate, [proposal("new2"), proposal("new3", symbol: "S1")], now: later)
        #expect(gate.metrics.sweptTTL.load == first + 4, "two decisions added: four records removed, no backlog")
        // With no batch, a chunk alone waits for the backlog's share too.
        gate.sweepAlone(now: later)
        #expect(gate.metrics.sweptTTL.load == first + 4)
        #expect(gate.sweeper.due, "still behind: the sweep goes on")
    }

    @Test func chunksAloneSweepEverythingExpiredThenTheJournalThenStop() throws {
        let dir = TemporaryDirectory("hg-sweep")
        let gate = try gateWithExpired(300, dir: dir, retention: 5)
        let later = Self.start + 10
        gate.sweeper.backlogShare = 1  // no pause between chunks
        gate.sweeper.due = true
        var chunks = 0
        while gate.sweeper.due && chunks < 100 {
            gate.sweepAlone(now: later)
            chunks += 1
        }
        #expect(!gate.sweeper.due, "the sweep stops once nothing is left")
        #expect(gate.takeSweepError() == nil)
        #expect(chunks >= 600 / Sweeper.chunk, "in bounded chunks")
        let counts = try gate.store.counts()
        #expect(counts.ttl == 0)
        #expect(counts.latest == 0, "every symbol's latest decision had expired")
        #expect(counts.journal == 0, "past retention")
        #expect(gate.metrics.sweptTTL.load == 300)
        #expect(gate.metrics.sweptLatest.load == 300, "one symbol per decision")
        #expect(gate.metrics.sweptJournal.load == 300)
        #expect(gate.metrics.sweepNanos.load > 0)
        // The sequence survives an empty journal.
        try batch(gate, [proposal("after")], now: later)
        #expect(gate.published.map(\.seq) == [301])
    }

    /// The hot store's TTL index holds one entry per symbol, not one per decision (at 10 000/s and a 300 s
    /// TTL that was 3 000 000 entries): a symbol's new decision removes the entry of the one it replaces.
    @Test func aNewDecisionReplacesItsSymbolsTTLEntry() throws {
        let dir = TemporaryDirectory("hg-sweep")
        let gate = try gateWithExpired(10, dir: dir)
        for i in 0..<5 {
            try batch(gate, [proposal("again\(i)", symbol: "S0")], now: Self.start + 0.5 + Double(i) / 100)
        }
        #expect(try gate.store.counts().ttl == 10)
        #expect(try gate.store.counts().journal == 15)
    }

    @Test func aSweepNeverRemovesAFreshDecision() throws {
        let dir = TemporaryDirectory("hg-sweep")
        let gate = try gateWithExpired(100, dir: dir)
        let later = Self.start + 10
        gate.sweeper.backlogShare = 1
        gate.sweeper.due = true
        // S0 decides again: its latest record is fresh, and its old TTL entries must not remove it.
        try batch(gate, [proposal("fresh", symbol: "S0")], now: later)
        while gate.sweeper.due { gate.sweepAlone(now: later) }
        #expect(try gate.store.latestDecision(symbol: "S0") != nil)
        #expect(try gate.store.latestDecision(symbol: "S1") == nil)
        #expect(try gate.store.counts().ttl == 1)
    }
}
