import CZeroMQ

/// A ZeroMQ context: the I/O threads and the registry of sockets and `inproc://` endpoints.
///
/// libzmq contexts are thread-safe, hence `Sendable`. Each `Socket` keeps its context alive, so the
/// `zmq_ctx_term()` in `deinit` runs only after every socket of the context is closed; it then waits
/// only for each socket's `ZMQ_LINGER` to flush queued messages (forever under libzmq's default
/// linger of -1, unless the context was made with `blocky: false`).
///
/// There is no explicit `terminate()`: `zmq_ctx_term()` frees the context, and a later call through a
/// live reference would be a use-after-free. `shutdown()` is the safe way to stop the context early.
public final class Context: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `zmq_ctx_new()` and configures it with `zmq_ctx_set()`.
    ///
    /// - Parameters:
    ///   - ioThreads: `ZMQ_IO_THREADS`, the number of background I/O threads (libzmq's default is 1).
    ///   - blocky: `ZMQ_BLOCKY`. When `false`, new sockets get `ZMQ_LINGER` 0, so closing a socket drops
    ///     its unsent messages and terminating the context never waits for a peer.
    /// - Throws: `ZMQError` if libzmq cannot create the context or rejects an option.
    public init(ioThreads: Int32 = 1, blocky: Bool = true) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.current }
        self.handle = handle
        do {
            try zmqCall { zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) }
            try zmqCall { zmq_ctx_set(handle, ZMQ_BLOCKY, blocky ? 1 : 0) }
        } catch {
            zmq_ctx_term(handle)
            throw error
        }
    }

    /// Shuts the context down with `zmq_ctx_shutdown()`.
    ///
    /// Every blocking call on the context's sockets, in any thread, returns `ZMQError.terminated` at
    /// once, and so does every later call except `close()`. This is how to wake a thread blocked in
    /// `receive`. The context itself is freed when the last reference to it goes away.
    ///
    /// - Throws: `ZMQError` from `zmq_ctx_shutdown()`.
    public func shutdown() throws(ZMQError) {
        try zmqCall { zmq_ctx_shutdown(handle) }
    }

    /// Terminates the context with `zmq_ctx_term()`.
    deinit {
        _ = try? zmqCall { zmq_ctx_term(handle) }
    }
}
