import Foundation
import HeatGateCore
import ZeroMQ

/// The `heatgate` binary built beside the tests.
public enum HeatGateBinary {
    public static var path: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("heatgate").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return ".build/debug/heatgate"
    }
}

/// What a finished command printed.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs a program to completion with a bounded wait.
public func runCommand(
    _ path: String, _ args: [String], environment: [String: String]? = nil, stdin: String? = nil, timeout: Double = 60
) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? input.fileHandleForWriting.close()
    // Read both pipes while the process runs so a large output cannot block it.
    nonisolated(unsafe) var outData = Data()
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outData = out.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning {
        p.terminate()
        p.waitUntilExit()
    }
    group.wait()
    p.waitUntilExit()
    return CommandResult(
        status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

/// A free TCP port on loopback (bound, read, released).
public func freePort() -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) }
    }
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// One HTTP GET on loopback: status and body.
public func httpGet(port: Int, path: String) -> (status: Int, body: String)? {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard s >= 0 else { return nil }
    defer { close(s) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard rc == 0 else { return nil }
    let req = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    _ = req.withUnsafeBytes { send(s, $0.baseAddress, $0.count, 0) }
    var data = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        data.append(contentsOf: buf[0..<n])
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
    let statusLine = text[..<headEnd.lowerBound].split(separator: " ")
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
    return (status, String(text[headEnd.upperBound...]))
}

/// The value of one sample in Prometheus text, by its full name with labels.
public func metricValue(_ text: String, _ sample: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1))
    }
    return nil
}

/// A real `heatgate run` in a temporary directory, with `ipc://` endpoints and a free metrics port.
public final class DaemonProcess: @unchecked Sendable {
    public let dir: TemporaryDirectory
    /// Holds the hot store's directory (`<hot>/run`).
    public let hot: TemporaryDirectory
    public var settings: [String: String]
    public let metricsPort: Int
    var process: Process?
    public private(set) var log = ""
    var logPipe: Pipe?
    public let configPath: String?

