import ArgumentParser
import BenchSupport
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// The transport floor of SPEC §10 P4: a zero-work gate with the daemon's sockets and options.
///
/// PULL → PUB, forwarding each frame unchanged behind a constant topic frame (`calibrated.ECHO`), so the
/// same receiver reads it as a decision: its `bench_t0_ns` is the generator's. No parse, no store.
@main
struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hg-echo", abstract: "Zero-work ZeroMQ echo (PULL → PUB), the transport floor of P4/P5.")

    @Option(help: "Bind a PULL here.") var pull: String
    @Option(help: "Bind a PUB here.") var pub: String
    @Option(help: "Exit after this many seconds, whatever happens (the harness stops it sooner).")
    var maxSeconds: Double = 3600

    func run() throws {
        let ctx = try Context(ioThreads: 1)
        let input = try Socket(ctx, type: .pull)
        let output = try Socket(ctx, type: .pub)
        // The daemon's settings (Daemon.serve).
        try input.set(.receiveHighWaterMark, 100_000)
        try output.set(.sendHighWaterMark, 100_000)
        try output.set(.xpubNoDrop, true)
        try input.set(.receiveTimeout, 100)
        try input.set(.linger, 0)
        try output.set(.linger, 0)
        try input.bind(pull)
        try output.bind(pub)
        let topic: [UInt8] = Array("calibrated.ECHO".utf8)
        let message = Message()
        let deadline = monotonicNanos() + UInt64(maxSeconds * 1e9)
        var dropped = 0
        while monotonicNanos() < deadline {
            guard try input.receive(into: message) else { continue }
            let sent = try topic.withUnsafeBytes { t in
                guard try output.send(t, flags: [.sendMore, .dontWait]) else { return false }
                return try message.withUnsafeBytes { try output.send($0, flags: .dontWait) }
            }
            if !sent { dropped += 1 }
        }
        printError("hg-echo: stopped after \(maxSeconds) s; dropped \(dropped)")
    }
}
