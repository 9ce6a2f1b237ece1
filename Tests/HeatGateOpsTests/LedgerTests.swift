import Foundation
import HeatGateCore
import HeatGateOps
import HeatGateTestSupport
import Testing

@Suite("Ops ledger")
struct LedgerTests {
    static func entry(_ ts: Double, _ operation: String = "mode enforce", rollsBack: String? = nil) -> LedgerEntry {
        LedgerEntry(
            ts: ts, operatorName: "alice", host: "gate-1", operation: operation,
            objective: "go live after a clean week",
            riskClass: .lowRiskConfig, blastRadius: "every exit proposal", allowedPaths: ["/etc/quantum/pg.env"],
            allowedServices: ["quantum-portfolio-heat-gate"], changes: "P26_MODE shadow -> enforce",
            outcome: rollsBack == nil ? .success : .rollback, rollsBack: rollsBack,
            evidence: LedgerEvidence(
                metricsPattern: "^p26_enforce_mode", metrics: ["p26_enforce_mode 1"], mode: "enforce",
                verdict: "PROCEED",
                proofFile: ProofFile(path: "/tmp/x", sha256: SHA256.hex("x"), size: 1)),
            notes: "quote \" backslash \\ newline \n ünïcode")
    }

    /// A ledger of three entries over two days.
    static func three(_ dir: TemporaryDirectory) throws -> (OpsLedger, [LedgerEntry]) {
        let ledger = OpsLedger(stateDir: dir.path)
        let a = try ledger.append(entry(1_764_000_000))
        let b = try ledger.append(entry(1_764_000_100, "mode shadow", rollsBack: a.id))
        let c = try ledger.append(entry(1_764_086_400 + 5))
        return (ledger, [a, b, c])
    }

