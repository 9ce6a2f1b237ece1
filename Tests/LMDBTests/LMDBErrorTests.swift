import LMDB
import Testing

@Suite struct LMDBErrorTests {
    @Test func descriptionIsTheLibrarysText() {
        #expect(LMDBError.notFound.description == "MDB_NOTFOUND: No matching key/data pair found")
        #expect(LMDBError.mapFull.description == "MDB_MAP_FULL: Environment mapsize limit reached")
        #expect(LMDBError.keyExist.description == "MDB_KEYEXIST: Key/data pair already exists")
        #expect(LMDBError.invalidArgument.description == "Invalid argument")
        #expect("\(LMDBError.badTxn)" == "MDB_BAD_TXN: Transaction must abort, has a child, or is invalid")
    }

    @Test func rawValuesAreLMDBsCodes() {
        #expect(LMDBError.keyExist.rawValue == -30_799)
        #expect(LMDBError.notFound.rawValue == -30_798)
        #expect(LMDBError.mapFull.rawValue == -30_792)
        #expect(LMDBError.badDBI.rawValue == -30_780)
        #expect(LMDBError(rawValue: -30_792) == .mapFull)
        #expect(LMDBError.noSuchFile.rawValue == 2)
    }

    @Test func openingAMissingDirectoryThrowsNoSuchFile() throws {
        try withTemporaryDirectory { path throws in
            #expect(throws: LMDBError.noSuchFile) {
                _ = try Environment(path: path + "/missing", mapSize: 1 << 20)
            }
        }
    }
}
