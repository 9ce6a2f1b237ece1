import Foundation
import HeatGateClient
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §5, the read contract, against a real daemon's store.
@Suite(.serialized) struct DecisionLookupTests {
    @Test func eachBranchOfTheContract() throws {
        let d = DaemonProcess()
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(coldBook + [proposal("p1")])
        let decided = try #require(try c.decisions(1).first)
        let lookup = try DecisionLookup(stateDir: d.stateDir, runDir: d.runDir)

        // Shadow mode: the decision's action is the original token; calibrated is recorded beside it.
        let shadow = try lookup.lookup(symbol: "ETHUSDT", planId: "p1", action: fullToken, now: now())
        #expect(
            shadow
                == .useDecision(action: "FULL_CLOSE_PROPOSED", decision: String(decoding: decided.raw, as: UTF8.self)))
        #expect(decided.json["calibrated_action"]?.string == "PARTIAL_25")
        #expect(shadow.action(original: "FULL_CLOSE_PROPOSED") == "FULL_CLOSE_PROPOSED")

        // A newer proposal than the record's: the stale calibration must not shadow it.
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p2", action: fullToken, now: now())
                == .useOriginal(reason: .otherPlan))
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p2", action: fullToken, now: now()).action(
                original: "FULL_CLOSE")
                == "FULL_CLOSE")
        // Expired: now at (not before) expires_at.
        let expiresAt = try #require(decided.json["expires_at"]?.number)
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p1", action: fullToken, now: expiresAt)
                == .useOriginal(reason: .expired))
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p1", action: fullToken, now: expiresAt - 0.01).action(
                original: "X") != "X")
        // Never decided.
        #expect(
            try lookup.lookup(symbol: "BTCUSDT", planId: "p1", action: fullToken, now: now())
                == .useOriginal(reason: .noDecision))
        // The same plan with another action (a revised plan): the decision is not for this proposal. The
        // action is compared normalised, so the canonical token or another case still matches.
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p1", action: "PARTIAL_25", now: now())
                == .useOriginal(reason: .otherAction))
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p1", action: " full_close ", now: now()).action(original: "X")
                == "FULL_CLOSE_PROPOSED")
        // `get` has no look-up without plan and action: an older plan's action could be applied.
        let bare = try d.cli(["get", "ETHUSDT"])
        #expect(bare.status != 0 && bare.status != 3 && bare.stdout.isEmpty)
        let revised = try d.cli(["get", "ETHUSDT", "--plan-id", "p1", "--action", "PARTIAL_25"])
        #expect(revised.status == 3 && revised.stdout == "other_action\n")
        let viaProposal = try d.cli(["get", "--proposal", proposal("p1")])
        #expect(viaProposal.status == 0 && viaProposal.stdout.contains(#""seq":1"#))

        // Enforce: the calibrated action is the one to execute.
        // A live switch, not an activation (no shadow history): past the enforce preflight with --force.
        #expect(try d.cli(["mode", "enforce", "--reason", "client test", "--force"]).status == 0)
        try c.send([proposal("p2")])
        #expect(try c.decisions(1).first?.json["plan_id"]?.string == "p2")
        let enforced = try lookup.lookup(symbol: "ETHUSDT", planId: "p2", action: fullToken, now: now())
        #expect(enforced.action(original: "FULL_CLOSE_PROPOSED") == "PARTIAL_25")
        // The older plan's record is gone from `latest`: p1 now resolves to its original.
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p1", action: fullToken, now: now())
                == .useOriginal(reason: .otherPlan))

        // Kill switch: nothing is executed, whatever the record says; it is read in the same snapshot.
        #expect(try d.cli(["kill", "on", "--reason", "drill"]).status == 0)
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p2", action: fullToken, now: now())
                == .killSwitch(reason: "drill"))
        #expect(
            try lookup.lookup(symbol: "BTCUSDT", planId: "x", action: fullToken, now: now()).action(
                original: "FULL_CLOSE") == nil)
        #expect(try lookup.killSwitch().on)
        #expect(try d.cli(["kill", "off"]).status == 0)
        #expect(try !lookup.killSwitch().on)
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p2", action: fullToken, now: now()).action(original: "X")
                == "PARTIAL_25")

        // The gate killed outright: the store still answers, and a proposal it never saw runs as it stands.
        d.stop(signal: SIGKILL)
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p2", action: fullToken, now: now()).action(original: "X")
                == "PARTIAL_25")
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "p3", action: fullToken, now: now())
                == .useOriginal(reason: .otherPlan))
        #expect(try lookup.lastSeq() == 2)
        #expect(try lookup.decisions(from: 1, limit: 10).map(\.seq) == [1, 2])
        #expect(try lookup.decisions(from: 1, limit: 10).first?.json == decided.raw)
    }

    @Test func noStoreFailsOpenAndALazyLookupFindsTheStoreOnceTheGateRuns() throws {
        let d = DaemonProcess()
        #expect(throws: StoreError.self) { try DecisionLookup(stateDir: d.stateDir, runDir: d.runDir) }
        let lazy = try DecisionLookup(stateDir: d.stateDir, runDir: d.runDir, opening: .lazily)
        #expect(throws: StoreError.self) {
            try lazy.lookup(symbol: "ETHUSDT", planId: "p1", action: fullToken, now: now())
        }
        // `heatgate get` with no store: execute the original (exit 3).
        let get = try d.cli(["get", "ETHUSDT", "--plan-id", "p1", "--action", fullToken])
        #expect(get.status == 3)
        #expect(get.stdout == "no_decision\n")

        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(coldBook + [proposal("p1")])
        #expect(try c.decisions(1).count == 1)
        #expect(
            try lazy.lookup(symbol: "ETHUSDT", planId: "p1", action: fullToken, now: now()).action(original: "X")
                == "FULL_CLOSE_PROPOSED")
        #expect(try d.cli(["get", "ETHUSDT", "--plan-id", "p1", "--action", fullToken]).status == 0)
    }

    @Test func theReaderFollowsTheDaemonWhenItGrowsTheMap() throws {
        // A 1 MiB map: the daemon doubles it on MDB_MAP_FULL; a reader that mapped 1 MiB gets
        // MDB_MAP_RESIZED once the data outgrows its map, and must adopt the new size.
        let d = DaemonProcess(settings: ["P26_MAP_SIZE_MB": "1", "P26_LOG_LEVEL": "warning"])
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(coldBook + [proposal("before")])
        #expect(try c.decisions(1).count == 1)
        let lookup = try DecisionLookup(stateDir: d.stateDir, runDir: d.runDir)
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "before", action: fullToken, now: now()).action(original: "X")
                != "X")

        let n = 4000
        try c.send((0..<n).map { proposal("grow-\($0)") })
        #expect(try c.decisions(n, timeout: 30).count == n)
        let last = UInt64(n + 1)
        #expect(try lookup.lastSeq() == last)
        #expect(
            try lookup.lookup(symbol: "ETHUSDT", planId: "grow-\(n - 1)", action: fullToken, now: now()).action(
                original: "X") != "X")
        #expect(try lookup.decisions(from: last - 9, limit: 100).map(\.seq) == Array((last - 9)...last))
        #expect(lookup.mapResizesAdopted >= 1)
    }
}