    @Test("ids count per UTC day, each entry chains to the one before, and everything reads back")
    func appendAndRead() throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, written) = try Self.three(dir)
        #expect(written.map(\.id) == ["OPS-2025-11-24-001", "OPS-2025-11-24-002", "OPS-2025-11-25-001"])
        #expect(written[0].prevSHA256 == OpsLedger.genesis)
        #expect(written[1].prevSHA256 == written[0].sha256)
        #expect(written[2].prevSHA256 == written[1].sha256)
        let check = ledger.verify()
        #expect(check.ok, "\(check.problems)")
        #expect(check.entries == written)
        #expect(check.entries[1].rollsBack == "OPS-2025-11-24-001" && check.entries[1].outcome == .rollback)
        #expect(check.entries[0].notes == "quote \" backslash \\ newline \n ünïcode")
        #expect(check.entries[0].evidence.proofFile?.size == 1)
        // One line per entry; the seal is the SHA-256 of the line without its sha256 member.
        let text = try String(contentsOfFile: ledger.path, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 3)
        let first = String(lines[0])
        #expect(first.hasSuffix(",\"sha256\":\"\(written[0].sha256)\"}"))
        #expect(SHA256.hex(String(first.dropLast(77)) + "}") == written[0].sha256)
        let head = try String(contentsOfFile: ledger.headPath, encoding: .utf8)
        let body = "{\"entries\":3,\"sha256\":\"\(written[2].sha256)\",\"size\":\(text.utf8.count)"
        #expect(head == body + ",\"seal\":\"\(SHA256.hex(body + "}"))\"}\n")
        #expect(written.map(\.number) == [1, 2, 3])
    }

    /// Rewrites line `index` (0-based) of the ledger with `edit` applied to its unsealed JSON, then seals
    /// it again, as someone who knows the format would.
    static func reseal(_ ledger: OpsLedger, line index: Int, _ edit: (String) -> String) throws {
        var lines = try String(contentsOfFile: ledger.path, encoding: .utf8).split(separator: "\n").map(String.init)
        let unsealed = edit(String(lines[index].dropLast(77)) + "}")
        lines[index] = String(unsealed.dropLast()) + ",\"sha256\":\"\(SHA256.hex(unsealed))\"}"
        try (lines.joined(separator: "\n") + "\n").write(toFile: ledger.path, atomically: true, encoding: .utf8)
    }

    @Test("a hostile number in an entry or the head is a FAILED with its reason, never a trap")
    func hostileNumbers() throws {
        for (edit, reason) in [
            ({ (t: String) in t.replacingOccurrences(of: "\"size\":1}", with: "\"size\":1e300}") }, "proof_file.size"),
            ({ (t: String) in t.replacingOccurrences(of: "\"size\":1}", with: "\"size\":-1}") }, "proof_file.size"),
            ({ (t: String) in t.replacingOccurrences(of: "\"size\":1}", with: "\"size\":1.5}") }, "proof_file.size"),
            ({ (t: String) in t.replacingOccurrences(of: "\"n\":1}", with: "\"n\":1e300}") }, "member n"),
            (
                { (t: String) in t.replacingOccurrences(of: "\"ts_epoch\":1764000000.000", with: "\"ts_epoch\":1e300")
                }, "ts_epoch"
            ),
        ] {
            let dir = TemporaryDirectory("heatgate-ledger")
            let (ledger, _) = try Self.three(dir)
            try Self.reseal(ledger, line: 0, edit)
            let problems = ledger.verify().problems
            #expect(problems.first?.contains(reason) == true, "\(problems)")
        }
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, _) = try Self.three(dir)
        for head in [
            #"{"entries":1e300,"sha256":"x"}"#, #"{"entries":-3,"sha256":"x"}"#, "[]", "not json",
            #"{"entries":3,"sha256":"x","size":1e300,"seal":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
        ] {
            try (head + "\n").write(toFile: ledger.headPath, atomically: true, encoding: .utf8)
            #expect(ledger.verify().problems.first?.contains("head file") == true, "\(head)")
        }
    }

    @Test("dropping the last entry and rewriting the head is caught unless the head is forged with its seal")
    func truncationWithARewrittenHead() throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, written) = try Self.three(dir)
        let lines = try String(contentsOfFile: ledger.path, encoding: .utf8).split(separator: "\n")
        let two = lines.prefix(2).joined(separator: "\n") + "\n"
        try two.write(toFile: ledger.path, atomically: true, encoding: .utf8)
        // The head of 0.1.0, rewritten to match: refused, the ledger's entries say heads are sealed here.
        try "{\"entries\":2,\"sha256\":\"\(written[1].sha256)\"}\n".write(
            toFile: ledger.headPath, atomically: true, encoding: .utf8)
        #expect(ledger.verify().problems.first?.contains("not sealed") == true)
        // The sealed head with only its counts changed: the seal no longer matches.
        let sealed = OpsLedgerHead.text(entries: 3, last: written[2].sha256, size: 10)
        try sealed.replacingOccurrences(of: "\"entries\":3", with: "\"entries\":2").write(
            toFile: ledger.headPath, atomically: true, encoding: .utf8)
        #expect(ledger.verify().problems.first?.contains("seal does not match") == true)
        // The genuine head of three entries over two: the chain is shorter than it claims.
        try OpsLedgerHead.text(entries: 3, last: written[2].sha256, size: 10).write(
            toFile: ledger.headPath, atomically: true, encoding: .utf8)
        #expect(ledger.verify().problems.first?.contains("shorter than the head claims") == true)
        // A head forged with the documented seal verifies: only an anchor kept elsewhere catches that
        // (`ledger verify --anchor`, tested in CLITests) — docs/shadow-report.md says so.
        try OpsLedgerHead.text(entries: 2, last: written[1].sha256, size: two.utf8.count).write(
            toFile: ledger.headPath, atomically: true, encoding: .utf8)
        #expect(ledger.verify().ok)
    }

    @Test("heatgate ledger verify: FAILED with the reason on a hostile number; --anchor catches a forged head")
    func verifyCommand() throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, written) = try Self.three(dir)
        let ok = try heatgate(["ledger", "verify", "--ledger", ledger.path])
        #expect(ok.status == 0 && ok.stdout.contains("anchor 3:\(written[2].sha256)"), "\(ok.stdout)\(ok.stderr)")
        let original = try String(contentsOfFile: ledger.path, encoding: .utf8)
        try Self.reseal(ledger, line: 1) { $0.replacingOccurrences(of: "\"size\":1}", with: "\"size\":1e300}") }
        let hostile = try heatgate(["ledger", "verify", "--ledger", ledger.path])
        #expect(hostile.status == 1, "no trap: \(hostile.status) \(hostile.stderr)")
        #expect(hostile.stderr.contains("FAILED") && hostile.stderr.contains("line 2: evidence.proof_file.size"))
        try "{\"entries\":1e300,\"sha256\":\"x\"}\n".write(toFile: ledger.headPath, atomically: true, encoding: .utf8)
        try original.write(toFile: ledger.path, atomically: true, encoding: .utf8)
        let head = try heatgate(["ledger", "verify", "--ledger", ledger.path])
        #expect(head.status == 1 && head.stderr.contains("FAILED") && head.stderr.contains("no whole count"))
        // Truncated, with a head forged by the documented rule: only the anchor kept elsewhere tells.
        let two = original.split(separator: "\n").prefix(2).joined(separator: "\n") + "\n"
        try two.write(toFile: ledger.path, atomically: true, encoding: .utf8)
        try OpsLedgerHead.text(entries: 2, last: written[1].sha256, size: two.utf8.count).write(
            toFile: ledger.headPath, atomically: true, encoding: .utf8)
        #expect(try heatgate(["ledger", "verify", "--ledger", ledger.path]).status == 0)
        let anchored = try heatgate(["ledger", "verify", "--ledger", ledger.path, "--anchor", "3:\(written[2].sha256)"])
        #expect(anchored.status == 1 && anchored.stderr.contains("entries removed from the end"), "\(anchored.stderr)")
        let earlier = try heatgate(["ledger", "verify", "--ledger", ledger.path, "--anchor", "2:\(written[1].sha256)"])
        #expect(earlier.status == 0, "an anchor the ledger still holds verifies")
        let rewritten = try heatgate([
            "ledger", "verify", "--ledger", ledger.path, "--anchor", "1:\(written[1].sha256)",
        ])
        #expect(rewritten.status == 1 && rewritten.stderr.contains("rewritten"))
    }

    @Test("a ledger and head written by 0.1.0 (no entry numbers, unsealed head) still verify and take appends")
    func legacyLedger() throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, _) = try Self.three(dir)
        // Strip the entry numbers as 0.1.0 wrote them, and write its head.
        for i in 0..<3 {
            try Self.reseal(ledger, line: i) { $0.replacingOccurrences(of: ",\"n\":\(i + 1)}", with: "}") }
        }
        var lines = try String(contentsOfFile: ledger.path, encoding: .utf8).split(separator: "\n").map(String.init)
        // Re-chain: each prev_sha256 follows the resealed entry before it.
        var prev = OpsLedger.genesis
        for i in 0..<3 {
            let old = String(lines[i].dropLast(77)) + "}"
            let range = try #require(old.range(of: #""prev_sha256":""#))
            let start = range.upperBound
            let end = old.index(start, offsetBy: 64)
            let unsealed = old.replacingCharacters(in: start..<end, with: prev)
            prev = SHA256.hex(unsealed)
            lines[i] = String(unsealed.dropLast()) + ",\"sha256\":\"\(prev)\"}"
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: ledger.path, atomically: true, encoding: .utf8)
        try "{\"entries\":3,\"sha256\":\"\(prev)\"}\n".write(toFile: ledger.headPath, atomically: true, encoding: .utf8)
        #expect(ledger.verify().ok, "\(ledger.verify().problems)")
        let next = try ledger.append(Self.entry(1_764_200_000))
        #expect(next.number == 4 && next.prevSHA256 == prev)
        #expect(ledger.verify().ok)
        #expect(try String(contentsOfFile: ledger.headPath, encoding: .utf8).contains("\"seal\""))
    }

    @Test("changing any one byte of the ledger fails verification")
    func everyByte() throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, _) = try Self.three(dir)
        let original = try #require(FileManager.default.contents(atPath: ledger.path))
        var caught = 0
        for i in 0..<original.count {
            for flip: UInt8 in i % 5 == 0 ? [0x01, 0x20] : [0x01] {
                var bytes = [UInt8](original)
                bytes[i] ^= flip
                #expect(FileManager.default.createFile(atPath: ledger.path, contents: Data(bytes)))
                if ledger.verify().ok {
                    Issue.record("byte \(i) ^ \(flip) went unnoticed")
                } else {
                    caught += 1
                }
            }
        }
        #expect(caught == original.count + (original.count + 4) / 5)
        #expect(FileManager.default.createFile(atPath: ledger.path, contents: original))
        #expect(ledger.verify().ok)
    }

    @Test("removed, reordered, inserted or cut-off entries fail verification, each named")
    func structure() throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, _) = try Self.three(dir)
        let original = try String(contentsOfFile: ledger.path, encoding: .utf8)
        let lines = original.split(separator: "\n").map(String.init)
        func verify(_ ls: [String], newline: Bool = true) -> [String] {
            let text = ls.isEmpty ? "" : ls.joined(separator: "\n") + (newline ? "\n" : "")
            _ = FileManager.default.createFile(atPath: ledger.path, contents: Data(text.utf8))
            return ledger.verify().problems
        }
        #expect(verify([lines[0], lines[2]]).first?.contains("chain is broken") == true)
        #expect(verify([lines[1], lines[0], lines[2]]).first?.contains("line 1") == true)
        #expect(verify([lines[0], lines[1], lines[1], lines[2]]).first?.contains("line 3") == true)
        #expect(verify([lines[0], lines[1]]).first?.contains("head file") == true)  // the last one removed
        #expect(verify(lines, newline: false).first?.contains("newline") == true)
        #expect(verify([lines[0], lines[1], String(lines[2].prefix(40))]).first?.contains("line 3") == true)
        #expect(verify([]).first?.contains("head file") == true)
        #expect(verify(lines).isEmpty)
        try FileManager.default.removeItem(atPath: ledger.headPath)
        #expect(ledger.verify().problems.first?.contains("head file") == true)
    }

    @Test("no entry is chained onto a ledger that does not verify")
    func refuseBroken() throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let (ledger, _) = try Self.three(dir)
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: ledger.path)))
        bytes[30] ^= 1
        #expect(FileManager.default.createFile(atPath: ledger.path, contents: Data(bytes)))
        #expect(throws: LedgerError.self) { try ledger.append(Self.entry(1_764_100_000)) }
        #expect(ledger.verify().entries.isEmpty)
    }

    @Test("concurrent appends from many threads keep one chain")
    func concurrent() async throws {
        let dir = TemporaryDirectory("heatgate-ledger")
        let ledger = OpsLedger(stateDir: dir.path)
        await withTaskGroup(of: Void.self) { group in
            for k in 0..<16 {
                group.addTask { _ = try? ledger.append(Self.entry(1_764_000_000 + Double(k))) }
            }
        }
        let check = ledger.verify()
        #expect(check.ok, "\(check.problems)")
        #expect(check.entries.count == 16)
        #expect(Set(check.entries.map(\.id)).count == 16)
    }

    @Test("metrics evidence keeps the matching sample lines only")
    func metricsFilter() {
        let text = """
            # HELP p26_enforce_mode 1 in enforce
            # TYPE p26_enforce_mode gauge
            p26_enforce_mode 1
            p26_heat_value 0.42
            p26_bucket{state="WARM"} 1
            p26_decision_latency_seconds_bucket{le="1e-06"} 3
            """
        #expect(
            LedgerEvidence.filter(metrics: text, pattern: LedgerEvidence.defaultMetricsPattern) == [
                "p26_enforce_mode 1", "p26_heat_value 0.42", "p26_bucket{state=\"WARM\"} 1",
            ])
        #expect(prometheusValue(text, name: "p26_enforce_mode") == 1)
        #expect(prometheusValue(text, name: "p26_missing") == nil)
    }
}

