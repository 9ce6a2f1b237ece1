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

/// When a change of a key takes effect.
public enum ConfigApplies: String, Sendable {
    /// Applied live by `SIGHUP` (or `heatgate reload`).
    case reload
    /// Read at start only: a reload that changes it logs that a restart is needed.
    case restart
}

/// The numbers a numeric key accepts: finite, within bounds, whole where it counts something.
public struct ConfigRange: Equatable, Sendable {
    public var lower: Double
    public var upper: Double
    /// The lower bound itself is refused (a limit of 0 s would make everything stale).
    public var lowerOpen: Bool
    public var whole: Bool

    public func contains(_ d: Double) -> Bool {
        d.isFinite && (lowerOpen ? d > lower : d >= lower) && d <= upper && (!whole || d == d.rounded())
    }

    /// The range as docs/configuration.md and error messages spell it.
    public var text: String {
        let kind = whole ? "a whole number" : "a number"
        return "\(kind), \(fmt(lower)) \(lowerOpen ? "<" : "<=") x <= \(fmt(upper))"
    }
}

/// One key of the configuration: its name, what it accepts, when a change applies.
public struct ConfigKeyInfo: Sendable {
    public var key: String
    /// What the key accepts, in words (ranges spelt by ``ConfigRange/text``).
    public var allowed: String
    /// For numeric keys, the range every source is checked against: file, environment, flag, reload.
    public var range: ConfigRange?
    public var applies: ConfigApplies

    init(_ key: String, _ allowed: String, _ applies: ConfigApplies) {
        self.key = key
        self.allowed = allowed
        self.range = nil
        self.applies = applies
    }

    init(_ key: String, _ range: ConfigRange, _ applies: ConfigApplies) {
        self.key = key
        self.allowed = range.text
        self.range = range
        self.applies = applies
    }
}

