import Foundation

/// Durations and points in time as operators type them on the command line.
public enum TimeText {
    /// Reads a duration: a number of seconds, or a number with a unit `s`, `m`, `h`, `d` (`90s`, `15m`,
    /// `1.5h`, `7d`), or several of them run together (`1h30m`).
    ///
    /// - Returns: seconds, or `nil` when the text is not a duration or is negative.
    public static func duration(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t.isEmpty { return nil }
        if let plain = Double(t) { return plain >= 0 && plain.isFinite ? plain : nil }
        var total = 0.0
        var number = ""
        for c in t {
            if c.isNumber || c == "." {
                number.append(c)
                continue
            }
            let unit: Double
            switch c {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86400
            case "w": unit = 7 * 86400
            default: return nil
            }
            guard let n = Double(number) else { return nil }
            total += n * unit
            number = ""
        }
        return number.isEmpty ? total : nil
    }

    /// Reads a point in time: a duration before `now` (`24h`), epoch seconds (`1764000000`), or an
    /// ISO-8601 UTC time (`2025-11-24T16:00:00Z`, fractions allowed; `2025-11-24` for midnight UTC).
    ///
    /// - Returns: epoch seconds, or `nil` when the text is none of these.
    public static func point(_ text: String, now: Double) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let epoch = Double(t), epoch > 100_000_000 { return epoch }
        if let d = duration(t) { return now - d }
        for options in [
            [.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime],
            [.withFullDate] as ISO8601DateFormatter.Options,
        ] {
            let f = ISO8601DateFormatter()
            f.formatOptions = options
            if let date = f.date(from: t) { return date.timeIntervalSince1970 }
        }
        return nil
    }

    /// `2025-11-24T16:00:00Z` (UTC, whole seconds; with milliseconds when `fraction`).
    ///
    /// Computed directly (days to civil date, H. Hinnant's algorithm): a Foundation date formatter costs
    /// milliseconds to build, and the ledger formats a time for every entry it verifies.
    public static func iso(_ epoch: Double, fraction: Bool = false) -> String {
        guard epoch.isFinite, abs(epoch) < 1e12 else { return "-" }
        let ms = Int64((epoch * 1000).rounded(fraction ? .toNearestOrAwayFromZero : .down))
        let totalSeconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let milli = Int(ms - totalSeconds * 1000)
        let days = totalSeconds >= 0 ? totalSeconds / 86400 : (totalSeconds - 86399) / 86400
        let secs = Int(totalSeconds - days * 86400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var out =
            "\(year)-\(two(Int(month)))-\(two(Int(day)))T\(two(secs / 3600)):\(two(secs % 3600 / 60)):\(two(secs % 60))"
        if fraction { out += "." + (milli < 10 ? "00" : milli < 100 ? "0" : "") + "\(milli)" }
        return out + "Z"
    }

    /// A duration for people: `15m`, `1h 30m`, `2d 4h`, `42s`.
    public static func human(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "-" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60)m" : "\(s / 60)m \(s % 60)s" }
        if s < 86400 { return s % 3600 / 60 == 0 ? "\(s / 3600)h" : "\(s / 3600)h \(s % 3600 / 60)m" }
        return s % 86400 / 3600 == 0 ? "\(s / 86400)d" : "\(s / 86400)d \(s % 86400 / 3600)h"
    }
}