@Suite("Config file rewrite")
struct ConfigFileEditorTests {
    @Test("keeps comments, export prefixes, trailing comments and blank lines; rewrites every line of the key")
    func keepsTheRest() {
        let text = """
            # HeatGate
            export P26_MODE=shadow   # start safe

            HEAT_MIN=0.2
            P26_MODE = "shadow"
            """
        let (out, previous) = ConfigFileEditor.rewrite(text + "\n", key: "P26_MODE", value: "enforce")
        #expect(previous == "shadow")
        #expect(
            out == """
                # HeatGate
                export P26_MODE=enforce   # start safe

                HEAT_MIN=0.2
                P26_MODE="enforce"

                """)
        let (appended, none) = ConfigFileEditor.rewrite("HEAT_MIN=0.2\n", key: "P26_MODE", value: "shadow")
        #expect(none == nil && appended == "HEAT_MIN=0.2\nP26_MODE=shadow\n")
        let (crlf, _) = ConfigFileEditor.rewrite("# x\r\nP26_MODE=shadow\r\n", key: "P26_MODE", value: "enforce")
        #expect(crlf == "# x\r\nP26_MODE=enforce\r\n")
        // A key that merely starts the same is another key.
        let (other, _) = ConfigFileEditor.rewrite("P26_MODE_X=1\n", key: "P26_MODE", value: "enforce")
        #expect(other == "P26_MODE_X=1\nP26_MODE=enforce\n")
    }

    @Test("keeps a comment after a tab and a quoted value's quotes and comment (issue 12, item 15)")
    func keepsTabCommentsAndQuotes() throws {
        let text = "P26_MODE=shadow\t# after a tab\nexport P26_MODE='shadow'  # quoted\nHEAT_MIN=0.2\t#t\n"
        let (out, previous) = ConfigFileEditor.rewrite(text, key: "P26_MODE", value: "enforce")
        #expect(previous == "shadow")
        #expect(out == "P26_MODE=enforce\t# after a tab\nexport P26_MODE='enforce'  # quoted\nHEAT_MIN=0.2\t#t\n")
        let config = try ConfigLoader.load(fileText: out)
        #expect(config.mode == .enforce && config.heatMin == 0.2)
    }

    @Test("the loader reads a quoted value followed by a comment")
    func quotedValueThenComment() throws {
        let c = try ConfigLoader.load(
            fileText: "P26_MODE=\"enforce\" # c\nHEAT_MIN='0.1'\t# t\nP26_STATE_DIR=\"a b # not a comment\"\n")
        #expect(c.mode == .enforce && c.heatMin == 0.1 && c.stateDir == "a b # not a comment")
        let unquoted = ConfigValueText("\"x\" y"[...])
        #expect(unquoted.value == "\"x\" y" && unquoted.quote == nil && unquoted.comment.isEmpty)
        #expect(throws: ConfigError.self) { try ConfigLoader.load(fileText: "P26_MODE=\"enforce\" junk\n") }
    }

    @Test("writes through a symlink: the link stays, its target is updated with its mode")
    func throughASymlink() throws {
        let dir = TemporaryDirectory("heatgate-config")
        try FileManager.default.createDirectory(atPath: dir.path + "/real", withIntermediateDirectories: true)
        let target = dir.path + "/real/gate.env"
        #expect(FileManager.default.createFile(atPath: target, contents: Data("P26_MODE=shadow # c\n".utf8)))
        chmod(target, 0o600)
        let link = dir.path + "/gate.env"
        #expect(symlink("real/gate.env", link) == 0)
        let change = try ConfigFileEditor.set(key: "P26_MODE", value: "enforce", in: link)
        #expect(change.previous == "shadow")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "real/gate.env")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "P26_MODE=enforce # c\n")
        var st = stat()
        stat(target, &st)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/real") == ["gate.env"])
    }

    @Test("writes atomically with the file's mode, and refuses a result that is not a valid configuration")
    func atomicAndValidated() throws {
        let dir = TemporaryDirectory("heatgate-config")
        let path = dir.path + "/gate.env"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("# c\nP26_MODE=shadow\n".utf8)))
        chmod(path, 0o640)
        let change = try ConfigFileEditor.set(key: "P26_MODE", value: "enforce", in: path)
        #expect(change.previous == "shadow" && change.value == "enforce")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "# c\nP26_MODE=enforce\n")
        #expect(change.sha256After == SHA256.hex("# c\nP26_MODE=enforce\n"))
        var st = stat()
        stat(path, &st)
        #expect(st.st_mode & 0o777 == 0o640)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["gate.env"])

        #expect(throws: LedgerError.self) { try ConfigFileEditor.set(key: "P26_MODE", value: "yolo", in: path) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "# c\nP26_MODE=enforce\n")
        #expect(throws: LedgerError.self) {
            try ConfigFileEditor.set(key: "P26_MODE", value: "shadow", in: dir.path + "/none")
        }
    }
}
