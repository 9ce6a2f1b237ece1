/// The identity of a proposal (SPEC §2, §3): the `plan_id` the gate derives for a proposal that carries
/// none, and the repeat key that makes a re-sent proposal get the same decision.
///
/// Both are specified byte for byte in `docs/apply-layer.md` ("Deriving the plan id"), because the Apply
/// Layer must compute the same derived id to find its decision; `clients/python` implements the same
/// text, and a test feeds the three the same proposals. Everything here is FNV-1a 64 over a byte string,
/// finished with SplitMix64's ``mix64(_:)``:
///
/// - derived id, timed proposal: `hg-` + 16 lowercase hex digits of
///   `mix64(fnv(S ‖ US ‖ A ‖ US ‖ T))`, where `S` is the symbol, `A` the normalised action token,
///   `T` the proposal time in whole milliseconds as ASCII decimal, and `US` the byte 0x1F;
/// - derived id, proposal without a time: the same with `T` = `*` followed, for every other member in
///   key order, by `US ‖ key ‖ RS ‖ value` (`RS` = 0x1E);
/// - repeat key: `mix64(fnv(S ‖ US ‖ A ‖ US ‖ P))`, `P` the plan id's text (given or derived).
public enum PlanIdentity {
    /// FNV-1a 64's offset basis.
    public static let fnvOffset: UInt64 = 0xCBF2_9CE4_8422_2325
    static let unitSeparator: UInt8 = 0x1F
    static let recordSeparator: UInt8 = 0x1E

    @inline(__always)
    static func fnv(_ h: UInt64, _ c: UInt8) -> UInt64 { (h ^ UInt64(c)) &* 0x0000_0100_0000_01B3 }

