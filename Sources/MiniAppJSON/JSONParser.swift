/// Why a document was refused, and where (byte offset from the start of the document).
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public enum Reason: String, Sendable {
        case empty = "empty document"
        case unexpectedEnd = "unexpected end of document"
        case unexpectedByte = "unexpected character"
        case trailingData = "data after the JSON value"
        case invalidUTF8 = "invalid UTF-8"
        case controlCharacter = "raw control character in string (escape it)"
        case invalidEscape = "invalid escape sequence"
        case invalidNumber = "invalid number"
        case numberOutOfRange = "number out of range"
        case tooDeep = "nesting too deep"
        case duplicateKey = "duplicate object key"
        case tooLarge = "document too large"
    }

    /// The reason.
    public let reason: Reason
    /// Byte offset where the problem was found.
    public let offset: Int
    /// Extra detail (e.g. the duplicated key).
    public let detail: String?

    public init(_ reason: Reason, at offset: Int, detail: String? = nil) {
        self.reason = reason
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        if let detail { return "\(reason.rawValue) at byte \(offset): \(detail)" }
        return "\(reason.rawValue) at byte \(offset)"
    }
}

/// Limits and dialect of the parser.
public struct JSONParseOptions: Sendable {
    /// Maximum nesting of arrays and objects. Deep nesting is a stack-exhaustion attack on
    /// recursive parsers (cf. CVE-2022-24999-style JSON DoS); 64 is far above any real message.
    public var maxDepth: Int = 64
    /// Maximum document size in bytes.
    public var maxBytes: Int = 1 << 20
    /// Allow `//` line comments between tokens. Only for operator-written policy files, never
    /// for anything untrusted.
    public var allowComments: Bool = false

    public init(maxDepth: Int = 64, maxBytes: Int = 1 << 20, allowComments: Bool = false) {
        self.maxDepth = maxDepth
        self.maxBytes = maxBytes
        self.allowComments = allowComments
    }

    /// Strict RFC 8259 for untrusted input.
    public static let strict = JSONParseOptions()
    /// Policy files written by operators: comments allowed, larger documents.
    public static let policy = JSONParseOptions(maxDepth: 64, maxBytes: 16 << 20, allowComments: true)
}

extension JSONValue {
    /// Parses one JSON document (RFC 8259) strictly: UTF-8 only, no duplicate keys, no trailing
    /// data, no raw control characters in strings, bounded depth and size.
    public static func parse(_ bytes: some Collection<UInt8>, options: JSONParseOptions = .strict) throws(JSONError)
        -> JSONValue
    {
        if let r = bytes.withContiguousStorageIfAvailable({ buf in
            Result { () throws(JSONError) in try parse(buffer: buf, options: options) }
        }) {
            return try r.get()
        }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { buf throws(JSONError) in try parse(buffer: buf, options: options) }
    }

    /// Parses a JSON document from a string.
    public static func parse(_ text: String, options: JSONParseOptions = .strict) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), options: options)
    }

    /// Parses from raw memory (the Bridge hot path hands its read buffer in directly).
    public static func parse(buffer: UnsafeBufferPointer<UInt8>, options: JSONParseOptions = .strict)
        throws(JSONError) -> JSONValue
    {
        guard buffer.count <= options.maxBytes else { throw JSONError(.tooLarge, at: options.maxBytes) }
        var p = JSONScanner(buf: buffer, options: options)
        p.skipSpace()
        guard p.pos < buffer.count else { throw JSONError(.empty, at: 0) }
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.pos == buffer.count else { throw JSONError(.trailingData, at: p.pos) }
        return v
    }
}

/// The recursive-descent scanner behind `JSONValue.parse`.
struct JSONScanner {
    let buf: UnsafeBufferPointer<UInt8>
    let options: JSONParseOptions
    var pos = 0

    init(buf: UnsafeBufferPointer<UInt8>, options: JSONParseOptions) {
        self.buf = buf
        self.options = options
    }

    mutating func skipSpace() {
        while pos < buf.count {
            switch buf[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            case UInt8(ascii: "/") where options.allowComments && pos + 1 < buf.count && buf[pos + 1] == UInt8(ascii: "/"):
                while pos < buf.count && buf[pos] != 0x0A { pos += 1 }
            default: return
            }
        }
    }

