import Foundation
import LMDB

/// Runs `body` with a fresh directory under the system temporary directory, removed afterwards.
@discardableResult
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lmdb-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path)
}

/// Runs `body` with an environment in a fresh temporary directory; it is closed before the directory goes.
@discardableResult
func withEnvironment<R>(
    mapSize: Int = 1 << 20,
    maxDatabases: Int = 4,
    flags: Environment.Flags = [],
    _ body: (Environment) throws -> R
) throws -> R {
    try withTemporaryDirectory { path throws in
        let env = try Environment(path: path, mapSize: mapSize, maxDatabases: maxDatabases, flags: flags)
        return try body(env)
    }
}

/// The bytes as UTF-8 text, for comparing values read from the map.
func text(_ bytes: UnsafeRawBufferPointer?) -> String? {
    bytes.map { String(decoding: $0, as: UTF8.self) }
}

/// The 8 big-endian bytes of `value`, copied out.
func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    withBigEndianKey(value) { Array($0) }
}
