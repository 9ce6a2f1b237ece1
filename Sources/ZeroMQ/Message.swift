import CZeroMQ

/// A reusable receive buffer: one `zmq_msg_t`, initialised with `zmq_msg_init()` and released with
/// `zmq_msg_close()`.
///
/// Make one per receiving loop and pass it to `Socket.receive(into:flags:)` again and again: libzmq
/// sizes the frame, so a frame of any length fits, and nothing is allocated in Swift. Like the socket
/// that fills it, a `Message` belongs to one thread.
public final class Message {
    let pointer: UnsafeMutablePointer<zmq_msg_t>

    /// An empty message (`zmq_msg_init()`, which cannot fail).
    public init() {
        pointer = .allocate(capacity: 1)
        zmq_msg_init(pointer)
    }

    deinit {
        zmq_msg_close(pointer)
        pointer.deallocate()
    }

    /// The size of the frame in bytes (`zmq_msg_size()`).
    public var count: Int { zmq_msg_size(pointer) }

    /// Whether more frames of the same message follow (`zmq_msg_more()`, the per-frame `ZMQ_RCVMORE`).
    public var more: Bool { zmq_msg_more(pointer) != 0 }

    /// Calls `body` with the frame's bytes in place (`zmq_msg_data()`), without copying.
    ///
    /// The buffer is valid only inside `body`: the next receive into this message replaces it.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(pointer), count: count))
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The frame decoded as UTF-8, invalid sequences replaced by U+FFFD.
    public var string: String { withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }
}
