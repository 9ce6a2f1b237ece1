import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import LMDB
import Testing

/// The LMDB schema, on a real environment in a temporary directory.
@Suite struct StoreTests {
    func decision(
        _ seq: UInt64, symbol: String, plan: String, ts: Double, ttl: Double, reason: String = "portfolio_heat_cold"
    ) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"seq\":")
        w.uint(seq)
        w.raw(",\"plan_id\":")
        w.string(plan)
        w.raw(",\"symbol\":")
        w.string(symbol)
        w.raw(",\"original_action\":\"FULL_CLOSE_PROPOSED\",\"reason\":")
        w.string(reason)
        w.raw(",\"ts\":")
        w.fixed(ts, decimals: 6)
        w.raw(",\"expires_at\":")
        w.fixed(ts + ttl, decimals: 6)
        w.raw("}")
        return w.bytes
    }

    func put(
        _ store: GateStore, _ seq: UInt64, _ symbol: String, _ plan: String, ts: Double, ttl: Double,
        reason: String = "portfolio_heat_cold"
    ) throws {
        let json = decision(seq, symbol: symbol, plan: plan, ts: ts, ttl: ttl, reason: reason)
        try store.environment.write { txn in
            try json.withUnsafeBytes { b in
                try store.putDecision(txn, seq: seq, symbol: SymbolKey(symbol)!, expiresAt: ts + ttl, json: b)
            }
            try store.putCounters(txn, nextSeq: seq + 1, nextEvent: 1)
        }
    }

    @Test func ttlSweepRemovesOnlyExpiredLatestDecisions() throws {
        let dir = TemporaryDirectory()
        let store = try GateStore(directory: dir.path, mapSizeMB: 16)
        try put(store, 1, "A", "a1", ts: 1000, ttl: 10)
        try put(store, 2, "B", "b1", ts: 1000, ttl: 100)
        try put(store, 3, "A", "a2", ts: 1005, ttl: 10)  // supersedes a1; its TTL entry must not remove a2
        var r = try store.sweepExpired(now: 1011, limit: 100)
        #expect(r.removed == 0)
        #expect(try store.latestDecision(symbol: "A") != nil)
        r = try store.sweepExpired(now: 1016, limit: 100)
        #expect(r.removed == 1)
        #expect(try store.latestDecision(symbol: "A") == nil)
        #expect(try store.latestDecision(symbol: "B") != nil)
        #expect(try store.counts().ttl == 1)
        #expect(try store.decision(seq: 1) != nil)
    }

    @Test func sweepsRunInBoundedChunks() throws {
        let dir = TemporaryDirectory()
        let store = try GateStore(directory: dir.path, mapSizeMB: 64)
        for i in 1...2500 { try put(store, UInt64(i), "S\(i)", "p\(i)", ts: 1000, ttl: 1) }
        var total = 0
        var chunks = 0
        while true {
            let r = try store.sweepExpired(now: 2000, limit: 1000)
            total += r.removed
            chunks += 1
            if !r.more { break }
        }
        #expect(total == 2500)
        #expect(chunks == 3)
        let j = try store.sweepJournal(now: 1000 + 3600, retention: 1800, limit: 1000)
        #expect(j.decisions == 1000 && j.more)
        #expect(try store.counts().journal == 1500)
    }

    @Test func restoreBringsBackSeqKillSwitchAndRecentPlans() throws {
        let dir = TemporaryDirectory()
        do {
            let store = try GateStore(directory: dir.path, mapSizeMB: 16)
            try put(store, 1, "A", "a1", ts: 1000, ttl: 300)
            try put(store, 2, "A", "a2", ts: 1001, ttl: 300)
            // Holds for the kill switch or staleness are never remembered (SPEC §2), after a restart too.
            try put(store, 3, "A", "k1", ts: 1001, ttl: 300, reason: "kill_switch")
            try put(store, 4, "A", "s1", ts: 1001, ttl: 300, reason: "proposal_stale")
            try store.setKillSwitch(KillSwitchState(on: true, reason: "drill", ts: 1002))
        }
        let store = try GateStore(directory: dir.path, mapSizeMB: 16)
        let r = try store.restore(now: 1100)
        #expect(r.nextSeq == 5)
        #expect(r.killSwitch == KillSwitchState(on: true, reason: "drill", ts: 1002))
        // Both plans are inside the TTL, even though a2 superseded a1 as the latest.
        #expect(Set(r.recentPlans.map(\.seq)) == [1, 2])
        // Keyed on symbol + plan id + normalised action, as the engine keys a live proposal.
        let a1 = PlanIdentity.repeatKey(
            symbol: SymbolKey("A")!, action: Array("full_close".utf8), planId: Array("a1".utf8))
        #expect(r.recentPlans.first { $0.seq == 1 }?.planKey == a1)
        #expect(try store.restore(now: 1400).recentPlans.isEmpty)
        #expect(try store.restore(now: 1100, repeatLimit: 1).recentPlans.map(\.seq) == [2])
    }
}
