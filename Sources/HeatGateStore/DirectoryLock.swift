import Glibc

/// One daemon per state directory (SPEC §5): an exclusive `flock` on `heatgate.pid` in the directory,
/// held for the life of the process and released by the kernel however the process ends (a `kill -9`
/// included), so a stale file never keeps a new daemon out.
///
/// Two daemons on one store both started before, and one silently lost its batches (`MDB_KEYEXIST`: both
/// took the next `seq`). The file holds the owner's pid so the refusal can name it.
public final class DirectoryLock {
    public static let fileName = "heatgate.pid"

    public let path: String
    private let fd: Int32

    /// Takes the lock, or throws naming the process that holds it.
    public init(directory: String) throws(DirectoryLockError) {
        mkdir(directory, 0o750)
        path = directory + "/" + Self.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw DirectoryLockError(description: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let err = errno
            let owner = Self.readPid(fd)
            close(fd)
            if err == EWOULDBLOCK {
                throw DirectoryLockError(
                    description:
                        "another heatgate (pid \(owner.map(String.init) ?? "unknown")) owns \(directory); "
                        + "one daemon per state directory: stop it first, or give this one another P26_STATE_DIR",
                    ownerPid: owner)
            }
            throw DirectoryLockError(description: "cannot lock \(path): \(String(cString: strerror(err)))")
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    /// The pid a running owner wrote, if the file holds one.
    public static func owner(of directory: String) -> Int32? {
        let fd = open(directory + "/" + fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readPid(fd)
    }

    private static func readPid(_ fd: Int32) -> Int32? {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let digits = buf[..<n].prefix { $0 >= 0x30 && $0 <= 0x39 }
        return Int32(String(decoding: digits, as: UTF8.self))
    }

    deinit { close(fd) }
}

/// Why the state directory could not be taken.
public struct DirectoryLockError: Error, CustomStringConvertible {
    public var description: String
    /// The pid of the daemon that owns the directory, when another one does.
    public var ownerPid: Int32?

    public init(description: String, ownerPid: Int32? = nil) {
        self.description = description
        self.ownerPid = ownerPid
    }
}
