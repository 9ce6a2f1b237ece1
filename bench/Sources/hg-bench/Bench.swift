import ArgumentParser
import BenchSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The harness behind `make bench` and `make bench-smoke`: every figure of SPEC §10 but P1/P2 (which
/// package-benchmark measures first; this reads its output), the baseline in the same run, the results
/// under `results/` and the report `BENCHMARKS.md`.
@main
struct HGBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hg-bench",
        abstract: "HeatGate's SPEC §10 benchmarks against the real daemon, beside the transport floor and the "
            + "Redis + Python baseline.")

    @Flag(help: "Seconds instead of minutes: prove every tool runs; no timing is judged.") var smoke = false
    @Option(help: "The daemon (a release build).") var heatgate = "../.build/release/heatgate"
    @Option(help: "Directory holding hg-loadgen and hg-echo (default: beside hg-bench).") var binDir: String?
    @Option(help: "Results directory.") var results = "results"
    @Option(help: "Where to write the report (default ../BENCHMARKS.md; results/smoke/BENCHMARKS.md in smoke).")
    var report: String?
    @Option(help: "Seconds of the machine probe's spin loop.") var probeSeconds: Double?
    @Option(help: "Steps to run, comma separated, of probe,p3,p4,p5,p6,p7,p8,store2,restart,baseline.")
    var only = "probe,p3,p4,p5,p6,p7,p8,store2,restart,baseline"
    @Option(help: "Python for the baseline.") var python = "/usr/bin/python3"
    @Option(help: "Seconds a P5 rung lasts while searching for the knee.") var p5Step: Double?
    @Option(help: "Seconds the highest rung found must then hold (SPEC: 60).") var p5Hold: Double?
    @Option(help: "P5 ladder, proposals/s, comma separated.") var p5Rates: String?
    @Option(help: "Two stores: the base directory of the hot stores (tmpfs).") var hotBase = "/dev/shm"
    @Option(help: "Two stores: the base directory of the durable (and old) stores, on a disk.")
    var diskBase = "/var/tmp"
    @Option(help: "Two stores, P3: rates (one decision per transaction), comma separated.")
    var store2Rates = "10000,50000"
    @Option(help: "Two stores, P3: seconds per run.") var store2Seconds = 10.0
    @Option(help: "Two stores: runs of each kind (interleaved); medians are reported.") var store2Runs = 3

    func run() throws {
        installSignalHandling()
        defer { stopAllChildren() }
        let outDir = smoke ? "\(results)/smoke" : results
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let bins = binDir ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        guard FileManager.default.isExecutableFile(atPath: heatgate) else {
            throw BenchError("no daemon at \(heatgate): run `swift build -c release` at the repository root")
        }
        let steps = Set(only.split(separator: ",").map { String($0) })
        var ctx = Context(
            smoke: smoke, outDir: outDir, heatgate: heatgate, loadgen: "\(bins)/hg-loadgen", echo: "\(bins)/hg-echo",
            steps: steps)
        ctx.p5Step = p5Step ?? (smoke ? 0.5 : 10)
        ctx.p5Hold = p5Hold ?? (smoke ? 0 : 60)
        if let r = p5Rates { ctx.p5Rates = r.split(separator: ",").compactMap { Double($0) } }
        ctx.hotBase = hotBase
        ctx.diskBase = diskBase
        ctx.store2Rates = store2Rates.split(separator: ",").compactMap { Double($0) }
        if smoke { ctx.store2Rates = [2000] }
        ctx.store2Seconds = store2Seconds
        ctx.store2Runs = store2Runs
        let started = wallClock()
        var result: [String: Any] = [
            "benchmark": "heatgate-spec-10", "smoke": smoke, "started_at_epoch_s": started,
            "command_line": CommandLine.arguments.joined(separator: " "),
        ]
        result["machine"] = machineInfo(
            probeSeconds: steps.contains("probe") ? (probeSeconds ?? (smoke ? 0.2 : 10)) : 0)
        let save = {
            result["elapsed_s"] = wallClock() - started
            let data = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: "\(outDir)/heatgate.json"))
        }
        func step(_ name: String, _ body: () throws -> Any) {
            guard steps.contains(name) else { return }
            log("\(name): start")
            let t = wallClock()
            do {
                result[name] = try body()
            } catch {
                log("\(name): FAILED: \(error)")
                result[name] = ["error": "\(error)"]
            }
            log("\(name): done in \(Int(wallClock() - t)) s")
            try? save()
        }
        step("p3") { try ctx.p3() }
        step("p4") { try ctx.p4() }
        step("p5") { try ctx.p5() }
        step("p6") { try ctx.p6() }
        step("p7") { try ctx.p7() }
        step("p8") { try ctx.p8() }
        step("store2") { try ctx.store2() }
        step("restart") { try ctx.restart() }
        step("baseline") { try ctx.baseline(python: python) }
        result["hotpath"] = readHotPath("\(outDir)/hotpath")
        try save()
        let reportPath = report ?? (smoke ? "\(outDir)/BENCHMARKS.md" : "../BENCHMARKS.md")
        try writeText(Report(result: result, smoke: smoke).markdown(), to: reportPath)
        log("results: \(outDir)/heatgate.json; report: \(reportPath)")
        let failed = result.compactMap { k, v in (v as? [String: Any])?["error"] != nil ? k : nil }
        if !failed.isEmpty { throw BenchError("steps failed: \(failed.sorted().joined(separator: ", "))") }
    }
}

