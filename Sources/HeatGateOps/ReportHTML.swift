import HeatGateCore

extension ShadowReport {
    /// The report as one self-contained HTML page: inline CSS and SVG, no script, no external resource.
    ///
    /// - Parameter title: the page's heading (e.g. the host's name).
    public func html(title: String = "HeatGate shadow report", generatedAt: Double? = nil) -> String {
        var h = ""
        func pct(_ x: Double?) -> String { x.map { formatNumber($0 * 100, decimals: 1) + "%" } ?? "–" }
        let verdictClass = verdict.rawValue.lowercased()
        h += """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(esc(title)) — \(verdict.rawValue)</title>
            <style>
            :root{--ink:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#f6f7f9;--cold:#3b82f6;--warm:#f59e0b;--hot:#ef4444;
            --unk:#98a2b3;--ok:#12b76a;--bad:#d92d20;--rev:#f79009}
            *{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
            font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
            main{max-width:1140px;margin:0 auto;padding:24px 28px 40px}
            header{display:flex;align-items:center;justify-content:space-between;gap:24px;margin-bottom:18px}
            h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:0 0 10px}.sub{color:var(--muted);font-size:13px}
            .verdict{border-radius:10px;padding:10px 18px;color:#fff;text-align:right;min-width:230px}
            .verdict b{display:block;font-size:24px;letter-spacing:.04em}.verdict span{font-size:12px;opacity:.92}
            .proceed{background:var(--ok)}.review{background:var(--rev)}.hold{background:var(--bad)}
            .cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin-bottom:16px}
            .card,.panel{background:#fff;border:1px solid var(--line);border-radius:10px}
            .card{padding:12px 14px}.card .k{color:var(--muted);font-size:12px}.card .v{font-size:22px;font-weight:600;margin-top:2px}
            .card .n{color:var(--muted);font-size:12px}
            .panel{padding:16px 18px;margin-bottom:16px}
            .row{display:grid;grid-template-columns:1.35fr 1fr;gap:16px}
            table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
            th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
            th{color:var(--muted);font-weight:500;font-size:12px}th.l{text-align:left}th:first-child,td:first-child{text-align:left}
            td.l{text-align:left}.scroll{overflow-x:auto}table.dense{font-size:12.5px}table.dense td,table.dense th{padding:5px 6px}tr:last-child td{border-bottom:0}
            .dot{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
            .fp{color:var(--bad);font-weight:600}.good{color:var(--ok)}.badtxt{color:var(--bad)}
            ul.reasons{margin:6px 0 0;padding-left:18px}.legend{color:var(--muted);font-size:12px;margin-top:6px}
            .legend i{display:inline-block;width:18px;height:9px;margin:0 4px 0 12px;vertical-align:0;border-radius:2px}
            footer{color:var(--muted);font-size:12px;margin-top:8px}
            </style></head><body><main>
            <header><div><h1>\(esc(title))</h1>
            <div class="sub">\(readable(from)) → \(readable(to)) UTC · \(TimeText.human(to - from)) · \(decisions) decisions\
            \(modes.isEmpty ? "" : " (" + modes.map { "\($0.mode) \($0.count)" }.joined(separator: ", ") + ")")\
             · horizon \(TimeText.human(options.horizonSec)) · loss threshold \(formatNumber(options.lossThresholdBps, decimals: 0)) bps</div>
            <ul class="reasons">\(verdictReasons.map { "<li>\(esc($0))</li>" }.joined())</ul></div>
            <div class="verdict \(verdictClass)"><span>go / no-go</span><b>\(verdict.rawValue)</b>
            <span>PROCEED &gt; \(pct(options.proceedRate)) · HOLD &lt; \(pct(options.holdRate)) or any false positive</span></div>
            </header>

            """
        let pnlClass = pnlUSD < 0 ? "badtxt" : "good"
        h += "<div class=\"cards\">"
        h += card(
            "COLD/WARM downgraded", pct(coldWarmRate), "\(coldWarmDowngraded) of \(coldWarmFullCloses) full closes")
        h += card("All full closes downgraded", pct(downgradeRate), "\(downgraded) of \(fullCloses)")
        h += card(
            "False positives", "<span class=\"\(falsePositives > 0 ? "badtxt" : "good")\">\(falsePositives)</span>",
            "\(evaluated) evaluated · \(pending) pending · \(unpriced) unpriced")
        h += card(
            "Kept-part P&L", "<span class=\"\(pnlClass)\">\(formatNumber(pnlUSD, decimals: 2))</span>",
            "USD · max drawdown \(formatNumber(maxDrawdownUSD, decimals: 2))"
                + (meanBps.map { " · mean \(formatNumber($0, decimals: 1)) bps" } ?? ""))
        h += card(
            "Failed closed", "\(failClosedTotal)",
            failClosed.isEmpty
                ? "inputs always usable" : failClosed.map { "\($0.reason) \($0.count)" }.joined(separator: ", "))
        h += "</div>\n"

        h += "<section class=\"panel\"><h2>Heat over time</h2>\(heatChart())"
        h += """
            <div class="legend"><i style="background:#dbeafe"></i>COLD &lt; \(formatNumber(options.policy.heatMin, decimals: 2))\
            <i style="background:#fef3c7"></i>WARM<i style="background:#fee2e2"></i>HOT ≥ \(formatNumber(options.policy.heatMax, decimals: 2))\
            <i style="background:repeating-linear-gradient(45deg,#e4e7ec 0 3px,#fff 3px 6px)"></i>inputs not usable\
            <i style="background:#1d2433;height:2px;vertical-align:3px"></i>heat \
            <span style="color:#12b76a;margin-left:12px">▼</span> downgrade, kept part gained \
            <span style="color:#d92d20;margin-left:8px">▼</span> lost \
            <span style="color:#98a2b3;margin-left:8px">▼</span> not priced</div></section>

            """

        h += "<div class=\"row\"><section class=\"panel\"><h2>Per bucket</h2><table>"
        h += "<tr><th>bucket</th><th>full closes</th><th>downgraded</th><th>rate</th><th>time</th><th>share</th></tr>"
        for b in buckets {
            let share = totalSeconds > 0 ? b.seconds / totalSeconds : nil
            h += "<tr><td><span class=\"dot\" style=\"background:\(color(b.bucket))\"></span>\(b.bucket)</td>"
            h += "<td>\(b.fullCloses)</td><td>\(b.downgraded)</td><td>\(pct(b.downgradeRate))</td>"
            h += "<td>\(TimeText.human(b.seconds))</td><td>\(pct(share))</td></tr>"
        }
        h += "</table>\(timeBar())</section>"
        h += "<section class=\"panel\"><h2>Failed closed and held</h2><table><tr><th>reason</th><th>decisions</th></tr>"
        if failClosed.isEmpty {
            h += "<tr><td class=\"l\">none: inputs were usable for every full close</td><td></td></tr>"
        }
        for f in failClosed { h += "<tr><td>\(esc(f.reason))</td><td>\(f.count)</td></tr>" }
        h += "<tr><td>kill switch (held, not calibration)</td><td>\(heldByKillSwitch)</td></tr>"
        h += "<tr><td>stale proposal (held, not calibration)</td><td>\(heldStale)</td></tr></table></section></div>\n"

        h +=
            "<section class=\"panel\"><h2>Downgrades over the horizon</h2><div class=\"scroll\"><table class=\"dense\">"
        h +=
            "<tr><th>seq</th><th class=\"l\">time UTC</th><th class=\"l\">symbol</th><th class=\"l\">bucket</th><th class=\"l\">calibration</th><th>kept</th>"
        h +=
            "<th>side</th><th>entry</th><th>exit</th><th>P&amp;L bps</th><th>P&amp;L USD</th><th>worst bps</th><th></th></tr>"
        let shown = outcomes.suffix(200)
        if outcomes.count > shown.count {
            h +=
                "<tr><td class=\"l\" colspan=\"13\">… \(outcomes.count - shown.count) earlier downgrades in the JSON report</td></tr>"
        }
        for o in shown {
            let cls = o.falsePositive ? " class=\"fp\"" : ""
            h +=
                "<tr\(cls)><td>\(o.seq)</td><td class=\"l\">\(readable(o.ts, seconds: true))</td><td class=\"l\">\(esc(o.symbol))</td>"
            h += "<td class=\"l\"><span class=\"dot\" style=\"background:\(color(o.bucket))\"></span>\(o.bucket)</td>"
            h += "<td class=\"l\">\(esc(o.original)) → \(esc(o.calibrated))</td>"
            h += "<td>\(formatNumber(o.keptFraction * 100, decimals: 0))%</td>"
            h += "<td>\(o.side < 0 ? "short" : "long")\(o.sideKnown ? "" : "*")</td>"
            h += "<td>\(o.entryPrice.map { formatNumber($0, decimals: 4) } ?? "–")</td>"
            h += "<td>\(o.exitPrice.map { formatNumber($0, decimals: 4) } ?? "–")</td>"
            h += "<td>\(o.pnlBps.map { formatNumber($0, decimals: 1) } ?? o.status.rawValue)</td>"
            h += "<td>\(o.pnlUSD.map { formatNumber($0, decimals: 2) } ?? "–")</td>"
            h += "<td>\(o.worstBps.map { formatNumber($0, decimals: 1) } ?? "–")</td>"
            h += "<td class=\"l\">\(o.falsePositive ? "FALSE POSITIVE" : "")</td></tr>"
        }
        if outcomes.isEmpty { h += "<tr><td class=\"l\" colspan=\"13\">no downgrade in the window</td></tr>" }
        h += "</table></div></section>\n"
        h += """
            <footer>Time in bucket: heat as a step function that changes at every decision and every journaled state \
            change, UNKNOWN once the equity is older than \(TimeText.human(options.policy.stateMaxAgeSec)). \
            Kept-part P&amp;L: the share a downgrade left open × |notional| × the price move from the decision to \
            decision + horizon, signed by the position's side (* side unknown, long assumed). \
            A false positive lost more than the threshold. \
            \(generatedAt.map { "Generated \(TimeText.iso($0))." } ?? "")</footer>
            </main></body></html>

            """
        return h
    }

