/// A symbol of 1–32 bytes of `[A-Za-z0-9._:/-]`, held inline so that looking it up allocates nothing.
public struct SymbolKey: Hashable, Sendable, CustomStringConvertible {
    /// The longest symbol accepted (SPEC §3).
    public static let maxLength = 32

    var w0: UInt64 = 0
    var w1: UInt64 = 0
    var w2: UInt64 = 0
    var w3: UInt64 = 0
    public private(set) var count: UInt8 = 0

    /// The empty key: never a valid symbol, it marks a freed slot of the symbol table.
    init() {}

    /// Reads a symbol from raw bytes.
    ///
    /// - Returns: `nil` unless the bytes are 1–32 characters of `[A-Za-z0-9._:/-]`.
    public init?(bytes b: UnsafeRawBufferPointer, range: Range<Int>) {
        let n = range.count
        guard n >= 1 && n <= Self.maxLength else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var k = 0
        for i in range {
            let c = b[i]
            guard Self.allowed(c) else { return nil }
            let shift = UInt64((k & 7) * 8)
            switch k >> 3 {
            case 0: words.0 |= UInt64(c) << shift
            case 1: words.1 |= UInt64(c) << shift
            case 2: words.2 |= UInt64(c) << shift
            default: words.3 |= UInt64(c) << shift
            }
            k += 1
        }
        (w0, w1, w2, w3) = words
        count = UInt8(n)
    }

    /// Reads a symbol from a string (see ``init(bytes:range:)``).
    public init?(_ s: String) {
        var s = s
        guard let key = s.withUTF8({ SymbolKey(bytes: UnsafeRawBufferPointer($0), range: 0..<$0.count) }) else {
            return nil
        }
        self = key
    }

    static func allowed(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// The byte at `i` (< `count`).
    public func byte(_ i: Int) -> UInt8 {
        let w: UInt64
        switch i >> 3 {
        case 0: w = w0
        case 1: w = w1
        case 2: w = w2
        default: w = w3
        }
        return UInt8(truncatingIfNeeded: w >> UInt64((i & 7) * 8))
    }

    /// Calls `body` with the symbol's bytes, without allocating.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = (w0, w1, w2, w3)
        let n = Int(count)
        return try withUnsafeBytes(of: &copy) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    public var description: String {
        withBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// A cheap, well-mixed hash for the open-addressing table.
    var mixedHash: UInt64 {
        var h = (w0 &* 0x9E37_79B9_7F4A_7C15) ^ (w1 &* 0xC2B2_AE3D_27D4_EB4F)
        h ^= (w2 &* 0x1656_67B1_9E37_79F9) ^ (w3 &* 0x27D4_EB2F_1656_67C5) ^ UInt64(count)
        return mix64(h)
    }
}

/// The finaliser of SplitMix64: spreads every input bit over the output.
public func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// FNV-1a over bytes, finished with ``mix64(_:)``.
public func hashBytes(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = seed
    for i in r {
        h ^= UInt64(b[i])
        h = h &* 0x0000_0100_0000_01B3
    }
    return h
}

/// Maps symbols to small dense ids once, so the book is indexed by array position (1 ns) rather than
/// by a string-keyed dictionary (40 ns).
struct SymbolTable {
    private var slots: [Int32]
    private(set) var keys: [SymbolKey] = []
    private var mask: Int
    /// Ids freed by ``remove(_:)``, reused first; their `keys` entry is the empty key, which no symbol equals.
    private var free: [Int32] = []

    init(capacity: Int = 1024) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = Array(repeating: -1, count: n)
        mask = n - 1
        keys.reserveCapacity(capacity)
    }

    /// Symbols held.
    var count: Int { keys.count - free.count }

    /// Whether `id` holds a symbol (it is not a freed id).
    func isLive(_ id: Int32) -> Bool { keys[Int(id)].count > 0 }

    /// The id of `key`, if known.
    func find(_ key: SymbolKey) -> Int32? {
        var i = Int(truncatingIfNeeded: key.mixedHash) & mask
        while true {
            let id = slots[i]
            if id < 0 { return nil }
            if keys[Int(id)] == key { return id }
            i = (i + 1) & mask
        }
    }

    /// The id of `key`, adding it when new (in a freed id when there is one).
    mutating func intern(_ key: SymbolKey) -> (id: Int32, isNew: Bool) {
        if let id = find(key) { return (id, false) }
        if let id = free.popLast() {
            keys[Int(id)] = key
            insertSlot(key, id)
            return (id, true)
        }
        if (keys.count + 1) * 2 > slots.count { grow() }
        let id = Int32(keys.count)
        keys.append(key)
        insertSlot(key, id)
        return (id, true)
    }

    /// Frees `ids` for reuse: the probe table is rebuilt from the symbols that stay (linear probing has no
    /// cheap single delete), which costs O(capacity) once for the whole set.
    mutating func remove(_ ids: [Int32]) {
        for id in ids where keys[Int(id)].count > 0 {
            keys[Int(id)] = SymbolKey()
            free.append(id)
        }
        rehash(size: slots.count)
    }

    private mutating func insertSlot(_ key: SymbolKey, _ id: Int32) {
        var i = Int(truncatingIfNeeded: key.mixedHash) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = id
    }

    private mutating func grow() { rehash(size: slots.count * 2) }

    private mutating func rehash(size n: Int) {
        slots = Array(repeating: -1, count: n)
        mask = n - 1
        for (id, key) in keys.enumerated() where key.count > 0 { insertSlot(key, Int32(id)) }
    }
}
