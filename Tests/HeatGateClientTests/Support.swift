import Foundation
import HeatGateClient
import HeatGateCore
import HeatGateTestSupport

/// Equity 10 000 and one ETH position: heat 0.027, COLD, so a full close is calibrated to PARTIAL_25.
let coldBook = [
    #"{"type":"portfolio","equity_usd":"10000"}"#,
    #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15"}"#,
]

let fullToken = "FULL_CLOSE_PROPOSED"

func proposal(_ plan: String, _ action: String = "FULL_CLOSE_PROPOSED", symbol: String = "ETHUSDT") -> String {
    #"{"type":"proposal","symbol":"\#(symbol)","harvest_action":"\#(action)","plan_id":"\#(plan)"}"#
}

func now() -> Double { Date().timeIntervalSince1970 }

/// What a subscriber reported while it was read.
struct Collected {
    var decisions: [PublishedDecision] = []
    var events: [SubscriberEvent] = []
    var seqs: [UInt64] { decisions.map(\.seq) }
}

extension DecisionSubscriber {
    /// Reads events until `done` holds or `timeout` seconds pass.
    func collect(
        timeout: Double, into c: inout Collected, until done: (Collected) -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !done(c) && Date() < deadline {
            guard let e = try next(timeout: .milliseconds(100)) else { continue }
            if case .decision(let d) = e { c.decisions.append(d) } else { c.events.append(e) }
        }
    }

    /// Reads until `n` more decisions arrived (or `timeout`).
    func decisions(_ n: Int, timeout: Double = 10) throws -> Collected {
        var c = Collected()
        try collect(timeout: timeout, into: &c) { $0.decisions.count >= n }
        return c
    }

    /// Reads until the gate is reported up (or `timeout`); what came before is returned too.
    func awaitUp(timeout: Double = 5) throws -> Collected {
        var c = Collected()
        try collect(timeout: timeout, into: &c) { c in
            c.events.contains { if case .gateUp = $0 { true } else { false } }
        }
        return c
    }
}

extension Collected {
    var sawUp: Bool { events.contains { if case .gateUp = $0 { true } else { false } } }
    var sawDown: Bool { events.contains { if case .gateDown = $0 { true } else { false } } }
    var missed: [ClosedRange<UInt64>] { events.compactMap { if case .missed(let r) = $0 { r } else { nil } } }
}
