import Foundation
import HeatGateClient
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The hot and durable stores of SPEC §5 (issue 17), on a real daemon: a reboot (the hot store gone), a
/// kill switch set while there is no hot store, and a hot store made for another state directory.
@Suite(.serialized) struct TwoStoresTests {
    static let cold = Array(example[0...1])

    func started(_ d: DaemonProcess) throws -> GateClientSockets { try d.startedWithClient() }

    @Test func aRebootRebuildsTheHotStoreFromTheDurableOne() throws {
        let d = DaemonProcess(settings: ["P26_MODE": "enforce", "P26_LOG_LEVEL": "notice"])
        var c = try started(d)
        try c.send(Self.cold + (1...3).map { proposal("r\($0)") })
        let before = try c.decisions(3)
        #expect(before.map { $0.json["seq"]?.number } == [1, 2, 3])
        // Stopped cleanly, so the durable store has it all; then the hot store goes, as with a reboot.
        #expect(d.stop() == 0)
        try FileManager.default.removeItem(atPath: d.runDir)
        c = try started(d)
        // The latest decision of the symbol is back, for the Apply Layer's read contract.
        let get = try d.cli(["get", "ETHUSDT", "--plan-id", "r3", "--action", "FULL_CLOSE"])
        #expect(get.status == 0, "\(get.stdout) \(get.stderr)")
        #expect(get.stdout.contains(#""seq":3"#))
        // The repeat window too: r3 re-sent is the same decision, and a new plan continues the sequence.
        try c.send([proposal("r3"), proposal("r4")])
        let after = try c.decisions(2).map { $0.json["seq"]?.number }
        #expect(after == [3, 4])
        // The book came back: the new decision is not failed for missing inputs.
        #expect(FileManager.default.fileExists(atPath: d.runDir + "/data.mdb"))
        d.stop()
        // Once at the first start (no hot store yet), once after the "reboot".
        let rebuilt = d.log.components(separatedBy: "hot store rebuilt from the durable store").count - 1
        #expect(rebuilt == 2, "\(d.log.suffix(800))")
        #expect(d.log.contains("no hot store in \(d.runDir)"))
    }

    @Test func aKillSwitchSetWithoutAHotStoreHoldsForReadersAndTheNextDaemon() throws {
        let d = DaemonProcess(settings: ["P26_MODE": "enforce"])
        var c = try started(d)
        try c.send(Self.cold + [proposal("k1")])
        _ = try c.decisions(1)
        d.stop()
        try FileManager.default.removeItem(atPath: d.runDir)
        let kill = try d.cli(["kill", "on", "--reason", "after reboot"])
        #expect(kill.status == 0, "\(kill.stderr)")
        #expect(!FileManager.default.fileExists(atPath: d.runDir + "/data.mdb"), "kill makes no hot store")
        // No hot store: the durable switch still stops exits.
        let held = try d.cli(["get", "ETHUSDT", "--plan-id", "k1", "--action", "FULL_CLOSE"])
        #expect(held.status == 4, "\(held.stdout) \(held.stderr)")
        #expect(try d.cli(["kill", "off", "--reason", "drill over"]).status == 0)
        let open = try d.cli(["get", "ETHUSDT", "--plan-id", "k1", "--action", "FULL_CLOSE"])
        #expect(open.status == 3 && open.stdout == "no_decision\n", "\(open.stdout) \(open.stderr)")
        _ = try d.cli(["kill", "on", "--reason", "again"])
        // The next daemon rebuilds the hot store with the switch on.
        c = try started(d)
        try c.send([proposal("k2")])
        let decided = try #require(try c.decisions(1).first?.json)
        #expect(decided["action"]?.string == "HOLD" && decided["reason"]?.string == "kill_switch")
        // Set while the daemon runs: both stores, and the daemon holds from the next proposal.
        #expect(try d.cli(["kill", "off"]).status == 0)
        try c.send([proposal("k3")])
        #expect(try c.decisions(1).first?.json["reason"]?.string != "kill_switch")
        #expect(try !GateStore(directory: d.stateDir, readOnly: true).killSwitch().on)
        #expect(try !GateStore(directory: d.runDir, readOnly: true).killSwitch().on)
        d.stop()
    }

    @Test func aHotStoreMadeForAnotherStateDirectoryIsRebuilt() throws {
        let first = DaemonProcess(settings: ["P26_MODE": "enforce", "P26_LOG_LEVEL": "notice"])
        var c = try started(first)
        try c.send(Self.cold + (1...5).map { proposal("a\($0)") })
        _ = try c.decisions(5)
        first.stop()
        // Another gate, another state directory, the same run directory.
        let second = DaemonProcess(settings: [
            "P26_MODE": "enforce", "P26_LOG_LEVEL": "notice", "P26_RUN_DIR": first.runDir,
        ])
        c = try started(second)
        try c.send(Self.cold + [proposal("b1")])
        #expect(try c.decisions(1).first?.json["seq"]?.number == 1, "its own sequence, not the other gate's")
        let other = try second.cli(["get", "ETHUSDT", "--plan-id", "a5", "--action", "FULL_CLOSE"])
        #expect(other.status == 3, "the other gate's decisions are gone from the hot store")
        second.stop()
        #expect(
            second.log.contains("was made for \(StorePaths.absolutePath(first.stateDir))"), "\(second.log.suffix(600))")
    }

    /// The package sets `P26_RUN_DIR=/run/…`, which is not the default: a reader given only the state
    /// directory (an Apply Layer, `heatgate get` without the config) finds it through `<state>/run_dir`.
    @Test func aReaderWithOnlyTheStateDirectoryFindsTheHotStore() throws {
        let d = DaemonProcess(settings: ["P26_MODE": "enforce"])
        let c = try started(d)
        try c.send(Self.cold + [proposal("p1")])
        _ = try c.decisions(1)
        #expect(d.runDir != StorePaths.defaultRunDir(stateDir: d.stateDir))
        let pointer = try String(contentsOfFile: d.stateDir + "/run_dir", encoding: .utf8)
        #expect(pointer == d.runDir + "\n")
        let lookup = try DecisionLookup(stateDir: d.stateDir)
        #expect(lookup.runDir == d.runDir)
        let r = try lookup.lookup(
            symbol: "ETHUSDT", planId: "p1", action: "FULL_CLOSE", now: Date().timeIntervalSince1970)
        #expect(r.action(original: "FULL_CLOSE") == "PARTIAL_25", "\(r)")
        var env = d.environment
        env["P26_RUN_DIR"] = nil
        let get = try runCommand(
            HeatGateBinary.path, ["get", "ETHUSDT", "--plan-id", "p1", "--action", "FULL_CLOSE"], environment: env)
        #expect(get.status == 0, "\(get.stdout) \(get.stderr)")
        d.stop()
    }

    @Test func twoDaemonsCannotShareARunDirectory() throws {
        let first = DaemonProcess(settings: ["P26_LOG_LEVEL": "warning"])
        _ = try started(first)
        let second = DaemonProcess(settings: ["P26_RUN_DIR": first.runDir, "P26_LOG_LEVEL": "warning"])
        #expect(throws: (any Error).self) { try second.start(timeout: 5) }
        second.stop()
        #expect(second.log.contains("another heatgate (pid \(first.pid))"), "\(second.log)")
        #expect(second.log.contains("P26_RUN_DIR"))
        first.stop()
    }
}
