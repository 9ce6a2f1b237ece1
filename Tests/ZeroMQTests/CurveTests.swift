import Testing
import ZeroMQ

@Suite("CURVE", .enabled(if: ZMQ.has("curve")))
struct CurveTests {
    @Test("keypairs are 40 Z85 characters")
    func keypair() throws {
        let (publicKey, secretKey) = try ZMQ.curveKeypair()
        #expect(publicKey.utf8.count == 40 && secretKey.utf8.count == 40)
        #expect(publicKey != secretKey)
    }

    @Test("a client with the server's key gets its message through")
    func rightServerKey() throws {
        let server = try ZMQ.curveKeypair()
        let (context, pull) = try makeServer(server.secretKey, curveServer: true)
        let push = try makeClient(context, serverKey: server.publicKey, endpoint: try pull.lastEndpoint)
        #expect(try push.get(.curveServerKey) == server.publicKey)
        try push.send("secret")
        #expect(try pull.receiveBytes() == [UInt8]("secret"))
    }

    @Test("a client with a wrong server key gets nothing through")
    func wrongServerKey() throws {
        let server = try ZMQ.curveKeypair()
        let (context, pull) = try makeServer(server.secretKey, curveServer: true)
        let push = try makeClient(context, serverKey: try ZMQ.curveKeypair().publicKey, endpoint: try pull.lastEndpoint)
        try push.send("secret")
        #expect(try pull.receiveBytes() == nil)
    }

    private func makeServer(_ secretKey: String, curveServer: Bool) throws -> (Context, Socket) {
        let context = try makeContext()
        let pull = try makeSocket(context, .pull, receiveTimeout: 500)
        try pull.set(.curveServer, curveServer)
        try pull.set(.curveSecretKey, secretKey)
        try pull.set(.zapDomain, "heatgate")
        try pull.bind("tcp://127.0.0.1:*")
        #expect(try pull.get(.curveServer))
        return (context, pull)
    }

    private func makeClient(_ context: Context, serverKey: String, endpoint: String) throws -> Socket {
        let client = try ZMQ.curveKeypair()
        let push = try makeSocket(context, .push)
        try push.set(.curveServerKey, serverKey)
        try push.set(.curvePublicKey, client.publicKey)
        try push.set(.curveSecretKey, client.secretKey)
        try push.connect(endpoint)
        return push
    }
}

@Suite("Library")
struct LibraryTests {
    @Test("the run-time libzmq is 4.x and has ipc")
    func version() {
        #expect(ZMQ.version.major == 4)
        #expect(ZMQ.has("ipc"))
        #expect(!ZMQ.has("no-such-capability"))
    }

    @Test("a context takes its I/O thread count")
    func ioThreads() throws {
        let context = try Context(ioThreads: 2, blocky: false)
        let socket = try Socket(context, type: .pair)
        #expect(socket.type == .pair && socket.context === context)
    }
}
