import HeatGateCore
import HeatGateStore

/// The go/no-go answer of the shadow report (SPEC §7).
public enum Verdict: String, Sendable, Equatable {
    case proceed = "PROCEED"
    case review = "REVIEW"
    case hold = "HOLD"
}

/// What the report reads and how it judges. Every threshold of the verdict is here, and a flag of
/// `heatgate analyze`.
public struct AnalysisOptions: Sendable {
    /// Only decisions and time at or after this (epoch seconds); `nil`: from the first journaled record.
    public var since: Double?
    /// Only up to this; `nil`: up to the last journaled record.
    public var until: Double?
    /// How long after a downgrade the kept part is followed (SPEC §7: 15 min).
    public var horizonSec = 900.0
    /// A downgrade whose kept part lost more than this many basis points over the horizon is a false
    /// positive.
    public var lossThresholdBps = 50.0
    /// PROCEED needs more than this share of COLD/WARM full closes downgraded (SPEC §7: 30 %).
    public var proceedRate = 0.30
    /// HOLD below this share (SPEC §7: 10 %).
    public var holdRate = 0.10
    /// PROCEED also needs at least this many downgrades priced over the whole horizon (beyond SPEC §7:
    /// a verdict of "no false positive" from no evidence at all is a REVIEW).
    public var minEvaluated = 1
    /// The bands and staleness used to recompute heat between decisions (the daemon's configuration).
    public var policy = Policy()

    public init() {}
}

/// One bucket's line of the report.
public struct BucketFigures: Sendable, Equatable {
    public var bucket: String
    /// Full closes decided in this bucket (kill-switch and stale holds excluded).
    public var fullCloses = 0
    /// Of those, how many the calibration downgraded.
    public var downgraded = 0
    /// Seconds of the window spent in this bucket.
    public var seconds = 0.0

    public init(bucket: String, fullCloses: Int = 0, downgraded: Int = 0, seconds: Double = 0) {
        self.bucket = bucket
        self.fullCloses = fullCloses
        self.downgraded = downgraded
        self.seconds = seconds
    }

    public var downgradeRate: Double? { fullCloses == 0 ? nil : Double(downgraded) / Double(fullCloses) }
}

/// What the part kept open by one downgrade went on to do.
public struct DowngradeOutcome: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Priced at the decision and over the whole horizon.
        case evaluated
        /// The journal ends before the horizon does.
        case pending
        /// No market price of the symbol at or before the decision (no entry), or none that arrived after
        /// it and within the horizon (no exit). A feed that stopped is no evidence: pricing the exit at the
        /// entry would count a flat zero and could carry the verdict to PROCEED (SPEC §7).
        case unpriced
    }

    public var seq: UInt64
    public var ts: Double
    public var symbol: String
    public var bucket: String
    public var reason: String
    public var original: String
    public var calibrated: String
    /// The share of the position the downgrade kept open (FULL_CLOSE → PARTIAL_25 keeps 0.75).
    public var keptFraction: Double
    /// +1 long, -1 short: the sign of the position's notional at the decision.
    public var side: Double
    /// Whether the side came from the journaled book (otherwise long is assumed).
    public var sideKnown: Bool
    /// |notional| at the decision, when the book knew the position.
    public var notionalUSD: Double?
    public var entryPrice: Double?
    public var exitPrice: Double?
    /// The kept part's return over the horizon, in basis points, signed by side.
    public var pnlBps: Double?
    /// The kept part's P&L in USD: kept fraction × |notional| × return.
    public var pnlUSD: Double?
    /// The worst return seen at any journaled price within the horizon, in basis points.
    public var worstBps: Double?
    public var status: Status
    public var falsePositive: Bool

    public var keptUSD: Double? { notionalUSD.map { $0 * keptFraction } }
}

/// The heat at one moment, for the chart and the time in bucket.
public struct HeatSample: Sendable, Equatable {
    public var ts: Double
    /// `nil` when the inputs were not usable.
    public var heat: Double?
    public var bucket: String
    /// A decision (the daemon's own heat) rather than a recomputed state change.
    public var fromDecision: Bool
}

