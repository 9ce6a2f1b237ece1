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

    public init(
        reason: GuardReason, ts: Double, lastEnforcedSeq: UInt64, fullCloses: Int, downgraded: Int,
        inputsBadSec: Double, keptPnLUSD: Double
    ) {
        self.reason = reason
        self.ts = ts
        self.lastEnforcedSeq = lastEnforcedSeq
        self.fullCloses = fullCloses
        self.downgraded = downgraded
        self.inputsBadSec = inputsBadSec
        self.keptPnLUSD = keptPnLUSD
    }
}

/// The guard's counters: a sliding window of time slots for the downgrade share, the time the inputs
/// turned unusable, and a ring of the window's priced downgrades marked to the latest price.
///
/// It belongs to the engine (one thread, no lock, no I/O); memory is fixed at creation. A struct stored in
/// the engine, so the decision path reaches it without a reference count; ``free()`` at the engine's end.
struct GuardCounters {
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
    /// The current slot's span: a decision inside it touches no clock arithmetic.
    var slotStart = Double.infinity
    var slotEnd = -Double.infinity
    /// Full closes and downgrades of the window's closed slots; the current slot's are `curFull`/`curDown`.
    var full = 0
    var down = 0
    /// The current slot's counts, kept out of the slot arrays until the slot ends.
    var curFull: Int32 = 0
    var curDown: Int32 = 0
    /// Downgrades still to come before the share limit could be passed; at 0 the next one is judged in full.
    var untilCheck: Int32 = 0
    /// `untilCheck` when the share can never be passed.
    static let neverCheck: Int32 = 1_000_000_000
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

    func free() {
        slotIndex.deallocate()
        slotFull.deallocate()
        slotDown.deallocate()
        ring.deallocate()
    }

    mutating func reset() {
        for k in 0..<Self.slots {
            slotIndex[k] = .min
            slotFull[k] = 0
            slotDown[k] = 0
        }
        head = .min
        slotStart = .infinity
        slotEnd = -.infinity
        full = 0
        down = 0
        curFull = 0
        curDown = 0
        untilCheck = 0
        badSince = .nan
        armedAt = .nan
        ringStart = 0
        ringCount = 0
        keptPnL = 0
    }

