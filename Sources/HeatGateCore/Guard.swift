#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why the rollback guard switched the gate to shadow (`p26_guard_tripped{reason}`).
public enum GuardReason: UInt8, CaseIterable, Sendable {
    /// More than `P26_GUARD_MAX_DOWNGRADE_SHARE` of the full closes in the window were downgraded.
    case downgradeShare = 0
    /// The heat inputs stayed unusable (missing, stale, invalid) for longer than `P26_GUARD_MAX_INPUTS_BAD_SEC`.
    case inputsUnusable
    /// The kept parts of the window's priced downgrades lost more than `P26_GUARD_MAX_KEPT_LOSS_USD`.
    case keptLoss

    public var label: String {
        switch self {
        case .downgradeShare: "downgrade_share"
        case .inputsUnusable: "inputs_unusable"
        case .keptLoss: "kept_loss"
        }
    }
}

/// The rollback guard's settings (the `P26_GUARD_*` keys).
public struct GuardSettings: Equatable, Sendable {
    public var enabled = false
    /// The sliding window, seconds.
    public var windowSec = 900.0
    /// The largest share of full closes downgraded within the window before the guard trips.
    public var maxDowngradeShare = 0.8
    /// The share is judged only once the window holds this many full closes.
    public var minFullCloses = 20
    /// How long the heat inputs may stay unusable, in enforce mode, before the guard trips.
    public var maxInputsBadSec = 300.0
    /// The largest loss of the kept parts of the window's priced downgrades, USD; 0 leaves it unchecked.
    public var maxKeptLossUSD = 0.0

    public init() {}
}

/// One trip: why, when, and the figures that decided it.
public struct GuardTrip: Equatable, Sendable {
    public var reason: GuardReason
    /// The gate's clock at the trip.
    public var ts: Double
    /// The last decision made in enforce mode.
    public var lastEnforcedSeq: UInt64
    /// Full closes and downgrades in the window at the trip.
    public var fullCloses: Int
    public var downgraded: Int
    /// How long the inputs had been unusable (0 when they were usable).
    public var inputsBadSec: Double
    /// The kept parts' P&L over the window, USD.
    public var keptPnLUSD: Double
}

/// The guard's counters: a sliding window of time slots for the downgrade share, the time the inputs
/// turned unusable, and a ring of the window's priced downgrades marked to the latest price.
///
/// It belongs to the engine (one thread, no lock, no I/O); memory is fixed at creation.
final class GuardCounters {
    static let slots = 64
    static let ringSize = 256

    struct Kept {
        var symbolId: Int32
        var entry: Double
        /// Kept fraction × notional (signed by side), USD.
        var kept: Double
        var ts: Double
        var pnl: Double
    }

    let slotIndex: UnsafeMutablePointer<Int64>
    let slotFull: UnsafeMutablePointer<Int32>
    let slotDown: UnsafeMutablePointer<Int32>
    /// Slots per second: 64 ÷ the window, kept so the decision path multiplies rather than divides.
    var slotScale = Double(GuardCounters.slots) / 900
    var head: Int64 = .min
    var full = 0
    var down = 0
    /// When the inputs turned unusable, or `nan` while they are usable.
    var badSince = Double.nan
    /// When the guard began to watch (the first enforce decision since a reset).
    var armedAt = Double.nan
    let ring: UnsafeMutablePointer<Kept>
    var ringStart = 0
    var ringCount = 0
    var keptPnL = 0.0

    init() {
        slotIndex = .allocate(capacity: Self.slots)
        slotFull = .allocate(capacity: Self.slots)
        slotDown = .allocate(capacity: Self.slots)
        ring = .allocate(capacity: Self.ringSize)
        reset()
    }

    deinit {
        slotIndex.deallocate()
        slotFull.deallocate()
        slotDown.deallocate()
        ring.deallocate()
    }

    func reset() {
        for k in 0..<Self.slots {
            slotIndex[k] = .min
            slotFull[k] = 0
            slotDown[k] = 0
        }
        head = .min
        full = 0
        down = 0
        badSince = .nan
        armedAt = .nan
        ringStart = 0
        ringCount = 0
        keptPnL = 0
    }

    /// Moves the window to the slot of `now`, dropping the slots that left it.
    @inline(__always)
    func advance(_ slot: Int64) {
        if slot == head { return }
        if head == .min || slot - head >= Int64(Self.slots) || slot < head {
            if full != 0 || down != 0 || head == .min {
                for k in 0..<Self.slots {
                    slotIndex[k] = .min
                    slotFull[k] = 0
                    slotDown[k] = 0
                }
            }
            full = 0
            down = 0
        } else {
            var s = head + 1
            while s <= slot {
                let k = Int(s & Int64(Self.slots - 1))
                full -= Int(slotFull[k])
                down -= Int(slotDown[k])
                slotFull[k] = 0
                slotDown[k] = 0
                slotIndex[k] = s
                s += 1
            }
        }
        let k = Int(slot & Int64(Self.slots - 1))
        slotIndex[k] = slot
        head = slot
    }

