import ArgumentParser
import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateServer
import HeatGateStore

struct ModeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mode",
        abstract: "Switch the running daemon between shadow and enforce, live, and record it in the ops ledger.",
        discussion: """
            enforce runs a preflight first: the daemon answers and is ready (/readyz), its heat inputs are \
            fresh, and the shadow report's verdict is PROCEED. Any failed check stops the switch unless \
            --force (the failures are then recorded in the ledger). --persist also rewrites P26_MODE in the \
            --config file (validated first, atomically, keeping comments). After the switch, /metrics must \
            show p26_enforce_mode at the new value. `mode shadow --persist` is the rollback: no preflight, \
            live at once, recorded as a ROLLBACK of the last enforce entry.
            """)

    @OptionGroup var options: ConfigOptions
    @OptionGroup var flags: AnalysisFlags
    @OptionGroup var location: LedgerLocation

    @Argument(help: "shadow or enforce")
    var mode: String

    @Flag(help: "Also rewrite P26_MODE in the config file, so a restart keeps it.")
    var persist = false

    @Option(help: "Why (required for enforce): the ledger entry's objective.")
    var reason: String = ""

    @Flag(help: "Switch to enforce even when preflight checks fail.")
    var force = false

    @Option(name: .customLong("operator"), help: "Who (default: SUDO_USER, USER, or the uid's name).")
    var operatorName: String?

    @Option(name: .customLong("metrics-pattern"), help: "The /metrics lines kept as evidence (a regular expression).")
    var metricsPattern: String = LedgerEvidence.defaultMetricsPattern

    func validate() throws {
        guard ["shadow", "enforce"].contains(mode.lowercased()) else {
            throw ValidationError("mode must be shadow or enforce, got \(mode)")
        }
        if mode.lowercased() == "enforce" && reason.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("mode enforce needs --reason: it is the ops ledger's objective")
        }
    }

    /// One preflight check, as printed and recorded.
    struct Check {
        var name: String
        var ok: Bool
        var detail: String
    }

    func run() throws {
        let config = try options.load()
        let wanted = mode.lowercased() == "enforce" ? Mode.enforce : Mode.shadow
        let ledger = location.ledger(config)
        if persist && options.path() == nil { throw CLIError("--persist needs --config FILE") }
        // An entry cannot be chained onto a broken ledger: for enforce that stops everything up front; a
        // rollback goes ahead (safety first) and reports the ledger afterwards.
        let ledgerCheck = ledger.verify()
        if wanted == .enforce && !ledgerCheck.ok {
            throw CLIError(
                "the ops ledger \(ledger.path) does not verify; nothing changed: "
                    + ledgerCheck.problems.joined(separator: "; "))
        }

        let control = ControlClient(endpoint: config.controlEndpoint)
        let status = control.request(#"{"cmd":"status"}"#)
        let metricsAt = metricsAddress(config, status: status)
        var checks: [Check] = []
        var report: ShadowReport?
        if wanted == .enforce {
            (checks, report) = preflight(config, status: status, metricsAt: metricsAt)
            for c in checks { print("preflight \(c.ok ? "ok  " : "FAIL") \(c.name): \(c.detail)") }
            if checks.contains(where: { !$0.ok }) {
                guard force else {
                    throw CLIError("preflight failed; nothing changed (--force overrides, and is recorded)")
                }
                print("preflight failed; going on because of --force")
            }
        }

        var notes: [String] = []
        var changes: [String] = []
        var allowedPaths: [String] = []
        var proof: ProofFile?
        var outcome = LedgerOutcome.success
        var failure: String?
        if wanted == .enforce, let report {
            // The report the decision rested on, kept beside the ledger and vouched for by its hash.
            let dir = (ledger.path as NSString).deletingLastPathComponent + "/ops-evidence"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? OpsLedger.adopt(path: dir)  // root's evidence stays the service user's, as the ledger does
            let file = dir + "/analyze-\(Int(Date().timeIntervalSince1970)).json"
            if FileManager.default.createFile(atPath: file, contents: Data((report.json() + "\n").utf8)) {
                try? OpsLedger.adopt(path: file)
                proof = try? ProofFile(path: file)
                allowedPaths.append(file)
            }
        }
        if persist, let path = options.path() {
            let change = try ledgerCall { try ConfigFileEditor.set(key: "P26_MODE", value: wanted.label, in: path) }
            print("\(path): P26_MODE=\(wanted.label) (was \(change.previous ?? "unset"))")
            changes.append(
                "\(path): P26_MODE \(change.previous ?? "unset") -> \(wanted.label) "
                    + "(sha256 \(change.sha256Before.prefix(12)) -> \(change.sha256After.prefix(12)))")
            allowedPaths.insert(path, at: 0)
            if proof == nil { proof = try? ProofFile(path: path) }
        }

        var previous = "?"
        if status == nil {
            outcome = .partial
            let msg = "no daemon answered on \(config.controlEndpoint)"
            notes.append(msg + (persist ? "; the config file applies at the next start" : ""))
            if !persist { failure = msg + "; nothing changed" }
            printError(msg + (persist ? "; the config file is changed and applies at the next start" : ""))
        } else {
            var w = JSONWriter()
            w.raw("{\"cmd\":\"mode\",\"mode\":")
            w.string(wanted.label)
            w.raw(",\"reason\":")
            w.string(reason)
            w.raw("}")
            let reply = control.request(String(decoding: w.bytes, as: UTF8.self))
            if let reply, reply["ok"]?.bool == true {
                previous = reply["previous"]?.string ?? "?"
                print("mode: \(previous) -> \(reply["mode"]?.string ?? "?")")
                changes.append("live: mode \(previous) -> \(wanted.label)")
            } else {
                outcome = .partial
                failure = "the daemon refused the switch: \(reply?["error"]?.string ?? "no answer")"
                notes.append(failure!)
            }
        }

        // The switch counts only once /metrics shows it.
        var snapshot: [String] = []
        if status != nil, failure == nil {
            let expected: Double = wanted == .enforce ? 1 : 0
            var seen: Double?
            var lastError = ""
            let deadline = Date().addingTimeInterval(2)
            repeat {
                do {
                    let text = try httpGet(host: metricsAt.host, port: metricsAt.port, path: "/metrics").body
                    seen = prometheusValue(text, name: "p26_enforce_mode")
                    snapshot = LedgerEvidence.filter(metrics: text, pattern: metricsPattern)
                } catch {
                    lastError = "\(error)"
                }
                if seen == expected { break }
                usleep(100_000)
            } while Date() < deadline
            if seen == expected {
                print(
                    "verified: p26_enforce_mode \(Int(expected)) at http://\(metricsAt.host):\(metricsAt.port)/metrics")
            } else {
                outcome = .partial
                failure =
                    "p26_enforce_mode is \(seen.map { "\($0)" } ?? "unreadable") at \(metricsAt.host):\(metricsAt.port), "
                    + "expected \(Int(expected))" + (lastError.isEmpty ? "" : " (\(lastError))")
                notes.append(failure!)
            }
        }

        let failed = checks.filter { !$0.ok }
        if !failed.isEmpty {
            notes.append(
                "FORCED past failed preflight: " + failed.map { "\($0.name): \($0.detail)" }.joined(separator: "; "))
        }
        if !checks.isEmpty && failed.isEmpty {
            notes.append("preflight passed: " + checks.map(\.name).joined(separator: ", "))
        }

        var rollsBack: String?
        if wanted == .shadow {
            let rolledBack = Set(ledgerCheck.entries.compactMap(\.rollsBack))
            rollsBack =
                ledgerCheck.entries.last {
                    $0.operation == "mode enforce" && $0.outcome != .rollback && !rolledBack.contains($0.id)
                }?.id
            if rollsBack != nil && outcome == .success { outcome = .rollback }
        }
        let entry = LedgerEntry(
            ts: Date().timeIntervalSince1970, operatorName: operatorName ?? OpsLedger.currentOperator(),
            operation: "mode \(wanted.label)",
            objective: reason.isEmpty ? (wanted == .shadow ? "return to shadow mode" : "") : reason,
            riskClass: .lowRiskConfig,
            blastRadius: wanted == .enforce
                ? "every exit proposal: the Apply Layer executes calibrated actions (full closes become partials in COLD/WARM)"
                : "every exit proposal: the Apply Layer executes original actions again",
            allowedPaths: allowedPaths + [ledger.path], allowedServices: ["quantum-portfolio-heat-gate"],
            changes: changes.isEmpty ? "none" : changes.joined(separator: "; "), outcome: outcome, rollsBack: rollsBack,
            evidence: LedgerEvidence(
                metricsPattern: metricsPattern, metrics: snapshot,
                mode: failure == nil && status != nil ? wanted.label : previous,
                verdict: report?.verdict.rawValue, proofFile: proof),
            notes: notes.joined(separator: "; "))
        do {
            let written = try ledger.append(entry)
            print(
                "ledger \(ledger.path): \(written.id) \(written.outcome.rawValue)"
                    + (rollsBack.map { " (rolls back \($0))" } ?? ""))
        } catch {
            printError("could not record the ops ledger entry: \(error)")
            throw ExitCode(1)
        }
        if let failure { throw CLIError(failure) }
    }

    /// The checks before enforce: the daemon answers and is ready, its inputs are fresh, the verdict is PROCEED.
    func preflight(_ config: GateConfig, status: JSON?, metricsAt: (host: String, port: Int)) -> (
        [Check], ShadowReport?
    ) {
        var checks: [Check] = []
        if let status, status["ok"]?.bool == true {
            checks.append(
                Check(
                    name: "daemon", ok: true,
                    detail:
                        "answers on \(config.controlEndpoint) (pid \(status["pid"]?.number.map { String(Int($0)) } ?? "?"), "
                        + "mode \(status["mode"]?.string ?? "?"))"))
        } else {
            checks.append(Check(name: "daemon", ok: false, detail: "no answer on \(config.controlEndpoint)"))
        }
        do {
            let r = try httpGet(host: metricsAt.host, port: metricsAt.port, path: "/readyz")
            checks.append(
                Check(
                    name: "readyz", ok: r.status == 200,
                    detail: "HTTP \(r.status) from \(metricsAt.host):\(metricsAt.port)"))
        } catch {
            checks.append(Check(name: "readyz", ok: false, detail: "\(error)"))
        }
        if let status {
            let problem = status["inputs_problem"]?.string
            let age = status["equity_age_sec"]?.number
            let fresh = problem == nil && age.map { $0 <= config.stateMaxAgeSec } == true
            checks.append(
                Check(
                    name: "inputs", ok: fresh,
                    detail: problem.map { "not usable: \($0)" }
                        ?? "equity \(age.map { formatNumber($0, decimals: 1) } ?? "?") s old (limit \(formatNumber(config.stateMaxAgeSec, decimals: 0)) s), "
                        + "heat \(status["heat_value"]?.number.map { formatNumber($0, decimals: 4) } ?? "-") \(status["heat_bucket"]?.string ?? "")"
                ))
            if status["kill_switch"]?.bool == true {
                checks.append(Check(name: "kill switch", ok: false, detail: "on: every proposal is held"))
            }
        } else {
            checks.append(Check(name: "inputs", ok: false, detail: "unknown: no daemon"))
        }
        var report: ShadowReport?
        do {
            let r = try flags.report(config)
            report = r
            checks.append(
                Check(
                    name: "verdict", ok: r.verdict == .proceed,
                    detail: "\(r.verdict.rawValue): " + r.verdictReasons.joined(separator: "; ")))
        } catch {
            checks.append(Check(name: "verdict", ok: false, detail: "no report: \(error)"))
        }
        return (checks, report)
    }
}

/// Where the daemon serves `/metrics`: what it reports (the port it really bound), else the configuration.
func metricsAddress(_ config: GateConfig, status: JSON?) -> (host: String, port: Int) {
    if let m = status?["metrics"]?.string, let colon = m.lastIndex(of: ":"), let port = Int(m[m.index(after: colon)...])
    {
        return (String(m[..<colon]), port)
    }
    return (config.metricsBind, config.metricsPort)
}

/// The daemon's `/metrics` text.
func fetchMetrics(_ config: GateConfig) throws -> String {
    let status = ControlClient(endpoint: config.controlEndpoint).request(#"{"cmd":"status"}"#)
    let at = metricsAddress(config, status: status)
    do {
        let r = try httpGet(host: at.host, port: at.port, path: "/metrics")
        guard r.status == 200 else { throw CLIError("GET http://\(at.host):\(at.port)/metrics answered \(r.status)") }
        return r.body
    } catch let e as HTTPGetError {
        throw CLIError("cannot read the daemon's metrics: \(e)")
    }
}
