#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The calibration rules' settings, the part of ``GateConfig`` the engine reads on every proposal.
public struct Policy: Equatable, Sendable {
    public var mode: Mode
    public var heatMin: Double
    public var heatMax: Double
    public var coldAction: Action
    public var warmAction: Action
    public var hotAction: Action
    public var failMode: FailMode
    public var stateMaxAgeSec: Double
    public var proposalMaxAgeSec: Double
    public var calibratedTTLSec: Double
    /// The rollback guard (`P26_GUARD_*`).
    public var guardSettings: GuardSettings

    public init(_ c: GateConfig = GateConfig()) {
        mode = c.mode
        heatMin = c.heatMin
        heatMax = c.heatMax
        coldAction = c.coldAction
        warmAction = c.warmAction
        hotAction = c.hotAction
        failMode = c.failMode
        stateMaxAgeSec = c.stateMaxAgeSec
        proposalMaxAgeSec = c.proposalMaxAgeSec
        calibratedTTLSec = c.calibratedTTLSec
        guardSettings = c.guardSettings
    }

    /// The bucket of a heat value (SPEC §1): `heat < HEAT_MIN` COLD, `< HEAT_MAX` WARM, else HOT.
    public func bucket(_ heat: Double) -> Bucket {
        heat < heatMin ? .cold : heat < heatMax ? .warm : .hot
    }
}

/// One decision (SPEC §4), as values; ``DecisionEncoder`` writes it as JSON.
public struct Decision: Sendable {
    public var seq: UInt64 = 0
    public var symbolId: Int32 = 0
    /// The action the original token reads as; `nil` when unknown.
    public var original: Action?
    /// The calibrated action; `nil` means unchanged (the original token exactly as received).
    public var calibrated: Action?
    /// The effective action; `nil` means the original token.
    public var effective: Action?
    public var mode: Mode = .shadow
    public var downgraded = false
    public var reason: Reason = .unknownAction
    /// `nan` when the inputs were not usable (`null` in JSON).
    public var heat = Double.nan
    public var bucket: Bucket = .unknown
    /// Why the heat inputs were not usable, whatever the rule that decided (`nil` when they were).
    public var inputProblem: Reason?
    public var failClosed = false
    public var failOpen = false
    public var killSwitch = false
    /// `nan` when no equity is known.
    public var equity = Double.nan
    /// `nan` when no equity is known.
    public var equityAge = Double.nan
    public var positions = 0
    public var totalRisk = 0.0
    public var ts = 0.0
    public var expiresAt = 0.0
    public var planKey: UInt64 = 0

    public init() {}

    /// Whether the repeat window keeps this decision (SPEC §2): never a hold for the kill switch or for
    /// staleness, so the proposal is decided anew once the switch is off or a fresh copy arrives. Such
    /// holds are not the symbol's latest decision either (``Gate``).
    public var isRemembered: Bool { reason != .killSwitch && reason != .proposalStale }
}

/// What one message did to the engine.
public enum Outcome: Sendable {
    /// A proposal decided now.
    case decision(Decision, Proposal)
    /// A proposal whose `plan_id` was decided within the TTL: the earlier decision `seq` stands.
    case duplicate(seq: UInt64, Proposal)
    /// A state message applied; ``Engine/dirtySymbols`` lists what changed.
    case state(StateChange)
    /// A message refused; the engine is unchanged.
    case rejected(Rejection)
}

/// The kind of state a message changed.
public enum StateChange: Sendable, Equatable {
    case position, book, portfolio, market
}

/// One symbol's part of the book, for persistence and restore.
public struct SymbolSnapshot: Equatable, Sendable {
    public var symbol: SymbolKey
    public var notional: Double
    public var sigma: Double?
    public var price: Double?
    /// When the symbol last changed, epoch seconds.
    public var ts: Double

    public init(symbol: SymbolKey, notional: Double, sigma: Double?, price: Double?, ts: Double) {
        self.symbol = symbol
        self.notional = notional
        self.sigma = sigma
        self.price = price
        self.ts = ts
    }
}

