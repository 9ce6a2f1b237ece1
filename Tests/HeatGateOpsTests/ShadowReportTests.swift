import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateTestSupport
import Testing

/// Journals with known answers, generated through the real engine and store, and every figure of the
/// report checked against them.
@Suite("Shadow report")
struct ShadowReportTests {
    /// COLD → WARM → HOT. BTC long 10 000 USD (σ 1) alone is heat 0.1 (COLD); ETH short 20 000 (σ 2) makes
    /// it 0.5 (WARM); SOL 30 000 (σ 1) 0.8 (HOT). A full close in each bucket, a partial in WARM.
    /// BTC: 100 at the downgrade, 99.8 on the way, `btcAtHorizon` 900 s later. ETH (short): 2000 → 1990.
    static func threeBuckets(btcAtHorizon: Double = 101) -> Tape {
        var t = Tape()
        t.portfolio(0, equity: 100_000)
        t.position(1, "BTC", notional: 10_000, sigma: 1)
        t.price(2, "BTC", 100)
        t.propose(10, "BTC", "full_close_proposed")
        t.position(300, "ETH", notional: -20_000, sigma: 2)
        t.price(301, "ETH", 2000)
        t.propose(400, "ETH")
        t.price(500, "BTC", 99.8)
        t.propose(600, "ETH", "PARTIAL_50")
        t.price(910, "BTC", btcAtHorizon)
        t.price(1300, "ETH", 1990)
        t.position(1400, "SOL", notional: 30_000, sigma: 1)
        t.propose(1500, "SOL")
        return t
    }

    @Test("every figure of a COLD/WARM/HOT journal, and PROCEED")
    func proceed() throws {
        let dir = try Self.threeBuckets().journal()
        let r = try analyze(dir)
        #expect(r.from == Tape.t0)
        #expect(r.to == Tape.t0 + 1500)
        #expect(r.decisions == 4)
        #expect(r.modes.map(\.mode) == ["shadow"])
        #expect(r.fullCloses == 3)
        #expect(r.downgraded == 2)
        #expect(close(r.downgradeRate, 2.0 / 3))
        #expect(r.bucket("COLD") == BucketFigures(bucket: "COLD", fullCloses: 1, downgraded: 1, seconds: 300))
        #expect(r.bucket("WARM") == BucketFigures(bucket: "WARM", fullCloses: 1, downgraded: 1, seconds: 1100))
        #expect(r.bucket("HOT") == BucketFigures(bucket: "HOT", fullCloses: 1, downgraded: 0, seconds: 100))
        #expect(r.bucket("UNKNOWN") == BucketFigures(bucket: "UNKNOWN"))
        #expect(r.totalSeconds == 1500)
        #expect(r.coldWarmFullCloses == 2 && r.coldWarmDowngraded == 2 && r.coldWarmRate == 1)
        #expect(r.failClosedTotal == 0 && r.heldByKillSwitch == 0 && r.heldStale == 0)

        #expect(r.outcomes.count == 2)
        let btc = try #require(r.outcomes.first { $0.symbol == "BTC" })
        #expect(btc.seq == 1 && btc.ts == Tape.t0 + 10 && btc.bucket == "COLD")
        #expect(btc.original == "full_close_proposed" && btc.calibrated == "PARTIAL_25")
        #expect(btc.keptFraction == 0.75 && btc.side == 1 && btc.sideKnown && btc.notionalUSD == 10_000)
        #expect(btc.keptUSD == 7_500)
        #expect(btc.entryPrice == 100 && btc.exitPrice == 101)
        #expect(close(btc.pnlBps, 100))
        #expect(close(btc.pnlUSD, 75))
        #expect(close(btc.worstBps, -20))
        #expect(btc.status == .evaluated && !btc.falsePositive)

        let eth = try #require(r.outcomes.first { $0.symbol == "ETH" })
        #expect(eth.seq == 2 && eth.bucket == "WARM" && eth.calibrated == "PARTIAL_75")
        #expect(eth.keptFraction == 0.25 && eth.side == -1 && eth.notionalUSD == 20_000 && eth.keptUSD == 5_000)
        #expect(eth.entryPrice == 2000 && eth.exitPrice == 1990)
        #expect(close(eth.pnlBps, 50))  // a short gains when the price falls
        #expect(close(eth.pnlUSD, 25))
        #expect(close(eth.worstBps, 50))

        #expect(r.evaluated == 2 && r.pending == 0 && r.unpriced == 0 && r.falsePositives == 0)
        #expect(close(r.pnlUSD, 100))
        #expect(close(r.meanBps, 75))
        #expect(r.verdict == .proceed)
        #expect(r.verdictReasons.first?.contains("2 of 2 full closes in COLD/WARM downgraded (100.0 %)") == true)

        // The chart: the step function from the first record, decisions marked as such.
        #expect(r.samples.first?.ts == Tape.t0 && r.samples.first?.heat == 0)
        #expect(r.samples.filter(\.fromDecision).map(\.heat) == [0.1, 0.5, 0.5, 0.8])
        #expect(r.samples.last?.bucket == "HOT")
    }

