import CZeroMQ

/// Readiness events for `ZMQ.poll` and `Socket.events` (`ZMQ_POLLIN`, `ZMQ_POLLOUT`, `ZMQ_POLLERR`).
public struct PollEvents: OptionSet, Hashable, Sendable {
    public let rawValue: Int16

    public init(rawValue: Int16) {
        self.rawValue = rawValue
    }

    /// `ZMQ_POLLIN`: at least one message can be received without blocking.
    public static let `in` = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// `ZMQ_POLLOUT`: at least one message can be sent without blocking.
    public static let out = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// `ZMQ_POLLERR`: only meaningful for plain file descriptors, never set for ZeroMQ sockets.
    public static let error = PollEvents(rawValue: Int16(ZMQ_POLLERR))
}

/// One entry of a `ZMQ.poll` set: a socket, the events to wait for, and the events that happened.
public struct PollItem {
    /// The socket to watch; the item keeps it alive.
    public var socket: Socket
    /// The events to wait for.
    public var events: PollEvents
    /// The events that happened, set by `ZMQ.poll`.
    public var returnedEvents: PollEvents = []

    public init(_ socket: Socket, events: PollEvents = .in) {
        self.socket = socket
        self.events = events
    }
}

extension ZMQ {
    /// Waits with `zmq_poll()` until an item's events happen or `timeout` passes.
    ///
    /// The `zmq_pollitem_t` array lives in stack scratch space (`withUnsafeTemporaryAllocation`), and
    /// `returnedEvents` is written in place, so polling the same `items` over and over does not allocate
    /// (the stack falls back to the heap only for very large sets). A signal restarts the wait with the
    /// full timeout.
    ///
    /// - Parameters:
    ///   - items: the sockets and events; every item's `returnedEvents` is overwritten.
    ///   - timeout: how long to wait at most, rounded up to whole milliseconds; `nil` waits forever.
    /// - Returns: the number of items with returned events, 0 when the timeout passed.
    /// - Throws: `.terminated` if a socket's context was shut down, `.notSocket` for a closed socket.
    public static func poll(_ items: inout [PollItem], timeout: Duration?) throws(ZMQError) -> Int {
        let milliseconds = timeout.map(Self.milliseconds(roundingUp:)) ?? -1
        let count = items.count
        return try withUnsafeTemporaryAllocation(of: zmq_pollitem_t.self, capacity: count) {
            (raw) throws(ZMQError) -> Int in
            for index in 0..<count {
                let item = items[index]
                raw[index] = zmq_pollitem_t(
                    socket: try item.socket.open(), fd: 0, events: item.events.rawValue, revents: 0)
            }
            let ready = try zmqCall { zmq_poll(raw.baseAddress, Int32(count), milliseconds) }
            for index in 0..<count {
                items[index].returnedEvents = PollEvents(rawValue: raw[index].revents)
            }
            return Int(ready)
        }
    }

    static func milliseconds(roundingUp duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow || milliseconds > Int64(Int32.max) { return Int(Int32.max) }
        return Int(milliseconds + (attoseconds + perMillisecond - 1) / perMillisecond)
    }
}
