import ArgumentParser
import BenchSupport
import Synchronization
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// The load generator of SPEC §10 P4/P5 (the `remote_lat` half of libzmq's `perf/` pair).
///
/// PUSHes proposals (and a little state) at a fixed open-loop rate: message *i* is due at start + *i*/rate;
/// the generator sleeps to that time with `clock_nanosleep(TIMER_ABSTIME)` and never spins; when it wakes
/// late it sends everything already due. Each proposal carries its *intended* send time (`bench_t0_ns`,
/// CLOCK_MONOTONIC), which the gate passes through in the decision's `proposal` object. A SUB receiver
/// thread records receive time − intended send time in an HdrHistogram, so any stall (gate, transport,
/// generator, OS) shows as latency rather than as a quietly lower rate (wrk2). Whatever has not arrived
/// `--drain` seconds after the last scheduled send is lost.
@main
struct LoadGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hg-loadgen",
        abstract: "Open-loop proposal generator and decision receiver; prints one JSON line of results.")

    @Option(help: "Where the gate PULLs (we connect a PUSH).") var push: String
    @Option(help: "Where the gate PUBlishes (we connect a SUB to 'calibrated.').") var sub: String
    @Option(help: "Proposals per second.") var rate: Double = 1000
    @Option(help: "Measured seconds.") var duration: Double = 10
    @Option(help: "Warm-up seconds at the same rate before measuring (not recorded).") var warmup: Double = 1
    @Option(help: "Seconds after the last scheduled send before the rest counts as lost.") var drain: Double = 3
    @Option(help: "Symbols the proposals rotate over.") var symbols: Int = 100
    @Option(help: "Positions to set up before the run (one position message each, then a portfolio).")
    var book: Int = 0
    @Option(help: "One position update every N proposals (0: none).") var stateEvery: Int = 100
    @Option(help: "Write the latency distribution here (.hgrm, microseconds).") var hgrm: String?
    @Option(help: "A label for the result line.") var label: String = "run"

    func run() throws {
        tightenTimerSlack()
        guard rate > 0, duration > 0, rate * (duration + warmup) <= 100_000_000 else {
            throw ValidationError("rate × (duration + warmup) must be in (0, 1e8]: the run is bounded")
        }
        let ctx = try Context(ioThreads: 1)
        let out = try Socket(ctx, type: .push)
        try out.set(.sendHighWaterMark, 0)
        try out.set(.linger, 2000)
        try out.connect(push)

        let state = ReceiverState()
        let subEndpoint = sub
        let receiverCtx = UncheckedSendable(ctx)
        let receiver = startThread { receive(receiverCtx.value, subEndpoint, state) }
        defer {
            state.stop.store(true, ordering: .relaxed)
            pthread_join(receiver, nil)
            try? out.close(linger: 2000)
        }
        // The receiver is subscribed before anything is sent.
        let subscribedBy = monotonicNanos() + 5_000_000_000
        while !state.subscribed.load(ordering: .acquiring) && monotonicNanos() < subscribedBy { sleepFor(1_000_000) }

        let names = Workload.fixedSymbols(max(symbols, book, 1))
        let nameBytes = names.map { Array($0.utf8) }
        if book > 0 {
            for m in Workload.book(Array(names.prefix(book)), now: wallClock()) { _ = try out.send(m) }
        } else {
            // Without a book the gate fails closed; still a decision per proposal.
            _ = try out.send(Workload.book([], now: wallClock()).last!)
        }

        // Slow joiner: send probes until one decision comes back (the SUB has joined), at most 10 s.
        var frame = ProposalFrame(run: "w\(getpid())", symbol: names[0])
        let joinDeadline = monotonicNanos() + 10_000_000_000
        var probe: UInt64 = 0
        while state.seen.load(ordering: .relaxed) == 0 && monotonicNanos() < joinDeadline {
            frame.fill(index: probe, intendedNanos: 1, epoch: wallClock())
            probe += 1
            _ = try out.send(frame.bytes)
            sleepFor(20_000_000)
        }
        guard state.seen.load(ordering: .relaxed) > 0 else {
            throw BenchError("no decision came back from \(sub) within 10 s: is the gate running on \(push)?")
        }

        frame = ProposalFrame(run: "r\(getpid())", symbol: names[0])
        let period = 1e9 / rate
        let warmCount = UInt64((warmup * rate).rounded())
        let count = UInt64((duration * rate).rounded())
        let total = warmCount + count
        let start = monotonicNanos() + 2_000_000
        let measureFrom = start + UInt64(Double(warmCount) * period)
        state.measureFrom.store(measureFrom, ordering: .releasing)
        var maxLag: UInt64 = 0
        var wakeups: UInt64 = 0
        var i: UInt64 = 0
        var epoch = wallClock()
        var stateToggle = false
        while i < total {
            let due = start + UInt64(Double(i) * period)
            var now = monotonicNanos()
            if due > now {
                sleepUntil(due)
                wakeups += 1
                now = monotonicNanos()
                epoch = wallClock()
            }
            if i >= warmCount { maxLag = max(maxLag, now - due) }
            // Everything already due goes out now.
            while i < total {
                let t0 = start + UInt64(Double(i) * period)
                if t0 > now { break }
                frame.setSymbol(nameBytes[Int(i % UInt64(max(symbols, 1)))])
                frame.fill(index: i, intendedNanos: t0, epoch: epoch)
                _ = try out.send(frame.bytes)
                if stateEvery > 0 && i % UInt64(stateEvery) == 0 {
                    stateToggle.toggle()
                    let s = names[Int((i / UInt64(stateEvery)) % UInt64(max(symbols, 1)))]
                    _ = try out.send(Workload.position(s, notional: stateToggle ? 9100 : 9000, now: epoch))
                }
                i += 1
            }
        }
        let lastDue = start + UInt64(Double(total - 1) * period)
        let drainUntil = lastDue + UInt64(drain * 1e9)
        while monotonicNanos() < drainUntil && state.measured.load(ordering: .relaxed) < count {
            sleepFor(2_000_000)
        }
        state.stop.store(true, ordering: .relaxed)
        pthread_join(receiver, nil)
        state.stop.store(false, ordering: .relaxed)  // joined: the deferred join must not run twice

        let received = state.recorder.value.count
        let recorder = state.recorder.value
        if let hgrm { try writeText(recorder.hgrm(), to: hgrm) }
        var pairs: [(String, JSONScalar)] = [
            ("label", .string(label)), ("rate_per_s", .number(rate)), ("duration_s", .number(duration)),
            ("sent", .int(Int(count))), ("received", .int(Int(received))),
            ("lost", .int(Int(count) - Int(min(received, count)))),
            ("generator_max_lag_us", .number(Double(maxLag / 100) / 10)),
            ("generator_wakeups", .int(Int(wakeups))), ("book_positions", .int(book)),
            ("state_every", .int(stateEvery)),
        ]
        pairs += recorder.summary().map { ($0.0, JSONScalar.number($0.1)) }
        if let hgrm { pairs.append(("hgrm_file", .string(hgrm))) }
        print(jsonObject(pairs))
        Glibc.exit(0)  // the deferred join already happened; libzmq's linger is bounded
    }
}

