import CZeroMQ

/// A ZeroMQ socket type, the `type` argument of `zmq_socket()`.
public struct SocketType: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    public static let pair = SocketType(rawValue: ZMQ_PAIR)
    public static let pub = SocketType(rawValue: ZMQ_PUB)
    public static let sub = SocketType(rawValue: ZMQ_SUB)
    public static let xpub = SocketType(rawValue: ZMQ_XPUB)
    public static let xsub = SocketType(rawValue: ZMQ_XSUB)
    public static let req = SocketType(rawValue: ZMQ_REQ)
    public static let rep = SocketType(rawValue: ZMQ_REP)
    public static let dealer = SocketType(rawValue: ZMQ_DEALER)
    public static let router = SocketType(rawValue: ZMQ_ROUTER)
    public static let push = SocketType(rawValue: ZMQ_PUSH)
    public static let pull = SocketType(rawValue: ZMQ_PULL)
}

/// Flags for `zmq_send()`.
public struct SendFlags: OptionSet, Sendable {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// `ZMQ_DONTWAIT`: fail with `EAGAIN` (a `false` result) instead of blocking.
    public static let dontWait = SendFlags(rawValue: ZMQ_DONTWAIT)
    /// `ZMQ_SNDMORE`: more frames of the same message follow.
    public static let sendMore = SendFlags(rawValue: ZMQ_SNDMORE)
}

/// Flags for `zmq_msg_recv()`.
public struct ReceiveFlags: OptionSet, Sendable {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// `ZMQ_DONTWAIT`: fail with `EAGAIN` (a `false` result) instead of blocking.
    public static let dontWait = ReceiveFlags(rawValue: ZMQ_DONTWAIT)
}

/// A ZeroMQ socket.
///
/// libzmq's socket types used here are not thread-safe (`zmq_socket(3)`: "Applications MUST NOT use a
/// not thread safe socket from multiple threads under any circumstances"). A `Socket` therefore has one
/// owner thread. It is `@unchecked Sendable` only so that it can be created on one thread and handed
/// once to the thread that will own it; using it from two threads, even one after the other without a
/// full memory barrier between them, is undefined behaviour.
///
/// The socket keeps its `Context` alive and is closed with `zmq_close()` in `deinit` if `close()` was
/// not called. Set `linger` (or close with `close(linger:)`) so that closing never waits on a peer.
public final class Socket: @unchecked Sendable {
    /// The context the socket belongs to.
    public let context: Context
    /// The socket type it was created with.
    public let type: SocketType
    private var handle: UnsafeMutableRawPointer?

