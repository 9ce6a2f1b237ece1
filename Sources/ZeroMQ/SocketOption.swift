import CZeroMQ

/// A socket option for `zmq_setsockopt()` / `zmq_getsockopt()`, typed by its value.
///
/// Use the statics with `Socket.set(_:_:)` and `Socket.get(_:)`: `try socket.set(.linger, 0)`.
/// Most options apply only to connections made after they are set (the high-water marks, for
/// example), so set them before `bind` and `connect`.
public struct SocketOption<Value>: Sendable {
    let name: Int32
    /// CURVE keys are passed as 41 bytes, the Z85 text and its NUL, which is the form `zmq_setsockopt(3)`
    /// documents; reading one back asks for the same size, which makes libzmq return Z85.
    let isCurveKey: Bool

    init(_ name: Int32, isCurveKey: Bool = false) {
        self.name = name
        self.isCurveKey = isCurveKey
    }
}

extension SocketOption where Value == Int32 {
    /// `ZMQ_SNDHWM`: outgoing messages queued per peer before send blocks or drops (0 = no limit).
    public static var sendHighWaterMark: Self { Self(ZMQ_SNDHWM) }
    /// `ZMQ_RCVHWM`: incoming messages queued per peer before the peer is held back (0 = no limit).
    public static var receiveHighWaterMark: Self { Self(ZMQ_RCVHWM) }
    /// `ZMQ_LINGER`, milliseconds that `close` keeps unsent messages (-1 = forever, libzmq's default).
    public static var linger: Self { Self(ZMQ_LINGER) }
    /// `ZMQ_RCVTIMEO`, milliseconds a blocking receive waits before returning `false` (-1 = forever).
    public static var receiveTimeout: Self { Self(ZMQ_RCVTIMEO) }
    /// `ZMQ_SNDTIMEO`, milliseconds a blocking send waits before returning `false` (-1 = forever).
    public static var sendTimeout: Self { Self(ZMQ_SNDTIMEO) }
    /// `ZMQ_TCP_KEEPALIVE`: -1 leaves the OS default, 0 turns `SO_KEEPALIVE` off, 1 on.
    public static var tcpKeepalive: Self { Self(ZMQ_TCP_KEEPALIVE) }
}

extension SocketOption where Value == Int64 {
    /// `ZMQ_MAXMSGSIZE`, the largest inbound message in bytes (-1 = no limit).
    ///
    /// Enforced by the tcp:// and ipc:// decoders only, not on inproc://. A peer that sends a larger
    /// message is disconnected; it reconnects, but what it had already written to the connection is lost.
    public static var maxMessageSize: Self { Self(ZMQ_MAXMSGSIZE) }
}

extension SocketOption where Value == Bool {
    /// `ZMQ_IMMEDIATE`: queue messages only to completed connections, not to ones still being made.
    public static var immediate: Self { Self(ZMQ_IMMEDIATE) }
    /// `ZMQ_IPV6`: allow IPv6 on tcp:// endpoints.
    public static var ipv6: Self { Self(ZMQ_IPV6) }
    /// `ZMQ_CURVE_SERVER`: act as the CURVE server; needs `curveSecretKey`.
    public static var curveServer: Self { Self(ZMQ_CURVE_SERVER) }
    /// `ZMQ_XPUB_NODROP` (PUB, XPUB; write-only): at the high-water mark a send fails with `EAGAIN`
    /// instead of silently dropping, so `send` returns `false` and the caller can count the drop. The
    /// check covers every matching subscriber: one slow subscriber holds back all of them.
    public static var xpubNoDrop: Self { Self(ZMQ_XPUB_NODROP) }
    /// `ZMQ_XPUB_VERBOSE` (XPUB; write-only): pass every subscribe message up to `receive`, not only the
    /// first one for a topic, so that each new subscriber is seen even when another already has its topic.
    public static var xpubVerbose: Self { Self(ZMQ_XPUB_VERBOSE) }
    /// `ZMQ_XPUB_VERBOSER` (XPUB; write-only): `xpubVerbose`, and every unsubscribe too, including the
    /// ones libzmq generates when a subscriber disconnects, so subscriptions can be counted both ways.
    public static var xpubVerboser: Self { Self(ZMQ_XPUB_VERBOSER) }
}

extension SocketOption where Value == String {
    /// `ZMQ_CURVE_SECRETKEY`: this socket's long-term secret key, 40 Z85 characters.
    public static var curveSecretKey: Self { Self(ZMQ_CURVE_SECRETKEY, isCurveKey: true) }
    /// `ZMQ_CURVE_PUBLICKEY`: this socket's long-term public key, 40 Z85 characters (clients).
    public static var curvePublicKey: Self { Self(ZMQ_CURVE_PUBLICKEY, isCurveKey: true) }
    /// `ZMQ_CURVE_SERVERKEY`: the server's public key, 40 Z85 characters; setting it makes a CURVE client.
    public static var curveServerKey: Self { Self(ZMQ_CURVE_SERVERKEY, isCurveKey: true) }
    /// `ZMQ_ZAP_DOMAIN`: the ZAP authentication domain.
    public static var zapDomain: Self { Self(ZMQ_ZAP_DOMAIN) }
}

extension Socket {
    /// Sets an integer option with `zmq_setsockopt()`.
    ///
    /// - Throws: `ZMQError.invalid` for an option the socket type does not take or a bad value.
    public func set(_ option: SocketOption<Int32>, _ value: Int32) throws(ZMQError) {
        try setRaw(option.name, value)
    }

