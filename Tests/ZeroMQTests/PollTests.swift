import Testing
import ZeroMQ

@Suite("Poll")
struct PollTests {
    @Test("poll returns 0 when nothing arrives within the timeout")
    func timeout() throws {
        let pull = try makeSocket(try makeContext(), .pull)
        try pull.bind("inproc://poll-timeout")
        var items = [PollItem(pull)]
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try ZMQ.poll(&items, timeout: .milliseconds(20)) == 0)
        #expect(clock.now - start >= .milliseconds(19))
        #expect(items[0].returnedEvents.isEmpty)
    }

    @Test("poll reports a readable socket among several, reusing the items")
    func readable() throws {
        let context = try makeContext()
        let idle = try makeSocket(context, .pull)
        let busy = try makeSocket(context, .pull)
        let push = try makeSocket(context, .push)
        try idle.bind("inproc://poll-idle")
        try busy.bind("inproc://poll-busy")
        try push.connect("inproc://poll-busy")
        var items = [PollItem(idle), PollItem(busy), PollItem(push, events: .out)]
        #expect(try ZMQ.poll(&items, timeout: .seconds(2)) == 1)
        #expect(items.map(\.returnedEvents) == [[], [], .out])

        try push.send("wake")
        #expect(try ZMQ.poll(&items, timeout: .seconds(2)) == 2)
        #expect(items.map(\.returnedEvents) == [[], .in, .out])
        #expect(try busy.events.contains(.in))
        #expect(try busy.fileDescriptor >= 0)
        #expect(try busy.receiveBytes() == [UInt8]("wake"))
        #expect(try !busy.events.contains(.in))
    }

    @Test("polling a closed socket is notSocket")
    func closedSocket() throws {
        let pull = try makeSocket(try makeContext(), .pull)
        var items = [PollItem(pull)]
        try pull.close()
        #expect(throws: ZMQError.notSocket) { try ZMQ.poll(&items, timeout: .zero) }
    }
}
