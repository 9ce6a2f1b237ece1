import BenchSupport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Every child process the harness started, so that every exit path (and SIGINT/SIGTERM) stops them.
let children = Mutex<[pid_t]>([])

/// Starts `path args...` with stdout to `stdout` (a file, or a pipe when nil) and stderr to `stderr`.
func spawn(_ path: String, _ args: [String], stdout: String? = nil, stderr: String? = nil) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let stdout {
        _ = FileManager.default.createFile(atPath: stdout, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: stdout)
    } else {
        p.standardOutput = Pipe()
    }
    if let stderr {
        _ = FileManager.default.createFile(atPath: stderr, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: stderr)
    }
    try p.run()
    let pid = p.processIdentifier
    children.withLock { $0.append(pid) }
    return p
}

/// Stops a child: SIGTERM, then SIGKILL after `grace` seconds.
func stopProcess(_ p: Process, grace: Double = 5) {
    let pid = p.processIdentifier
    if p.isRunning {
        kill(pid, SIGTERM)
        let deadline = monotonicNanos() + UInt64(grace * 1e9)
        while p.isRunning && monotonicNanos() < deadline { sleepFor(5_000_000) }
        if p.isRunning {
            kill(pid, SIGKILL)
            p.waitUntilExit()
        }
    }
    children.withLock { $0.removeAll { $0 == pid } }
}

/// Waits for a child to exit by itself within `timeout` seconds (then kills it) and returns its stdout.
func finish(_ p: Process, timeout: Double) -> (status: Int32, output: String) {
    var data = Data()
    let pipe = p.standardOutput as? Pipe
    let reader = pipe.map { pipe in
        let box = Handoff(Data())
        let h = pipe.fileHandleForReading
        let t = startThread { box.value = h.readDataToEndOfFile() }
        return (t, box)
    }
    let deadline = monotonicNanos() + UInt64(timeout * 1e9)
    while p.isRunning && monotonicNanos() < deadline { sleepFor(10_000_000) }
    if p.isRunning {
        printError("hg-bench: \(p.executableURL?.lastPathComponent ?? "child") exceeded \(timeout) s; stopping it")
        stopProcess(p)
    }
    p.waitUntilExit()
    children.withLock { list in list.removeAll { $0 == p.processIdentifier } }
    if let (t, box) = reader {
        pthread_join(t, nil)
        data = box.value
    }
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Blocks SIGINT/SIGTERM/SIGHUP and starts a thread that, on any of them, stops every child and exits.
func installSignalHandling() {
    var set = sigset_t()
    sigemptyset(&set)
    for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s) }
    pthread_sigmask(SIG_BLOCK, &set, nil)
    _ = startThread {
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s) }
        var sig: Int32 = 0
        sigwait(&set, &sig)
        printError("hg-bench: signal \(sig); stopping every child")
        stopAllChildren()
        exit(128 + sig)
    }
}

func stopAllChildren() {
    let pids = children.withLock { $0 }
    for pid in pids { kill(pid, SIGTERM) }
    usleep(300_000)
    for pid in pids { kill(pid, SIGKILL) }
}

// MARK: - Small system helpers

/// A free TCP port on 127.0.0.1 (bound, read, closed).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
    }
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// `GET path` on 127.0.0.1:port; the status code and body, or nil when nothing answers.
func httpGet(port: Int, path: String) -> (Int, String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let ok = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard ok == 0 else { return nil }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var req = "GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    _ = req.withUTF8 { send(fd, $0.baseAddress, $0.count, 0) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    let text = String(decoding: out, as: UTF8.self)
    let parts = text.split(separator: " ", maxSplits: 2)
    guard parts.count >= 2, let code = Int(parts[1]) else { return nil }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (code, body)
}

/// A field of /proc/PID/status in kB (`RssAnon`, `VmHWM`, ...).
func procStatusKB(_ pid: pid_t, _ field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15).
func procCPUSeconds(_ pid: pid_t) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Bytes a file occupies on disk (allocated blocks, as `du` counts them).
func diskBytes(_ path: String) -> Int {
    var st = stat()
    guard stat(path, &st) == 0 else { return 0 }
    return Int(st.st_blocks) * 512
}

/// The whole machine's busy fraction over `seconds` (/proc/stat).
func machineBusy(over seconds: Double) -> Double {
    func read() -> (busy: Double, total: Double) {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first
        else { return (0, 1) }
        let v = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        let idle = v.count > 4 ? v[3] + v[4] : 0
        let total = v.reduce(0, +)
        return (total - idle, total)
    }
    let a = read()
    sleepFor(UInt64(seconds * 1e9))
    let b = read()
    return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0
}

func removeTree(_ path: String) { try? FileManager.default.removeItem(atPath: path) }