    @Test("a price path that drops after a downgrade is a false positive: HOLD")
    func falsePositive() throws {
        let dir = try Self.threeBuckets(btcAtHorizon: 99.4).journal()
        let r = try analyze(dir)
        let btc = try #require(r.outcomes.first { $0.symbol == "BTC" })
        #expect(close(btc.pnlBps, -60))
        #expect(close(btc.pnlUSD, -45))
        #expect(close(btc.worstBps, -60))
        #expect(btc.falsePositive)
        #expect(r.falsePositives == 1)
        #expect(close(r.pnlUSD, -20))
        // BTC's -45 first, then ETH's +25: the cumulative P&L fell 45 from its start and never recovered it.
        #expect(close(r.maxDrawdownUSD, 45))
        #expect(r.json().contains(#""max_drawdown_usd":44.99"#))
        #expect(close(r.meanBps, -5))
        #expect(r.verdict == .hold)
        #expect(r.verdictReasons == ["1 false positive(s): the kept part lost more than 50 bps over 15m"])

        // The same loss under a looser threshold is no false positive.
        let loose = try analyze(dir) { $0.lossThresholdBps = 70 }
        #expect(loose.falsePositives == 0 && loose.verdict == .proceed)
        // Both gaining (BTC +75, ETH +25): no drawdown.
        #expect(try analyze(try Self.threeBuckets().journal()).maxDrawdownUSD == 0)
    }

    @Test("downgrades whose horizon has not passed are pending; none priced means REVIEW, not PROCEED")
    func pending() throws {
        let dir = try Self.threeBuckets().journal()
        let r = try analyze(dir) { $0.horizonSec = 2000 }
        #expect(r.pending == 2 && r.evaluated == 0 && r.falsePositives == 0)
        #expect(r.outcomes.allSatisfy { $0.entryPrice != nil && $0.exitPrice == nil && $0.pnlBps == nil })
        #expect(r.verdict == .review)
        #expect(r.verdictReasons.first?.contains("only 0 downgrade(s) could be priced") == true)
        let lenient = try analyze(dir) {
            $0.horizonSec = 2000
            $0.minEvaluated = 0
        }
        #expect(lenient.verdict == .proceed)
    }

    /// BTC priced once before a COLD downgrade; `inside` adds a price at the decision itself and one inside
    /// the horizon. ETH's price, equity updates and a late BTC price run the journal past the horizon.
    static func stoppedFeed(inside: Bool) -> Tape {
        var t = Tape()
        t.portfolio(0, equity: 100_000)
        t.position(1, "BTC", notional: 10_000, sigma: 1)
        t.price(2, "BTC", 100)
        if inside { t.price(10, "BTC", 100) }
        t.propose(10, "BTC")
        t.price(20, "ETH", 2000)  // another symbol's price is no price of BTC
        if inside { t.price(900, "BTC", 100.5) }
        t.portfolio(950, equity: 100_000)
        t.price(960, "BTC", 90)  // after the horizon: not the kept part's outcome either
        return t
    }

    @Test("a downgrade with no price of its symbol inside the horizon is unpriced, not a flat zero: no PROCEED")
    func feedStopped() throws {
        let r = try analyze(try Self.stoppedFeed(inside: false).journal())
        let btc = try #require(r.outcomes.first)
        #expect(btc.status == .unpriced && btc.entryPrice == 100)
        #expect(btc.exitPrice == nil && btc.pnlBps == nil && btc.pnlUSD == nil && btc.worstBps == nil)
        #expect(r.evaluated == 0 && r.unpriced == 1 && r.falsePositives == 0)
        #expect(r.verdict == .review)
        #expect(r.verdictReasons.first?.contains("only 0 downgrade(s) could be priced") == true)

        // A price stamped with the decision's own time is the entry, not the exit; one inside prices it.
        let p = try analyze(try Self.stoppedFeed(inside: true).journal())
        #expect(p.outcomes.first?.status == .evaluated && p.outcomes.first?.exitPrice == 100.5)
        #expect(close(p.outcomes.first?.pnlBps, 50))
        #expect(close(p.outcomes.first?.worstBps, 50))
        #expect(p.verdict == .proceed)
    }