/// The shadow-mode report of SPEC §7, with its verdict.
///
/// Definitions (also in `docs/shadow-report.md`):
/// - A **full close** is a decision whose `original_action` reads as `FULL_CLOSE` (any case, `_PROPOSED`
///   allowed). Kill-switch and stale-proposal holds are counted apart: they are not calibration.
/// - A **downgrade** is such a full close with `downgraded: true`; its bucket is the decision's
///   `heat_bucket` (UNKNOWN for a fail-closed one).
/// - **Time in bucket**: heat is a step function. It changes at every decision (the daemon's own
///   `heat_value`) and at every journaled state change (recomputed by replaying the journaled `position`,
///   `positions`, `portfolio` and `market` messages through the same engine). It turns UNKNOWN when the
///   equity becomes older than `P26_STATE_MAX_AGE_SEC`. The window runs from `--since` (or the first
///   record) to the last record (or `--until`).
/// - **Horizon P&L**: kept part = the share the downgrade left open × |notional| at the decision; its
///   return = (exit ÷ entry − 1) × side, from the journaled `market` prices: entry is the last price at or
///   before the decision, exit the last one that arrived after it and at or before decision + horizon.
///   Without such a price the downgrade is unpriced, never a zero (SPEC §7). Side is the sign of the
///   journaled notional; long when the book did not know the position.
public struct ShadowReport: Sendable {
    public var options: AnalysisOptions
    public var from: Double
    public var to: Double
    public var decisions = 0
    public var fullCloses = 0
    public var downgraded = 0
    public var heldByKillSwitch = 0
    public var heldStale = 0
    /// COLD, WARM, HOT, UNKNOWN, in that order.
    public var buckets: [BucketFigures] = ["COLD", "WARM", "HOT", "UNKNOWN"].map { BucketFigures(bucket: $0) }
    /// Fail-closed decisions by reason, most frequent first.
    public var failClosed: [(reason: String, count: Int)] = []
    public var outcomes: [DowngradeOutcome] = []
    public var samples: [HeatSample] = []
    /// Modes seen on decisions in the window, with counts.
    public var modes: [(mode: String, count: Int)] = []
    public var verdict: Verdict = .hold
    /// Why, one line each.
    public var verdictReasons: [String] = []

    public func bucket(_ label: String) -> BucketFigures {
        buckets.first { $0.bucket == label } ?? BucketFigures(bucket: label)
    }

    public var coldWarmFullCloses: Int { bucket("COLD").fullCloses + bucket("WARM").fullCloses }
    public var coldWarmDowngraded: Int { bucket("COLD").downgraded + bucket("WARM").downgraded }
    public var coldWarmRate: Double? {
        coldWarmFullCloses == 0 ? nil : Double(coldWarmDowngraded) / Double(coldWarmFullCloses)
    }
    public var downgradeRate: Double? { fullCloses == 0 ? nil : Double(downgraded) / Double(fullCloses) }
    public var totalSeconds: Double { buckets.reduce(0) { $0 + $1.seconds } }
    public var evaluated: Int { outcomes.filter { $0.status == .evaluated }.count }
    public var pending: Int { outcomes.filter { $0.status == .pending }.count }
    public var unpriced: Int { outcomes.filter { $0.status == .unpriced }.count }
    public var falsePositives: Int { outcomes.filter(\.falsePositive).count }
    public var failClosedTotal: Int { failClosed.reduce(0) { $0 + $1.count } }
    /// Sum of the evaluated downgrades' USD P&L (those whose notional was known).
    public var pnlUSD: Double { outcomes.compactMap { $0.status == .evaluated ? $0.pnlUSD : nil }.reduce(0, +) }
    /// The largest drop of the kept parts' cumulative USD P&L: evaluated downgrades in decision order, each
    /// counted when its horizon ends; from a running peak that starts at 0. 0 when it never fell.
    public var maxDrawdownUSD: Double {
        var cumulative = 0.0
        var peak = 0.0
        var drawdown = 0.0
        for o in outcomes where o.status == .evaluated {
            guard let p = o.pnlUSD else { continue }
            cumulative += p
            peak = max(peak, cumulative)
            drawdown = max(drawdown, peak - cumulative)
        }
        return drawdown
    }
    /// Mean return of the evaluated downgrades' kept parts, in basis points.
    public var meanBps: Double? {
        let e = outcomes.compactMap { $0.status == .evaluated ? $0.pnlBps : nil }
        return e.isEmpty ? nil : e.reduce(0, +) / Double(e.count)
    }
}

