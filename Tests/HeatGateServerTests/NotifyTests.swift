import Foundation
import HeatGateCore
import HeatGateTestSupport
import Testing

@testable import HeatGateServer

/// The receiving end of `$NOTIFY_SOCKET`, as systemd has it: a bound unix datagram socket.
final class NotifySocket: @unchecked Sendable {
    let fd: Int32
    let path: String?
    /// What `NOTIFY_SOCKET` is set to.
    let name: String

    /// Binds `path`, or the abstract name `@name` when `abstract` is given.
    init(path: String? = nil, abstract: String? = nil) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw DaemonError("socket: errno \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array((path ?? abstract!).utf8)
        if abstract != nil { bytes.insert(0, at: 0) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let len = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard rc == 0 else { throw DaemonError("bind: errno \(errno)") }
        self.path = path
        name = path ?? "@" + abstract!
    }

    /// The next datagram within `timeout` seconds, or nil.
    func receive(timeout: Double) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
    }

    /// Datagrams until one satisfies `match` (returned) or `timeout` passes (nil); `seen` gets the others.
    func await(_ timeout: Double, seen: inout [String], _ match: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let d = receive(timeout: max(0.01, deadline.timeIntervalSinceNow)) else { break }
            if match(d) { return d }
            seen.append(d)
        }
        return nil
    }

    /// Everything that arrives within `seconds`.
    func drain(_ seconds: Double) -> [String] {
        var out: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, let d = receive(timeout: max(0.01, deadline.timeIntervalSinceNow)) { out.append(d) }
        return out
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }
}

/// Assignments of one datagram.
func fields(_ datagram: String) -> [String: String] {
    var out: [String: String] = [:]
    for line in datagram.split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1)
        if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
    }
    return out
}

func monotonicMicros() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
}

@Suite("systemd notification (Type=notify)", .serialized)
struct NotifyTests {
    @Test("READY=1 once /readyz answers 200; STATUS follows decisions; WATCHDOG=1; reload; STOPPING=1")
    func fullLifecycle() throws {
        let dir = TemporaryDirectory("hg-notify")
        let sock = try NotifySocket(path: "\(dir.path)/notify.sock")
        let d = DaemonProcess(settings: ["NOTIFY_SOCKET": sock.name, "WATCHDOG_USEC": "400000"])
        DispatchQueue.global().async { try? d.start() }
        var seen: [String] = []
        let ready = try #require(sock.await(15, seen: &seen) { fields($0)["READY"] == "1" })
        // Nothing before READY=1, and /readyz is already 200 when it arrives (one request, no retry).
        #expect(seen.isEmpty, "datagrams before READY=1: \(seen)")
        #expect(httpGet(port: d.metricsPort, path: "/readyz")?.status == 200)
        let status = try #require(fields(ready)["STATUS"])
        #expect(status.contains("mode=shadow"), "\(status)")
        #expect(status.contains("last_seq=0"), "\(status)")

        // The watchdog: WATCHDOG_USEC=400 ms, so a ping about every 100 ms while the loop turns.
        let pings = sock.drain(1.0).filter { fields($0)["WATCHDOG"] == "1" }
        #expect(pings.count >= 5, "\(pings.count) WATCHDOG=1 in 1 s")

        // A decision moves last_seq; STATUS= says so within the loop's 100 ms observation.
        let client = try GateClientSockets(ingest: d.ingest, publish: d.publish)
        _ = try client.awaitHeartbeat()
        try client.send(Array(example.prefix(3)))
        #expect(try client.decisions(1).count == 1)
        seen = []
        let moved = sock.await(3, seen: &seen) { fields($0)["STATUS"]?.contains("last_seq=1") == true }
        #expect(
            moved != nil, "no STATUS with last_seq=1 after a decision: \(seen.filter { !$0.hasPrefix("WATCHDOG") })")

        // SIGHUP: RELOADING=1 with the daemon's CLOCK_MONOTONIC (the same clock as ours), then READY=1.
        let before = monotonicMicros()
        d.signal(SIGHUP)
        seen = []
        let reloading = try #require(sock.await(5, seen: &seen) { fields($0)["RELOADING"] == "1" })
        let after = monotonicMicros()
        let usec = try #require(fields(reloading)["MONOTONIC_USEC"].flatMap { UInt64($0) })
        #expect(usec >= before && usec <= after, "MONOTONIC_USEC \(usec) outside [\(before), \(after)]")
        let readyAgain = sock.await(5, seen: &seen) { fields($0)["READY"] == "1" }
        #expect(readyAgain != nil)

        // SIGSTOP: no ping while stopped (systemd's watchdog would fire); pings again after SIGCONT.
        d.signal(SIGSTOP)
        _ = sock.drain(0.3)  // in flight before the stop
        let whileStopped = sock.drain(1.0)
        d.signal(SIGCONT)
        #expect(whileStopped.isEmpty, "\(whileStopped)")
        let resumed = sock.drain(1.0).filter { fields($0)["WATCHDOG"] == "1" }
        #expect(resumed.count >= 3, "\(resumed.count) WATCHDOG=1 in 1 s after SIGCONT")

        // SIGTERM: STOPPING=1 before the exit, and a clean exit.
        d.signal(SIGTERM)
        seen = []
        #expect(sock.await(10, seen: &seen) { fields($0)["STOPPING"] == "1" } != nil)
        #expect(d.stop() == 0)
    }

    @Test("An abstract socket (@name) gets READY=1; WATCHDOG_PID of another process turns the watchdog off")
    func abstractSocket() throws {
        let name = "hg-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let sock = try NotifySocket(abstract: name)
        let d = DaemonProcess(settings: ["NOTIFY_SOCKET": sock.name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"])
        try d.start()
        var seen: [String] = []
        #expect(sock.await(5, seen: &seen) { fields($0)["READY"] == "1" } != nil)
        let pings = sock.drain(1.0).filter { $0.contains("WATCHDOG=1") }
        #expect(pings.isEmpty, "WATCHDOG_PID=1 is not this daemon, yet \(pings.count) pings")
        #expect(d.stop() == 0)
    }

    @Test("Without NOTIFY_SOCKET nothing is sent; unusable names are refused")
    func addresses() {
        #expect(Notifier(environment: [:]).enabled == false)
        #expect(Notifier(environment: ["NOTIFY_SOCKET": "relative/path"]).enabled == false)
        #expect(Notifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]).enabled == false)
        #expect(Notifier(environment: ["WATCHDOG_USEC": "1000"]).watchdogNanos == nil)
        let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        // Abstract: a leading NUL, no terminator; a path: its NUL counted.
        #expect(Notifier.socketAddress("@ab").map { Array($0[offset...]) } == [0, 97, 98])
        #expect(Notifier.socketAddress("/ab").map { Array($0[offset...]) } == [47, 97, 98, 0])
        #expect(Notifier(environment: ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000"]).watchdogNanos == 1_000_000)
    }
}
