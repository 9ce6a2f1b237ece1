import Foundation
import HeatGateCore

/// Drives an ``Engine`` with JSON lines, as the daemon and `heatgate replay` do, and decodes what it says.
public final class EngineHarness {
    public let engine: Engine
    public var now: Double

    public init(
        _ config: GateConfig = GateConfig(), now: Double = 1_764_000_000, maxSymbols: Int = Engine.defaultMaxSymbols,
        repeatCapacity: Int? = nil
    ) {
        engine = Engine(
            policy: Policy(config), maxSymbols: maxSymbols,
            repeatCapacity: repeatCapacity
                ?? RepeatWindow.capacity(ttl: config.calibratedTTLSec, peakRate: config.repeatPeakRate))
        self.now = now
    }

    /// What one line did: a decision (decoded), a duplicate's seq, a state change, or a rejection.
    public enum Result {
        case decision(JSON)
        case duplicate(UInt64)
        case state(StateChange)
        case rejected(Rejection)

        public var decision: JSON? {
            if case .decision(let j) = self { return j }
            return nil
        }

        public var rejection: Rejection? {
            if case .rejected(let r) = self { return r }
            return nil
        }
    }

    /// Sends one message at the harness's clock.
    @discardableResult
    public func send(_ line: String) -> Result {
        let bytes = Array(line.utf8)
        return bytes.withUnsafeBytes { b in
            switch engine.process(b, now: now) {
            case .decision(let d, let p):
                var w = JSONWriter()
                DecisionEncoder.encode(d, proposal: p, source: b, symbol: engine.symbol(d.symbolId), into: &w)
                return .decision(try! JSON.parse(String(decoding: w.bytes, as: UTF8.self)))
            case .duplicate(let seq, _): return .duplicate(seq)
            case .state(let s): return .state(s)
            case .rejected(let r): return .rejected(r)
            }
        }
    }

    /// Sends a proposal and returns its decision.
    public func decide(_ line: String) -> JSON? { send(line).decision }

    /// Sends a proposal and returns its decision's bytes exactly as the encoder wrote them (what the store
    /// keeps), or `nil` when the line was no new decision.
    public func decideBytes(_ line: String) -> [UInt8]? {
        let bytes = Array(line.utf8)
        return bytes.withUnsafeBytes { b in
            guard case .decision(let d, let p) = engine.process(b, now: now) else { return nil }
            var w = JSONWriter()
            DecisionEncoder.encode(d, proposal: p, source: b, symbol: engine.symbol(d.symbolId), into: &w)
            return w.bytes
        }
    }
}

/// A temporary directory, removed when the value is released.
public final class TemporaryDirectory: Sendable {
    public let path: String

    /// - Parameter base: where to make it (`/tmp`; `/dev/shm` for a hot store, as the gate keeps it).
    public init(_ prefix: String = "heatgate-test", base: String = "/tmp") {
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
