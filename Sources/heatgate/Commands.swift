import ArgumentParser
import Foundation
import HeatGateClient
import HeatGateCore
import HeatGateOps
import HeatGateServer
import HeatGateStore
import ZeroMQ

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: PULL at P26_INGEST_ENDPOINT, PUB at P26_PUBLISH_ENDPOINT, metrics over HTTP.",
        discussion: "SIGHUP re-reads the config file; SIGTERM stops cleanly after committing what is queued.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        _ = try options.load()  // validate first: a bad value stops start-up with the key named
        let source = ConfigSource(
            path: options.path(), environment: ProcessInfo.processInfo.environment,
            overrides: options.overrides.compactMap { o in
                o.firstIndex(of: "=").map { (String(o[..<$0]), String(o[o.index(after: $0)...])) }
            })
        let daemon = try Daemon(source: source)
        daemon.guardRecorder = recordGuardTrip
        let file = options.path()
        daemon.reloadRecorder = { changed, restart, config in
            try recordReload(changed: changed, restartNeeded: restart, config: config, file: file)
        }
        let code = daemon.run()
        if code != 0 { throw ExitCode(code) }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mode, heat, bucket, inputs' age, counts, kill switch, seq and uptime of the running daemon.",
        discussion: "Exits 3 when no daemon answers on the control endpoint.")

    @OptionGroup var options: ConfigOptions

    @Flag(help: "Print the daemon's JSON.")
    var json = false

    func run() throws {
        let config = try options.load()
        guard let reply = ControlClient(endpoint: config.controlEndpoint).request(#"{"cmd":"status"}"#) else {
            let path = config.controlEndpoint.hasPrefix("ipc://") ? String(config.controlEndpoint.dropFirst(6)) : nil
            if let path, access(path, F_OK) == 0, access(path, W_OK) != 0 {
                printError("permission denied on \(path): run as root or as the daemon's user")
                throw ExitCode(3)
            }
            printError("heatgate is not running: no answer on \(config.controlEndpoint)")
            if let store = try? GateStore(directory: config.stateDir, readOnly: true) {
                let kill = (try? store.killSwitch())?.on ?? false
                let last = (try? store.lastSeq()).flatMap { $0 } ?? 0
                printError("store \(config.stateDir): last_seq=\(last) kill_switch=\(kill ? "on" : "off")")
            }
            throw ExitCode(3)
        }
        if json {
            print(reply.text)
            return
        }
        guard case .object(let members) = reply else { return }
        for (k, v) in members where k != "ok" {
            let value: String
            switch v {
            case .string(let s): value = s
            case .null: value = "-"
            default: value = v.text
            }
            print("\(k.padding(toLength: 22, withPad: " ", startingAt: 0)) \(value)")
        }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set the kill switch: every proposal is held (HOLD) from the next one on.",
        discussion: "Writes the store directly, so it works whether or not the daemon runs.")

    @OptionGroup var options: ConfigOptions

    @Argument(help: "on or off")
    var state: String

    @Option(help: "Why, stored with the switch.")
    var reason: String = ""

    func validate() throws {
        guard ["on", "off"].contains(state.lowercased()) else { throw ValidationError("state must be on or off") }
    }

    func run() throws {
        let config = try options.load()
        // A switch set where no gate keeps its store protects nothing: refuse rather than create one.
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: config.stateDir, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw CLIError(
                "no state directory \(config.stateDir): the kill switch lives in the gate's P26_STATE_DIR; "
                    + "pass --config FILE or set HEATGATE_CONFIG")
        }
        // Both stores (SPEC §5): the durable one first, flushed, so the switch survives a reboot before the
        // daemon (which reads the hot one before every batch) acts on it; then the hot one, if there is one.
        let store = try GateStore(directory: config.stateDir, mapSizeMB: config.mapSizeMB, durable: true)
        let on = state.lowercased() == "on"
        let before = try? store.killSwitch()
        let switchState = KillSwitchState(on: on, reason: reason, ts: Date().timeIntervalSince1970)
        try store.setKillSwitch(switchState)
        let runDir = config.readerRunDir
        var st = stat()
        if stat(runDir + "/data.mdb", &st) == 0 {
            do {
                // The daemon's map size: the hot store's file is allocated to it.
                let hot = try GateStore(directory: runDir, mapSizeMB: max(1, Int(st.st_size) >> 20), durable: true)
                try hot.setKillSwitch(switchState)
            } catch {
                throw CLIError(
                    "the kill switch is \(on ? "ON" : "off") in the durable store \(config.stateDir), but the hot "
                        + "store \(runDir) (P26_RUN_DIR), which the running gate reads, refused it: \(error)")
            }
        }
        print("kill switch \(on ? "ON" : "off")\(reason.isEmpty ? "" : " (\(reason))")")
        // Into the same chain as `mode` and the guard. The switch is set first and stays set: a ledger that
        // cannot take the entry is reported, never a reason to leave the book unprotected.
        let ledger = OpsLedger(stateDir: config.stateDir)
        let was = before.map { $0.on ? "on" : "off" } ?? "unknown"
        do {
            let written = try ledger.append(
                LedgerEntry(
                    ts: Date().timeIntervalSince1970, operation: "kill \(on ? "on" : "off")",
                    objective: reason, riskClass: .lowRiskConfig,
                    blastRadius: on
                        ? "every exit proposal: held (HOLD) and the Apply Layer executes nothing"
                        : "every exit proposal: decided again",
                    allowedPaths: [config.stateDir], allowedServices: ["quantum-portfolio-heat-gate"],
                    changes: "kill switch \(was) -> \(on ? "on" : "off")"))
            print("ledger \(ledger.path): \(written.id)")
        } catch {
            printError(
                "warning: the kill switch is \(on ? "ON" : "off"), but the ops ledger did not record it: \(error)")
        }
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The Apply Layer's read contract (SPEC §5), from the store.",
        discussion: """
            Give the proposal's plan id and action (`--plan-id P --action A`), or the proposal itself
            (`--proposal JSON`, from which the plan id is derived as the gate derives it when it has none).
            Exit 0 and the decision JSON: execute its `action`. Exit 3 and one line (no_decision, expired,
            other_plan, other_action, rejected): execute the original proposal. Exit 4: the kill switch is
            on, execute nothing.
            """)

    @OptionGroup var options: ConfigOptions

    @Argument(help: "The symbol (with --plan-id and --action; not with --proposal).")
    var symbol: String?

    @Option(name: .customLong("plan-id"), help: "The proposal's plan_id.")
    var planId: String?

    @Option(help: "The proposal's action token (FULL_CLOSE_PROPOSED, PARTIAL_25, ...).")
    var action: String?

    @Option(help: "The proposal as one JSON object; its symbol, plan id and action are read from it.")
    var proposal: String?

    func validate() throws {
        if proposal != nil {
            guard symbol == nil, planId == nil, action == nil else {
                throw ValidationError("--proposal replaces SYMBOL, --plan-id and --action")
            }
        } else {
            guard symbol != nil, planId != nil, action != nil else {
                throw ValidationError(
                    "give SYMBOL --plan-id P --action A, or --proposal JSON: a decision for another plan or "
                        + "action must never be applied to this proposal")
            }
        }
    }

    func run() throws {
        let config = try options.load()
        let lookup: DecisionLookup
        do {
            lookup = try DecisionLookup(stateDir: config.stateDir, runDir: config.readerRunDir)
        } catch {
            print("no_decision")
            printError("no readable store in \(config.stateDir): \(error)")
            throw ExitCode(3)
        }
        let now = Date().timeIntervalSince1970
        let resolution: Resolution
        do {
            if let proposal {
                resolution = try lookup.lookup(proposal: Array(proposal.utf8), now: now)
            } else {
                resolution = try lookup.lookup(symbol: symbol!, planId: planId!, action: action!, now: now)
            }
        } catch let r as Rejection {
            // The gate refuses such a proposal, so it holds no decision for it.
            print("rejected")
            printError("the gate would reject this proposal: \(r)")
            throw ExitCode(3)
        } catch {
            // No hot store and the durable kill switch off: execute the proposal as it stands.
            print("no_decision")
            printError("no readable hot store in \(config.readerRunDir) (P26_RUN_DIR): \(error)")
            throw ExitCode(3)
        }
        switch resolution {
        case .useDecision(_, let decision):
            print(decision)
        case .useOriginal(let why):
            print(why.rawValue)
            throw ExitCode(3)
        case .killSwitch(let reason):
            print("kill_switch\(reason.isEmpty ? "" : ": \(reason)")")
            throw ExitCode(4)
        }
    }
}

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send JSON-lines messages (SPEC §3) to a running daemon.")

    @OptionGroup var options: ConfigOptions

    @Argument(help: "A JSON-lines file, or - for standard input.")
    var file: String

    func run() throws {
        let config = try options.load()
        let ctx = try Context(ioThreads: 1)
        let push = try Socket(ctx, type: .push)
        try push.set(.linger, 5000)
        try push.set(.sendTimeout, 5000)
        try push.connect(config.ingestEndpoint)
        let input = try openInput(file)
        var sent = 0
        for line in LineReader(input) where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) {
            guard try push.send(line) else {
                throw CLIError("timed out sending to \(config.ingestEndpoint) after \(sent)")
            }
            sent += 1
        }
        try push.close(linger: 5000)
        print("sent \(sent) message(s) to \(config.ingestEndpoint)")
    }
}

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow the decisions, each once and in seq order, filling gaps from the journal.",
        discussion: """
            Decisions go to standard output, one JSON object per line, byte for byte as published. What the \
            stream did not deliver (a restart of the gate or of tail, a full queue) is read from the store's \
            journal, so the output runs seq after seq with no gap; standard error names each gap filled, any \
            gap the journal no longer holds (the exit status is then 1), and the gate going down and up. \
            Needs read access to the store (the daemon's group).
            """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Only print this symbol's decisions (every decision is still followed, for the gaps).")
    var symbol: String?

    @Option(help: "Start at this seq, from the journal; by default tail starts after the latest decision.")
    var from: UInt64?

    @Option(help: "Stop after this many decisions printed.")
    var count: Int?

    @Option(help: "Stop after this many seconds without a decision.")
    var idle: Double?

    func validate() throws {
        if let from, from < 1 { throw ValidationError("--from is a seq: 1 or more") }
    }

    func run() throws {
        let config = try options.load()
        var o = SubscriberOptions()
        o.heartbeatInterval = .milliseconds(Int64(max(config.heartbeatSec, 0.001) * 1000))
        o.missedHeartbeats = config.heartbeatSec > 0 ? 3 : 0
        let sub = try DecisionSubscriber(
            publishEndpoint: config.publishEndpoint, stateDir: config.stateDir, runDir: config.readerRunDir,
            start: from.map { .after($0 - 1) } ?? .latest, options: o)
        var gaps = GapReport()
        var printed = 0
        var missedAny = false
        let clock = ContinuousClock()
        var lastDecision = clock.now
        while count.map({ printed < $0 }) ?? true {
            // Short waits, so a gap filled while the stream is quiet is reported at once.
            guard let event = try sub.next(timeout: .milliseconds(200)) else {
                gaps.flush()
                if let idle, clock.now - lastDecision >= .milliseconds(Int64(idle * 1000)) { break }
                continue
            }
            switch event {
            case .decision(let d):
                lastDecision = clock.now
                gaps.note(d)
                if symbol == nil || d.symbol == symbol {
                    d.json.withUnsafeBytes { writeLine($0) }
                    printed += 1
                }
            case .missed(let range):
                gaps.flush()
                missedAny = true
                printError(
                    "heatgate tail: missed seq \(range.lowerBound)-\(range.upperBound): no longer in the journal"
                        + (sub.lastJournalError.map { " (\($0))" } ?? ""))
            case .gateUp(let last):
                printError("heatgate tail: gate up (last_seq \(last))")
            case .gateDown(let silent):
                printError("heatgate tail: gate down (no heartbeat for \(silent))")
            }
        }
        gaps.flush()
        if missedAny { throw ExitCode(1) }
    }
}

