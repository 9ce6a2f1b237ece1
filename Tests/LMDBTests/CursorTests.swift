import LMDB
import Testing

@Suite struct CursorTests {
    /// Fills a database with `expiry ‖ "k<expiry>"` keys, the shape of a TTL table.
    private func fillExpiries(_ env: Environment, _ expiries: [UInt64]) throws -> Database {
        try env.write { txn throws in
            let db = try txn.openDatabase("expiries")
            for expiry in expiries {
                try withBigEndianKey(expiry, suffix: "k\(expiry)") { key in
                    _ = try txn.put(db, key, "v\(expiry)")
                }
            }
            return db
        }
    }

    @Test func rangeScanOverBigEndianKeysStopsAtTheBound() throws {
        try withEnvironment { env throws in
            let db = try fillExpiries(env, [500, 10, 300, 40, 1 << 40, 20, 256])
            let scanned = try env.read { txn throws in
                try txn.withCursor(db) { cursor throws in
                    var seen: [(UInt64, String)] = []
                    var entry = try withBigEndianKey(20) { try cursor.setRange($0) }
                    while let (key, value) = entry, let expiry = decodeBigEndianUInt64(key), expiry <= 300 {
                        #expect(text(UnsafeRawBufferPointer(rebasing: key[8...])) == "k\(expiry)")
                        seen.append((expiry, text(value)!))
                        entry = try cursor.next()
                    }
                    return seen
                }
            }
            #expect(scanned.map(\.0) == [20, 40, 256, 300])
            #expect(scanned.map(\.1) == ["v20", "v40", "v256", "v300"])

            let past = try env.read { txn throws in
                try txn.withCursor(db) { cursor in try withBigEndianKey((1 << 40) + 1) { try cursor.setRange($0) } }
            }
            #expect(past == nil)
        }
    }

    @Test func deleteWhileIteratingSkipsNothing() throws {
        try withEnvironment { env throws in
            let db = try fillExpiries(env, Array(1...10))
            try env.write { txn throws in
                try txn.withCursor(db) { cursor throws in
                    var entry = try cursor.first()
                    while let (key, _) = entry {
                        if let expiry = decodeBigEndianUInt64(key), expiry.isMultiple(of: 2) {
                            try cursor.deleteCurrent()
                        }
                        entry = try cursor.next()
                    }
                }
            }
            let remaining = try env.read { txn throws in
                try txn.withCursor(db) { cursor throws in
                    var keys: [UInt64] = []
                    var entry = try cursor.first()
                    while let (key, _) = entry {
                        keys.append(decodeBigEndianUInt64(key)!)
                        entry = try cursor.next()
                    }
                    return keys
                }
            }
            #expect(remaining == [1, 3, 5, 7, 9])
        }
    }

    @Test func positioningOperations() throws {
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.read { txn throws in
                try txn.withCursor(db) { cursor throws in
                    #expect(try cursor.first() == nil)
                    #expect(try cursor.last() == nil)
                }
            }
            try env.write { txn throws in
                for name in ["b", "d", "f"] { try txn.put(db, name, name.uppercased()) }
            }
            try env.read { txn throws in
                try txn.withCursor(db) { cursor throws in
                    #expect(text(try cursor.first()?.key) == "b")
                    #expect(text(try cursor.last()?.key) == "f")
                    #expect(text(try cursor.prev()?.key) == "d")
                    #expect(text(try cursor.current()?.value) == "D")
                    #expect(text(try cursor.set("f")?.value) == "F")
                    #expect(try cursor.set("c") == nil)
                    #expect(text(try cursor.setRange("c")?.key) == "d")
                    #expect(text(try cursor.next()?.key) == "f")
                    #expect(try cursor.next() == nil)
                    #expect(try cursor.setRange("g") == nil)
                }
            }
        }
    }

    @Test func cursorPutInsertsAndReplaces() throws {
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn throws in
                try txn.withCursor(db) { cursor throws in
                    #expect(try cursor.put("a", "1"))
                    #expect(try cursor.put("b", "2"))
                    #expect(try !cursor.put("a", "x", flags: .noOverwrite))
                    #expect(text(try cursor.set("a")?.value) == "1")
                    #expect(try cursor.put("a", "one", flags: .current))
                    #expect(text(try cursor.current()?.value) == "one")
                }
            }
            #expect(try env.read { txn in try txn.getBytes(db, "a") } == Array("one".utf8))
            #expect(try env.read { txn in try txn.stat(db).entries } == 2)
        }
    }
}
