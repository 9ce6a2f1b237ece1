import HeatGateCore
import HeatGateTestSupport
import Testing

/// The incremental heat book of SPEC §1.
@Suite struct BookTests {
    func heat(_ h: EngineHarness) -> Double? {
        let (heat, problem) = h.engine.heatInputs(now: h.now)
        return problem == nil ? heat : nil
    }

    @Test func positionsAddAndRemoveExactly() {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":1000}"#)
        h.send(#"{"type":"position","symbol":"A","notional_usd":-1000,"sigma":0.1}"#)
        #expect(heat(h) == 0.1)
        h.send(#"{"type":"position","symbol":"B","position_notional_usd":"500","volatility":"0.2"}"#)
        #expect(h.engine.totalRiskUSD == 200)
        #expect(h.engine.openPositions == 2)
        // Many updates leave no drift: the sum is kept in integer nano-dollars.
        for i in 0..<10_000 {
            h.send(#"{"type":"position","symbol":"C","position_notional_usd":\#(Double(i) * 0.37),"sigma":0.013}"#)
        }
        h.send(#"{"type":"position","symbol":"C","position_notional_usd":0}"#)
        #expect(h.engine.totalRiskUSD == 200)
        #expect(h.engine.openPositions == 2)
    }

    @Test func sigmaIsTheLatestFromPositionOrMarket() {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":1000}"#)
        h.send(#"{"type":"position","symbol":"A","position_notional_usd":1000,"sigma":0.1}"#)
        h.send(#"{"type":"market","symbol":"A","sigma":0.3}"#)
        #expect(h.engine.totalRiskUSD == 300)
        // A position without sigma keeps the last known one.
        h.send(#"{"type":"position","symbol":"A","position_notional_usd":2000}"#)
        #expect(h.engine.totalRiskUSD == 600)
        h.send(#"{"type":"position","symbol":"A","position_notional_usd":2000,"sigma":0}"#)
        #expect(h.engine.totalRiskUSD == 0)
        #expect(heat(h) == 0)
    }

    @Test func missingSigmaMakesInputsUnusableUntilKnown() {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":1000}"#)
        h.send(#"{"type":"position","symbol":"A","position_notional_usd":1000}"#)
        #expect(h.engine.heatInputs(now: h.now).problem == .sigmaMissing)
        h.send(#"{"type":"market","symbol":"A","sigma":0.05}"#)
        #expect(heat(h) == 0.05)
        // A sigma learnt before the position opens counts too.
        h.send(#"{"type":"market","symbol":"B","sigma":0.1,"price":20}"#)
        h.send(#"{"type":"position","symbol":"B","position_notional_usd":1000}"#)
        #expect(heat(h) == 0.15)
    }

    @Test func positionsMessageReplacesTheBookAtomically() {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":1000}"#)
        h.send(#"{"type":"position","symbol":"OLD","position_notional_usd":1000,"sigma":0.1}"#)
        h.send(
            #"{"type":"positions","positions":[{"symbol":"A","position_notional_usd":100,"sigma":0.1},{"symbol":"B","notional_usd":"200","sigma":"0.1"}]}"#
        )
        #expect(h.engine.openPositions == 2)
        #expect(h.engine.totalRiskUSD == 30)
        // A bad element rejects the whole message and changes nothing.
        let r = h.send(
            #"{"type":"positions","positions":[{"symbol":"C","position_notional_usd":100,"sigma":0.1},{"symbol":"D","position_notional_usd":"x"}]}"#
        )
        #expect(r.rejection?.reason == .wrongType)
        #expect(h.engine.openPositions == 2)
        #expect(h.engine.totalRiskUSD == 30)
    }

    @Test func equityTimeAndStaleness() {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":1000,"ts":1763999900}"#)
        #expect(h.engine.heatInputs(now: h.now).problem == nil)
        h.now += 21
        #expect(h.engine.heatInputs(now: h.now).problem == .equityStale)
        h.send(#"{"type":"portfolio","equity_usd":-5}"#)
        #expect(h.engine.heatInputs(now: h.now).problem == .equityInvalid)
    }

    /// Issue 12 item 12: after `maxSymbols` distinct `market` symbols, every new symbol was refused for
    /// ever. Symbols without a position, idle past the TTL and the state age, are reclaimed.
    @Test func idleSymbolsWithoutAPositionAreReclaimedWhenTheTableIsFull() throws {
        let h = EngineHarness(maxSymbols: 3)
        h.send(#"{"type":"position","symbol":"OPEN","position_notional_usd":"100","sigma":0.1}"#)
        h.send(#"{"type":"market","symbol":"M1","sigma":0.1}"#)
        h.send(#"{"type":"market","symbol":"M2","sigma":0.1}"#)
        #expect(h.send(#"{"type":"market","symbol":"M3","sigma":0.1}"#).rejection?.reason == .tooManySymbols)
        h.now += 301  // past P26_CALIBRATED_TTL_SEC (300) and P26_STATE_MAX_AGE_SEC (120)
        h.send(#"{"type":"market","symbol":"M2","sigma":0.2}"#)  // M2 active again: stays
        guard case .state = h.send(#"{"type":"market","symbol":"M3","sigma":0.1}"#) else {
            Issue.record("an idle symbol must make room")
            return
        }
        #expect(h.engine.takeReclaimedSymbols().map(\.description) == ["M1"])
        #expect(h.engine.symbolId(SymbolKey("M1")!) == nil)
        #expect(h.engine.symbolId(SymbolKey("M2")!) != nil && h.engine.symbolId(SymbolKey("M3")!) != nil)
        // The open position is never reclaimed, however idle; the heat is untouched.
        h.now += 1000
        #expect(h.engine.totalRiskUSD == 10)
        h.send(#"{"type":"market","symbol":"M4","sigma":0.1}"#)
        h.send(#"{"type":"market","symbol":"M5","sigma":0.1}"#)
        #expect(h.engine.symbolId(SymbolKey("OPEN")!) != nil)
        #expect(h.engine.openPositions == 1 && h.engine.totalRiskUSD == 10)
        #expect(h.engine.reclaimedTotal == 3)
    }

    @Test func symbolLimitRefusesNewSymbolsOnly() {
        let h = EngineHarness()
        let engine = Engine(maxSymbols: 2)
        let send = { (line: String) -> Outcome in
            Array(line.utf8).withUnsafeBytes { engine.process($0, now: h.now) }
        }
        _ = send(#"{"type":"market","symbol":"A","sigma":0.1}"#)
        _ = send(#"{"type":"market","symbol":"B","sigma":0.1}"#)
        guard case .rejected(let r) = send(#"{"type":"market","symbol":"C","sigma":0.1}"#) else {
            Issue.record("a third symbol must be refused")
            return
        }
        #expect(r.reason == .tooManySymbols)
        guard case .state = send(#"{"type":"market","symbol":"A","sigma":0.2}"#) else {
            Issue.record("a known symbol still updates")
            return
        }
    }
}

/// Every rejection reason of SPEC §3; the next valid message is still decided.
@Suite struct RejectionTests {
    static let cases: [(String, RejectReason)] = [
        ("not json", .notJSON),
        (#"{"type":"proposal","symbol":"A""#, .notJSON),
        (#"{"type":"proposal",}"#, .notJSON),
        (#"[1,2]"#, .notObject),
        (#"{"symbol":"A"}"#, .missingType),
        (#"{"type":"trade","symbol":"A"}"#, .unknownType),
        (#"{"type":7}"#, .wrongType),
        (#"{"type":"proposal","harvest_action":"FULL_CLOSE"}"#, .missingField),
        (#"{"type":"proposal","symbol":"ETHUSDT"}"#, .missingField),
        (#"{"type":"proposal","symbol":"ETHUSDT","harvest_action":5}"#, .wrongType),
        (#"{"type":"proposal","symbol":"ETH USDT","harvest_action":"FULL_CLOSE"}"#, .badSymbol),
        (#"{"type":"proposal","symbol":"","harvest_action":"FULL_CLOSE"}"#, .badSymbol),
        (
            #"{"type":"proposal","symbol":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","harvest_action":"FULL_CLOSE"}"#,
            .badSymbol
        ),
        (#"{"type":"proposal","symbol":"ETH\"USDT","harvest_action":"FULL_CLOSE"}"#, .badSymbol),
        (
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"\#(String(repeating: "p", count: 129))"}"#,
            .planIdTooLong
        ),
        (#"{"type":"portfolio","equity_usd":"NaN"}"#, .nonFinite),
        (#"{"type":"portfolio","equity_usd":"-Infinity"}"#, .nonFinite),
        (#"{"type":"portfolio","equity_usd":1e400}"#, .nonFinite),
        (#"{"type":"portfolio","equity_usd":"lots"}"#, .wrongType),
        (#"{"type":"portfolio"}"#, .missingField),
        (#"{"type":"position","symbol":"A","position_notional_usd":10,"sigma":-0.1}"#, .negative),
        (#"{"type":"market","symbol":"A","price":-1}"#, .negative),
        (#"{"type":"market","symbol":"A"}"#, .missingField),
        (#"{"type":"position","symbol":"A","sigma":0.1}"#, .missingField),
        (#"{"type":"positions","positions":{}}"#, .wrongType),
        (#"{"type":"proposal","symbol":"A","harvest_action":"FULL_CLOSE","ts_epoch":"soon"}"#, .badTimestamp),
        (
            #"{"type":"proposal","symbol":"A","harvest_action":"FULL_CLOSE","computed_at_utc":"yesterday"}"#,
            .badTimestamp
        ),
    ]

    @Test(arguments: cases)
    func rejected(line: String, reason: RejectReason) throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":10000}"#)
        h.send(#"{"type":"position","symbol":"ETHUSDT","position_notional_usd":1800,"sigma":0.15}"#)
        let before = h.engine.nextSeq
        let r = try #require(h.send(line).rejection, "\(line) should be rejected")
        #expect(r.reason == reason, "\(line): \(r)")
        #expect(h.engine.nextSeq == before)
        let d = h.decide(#"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"after"}"#)
        #expect(d?["reason"]?.string == "portfolio_heat_cold")
    }

    @Test func oversizedFrameIsRejected() throws {
        let h = EngineHarness()
        let big = #"{"type":"market","symbol":"A","sigma":0.1,"pad":""# + String(repeating: "x", count: 70_000) + "\"}"
        #expect(h.send(big).rejection?.reason == .frameTooLarge)
    }

    @Test func invalidUTF8IsRejectedValidUTF8PassesThrough() throws {
        let h = EngineHarness()
        h.send(#"{"type":"portfolio","equity_usd":10000}"#)
        for bad: [UInt8] in [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80]] {
            let line =
                Array(#"{"type":"proposal","symbol":"A","harvest_action":"HOLD","note":""#.utf8) + bad
                + Array("\"}".utf8)
            let outcome = line.withUnsafeBytes { h.engine.process($0, now: h.now) }
            guard case .rejected(let r) = outcome else {
                Issue.record("\(bad) must be rejected")
                continue
            }
            #expect(r.reason == .notJSON)
        }
        let d = h.decide(#"{"type":"proposal","symbol":"A","harvest_action":"HOLD","note":"€ 😀 ü"}"#)
        #expect(d?["proposal"]?["note"]?.string == "€ 😀 ü")
    }

    @Test func deepNestingIsRejectedNotACrash() throws {
        let h = EngineHarness()
        let deep =
            #"{"type":"proposal","x":"# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            + "}"
        #expect(h.send(deep).rejection?.reason == .notJSON)
    }
}

/// The configuration of SPEC §6.
@Suite struct ConfigTests {
    @Test(arguments: [
        ("HEAT_MIN=0.7\nHEAT_MAX=0.3\n", "HEAT_MIN"),
        ("P26_MODE=banana\n", "P26_MODE"),
        ("HEAT_WARM_ACTION=SELL\n", "HEAT_WARM_ACTION"),
        ("P26_FAIL_MODE=maybe\n", "P26_FAIL_MODE"),
        ("P26_STATE_MAX_AGE_SEC=-1\n", "P26_STATE_MAX_AGE_SEC"),
        ("P26_METRICS_PORT=70000\n", "P26_METRICS_PORT"),
        ("P26_INGEST_ENDPOINT=localhost:5556\n", "P26_INGEST_ENDPOINT"),
        ("P26_MOED=enforce\n", "P26_MOED"),
        ("HEAT_MIN=abc\n", "HEAT_MIN"),
    ])
    func invalidValuesNameTheKey(text: String, key: String) {
        #expect(throws: ConfigError.self) { try ConfigLoader.load(fileText: text) }
        do {
            _ = try ConfigLoader.load(fileText: text)
        } catch {
            #expect(error.key == key)
            #expect(error.description.contains(key))
        }
    }

    @Test func acceptsCRLFQuotesCommentsAndAnyCase() throws {
        let text =
            "# heat gate\r\nP26_MODE=ENFORCE\r\nHEAT_MIN=\"0.2\"\r\nexport HEAT_MAX='0.7'\r\nHEAT_COLD_ACTION=partial_50 # keep more\r\n\r\n"
        let c = try ConfigLoader.load(fileText: text)
        #expect(c.mode == .enforce)
        #expect(c.heatMin == 0.2 && c.heatMax == 0.7)
        #expect(c.coldAction == .partial50)
    }

    @Test func laterSourcesWin() throws {
        let c = try ConfigLoader.load(
            fileText: "P26_MODE=enforce\nHEAT_MIN=0.1\n", environment: ["HEAT_MIN": "0.2", "P26_MODE": "shadow"],
            overrides: [("P26_MODE", "enforce")])
        #expect(c.heatMin == 0.2)
        #expect(c.mode == .enforce)
        #expect(c.controlEndpoint == "ipc://./data/control.sock")
    }
}
