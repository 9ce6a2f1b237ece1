#if canImport(Glibc)
    import Glibc
#endif

/// The answer to a plain HTTP GET.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: String
}

/// A failed HTTP GET, naming the address and what went wrong.
public struct HTTPGetError: Error, CustomStringConvertible {
    public var description: String
}

/// A tiny blocking HTTP/1.0 GET over POSIX sockets: enough to read the daemon's own `/metrics`,
/// `/healthz` and `/readyz` without a networking dependency.
///
/// - Parameters:
///   - host: a numeric address; `0.0.0.0` and `::` (a wildcard bind) are read through loopback.
///   - timeout: for connecting, sending and each read.
/// - Throws: ``HTTPGetError`` naming `host:port` and the cause.
public func httpGet(host: String, port: Int, path: String, timeout: Double = 2) throws -> HTTPResponse {
    let target = host == "0.0.0.0" || host.isEmpty ? "127.0.0.1" : host == "::" ? "::1" : host
    let addr = "\(target):\(port)"
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = AI_NUMERICHOST
    var res: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(target, String(port), &hints, &res)
    guard rc == 0, let ai = res else {
        throw HTTPGetError(description: "cannot resolve \(addr): \(String(cString: gai_strerror(rc)))")
    }
    defer { freeaddrinfo(res) }
    let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HTTPGetError(description: "socket for \(addr): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
        throw HTTPGetError(description: "cannot connect to \(addr): \(String(cString: strerror(errno)))")
    }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: \(addr)\r\nConnection: close\r\n\r\n".utf8)
    var sent = 0
    while sent < request.count {
        let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            throw HTTPGetError(description: "cannot send to \(addr): \(String(cString: strerror(errno)))")
        }
        sent += n
    }
    var reply: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 {
            throw HTTPGetError(description: "no answer from \(addr)\(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        reply.append(contentsOf: buf[0..<n])
        if reply.count > 16 << 20 { throw HTTPGetError(description: "\(addr)\(path): answer over 16 MiB") }
    }
    guard let split = reply.firstRange(of: [13, 10, 13, 10]) else {
        throw HTTPGetError(description: "\(addr)\(path): not an HTTP answer")
    }
    let head = String(decoding: reply[..<split.lowerBound], as: UTF8.self)
    let statusLine = head.split(separator: "\r\n", maxSplits: 1).first ?? ""
    let parts = statusLine.split(separator: " ")
    guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
        throw HTTPGetError(description: "\(addr)\(path): bad status line \(statusLine)")
    }
    return HTTPResponse(status: status, body: String(decoding: reply[split.upperBound...], as: UTF8.self))
}

/// The value of an unlabelled sample in a Prometheus text (`name value`), if present.
public func prometheusValue(_ text: String, name: String) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        if parts.count >= 2, parts[0] == name { return Double(parts[1]) }
    }
    return nil
}
