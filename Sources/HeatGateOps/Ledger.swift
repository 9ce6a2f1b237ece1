import Foundation
import HeatGateCore

#if canImport(Glibc)
    import Glibc
#endif

/// How much an operation can break (the ops ledger's `risk_class`).
public enum RiskClass: String, Sendable, CaseIterable {
    case readOnly = "READ_ONLY"
    case lowRiskConfig = "LOW_RISK_CONFIG"
    case serviceRestart = "SERVICE_RESTART"
    case filesystemWrite = "FILESYSTEM_WRITE"
}

/// How an operation ended (the ops ledger's `outcome`).
public enum LedgerOutcome: String, Sendable, CaseIterable {
    case success = "SUCCESS"
    case partial = "PARTIAL"
    case rollback = "ROLLBACK"
}

/// A file an entry vouches for: its path, SHA-256 and size at the time of the entry.
public struct ProofFile: Sendable, Equatable {
    public var path: String
    public var sha256: String
    public var size: Int

    public init(path: String, sha256: String, size: Int) {
        self.path = path
        self.sha256 = sha256
        self.size = size
    }

    /// Hashes the file as it is now.
    /// - Throws: ``LedgerError`` when the file cannot be read.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LedgerError("cannot read proof file \(path)")
        }
        self.init(path: path, sha256: SHA256.hex(data), size: data.count)
    }
}

/// What an entry shows happened.
public struct LedgerEvidence: Sendable, Equatable {
    /// The regular expression the metrics snapshot was filtered by.
    public var metricsPattern: String?
    /// The matching lines of `/metrics` at the time of the entry.
    public var metrics: [String] = []
    public var mode: String?
    public var verdict: String?
    public var proofFile: ProofFile?

    public init(
        metricsPattern: String? = nil, metrics: [String] = [], mode: String? = nil, verdict: String? = nil,
        proofFile: ProofFile? = nil
    ) {
        self.metricsPattern = metricsPattern
        self.metrics = metrics
        self.mode = mode
        self.verdict = verdict
        self.proofFile = proofFile
    }

    /// The metrics an activation records: mode, heat, bucket, kill switch, inputs and counts.
    public static let defaultMetricsPattern =
        "^p26_(enforce_mode|kill_switch|heat_value|bucket|equity_usd|positions|inputs_age_seconds|proposals_processed_total)[ {]"

    /// Keeps the sample lines of a Prometheus text that match the regular expression `pattern`.
    public static func filter(metrics text: String, pattern: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter {
            !$0.hasPrefix("#") && $0.range(of: pattern, options: .regularExpression) != nil
        }
    }
}

/// One entry of the operations ledger.
public struct LedgerEntry: Sendable, Equatable {
    /// `OPS-YYYY-MM-DD-NNN` (UTC date, NNN counting that day's entries from 001); set by ``OpsLedger/append(_:)``.
    public var id = ""
    /// Epoch seconds.
    public var ts: Double
    public var operatorName: String
    public var host: String
    public var operation: String
    public var objective: String
    public var riskClass: RiskClass
    public var blastRadius: String
    public var allowedPaths: [String]
    public var allowedServices: [String]
    public var changes: String
    public var outcome: LedgerOutcome
    /// The id of the entry this one rolls back.
    public var rollsBack: String?
    public var evidence: LedgerEvidence
    public var notes: String
    /// The `sha256` of the entry before (64 zeros for the first).
    public var prevSHA256 = ""
    /// The entry's place in the ledger, from 1 (`null` in entries written before heads were sealed, 0.1.0).
    public var number: Int?
    /// SHA-256 of this entry's line with its `sha256` member removed.
    public var sha256 = ""

