import HeatGateCore
import HeatGateTestSupport
import Testing

/// The rollback guard (issue 16): counters in the engine, decided on the decision path.
@Suite struct GuardTests {
    static let equity = #"{"type":"portfolio","equity_usd":"10000"}"#
    /// Heat 0.027: COLD, every full close becomes PARTIAL_25.
    static let cold = #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15"}"#
    /// Heat 0.9: HOT, full closes stay full closes.
    static let hot = #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"60000","sigma":"0.15"}"#

    func close(_ plan: String) -> String {
        #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"\#(plan)"}"#
    }

    func config(enabled: Bool = true, mode: String = "enforce", _ extra: [(String, String)] = []) throws -> GateConfig {
        var c = GateConfig()
        try c.set("P26_MODE", mode)
        try c.set("P26_GUARD_ENABLED", enabled ? "true" : "false")
        try c.set("P26_GUARD_WINDOW_SEC", "64")
        try c.set("P26_GUARD_MIN_FULL_CLOSES", "10")
        try c.set("P26_GUARD_MAX_DOWNGRADE_SHARE", "0.8")
        for (k, v) in extra { try c.set(k, v) }
        return c
    }

    @Test func aDowngradeStormSwitchesToShadowFromTheNextProposal() throws {
        let h = EngineHarness(try config())
        h.send(Self.equity)
        h.send(Self.cold)
        var modes: [String] = []
        for i in 1...15 {
            h.now += 0.5
            modes.append(h.decide(close("s\(i)"))?["mode"]?.string ?? "?")
        }
        // The 10th full close makes 10 of 10 downgraded (> 80 %): it was enforced, the 11th is not.
        #expect(modes == Array(repeating: "enforce", count: 10) + Array(repeating: "shadow", count: 5))
        let trip = try #require(h.engine.guardTrip)
        #expect(trip.reason == .downgradeShare)
        #expect(trip.fullCloses == 10 && trip.downgraded == 10 && trip.lastEnforcedSeq == 10)
        #expect(h.engine.policy.mode == .shadow)
    }

    @Test func aNormalSequenceNeverTrips() throws {
        let h = EngineHarness(try config())
        h.send(Self.equity)
        for i in 1...200 {
            h.now += 0.5
            // Half the book's time HOT: half the full closes go through, 50 % < 80 %.
            h.send(i % 2 == 0 ? Self.hot : Self.cold)
            #expect(h.decide(close("n\(i)"))?["mode"]?.string == "enforce")
        }
        #expect(h.engine.guardTrip == nil)
    }

    @Test func offByDefaultAndOnlyInEnforceMode() throws {
        #expect(GateConfig().guardSettings.enabled == false)
        for c in [try config(enabled: false), try config(mode: "shadow")] {
            let h = EngineHarness(c)
            h.send(Self.equity)
            h.send(Self.cold)
            for i in 1...50 {
                h.now += 0.1
                h.send(close("o\(i)"))
            }
            #expect(h.engine.guardTrip == nil)
            #expect(h.engine.policy.mode == c.mode)
        }
    }

    @Test func theWindowSlides() throws {
        let h = EngineHarness(try config())
        h.send(Self.equity)
        h.send(Self.cold)
        for i in 1...9 {
            h.now += 1
            h.send(close("a\(i)"))
        }
        // 70 s later the first nine left the 64 s window: nine more are still fewer than ten.
        h.now += 70
        for i in 1...9 {
            h.now += 1
            h.send(close("b\(i)"))
        }
        #expect(h.engine.guardTrip == nil)
        h.now += 1
        #expect(h.decide(close("b10"))?["mode"]?.string == "enforce")
        #expect(h.engine.guardTrip?.reason == .downgradeShare)
        #expect(h.engine.guardTrip?.fullCloses == 10)
    }

    @Test func inputsUnusableTooLongDecideThatProposalInShadow() throws {
        let h = EngineHarness(
            try config([("P26_GUARD_MAX_INPUTS_BAD_SEC", "30"), ("P26_GUARD_MIN_FULL_CLOSES", "1000")]))
        h.send(Self.equity)
        h.send(Self.cold)
        #expect(h.decide(close("i1"))?["mode"]?.string == "enforce")
        // Stale after 120 s; 20 s past that is within the limit (fail-closed, still enforced).
        h.now += 140
        let within = try #require(h.decide(close("i2")))
        #expect(within["mode"]?.string == "enforce" && within["reason"]?.string == "equity_stale")
        h.now += 15
        let past = try #require(h.decide(close("i3")))
        #expect(past["mode"]?.string == "shadow")
        #expect(h.engine.guardTrip?.reason == .inputsUnusable)
        #expect(h.engine.guardTrip.map { $0.inputsBadSec > 30 && $0.inputsBadSec < 40 } == true)
    }

