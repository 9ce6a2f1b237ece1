import ArgumentParser
import Foundation
import HeatGateClient
import HeatGateCore
import HeatGateServer
import HeatGateStore
import ZeroMQ

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: PULL at P26_INGEST_ENDPOINT, PUB at P26_PUBLISH_ENDPOINT, metrics over HTTP.",
        discussion: "SIGHUP re-reads the config file; SIGTERM stops cleanly after committing what is queued.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        _ = try options.load()  // validate first: a bad value stops start-up with the key named
        let source = ConfigSource(
            path: options.config, environment: ProcessInfo.processInfo.environment,
            overrides: options.overrides.compactMap { o in
                o.firstIndex(of: "=").map { (String(o[..<$0]), String(o[o.index(after: $0)...])) }
            })
        let daemon = try Daemon(source: source)
        let code = daemon.run()
        if code != 0 { throw ExitCode(code) }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mode, heat, bucket, inputs' age, counts, kill switch, seq and uptime of the running daemon.",
        discussion: "Exits 3 when no daemon answers on the control endpoint.")

    @OptionGroup var options: ConfigOptions

    @Flag(help: "Print the daemon's JSON.")
    var json = false

    func run() throws {
        let config = try options.load()
        guard let reply = ControlClient(endpoint: config.controlEndpoint).request(#"{"cmd":"status"}"#) else {
            printError("heatgate is not running: no answer on \(config.controlEndpoint)")
            if let store = try? GateStore(directory: config.stateDir, readOnly: true) {
                let kill = (try? store.killSwitch())?.on ?? false
                let last = (try? store.lastSeq()).flatMap { $0 } ?? 0
                printError("store \(config.stateDir): last_seq=\(last) kill_switch=\(kill ? "on" : "off")")
            }
            throw ExitCode(3)
        }
        if json {
            print(reply.text)
            return
        }
        guard case .object(let members) = reply else { return }
        for (k, v) in members where k != "ok" {
            let value: String
            switch v {
            case .string(let s): value = s
            case .null: value = "-"
            default: value = v.text
            }
            print("\(k.padding(toLength: 22, withPad: " ", startingAt: 0)) \(value)")
        }
    }
}

