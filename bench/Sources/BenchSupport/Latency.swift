import Histogram

#if canImport(Glibc)
    import Glibc
#endif

/// A latency distribution in nanoseconds, HdrHistogram with 3 significant digits up to 60 s.
public struct LatencyRecorder: Sendable {
    public var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    public init() {}

    @inline(__always)
    public mutating func record(_ nanos: UInt64) {
        _ = histogram.record(min(nanos, 60_000_000_000))
    }

    /// p50/p90/p99/p99.9/max/mean in microseconds, as JSON-ready pairs.
    public func summary() -> [(String, Double)] {
        func us(_ v: UInt64) -> Double { (Double(v) / 10).rounded() / 100 }
        let h = histogram
        guard h.totalCount > 0 else { return [] }
        return [
            ("p50_us", us(h.valueAtPercentile(50))), ("p90_us", us(h.valueAtPercentile(90))),
            ("p99_us", us(h.valueAtPercentile(99))), ("p99_9_us", us(h.valueAtPercentile(99.9))),
            ("max_us", us(h.max)), ("mean_us", (h.mean / 10).rounded() / 100), ("count", Double(h.totalCount)),
        ]
    }

    /// The percentile distribution in HdrHistogram's `.hgrm` text format, values in microseconds.
    public func hgrm() -> String {
        var s = ""
        histogram.outputPercentileDistribution(to: &s, outputValueUnitScalingRatio: 1000)
        return s
    }
}

/// Writes `text` to `path` (truncating).
public func writeText(_ text: String, to path: String) throws {
    guard let f = fopen(path, "wb") else { throw BenchError("cannot write \(path)") }
    defer { fclose(f) }
    var t = text
    t.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, f) }
}

/// A failure a person can act on.
public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A flat JSON object writer for the programs' one-line results.
public func jsonObject(_ pairs: [(String, JSONScalar)]) -> String {
    "{" + pairs.map { "\"\($0.0)\":\($0.1.text)" }.joined(separator: ",") + "}"
}

/// A JSON scalar.
public enum JSONScalar {
    case number(Double)
    case int(Int)
    case string(String)
    case bool(Bool)
    case null

    var text: String {
        switch self {
        case .number(let d): d.isFinite ? "\(d)" : "null"
        case .int(let i): "\(i)"
        case .string(let s):
            "\"" + s.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"") + "\""
        case .bool(let b): b ? "true" : "false"
        case .null: "null"
        }
    }
}

extension String {
    func replacingAll(_ a: Character, _ b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}

/// Writes one line to standard error (unbuffered `write(2)`).
public func printError(_ line: String) {
    var s = line + "\n"
    s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

extension LatencyRecorder {
    /// Values recorded.
    public var count: UInt64 { histogram.totalCount }
}
