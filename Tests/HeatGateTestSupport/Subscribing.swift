import Foundation
import HeatGateClient

/// What a subscriber reported while it was read.
public struct Collected {
    public init() {}
    public var decisions: [PublishedDecision] = []
    public var events: [SubscriberEvent] = []
    public var seqs: [UInt64] { decisions.map(\.seq) }
}

extension DecisionSubscriber {
    /// Reads events until `done` holds or `timeout` seconds pass.
    public func collect(
        timeout: Double, into c: inout Collected, until done: (Collected) -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !done(c) && Date() < deadline {
            guard let e = try next(timeout: .milliseconds(100)) else { continue }
            if case .decision(let d) = e { c.decisions.append(d) } else { c.events.append(e) }
        }
    }

    /// Reads until `n` more decisions arrived (or `timeout`).
    public func decisions(_ n: Int, timeout: Double = 10) throws -> Collected {
        var c = Collected()
        try collect(timeout: timeout, into: &c) { $0.decisions.count >= n }
        return c
    }

    /// Reads until the gate is reported up (or `timeout`); what came before is returned too.
    public func awaitUp(timeout: Double = 5) throws -> Collected {
        var c = Collected()
        try collect(timeout: timeout, into: &c) { c in
            c.events.contains { if case .gateUp = $0 { true } else { false } }
        }
        return c
    }
}

extension Collected {
    public var sawUp: Bool { events.contains { if case .gateUp = $0 { true } else { false } } }
    public var sawDown: Bool { events.contains { if case .gateDown = $0 { true } else { false } } }
    public var missed: [ClosedRange<UInt64>] { events.compactMap { if case .missed(let r) = $0 { r } else { nil } } }
}
