/// Why a message was refused (SPEC §3); `label` is the `reason` of `p26_rejected_total`.
public enum RejectReason: String, CaseIterable, Sendable {
    case notJSON = "not_json"
    case notObject = "not_object"
    case missingType = "missing_type"
    case unknownType = "unknown_type"
    case missingField = "missing_field"
    case wrongType = "wrong_type"
    case badSymbol = "bad_symbol"
    case planIdTooLong = "plan_id_too_long"
    case traceIdTooLong = "trace_id_too_long"
    case nonFinite = "non_finite_number"
    case negative = "negative_value"
    case frameTooLarge = "frame_too_large"
    case badTimestamp = "bad_timestamp"
    case tooManySymbols = "too_many_symbols"
    case outOfRange = "out_of_range"

    public var label: String { rawValue }
}

/// A refused message: the reason, the field concerned and a sentence for the log.
public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: RejectReason
    public var field: String
    public var detail: String

    public init(_ reason: RejectReason, field: String = "", _ detail: String = "") {
        self.reason = reason
        self.field = field
        self.detail = detail
    }

    public var description: String {
        var s = "reason=\(reason.label)"
        if !field.isEmpty { s += " field=\(field)" }
        if !detail.isEmpty { s += " detail=\"\(detail)\"" }
        return s
    }
}

/// A proposal as parsed from its bytes: ranges into the frame, nothing copied.
public struct Proposal: Sendable {
    public var symbolId: Int32
    /// The action read from the token, `nil` when unknown.
    public var action: Action?
    /// The action's JSON string literal, quotes included: echoed as `original_action`.
    public var actionLiteral: Range<Int>
    /// The hash of the `plan_id` text: the dedupe key.
    public var planKey: UInt64
    /// The `plan_id` literal, or `nil` when derived (then written as `hg-<16 hex>` from `planKey`'s source).
    public var planIdLiteral: Range<Int>?
    /// The derived plan id's 64-bit value when `planIdLiteral` is nil.
    public var derivedPlan: UInt64
    /// The `trace_id` literal, or `nil` to derive one.
    public var traceIdLiteral: Range<Int>?
    /// Proposal time, epoch seconds, when it carried one.
    public var time: Double?
    /// The whole object, passed through as `proposal`.
    public var object: Range<Int>

    public init(
        symbolId: Int32, action: Action?, actionLiteral: Range<Int>, planKey: UInt64,
        planIdLiteral: Range<Int>?, derivedPlan: UInt64 = 0, traceIdLiteral: Range<Int>?, time: Double?,
        object: Range<Int>
    ) {
        self.symbolId = symbolId
        self.action = action
        self.actionLiteral = actionLiteral
        self.planKey = planKey
        self.planIdLiteral = planIdLiteral
        self.derivedPlan = derivedPlan
        self.traceIdLiteral = traceIdLiteral
        self.time = time
        self.object = object
    }
}

/// The known top-level fields of any message, found in one pass.
struct Fields {
    var type: JSONValue?
    var symbol: JSONValue?
    var harvestAction: JSONValue?
    var action: JSONValue?
    var planId: JSONValue?
    var traceId: JSONValue?
    var tsEpoch: JSONValue?
    var timestamp: JSONValue?
    var lastUpdateEpoch: JSONValue?
    var computedAtUTC: JSONValue?
    var notional: JSONValue?
    var notionalAlias: JSONValue?
    var sigma: JSONValue?
    var volatility: JSONValue?
    var ts: JSONValue?
    var positions: JSONValue?
    var equity: JSONValue?
    var price: JSONValue?

    /// Notes one member. An optional field whose value is `null`, `""` or `"None"` counts as absent
    /// (SPEC §3), so it is not recorded and the next alternative (`action` after `harvest_action`, the next
    /// time field, a derived `plan_id`) applies; `type` and `symbol` are kept whatever they hold, so that
    /// their own rejection names them.
    @inline(__always)
    mutating func record(_ b: UnsafeRawBufferPointer, _ m: JSONMember) {
        let k = m.key
        if isAbsent(b, m.value) {
            if k.count == 4 && b.equals(k, "type") { type = m.value }
            if k.count == 6 && b.equals(k, "symbol") { symbol = m.value }
            return
        }
        switch k.count {
        case 2:
            if b.equals(k, "ts") { ts = m.value }
        case 4:
            if b.equals(k, "type") { type = m.value }
        case 5:
            if b.equals(k, "sigma") { sigma = m.value } else if b.equals(k, "price") { price = m.value }
        case 6:
            if b.equals(k, "symbol") { symbol = m.value } else if b.equals(k, "action") { action = m.value }
        case 7:
            if b.equals(k, "plan_id") { planId = m.value }
        case 8:
            if b.equals(k, "trace_id") {
                traceId = m.value
            } else if b.equals(k, "ts_epoch") {
                tsEpoch = m.value
            }
        case 9:
            if b.equals(k, "timestamp") { timestamp = m.value } else if b.equals(k, "positions") { positions = m.value }
        case 10:
            if b.equals(k, "volatility") { volatility = m.value } else if b.equals(k, "equity_usd") { equity = m.value }
        case 12:
            if b.equals(k, "notional_usd") { notionalAlias = m.value }
        case 14:
            if b.equals(k, "harvest_action") { harvestAction = m.value }
        case 15:
            if b.equals(k, "computed_at_utc") { computedAtUTC = m.value }
        case 17:
            if b.equals(k, "last_update_epoch") { lastUpdateEpoch = m.value }
        case 21:
            if b.equals(k, "position_notional_usd") { notional = m.value }
        default:
            break
        }
    }
}

