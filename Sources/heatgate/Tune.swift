import ArgumentParser
import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateServer
import HeatGateStore

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run the recorded inputs under a grid of HEAT_MIN x HEAT_MAX and report each cell.",
        discussion: """
            Reads the store's journal read-only (the events journal and the proposal of every journaled \
            decision), or a `heatgate replay` file with --input, and decides every proposal anew through the \
            engine for each cell of the grid. Each cell is a shadow report (docs/shadow-report.md) under those \
            thresholds: downgrade rates, share of time per bucket, kept-part P&L and drawdown over the \
            horizon, false positives and the verdict, by the same flags as `analyze`. The current setting is \
            marked (it is added to the grid when missing); the best PROCEED cells are named. The current \
            cell's figures equal `analyze`'s when the thresholds did not change during the journal.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, html
    }

    @OptionGroup var options: ConfigOptions
    @OptionGroup var flags: AnalysisFlags

    @Option(help: "A `heatgate replay` file (JSON lines with \"at\") instead of the store's journal.")
    var input: String?

    @Option(
        name: .customLong("heat-min"),
        help: "HEAT_MIN values: a comma-separated list, or FROM:TO:COUNT (default 0.05:0.5:10).")
    var heatMin: String = "0.05:0.5:10"

    @Option(
        name: .customLong("heat-max"),
        help: "HEAT_MAX values: a comma-separated list, or FROM:TO:COUNT (default 0.45:0.9:10).")
    var heatMax: String = "0.45:0.9:10"

    @Option(help: "text, json or html (heat maps).")
    var format: Format = .text

    @Option(help: "Write to this file instead of standard output.")
    var out: String?

    static func values(_ text: String, name: String) throws -> [Double] {
        let parts = text.split(separator: ":").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        if parts.count == 3, let from = parts[0], let to = parts[1], let n = parts[2], n >= 1, n <= 100,
            n == n.rounded(), from.isFinite, to.isFinite
        {
            let count = Int(n)
            return (0..<count).map { k in
                let x = count == 1 ? from : from + (to - from) * Double(k) / Double(count - 1)
                return (x * 1e6).rounded() / 1e6
            }
        }
        let list = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.count <= 100, list.allSatisfy({ $0 != nil && $0!.isFinite && $0! >= 0 }) else {
            throw ValidationError("\(name) takes a list like 0.1,0.2 or FROM:TO:COUNT (at most 100), got \(text)")
        }
        return list.map { $0! }
    }

    func run() throws {
        let config = try options.load()
        let started = Date()
        var mins = try Self.values(heatMin, name: "--heat-min")
        var maxs = try Self.values(heatMax, name: "--heat-max")
        if !mins.contains(config.heatMin) { mins.append(config.heatMin) }
        if !maxs.contains(config.heatMax) { maxs.append(config.heatMax) }
        mins.sort()
        maxs.sort()
        let recorded: TuneInput
        if let input {
            let handle = try openInput(input)
            recorded = TuneInput.replay(lines: Array(LineReader(handle)), start: flags.now ?? 0)
        } else {
            guard FileManager.default.fileExists(atPath: config.stateDir + "/data.mdb") else {
                throw CLIError("no HeatGate store in \(config.stateDir) (P26_STATE_DIR): nothing to tune")
            }
            let store: GateStore
            do {
                store = try GateStore(directory: config.stateDir, readOnly: true)
            } catch {
                throw CLIError("cannot open the store in \(config.stateDir) read-only: \(error)")
            }
            recorded = try TuneInput.journal(store)
        }
        var result = Tuner.run(recorded, options: flags.options(config), mins: mins, maxs: maxs)
        result.seconds = Date().timeIntervalSince(started)
        let text: String
        switch format {
        case .text: text = result.text()
        case .json: text = result.json() + "\n"
        case .html:
            text = result.html(
                title: "HeatGate tune — \(OpsLedger.hostName())",
                subtitle: input.map { "replay \(($0 as NSString).lastPathComponent)" } ?? "journal \(config.stateDir)")
        }
        if let out {
            guard FileManager.default.createFile(atPath: out, contents: Data(text.utf8)) else {
                throw CLIError("cannot write \(out)")
            }
            printError("\(out): \(format.rawValue), \(result.cells.compactMap { $0 }.count) cells")
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