    /// Prepares (does not start) a daemon.
    /// - Parameters:
    ///   - settings: extra `P26_*`/`HEAT_*` keys, passed in the environment.
    ///   - configFile: when given, written to `<dir>/heatgate.env` and passed with `--config`.
    public init(settings: [String: String] = [:], configFile: String? = nil) {
        dir = TemporaryDirectory("hg-daemon")
        // The hot store on tmpfs, as the gate keeps it (on a disk, MDB_WRITEMAP pages wait on writeback),
        // in a directory of its own that goes with this object.
        var isDir: ObjCBool = false
        let shm = FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDir) && isDir.boolValue
        hot = TemporaryDirectory("hg-daemon-run", base: shm ? "/dev/shm" : "/tmp")
        metricsPort = freePort()
        self.settings = [
            "P26_STATE_DIR": "\(dir.path)/state",
            "P26_RUN_DIR": "\(hot.path)/run",
            "P26_INGEST_ENDPOINT": "ipc://\(dir.path)/ingest.sock",
            "P26_PUBLISH_ENDPOINT": "ipc://\(dir.path)/publish.sock",
            "P26_CONTROL_ENDPOINT": "ipc://\(dir.path)/control.sock",
            "P26_METRICS_PORT": "\(metricsPort)",
            "P26_LOG_LEVEL": "debug",
            "P26_MAP_SIZE_MB": "64",
        ].merging(settings) { $1 }
        if let configFile {
            configPath = "\(dir.path)/heatgate.env"
            _ = FileManager.default.createFile(atPath: configPath!, contents: Data(configFile.utf8))
        } else {
            configPath = nil
        }
    }

    public var stateDir: String { settings["P26_STATE_DIR"]! }
    /// The hot store's directory (`P26_RUN_DIR`).
    public var runDir: String { settings["P26_RUN_DIR"] ?? StorePaths.defaultRunDir(stateDir: stateDir) }
    public var ingest: String { settings["P26_INGEST_ENDPOINT"]! }
    public var publish: String { settings["P26_PUBLISH_ENDPOINT"]! }

    /// The environment the daemon and the CLI share.
    public var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("P26_") && !$0.key.hasPrefix("HEAT_") }
        env.merge(settings) { $1 }
        // Never the host's packaged config: everything comes from the settings above.
        if settings["HEATGATE_CONFIG"] == nil { env["HEATGATE_CONFIG"] = "" }
        return env
    }

    /// Starts the daemon and returns a producer/subscriber pair that has seen its first heartbeat.
    public func startedWithClient() throws -> GateClientSockets {
        try start()
        let c = try GateClientSockets(ingest: ingest, publish: publish)
        _ = try c.awaitHeartbeat()
        return c
    }

    /// Starts the daemon and waits until `/readyz` answers 200.
    public func start(timeout: Double = 15) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: HeatGateBinary.path)
        p.arguments = ["run"] + (configPath.map { ["--config", $0] } ?? [])
        p.environment = environment
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        logPipe = pipe
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let r = httpGet(port: metricsPort, path: "/readyz"), r.status == 200 { return }
            if !p.isRunning { break }
            usleep(20_000)
        }
        throw DaemonError("daemon did not become ready: \(collectLog())")
    }

    public var pid: Int32 { process?.processIdentifier ?? 0 }
    public var isRunning: Bool { process?.isRunning ?? false }

    /// Sends `signal` and waits for the exit; returns the termination status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Double = 15) -> Int32 {
        guard let p = process else { return -1 }
        if p.isRunning { kill(p.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        _ = collectLog()
        process = nil
        return p.terminationStatus
    }

    /// Sends a signal without waiting.
    public func signal(_ sig: Int32) {
        if let p = process { kill(p.processIdentifier, sig) }
    }

    /// What the daemon logged so far (only after it stopped; the pipe is read then).
    @discardableResult
    public func collectLog() -> String {
        if let pipe = logPipe, process?.isRunning != true {
            log += String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            logPipe = nil
        }
        return log
    }

    /// Runs a `heatgate` subcommand with the daemon's settings.
    public func cli(_ args: [String], stdin: String? = nil) throws -> CommandResult {
        var full = args
        if let configPath, ["status", "mode", "analyze", "ledger"].contains(args.first ?? "") {
            full.insert(contentsOf: ["--config", configPath], at: 1)
        }
        return try runCommand(HeatGateBinary.path, full, environment: environment, stdin: stdin)
    }

    /// `/metrics`.
    public func metrics() -> String { httpGet(port: metricsPort, path: "/metrics")?.body ?? "" }

    deinit {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A PUSH producer and a SUB consumer of a daemon, over its real sockets.
public final class GateClientSockets: @unchecked Sendable {
    public let context: Context
    public let push: Socket
    public let sub: Socket

    public init(ingest: String, publish: String, topics: [String] = ["calibrated.", "heartbeat"]) throws {
        context = try Context(ioThreads: 1, blocky: false)
        push = try Socket(context, type: .push)
        sub = try Socket(context, type: .sub)
        try push.set(.linger, 2000)
        try push.set(.sendTimeout, 5000)
        try sub.set(.receiveTimeout, 200)
        for t in topics { try sub.subscribe(t) }
        try sub.connect(publish)
        try push.connect(ingest)
    }

    /// Waits until the subscription is live (a heartbeat arrives), so no decision is missed.
    public func awaitHeartbeat(timeout: Double = 5) throws -> JSON {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let frames = try sub.receiveMultipart(), frames.count == 2, frames[0] == Array("heartbeat".utf8) {
                return try frames[1].withUnsafeBytes { try JSON.parse($0) }
            }
        }
        throw DaemonError("no heartbeat within \(timeout) s")
    }

    public func send(_ lines: [String]) throws {
        for l in lines { guard try push.send(l) else { throw DaemonError("send timed out") } }
    }

    public func send(bytes: [UInt8]) throws {
        guard try push.send(bytes) else { throw DaemonError("send timed out") }
    }

    /// Receives decisions (skipping heartbeats) until `count` arrived or `timeout` passed.
    public func decisions(_ count: Int, timeout: Double = 10) throws -> [(raw: [UInt8], json: JSON)] {
        var out: [(raw: [UInt8], json: JSON)] = []
        let deadline = Date().addingTimeInterval(timeout)
        while out.count < count && Date() < deadline {
            guard let frames = try sub.receiveMultipart(), frames.count == 2 else { continue }
            if frames[0].starts(with: Array("calibrated.".utf8)) {
                out.append((frames[1], try frames[1].withUnsafeBytes { try JSON.parse($0) }))
            }
        }
        return out
    }

    /// Receives heartbeats only, until `count` or `timeout`.
    public func heartbeats(_ count: Int, timeout: Double) throws -> [(at: Date, json: JSON)] {
        var out: [(at: Date, json: JSON)] = []
        let deadline = Date().addingTimeInterval(timeout)
        while out.count < count && Date() < deadline {
            guard let frames = try sub.receiveMultipart(), frames.count == 2 else { continue }
            if frames[0] == Array("heartbeat".utf8) {
                out.append((Date(), try frames[1].withUnsafeBytes { try JSON.parse($0) }))
            }
        }
        return out
    }
}