struct SymbolState {
    var notional = 0.0
    var sigma = Double.nan
    var price = Double.nan
    var riskNano: Int128 = 0
    var ts = 0.0
    var mark: UInt32 = 0
    /// The gate's clock at the symbol's last message or decision: when it may be reclaimed.
    var lastActive = 0.0
}

/// The calibration engine of SPEC §1–§3: a synchronous, deterministic state machine.
///
/// Message bytes and a clock in, a decision or a state change out. No I/O, no clock of its own, no locks:
/// it belongs to one thread (the daemon's loop, or `heatgate replay`). The heat sum is kept incrementally
/// in integer nano-dollars, so adding and removing a position is exact and the sum never drifts.
public final class Engine {
    /// The largest frame accepted (SPEC §3).
    public static let maxFrameBytes = 64 * 1024
    /// The most distinct symbols the book holds; more are refused so hostile input cannot grow memory.
    public static let defaultMaxSymbols = 100_000
    /// How far in the future a proposal or equity time may lie before it counts as stale.
    public static let futureToleranceSec = 5.0
    /// The largest |notional| and sigma accepted: keeps the integer heat sum far from overflow.
    static let maxNotional = 1e15
    static let maxSigma = 1e3

    public var policy: Policy {
        didSet {
            // The guard watches one stretch of enforce mode with one set of limits: a change of mode or of
            // limits starts it afresh, and `mode enforce` (an operator) clears a trip.
            if policy.mode != oldValue.mode || policy.guardSettings != oldValue.guardSettings {
                guardCounters.reset()
                guardCounters.slotScale = Double(GuardCounters.slots) / policy.guardSettings.windowSec
                if policy.mode == .enforce && oldValue.mode != .enforce { guardTrip = nil }
            }
            guardActive = policy.guardSettings.enabled && policy.mode == .enforce
        }
    }
    /// The rollback guard's counters.
    var guardCounters = GuardCounters()
    /// The guard is on and the mode is enforce: the one test the decision path makes when it is not.
    var guardActive = false
    /// The guard's trip, if it switched the gate to shadow; cleared when the mode is set to enforce again.
    public internal(set) var guardTrip: GuardTrip?
    /// The kill switch: every proposal is held while it is on.
    public var killSwitch = false
    /// The `seq` the next decision gets.
    public var nextSeq: UInt64 = 1
    public let maxSymbols: Int

    var symbols = SymbolTable()
    var states: [SymbolState] = []
    var totalRiskNano: Int128 = 0
    /// Σ |notional|·sigma over open positions with a sigma, in USD.
    public private(set) var totalRiskUSD = 0.0
    /// Open positions (notional ≠ 0).
    public private(set) var openPositions = 0
    /// Open positions with no sigma known: any makes the inputs unusable.
    public private(set) var openWithoutSigma = 0
    /// The latest equity, if any.
    public private(set) var equity: Double?
    /// When the latest equity was valid, epoch seconds.
    public private(set) var equityTs = 0.0
    /// The repeat window of SPEC §2: symbol + plan id + action → the `seq` decided, for the TTL.
    public let repeats: RepeatWindow
    /// Symbols changed by the last state message, for the store to persist.
    public private(set) var dirtySymbols: [Int32] = []
    var generation: UInt32 = 0
    var scratch: [(SymbolKey, Double, Double?)] = []

    /// - Parameters:
    ///   - repeatCapacity: entries of the repeat window; ``RepeatWindow/capacity(ttl:peakRate:)`` sizes it
    ///     from the configuration.
    public init(
        policy: Policy = Policy(), maxSymbols: Int = Engine.defaultMaxSymbols,
        repeatCapacity: Int = RepeatWindow.capacity(ttl: 300, peakRate: 500)
    ) {
        self.policy = policy
        guardCounters.slotScale = Double(GuardCounters.slots) / policy.guardSettings.windowSec
        guardActive = policy.guardSettings.enabled && policy.mode == .enforce
        self.maxSymbols = maxSymbols
        repeats = RepeatWindow(capacity: repeatCapacity)
        states.reserveCapacity(1024)
        dirtySymbols.reserveCapacity(64)
    }

