import BenchSupport
import Foundation
import HeatGateStore

import struct HeatGateServer.Sweeper

#if canImport(Glibc)
    import Glibc
#endif

/// The steps, with the sizes of a full run or a smoke run.
struct Context {
    let smoke: Bool
    let outDir: String
    let heatgate: String
    let loadgen: String
    let echo: String
    let steps: Set<String>
    var p5Step = 10.0
    var p5Hold = 60.0
    var p5Rates: [Double] = []
    /// Two stores (issue 17): where the hot store and the disk stores go, the P3 rates, seconds and runs.
    var hotBase = "/dev/shm"
    var diskBase = "/var/tmp"
    var store2Rates: [Double] = [10_000, 50_000]
    var store2Seconds = 10.0
    var store2Runs = 3

    init(smoke: Bool, outDir: String, heatgate: String, loadgen: String, echo: String, steps: Set<String>) {
        self.smoke = smoke
        self.outDir = outDir
        self.heatgate = heatgate
        self.loadgen = loadgen
        self.echo = echo
        self.steps = steps
        p5Rates = smoke ? [2000] : [10_000, 25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000]
    }

    var bookSize: Int { smoke ? 1000 : 10_000 }
    var records: Int { smoke ? 5000 : 1_000_000 }

    func tempDir(_ tag: String, base: String = "/tmp") throws -> String {
        var template = Array("\(base)/hg-bench-\(tag)-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError("mkdtemp failed")
        }
        return String(cString: p)
    }

    // MARK: P3

    func p3() throws -> Any {
        var out: [[String: Any]] = []
        // One decision per transaction at a steady 10 000/s (what the daemon does at P4's rate), then batches
        // of 64 back to back (a burst, group-committed).
        for (batch, pace, n) in [(1, 1e-4, smoke ? 2000 : 100_000), (64, nil, smoke ? 2000 : 200_000)] {
            let dir = try tempDir("p3")
            defer { removeTree(dir) }
            out.append(try benchStoreWrite(dir: dir, decisions: n, batch: batch, pace: pace))
        }
        return out
    }

    // MARK: P4/P5: the open loop

