import HeatGateCore
import HeatGateTestSupport
import Testing

/// The worked examples of the issue and every row of SPEC §2's table.
@Suite struct CalibrationTests {
    static let equity = #"{"type":"portfolio","equity_usd":"10000"}"#
    static let eth = #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15"}"#

    func proposal(_ action: String = "FULL_CLOSE_PROPOSED", plan: String = "p1", extra: String = "") -> String {
        #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"\#(action)","plan_id":"\#(plan)"\#(extra)}"#
    }

    @Test func coldBookDowngradesFullCloseToPartial25() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let d = try #require(h.decide(proposal()))
        #expect(d["heat_value"]?.number == 0.027)
        #expect(d["heat_bucket"]?.string == "COLD")
        #expect(d["calibrated_action"]?.string == "PARTIAL_25")
        #expect(d["action"]?.string == "FULL_CLOSE_PROPOSED")
        #expect(d["original_action"]?.string == "FULL_CLOSE_PROPOSED")
        #expect(d["reason"]?.string == "portfolio_heat_cold")
        #expect(d["mode"]?.string == "shadow")
        #expect(d["downgraded"]?.bool == true)
        #expect(d["seq"]?.number == 1)
        #expect(d["positions"]?.number == 1)
        #expect(d["total_risk_usd"]?.number == 270)
        #expect(d["equity_usd"]?.number == 10000)
        #expect(d["fail_closed"]?.bool == false)
        #expect(d["kill_switch"]?.bool == false)
        #expect(d["proposal"]?["plan_id"]?.string == "p1")
        #expect(d["expires_at"]?.number == d["ts"]!.number! + 300)
    }

    @Test func warmBookDowngradesToPartial75() throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":"3000"}"#)
        h.send(Self.eth)
        h.send(#"{"type":"position","symbol":"BTCUSDT","position_notional_usd":3000,"sigma":0.2}"#)
        let d = try #require(h.decide(proposal()))
        #expect(d["heat_value"]?.number == 0.29)
        #expect(d["heat_bucket"]?.string == "WARM")
        #expect(d["calibrated_action"]?.string == "PARTIAL_75")
        #expect(d["reason"]?.string == "portfolio_heat_warm")
    }

    @Test func hotBookPassesTheOriginalTokenUnchanged() throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":"1000"}"#)
        h.send(Self.eth)
        h.send(#"{"type":"position","symbol":"BTCUSDT","position_notional_usd":3000,"sigma":0.2}"#)
        let d = try #require(h.decide(proposal()))
        #expect(d["heat_value"]?.number == 0.87)
        #expect(d["heat_bucket"]?.string == "HOT")
        #expect(d["calibrated_action"]?.string == "FULL_CLOSE_PROPOSED")
        #expect(d["downgraded"]?.bool == false)
        #expect(d["reason"]?.string == "portfolio_heat_hot")
    }

    @Test(arguments: ["10000", "3000", "1000"])
    func partial50PassesUnchangedInEveryBucket(equity: String) throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":"\#(equity)"}"#)
        h.send(Self.eth)
        h.send(#"{"type":"position","symbol":"BTCUSDT","position_notional_usd":3000,"sigma":0.2}"#)
        let d = try #require(h.decide(proposal("PARTIAL_50")))
        #expect(d["calibrated_action"]?.string == "PARTIAL_50")
        #expect(d["reason"]?.string == "partial_unchanged")
        #expect(d["downgraded"]?.bool == false)
        #expect(d["heat_bucket"]?.string != "UNKNOWN")
    }

    /// 0.25 is WARM and 0.65 is HOT: the lower bound of each band belongs to it.
    @Test(arguments: [
        ("2500", "0.1", "WARM"), ("2499", "0.1", "COLD"), ("6500", "0.1", "HOT"), ("6499", "0.1", "WARM"),
    ])
    func bucketBoundaries(notional: String, sigma: String, bucket: String) throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":1000}"#)
        h.send(#"{"type":"position","symbol":"ETHUSDT","position_notional_usd":\#(notional),"sigma":\#(sigma)}"#)
        let d = try #require(h.decide(proposal()))
        #expect(d["heat_bucket"]?.string == bucket)
    }

    /// One case per row of the calibration table, in table order.
    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var setup: [String]
        var action: String
        var config: [(String, String)] = []
        var kill = false
        var extra = ""
        var calibrated: String
        var reason: String
        var failClosed = false
        var failOpen = false
        var description: String { name }
    }

    static let ready = [equity, eth]
    static let rows: [Row] = [
        Row(
            name: "1 kill switch", setup: ready, action: "FULL_CLOSE", kill: true, calibrated: "HOLD",
            reason: "kill_switch"),
        Row(
            name: "2 stale proposal", setup: ready, action: "FULL_CLOSE", extra: #","ts_epoch":1763999900"#,
            calibrated: "HOLD", reason: "proposal_stale"),
        Row(
            name: "2 future proposal", setup: ready, action: "FULL_CLOSE", extra: #","ts_epoch":1764000006"#,
            calibrated: "HOLD", reason: "proposal_stale"),
        Row(
            name: "3 unknown action", setup: ready, action: "SELL_ALL", calibrated: "SELL_ALL", reason: "unknown_action"
        ),
        Row(
            name: "4 partial", setup: ready, action: "partial_25_proposed", calibrated: "partial_25_proposed",
            reason: "partial_unchanged"),
        Row(
            name: "4 update_sl", setup: ready, action: "UPDATE_SL", calibrated: "UPDATE_SL",
            reason: "non_full_close_unchanged"),
        Row(name: "4 hold", setup: ready, action: "HOLD", calibrated: "HOLD", reason: "non_full_close_unchanged"),
        Row(name: "4 none", setup: ready, action: "NONE", calibrated: "NONE", reason: "non_full_close_unchanged"),
        Row(
            name: "5 equity missing, closed", setup: [eth], action: "FULL_CLOSE", calibrated: "PARTIAL_25",
            reason: "equity_missing", failClosed: true),
        Row(
            name: "5 equity stale, closed", setup: [#"{"type":"portfolio","equity_usd":10000,"ts":1763999000}"#, eth],
            action: "FULL_CLOSE", calibrated: "PARTIAL_25", reason: "equity_stale", failClosed: true),
        Row(
            name: "5 equity invalid, closed", setup: [#"{"type":"portfolio","equity_usd":0}"#, eth],
            action: "FULL_CLOSE", calibrated: "PARTIAL_25", reason: "equity_invalid", failClosed: true),
        Row(
            name: "5 sigma missing, closed",
            setup: [equity, #"{"type":"position","symbol":"XRPUSDT","position_notional_usd":100}"#],
            action: "FULL_CLOSE", calibrated: "PARTIAL_25", reason: "sigma_missing", failClosed: true),
        Row(
            name: "6 equity missing, open", setup: [eth], action: "FULL_CLOSE", config: [("P26_FAIL_MODE", "open")],
            calibrated: "FULL_CLOSE", reason: "equity_missing", failOpen: true),
        Row(
            name: "7 cold", setup: ready, action: "FULL_CLOSE", calibrated: "PARTIAL_25", reason: "portfolio_heat_cold"),
        Row(
            name: "7 cold, configured", setup: ready, action: "FULL_CLOSE",
            config: [("HEAT_COLD_ACTION", "partial_50")],
            calibrated: "PARTIAL_50", reason: "portfolio_heat_cold"),
        Row(
            name: "8 warm", setup: ready, action: "FULL_CLOSE", config: [("HEAT_MIN", "0.01")],
            calibrated: "PARTIAL_75", reason: "portfolio_heat_warm"),
        Row(
            name: "9 hot", setup: ready, action: "FULL_CLOSE", config: [("HEAT_MIN", "0.01"), ("HEAT_MAX", "0.02")],
            calibrated: "FULL_CLOSE", reason: "portfolio_heat_hot"),
        Row(
            name: "9 hot, configured", setup: ready, action: "FULL_CLOSE",
            config: [("HEAT_MIN", "0.01"), ("HEAT_MAX", "0.02"), ("HEAT_HOT_ACTION", "PARTIAL_75")],
            calibrated: "PARTIAL_75", reason: "portfolio_heat_hot"),
    ]

    @Test(arguments: rows)
    func calibrationTable(row: Row) throws {
        let config = try ConfigLoader.load(fileText: nil, overrides: row.config)
        let h = EngineHarness(config)
        for line in row.setup { #expect(h.send(line).rejection == nil, "\(line)") }
        h.engine.killSwitch = row.kill
        let d = try #require(h.decide(proposal(row.action, extra: row.extra)))
        #expect(d["calibrated_action"]?.string == row.calibrated)
        #expect(d["reason"]?.string == row.reason)
        #expect(d["fail_closed"]?.bool == row.failClosed)
        #expect(d["fail_open"]?.bool == row.failOpen)
        #expect(d["kill_switch"]?.bool == row.kill)
        #expect(d["original_action"]?.string == row.action)
        // Shadow mode: the original passes, except that the kill switch holds in every mode.
        #expect(d["action"]?.string == (row.kill ? "HOLD" : row.action))
        let usable = !(row.reason.hasPrefix("equity") || row.reason.hasPrefix("sigma"))
        #expect((d["heat_value"] == .null) == !usable)
        #expect((d["heat_bucket"]?.string == "UNKNOWN") == !usable)
    }

    @Test func enforceModeMakesTheCalibratedActionEffective() throws {
        let h = EngineHarness(try ConfigLoader.load(fileText: "P26_MODE=ENFORCE\n"))
        h.send(Self.equity)
        h.send(Self.eth)
        let d = try #require(h.decide(proposal()))
        #expect(d["mode"]?.string == "enforce")
        #expect(d["action"]?.string == "PARTIAL_25")
        #expect(d["calibrated_action"]?.string == "PARTIAL_25")
    }

    /// Monotonic: whatever the bucket actions, a calibration never exits more than proposed.
    @Test func neverALargerExitThanProposed() throws {
        for (bucketKey, heatMin, heatMax) in [
            ("HEAT_COLD_ACTION", "0.25", "0.65"), ("HEAT_WARM_ACTION", "0.01", "0.65"),
        ] {
            for target in Action.allCases {
                let config = try ConfigLoader.load(
                    fileText: nil, overrides: [(bucketKey, target.token), ("HEAT_MIN", heatMin), ("HEAT_MAX", heatMax)])
                for original in Action.allCases {
                    let h = EngineHarness(config)
                    h.send(Self.equity)
                    h.send(Self.eth)
                    let d = try #require(h.decide(proposal(original.token, plan: "m-\(original)")))
                    let calibrated = try #require(Action(token: d["calibrated_action"]!.string!))
                    #expect(calibrated.exitPercent <= original.exitPercent, "\(original) -> \(calibrated)")
                }
            }
        }
    }

    @Test func dedupeReturnsTheSameSeqAndCountsOnce() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let first = try #require(h.decide(proposal()))
        guard case .duplicate(let seq) = h.send(proposal()) else {
            Issue.record("expected a duplicate")
            return
        }
        #expect(seq == 1 && first["seq"]?.number == 1)
        // After the TTL the same plan is decided anew.
        h.now += 301
        h.send(#"{"type":"portfolio","equity_usd":"10000"}"#)
        #expect(h.decide(proposal())?["seq"]?.number == 2)
        #expect(h.engine.nextSeq == 3)
    }

    @Test func derivedPlanIdIsStableForARepublishedProposal() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let line =
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE_PROPOSED","ts_epoch":1764000000,"ts":"0.45"}"#
        let d = try #require(h.decide(line))
        let plan = try #require(d["plan_id"]?.string)
        #expect(plan.hasPrefix("hg-") && plan.count == 19)
        #expect(d["trace_id"]?.string?.count == 32)
        guard case .duplicate = h.send(line) else {
            Issue.record("a republished identical proposal must be a duplicate")
            return
        }
        // Without a time, all of the fields make the id: a different field, a different plan.
        let a = try #require(h.decide(#"{"type":"proposal","symbol":"ETHUSDT","action":"FULL_CLOSE","note":"a"}"#))
        let b = try #require(h.decide(#"{"type":"proposal","symbol":"ETHUSDT","action":"FULL_CLOSE","note":"b"}"#))
        #expect(a["plan_id"] != b["plan_id"])
        guard case .duplicate = h.send(#"{"note":"a","action":"FULL_CLOSE","symbol":"ETHUSDT","type":"proposal"}"#)
        else {
            Issue.record("field order must not change the derived id")
            return
        }
    }

    /// The producer's `ts` is trend strength: "0.45" must not be read as a time (it would be 1970, so stale).
    @Test func producerTsIsNotAProposalTime() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let d = try #require(h.decide(proposal(extra: #","ts":"0.45","confidence":0.8"#)))
        #expect(d["reason"]?.string == "portfolio_heat_cold")
        #expect(d["proposal"]?["ts"]?.string == "0.45")
        #expect(d["proposal"]?["confidence"]?.number == 0.8)
    }

    @Test(arguments: [
        (#","ts_epoch":1763999950"#, "portfolio_heat_cold"),
        (#","ts_epoch":"1763999930""#, "proposal_stale"),
        (#","timestamp":1763999950000"#, "portfolio_heat_cold"),
        (#","timestamp":1763999900000"#, "proposal_stale"),
        (#","last_update_epoch":1764000004"#, "portfolio_heat_cold"),
        (#","last_update_epoch":1764000010"#, "proposal_stale"),
        (#","computed_at_utc":"2025-11-24T16:00:00Z""#, "portfolio_heat_cold"),
        (#","computed_at_utc":"2025-11-24T15:58:00+00:00""#, "proposal_stale"),
        (#","ts_epoch":1763999950,"timestamp":1"#, "portfolio_heat_cold"),
    ])
    func proposalTimes(extra: String, reason: String) throws {
        // 1_764_000_000 is 2025-11-24T16:00:00Z.
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let d = try #require(h.decide(proposal(extra: extra)))
        #expect(d["reason"]?.string == reason)
    }

    @Test func actionTokensAreReadLeniently() {
        #expect(Action(token: " full_close_proposed ") == .fullClose)
        #expect(Action(token: "Partial_75") == .partial75)
        #expect(Action(token: "UPDATE_SL_PROPOSED") == .updateSL)
        #expect(Action(token: "_PROPOSED") == nil)
        #expect(Action(token: "FULL_CLOSE_PROPOSED_PROPOSED") == nil)
        #expect(Action(token: "CLOSE") == nil)
    }

    @Test func harvestActionWinsOverAction() throws {
        let h = EngineHarness()
        h.send(Self.equity)
        h.send(Self.eth)
        let d = try #require(
            h.decide(
                #"{"type":"proposal","symbol":"ETHUSDT","action":"HOLD","harvest_action":"FULL_CLOSE","plan_id":"x"}"#))
        #expect(d["original_action"]?.string == "FULL_CLOSE")
    }
}