    deinit { guardCounters.free() }

    // MARK: - Reading the book

    /// The number of symbols known.
    public var symbolCount: Int { symbols.count }

    /// The symbol of an id.
    public func symbol(_ id: Int32) -> SymbolKey { symbols.keys[Int(id)] }

    /// The id of a symbol, if known.
    public func symbolId(_ key: SymbolKey) -> Int32? { symbols.find(key) }

    /// A symbol's state, for persistence.
    public func snapshot(_ id: Int32) -> SymbolSnapshot {
        let s = states[Int(id)]
        return SymbolSnapshot(
            symbol: symbols.keys[Int(id)], notional: s.notional, sigma: s.sigma.isNaN ? nil : s.sigma,
            price: s.price.isNaN ? nil : s.price, ts: s.ts)
    }

    /// Whether the heat inputs are usable now, and the heat when they are.
    public func heatInputs(now: Double) -> (heat: Double, problem: Reason?) {
        guard let equity else { return (.nan, .equityMissing) }
        if equity <= 0 { return (.nan, .equityInvalid) }
        // A state time ahead of the gate's clock is fresh (SPEC §3): the producer's clock is ahead, which
        // p26_clock_skew_seconds shows; failing every full close closed for it would be worse.
        if now - equityTs > policy.stateMaxAgeSec { return (.nan, .equityStale) }
        if openWithoutSigma > 0 { return (.nan, .sigmaMissing) }
        return (totalRiskUSD / max(equity, 1), nil)
    }

    /// The heat now, its bucket and why the inputs are not usable: `nan` and `UNKNOWN` then. What the
    /// heartbeat, `status` and the gauges report.
    public func heatState(now: Double) -> (heat: Double, bucket: Bucket, problem: Reason?) {
        let (heat, problem) = heatInputs(now: now)
        return (heat, problem == nil ? policy.bucket(heat) : .unknown, problem)
    }

    /// Seconds since the latest equity, `nan` when there is none.
    public func equityAge(now: Double) -> Double {
        equity == nil ? .nan : max(0, now - equityTs)
    }

    /// The largest amount by which a state message's `ts` lay ahead of the gate's clock, in seconds.
    public private(set) var maxClockSkew = 0.0

    @inline(__always)
    func observeSkew(_ ts: Double, now: Double) {
        if ts - now > maxClockSkew { maxClockSkew = ts - now }
    }

    // MARK: - Restoring

    /// Puts back one symbol's state, as the store held it.
    /// - Throws: ``Rejection`` when the book is full.
    /// - Parameter now: the clock at the restart; the symbol counts as active then.
    public func restore(_ s: SymbolSnapshot, now: Double) throws(Rejection) {
        let id = try intern(s.symbol, now: now)
        setPosition(id, notional: s.notional, sigma: s.sigma, ts: s.ts)
        if let p = s.price { states[Int(id)].price = p }
        dirtySymbols.removeAll(keepingCapacity: true)
    }

    /// Puts back the equity, as the store held it.
    public func restoreEquity(_ value: Double, ts: Double) {
        equity = value
        equityTs = ts
    }

    /// Remembers a decision made before a restart so that its `plan_id` is not decided twice.
    public func rememberDecision(planKey: UInt64, seq: UInt64, expiresAt: Double, now: Double) {
        repeats.insert(planKey, seq: seq, expiresAt: expiresAt, now: now)
    }

    // MARK: - Processing

    /// Reads one message and applies it: the daemon's and `heatgate replay`'s single entry point.
    ///
    /// - Parameters:
    ///   - bytes: one frame holding one JSON object.
    ///   - now: the clock, epoch seconds.
    public func process(_ bytes: UnsafeRawBufferPointer, now: Double) -> Outcome {
        do {
            return try parseAndApply(bytes, now: now)
        } catch {
            return .rejected(error)
        }
    }