    /// One open-loop run of hg-loadgen against a fresh target (`heatgate` or `echo`).
    func openLoop(
        target: String, transport: String, rate: Double, duration: Double, label: String, hgrm: Bool = true,
        stateDir: String? = nil, during: ((DaemonProcess) -> [String: Any])? = nil
    ) throws -> [String: Any] {
        let dir = try tempDir("run")
        defer { removeTree(dir) }
        var result: [String: Any] = ["target": target, "transport": transport]
        var push: String
        var sub: String
        var daemon: DaemonProcess?
        var echoProcess: Process?
        defer {
            daemon?.stop()
            if let e = echoProcess { stopProcess(e) }
        }
        if target == "heatgate" {
            let d = try DaemonProcess(
                binary: heatgate, transport: transport, dir: dir, stateDir: stateDir ?? "\(dir)/state")
            daemon = d
            (push, sub) = (d.ingest, d.publish)
        } else {
            if transport == "ipc" {
                (push, sub) = ("ipc://\(dir)/in.sock", "ipc://\(dir)/out.sock")
            } else {
                (push, sub) = ("tcp://127.0.0.1:\(freePort())", "tcp://127.0.0.1:\(freePort())")
            }
            echoProcess = try spawn(
                echo, ["--pull", push, "--pub", sub, "--max-seconds", "\(Int(duration) + 120)"],
                stdout: "\(dir)/echo.out", stderr: "\(dir)/echo.err")
            sleepFor(100_000_000)
        }
        let warmup = smoke ? 0.2 : 1.0
        var args = [
            "--push", push, "--sub", sub, "--rate", "\(rate)", "--duration", "\(duration)", "--warmup", "\(warmup)",
            "--drain", smoke ? "2" : "3", "--book", "\(target == "heatgate" ? bookSize : 0)", "--label", label,
        ]
        if hgrm { args += ["--hgrm", "\(outDir)/\(label).hgrm"] }
        let busyBefore = machineBusy(over: smoke ? 0.05 : 0.5)
        let cpu0 = daemon.flatMap { procCPUSeconds($0.pid) } ?? 0
        let swept0 = daemon?.metric(#"p26_swept_total{kind="ttl"}"#) ?? 0
        let sweepSeconds0 = daemon?.metric("p26_sweep_seconds_total") ?? 0
        let gen = try spawn(loadgen, args, stderr: "\(dir)/loadgen.err")
        var duringResult: [String: Any]?
        if let during, let daemon {
            sleepFor(UInt64((warmup + duration / 2) * 1e9))
            duringResult = during(daemon)
        }
        let (status, output) = finish(gen, timeout: duration + warmup + 60)
        guard status == 0, let line = output.split(separator: "\n").last,
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            let err = (try? String(contentsOfFile: "\(dir)/loadgen.err", encoding: .utf8)) ?? ""
            throw BenchError("hg-loadgen \(label) failed (exit \(status)): \(err.suffix(400))")
        }
        result.merge(obj) { a, _ in a }
        result["machine_busy_pct_before"] = (busyBefore * 1000).rounded() / 10
        if let daemon {
            result["daemon_cpu_s"] = (procCPUSeconds(daemon.pid) ?? 0) - cpu0
            result["daemon_rss_anon_kb"] = procStatusKB(daemon.pid, "RssAnon") ?? -1
            result["daemon_vm_hwm_kb"] = procStatusKB(daemon.pid, "VmHWM") ?? -1
            result["publish_dropped"] = daemon.metric("p26_publish_dropped_total") ?? -1
            let swept = (daemon.metric(#"p26_swept_total{kind="ttl"}"#) ?? 0) - swept0
            let sweepSeconds = (daemon.metric("p26_sweep_seconds_total") ?? 0) - sweepSeconds0
            result["ttl_entries_swept_during_run"] = swept
            result["sweep_seconds_during_run"] = sweepSeconds
            if swept > 0 { result["sweep_us_per_ttl_entry"] = sweepSeconds / swept * 1e6 }
            result["store_bytes"] = diskBytes("\(daemon.stateDir)/data.mdb")
            result["hot_store_bytes"] = diskBytes("\(daemon.runDir)/data.mdb")
        }
        if let duringResult { result["during"] = duringResult }
        log(
            "  \(label): sent \(obj["sent"] ?? "?") lost \(obj["lost"] ?? "?") p50 \(obj["p50_us"] ?? "?") µs "
                + "p99 \(obj["p99_us"] ?? "?") µs max \(obj["max_us"] ?? "?") µs")
        return result
    }

    func p4() throws -> Any {
        var runs: [[String: Any]] = []
        let rates: [Double] = smoke ? [500] : [1000, 10_000]
        for transport in ["ipc", "tcp"] {
            for rate in rates {
                for target in ["echo", "heatgate"] {
                    let label = "p4-\(target)-\(transport)-\(Int(rate))per_s"
                    runs.append(
                        try openLoop(
                            target: target, transport: transport, rate: rate, duration: smoke ? 0.5 : 10,
                            label: label))
                }
            }
        }
        return runs
    }

    static func held(_ r: [String: Any]) -> Bool {
        (r["lost"] as? Int ?? 1) == 0 && (r["p99_us"] as? Double ?? .infinity) <= 2000
    }

    func p5() throws -> Any {
        var out: [String: Any] = [
            "criterion": "p99 <= 2000 us and no loss", "step_s": p5Step, "hold_s": p5Hold, "rates": p5Rates,
        ]
        for transport in ["ipc", "tcp"] {
            var steps: [[String: Any]] = []
            var held: Double?
            var failed: Double?
            rungs: for rate in p5Rates {
                for attempt in 0..<2 {
                    var r = try openLoop(
                        target: "heatgate", transport: transport, rate: rate, duration: p5Step,
                        label: "p5-\(transport)-\(Int(rate))per_s-step", hgrm: false)
                    r["held"] = Self.held(r)
                    r["attempt"] = attempt
                    steps.append(r)
                    if Self.held(r) {
                        held = rate
                        continue rungs
                    }
                }
                failed = rate
                break
            }
            var confirmed: [String: Any]?
            if p5Hold > 0, var rate = held {
                // Hold the highest rung for the full duration; step down a rung when it does not hold.
                let lower = p5Rates.filter { $0 < rate }
                for candidate in [rate] + lower.reversed().prefix(1) {
                    rate = candidate
                    var r = try openLoop(
                        target: "heatgate", transport: transport, rate: rate, duration: p5Hold,
                        label: "p5-\(transport)-\(Int(rate))per_s-hold")
                    r["held"] = Self.held(r)
                    confirmed = r
                    if Self.held(r) { break }
                }
                held = Self.held(confirmed ?? [:]) ? rate : nil
            }
            out[transport] = [
                "highest_rate_held_per_s": held ?? 0, "lowest_rate_failed_per_s": failed ?? 0, "steps": steps,
                "hold": confirmed ?? [:], "ladder_exhausted": failed == nil,
            ]
        }
        return out
    }

    // MARK: P6, P7, P8

    func p6() throws -> Any {
        // Anonymous RSS: the daemon with the book of 10 000 positions after a short run (P4's 1k/s over ipc).
        let run = try openLoop(
            target: "heatgate", transport: "ipc", rate: 1000, duration: smoke ? 0.5 : 5, label: "p6-rss", hgrm: false)
        let dir = try tempDir("p6")
        defer { removeTree(dir) }
        let built = try buildStore(dir: dir, positions: bookSize, decisions: records, start: wallClock())
        var disk: [String: Any] = built
        disk["data_mdb_disk_bytes"] = diskBytes("\(dir)/data.mdb")
        disk["data_mdb_apparent_bytes"] =
            (try? FileManager.default.attributesOfItem(atPath: "\(dir)/data.mdb"))?[
                .size] as? Int ?? -1
        disk["bytes_per_decision"] = Double(diskBytes("\(dir)/data.mdb")) / Double(max(records, 1))
        return [
            "rss_anon_kb": run["daemon_rss_anon_kb"] ?? -1, "vm_hwm_kb": run["daemon_vm_hwm_kb"] ?? -1,
            "positions": bookSize, "rss_run": run, "store": disk,
        ]
    }

    func p7() throws -> Any {
        let start = wallClock() - 1000
        var out: [String: Any] = [:]
        do {
            let dir = try tempDir("p7")
            defer { removeTree(dir) }
            let store = try populateExpired(dir: dir, records: records, start: start)
            // The daemon's backlog chunk, each in a transaction of its own (as when no batch comes).
            out["sweep"] = try benchSweep(store, now: wallClock(), chunk: Sweeper.chunk)
        }
        // Decisions while the daemon sweeps (a store of expired records) against the same run on an empty one,
        // interleaved three times: a single 10 s p99 on this VM moves by ±50 % from run to run. The median
        // run of each kind (by p99) is the figure; all are kept.
        let rate = smoke ? 500.0 : 10_000
        let duration = smoke ? 0.5 : 10
        var idle: [[String: Any]] = []
        var during: [[String: Any]] = []
        for i in 0..<(smoke ? 1 : 3) {
            idle.append(
                try openLoop(
                    target: "heatgate", transport: "ipc", rate: rate, duration: duration, label: "p7-idle-\(i)"))
            let dir = try tempDir("p7d")
            defer { removeTree(dir) }
            _ = try populateExpired(dir: "\(dir)/state", records: records, start: start)
            var run = try openLoop(
                target: "heatgate", transport: "ipc", rate: rate, duration: duration, label: "p7-during-sweep-\(i)",
                stateDir: "\(dir)/state")
            // Every decision adds one TTL entry and the journal keeps them all: swept = journal - TTL entries left.
            let after = try GateStore(directory: "\(dir)/state", readOnly: true).counts()
            run["expired_ttl_entries_before"] = records
            run["ttl_entries_after"] = after.ttl
            run["journal_after"] = after.journal
            run["ttl_entries_swept_by_daemon"] = after.journal - after.ttl
            during.append(run)
        }
        func median(_ runs: [[String: Any]]) -> [String: Any] {
            let sorted = runs.sorted { ($0["p99_us"] as? Double ?? 0) < ($1["p99_us"] as? Double ?? 0) }
            return sorted[sorted.count / 2]
        }
        out["idle_runs"] = idle
        out["during_sweep_runs"] = during
        out["idle"] = median(idle)
        out["during_sweep"] = median(during)
        out["p99_us_idle_runs"] = idle.map { $0["p99_us"] ?? 0 }
        out["p99_us_during_sweep_runs"] = during.map { $0["p99_us"] ?? 0 }
        return out
    }

    func p8() throws -> Any {
        let dir = try tempDir("p8")
        defer { removeTree(dir) }
        let built = try buildStore(dir: "\(dir)/state", positions: bookSize, decisions: records, start: wallClock())
        var ready = LatencyRecorder()
        var times: [Double] = []
        for i in 0..<(smoke ? 1 : 5) {
            let run = "\(dir)/r\(i)"
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
            let d = try DaemonProcess(binary: heatgate, transport: "ipc", dir: run, stateDir: "\(dir)/state")
            ready.record(d.readyNanos)
            times.append(Double(d.readyNanos) / 1e6)
            d.stop()
        }
        // The same start on an empty store: what the restore itself adds.
        var empty: [Double] = []
        for i in 0..<(smoke ? 1 : 3) {
            let run = "\(dir)/e\(i)"
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
            let d = try DaemonProcess(binary: heatgate, transport: "ipc", dir: run, stateDir: "\(run)/state")
            empty.append(Double(d.readyNanos) / 1e6)
            d.stop()
        }
        return [
            "empty_store_exec_to_readyz_ms": empty, "empty_store_median_ms": empty.sorted()[empty.count / 2],
            "store": built, "exec_to_readyz_ms": times, "median_ms": times.sorted()[times.count / 2],
            "max_ms": times.max() ?? 0, "poll_interval_ms": 0.5,
        ]
    }

    // MARK: Two stores (issue 17)

    /// P3 on the two stores against the old single store, interleaved run by run at each rate; then the
    /// daemon under sustained load (10 000/s over ipc, the book of ``bookSize``): its anonymous RSS and
    /// the hot store's allocated size (P6).
    func store2() throws -> Any {
        let runs = smoke ? 1 : store2Runs
        let seconds = smoke ? 0.2 : store2Seconds
        var all: [[String: Any]] = []
        for run in 0..<runs {
            for rate in store2Rates {
                for kind in ["old", "two"] {
                    let hot = try tempDir("s2hot", base: hotBase)
                    let disk = try tempDir("s2disk", base: diskBase)
                    defer {
                        removeTree(hot)
                        removeTree(disk)
                    }
                    var r = try benchTwoStores(
                        kind: kind, hotDir: hot, diskDir: disk, rate: rate, seconds: seconds, positions: bookSize)
                    r["run"] = run
                    r["machine_busy_pct_before_next"] = (machineBusy(over: smoke ? 0.05 : 0.5) * 1000).rounded() / 10
                    let pc = r["per_commit"] as? [String: Any] ?? [:]
                    let lag = r["commit_to_disk"] as? [String: Any] ?? [:]
                    log(
                        "  store2 \(kind) \(Int(rate))/s run \(run): commit p50 \(pc["p50_us"] ?? "?") p99 "
                            + "\(pc["p99_us"] ?? "?") µs; on disk p99 \(lag["p99_us"] ?? "?") max \(lag["max_us"] ?? "?") µs"
                    )
                    all.append(r)
                }
            }
        }
        func med(_ xs: [Double]) -> Double { xs.isEmpty ? -1 : xs.sorted()[xs.count / 2] }
        var summary: [[String: Any]] = []
        for rate in store2Rates {
            for kind in ["old", "two"] {
                let rs = all.filter { ($0["kind"] as? String) == kind && ($0["rate_per_s"] as? Double) == rate }
                func pick(_ part: String, _ key: String) -> [Double] {
                    rs.map { ($0[part] as? [String: Any])?[key] as? Double ?? -1 }
                }
                summary.append([
                    "kind": kind, "rate_per_s": rate, "runs": rs.count,
                    "commit_p50_us": pick("per_commit", "p50_us"), "commit_p99_us": pick("per_commit", "p99_us"),
                    "disk_p99_us": pick("commit_to_disk", "p99_us"), "disk_max_us": pick("commit_to_disk", "max_us"),
                    "median_commit_p50_us": med(pick("per_commit", "p50_us")),
                    "median_commit_p99_us": med(pick("per_commit", "p99_us")),
                    "median_disk_p99_us": med(pick("commit_to_disk", "p99_us")),
                    "median_disk_max_us": med(pick("commit_to_disk", "max_us")),
                    "achieved_per_s": rs.map { $0["achieved_per_s"] as? Double ?? -1 },
                ])
            }
        }
        var sustained: [[String: Any]] = []
        for i in 0..<runs {
            let disk = try tempDir("s2state", base: diskBase)
            defer { removeTree(disk) }
            var r = try openLoop(
                target: "heatgate", transport: "ipc", rate: 10_000, duration: smoke ? 0.5 : 20,
                label: "store2-sustained-\(i)", hgrm: false, stateDir: "\(disk)/state")
            r["run"] = i
            log(
                "  store2 sustained \(i): RssAnon \(r["daemon_rss_anon_kb"] ?? "?") kB, hot data.mdb "
                    + "\(r["hot_store_bytes"] ?? "?") B, durable \(r["store_bytes"] ?? "?") B")
            sustained.append(r)
        }
        return [
            "runs": all, "summary": summary, "sustained": sustained,
            "sustained_rss_anon_kb": sustained.map { $0["daemon_rss_anon_kb"] ?? -1 },
            "sustained_hot_store_bytes": sustained.map { $0["hot_store_bytes"] ?? -1 },
        ]
    }

    /// P6 (the durable store's size per decision) and P8 on two stores: both stores built as the daemon
    /// leaves them after ``records`` decisions over ``bookSize`` positions (``buildTwoStores``), batches of
    /// 512 journaled decisions exported for a compression estimate, then the daemon restarted after `kill -9`
    /// (the hot store as the killed process left it) and after a simulated reboot (the hot run directory
    /// removed), interleaved: exec → `/readyz` 200.
    func restart() throws -> Any {
        let base = try tempDir("restart", base: diskBase)
        let runDir = try tempDir("restart-run", base: hotBase)
        defer {
            removeTree(base)
            removeTree(runDir)
        }
        let state = "\(base)/state"
        var out: [String: Any] = [:]
        out["build"] = try buildTwoStores(stateDir: state, runDir: runDir, positions: bookSize, decisions: records)
        let durableBytes = diskBytes("\(state)/data.mdb")
        out["durable_data_mdb_bytes"] = durableBytes
        out["durable_data_mdb_apparent_bytes"] =
            (try? FileManager.default.attributesOfItem(atPath: "\(state)/data.mdb"))?[.size] as? Int ?? -1
        out["durable_bytes_per_decision"] = Double(durableBytes) / Double(max(records, 1))
        out["durable_mib_per_1m_decisions"] = Double(durableBytes) / Double(max(records, 1)) * 1e6 / 1_048_576
        out["hot_data_mdb_bytes_after_build"] = diskBytes("\(runDir)/data.mdb")
        do {
            let durable = try GateStore(directory: state, readOnly: true)
            let last = try durable.lastSeq() ?? 0
            out["batches_exported"] = try exportBatches(
                durable, to: "\(outDir)/p6-batches", count: smoke ? 2 : 200, lastSeq: last)
            out["batches_dir"] = "\(outDir)/p6-batches"
        }
        var kill9: [Double] = []
        var reboot: [Double] = []
        var hotAfterReboot: [String: Any] = [:]
        var starts = 0
        func start() throws -> DaemonProcess {
            starts += 1
            let dir = "\(base)/d\(starts)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return try DaemonProcess(binary: heatgate, transport: "ipc", dir: dir, stateDir: state, runDir: runDir)
        }
        var d = try start()
        out["first_start_ms"] = Double(d.readyNanos) / 1e6
        defer { d.stop() }
        for i in 0..<(smoke ? 1 : 5) {
            d.kill9()
            d = try start()
            kill9.append(Double(d.readyNanos) / 1e6)
            d.kill9()
            // A reboot empties the tmpfs: the run directory is gone with the hot store in it.
            removeTree(runDir)
            d = try start()
            reboot.append(Double(d.readyNanos) / 1e6)
            if i == 0, let c = try? GateStore(directory: runDir, readOnly: true).counts() {
                hotAfterReboot = ["journal": c.journal, "latest": c.latest, "ttl": c.ttl, "book": c.book]
            }
            log("  restart \(i): after kill -9 \(kill9.last!) ms, after a reboot \(reboot.last!) ms")
        }
        func med(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        out["kill9_exec_to_readyz_ms"] = kill9
        out["kill9_median_ms"] = med(kill9)
        out["reboot_exec_to_readyz_ms"] = reboot
        out["reboot_median_ms"] = med(reboot)
        out["hot_store_after_reboot_start"] = hotAfterReboot
        out["poll_interval_ms"] = 0.5
        return out
    }

    // MARK: The baseline

    func baseline(python: String) throws -> Any {
        let out = "\(outDir)/baseline.json"
        var args = ["baseline/run_baseline.py", "--out", out]
        if smoke { args.append("--smoke") }
        let p = try spawn(python, args, stdout: "\(outDir)/baseline.log", stderr: "\(outDir)/baseline.err")
        let (status, _) = finish(p, timeout: smoke ? 180 : 1200)
        guard status == 0, let data = FileManager.default.contents(atPath: out),
            let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            let err = (try? String(contentsOfFile: "\(outDir)/baseline.err", encoding: .utf8)) ?? ""
            throw BenchError("baseline failed (exit \(status)): \(err.suffix(600))")
        }
        return ["file": out, "result": obj]
    }
}
