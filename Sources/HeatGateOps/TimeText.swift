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
    public static func iso(_ epoch: Double, fraction: Bool = false) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = fraction ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: epoch))
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