/// Groups the decisions a subscriber read from the journal into runs, one stderr line per gap filled.
struct GapReport {
    var run: ClosedRange<UInt64>?

    mutating func note(_ d: PublishedDecision) {
        guard d.source == .journal else { return flush() }
        if let r = run, d.seq == r.upperBound + 1 {
            run = r.lowerBound...d.seq
        } else {
            flush()
            run = d.seq...d.seq
        }
    }

    mutating func flush() {
        guard let r = run else { return }
        printError("heatgate tail: gap seq \(r.lowerBound)-\(r.upperBound) filled from the journal")
        run = nil
    }
}

/// The ops ledger entry of a guard trip: an automatic rollback of the last `mode enforce` entry.
/// The ops-ledger entry of an applied reload, in the chain of `mode`, `kill` and the guard.
func recordReload(changed: [String], restartNeeded: [String], config: GateConfig, file: String?) throws -> String {
    let ledger = OpsLedger(stateDir: config.stateDir)
    let entry = LedgerEntry(
        ts: Date().timeIntervalSince1970, operatorName: "heatgate-daemon", operation: "reload",
        objective: "configuration re-read (SIGHUP or heatgate reload)", riskClass: .lowRiskConfig,
        blastRadius: changed.isEmpty ? "none: no live key changed" : "every exit proposal from the next one on",
        allowedPaths: file.map { [$0] } ?? [], allowedServices: ["quantum-portfolio-heat-gate"],
        changes: changed.isEmpty ? "none" : changed.joined(separator: "; "),
        outcome: restartNeeded.isEmpty ? .success : .partial,
        evidence: LedgerEvidence(mode: config.mode.label, proofFile: file.flatMap { try? ProofFile(path: $0) }),
        notes: restartNeeded.isEmpty ? "" : "waiting for a restart: " + restartNeeded.joined(separator: ", "))
    return try ledger.append(entry).id
}

