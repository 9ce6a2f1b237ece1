import Foundation
import HeatGateCore

#if canImport(Glibc)
    import Glibc
#endif

/// Rewrites one key of a `KEY=VALUE` config file (SPEC §6) atomically, keeping every other line, its
/// comments, its `export` prefixes, its line endings and the file's mode and owner.
public enum ConfigFileEditor {
    /// What a rewrite changed.
    public struct Change: Sendable, Equatable {
        /// The key's last value before (the one that applied), or `nil` when the file did not set it.
        public var previous: String?
        public var value: String
        /// The SHA-256 of the file before and after.
        public var sha256Before: String
        public var sha256After: String
        public var size: Int
    }

    /// The new text of the file with `key` set to `value` (pure; what ``set(key:value:in:)`` writes).
    ///
    /// Every line that sets the key is rewritten (so no later line can undo it); a trailing `# comment` on
    /// such a line is kept; the key is appended when no line sets it.
    public static func rewrite(_ text: String, key: String, value: String) -> (text: String, previous: String?) {
        // Split on the bytes: Swift reads "\r\n" as one Character, which is no "\n".
        let utf8 = Array(text.utf8)
        let crlf = utf8.firstIndex(of: 10).map { $0 > 0 && utf8[$0 - 1] == 13 } ?? false
        var lines = utf8.split(separator: 10, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 13 ? line.dropLast() : line[...], as: UTF8.self)
        }
        let endsWithNewline = lines.last == ""
        if endsWithNewline { lines.removeLast() }
        var previous: String?
        var found = false
        for i in lines.indices {
            let line = lines[i]
            let indent = line.prefix { $0 == " " || $0 == "\t" }
            var body = line.dropFirst(indent.count)
            var export = ""
            if body.hasPrefix("export ") {
                export = "export "
                body = body.dropFirst(7).drop { $0 == " " }
            }
            guard let eq = body.firstIndex(of: "="),
                body[..<eq].trimmingCharacters(in: .whitespaces) == key
            else { continue }
            let rest = ConfigValueText(body[body.index(after: eq)...])
            previous = rest.value
            let q = rest.quote.map(String.init) ?? ""
            lines[i] = "\(indent)\(export)\(key)=\(q)\(value)\(q)\(rest.comment)"
            found = true
        }
        if !found { lines.append("\(key)=\(value)") }
        let nl = crlf ? "\r\n" : "\n"
        return (lines.joined(separator: nl) + nl, previous)
    }

    /// Sets `key=value` in the file at `path`: validates the new text as a configuration first, writes it
    /// to a temporary file beside it (same mode and owner), flushes it, renames it over the old one and
    /// flushes the directory. Readers see the old file or the new one, never a mix.
    ///
    /// - Throws: ``LedgerError`` naming the path and the cause, or the configuration error of the new
    ///   text (nothing is written then).
    @discardableResult
    public static func set(key: String, value: String, in given: String) throws -> Change {
        // A symlinked config (a common deployment) is edited where it points: the link stays a link.
        guard let resolved = realpath(given, nil) else {
            throw LedgerError("cannot read \(given): \(String(cString: strerror(errno)))")
        }
        let path = String(cString: resolved)
        free(resolved)
        guard let data = FileManager.default.contents(atPath: path) else { throw LedgerError("cannot read \(path)") }
        let old = String(decoding: data, as: UTF8.self)
        let (text, previous) = rewrite(old, key: key, value: value)
        do {
            _ = try ConfigLoader.load(fileText: text, fileName: path)
        } catch {
            throw LedgerError("\(path) would not be a valid configuration with \(key)=\(value): \(error)")
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw LedgerError("cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0o7777)
        guard fd >= 0 else { throw LedgerError("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        do {
            try writeAll(fd, bytes, what: tmp)
            _ = fchown(fd, st.st_uid, st.st_gid)  // keeps the owner when run as root; harmless otherwise
            _ = fchmod(fd, st.st_mode & 0o7777)
            guard fsync(fd) == 0 else { throw LedgerError("cannot flush \(tmp): \(String(cString: strerror(errno)))") }
            close(fd)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        guard rename(tmp, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(tmp)
            throw LedgerError("cannot replace \(path): \(e)")
        }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
        return Change(
            previous: previous, value: value, sha256Before: SHA256.hex(data), sha256After: SHA256.hex(bytes),
            size: bytes.count)
    }
}
