import HeatGateCore
import HeatGateTestSupport
import Testing

/// Inputs the fuzzer (fuzz/run.sh) found, kept as tests once fixed. Each is also a seed in fuzz/corpus.
@Suite struct FuzzRegressionTests {
    /// fuzz/corpus/regression-lone-surrogate.json: a proposal whose pass-through field holds a lone
    /// surrogate escape (`\udd83`). The engine decided it and passed the field through byte for byte,
    /// but the project's own reader (`JSON.parse`, behind `heatgate get` and the client library) refused
    /// the stored decision, so the Apply Layer saw "no decision" for a plan that had one.
    @Test func aDecisionWithALoneSurrogateInThePassThroughIsReadable() throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":10000}"#)
        h.send(#"{"type":"position","symbol":"ETHUSDT","position_notional_usd":1800,"sigma":0.15}"#)
        let line =
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL\u001fCLOSE","p\"lan_id":"\udd83\ude00\n\"q\"","note":"\u0000"}"#
        let d = try #require(h.decide(line), "the decision must be readable by JSON.parse")
        #expect(d["reason"]?.string == "unknown_action")
        #expect(d["proposal"]?["p\"lan_id"]?.string == "\u{FFFD}\u{FFFD}\n\"q\"")
        let valid = h.decide(
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"p","x":"\ud83d\ude00"}"#)
        #expect(valid?["proposal"]?["x"]?.string == "😀")
    }

    /// The keys the engine dedupes on stay strict: a lone surrogate in `plan_id` is refused, so two
    /// different plan ids can never both decode to U+FFFD and share a decision.
    @Test func aLoneSurrogateInPlanIdIsStillRejected() throws {
        let h = EngineHarness()
        let r = h.send(#"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"\ud800"}"#)
        #expect(r.rejection?.reason == .notJSON)
    }
}