    /// Drops the priced downgrades older than the window.
    @inline(__always)
    func expireKept(before t: Double) {
        while ringCount > 0 && ring[ringStart].ts < t {
            keptPnL -= ring[ringStart].pnl
            ringStart = (ringStart + 1) & (Self.ringSize - 1)
            ringCount -= 1
        }
    }

    func addKept(_ k: Kept) {
        if ringCount == Self.ringSize {
            keptPnL -= ring[ringStart].pnl
            ringStart = (ringStart + 1) & (Self.ringSize - 1)
            ringCount -= 1
        }
        ring[(ringStart + ringCount) & (Self.ringSize - 1)] = k
        ringCount += 1
    }

    /// Marks the kept parts of one symbol to a new price.
    func mark(_ symbolId: Int32, price: Double) {
        for n in 0..<ringCount {
            let i = (ringStart + n) & (Self.ringSize - 1)
            guard ring[i].symbolId == symbolId else { continue }
            let pnl = ring[i].kept * (price / ring[i].entry - 1)
            keptPnL += pnl - ring[i].pnl
            ring[i].pnl = pnl
        }
    }
}

extension Engine {
    /// Watches one enforce-mode decision; trips the guard when a limit is passed. After a trip the policy
    /// is shadow from the next proposal on.
    @inline(__always)
    func guardObserve(_ d: Decision, _ p: Proposal, now: Double) {
        let s = policy.guardSettings
        let g = guardCounters
        if g.armedAt.isNaN { g.armedAt = now }
        g.advance(Int64((now * g.slotScale).rounded(.down)))
        if p.action == .fullClose && d.reason != .killSwitch && d.reason != .proposalStale {
            let k = Int(g.head & Int64(GuardCounters.slots - 1))
            g.slotFull[k] += 1
            g.full += 1
            if d.downgraded {
                g.slotDown[k] += 1
                g.down += 1
                if s.maxKeptLossUSD > 0, let c = d.calibrated {
                    let st = states[Int(d.symbolId)]
                    let kept = Double(max(0, 100 - c.exitPercent)) / 100
                    if st.price > 0 && st.price.isFinite && st.notional != 0 {
                        g.addKept(
                            GuardCounters.Kept(
                                symbolId: d.symbolId, entry: st.price, kept: kept * st.notional, ts: now, pnl: 0))
                    }
                }
            }
        }
        if s.maxKeptLossUSD > 0 { g.expireKept(before: now - s.windowSec) }
        var reason: GuardReason?
        if g.full >= s.minFullCloses && Double(g.down) > s.maxDowngradeShare * Double(g.full) {
            reason = .downgradeShare
        } else if s.maxKeptLossUSD > 0 && g.keptPnL < -s.maxKeptLossUSD {
            reason = .keptLoss
        }
        if let reason { trip(reason, seq: d.seq, now: now) }
    }

    /// Whether the inputs have been unusable for longer than the limit; called before each enforce-mode
    /// decision, with the inputs' problem it found.
    @inline(__always)
    func guardInputsTripped(_ problem: Reason?, now: Double) -> Bool {
        let g = guardCounters
        if g.armedAt.isNaN { g.armedAt = now }
        guard let problem else {
            g.badSince = .nan
            return false
        }
        if g.badSince.isNaN {
            // Stale equity went bad when it aged past the limit, not when a proposal first saw it.
            let since = problem == .equityStale ? min(now, equityTs + policy.stateMaxAgeSec) : now
            g.badSince = max(since, g.armedAt)
        }
        return now - g.badSince > policy.guardSettings.maxInputsBadSec
    }

    /// Carries a trip over to an engine rebuilt from the store.
    public func restoreGuardTrip(_ t: GuardTrip?) { guardTrip = t }

    func trip(_ reason: GuardReason, seq: UInt64, now: Double) {
        let g = guardCounters
        let t = GuardTrip(
            reason: reason, ts: now, lastEnforcedSeq: seq, fullCloses: g.full, downgraded: g.down,
            inputsBadSec: g.badSince.isNaN ? 0 : now - g.badSince, keptPnLUSD: g.keptPnL)
        policy.mode = .shadow
        guardTrip = t
    }
}
