import Foundation
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import Testing

/// `heatgate replay` and `heatgate check-config` as an operator runs them.
@Suite struct CLITests {
    func replay(_ lines: [String], args: [String] = []) throws -> CommandResult {
        try runCommand(
            HeatGateBinary.path, ["replay", "-", "--now", "1764000000"] + args, stdin: lines.joined(separator: "\n"))
    }

    @Test func replayPrintsTheWorkedExamples() throws {
        let r = try replay(example)
        #expect(r.status == 0, "\(r.stderr)")
        let d = try r.lines.map { try JSON.parse($0) }
        #expect(d.count == 4)
        #expect(d.map { $0["heat_value"]?.number } == [0.027, 0.29, 0.87, 0.87])
        #expect(d.map { $0["heat_bucket"]?.string } == ["COLD", "WARM", "HOT", "HOT"])
        #expect(
            d.map { $0["calibrated_action"]?.string } == [
                "PARTIAL_25", "PARTIAL_75", "FULL_CLOSE_PROPOSED", "PARTIAL_50",
            ])
        #expect(
            d.map { $0["action"]?.string } == [
                "FULL_CLOSE_PROPOSED", "FULL_CLOSE_PROPOSED", "FULL_CLOSE_PROPOSED", "PARTIAL_50",
            ])
        #expect(d[0]["reason"]?.string == "portfolio_heat_cold")
        #expect(d[0]["ts"]?.number == 1_764_000_000)
    }

    @Test func replayReportsMalformedLinesAndExitsOne() throws {
        let lines = [example[0], "{oops", example[1], #"{"type":"proposal","symbol":"ETHUSDT"}"#, example[2], "[1]"]
        let r = try replay(lines)
        #expect(r.status == 1)
        #expect(r.lines.count == 1)
        #expect(try JSON.parse(r.lines[0])["plan_id"]?.string == "p1")
        let errs = r.stderr.split(separator: "\n").map(String.init)
        #expect(errs.contains { $0.hasPrefix("line 2:") && $0.contains("not_json") })
        #expect(
            errs.contains { $0.hasPrefix("line 4:") && $0.contains("missing_field") && $0.contains("harvest_action") })
        #expect(errs.contains { $0.hasPrefix("line 6:") && $0.contains("not_object") })
    }

    @Test func replayClockFollowsAt() throws {
        let lines = [
            #"{"type":"portfolio","equity_usd":10000,"at":1764000000}"#,
            example[1],
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"a","at":1764000100}"#,
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"b","at":1764000200}"#,
        ]
        let d = try replay(lines).lines.map { try JSON.parse($0) }
        #expect(d.map { $0["reason"]?.string } == ["portfolio_heat_cold", "equity_stale"])
        #expect(d.map { $0["ts"]?.number } == [1_764_000_100, 1_764_000_200])
    }

    @Test(arguments: [
        ("HEAT_MIN=0.7\nHEAT_MAX=0.3\n", "HEAT_MIN"), ("P26_MODE=banana\n", "P26_MODE"),
        ("HEAT_WARM_ACTION=SELL\n", "HEAT_WARM_ACTION"),
    ])
    func checkConfigRejectsNamingTheKey(text: String, key: String) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/bad.env"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runCommand(HeatGateBinary.path, ["check-config", path])
        #expect(r.status != 0)
        #expect(r.stderr.contains(key), "\(r.stderr)")
    }

    @Test(arguments: ["P26_MODE=ENFORCE\n", "# crlf\r\nP26_MODE=enforce\r\nHEAT_MIN=0.2\r\n"])
    func checkConfigAccepts(text: String) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/ok.env"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runCommand(HeatGateBinary.path, ["check-config", "--config", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("mode=enforce"))
    }

    /// The environment of a CLI run: the test's, with only the given config choice.
    func cliEnvironment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("P26_") && !$0.key.hasPrefix("HEAT") }
        env.merge(extra) { $1 }
        return env
    }

    @Test func withoutConfigTheFileComesFromHEATGATE_CONFIG() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/gate.env"
        try "P26_STATE_DIR=\(dir.path)/state\nP26_MODE=enforce\n".write(toFile: path, atomically: true, encoding: .utf8)
        let chosen = try runCommand(
            HeatGateBinary.path, ["check-config"], environment: cliEnvironment(["HEATGATE_CONFIG": path]))
        #expect(chosen.status == 0, "\(chosen.stderr)")
        #expect(chosen.lines.first == "ok: \(path)")
        #expect(chosen.stdout.contains("state_dir=\(dir.path)/state") && chosen.stdout.contains("mode=enforce"))
        // --config wins over the variable; an empty variable means none (not even the packaged file).
        let other = dir.path + "/other.env"
        try "P26_MODE=shadow\n".write(toFile: other, atomically: true, encoding: .utf8)
        let explicit = try runCommand(
            HeatGateBinary.path, ["check-config", "--config", other],
            environment: cliEnvironment(["HEATGATE_CONFIG": path]))
        #expect(explicit.lines.first == "ok: \(other)")
        let none = try runCommand(
            HeatGateBinary.path, ["check-config"], environment: cliEnvironment(["HEATGATE_CONFIG": ""]))
        #expect(none.lines.first == "ok: defaults")
        let missing = try runCommand(
            HeatGateBinary.path, ["status"], environment: cliEnvironment(["HEATGATE_CONFIG": dir.path + "/nope.env"]))
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("nope.env (from HEATGATE_CONFIG): no such file"), "\(missing.stderr)")
    }

    @Test func killRefusesAStateDirectoryThatIsNotThere() throws {
        let dir = TemporaryDirectory()
        let wrong = dir.path + "/not-the-gate"
        let r = try runCommand(
            HeatGateBinary.path, ["kill", "on", "--reason", "drill"],
            environment: cliEnvironment(["HEATGATE_CONFIG": "", "P26_STATE_DIR": wrong]))
        #expect(r.status != 0)
        #expect(r.stderr.contains("no state directory \(wrong)"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: wrong), "no store is created for a switch nobody reads")
        try FileManager.default.createDirectory(atPath: wrong, withIntermediateDirectories: false)
        let ok = try runCommand(
            HeatGateBinary.path, ["kill", "on", "--reason", "drill"],
            environment: cliEnvironment(["HEATGATE_CONFIG": "", "P26_STATE_DIR": wrong]))
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try GateStore(directory: wrong, readOnly: true).killSwitch().on)
        // Both switches land in the ops ledger, one chain with mode's entries (issue 15).
        let env = cliEnvironment(["HEATGATE_CONFIG": "", "P26_STATE_DIR": wrong])
        let off = try runCommand(HeatGateBinary.path, ["kill", "off", "--reason", "drill over"], environment: env)
        #expect(off.status == 0 && off.stdout.contains("ledger "), "\(off.stdout)\(off.stderr)")
        let verify = try runCommand(HeatGateBinary.path, ["ledger", "verify"], environment: env)
        #expect(verify.status == 0 && verify.stdout.contains(": 2 entries"), "\(verify.stdout)\(verify.stderr)")
        let text = try String(contentsOfFile: wrong + "/ops-ledger.jsonl", encoding: .utf8)
        #expect(text.contains(#""operation":"kill on""#) && text.contains(#""changes":"kill switch off -> on""#))
        #expect(text.contains(#""operation":"kill off""#) && text.contains(#""objective":"drill over""#))
        // A ledger that cannot take the entry does not stop the switch.
        try "not a ledger\n".write(toFile: wrong + "/ops-ledger.jsonl", atomically: true, encoding: .utf8)
        let again = try runCommand(HeatGateBinary.path, ["kill", "on", "--reason", "drill 2"], environment: env)
        #expect(again.status == 0 && again.stderr.contains("did not record"), "\(again.stderr)")
        #expect(try GateStore(directory: wrong, readOnly: true).killSwitch().on)
    }

    @Test func runRefusesAnInvalidConfigNamingTheKey() throws {
        let r = try runCommand(HeatGateBinary.path, ["run", "--set", "P26_FAIL_MODE=sometimes"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("P26_FAIL_MODE"))
    }

    @Test func runRefusesAPublicBindWithoutCurve() throws {
        let dir = TemporaryDirectory()
        let r = try runCommand(
            HeatGateBinary.path,
            ["run", "--set", "P26_INGEST_ENDPOINT=tcp://0.0.0.0:5556", "--set", "P26_STATE_DIR=\(dir.path)/state"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("P26_INGEST_ENDPOINT") && r.stderr.contains("CURVE"))
    }
}
