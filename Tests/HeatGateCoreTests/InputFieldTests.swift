import HeatGateCore
import HeatGateTestSupport
import Testing

/// SPEC §3: empty optional fields count as absent, `trace_id` may be a number, a state time ahead of the
/// gate's clock is fresh.
@Suite struct InputFieldTests {
    static let equity = #"{"type":"portfolio","equity_usd":"10000"}"#
    static let eth = #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15"}"#

    func cold() -> EngineHarness {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        return h
    }

    @Test(arguments: ["null", #""""#, #""None""#])
    func anEmptyOptionalFieldIsAbsent(empty: String) throws {
        let h = cold()
        let t = Int(h.now)
        // An empty time field: the next one applies.
        let d1 = try #require(
            h.decide(
                #"{"type":"proposal","symbol":"ETHUSDT","action":"FULL_CLOSE","plan_id":"a\#(empty.count)","ts_epoch":\#(empty),"timestamp":\#(t)}"#
            ))
        #expect(d1["reason"]?.string == "portfolio_heat_cold")
        // An empty harvest_action: `action` applies.
        let d2 = try #require(
            h.decide(
                #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":\#(empty),"action":"PARTIAL_50","plan_id":"b\#(empty.count)"}"#
            ))
        #expect(d2["original_action"]?.string == "PARTIAL_50")
        // An empty plan_id: derived; an empty trace_id: generated.
        let d3 = try #require(
            h.decide(
                #"{"type":"proposal","symbol":"ETHUSDT","action":"FULL_CLOSE","plan_id":\#(empty),"trace_id":\#(empty),"new_sl_proposed":\#(empty),"ts_epoch":\#(t)}"#
            ))
        #expect(d3["plan_id"]?.string?.hasPrefix("hg-") == true)
        #expect(d3["trace_id"]?.string?.count == 32)
        // State messages: an empty sigma keeps the last one, an empty ts is now.
        h.send(
            #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"3600","sigma":\#(empty),"ts":\#(empty)}"#)
        #expect(h.engine.totalRiskUSD == 540)
        guard case .state = h.send(#"{"type":"market","symbol":"ETHUSDT","sigma":"0.2","price":\#(empty)}"#) else {
            Issue.record("an empty price must count as absent")
            return
        }
        // A required field that is empty is missing.
        #expect(h.send(#"{"type":"portfolio","equity_usd":\#(empty)}"#).rejection?.reason == .missingField)
    }

    @Test func aNumericTraceIdIsKeptAsTextAndALongOneIsNamed() throws {
        let h = cold()
        let d = try #require(
            h.decide(
                #"{"type":"proposal","symbol":"ETHUSDT","action":"FULL_CLOSE","plan_id":"t1","trace_id":123456789}"#))
        #expect(d["trace_id"]?.string == "123456789")
        let long = String(repeating: "x", count: 129)
        let r = h.send(
            #"{"type":"proposal","symbol":"ETHUSDT","action":"FULL_CLOSE","plan_id":"t2","trace_id":"\#(long)"}"#)
        #expect(r.rejection?.reason == .traceIdTooLong)
        #expect(r.rejection?.field == "trace_id")
    }

    @Test func anEquityTimeAheadOfTheClockIsFreshAndItsSkewIsKept() throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":"10000","ts":\#(h.now + 30)}"#)
        h.send(Self.eth)
        #expect(h.engine.heatInputs(now: h.now).problem == nil)
        #expect(h.engine.maxClockSkew == 30)
        #expect(h.engine.equityAge(now: h.now) == 0)
        let d = try #require(h.decide(#"{"type":"proposal","symbol":"ETHUSDT","action":"FULL_CLOSE","plan_id":"f1"}"#))
        #expect(d["reason"]?.string == "portfolio_heat_cold")
        #expect(d["fail_closed"]?.bool == false)
        #expect(d["equity_age_sec"]?.number == 0)
        // Staleness still counts from a time in the past.
        h.now += 200
        #expect(h.engine.heatInputs(now: h.now).problem == .equityStale)
    }
}
