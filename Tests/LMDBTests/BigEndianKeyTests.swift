import LMDB
import Testing

@Suite struct BigEndianKeyTests {
    @Test func encodesMostSignificantByteFirst() {
        #expect(bigEndianBytes(0x0102_0304_0506_0708) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(bigEndianBytes(1) == [0, 0, 0, 0, 0, 0, 0, 1])
    }

    @Test func byteOrderMatchesNumericOrder() {
        let values: [UInt64] = [0, 1, 255, 256, 65_535, 1 << 32, 1 << 63, .max]
        let encoded = values.map(bigEndianBytes)
        for (smaller, larger) in zip(encoded, encoded.dropFirst()) {
            #expect(smaller.lexicographicallyPrecedes(larger))
        }
    }

    @Test func decodesThePrefix() {
        for value: UInt64 in [0, 42, 1_700_000_000_123, .max] {
            #expect(withBigEndianKey(value) { decodeBigEndianUInt64($0) } == value)
        }
        #expect(withBigEndianKey(7, suffix: "order-1") { decodeBigEndianUInt64($0) } == 7)
        #expect([UInt8]([1, 2, 3]).withUnsafeBytes { decodeBigEndianUInt64($0) } == nil)
    }

    @Test func composesPrefixAndSuffix() {
        let key = withBigEndianKey(0x0A0B, suffix: "abc") { Array($0) }
        #expect(key == [0, 0, 0, 0, 0, 0, 0x0A, 0x0B, 0x61, 0x62, 0x63])
        let empty = withBigEndianKey(3, suffix: [UInt8]()) { Array($0) }
        #expect(empty == bigEndianBytes(3))
    }
}