    /// Creates a socket with `zmq_socket()`.
    ///
    /// - Throws: `ZMQError.terminated` if the context was shut down, `.tooManyFiles` at its socket limit.
    public init(_ context: Context, type: SocketType) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.rawValue) else { throw ZMQError.current }
        self.context = context
        self.type = type
        self.handle = handle
    }

    deinit {
        if let handle { zmq_close(handle) }
    }

    /// The live libzmq handle, or `ZMQError.notSocket` after `close()`.
    @inline(__always)
    func open() throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError.notSocket }
        return handle
    }

    /// Closes the socket with `zmq_close()`, after setting `ZMQ_LINGER` if asked.
    ///
    /// Queued outgoing messages are kept for up to the linger period, by the context's I/O thread; every
    /// other call on the socket afterwards throws `ZMQError.notSocket`. Closing twice does nothing.
    ///
    /// - Parameter linger: if not `nil`, `ZMQ_LINGER` in milliseconds (0 drops unsent messages).
    /// - Throws: `ZMQError` if setting the linger fails; the socket is closed regardless.
    public func close(linger: Int32? = nil) throws(ZMQError) {
        guard let handle else { return }
        defer {
            self.handle = nil
            zmq_close(handle)
        }
        if let linger { try set(.linger, linger) }
    }

    /// Accepts connections on `endpoint` with `zmq_bind()`.
    ///
    /// - Parameter endpoint: `tcp://127.0.0.1:*` picks a free port; read it back from `lastEndpoint`.
    /// - Throws: `.addressInUse`, `.protocolNotSupported`, `.invalid`, ... from `zmq_bind()`.
    public func bind(_ endpoint: String) throws(ZMQError) {
        let handle = try open()
        try zmqCall { zmq_bind(handle, endpoint) }
    }

    /// Connects to `endpoint` with `zmq_connect()`; the connection itself is made in the background.
    ///
    /// - Throws: `ZMQError` from `zmq_connect()`, for a malformed endpoint or an unknown transport.
    public func connect(_ endpoint: String) throws(ZMQError) {
        let handle = try open()
        try zmqCall { zmq_connect(handle, endpoint) }
    }

    /// Stops accepting on `endpoint` with `zmq_unbind()`.
    ///
    /// - Throws: `.noEntry` if the socket is not bound to `endpoint` (use the `lastEndpoint` form for
    ///   wildcard binds).
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let handle = try open()
        try zmqCall { zmq_unbind(handle, endpoint) }
    }

    /// Disconnects from `endpoint` with `zmq_disconnect()`.
    ///
    /// - Throws: `.noEntry` if the socket is not connected to `endpoint`.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let handle = try open()
        try zmqCall { zmq_disconnect(handle, endpoint) }
    }

    // MARK: Sending

    /// Sends one frame with `zmq_send()`, which copies `bytes`; this path allocates nothing in Swift.
    ///
    /// PUB and XPUB never report a full queue: at the high-water mark they drop the message and return
    /// `true`, unless `xpubNoDrop` is set, in which case they return `false` like PUSH or DEALER.
    ///
    /// - Parameters:
    ///   - bytes: the frame's contents; may be empty.
    ///   - flags: `.dontWait` to fail instead of blocking, `.sendMore` if more frames follow.
    /// - Returns: `false` if the message was not queued: `EAGAIN` with `.dontWait`, or `sendTimeout`
    ///   expired. Count these as drops.
    /// - Throws: `ZMQError` from `zmq_send()`, such as `.fsm` or `.terminated`.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, flags: SendFlags = []) throws(ZMQError) -> Bool {
        let handle = try open()
        return try zmqCallUnlessAgain { zmq_send(handle, bytes.baseAddress, bytes.count, flags.rawValue) } != nil
    }

    /// Sends one frame with `zmq_send()`; see `send(_:flags:)` for the raw-buffer form.
    @discardableResult
    public func send(_ bytes: [UInt8], flags: SendFlags = []) throws(ZMQError) -> Bool {
        let handle = try open()
        return try zmqCallUnlessAgain {
            bytes.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags.rawValue) }
        } != nil
    }

    /// Sends the UTF-8 bytes of `string`, without a terminating NUL, as one frame with `zmq_send()`.
    @discardableResult
    public func send(_ string: String, flags: SendFlags = []) throws(ZMQError) -> Bool {
        let handle = try open()
        var string = string
        return try zmqCallUnlessAgain {
            string.withUTF8 { zmq_send(handle, $0.baseAddress, $0.count, flags.rawValue) }
        } != nil
    }

    /// Sends `frames` as one multipart message, with `ZMQ_SNDMORE` on all but the last.
    ///
    /// libzmq delivers a multipart message whole or not at all, and once its first frame is queued it
    /// accepts the rest, so `.dontWait` applies to the first frame only.
    ///
    /// - Returns: `false` if the first frame was refused (see `send(_:flags:)`); nothing was queued.
    /// - Throws: `ZMQError.invalid` for an empty `frames`, or any error from `zmq_send()`.
    @discardableResult
    public func sendMultipart(_ frames: [[UInt8]], flags: SendFlags = []) throws(ZMQError) -> Bool {
        guard !frames.isEmpty else { throw ZMQError.invalid }
        let last = frames.count - 1
        for (index, frame) in frames.enumerated() {
            var frameFlags: SendFlags = index == last ? [] : .sendMore
            if index == 0 { frameFlags.formUnion(flags.intersection(.dontWait)) }
            guard try send(frame, flags: frameFlags) else { return false }
        }
        return true
    }

    // MARK: Receiving

    /// Receives one frame into `message` with `zmq_msg_recv()`, replacing its previous contents.
    ///
    /// Frames of any size are received whole: libzmq owns the buffer. Reusing one `Message` keeps the
    /// receive path free of Swift allocations.
    ///
    /// - Returns: `false` if no frame was available: `EAGAIN` with `.dontWait`, or `receiveTimeout`
    ///   expired.
    /// - Throws: `ZMQError` from `zmq_msg_recv()`, such as `.fsm` or `.terminated`.
    public func receive(into message: Message, flags: ReceiveFlags = []) throws(ZMQError) -> Bool {
        let handle = try open()
        return try zmqCallUnlessAgain { zmq_msg_recv(message.pointer, handle, flags.rawValue) } != nil
    }

    /// Receives one frame with `zmq_msg_recv()` and copies it out.
    ///
    /// - Returns: the frame's bytes, or `nil` if none was available (see `receive(into:flags:)`).
    public func receiveBytes(flags: ReceiveFlags = []) throws(ZMQError) -> [UInt8]? {
        let message = Message()
        return try receive(into: message, flags: flags) ? message.bytes : nil
    }

    /// Receives every frame of the next multipart message with `zmq_msg_recv()`.
    ///
    /// `flags` apply to the first frame only: the others have arrived with it.
    ///
    /// - Returns: the frames, at least one, or `nil` if no message was available.
    public func receiveMultipart(flags: ReceiveFlags = []) throws(ZMQError) -> [[UInt8]]? {
        let message = Message()
        guard try receive(into: message, flags: flags) else { return nil }
        var frames = [message.bytes]
        while message.more {
            _ = try receive(into: message)
            frames.append(message.bytes)
        }
        return frames
    }
}
