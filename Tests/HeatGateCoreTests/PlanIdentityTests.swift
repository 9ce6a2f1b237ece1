import Foundation
import HeatGateCore
import HeatGateTestSupport
import Testing

/// The derived plan id (SPEC §3, docs/apply-layer.md "Deriving the plan id"): the clients' derivation is
/// the engine's own, on the proposals of tests/vectors/plan-id.jsonl (which the Python client's tests
/// read too).
@Suite struct PlanIdentityTests {
    static let vectors: [String] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../tests/vectors/plan-id.jsonl").path
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }()

    @Test func theClientDerivesWhatTheEngineDerived() throws {
        #expect(Self.vectors.count >= 10)
        let h = EngineHarness(now: 1_769_178_600)
        for line in Self.vectors {
            let d = try #require(h.decide(line), "\(line)")
            let key = try PlanIdentity.key(ofProposal: Array(line.utf8))
            #expect(key.planId == d["plan_id"]?.string, "\(line)")
            #expect(key.symbol == d["symbol"]?.string)
            #expect(key.action == d["original_action"]?.string)
        }
    }

    /// The worked example of docs/apply-layer.md, byte string and all.
    @Test func theDocumentedExample() throws {
        let line =
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE_PROPOSED","computed_at_utc":"2026-01-23T14:30:00"}"#
        // fnv1a64("ETHUSDT\x1fFULL_CLOSE\x1f1769178600000"), then SplitMix64's finaliser.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for c in Array("ETHUSDT\u{1F}FULL_CLOSE\u{1F}1769178600000".utf8) { h = (h ^ UInt64(c)) &* 0x100_0000_01B3 }
        let hex = String(mix64(h), radix: 16)
        let expected = "hg-" + String(repeating: "0", count: 16 - hex.count) + hex
        #expect(try PlanIdentity.key(ofProposal: Array(line.utf8)).planId == expected)
        let doc = try String(
            contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../docs/apply-layer.md").path, encoding: .utf8)
        #expect(doc.contains(expected), "docs/apply-layer.md shows the example's id \(expected)")
    }

    @Test func aDifferentTimeActionOrSymbolIsAnotherPlan() throws {
        func id(_ s: String) throws -> String { try PlanIdentity.key(ofProposal: Array(s.utf8)).planId }
        let base = try id(#"{"symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","ts_epoch":1769178600}"#)
        #expect(
            try id(#"{"symbol":"ETHUSDT","harvest_action":"FULL_CLOSE_PROPOSED","ts_epoch":"1769178600.0004"}"#) == base
        )
        #expect(try id(#"{"symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","ts_epoch":1769178600.001}"#) != base)
        #expect(try id(#"{"symbol":"ETHUSDT","harvest_action":"PARTIAL_25","ts_epoch":1769178600}"#) != base)
        #expect(try id(#"{"symbol":"BTCUSDT","harvest_action":"FULL_CLOSE","ts_epoch":1769178600}"#) != base)
        // Untimed: every other present field counts, in any order; absent ones do not.
        let a = try id(#"{"symbol":"X","action":"FULL_CLOSE","R_net":"1.2","k":"None"}"#)
        #expect(try id(#"{"R_net":"1.2","symbol":"X","action":"FULL_CLOSE"}"#) == a)
        #expect(try id(#"{"symbol":"X","action":"FULL_CLOSE","R_net":"1.3"}"#) != a)
        #expect(throws: Rejection.self) { try id(#"{"symbol":"bad symbol","action":"FULL_CLOSE"}"#) }
    }
}