    @Test("--since starts the window later, with the book as it stood then")
    func since() throws {
        let dir = try Self.threeBuckets().journal()
        let r = try analyze(dir) { $0.since = Tape.t0 + 350 }
        #expect(r.from == Tape.t0 + 350 && r.to == Tape.t0 + 1500)
        #expect(r.decisions == 3 && r.fullCloses == 2 && r.downgraded == 1)
        #expect(r.bucket("COLD").seconds == 0)
        #expect(r.bucket("WARM").seconds == 1050)
        #expect(r.bucket("HOT").seconds == 100)
        #expect(r.samples.first?.ts == Tape.t0 + 350 && r.samples.first?.heat == 0.5)
        #expect(r.outcomes.map(\.symbol) == ["ETH"])
        #expect(r.verdict == .proceed)
        let until = try analyze(dir) { $0.until = Tape.t0 + 350 }
        #expect(until.decisions == 1 && until.bucket("COLD").seconds == 300 && until.bucket("WARM").seconds == 50)
        #expect(until.outcomes.first?.status == .pending)
    }

    /// `cold` full closes in COLD (downgraded), then `warm` in WARM with HEAT_WARM_ACTION=FULL_CLOSE (kept).
    static func rateJournal(cold: Int, warm: Int) throws -> (TemporaryDirectory, GateConfig) {
        let config = Tape.config { $0.warmAction = .fullClose }
        var t = Tape()
        t.portfolio(0, equity: 100_000)
        t.position(1, "BTC", notional: 10_000, sigma: 1)
        t.price(2, "BTC", 100)
        for k in 0..<cold { t.propose(10 + Double(k), "BTC") }
        t.position(100, "ETH", notional: 40_000, sigma: 1)
        for k in 0..<warm { t.propose(110 + Double(k), "ETH") }
        t.price(500, "BTC", 100)  // inside every downgrade's horizon: the kept part priced flat
        t.price(1000, "BTC", 100)
        return (try t.journal(config), config)
    }

    @Test("REVIEW between the thresholds, HOLD below, PROCEED above")
    func rateBranches() throws {
        let (review, c1) = try Self.rateJournal(cold: 1, warm: 4)
        let r1 = try analyze(review, config: c1)
        #expect(r1.coldWarmFullCloses == 5 && r1.coldWarmDowngraded == 1 && close(r1.coldWarmRate, 0.2))
        #expect(r1.bucket("WARM").fullCloses == 4 && r1.bucket("WARM").downgraded == 0)
        #expect(r1.evaluated == 1 && r1.falsePositives == 0)
        #expect(r1.verdict == .review)
        #expect(r1.verdictReasons == ["1 of 5 full closes in COLD/WARM downgraded (20.0 %): between 10.0 % and 30.0 %"])

        let (hold, c2) = try Self.rateJournal(cold: 1, warm: 10)
        let r2 = try analyze(hold, config: c2)
        #expect(close(r2.coldWarmRate, 1.0 / 11))
        #expect(r2.verdict == .hold)
        #expect(r2.verdictReasons.first?.hasSuffix("fewer than 10.0 %") == true)

        // Exactly at a threshold is REVIEW: PROCEED needs more than 30 %, HOLD fewer than 10 %.
        let (edge, c3) = try Self.rateJournal(cold: 3, warm: 7)
        #expect(try analyze(edge, config: c3).verdict == .review)
        #expect(try analyze(edge, config: c3) { $0.proceedRate = 0.29 }.verdict == .proceed)
        let (low, c4) = try Self.rateJournal(cold: 1, warm: 9)
        #expect(try analyze(low, config: c4).verdict == .review)
        #expect(try analyze(low, config: c4) { $0.holdRate = 0.11 }.verdict == .hold)
    }

