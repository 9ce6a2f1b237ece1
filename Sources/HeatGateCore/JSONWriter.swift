/// An append-only byte buffer for writing JSON without Foundation.
///
/// Reused across messages (`reset()` keeps the capacity), so steady-state writing allocates nothing.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 2048) { bytes.reserveCapacity(capacity) }

    public mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    public var count: Int { bytes.count }

    public mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func raw(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[r]))
    }

    public mutating func byte(_ c: UInt8) { bytes.append(c) }

    /// A string value, quoted and escaped.
    public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0..<0x20:
                raw("\\u00")
                bytes.append(hexDigit(c >> 4))
                bytes.append(hexDigit(c & 0xF))
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `"key":`
    public mutating func key(_ k: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        raw(k)
        raw("\":")
    }

    public mutating func bool(_ v: Bool) { v ? raw("true") : raw("false") }

    public mutating func int(_ v: Int) {
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
            uint(UInt64(v.magnitude))
        } else {
            uint(UInt64(v))
        }
    }

    public mutating func uint(_ v: UInt64) {
        if v == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
            var v = v
            var n = 0
            while v > 0 {
                buf[19 - n] = UInt8(v % 10) + 48
                v /= 10
                n += 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[(20 - n)..<20]))
        }
    }

    /// A number in the shortest form that reads back to the same `Double`; `null` for NaN or infinity.
    public mutating func double(_ v: Double) {
        guard v.isFinite else {
            raw("null")
            return
        }
        if v == v.rounded(.towardZero) && abs(v) < 1e15 {
            int(Int(v))
            return
        }
        bytes.append(contentsOf: v.description.utf8)
    }

    /// A number with a fixed count of decimals (times: microseconds, not 17 digits of noise).
    public mutating func fixed(_ v: Double, decimals: Int) {
        guard v.isFinite, abs(v) < 9e15 else {
            double(v)
            return
        }
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int64((abs(v) * Double(scale)).rounded())
        if v < 0 && scaled != 0 { bytes.append(UInt8(ascii: "-")) }
        uint(UInt64(scaled / scale))
        if decimals > 0 {
            bytes.append(UInt8(ascii: "."))
            var frac = scaled % scale
            var div = scale / 10
            for _ in 0..<decimals {
                bytes.append(UInt8(frac / div) + 48)
                frac %= div
                div = max(div / 10, 1)
            }
        }
    }
}
