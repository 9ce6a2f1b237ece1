/// Writes decisions (SPEC §4) and heartbeats as JSON.
public enum DecisionEncoder {
    /// Writes one decision as a JSON object.
    ///
    /// - Parameters:
    ///   - d: the decision.
    ///   - p: the proposal it answers.
    ///   - source: the proposal's frame, into which `p`'s ranges point.
    ///   - symbol: the proposal's symbol.
    ///   - w: where to write; the object is appended.
    public static func encode(
        _ d: Decision, proposal p: Proposal, source: UnsafeRawBufferPointer, symbol: SymbolKey,
        into w: inout JSONWriter
    ) {
        w.raw("{\"seq\":")
        w.uint(d.seq)
        w.raw(",\"plan_id\":")
        if let r = p.planIdLiteral {
            stringLiteral(source, r, &w)
        } else {
            writeDerived(p.derivedPlan, &w)
        }
        w.raw(",\"trace_id\":")
        if let r = p.traceIdLiteral {
            stringLiteral(source, r, &w)
        } else {
            writeTraceId(p.planKey, d.seq, &w)
        }
        w.raw(",\"symbol\":\"")
        symbol.withBytes { w.raw($0, 0..<$0.count) }
        w.raw("\",\"original_action\":")
        w.raw(source, p.actionLiteral)
        w.raw(",\"calibrated_action\":")
        action(d.calibrated, p, source, &w)
        w.raw(",\"action\":")
        action(d.effective, p, source, &w)
        w.raw(",\"mode\":")
        d.mode == .shadow ? w.raw("\"shadow\"") : w.raw("\"enforce\"")
        w.raw(",\"downgraded\":")
        w.bool(d.downgraded)
        w.raw(",\"reason\":\"")
        w.raw(d.reason.staticLabel)
        w.raw("\",\"heat_value\":")
        w.double(d.heat)
        w.raw(",\"heat_bucket\":\"")
        w.raw(d.bucket.staticLabel)
        w.raw("\",\"fail_closed\":")
        w.bool(d.failClosed)
        w.raw(",\"fail_open\":")
        w.bool(d.failOpen)
        w.raw(",\"kill_switch\":")
        w.bool(d.killSwitch)
        w.raw(",\"equity_usd\":")
        w.double(d.equity)
        w.raw(",\"equity_age_sec\":")
        d.equityAge.isNaN ? w.raw("null") : w.fixed(d.equityAge, decimals: 3)
        w.raw(",\"positions\":")
        w.int(d.positions)
        w.raw(",\"total_risk_usd\":")
        w.double(d.totalRisk)
        w.raw(",\"ts\":")
        w.fixed(d.ts, decimals: 6)
        w.raw(",\"expires_at\":")
        w.fixed(d.expiresAt, decimals: 6)
        w.raw(",\"proposal\":")
        w.raw(source, p.object)
        w.byte(UInt8(ascii: "}"))
    }

    /// Echoes a string literal as it came, and a number as a string of its text (SPEC §3: `plan_id` and
    /// `trace_id` may be numbers), so readers always compare strings.
    static func stringLiteral(_ source: UnsafeRawBufferPointer, _ r: Range<Int>, _ w: inout JSONWriter) {
        if source[r.lowerBound] == UInt8(ascii: "\"") {
            w.raw(source, r)
        } else {
            w.byte(UInt8(ascii: "\""))
            w.raw(source, r)
            w.byte(UInt8(ascii: "\""))
        }
    }

    static func action(_ a: Action?, _ p: Proposal, _ source: UnsafeRawBufferPointer, _ w: inout JSONWriter) {
        guard let a else {
            w.raw(source, p.actionLiteral)
            return
        }
        w.byte(UInt8(ascii: "\""))
        w.raw(a.staticToken)
        w.byte(UInt8(ascii: "\""))
    }