func recordGuardTrip(_ trip: GuardTrip, _ config: GateConfig) throws -> String {
    let ledger = OpsLedger(stateDir: config.stateDir)
    let check = ledger.verify()
    let rolledBack = Set(check.entries.compactMap(\.rollsBack))
    let rollsBack =
        check.entries.last {
            $0.operation == "mode enforce" && $0.outcome != .rollback && !rolledBack.contains($0.id)
        }?.id
    let g = config.guardSettings
    let share = trip.fullCloses == 0 ? 0 : Double(trip.downgraded) / Double(trip.fullCloses)
    let detail: String
    switch trip.reason {
    case .downgradeShare:
        detail =
            "\(trip.downgraded) of \(trip.fullCloses) full closes downgraded in \(formatNumber(g.windowSec, decimals: 0)) s "
            + "(\(formatNumber(share * 100, decimals: 1)) % > \(formatNumber(g.maxDowngradeShare * 100, decimals: 1)) %)"
    case .inputsUnusable:
        detail =
            "heat inputs unusable for \(formatNumber(trip.inputsBadSec, decimals: 1)) s "
            + "(> \(formatNumber(g.maxInputsBadSec, decimals: 0)) s)"
    case .keptLoss:
        detail =
            "kept parts of the window's downgrades at \(formatNumber(trip.keptPnLUSD, decimals: 2)) USD "
            + "(loss limit \(formatNumber(g.maxKeptLossUSD, decimals: 2)) USD)"
    }
    let entry = LedgerEntry(
        ts: trip.ts, operatorName: "heatgate-guard", operation: "guard rollback",
        objective: "automatic rollback to shadow: \(trip.reason.label)", riskClass: .lowRiskConfig,
        blastRadius: "every exit proposal: the Apply Layer executes original actions again",
        allowedPaths: [ledger.path], allowedServices: ["quantum-portfolio-heat-gate"],
        changes: "live: mode enforce -> shadow (guard, after seq \(trip.lastEnforcedSeq))",
        outcome: rollsBack == nil ? .success : .rollback, rollsBack: rollsBack,
        evidence: LedgerEvidence(mode: "shadow"),
        notes: detail + "; back to enforce only by `heatgate mode enforce` and its preflight")
    return try ledger.append(entry).id
}
