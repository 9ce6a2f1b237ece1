import Foundation
import ZeroMQ

/// A context whose sockets get `ZMQ_LINGER` 0, so no test can hang in `zmq_ctx_term()`.
func makeContext() throws -> Context {
    try Context(blocky: false)
}

/// A socket whose blocking receives give up after `receiveTimeout` milliseconds, so every wait is bounded.
func makeSocket(_ context: Context, _ type: SocketType, receiveTimeout: Int32 = 2000) throws -> Socket {
    let socket = try Socket(context, type: type)
    try socket.set(.receiveTimeout, receiveTimeout)
    try socket.set(.sendTimeout, 2000)
    return socket
}

/// A private directory made with `mkdtemp(3)` for ipc:// socket files, removed with everything in it.
///
/// Under /tmp rather than `$TMPDIR`: an ipc:// path must fit in `sockaddr_un` (about 100 bytes).
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/heatgate-zmq-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: made)
    }

    /// An ipc:// endpoint for a socket file named `name` in this directory.
    func ipcEndpoint(_ name: String) -> String {
        "ipc://\(path)/\(name)"
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Sends `frames` from `publisher` until `subscriber` receives a message, at most `attempts` times.
///
/// A subscription travels to the publisher after `connect`, and a PUB drops what no one has subscribed
/// to yet (the slow joiner); each attempt waits for one `receiveTimeout` of the subscriber.
func publishUntilJoined(
    _ publisher: Socket, _ subscriber: Socket, frames: [[UInt8]], attempts: Int = 100
) throws -> [[UInt8]]? {
    for _ in 0..<attempts {
        try publisher.sendMultipart(frames, flags: .dontWait)
        if let received = try subscriber.receiveMultipart() { return received }
    }
    return nil
}

extension [UInt8] {
    init(_ string: String) {
        self = Array(string.utf8)
    }
}
