import CZeroMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error number reported by libzmq through `zmq_errno()`.
///
/// A struct rather than an enum so that a code this wrapper does not name still round-trips. The
/// `description` is libzmq's own text from `zmq_strerror()`, which also covers libzmq's private codes
/// (`ETERM`, `EFSM`, ...) that the C library's `strerror` does not know.
public struct ZMQError: Error, RawRepresentable, Hashable, CustomStringConvertible, Sendable {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The error that the calling thread's last failed libzmq call left in `zmq_errno()`.
    static var current: ZMQError { ZMQError(rawValue: zmq_errno()) }

    /// The message from `zmq_strerror()`.
    public var description: String { String(cString: zmq_strerror(rawValue)) }

    /// `EAGAIN`: a non-blocking call would have blocked, or a send/receive timeout expired.
    public static let again = ZMQError(rawValue: EAGAIN)
    /// `EINTR`: a signal interrupted the call. The wrapper retries these itself.
    public static let interrupted = ZMQError(rawValue: EINTR)
    /// `ETERM`: the socket's context was shut down or terminated.
    public static let terminated = ZMQError(rawValue: ETERM)
    /// `EFSM`: the call is not allowed in the socket's current state (for example REQ receiving first).
    public static let fsm = ZMQError(rawValue: EFSM)
    /// `EADDRINUSE`: the endpoint is already bound.
    public static let addressInUse = ZMQError(rawValue: EADDRINUSE)
    /// `EADDRNOTAVAIL`: the requested address is not local.
    public static let addressNotAvailable = ZMQError(rawValue: EADDRNOTAVAIL)
    /// `EINVAL`: an invalid argument, option, option value or endpoint.
    public static let invalid = ZMQError(rawValue: EINVAL)
    /// `ENOTSUP`: the operation is not supported by this socket type.
    public static let notSupported = ZMQError(rawValue: ENOTSUP)
    /// `EPROTONOSUPPORT`: the endpoint's transport is unknown or not compiled in.
    public static let protocolNotSupported = ZMQError(rawValue: EPROTONOSUPPORT)
    /// `ENOCOMPATPROTO`: the transport does not suit the socket type.
    public static let incompatibleProtocol = ZMQError(rawValue: ENOCOMPATPROTO)
    /// `EHOSTUNREACH`: the message cannot be routed (ROUTER with `ZMQ_ROUTER_MANDATORY`).
    public static let hostUnreachable = ZMQError(rawValue: EHOSTUNREACH)
    /// `EMSGSIZE`: the message is too large.
    public static let messageTooLarge = ZMQError(rawValue: EMSGSIZE)
    /// `ENODEV`: no such device (an unknown network interface in an endpoint).
    public static let noDevice = ZMQError(rawValue: ENODEV)
    /// `ENOENT`: the endpoint was not bound or connected (unbind/disconnect), or an ipc path is missing.
    public static let noEntry = ZMQError(rawValue: ENOENT)
    /// `ENOTSOCK`: the socket was already closed.
    public static let notSocket = ZMQError(rawValue: ENOTSOCK)
    /// `EMTHREAD`: no I/O thread is available.
    public static let noThread = ZMQError(rawValue: EMTHREAD)
    /// `EMFILE`: the process ran out of file descriptors, or the context reached its socket limit.
    public static let tooManyFiles = ZMQError(rawValue: EMFILE)
    /// `EFAULT`: an invalid context, socket or message.
    public static let fault = ZMQError(rawValue: EFAULT)
}

/// The one funnel every libzmq call that reports failure as `-1` goes through.
///
/// Retries `EINTR` here, so that no caller has to; turns any other failure into the `ZMQError` read
/// from `zmq_errno()`. A thread blocked in libzmq is woken by `Context.shutdown()` (`ETERM`) or by a
/// send/receive timeout, not by a signal.
@discardableResult
@inline(__always)
func zmqCall(_ body: () -> Int32) throws(ZMQError) -> Int32 {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = ZMQError.current
        if error != .interrupted { throw error }
    }
}

/// `zmqCall`, with `EAGAIN` (would block, or a timeout expired) returned as `nil` instead of thrown.
@inline(__always)
func zmqCallUnlessAgain(_ body: () -> Int32) throws(ZMQError) -> Int32? {
    do {
        return try zmqCall(body)
    } catch .again {
        return nil
    }
}
