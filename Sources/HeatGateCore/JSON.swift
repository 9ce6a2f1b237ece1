/// A parsed JSON document, for the paths that are not hot: the CLI, the store's restore, reports.
public enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// Parses a JSON text (any value at the top level).
    /// - Throws: ``JSONScanError`` for invalid JSON.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONScanError) -> JSON {
        var p = JSONObjectIterator.skipSpace(bytes, 0, bytes.count)
        let start = p
        _ = try JSONObjectIterator.skipValue(bytes, &p, bytes.count)
        guard JSONObjectIterator.skipSpace(bytes, p, bytes.count) == bytes.count else {
            throw .syntax(offset: p)
        }
        return try build(bytes, start..<p)
    }

    /// Parses a JSON text held in a string.
    public static func parse(_ text: String) throws(JSONScanError) -> JSON {
        let bytes = Array(text.utf8)
        let result: Result<JSON, JSONScanError> = bytes.withUnsafeBytes { b in
            do throws(JSONScanError) { return .success(try parse(b)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    static func build(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) throws(JSONScanError) -> JSON {
        switch b[r.lowerBound] {
        case UInt8(ascii: "{"):
            var members: [(String, JSON)] = []
            var it = try JSONObjectIterator(b, range: r)
            while let m = try it.next() {
                members.append((try string(b, m.key, m.keyHasEscapes), try value(b, m.value)))
            }
            return .object(members)
        case UInt8(ascii: "["):
            var items: [JSON] = []
            var it = try JSONArrayIterator(b, range: r)
            while let v = try it.next() { items.append(try value(b, v)) }
            return .array(items)
        default:
            var p = r.lowerBound
            return try value(b, try JSONValue.scan(b, &p, r.upperBound))
        }
    }

    static func value(_ b: UnsafeRawBufferPointer, _ v: JSONValue) throws(JSONScanError) -> JSON {
        switch v.kind {
        case .null: return .null
        case .true: return .bool(true)
        case .false: return .bool(false)
        case .number:
            guard let d = parseDouble(b, v.range) else { throw .syntax(offset: v.range.lowerBound) }
            return .number(d)
        case .string: return .string(try string(b, v.content, v.hasEscapes))
        case .object, .array: return try build(b, v.range)
        }
    }

    static func string(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ escapes: Bool) throws(JSONScanError) -> String {
        if !escapes { return String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self) }
        guard let raw = unescapeJSONString(b, r, replacingLoneSurrogates: true) else {
            throw .syntax(offset: r.lowerBound)
        }
        return String(decoding: raw, as: UTF8.self)
    }

    /// The member `key` of an object.
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.0 == key })?.1
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A number, or a numeric string.
    public var number: Double? {
        switch self {
        case .number(let d): return d
        case .string(let s): return Double(s)
        default: return nil
        }
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var array: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Writes this value as compact JSON.
    public func encode(into w: inout JSONWriter) {
        switch self {
        case .null: w.raw("null")
        case .bool(let b): w.bool(b)
        case .number(let d): w.double(d)
        case .string(let s): w.string(s)
        case .array(let items):
            w.byte(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { w.byte(UInt8(ascii: ",")) }
                item.encode(into: &w)
            }
            w.byte(UInt8(ascii: "]"))
        case .object(let members):
            w.byte(UInt8(ascii: "{"))
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { w.byte(UInt8(ascii: ",")) }
                w.string(k)
                w.byte(UInt8(ascii: ":"))
                v.encode(into: &w)
            }
            w.byte(UInt8(ascii: "}"))
        }
    }

    /// Compact JSON text.
    public var text: String {
        var w = JSONWriter(capacity: 256)
        encode(into: &w)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}