    /// `2025-11-24 16:00` (or `11-24 16:00:27` with seconds, for tables).
    func readable(_ t: Double, seconds: Bool = false) -> String {
        let iso = Array(TimeText.iso(t))
        return seconds
            ? String(iso[5..<10]) + " " + String(iso[11..<19]) : String(iso[0..<10]) + " " + String(iso[11..<16])
    }

    func card(_ key: String, _ value: String, _ note: String) -> String {
        "<div class=\"card\"><div class=\"k\">\(esc(key))</div><div class=\"v\">\(value)</div><div class=\"n\">\(esc(note))</div></div>"
    }

    func color(_ bucket: String) -> String {
        switch bucket {
        case "COLD": "#3b82f6"
        case "WARM": "#f59e0b"
        case "HOT": "#ef4444"
        default: "#98a2b3"
        }
    }

    /// Heat against the bucket bands, as a step line; gaps where the inputs were not usable; downgrades
    /// as markers coloured by what the kept part did.
    func heatChart() -> String {
        let (width, height) = (1080.0, 300.0)
        let (left, right, top, bottom) = (48.0, 12.0, 10.0, 28.0)
        let plotW = width - left - right
        let plotH = height - top - bottom
        let maxHeat = samples.compactMap(\.heat).max() ?? 0
        let yMax = niceCeil(max(options.policy.heatMax * 1.3, maxHeat * 1.1, 0.1))
        let span = max(to - from, 1)
        func x(_ t: Double) -> Double { left + (min(max(t, from), to) - from) / span * plotW }
        func y(_ v: Double) -> Double { top + plotH - min(max(v, 0), yMax) / yMax * plotH }
        func f(_ v: Double) -> String { formatNumber(v, decimals: 1) }
        var s = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"100%\" role=\"img\" "
        s += "aria-label=\"heat over time\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\" fill=\"#667085\">"
        s +=
            "<defs><pattern id=\"unk\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
        s += "<rect width=\"3\" height=\"6\" fill=\"#e4e7ec\"/></pattern></defs>"
        let cold = y(options.policy.heatMin)
        let hot = y(options.policy.heatMax)
        s +=
            "<rect x=\"\(f(left))\" y=\"\(f(cold))\" width=\"\(f(plotW))\" height=\"\(f(top + plotH - cold))\" fill=\"#dbeafe\"/>"
        s +=
            "<rect x=\"\(f(left))\" y=\"\(f(hot))\" width=\"\(f(plotW))\" height=\"\(f(cold - hot))\" fill=\"#fef3c7\"/>"
        s +=
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(hot - top))\" fill=\"#fee2e2\"/>"
        // Y axis: the two thresholds and a few round values.
        var ticks = Set([0, options.policy.heatMin, options.policy.heatMax])
        let tickStep = niceCeil(yMax / 5)
        var tick = tickStep
        while tick <= yMax + 1e-9 {
            ticks.insert((tick * 1000).rounded() / 1000)
            tick += tickStep
        }
        for t in ticks.sorted() {
            let isThreshold = t == options.policy.heatMin || t == options.policy.heatMax
            if !isThreshold,
                ticks.contains(where: {
                    $0 != t && abs(y($0) - y(t)) < 12 && ($0 == options.policy.heatMin || $0 == options.policy.heatMax)
                })
            {
                continue
            }
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(y(t)))\" y2=\"\(f(y(t)))\" "
            s +=
                isThreshold
                ? "stroke=\"#98a2b3\" stroke-dasharray=\"4 3\"/>" : "stroke=\"#ffffff\" stroke-opacity=\".7\"/>"
            s +=
                "<text x=\"\(f(left - 6))\" y=\"\(f(y(t) + 4))\" text-anchor=\"end\"\(isThreshold ? " fill=\"#1d2433\"" : "")>\(formatNumber(t, decimals: 2))</text>"
        }
        // X axis: about six labelled times.
        let step = niceTimeStep(span / 6)
        var t = (from / step).rounded(.up) * step
        while t <= to {
            s +=
                "<line x1=\"\(f(x(t)))\" x2=\"\(f(x(t)))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH + 4))\" stroke=\"#98a2b3\"/>"
            s +=
                "<text x=\"\(f(x(t)))\" y=\"\(f(height - 8))\" text-anchor=\"middle\">\(timeLabel(t, step: step))</text>"
            t += step
        }
        // Inputs not usable: hatched spans.
        for (k, sample) in samples.enumerated() where sample.heat == nil {
            let end = k + 1 < samples.count ? samples[k + 1].ts : to
            guard end > sample.ts else { continue }
            s +=
                "<rect x=\"\(f(x(sample.ts)))\" y=\"\(f(top))\" width=\"\(f(x(end) - x(sample.ts)))\" height=\"\(f(plotH))\" fill=\"url(#unk)\"/>"
        }
        // The heat: a step line, broken where the inputs were not usable; thinned to ~2 points a pixel.
        var path = ""
        var pen = false
        var lastX = -1.0
        var lastY = 0.0
        for (k, sample) in samples.enumerated() {
            guard let heat = sample.heat else {
                pen = false
                continue
            }
            let end = k + 1 < samples.count ? samples[k + 1].ts : to
            let (x0, x1, yy) = (x(sample.ts), x(end), y(heat))
            if !pen {
                path += "M\(f(x0)) \(f(yy))"
                pen = true
            } else if x0 - lastX >= 0.5 || abs(yy - lastY) >= 0.5 {
                path += "V\(f(yy))"
            }
            path += "H\(f(x1))"
            lastX = x0
            lastY = yy
        }
        s += "<path d=\"\(path)\" fill=\"none\" stroke=\"#1d2433\" stroke-width=\"1.6\" stroke-linejoin=\"round\"/>"
        // Downgrades.
        for o in outcomes {
            let heat = samples.last(where: { $0.fromDecision && $0.ts == o.ts })?.heat
            let cx = x(o.ts)
            let cy = heat.map { y($0) - 7 } ?? (top + plotH - 8)
            let fill =
                o.status != .evaluated ? "#98a2b3" : o.falsePositive || (o.pnlBps ?? 0) < 0 ? "#d92d20" : "#12b76a"
            s +=
                "<path d=\"M\(f(cx - 5)) \(f(cy - 6))H\(f(cx + 5))L\(f(cx)) \(f(cy + 2))Z\" fill=\"\(fill)\" stroke=\"#fff\" stroke-width=\"1\">"
            s +=
                "<title>#\(o.seq) \(esc(o.symbol)) \(esc(o.original)) → \(esc(o.calibrated)) \(o.pnlBps.map { formatNumber($0, decimals: 1) + " bps" } ?? o.status.rawValue)</title></path>"
        }
        s +=
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#d0d5dd\"/>"
        s += "</svg>"
        return s
    }

    /// The share of time per bucket as one stacked bar.
    func timeBar() -> String {
        let total = totalSeconds
        guard total > 0 else { return "" }
        var s =
            "<svg viewBox=\"0 0 600 22\" width=\"100%\" style=\"margin-top:12px\" xmlns=\"http://www.w3.org/2000/svg\">"
        var x = 0.0
        for b in buckets where b.seconds > 0 {
            let w = b.seconds / total * 600
            s +=
                "<rect x=\"\(formatNumber(x, decimals: 1))\" y=\"0\" width=\"\(formatNumber(w, decimals: 1))\" height=\"22\" fill=\"\(color(b.bucket))\">"
            s += "<title>\(b.bucket) \(TimeText.human(b.seconds))</title></rect>"
            if w > 60 {
                s += "<text x=\"\(formatNumber(x + w / 2, decimals: 1))\" y=\"15\" fill=\"#fff\" font-size=\"11\" "
                s +=
                    "text-anchor=\"middle\" font-weight=\"600\">\(b.bucket) \(formatNumber(b.seconds / total * 100, decimals: 0))%</text>"
            }
            x += w
        }
        return s + "</svg>"
    }

    func niceCeil(_ v: Double) -> Double {
        let steps = [0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 10]
        for s in steps where v <= s { return s }
        return (v / 5).rounded(.up) * 5
    }

    func niceTimeStep(_ approx: Double) -> Double {
        let steps: [Double] = [1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
        for s in steps where approx <= s { return s }
        return (approx / 86400).rounded(.up) * 86400
    }

    func timeLabel(_ t: Double, step: Double) -> String {
        let iso = TimeText.iso(t)  // 2025-11-24T16:00:00Z
        let chars = Array(iso)
        if step >= 86400 { return String(chars[5..<10]) }
        if step >= 60 { return String(chars[11..<16]) + (step >= 21600 ? " " + String(chars[5..<10]) : "") }
        return String(chars[11..<19])
    }
}

/// Escapes text for HTML.
func esc(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}
