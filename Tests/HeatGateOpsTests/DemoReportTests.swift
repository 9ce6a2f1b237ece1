import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateTestSupport
import Testing

/// Six hours of a plausible book through the real gate: the journal behind `docs/shadow-report.png`.
/// `HEATGATE_DEMO_REPORT=/path/report.html swift test --filter DemoReport` writes the page.
@Suite("Demo report")
struct DemoReportTests {
    static func tape() -> Tape {
        var t = Tape()
        var rng = SplitMix(seed: 26)
        let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"]
        var price = [100.0, 2000, 150, 0.6, 0.45]
        var notional = [0.0, 0, 0, 0, 0]
        let sigma = [0.9, 1.2, 1.8, 1.5, 1.6]
        t.portfolio(0, equity: 250_000)
        for k in 0..<symbols.count { t.price(0.5, symbols[k], price[k]) }
        var s = 1.0
        while s < 6 * 3600 {
            // The book drifts: positions grow in the morning, shrink after the midday spike.
            let phase = s / 3600
            let k = Int(rng.next() * Double(symbols.count)) % symbols.count
            let target =
                (phase < 2 ? 4_000 + phase * 9_000 : phase < 3.2 ? 34_000 : phase < 4.5 ? 16_000 : 9_000)
                * (0.6 + rng.next() * 0.8)
            notional[k] = (k == 1 ? -1 : 1) * target
            t.position(s, symbols[k], notional: notional[k], sigma: sigma[k])
            s += 20 + rng.next() * 40
            for j in 0..<symbols.count {
                price[j] *= 1 + (rng.next() - 0.5) * 0.002
                t.price(s, symbols[j], (price[j] * 10_000).rounded() / 10_000)
            }
            s += 20 + rng.next() * 30
            if rng.next() < 0.6 { t.portfolio(s, equity: 250_000 + (rng.next() - 0.5) * 2000) }
            if rng.next() < 0.16 {
                let j = Int(rng.next() * Double(symbols.count)) % symbols.count
                t.propose(s, symbols[j], rng.next() < 0.8 ? "FULL_CLOSE_PROPOSED" : "PARTIAL_50")
            }
            s += 10
        }
        return t
    }

    @Test("a six-hour journal renders a complete page")
    func demo() throws {
        let dir = try Self.tape().journal(Tape.config { $0.stateMaxAgeSec = 600 })
        let r = try analyze(dir, config: Tape.config { $0.stateMaxAgeSec = 600 })
        #expect(r.decisions > 20)
        #expect(r.buckets.filter { $0.seconds > 0 }.count >= 3)
        let html = r.html(title: "HeatGate shadow report — gate-1", generatedAt: r.to)
        #expect(html.contains("</svg>") && html.hasSuffix("</html>\n"))
        if let out = ProcessInfo.processInfo.environment["HEATGATE_DEMO_REPORT"] {
            #expect(FileManager.default.createFile(atPath: out, contents: Data(html.utf8)))
            print(r.text())
        }
    }
}

/// A small deterministic generator, so the demo is the same on every machine.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}
