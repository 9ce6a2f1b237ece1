import ArgumentParser
import Foundation
import HeatGateCore
import HeatGateServer
import HeatGateStore

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run JSON-lines messages through the daemon's engine with a temporary store; print decisions.",
        discussion: """
            Each line is one message of SPEC §3. A line may carry "at": the clock (epoch seconds) at which it
            arrives; lines without it keep the previous clock, which starts at --now or the wall clock.
            Rejected lines are reported on stderr with their number and reason; the run goes on and exits 1.
            """)

    @OptionGroup var options: ConfigOptions

    @Argument(help: "A JSON-lines file, or - for standard input.")
    var file: String

    @Option(help: "The starting clock, epoch seconds (default: the wall clock).")
    var now: Double?

    func run() throws {
        var config = try options.load()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("heatgate-replay-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        config.mapSizeMB = min(config.mapSizeMB, 1024)
        var clock = now ?? wallClock()
        let gate = try Gate(config: config, directory: dir, durable: false, now: clock)
        let input = try openInput(file)
        var failures = 0
        var lineNo = 0
        for line in LineReader(input) {
            lineNo += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            line.withUnsafeBytes { bytes in
                if let at = arrivalTime(bytes) { clock = at }
                gate.beginBatch()
                if case .rejected(let r) = gate.handle(bytes, now: clock) {
                    failures += 1
                    printError("line \(lineNo): rejected \(r)")
                }
            }
            guard try gate.commit(now: clock) else {
                throw CLIError("line \(lineNo): the temporary store failed: \(gate.lastStoreError)")
            }
            for p in gate.published { gate.withPayload(p) { writeLine($0) } }
        }
        if failures > 0 {
            printError("\(failures) line(s) rejected")
            throw ExitCode(1)
        }
    }
}

/// The `"at"` member of a replay line, when it has one.
func arrivalTime(_ b: UnsafeRawBufferPointer) -> Double? {
    guard var it = try? JSONObjectIterator(b) else { return nil }
    while let m = try? it.next() {
        if b.equals(m.key, "at") {
            switch m.value.kind {
            case .number: return parseDouble(b, m.value.range)
            case .string: return parseDouble(b, m.value.content)
            default: return nil
            }
        }
    }
    return nil
}

/// Reads a file as lines of bytes, without loading it whole.
struct LineReader: Sequence, IteratorProtocol {
    let handle: FileHandle
    var buffer: [UInt8] = []
    var start = 0
    var eof = false

    init(_ handle: FileHandle) { self.handle = handle }

    mutating func next() -> [UInt8]? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 10) {
                let line = Array(buffer[start..<nl])
                start = nl + 1
                return line
            }
            if eof {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            buffer.removeFirst(start)
            start = 0
            let chunk = handle.readData(ofLength: 1 << 16)
            if chunk.isEmpty { eof = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}
