import Testing
import ZeroMQ

@Suite("REQ and REP")
struct ReqRepTests {
    @Test("a round trip over tcp://127.0.0.1 on a port found with lastEndpoint")
    func roundTrip() throws {
        let context = try makeContext()
        let reply = try makeSocket(context, .rep)
        let request = try makeSocket(context, .req)
        try reply.bind("tcp://127.0.0.1:*")
        let endpoint = try reply.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
        try request.connect(endpoint)

        #expect(try request.send("ping"))
        #expect(try reply.receiveBytes() == [UInt8]("ping"))
        #expect(try reply.send("pong"))
        #expect(try request.receiveBytes() == [UInt8]("pong"))

        try request.disconnect(endpoint)
        try reply.unbind(endpoint)
        #expect(throws: ZMQError.noEntry) { try reply.unbind(endpoint) }
    }
}