    func peek() throws(JSONError) -> UInt8 {
        guard pos < buf.count else { throw JSONError(.unexpectedEnd, at: pos) }
        return buf[pos]
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        switch try peek() {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw JSONError(.unexpectedByte, at: pos)
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= buf.count else { throw JSONError(.unexpectedEnd, at: buf.count) }
        let w = word.utf8Start
        for i in 0..<n where buf[pos + i] != w[i] { throw JSONError(.unexpectedByte, at: pos + i) }
        pos += n
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        var obj = JSONObject()
        guard try enter(depth: depth, closedBy: UInt8(ascii: "}")) else { return .object(obj) }
        repeat {
            skipSpace()
            guard try peek() == UInt8(ascii: "\"") else { throw JSONError(.unexpectedByte, at: pos) }
            let keyStart = pos
            let key = try string()
            if obj.members.contains(where: { $0.key == key }) {
                throw JSONError(.duplicateKey, at: keyStart, detail: key)
            }
            skipSpace()
            guard try peek() == UInt8(ascii: ":") else { throw JSONError(.unexpectedByte, at: pos) }
            pos += 1
            skipSpace()
            obj.appendUnchecked(key, try value(depth: depth))
        } while try !closes(UInt8(ascii: "}"))
        return .object(obj)
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        var items: [JSONValue] = []
        guard try enter(depth: depth, closedBy: UInt8(ascii: "]")) else { return .array(items) }
        repeat {
            skipSpace()
            items.append(try value(depth: depth))
        } while try !closes(UInt8(ascii: "]"))
        return .array(items)
    }

    /// Steps past the opening byte of an object or array at `depth` (bounded); false when the
    /// container is empty (its `close` byte is then consumed too).
    mutating func enter(depth: Int, closedBy close: UInt8) throws(JSONError) -> Bool {
        guard depth <= options.maxDepth else { throw JSONError(.tooDeep, at: pos) }
        pos += 1
        skipSpace()
        guard try peek() == close else { return true }
        pos += 1
        return false
    }

    /// After a member or item: true past `close` (the container ends), false past a `,`; any
    /// other byte is refused.
    mutating func closes(_ close: UInt8) throws(JSONError) -> Bool {
        skipSpace()
        let c = try peek()
        pos += 1
        if c == close { return true }
        guard c == UInt8(ascii: ",") else { throw JSONError(.unexpectedByte, at: pos - 1) }
        return false
    }

    mutating func number() throws(JSONError) -> JSONValue {
        let start = pos
        var integral = true
        if buf[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < buf.count else { throw JSONError(.invalidNumber, at: start) }
        if buf[pos] == UInt8(ascii: "0") {
            pos += 1
        } else if isDigit(buf[pos]) {
            while pos < buf.count && isDigit(buf[pos]) { pos += 1 }
        } else {
            throw JSONError(.invalidNumber, at: start)
        }
        if pos < buf.count && buf[pos] == UInt8(ascii: ".") {
            integral = false
            pos += 1
            guard pos < buf.count && isDigit(buf[pos]) else { throw JSONError(.invalidNumber, at: start) }
            while pos < buf.count && isDigit(buf[pos]) { pos += 1 }
        }
        if pos < buf.count && (buf[pos] == UInt8(ascii: "e") || buf[pos] == UInt8(ascii: "E")) {
            integral = false
            pos += 1
            if pos < buf.count && (buf[pos] == UInt8(ascii: "+") || buf[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard pos < buf.count && isDigit(buf[pos]) else { throw JSONError(.invalidNumber, at: start) }
            while pos < buf.count && isDigit(buf[pos]) { pos += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: buf[start..<pos]), as: UTF8.self)
        if integral, let i = Int64(text) { return .int(i) }
        guard let d = Double(text), d.isFinite else { throw JSONError(.numberOutOfRange, at: start) }
        return .double(d)
    }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// Parses a string token; validates UTF-8 and escapes. Fast path when there is no escape.
    mutating func string() throws(JSONError) -> String {
        pos += 1
        let start = pos
        var hasEscape = false
        var ascii = true
        while true {
            guard pos < buf.count else { throw JSONError(.unexpectedEnd, at: pos) }
            let c = buf[pos]
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                hasEscape = true
                pos += 2
                continue
            }
            if c < 0x20 { throw JSONError(.controlCharacter, at: pos) }
            if c >= 0x80 { ascii = false }
            pos += 1
        }
        let raw = UnsafeBufferPointer(rebasing: buf[start..<pos])
        pos += 1
        if !hasEscape {
            if ascii { return String(decoding: raw, as: UTF8.self) }
            guard let s = String(validating: raw, as: UTF8.self) else { throw JSONError(.invalidUTF8, at: start) }
            return s
        }
        return try unescape(raw, base: start)
    }

    func unescape(_ raw: UnsafeBufferPointer<UInt8>, base: Int) throws(JSONError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            let c = raw[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            guard i + 1 < raw.count else { throw JSONError(.invalidEscape, at: base + i) }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(raw, i, base: base)
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate; a lone one is
                    // not a Unicode scalar and would not survive a round trip.
                    guard i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") else {
                        throw JSONError(.invalidEscape, at: base + i)
                    }
                    let low = try hex4(raw, i + 2, base: base)
                    guard (0xDC00...0xDFFF).contains(low) else { throw JSONError(.invalidEscape, at: base + i) }
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw JSONError(.invalidEscape, at: base + i - 6)
                }
                guard let u = Unicode.Scalar(scalar) else { throw JSONError(.invalidEscape, at: base + i) }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                throw JSONError(.invalidEscape, at: base + i - 2)
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw JSONError(.invalidUTF8, at: base) }
        return s
    }

    func hex4(_ raw: UnsafeBufferPointer<UInt8>, _ at: Int, base: Int) throws(JSONError) -> UInt32 {
        guard at + 4 <= raw.count else { throw JSONError(.invalidEscape, at: base + at) }
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = raw[at + k]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw JSONError(.invalidEscape, at: base + at + k)
            }
            v = v << 4 | d
        }
        return v
    }
}