    @Test("fail-closed counts by reason, holds apart, UNKNOWN time when equity goes stale; nothing to judge is HOLD")
    func failClosed() throws {
        let config = Tape.config { $0.stateMaxAgeSec = 120 }
        var t = Tape()
        t.portfolio(0, equity: 100_000)
        t.position(1, "BTC", notional: 10_000, sigma: 1)
        t.propose(200, "BTC")  // equity 200 s old: equity_stale
        t.portfolio(240, equity: 100_000)
        t.position(250, "ETH", notional: 5_000)  // no sigma known: sigma_missing
        t.propose(260, "ETH")
        t.kill(270, true)
        t.propose(280, "BTC")  // held by the kill switch
        t.kill(285, false)
        t.propose(290, "ETH", age: 290)  // proposal 290 s old: stale
        t.at(300, #"{"type":"market","symbol":"ETH","sigma":1}"#)
        let dir = try t.journal(config)
        let r = try analyze(dir, config: config)
        #expect(r.decisions == 4)
        #expect(r.failClosed.map(\.reason) == ["equity_stale", "sigma_missing"])
        #expect(r.failClosed.map(\.count) == [1, 1])
        #expect(r.failClosedTotal == 2)
        #expect(r.heldByKillSwitch == 1 && r.heldStale == 1)
        #expect(r.fullCloses == 2 && r.downgraded == 2)
        #expect(r.bucket("UNKNOWN").fullCloses == 2 && r.bucket("UNKNOWN").downgraded == 2)
        #expect(r.outcomes.allSatisfy { $0.status == .unpriced && $0.calibrated == "PARTIAL_25" })
        #expect(r.outcomes.map(\.reason) == ["equity_stale", "sigma_missing"])
        // COLD [0,120) then stale; COLD again [240,250) until ETH has no sigma; the rest UNKNOWN.
        #expect(r.bucket("COLD").seconds == 130)
        #expect(r.bucket("UNKNOWN").seconds == 170)
        #expect(r.samples.contains { $0.ts == Tape.t0 + 120 && $0.heat == nil })
        #expect(r.verdict == .hold)
        #expect(r.verdictReasons == ["no full close was decided in COLD or WARM: nothing to judge"])
    }

    @Test("an empty journal reports nothing and holds")
    func empty() throws {
        let dir = try Tape().journal()
        let r = try analyze(dir)
        #expect(r.decisions == 0 && r.totalSeconds == 0 && r.verdict == .hold)
        #expect(r.text().contains("VERDICT    HOLD"))
        #expect(r.html().contains("<svg"))
    }

    @Test("JSON, text and HTML carry the same figures")
    func formats() throws {
        let dir = try Self.threeBuckets(btcAtHorizon: 99.4).journal()
        let r = try analyze(dir)
        let j = try JSON.parse(r.json())
        #expect(j["verdict"]?.string == "HOLD")
        #expect(j["full_closes"]?.number == 3 && j["downgraded"]?.number == 2 && j["false_positives"]?.number == 1)
        #expect(j["cold_warm_rate"]?.number == 1)
        #expect(j["buckets"]?.array?.map { $0["seconds"]?.number ?? -1 } == [300, 1100, 100, 0])
        let first = try #require(j["downgrades"]?.array?.first)
        #expect(first["symbol"]?.string == "BTC" && first["false_positive"]?.bool == true)
        #expect(first["kept_usd"]?.number == 7500 && first["side"]?.string == "long")
        #expect(close(first["pnl_bps"]?.number, -60))

        let text = r.text()
        #expect(text.contains("VERDICT    HOLD"))
        #expect(text.contains("FALSE POSITIVE"))
        #expect(text.contains("COLD/WARM 2 of 2 (100.0 %)"))

        let html = r.html(title: "test <host>")
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("test &lt;host&gt;"))
        #expect(html.contains("<svg") && html.contains("</svg>"))
        #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("href="))
        #expect(html.components(separatedBy: "<title>#").count - 1 == 2)  // one marker per downgrade
        #expect(html.contains("FALSE POSITIVE"))
    }

    @Test("durations and points in time as typed")
    func timeText() {
        #expect(TimeText.duration("900") == 900)
        #expect(TimeText.duration("15m") == 900)
        #expect(TimeText.duration("1h30m") == 5400)
        #expect(TimeText.duration("7d") == 604_800)
        #expect(TimeText.duration("1.5h") == 5400)
        #expect(TimeText.duration("soon") == nil && TimeText.duration("-5") == nil && TimeText.duration("5x") == nil)
        #expect(TimeText.point("24h", now: 1_764_086_400) == 1_764_000_000)
        #expect(TimeText.point("1764000000", now: 0) == 1_764_000_000)
        #expect(TimeText.point("2025-11-24T16:00:00Z", now: 0) == 1_764_000_000)
        #expect(TimeText.point("2025-11-24", now: 0) == 1_763_942_400)
        #expect(TimeText.iso(1_764_000_000) == "2025-11-24T16:00:00Z")
        #expect(TimeText.iso(1_764_000_000.1234, fraction: true) == "2025-11-24T16:00:00.123Z")
        #expect(TimeText.iso(951_782_400) == "2000-02-29T00:00:00Z")
        #expect(TimeText.iso(0) == "1970-01-01T00:00:00Z")
        #expect(TimeText.iso(-1) == "1969-12-31T23:59:59Z")
        #expect(TimeText.human(5400) == "1h 30m")
    }
}