    func parseAndApply(_ b: UnsafeRawBufferPointer, now: Double) throws(Rejection) -> Outcome {
        guard b.count <= Self.maxFrameBytes else {
            throw Rejection(.frameTooLarge, "\(b.count) bytes, limit \(Self.maxFrameBytes)")
        }
        var fields = Fields()
        do {
            var it = try JSONObjectIterator(b)
            while let m = try it.next() { fields.record(b, m) }
        } catch {
            switch error {
            case .notAnObject: throw Rejection(.notObject, "the message is JSON but not an object")
            case .syntax(let offset): throw Rejection(.notJSON, "invalid JSON at byte \(offset)")
            }
        }
        guard let type = fields.type else { throw Rejection(.missingType, field: "type") }
        guard type.kind == .string else { throw Rejection(.wrongType, field: "type", "expected a string") }
        let t = type.content
        if b.equals(t, "proposal") {
            let p = try parseProposal(b, &fields, now: now)
            // Rule 1 comes before the repeat window: a repeat while the switch is on is held like any
            // proposal (SPEC §2), never republished with its old action.
            if !killSwitch, let seq = repeats.lookup(p.planKey, now: now) { return .duplicate(seq: seq, p) }
            let d = decide(p, now: now)
            // Holds for the kill switch or staleness are not remembered: once the switch is off, or when a
            // fresh copy arrives, the proposal is decided anew.
            if d.isRemembered { repeats.insert(p.planKey, seq: d.seq, expiresAt: d.expiresAt, now: now) }
            return .decision(d, p)
        }
        dirtySymbols.removeAll(keepingCapacity: true)
        if b.equals(t, "position") {
            try applyPosition(b, fields, now: now)
            return .state(.position)
        }
        if b.equals(t, "positions") {
            try applyBook(b, fields, now: now)
            return .state(.book)
        }
        if b.equals(t, "portfolio") {
            let e = try required(b, fields.equity, "equity_usd")
            let ts = try readOptionalNumber(b, fields.ts, "ts") ?? now
            observeSkew(ts, now: now)
            equity = e
            equityTs = ts
            // A new equity may end a stretch of unusable inputs; the next decision says whether it did.
            guardCounters.badSince = .nan
            return .state(.portfolio)
        }
        if b.equals(t, "market") {
            try applyMarket(b, fields, now: now)
            return .state(.market)
        }
        throw Rejection(.unknownType, field: "type", "unknown type")
    }

    func required(_ b: UnsafeRawBufferPointer, _ v: JSONValue?, _ field: String) throws(Rejection) -> Double {
        guard let v, v.kind != .null else { throw Rejection(.missingField, field: field) }
        return try readNumber(b, v, field)
    }

    func intern(_ key: SymbolKey, now: Double) throws(Rejection) -> Int32 {
        if let id = symbols.find(key) {
            states[Int(id)].lastActive = now
            return id
        }
        if symbols.count >= maxSymbols { reclaimSymbols(now: now) }
        guard symbols.count < maxSymbols else {
            throw Rejection(.tooManySymbols, field: "symbol", "the book holds \(maxSymbols) symbols")
        }
        let (id, _) = symbols.intern(key)
        if Int(id) == states.count {
            states.append(SymbolState())
        } else {
            states[Int(id)] = SymbolState()
        }
        states[Int(id)].lastActive = now
        return id
    }

    /// How long a symbol must have been idle, with no position, before its slot may be reused: it then has
    /// no decision within the TTL and no state the heat could need.
    var reclaimAfterSec: Double { max(policy.calibratedTTLSec, policy.stateMaxAgeSec) }

    /// Frees every symbol with no position that has seen no message and no decision for
    /// ``reclaimAfterSec`` (SPEC §3: a full table must not refuse new symbols for ever). Runs only when the
    /// table is full, so its O(symbols) cost is paid once per `maxSymbols` new symbols at most.
    func reclaimSymbols(now: Double) {
        let idle = reclaimAfterSec
        var freed: [Int32] = []
        for id in 0..<states.count where symbols.isLive(Int32(id)) {
            let s = states[id]
            if s.notional == 0 && now - s.lastActive > idle { freed.append(Int32(id)) }
        }
        guard !freed.isEmpty else { return }
        for id in freed { reclaimedSymbols.append(symbols.keys[Int(id)]) }
        symbols.remove(freed)
        for id in freed { states[Int(id)] = SymbolState() }
        reclaimedTotal &+= UInt64(freed.count)
    }

