import Dispatch
import HeatGateCore
import HeatGateStore

/// The recorded inputs `heatgate tune` re-runs: state messages and proposals, each at its clock, in order.
public struct TuneInput: Sendable {
    struct Proposal: Sendable {
        var ts: Double
        var bytes: [UInt8]
        var killSwitch: Bool
    }

    enum Item: Sendable {
        case event(Int)
        case proposal(Int)
    }

    var events: [ShadowAnalyzer.EventRow] = []
    var proposals: [Proposal] = []
    /// Events and proposals in the order they reached the gate.
    var order: [Item] = []

    /// State messages and proposals read.
    public var eventCount: Int { events.count }
    public var proposalCount: Int { proposals.count }

    /// The journal of a store (open it read-only): the `events` journal, and the proposal of every journaled
    /// decision at the decision's time, with the kill switch as it stood then. Among equal times, state
    /// changes come first (the journal does not order a batch's state against its proposals).
    public static func journal(_ store: GateStore) throws -> TuneInput {
        var decisions: [JSON] = []
        var rawEvents: [JSON] = []
        try store.forEachJournaled(decision: { decisions.append($0) }, event: { rawEvents.append($0) })
        var input = TuneInput()
        input.events = ShadowAnalyzer.sortedEvents(rawEvents.compactMap(ShadowAnalyzer.eventRow))
        var props: [(seq: Double, p: Proposal)] = []
        for d in decisions {
            guard let ts = d["ts"]?.number, let seq = d["seq"]?.number, let p = d["proposal"] else { continue }
            props.append((seq, Proposal(ts: ts, bytes: Array(p.text.utf8), killSwitch: d["kill_switch"]?.bool == true)))
        }
        input.proposals = props.sorted { ($0.p.ts, $0.seq) < ($1.p.ts, $1.seq) }.map(\.p)
        var i = 0
        var j = 0
        while i < input.events.count || j < input.proposals.count {
            if i < input.events.count, j >= input.proposals.count || input.events[i].ts <= input.proposals[j].ts {
                input.order.append(.event(i))
                i += 1
            } else {
                input.order.append(.proposal(j))
                j += 1
            }
        }
        return input
    }

    /// A `heatgate replay` file's lines: each at its `"at"` clock (a line without one keeps the previous
    /// clock, which starts at `start`), in file order.
    public static func replay(lines: [[UInt8]], start: Double) -> TuneInput {
        var input = TuneInput()
        var clock = start
        for line in lines {
            guard let j = try? line.withUnsafeBytes({ try JSON.parse($0) }), let type = j["type"]?.string else {
                continue
            }
            if let at = j["at"]?.number ?? j["at"]?.string.flatMap(Double.init) { clock = at }
            if type == "proposal" {
                input.order.append(.proposal(input.proposals.count))
                input.proposals.append(Proposal(ts: clock, bytes: line, killSwitch: false))
            } else {
                input.order.append(.event(input.events.count))
                input.events.append(ShadowAnalyzer.EventRow(ts: clock, kind: type, message: j, bytes: line))
            }
        }
        return input
    }
}

/// One cell of the grid: the shadow report the engine's decisions would have made with these thresholds.
public struct TuneCell: Sendable {
    public var heatMin: Double
    public var heatMax: Double
    /// The setting in force (the configuration's HEAT_MIN and HEAT_MAX).
    public var current: Bool
    public var report: ShadowReport
}

/// The grid of `heatgate tune`, and the cells the verdict's rules rank best.
public struct TuneResult: Sendable {
    public var mins: [Double]
    public var maxs: [Double]
    /// Row-major: `cells[i * maxs.count + j]` is `mins[i]` × `maxs[j]`; `nil` where HEAT_MIN >= HEAT_MAX.
    public var cells: [TuneCell?]
    /// Indices into `cells` of the best PROCEED cells: highest kept-part P&L, then smallest drawdown,
    /// then closest to the current setting. Empty when no cell reaches PROCEED.
    public var best: [Int]
    public var options: AnalysisOptions
    public var seconds = 0.0

    public func cell(_ i: Int, _ j: Int) -> TuneCell? { cells[i * maxs.count + j] }
    public var current: TuneCell? { cells.compactMap { $0 }.first { $0.current } }
}

/// The grid's results, one slot per cell, written by the cell's own iteration only.
final class CellSlots: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<TuneCell?>

    init(count: Int) {
        buffer = .allocate(capacity: count)
        buffer.initialize(repeating: nil)
    }
}