// MARK: - Reading typed values

/// Reads a symbol (SPEC §3: 1–32 of `[A-Za-z0-9._:/-]`).
func readSymbol(_ b: UnsafeRawBufferPointer, _ v: JSONValue?) throws(Rejection) -> SymbolKey {
    guard let v, v.kind != .null else { throw Rejection(.missingField, field: "symbol") }
    guard v.kind == .string else { throw Rejection(.wrongType, field: "symbol", "expected a string") }
    if v.hasEscapes {
        guard let raw = unescapeJSONString(b, v.content),
            let key = raw.withUnsafeBytes({ SymbolKey(bytes: $0, range: 0..<$0.count) })
        else { throw Rejection(.badSymbol, field: "symbol", "expected 1-32 of [A-Za-z0-9._:/-]") }
        return key
    }
    guard let key = SymbolKey(bytes: b, range: v.content) else {
        throw Rejection(.badSymbol, field: "symbol", "expected 1-32 of [A-Za-z0-9._:/-]")
    }
    return key
}

/// Reads a number, or a numeric string (producers that used Redis hashes send strings).
func readNumber(_ b: UnsafeRawBufferPointer, _ v: JSONValue, _ field: String) throws(Rejection) -> Double {
    let d: Double?
    switch v.kind {
    case .number:
        d = parseDouble(b, v.range)
    case .string:
        d = parseDouble(b, v.content)
        if d == nil, isNonFiniteWord(b, v.content) {
            throw Rejection(.nonFinite, field: field, "not a finite number")
        }
    default:
        throw Rejection(.wrongType, field: field, "expected a number")
    }
    guard let d else { throw Rejection(.wrongType, field: field, "expected a number") }
    guard d.isFinite else { throw Rejection(.nonFinite, field: field, "not a finite number") }
    return d
}

/// Reads an optional number: absent and `null` are `nil`.
func readOptionalNumber(_ b: UnsafeRawBufferPointer, _ v: JSONValue?, _ field: String) throws(Rejection) -> Double? {
    guard let v, v.kind != .null else { return nil }
    return try readNumber(b, v, field)
}

func isNonFiniteWord(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
    var lo = r.lowerBound
    if lo < r.upperBound, b[lo] == UInt8(ascii: "-") || b[lo] == UInt8(ascii: "+") { lo += 1 }
    let rest = lo..<r.upperBound
    return Action.matches(b, rest, "NAN") || Action.matches(b, rest, "INF") || Action.matches(b, rest, "INFINITY")
}

/// Reads a proposal time: epoch seconds, or milliseconds when above 1e12.
func readEpoch(_ b: UnsafeRawBufferPointer, _ v: JSONValue, _ field: String) throws(Rejection) -> Double? {
    if v.kind == .null { return nil }
    let d: Double
    do {
        d = try readNumber(b, v, field)
    } catch {
        if error.reason == .nonFinite { throw error }
        throw Rejection(.badTimestamp, field: field, "expected epoch seconds or milliseconds")
    }
    guard d >= 0 else { throw Rejection(.badTimestamp, field: field, "negative time") }
    return d > 1e12 ? d / 1000 : d
}

/// Parses an ISO-8601 UTC time (`2026-11-29T19:47:22Z`, fractions, `+00:00`, or no zone meaning UTC).
public func parseISO8601(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Double? {
    var i = r.lowerBound
    let end = r.upperBound
    func digits(_ n: Int) -> Int? {
        guard i + n <= end else { return nil }
        var v = 0
        for k in 0..<n {
            let c = b[i + k]
            guard isDigit(c) else { return nil }
            v = v * 10 + Int(c - UInt8(ascii: "0"))
        }
        i += n
        return v
    }
    func expect(_ c: UInt8) -> Bool {
        guard i < end, b[i] == c else { return false }
        i += 1
        return true
    }
    guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
        let day = digits(2)
    else { return nil }
    guard i < end, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == 0x20 else { return nil }
    i += 1
    guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2) else { return nil }
    var second = 0.0
    if expect(UInt8(ascii: ":")) {
        guard let s = digits(2) else { return nil }
        second = Double(s)
        if i < end, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
            i += 1
            var scale = 0.1
            var any = false
            while i < end, isDigit(b[i]) {
                second += Double(b[i] - UInt8(ascii: "0")) * scale
                scale /= 10
                i += 1
                any = true
            }
            guard any else { return nil }
        }
    }
    var offset = 0
    if i < end {
        let c = b[i]
        if c == UInt8(ascii: "Z") || c == UInt8(ascii: "z") {
            i += 1
        } else if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            i += 1
            guard let oh = digits(2) else { return nil }
            _ = expect(UInt8(ascii: ":"))
            guard let om = digits(2) else { return nil }
            offset = (oh * 3600 + om * 60) * (c == UInt8(ascii: "-") ? -1 : 1)
        }
    }
    guard i == end, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else {
        return nil
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    let days = era * 146_097 + doe - 719_468
    return Double(days * 86400 + hour * 3600 + minute * 60 - offset) + second
}
