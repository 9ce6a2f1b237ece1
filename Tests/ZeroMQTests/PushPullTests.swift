import Testing
import ZeroMQ

@Suite("PUSH and PULL")
struct PushPullTests {
    @Test("a frame goes across inproc://")
    func inproc() throws {
        let context = try makeContext()
        let pull = try makeSocket(context, .pull)
        let push = try makeSocket(context, .push)
        try pull.bind("inproc://push-pull")
        try push.connect("inproc://push-pull")
        #expect(try push.send("hello"))
        #expect(try pull.receiveBytes() == [UInt8]("hello"))
    }

    @Test("frames go across ipc:// in a temporary directory, from a raw buffer into a reused Message")
    func ipc() throws {
        let directory = try TemporaryDirectory()
        let context = try makeContext()
        let pull = try makeSocket(context, .pull)
        let push = try makeSocket(context, .push)
        try pull.bind(directory.ipcEndpoint("push-pull"))
        try push.connect(directory.ipcEndpoint("push-pull"))

        let payload: [UInt8] = [1, 2, 3, 4]
        #expect(try payload.withUnsafeBytes { try push.send($0) })
        let big = [UInt8](repeating: 7, count: 1 << 20)
        #expect(try push.send(big))
        #expect(try push.send([]))

        let message = Message()
        #expect(try pull.receive(into: message))
        #expect(message.bytes == payload)
        #expect(!message.more)
        #expect(try pull.receive(into: message))
        #expect(message.count == big.count)
        message.withUnsafeBytes { #expect($0.allSatisfy { $0 == 7 }) }
        #expect(try pull.receive(into: message))
        #expect(message.count == 0)
    }

    @Test("a multipart message arrives whole, with more set on all but the last frame")
    func multipart() throws {
        let context = try makeContext()
        let pull = try makeSocket(context, .pull)
        let push = try makeSocket(context, .push)
        try pull.bind("inproc://multipart")
        try push.connect("inproc://multipart")
        #expect(try push.sendMultipart([[1], [], [2, 3]]))
        let message = Message()
        #expect(try pull.receive(into: message))
        #expect(message.more)
        #expect(try pull.receive(into: message))
        #expect(message.more && message.count == 0)
        #expect(try pull.receive(into: message))
        #expect(!message.more && message.string == "\u{2}\u{3}")
        try push.sendMultipart([[]])
        #expect(try pull.receiveMultipart() == [[]])
    }

    @Test("a dontWait receive on an empty socket returns false at once")
    func dontWaitReceive() throws {
        let pull = try makeSocket(try makeContext(), .pull, receiveTimeout: -1)
        try pull.bind("inproc://empty")
        #expect(try !pull.receive(into: Message(), flags: .dontWait))
        #expect(try pull.receiveBytes(flags: .dontWait) == nil)
        #expect(try pull.receiveMultipart(flags: .dontWait) == nil)
    }

    @Test("a receive timeout returns false")
    func receiveTimeout() throws {
        let pull = try makeSocket(try makeContext(), .pull, receiveTimeout: 20)
        try pull.bind("inproc://timeout")
        #expect(try pull.receiveBytes() == nil)
    }

    @Test("a PUSH with no peer and dontWait returns false instead of blocking")
    func pushWithoutPeer() throws {
        let push = try makeSocket(try makeContext(), .push)
        try push.bind("inproc://nobody")
        #expect(try !push.send("lost", flags: .dontWait))
        #expect(try !push.sendMultipart([[1], [2]], flags: .dontWait))
    }
}
