import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateServer
import HeatGateStore
import HeatGateTestSupport
import Testing

/// A scripted run of the gate: messages, each at its own clock, plus the odd operator action.
struct Tape {
    enum Step {
        case message(String)
        case killSwitch(Bool)
    }

    var steps: [(at: Double, step: Step)] = []
    static let t0 = 1_764_000_000.0

    mutating func at(_ offset: Double, _ line: String) { steps.append((Tape.t0 + offset, .message(line))) }
    mutating func kill(_ offset: Double, _ on: Bool) { steps.append((Tape.t0 + offset, .killSwitch(on))) }

    mutating func portfolio(_ offset: Double, equity: Double) {
        at(offset, #"{"type":"portfolio","equity_usd":\#(equity)}"#)
    }
    mutating func position(_ offset: Double, _ symbol: String, notional: Double, sigma: Double? = nil) {
        at(
            offset,
            #"{"type":"position","symbol":"\#(symbol)","position_notional_usd":\#(notional)"#
                + (sigma.map { #","sigma":\#($0)"# } ?? "") + "}")
    }
    mutating func price(_ offset: Double, _ symbol: String, _ price: Double) {
        at(offset, #"{"type":"market","symbol":"\#(symbol)","price":\#(price)}"#)
    }
    mutating func propose(_ offset: Double, _ symbol: String, _ action: String = "FULL_CLOSE", age: Double = 0) {
        at(
            offset,
            #"{"type":"proposal","symbol":"\#(symbol)","harvest_action":"\#(action)","ts_epoch":\#(Tape.t0 + offset - age)}"#
        )
    }

    /// Runs the tape through a real ``Gate`` (engine + LMDB store) in a new temporary directory, as the
    /// daemon would, one batch per message; the store is closed when this returns.
    func journal(_ config: GateConfig = Tape.config()) throws -> TemporaryDirectory {
        let dir = TemporaryDirectory("heatgate-ops")
        try record(config, into: dir.path)
        return dir
    }

    func record(_ config: GateConfig, into path: String) throws {
        let gate = try Gate(config: config, directory: path, durable: true, now: steps.first?.at ?? Tape.t0)
        for (n, (at, step)) in steps.enumerated() {
            switch step {
            case .killSwitch(let on):
                try gate.store.setKillSwitch(KillSwitchState(on: on, reason: "test", ts: at))
            case .message(let line):
                gate.beginBatch()
                let handled = Array(line.utf8).withUnsafeBytes { gate.handle($0, now: at) }
                if case .rejected(let why) = handled { throw TapeError("step \(n) rejected: \(why): \(line)") }
                guard try gate.commit(now: at) else { throw TapeError("step \(n): \(gate.lastStoreError)") }
            }
        }
    }

    /// Defaults, but equity never goes stale unless a test wants it to.
    static func config(_ edit: (inout GateConfig) -> Void = { _ in }) -> GateConfig {
        var c = GateConfig()
        c.stateMaxAgeSec = 1e6
        c.mapSizeMB = 64
        edit(&c)
        return c
    }
}

struct TapeError: Error, CustomStringConvertible {
    var description: String
    init(_ s: String) { description = s }
}

/// Analyses a journal directory the way `heatgate analyze` does: read-only.
func analyze(
    _ dir: TemporaryDirectory, config: GateConfig = Tape.config(), _ edit: (inout AnalysisOptions) -> Void = { _ in }
)
    throws -> ShadowReport
{
    var o = AnalysisOptions()
    o.policy = Policy(config)
    edit(&o)
    let store = try GateStore(directory: dir.path, readOnly: true)
    return try ShadowAnalyzer.analyze(store: store, options: o)
}

/// `a ≈ b` for figures computed in floating point.
func close(_ a: Double?, _ b: Double, _ tolerance: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tolerance * max(1, abs(b))
}

/// The built `heatgate` binary, beside the test bundle or in the package's `.build/debug`.
func heatgateBinary() throws -> String {
    let fm = FileManager.default
    var candidates: [String] = []
    let arg0 = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    var dir = arg0.deletingLastPathComponent()
    for _ in 0..<4 {
        candidates.append(dir.appendingPathComponent("heatgate").path)
        dir = dir.deletingLastPathComponent()
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    candidates.append(root.appendingPathComponent(".build/debug/heatgate").path)
    for c in candidates where fm.isExecutableFile(atPath: c) { return c }
    throw TapeError("no heatgate binary in \(candidates); build it first (swift build)")
}

/// What a finished process said.
struct Finished {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `heatgate` with arguments to the end.
@discardableResult
func heatgate(_ args: [String], environment: [String: String]? = nil) throws -> Finished {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try heatgateBinary())
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Finished(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}
