import Foundation
import HeatGateClient
import HeatGateCore
import HeatGateTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The subscriber against a real daemon: gaps filled from the journal, in order, without duplicates.
@Suite(.serialized) struct DecisionSubscriberTests {
    static let fastBeat: [String: String] = ["P26_HEARTBEAT_SEC": "0.2"]

    static func options(catchUp: Bool = true, missed: Int = 3) -> SubscriberOptions {
        var o = SubscriberOptions()
        o.heartbeatInterval = .milliseconds(200)
        o.missedHeartbeats = missed
        o.catchUpOnConnect = catchUp
        return o
    }

    @Test func aSubscriberThatReconnectsGetsWhatWasPublishedMeanwhileThenContinuesLive() throws {
        let d = DaemonProcess(settings: Self.fastBeat)
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        let store = try DecisionLookup(stateDir: d.stateDir, runDir: d.runDir)

        var first: DecisionSubscriber? = try DecisionSubscriber(
            publishEndpoint: d.publish, store: store, start: .latest, options: Self.options())
        #expect(try first!.awaitUp().sawUp)
        try c.send(coldBook + (1...3).map { proposal("a\($0)") })
        let before = try first!.decisions(3)
        #expect(before.seqs == [1, 2, 3])
        #expect(before.decisions.allSatisfy { $0.source == .live })
        let resume = try #require(first!.lastSeq)
        #expect(resume == 3)
        // Drop it: the process restarts, say.
        first!.close()
        first = nil

        // Published while nobody listened (the test's own SUB proves they were published).
        try c.send((4...8).map { proposal("b\($0)") })
        let published = try c.decisions(8)
        #expect(published.map { $0.json["seq"]?.number } == (1...8).map { Double($0) })

        let second = try DecisionSubscriber(
            publishEndpoint: d.publish, store: store, start: .after(resume), options: Self.options())
        var got = Collected()
        try second.collect(timeout: 10, into: &got) { $0.decisions.count >= 5 && $0.sawUp }
        #expect(got.seqs == [4, 5, 6, 7, 8])
        #expect(got.decisions.allSatisfy { $0.source == .journal })
        // Byte for byte what was published.
        #expect(got.decisions.map(\.json) == published[3...].map(\.raw))
        #expect(got.decisions.map(\.symbol) == Array(repeating: "ETHUSDT", count: 5))

        // Live again; a republished plan_id (same decision, same seq) is not delivered twice.
        try c.send([proposal("c9"), proposal("b4"), proposal("c10")])
        let live = try second.decisions(2)
        #expect(live.seqs == [9, 10])
        #expect(live.decisions.allSatisfy { $0.source == .live })
        #expect(
            try second.next(timeout: .milliseconds(500)).map { if case .decision = $0 { true } else { false } } != true)
        #expect(second.duplicatesDropped >= 1)
        #expect(second.lastSeq == 10)
    }

    @Test func aGapIsDetectedFromTheNextDecision() throws {
        // Heartbeats every 60 s: only the decisions can reveal the gap.
        let d = DaemonProcess(settings: ["P26_HEARTBEAT_SEC": "60"])
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish, topics: ["calibrated."])
        let sub = try DecisionSubscriber(
            publishEndpoint: d.publish, stateDir: d.stateDir, runDir: d.runDir, start: .after(0),
            options: Self.options(catchUp: false, missed: 0))
        try c.send(coldBook)
        var all = Collected()
        // Until the subscription is live, decisions can be missed by the stream; the first one it does
        // receive reveals them.
        var i = 0
        while all.decisions.isEmpty && i < 50 {
            i += 1
            try c.send([proposal("warm\(i)")])
            try sub.collect(timeout: 0.2, into: &all) { !$0.decisions.isEmpty }
        }
        try sub.collect(timeout: 5, into: &all) { $0.decisions.count >= i }
        #expect(all.seqs == (1...UInt64(i)).map { $0 })

        sub.disconnect()
        #expect(throws: SubscriberError.disconnected) { try sub.next(timeout: .milliseconds(10)) }
        _ = try c.decisions(i, timeout: 0.5)  // what the test's own SUB saw so far
        try c.send((1...3).map { proposal("gap\($0)") })
        let gap = try c.decisions(3).map { $0.json["seq"]?.number }
        #expect(gap == (1...3).map { Double(i + $0) })
        try sub.reconnect()
        let journalBefore = sub.deliveredFromJournal
        var after = Collected()
        var j = 0
        while after.decisions.count < 3 + j && j < 50 {
            j += 1
            try c.send([proposal("next\(j)")])
            try sub.collect(timeout: 0.3, into: &after) { $0.decisions.count >= 3 + j }
        }
        try sub.collect(timeout: 5, into: &after) { $0.decisions.count >= 3 + j }
        let base = UInt64(i)
        #expect(after.seqs == ((base + 1)...(base + 3 + UInt64(j))).map { $0 })
        // The three published while disconnected can only have come from the journal.
        #expect(after.decisions.prefix(3).allSatisfy { $0.source == .journal })
        #expect(sub.deliveredFromJournal - journalBefore >= 3)
        #expect(after.events.isEmpty, "\(after.events)")
    }

    @Test func aGapIsDetectedFromAHeartbeatWhenNothingElseFlows() throws {
        let d = DaemonProcess(settings: Self.fastBeat)
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        let sub = try DecisionSubscriber(
            publishEndpoint: d.publish, stateDir: d.stateDir, runDir: d.runDir, start: .latest,
            options: Self.options(catchUp: false))
        #expect(try sub.awaitUp().sawUp)
        try c.send(coldBook + [proposal("h1"), proposal("h2")])
        #expect(try sub.decisions(2).seqs == [1, 2])

        sub.disconnect()
        try c.send((3...5).map { proposal("h\($0)") })
        #expect(try c.decisions(5).count == 5)
        try sub.reconnect()
        // Nothing else is sent: the next heartbeat's last_seq (5) reveals 3...5.
        let t0 = Date()
        let got = try sub.decisions(3, timeout: 5)
        #expect(got.seqs == [3, 4, 5])
        #expect(got.decisions.allSatisfy { $0.source == .journal })
        #expect(Date().timeIntervalSince(t0) < 3)
        #expect(got.missed.isEmpty)
    }

    @Test func theGateIsReportedDownWhenHeartbeatsStopAndUpWhenTheyResume() throws {
        let d = DaemonProcess(settings: Self.fastBeat)
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        let sub = try DecisionSubscriber(
            publishEndpoint: d.publish, stateDir: d.stateDir, runDir: d.runDir, start: .latest, options: Self.options())
        #expect(try sub.awaitUp().sawUp)
        #expect(sub.health == .up)
        try c.send(coldBook + [proposal("u1")])
        #expect(try sub.decisions(1).seqs == [1])

        d.stop(signal: SIGKILL)
        let t0 = Date()
        var down = Collected()
        try sub.collect(timeout: 5, into: &down) { $0.sawDown }
        let took = Date().timeIntervalSince(t0)
        #expect(down.sawDown)
        #expect(sub.health == .down)
        // 3 × 200 ms after the last heartbeat, which came at most 200 ms before the kill.
        #expect(took > 0.3 && took < 3, "\(took)")
        // Reported once, not at every timeout.
        #expect(try sub.next(timeout: .milliseconds(700)) == nil)

        try d.start()
        let c2 = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        var up = Collected()
        try sub.collect(timeout: 10, into: &up) { $0.sawUp }
        #expect(up.sawUp)
        #expect(sub.health == .up)
        _ = try c2.awaitHeartbeat()
        try c2.send([proposal("u2")])
        let after = try sub.decisions(1)
        #expect(after.seqs == [2])
    }

    @Test func aGateWithoutAStoreYetSetsThePositionFromTheStream() throws {
        let d = DaemonProcess(settings: Self.fastBeat)
        let sub = try DecisionSubscriber(
            publishEndpoint: d.publish, stateDir: d.stateDir, runDir: d.runDir, start: .latest, options: Self.options())
        #expect(sub.lastSeq == nil)
        var early = Collected()
        try sub.collect(timeout: 1.5, into: &early) { $0.sawDown }
        #expect(early.sawDown)
        try d.start()
        #expect(try sub.awaitUp(timeout: 10).sawUp)
        #expect(sub.lastSeq == 0)
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(coldBook + [proposal("s1")])
        #expect(try sub.decisions(1).seqs == [1])
    }
}
