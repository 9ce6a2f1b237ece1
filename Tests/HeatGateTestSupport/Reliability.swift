import Foundation
import HeatGateCore
import Synchronization
import ZeroMQ

/// What a process holds, read from `/proc` (Linux).
public enum ProcessProbe {
    /// Anonymous resident memory in bytes (`RssAnon`): the heap, without the store's file-backed map.
    public static func anonymousRSS(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("RssAnon:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "").map { $0 * 1024 }
        }
        return nil
    }

    /// Open file descriptors.
    public static func openFDs(_ pid: Int32) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }
}

/// The permission bits of a path, or `nil` when it does not exist.
public func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return st.st_mode & 0o7777
}

/// The `seq` of an encoded decision, read from its first member (`{"seq":N,`) without parsing the rest.
public func leadingSeq(_ raw: [UInt8]) -> UInt64? {
    let prefix = Array(#"{"seq":"#.utf8)
    guard raw.starts(with: prefix) else { return nil }
    var n: UInt64 = 0
    var any = false
    for b in raw.dropFirst(prefix.count) {
        guard b >= 48 && b <= 57 else { break }
        n = n * 10 + UInt64(b - 48)
        any = true
    }
    return any ? n : nil
}

/// A subscriber on its own thread that records every decision it sees, as a crash test's witness.
///
/// The socket is created, used and closed on that thread only (a ZeroMQ socket has one owner).
public final class DecisionRecorder: @unchecked Sendable {
    struct State {
        var decisions: [(seq: UInt64, raw: [UInt8])] = []
        var heartbeats = 0
        var stop = false
        var finished = false
        var error: String?
    }
    let state = Locked(State())

    /// Connects to `publish` and records until ``stop(idle:)``.
    public init(publish: String, configure: @escaping @Sendable (Socket) throws -> Void = { _ in }) {
        let state = self.state
        Thread.detachNewThread {
            do {
                let ctx = try Context(ioThreads: 1, blocky: false)
                let sub = try Socket(ctx, type: .sub)
                try sub.set(.receiveTimeout, 20)
                try sub.set(.linger, 0)
                try sub.set(.receiveHighWaterMark, 0)
                try configure(sub)
                try sub.subscribe("calibrated.")
                try sub.subscribe("heartbeat")
                try sub.connect(publish)
                var lastSeen = Date()
                while true {
                    if let frames = try sub.receiveMultipart(), frames.count == 2 {
                        // Heartbeats do not count as traffic: a live daemon keeps sending them.
                        if frames[0] == Array("heartbeat".utf8) {
                            state.withLock { $0.heartbeats += 1 }
                        } else if let seq = leadingSeq(frames[1]) {
                            lastSeen = Date()
                            state.withLock { $0.decisions.append((seq, frames[1])) }
                        }
                        continue
                    }
                    let stop = state.withLock { $0.stop }
                    if stop && Date().timeIntervalSince(lastSeen) > 0.2 { break }
                }
                try sub.close(linger: 0)
            } catch {
                state.withLock { $0.error = "\(error)" }
            }
            state.withLock { $0.finished = true }
        }
    }

    public var heartbeats: Int { state.withLock { $0.heartbeats } }
    public var count: Int { state.withLock { $0.decisions.count } }

    /// Waits (bounded) until the subscription is live: a heartbeat arrived.
    public func awaitLive(timeout: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if heartbeats > 0 { return true }
            usleep(10_000)
        }
        return false
    }

    /// Stops once nothing arrived for 200 ms (bounded by `timeout`) and returns what was seen.
    public func stop(timeout: Double = 10) throws -> [(seq: UInt64, raw: [UInt8])] {
        state.withLock { $0.stop = true }
        let deadline = Date().addingTimeInterval(timeout)
        while !state.withLock({ $0.finished }) && Date() < deadline { usleep(10_000) }
        return try state.withLock { s in
            if let e = s.error { throw DaemonError("recorder: \(e)") }
            return s.decisions
        }
    }
}

/// A producer on its own thread: sends `messages` at `rate` per second (open loop, in small chunks),
/// until done or stopped; a send that would block is retried, so a killed daemon just stalls it.
public final class PacedSender: @unchecked Sendable {
    struct State {
        var sent = 0
        var stop = false
        var finished = false
        var error: String?
    }
    let state = Locked(State())

    /// - Parameters:
    ///   - holdOpen: keep the socket (and its queue, and its connection attempts) open until ``stop()``.
    public init(
        ingest: String, messages: [[UInt8]], rate: Double, holdOpen: Bool = false,
        configure: @escaping @Sendable (Socket) throws -> Void = { _ in }
    ) {
        let state = self.state
        Thread.detachNewThread {
            do {
                let ctx = try Context(ioThreads: 1, blocky: false)
                let push = try Socket(ctx, type: .push)
                try push.set(.linger, 0)
                try push.set(.sendHighWaterMark, 0)
                try configure(push)
                try push.connect(ingest)
                let start = Date()
                var i = 0
                while i < messages.count {
                    if state.withLock({ $0.stop }) { break }
                    let due = Int(Date().timeIntervalSince(start) * rate) + 1
                    if i >= due {
                        usleep(500)
                        continue
                    }
                    while i < min(due, messages.count) {
                        guard try push.send(messages[i], flags: .dontWait) else {
                            usleep(1000)  // no peer, or its queue is full: wait, never spin
                            break
                        }
                        i += 1
                    }
                    state.withLock { $0.sent = i }
                }
                while holdOpen && !state.withLock({ $0.stop }) { usleep(10_000) }
                try push.close(linger: 0)
            } catch {
                state.withLock { $0.error = "\(error)" }
            }
            state.withLock { $0.finished = true }
        }
    }

    public var sent: Int { state.withLock { $0.sent } }
    public var finished: Bool { state.withLock { $0.finished } }

    /// Waits (bounded) until every message was handed to ZeroMQ.
    public func wait(timeout: Double) {
        let deadline = Date().addingTimeInterval(timeout)
        while !finished && Date() < deadline { usleep(5_000) }
    }

    public func stop() {
        state.withLock { $0.stop = true }
        wait(timeout: 5)
    }
}

/// Prints one line that `docs/reliability.md` is filled from: `RELIABILITY <fault>: k=v ...`.
public func reportLine(_ fault: String, _ fields: KeyValuePairs<String, String>) {
    print("RELIABILITY \(fault): " + fields.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
}

/// A value behind a lock, shareable between a test and the thread it started.
final class Locked<Value: Sendable>: Sendable {
    let mutex: Mutex<Value>
    init(_ v: Value) { mutex = Mutex(v) }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R { try mutex.withLock { try body(&$0) } }
}
