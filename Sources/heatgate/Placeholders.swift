import ArgumentParser

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon.")
    func run() throws { throw ValidationError("not built yet") }
}

struct Status: ParsableCommand {
    func run() throws { throw ValidationError("not built yet") }
}

struct ModeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mode")
    func run() throws { throw ValidationError("not built yet") }
}

struct Kill: ParsableCommand {
    func run() throws { throw ValidationError("not built yet") }
}

struct Get: ParsableCommand {
    func run() throws { throw ValidationError("not built yet") }
}

struct Send: ParsableCommand {
    func run() throws { throw ValidationError("not built yet") }
}

struct Tail: ParsableCommand {
    func run() throws { throw ValidationError("not built yet") }
}