    /// Moves the window to the slot of `now`, dropping the slots that left it.
    @inline(__always)
    mutating func advance(_ slot: Int64) {
        if slot == head { return }
        if head != .min {
            let h = Int(head & Int64(Self.slots - 1))
            slotFull[h] = curFull
            slotDown[h] = curDown
            full += Int(curFull)
            down += Int(curDown)
        }
        curFull = 0
        curDown = 0
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
    mutating func expireKept(before t: Double) {
        while ringCount > 0 && ring[ringStart].ts < t {
            keptPnL -= ring[ringStart].pnl
            ringStart = (ringStart + 1) & (Self.ringSize - 1)
            ringCount -= 1
        }
    }

    mutating func addKept(_ k: Kept) {
        if ringCount == Self.ringSize {
            keptPnL -= ring[ringStart].pnl
            ringStart = (ringStart + 1) & (Self.ringSize - 1)
            ringCount -= 1
        }
        ring[(ringStart + ringCount) & (Self.ringSize - 1)] = k
        ringCount += 1
    }

    /// Marks the kept parts of one symbol to a new price.
    mutating func mark(_ symbolId: Int32, price: Double) {
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
    ///
    /// The common case (the same slot, no kept-loss limit, no share check due) is two comparisons of the
    /// clock and up to three counter updates, with no call and no floating-point arithmetic; everything
    /// else is out of line, given only the few fields it reads so the decision is never copied to memory.
    @inline(__always)
    func guardObserve(_ d: Decision, _ p: Proposal, now: Double) {
        let counted = p.action == .fullClose && d.reason != .killSwitch && d.reason != .proposalStale
        if now < guardCounters.slotEnd && now >= guardCounters.slotStart && !(policy.guardSettings.maxKeptLossUSD > 0) {
            guard counted else { return }
            guardCounters.curFull &+= 1
            guard d.downgraded else { return }
            guardCounters.curDown &+= 1
            guardCounters.untilCheck &-= 1
            if guardCounters.untilCheck <= 0 { _ = guardShareTripped(seq: d.seq, now: now) }
            return
        }
        guardObserveSlow(
            counted: counted, downgradedTo: d.downgraded ? d.calibrated : nil, symbolId: d.symbolId, seq: d.seq,
            now: now)
    }

    /// ``guardObserve(_:_:now:)`` when the slot changes or the kept-loss limit is set.
    @inline(never)
    func guardObserveSlow(counted: Bool, downgradedTo: Action?, symbolId: Int32, seq: UInt64, now: Double) {
        if now >= guardCounters.slotEnd || now < guardCounters.slotStart { guardNewSlot(now) }
        guard counted else { return }
        guardCounters.curFull &+= 1
        if downgradedTo != nil {
            guardCounters.curDown &+= 1
            if guardShareTripped(seq: seq, now: now) { return }
        }
        if policy.guardSettings.maxKeptLossUSD > 0 {
            guardKeptLoss(downgradedTo: downgradedTo, symbolId: symbolId, seq: seq, now: now)
        }
    }

    /// The downgrade-share limit, judged after a downgrade: trips when the window holds at least
    /// `minFullCloses` full closes and more than `maxDowngradeShare` of them were downgraded. When it does
    /// not, counts how many more downgrades must come before it could (`untilCheck`), so the decisions in
    /// between only count.
    @inline(never)
    func guardShareTripped(seq: UInt64, now: Double) -> Bool {
        let s = policy.guardSettings
        let full = guardCounters.full &+ Int(guardCounters.curFull)
        let down = guardCounters.down &+ Int(guardCounters.curDown)
        if full >= s.minFullCloses && Double(down) > s.maxDowngradeShare * Double(full) {
            trip(.downgradeShare, seq: seq, now: now)
            return true
        }
        // k more downgrades (and any number of full closes kept whole, which only lower the share) pass the
        // share once down + k > share·(full + k), that is k > (share·full − down) / (1 − share). Two fewer
        // than that allow for rounding; a share of 1 is never passed.
        let share = s.maxDowngradeShare
        if share >= 1 {
            guardCounters.untilCheck = GuardCounters.neverCheck
        } else {
            let k = (share * Double(full) - Double(down)) / (1 - share)
            guardCounters.untilCheck =
                !(k >= 2) ? 1 : k >= Double(GuardCounters.neverCheck) ? GuardCounters.neverCheck : Int32(k) - 1
        }
        return false
    }

    /// Moves the window to the slot of `now`.
    @inline(never)
    func guardNewSlot(_ now: Double) {
        if guardCounters.armedAt.isNaN { guardCounters.armedAt = now }
        let slot = Int64((now * guardCounters.slotScale).rounded(.down))
        guardCounters.advance(slot)
        guardCounters.slotStart = Double(slot) / guardCounters.slotScale
        guardCounters.slotEnd = Double(slot + 1) / guardCounters.slotScale
        // Slots that left the window may have lowered the share: judge the next downgrade in full.
        guardCounters.untilCheck = 0
    }

    /// The kept-loss limit: records a priced downgrade, drops those older than the window, and trips when
    /// the kept parts lose more than the limit.
    @inline(never)
    func guardKeptLoss(downgradedTo: Action?, symbolId: Int32, seq: UInt64, now: Double) {
        let s = policy.guardSettings
        if let c = downgradedTo {
            let st = states[Int(symbolId)]
            let kept = Double(max(0, 100 - c.exitPercent)) / 100
            if st.price > 0 && st.price.isFinite && st.notional != 0 {
                guardCounters.addKept(
                    GuardCounters.Kept(symbolId: symbolId, entry: st.price, kept: kept * st.notional, ts: now, pnl: 0)
                )
            }
        }
        guardCounters.expireKept(before: now - s.windowSec)
        if guardCounters.keptPnL < -s.maxKeptLossUSD { trip(.keptLoss, seq: seq, now: now) }
    }

    /// Whether the inputs have been unusable for longer than the limit; called before each enforce-mode
    /// decision, with the inputs' problem it found.
    @inline(never)
    func guardInputsTripped(_ problem: Reason?, now: Double) -> Bool {
        if guardCounters.armedAt.isNaN { guardCounters.armedAt = now }
        guard let problem else {
            guardCounters.badSince = .nan
            return false
        }
        if guardCounters.badSince.isNaN {
            // Stale equity went bad when it aged past the limit, not when a proposal first saw it.
            let since = problem == .equityStale ? min(now, equityTs + policy.stateMaxAgeSec) : now
            guardCounters.badSince = max(since, guardCounters.armedAt)
        }
        return now - guardCounters.badSince > policy.guardSettings.maxInputsBadSec
    }

    /// Carries a trip over to an engine rebuilt from the store.
    public func restoreGuardTrip(_ t: GuardTrip?) { guardTrip = t }

    @inline(never)
    func trip(_ reason: GuardReason, seq: UInt64, now: Double) {
        let t = GuardTrip(
            reason: reason, ts: now, lastEnforcedSeq: seq, fullCloses: guardCounters.full + Int(guardCounters.curFull),
            downgraded: guardCounters.down + Int(guardCounters.curDown),
            inputsBadSec: guardCounters.badSince.isNaN ? 0 : now - guardCounters.badSince,
            keptPnLUSD: guardCounters.keptPnL)
        policy.mode = .shadow
        guardTrip = t
    }
}
