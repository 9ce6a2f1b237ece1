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

    /// The Z85 text of `bytes` (`zmq_z85_encode()`), or `nil` when the length is not a multiple of 4.
    ///
    /// A ZAP handler receives a CURVE client's public key as 32 raw bytes; this gives the 40-character
    /// form that configuration files use.
    public static func z85Encode(_ bytes: [UInt8]) -> String? {
        guard bytes.count % 4 == 0 else { return nil }
        var out = [CChar](repeating: 0, count: bytes.count * 5 / 4 + 1)
        guard zmq_z85_encode(&out, bytes, bytes.count) != nil else { return nil }
        return string(fromNulTerminated: out)
    }

    /// The bytes of Z85 `text` (`zmq_z85_decode()`), or `nil` when it is not valid Z85.
    public static func z85Decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8CString)
        guard (chars.count - 1) % 5 == 0 else { return nil }
        var out = [UInt8](repeating: 0, count: (chars.count - 1) * 4 / 5)
        guard zmq_z85_decode(&out, chars) != nil else { return nil }
        return out
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
