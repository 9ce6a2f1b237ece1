import BenchSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One `heatgate run` process on loopback endpoints in a private directory, stopped by `stop()`.
final class DaemonProcess {
    let process: Process
    let ingest: String
    let publish: String
    let metricsPort: Int
    let stateDir: String
    /// The hot store's directory (`P26_RUN_DIR`): given, or a fresh one under /dev/shm removed by `stop()`.
    let runDir: String
    let ownsRunDir: Bool
    /// Nanoseconds from exec to the first `/readyz` 200.
    private(set) var readyNanos: UInt64 = 0

    var pid: pid_t { process.processIdentifier }

    /// Starts the daemon.
    /// - Parameters:
    ///   - transport: `ipc` or `tcp` (127.0.0.1, free ports).
    ///   - stateDir: the durable store (kept; the caller removes it).
    ///   - runDir: the hot store (kept; the caller removes it); `nil`: a fresh directory on /dev/shm (the
    ///     daemon's default place, but never left behind there), removed by `stop()`.
    init(binary: String, transport: String, dir: String, stateDir: String, runDir: String? = nil) throws {
        if transport == "ipc" {
            ingest = "ipc://\(dir)/ingest.sock"
            publish = "ipc://\(dir)/publish.sock"
        } else {
            ingest = "tcp://127.0.0.1:\(freePort())"
            publish = "tcp://127.0.0.1:\(freePort())"
        }
        metricsPort = freePort()
        self.stateDir = stateDir
        let run: String
        if let runDir {
            run = runDir
        } else {
            var template = Array("/dev/shm/hg-bench-run-XXXXXX".utf8CString)
            guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw BenchError("mkdtemp in /dev/shm failed")
            }
            run = String(cString: p)
        }
        self.runDir = run
        ownsRunDir = runDir == nil
        let args = [
            "run", "--set", "P26_INGEST_ENDPOINT=\(ingest)", "--set", "P26_PUBLISH_ENDPOINT=\(publish)",
            "--set", "P26_CONTROL_ENDPOINT=ipc://\(dir)/control.sock", "--set", "P26_METRICS_PORT=\(metricsPort)",
            "--set", "P26_STATE_DIR=\(stateDir)", "--set", "P26_RUN_DIR=\(run)", "--set", "P26_LOG_LEVEL=warning",
            "--set", "P26_HEARTBEAT_SEC=1",
        ]
        let t0 = monotonicNanos()
        process = try spawn(binary, args, stdout: "\(dir)/daemon.out", stderr: "\(dir)/daemon.err")
        // Ready: /readyz answers 200. Polled every 0.5 ms, at most 30 s.
        let deadline = t0 + 30_000_000_000
        while monotonicNanos() < deadline {
            if let (code, _) = httpGet(port: metricsPort, path: "/readyz"), code == 200 {
                readyNanos = monotonicNanos() - t0
                return
            }
            guard process.isRunning else { break }
            sleepFor(500_000)
        }
        let err = (try? String(contentsOfFile: "\(dir)/daemon.err", encoding: .utf8)) ?? ""
        stopProcess(process)
        if runDir == nil { removeTree(run) }
        throw BenchError("heatgate did not become ready (\(ingest)): \(err.suffix(500))")
    }

    /// A counter from `/metrics` (summed over its labels).
    func metric(_ name: String) -> Double? {
        guard let (code, body) = httpGet(port: metricsPort, path: "/metrics"), code == 200 else { return nil }
        var sum: Double?
        for line in body.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
            let rest = line.dropFirst(name.count)
            guard rest.first == " " || rest.first == "{" else { continue }
            if let v = line.split(separator: " ").last.flatMap({ Double($0) }) { sum = (sum ?? 0) + v }
        }
        return sum
    }

    func stop() {
        stopProcess(process)
        if ownsRunDir { removeTree(runDir) }
    }

    /// `kill -9`: no shutdown of any kind; the stores stay as the process left them.
    func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
        stopProcess(process)
    }
}
