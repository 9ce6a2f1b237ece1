import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP/1.1 server on its own thread for `/metrics`, `/healthz` and `/readyz`.
///
/// Scrapes are rare and tiny; a blocking accept loop on one thread keeps the binary free of an event-loop
/// framework and never touches the decision path (it reads atomics only).
public final class HTTPServer: @unchecked Sendable {
    /// Gets the path and the query (the part after `?`, empty when none).
    public typealias Handler =
        @Sendable (_ path: String, _ query: String) -> (
            status: Int, contentType: String, body: String
        )

    let fd: Int32
    /// The port bound (useful when 0 was asked for).
    public let port: Int
    let handler: Handler
    let stopping = Atomic<Bool>(false)
    var thread: pthread_t?

    /// Binds `host:port`.
    /// - Throws: ``ServerError`` naming the address.
    public init(host: String, port: Int, handler: @escaping Handler) throws {
        self.handler = handler
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let ai = res else {
            throw ServerError(
                "metrics: cannot resolve \(host): \(String(cString: gai_strerror(rc))) (use a numeric address)")
        }
        defer { freeaddrinfo(res) }
        let s = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw ServerError("metrics: socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, listen(s, 16) == 0 else {
            let e = String(cString: strerror(errno))
            close(s)
            throw ServerError("metrics: cannot bind \(host):\(port): \(e)")
        }
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(s, $0, &len) }
        }
        let bound: UInt16 =
            addr.ss_family == sa_family_t(AF_INET6)
            ? withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
            }
            : withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
            }
        self.fd = s
        self.port = Int(UInt16(bigEndian: bound))
    }

    /// Starts serving on a new thread.
    public func start() {
        thread = startThread(name: "hg-http") { [self] in serve() }
    }

    /// Stops serving and joins the thread.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        if let t = thread { pthread_join(t, nil) }
        thread = nil
    }

    func serve() {
        while !stopping.load(ordering: .relaxed) {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            respond(c)
            close(c)
        }
    }

    func respond(_ c: Int32) {
        var buf = [UInt8](repeating: 0, count: 4096)
        var got = 0
        while got < buf.count {
            let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress! + got, $0.count - got, 0) }
            if n <= 0 { break }
            got += n
            if buf[0..<got].firstRange(of: [13, 10, 13, 10]) != nil { break }
        }
        let head = String(decoding: buf[0..<got], as: UTF8.self)
        let parts = head.split(separator: " ", maxSplits: 2)
        var status = 400
        var type = "text/plain; charset=utf-8"
        var body = "bad request\n"
        if parts.count >= 2 {
            let method = parts[0]
            let target = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let path = String(target.first ?? "")
            let query = target.count > 1 ? String(target[1]) : ""
            if method == "GET" || method == "HEAD" {
                (status, type, body) = handler(path, query)
                if method == "HEAD" { body = "" }
            } else {
                (status, body) = (405, "method not allowed\n")
            }
        }
        let reason =
            switch status {
            case 200: "OK"
            case 404: "Not Found"
            case 405: "Method Not Allowed"
            case 503: "Service Unavailable"
            default: "Bad Request"
            }
        let response =
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n\(body)"
        var bytes = Array(response.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes {
                send(c, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { break }
            sent += n
        }
    }
}

/// A start-up failure that names what could not be opened or bound.
public struct ServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

final class ThreadBox: @unchecked Sendable {
    let name: String
    let body: () -> Void
    /// Set by the new thread once it carries its name.
    let named = Atomic<Bool>(false)
    init(_ name: String, _ body: @escaping () -> Void) {
        self.name = name
        self.body = body
    }
}

/// Names the calling thread as `top -H`, `ps -L` and gdb show it (at most 15 bytes, as the kernel keeps).
/// Through /proc: `pthread_setname_np` is not exported by Glibc's module map, `prctl` is variadic.
func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Starts a named POSIX thread (the loop and helpers are plain threads: no executor hops on the hot path).
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    let holder = ThreadBox(name, body)
    let box = Unmanaged.passRetained(holder)
    var t = pthread_t()
    let rc = pthread_create(
        &t, nil,
        { raw in
            let box = Unmanaged<ThreadBox>.fromOpaque(raw!).takeRetainedValue()
            nameThisThread(box.name)
            box.named.store(true, ordering: .releasing)
            box.body()
            return nil
        }, box.toOpaque())
    precondition(rc == 0, "pthread_create failed: \(rc)")
    // Returns once the thread carries its name (microseconds), so `top -H` and tests see it at once.
    while !holder.named.load(ordering: .acquiring) { sched_yield() }
    return t
}
