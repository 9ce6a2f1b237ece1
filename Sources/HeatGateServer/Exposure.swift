import HeatGateCore
import ZeroMQ

/// Whether a TCP endpoint's host is a loopback address.
public func isLoopbackEndpoint(_ endpoint: String) -> Bool {
    guard endpoint.hasPrefix("tcp://") else { return true }  // ipc:// and inproc:// stay on the host
    var rest = Substring(endpoint.dropFirst(6))
    if let semi = rest.firstIndex(of: ";") { rest = rest[rest.index(after: semi)...] }
    let host: Substring
    if rest.hasPrefix("[") {
        host = rest.dropFirst().prefix { $0 != "]" }
    } else {
        host = rest.prefix { $0 != ":" }
    }
    return host == "localhost" || host == "::1" || host.hasPrefix("127.")
}

/// Refuses to expose the gate beyond the host unless CURVE protects it or the operator said so.
/// - Throws: ``ServerError`` naming the key.
func checkExposure(_ c: GateConfig) throws {
    // CURVE without a client list would let anyone who knows the server's public key in: refuse it.
    if c.curveSecretKey != nil && c.curveAllowedClients.isEmpty {
        throw ServerError(
            "P26_CURVE_SECRET_KEY is set but P26_CURVE_ALLOWED_CLIENTS is empty: list the Z85 public keys of "
                + "the producers and subscribers that may connect")
    }
    if c.curveSecretKey == nil && !c.curveAllowedClients.isEmpty {
        throw ServerError("P26_CURVE_ALLOWED_CLIENTS is set but P26_CURVE_SECRET_KEY is not: CURVE needs both")
    }
    let protected = c.curveSecretKey != nil || c.allowInsecureBind
    for (key, endpoint) in [("P26_INGEST_ENDPOINT", c.ingestEndpoint), ("P26_PUBLISH_ENDPOINT", c.publishEndpoint)]
    where !isLoopbackEndpoint(endpoint) && !protected {
        throw ServerError(
            "refusing to bind \(key)=\(endpoint) beyond loopback without CURVE: set P26_CURVE_SECRET_KEY "
                + "(and P26_CURVE_ALLOWED_CLIENTS), or P26_ALLOW_INSECURE_BIND=true on an isolated network")
    }
    if !isLoopbackEndpoint(c.controlEndpoint) && !c.allowInsecureBind {
        throw ServerError("refusing to bind P26_CONTROL_ENDPOINT=\(c.controlEndpoint) beyond loopback; use ipc://")
    }
    let bind = c.metricsBind
    if !(bind == "localhost" || bind == "::1" || bind.hasPrefix("127.")) && !c.allowInsecureBind {
        throw ServerError(
            "refusing to serve metrics on \(bind): set P26_METRICS_BIND to a loopback address, or P26_ALLOW_INSECURE_BIND=true"
        )
    }
}

/// Makes the ingest and publish sockets CURVE servers when a secret key is configured, on any endpoint
/// (loopback and `ipc://` too), authenticated by the daemon's ``ZAPHandler``.
func applyCurve(_ c: GateConfig, server sockets: [Socket]) throws {
    guard let secret = c.curveSecretKey else { return }
    for s in sockets {
        try s.set(.curveServer, true)
        try s.set(.curveSecretKey, secret)
        try s.set(.zapDomain, ZAPHandler.domain)
    }
}
