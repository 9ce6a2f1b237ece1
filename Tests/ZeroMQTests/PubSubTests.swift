import Testing
import ZeroMQ

@Suite("PUB and SUB")
struct PubSubTests {
    @Test("a SUB gets only its topics, as topic frame + payload, over ipc://")
    func topicFiltering() throws {
        let directory = try TemporaryDirectory()
        let context = try makeContext()
        let publisher = try makeSocket(context, .pub)
        let subscriber = try makeSocket(context, .sub, receiveTimeout: 50)
        try publisher.bind(directory.ipcEndpoint("pub"))
        try subscriber.subscribe("risk.")
        try subscriber.connect(directory.ipcEndpoint("pub"))

        let joined = try publishUntilJoined(publisher, subscriber, frames: [.init("risk.join"), []])
        #expect(joined == [.init("risk.join"), []])

        try publisher.sendMultipart([.init("orders.new"), [1]])
        try publisher.sendMultipart([.init("risk.limit"), [2, 3]])
        try subscriber.set(.receiveTimeout, 2000)
        var received = try subscriber.receiveMultipart()
        while received?.first == [UInt8]("risk.join") { received = try subscriber.receiveMultipart() }
        #expect(received == [.init("risk.limit"), [2, 3]])

        try subscriber.unsubscribe("risk.")
        try subscriber.set(.receiveTimeout, 50)
        #expect(try publishUntilJoined(publisher, subscriber, frames: [.init("risk.late")], attempts: 4) == nil)
    }

    @Test("a PUB at a tiny HWM drops silently: dontWait sends all succeed and nothing blocks")
    func lossyAtHighWaterMark() throws {
        let (publisher, subscriber) = try joinedPair(noDrop: false)
        var accepted = 0
        for _ in 0..<10_000 where try publisher.send("tick", flags: .dontWait) { accepted += 1 }
        #expect(accepted == 10_000)
        let delivered = try drain(subscriber)
        #expect(delivered < 100)
    }

    @Test("with xpubNoDrop a PUB at its HWM returns false, so every drop is counted")
    func countedDropsAtHighWaterMark() throws {
        let (publisher, subscriber) = try joinedPair(noDrop: true)
        var accepted = 0
        var dropped = 0
        for _ in 0..<1_000 {
            if try publisher.send("tick", flags: .dontWait) { accepted += 1 } else { dropped += 1 }
        }
        #expect(dropped > 0)
        #expect(try drain(subscriber) == accepted)
    }

    /// A PUB and a SUB over inproc:// at HWM 1 on both sides, the subscription known to the PUB.
    private func joinedPair(noDrop: Bool) throws -> (publisher: Socket, subscriber: Socket) {
        let context = try makeContext()
        let publisher = try makeSocket(context, .pub)
        let subscriber = try makeSocket(context, .sub, receiveTimeout: 20)
        try publisher.set(.sendHighWaterMark, 1)
        try subscriber.set(.receiveHighWaterMark, 1)
        if noDrop { try publisher.set(.xpubNoDrop, true) }
        try publisher.bind("inproc://hwm")
        try subscriber.subscribe()
        try subscriber.connect("inproc://hwm")
        #expect(try publishUntilJoined(publisher, subscriber, frames: [.init("join")]) != nil)
        _ = try drain(subscriber)
        return (publisher, subscriber)
    }

    /// Receives until nothing is left, without waiting; returns how many frames there were.
    private func drain(_ socket: Socket) throws -> Int {
        let message = Message()
        var count = 0
        while try socket.receive(into: message, flags: .dontWait) { count += 1 }
        return count
    }
}
