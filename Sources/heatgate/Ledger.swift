import ArgumentParser
import Foundation
import HeatGateCore
import HeatGateOps

extension RiskClass: ExpressibleByArgument {}
extension LedgerOutcome: ExpressibleByArgument {}

/// Where the ledger is: `--ledger`, else `<state dir>/ops-ledger.jsonl`.
struct LedgerLocation: ParsableArguments {
    @Option(help: "The ledger file (default: <P26_STATE_DIR>/ops-ledger.jsonl).")
    var ledger: String?

    func ledger(_ config: GateConfig) -> OpsLedger {
        ledger.map(OpsLedger.init(path:)) ?? OpsLedger(stateDir: config.stateDir)
    }
}

struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "The operations ledger: append-only JSON lines, each entry sealed and chained to the one before.",
        subcommands: [LedgerAppend.self, LedgerShow.self, LedgerVerify.self])
}

struct LedgerAppend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append", abstract: "Record an operation; prints the new entry's id.")

    @OptionGroup var options: ConfigOptions
    @OptionGroup var location: LedgerLocation

    @Option(help: "What was done, e.g. \"restart heatgate\".")
    var operation: String
    @Option(help: "Why.")
    var objective: String
    @Option(name: .customLong("risk-class"), help: "READ_ONLY, LOW_RISK_CONFIG, SERVICE_RESTART or FILESYSTEM_WRITE.")
    var riskClass: RiskClass
    @Option(name: .customLong("blast-radius"), help: "What could be affected.")
    var blastRadius: String = ""
    @Option(name: .customLong("allowed-path"), help: "A path the operation may touch (repeatable).")
    var allowedPaths: [String] = []
    @Option(name: .customLong("allowed-service"), help: "A service the operation may touch (repeatable).")
    var allowedServices: [String] = []
    @Option(help: "A summary of the changes.")
    var changes: String = ""
    @Option(help: "SUCCESS, PARTIAL or ROLLBACK.")
    var outcome: LedgerOutcome = .success
    @Option(name: .customLong("rolls-back"), help: "The id of the entry this one rolls back.")
    var rollsBack: String?
    @Option(
        name: .customLong("metrics-pattern"),
        help: "Snapshot the daemon's /metrics lines matching this regular expression into the evidence.")
    var metricsPattern: String?
    @Option(help: "The mode, for the evidence.")
    var mode: String?
    @Option(help: "The verdict, for the evidence.")
    var verdict: String?
    @Option(name: .customLong("proof-file"), help: "A file whose SHA-256 and size go into the evidence.")
    var proofFile: String?
    @Option(help: "Free text.")
    var notes: String = ""
    @Option(name: .customLong("operator"), help: "Who (default: SUDO_USER, USER, or the uid's name).")
    var operatorName: String?

    func validate() throws {
        if outcome == .rollback && rollsBack == nil {
            throw ValidationError("--outcome ROLLBACK needs --rolls-back ID")
        }
    }

    func run() throws {
        let config = try options.load()
        var evidence = LedgerEvidence(mode: mode, verdict: verdict)
        if let metricsPattern {
            let text = try fetchMetrics(config)
            evidence.metricsPattern = metricsPattern
            evidence.metrics = LedgerEvidence.filter(metrics: text, pattern: metricsPattern)
        }
        if let proofFile { evidence.proofFile = try ProofFile(path: proofFile) }
        let entry = LedgerEntry(
            ts: Date().timeIntervalSince1970, operatorName: operatorName ?? OpsLedger.currentOperator(),
            operation: operation, objective: objective, riskClass: riskClass, blastRadius: blastRadius,
            allowedPaths: allowedPaths, allowedServices: allowedServices, changes: changes, outcome: outcome,
            rollsBack: rollsBack, evidence: evidence, notes: notes)
        let ledger = location.ledger(config)
        let written = try ledgerCall { try ledger.append(entry) }
        print(written.id)
    }
}

struct LedgerShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "List the entries.")

    @OptionGroup var options: ConfigOptions
    @OptionGroup var location: LedgerLocation

    @Flag(help: "Print the entries' JSON lines as stored.")
    var json = false

    @Option(help: "Only the last N entries.")
    var last: Int?

    func run() throws {
        let ledger = location.ledger(try options.load())
        let check = ledger.verify()
        let entries = last.map { Array(check.entries.suffix($0)) } ?? check.entries
        if json {
            let lines = (FileManager.default.contents(atPath: ledger.path) ?? Data()).split(separator: 10)
            for line in lines.suffix(entries.count) { line.withUnsafeBytes { writeLine($0) } }
        } else {
            for e in entries {
                print(
                    "\(e.id)  \(TimeText.iso(e.ts))  \(e.outcome.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))"
                        + "  \(e.riskClass.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0))  \(e.operatorName)@\(e.host)"
                        + "  \(e.operation)" + (e.rollsBack.map { " (rolls back \($0))" } ?? ""))
                if !e.objective.isEmpty { print("    objective: \(e.objective)") }
                if !e.changes.isEmpty { print("    changes:   \(e.changes)") }
                if let m = e.evidence.mode {
                    print("    mode:      \(m)" + (e.evidence.verdict.map { "   verdict: \($0)" } ?? ""))
                }
                if !e.notes.isEmpty { print("    notes:     \(e.notes)") }
            }
            if entries.isEmpty { print("no entries in \(ledger.path)") }
        }
        if !check.ok {
            for p in check.problems { printError("ledger \(ledger.path): \(p)") }
            throw ExitCode(1)
        }
    }
}

struct LedgerVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every entry's seal, the chain and the head file; exits 1 naming the first problem.")

    @OptionGroup var options: ConfigOptions
    @OptionGroup var location: LedgerLocation

    @Option(
        name: .customLong("anchor"),
        help: ArgumentHelp(
            "An anchor N:SHA256 kept outside the state directory (printed by verify, logged by every append): "
                + "entry N must still carry that seal. Repeatable.", valueName: "N:SHA256"))
    var anchors: [String] = []

    func run() throws {
        let ledger = location.ledger(try options.load())
        var check = ledger.verify()
        for anchor in anchors {
            let parts = anchor.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let n = Int(parts[0]), n >= 1, parts[1].utf8.count == 64 else {
                throw ValidationError("--anchor \(anchor): give N:SHA256, N counting entries from 1")
            }
            if n > check.entries.count {
                check.problems.append(
                    "anchor \(anchor): the ledger has \(check.entries.count) verified entries, the anchor vouches for \(n) "
                        + "(entries removed from the end)")
            } else if check.entries[n - 1].sha256 != String(parts[1]) {
                check.problems.append(
                    "anchor \(anchor): entry \(n) (\(check.entries[n - 1].id)) seals \(check.entries[n - 1].sha256) "
                        + "(the ledger was rewritten)")
            }
        }
        guard check.ok else {
            for p in check.problems { printError("FAILED \(ledger.path): \(p)") }
            printError(
                "\(check.entries.count) entr\(check.entries.count == 1 ? "y" : "ies") verified before the problem")
            throw ExitCode(1)
        }
        print(
            "ok: \(ledger.path): \(check.entries.count) entr\(check.entries.count == 1 ? "y" : "ies")"
                + (check.entries.last.map {
                    ", last \($0.id) sha256 \($0.sha256); anchor \(check.entries.count):\($0.sha256)"
                }
                    ?? ""))
    }
}

/// Runs a ledger operation, turning its error into a one-line CLI error.
func ledgerCall<R>(_ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let e as LedgerError {
        throw CLIError(e.description)
    }
}