/// Builds a ``ShadowReport`` from the journal.
public enum ShadowAnalyzer {
    struct DecisionRow {
        var seq: UInt64
        var ts: Double
        var symbol: String
        var original: String
        var calibrated: String
        var downgraded: Bool
        var reason: String
        var heat: Double?
        var bucket: String
        var failClosed: Bool
        var equityAge: Double?
        var mode: String
    }

    struct EventRow {
        var ts: Double
        var kind: String
        var message: JSON
        /// The message as the engine reads it.
        var bytes: [UInt8]
    }

    /// Reads the journal of a store (open it read-only) and analyses it.
    /// - Throws: ``StoreError`` when the journal cannot be read.
    public static func analyze(store: GateStore, options: AnalysisOptions) throws -> ShadowReport {
        var decisions: [JSON] = []
        var events: [JSON] = []
        try store.forEachJournaled(decision: { decisions.append($0) }, event: { events.append($0) })
        return analyze(decisions: decisions, events: events, options: options)
    }

    /// Analyses journaled decisions (SPEC §4 objects) and state events (`{"id","ts","kind","message"}`).
    public static func analyze(decisions: [JSON], events: [JSON], options: AnalysisOptions) -> ShadowReport {
        analyze(
            rows: decisions.compactMap(decisionRow), events: sortedEvents(events.compactMap(eventRow)), options: options
        )
    }

    /// Events in time order, the journal's order among equal times.
    static func sortedEvents(_ rows: [EventRow]) -> [EventRow] {
        rows.enumerated().sorted { ($0.element.ts, $0.offset) < ($1.element.ts, $1.offset) }.map(\.element)
    }

    /// Analyses decision rows and time-ordered events (what ``analyze(decisions:events:options:)`` and
    /// `tune` share).
    static func analyze(rows unsorted: [DecisionRow], events evs: [EventRow], options: AnalysisOptions) -> ShadowReport
    {
        let rows = unsorted.sorted { ($0.ts, $0.seq) < ($1.ts, $1.seq) }
        let lastTs = max(rows.last?.ts ?? -.infinity, evs.last?.ts ?? -.infinity)
        let firstTs = min(rows.first?.ts ?? .infinity, evs.first?.ts ?? .infinity)
        let to = options.until ?? (lastTs.isFinite ? lastTs : 0)
        let from = options.since ?? (firstTs.isFinite ? firstTs : to)
        var report = ShadowReport(options: options, from: from, to: max(from, to))

        // One pass over the merged timeline: state changes go through a fresh engine (the daemon's rules),
        // decisions are sampled as the daemon wrote them, and each decision sees the book as it stood.
        let engine = Engine(policy: options.policy)
        var samples: [(HeatSample, staleAt: Double?)] = []
        var prices: [String: [(ts: Double, price: Double)]] = [:]
        var notionalAtDecision: [UInt64: Double] = [:]
        var i = 0
        var j = 0
        while i < evs.count || j < rows.count {
            if i < evs.count, j >= rows.count || evs[i].ts <= rows[j].ts {
                let e = evs[i]
                i += 1
                let outcome = e.bytes.withUnsafeBytes { engine.process($0, now: e.ts) }
                if case .rejected = outcome { continue }
                if e.kind == "market", let sym = e.message["symbol"]?.string, let p = e.message["price"]?.number,
                    p > 0, p.isFinite
                {
                    prices[sym, default: []].append((e.ts, p))
                }
                let (heat, problem) = engine.heatInputs(now: e.ts)
                let staleAt = engine.equity != nil ? engine.equityTs + options.policy.stateMaxAgeSec : nil
                samples.append(
                    (
                        HeatSample(
                            ts: e.ts, heat: problem == nil ? heat : nil,
                            bucket: problem == nil ? options.policy.bucket(heat).label : "UNKNOWN", fromDecision: false),
                        problem == nil ? staleAt : nil
                    ))
            } else {
                let d = rows[j]
                j += 1
                if let key = SymbolKey(d.symbol), let id = engine.symbolId(key) {
                    notionalAtDecision[d.seq] = engine.snapshot(id).notional
                }
                let staleAt = d.equityAge.map { d.ts - $0 + options.policy.stateMaxAgeSec }
                samples.append(
                    (
                        HeatSample(
                            ts: d.ts, heat: d.heat, bucket: d.heat == nil ? "UNKNOWN" : d.bucket, fromDecision: true),
                        d.heat == nil ? nil : staleAt
                    ))
            }
        }

        timeInBuckets(samples, into: &report)

        var failClosed: [String: Int] = [:]
        var modes: [String: Int] = [:]
        for d in rows where d.ts >= report.from && d.ts <= report.to {
            report.decisions += 1
            modes[d.mode, default: 0] += 1
            if d.failClosed { failClosed[d.reason, default: 0] += 1 }
            guard Action(token: d.original) == .fullClose else { continue }
            if d.reason == "kill_switch" {
                report.heldByKillSwitch += 1
                continue
            }
            if d.reason == "proposal_stale" {
                report.heldStale += 1
                continue
            }
            report.fullCloses += 1
            let b = report.buckets.firstIndex { $0.bucket == d.bucket } ?? 3
            report.buckets[b].fullCloses += 1
            guard d.downgraded else { continue }
            report.downgraded += 1
            report.buckets[b].downgraded += 1
            report.outcomes.append(
                outcome(d, notional: notionalAtDecision[d.seq], prices: prices[d.symbol] ?? [], report: report))
        }
        report.failClosed = failClosed.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { ($0.key, $0.value) }
        report.modes = modes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        judge(&report)
        return report
    }

