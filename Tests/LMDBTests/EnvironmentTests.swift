import Foundation
import LMDB
import Testing

@Suite struct EnvironmentTests {
    @Test func reportsInfoAndStatistics() throws {
        try withTemporaryDirectory { path throws in
            let env = try Environment(path: path, mapSize: 2 << 20, maxReaders: 10)
            #expect(env.path == path)
            #expect(env.maxKeySize == 511)
            #expect(try env.readerCheck() == 0)
            let before = try env.info()
            #expect(before.mapSize == 2 << 20)
            #expect(before.maxReaders == 10)
            #expect(before.lastTransactionID == 0)

            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn throws in
                for i in 0..<3 { try txn.put(db, "key\(i)", "value") }
            }
            let after = try env.info()
            // Opening the main database changed nothing, so only the put committed a transaction.
            #expect(after.lastTransactionID == 1)
            #expect(after.lastPageNumber > 1)
            let stat = try env.stat()
            #expect(stat.entries == 3)
            #expect(stat.depth == 1)
            #expect(stat.pageSize == 4096)
            #expect(try env.read { txn in txn.id } == 1)
        }
    }

    @Test func mapFullSurfacesAndSetMapSizeLetsTheWriteSucceed() throws {
        try withEnvironment(mapSize: 64 << 10) { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            let value = [UInt8](repeating: 0xAB, count: 1000)
            let writeAll = {
                try env.write { txn throws in
                    for i: UInt64 in 0..<200 {
                        try withBigEndianKey(i) { key in _ = try txn.put(db, key, value) }
                    }
                }
            }
            #expect(throws: LMDBError.mapFull) { try writeAll() }
            #expect(try env.read { txn in try txn.stat(db).entries } == 0)

            try env.setMapSize(4 << 20)
            try writeAll()
            #expect(try env.info().mapSize == 4 << 20)
            #expect(try env.read { txn in try txn.stat(db).entries } == 200)
        }
    }

    @Test func readOnlyEnvironmentSeesCommittedData() throws {
        try withTemporaryDirectory { path throws in
            // lmdb.h: one environment per file per process at a time, so the writer closes first.
            do {
                let writer = try Environment(path: path, mapSize: 1 << 20)
                let db = try writer.write { txn in try txn.openDatabase(nil) }
                try writer.write { txn in try txn.put(db, "early", "one") }
            }
            let reader = try Environment(path: path, mapSize: 1 << 20, flags: [.readOnly])
            let db = try reader.read { txn in try txn.openDatabase(nil, flags: []) }
            #expect(try reader.read { txn in text(try txn.get(db, "early")) } == "one")
            #expect(try reader.read { txn in try txn.get(db, "absent") } == nil)
            #expect(throws: LMDBError.permissionDenied) { try reader.write { _ in } }
            #expect(throws: LMDBError.permissionDenied) { try reader.sync(force: true) }
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: mdbLoad), "needs mdb_load from lmdb-utils"))
    func readOnlyEnvironmentSeesAnotherProcesssCommits() throws {
        try withTemporaryDirectory { path throws in
            do {
                let writer = try Environment(path: path, mapSize: 1 << 20)
                let db = try writer.write { txn in try txn.openDatabase(nil) }
                try writer.write { txn in try txn.put(db, "early", "one") }
            }
            let reader = try Environment(path: path, mapSize: 1 << 20, flags: [.readOnly])
            let db = try reader.read { txn in try txn.openDatabase(nil, flags: []) }
            #expect(try reader.read { txn in try txn.get(db, "late") } == nil)

            // Another process commits while the read-only environment stays open.
            try runMDBLoad(path: path, input: "late\ntwo\n")
            #expect(try reader.read { txn in text(try txn.get(db, "late")) } == "two")
            #expect(try reader.read { txn in text(try txn.get(db, "early")) } == "one")
        }
    }

    @Test func compactCopyHoldsTheData() throws {
        try withTemporaryDirectory { path throws in
            let source = path + "/source"
            let backup = path + "/backup"
            for directory in [source, backup] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            }
            let env = try Environment(path: source, mapSize: 1 << 20, flags: [.noSync, .writeMap, .mapAsync])
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn throws in
                for i in 0..<100 { try txn.put(db, "key\(i)", "value\(i)") }
                for i in 0..<50 { try txn.delete(db, "key\(i)") }
            }
            try env.sync(force: true)
            try env.copy(to: backup, compact: true)
            #expect(throws: LMDBError.fileExists) { try env.copy(to: backup) }

            let copy = try Environment(path: backup, mapSize: 1 << 20, flags: [.readOnly])
            let copied = try copy.read { txn in try txn.openDatabase(nil, flags: []) }
            #expect(try copy.stat().entries == 50)
            #expect(try copy.read { txn in text(try txn.get(copied, "key77")) } == "value77")
            #expect(try copy.read { txn in try txn.get(copied, "key7") } == nil)
        }
    }
}

private let mdbLoad = "/usr/bin/mdb_load"

/// Writes text key/value lines into the environment at `path` from a separate `mdb_load` process.
private func runMDBLoad(path: String, input: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: mdbLoad)
    process.arguments = ["-T", path]
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
}
