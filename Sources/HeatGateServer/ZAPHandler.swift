import Synchronization
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// The ZeroMQ authentication handler (ZAP, RFC 27) of the daemon's CURVE sockets: only the client public
/// keys of `P26_CURVE_ALLOWED_CLIENTS` may connect.
///
/// libzmq asks the handler bound at `inproc://zeromq.zap.01` of the socket's context about every CURVE
/// handshake. Without one, any client that knows the server's *public* key gets in, so CURVE would
/// encrypt but not authenticate. The handler owns its REP socket on its own thread (a socket has one
/// owner); it answers within microseconds and never touches the decision path. A client refused here
/// never completes its handshake: its PUSH messages are never received and its SUB gets nothing.
final class ZAPHandler {
    static let endpoint = "inproc://zeromq.zap.01"
    /// The ZAP domain set on the ingest and publish sockets.
    static let domain = "heatgate"

    /// Raised by ``stop()``; read by the handler's thread.
    final class Flags: Sendable {
        let stopping = Atomic<Bool>(false)
    }

    let allowed: Set<[UInt8]>
    let flags = Flags()
    var thread: pthread_t?

    /// Binds the handler's socket; call before binding any CURVE server socket of `context`.
    ///
    /// - Parameters:
    ///   - allowedKeys: the Z85 public keys (40 characters each) that may connect.
    /// - Throws: ``ServerError`` for a key that is not Z85, or when the ZAP endpoint cannot be bound.
    init(_ context: Context, allowedKeys: [String], logger: Logger, metrics: Metrics) throws {
        var keys = Set<[UInt8]>()
        for k in allowedKeys {
            guard let raw = ZMQ.z85Decode(k), raw.count == 32 else {
                throw ServerError("invalid P26_CURVE_ALLOWED_CLIENTS key \(k): not a Z85 public key")
            }
            keys.insert(raw)
        }
        allowed = keys
        let socket = try Socket(context, type: .rep)
        try socket.set(.linger, 0)
        // Wakes up now and then to see whether the daemon stops.
        try socket.set(.receiveTimeout, 200)
        do {
            try socket.bind(Self.endpoint)
        } catch {
            throw ServerError("cannot bind the CURVE authentication handler at \(Self.endpoint): \(error)")
        }
        let box = UncheckedBox(socket)
        let allowed = keys
        let flags = self.flags
        thread = startThread(name: "hg-zap") {
            var limiter = RateLimiter(perSecond: 10)
            while !flags.stopping.load(ordering: .relaxed) {
                guard let request = try? box.value.receiveMultipart() else { continue }
                let (reply, clientKey) = Self.answer(request, allowed: allowed)
                if reply[2] != Array("200".utf8) {
                    metrics.curveRefused.add()
                    if limiter.allow(now: monotonicNanos()) {
                        logger.warning(
                            "CURVE client refused",
                            [
                                "client_key": clientKey ?? "none", "reason": String(decoding: reply[3], as: UTF8.self),
                                "suppressed": "\(limiter.takeSuppressed())",
                            ])
                    }
                }
                _ = try? box.value.sendMultipart(reply)
            }
            try? box.value.close(linger: 0)
        }
    }

    /// The ZAP reply to one request: `[version, request_id, status_code, status_text, user_id, metadata]`.
    static func answer(_ r: [[UInt8]], allowed: Set<[UInt8]>) -> (reply: [[UInt8]], clientKey: String?) {
        let requestId = r.count > 1 ? r[1] : []
        func reply(_ code: String, _ text: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), requestId, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        // version, request_id, domain, address, identity, mechanism, credentials...
        guard r.count >= 6, r[0] == Array("1.0".utf8) else { return (reply("400", "malformed ZAP request"), nil) }
        guard r[5] == Array("CURVE".utf8), r.count >= 7, r[6].count == 32 else {
            return (reply("400", "CURVE required"), nil)
        }
        let key = ZMQ.z85Encode(r[6])
        guard allowed.contains(r[6]) else { return (reply("400", "client key not allowed"), key) }
        return (reply("200", "OK", user: key ?? ""), key)
    }

    /// Stops the handler's thread and closes its socket.
    func stop() {
        flags.stopping.store(true, ordering: .relaxed)
        if let t = thread { pthread_join(t, nil) }
        thread = nil
    }
}