    static func writeDerived(_ v: UInt64, _ w: inout JSONWriter) {
        w.byte(UInt8(ascii: "\""))
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 19) { buf in
            writeDerivedPlanId(v, into: buf)
            w.raw(UnsafeRawBufferPointer(buf), 0..<19)
        }
        w.byte(UInt8(ascii: "\""))
    }

    /// A generated trace id: 32 hex digits, a pure function of the plan and `seq` so replays are repeatable.
    static func writeTraceId(_ planKey: UInt64, _ seq: UInt64, _ w: inout JSONWriter) {
        w.byte(UInt8(ascii: "\""))
        let halves = (mix64(planKey ^ seq), mix64(seq &* 0x9E37_79B9_7F4A_7C15 ^ planKey))
        for k in 0..<32 {
            let v = k < 16 ? halves.0 : halves.1
            w.byte(hexDigit(UInt8((v >> UInt64(60 - 4 * (k & 15))) & 0xF)))
        }
        w.byte(UInt8(ascii: "\""))
    }

    /// The derived `plan_id` text of a proposal that carried none.
    public static func derivedPlanId(_ v: UInt64) -> String {
        var w = JSONWriter(capacity: 24)
        writeDerived(v, &w)
        return String(decoding: w.bytes.dropFirst().dropLast(), as: UTF8.self)
    }
}

/// The gate's state as the `heartbeat` topic tells it (SPEC §4).
public struct Heartbeat: Equatable, Sendable {
    public var lastSeq: UInt64 = 0
    public var mode: Mode = .shadow
    public var killSwitch = false
    public var heat = Double.nan
    public var bucket: Bucket = .unknown
    public var equityAge = Double.nan
    public var positions = 0
    public var processed: UInt64 = 0
    public var downgraded: UInt64 = 0
    public var rejected: UInt64 = 0
    public var uptime = 0.0
    public var ts = 0.0
    /// Why the rollback guard switched the gate to shadow, while it stands (`null` otherwise).
    public var guardTripped: GuardReason?

    public init() {}

    /// Writes the heartbeat as one JSON object.
    public func encode(into w: inout JSONWriter) {
        w.raw("{\"last_seq\":")
        w.uint(lastSeq)
        w.raw(",\"mode\":")
        mode == .shadow ? w.raw("\"shadow\"") : w.raw("\"enforce\"")
        w.raw(",\"kill_switch\":")
        w.bool(killSwitch)
        w.raw(",\"heat_value\":")
        w.double(heat)
        w.raw(",\"heat_bucket\":\"")
        w.raw(bucket.staticLabel)
        w.raw("\",\"equity_age_sec\":")
        equityAge.isNaN ? w.raw("null") : w.fixed(equityAge, decimals: 3)
        w.raw(",\"positions\":")
        w.int(positions)
        w.raw(",\"processed\":")
        w.uint(processed)
        w.raw(",\"downgraded\":")
        w.uint(downgraded)
        w.raw(",\"rejected\":")
        w.uint(rejected)
        w.raw(",\"uptime_sec\":")
        w.fixed(uptime, decimals: 3)
        w.raw(",\"guard_tripped\":")
        if let g = guardTripped { w.string(g.label) } else { w.raw("null") }
        w.raw(",\"ts\":")
        w.fixed(ts, decimals: 6)
        w.byte(UInt8(ascii: "}"))
    }
}

extension Reason {
    var staticLabel: StaticString {
        switch self {
        case .killSwitch: "kill_switch"
        case .proposalStale: "proposal_stale"
        case .unknownAction: "unknown_action"
        case .partialUnchanged: "partial_unchanged"
        case .nonFullCloseUnchanged: "non_full_close_unchanged"
        case .equityMissing: "equity_missing"
        case .equityStale: "equity_stale"
        case .equityInvalid: "equity_invalid"
        case .sigmaMissing: "sigma_missing"
        case .portfolioHeatCold: "portfolio_heat_cold"
        case .portfolioHeatWarm: "portfolio_heat_warm"
        case .portfolioHeatHot: "portfolio_heat_hot"
        }
    }
}

extension Bucket {
    var staticLabel: StaticString {
        switch self {
        case .cold: "COLD"
        case .warm: "WARM"
        case .hot: "HOT"
        case .unknown: "UNKNOWN"
        }
    }
}