struct ModeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mode",
        abstract: "Switch the running daemon between shadow and enforce, live.",
        discussion: "--persist also rewrites P26_MODE in the --config file (atomically, keeping comments).")

    @OptionGroup var options: ConfigOptions

    @Argument(help: "shadow or enforce")
    var mode: String

    @Flag(help: "Also rewrite P26_MODE in the config file, so a restart keeps it.")
    var persist = false

    @Option(help: "Why, for the log.")
    var reason: String = ""

    func validate() throws {
        guard ["shadow", "enforce"].contains(mode.lowercased()) else {
            throw ValidationError("mode must be shadow or enforce, got \(mode)")
        }
    }

    func run() throws {
        let config = try options.load()
        let wanted = mode.lowercased()
        if persist {
            guard let path = options.config else { throw CLIError("--persist needs --config FILE") }
            try ConfigFileEditor.set(key: "P26_MODE", value: wanted, in: path)
            print("\(path): P26_MODE=\(wanted)")
        }
        var w = JSONWriter()
        w.raw("{\"cmd\":\"mode\",\"mode\":")
        w.string(wanted)
        w.raw(",\"reason\":")
        w.string(reason)
        w.raw("}")
        guard
            let reply = ControlClient(endpoint: config.controlEndpoint).request(
                String(decoding: w.bytes, as: UTF8.self))
        else {
            throw CLIError(
                "no daemon answered on \(config.controlEndpoint)"
                    + (persist ? "; the config file is changed and applies at the next start" : ""))
        }
        guard reply["ok"]?.bool == true else { throw CLIError(reply["error"]?.string ?? "refused") }
        print("mode: \(reply["previous"]?.string ?? "?") -> \(reply["mode"]?.string ?? "?")")
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set the kill switch: every proposal is held (HOLD) from the next one on.",
        discussion: "Writes the store directly, so it works whether or not the daemon runs.")

    @OptionGroup var options: ConfigOptions

    @Argument(help: "on or off")
    var state: String

    @Option(help: "Why, stored with the switch.")
    var reason: String = ""

    func validate() throws {
        guard ["on", "off"].contains(state.lowercased()) else { throw ValidationError("state must be on or off") }
    }

    func run() throws {
        let config = try options.load()
        let store = try GateStore(directory: config.stateDir, mapSizeMB: config.mapSizeMB, durable: true)
        let on = state.lowercased() == "on"
        try store.setKillSwitch(KillSwitchState(on: on, reason: reason, ts: Date().timeIntervalSince1970))
        print("kill switch \(on ? "ON" : "off")\(reason.isEmpty ? "" : " (\(reason))")")
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The Apply Layer's read contract (SPEC §5), from the store.",
        discussion: """
            Exit 0 and the decision JSON: execute its `action`. Exit 3 and one line (no_decision, expired,
            other_plan): execute the original proposal. Exit 4: the kill switch is on, execute nothing.
            """)

    @OptionGroup var options: ConfigOptions

    @Argument(help: "The symbol.")
    var symbol: String

    @Option(name: .customLong("plan-id"), help: "The proposal's plan_id.")
    var planId: String?

    func run() throws {
        let config = try options.load()
        let lookup: DecisionLookup
        do {
            lookup = try DecisionLookup(stateDir: config.stateDir)
        } catch {
            print("no_decision")
            printError("no readable store in \(config.stateDir): \(error)")
            throw ExitCode(3)
        }
        switch try lookup.lookup(symbol: symbol, planId: planId, now: Date().timeIntervalSince1970) {
        case .useDecision(_, let decision):
            print(decision)
        case .useOriginal(let why):
            print(why.rawValue)
            throw ExitCode(3)
        case .killSwitch(let reason):
            print("kill_switch\(reason.isEmpty ? "" : ": \(reason)")")
            throw ExitCode(4)
        }
    }
}

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send JSON-lines messages (SPEC §3) to a running daemon.")

    @OptionGroup var options: ConfigOptions

    @Argument(help: "A JSON-lines file, or - for standard input.")
    var file: String

    func run() throws {
        let config = try options.load()
        let ctx = try Context(ioThreads: 1)
        let push = try Socket(ctx, type: .push)
        try push.set(.linger, 5000)
        try push.set(.sendTimeout, 5000)
        try push.connect(config.ingestEndpoint)
        let input: FileHandle
        if file == "-" {
            input = .standardInput
        } else {
            guard let h = FileHandle(forReadingAtPath: file) else { throw CLIError("cannot read \(file)") }
            input = h
        }
        var sent = 0
        for line in LineReader(input) where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) {
            guard try push.send(line) else {
                throw CLIError("timed out sending to \(config.ingestEndpoint) after \(sent)")
            }
            sent += 1
        }
        try push.close(linger: 5000)
        print("sent \(sent) message(s) to \(config.ingestEndpoint)")
    }
}

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Subscribe to the daemon and print decisions.")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Only this symbol.")
    var symbol: String?

    @Flag(help: "Also print heartbeats.")
    var heartbeats = false

    @Option(help: "Stop after this many messages.")
    var count: Int?

    @Option(help: "Stop after this many seconds without a message.")
    var idle: Double?

    func run() throws {
        let config = try options.load()
        let ctx = try Context(ioThreads: 1)
        let sub = try Socket(ctx, type: .sub)
        try sub.set(.linger, 0)
        if let idle { try sub.set(.receiveTimeout, Int32(idle * 1000)) }
        try sub.subscribe(symbol.map { "calibrated.\($0)" } ?? "calibrated.")
        if heartbeats { try sub.subscribe("heartbeat") }
        try sub.connect(config.publishEndpoint)
        var seen = 0
        while count.map({ seen < $0 }) ?? true {
            guard let frames = try sub.receiveMultipart(), frames.count == 2 else {
                if idle != nil { return }
                continue
            }
            let topic = String(decoding: frames[0], as: UTF8.self)
            if let symbol, topic != "calibrated.\(symbol)" && topic != "heartbeat" { continue }
            frames[1].withUnsafeBytes { writeLine($0) }
            seen += 1
        }
    }
}

/// Rewrites one key of a `KEY=VALUE` file atomically, keeping every other line and comment.
enum ConfigFileEditor {
    static func set(key: String, value: String, in path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }).map(String.init)
        if lines.last == "" { lines.removeLast() }
        var found = false
        for i in lines.indices {
            var body = Substring(lines[i]).drop(while: { $0 == " " || $0 == "\t" })
            if body.hasPrefix("export ") { body = body.dropFirst(7).drop(while: { $0 == " " }) }
            if body.hasPrefix("\(key)=") || body.hasPrefix("\(key) =") {
                lines[i] = "\(key)=\(value)"
                found = true
            }
        }
        if !found { lines.append("\(key)=\(value)") }
        let tmp = path + ".tmp-\(getpid())"
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        guard
            FileManager.default.createFile(
                atPath: tmp, contents: Data((lines.joined(separator: "\n") + "\n").utf8), attributes: attrs)
        else { throw CLIError("cannot write \(tmp)") }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw CLIError("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
        // The new config must still be valid before anything relies on it.
        _ = try ConfigLoader.load(
            fileText: String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self))
    }
}
