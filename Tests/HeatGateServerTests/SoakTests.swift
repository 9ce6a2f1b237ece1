import Foundation
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import Testing

/// `make soak` (opt-in: HEATGATE_SOAK_SECONDS): proposals at 10 000/s with state updates and scrapes;
/// anonymous RSS and open file descriptors stay flat; no error, no drop, no loss; past retention, the sweep
/// keeps the journal and the TTL index at what retention and the TTL hold.
@Suite(.serialized) struct SoakTests {
    static let seconds = Double(ProcessInfo.processInfo.environment["HEATGATE_SOAK_SECONDS"] ?? "") ?? 0

    @Test(.enabled(if: seconds > 0)) func tenThousandProposalsASecondStayFlat() throws {
        let rate = Double(ProcessInfo.processInfo.environment["HEATGATE_SOAK_RATE"] ?? "") ?? 10_000
        let d = DaemonProcess(settings: [
            "P26_LOG_LEVEL": "warning", "P26_MAP_SIZE_MB": "256", "P26_CALIBRATED_TTL_SEC": "30",
            "P26_JOURNAL_RETENTION_SEC": "120", "P26_HEARTBEAT_SEC": "1",
        ])
        try d.start()
        let recorder = DecisionRecorder(publish: d.publish)
        #expect(recorder.awaitLive())
        // 3 messages in 11 are state updates (position, market, portfolio), 8 are proposals.
        let messageRate = rate * 11 / 8
        let total = Int(Self.seconds * messageRate)
        var messages: [[UInt8]] = []
        messages.reserveCapacity(total + 2)
        messages.append(Array(#"{"type":"portfolio","equity_usd":100000}"#.utf8))
        let symbols = (0..<200).map { "SYM\($0)" }
        for i in 0..<total {
            let s = symbols[i % symbols.count]
            let line: String
            switch i % 11 {
            case 3:
                line = #"{"type":"position","symbol":"\#(s)","position_notional_usd":\#(100 + i % 1000),"sigma":0.1}"#
            case 7: line = #"{"type":"market","symbol":"\#(s)","sigma":0.\#(1 + i % 9),"price":\#(10 + i % 50)}"#
            case 10: line = #"{"type":"portfolio","equity_usd":\#(100_000 + i % 5000)}"#
            default: line = proposal("soak-\(i)", symbol: s)
            }
            messages.append(Array(line.utf8))
        }
        let proposals = messages.filter { $0.count > 20 && $0[9] == UInt8(ascii: "p") && $0[10] == UInt8(ascii: "r") }
            .count
        let sender = PacedSender(ingest: d.ingest, messages: messages, rate: messageRate)
        var samples: [(t: Double, rss: Int, fds: Int)] = []
        let t0 = Date()
        var scrapes = 0
        var nextSample = 0.0
        while !sender.finished && Date().timeIntervalSince(t0) < Self.seconds + 60 {
            _ = d.metrics()
            scrapes += 1
            let t = Date().timeIntervalSince(t0)
            if t >= nextSample {
                samples.append((t, ProcessProbe.anonymousRSS(d.pid) ?? -1, ProcessProbe.openFDs(d.pid) ?? -1))
                if Int(t) % 60 < 10, let s = samples.last {
                    print("SOAK t=\(Int(s.t))s rss_anon=\(s.rss >> 10)KiB fds=\(s.fds) sent=\(sender.sent)")
                }
                nextSample += 10
            }
            usleep(1_000_000)
        }
        usleep(2_000_000)
        let m = d.metrics()
        let seen = try recorder.stop()
        let processed = metricValue(m, "p26_proposals_processed_total") ?? 0
        #expect(processed == Double(proposals))
        #expect(seen.count == proposals, "the subscriber saw every decision")
        #expect(metricValue(m, "p26_publish_dropped_total") == 0)
        #expect(metricValue(m, "p26_store_write_failures_total") == 0)
        #expect(metricValue(m, "p26_rejected_total{reason=\"not_json\"}") ?? 0 == 0)
        let status = d.stop()
        #expect(status == 0)
        #expect(!d.log.contains("level=error"), "no error logged")
        // Flat: after a minute of warm-up, anonymous RSS within 8 MiB and FDs within 2 of the first sample.
        let steady = samples.filter { $0.t >= 60 }
        let rss = steady.map(\.rss)
        let fds = steady.map(\.fds)
        if let r0 = rss.first, let f0 = fds.first {
            #expect(rss.allSatisfy { $0 - r0 < 8 << 20 }, "RSS \(rss.map { $0 >> 10 })")
            #expect(fds.allSatisfy { abs($0 - f0) <= 2 }, "FDs \(fds)")
        }
        // Retention holds: once past it, the journal keeps about its last 120 s and the TTL index its last
        // 30 s of decisions (the sweep starts every second; 15 s of slack).
        let counts = try GateStore(directory: d.stateDir, readOnly: true).counts()
        if Self.seconds > 150 {
            #expect(counts.journal <= Int((120 + 15) * rate), "journal \(counts.journal) records")
            #expect(counts.ttl <= Int((30 + 15) * rate), "ttl \(counts.ttl) entries")
        }
        let du = try runCommand("/usr/bin/du", ["-sk", d.stateDir]).stdout.split(separator: "\t").first ?? "?"
        reportLine(
            "soak",
            [
                "seconds": "\(Int(Date().timeIntervalSince(t0)))", "rate": "\(Int(rate))/s proposals",
                "messages": "\(messages.count)", "proposals": "\(proposals)", "seen": "\(seen.count)",
                "scrapes": "\(scrapes)",
                "rss_anon_kib": "\(rss.min().map { $0 >> 10 } ?? -1)-\(rss.max().map { $0 >> 10 } ?? -1)",
                "fds": "\(fds.min() ?? -1)-\(fds.max() ?? -1)", "store_kib": "\(du)",
                "dropped": "\(Int(metricValue(m, "p26_publish_dropped_total") ?? -1))",
                "swept_journal": "\(Int(metricValue(m, #"p26_swept_total{kind="journal"}"#) ?? -1))",
                "journal_left": "\(counts.journal)", "ttl_left": "\(counts.ttl)",
                "sweep_seconds": "\(metricValue(m, "p26_sweep_seconds_total") ?? -1)",
            ])
    }
}
