import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateServer
import HeatGateTestSupport
import Testing

/// The real daemon, in shadow mode, switched to enforce and back by the real `heatgate mode`.
@Suite("Activation against the running daemon", .serialized)
final class ActivationTests {
    let dir = TemporaryDirectory("heatgate-act")
    var daemon: Process?
    var configPath: String { dir.path + "/gate.env" }
    var stateDir: String { dir.path + "/state" }
    var ledgerPath: String { stateDir + "/ops-ledger.jsonl" }

    let configText: String

    init() {
        configText = """
            # HeatGate under test
            P26_MODE=shadow   # shadow until the report says otherwise
            P26_STATE_DIR=\(dir.path)/state
            P26_RUN_DIR=\(dir.path)/run
            P26_INGEST_ENDPOINT=ipc://\(dir.path)/in.sock
            P26_PUBLISH_ENDPOINT=ipc://\(dir.path)/pub.sock
            P26_METRICS_BIND=127.0.0.1
            P26_METRICS_PORT=0
            P26_HEARTBEAT_SEC=0

            """
    }

    deinit {
        if let daemon, daemon.isRunning {
            daemon.terminate()
            daemon.waitUntilExit()
        }
    }

    func config() throws -> GateConfig { try ConfigLoader.load(fileText: configText) }

