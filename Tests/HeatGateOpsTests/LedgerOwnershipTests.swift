import Foundation
import HeatGateOps
import HeatGateTestSupport
import Testing

/// Root and the service's user append to one chain (issue 15). Needs root, to act as both.
@Suite("Ops ledger written by root and by the service user", .enabled(if: geteuid() == 0))
struct LedgerOwnershipTests {
    /// The stand-in for quantum-heatgate:quantum: nobody:nogroup.
    static let uid: uid_t = 65534
    static let gid: gid_t = 65534

    static func owner(_ path: String) -> (uid_t, gid_t)? {
        var st = stat()
        return stat(path, &st) == 0 ? (st.st_uid, st.st_gid) : nil
    }

    /// Runs `heatgate ARGS` as the unprivileged user.
    static func asUser(_ args: [String], _ dir: String) throws -> CommandResult {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("P26_") }
        env["HEATGATE_CONFIG"] = ""
        env["P26_STATE_DIR"] = dir
        return try runCommand(
            "/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", HeatGateBinary.path] + args,
            environment: env)
    }

    @Test("root, then the service user, then root: one chain that both verify; root's writes belong to the dir's owner")
    func oneChain() throws {
        let dir = TemporaryDirectory("hg-ledger-own")
        #expect(chown(dir.path, Self.uid, Self.gid) == 0 && chmod(dir.path, 0o750) == 0)
        let ledger = OpsLedger(stateDir: dir.path)

        // Control: what root creates here without handing it over, the user cannot read.
        let control = dir.path + "/root-only"
        #expect(FileManager.default.createFile(atPath: control, contents: Data("x".utf8)))
        #expect(chmod(control, 0o640) == 0)
        #expect(
            try runCommand("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "cat", control])
                .status != 0)

        let first = try ledger.append(LedgerTests.entry(1_764_000_000, "mode enforce (root)"))
        #expect(Self.owner(ledger.path).map { $0 == (Self.uid, Self.gid) } == true)
        #expect(Self.owner(ledger.headPath).map { $0 == (Self.uid, Self.gid) } == true)

        let byUser = try Self.asUser(
            [
                "ledger", "append", "--ledger", ledger.path, "--operation", "kill on (service user)",
                "--objective", "drill", "--risk-class", "LOW_RISK_CONFIG",
            ], dir.path)
        #expect(byUser.status == 0, "\(byUser.stderr)")

        let third = try ledger.append(LedgerTests.entry(1_764_000_200, "mode shadow (root)"))
        let check = ledger.verify()
        #expect(check.ok, "\(check.problems)")
        #expect(check.entries.map(\.number) == [1, 2, 3])
        #expect(check.entries[1].prevSHA256 == first.sha256 && third.prevSHA256 == check.entries[1].sha256)
        #expect(check.entries[1].operation == "kill on (service user)")

        let verified = try Self.asUser(["ledger", "verify", "--ledger", ledger.path], dir.path)
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        #expect(Self.owner(ledger.headPath).map { $0 == (Self.uid, Self.gid) } == true)
    }

    @Test("in a directory root owns, root's files stay root's")
    func rootDirectory() throws {
        let dir = TemporaryDirectory("hg-ledger-root")
        let ledger = OpsLedger(stateDir: dir.path)
        try ledger.append(LedgerTests.entry(1_764_000_000))
        #expect(Self.owner(ledger.path).map { $0 == (0, 0) } == true)
    }
}
