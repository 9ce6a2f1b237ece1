import Testing
import ZeroMQ

@Suite("Socket options")
struct OptionTests {
    @Test("options read back what was set")
    func roundTrip() throws {
        let socket = try makeSocket(try makeContext(), .dealer)
        try socket.set(.sendHighWaterMark, 10)
        try socket.set(.receiveHighWaterMark, 20)
        try socket.set(.linger, 0)
        try socket.set(.maxMessageSize, 1 << 40)
        try socket.set(.immediate, true)
        try socket.set(.ipv6, true)
        try socket.set(.tcpKeepalive, 1)
        try socket.set(.zapDomain, "heatgate")
        #expect(try socket.get(.sendHighWaterMark) == 10)
        #expect(try socket.get(.receiveHighWaterMark) == 20)
        #expect(try socket.get(.linger) == 0)
        #expect(try socket.get(.receiveTimeout) == 2000)
        #expect(try socket.get(.sendTimeout) == 2000)
        #expect(try socket.get(.maxMessageSize) == 1 << 40)
        #expect(try socket.get(.immediate))
        #expect(try socket.get(.ipv6))
        #expect(try socket.get(.tcpKeepalive) == 1)
        #expect(try socket.get(.zapDomain) == "heatgate")
    }

    /// libzmq disconnects a peer whose message exceeds ZMQ_MAXMSGSIZE (tcp:// and ipc:// only). The
    /// receiver never sees the oversized frame; the PUSH reconnects after `ZMQ_RECONNECT_IVL` (100 ms)
    /// and later frames arrive. Frames the PUSH had already written behind the oversized one are lost
    /// with the connection (seen here: two frames sent right after it never arrived), so this is not
    /// asserted either way.
    @Test("an oversized frame is dropped and the sender reconnects", arguments: ["tcp", "ipc"])
    func maxMessageSize(transport: String) throws {
        let directory = try TemporaryDirectory()
        let context = try makeContext()
        let pull = try makeSocket(context, .pull, receiveTimeout: 100)
        let push = try makeSocket(context, .push)
        try pull.set(.maxMessageSize, 64)
        try pull.bind(transport == "tcp" ? "tcp://127.0.0.1:*" : directory.ipcEndpoint("max"))
        try push.connect(try pull.lastEndpoint)

        #expect(try sendUntilReceived(push, pull, [UInt8]("before")))
        #expect(try push.send([UInt8](repeating: 1, count: 65)))
        #expect(try pull.receiveBytes() == nil)
        #expect(try sendUntilReceived(push, pull, [UInt8]("after")))
    }

    @Test("inproc:// does not enforce maxMessageSize")
    func maxMessageSizeInproc() throws {
        let context = try makeContext()
        let pull = try makeSocket(context, .pull)
        let push = try makeSocket(context, .push)
        try pull.set(.maxMessageSize, 64)
        try pull.bind("inproc://max")
        try push.connect("inproc://max")
        try push.send([UInt8](repeating: 1, count: 65))
        #expect(try pull.receiveBytes()?.count == 65)
    }

    /// Sends `frame` once per `receiveTimeout` of `pull` until a frame arrives, which must be `frame`.
    private func sendUntilReceived(_ push: Socket, _ pull: Socket, _ frame: [UInt8]) throws -> Bool {
        for _ in 0..<50 {
            try push.send(frame, flags: .dontWait)
            if let received = try pull.receiveBytes() { return received == frame }
        }
        return false
    }
}
