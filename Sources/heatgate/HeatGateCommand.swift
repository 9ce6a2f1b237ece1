import ArgumentParser
import Foundation
import HeatGateCore

@main
struct HeatGateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heatgate",
        abstract: "The portfolio heat gate: calibrates exit proposals by portfolio heat, with no Redis.",
        discussion: """
            Proposals and state arrive over ZeroMQ (PULL); decisions are committed to LMDB, then published
            (PUB, topic calibrated.<SYMBOL>). Start with `heatgate run`; read SPEC-style docs in docs/.
            """,
        version: "0.1.0",
        subcommands: [
            Run.self, CheckConfig.self, Replay.self, Status.self, ModeCommand.self, Kill.self, Get.self, Send.self,
            Tail.self, Analyze.self, Tune.self, LedgerCommand.self,
        ]
    )
}

/// `--config FILE` and `--set KEY=VALUE`: the file, then the environment, then flags (SPEC §6).
struct ConfigOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "A KEY=VALUE config file (SPEC §6); default: $HEATGATE_CONFIG, else \(packagedPath) when it exists.")
    var config: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Override one key, e.g. --set P26_MODE=enforce.", valueName: "KEY=VALUE"))
    var overrides: [String] = []

    /// The file the package installs and its unit runs the daemon with.
    static let packagedPath = "/etc/quantum/portfolio-heat-gate.env"

    /// The config file in effect: `--config`, else `$HEATGATE_CONFIG` (empty: none), else the packaged
    /// file when it exists, else none (built-in defaults and `P26_*` variables). Without the packaged
    /// default, `heatgate kill on` typed on the gate's host would have set a switch in `./data` and said
    /// "kill switch ON" while the gate went on.
    func path(in environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let config { return config }
        if let chosen = environment["HEATGATE_CONFIG"] { return chosen.isEmpty ? nil : chosen }
        return FileManager.default.fileExists(atPath: Self.packagedPath) ? Self.packagedPath : nil
    }

    /// Loads and validates the configuration.
    /// - Throws: a `ValidationError` naming the key, the value and what is allowed.
    func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GateConfig {
        var text: String?
        let config = path(in: environment)
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else {
                let files = FileManager.default
                let why =
                    !files.fileExists(atPath: config)
                    ? "no such file"
                    : !files.isReadableFile(atPath: config) ? "Permission denied" : "not a readable file"
                let chosen =
                    self.config != nil
                    ? "" : environment["HEATGATE_CONFIG"] != nil ? " (from HEATGATE_CONFIG)" : " (the packaged default)"
                throw CLIError("cannot read config file \(config)\(chosen): \(why)")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        var pairs: [(String, String)] = []
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw ValidationError("--set takes KEY=VALUE, got \(o)") }
            pairs.append((String(o[..<eq]), String(o[o.index(after: eq)...])))
        }
        do {
            return try ConfigLoader.load(
                fileText: text, fileName: config ?? "config", environment: environment, overrides: pairs)
        } catch {
            throw CLIError(error.description)
        }
    }
}

/// A failure to report as one line and exit 1 (argument mistakes stay `ValidationError`, exit 64).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// A file to read lines from, or standard input for `-`.
func openInput(_ file: String) throws -> FileHandle {
    if file == "-" { return .standardInput }
    guard let h = FileHandle(forReadingAtPath: file) else { throw CLIError("cannot read \(file)") }
    return h
}

/// Writes one line to standard error.
func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Writes bytes and a newline to standard output, unbuffered by Foundation.
func writeLine(_ bytes: UnsafeRawBufferPointer) {
    var rest = bytes
    while !rest.isEmpty {
        let n = write(1, rest.baseAddress, rest.count)
        if n <= 0 { return }
        rest = UnsafeRawBufferPointer(rebasing: rest[n...])
    }
    var nl: UInt8 = 10
    _ = write(1, &nl, 1)
}
