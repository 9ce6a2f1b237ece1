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

    @Option(
        help:
            "Apply one cell of the grid, HEAT_MIN:HEAT_MAX: with --persist, after a preflight (the cell's verdict is PROCEED), rewrite both keys in --config, reload the daemon, record it in the ops ledger."
    )
    var apply: String?

    @Flag(help: "With --apply: rewrite HEAT_MIN and HEAT_MAX in the config file (required with --apply).")
    var persist = false

    @Flag(help: "With --apply: go ahead though the cell's verdict is not PROCEED (recorded in the ledger).")
    var force = false

    @Option(help: "With --apply: why (the ledger entry's objective).")
    var reason: String = ""

    @OptionGroup var location: LedgerLocation

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
        } else if apply == nil {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if let apply { try applyCell(apply, result, config) }
    }

    /// `--apply MIN:MAX --persist`: preflight, both keys rewritten, the daemon reloaded, a ledger entry.
    func applyCell(_ spec: String, _ result: TuneResult, _ config: GateConfig) throws {
        let parts = spec.split(separator: ":").compactMap { Double($0) }
        guard parts.count == 2 else { throw CLIError("--apply takes HEAT_MIN:HEAT_MAX, got \(spec)") }
        guard persist, let path = options.path() else {
            throw CLIError("--apply needs --persist and --config FILE: the thresholds are written to the file")
        }
        let cells = result.cells.compactMap { $0 }
        guard let cell = cells.first(where: { $0.heatMin == parts[0] && $0.heatMax == parts[1] }) else {
            throw CLIError("HEAT_MIN=\(parts[0]) HEAT_MAX=\(parts[1]) is not a cell of the grid")
        }
        let ledger = location.ledger(config)
        let check = ledger.verify()
        guard check.ok else {
            throw CLIError(
                "the ops ledger \(ledger.path) does not verify; nothing changed: "
                    + check.problems.joined(separator: "; "))
        }
        let r = cell.report
        let ok = r.verdict == .proceed
        print(
            "preflight \(ok ? "ok  " : "FAIL") verdict: \(r.verdict.rawValue): "
                + r.verdictReasons.joined(separator: "; "))
        if !ok && !force { throw CLIError("preflight failed; nothing changed (--force overrides, and is recorded)") }
        let mn = formatNumber(cell.heatMin, decimals: 6).trimmedZeros
        let mx = formatNumber(cell.heatMax, decimals: 6).trimmedZeros
        var changes: [String] = []
        func write(_ key: String, _ value: String) throws {
            let c = try ledgerCall { try ConfigFileEditor.set(key: key, value: value, in: path) }
            changes.append("\(path): \(key) \(c.previous ?? "unset") -> \(value)")
            print("\(path): \(key)=\(value) (was \(c.previous ?? "unset"))")
        }
        // One order always keeps HEAT_MIN < HEAT_MAX in between (each write is validated whole).
        do {
            try write("HEAT_MIN", mn)
            try write("HEAT_MAX", mx)
        } catch {
            guard changes.isEmpty else { throw error }
            try write("HEAT_MAX", mx)
            try write("HEAT_MIN", mn)
        }
        var notes = [
            "cell: \(r.verdict.rawValue), COLD/WARM downgraded \(formatNumber((r.coldWarmRate ?? 0) * 100, decimals: 1)) %, "
                + "kept-part P&L \(formatNumber(r.pnlUSD, decimals: 2)) USD, "
                + "max drawdown \(formatNumber(r.maxDrawdownUSD, decimals: 2)) USD, false positives \(r.falsePositives)"
        ]
        if !ok { notes.append("FORCED past failed preflight: verdict \(r.verdict.rawValue)") }
        var outcome = LedgerOutcome.success
        let control = ControlClient(endpoint: config.controlEndpoint)
        if let reply = control.request(#"{"cmd":"reload"}"#), reply["ok"]?.bool == true {
            changes.append("live: daemon reloaded")
            print("daemon reloaded")
        } else {
            outcome = .partial
            let msg = "no daemon answered on \(config.controlEndpoint); the file applies at the next start or reload"
            notes.append(msg)
            printError(msg)
        }
        let entry = LedgerEntry(
            ts: Date().timeIntervalSince1970, operation: "tune apply",
            objective: reason.isEmpty ? "thresholds from heatgate tune" : reason, riskClass: .lowRiskConfig,
            blastRadius: "every full close: the bucket it is calibrated in", allowedPaths: [path, ledger.path],
            allowedServices: ["quantum-portfolio-heat-gate"], changes: changes.joined(separator: "; "),
            outcome: outcome,
            evidence: LedgerEvidence(verdict: r.verdict.rawValue, proofFile: try? ProofFile(path: path)),
            notes: notes.joined(separator: "; "))
        let written = try ledgerCall { try ledger.append(entry) }
        print("ledger \(ledger.path): \(written.id) \(written.outcome.rawValue)")
    }
}

extension String {
    /// `0.250000` is `0.25`, `1.000000` is `1`.
    var trimmedZeros: String {
        guard contains(".") else { return self }
        var s = self
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }
}