    public init(
        ts: Double, operatorName: String = OpsLedger.currentOperator(), host: String = OpsLedger.hostName(),
        operation: String, objective: String, riskClass: RiskClass, blastRadius: String = "",
        allowedPaths: [String] = [], allowedServices: [String] = [], changes: String = "",
        outcome: LedgerOutcome = .success, rollsBack: String? = nil, evidence: LedgerEvidence = LedgerEvidence(),
        notes: String = ""
    ) {
        self.ts = ts
        self.operatorName = operatorName
        self.host = host
        self.operation = operation
        self.objective = objective
        self.riskClass = riskClass
        self.blastRadius = blastRadius
        self.allowedPaths = allowedPaths
        self.allowedServices = allowedServices
        self.changes = changes
        self.outcome = outcome
        self.rollsBack = rollsBack
        self.evidence = evidence
        self.notes = notes
    }

    /// The entry's JSON without its `sha256` member: what `sha256` is the digest of.
    func unsealedJSON() -> [UInt8] {
        var w = JSONWriter(capacity: 2048)
        w.raw("{\"id\":")
        w.string(id)
        w.raw(",\"ts\":")
        w.string(TimeText.iso(ts, fraction: true))
        w.raw(",\"ts_epoch\":")
        w.fixed(ts, decimals: 3)
        w.raw(",\"operator\":")
        w.string(operatorName)
        w.raw(",\"host\":")
        w.string(host)
        w.raw(",\"operation\":")
        w.string(operation)
        w.raw(",\"objective\":")
        w.string(objective)
        w.raw(",\"risk_class\":")
        w.string(riskClass.rawValue)
        w.raw(",\"blast_radius\":")
        w.string(blastRadius)
        w.raw(",\"allowed_paths\":")
        strings(allowedPaths, &w)
        w.raw(",\"allowed_services\":")
        strings(allowedServices, &w)
        w.raw(",\"changes\":")
        w.string(changes)
        w.raw(",\"outcome\":")
        w.string(outcome.rawValue)
        w.raw(",\"rolls_back\":")
        if let rollsBack { w.string(rollsBack) } else { w.raw("null") }
        w.raw(",\"evidence\":{\"metrics_pattern\":")
        if let p = evidence.metricsPattern { w.string(p) } else { w.raw("null") }
        w.raw(",\"metrics\":")
        strings(evidence.metrics, &w)
        w.raw(",\"mode\":")
        if let m = evidence.mode { w.string(m) } else { w.raw("null") }
        w.raw(",\"verdict\":")
        if let v = evidence.verdict { w.string(v) } else { w.raw("null") }
        w.raw(",\"proof_file\":")
        if let p = evidence.proofFile {
            w.raw("{\"path\":")
            w.string(p.path)
            w.raw(",\"sha256\":")
            w.string(p.sha256)
            w.raw(",\"size\":")
            w.int(p.size)
            w.raw("}")
        } else {
            w.raw("null")
        }
        w.raw("},\"notes\":")
        w.string(notes)
        w.raw(",\"prev_sha256\":")
        w.string(prevSHA256)
        if let number {
            w.raw(",\"n\":")
            w.int(number)
        }
        w.raw("}")
        return w.bytes
    }

