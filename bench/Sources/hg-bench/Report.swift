import Foundation

import enum HeatGateServer.Flusher

/// Renders `BENCHMARKS.md`: one table with every figure of SPEC §10, its goal, the measured value, the
/// baseline measured in the same run, the ratio, and the command that reproduces it.
struct Report {
    let result: [String: Any]
    let smoke: Bool

    func value(_ path: Any...) -> Any? { walk(path) }

    /// The value at `path` (dictionary keys and array indices) in the results.
    func walk(_ path: [Any]) -> Any? {
        var cur: Any? = result
        for key in path {
            if let k = key as? String {
                cur = (cur as? [String: Any])?[k]
            } else if let i = key as? Int {
                guard let a = cur as? [Any], i < a.count else { return nil }
                cur = a[i]
            }
        }
        return cur
    }

    /// A P7 list of p99s, as "a, b, c".
    func runsP99(_ key: String) -> String {
        let runs = value("p7", key) as? [Any] ?? []
        return runs.compactMap { ($0 as? NSNumber)?.doubleValue }.map { f($0, "") }.joined(separator: ", ")
    }

    func number(_ path: Any...) -> Double? {
        let cur = walk(path)
        if let d = cur as? Double { return d }
        if let i = cur as? Int { return Double(i) }
        return (cur as? NSNumber)?.doubleValue
    }

    func f(_ v: Double?, _ unit: String = "", digits: Int = 1) -> String {
        guard let v, v.isFinite else { return "–" }
        return String(format: "%.\(digits)f", v) + unit
    }

    /// The P4 run of `target` over `transport` at `rate`.
    func p4(_ target: String, _ transport: String, _ rate: Double) -> [String: Any]? {
        (value("p4") as? [[String: Any]])?.first {
            $0["target"] as? String == target && $0["transport"] as? String == transport
                && (($0["rate_per_s"] as? NSNumber)?.doubleValue ?? -1) == rate
        }
    }

    func baselineP4(_ rate: Double) -> [String: Any]? {
        (value("baseline", "result", "p4") as? [[String: Any]])?.first {
            (($0["rate_per_s"] as? NSNumber)?.doubleValue ?? -1) == rate
        }
    }

    func met(_ ok: Bool?) -> String { ok == nil ? "–" : ok! ? "met" : "**missed**" }