/// Re-runs recorded inputs through the engine under a grid of HEAT_MIN × HEAT_MAX.
public enum Tuner {
    /// Decides every proposal of `input` anew under `options.policy` and reports as `analyze` would.
    public static func report(_ input: TuneInput, options: AnalysisOptions) -> ShadowReport {
        let engine = Engine(policy: options.policy)
        var rows: [ShadowAnalyzer.DecisionRow] = []
        rows.reserveCapacity(input.proposals.count)
        for item in input.order {
            switch item {
            case .event(let i):
                let e = input.events[i]
                _ = e.bytes.withUnsafeBytes { engine.process($0, now: e.ts) }
            case .proposal(let i):
                let p = input.proposals[i]
                engine.killSwitch = p.killSwitch
                let outcome = p.bytes.withUnsafeBytes { engine.process($0, now: p.ts) }
                guard case .decision(let d, let proposal) = outcome else { continue }
                // The token as the producer spelt it, as the journal has it.
                var literal = p.bytes[proposal.actionLiteral]
                if literal.first == UInt8(ascii: "\""), literal.last == UInt8(ascii: "\""), literal.count >= 2 {
                    literal = literal.dropFirst().dropLast()
                }
                let original = String(decoding: literal, as: UTF8.self)
                rows.append(
                    ShadowAnalyzer.DecisionRow(
                        seq: d.seq, ts: d.ts, symbol: engine.symbol(d.symbolId).description, original: original,
                        calibrated: d.calibrated?.token ?? original, downgraded: d.downgraded, reason: d.reason.label,
                        heat: d.heat.isFinite ? d.heat : nil, bucket: d.bucket.label, failClosed: d.failClosed,
                        equityAge: d.equityAge.isNaN ? nil : d.equityAge, mode: d.mode.label))
            }
        }
        return ShadowAnalyzer.analyze(rows: rows, events: input.events, options: options)
    }

    /// Every cell of the grid; the configuration's thresholds are marked current.
    public static func run(_ input: TuneInput, options: AnalysisOptions, mins: [Double], maxs: [Double]) -> TuneResult {
        let grid = mins.flatMap { lo in maxs.map { hi in (lo, hi) } }
        // Cells are independent: two at a time on the 2-core machine (more where there are more cores).
        // Each iteration writes only its own slot.
        let slots = CellSlots(count: grid.count)
        defer { slots.buffer.deallocate() }
        DispatchQueue.concurrentPerform(iterations: grid.count) { k in
            let (lo, hi) = grid[k]
            guard lo < hi else { return }
            var o = options
            o.policy.heatMin = lo
            o.policy.heatMax = hi
            let current = lo == options.policy.heatMin && hi == options.policy.heatMax
            slots.buffer[k] = TuneCell(heatMin: lo, heatMax: hi, current: current, report: report(input, options: o))
        }
        let cells = Array(slots.buffer)
        let proceed = cells.indices.filter { cells[$0]?.report.verdict == .proceed }
        func distance(_ c: TuneCell) -> Double {
            abs(c.heatMin - options.policy.heatMin) + abs(c.heatMax - options.policy.heatMax)
        }
        let best = proceed.sorted { a, b in
            let x = cells[a]!
            let y = cells[b]!
            if x.report.pnlUSD != y.report.pnlUSD { return x.report.pnlUSD > y.report.pnlUSD }
            if x.report.maxDrawdownUSD != y.report.maxDrawdownUSD {
                return x.report.maxDrawdownUSD < y.report.maxDrawdownUSD
            }
            return distance(x) < distance(y)
        }
        return TuneResult(mins: mins, maxs: maxs, cells: cells, best: Array(best.prefix(3)), options: options)
    }
}

extension TuneResult {
    static func share(_ r: ShadowReport, _ bucket: String) -> Double {
        r.totalSeconds > 0 ? r.bucket(bucket).seconds / r.totalSeconds : 0
    }

    func tag(_ index: Int) -> String {
        var t: [String] = []
        if cells[index]?.current == true { t.append("current") }
        if let rank = best.firstIndex(of: index) { t.append("best \(rank + 1)") }
        return t.joined(separator: ", ")
    }