    /// Symbols freed since the store last took them (their `book` rows are deleted in the next commit).
    public private(set) var reclaimedSymbols: [SymbolKey] = []
    /// Symbols freed since start.
    public private(set) var reclaimedTotal: UInt64 = 0

    /// Hands the freed symbols to the store.
    public func takeReclaimedSymbols() -> [SymbolKey] {
        defer { reclaimedSymbols.removeAll(keepingCapacity: true) }
        return reclaimedSymbols
    }

    func checkedNotional(_ b: UnsafeRawBufferPointer, _ f: Fields) throws(Rejection) -> Double {
        let v = f.notional ?? f.notionalAlias
        let n = try required(b, v, "position_notional_usd")
        guard abs(n) <= Self.maxNotional else {
            throw Rejection(.outOfRange, field: "position_notional_usd", "|notional| above 1e15")
        }
        return n
    }

    func checkedSigma(_ b: UnsafeRawBufferPointer, _ v: JSONValue?, _ field: String) throws(Rejection) -> Double? {
        guard let s = try readOptionalNumber(b, v, field) else { return nil }
        guard s >= 0 else { throw Rejection(.negative, field: field, "sigma must be >= 0") }
        guard s <= Self.maxSigma else { throw Rejection(.outOfRange, field: field, "sigma above 1000") }
        return s
    }

    func applyPosition(_ b: UnsafeRawBufferPointer, _ f: Fields, now: Double) throws(Rejection) {
        let key = try readSymbol(b, f.symbol)
        let n = try checkedNotional(b, f)
        let sigma = try checkedSigma(b, f.sigma ?? f.volatility, f.sigma != nil ? "sigma" : "volatility")
        let ts = try readOptionalNumber(b, f.ts, "ts") ?? now
        let id = try intern(key, now: now)
        setPosition(id, notional: n, sigma: sigma, ts: ts)
        observeSkew(ts, now: now)
    }

    func applyBook(_ b: UnsafeRawBufferPointer, _ f: Fields, now: Double) throws(Rejection) {
        guard let list = f.positions, list.kind != .null else { throw Rejection(.missingField, field: "positions") }
        guard list.kind == .array else { throw Rejection(.wrongType, field: "positions", "expected an array") }
        let ts = try readOptionalNumber(b, f.ts, "ts") ?? now
        scratch.removeAll(keepingCapacity: true)
        var newSymbols = 0
        func scan<T>(_ body: () throws(JSONScanError) -> T) throws(Rejection) -> T {
            do { return try body() } catch { throw Rejection(.notJSON, field: "positions", "invalid element") }
        }
        var it = try scan { () throws(JSONScanError) in try JSONArrayIterator(b, range: list.range) }
        while let element = try scan({ () throws(JSONScanError) in try it.next() }) {
            guard element.kind == .object else {
                throw Rejection(.wrongType, field: "positions[\(scratch.count)]", "expected an object")
            }
            var ef = Fields()
            var members = try scan { () throws(JSONScanError) in try JSONObjectIterator(b, range: element.range) }
            while let m = try scan({ () throws(JSONScanError) in try members.next() }) { ef.record(b, m) }
            let key = try readSymbol(b, ef.symbol)
            let n = try checkedNotional(b, ef)
            let sigma = try checkedSigma(b, ef.sigma ?? ef.volatility, "sigma")
            if symbols.find(key) == nil { newSymbols += 1 }
            scratch.append((key, n, sigma))
        }
        // Check everything before changing anything: the replacement is atomic.
        if symbols.count + newSymbols > maxSymbols {
            reclaimSymbols(now: now)
            newSymbols = scratch.reduce(0) { n, e in symbols.find(e.0) == nil ? n + 1 : n }
        }
        guard symbols.count + newSymbols <= maxSymbols else {
            throw Rejection(.tooManySymbols, field: "positions", "the book holds \(maxSymbols) symbols")
        }
        generation &+= 1
        observeSkew(ts, now: now)
        for (key, n, sigma) in scratch {
            let id = try intern(key, now: now)
            setPosition(id, notional: n, sigma: sigma, ts: ts)
            states[Int(id)].mark = generation
        }
        for id in 0..<states.count where states[id].notional != 0 && states[id].mark != generation {
            setPosition(Int32(id), notional: 0, sigma: nil, ts: ts)
        }
    }

