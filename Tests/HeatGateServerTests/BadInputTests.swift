import Foundation
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import Testing

/// Every rejection of SPEC §3 and every invalid configuration of SPEC §6, through a real daemon: the
/// reason, the metric, and that the next valid message is still decided.
@Suite(.serialized) struct BadInputTests {
    /// One bad message per row, with the reason it must be counted under.
    static let messages: [(String, RejectReason)] = [
        ("not json", .notJSON),
        (#"{"type":"proposal","symbol":"A""#, .notJSON),
        (#"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"\ud800"}"#, .notJSON),
        (#"[1,2]"#, .notObject),
        (#""just a string""#, .notObject),
        (#"{"symbol":"ETHUSDT"}"#, .missingType),
        (#"{"type":"trade","symbol":"ETHUSDT"}"#, .unknownType),
        (#"{"type":7}"#, .wrongType),
        (#"{"type":"proposal","harvest_action":"FULL_CLOSE"}"#, .missingField),
        (#"{"type":"proposal","symbol":"ETHUSDT"}"#, .missingField),
        (#"{"type":"portfolio"}"#, .missingField),
        (#"{"type":"position","symbol":"ETHUSDT","sigma":0.1}"#, .missingField),
        (#"{"type":"market","symbol":"ETHUSDT"}"#, .missingField),
        (#"{"type":"positions"}"#, .missingField),
        (#"{"type":"proposal","symbol":"ETHUSDT","harvest_action":5}"#, .wrongType),
        (#"{"type":"portfolio","equity_usd":"lots"}"#, .wrongType),
        (#"{"type":"portfolio","equity_usd":true}"#, .wrongType),
        (#"{"type":"positions","positions":{}}"#, .wrongType),
        (#"{"type":"proposal","symbol":"ETH USDT","harvest_action":"FULL_CLOSE"}"#, .badSymbol),
        (#"{"type":"proposal","symbol":"","harvest_action":"FULL_CLOSE"}"#, .badSymbol),
        (#"{"type":"position","symbol":"\#(String(repeating: "A", count: 33))","notional_usd":1}"#, .badSymbol),
        (#"{"type":"market","symbol":"ETH\u00e9","sigma":0.1}"#, .badSymbol),
        (
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","plan_id":"\#(String(repeating: "p", count: 129))"}"#,
            .planIdTooLong
        ),
        (
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","trace_id":"\#(String(repeating: "t", count: 129))"}"#,
            .traceIdTooLong
        ),
        (#"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","trace_id":{}}"#, .wrongType),
        (#"{"type":"portfolio","equity_usd":"NaN"}"#, .nonFinite),
        (#"{"type":"portfolio","equity_usd":"Infinity"}"#, .nonFinite),
        (#"{"type":"market","symbol":"ETHUSDT","price":1e999}"#, .nonFinite),
        (#"{"type":"position","symbol":"ETHUSDT","position_notional_usd":10,"sigma":-0.1}"#, .negative),
        (#"{"type":"market","symbol":"ETHUSDT","price":-1}"#, .negative),
        (#"{"type":"market","symbol":"ETHUSDT","sigma":"-0.01"}"#, .negative),
        (#"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","ts_epoch":"soon"}"#, .badTimestamp),
        (
            #"{"type":"proposal","symbol":"ETHUSDT","harvest_action":"FULL_CLOSE","computed_at_utc":"yesterday"}"#,
            .badTimestamp
        ),
        (#"{"type":"position","symbol":"ETHUSDT","position_notional_usd":1e16,"sigma":0.1}"#, .outOfRange),
        (#"{"type":"market","symbol":"ETHUSDT","sigma":5000}"#, .outOfRange),
        (
            #"{"type":"market","symbol":"ETHUSDT","sigma":0.1,"pad":""# + String(repeating: "x", count: 70_000) + "\"}",
            .frameTooLarge
        ),
    ]

    static let book = [
        #"{"type":"portfolio","equity_usd":10000}"#,
        #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":1800,"sigma":0.15}"#,
    ]

    @Test func everyRejectionIsCountedByReasonAndTheNextMessageIsDecided() throws {
        let d = DaemonProcess(settings: ["P26_LOG_LEVEL": "warning", "P26_HEARTBEAT_SEC": "0.1"])
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(Self.book)
        var expected: [RejectReason: Double] = [:]
        for (i, (line, reason)) in Self.messages.enumerated() {
            // Below the log's limit of 20 rejection lines a second, so every reason is logged.
            usleep(60_000)
            try c.send([line, proposal("after-\(i)")])
            let next = try c.decisions(1, timeout: 5).first?.json
            #expect(next?["plan_id"]?.string == "after-\(i)", "row \(i) (\(reason)): the next proposal is decided")
            // The bad message changed nothing: the book is as before.
            #expect(next?["heat_bucket"]?.string == "COLD", "row \(i): \(String(line.prefix(80)))")
            #expect(next?["total_risk_usd"]?.number == 270, "row \(i): \(String(line.prefix(80)))")
            expected[reason, default: 0] += 1
            let m = d.metrics()
            #expect(
                metricValue(m, #"p26_rejected_total{reason="\#(reason.label)"}"#) == expected[reason],
                "row \(i): \(String(line.prefix(80)))")
        }

        // too_many_symbols: fill the book to its 100 000 symbols with `positions` messages (each keeps
        // ETHUSDT open), then one more symbol is refused and ETHUSDT is still decided.
        let perMessage = 1500
        var made = 1
        var chunk = 0
        while made < Engine.defaultMaxSymbols {
            let n = min(perMessage, Engine.defaultMaxSymbols - made)
            let rows = (0..<n).map { #"{"symbol":"S\#(made + $0)","notional_usd":0}"# }
            try c.send([
                #"{"type":"positions","positions":[{"symbol":"ETHUSDT","position_notional_usd":1800,"sigma":0.15},"#
                    + rows.joined(separator: ",") + "]}"
            ])
            made += n
            chunk += 1
        }
        try c.send([#"{"type":"market","symbol":"ONE_TOO_MANY","sigma":0.1}"#, proposal("after-full-book")])
        let last = try c.decisions(1, timeout: 30).first?.json
        #expect(last?["plan_id"]?.string == "after-full-book")
        #expect(last?["total_risk_usd"]?.number == 270)
        expected[.tooManySymbols, default: 0] += 1
        let m = d.metrics()
        #expect(metricValue(m, #"p26_rejected_total{reason="too_many_symbols"}"#) == 1)
        // Every reason the engine has is in the table.
        #expect(Set(expected.keys) == Set(RejectReason.allCases))
        let total = expected.values.reduce(0, +)
        #expect(metricValue(m, "p26_proposals_processed_total") == Double(Self.messages.count + 1))
        #expect(d.isRunning)
        d.stop()
        // One log line naming each reason (the limiter allows 20 a second; this is far below).
        for reason in RejectReason.allCases {
            #expect(d.log.contains("reason=\(reason.label)"), "log names \(reason.label)")
        }
        reportLine(
            "bad-input",
            [
                "rows": "\(Self.messages.count + 1)", "reasons": "\(expected.count)", "rejected": "\(Int(total))",
                "next_decided": "all", "book_fill_messages": "\(chunk)",
            ])
    }

    /// One invalid value per key of SPEC §6 (and the rules between keys), as the config file holds it.
    static let configs: [(text: String, key: String)] = [
        ("P26_MODE=banana", "P26_MODE"),
        ("HEAT_MIN=-0.1", "HEAT_MIN"),
        ("HEAT_MIN=abc", "HEAT_MIN"),
        ("HEAT_MAX=0", "HEAT_MAX"),
        ("HEAT_MIN=0.7\nHEAT_MAX=0.3", "HEAT_MIN"),
        ("HEAT_MIN=0.5\nHEAT_MAX=0.5", "HEAT_MIN"),
        ("HEAT_COLD_ACTION=SELL", "HEAT_COLD_ACTION"),
        ("HEAT_WARM_ACTION=", "HEAT_WARM_ACTION"),
        ("HEAT_HOT_ACTION=CLOSE_ALL", "HEAT_HOT_ACTION"),
        ("P26_FAIL_MODE=maybe", "P26_FAIL_MODE"),
        ("P26_STATE_MAX_AGE_SEC=0", "P26_STATE_MAX_AGE_SEC"),
        ("P26_PROPOSAL_MAX_AGE_SEC=-5", "P26_PROPOSAL_MAX_AGE_SEC"),
        ("P26_CALIBRATED_TTL_SEC=nan", "P26_CALIBRATED_TTL_SEC"),
        ("P26_JOURNAL_RETENTION_SEC=inf", "P26_JOURNAL_RETENTION_SEC"),
        ("P26_STATE_DIR=", "P26_STATE_DIR"),
        ("P26_INGEST_ENDPOINT=localhost:5556", "P26_INGEST_ENDPOINT"),
        ("P26_PUBLISH_ENDPOINT=udp://127.0.0.1:5557", "P26_PUBLISH_ENDPOINT"),
        ("P26_CONTROL_ENDPOINT=tcp://", "P26_CONTROL_ENDPOINT"),
        ("P26_METRICS_BIND=", "P26_METRICS_BIND"),
        ("P26_METRICS_PORT=70000", "P26_METRICS_PORT"),
        ("P26_METRICS_PORT=http", "P26_METRICS_PORT"),
        ("P26_LOG_LEVEL=loud", "P26_LOG_LEVEL"),
        ("P26_LOG_FORMAT=xml", "P26_LOG_FORMAT"),
        ("P26_MAP_SIZE_MB=0", "P26_MAP_SIZE_MB"),
        ("P26_HEARTBEAT_SEC=-1", "P26_HEARTBEAT_SEC"),
        ("P26_CURVE_SECRET_KEY=short", "P26_CURVE_SECRET_KEY"),
        ("P26_CURVE_ALLOWED_CLIENTS=abc", "P26_CURVE_ALLOWED_CLIENTS"),
        ("P26_ALLOW_INSECURE_BIND=maybe", "P26_ALLOW_INSECURE_BIND"),
        // Out of range: finite, but past what the daemon can turn into a time or a size (issue 12, item 13).
        ("P26_CALIBRATED_TTL_SEC=1e20", "P26_CALIBRATED_TTL_SEC"),
        ("P26_HEARTBEAT_SEC=1e11", "P26_HEARTBEAT_SEC"),
        ("P26_STATE_MAX_AGE_SEC=1e300", "P26_STATE_MAX_AGE_SEC"),
        ("P26_PROPOSAL_MAX_AGE_SEC=1e19", "P26_PROPOSAL_MAX_AGE_SEC"),
        ("P26_JOURNAL_RETENTION_SEC=1e300", "P26_JOURNAL_RETENTION_SEC"),
        ("P26_REPEAT_PEAK_RATE=1e9", "P26_REPEAT_PEAK_RATE"),
        ("HEAT_MAX=1e308", "HEAT_MAX"),
        ("P26_MAP_SIZE_MB=1.5", "P26_MAP_SIZE_MB"),
        ("P26_METRICS_PORT=80.5", "P26_METRICS_PORT"),
        ("P26_MOED=enforce", "P26_MOED"),
        ("this line has no equals sign", "this line has no equals sign"),
    ]

    @Test func everyInvalidConfigStopsStartUpNamingTheKey() throws {
        let d = DaemonProcess()
        for (text, key) in Self.configs {
            try (text + "\n").write(toFile: "\(d.dir.path)/bad.env", atomically: true, encoding: .utf8)
            let r = try runCommand(
                HeatGateBinary.path, ["run", "--config", "\(d.dir.path)/bad.env"], environment: d.environment,
                timeout: 20)
            #expect(r.status != 0, "\(text) must stop start-up")
            #expect(r.stderr.contains(key), "\(text): \(r.stderr)")
            #expect(r.stderr.contains("invalid"), "\(text): \(r.stderr)")
            let check = try d.cli(["check-config", "\(d.dir.path)/bad.env"])
            #expect(check.status != 0 && (check.stdout + check.stderr).contains(key), "check-config \(text)")
        }
        // Nothing was created: a refused start-up leaves no store behind.
        #expect(fileMode(d.stateDir) == nil)
        reportLine("bad-config-start", ["cases": "\(Self.configs.count)", "refused_naming_key": "all"])
    }

    @Test func everyInvalidConfigIsRefusedOnReloadAndTheNextMessageIsDecided() throws {
        let d = DaemonProcess(settings: ["P26_HEARTBEAT_SEC": "0.1"], configFile: "HEAT_MIN=0.25\n")
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(Self.book)
        for (i, (text, key)) in Self.configs.enumerated() {
            try (text + "\n").write(toFile: d.configPath!, atomically: true, encoding: .utf8)
            d.signal(SIGHUP)
            usleep(100_000)
            try c.send([proposal("reload-\(i)")])
            let next = try c.decisions(1, timeout: 5).first?.json
            #expect(next?["plan_id"]?.string == "reload-\(i)", "\(key): the next proposal is decided")
            #expect(next?["heat_bucket"]?.string == "COLD", "\(key): the running HEAT_MIN is kept")
            #expect(next?["mode"]?.string == "shadow", "\(key)")
        }
        #expect(d.isRunning)
        d.stop()
        let refusals = d.log.split(separator: "\n").filter { $0.contains("configuration reload refused") }
        #expect(refusals.count == Self.configs.count)
        for ((_, key), line) in zip(Self.configs, refusals) { #expect(line.contains(key), "\(line)") }
        reportLine("bad-config-reload", ["cases": "\(Self.configs.count)", "refused": "\(refusals.count)"])
    }

    /// Every numeric key at the edge of its range: the daemon starts, decides and reloads (issue 12, item
    /// 13: a TTL or heartbeat the checks accepted used to trap on the first decision or the next beat).
    @Test func aDaemonAtTheEdgesOfEveryRangeDecidesAndReloads() throws {
        let edges =
            "P26_CALIBRATED_TTL_SEC=86400\nP26_REPEAT_PEAK_RATE=48\nP26_STATE_MAX_AGE_SEC=86400\n"
            + "P26_PROPOSAL_MAX_AGE_SEC=86400\nP26_JOURNAL_RETENTION_SEC=315360000\nHEAT_MAX=100\n"
        let d = DaemonProcess(settings: ["P26_HEARTBEAT_SEC": "0.1"], configFile: edges)
        try d.start()
        let c = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try c.awaitHeartbeat()
        try c.send(Self.book)
        try c.send([proposal("edge-1")])
        let first = try #require(try c.decisions(1, timeout: 5).first?.json)
        let ts = try #require(first["ts"]?.number)
        let expires = try #require(first["expires_at"]?.number)
        #expect(abs(expires - ts - 86_400) < 1, "expires_at is a day after the decision")
        try (edges + "P26_HEARTBEAT_SEC=3600\n").write(toFile: d.configPath!, atomically: true, encoding: .utf8)
        d.signal(SIGHUP)
        usleep(200_000)
        try c.send([proposal("edge-2")])
        #expect(try c.decisions(1, timeout: 5).first?.json["plan_id"]?.string == "edge-2")
        #expect(d.isRunning)
        d.stop()
        #expect(d.log.contains("configuration reloaded"))
        #expect(!d.log.contains("reload refused"))
    }
}