    @Test func freshInputsEndTheStretch() throws {
        let h = EngineHarness(
            try config([("P26_GUARD_MAX_INPUTS_BAD_SEC", "30"), ("P26_GUARD_MIN_FULL_CLOSES", "1000")]))
        h.send(Self.equity)
        h.send(Self.cold)
        h.now += 140
        h.send(close("f1"))
        h.send(Self.equity)
        h.now += 20
        h.send(close("f2"))
        h.now += 130
        // Stale again since 10 s only: the earlier stretch does not count.
        #expect(h.decide(close("f3"))?["mode"]?.string == "enforce")
        #expect(h.engine.guardTrip == nil)
    }

    @Test func keptPartsLosingMoreThanTheLimitTrip() throws {
        let h = EngineHarness(
            try config([("P26_GUARD_MAX_KEPT_LOSS_USD", "100"), ("P26_GUARD_MIN_FULL_CLOSES", "1000")]))
        h.send(Self.equity)
        h.send(Self.cold)
        h.send(#"{"type":"market","symbol":"ETHUSDT","price":"100"}"#)
        h.send(close("k1"))  // PARTIAL_25 keeps 0.75 x 1800 = 1350 USD open
        h.now += 1
        h.send(#"{"type":"market","symbol":"ETHUSDT","price":"95"}"#)  // -67.5 USD
        #expect(h.decide(close("k2"))?["mode"]?.string == "enforce")
        #expect(h.engine.guardTrip == nil)
        h.now += 1
        h.send(#"{"type":"market","symbol":"ETHUSDT","price":"92"}"#)  // k1 -108, k2 -1350 x 3/95
        #expect(h.decide(close("k3"))?["mode"]?.string == "enforce")
        #expect(h.engine.guardTrip?.reason == .keptLoss)
        #expect(h.engine.guardTrip.map { abs($0.keptPnLUSD - (-108 - 1350 * 3 / 95.0)) < 1e-6 } == true)
        #expect(h.decide(close("k4"))?["mode"]?.string == "shadow")
    }

    @Test func onlyModeEnforceClearsATrip() throws {
        let c = try config()
        let h = EngineHarness(c)
        h.send(Self.equity)
        h.send(Self.cold)
        for i in 1...10 { h.send(close("c\(i)")) }
        #expect(h.engine.guardTrip != nil)
        // A reload of the same file in shadow (the daemon keeps shadow while tripped) leaves the trip.
        var shadow = c
        shadow.mode = .shadow
        h.engine.policy = Policy(shadow)
        #expect(h.engine.guardTrip != nil)
        h.engine.policy = Policy(c)
        #expect(h.engine.guardTrip == nil)
        // Re-armed with empty counters: nine more downgrades do not trip.
        for i in 1...9 { h.send(close("d\(i)")) }
        #expect(h.engine.guardTrip == nil)
        #expect(h.decide(close("d10"))?["mode"]?.string == "enforce")
        #expect(h.engine.guardTrip != nil)
    }

    /// The share limit is judged only when a downgrade could pass it (`untilCheck`): random mixes of kept
    /// and downgraded full closes, over several slots, trip exactly where judging every decision would.
    @Test func theShareTripsWhereJudgingEveryDecisionWould() throws {
        for share in ["0", "0.3", "0.6", "0.75", "0.9", "1"] {
            for seed in UInt64(1)...12 {
                let h = EngineHarness(try config([("P26_GUARD_MAX_DOWNGRADE_SHARE", share)]))
                let limit = Double(share)!
                h.send(Self.equity)
                var rng = seed &* 0x9E37_79B9_7F4A_7C15
                var full = 0
                var down = 0
                var tripAt: Int?
                for i in 1...300 {
                    // SplitMix64; the chance of a downgrade rises from 10 % to 100 % over the first 60 closes.
                    rng &+= 0x9E37_79B9_7F4A_7C15
                    var z = rng
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    z ^= z >> 31
                    let cold = Double(z >> 11) / Double(1 << 53) < 0.1 + 0.9 * min(1, Double(i) / 60)
                    h.now += 0.15  // 45 s in all: several slots, none leaves the 64 s window
                    h.send(cold ? Self.cold : Self.hot)
                    let mode = h.decide(close("r\(seed)-\(i)"))?["mode"]?.string
                    #expect(mode == (tripAt == nil ? "enforce" : "shadow"), "share \(share) seed \(seed) #\(i)")
                    guard tripAt == nil else { continue }
                    full += 1
                    if cold { down += 1 }
                    if cold && full >= 10 && Double(down) > limit * Double(full) { tripAt = i }
                }
                let trip = h.engine.guardTrip
                // Every share below 1 is passed before the end; a share of 1 never is.
                #expect((tripAt != nil) == (limit < 1), "share \(share) seed \(seed)")
                #expect((trip == nil) == (tripAt == nil), "share \(share) seed \(seed)")
                if let trip, tripAt != nil {
                    #expect(trip.reason == .downgradeShare && trip.fullCloses == full && trip.downgraded == down)
                }
            }
        }
    }
}