    func strings(_ list: [String], _ w: inout JSONWriter) {
        w.byte(UInt8(ascii: "["))
        for (i, s) in list.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.string(s)
        }
        w.byte(UInt8(ascii: "]"))
    }

    /// The line as stored: the unsealed JSON with `"sha256":"<digest of it>"` as its last member.
    mutating func seal() -> [UInt8] {
        var body = unsealedJSON()
        sha256 = SHA256.hex(body)
        body.removeLast()
        body.append(contentsOf: Array(",\"sha256\":\"\(sha256)\"}".utf8))
        return body
    }

    /// Reads an entry from its parsed line.
    /// - Throws: ``LedgerError`` naming the missing or invalid member.
    init(json j: JSON) throws {
        func str(_ k: String) throws -> String {
            guard let s = j[k]?.string else { throw LedgerError("member \(k) is missing or not a string") }
            return s
        }
        func list(_ v: JSON?, _ k: String) throws -> [String] {
            guard let a = v?.array else { throw LedgerError("member \(k) is missing or not an array") }
            return try a.map {
                guard let s = $0.string else { throw LedgerError("member \(k) holds a non-string") }
                return s
            }
        }
        guard let ts = j["ts_epoch"]?.number else { throw LedgerError("member ts_epoch is missing") }
        guard ts.isFinite, abs(ts) < 1e11 else { throw LedgerError("member ts_epoch \(ts) is not a time") }
        guard let risk = RiskClass(rawValue: try str("risk_class")) else {
            throw LedgerError(
                "risk_class \(j["risk_class"]?.string ?? "") is not one of "
                    + RiskClass.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let outcome = LedgerOutcome(rawValue: try str("outcome")) else {
            throw LedgerError(
                "outcome \(j["outcome"]?.string ?? "") is not one of "
                    + LedgerOutcome.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let ev = j["evidence"], case .object = ev else { throw LedgerError("member evidence is missing") }
        var proof: ProofFile?
        if let p = ev["proof_file"], case .object = p {
            guard let path = p["path"]?.string, let sha = p["sha256"]?.string, let size = p["size"]?.number else {
                throw LedgerError("evidence.proof_file needs path, sha256 and size")
            }
            // A hostile number is a finding, never a trap: only a whole count of bytes is a size.
            guard let bytes = Int(exactly: size), bytes >= 0, bytes < 1 << 53 else {
                throw LedgerError("evidence.proof_file.size \(size) is not a size in bytes")
            }
            proof = ProofFile(path: path, sha256: sha, size: bytes)
        }
        self.init(
            ts: ts, operatorName: try str("operator"), host: try str("host"), operation: try str("operation"),
            objective: try str("objective"), riskClass: risk, blastRadius: try str("blast_radius"),
            allowedPaths: try list(j["allowed_paths"], "allowed_paths"),
            allowedServices: try list(j["allowed_services"], "allowed_services"), changes: try str("changes"),
            outcome: outcome, rollsBack: j["rolls_back"]?.string,
            evidence: LedgerEvidence(
                metricsPattern: ev["metrics_pattern"]?.string, metrics: try list(ev["metrics"], "evidence.metrics"),
                mode: ev["mode"]?.string, verdict: ev["verdict"]?.string, proofFile: proof),
            notes: try str("notes"))
        id = try str("id")
        prevSHA256 = try str("prev_sha256")
        sha256 = try str("sha256")
        if let n = j["n"] {
            guard let d = n.number, let i = Int(exactly: d), i >= 1 else {
                throw LedgerError("member n is not an entry number")
            }
            number = i
        }
    }
}

/// The ledger's head file (`<ledger>.head`).
public enum OpsLedgerHead {
    /// The head file's text: the count of entries, the last seal and the ledger's size in bytes, sealed by
    /// the SHA-256 of what precedes `"seal"` (so a head edited by hand, or cut off, is caught).
    public static func text(entries: Int, last: String, size: Int) -> String {
        let body = "{\"entries\":\(entries),\"sha256\":\"\(last)\",\"size\":\(size)"
        return body + ",\"seal\":\"\(SHA256.hex(body + "}"))\"}\n"
    }
}

/// A ledger failure, naming what is wrong and where.
public struct LedgerError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ message: String) { description = message }
}

/// The operations ledger: an append-only JSON-lines file, each entry sealed with its own SHA-256 and
/// carrying the SHA-256 of the entry before it.
///
/// Editing any byte of an entry breaks its own seal; removing or reordering entries breaks the chain; a
/// removed last entry is caught by the head file (`<ledger>.head`, rewritten atomically on every append:
/// the count of entries and the last seal). Appends take an exclusive `flock` on the ledger, so two
/// operators cannot fork the chain.
///
/// One chain whoever writes: the ledger and its head belong to the owner and group of the directory they
/// are in (the state directory: `quantum-heatgate:quantum`). The service's user appends as that owner;
/// root, which may write anything, gives what it writes back to that owner (``adopt(_:)``), so an entry by
/// root never leaves a file the service's user can no longer read or append to.
public struct OpsLedger: Sendable {
    public static let genesis = String(repeating: "0", count: 64)
    public let path: String

