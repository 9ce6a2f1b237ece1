import Foundation
import HeatGateCore
import HeatGateStore
import HeatGateTestSupport
import Testing
import ZeroMQ

@testable import HeatGateServer

/// What the daemon exposes: loopback and `ipc://` only by default, files for owner and group only,
/// beyond the host only with CURVE (and then only to listed client keys) or an explicit override.
@Suite(.serialized) struct ExposureTests {
    @Test func everyEndpointIsLoopbackOrIPCByDefault() throws {
        let c = GateConfig()
        for e in [c.ingestEndpoint, c.publishEndpoint, c.controlEndpoint] {
            #expect(isLoopbackEndpoint(e), "\(e)")
            #expect(e.hasPrefix("ipc://") || e.hasPrefix("tcp://127.0.0.1:"), "\(e)")
        }
        #expect(c.metricsBind == "127.0.0.1")
        #expect(c.curveSecretKey == nil && !c.allowInsecureBind)
        try checkExposure(c)
        for e in ["tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://10.0.0.5:5556", "tcp://[::]:5556", "tcp://eth0:5556"] {
            #expect(!isLoopbackEndpoint(e), "\(e)")
        }
    }

    @Test func stateDirectoryStoreFilesAndSocketsAreNotWorldAccessible() throws {
        let d = DaemonProcess()
        try d.start()
        var modes: [String: String] = [:]
        for path in [
            d.stateDir, "\(d.stateDir)/data.mdb", "\(d.stateDir)/lock.mdb", "\(d.dir.path)/ingest.sock",
            "\(d.dir.path)/publish.sock", "\(d.dir.path)/control.sock",
        ] {
            let mode = try #require(fileMode(path), "\(path) exists")
            #expect(mode & 0o007 == 0, "\(path) has mode \(String(mode, radix: 8))")
            modes[(path as NSString).lastPathComponent] = String(mode, radix: 8)
        }
        d.stop()
        reportLine(
            "file-modes",
            ["modes": modes.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")])
    }

    /// Refused before any socket is bound: nothing listens beyond loopback even for a moment.
    @Test(arguments: [
        ("P26_INGEST_ENDPOINT", "tcp://0.0.0.0:45556", "refusing to bind P26_INGEST_ENDPOINT"),
        ("P26_PUBLISH_ENDPOINT", "tcp://*:45557", "refusing to bind P26_PUBLISH_ENDPOINT"),
        ("P26_CONTROL_ENDPOINT", "tcp://0.0.0.0:45558", "refusing to bind P26_CONTROL_ENDPOINT"),
        ("P26_METRICS_BIND", "0.0.0.0", "refusing to serve metrics on 0.0.0.0"),
    ])
    func nonLoopbackBindsAreRefused(key: String, value: String, message: String) throws {
        let d = DaemonProcess(settings: [key: value])
        let r = try runCommand(HeatGateBinary.path, ["run"], environment: d.environment, timeout: 20)
        #expect(r.status == 1)
        #expect(r.stderr.contains(message), "\(r.stderr)")
        if key != "P26_CONTROL_ENDPOINT" && key != "P26_METRICS_BIND" {
            #expect(r.stderr.contains("P26_CURVE_SECRET_KEY") && r.stderr.contains("P26_ALLOW_INSECURE_BIND"))
        }
        #expect(fileMode(d.stateDir) == nil, "refused before the store is opened")
    }

    @Test func curveOrTheOverrideAllowNonLoopbackAndCurveNeedsAClientList() throws {
        let server = try ZMQ.curveKeypair()
        let client = try ZMQ.curveKeypair()
        var c = GateConfig()
        c.ingestEndpoint = "tcp://0.0.0.0:5556"
        c.publishEndpoint = "tcp://10.1.2.3:5557"
        #expect(throws: ServerError.self) { try checkExposure(c) }
        var insecure = c
        insecure.allowInsecureBind = true
        try checkExposure(insecure)
        var curve = c
        curve.curveSecretKey = server.secretKey
        curve.curveAllowedClients = [client.publicKey]
        try checkExposure(curve)
        // Decided here: CURVE with no client list would admit anyone who knows the server's public key.
        var open = curve
        open.curveAllowedClients = []
        #expect(throws: ServerError.self) { try checkExposure(open) }
        var keysOnly = c
        keysOnly.curveAllowedClients = [client.publicKey]
        keysOnly.allowInsecureBind = true
        #expect(throws: ServerError.self) { try checkExposure(keysOnly) }

        let d = DaemonProcess(settings: ["P26_CURVE_SECRET_KEY": server.secretKey])
        let r = try runCommand(HeatGateBinary.path, ["run"], environment: d.environment, timeout: 20)
        #expect(r.status == 1)
        #expect(r.stderr.contains("P26_CURVE_ALLOWED_CLIENTS is empty"), "\(r.stderr)")
    }

    /// CURVE on loopback TCP (it applies whenever a secret key is configured): only the listed client
    /// key gets messages in or decisions out.
    @Test(.enabled(if: ZMQ.has("curve"))) func onlyAListedClientKeyCanSendOrSubscribe() throws {
        let server = try ZMQ.curveKeypair()
        let allowed = try ZMQ.curveKeypair()
        let stranger = try ZMQ.curveKeypair()
        let other = try ZMQ.curveKeypair()
        let d = DaemonProcess(settings: [
            "P26_INGEST_ENDPOINT": "tcp://127.0.0.1:\(freePort())",
            "P26_PUBLISH_ENDPOINT": "tcp://127.0.0.1:\(freePort())",
            "P26_CURVE_SECRET_KEY": server.secretKey,
            "P26_CURVE_ALLOWED_CLIENTS": "\(other.publicKey), \(allowed.publicKey)",
            "P26_HEARTBEAT_SEC": "0.1",
        ])
        try d.start()
        func curve(serverKey: String, keys: (publicKey: String, secretKey: String)) -> @Sendable (Socket) throws -> Void
        {
            { s in
                try s.set(.curveServerKey, serverKey)
                try s.set(.curvePublicKey, keys.publicKey)
                try s.set(.curveSecretKey, keys.secretKey)
            }
        }
        let clients: [(name: String, configure: @Sendable (Socket) throws -> Void)] = [
            ("unlisted client key", curve(serverKey: server.publicKey, keys: stranger)),
            ("no CURVE", { _ in }),
            ("listed key, wrong server key", curve(serverKey: other.publicKey, keys: allowed)),
        ]
        // Intruders subscribe and send first; then the listed client does.
        var intruders: [(String, DecisionRecorder, PacedSender)] = []
        for (i, cl) in clients.enumerated() {
            let rec = DecisionRecorder(publish: d.publish, configure: cl.configure)
            let msgs = Array(example[0...1]) + [proposal("intruder-\(i)")]
            let send = PacedSender(
                ingest: d.ingest, messages: msgs.map { Array($0.utf8) }, rate: 1000, holdOpen: true,
                configure: cl.configure)
            intruders.append((cl.name, rec, send))
        }
        let good = DecisionRecorder(publish: d.publish, configure: curve(serverKey: server.publicKey, keys: allowed))
        #expect(good.awaitLive(), "the listed client receives heartbeats")
        // Held open until its decision is seen: with linger 0, closing right after queuing dropped the
        // messages whenever the CURVE handshake had not finished yet (a flake under load).
        let sender = PacedSender(
            ingest: d.ingest, messages: (Array(example[0...1]) + [proposal("allowed-1")]).map { Array($0.utf8) },
            rate: 1000, holdOpen: true, configure: curve(serverKey: server.publicKey, keys: allowed))
        let deadline = Date().addingTimeInterval(5)
        while good.count < 1 && Date() < deadline { usleep(20_000) }
        sender.stop()
        usleep(500_000)  // time for anything an intruder got through to arrive
        let seenByGood = try good.stop()
        #expect(seenByGood.count == 1)
        for (name, rec, send) in intruders {
            #expect(rec.heartbeats == 0, "\(name): receives no heartbeat")
            #expect(try rec.stop().isEmpty, "\(name): receives no decision")
            send.stop()
        }
        let status = try JSON.parse(try d.cli(["status", "--json"]).stdout)
        #expect(status["processed"]?.number == 1, "only the listed client's proposal was decided")
        // The unlisted key's two sockets are refused by the allow-list (at least once each: they retry); the
        // other intruders fail the handshake before it.
        let refused = metricValue(d.metrics(), "p26_curve_refused_total") ?? 0
        #expect(refused >= 2, "p26_curve_refused_total \(refused)")
        d.stop()
        #expect(d.log.contains("curve=\"on (2 client keys)\"") || d.log.contains("curve=on"), "\(d.log.prefix(2000))")
        #expect(d.log.contains("CURVE client refused"))
        #expect(d.log.contains(stranger.publicKey), "the refused key is logged")
        let store = try GateStore(directory: d.stateDir, readOnly: true)
        let journaled = try journal(store, from: 1)
        #expect(journaled.count == 1)
        let only = String(decoding: journaled.first?.json ?? [], as: UTF8.self)
        #expect(only.contains("allowed-1"))
        reportLine(
            "curve-zap",
            [
                "clients_refused": "\(clients.count)", "intruder_decisions": "0", "intruder_heartbeats": "0",
                "allowed_decisions": "\(seenByGood.count)",
            ])
    }
}
