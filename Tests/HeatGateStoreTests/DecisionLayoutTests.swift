import HeatGateCore
import HeatGateTestSupport
import Testing

@testable import HeatGateStore

/// The store reads two members of a stored decision without parsing it: the sweep takes `seq` from the
/// first bytes (`{"seq":N`) and the repeat window's restore finds `expires_at` by its member text. That is
/// a contract with DecisionEncoder's layout (issue 18), bound here: whatever a proposal passes through,
/// both readers agree with a full JSON parse of the encoder's own bytes.
@Suite struct DecisionLayoutTests {
    static let hostile = [
        #""plan_id":"p-plain""#,
        #""plan_id":"{\"seq\":7,\"expires_at\":1}""#,
        #""plan_id":"q","note":",\"expires_at\":42,","seq":"99""#,
        #""plan_id":"r","expires_at":5,"proposal":{"expires_at":6}"#,
        #""plan_id":"s","trace_id":"t,\"expires_at\":1e300""#,
        #""computed_at_utc":"2026-01-23T14:30:00","R_net":"1.8""#,
    ]

    @Test(arguments: hostile)
    func leadingSeqAndExpiresAtReadWhatTheEncoderWrote(fields: String) throws {
        let h = EngineHarness()
        _ = h.send(#"{"type":"portfolio","equity_usd":10000}"#)
        _ = h.send(#"{"type":"position","symbol":"ETHUSDT","position_notional_usd":1800,"sigma":0.15}"#)
        let line = #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE_PROPOSED",\#(fields)}"#
        let bytes = try #require(h.decideBytes(line), "\(line)")
        let parsed = try JSON.parse(String(decoding: bytes, as: UTF8.self))
        let seq = try #require(parsed["seq"]?.number)
        let expires = try #require(parsed["expires_at"]?.number)
        #expect(seq >= 1 && expires > h.now)
        bytes.withUnsafeBytes { raw in
            #expect(GateStore.leadingSeq(raw) == UInt64(seq), "\(line)")
            #expect(GateStore.expiresAt(raw) == expires, "\(line)")
        }
    }
}