/// What the receiver thread shares with the generator.
final class ReceiverState: Sendable {
    let stop = Atomic<Bool>(false)
    let subscribed = Atomic<Bool>(false)
    let seen = Atomic<UInt64>(0)
    let measured = Atomic<UInt64>(0)
    let measureFrom = Atomic<UInt64>(UInt64.max)
    /// Written by the receiver only; read after `pthread_join`.
    let recorder = Handoff(LatencyRecorder())
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

/// The receiver thread: blocking receives (a 50 ms timeout to notice `stop`), never a busy poll.
func receive(_ ctx: Context, _ endpoint: String, _ state: ReceiverState) {
    do {
        let sub = try Socket(ctx, type: .sub)
        try sub.set(.receiveHighWaterMark, 0)
        try sub.set(.receiveTimeout, 50)
        try sub.set(.linger, 0)
        try sub.subscribe("calibrated.")
        try sub.connect(endpoint)
        state.subscribed.store(true, ordering: .releasing)
        let message = Message()
        while !state.stop.load(ordering: .relaxed) {
            guard try sub.receive(into: message) else { continue }
            // Topic frame, then the decision.
            guard message.more, try sub.receive(into: message) else { continue }
            let now = monotonicNanos()
            guard let t0 = message.withUnsafeBytes({ readBenchT0($0) }) else { continue }
            state.seen.add(1, ordering: .relaxed)
            if t0 >= state.measureFrom.load(ordering: .relaxed) {
                state.recorder.value.record(now &- t0)
                state.measured.add(1, ordering: .relaxed)
            }
        }
        try sub.close(linger: 0)
    } catch {
        printError("hg-loadgen: receiver: \(error)")
        state.subscribed.store(true, ordering: .releasing)
    }
}
