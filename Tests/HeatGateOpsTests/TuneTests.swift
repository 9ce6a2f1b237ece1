import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateStore
import HeatGateTestSupport
import Testing

/// `heatgate tune` (issue 16): the journaled inputs decided anew under a grid of thresholds.
@Suite("Tune")
struct TuneTests {
    /// ShadowReportTests' three buckets, BTC losing 60 bps, then a kill-switch hold, a stale proposal and
    /// more prices, so every kind of record is re-run.
    static func tape() -> Tape {
        var t = ShadowReportTests.threeBuckets(btcAtHorizon: 99.4)
        t.kill(1600, true)
        t.propose(1610, "BTC")
        t.kill(1620, false)
        t.propose(1700, "ETH", age: 100)
        t.propose(1800, "BTC", "PARTIAL_25")
        t.price(2000, "ETH", 1985)
        t.price(2900, "BTC", 100.5)
        return t
    }

    static func sameFigures(_ a: ShadowReport, _ b: ShadowReport) {
        #expect(a.decisions == b.decisions)
        #expect(a.fullCloses == b.fullCloses && a.downgraded == b.downgraded)
        #expect(a.heldByKillSwitch == b.heldByKillSwitch && a.heldStale == b.heldStale)
        #expect(a.buckets == b.buckets)
        #expect(a.outcomes == b.outcomes)
        #expect(a.pnlUSD == b.pnlUSD && a.maxDrawdownUSD == b.maxDrawdownUSD)
        #expect(a.falsePositives == b.falsePositives && a.evaluated == b.evaluated)
        #expect(a.verdict == b.verdict && a.verdictReasons == b.verdictReasons)
    }

    @Test("the current cell's figures are analyze's")
    func currentCellEqualsAnalyze() throws {
        let dir = try Self.tape().journal()
        let analyzed = try analyze(dir)
        #expect(analyzed.heldByKillSwitch == 1 && analyzed.heldStale == 1 && analyzed.falsePositives == 1)
        var o = AnalysisOptions()
        o.policy = Policy(Tape.config())
        let store = try GateStore(directory: dir.path, readOnly: true)
        let result = Tuner.run(try TuneInput.journal(store), options: o, mins: [0.1, 0.25, 0.6], maxs: [0.65, 0.7])
        let current = try #require(result.current)
        #expect(current.heatMin == 0.25 && current.heatMax == 0.65)
        #expect(result.cells.compactMap { $0 }.filter(\.current).count == 1)
        Self.sameFigures(analyzed, current.report)
    }

    @Test("other thresholds decide the same proposals differently")
    func otherCellsRedecide() throws {
        let dir = try Self.tape().journal()
        var o = AnalysisOptions()
        o.policy = Policy(Tape.config())
        let store = try GateStore(directory: dir.path, readOnly: true)
        let result = Tuner.run(try TuneInput.journal(store), options: o, mins: [0.25, 0.6], maxs: [0.65, 0.7])
        // HEAT_MIN 0.6: ETH's full close at heat 0.5 is COLD now: PARTIAL_25 keeps 0.75 x 20 000 of a short
        // that gained 50 bps: +75 USD instead of +25.
        let cold = try #require(result.cell(1, 1))
        let eth = try #require(cold.report.outcomes.first { $0.symbol == "ETH" })
        #expect(eth.calibrated == "PARTIAL_25" && eth.bucket == "COLD")
        #expect(close(eth.pnlUSD, 75))
        #expect(close(cold.report.pnlUSD, -45 + 75))
        #expect(cold.report.bucket("WARM").seconds == 0)
        #expect(result.cells.allSatisfy { $0 != nil })
        // BTC's kept part loses 60 bps in whichever bucket downgrades it: every cell HOLDs, none is best.
        #expect(result.best.isEmpty)
        #expect(result.text().contains("best: no cell reaches PROCEED"))
    }

    @Test("the best cells are PROCEED cells, most P&L first")
    func bestCells() throws {
        // BTC gains: no false positive anywhere.
        let dir = try ShadowReportTests.threeBuckets().journal()
        var o = AnalysisOptions()
        o.policy = Policy(Tape.config())
        let store = try GateStore(directory: dir.path, readOnly: true)
        let result = Tuner.run(try TuneInput.journal(store), options: o, mins: [0.05, 0.25, 0.6], maxs: [0.3, 0.65])
        #expect(result.cell(2, 0) == nil, "HEAT_MIN 0.6 >= HEAT_MAX 0.3 is skipped")
        let best = result.best.map { result.cells[$0]! }
        #expect(!best.isEmpty && best.allSatisfy { $0.report.verdict == .proceed })
        #expect(best.map(\.report.pnlUSD) == best.map(\.report.pnlUSD).sorted(by: >))
        let top = try #require(best.first)
        #expect(top.heatMin == 0.6 && top.heatMax == 0.65 && close(top.report.pnlUSD, 75 + 75))
        let json = try JSON.parse(result.json())
        #expect(json["best"]?.array?.first?["heat_min"]?.number == 0.6)
        #expect(json["current"]?["heat_min"]?.number == 0.25)
        #expect(json["cells"]?.array?.count == 5)
        // The heat maps: three of them, the current cell framed in each, the best badged, skipped cells grey.
        let html = result.html()
        #expect(html.components(separatedBy: "<table class=\"map\">").count == 4)
        #expect(html.components(separatedBy: "<td class=\"cur\"").count == 4)
        #expect(html.components(separatedBy: "<td class=\"skip\">").count == 4)
        #expect(html.contains("<b>150 <span class=\"best\">1</span></b>PROCEED"))
    }

