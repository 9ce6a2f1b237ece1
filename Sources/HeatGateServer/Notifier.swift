#if canImport(Glibc)
    import Glibc
#endif

/// systemd's service notification protocol (`sd_notify(3)`), written directly: one datagram of
/// newline-separated `KEY=VALUE` assignments to the `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path,
/// or an abstract name when it starts with `@`).
///
/// Written here rather than linked from libsystemd: the protocol is one `sendto`, systemd documents it as
/// stable for self-contained implementations, and the binary's `NEEDED` list stays libc, libstdc++ and
/// libzmq (packaging/check-binary.sh), with no libsystemd0 dependency on hosts that do not run systemd.
///
/// Without `$NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`) every call does nothing.
public final class Notifier: Sendable {
    /// The socket address, as `sendto` takes it; nil when notifications are off.
    let address: [UInt8]?
    let fd: Int32
    /// The watchdog interval systemd asked for (`$WATCHDOG_USEC`), in nanoseconds; nil when off or meant
    /// for another process (`$WATCHDOG_PID`).
    public let watchdogNanos: UInt64?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    public init(environment: [String: String]) {
        var fd: Int32 = -1
        var address: [UInt8]?
        if let name = environment["NOTIFY_SOCKET"], let a = Self.socketAddress(name) {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd >= 0 { address = a }
        }
        self.fd = fd
        self.address = address
        var watchdog: UInt64?
        if address != nil, let usec = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }), usec > 0 {
            let pid = environment["WATCHDOG_PID"].flatMap { Int32($0) }
            if pid == nil || pid == getpid() { watchdog = usec &* 1_000 }
        }
        watchdogNanos = watchdog
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Whether a notification socket was given.
    public var enabled: Bool { address != nil }

    /// `sockaddr_un` bytes for a `$NOTIFY_SOCKET` value: an absolute path, or `@name` for the abstract
    /// namespace (the `@` becomes a NUL and the length excludes any terminator). Nil when unusable.
    static func socketAddress(_ name: String) -> [UInt8]? {
        var path = Array(name.utf8)
        guard path.count >= 2, path[0] == UInt8(ascii: "/") || path[0] == UInt8(ascii: "@") else { return nil }
        let abstract = path[0] == UInt8(ascii: "@")
        if abstract { path[0] = 0 }
        var addr = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        // A path needs room for its NUL; an abstract name does not have one.
        guard path.count <= capacity - (abstract ? 0 : 1), !path.dropFirst().contains(0) else { return nil }
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (abstract ? 0 : 1)
        return withUnsafeBytes(of: &addr) { Array($0.prefix(length)) }
    }

    /// Sends one datagram of assignments; returns whether the kernel took it. Never blocks.
    @discardableResult
    public func send(_ assignments: String) -> Bool {
        guard let address else { return false }
        let payload = Array(assignments.utf8)
        let sent = payload.withUnsafeBytes { p in
            address.withUnsafeBytes { a in
                sendto(
                    fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT),
                    a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count))
            }
        }
        return sent == payload.count
    }

    /// `READY=1`, with a first status line.
    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// `RELOADING=1` and the `CLOCK_MONOTONIC` time in microseconds, as `sd_notify(3)` asks of a reload.
    public func reloading() { send("RELOADING=1\nMONOTONIC_USEC=\(monotonicNanos() / 1_000)\nSTATUS=reloading") }

    /// `STOPPING=1`.
    public func stopping() { send("STOPPING=1\nSTATUS=stopping") }

    /// `STATUS=`: one line shown by `systemctl status`.
    public func status(_ text: String) { send("STATUS=\(text)") }

    /// `WATCHDOG=1`: the service is alive.
    public func watchdog() { send("WATCHDOG=1") }
}
