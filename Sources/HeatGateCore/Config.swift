/// A configuration value that stops start-up (or is refused on reload), naming the key, the value and
/// what is allowed.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var key: String
    public var value: String
    public var allowed: String
    /// Where the value came from (a file and line, the environment, a flag).
    public var source: String

    public init(key: String, value: String, allowed: String, source: String = "") {
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source
    }

    public var description: String {
        let at = source.isEmpty ? "" : " (\(source))"
        return "invalid \(key)=\(value)\(at): \(allowed)"
    }
}

/// Log verbosity, in the names operators use.
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case trace = 0
    case debug, info, notice, warning, error, critical

    public var label: String {
        switch self {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// The shape of log lines.
public enum LogFormat: String, Sendable {
    case logfmt, json
}

/// The whole configuration of SPEC §6, with its defaults.
public struct GateConfig: Equatable, Sendable {
    public var mode: Mode = .shadow
    public var heatMin = 0.25
    public var heatMax = 0.65
    public var coldAction: Action = .partial25
    public var warmAction: Action = .partial75
    public var hotAction: Action = .fullClose
    public var failMode: FailMode = .closed
    public var stateMaxAgeSec = 120.0
    public var proposalMaxAgeSec = 60.0
    public var calibratedTTLSec = 300.0
    /// The most distinct proposals a second the repeat window must remember for a whole TTL: with the
    /// TTL, it sizes the window (``RepeatWindow/capacity(ttl:peakRate:)``). Read at start only.
    public var repeatPeakRate = 500.0
    public var journalRetentionSec = 604_800.0
    public var stateDir = "./data"
    public var ingestEndpoint = "tcp://127.0.0.1:5556"
    public var publishEndpoint = "tcp://127.0.0.1:5557"
    /// `nil` means `ipc://<state dir>/control.sock`.
    public var controlEndpointSetting: String?
    public var metricsBind = "127.0.0.1"
    public var metricsPort = 8056
    public var logLevel: LogLevel = .info
    public var logFormat: LogFormat = .logfmt
    public var mapSizeMB = 1024
    public var heartbeatSec = 1.0
    /// CURVE: this server's secret key (Z85, 40 characters); required to bind a non-loopback TCP address.
    public var curveSecretKey: String?
    /// CURVE: the public keys (Z85) allowed to connect, comma-separated in the file.
    public var curveAllowedClients: [String] = []
    /// Binds a non-loopback TCP address without CURVE. For isolated networks only.
    public var allowInsecureBind = false

    public init() {}

    /// The control endpoint, with the default derived from the state directory.
    public var controlEndpoint: String {
        controlEndpointSetting ?? "ipc://\(stateDir)/control.sock"
    }

    /// The keys this configuration reads, in the order of SPEC §6.
    public static let keys: [String] = [
        "P26_MODE", "HEAT_MIN", "HEAT_MAX", "HEAT_COLD_ACTION", "HEAT_WARM_ACTION", "HEAT_HOT_ACTION",
        "P26_FAIL_MODE", "P26_STATE_MAX_AGE_SEC", "P26_PROPOSAL_MAX_AGE_SEC", "P26_CALIBRATED_TTL_SEC",
        "P26_REPEAT_PEAK_RATE", "P26_JOURNAL_RETENTION_SEC", "P26_STATE_DIR", "P26_INGEST_ENDPOINT",
        "P26_PUBLISH_ENDPOINT",
        "P26_CONTROL_ENDPOINT", "P26_METRICS_BIND", "P26_METRICS_PORT", "P26_LOG_LEVEL", "P26_LOG_FORMAT",
        "P26_MAP_SIZE_MB", "P26_HEARTBEAT_SEC", "P26_CURVE_SECRET_KEY", "P26_CURVE_ALLOWED_CLIENTS",
        "P26_ALLOW_INSECURE_BIND",
    ]

    /// Sets one key from its text.
    ///
    /// - Throws: ``ConfigError`` naming the key and the allowed values.
    public mutating func set(_ key: String, _ raw: String, source: String = "") throws(ConfigError) {
        let value = raw.trimmingBlanks()
        func fail(_ allowed: String) -> ConfigError {
            ConfigError(key: key, value: raw, allowed: allowed, source: source)
        }
        func number(min: Double, exclusiveMin: Bool = false) throws(ConfigError) -> Double {
            let allowed = exclusiveMin ? "a number > \(fmt(min))" : "a number >= \(fmt(min))"
            guard let d = Double(value), d.isFinite else { throw fail(allowed) }
            guard exclusiveMin ? d > min : d >= min else { throw fail(allowed) }
            return d
        }
        func action() throws(ConfigError) -> Action {
            guard let a = Action(token: value) else {
                throw fail("one of " + Action.allCases.map(\.token).joined(separator: ", "))
            }
            return a
        }
        func text() throws(ConfigError) -> String {
            guard !value.isEmpty else { throw fail("a non-empty value") }
            return value
        }
        switch key {
        case "P26_MODE":
            switch value.lowercased() {
            case "shadow": mode = .shadow
            case "enforce": mode = .enforce
            default: throw fail("shadow or enforce")
            }
        case "HEAT_MIN": heatMin = try number(min: 0)
        case "HEAT_MAX": heatMax = try number(min: 0, exclusiveMin: true)
        case "HEAT_COLD_ACTION": coldAction = try action()
        case "HEAT_WARM_ACTION": warmAction = try action()
        case "HEAT_HOT_ACTION": hotAction = try action()
        case "P26_FAIL_MODE":
            switch value.lowercased() {
            case "closed": failMode = .closed
            case "open": failMode = .open
            default: throw fail("closed or open")
            }
        case "P26_STATE_MAX_AGE_SEC": stateMaxAgeSec = try number(min: 0, exclusiveMin: true)
        case "P26_PROPOSAL_MAX_AGE_SEC": proposalMaxAgeSec = try number(min: 0, exclusiveMin: true)
        case "P26_CALIBRATED_TTL_SEC": calibratedTTLSec = try number(min: 0, exclusiveMin: true)
        case "P26_REPEAT_PEAK_RATE":
            let rate = try number(min: 0, exclusiveMin: true)
            guard rate <= 100_000 else { throw fail("a number of proposals per second, > 0 and <= 100000") }
            repeatPeakRate = rate
        case "P26_JOURNAL_RETENTION_SEC": journalRetentionSec = try number(min: 0, exclusiveMin: true)
        case "P26_STATE_DIR": stateDir = try text()
        case "P26_INGEST_ENDPOINT": ingestEndpoint = try endpoint(value, fail)
        case "P26_PUBLISH_ENDPOINT": publishEndpoint = try endpoint(value, fail)
        case "P26_CONTROL_ENDPOINT": controlEndpointSetting = try endpoint(value, fail)
        case "P26_METRICS_BIND": metricsBind = try text()
        case "P26_METRICS_PORT":
            guard let p = Int(value), (0...65535).contains(p) else { throw fail("a port 0-65535 (0: any free port)") }
            metricsPort = p
        case "P26_LOG_LEVEL":
            guard let l = LogLevel.allCases.first(where: { $0.label == value.lowercased() }) else {
                throw fail(LogLevel.allCases.map(\.label).joined(separator: ", "))
            }
            logLevel = l
        case "P26_LOG_FORMAT":
            guard let f = LogFormat(rawValue: value.lowercased()) else { throw fail("logfmt or json") }
            logFormat = f
        case "P26_MAP_SIZE_MB":
            guard let m = Int(value), m >= 1, m <= 1 << 20 else { throw fail("a whole number of MiB, 1-1048576") }
            mapSizeMB = m
        case "P26_HEARTBEAT_SEC": heartbeatSec = try number(min: 0)
        case "P26_CURVE_SECRET_KEY":
            guard value.utf8.count == 40 else { throw fail("a Z85 secret key of 40 characters") }
            curveSecretKey = value
        case "P26_CURVE_ALLOWED_CLIENTS":
            let keys = value.split(separator: ",").map { String($0).trimmingBlanks() }.filter { !$0.isEmpty }
            guard keys.allSatisfy({ $0.utf8.count == 40 }) else {
                throw fail("comma-separated Z85 public keys of 40 characters")
            }
            curveAllowedClients = keys
        case "P26_ALLOW_INSECURE_BIND":
            switch value.lowercased() {
            case "1", "true", "yes", "on": allowInsecureBind = true
            case "0", "false", "no", "off", "": allowInsecureBind = false
            default: throw fail("true or false")
            }
        default:
            throw ConfigError(
                key: key, value: raw, allowed: "a known key (\(Self.keys.joined(separator: ", ")))",
                source: source)
        }
    }

    /// Checks the rules between keys.
    /// - Throws: ``ConfigError`` for the first rule broken.
    public func validate() throws(ConfigError) {
        guard heatMin < heatMax else {
            throw ConfigError(
                key: "HEAT_MIN", value: fmt(heatMin),
                allowed: "0 <= HEAT_MIN < HEAT_MAX (HEAT_MAX=\(fmt(heatMax)))")
        }
        // The window holds twice what it must, within RepeatWindow.maxCapacity entries (192 MiB).
        let plans = repeatPeakRate * calibratedTTLSec
        guard plans <= Double(RepeatWindow.maxCapacity / 2) else {
            throw ConfigError(
                key: "P26_REPEAT_PEAK_RATE", value: fmt(repeatPeakRate),
                allowed:
                    "P26_REPEAT_PEAK_RATE x P26_CALIBRATED_TTL_SEC <= \(RepeatWindow.maxCapacity / 2) plans "
                    + "(P26_CALIBRATED_TTL_SEC=\(fmt(calibratedTTLSec)))")
        }
    }
}

private func endpoint(_ v: String, _ fail: (String) -> ConfigError) throws(ConfigError) -> String {
    let ok = ["tcp://", "ipc://", "inproc://"].contains { v.hasPrefix($0) } && v.utf8.count > 7
    guard ok else { throw fail("a ZeroMQ endpoint: tcp://HOST:PORT or ipc://PATH") }
    return v
}

func fmt(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
}

extension String {
    func trimmingBlanks() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}

/// Where an inline ` #` comment starts in an unquoted value.
private func inlineComment(_ v: String) -> String.Index? {
    var prev: Character = "x"
    for i in v.indices {
        if v[i] == "#" && (prev == " " || prev == "\t") { return i }
        prev = v[i]
    }
    return nil
}

/// Reads configuration: file, then environment, then flags, later winning (SPEC §6).
public enum ConfigLoader {
    /// One `KEY=VALUE` of a config file, with its line number.
    public struct Entry: Equatable, Sendable {
        public var key: String
        public var value: String
        public var line: Int
    }

    /// Parses the text of a config file: `KEY=VALUE` lines, `#` comments, `export ` prefixes, quotes and
    /// CRLF endings tolerated.
    /// - Throws: ``ConfigError`` for a line that is not `KEY=VALUE`.
    public static func parseFile(_ text: String, name: String = "config") throws(ConfigError) -> [Entry] {
        var entries: [Entry] = []
        var lineNo = 0
        // "\r\n" is one Character in Swift: split on any newline so CRLF files read like LF ones.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }) {
            lineNo += 1
            var line = String(rawLine).trimmingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmingBlanks() }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError(key: line, value: "", allowed: "a KEY=VALUE line", source: "\(name):\(lineNo)")
            }
            let key = String(line[..<eq]).trimmingBlanks()
            var value = String(line[line.index(after: eq)...]).trimmingBlanks()
            if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                value = String(value.dropFirst().dropLast())
            } else if let hash = inlineComment(value) {
                value = String(value[..<hash]).trimmingBlanks()
            }
            entries.append(Entry(key: key, value: value, line: lineNo))
        }
        return entries
    }

    /// Builds and validates a configuration.
    ///
    /// - Parameters:
    ///   - fileText: the config file's text, if any.
    ///   - fileName: its name, for messages.
    ///   - environment: the process environment; only the keys of ``GateConfig/keys`` are read.
    ///   - overrides: `KEY=VALUE` pairs from flags, applied last.
    /// - Throws: ``ConfigError`` naming the key, the value and what is allowed.
    public static func load(
        fileText: String?, fileName: String = "config", environment: [String: String] = [:],
        overrides: [(String, String)] = []
    ) throws(ConfigError) -> GateConfig {
        var config = GateConfig()
        if let fileText {
            for e in try parseFile(fileText, name: fileName) {
                try config.set(e.key, e.value, source: "\(fileName):\(e.line)")
            }
        }
        for key in GateConfig.keys {
            if let v = environment[key] { try config.set(key, v, source: "environment") }
        }
        for (k, v) in overrides { try config.set(k, v, source: "flag") }
        try config.validate()
        return config
    }
}
