#if canImport(Glibc)
    import Glibc
#endif

/// Where the two stores of SPEC §5 live, derived the same way by the daemon, `heatgate get`, the client
/// library and the Python package (`docs/store.md` gives the rule byte for byte).
public enum StorePaths {
    /// The hot store's directory when `P26_RUN_DIR` is not set: on `/dev/shm`, named after the state
    /// directory's absolute path (`/var/lib/x` → `/dev/shm/heatgate-var-lib-x`; a name over 200 bytes
    /// becomes `heatgate-` and the FNV-1a-64 of the path in hex), or `<state dir>/run` where there is no
    /// `/dev/shm`.
    public static func defaultRunDir(stateDir: String, shm: String = "/dev/shm") -> String {
        let abs = absolutePath(stateDir)
        var isDir = stat()
        guard stat(shm, &isDir) == 0, isDir.st_mode & S_IFMT == S_IFDIR else {
            return abs == "/" ? "/run" : abs + "/run"
        }
        var name = "heatgate" + abs.replacingSlashes()
        if name.utf8.count > 200 { name = "heatgate-" + hex16(fnv1a64(abs.utf8)) }
        return shm + "/" + name
    }

    /// The file in the state directory that names the run dir the gate runs with (its first line).
    public static let pointerFile = "run_dir"

    /// The hot store's directory for a reader that knows only the state directory: the one the gate last
    /// ran with (``pointerFile``), else the default.
    public static func readerRunDir(stateDir: String) -> String {
        let fd = open(stateDir + "/" + pointerFile, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &buf, buf.count)
            if n > 0 {
                let line = String(decoding: buf[0..<n].prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
                    .trimmingBlanks()
                if !line.isEmpty { return line }
            }
        }
        return defaultRunDir(stateDir: stateDir)
    }

    /// `realpath` of an existing path; otherwise the path made absolute against the working directory,
    /// with `.`, `..` and repeated slashes removed (Python's `os.path.realpath` does the same).
    public static func absolutePath(_ path: String) -> String {
        if let r = realpath(path, nil) {
            defer { free(r) }
            return String(cString: r)
        }
        var full = path
        if !path.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buf, buf.count) != nil {
                full =
                    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
            }
        }
        var parts: [Substring] = []
        for p in full.split(separator: "/", omittingEmptySubsequences: true) {
            if p == "." { continue }
            if p == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// FNV-1a, 64 bits.
    public static func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// This boot's id (`/proc/sys/kernel/random/boot_id`), or "" where the kernel does not give one.
    public static func bootId() -> String {
        let fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return "" }
        return String(decoding: buf[0..<n], as: UTF8.self).trimmingBlanks()
    }
}

extension String {
    fileprivate func replacingSlashes() -> String {
        String(decoding: utf8.map { $0 == UInt8(ascii: "/") ? UInt8(ascii: "-") : $0 }, as: UTF8.self)
    }
}
