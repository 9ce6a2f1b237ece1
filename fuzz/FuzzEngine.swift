// libFuzzer entry over the message parser, the engine and the decision encoder (issue 8).
//
// Built by fuzz/run.sh with `swiftc -parse-as-library -sanitize=fuzzer,address` together with
// Sources/HeatGateCore/*.swift, so it exercises exactly the code the daemon runs on every frame.
// Each input is fed twice: as one frame, then split on newlines as a sequence of frames into one
// engine (state messages first change the book, then proposals are decided against it). Every decision
// is encoded and read back; the invariants below abort, which libFuzzer reports as a crash.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let now = 1_764_000_000.0
    let engine = Engine(maxSymbols: 64)
    // A usable book, so proposals reach the heat rules and not only the input-problem ones.
    for seed in [
        #"{"type":"portfolio","equity_usd":10000}"#,
        #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":1800,"sigma":0.15}"#,
    ] {
        Array(seed.utf8).withUnsafeBytes { _ = engine.process($0, now: now) }
    }
    feed(engine, input, now: now)
    var start = 0
    var frames = 0
    for i in 0...size where i == size || input[i] == UInt8(ascii: "\n") {
        if i > start { feed(engine, UnsafeRawBufferPointer(rebasing: input[start..<i]), now: now) }
        start = i + 1
        frames += 1
        if frames > 64 { break }
    }
    // The config parser reads operator files: it must refuse, never crash.
    if size < 4096 { _ = try? ConfigLoader.load(fileText: String(decoding: input, as: UTF8.self)) }
    return 0
}

func feed(_ engine: Engine, _ frame: UnsafeRawBufferPointer, now: Double) {
    let seqBefore = engine.nextSeq
    switch engine.process(frame, now: now) {
    case .decision(let d, let p):
        precondition(d.seq == seqBefore && engine.nextSeq == seqBefore + 1, "seq must advance by one")
        if let o = d.original, let c = d.calibrated {
            precondition(c.exitPercent <= o.exitPercent, "calibration must never enlarge an exit")
        }
        var w = JSONWriter(capacity: 1024)
        DecisionEncoder.encode(d, proposal: p, source: frame, symbol: engine.symbol(d.symbolId), into: &w)
        let decoded: JSON
        do {
            decoded = try w.bytes.withUnsafeBytes { try JSON.parse($0) }
        } catch {
            preconditionFailure("the encoder wrote invalid JSON: \(String(decoding: w.bytes, as: UTF8.self))")
        }
        precondition(decoded["seq"]?.number == Double(d.seq), "seq must round-trip")
        precondition(decoded["proposal"] != nil, "the proposal must be passed through")
    case .duplicate, .state, .rejected:
        precondition(engine.nextSeq == seqBefore, "only a decision takes a seq")
    }
    precondition(engine.totalRiskUSD >= 0 && !engine.totalRiskUSD.isNaN, "risk must stay a number >= 0")
    precondition(engine.openPositions >= 0 && engine.openPositions <= engine.symbolCount, "open positions")
    // The generic parser (control socket, tests) must refuse or parse, never crash.
    _ = try? JSON.parse(frame)
}
