import HeatGateCore

#if canImport(Glibc)
    import Glibc
#endif

/// One line per event on standard error, for journald: logfmt by default (`<6>ts=… level=info msg=…`,
/// the `<N>` prefix is the syslog priority journald reads), JSON on request.
///
/// Each line is written with a single `write(2)`, so lines from different threads never interleave.
public struct Logger: Sendable {
    public var level: LogLevel
    public var format: LogFormat
    let fd: Int32

    public init(level: LogLevel = .info, format: LogFormat = .logfmt, fd: Int32 = 2) {
        self.level = level
        self.format = format
        self.fd = fd
    }

    public func enabled(_ l: LogLevel) -> Bool { l >= level }

    public func trace(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.trace, msg, fields) }
    public func debug(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.debug, msg, fields) }
    public func info(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.info, msg, fields) }
    public func notice(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.notice, msg, fields) }
    public func warning(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.warning, msg, fields) }
    public func error(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.error, msg, fields) }

    static func priority(_ l: LogLevel) -> Int {
        switch l {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Writes one event.
    public func log(_ l: LogLevel, _ msg: String, _ fields: KeyValuePairs<String, String>) {
        guard enabled(l) else { return }
        var line = ""
        line.reserveCapacity(160)
        let ts = Self.timestamp(wallClock())
        switch format {
        case .logfmt:
            line += "<\(Self.priority(l))>ts=\(ts) level=\(l.label) msg=\(Self.logfmtValue(msg))"
            for (k, v) in fields { line += " \(k)=\(Self.logfmtValue(v))" }
        case .json:
            var w = JSONWriter(capacity: 256)
            w.raw("{\"ts\":")
            w.string(ts)
            w.raw(",\"level\":")
            w.string(l.label)
            w.raw(",\"msg\":")
            w.string(msg)
            for (k, v) in fields {
                w.byte(UInt8(ascii: ","))
                w.string(k)
                w.byte(UInt8(ascii: ":"))
                w.string(v)
            }
            w.byte(UInt8(ascii: "}"))
            line = String(decoding: w.bytes, as: UTF8.self)
        }
        line += "\n"
        var bytes = line
        bytes.withUTF8 { buf in
            var rest = UnsafeRawBufferPointer(buf)
            while !rest.isEmpty {
                let n = write(fd, rest.baseAddress, rest.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }
    }

    static func logfmtValue(_ v: String) -> String {
        if !v.isEmpty && !v.utf8.contains(where: { $0 == 0x20 || $0 == 0x22 || $0 == 0x3D || $0 < 0x20 }) { return v }
        var s = "\""
        for c in v.unicodeScalars {
            switch c {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            case "\n": s += "\\n"
            default: s.unicodeScalars.append(c)
            }
        }
        return s + "\""
    }

    /// RFC 3339 UTC with microseconds.
    public static func timestamp(_ t: Double) -> String {
        var secs = time_t(t.rounded(.down))
        let micros = Int((t - Double(secs)) * 1e6)
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let us = String(micros)
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))."
            + String(repeating: "0", count: 6 - us.count) + us + "Z"
    }
}