func log(_ s: String) { printError("hg-bench: \(s)") }

/// The machine: CPU, kernel, load, and the longest scheduling stall a spinning thread saw.
func machineInfo(probeSeconds: Double) -> [String: Any] {
    var info: [String: Any] = ["nproc": sysconf(Int32(_SC_NPROCESSORS_ONLN))]
    if let cpu = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
        let line = cpu.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
    {
        info["cpu_model"] = line.split(separator: ":", maxSplits: 1).last.map {
            $0.trimmingCharacters(in: .whitespaces)
        }
    }
    var u = utsname()
    uname(&u)
    info["kernel"] = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    info["loadavg"] = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
        .split(separator: " ").prefix(3).joined(separator: " ")
    if probeSeconds > 0 {
        // A deliberate spin (the probe, never during a measurement): the longest gap between two clock reads
        // is the longest time this thread was not running.
        let end = monotonicNanos() + UInt64(probeSeconds * 1e9)
        var last = monotonicNanos()
        var longest: UInt64 = 0
        var over100us = 0
        var over1ms = 0
        while last < end {
            let now = monotonicNanos()
            let gap = now - last
            if gap > longest { longest = gap }
            if gap > 100_000 { over100us += 1 }
            if gap > 1_000_000 { over1ms += 1 }
            last = now
        }
        info["probe_spin_s"] = probeSeconds
        info["longest_stall_us"] = Double(longest) / 1000
        info["stalls_over_100us"] = over100us
        info["stalls_over_1ms"] = over1ms
    }
    info["machine_busy_pct_before"] = (machineBusy(over: 0.5) * 1000).rounded() / 10
    return info
}

/// Reads package-benchmark's percentile files (`--format histogramPercentiles`) for P1/P2.
func readHotPath(_ dir: String) -> [String: Any] {
    guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
        return ["error": "no package-benchmark output in \(dir): run `make bench` (or the HotPath step)"]
    }
    var out: [String: Any] = [:]
    for f in files.sorted() where f.hasSuffix(".histogram.percentiles.tsv") {
        guard let text = try? String(contentsOfFile: "\(dir)/\(f)", encoding: .utf8) else { continue }
        var values: [Int: Double] = [:]
        let lines = text.split(separator: "\n")
        for line in lines.dropFirst() {
            let c = line.split(separator: "\t")
            if c.count == 2, let p = Int(c[0]), let v = Double(c[1]) { values[p] = v }
        }
        // "<baseline>.HotPath.<benchmark name>.<metric>.histogram.percentiles.tsv"
        let parts = f.replacingOccurrences(of: ".histogram.percentiles.tsv", with: "").split(separator: ".")
        guard parts.count >= 4 else { continue }
        let metric = String(parts.last!)
        let name = parts.dropFirst(2).dropLast().joined(separator: ".")
        var entry = out[name] as? [String: Any] ?? [:]
        entry[metric] = [
            "unit": String(lines.first?.split(separator: "\t").last ?? ""), "p0": values[0] ?? -1,
            "p50": values[50] ?? -1, "p90": values[90] ?? -1, "p99": values[99] ?? -1, "p100": values[100] ?? -1,
        ]
        out[name] = entry
    }
    return out
}
