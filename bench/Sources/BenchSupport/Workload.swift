/// The messages every benchmark sends: the same proposal shape as the Redis + Python baseline
/// (`baseline/benchlib.py`), as one JSON frame (SPEC §3).
public enum Workload {
    /// `n` symbols: the common ones first, then synthetic ones (as the baseline names them).
    public static func symbols(_ n: Int) -> [String] {
        let common = [
            "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT", "LINKUSDT",
            "DOTUSDT", "TRXUSDT", "LTCUSDT", "NEARUSDT", "ATOMUSDT", "APTUSDT", "ARBUSDT",
        ]
        var out = Array(common.prefix(n))
        var i = out.count
        while out.count < n {
            out.append("SYM\(pad(i, 4))USDT")
            i += 1
        }
        return out
    }

    /// `n` symbols of one length (`S00000USDT`...), so one proposal template serves them all.
    public static func fixedSymbols(_ n: Int) -> [String] {
        (0..<n).map { "S\(pad($0, 5))USDT" }
    }

    static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// The messages that set up a COLD book: one `position` message per symbol, each 9 000 USD at sigma
    /// 0.014 (a single `positions` message for 10 000 symbols would pass the 64 KiB frame limit), then a
    /// `portfolio` message with equity enough to keep the heat below 0.1, so every full close is downgraded.
    public static func book(_ symbols: [String], now: Double) -> [String] {
        var out = symbols.map { position($0, notional: 9000, now: now) }
        let equity = max(250_000.0, Double(symbols.count) * 9000 * 0.014 / 0.1)
        out.append("{\"type\":\"portfolio\",\"equity_usd\":\(equity),\"ts\":\(now)}")
        return out
    }

    /// A `position` message for one symbol.
    public static func position(_ symbol: String, notional: Double, now: Double) -> String {
        "{\"type\":\"position\",\"symbol\":\"\(symbol)\",\"position_notional_usd\":\(notional),\"sigma\":0.014,\"ts\":\(now)}"
    }
}

/// Writes proposal frames into one reusable buffer: a fixed template whose counter, intended send time and
/// proposal time are overwritten in place, so the generator allocates nothing per message.
public struct ProposalFrame {
    public private(set) var bytes: [UInt8]
    let planDigits: Int
    let traceDigits: Int
    let tsDigits: Int
    let t0Digits: Int
    public let symbolStart: Int

    /// - Parameters:
    ///   - run: a short run id (letters and digits), the `plan_id` prefix.
    ///   - symbol: the symbol (all symbols of one run must have the same length to reuse the template;
    ///     use ``setSymbol(_:)``).
    public init(run: String, symbol: String) {
        let head = "{\"type\":\"proposal\",\"symbol\":\""
        var s = head + symbol + "\",\"harvest_action\":\"FULL_CLOSE_PROPOSED\",\"plan_id\":\"\(run)-"
        planDigits = s.utf8.count
        s += "000000000000\",\"trace_id\":\""
        traceDigits = s.utf8.count
        s += "0000000000000000\",\"ts_epoch\":"
        tsDigits = s.utf8.count
        s += "0000000000.000000,\"R_net\":2.37,\"ts\":0.62,\"mark_price\":65912.25,\"bench_t0_ns\":"
        t0Digits = s.utf8.count
        s += "00000000000000000000}"
        bytes = Array(s.utf8)
        symbolStart = head.utf8.count
    }

    /// Overwrites the symbol (same length as the template's).
    public mutating func setSymbol(_ symbol: [UInt8]) {
        for (k, c) in symbol.enumerated() { bytes[symbolStart + k] = c }
    }

    /// Fills in message `i`: `plan_id` `<run>-<i>`, `trace_id`, `ts_epoch` and `bench_t0_ns`.
    public mutating func fill(index i: UInt64, intendedNanos t0: UInt64, epoch: Double) {
        writeDecimal(i, at: planDigits, width: 12)
        writeHex(i, at: traceDigits)
        let whole = UInt64(epoch)
        writeDecimal(whole, at: tsDigits, width: 10)
        writeDecimal(UInt64((epoch - Double(whole)) * 1e6), at: tsDigits + 11, width: 6)
        writeDecimal(t0, at: t0Digits, width: 20, padWithSpaces: true)
    }

    /// Writes `v` right-aligned in `width` digits. JSON numbers may not have leading zeros, so a number
    /// is padded with spaces (whitespace before a value is valid JSON); strings are padded with zeros.
    mutating func writeDecimal(_ v: UInt64, at start: Int, width: Int, padWithSpaces: Bool = false) {
        var v = v
        var k = start + width - 1
        repeat {
            bytes[k] = UInt8(v % 10) + 48
            v /= 10
            k -= 1
        } while k >= start && (v > 0 || !padWithSpaces)
        while k >= start {
            bytes[k] = padWithSpaces ? 0x20 : 48
            k -= 1
        }
    }

    mutating func writeHex(_ v: UInt64, at start: Int) {
        for k in 0..<16 {
            let d = UInt8((v >> UInt64(60 - 4 * k)) & 0xF)
            bytes[start + k] = d < 10 ? d + 48 : d + 87
        }
    }
}

/// Finds `"bench_t0_ns":` in a decision (it is passed through in the `proposal` object, near the end) and
/// reads the number after it.
public func readBenchT0(_ b: UnsafeRawBufferPointer) -> UInt64? {
    let key: StaticString = "\"bench_t0_ns\":"
    let n = key.utf8CodeUnitCount
    guard b.count > n else { return nil }
    let k = UnsafeBufferPointer(start: key.utf8Start, count: n)
    var i = b.count - n
    while i >= 0 {
        if b[i] == UInt8(ascii: "\""), b[i + 1] == UInt8(ascii: "b") {
            var match = true
            for j in 2..<n where b[i + j] != k[j] {
                match = false
                break
            }
            if match {
                var v: UInt64 = 0
                var p = i + n
                while p < b.count, b[p] == 0x20 { p += 1 }
                let digits = p
                while p < b.count, b[p] >= 48, b[p] <= 57 {
                    v = v &* 10 &+ UInt64(b[p] - 48)
                    p += 1
                }
                return p > digits ? v : nil
            }
        }
        i -= 1
    }
    return nil
}
