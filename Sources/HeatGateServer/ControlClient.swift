import HeatGateCore
import ZeroMQ

/// Talks to a running daemon's control socket (REQ/REP, one JSON object each way).
public struct ControlClient {
    public let endpoint: String

    public init(endpoint: String) { self.endpoint = endpoint }

    /// Sends one request and waits for the reply.
    ///
    /// - Returns: the reply, or `nil` when no daemon answered within `timeoutMs`.
    public func request(_ json: String, timeoutMs: Int32 = 2000) -> JSON? {
        guard let ctx = try? Context(ioThreads: 1, blocky: false), let s = try? Socket(ctx, type: .req) else {
            return nil
        }
        defer { try? s.close(linger: 0) }
        try? s.set(.linger, 0)
        try? s.set(.receiveTimeout, timeoutMs)
        try? s.set(.sendTimeout, timeoutMs)
        guard (try? s.connect(endpoint)) != nil, (try? s.send(json)) == true,
            let reply = try? s.receiveBytes()
        else { return nil }
        return reply.withUnsafeBytes { try? JSON.parse($0) }
    }
}