    func applyMarket(_ b: UnsafeRawBufferPointer, _ f: Fields, now: Double) throws(Rejection) {
        let key = try readSymbol(b, f.symbol)
        let sigma = try checkedSigma(b, f.sigma, "sigma")
        let price = try readOptionalNumber(b, f.price, "price")
        guard sigma != nil || price != nil else { throw Rejection(.missingField, field: "sigma", "sigma or price") }
        if let price, price < 0 { throw Rejection(.negative, field: "price", "price must be >= 0") }
        let ts = try readOptionalNumber(b, f.ts, "ts") ?? now
        observeSkew(ts, now: now)
        let id = try intern(key, now: now)
        if let price {
            states[Int(id)].price = price
            if guardCounters.ringCount > 0 { guardCounters.mark(id, price: price) }
        }
        if sigma != nil {
            setPosition(id, notional: states[Int(id)].notional, sigma: sigma, ts: ts)
        } else {
            states[Int(id)].ts = ts
            dirtySymbols.append(id)
        }
    }

    /// Changes one symbol and the running sums in O(1).
    func setPosition(_ id: Int32, notional: Double, sigma: Double?, ts: Double) {
        var s = states[Int(id)]
        let wasOpen = s.notional != 0
        let hadSigma = !s.sigma.isNaN
        if let sigma { s.sigma = sigma }
        s.notional = notional
        s.ts = ts
        let isOpen = s.notional != 0
        let hasSigma = !s.sigma.isNaN
        openPositions += (isOpen ? 1 : 0) - (wasOpen ? 1 : 0)
        openWithoutSigma += (isOpen && !hasSigma ? 1 : 0) - (wasOpen && !hadSigma ? 1 : 0)
        let risk: Int128 = isOpen && hasSigma ? nanoDollars(abs(s.notional) * s.sigma) : 0
        if risk != s.riskNano {
            totalRiskNano += risk - s.riskNano
            s.riskNano = risk
            totalRiskUSD = Double(totalRiskNano) / 1e9
        }
        states[Int(id)] = s
        dirtySymbols.append(id)
    }

    // MARK: - Proposals

    func parseProposal(_ b: UnsafeRawBufferPointer, _ f: inout Fields, now: Double) throws(Rejection) -> Proposal {
        let identity = try ProposalIdentity(b, f)
        var traceLiteral: Range<Int>?
        if let v = f.traceId {
            // A string or a number, kept as text (SPEC §3).
            guard v.kind == .string || v.kind == .number else {
                throw Rejection(.wrongType, field: "trace_id", "expected a string or a number")
            }
            guard v.content.count <= 128 else {
                throw Rejection(.traceIdTooLong, field: "trace_id", "over 128 bytes")
            }
            traceLiteral = v.range
        }
        let id = try intern(identity.symbol, now: now)
        return Proposal(
            symbolId: id, action: identity.action, actionLiteral: identity.actionValue.range,
            planKey: identity.repeatKey, planIdLiteral: identity.planLiteral, derivedPlan: identity.derived,
            traceIdLiteral: traceLiteral, time: identity.time, object: 0..<b.count)
    }

