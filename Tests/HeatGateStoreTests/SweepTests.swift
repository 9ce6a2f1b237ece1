import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import LMDB
import Testing

@Suite("Sweeps")
struct SweepTests {
    func decision(seq: UInt64, symbol: String, ts: Double, expiresAt: Double) -> [UInt8] {
        Array(
            #"{"seq":\#(seq),"plan_id":"p\#(seq)","symbol":"\#(symbol)","ts":\#(ts),"expires_at":\#(expiresAt)}"#.utf8)
    }

    /// A sweep that removes the last entries of a table must succeed (LMDB leaves the cursor unpositioned).
    @Test func sweepsATableEmpty() throws {
        let dir = TemporaryDirectory()
        let store = try GateStore(directory: dir.path, mapSizeMB: 16, durable: false)
        try store.environment.write { txn in
            for seq in UInt64(1)...3 {
                let json = decision(seq: seq, symbol: "S\(seq)", ts: 1000, expiresAt: 1300)
                try json.withUnsafeBytes {
                    try store.putDecision(txn, seq: seq, symbol: SymbolKey("S\(seq)")!, expiresAt: 1300, json: $0)
                }
            }
        }
        let ttl = try store.sweepExpired(now: 2000, limit: 1000)
        #expect(ttl.removed == 3)
        #expect(!ttl.more)
        let journal = try store.sweepJournal(now: 2000, retention: 10, limit: 1000)
        #expect(journal.decisions == 3)
        let c = try store.counts()
        #expect(c.ttl == 0 && c.latest == 0 && c.journal == 0)
    }
}