    static func decisionRow(_ j: JSON) -> DecisionRow? {
        guard let seq = j["seq"]?.number, let ts = j["ts"]?.number, let symbol = j["symbol"]?.string,
            let original = j["original_action"]?.string
        else { return nil }
        let heat = j["heat_value"]?.number
        // A journal is the gate's own, but a number out of UInt64's range must not trap the report.
        guard seq >= 0, seq < 1.8e19 else { return nil }
        return DecisionRow(
            seq: UInt64(seq), ts: ts, symbol: symbol, original: original,
            calibrated: j["calibrated_action"]?.string ?? original, downgraded: j["downgraded"]?.bool ?? false,
            reason: j["reason"]?.string ?? "", heat: heat?.isFinite == true ? heat : nil,
            bucket: j["heat_bucket"]?.string ?? "UNKNOWN", failClosed: j["fail_closed"]?.bool ?? false,
            equityAge: j["equity_age_sec"]?.number, mode: j["mode"]?.string ?? "?")
    }

    static func eventRow(_ j: JSON) -> EventRow? {
        guard let ts = j["ts"]?.number, let kind = j["kind"]?.string, let m = j["message"] else { return nil }
        return EventRow(ts: ts, kind: kind, message: m, bytes: Array(m.text.utf8))
    }

    /// Integrates the step function of heat over the window, splitting a step where the equity went stale.
    static func timeInBuckets(_ samples: [(HeatSample, staleAt: Double?)], into r: inout ShadowReport) {
        func add(_ bucket: String, _ a: Double, _ b: Double) {
            let lo = max(a, r.from)
            let hi = min(b, r.to)
            guard hi > lo else { return }
            let k = r.buckets.firstIndex { $0.bucket == bucket } ?? 3
            r.buckets[k].seconds += hi - lo
        }
        var chart: [HeatSample] = []
        for (k, (s, staleAt)) in samples.enumerated() {
            let end = k + 1 < samples.count ? samples[k + 1].0.ts : r.to
            if let staleAt, staleAt < end {
                add(s.bucket, s.ts, staleAt)
                add("UNKNOWN", max(staleAt, s.ts), end)
            } else {
                add(s.bucket, s.ts, end)
            }
            // The chart: the state in force at the window's start, then every change inside it.
            if s.ts <= r.to {
                var c = s
                if s.ts < r.from {
                    if end <= r.from { continue }
                    c.ts = r.from
                }
                chart.append(c)
                if let staleAt, staleAt < end, staleAt >= r.from, staleAt <= r.to {
                    chart.append(HeatSample(ts: staleAt, heat: nil, bucket: "UNKNOWN", fromDecision: false))
                }
            }
        }
        r.samples = chart
    }