    /// Decides one parsed proposal (SPEC §2): the hot path. Allocates nothing.
    ///
    /// The repeat window is consulted and filled by ``process(_:now:)``; a caller that decides directly
    /// (benchmarks, tests) bypasses it.
    public func decide(_ p: Proposal, now: Double) -> Decision {
        var d = Decision()
        d.seq = nextSeq
        nextSeq &+= 1
        d.symbolId = p.symbolId
        d.planKey = p.planKey
        d.original = p.action
        d.killSwitch = killSwitch
        d.ts = now
        d.expiresAt = now + policy.calibratedTTLSec
        d.positions = openPositions
        d.totalRisk = totalRiskUSD
        if let e = equity {
            d.equity = e
            d.equityAge = max(0, now - equityTs)
        }
        let (heat, problem) = heatInputs(now: now)
        // The guard decides before the mode is read: inputs unusable for too long make this proposal the
        // first one decided in shadow.
        if guardActive && (problem != nil || !guardCounters.badSince.isNaN) && guardInputsTripped(problem, now: now) {
            trip(.inputsUnusable, seq: d.seq &- 1, now: now)
        }
        d.mode = policy.mode
        d.inputProblem = problem
        if problem == nil {
            d.heat = heat
            d.bucket = policy.bucket(heat)
        }
        if killSwitch {
            d.calibrated = .hold
            d.reason = .killSwitch
        } else if let t = p.time, now - t > policy.proposalMaxAgeSec || t - now > Self.futureToleranceSec {
            d.calibrated = .hold
            d.reason = .proposalStale
        } else if let action = p.action {
            if action != .fullClose {
                d.reason = action.isPartial ? .partialUnchanged : .nonFullCloseUnchanged
            } else if let problem {
                d.reason = problem
                if policy.failMode == .closed {
                    d.calibrated = .partial25
                    d.failClosed = true
                } else {
                    d.failOpen = true
                }
            } else {
                let target: Action
                switch d.bucket {
                case .cold:
                    target = policy.coldAction
                    d.reason = .portfolioHeatCold
                case .warm:
                    target = policy.warmAction
                    d.reason = .portfolioHeatWarm
                default:
                    target = policy.hotAction
                    d.reason = .portfolioHeatHot
                }
                // Monotonic: never a larger exit than proposed; a full close stays the original token.
                if target != .fullClose && target.exitPercent <= action.exitPercent { d.calibrated = target }
            }
        } else {
            d.reason = .unknownAction
        }
        if let c = d.calibrated { d.downgraded = c != d.original }
        d.effective = killSwitch ? .hold : (d.mode == .enforce ? d.calibrated : nil)
        if guardActive { guardObserve(d, p, now: now) }
        return d
    }
}

/// USD to integer nano-dollars. Values below 9.2e9 USD take Int64's direct conversion; the generic
/// Double→Int128 conversion is a slow, unspecialised path.
@inline(__always)
func nanoDollars(_ usd: Double) -> Int128 {
    let x = (usd * 1e9).rounded()
    if x < 9.2e18 { return Int128(Int64(x)) }
    return Int128(x)
}

/// Writes `hg-` and 16 lowercase hex digits.
func writeDerivedPlanId(_ v: UInt64, into buf: UnsafeMutableBufferPointer<UInt8>) {
    buf[0] = UInt8(ascii: "h")
    buf[1] = UInt8(ascii: "g")
    buf[2] = UInt8(ascii: "-")
    for k in 0..<16 { buf[3 + k] = hexDigit(UInt8((v >> UInt64(60 - 4 * k)) & 0xF)) }
}

@inline(__always)
func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v + 48 : v + 87 }

/// Remembers the proposals decided within the TTL (SPEC §2, repeats) and their `seq`, in fixed memory.
///
/// Sets of four 24-byte entries (key, seq, expiry); each key has two candidate sets, from two halves of
/// its (already mixed) bits, and goes to the one with a free slot — "two-choice" hashing, which holds
/// close to its capacity with almost no overflow, where one set per key overflows at a few percent of it
/// (the 0.1 design forgot plans within their TTL from about 440 plans/s with 131 072 entries). The window
/// is sized from the TTL and `P26_REPEAT_PEAK_RATE` with twice the room needed
/// (``capacity(ttl:peakRate:)``). Beyond that, when both sets are full of unexpired entries, the entry
/// expiring first is replaced and ``evictions`` counts it: that plan, re-sent within its TTL, is decided
/// again under a new `seq` (with the same inputs, the same action). A lookup touches at most two sets and
/// never allocates.
public final class RepeatWindow {
    struct Entry {
        var key: UInt64
        var seq: UInt64
        var expires: Double
    }