    func start(writingConfig: Bool = true) throws -> JSON {
        if writingConfig {
            #expect(FileManager.default.createFile(atPath: configPath, contents: Data(configText.utf8)))
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try heatgateBinary())
        p.arguments = ["run", "--config", configPath]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let log = dir.path + "/daemon.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        daemon = p
        let control = ControlClient(endpoint: try config().controlEndpoint)
        for _ in 0..<100 {
            if let s = control.request(#"{"cmd":"status"}"#, timeoutMs: 200), s["ok"]?.bool == true { return s }
            usleep(100_000)
        }
        throw TapeError("the daemon did not answer: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func metric(_ status: JSON) throws -> Double? {
        let m = try #require(status["metrics"]?.string)
        let port = try #require(Int(m.split(separator: ":").last ?? ""))
        return prometheusValue(
            try httpGet(host: "127.0.0.1", port: port, path: "/metrics").body, name: "p26_enforce_mode")
    }

    func mode() throws -> String? {
        ControlClient(endpoint: try config().controlEndpoint).request(#"{"cmd":"status"}"#)?["mode"]?.string
    }

    func fileMode() throws -> String {
        try String(contentsOfFile: configPath, encoding: .utf8).split(separator: "\n").first {
            $0.hasPrefix("P26_MODE=")
        }
        .map(String.init) ?? ""
    }

    func send(_ lines: [String]) throws {
        let file = dir.path + "/send-\(UUID().uuidString).jsonl"
        #expect(
            FileManager.default.createFile(atPath: file, contents: Data((lines.joined(separator: "\n") + "\n").utf8)))
        let r = try heatgate(["send", "--config", configPath, file])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test(
        "refused without PROCEED, forced with --force, rolled back, then activated on a PROCEED journal; the ledger seals it all"
    )
    func activateAndRollBack() throws {
        let status = try start()
        #expect(try metric(status) == 0)
        let now = Date().timeIntervalSince1970
        try send([
            #"{"type":"portfolio","equity_usd":100000}"#,
            #"{"type":"position","symbol":"BTC","position_notional_usd":10000,"sigma":1}"#,
        ])

        // An empty journal is no evidence: HOLD, so preflight refuses and nothing changes.
        let refused = try heatgate(["mode", "enforce", "--persist", "--reason", "try", "--config", configPath])
        #expect(refused.status != 0)
        #expect(refused.stdout.contains("preflight FAIL verdict: HOLD"))
        #expect(refused.stderr.contains("preflight failed; nothing changed"))
        #expect(try fileMode() == "P26_MODE=shadow   # shadow until the report says otherwise")
        #expect(try mode() == "shadow")
        #expect(!FileManager.default.fileExists(atPath: ledgerPath))

        // --force goes ahead and says so in the ledger.
        let forced = try heatgate([
            "mode", "enforce", "--persist", "--force", "--reason", "drill", "--config", configPath,
        ])
        #expect(forced.status == 0, "\(forced.stdout)\(forced.stderr)")
        #expect(try fileMode() == "P26_MODE=enforce   # shadow until the report says otherwise")
        #expect(try String(contentsOfFile: configPath, encoding: .utf8).hasPrefix("# HeatGate under test\n"))
        #expect(try mode() == "enforce")
        #expect(try metric(status) == 1)
        var entries = OpsLedger(path: ledgerPath).verify().entries
        #expect(entries.count == 1)
        let enforce = try #require(entries.last)
        #expect(enforce.operation == "mode enforce" && enforce.outcome == .success && enforce.objective == "drill")
        #expect(enforce.riskClass == .lowRiskConfig)
        #expect(enforce.notes.contains("FORCED past failed preflight") && enforce.notes.contains("verdict: HOLD"))
        #expect(enforce.evidence.verdict == "HOLD" && enforce.evidence.mode == "enforce")
        #expect(enforce.evidence.metrics.contains("p26_enforce_mode 1"))
        #expect(enforce.allowedPaths.contains(configPath))
        let proof = try #require(enforce.evidence.proofFile)
        #expect(try ProofFile(path: proof.path) == proof)  // the report it rested on, unchanged

        // The rollback: no preflight, live at once, recorded as rolling back the enforce entry.
        let back = try heatgate(["mode", "shadow", "--persist", "--config", configPath])
        #expect(back.status == 0, "\(back.stdout)\(back.stderr)")
        #expect(try fileMode() == "P26_MODE=shadow   # shadow until the report says otherwise")
        #expect(try mode() == "shadow")
        #expect(try metric(status) == 0)
        entries = OpsLedger(path: ledgerPath).verify().entries
        #expect(entries.count == 2)
        #expect(entries.last?.outcome == .rollback && entries.last?.rollsBack == enforce.id)
        #expect(entries.last?.evidence.metrics.contains("p26_enforce_mode 0") == true)

        // A PROCEED journal: a COLD full close downgraded, its kept part up 20 bps by a price inside the 1 s
        // horizon, and the journal running past the horizon's end.
        try send([
            #"{"type":"market","symbol":"BTC","price":100}"#,
            #"{"type":"proposal","symbol":"BTC","harvest_action":"FULL_CLOSE","ts_epoch":\#(now)}"#,
        ])
        usleep(200_000)
        try send([#"{"type":"market","symbol":"BTC","price":100.2}"#])
        usleep(1_100_000)
        try send([#"{"type":"portfolio","equity_usd":100000}"#])
        let report = try heatgate(["analyze", "--config", configPath, "--horizon", "1s", "--format", "json"])
        #expect(report.status == 0, "\(report.stderr)")
        let j = try JSON.parse(report.stdout)
        #expect(j["verdict"]?.string == "PROCEED", "\(report.stdout)")
        #expect(j["evaluated"]?.number == 1 && j["false_positives"]?.number == 0)
        #expect(j["downgrades"]?.array?.first?["exit_price"]?.number == 100.2, "\(report.stdout)")

        let go = try heatgate([
            "mode", "enforce", "--persist", "--reason", "a clean week", "--horizon", "1s", "--config", configPath,
        ])
        #expect(go.status == 0, "\(go.stdout)\(go.stderr)")
        #expect(go.stdout.contains("preflight ok   verdict: PROCEED"))
        #expect(go.stdout.contains("verified: p26_enforce_mode 1"))
        #expect(try metric(status) == 1)
        entries = OpsLedger(path: ledgerPath).verify().entries
        #expect(entries.count == 3)
        #expect(
            entries.last?.evidence.verdict == "PROCEED" && entries.last?.notes.hasPrefix("preflight passed") == true)
        let back2 = try heatgate(["mode", "shadow", "--persist", "--reason", "end of test", "--config", configPath])
        #expect(back2.status == 0)
        entries = OpsLedger(path: ledgerPath).verify().entries
        #expect(entries.count == 4 && entries.last?.rollsBack == entries[2].id)
        #expect(try metric(status) == 0)

        // The ledger verifies as written, and not after any one byte changes.
        let ok = try heatgate(["ledger", "verify", "--config", configPath])
        #expect(ok.status == 0 && ok.stdout.hasPrefix("ok: \(ledgerPath): 4 entries"), "\(ok.stdout)\(ok.stderr)")
        let shown = try heatgate(["ledger", "show", "--config", configPath])
        #expect(
            shown.status == 0 && shown.stdout.contains("ROLLBACK")
                && shown.stdout.contains("(rolls back \(enforce.id))"))
        let original = try #require(FileManager.default.contents(atPath: ledgerPath))
        for position in [
            0, 1, 17, original.count / 3, original.count / 2, original.count - 70, original.count - 2,
            original.count - 1,
        ] {
            var bytes = [UInt8](original)
            bytes[position] = bytes[position] == UInt8(ascii: "x") ? UInt8(ascii: "y") : UInt8(ascii: "x")
            #expect(FileManager.default.createFile(atPath: ledgerPath, contents: Data(bytes)))
            let bad = try heatgate(["ledger", "verify", "--config", configPath])
            #expect(bad.status == 1, "byte \(position) changed, verify said: \(bad.stdout)")
            #expect(bad.stderr.contains("FAILED"))
        }
        #expect(FileManager.default.createFile(atPath: ledgerPath, contents: original))
        #expect(try heatgate(["ledger", "verify", "--config", configPath]).status == 0)

        // `ledger append` from the command line chains on.
        let appended = try heatgate([
            "ledger", "append", "--config", configPath, "--operation", "restart heatgate", "--objective",
            "pick up a new build",
            "--risk-class", "SERVICE_RESTART", "--metrics-pattern", "^p26_enforce_mode ", "--proof-file", configPath,
        ])
        #expect(appended.status == 0, "\(appended.stderr)")
        let last = try #require(OpsLedger(path: ledgerPath).verify().entries.last)
        #expect(last.id == appended.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(last.riskClass == .serviceRestart && last.evidence.metrics == ["p26_enforce_mode 0"])
        #expect(
            last.evidence.proofFile?.sha256
                == SHA256.hex(try #require(FileManager.default.contents(atPath: configPath))))
    }

    @Test("mode --persist on a symlinked config: the link stays, the target keeps its mode, tab comment and quotes")
    func persistThroughASymlink() throws {
        // Issue 12 item 15, on the real CLI and daemon: configs are often symlinked from a deploy checkout.
        let real = dir.path + "/deploy/gate.env"
        try FileManager.default.createDirectory(atPath: dir.path + "/deploy", withIntermediateDirectories: true)
        let text = configText.replacingOccurrences(
            of: "P26_MODE=shadow   # shadow until the report says otherwise",
            with: "P26_MODE=\"enforce\"\t# as deployed")
        #expect(FileManager.default.createFile(atPath: real, contents: Data(text.utf8)))
        chmod(real, 0o600)
        #expect(symlink("deploy/gate.env", configPath) == 0)
        let status = try start(writingConfig: false)
        #expect(status["mode"]?.string == "enforce", "the loader reads a quoted value before a tab comment")
        let r = try heatgate(["mode", "shadow", "--persist", "--reason", "symlink check", "--config", configPath])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: configPath) == "deploy/gate.env")
        let after = try String(contentsOfFile: real, encoding: .utf8)
        #expect(after.contains("P26_MODE=\"shadow\"\t# as deployed\n"), "\(after)")
        #expect(
            after.replacingOccurrences(of: "P26_MODE=\"shadow\"", with: "")
                == text.replacingOccurrences(of: "P26_MODE=\"enforce\"", with: ""), "every other byte kept")
        #expect(try mode() == "shadow")
        var st = stat()
        #expect(stat(real, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/deploy") == ["gate.env"])
        #expect(OpsLedger(path: ledgerPath).verify().ok)
    }

    @Test("a downgrade whose price feed stopped is unpriced: analyze says REVIEW and the preflight refuses enforce")
    func stoppedFeedRefused() throws {
        let status = try start()
        let now = Date().timeIntervalSince1970
        try send([
            #"{"type":"portfolio","equity_usd":100000}"#,
            #"{"type":"position","symbol":"BTC","position_notional_usd":10000,"sigma":1}"#,
            #"{"type":"market","symbol":"BTC","price":100}"#,
            #"{"type":"proposal","symbol":"BTC","harvest_action":"FULL_CLOSE","ts_epoch":\#(now)}"#,
        ])
        // No BTC price after the decision; the journal goes on past the 1 s horizon (fresh equity).
        usleep(1_300_000)
        try send([#"{"type":"portfolio","equity_usd":100000}"#])
        let report = try heatgate(["analyze", "--config", configPath, "--horizon", "1s", "--format", "json"])
        #expect(report.status == 0, "\(report.stderr)")
        let j = try JSON.parse(report.stdout)
        #expect(j["downgraded"]?.number == 1 && j["unpriced"]?.number == 1 && j["evaluated"]?.number == 0)
        #expect(j["verdict"]?.string == "REVIEW", "\(report.stdout)")

        let refused = try heatgate([
            "mode", "enforce", "--reason", "feed stopped", "--horizon", "1s", "--config", configPath,
        ])
        #expect(refused.status != 0)
        #expect(refused.stdout.contains("preflight FAIL verdict: REVIEW"), "\(refused.stdout)")
        #expect(try mode() == "shadow")
        #expect(try metric(status) == 0)
    }
}
