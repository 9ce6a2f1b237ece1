import ArgumentParser
import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateStore

/// The report's flags, shared by `analyze` and the preflight of `mode enforce`.
struct AnalysisFlags: ParsableArguments {
    @Option(help: "Only from this point: a duration before now (24h, 7d), epoch seconds or ISO-8601 UTC.")
    var since: String?

    @Option(help: "Only up to this point (same forms as --since). Default: the last journaled record.")
    var until: String?

    @Option(help: "How long to follow the part a downgrade kept open (900, 15m, 1h).")
    var horizon: String = "15m"

    @Option(name: .customLong("loss-threshold-bps"), help: "A kept part that lost more than this is a false positive.")
    var lossThresholdBps: Double = 50

    @Option(
        name: .customLong("proceed-rate"),
        help: "PROCEED needs more than this share of COLD/WARM full closes downgraded.")
    var proceedRate: Double = 0.30

    @Option(name: .customLong("hold-rate"), help: "HOLD below this share.")
    var holdRate: Double = 0.10

    @Option(
        name: .customLong("min-evaluated"), help: "PROCEED also needs this many downgrades priced over the horizon.")
    var minEvaluated: Int = 1

    @Option(help: .hidden)
    var now: Double?

    func validate() throws {
        guard TimeText.duration(horizon).map({ $0 > 0 }) == true else {
            throw ValidationError("--horizon must be a positive duration like 900, 15m or 1h, got \(horizon)")
        }
        guard lossThresholdBps >= 0 else { throw ValidationError("--loss-threshold-bps must be >= 0") }
        guard (0...1).contains(holdRate), (0...1).contains(proceedRate), holdRate <= proceedRate else {
            throw ValidationError("--hold-rate and --proceed-rate are shares in 0...1 with hold <= proceed")
        }
        let clock = now ?? Date().timeIntervalSince1970
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, TimeText.point(value, now: clock) == nil {
                throw ValidationError("\(name) takes a duration (24h), epoch seconds or ISO-8601 UTC, got \(value)")
            }
        }
    }

    func options(_ config: GateConfig) -> AnalysisOptions {
        let clock = now ?? Date().timeIntervalSince1970
        var o = AnalysisOptions()
        o.since = since.flatMap { TimeText.point($0, now: clock) }
        o.until = until.flatMap { TimeText.point($0, now: clock) }
        o.horizonSec = TimeText.duration(horizon) ?? 900
        o.lossThresholdBps = lossThresholdBps
        o.proceedRate = proceedRate
        o.holdRate = holdRate
        o.minEvaluated = minEvaluated
        o.policy = Policy(config)
        return o
    }

    /// Reads the journal of the configured store, read-only, and builds the report.
    func report(_ config: GateConfig) throws -> ShadowReport {
        guard FileManager.default.fileExists(atPath: config.stateDir + "/data.mdb") else {
            throw CLIError("no HeatGate store in \(config.stateDir) (P26_STATE_DIR): nothing to analyze")
        }
        let store: GateStore
        do {
            store = try GateStore(directory: config.stateDir, readOnly: true)
        } catch {
            throw CLIError("cannot open the store in \(config.stateDir) read-only: \(error)")
        }
        return try ShadowAnalyzer.analyze(store: store, options: options(config))
    }
}

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The shadow-mode report and the go/no-go verdict, from the journal.",
        discussion: """
            Reads the store read-only (safe while the daemon runs). Verdict: PROCEED when more than \
            --proceed-rate of the full closes decided in COLD/WARM were downgraded and no downgrade is a false \
            positive; HOLD below --hold-rate or with any false positive; REVIEW between. See \
            docs/shadow-report.md for every definition.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, html
    }

    @OptionGroup var options: ConfigOptions
    @OptionGroup var flags: AnalysisFlags

    @Option(help: "text, json or html.")
    var format: Format = .text

    @Option(help: "Write the report to this file instead of standard output.")
    var out: String?

    @Option(help: "The HTML page's title.")
    var title: String?

    func run() throws {
        let config = try options.load()
        let report = try flags.report(config)
        let text: String
        switch format {
        case .text: text = report.text()
        case .json: text = report.json() + "\n"
        case .html:
            text = report.html(
                title: title ?? "HeatGate shadow report — \(OpsLedger.hostName())",
                generatedAt: flags.now ?? Date().timeIntervalSince1970)
        }
        if let out {
            guard FileManager.default.createFile(atPath: out, contents: Data(text.utf8)) else {
                throw CLIError("cannot write \(out)")
            }
            printError("\(out): \(format.rawValue) report, verdict \(report.verdict.rawValue)")
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
