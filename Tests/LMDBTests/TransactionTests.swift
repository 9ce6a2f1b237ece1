import LMDB
import Testing

@Suite struct TransactionTests {
    @Test func putGetDeleteRoundTrip() throws {
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn throws in
                #expect(try txn.put(db, "alpha", "one"))
                try txn.put(db, [0x01, 0x02] as [UInt8], [0xFF, 0x00, 0x7F] as [UInt8])
                // A write transaction sees its own writes.
                #expect(text(try txn.get(db, "alpha")) == "one")
            }
            try env.read { txn throws in
                #expect(text(try txn.get(db, "alpha")) == "one")
                #expect(try txn.getBytes(db, [0x01, 0x02] as [UInt8]) == [0xFF, 0x00, 0x7F])
                #expect(try txn.get(db, "beta") == nil)
                #expect(try txn.stat(db).entries == 2)
            }
            try env.write { txn throws in
                #expect(try txn.delete(db, "alpha"))
                #expect(try !txn.delete(db, "alpha"))
                try txn.put(db, "alpha", "two")
            }
            #expect(try env.read { txn in text(try txn.get(db, "alpha")) } == "two")
            #expect(throws: LMDBError.badValSize) { try env.write { txn in try txn.put(db, "", "empty key") } }
        }
    }

    @Test func abortDiscardsWrites() throws {
        struct Rollback: Error {}
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn in try txn.put(db, "kept", "yes") }

            let explicit = try env.beginWrite()
            try explicit.put(db, "aborted", "no")
            try explicit.delete(db, "kept")
            explicit.abort()

            #expect(throws: Rollback.self) {
                try env.write { txn throws in
                    try txn.put(db, "thrown", "no")
                    throw Rollback()
                }
            }
            do {
                let dropped = try env.beginWrite()
                try dropped.put(db, "dropped", "no")
            }
            try env.read { txn throws in
                #expect(try txn.get(db, "aborted") == nil)
                #expect(try txn.get(db, "thrown") == nil)
                #expect(try txn.get(db, "dropped") == nil)
                #expect(text(try txn.get(db, "kept")) == "yes")
            }
        }
    }

    @Test func groupCommitWithAnExplicitTransaction() throws {
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            let txn = try env.beginWrite()
            for i in 0..<10 { try txn.put(db, "decision\(i)", "\(i * i)") }
            try txn.commit()
            #expect(try env.read { txn in try txn.stat(db).entries } == 10)
            #expect(try env.read { txn in text(try txn.get(db, "decision7")) } == "49")
        }
    }

    @Test func noOverwriteReportsAnExistingKey() throws {
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn throws in
                #expect(try txn.put(db, "key", "first", flags: .noOverwrite))
                #expect(try !txn.put(db, "key", "second", flags: .noOverwrite))
                #expect(text(try txn.get(db, "key")) == "first")
                #expect(try txn.put(db, "key", "third"))
                #expect(text(try txn.get(db, "key")) == "third")
            }
        }
    }

    @Test func appendOutOfOrderThrowsKeyExist() throws {
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn throws in
                try txn.put(db, "b", "1", flags: .append)
                try txn.put(db, "c", "2", flags: .append)
                #expect(throws: LMDBError.keyExist) { try txn.put(db, "a", "3", flags: .append) }
            }
        }
    }

    @Test func reserveEncodesInPlace() throws {
        try withEnvironment { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn throws in
                let reserved = try txn.reserve(db, "heat", count: 12) { buffer in
                    #expect(buffer.count == 12)
                    buffer.storeBytes(of: UInt64(0x0102_0304_0506_0708).bigEndian, as: UInt64.self)
                    buffer.storeBytes(of: UInt32(0xAABB_CCDD).bigEndian, toByteOffset: 8, as: UInt32.self)
                }
                #expect(reserved)
                var called = false
                let again = try txn.reserve(db, "heat", count: 4, flags: .noOverwrite) { _ in called = true }
                #expect(!again)
                #expect(!called)
            }
            let stored = try env.read { txn in try txn.getBytes(db, "heat") }
            #expect(stored == [1, 2, 3, 4, 5, 6, 7, 8, 0xAA, 0xBB, 0xCC, 0xDD])
        }
    }

    @Test func namedDatabasesAreSeparate() throws {
        try withEnvironment(maxDatabases: 3) { env throws in
            let (positions, expiries) = try env.write { txn throws in
                (try txn.openDatabase("positions"), try txn.openDatabase("expiries", flags: [.create]))
            }
            #expect(positions != expiries)
            try env.write { txn throws in
                try txn.put(positions, "AAPL", "100")
                try txn.put(expiries, "AAPL", "1700000000")
            }
            try env.read { txn throws in
                #expect(text(try txn.get(positions, "AAPL")) == "100")
                #expect(text(try txn.get(expiries, "AAPL")) == "1700000000")
                // A read-only transaction can open an existing table, not create one.
                #expect(try txn.openDatabase("positions", flags: []) == positions)
                #expect(throws: LMDBError.notFound) { try txn.openDatabase("missing", flags: []) }
            }
            #expect(throws: LMDBError.dbsFull) {
                try env.write { txn in
                    _ = try txn.openDatabase("third")
                    _ = try txn.openDatabase("fourth")
                }
            }

            try env.write { txn in try txn.drop(expiries) }
            try env.read { txn throws in
                #expect(try txn.stat(expiries).entries == 0)
                #expect(try txn.stat(positions).entries == 1)
            }
        }
    }

    @Test func readTransactionRenewsToTheLatestSnapshot() throws {
        try withEnvironment(flags: [.noTLS]) { env throws in
            let db = try env.write { txn in try txn.openDatabase(nil) }
            try env.write { txn in try txn.put(db, "price", "1") }
            let reader = try env.makeReadTransaction()

            #expect(try reader.read { txn in text(try txn.get(db, "price")) } == "1")
            try reader.renew()
            #expect(throws: LMDBError.invalidArgument) { try reader.renew() }
            try env.write { txn in try txn.put(db, "price", "2") }
            // Still on the snapshot taken by renew().
            #expect(text(try reader.transaction.get(db, "price")) == "1")
            reader.reset()
            // A parked reader has no databases: LMDB refuses with EINVAL.
            #expect(throws: LMDBError.invalidArgument) { try reader.transaction.get(db, "price") }

            #expect(try reader.read { txn in text(try txn.get(db, "price")) } == "2")
            let info = try env.info()
            #expect(info.readerSlotsUsed >= 1)
        }
    }
}