    @Test("heatgate tune --format json agrees with heatgate analyze on the same store")
    func cliAgreesWithAnalyze() throws {
        let dir = try Self.tape().journal()
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("P26_") && !$0.key.hasPrefix("HEAT_") }
        env["P26_STATE_DIR"] = dir.path
        env["P26_STATE_MAX_AGE_SEC"] = "86400"
        env["HEATGATE_CONFIG"] = ""
        let bin = try heatgateBinary()
        let a = try runCommand(bin, ["analyze", "--format", "json"], environment: env)
        let t = try runCommand(
            bin, ["tune", "--format", "json", "--heat-min", "0.1,0.2", "--heat-max", "0.9"], environment: env)
        #expect(a.status == 0 && t.status == 0, "\(a.stderr) \(t.stderr)")
        let analyzed = try JSON.parse(a.stdout)
        let tuned = try JSON.parse(t.stdout)
        let current = try #require(tuned["current"])
        // The current setting is added to the grid: 3 x 2 cells.
        #expect(tuned["cells"]?.array?.count == 6)
        #expect(current["heat_min"]?.number == 0.25 && current["heat_max"]?.number == 0.65)
        for key in [
            "verdict", "full_closes", "downgraded", "downgrade_rate", "cold_warm_rate", "pnl_usd",
            "max_drawdown_usd", "false_positives", "evaluated", "pending", "unpriced", "decisions",
        ] {
            #expect(current[key] == analyzed[key], "\(key)")
        }
        for bucket in analyzed["buckets"]?.array ?? [] {
            let name = bucket["bucket"]?.string ?? "?"
            #expect(current["time_share"]?[name] == bucket["share"], "\(name) share")
        }
    }

    @Test("--apply MIN:MAX --persist: refused on a HOLD cell, applied on a PROCEED one, recorded in the ledger")
    func applyPersists() throws {
        let bin = try heatgateBinary()
        func run(_ dir: TemporaryDirectory, _ args: [String]) throws -> (CommandResult, String) {
            let conf = dir.path + "/heatgate.env"
            if !FileManager.default.fileExists(atPath: conf) {
                let text =
                    "P26_STATE_DIR=\(dir.path)\nP26_STATE_MAX_AGE_SEC=86400\nHEAT_MIN=0.25 # tuned by hand\nHEAT_MAX=0.65\n"
                try text.write(toFile: conf, atomically: true, encoding: .utf8)
            }
            var env = ProcessInfo.processInfo.environment.filter {
                !$0.key.hasPrefix("P26_") && !$0.key.hasPrefix("HEAT_")
            }
            env["HEATGATE_CONFIG"] = ""
            let r = try runCommand(
                bin, ["tune", "--config", conf, "--heat-min", "0.25,0.6", "--heat-max", "0.65"] + args, environment: env
            )
            return (r, try String(contentsOfFile: conf, encoding: .utf8))
        }
        // Every cell of the false-positive journal HOLDs: nothing changes.
        let held = try Self.tape().journal()
        let (refused, before) = try run(held, ["--apply", "0.6:0.65", "--persist"])
        #expect(
            refused.status != 0 && refused.stdout.contains("preflight FAIL verdict: HOLD"),
            "\(refused.stdout)\(refused.stderr)")
        #expect(before.contains("HEAT_MIN=0.25 # tuned by hand"))
        #expect(!FileManager.default.fileExists(atPath: held.path + "/ops-ledger.jsonl"))

        let clean = try ShadowReportTests.threeBuckets().journal()
        let (applied, after) = try run(clean, ["--apply", "0.6:0.65", "--persist", "--reason", "tune drill"])
        #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
        #expect(after.contains("HEAT_MIN=0.6 # tuned by hand") && after.contains("HEAT_MAX=0.65"))
        let entries = OpsLedger(path: clean.path + "/ops-ledger.jsonl").verify().entries
        #expect(entries.count == 1)
        #expect(entries.first?.operation == "tune apply" && entries.first?.objective == "tune drill")
        #expect(entries.first?.evidence.verdict == "PROCEED")
        // No daemon runs here: the file applies at the next start, and the entry says so.
        #expect(entries.first?.outcome == .partial)
        #expect(entries.first?.changes.contains("HEAT_MIN 0.25 -> 0.6") == true)
    }
}
