/// An exit action of the Harvest producer (SPEC §2).
public enum Action: UInt8, CaseIterable, Sendable {
    case fullClose = 0
    case partial75
    case partial50
    case partial25
    case updateSL
    case hold
    case none

    /// The canonical token, as emitted when HeatGate changes an action.
    public var token: String { staticToken.description }

    var staticToken: StaticString {
        switch self {
        case .fullClose: "FULL_CLOSE"
        case .partial75: "PARTIAL_75"
        case .partial50: "PARTIAL_50"
        case .partial25: "PARTIAL_25"
        case .updateSL: "UPDATE_SL"
        case .hold: "HOLD"
        case .none: "NONE"
        }
    }

    /// The share of the position this action closes, in percent: the order behind monotonicity.
    public var exitPercent: Int {
        switch self {
        case .fullClose: 100
        case .partial75: 75
        case .partial50: 50
        case .partial25: 25
        case .updateSL, .hold, .none: 0
        }
    }

    /// Whether this is a partial close (the `partial_unchanged` reason rather than `non_full_close_unchanged`).
    public var isPartial: Bool { self == .partial75 || self == .partial50 || self == .partial25 }

    /// Reads a token: case-insensitive, trimmed, a trailing `_PROPOSED` ignored.
    ///
    /// - Returns: `nil` for an unknown action.
    public init?(token: String) {
        var bytes = Array(token.utf8)
        guard
            let a = bytes.withUnsafeMutableBytes({ raw in
                Action(bytes: UnsafeRawBufferPointer(raw), range: 0..<raw.count)
            })
        else { return nil }
        bytes.removeAll()
        self = a
    }

    /// Reads a token from raw bytes without allocating (see ``init(token:)``).
    public init?(bytes b: UnsafeRawBufferPointer, range: Range<Int>) {
        let token = PlanIdentity.trimmedAction(b, range)
        for a in Action.allCases where Self.matches(b, token, a.staticToken) {
            self = a
            return
        }
        return nil
    }

    static func matches(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ s: StaticString) -> Bool {
        guard r.count == s.utf8CodeUnitCount else { return false }
        var k = 0
        for i in r {
            var c = b[i]
            if c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") { c -= 32 }
            if c != s.utf8Start[k] { return false }
            k += 1
        }
        return true
    }
}

@inline(__always)
func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }

/// The heat bucket of SPEC §1.
public enum Bucket: UInt8, CaseIterable, Sendable {
    case cold = 0
    case warm, hot, unknown

    public var label: String { staticLabel.description }
}

/// Why a decision came out as it did (SPEC §2), in the words of the `reason` field.
public enum Reason: UInt8, CaseIterable, Sendable {
    case killSwitch = 0
    case proposalStale
    case unknownAction
    case partialUnchanged
    case nonFullCloseUnchanged
    case equityMissing
    case equityStale
    case equityInvalid
    case sigmaMissing
    case portfolioHeatCold
    case portfolioHeatWarm
    case portfolioHeatHot

    public var label: String { staticLabel.description }

    /// Whether this reason says the heat inputs were not usable.
    public var isInputReason: Bool {
        self == .equityMissing || self == .equityStale || self == .equityInvalid || self == .sigmaMissing
    }
}

/// Whether the daemon changes what the Apply Layer executes.
public enum Mode: UInt8, Sendable {
    case shadow = 0
    case enforce

    public var label: String { self == .shadow ? "shadow" : "enforce" }
}

/// What happens to a full close when the heat inputs are not usable.
public enum FailMode: UInt8, Sendable {
    case closed = 0
    case open

    public var label: String { self == .closed ? "closed" : "open" }
}
