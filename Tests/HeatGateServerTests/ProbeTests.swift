import Foundation
import HeatGateCore
import HeatGateTestSupport
import Testing

@Suite("Probes and process metrics", .serialized)
struct ProbeTests {
    @Test("/livez, /healthz and /readyz?verbose name each check; inputs are shown but not a condition")
    func verboseProbes() throws {
        let d = DaemonProcess()
        try d.start()
        defer { d.stop() }
        let live = try #require(httpGet(port: d.metricsPort, path: "/livez"))
        #expect(live.status == 200 && live.body == "ok\n")
        let health = try #require(httpGet(port: d.metricsPort, path: "/healthz?verbose"))
        #expect(health.status == 200)
        #expect(health.body.hasPrefix("[+]loop ok: last turn "), "\(health.body)")
        #expect(health.body.hasSuffix("healthz check passed\n"), "\(health.body)")
        #expect(httpGet(port: d.metricsPort, path: "/readyz")?.body == "ready\n")

        // No equity yet: ready all the same, inputs named as not usable.
        let before = try #require(httpGet(port: d.metricsPort, path: "/readyz?verbose"))
        #expect(before.status == 200)
        let lines = before.body.split(separator: "\n").map(String.init)
        #expect(
            lines.map { $0.split(separator: " ").first.map(String.init) ?? "" } == [
                "[+]store", "[+]sockets", "[+]started", "[+]loop", "[?]inputs", "readyz",
            ], "\(before.body)")
        #expect(lines[4].contains("not usable"), "\(lines[4])")
        #expect(lines[5] == "readyz check passed")

        // Equity and a position: the inputs line turns usable.
        let client = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try client.awaitHeartbeat()
        try client.send(Array(example.prefix(2)))
        var after = ""
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            after = httpGet(port: d.metricsPort, path: "/readyz?verbose=1")?.body ?? ""
            if after.contains("[+]inputs usable") { break }
            usleep(50_000)
        }
        #expect(after.contains("[+]inputs usable"), "\(after)")
        #expect(httpGet(port: d.metricsPort, path: "/nope?verbose")?.status == 404)
    }

    @Test("process_* metrics: CPU, RSS, open FDs and start time, as /proc sees the daemon")
    func processMetrics() throws {
        let started = Date().timeIntervalSince1970
        let d = DaemonProcess()
        try d.start()
        defer { d.stop() }
        let ready = Date().timeIntervalSince1970
        // Some work, so the CPU counter has something to count.
        let client = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try client.awaitHeartbeat()
        try client.send(example)
        _ = try client.decisions(4)
        let m = d.metrics()
        let start = try #require(metricValue(m, "process_start_time_seconds"))
        #expect(start >= started - 1 && start <= ready + 1, "start \(start) outside [\(started), \(ready)]")
        let cpu = try #require(metricValue(m, "process_cpu_seconds_total"))
        #expect(cpu > 0 && cpu < 60, "\(cpu)")
        let rss = try #require(metricValue(m, "process_resident_memory_bytes"))
        // What the kernel says of the same process, within 16 MiB (the heap moves between the two reads).
        let statm = try String(contentsOfFile: "/proc/\(d.pid)/statm", encoding: .utf8).split(separator: " ")
        let kernelRSS = Double(statm[1])! * Double(sysconf(Int32(_SC_PAGESIZE)))
        #expect(rss > 1_048_576 && abs(rss - kernelRSS) < 16_777_216, "rss \(rss), kernel \(kernelRSS)")
        let fds = try #require(metricValue(m, "process_open_fds"))
        let kernelFDs = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(d.pid)/fd").count
        #expect(fds >= 5 && abs(fds - Double(kernelFDs)) <= 3, "fds \(fds), kernel \(kernelFDs)")
        #expect(m.contains("# TYPE process_cpu_seconds_total counter\n"))
    }
}
