import Foundation
import HeatGateCore
import HeatGateTestSupport
import Testing

/// The rollback guard through a real daemon (issue 16): a downgrade storm trips it, a normal sequence not.
@Suite(.serialized) struct GuardDaemonTests {
    static let settings = [
        "P26_GUARD_ENABLED": "true", "P26_GUARD_WINDOW_SEC": "600", "P26_GUARD_MIN_FULL_CLOSES": "10",
        "P26_GUARD_MAX_DOWNGRADE_SHARE": "0.8", "P26_HEARTBEAT_SEC": "0.2",
    ]
    static let equity = #"{"type":"portfolio","equity_usd":"10000"}"#
    static let cold = #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15"}"#
    static let hot = #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"60000","sigma":"0.15"}"#

    func enforce(_ d: DaemonProcess) throws {
        let r = try d.cli(["mode", "enforce", "--reason", "guard test", "--force"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    func ledgerLines(_ d: DaemonProcess) throws -> [JSON] {
        let text = (try? String(contentsOfFile: d.stateDir + "/ops-ledger.jsonl", encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { try JSON.parse(String($0)) }
    }

    @Test func aDowngradeStormRollsBackToShadowAndOnlyModeEnforceReturns() throws {
        // The file says enforce: a reload after the trip must not bring it back.
        let d = DaemonProcess(settings: Self.settings, configFile: "P26_MODE=enforce\n")
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try enforce(d)
        try c.send([Self.equity, Self.cold] + (1...30).map { proposal("storm-\($0)") })
        let decided = try c.decisions(30)
        #expect(decided.count == 30)
        let modes = decided.map { $0.json["mode"]?.string ?? "?" }
        #expect(modes == Array(repeating: "enforce", count: 10) + Array(repeating: "shadow", count: 20))
        #expect(decided[9].json["action"]?.string == "PARTIAL_25")
        #expect(decided[10].json["action"]?.string == "FULL_CLOSE")

        let hb = try c.heartbeats(1, timeout: 3).first?.json
        #expect(hb?["guard_tripped"]?.string == "downgrade_share")
        #expect(hb?["mode"]?.string == "shadow")
        let m = d.metrics()
        #expect(metricValue(m, #"p26_guard_tripped{reason="downgrade_share"}"#) == 1)
        #expect(metricValue(m, #"p26_guard_tripped{reason="inputs_unusable"}"#) == 0)
        #expect(metricValue(m, "p26_enforce_mode") == 0)
        let status = try JSON.parse(try d.cli(["status", "--json"]).stdout)
        #expect(status["guard_tripped"]?.string == "downgrade_share")

        // The ledger: the trip rolls back the operator's `mode enforce`.
        let ledger = try ledgerLines(d)
        #expect(ledger.count == 2)
        #expect(ledger.last?["operation"]?.string == "guard rollback")
        #expect(ledger.last?["outcome"]?.string == "ROLLBACK")
        #expect(ledger.last?["rolls_back"]?.string == ledger.first?["id"]?.string)
        let verify = try runCommand(
            HeatGateBinary.path, ["ledger", "verify", "--ledger", d.stateDir + "/ops-ledger.jsonl"],
            environment: d.environment)
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")

        // A reload (SIGHUP) does not switch back, though the file says P26_MODE=enforce.
        d.signal(SIGHUP)
        usleep(500_000)
        try c.send([proposal("after-reload")])
        #expect(try c.decisions(1).first?.json["mode"]?.string == "shadow")

        // Nor does a restart, a kill -9 included: the trip is in the store.
        let beforeRestart = try ledgerLines(d).count
        d.stop(signal: SIGKILL)
        try d.start()
        var c2 = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c2.awaitHeartbeat()
        try c2.send([proposal("after-restart")])
        #expect(try c2.decisions(1).first?.json["mode"]?.string == "shadow")
        #expect(try JSON.parse(try d.cli(["status", "--json"]).stdout)["guard_tripped"]?.string == "downgrade_share")
        let afterRestart = try ledgerLines(d).map { $0["operation"]?.string ?? "?" }
        #expect(afterRestart.count == beforeRestart, "the restored trip is not recorded again: \(afterRestart)")

        // An operator does, and the guard is armed again with empty counters.
        try enforce(d)
        #expect(metricValue(d.metrics(), #"p26_guard_tripped{reason="downgrade_share"}"#) == 0)
        try c2.send((1...5).map { proposal("again-\($0)") })
        #expect(try c2.decisions(5).allSatisfy { $0.json["mode"]?.string == "enforce" })
        // ... and that sticks across a restart too.
        d.stop()
        try d.start()
        c2 = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c2.awaitHeartbeat()
        try c2.send([proposal("after-second-restart")])
        #expect(try c2.decisions(1).first?.json["mode"]?.string == "enforce")
        d.stop()
        #expect(d.log.contains("GUARD ROLLBACK enforce -> shadow: downgrade_share"))
        #expect(d.log.contains("the rollback guard tripped before this start"))
    }

    @Test func aNormalSequenceStaysInEnforce() throws {
        let d = DaemonProcess(settings: Self.settings)
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try enforce(d)
        var lines = [Self.equity]
        for i in 1...40 { lines += [i % 2 == 0 ? Self.hot : Self.cold, proposal("normal-\(i)")] }
        try c.send(lines)
        let decided = try c.decisions(40)
        #expect(decided.count == 40)
        #expect(decided.allSatisfy { $0.json["mode"]?.string == "enforce" })
        #expect(decided.filter { $0.json["downgraded"]?.bool == true }.count == 20)
        let hb = try c.heartbeats(1, timeout: 3).first?.json
        #expect(hb?["guard_tripped"] == .null)
        #expect(metricValue(d.metrics(), #"p26_guard_tripped{reason="downgrade_share"}"#) == 0)
        #expect(try ledgerLines(d).count == 1)
        d.stop()
        #expect(!d.log.contains("GUARD ROLLBACK"))
    }
}
