import Foundation
import HeatGateCore
import Testing

/// The one table of configuration keys (issue 12, item 13): every numeric key has a range, every source
/// is checked against it, and docs/configuration.md says exactly what the code does.
@Suite struct ConfigTableTests {
    @Test func everyNumericKeyRefusesWhatLiesOutsideItsRangeAndAcceptsItsBounds() throws {
        let numeric = GateConfig.table.filter { $0.range != nil }
        #expect(numeric.count == 15, "\(numeric.map(\.key))")
        for info in numeric {
            let r = try #require(info.range)
            func accepts(_ text: String) -> Bool {
                var c = GateConfig()
                do {
                    try c.set(info.key, text)
                    return c.text(info.key) != "" || text.isEmpty
                } catch { return false }
            }
            #expect(accepts(fmtBound(r.upper)), "\(info.key) accepts its upper bound")
            #expect(!accepts(fmtBound(r.upper * 2 + 1)), "\(info.key) refuses past its upper bound")
            #expect(accepts(fmtBound(r.lower)) == !r.lowerOpen, "\(info.key) at its lower bound")
            #expect(!accepts(fmtBound(r.lower - 1)), "\(info.key) refuses below its lower bound")
            for hostile in ["1e20", "1e300", "-1e300", "nan", "inf", "-inf", "0x10", ""] {
                let d = Double(hostile)
                let inside = d.map { r.contains($0) } ?? false
                #expect(accepts(hostile) == inside, "\(info.key)=\(hostile)")
            }
            if r.whole { #expect(!accepts("1.5"), "\(info.key) counts whole things") }
        }
    }

    @Test func anAcceptedValueIsTheValueSet() throws {
        var c = GateConfig()
        try c.set("P26_CALIBRATED_TTL_SEC", "86400")
        try c.set("P26_HEARTBEAT_SEC", "3600")
        try c.set("P26_MAP_SIZE_MB", "1e3")
        #expect(c.calibratedTTLSec == 86_400 && c.heartbeatSec == 3_600 && c.mapSizeMB == 1_000)
        #expect(throws: ConfigError.self) { try c.set("P26_CALIBRATED_TTL_SEC", "1e20") }
        #expect(c.calibratedTTLSec == 86_400, "a refused value leaves the key as it was")
    }

    @Test func aRestartKeyChangedOnReloadIsNamed() throws {
        let running = GateConfig()
        var file = running
        try file.set("P26_MAP_SIZE_MB", "64")
        try file.set("HEAT_MIN", "0.1")
        try file.set("P26_REPEAT_PEAK_RATE", "50")
        #expect(GateConfig.restartNeeded(running: running, file: file) == ["P26_REPEAT_PEAK_RATE", "P26_MAP_SIZE_MB"])
    }

    @Test func aReloadTakesEveryLiveKeyFromTheFileAndKeepsEveryRestartKey() throws {
        let running = GateConfig()
        var file = GateConfig()
        // A value other than the default for every key, each inside its range.
        let other: [String: String] = [
            "P26_MODE": "enforce", "HEAT_MIN": "0.1", "HEAT_MAX": "0.9", "HEAT_COLD_ACTION": "PARTIAL_50",
            "HEAT_WARM_ACTION": "PARTIAL_50", "HEAT_HOT_ACTION": "PARTIAL_75", "P26_FAIL_MODE": "open",
            "P26_STATE_MAX_AGE_SEC": "30", "P26_PROPOSAL_MAX_AGE_SEC": "20", "P26_CALIBRATED_TTL_SEC": "100",
            "P26_REPEAT_PEAK_RATE": "50", "P26_JOURNAL_RETENTION_SEC": "3600", "P26_STATE_DIR": "/tmp/x",
            "P26_RUN_DIR": "/tmp/r",
            "P26_INGEST_ENDPOINT": "ipc:///tmp/i", "P26_PUBLISH_ENDPOINT": "ipc:///tmp/p",
            "P26_CONTROL_ENDPOINT": "ipc:///tmp/c", "P26_METRICS_BIND": "0.0.0.0", "P26_METRICS_PORT": "9000",
            "P26_LOG_LEVEL": "debug", "P26_LOG_FORMAT": "json", "P26_MAP_SIZE_MB": "64", "P26_HEARTBEAT_SEC": "5",
            "P26_CURVE_SECRET_KEY": String(repeating: "a", count: 40),
            "P26_CURVE_ALLOWED_CLIENTS": String(repeating: "b", count: 40), "P26_ALLOW_INSECURE_BIND": "true",
            "P26_GUARD_ENABLED": "true", "P26_GUARD_WINDOW_SEC": "60", "P26_GUARD_MAX_DOWNGRADE_SHARE": "0.5",
            "P26_GUARD_MIN_FULL_CLOSES": "7", "P26_GUARD_MAX_INPUTS_BAD_SEC": "30",
            "P26_GUARD_MAX_KEPT_LOSS_USD": "100",
        ]
        #expect(Set(other.keys) == Set(GateConfig.keys), "a value for every key")
        for (k, v) in other { try file.set(k, v) }
        let next = GateConfig.reloaded(running: running, file: file)
        for info in GateConfig.table {
            #expect(file.text(info.key) != running.text(info.key), "\(info.key): the test changes it")
            let want = info.applies == .reload ? file.text(info.key) : running.text(info.key)
            #expect(next.text(info.key) == want, "\(info.key) (\(info.applies.rawValue))")
        }
    }

    @Test func docsConfigurationListsEveryKeyWithTheCodesDefaultRangeAndReload() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        var rows: [String: [String]] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.dropFirst().dropLast().split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let key = cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            #expect(rows[key] == nil, "\(key) is documented once")
            rows[key] = cells
        }
        #expect(Set(rows.keys) == Set(GateConfig.keys), "documented keys")
        let defaults = GateConfig()
        for info in GateConfig.table {
            guard let cells = rows[info.key] else { continue }
            let def = defaults.text(info.key)
            let documented =
                cells[1] == "(unset)" ? "" : cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            #expect(documented == def, "\(info.key): default \(cells[1]) in the docs, \(def) in the code")
            #expect(
                cells[2] == info.allowed,
                "\(info.key): allowed '\(cells[2])' in the docs, '\(info.allowed)' in the code")
            #expect(cells[3] == info.applies.rawValue, "\(info.key): applied by \(cells[3]) in the docs")
        }
    }
}

private func fmtBound(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
}
