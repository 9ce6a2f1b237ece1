import Foundation
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import LMDB
import Testing
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// The defects found when 0.1 was tried against its contract (issue 12), each on a real daemon.
@Suite(.serialized) struct ContractTests {
    static let cold = Array(example[0...1])

    /// Decisions with their topics (the wrong-topic defect is only visible there).
    func published(_ c: GateClientSockets, _ n: Int, timeout: Double = 10) throws -> [(topic: String, json: JSON)] {
        var out: [(topic: String, json: JSON)] = []
        let deadline = Date().addingTimeInterval(timeout)
        while out.count < n && Date() < deadline {
            guard let frames = try c.sub.receiveMultipart(), frames.count == 2 else { continue }
            let topic = String(decoding: frames[0], as: UTF8.self)
            if topic.hasPrefix("calibrated.") {
                out.append((topic, try frames[1].withUnsafeBytes { try JSON.parse($0) }))
            }
        }
        return out
    }

    func started(_ d: DaemonProcess) throws -> GateClientSockets { try d.startedWithClient() }

    /// Items 4 and 5: repeats are keyed on symbol + plan_id + action; a repeat under the kill switch is held.
    @Test func repeatsAreKeyedOnSymbolPlanAndActionAndTheSwitchHoldsThem() throws {
        let d = DaemonProcess(settings: ["P26_MODE": "enforce"])
        let c = try started(d)
        try c.send(Self.cold + [#"{"type":"position","symbol":"BTCUSDT","position_notional_usd":"900","sigma":"0.1"}"#])
        try c.send([
            proposal("plan-eth"), proposal("plan-eth", "PARTIAL_25"), proposal("plan-eth", symbol: "BTCUSDT"),
        ])
        let three = try published(c, 3)
        #expect(three.map(\.json["seq"]?.number) == [1, 2, 3])
        #expect(
            three[1].json["original_action"]?.string == "PARTIAL_25" && three[1].json["action"]?.string == "PARTIAL_25")
        #expect(three[2].topic == "calibrated.BTCUSDT" && three[2].json["symbol"]?.string == "BTCUSDT")
        // A true repeat: the same decision again, counted once.
        try c.send([proposal("plan-eth")])
        #expect(try published(c, 1).first?.json["seq"]?.number == 1)
        // Under the kill switch the repeat is held like any proposal, not republished with its old action.
        #expect(try d.cli(["kill", "on", "--reason", "drill"]).status == 0)
        try c.send([proposal("plan-eth")])
        let held = try #require(try published(c, 1).first?.json)
        #expect(held["seq"]?.number == 4 && held["action"]?.string == "HOLD" && held["kill_switch"]?.bool == true)
        d.stop()
    }

    /// Item 3: kill-switch holds did come back after a restart as remembered plans.
    @Test(arguments: [SIGTERM, SIGKILL])
    func aKillSwitchHoldIsNotRememberedAcrossARestart(signal: Int32) throws {
        let d = DaemonProcess()
        var c = try started(d)
        try c.send(Self.cold)
        #expect(try d.cli(["kill", "on", "--reason", "drill"]).status == 0)
        try c.send([proposal("k1")])
        #expect(try c.decisions(1).first?.json["reason"]?.string == "kill_switch")
        #expect(try d.cli(["kill", "off"]).status == 0)
        // A plan decided normally before the restart stays remembered.
        try c.send([proposal("r1")])
        #expect(try c.decisions(1).first?.json["seq"]?.number == 2)
        usleep(100_000)
        d.stop(signal: signal)
        c = try started(d)
        try c.send([proposal("k1"), proposal("r1")])
        let after = try c.decisions(2)
        #expect(after.first?.json["seq"]?.number == 3)
        #expect(after.first?.json["reason"]?.string == "portfolio_heat_cold")
        #expect(after.last?.json["seq"]?.number == 2)
        d.stop()
    }

    /// Item 11: every plan within its TTL comes back after a restart, past the 0.1 limit of 32 768.
    @Test func everyPlanWithinItsTTLIsRememberedAfterARestart() throws {
        let d = DaemonProcess(settings: ["P26_LOG_LEVEL": "notice"])
        var c = try started(d)
        try c.send(Self.cold)
        let n = 40_000
        try c.send((0..<n).map { proposal("w\($0)") })
        #expect(try c.decisions(n, timeout: 60).count == n)
        d.stop(signal: SIGKILL)
        c = try started(d)
        try c.send([proposal("w0"), proposal("w\(n / 2)"), proposal("w\(n - 1)"), proposal("new")])
        let seqs = try c.decisions(4).map { $0.json["seq"]?.number }
        #expect(seqs == [1, Double(n / 2 + 1), Double(n), Double(n + 1)])
        #expect(metricValue(d.metrics(), "p26_repeat_window_evictions_total") == 0)
        d.stop()
        #expect(d.log.contains("repeats_restored=\(n)"))
    }

    /// SPEC §5: one daemon per state directory. Two both started, and one lost its batches (MDB_KEYEXIST).
    @Test func aSecondDaemonOnTheSameStoreRefusesAndNamesTheFirst() throws {
        let first = DaemonProcess(settings: ["P26_LOG_LEVEL": "warning"])
        var c = try started(first)
        try c.send(Self.cold + [proposal("one")])
        #expect(try c.decisions(1).first?.json["seq"]?.number == 1)
        let second = DaemonProcess(settings: [
            "P26_STATE_DIR": first.stateDir, "P26_RUN_DIR": first.runDir, "P26_LOG_LEVEL": "warning",
        ])
        #expect(throws: (any Error).self) { try second.start(timeout: 5) }
        #expect(!second.isRunning)
        second.stop()
        #expect(second.log.contains("another heatgate (pid \(first.pid)) owns \(first.stateDir)"), "\(second.log)")
        // The first one never noticed: it still decides, in sequence.
        try c.send([proposal("two")])
        #expect(try c.decisions(1).first?.json["seq"]?.number == 2)
        // A kill -9 leaves the pid file behind but not the lock: the next daemon starts and goes on.
        first.stop(signal: SIGKILL)
        try second.start()
        c = try GateClientSockets(ingest: second.ingest, publish: second.publish)
        _ = try c.awaitHeartbeat()
        try c.send([proposal("three")])
        #expect(try c.decisions(1).first?.json["seq"]?.number == 3)
        #expect(DirectoryLock.owner(of: first.stateDir) == second.pid)
        second.stop()
    }

    /// Item 7: the switch was read only when a batch began, so an idle gate showed it off.
    @Test func theKillSwitchShowsWithinAHeartbeatWhileIdle() throws {
        let d = DaemonProcess(settings: ["P26_HEARTBEAT_SEC": "0.2"])
        let c = try started(d)
        #expect(try d.cli(["kill", "on", "--reason", "idle drill"]).status == 0)
        usleep(300_000)
        #expect(metricValue(d.metrics(), "p26_kill_switch") == 1)
        let status = try JSON.parse(try d.cli(["status", "--json"]).stdout)
        #expect(status["kill_switch"]?.bool == true)
        let beats = try c.heartbeats(2, timeout: 2)
        #expect(beats.last?.json["kill_switch"]?.bool == true)
        d.stop()
    }

    /// Item 8: one parser. `{"on": true}` read as off in the daemon's fast path; an unreadable record was
    /// on in one parser and off in the other. Unreadable counts as on, and is logged.
    @Test(arguments: [#"{"on": true, "reason": "spaced"}"#, "not json", #"{"on":"false"}"#, "{}"])
    func everyReaderParsesTheKillSwitchAlike(record: String) throws {
        let d = DaemonProcess(settings: ["P26_MODE": "enforce"])
        let c = try started(d)
        try c.send(Self.cold)
        try c.send([proposal("before")])
        #expect(try c.decisions(1).first?.json["action"]?.string == "PARTIAL_25")
        // Written as another tool could write it, in both stores' own meta tables (the hot one at the
        // daemon's map size: its file is allocated to it).
        let hotBytes = try FileManager.default.attributesOfItem(atPath: d.runDir + "/data.mdb")[.size] as! Int
        for (dir, mb) in [(d.stateDir, 1024), (d.runDir, hotBytes >> 20)] {
            let store = try GateStore(directory: dir, mapSizeMB: mb)
            try store.environment.write { txn in
                let meta = try txn.openDatabase("meta")
                try txn.put(meta, "kill_switch", record)
            }
        }
        try c.send([proposal("after")])
        let held = try #require(try c.decisions(1).first?.json)
        #expect(held["reason"]?.string == "kill_switch" && held["action"]?.string == "HOLD")
        let get = try d.cli(["get", "ETHUSDT", "--plan-id", "before", "--action", "FULL_CLOSE"])
        #expect(get.status == 4)
        usleep(300_000)
        #expect(metricValue(d.metrics(), "p26_kill_switch") == 1)
        d.stop()
        let unreadable = record == "not json" || !record.contains("true")
        #expect(d.log.contains("kill switch record unreadable") == unreadable, "\(record)")
    }

    /// Items 9 and 10 on the wire: empty optional fields, a numeric trace id, an equity ahead of the clock.
    @Test func emptyFieldsAndAClockAheadAreAccepted() throws {
        let d = DaemonProcess()
        let c = try started(d)
        let ahead = Date().timeIntervalSince1970 + 30
        try c.send([
            #"{"type":"portfolio","equity_usd":"10000","ts":"\#(ahead)"}"#,
            #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15","ts":""}"#,
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":null,"action":"FULL_CLOSE","ts_epoch":"","timestamp":"\#(Date().timeIntervalSince1970)","trace_id":42,"plan_id":"None"}"#,
        ])
        let d1 = try #require(try c.decisions(1).first?.json)
        #expect(d1["reason"]?.string == "portfolio_heat_cold" && d1["fail_closed"]?.bool == false)
        #expect(d1["trace_id"]?.string == "42" && d1["plan_id"]?.string?.hasPrefix("hg-") == true)
        usleep(300_000)
        let skew = try #require(metricValue(d.metrics(), "p26_clock_skew_seconds"))
        #expect(skew > 25 && skew < 35)
        #expect(metricValue(d.metrics(), "p26_rejected_total{reason=\"bad_timestamp\"}") == 0)
        d.stop()
    }

    /// Item 12: after 100 000 distinct `market` symbols every new symbol was refused, even after a restart.
    @Test func idleSymbolsAreReclaimedAndStayReclaimedAfterARestart() throws {
        let d = DaemonProcess(settings: [
            "P26_CALIBRATED_TTL_SEC": "1", "P26_STATE_MAX_AGE_SEC": "1", "P26_LOG_LEVEL": "warning",
        ])
        var c = try started(d)
        let n = Engine.defaultMaxSymbols
        for chunk in stride(from: 0, to: n, by: 10_000) {
            try c.send((chunk..<(chunk + 10_000)).map { #"{"type":"market","symbol":"S\#($0)","sigma":0.1}"# })
        }
        let deadline = Date().addingTimeInterval(60)
        while metricValue(d.metrics(), "p26_symbols") ?? 0 < Double(n), Date() < deadline { usleep(100_000) }
        #expect(metricValue(d.metrics(), "p26_symbols") == Double(n))
        usleep(1_200_000)  // every symbol idle past the TTL and the state age
        try c.send(Self.cold + [proposal("room")])
        #expect(try c.decisions(1).first?.json["symbol"]?.string == "ETHUSDT")
        usleep(300_000)
        #expect(metricValue(d.metrics(), "p26_rejected_total{reason=\"too_many_symbols\"}") == 0)
        #expect((metricValue(d.metrics(), "p26_symbols_reclaimed_total") ?? 0) >= Double(n - 10))
        d.stop()
        // The reclaimed symbols' book rows went with them: a restart does not bring the full table back.
        #expect(try GateStore(directory: d.stateDir, readOnly: true).counts().book < 100)
        c = try started(d)
        try c.send([#"{"type":"market","symbol":"AFTER","sigma":0.1}"#])
        usleep(300_000)
        #expect(metricValue(d.metrics(), "p26_rejected_total{reason=\"too_many_symbols\"}") == 0)
        d.stop()
    }
}