    static let ways = 4
    let setMask: Int
    let entries: UnsafeMutablePointer<Entry>
    /// Entries in all.
    public let capacity: Int
    /// Plans replaced before their expiry because both of their sets were full (`p26_repeat_window_evictions_total`).
    public private(set) var evictions: UInt64 = 0

    /// The most entries a window may have (192 MiB): `P26_REPEAT_PEAK_RATE` × TTL is bounded to half of it.
    public static let maxCapacity = 1 << 23

    /// The entries for a TTL and a peak rate of distinct proposals: twice `ttl × peakRate`, rounded up to a
    /// power of two, at least 4 096 and at most ``maxCapacity``.
    public static func capacity(ttl: Double, peakRate: Double) -> Int {
        let wanted = 2 * ttl * peakRate
        guard wanted.isFinite, wanted < Double(maxCapacity) else { return maxCapacity }
        var n = 4096
        while Double(n) < wanted { n <<= 1 }
        return n
    }

    /// - Parameter capacity: entries; rounded up to a power of two of at least 8.
    public init(capacity: Int) {
        var n = 8
        while n < capacity && n < Self.maxCapacity { n <<= 1 }
        self.capacity = n
        setMask = n / Self.ways - 1
        // calloc: key 0 is "empty", and the pages stay untouched (not resident) until a key lands there.
        guard let raw = calloc(n, MemoryLayout<Entry>.stride) else { fatalError("out of memory for the repeat window") }
        entries = raw.bindMemory(to: Entry.self, capacity: n)
    }

    deinit { free(entries) }

    @inline(__always)
    func sets(_ k: UInt64) -> (UnsafeMutablePointer<Entry>, UnsafeMutablePointer<Entry>) {
        let a = Int(truncatingIfNeeded: k) & setMask
        var b = Int(truncatingIfNeeded: k >> 32) & setMask
        if b == a { b = (a ^ 1) & setMask }
        return (entries + a * Self.ways, entries + b * Self.ways)
    }

    /// The `seq` decided for `key`, if it has not expired at `now`.
    @inline(__always)
    public func lookup(_ key: UInt64, now: Double) -> UInt64? {
        let k = key == 0 ? 1 : key
        let (a, b) = sets(k)
        for w in 0..<Self.ways where a[w].key == k && a[w].expires > now { return a[w].seq }
        for w in 0..<Self.ways where b[w].key == k && b[w].expires > now { return b[w].seq }
        return nil
    }

    /// Remembers `key` until `expiresAt`, in an empty or expired slot of its two sets when there is one;
    /// otherwise in place of the entry expiring first, counted in ``evictions``.
    public func insert(_ key: UInt64, seq: UInt64, expiresAt: Double, now: Double) {
        let k = key == 0 ? 1 : key
        let (a, b) = sets(k)
        for w in 0..<Self.ways {
            if a[w].key == k {
                a[w] = Entry(key: k, seq: seq, expires: expiresAt)
                return
            }
            if b[w].key == k {
                b[w] = Entry(key: k, seq: seq, expires: expiresAt)
                return
            }
        }
        // The entry expiring first among the eight candidates; empty slots (expires 0) come first.
        var victim = a
        for w in 0..<Self.ways {
            if a[w].expires < victim.pointee.expires { victim = a + w }
            if b[w].expires < victim.pointee.expires { victim = b + w }
        }
        let live = victim.pointee.key != 0 && victim.pointee.expires > now
        if live { evictions &+= 1 }
        victim.pointee = Entry(key: k, seq: seq, expires: expiresAt)
    }
}