    public init(path: String) { self.path = path }

    /// `<state dir>/ops-ledger.jsonl`.
    public init(stateDir: String) { self.init(path: stateDir + "/ops-ledger.jsonl") }

    public var headPath: String { path + ".head" }

    /// Appends an entry: assigns its id, chains it to the last entry, seals it, writes it and flushes it.
    ///
    /// - Returns: the entry as written.
    /// - Throws: ``LedgerError`` when the ledger cannot be written, or when it does not verify: an entry
    ///   is never chained onto a tampered ledger.
    @discardableResult
    public func append(_ draft: LedgerEntry) throws -> LedgerEntry {
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw LedgerError("cannot open the ledger \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try Self.adopt(fd, directoryOf: path)
        guard flock(fd, LOCK_EX) == 0 else {
            throw LedgerError("cannot lock the ledger \(path): \(String(cString: strerror(errno)))")
        }
        let check = verify()
        guard check.ok else {
            throw LedgerError(
                "the ledger \(path) does not verify; nothing appended: " + check.problems.joined(separator: "; "))
        }
        var entry = draft
        entry.ts = (entry.ts * 1000).rounded() / 1000  // milliseconds: the canonical form reads back exactly
        let day = String(TimeText.iso(entry.ts).prefix(10))
        let prefix = "OPS-\(day)-"
        let sameDay = check.entries.compactMap { e in e.id.hasPrefix(prefix) ? Int(e.id.dropFirst(prefix.count)) : nil }
        let n = (sameDay.max() ?? 0) + 1
        entry.id = prefix + (n < 10 ? "00\(n)" : n < 100 ? "0\(n)" : "\(n)")
        entry.prevSHA256 = check.entries.last?.sha256 ?? Self.genesis
        entry.number = check.entries.count + 1
        var line = entry.seal()
        line.append(10)
        try writeAll(fd, line, what: "the ledger \(path)")
        guard fsync(fd) == 0 else { throw LedgerError("cannot flush the ledger \(path)") }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LedgerError("cannot stat the ledger \(path)") }
        try writeHead(entries: check.entries.count + 1, last: entry.sha256, size: Int(st.st_size))
        return entry
    }