    static func outcome(
        _ d: DecisionRow, notional: Double?, prices: [(ts: Double, price: Double)], report: ShadowReport
    ) -> DowngradeOutcome {
        let original = Action(token: d.original)?.exitPercent ?? 100
        let calibrated = Action(token: d.calibrated)?.exitPercent ?? 0
        let kept = Double(max(0, original - calibrated)) / 100
        let known = notional.map { $0 != 0 } ?? false
        let side: Double = known && notional! < 0 ? -1 : 1
        var o = DowngradeOutcome(
            seq: d.seq, ts: d.ts, symbol: d.symbol, bucket: d.bucket, reason: d.reason, original: d.original,
            calibrated: d.calibrated, keptFraction: kept, side: side, sideKnown: known,
            notionalUSD: known ? abs(notional!) : nil, status: .unpriced, falsePositive: false)
        // Prices are in time order: the entry is the last at or before the decision.
        let afterDecision = firstIndex(prices) { $0.ts > d.ts }
        guard afterDecision > 0 else { return o }
        let entry = prices[afterDecision - 1]
        o.entryPrice = entry.price
        let horizonEnd = d.ts + report.options.horizonSec
        guard report.to >= horizonEnd else {
            o.status = .pending
            return o
        }
        // Only prices that arrived inside (decision, decision + horizon] say what the kept part did; the
        // entry price itself, carried forward by a feed that stopped, would read as a flat zero.
        let inside = prices[afterDecision..<firstIndex(prices) { $0.ts > horizonEnd }]
        guard let exit = inside.last?.price else { return o }
        func bps(_ p: Double) -> Double { side * (p / entry.price - 1) * 10_000 }
        o.exitPrice = exit
        o.pnlBps = bps(exit)
        o.worstBps = inside.map { bps($0.price) }.reduce(bps(exit), min)
        o.pnlUSD = o.keptUSD.map { $0 * side * (exit / entry.price - 1) }
        o.status = .evaluated
        o.falsePositive = o.pnlBps! < -report.options.lossThresholdBps
        return o
    }

    /// The first index whose element satisfies `after`, for a predicate false then true along the array.
    static func firstIndex(_ prices: [(ts: Double, price: Double)], _ after: ((ts: Double, price: Double)) -> Bool)
        -> Int
    {
        var lo = 0
        var hi = prices.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if after(prices[mid]) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The verdict of SPEC §7, first rule that applies.
    static func judge(_ r: inout ShadowReport) {
        let o = r.options
        let fp = r.falsePositives
        let pct = { (x: Double) in "\(formatNumber(x * 100, decimals: 1)) %" }
        guard fp == 0 else {
            r.verdict = .hold
            r.verdictReasons.append(
                "\(fp) false positive(s): the kept part lost more than \(formatNumber(o.lossThresholdBps, decimals: 0)) bps over \(TimeText.human(o.horizonSec))"
            )
            return
        }
        guard let rate = r.coldWarmRate else {
            r.verdict = .hold
            r.verdictReasons.append("no full close was decided in COLD or WARM: nothing to judge")
            return
        }
        let share =
            "\(r.coldWarmDowngraded) of \(r.coldWarmFullCloses) full closes in COLD/WARM downgraded (\(pct(rate)))"
        if rate < o.holdRate {
            r.verdict = .hold
            r.verdictReasons.append("\(share), fewer than \(pct(o.holdRate))")
        } else if rate > o.proceedRate {
            if r.evaluated < o.minEvaluated {
                r.verdict = .review
                r.verdictReasons.append(
                    "\(share), but only \(r.evaluated) downgrade(s) could be priced over the horizon (need \(o.minEvaluated))"
                )
            } else {
                r.verdict = .proceed
                r.verdictReasons.append("\(share), more than \(pct(o.proceedRate))")
                r.verdictReasons.append("no false positive among \(r.evaluated) priced downgrade(s)")
            }
        } else {
            r.verdict = .review
            r.verdictReasons.append("\(share): between \(pct(o.holdRate)) and \(pct(o.proceedRate))")
        }
    }
}

/// A number with a fixed count of decimals, without Foundation's locale.
public func formatNumber(_ x: Double, decimals: Int) -> String {
    guard x.isFinite else { return "-" }
    var w = JSONWriter(capacity: 32)
    w.fixed(x, decimals: decimals)
    return String(decoding: w.bytes, as: UTF8.self)
}