    /// Sets a 64-bit integer option with `zmq_setsockopt()`.
    public func set(_ option: SocketOption<Int64>, _ value: Int64) throws(ZMQError) {
        try setRaw(option.name, value)
    }

    /// Sets a Boolean option (a C `int`, 0 or 1) with `zmq_setsockopt()`.
    public func set(_ option: SocketOption<Bool>, _ value: Bool) throws(ZMQError) {
        try setRaw(option.name, Int32(value ? 1 : 0))
    }

    /// Sets a text option with `zmq_setsockopt()`.
    ///
    /// - Throws: `ZMQError.invalid` for a CURVE key that is not 40 valid Z85 characters.
    public func set(_ option: SocketOption<String>, _ value: String) throws(ZMQError) {
        var bytes = Array(value.utf8)
        if option.isCurveKey { bytes.append(0) }
        try setBytes(option.name, bytes)
    }

    /// Reads an integer option with `zmq_getsockopt()`.
    public func get(_ option: SocketOption<Int32>) throws(ZMQError) -> Int32 {
        try getRaw(option.name, as: Int32.self)
    }

    /// Reads a 64-bit integer option with `zmq_getsockopt()`.
    public func get(_ option: SocketOption<Int64>) throws(ZMQError) -> Int64 {
        try getRaw(option.name, as: Int64.self)
    }

    /// Reads a Boolean option with `zmq_getsockopt()`.
    public func get(_ option: SocketOption<Bool>) throws(ZMQError) -> Bool {
        try getRaw(option.name, as: Int32.self) != 0
    }

    /// Reads a text option with `zmq_getsockopt()`; CURVE keys come back as Z85.
    public func get(_ option: SocketOption<String>) throws(ZMQError) -> String {
        try getString(option.name, capacity: option.isCurveKey ? 41 : 256)
    }

    /// Adds a `ZMQ_SUBSCRIBE` prefix filter on a SUB or XSUB socket; an empty prefix matches everything.
    public func subscribe(_ prefix: [UInt8] = []) throws(ZMQError) {
        try setBytes(ZMQ_SUBSCRIBE, prefix)
    }

    /// Adds a `ZMQ_SUBSCRIBE` filter for the UTF-8 bytes of `prefix`.
    public func subscribe(_ prefix: String) throws(ZMQError) {
        try setBytes(ZMQ_SUBSCRIBE, Array(prefix.utf8))
    }

    /// Removes one earlier `subscribe` of the same prefix (`ZMQ_UNSUBSCRIBE`).
    public func unsubscribe(_ prefix: [UInt8] = []) throws(ZMQError) {
        try setBytes(ZMQ_UNSUBSCRIBE, prefix)
    }

    /// Removes one earlier `subscribe` of the UTF-8 bytes of `prefix` (`ZMQ_UNSUBSCRIBE`).
    public func unsubscribe(_ prefix: String) throws(ZMQError) {
        try setBytes(ZMQ_UNSUBSCRIBE, Array(prefix.utf8))
    }

    /// The endpoint of the last `bind` or `connect` (`ZMQ_LAST_ENDPOINT`), with a wildcard port resolved:
    /// bind `tcp://127.0.0.1:*`, then connect peers to this.
    public var lastEndpoint: String {
        get throws(ZMQError) { try getString(ZMQ_LAST_ENDPOINT, capacity: 1024) }
    }

    /// The file descriptor (`ZMQ_FD`) that becomes readable when `events` may have changed.
    ///
    /// For folding the socket into another event loop (epoll, kqueue, Dispatch). It is edge-triggered
    /// and signals only that `events` must be read again, not that a message is waiting.
    public var fileDescriptor: Int32 {
        get throws(ZMQError) { try getRaw(ZMQ_FD, as: Int32.self) }
    }

    /// Whether a receive (`.in`) or send (`.out`) would now succeed without blocking (`ZMQ_EVENTS`).
    public var events: PollEvents {
        get throws(ZMQError) { PollEvents(rawValue: Int16(truncatingIfNeeded: try getRaw(ZMQ_EVENTS, as: Int32.self))) }
    }

    private func setRaw<T: FixedWidthInteger>(_ name: Int32, _ value: T) throws(ZMQError) {
        let handle = try open()
        try zmqCall { withUnsafeBytes(of: value) { zmq_setsockopt(handle, name, $0.baseAddress, $0.count) } }
    }

    private func setBytes(_ name: Int32, _ bytes: [UInt8]) throws(ZMQError) {
        let handle = try open()
        try zmqCall { bytes.withUnsafeBytes { zmq_setsockopt(handle, name, $0.baseAddress, $0.count) } }
    }

    private func getRaw<T: FixedWidthInteger>(_ name: Int32, as: T.Type) throws(ZMQError) -> T {
        let handle = try open()
        var value = T.zero
        var size = MemoryLayout<T>.size
        try zmqCall { zmq_getsockopt(handle, name, &value, &size) }
        return value
    }

    /// Reads a NUL-terminated string option into a buffer of `capacity` bytes.
    private func getString(_ name: Int32, capacity: Int) throws(ZMQError) -> String {
        let handle = try open()
        var buffer = [UInt8](repeating: 0, count: capacity)
        var size = capacity
        try zmqCall { zmq_getsockopt(handle, name, &buffer, &size) }
        let end = buffer[..<min(size, capacity)].firstIndex(of: 0) ?? size
        return String(decoding: buffer[..<end], as: UTF8.self)
    }
}