    @inline(__always)
    static func fnv(_ h: UInt64, _ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64 {
        var h = h
        for i in r { h = fnv(h, b[i]) }
        return h
    }

    /// Feeds the normalised action token: blanks trimmed, ASCII letters upper-cased, one trailing
    /// `_PROPOSED` removed (as ``Action/init(bytes:range:)`` reads it, so a known action feeds its
    /// canonical token and `FULL_CLOSE_PROPOSED`, `full_close` and `FULL_CLOSE` are one action).
    @inline(__always)
    static func feedAction(_ h: UInt64, _ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64 {
        var h = h
        for i in trimmedAction(b, r) { h = fnv(h, upper(b[i])) }
        return h
    }

    /// The part of an action token that counts: blanks trimmed, one trailing `_PROPOSED` (any case) cut.
    @inline(__always)
    static func trimmedAction(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int> {
        var lo = r.lowerBound
        var hi = r.upperBound
        while lo < hi, isBlank(b[lo]) { lo += 1 }
        while hi > lo, isBlank(b[hi - 1]) { hi -= 1 }
        let suffix: StaticString = "_PROPOSED"
        let sn = suffix.utf8CodeUnitCount
        if hi - lo > sn, Action.matches(b, (hi - sn)..<hi, suffix) { hi -= sn }
        return lo..<hi
    }

    @inline(__always)
    static func upper(_ c: UInt8) -> UInt8 { c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") ? c - 32 : c }

    /// Feeds a whole number as ASCII decimal (`-` first when negative).
    static func feedDecimal(_ h: UInt64, _ v: Int64) -> UInt64 {
        var h = h
        var magnitude = v.magnitude
        if v < 0 { h = fnv(h, UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { buf in
            repeat {
                buf[n] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                n += 1
            } while magnitude > 0
            while n > 0 {
                n -= 1
                h = fnv(h, buf[n])
            }
        }
        return h
    }

    /// The proposal time in whole milliseconds, rounded half away from zero: the `T` of a derived id.
    @inline(__always)
    public static func milliseconds(_ time: Double) -> Int64 {
        let ms = (time * 1000).rounded()
        // Times come from readEpoch (>= 0, finite); clamp anyway so no input can trap the conversion.
        return ms >= 9.2e18 ? Int64.max : Int64(ms)
    }

    /// The 64-bit value behind a timed proposal's derived id.
    static func derivedValue(
        symbol: SymbolKey, action b: UnsafeRawBufferPointer, _ actionRange: Range<Int>, time: Double
    ) -> UInt64 {
        var h = symbol.withBytes { fnv(fnvOffset, $0, 0..<$0.count) }
        h = fnv(h, unitSeparator)
        h = feedAction(h, b, actionRange)
        h = fnv(h, unitSeparator)
        h = feedDecimal(h, milliseconds(time))
        return mix64(h)
    }

    /// The members a derived id of an untimed proposal leaves out: the message's envelope and what
    /// `S` and `A` already carry.
    static func excludedFromContent(_ key: [UInt8]) -> Bool {
        switch String(decoding: key, as: UTF8.self) {
        case "type", "at", "plan_id", "trace_id", "symbol", "harvest_action", "action": true
        default: false
        }
    }

    /// The 64-bit value behind the derived id of a proposal without a time: symbol, action and every
    /// other present member, in key order. A second pass over the object, paid only by such proposals.
    static func untimedValue(
        symbol: SymbolKey, object b: UnsafeRawBufferPointer, action ab: UnsafeRawBufferPointer,
        _ actionRange: Range<Int>
    ) -> UInt64 {
        var members: [(key: [UInt8], value: [UInt8])] = []
        if var it = try? JSONObjectIterator(b) {
            while let m = try? it.next() {
                guard !isAbsent(b, m.value) else { continue }
                let key: [UInt8]
                if m.keyHasEscapes {
                    guard let k = unescapeJSONString(b, m.key, replacingLoneSurrogates: true) else { continue }
                    key = k
                } else {
                    key = Array(b[m.key])
                }
                if excludedFromContent(key) { continue }
                let value: [UInt8]
                if m.value.kind == .string {
                    value =
                        m.value.hasEscapes
                        ? unescapeJSONString(b, m.value.content, replacingLoneSurrogates: true) ?? []
                        : Array(b[m.value.content])
                } else {
                    value = Array(b[m.value.range])
                }
                members.append((key, value))
            }
        }
        // Stable: of two members with one key, the earlier stays first.
        let ordered = members.enumerated().sorted { x, y in
            x.element.key.lexicographicallyPrecedes(y.element.key)
                || (x.element.key == y.element.key && x.offset < y.offset)
        }
        var h = symbol.withBytes { fnv(fnvOffset, $0, 0..<$0.count) }
        h = fnv(h, unitSeparator)
        h = feedAction(h, ab, actionRange)
        h = fnv(h, unitSeparator)
        h = fnv(h, UInt8(ascii: "*"))
        for (_, m) in ordered {
            h = fnv(h, unitSeparator)
            m.key.withUnsafeBytes { h = fnv(h, $0, 0..<$0.count) }
            h = fnv(h, recordSeparator)
            m.value.withUnsafeBytes { h = fnv(h, $0, 0..<$0.count) }
        }
        return mix64(h)
    }

    /// The repeat key of a proposal: symbol, normalised action and plan id text (SPEC §2).
    @inline(__always)
    static func repeatKey(
        symbol: SymbolKey, action b: UnsafeRawBufferPointer, _ actionRange: Range<Int>,
        plan p: UnsafeRawBufferPointer, _ planRange: Range<Int>
    ) -> UInt64 {
        var h = symbol.withBytes { fnv(fnvOffset, $0, 0..<$0.count) }
        h = fnv(h, unitSeparator)
        h = feedAction(h, b, actionRange)
        h = fnv(h, unitSeparator)
        h = fnv(h, p, planRange)
        return mix64(h)
    }

    /// The repeat key from texts, as a stored decision holds them (`symbol`, `original_action`,
    /// `plan_id`): what the daemon rebuilds its repeat window from after a restart.
    public static func repeatKey(symbol: SymbolKey, action: [UInt8], planId: [UInt8]) -> UInt64 {
        action.withUnsafeBytes { a in
            planId.withUnsafeBytes { p in repeatKey(symbol: symbol, action: a, 0..<a.count, plan: p, 0..<p.count) }
        }
    }

    /// What the Apply Layer looks a proposal's decision up with, read from the proposal as the gate reads it.
    public struct Key: Equatable, Sendable {
        public var symbol: String
        /// The proposal's own `plan_id` when present (SPEC §3: not `null`, `""` or `"None"`), else the
        /// derived one.
        public var planId: String
        /// The action token as received (`harvest_action`, else `action`).
        public var action: String
    }

    /// The symbol, plan id and action the gate uses for a proposal.
    ///
    /// - Parameter proposal: the proposal as one JSON object (the message the producer sent; `type` may
    ///   be absent).
    /// - Throws: ``Rejection`` when the gate would refuse the proposal.
    public static func key(ofProposal proposal: [UInt8]) throws(Rejection) -> Key {
        try proposal.withUnsafeBytes { b in Result { () throws(Rejection) in try key(b) } }.get()
    }

    static func key(_ b: UnsafeRawBufferPointer) throws(Rejection) -> Key {
        var fields = Fields()
        do {
            var it = try JSONObjectIterator(b)
            while let m = try it.next() { fields.record(b, m) }
        } catch {
            throw Rejection(.notJSON, "the proposal is not a JSON object")
        }
        let id = try ProposalIdentity(b, fields)
        let planId: String
        if let r = id.planText {
            planId = String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
        } else if let raw = id.planEscaped {
            planId = String(decoding: raw, as: UTF8.self)
        } else {
            planId = DecisionEncoder.derivedPlanId(id.derived)
        }
        let v = id.actionValue
        let action =
            v.hasEscapes
            ? String(decoding: unescapeJSONString(b, v.content) ?? [], as: UTF8.self)
            : String(decoding: UnsafeRawBufferPointer(rebasing: b[v.content]), as: UTF8.self)
        return Key(symbol: id.symbol.description, planId: planId, action: action)
    }

    /// Whether two action tokens are one action once normalised (SPEC §2): what the read contract
    /// compares a decision's `original_action` with the proposal's action by.
    public static func sameAction(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in
                normalised(x, 0..<x.count).elementsEqual(normalised(y, 0..<y.count))
            }
        }
    }

    /// The normalised token of ``feedAction(_:_:_:)`` as bytes.
    static func normalised(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> [UInt8] {
        b[trimmedAction(b, r)].map(upper)
    }
}

/// Whether an optional field's value counts as absent (SPEC §3): `null`, `""` or `"None"`, as producers
/// that wrote Redis hashes send for "no value".
@inline(__always)
func isAbsent(_ b: UnsafeRawBufferPointer, _ v: JSONValue) -> Bool {
    switch v.kind {
    case .null: return true
    case .string:
        let n = v.content.count
        return n == 0 || (n == 4 && b.equals(v.content, "None"))
    default: return false
    }
}

/// What identifies a proposal, read from its fields: shared by the engine and ``PlanIdentity/planId(ofProposal:)``
/// so the Apply Layer's derivation is the gate's own code.
struct ProposalIdentity {
    var symbol: SymbolKey
    var actionValue: JSONValue
    var action: Action?
    var time: Double?
    /// The `plan_id` literal (quotes included for a string) when present.
    var planLiteral: Range<Int>?
    /// The plan id's text when present and unescaped.
    var planText: Range<Int>?
    /// The plan id's unescaped bytes when it had escapes.
    var planEscaped: [UInt8]?
    /// The derived id's value when no `plan_id` was present.
    var derived: UInt64 = 0
    var repeatKey: UInt64 = 0

    init(_ b: UnsafeRawBufferPointer, _ f: Fields) throws(Rejection) {
        symbol = try readSymbol(b, f.symbol)
        guard let actionValue = f.harvestAction ?? f.action else {
            throw Rejection(.missingField, field: "harvest_action")
        }
        guard actionValue.kind == .string else {
            throw Rejection(
                .wrongType, field: f.harvestAction != nil ? "harvest_action" : "action", "expected a string")
        }
        var unescapedAction: [UInt8]?
        if actionValue.hasEscapes {
            guard let raw = unescapeJSONString(b, actionValue.content) else {
                throw Rejection(.notJSON, field: "harvest_action", "bad escape")
            }
            unescapedAction = raw
        }
        self.actionValue = actionValue
        // Proposal time: the first present of these; never `ts`, which the producer uses for trend strength.
        if let v = f.tsEpoch {
            time = try readEpoch(b, v, "ts_epoch")
        } else if let v = f.timestamp {
            time = try readEpoch(b, v, "timestamp")
        } else if let v = f.lastUpdateEpoch {
            time = try readEpoch(b, v, "last_update_epoch")
        } else if let v = f.computedAtUTC {
            guard v.kind == .string, !v.hasEscapes, let t = parseISO8601(b, v.content) else {
                throw Rejection(.badTimestamp, field: "computed_at_utc", "expected ISO-8601 UTC")
            }
            time = t
        }
        if let v = f.planId {
            guard v.kind == .string || v.kind == .number else {
                throw Rejection(.wrongType, field: "plan_id", "expected a string")
            }
            if v.hasEscapes {
                guard let raw = unescapeJSONString(b, v.content) else {
                    throw Rejection(.notJSON, field: "plan_id", "bad escape")
                }
                guard raw.count <= 128 else { throw Rejection(.planIdTooLong, field: "plan_id", "over 128 bytes") }
                planEscaped = raw
            } else {
                guard v.content.count <= 128 else {
                    throw Rejection(.planIdTooLong, field: "plan_id", "over 128 bytes")
                }
                planText = v.content
            }
            planLiteral = v.range
        }
        let symbol = self.symbol
        let time = self.time
        let planText = self.planText
        let planEscaped = self.planEscaped
        func identify(_ ab: UnsafeRawBufferPointer, _ ar: Range<Int>) -> (Action?, UInt64, UInt64) {
            let action = Action(bytes: ab, range: ar)
            if let planText {
                return (action, 0, PlanIdentity.repeatKey(symbol: symbol, action: ab, ar, plan: b, planText))
            }
            if let planEscaped {
                let key = planEscaped.withUnsafeBytes {
                    PlanIdentity.repeatKey(symbol: symbol, action: ab, ar, plan: $0, 0..<$0.count)
                }
                return (action, 0, key)
            }
            let derived =
                time.map { PlanIdentity.derivedValue(symbol: symbol, action: ab, ar, time: $0) }
                ?? PlanIdentity.untimedValue(symbol: symbol, object: b, action: ab, ar)
            let key = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 19) { buf in
                writeDerivedPlanId(derived, into: buf)
                return PlanIdentity.repeatKey(
                    symbol: symbol, action: ab, ar, plan: UnsafeRawBufferPointer(buf), 0..<19)
            }
            return (action, derived, key)
        }
        if let unescapedAction {
            (action, derived, repeatKey) = unescapedAction.withUnsafeBytes { identify($0, 0..<$0.count) }
        } else {
            (action, derived, repeatKey) = identify(b, actionValue.content)
        }
    }
}