extension ConfigRange {
    static func number(_ lower: Double, _ upper: Double, lowerOpen: Bool = false, whole: Bool = false) -> Self {
        ConfigRange(lower: lower, upper: upper, lowerOpen: lowerOpen, whole: whole)
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
    /// `P26_RUN_DIR` as set; `nil` (unset or empty) derives the hot store's directory from the state dir.
    public var runDirSetting: String?
    /// The hot store's directory (SPEC §5): `P26_RUN_DIR`, else ``StorePaths/defaultRunDir(stateDir:)``.
    public var runDir: String { runDirSetting ?? StorePaths.defaultRunDir(stateDir: stateDir) }
    /// The hot store's directory for the CLI's readers: `P26_RUN_DIR`, else the one the gate last ran with
    /// (`<state dir>/run_dir`), else the default.
    public var readerRunDir: String { runDirSetting ?? StorePaths.readerRunDir(stateDir: stateDir) }
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
    /// The rollback guard (`P26_GUARD_*`): off by default.
    public var guardSettings = GuardSettings()

    public init() {}

    /// The control endpoint, with the default derived from the state directory.
    public var controlEndpoint: String {
        controlEndpointSetting ?? "ipc://\(stateDir)/control.sock"
    }

    /// The keys this configuration reads, in the order of the contract's §6.
    public static let keys: [String] = table.map(\.key)

    /// Every key, with what it accepts and when a change takes effect: the one table that parsing,
    /// `check-config`, reload and docs/configuration.md all follow.
    public static let table: [ConfigKeyInfo] = [
        .init("P26_MODE", "`shadow` or `enforce`, any case", .reload),
        .init("HEAT_MIN", .number(0, 100), .reload),
        .init("HEAT_MAX", .number(0, 100, lowerOpen: true), .reload),
        .init("HEAT_COLD_ACTION", "an action: " + Action.allCases.map(\.token).joined(separator: ", "), .reload),
        .init("HEAT_WARM_ACTION", "an action, as HEAT_COLD_ACTION", .reload),
        .init("HEAT_HOT_ACTION", "an action, as HEAT_COLD_ACTION", .reload),
        .init("P26_FAIL_MODE", "`closed` or `open`", .reload),
        .init("P26_STATE_MAX_AGE_SEC", .number(0, 86_400, lowerOpen: true), .reload),
        .init("P26_PROPOSAL_MAX_AGE_SEC", .number(0, 315_360_000, lowerOpen: true), .reload),
        .init("P26_CALIBRATED_TTL_SEC", .number(0, 86_400, lowerOpen: true), .reload),
        .init("P26_REPEAT_PEAK_RATE", .number(0, 100_000, lowerOpen: true), .restart),
        .init("P26_JOURNAL_RETENTION_SEC", .number(0, 315_360_000, lowerOpen: true), .reload),
        .init("P26_STATE_DIR", "a directory path", .restart),
        .init("P26_RUN_DIR", "a directory path on a memory-backed file system (tmpfs)", .restart),
        .init("P26_INGEST_ENDPOINT", "a ZeroMQ endpoint: `tcp://HOST:PORT` or `ipc://PATH`", .restart),
        .init("P26_PUBLISH_ENDPOINT", "a ZeroMQ endpoint, as P26_INGEST_ENDPOINT", .restart),
        .init("P26_CONTROL_ENDPOINT", "a ZeroMQ endpoint, as P26_INGEST_ENDPOINT", .restart),
        .init("P26_METRICS_BIND", "an address to bind", .restart),
        .init("P26_METRICS_PORT", .number(0, 65_535, whole: true), .restart),
        .init("P26_LOG_LEVEL", LogLevel.allCases.map { "`\($0.label)`" }.joined(separator: ", "), .reload),
        .init("P26_LOG_FORMAT", "`logfmt` or `json`", .reload),
        .init("P26_MAP_SIZE_MB", .number(1, 1_048_576, whole: true), .restart),
        .init("P26_HEARTBEAT_SEC", .number(0, 3_600), .reload),
        .init("P26_CURVE_SECRET_KEY", "a Z85 secret key of 40 characters", .restart),
        .init("P26_CURVE_ALLOWED_CLIENTS", "comma-separated Z85 public keys of 40 characters", .restart),
        .init("P26_ALLOW_INSECURE_BIND", "`true` or `false` (also 1/0, yes/no, on/off)", .restart),
        .init("P26_GUARD_ENABLED", "`true` or `false` (also 1/0, yes/no, on/off)", .reload),
        .init("P26_GUARD_WINDOW_SEC", .number(0, 86_400, lowerOpen: true), .reload),
        .init("P26_GUARD_MAX_DOWNGRADE_SHARE", .number(0, 1), .reload),
        .init("P26_GUARD_MIN_FULL_CLOSES", .number(1, 1_000_000, whole: true), .reload),
        .init("P26_GUARD_MAX_INPUTS_BAD_SEC", .number(0, 86_400, lowerOpen: true), .reload),
        .init("P26_GUARD_MAX_KEPT_LOSS_USD", .number(0, 1e12), .reload),
    ]

    /// The entry of ``table`` for a key.
    public static func info(_ key: String) -> ConfigKeyInfo? { table.first { $0.key == key } }

    /// The value of a key, as the config file would spell it (the default for keys left unset).
    public func text(_ key: String) -> String {
        switch key {
        case "P26_MODE": mode.label
        case "HEAT_MIN": fmt(heatMin)
        case "HEAT_MAX": fmt(heatMax)
        case "HEAT_COLD_ACTION": coldAction.token
        case "HEAT_WARM_ACTION": warmAction.token
        case "HEAT_HOT_ACTION": hotAction.token
        case "P26_FAIL_MODE": failMode == .closed ? "closed" : "open"
        case "P26_STATE_MAX_AGE_SEC": fmt(stateMaxAgeSec)
        case "P26_PROPOSAL_MAX_AGE_SEC": fmt(proposalMaxAgeSec)
        case "P26_CALIBRATED_TTL_SEC": fmt(calibratedTTLSec)
        case "P26_REPEAT_PEAK_RATE": fmt(repeatPeakRate)
        case "P26_JOURNAL_RETENTION_SEC": fmt(journalRetentionSec)
        case "P26_STATE_DIR": stateDir
        case "P26_RUN_DIR": runDirSetting ?? "<derived from P26_STATE_DIR>"
        case "P26_INGEST_ENDPOINT": ingestEndpoint
        case "P26_PUBLISH_ENDPOINT": publishEndpoint
        case "P26_CONTROL_ENDPOINT": controlEndpointSetting ?? "ipc://<P26_STATE_DIR>/control.sock"
        case "P26_METRICS_BIND": metricsBind
        case "P26_METRICS_PORT": String(metricsPort)
        case "P26_LOG_LEVEL": logLevel.label
        case "P26_LOG_FORMAT": logFormat.rawValue
        case "P26_MAP_SIZE_MB": String(mapSizeMB)
        case "P26_HEARTBEAT_SEC": fmt(heartbeatSec)
        case "P26_CURVE_SECRET_KEY": curveSecretKey == nil ? "" : "(set)"
        case "P26_CURVE_ALLOWED_CLIENTS": curveAllowedClients.joined(separator: ",")
        case "P26_ALLOW_INSECURE_BIND": allowInsecureBind ? "true" : "false"
        case "P26_GUARD_ENABLED": guardSettings.enabled ? "true" : "false"
        case "P26_GUARD_WINDOW_SEC": fmt(guardSettings.windowSec)
        case "P26_GUARD_MAX_DOWNGRADE_SHARE": fmt(guardSettings.maxDowngradeShare)
        case "P26_GUARD_MIN_FULL_CLOSES": String(guardSettings.minFullCloses)
        case "P26_GUARD_MAX_INPUTS_BAD_SEC": fmt(guardSettings.maxInputsBadSec)
        case "P26_GUARD_MAX_KEPT_LOSS_USD": fmt(guardSettings.maxKeptLossUSD)
        default: ""
        }
    }

    /// The configuration a reload runs with: the file's value for every key a reload applies, the running
    /// value for every key read at start only. Driven by ``table``, so a new live key cannot be forgotten.
    public static func reloaded(running: GateConfig, file: GateConfig) -> GateConfig {
        var next = running
        for info in table where info.applies == .reload { next.take(info.key, from: file) }
        return next
    }

    /// Copies one key's value from another configuration.
    mutating func take(_ key: String, from o: GateConfig) {
        switch key {
        case "P26_MODE": mode = o.mode
        case "HEAT_MIN": heatMin = o.heatMin
        case "HEAT_MAX": heatMax = o.heatMax
        case "HEAT_COLD_ACTION": coldAction = o.coldAction
        case "HEAT_WARM_ACTION": warmAction = o.warmAction
        case "HEAT_HOT_ACTION": hotAction = o.hotAction
        case "P26_FAIL_MODE": failMode = o.failMode
        case "P26_STATE_MAX_AGE_SEC": stateMaxAgeSec = o.stateMaxAgeSec
        case "P26_PROPOSAL_MAX_AGE_SEC": proposalMaxAgeSec = o.proposalMaxAgeSec
        case "P26_CALIBRATED_TTL_SEC": calibratedTTLSec = o.calibratedTTLSec
        case "P26_REPEAT_PEAK_RATE": repeatPeakRate = o.repeatPeakRate
        case "P26_JOURNAL_RETENTION_SEC": journalRetentionSec = o.journalRetentionSec
        case "P26_STATE_DIR": stateDir = o.stateDir
        case "P26_RUN_DIR": runDirSetting = o.runDirSetting
        case "P26_INGEST_ENDPOINT": ingestEndpoint = o.ingestEndpoint
        case "P26_PUBLISH_ENDPOINT": publishEndpoint = o.publishEndpoint
        case "P26_CONTROL_ENDPOINT": controlEndpointSetting = o.controlEndpointSetting
        case "P26_METRICS_BIND": metricsBind = o.metricsBind
        case "P26_METRICS_PORT": metricsPort = o.metricsPort
        case "P26_LOG_LEVEL": logLevel = o.logLevel
        case "P26_LOG_FORMAT": logFormat = o.logFormat
        case "P26_MAP_SIZE_MB": mapSizeMB = o.mapSizeMB
        case "P26_HEARTBEAT_SEC": heartbeatSec = o.heartbeatSec
        case "P26_CURVE_SECRET_KEY": curveSecretKey = o.curveSecretKey
        case "P26_CURVE_ALLOWED_CLIENTS": curveAllowedClients = o.curveAllowedClients
        case "P26_ALLOW_INSECURE_BIND": allowInsecureBind = o.allowInsecureBind
        case "P26_GUARD_ENABLED": guardSettings.enabled = o.guardSettings.enabled
        case "P26_GUARD_WINDOW_SEC": guardSettings.windowSec = o.guardSettings.windowSec
        case "P26_GUARD_MAX_DOWNGRADE_SHARE": guardSettings.maxDowngradeShare = o.guardSettings.maxDowngradeShare
        case "P26_GUARD_MIN_FULL_CLOSES": guardSettings.minFullCloses = o.guardSettings.minFullCloses
        case "P26_GUARD_MAX_INPUTS_BAD_SEC": guardSettings.maxInputsBadSec = o.guardSettings.maxInputsBadSec
        case "P26_GUARD_MAX_KEPT_LOSS_USD": guardSettings.maxKeptLossUSD = o.guardSettings.maxKeptLossUSD
        default: break
        }
    }

    /// The keys whose value differs between two configurations and that take effect only at start.
    public static func restartNeeded(running: GateConfig, file: GateConfig) -> [String] {
        table.filter { $0.applies == .restart && running.text($0.key) != file.text($0.key) }.map(\.key)
    }

    /// Sets one key from its text.
    ///
    /// - Throws: ``ConfigError`` naming the key and the allowed values.
    public mutating func set(_ key: String, _ raw: String, source: String = "") throws(ConfigError) {
        let value = raw.trimmingBlanks()
        guard let info = Self.info(key) else {
            throw ConfigError(
                key: key, value: raw, allowed: "a known key (\(Self.keys.joined(separator: ", ")))",
                source: source)
        }
        func fail(_ allowed: String) -> ConfigError {
            ConfigError(key: key, value: raw, allowed: allowed, source: source)
        }
        func number() throws(ConfigError) -> Double {
            guard let range = info.range else { throw fail(info.allowed) }
            guard let d = Double(value), range.contains(d) else { throw fail(info.allowed) }
            return d
        }
        func whole() throws(ConfigError) -> Int {
            let d = try number()
            guard let i = Int(exactly: d) else { throw fail(info.allowed) }
            return i
        }
        func action() throws(ConfigError) -> Action {
            guard let a = Action(token: value) else { throw fail(info.allowed) }
            return a
        }
        func text() throws(ConfigError) -> String {
            guard !value.isEmpty else { throw fail("a non-empty value: \(info.allowed)") }
            return value
        }
        switch key {
        case "P26_MODE":
            switch value.lowercased() {
            case "shadow": mode = .shadow
            case "enforce": mode = .enforce
            default: throw fail(info.allowed)
            }
        case "HEAT_MIN": heatMin = try number()
        case "HEAT_MAX": heatMax = try number()
        case "HEAT_COLD_ACTION": coldAction = try action()
        case "HEAT_WARM_ACTION": warmAction = try action()
        case "HEAT_HOT_ACTION": hotAction = try action()
        case "P26_FAIL_MODE":
            switch value.lowercased() {
            case "closed": failMode = .closed
            case "open": failMode = .open
            default: throw fail(info.allowed)
            }
        case "P26_STATE_MAX_AGE_SEC": stateMaxAgeSec = try number()
        case "P26_PROPOSAL_MAX_AGE_SEC": proposalMaxAgeSec = try number()
        case "P26_CALIBRATED_TTL_SEC": calibratedTTLSec = try number()
        case "P26_REPEAT_PEAK_RATE": repeatPeakRate = try number()
        case "P26_JOURNAL_RETENTION_SEC": journalRetentionSec = try number()
        case "P26_STATE_DIR": stateDir = try text()
        case "P26_RUN_DIR": runDirSetting = value.isEmpty ? nil : value
        case "P26_INGEST_ENDPOINT": ingestEndpoint = try endpoint(value, fail)
        case "P26_PUBLISH_ENDPOINT": publishEndpoint = try endpoint(value, fail)
        case "P26_CONTROL_ENDPOINT": controlEndpointSetting = try endpoint(value, fail)
        case "P26_METRICS_BIND": metricsBind = try text()
        case "P26_METRICS_PORT": metricsPort = try whole()
        case "P26_LOG_LEVEL":
            guard let l = LogLevel.allCases.first(where: { $0.label == value.lowercased() }) else {
                throw fail(info.allowed)
            }
            logLevel = l
        case "P26_LOG_FORMAT":
            guard let f = LogFormat(rawValue: value.lowercased()) else { throw fail(info.allowed) }
            logFormat = f
        case "P26_MAP_SIZE_MB": mapSizeMB = try whole()
        case "P26_HEARTBEAT_SEC": heartbeatSec = try number()
        case "P26_CURVE_SECRET_KEY":
            guard value.utf8.count == 40 else { throw fail(info.allowed) }
            curveSecretKey = value
        case "P26_CURVE_ALLOWED_CLIENTS":
            let keys = value.split(separator: ",").map { String($0).trimmingBlanks() }.filter { !$0.isEmpty }
            guard keys.allSatisfy({ $0.utf8.count == 40 }) else { throw fail(info.allowed) }
            curveAllowedClients = keys
        case "P26_ALLOW_INSECURE_BIND": allowInsecureBind = try flag(value, fail(info.allowed))
        case "P26_GUARD_ENABLED": guardSettings.enabled = try flag(value, fail(info.allowed))
        case "P26_GUARD_WINDOW_SEC": guardSettings.windowSec = try number()
        case "P26_GUARD_MAX_DOWNGRADE_SHARE": guardSettings.maxDowngradeShare = try number()
        case "P26_GUARD_MIN_FULL_CLOSES": guardSettings.minFullCloses = try whole()
        case "P26_GUARD_MAX_INPUTS_BAD_SEC": guardSettings.maxInputsBadSec = try number()
        case "P26_GUARD_MAX_KEPT_LOSS_USD": guardSettings.maxKeptLossUSD = try number()
        default:
            throw fail(info.allowed)
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

private func flag(_ v: String, _ error: ConfigError) throws(ConfigError) -> Bool {
    switch v.lowercased() {
    case "1", "true", "yes", "on": return true
    case "0", "false", "no", "off", "": return false
    default: throw error
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

/// The right-hand side of a `KEY=VALUE` line, split the way the loader reads it and the editor rewrites it.
public struct ConfigValueText: Equatable, Sendable {
    /// The value, without its quotes.
    public var value: String
    /// The quote around it (`"` or `'`), if any.
    public var quote: Character?
    /// A trailing comment with the blanks before it (`" # why"`, `"\t# why"`), or empty.
    public var comment: String

    /// Splits `text`: a value in matching quotes may be followed by blanks and a `#` comment; in an
    /// unquoted value a `#` after a space or a tab starts the comment. Anything else is the value.
    public init(_ text: Substring) {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        let body = text.drop(while: blank)
        if let q = body.first, q == "\"" || q == "'",
            let close = body.dropFirst().firstIndex(of: q)
        {
            let after = body[body.index(after: close)...]
            let trimmed = after.drop(while: blank)
            if trimmed.isEmpty || trimmed.first == "#" {
                value = String(body[body.index(after: body.startIndex)..<close])
                quote = q
                comment = trimmed.isEmpty ? "" : String(after)
                return
            }
        }
        quote = nil
        var prev: Character = "x"
        var cut: Substring.Index?
        for i in body.indices {
            if body[i] == "#" && (prev == " " || prev == "\t") {
                cut = i
                break
            }
            prev = body[i]
        }
        guard var start = cut else {
            value = String(body).trimmingBlanks()
            comment = ""
            return
        }
        while start > body.startIndex, blank(body[body.index(before: start)]) { start = body.index(before: start) }
        value = String(body[..<start]).trimmingBlanks()
        comment = String(body[start...]).trimmingBlanks().isEmpty ? "" : String(body[start...])
        while let l = comment.last, blank(l) { comment.removeLast() }
    }
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
            let value = ConfigValueText(line[line.index(after: eq)...]).value
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