    /// Run as root, gives the open file `fd` to the owner and group of the directory holding `path`, unless
    /// that is root itself; as any other user, does nothing (its files are already its own).
    ///
    /// - Throws: ``LedgerError`` when root cannot hand the file over.
    public static func adopt(_ fd: Int32, directoryOf path: String) throws {
        guard geteuid() == 0 else { return }
        let dir = (path as NSString).deletingLastPathComponent
        var d = stat()
        guard stat(dir.isEmpty ? "." : dir, &d) == 0 else {
            throw LedgerError("cannot stat \(dir): \(String(cString: strerror(errno)))")
        }
        guard d.st_uid != 0 || d.st_gid != 0 else { return }
        var f = stat()
        guard fstat(fd, &f) == 0 else { throw LedgerError("cannot stat the file in \(dir)") }
        if f.st_uid != d.st_uid || f.st_gid != d.st_gid {
            guard fchown(fd, d.st_uid, d.st_gid) == 0 else {
                throw LedgerError("cannot give \(path) to the owner of \(dir): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// ``adopt(_:directoryOf:)`` for a path (a file or a directory made beside the ledger).
    public static func adopt(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LedgerError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try adopt(fd, directoryOf: path)
    }

    static func headText(entries: Int, last: String, size: Int) -> String {
        OpsLedgerHead.text(entries: entries, last: last, size: size)
    }

    func writeHead(entries: Int, last: String, size: Int) throws {
        let tmp = headPath + ".tmp-\(getpid())"
        let text = Self.headText(entries: entries, last: last, size: size)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw LedgerError("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        do {
            try Self.adopt(fd, directoryOf: headPath)
            try writeAll(fd, Array(text.utf8), what: tmp)
            fsync(fd)
            close(fd)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        guard rename(tmp, headPath) == 0 else {
            unlink(tmp)
            throw LedgerError("cannot replace \(headPath): \(String(cString: strerror(errno)))")
        }
        Self.announce(path: path, entries: entries, last: last)
    }

    /// Sends the new anchor (`N:<seal>`) to the system log, a record outside the state directory that the
    /// service's user cannot rewrite (`journalctl -t heatgate-ledger`). Silent where there is no syslog.
    static func announce(path: String, entries: Int, last: String) {
        let line = "ops-ledger \(path) anchor \(entries):\(last)"
        line.withCString { text in
            withVaList([text]) { args in
                openlog("heatgate-ledger", LOG_NDELAY, LOG_USER)
                vsyslog(LOG_NOTICE, "%s", args)
                closelog()
            }
        }
    }

    /// Where the head file and the ledger disagree, or `nil` when they agree.
    func headProblem(_ head: Data, entries: [LedgerEntry], size: Int) -> String? {
        let j = head.withUnsafeBytes { try? JSON.parse($0) }
        guard let j, case .object = j else { return "the head file \(headPath) is not a JSON object" }
        guard let n = j["entries"]?.number, let count = Int(exactly: n), count >= 0 else {
            return
                "the head file \(headPath) records no whole count of entries (\(j["entries"]?.number.map { "\($0)" } ?? "none"))"
        }
        let sha = j["sha256"]?.string ?? "?"
        if let seal = j["seal"]?.string {
            guard let b = j["size"]?.number, let bytes = Int(exactly: b), bytes >= 0,
                Self.headText(entries: count, last: sha, size: bytes) == String(decoding: head, as: UTF8.self),
                seal.utf8.count == 64
            else { return "the head file \(headPath) is edited: its seal does not match what it records" }
            if count > entries.count {
                return
                    "the chain is shorter than the head claims: the head file records \(count) entries, the ledger has \(entries.count) (entries removed from the end)"
            }
            if count != entries.count || sha != entries.last?.sha256 || bytes != size {
                return
                    "the head file \(headPath) records \(count) entries ending \(sha) in \(bytes) bytes, the ledger has "
                    + "\(entries.count) ending \(entries.last?.sha256 ?? "-") in \(size) bytes"
            }
            return nil
        }
        // The head of 0.1.0 (no size, no seal) is still read for a ledger written by 0.1.0 only, so an
        // upgraded ledger keeps verifying; the next append writes a sealed head. Once an entry of this
        // version is in (it carries `n`), only a sealed head will do.
        if entries.contains(where: { $0.number != nil }) {
            return "the head file \(headPath) is not sealed, but the ledger was written by a version that seals it"
        }
        if count > entries.count {
            return
                "the chain is shorter than the head claims: the head file records \(count) entries, the ledger has \(entries.count) (entries removed from the end)"
        }
        if count != entries.count || sha != entries.last?.sha256 {
            return "the head file \(headPath) records \(count) entries ending \(sha), "
                + "the ledger has \(entries.count) ending \(entries.last?.sha256 ?? "-") (entries removed from the end?)"
        }
        return nil
    }

    /// What `verify` found.
    public struct Verification: Sendable {
        /// The entries that read and chain correctly, up to the first problem.
        public var entries: [LedgerEntry] = []
        /// One line per problem, naming the line number and what is wrong.
        public var problems: [String] = []
        public var ok: Bool { problems.isEmpty }
    }

    /// Checks every entry's seal, the chain, the ids and the head file. A missing ledger is an empty one.
    public func verify() -> Verification {
        var v = Verification()
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) { v.problems.append("cannot read \(path)") }
            if FileManager.default.fileExists(atPath: headPath) {
                v.problems.append("\(path) is missing but its head file \(headPath) exists")
            }
            return v
        }
        let bytes = [UInt8](data)
        if !bytes.isEmpty && bytes.last != 10 {
            v.problems.append("the ledger does not end with a newline (a cut-off write?)")
        }
        var lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        if bytes.isEmpty { lines = [] }
        var prev = Self.genesis
        var ids = Set<String>()
        let suffix = 11 + 64 + 2  // ,"sha256":"<64 hex>"}
        for (k, slice) in lines.enumerated() {
            let line = Array(slice)
            let n = k + 1
            guard line.count > suffix + 2,
                Array(line[(line.count - suffix)..<(line.count - suffix + 11)]) == Array(",\"sha256\":\"".utf8),
                line.suffix(2) == [UInt8(ascii: "\""), UInt8(ascii: "}")]
            else {
                v.problems.append("line \(n): not a sealed entry (it must end with ,\"sha256\":\"<64 hex>\"})")
                break
            }
            let json: JSON
            do {
                json = try line.withUnsafeBytes { try JSON.parse($0) }
            } catch {
                v.problems.append("line \(n): not valid JSON (\(error))")
                break
            }
            var entry: LedgerEntry
            do { entry = try LedgerEntry(json: json) } catch {
                v.problems.append("line \(n): \(error)")
                break
            }
            let unsealed = Array(line[0..<(line.count - suffix)]) + [UInt8(ascii: "}")]
            let digest = SHA256.hex(unsealed)
            guard digest == entry.sha256 else {
                v.problems.append(
                    "line \(n) (\(entry.id)): edited: its content hashes to \(digest), its seal says \(entry.sha256)")
                break
            }
            guard entry.prevSHA256 == prev else {
                v.problems.append(
                    "line \(n) (\(entry.id)): the chain is broken: prev_sha256 \(entry.prevSHA256) but the entry before "
                        + (k == 0 ? "is the start (\(Self.genesis.prefix(8))…)" : "seals \(prev)")
                        + " (an entry was removed, inserted or reordered)")
                break
            }
            // The entry's own bytes must be what this program writes: no second JSON spelling of it.
            guard entry.unsealedJSON() == unsealed else {
                v.problems.append("line \(n) (\(entry.id)): not in the canonical form")
                break
            }
            guard Self.isWellFormedId(entry.id) else {
                v.problems.append("line \(n): id \(entry.id) is not OPS-YYYY-MM-DD-NNN")
                break
            }
            guard ids.insert(entry.id).inserted else {
                v.problems.append("line \(n): id \(entry.id) appears twice")
                break
            }
            if let number = entry.number, number != n {
                v.problems.append("line \(n) (\(entry.id)): numbered \(number) (an entry was removed or inserted)")
                break
            }
            if let r = entry.rollsBack, !ids.contains(r) {
                v.problems.append("line \(n) (\(entry.id)): rolls back \(r), which is not an earlier entry")
                break
            }
            prev = entry.sha256
            v.entries.append(entry)
        }
        if v.ok {
            if let head = FileManager.default.contents(atPath: headPath) {
                if let problem = headProblem(head, entries: v.entries, size: bytes.count) { v.problems.append(problem) }
            } else if !v.entries.isEmpty {
                v.problems.append("the head file \(headPath) is missing")
            }
        }
        return v
    }

    /// `OPS-YYYY-MM-DD-NNN`, NNN at least three digits.
    static func isWellFormedId(_ id: String) -> Bool {
        let b = Array(id.utf8)
        guard b.count >= 18, b.starts(with: Array("OPS-".utf8)) else { return false }
        let digit = { (c: UInt8) in c >= 48 && c <= 57 }
        for (i, c) in b.enumerated().dropFirst(4) {
            let dash = i == 8 || i == 11 || i == 14
            if dash ? c != UInt8(ascii: "-") : !digit(c) { return false }
        }
        return true
    }

    /// The user behind the command: `SUDO_USER`, else `USER`/`LOGNAME`, else the effective uid's name.
    public static func currentOperator(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        for k in ["SUDO_USER", "USER", "LOGNAME"] {
            if let v = environment[k], !v.isEmpty { return v }
        }
        if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name { return String(cString: name) }
        return "uid \(geteuid())"
    }

    /// This machine's host name.
    public static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "unknown" }
        let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw LedgerError("cannot write \(what): \(String(cString: strerror(errno)))") }
        off += n
    }
}
