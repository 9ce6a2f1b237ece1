import Testing
import ZeroMQ

@Suite("ZMQError")
struct ZMQErrorTests {
    @Test("descriptions come from zmq_strerror, including libzmq's own codes")
    func descriptions() {
        #expect(ZMQError.terminated.description == "Context was terminated")
        #expect(ZMQError.fsm.description == "Operation cannot be accomplished in current state")
        #expect(ZMQError.again.description == "Resource temporarily unavailable")
        #expect(ZMQError(rawValue: ZMQError.invalid.rawValue) == .invalid)
    }

    @Test("binding an endpoint twice is addressInUse")
    func addressInUse() throws {
        let context = try makeContext()
        let first = try makeSocket(context, .pull)
        let second = try makeSocket(context, .pull)
        try first.bind("tcp://127.0.0.1:*")
        let endpoint = try first.lastEndpoint
        #expect(throws: ZMQError.addressInUse) { try second.bind(endpoint) }
    }

    @Test("an unknown transport is protocolNotSupported")
    func unknownTransport() throws {
        let socket = try makeSocket(try makeContext(), .push)
        #expect(throws: ZMQError.protocolNotSupported) { try socket.connect("bogus://127.0.0.1:1") }
    }

    @Test("REQ receiving before it sends is fsm")
    func finiteStateMachine() throws {
        let socket = try makeSocket(try makeContext(), .req)
        #expect(throws: ZMQError.fsm) { try socket.receiveBytes(flags: .dontWait) }
    }

    @Test("after Context.shutdown every call is terminated")
    func shutdown() throws {
        let context = try makeContext()
        let socket = try makeSocket(context, .pull)
        try context.shutdown()
        #expect(throws: ZMQError.terminated) { try socket.receiveBytes() }
        #expect(throws: ZMQError.terminated) { try Socket(context, type: .push) }
        try socket.close()
    }

    @Test("a closed socket is notSocket, and closing again does nothing")
    func closed() throws {
        let socket = try makeSocket(try makeContext(), .push)
        try socket.close(linger: 0)
        try socket.close()
        #expect(throws: ZMQError.notSocket) { try socket.send("late") }
    }

    @Test("a bad option value is invalid")
    func invalidOption() throws {
        let socket = try makeSocket(try makeContext(), .req)
        #expect(throws: ZMQError.invalid) { try socket.set(.curveServerKey, "not a Z85 key") }
    }
}
