import HeatGateCore

extension ShadowReport {
    /// The report for a terminal.
    public func text() -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        func pct(_ x: Double?) -> String { x.map { formatNumber($0 * 100, decimals: 1) + " %" } ?? "-" }
        line("HeatGate shadow report")
        line(
            "window     \(TimeText.iso(from)) .. \(TimeText.iso(to))  (\(TimeText.human(to - from)))  "
                + "horizon \(TimeText.human(options.horizonSec))  loss threshold \(formatNumber(options.lossThresholdBps, decimals: 0)) bps"
        )
        line(
            "decisions  \(decisions)"
                + (modes.isEmpty ? "" : "  (" + modes.map { "\($0.mode) \($0.count)" }.joined(separator: ", ") + ")"))
        line()
        line("VERDICT    \(verdict.rawValue)")
        for r in verdictReasons { line("           - \(r)") }
        line()
        line(
            "full closes \(fullCloses), downgraded \(downgraded) (\(pct(downgradeRate))); COLD/WARM \(coldWarmDowngraded) of \(coldWarmFullCloses) (\(pct(coldWarmRate)))"
        )
        if heldByKillSwitch + heldStale > 0 {
            line("held, not calibration: kill switch \(heldByKillSwitch), stale proposal \(heldStale)")
        }
        line()
        line("bucket    full closes  downgraded      rate   time in bucket   share")
        for b in buckets {
            let share = totalSeconds > 0 ? b.seconds / totalSeconds : nil
            line(
                b.bucket.padding(8) + String(b.fullCloses).leftPadding(13) + String(b.downgraded).leftPadding(12)
                    + pct(b.downgradeRate).leftPadding(10) + TimeText.human(b.seconds).leftPadding(17)
                    + pct(share).leftPadding(8))
        }
        line()
        line(
            "failed closed \(failClosedTotal)"
                + (failClosed.isEmpty
                    ? "" : ": " + failClosed.map { "\($0.reason) \($0.count)" }.joined(separator: ", ")))
        line()
        line(
            "downgrades over the horizon: \(evaluated) evaluated, \(pending) pending, \(unpriced) unpriced; "
                + "false positives \(falsePositives); kept-part P&L \(formatNumber(pnlUSD, decimals: 2)) USD"
                + ", max drawdown \(formatNumber(maxDrawdownUSD, decimals: 2)) USD"
                + (meanBps.map { ", mean \(formatNumber($0, decimals: 1)) bps" } ?? ""))
        if !outcomes.isEmpty {
            line()
            line(
                "   seq  time                  symbol        bucket   action                              kept       P&L bps    P&L USD   worst bps"
            )
            for o in outcomes {
                line(
                    String(o.seq).leftPadding(6) + "  " + TimeText.iso(o.ts).padding(22) + o.symbol.padding(14)
                        + o.bucket.padding(9) + "\(o.original) → \(o.calibrated)".padding(36)
                        + (formatNumber(o.keptFraction * 100, decimals: 0) + " %").leftPadding(5)
                        + (o.pnlBps.map { formatNumber($0, decimals: 1) } ?? o.status.rawValue).leftPadding(14)
                        + (o.pnlUSD.map { formatNumber($0, decimals: 2) } ?? "-").leftPadding(11)
                        + (o.worstBps.map { formatNumber($0, decimals: 1) } ?? "-").leftPadding(12)
                        + (o.falsePositive ? "  FALSE POSITIVE" : "") + (o.sideKnown ? "" : "  (side assumed long)"))
            }
        }
        return out
    }

    /// The report as one JSON object (numbers unrounded; times epoch seconds).
    public func json() -> String {
        var w = JSONWriter(capacity: 4096)
        func num(_ x: Double?) { if let x { w.double(x) } else { w.raw("null") } }
        w.raw("{\"verdict\":")
        w.string(verdict.rawValue)
        w.raw(",\"verdict_reasons\":[")
        for (i, r) in verdictReasons.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.string(r)
        }
        w.raw("],\"from\":")
        w.fixed(from, decimals: 6)
        w.raw(",\"to\":")
        w.fixed(to, decimals: 6)
        w.raw(",\"options\":{\"horizon_sec\":")
        w.double(options.horizonSec)
        w.raw(",\"loss_threshold_bps\":")
        w.double(options.lossThresholdBps)
        w.raw(",\"proceed_rate\":")
        w.double(options.proceedRate)
        w.raw(",\"hold_rate\":")
        w.double(options.holdRate)
        w.raw(",\"min_evaluated\":")
        w.int(options.minEvaluated)
        w.raw(",\"heat_min\":")
        w.double(options.policy.heatMin)
        w.raw(",\"heat_max\":")
        w.double(options.policy.heatMax)
        w.raw(",\"state_max_age_sec\":")
        w.double(options.policy.stateMaxAgeSec)
        w.raw("},\"decisions\":")
        w.int(decisions)
        w.raw(",\"modes\":{")
        for (i, m) in modes.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.string(m.mode)
            w.byte(UInt8(ascii: ":"))
            w.int(m.count)
        }
        w.raw("},\"full_closes\":")
        w.int(fullCloses)
        w.raw(",\"downgraded\":")
        w.int(downgraded)
        w.raw(",\"downgrade_rate\":")
        num(downgradeRate)
        w.raw(",\"cold_warm_full_closes\":")
        w.int(coldWarmFullCloses)
        w.raw(",\"cold_warm_downgraded\":")
        w.int(coldWarmDowngraded)
        w.raw(",\"cold_warm_rate\":")
        num(coldWarmRate)
        w.raw(",\"held_kill_switch\":")
        w.int(heldByKillSwitch)
        w.raw(",\"held_stale\":")
        w.int(heldStale)
        w.raw(",\"buckets\":[")
        for (i, b) in buckets.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.raw("{\"bucket\":")
            w.string(b.bucket)
            w.raw(",\"full_closes\":")
            w.int(b.fullCloses)
            w.raw(",\"downgraded\":")
            w.int(b.downgraded)
            w.raw(",\"downgrade_rate\":")
            num(b.downgradeRate)
            w.raw(",\"seconds\":")
            w.fixed(b.seconds, decimals: 6)
            w.raw(",\"share\":")
            num(totalSeconds > 0 ? b.seconds / totalSeconds : nil)
            w.raw("}")
        }
        w.raw("],\"fail_closed\":{")
        for (i, f) in failClosed.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.string(f.reason)
            w.byte(UInt8(ascii: ":"))
            w.int(f.count)
        }
        w.raw("},\"fail_closed_total\":")
        w.int(failClosedTotal)
        w.raw(",\"evaluated\":")
        w.int(evaluated)
        w.raw(",\"pending\":")
        w.int(pending)
        w.raw(",\"unpriced\":")
        w.int(unpriced)
        w.raw(",\"false_positives\":")
        w.int(falsePositives)
        w.raw(",\"pnl_usd\":")
        w.double(pnlUSD)
        w.raw(",\"max_drawdown_usd\":")
        w.double(maxDrawdownUSD)
        w.raw(",\"mean_bps\":")
        num(meanBps)
        w.raw(",\"downgrades\":[")
        for (i, o) in outcomes.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.raw("{\"seq\":")
            w.uint(o.seq)
            w.raw(",\"ts\":")
            w.fixed(o.ts, decimals: 6)
            w.raw(",\"symbol\":")
            w.string(o.symbol)
            w.raw(",\"bucket\":")
            w.string(o.bucket)
            w.raw(",\"reason\":")
            w.string(o.reason)
            w.raw(",\"original_action\":")
            w.string(o.original)
            w.raw(",\"calibrated_action\":")
            w.string(o.calibrated)
            w.raw(",\"kept_fraction\":")
            w.double(o.keptFraction)
            w.raw(",\"side\":")
            w.string(o.side < 0 ? "short" : "long")
            w.raw(",\"side_known\":")
            w.bool(o.sideKnown)
            w.raw(",\"notional_usd\":")
            num(o.notionalUSD)
            w.raw(",\"kept_usd\":")
            num(o.keptUSD)
            w.raw(",\"entry_price\":")
            num(o.entryPrice)
            w.raw(",\"exit_price\":")
            num(o.exitPrice)
            w.raw(",\"pnl_bps\":")
            num(o.pnlBps)
            w.raw(",\"pnl_usd\":")
            num(o.pnlUSD)
            w.raw(",\"worst_bps\":")
            num(o.worstBps)
            w.raw(",\"status\":")
            w.string(o.status.rawValue)
            w.raw(",\"false_positive\":")
            w.bool(o.falsePositive)
            w.raw("}")
        }
        w.raw("]}")
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
    func leftPadding(_ n: Int) -> String { count >= n ? " " + self : String(repeating: " ", count: n - count) + self }
}
