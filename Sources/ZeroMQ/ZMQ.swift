import CZeroMQ

/// Library-wide functions of libzmq.
public enum ZMQ {
    /// A new CURVE key pair from `zmq_curve_keypair()`, each key 40 Z85 characters.
    ///
    /// - Throws: `ZMQError.notSupported` if libzmq was built without CURVE (see `has("curve")`).
    public static func curveKeypair() throws(ZMQError) -> (publicKey: String, secretKey: String) {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        try zmqCall { zmq_curve_keypair(&publicKey, &secretKey) }
        return (Self.string(fromNulTerminated: publicKey), Self.string(fromNulTerminated: secretKey))
    }

    private static func string(fromNulTerminated chars: [CChar]) -> String {
        let bytes = chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether libzmq was built with `capability` (`zmq_has()`): "ipc", "curve", "draft", ...
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) != 0
    }

    /// The version of the libzmq loaded at run time (`zmq_version()`).
    public static var version: (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }
}
