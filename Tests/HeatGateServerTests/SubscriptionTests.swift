import Foundation
import HeatGateCore
import HeatGateTestSupport
import Testing
import ZeroMQ

@testable import HeatGateServer

/// The XPUB subscription notices, counted; and the subscribers seen from the daemon and from `tail`.
@Suite struct SubscriptionTests {
    func apply(_ book: inout SubscriptionBook, _ kind: UInt8, _ topic: String) -> Bool {
        ([kind] + Array(topic.utf8)).withUnsafeBytes { book.apply($0) }
    }

    @Test func noticesCountDecisionSubscriptionsAndWelcomeHeartbeatSubscribers() {
        var b = SubscriptionBook()
        #expect(apply(&b, 1, "calibrated.") == false, "decisions only: no heartbeat wanted")
        #expect(apply(&b, 1, "heartbeat") == true)
        #expect(apply(&b, 1, "calibrated.ETHUSDT") == false)
        #expect(apply(&b, 1, "") == true, "everything: a decision and a heartbeat subscriber")
        #expect(apply(&b, 1, "cal") == false)
        #expect(b.decisionSubscriptions == 4)
        #expect(b.heartbeatSubscriptions == 2)
        #expect(apply(&b, 1, "calibratedX") == false, "matches no decision topic")
        #expect(apply(&b, 1, "heartbeats") == false, "longer than the topic: never matches it")
        #expect(b.decisionSubscriptions == 4 && b.heartbeatSubscriptions == 2)
        #expect(apply(&b, 0, "calibrated.") == false)
        #expect(apply(&b, 0, "heartbeat") == false, "an unsubscribe is never welcomed")
        #expect(b.decisionSubscriptions == 3 && b.heartbeatSubscriptions == 1)
        #expect(b.decisionJoins == 4)
        #expect(([UInt8]()).withUnsafeBytes { b.apply($0) } == false, "an empty notice is ignored")
        #expect(apply(&b, 7, "heartbeat") == false, "not a notice")
    }

    @Test func theDaemonCountsSubscribersAndWelcomesEachWithAHeartbeat() throws {
        // Regular heartbeats every 60 s: any heartbeat seen within the test is a welcome.
        let d = DaemonProcess(settings: ["P26_HEARTBEAT_SEC": "60"])
        try d.start()
        #expect(metricValue(d.metrics(), "p26_subscribers") == 0)
        let t0 = Date()
        let first = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        let hb = try first.awaitHeartbeat(timeout: 5)
        #expect(Date().timeIntervalSince(t0) < 3, "welcomed at once, not at the next regular heartbeat")
        #expect(hb["last_seq"]?.number == 0)
        try first.send(example)
        #expect(try first.decisions(4).count == 4)
        // A second subscriber to the same topics is welcomed too (XPUB_VERBOSE), with the current last_seq.
        let second = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        #expect(try second.awaitHeartbeat(timeout: 5)["last_seq"]?.number == 4)
        #expect(metricValue(d.metrics(), "p26_subscribers") == 2)
        #expect(metricValue(d.metrics(), "p26_subscriber_joins_total") == 2)
        try second.sub.close(linger: 0)
        let deadline = Date().addingTimeInterval(5)
        while metricValue(d.metrics(), "p26_subscribers") != 1 && Date() < deadline { usleep(20_000) }
        #expect(metricValue(d.metrics(), "p26_subscribers") == 1, "a disconnect unsubscribes (XPUB_VERBOSER)")
        let status = try JSON.parse(try d.cli(["status", "--json"]).stdout)
        #expect(status["subscribers"]?.number == 1)
    }

    /// The shipped rules, HeatGateNoSubscribers and HeatGatePublishDrops among them, against their unit tests.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool")))
    func theAlertRulesPassTheirPromtoolTests() throws {
        let packaging = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("packaging").path
        let r = try runCommand("/bin/sh", ["-c", "cd '\(packaging)' && promtool test rules heatgate-alerts.test.yml"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    }

    @Test func tailFillsAGapFromTheJournalAndSaysSo() throws {
        let d = DaemonProcess(settings: ["P26_HEARTBEAT_SEC": "0.2"])
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(example)  // seq 1...4, published before tail runs
        #expect(try c.decisions(4).count == 4)
        // tail from seq 2: 2...4 can only come from the journal; 5 and 6 are sent while it follows.
        nonisolated(unsafe) var result: CommandResult?
        let done = DispatchSemaphore(value: 0)
        let env = d.environment
        DispatchQueue.global().async {
            result = try? runCommand(HeatGateBinary.path, ["tail", "--from", "2", "--idle", "2"], environment: env)
            done.signal()
        }
        usleep(1_000_000)
        try c.send([proposal("t5"), proposal("t6", symbol: "BTCUSDT")])
        #expect(done.wait(timeout: .now() + 30) == .success)
        let r = try #require(result)
        #expect(r.status == 0, "\(r.stderr)")
        let seqs = try r.lines.map { try JSON.parse($0)["seq"]?.number }
        #expect(seqs == [2, 3, 4, 5, 6])
        #expect(r.stderr.contains("heatgate tail: gap seq 2-4 filled from the journal"), "\(r.stderr)")
        #expect(!r.stderr.contains("missed"), "\(r.stderr)")
        // --symbol prints one symbol's decisions, still followed in order.
        let eth = try d.cli(["tail", "--from", "1", "--idle", "1", "--symbol", "BTCUSDT"])
        #expect(eth.status == 0)
        #expect(try eth.lines.map { try JSON.parse($0)["symbol"]?.string }.allSatisfy { $0 == "BTCUSDT" })
        #expect(eth.lines.count >= 1)
    }
}