    /// The grid as text: the verdict map, then one line per cell.
    public func text() -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        func pct(_ x: Double?) -> String { x.map { formatNumber($0 * 100, decimals: 1) } ?? "-" }
        line(
            "tune: \(mins.count) x \(maxs.count) grid of HEAT_MIN x HEAT_MAX in \(formatNumber(seconds, decimals: 2)) s; "
                + "horizon \(TimeText.human(options.horizonSec)), false positive below -\(formatNumber(options.lossThresholdBps, decimals: 0)) bps, "
                + "PROCEED above \(pct(options.proceedRate)) %, HOLD below \(pct(options.holdRate)) %")
        if let c = current {
            line(
                "current HEAT_MIN=\(formatNumber(c.heatMin, decimals: 2)) HEAT_MAX=\(formatNumber(c.heatMax, decimals: 2)): "
                    + "\(c.report.verdict.rawValue), COLD/WARM downgraded \(pct(c.report.coldWarmRate)) %, "
                    + "kept-part P&L \(formatNumber(c.report.pnlUSD, decimals: 2)) USD, "
                    + "max drawdown \(formatNumber(c.report.maxDrawdownUSD, decimals: 2)) USD, "
                    + "false positives \(c.report.falsePositives)")
        } else {
            line("current setting not on the grid")
        }
        if best.isEmpty {
            line("best: no cell reaches PROCEED")
        } else {
            line("best (PROCEED; most kept-part P&L, then least drawdown, then nearest the current setting):")
            for (rank, i) in best.enumerated() {
                let c = cells[i]!
                line(
                    "  \(rank + 1). HEAT_MIN=\(formatNumber(c.heatMin, decimals: 2)) HEAT_MAX=\(formatNumber(c.heatMax, decimals: 2)): "
                        + "P&L \(formatNumber(c.report.pnlUSD, decimals: 2)) USD, drawdown \(formatNumber(c.report.maxDrawdownUSD, decimals: 2)) USD, "
                        + "COLD/WARM downgraded \(pct(c.report.coldWarmRate)) %")
            }
        }
        line()
        line("verdicts (P PROCEED, R REVIEW, H HOLD, . HEAT_MIN >= HEAT_MAX; * current, 1-3 best)")
        line("HEAT_MIN \\ HEAT_MAX " + maxs.map { formatNumber($0, decimals: 2).leftPadding(6) }.joined())
        for (i, lo) in mins.enumerated() {
            var row = formatNumber(lo, decimals: 2).padding(20)
            for j in maxs.indices {
                let k = i * maxs.count + j
                guard let c = cells[k] else {
                    row += ".".leftPadding(6)
                    continue
                }
                let mark = c.current ? "*" : best.firstIndex(of: k).map { "\($0 + 1)" } ?? " "
                row += (String(c.report.verdict.rawValue.prefix(1)) + mark).leftPadding(6)
            }
            line(row)
        }
        line()
        line(
            "HEAT_MIN HEAT_MAX verdict  dg-rate  cw-rate   COLD%   WARM%    HOT%   UNKN%     P&L USD  drawdown   fp  priced"
        )
        for (k, cell) in cells.enumerated() {
            guard let c = cell else { continue }
            let r = c.report
            line(
                formatNumber(c.heatMin, decimals: 2).padding(9) + formatNumber(c.heatMax, decimals: 2).padding(9)
                    + r.verdict.rawValue.padding(8) + pct(r.downgradeRate).leftPadding(8)
                    + pct(r.coldWarmRate).leftPadding(9)
                    + ["COLD", "WARM", "HOT", "UNKNOWN"].map { pct(Self.share(r, $0)).leftPadding(8) }.joined()
                    + formatNumber(r.pnlUSD, decimals: 2).leftPadding(12)
                    + formatNumber(r.maxDrawdownUSD, decimals: 2).leftPadding(10) + "\(r.falsePositives)".leftPadding(5)
                    + "\(r.evaluated)".leftPadding(8) + (tag(k).isEmpty ? "" : "  [\(tag(k))]"))
        }
        return out
    }

    func cellJSON(_ c: TuneCell, _ k: Int, _ w: inout JSONWriter) {
        let r = c.report
        func num(_ x: Double?) { if let x { w.double(x) } else { w.raw("null") } }
        w.raw("{\"heat_min\":")
        w.double(c.heatMin)
        w.raw(",\"heat_max\":")
        w.double(c.heatMax)
        w.raw(",\"current\":")
        w.bool(c.current)
        w.raw(",\"best_rank\":")
        if let rank = best.firstIndex(of: k) { w.int(rank + 1) } else { w.raw("null") }
        w.raw(",\"verdict\":")
        w.string(r.verdict.rawValue)
        w.raw(",\"decisions\":")
        w.int(r.decisions)
        w.raw(",\"full_closes\":")
        w.int(r.fullCloses)
        w.raw(",\"downgraded\":")
        w.int(r.downgraded)
        w.raw(",\"downgrade_rate\":")
        num(r.downgradeRate)
        w.raw(",\"cold_warm_rate\":")
        num(r.coldWarmRate)
        w.raw(",\"time_share\":{")
        for (n, b) in ["COLD", "WARM", "HOT", "UNKNOWN"].enumerated() {
            if n > 0 { w.raw(",") }
            w.string(b)
            w.raw(":")
            w.double(Self.share(r, b))
        }
        w.raw("},\"pnl_usd\":")
        w.double(r.pnlUSD)
        w.raw(",\"max_drawdown_usd\":")
        w.double(r.maxDrawdownUSD)
        w.raw(",\"false_positives\":")
        w.int(r.falsePositives)
        w.raw(",\"evaluated\":")
        w.int(r.evaluated)
        w.raw(",\"pending\":")
        w.int(r.pending)
        w.raw(",\"unpriced\":")
        w.int(r.unpriced)
        w.raw("}")
    }

    /// The grid as one JSON object.
    public func json() -> String {
        var w = JSONWriter(capacity: 1 << 16)
        w.raw("{\"seconds\":")
        w.double(seconds)
        w.raw(",\"heat_min_values\":[")
        for (n, v) in mins.enumerated() {
            if n > 0 { w.raw(",") }
            w.double(v)
        }
        w.raw("],\"heat_max_values\":[")
        for (n, v) in maxs.enumerated() {
            if n > 0 { w.raw(",") }
            w.double(v)
        }
        w.raw("],\"current\":")
        if let c = current, let k = cells.firstIndex(where: { $0?.current == true }) {
            cellJSON(c, k, &w)
        } else {
            w.raw("null")
        }
        w.raw(",\"best\":[")
        for (n, k) in best.enumerated() {
            if n > 0 { w.raw(",") }
            cellJSON(cells[k]!, k, &w)
        }
        w.raw("],\"cells\":[")
        var first = true
        for (k, cell) in cells.enumerated() {
            guard let c = cell else { continue }
            if !first { w.raw(",") }
            first = false
            cellJSON(c, k, &w)
        }
        w.raw("]}")
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

extension TuneResult {
    /// The grid as one self-contained HTML page in the shadow report's style: heat maps of the kept-part
    /// P&L (with each cell's verdict), the COLD/WARM downgrade rate and the max drawdown.
    public func html(title: String = "HeatGate tune", subtitle: String = "") -> String {
        func pct(_ x: Double?) -> String { x.map { formatNumber($0 * 100, decimals: 1) + "%" } ?? "–" }
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(esc(title))</title>
            <style>
            :root{--ink:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#f6f7f9;--ok:#12b76a;--bad:#d92d20;--rev:#f79009}
            *{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
            font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
            main{max-width:1140px;margin:0 auto;padding:24px 28px 40px}
            h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:0 0 10px}.sub{color:var(--muted);font-size:13px}
            .panel{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 18px;margin:16px 0}
            table.map{border-collapse:separate;border-spacing:3px;font-variant-numeric:tabular-nums;font-size:12px}
            table.map th{color:var(--muted);font-weight:500;padding:2px 6px}
            table.map td{width:86px;height:44px;text-align:center;border-radius:6px;border:2px solid transparent;line-height:1.2}
            table.map td b{display:block;font-size:13px}table.map td.cur{border-color:#1d2433}
            table.map td.skip{background:#f2f4f7;color:#98a2b3}
            .best{display:inline-block;background:#1d2433;color:#fff;border-radius:8px;padding:0 5px;font-size:10px}
            ul{margin:6px 0 0;padding-left:18px}.legend{color:var(--muted);font-size:12px;margin-top:8px}
            </style></head><body><main>
            <h1>\(esc(title))</h1>
            <div class="sub">\(esc(subtitle))\(subtitle.isEmpty ? "" : " · ")\(mins.count) × \(maxs.count) grid · \
            horizon \(TimeText.human(options.horizonSec)) · false positive below −\(formatNumber(options.lossThresholdBps, decimals: 0)) bps · \
            PROCEED &gt; \(pct(options.proceedRate)) · HOLD &lt; \(pct(options.holdRate)) or any false positive · \
            \(formatNumber(seconds, decimals: 2)) s</div>

            """
        if let c = current {
            h +=
                "<div class=\"panel\"><h2>Current: HEAT_MIN \(formatNumber(c.heatMin, decimals: 2)), HEAT_MAX \(formatNumber(c.heatMax, decimals: 2)) — \(c.report.verdict.rawValue)</h2>"
                + "<ul>\(c.report.verdictReasons.map { "<li>\(esc($0))</li>" }.joined())</ul>"
        } else {
            h += "<div class=\"panel\"><h2>The current setting is not on the grid</h2>"
        }
        if best.isEmpty {
            h += "<p>No cell reaches PROCEED.</p></div>\n"
        } else {
            h += "<p>Best PROCEED cells (most kept-part P&amp;L, then least drawdown):</p><ul>"
            for (rank, k) in best.enumerated() {
                let c = cells[k]!
                h +=
                    "<li><span class=\"best\">\(rank + 1)</span> HEAT_MIN \(formatNumber(c.heatMin, decimals: 2)), HEAT_MAX \(formatNumber(c.heatMax, decimals: 2)): "
                    + "P&amp;L \(formatNumber(c.report.pnlUSD, decimals: 2)) USD, drawdown \(formatNumber(c.report.maxDrawdownUSD, decimals: 2)) USD</li>"
            }
            h += "</ul></div>\n"
        }
        let pnls = cells.compactMap { $0?.report.pnlUSD }
        let pnlScale = max(1e-9, pnls.map(abs).max() ?? 1)
        let dds = cells.compactMap { $0?.report.maxDrawdownUSD }
        let ddScale = max(1e-9, dds.max() ?? 1)
        h += map("Kept-part P&L over the horizon (USD) and verdict", legend: "green gains, red losses") { r in
            let v = r.pnlUSD / pnlScale
            return (diverging(v), formatNumber(r.pnlUSD, decimals: 0), r.verdict.rawValue)
        }
        h += map("COLD/WARM full closes downgraded", legend: "darker: more downgraded") { r in
            (
                sequential(r.coldWarmRate ?? 0, hue: 217), pct(r.coldWarmRate),
                "\(r.coldWarmDowngraded)/\(r.coldWarmFullCloses)"
            )
        }
        h += map("Max drawdown of the kept parts (USD) and false positives", legend: "darker: deeper drawdown") { r in
            (
                sequential(r.maxDrawdownUSD / ddScale, hue: 0), formatNumber(r.maxDrawdownUSD, decimals: 0),
                "fp \(r.falsePositives)"
            )
        }
        h += "<div class=\"legend\">A framed cell is the current setting; a numbered badge a best cell.</div>"
        h += "</main></body></html>\n"
        return h
    }

    func map(_ title: String, legend: String, _ cell: (ShadowReport) -> (color: String, value: String, note: String))
        -> String
    {
        var h = "<div class=\"panel\"><h2>\(esc(title))</h2><table class=\"map\"><tr><th>HEAT_MIN ╲ HEAT_MAX</th>"
        for hi in maxs { h += "<th>\(formatNumber(hi, decimals: 2))</th>" }
        h += "</tr>"
        for (i, lo) in mins.enumerated() {
            h += "<tr><th>\(formatNumber(lo, decimals: 2))</th>"
            for j in maxs.indices {
                let k = i * maxs.count + j
                guard let c = cells[k] else {
                    h += "<td class=\"skip\">–</td>"
                    continue
                }
                let (color, value, note) = cell(c.report)
                let badge = best.firstIndex(of: k).map { " <span class=\"best\">\($0 + 1)</span>" } ?? ""
                h +=
                    "<td class=\"\(c.current ? "cur" : "")\" style=\"background:\(color)\" "
                    + "title=\"HEAT_MIN \(formatNumber(c.heatMin, decimals: 2)) HEAT_MAX \(formatNumber(c.heatMax, decimals: 2))\">"
                    + "<b>\(esc(value))\(badge)</b>\(esc(note))</td>"
            }
            h += "</tr>"
        }
        return h + "</table><div class=\"legend\">\(esc(legend))</div></div>\n"
    }

    /// -1 red … 0 white … +1 green.
    func diverging(_ v: Double) -> String {
        let x = max(-1, min(1, v.isFinite ? v : 0))
        let hue = x < 0 ? 4 : 145
        return "hsl(\(hue),70%,\(formatNumber(97 - abs(x) * 42, decimals: 0))%)"
    }

    /// 0 white … 1 saturated.
    func sequential(_ v: Double, hue: Int) -> String {
        let x = max(0, min(1, v.isFinite ? v : 0))
        return "hsl(\(hue),75%,\(formatNumber(97 - x * 45, decimals: 0))%)"
    }
}
