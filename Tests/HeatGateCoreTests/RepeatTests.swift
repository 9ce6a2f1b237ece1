import HeatGateCore
import HeatGateTestSupport
import Testing

/// SPEC §2, repeats: keyed on symbol + plan_id + normalised action; holds for the kill switch or
/// staleness never remembered; a repeat while the switch is on is held by rule 1.
@Suite struct RepeatTests {
    static let equity = #"{"type":"portfolio","equity_usd":"10000"}"#
    static let eth = #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15"}"#

    func proposal(
        _ plan: String, _ action: String = "FULL_CLOSE_PROPOSED", symbol: String = "ETHUSDT", extra: String = ""
    )
        -> String
    {
        #"{"type":"proposal","symbol":"\#(symbol)","harvest_action":"\#(action)","plan_id":"\#(plan)"\#(extra)}"#
    }

    func seq(_ r: EngineHarness.Result) -> UInt64? {
        switch r {
        case .decision(let j): j["seq"]?.number.map { UInt64($0) }
        case .duplicate(let s): s
        default: nil
        }
    }

    func isDuplicate(_ r: EngineHarness.Result) -> Bool {
        if case .duplicate = r { return true }
        return false
    }

    @Test func aRevisedActionUnderOnePlanIsANewProposal() throws {
        var config = GateConfig()
        config.mode = .enforce
        let h = EngineHarness(config)
        h.send(Self.equity)
        h.send(Self.eth)
        let full = try #require(h.decide(proposal("plan-eth")))
        #expect(full["action"]?.string == "PARTIAL_25")
        // The 0.1 gate answered this with the full close's decision: a 25 % exit enlarged to what the
        // full close was calibrated to. It is decided on its own.
        let partial = try #require(h.decide(proposal("plan-eth", "PARTIAL_25")))
        #expect(partial["seq"]?.number == 2)
        #expect(partial["original_action"]?.string == "PARTIAL_25" && partial["action"]?.string == "PARTIAL_25")
        // The same action in another spelling is the same proposal.
        #expect(isDuplicate(h.send(proposal("plan-eth", " full_close "))))
        #expect(seq(h.send(proposal("plan-eth", "FULL_CLOSE"))) == 1)
    }

    @Test func onePlanIdForAnotherSymbolIsANewProposal() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        h.send(#"{"type":"position","symbol":"BTCUSDT","position_notional_usd":"900","sigma":"0.1"}"#)
        _ = try #require(h.decide(proposal("shared")))
        let btc = try #require(h.decide(proposal("shared", symbol: "BTCUSDT")))
        #expect(btc["symbol"]?.string == "BTCUSDT" && btc["seq"]?.number == 2)
    }

    @Test func aStaleHoldIsNotRememberedAndAFreshCopyIsDecided() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let old = #","ts_epoch":\#(Int(h.now) - 120)"#
        let stale = try #require(h.decide(proposal("p-stale", extra: old)))
        #expect(stale["reason"]?.string == "proposal_stale" && stale["calibrated_action"]?.string == "HOLD")
        let fresh = try #require(h.decide(proposal("p-stale", extra: #","ts_epoch":\#(Int(h.now))"#)))
        #expect(fresh["reason"]?.string == "portfolio_heat_cold" && fresh["seq"]?.number == 2)
        // The fresh decision is remembered.
        #expect(isDuplicate(h.send(proposal("p-stale", extra: #","ts_epoch":\#(Int(h.now))"#))))
    }

    @Test func aRepeatWhileTheKillSwitchIsOnIsHeld() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let first = try #require(h.decide(proposal("k1")))
        #expect(first["kill_switch"]?.bool == false)
        h.engine.killSwitch = true
        let held = try #require(h.decide(proposal("k1")))
        #expect(held["seq"]?.number == 2)
        #expect(held["reason"]?.string == "kill_switch" && held["action"]?.string == "HOLD")
        #expect(held["kill_switch"]?.bool == true)
        // The hold is not remembered; the earlier decision still is, once the switch is off.
        h.engine.killSwitch = false
        #expect(seq(h.send(proposal("k1"))) == 1)
    }

    /// Issue 12 item 11: the 0.1 window (131 072 entries, one 4-way set per key) forgot plans within their
    /// TTL from about 440 distinct plans/s. Sized for 500/s × 300 s, every plan of 600/s for a whole TTL
    /// is still remembered (two choices of set hold far past half full).
    @Test func theWindowRemembersEveryPlanOfItsRatedPeakForAWholeTTL() throws {
        var config = GateConfig()
        config.repeatPeakRate = 500
        let h = EngineHarness(config)
        #expect(h.engine.repeats.capacity == 524_288)
        h.send(Self.equity)
        h.send(Self.eth)
        let engine = h.engine
        // The engine directly (no decision encoded and parsed back): 180 000 plans in a debug build.
        func send(_ line: String, at now: Double) -> Outcome {
            Array(line.utf8).withUnsafeBytes { engine.process($0, now: now) }
        }
        let start = h.now
        let total = 600 * 300
        for i in 0..<total {
            let now = start + Double(i) / 600
            if i % 1000 == 0 { _ = send(Self.equity, at: now) }
            guard case .decision(let d, _) = send(proposal("r\(i)"), at: now), d.seq == UInt64(i + 1) else {
                Issue.record("plan r\(i) was not decided once")
                return
            }
        }
        #expect(engine.repeats.evictions == 0)
        // Every plan is still within its TTL: each is a repeat, with its own seq.
        let end = start + Double(total - 1) / 600
        var forgotten = 0
        for i in stride(from: 0, to: total, by: 7) {
            guard case .duplicate(let seq, _) = send(proposal("r\(i)"), at: end), seq == UInt64(i + 1) else {
                forgotten += 1
                continue
            }
        }
        #expect(forgotten == 0)
    }

    @Test func beyondItsCapacityTheWindowCountsWhatItForgets() {
        let window = RepeatWindow(capacity: 64)
        for k in 1...200 { window.insert(UInt64(k) &* 0x9E37_79B9_7F4A_7C15, seq: UInt64(k), expiresAt: 1000, now: 0) }
        #expect(window.evictions == 200 - 64)
        // Expired entries are reused without counting.
        let counted = window.evictions
        for k in 201...264 {
            window.insert(UInt64(k) &* 0x9E37_79B9_7F4A_7C15, seq: UInt64(k), expiresAt: 3000, now: 2000)
        }
        #expect(window.evictions == counted)
    }

    @Test func capacityFollowsTheTTLAndThePeakRate() {
        #expect(RepeatWindow.capacity(ttl: 300, peakRate: 500) == 524_288)
        #expect(RepeatWindow.capacity(ttl: 300, peakRate: 1) == 4096)
        #expect(RepeatWindow.capacity(ttl: 1e9, peakRate: 1e5) == RepeatWindow.maxCapacity)
        var config = GateConfig()
        config.repeatPeakRate = 100_000
        #expect(throws: ConfigError.self) { try config.validate() }
    }
}