    func markdown() -> String {
        var rows: [[String]] = []
        let make = smoke ? "make bench-smoke" : "make bench"
        func row(
            _ n: String, _ figure: String, _ goal: String, _ measured: String, _ base: String, _ ratio: String,
            _ ok: Bool?, _ cmd: String
        ) {
            rows.append([n, figure, goal, measured, base, ratio, met(ok), cmd])
        }
        // P1/P2
        let hot = "cd bench && swift package benchmark --target HotPath"
        for (n, key, p50Goal, p99Goal) in [
            ("P1", "P1_decide_(parsed_proposal,_10k_positions)", 50.0, 250.0),
            ("P2", "P2_bytes->parse->decide->encode->bytes", 1000.0, 3000.0),
        ] {
            let p50 = number("hotpath", key, "wallClock", "p50")
            let p99 = number("hotpath", key, "wallClock", "p99")
            let mallocs = number("hotpath", key, "mallocCountTotal", "p99")
            row(
                n, n == "P1" ? "decide, parsed proposal (ns/op)" : "bytes→parse→decide→encode→bytes (ns/op)",
                "p50 ≤ \(Int(p50Goal)) ns, p99 ≤ \(Int(p99Goal)) ns" + (n == "P1" ? ", 0 mallocs" : ""),
                "p50 \(f(p50, " ns", digits: 0)), p99 \(f(p99, " ns", digits: 0)), mallocs/op p99 \(f(mallocs, digits: 0))",
                "–", "–",
                p50.flatMap { a in p99.map { b in a <= p50Goal && b <= p99Goal && (n != "P1" || (mallocs ?? 1) == 0) }
                },
                hot)
        }
        let hotKey = "P1_decide,_one_plan_key_(dedupe_cache_hot)"
        if let p50 = number("hotpath", hotKey, "wallClock", "p50") {
            row(
                "P1′", "decide, one plan key (dedupe cache stays in L1)", "(diagnostic)",
                "p50 \(f(p50, " ns", digits: 0)), p99 \(f(number("hotpath", hotKey, "wallClock", "p99"), " ns", digits: 0))",
                "–", "–", nil, hot)
        }
        // P3
        for i in 0..<2 {
            guard let batch = number("p3", i, "batch") else { continue }
            let p50 = number("p3", i, "per_decision", "p50_us")
            let p99 = number("p3", i, "per_decision", "p99_us")
            let lagMax = number("p3", i, "commit_to_disk", "max_us")
            let lag99 = number("p3", i, "commit_to_disk", "p99_us")
            row(
                "P3",
                "store write per decision, \(Int(batch)) per txn, "
                    + ((number("p3", i, "paced_txn_per_s") ?? 0) > 0
                        ? "\(f(number("p3", i, "paced_txn_per_s"), " txn/s", digits: 0))" : "back to back")
                    + "; commit → on disk",
                "p50 ≤ 2 µs, p99 ≤ 10 µs; on disk ≤ 10 ms",
                "p50 \(f(p50, " µs", digits: 2)), p99 \(f(p99, " µs", digits: 2)); on disk p99 \(f(lag99.map { $0 / 1000 }, " ms", digits: 2)), max \(f(lagMax.map { $0 / 1000 }, " ms", digits: 2))",
                "–", "–",
                p50.flatMap { a in p99.flatMap { b in lagMax.map { c in a <= 2 && b <= 10 && c <= 10_000 } } },
                "\(make) (step p3)")
        }
        // P4
        for transport in ["ipc", "tcp"] {
            for rate in smoke ? [500.0] : [1000.0, 10_000.0] {
                guard let hg = p4("heatgate", transport, rate), let echo = p4("echo", transport, rate) else { continue }
                let h50 = (hg["p50_us"] as? NSNumber)?.doubleValue
                let h99 = (hg["p99_us"] as? NSNumber)?.doubleValue
                let e50 = (echo["p50_us"] as? NSNumber)?.doubleValue
                let e99 = (echo["p99_us"] as? NSNumber)?.doubleValue
                let o50 = h50.flatMap { a in e50.map { a - $0 } }
                let o99 = h99.flatMap { a in e99.map { a - $0 } }
                let base = baselineP4(rate)
                let b50 = (base?["p50_us"] as? NSNumber)?.doubleValue
                let b99 = (base?["p99_us"] as? NSNumber)?.doubleValue
                let r50 = h50.flatMap { a in b50.map { $0 / a } }
                let r99 = h99.flatMap { a in b99.map { $0 / a } }
                let lost = (hg["lost"] as? Int ?? 0) + (echo["lost"] as? Int ?? 0)
                let okOverhead = o50.flatMap { a in o99.map { b in a <= 20 && b <= 50 } }
                let okBase = r50.flatMap { a in r99.map { b in a >= 4 && b >= 5 } }
                row(
                    "P4", "end to end, \(transport), \(Int(rate))/s open loop (µs from intended send)",
                    "over echo: p50 ≤ +20 µs, p99 ≤ +50 µs; vs baseline p50 ≥ 4×, p99 ≥ 5× lower",
                    "p50 \(f(h50)) (echo \(f(e50)), +\(f(o50))); p99 \(f(h99)) (echo \(f(e99)), +\(f(o99))); lost \(lost)",
                    "p50 \(f(b50)), p99 \(f(b99))" + ((base?["kept_up"] as? Bool) == false ? " (did not keep up)" : ""),
                    "p50 \(f(r50, "×")), p99 \(f(r99, "×"))",
                    okOverhead.flatMap { a in okBase.map { a && $0 } } ?? okOverhead, "\(make) (step p4)")
            }
        }
        // P5
        let baseHeld = number("baseline", "result", "p5", "highest_rate_held_per_s")
        for transport in ["ipc", "tcp"] {
            guard let held = number("p5", transport, "highest_rate_held_per_s") else { continue }
            let ratio = baseHeld.flatMap { $0 > 0 ? held / $0 : nil }
            let exhausted = (value("p5", transport, "ladder_exhausted") as? Bool) == true
            row(
                "P5",
                "highest rate held \(f(number("p5", "hold_s"), " s", digits: 0)), p99 ≤ 2 ms, no loss (\(transport))",
                "≥ 100 000/s; ≥ 40× baseline",
                "\(f(held, "/s", digits: 0))"
                    + (exhausted
                        ? " (ladder exhausted)"
                        : ", failed at \(f(number("p5", transport, "lowest_rate_failed_per_s"), "/s", digits: 0))"),
                "\(f(baseHeld, "/s", digits: 0)) (\(f(number("baseline", "result", "p5", "step_duration_s"), " s", digits: 0)) steps)",
                f(ratio, "×"), ratio.map { held >= 100_000 && $0 >= 40 }, "\(make) (step p5)")
        }
        // P6
        if let rss = number("p6", "rss_anon_kb") {
            row(
                "P6", "anonymous RSS, \(f(number("p6", "positions"), digits: 0)) positions", "≤ 32 MiB",
                f(rss / 1024, " MiB"), "–", "–", rss <= 32 * 1024, "\(make) (step p6)")
        }
        if let disk = number("p6", "store", "data_mdb_disk_bytes") {
            let n = number("p6", "store", "decisions") ?? 0
            let redis = number("baseline", "result", "p6", "used_memory_delta_bytes")
            let goal = 150.0 * 1024 * 1024 * n / 1_000_000
            row(
                "P6", "store on disk after \(f(n, digits: 0)) decisions (data.mdb blocks)",
                "≤ 150 MiB per 1 000 000", f(disk / 1_048_576, " MiB"),
                "Redis used_memory \(f(redis.map { $0 / 1_048_576 }, " MiB")) for \(f(number("baseline", "result", "p6", "decisions"), digits: 0))",
                redis.map { "Redis ÷ HeatGate " + f($0 / disk, "×", digits: 2) } ?? "–", disk <= goal,
                "\(make) (step p6)")
        }
        // P7
        if let alone = number("p7", "sweep", "ttl_per_record_us") {
            let inDaemon = number("p7", "during_sweep", "sweep_us_per_ttl_entry")
            let chunk = number("p7", "sweep", "ttl_chunk", "max_us")
            let size = f(number("p7", "sweep", "chunk_limit"), digits: 0)
            row(
                "P7", "TTL sweep of \(f(number("p7", "sweep", "ttl_entries_swept"), digits: 0)) expired records",
                "≤ 0.5 µs/record; no chunk > 1 ms",
                "in the daemon under load: \(f(inDaemon, " µs/record", digits: 3)) (\(f(number("p7", "during_sweep", "ttl_entries_swept_during_run"), digits: 0)) entries, chunks in the batches' commits); alone, chunks of \(size) each committed on its own: \(f(alone, " µs/record", digits: 3)), longest chunk \(f(chunk.map { $0 / 1000 }, " ms", digits: 2)); journal sweep \(f(number("p7", "sweep", "journal_per_record_us"), " µs/record", digits: 3)), longest chunk \(f(number("p7", "sweep", "journal_chunk", "max_us").map { $0 / 1000 }, " ms", digits: 2))",
                "–", "–", chunk.flatMap { c in inDaemon.map { $0 <= 0.5 && c <= 1000 } }, "\(make) (step p7)")
        }
        if let during = number("p7", "during_sweep", "p99_us"), let idle = number("p7", "idle", "p99_us") {
            row(
                "P7",
                "decision p99 during a sweep vs idle (ipc, \(f(number("p7", "idle", "rate_per_s"), "/s", digits: 0)))",
                "≤ 2× idle",
                "\(f(during, " µs")) vs \(f(idle, " µs")) = \(f(during / idle, "×", digits: 2)) (medians of \(runsP99("p99_us_during_sweep_runs")) and \(runsP99("p99_us_idle_runs")) µs, interleaved); TTL entries swept by the daemon during the run \(f(number("p7", "during_sweep", "ttl_entries_swept_by_daemon"), digits: 0)) of \(f(number("p7", "during_sweep", "expired_ttl_entries_before"), digits: 0))",
                "–", "–", during <= 2 * idle, "\(make) (step p7)")
        }
        // P8
        if let median = number("p8", "median_ms") {
            row(
                "P8",
                "restart with \(f(number("p8", "store", "decisions"), digits: 0)) decisions, \(f(number("p8", "store", "positions"), digits: 0)) positions: exec → /readyz 200",
                "≤ 50 ms",
                "median \(f(median, " ms")), max \(f(number("p8", "max_ms"), " ms")) (empty store: median \(f(number("p8", "empty_store_median_ms"), " ms")))",
                "–", "–",
                median <= 50, "\(make) (step p8)")
        }

        var md = "# HeatGate benchmarks (SPEC §10)\n\n"
        if smoke { md += "**Smoke run: tiny sizes, proves the tools run. No figure here means anything.**\n\n" }
        md += "Generated by `bench/` (`\(make)`); raw results in `bench/results/heatgate.json`, "
        md += "`bench/results/baseline.json` and the `.hgrm` files beside them. Latencies of P4/P5 are measured "
        md += "from each proposal's *intended* send time (open loop, HdrHistogram). Re-run one step with "
        md += "`cd bench && .build/release/hg-bench --only p4` (steps: probe,p3,p4,p5,p6,p7,p8,baseline).\n\n"
        let m = result["machine"] as? [String: Any] ?? [:]
        md += "Machine: \(m["cpu_model"] ?? "?"), \(m["nproc"] ?? "?") cores, kernel \(m["kernel"] ?? "?"); "
        md += "load average at start \(m["loadavg"] ?? "?"); "
        md +=
            "longest scheduling stall in a \(m["probe_spin_s"] ?? "?") s spin loop: \(m["longest_stall_us"] ?? "?") µs "
        md +=
            "(\(m["stalls_over_1ms"] ?? "?") stalls over 1 ms); machine busy before the run \(m["machine_busy_pct_before"] ?? "?") %.\n\n"
        md += "| # | figure | goal | measured | baseline (Redis + Python, same run) | ratio | goal | reproduce |\n"
        md += "|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            md += "| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
        }
        md += "\nNotes\n\n"
        md += "- P1/P2: package-benchmark times 1 000 operations per sample; p50/p99 are over those per-operation "
        md +=
            "averages (a single 50 ns operation is below the clock's resolution). Mallocs come from the malloc interposer.\n"
        md +=
            "- P3: the daemon's durability mode (MDB_NOSYNC, `mdb_env_sync` by a flusher as soon as something was committed, at most every \(Flusher.interval / 1_000_000) ms); "
        md += "\"on disk\" is commit → end of the first sync that covers it.\n"
        md +=
            "- P4/P5: hg-loadgen (PUSH at a fixed rate, sleeping to its schedule; SUB receiver) against `heatgate run` "
        md += "with a book of 10 000 positions, one position update per 100 proposals; the echo (hg-echo) has the same "
        md += "sockets and options and does no work. The baseline's P5 ladder uses its own step length (shown).\n"
        md += "- P6: RssAnon from /proc/PID/status (LMDB's map is file-backed, not anonymous); the store is built "
        md += "through the daemon's own `Gate` (engine, encoder, group commit).\n"
        md += "- Missed goals and what limits each, measured: `bench/README.md`, section \"What limits the missed "
        md += "figures\".\n"
        return md
    }
}
