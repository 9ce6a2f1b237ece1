import HeatGateCore
import HeatGateStore

/// What the Apply Layer must execute for a proposal (SPEC §5, the fail-open rule).
public enum Resolution: Equatable, Sendable {
    /// Use this decision's `action`.
    case useDecision(action: String, decision: String)
    /// Execute the proposal as it stands, and why.
    case useOriginal(reason: OriginalReason)
    /// The kill switch is on: execute nothing.
    case killSwitch(reason: String)

    public enum OriginalReason: String, Sendable {
        /// No decision for the symbol (never decided, swept, or the gate has no store yet).
        case noDecision = "no_decision"
        /// The latest decision's `expires_at` has passed.
        case expired
        /// The latest decision is for another `plan_id`: a calibration for an older proposal never shadows
        /// a newer one.
        case otherPlan = "other_plan"
    }
}

/// The Apply Layer's read contract, reading the store directly (no daemon needed).
///
/// Open it once and keep it: each lookup is one short read transaction. A gate that is down or slow
/// never blocks an exit: every miss resolves to "execute the original".
public final class DecisionLookup {
    let store: GateStore

    /// Opens the store in `stateDir` read-only.
    /// - Throws: ``StoreError`` when there is no readable store there.
    public init(stateDir: String) throws {
        store = try GateStore(directory: stateDir, readOnly: true)
    }

    /// Resolves a proposal for `symbol` with `planId` to the action to execute.
    ///
    /// - Parameters:
    ///   - symbol: the proposal's symbol.
    ///   - planId: the proposal's `plan_id`; `nil` accepts any plan (for operators' look-ups only: the
    ///     Apply Layer always passes it).
    ///   - now: the clock, epoch seconds.
    /// - Returns: ``Resolution``.
    public func lookup(symbol: String, planId: String?, now: Double) throws -> Resolution {
        let kill = try store.killSwitch()
        if kill.on { return .killSwitch(reason: kill.reason) }
        guard let bytes = try store.latestDecision(symbol: symbol),
            let d = try? bytes.withUnsafeBytes({ try JSON.parse($0) })
        else { return .useOriginal(reason: .noDecision) }
        guard let expires = d["expires_at"]?.number, now < expires else { return .useOriginal(reason: .expired) }
        if let planId, d["plan_id"]?.string != planId { return .useOriginal(reason: .otherPlan) }
        guard let action = d["action"]?.string else { return .useOriginal(reason: .noDecision) }
        return .useDecision(action: action, decision: String(decoding: bytes, as: UTF8.self))
    }
}
