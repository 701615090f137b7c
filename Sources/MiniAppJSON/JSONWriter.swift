/// Errors while serializing (only non-finite numbers, which JSON cannot express).
public struct JSONWriteError: Error, Sendable, Equatable {
    /// A short description.
    public let message: String
}

extension JSONValue {
    /// Compact UTF-8 JSON, members in insertion order. Never contains a raw newline, so the
    /// result is always a valid NDJSON line. Non-finite doubles are written as `null`.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        JSONEmitter.emit(self, into: &out, canonical: false)
        return out
    }

    /// Compact JSON as a String.
    public var jsonString: String { String(decoding: serialized(), as: UTF8.self) }

    /// RFC 8785 (JSON Canonicalization Scheme): members sorted by their UTF-16 code units, no
    /// whitespace, minimal escaping, numbers in ECMAScript form. Used for signature statements,
    /// where both signer and verifier must produce the very same bytes.
    public func canonicalized() throws(JSONWriteError) -> [UInt8] {
        try JSONEmitter.checkFinite(self)
        var out: [UInt8] = []
        JSONEmitter.emit(self, into: &out, canonical: true)
        return out
    }

    /// Appends the compact form to `out` (hot path: no intermediate array).
    public func write(into out: inout [UInt8]) {
        JSONEmitter.emit(self, into: &out, canonical: false)
    }
}

/// The writer's own encoders, for hand-written producers of one fixed shape on hot paths (the
/// audit line): the same escaping and integer form as `write(into:)`.
public enum JSONBytes {
    /// A JSON string literal, quotes included.
    public static func appendString(_ s: String, into out: inout [UInt8]) { JSONEmitter.appendString(s, into: &out) }
    /// An integer literal.
    public static func appendInt(_ i: Int64, into out: inout [UInt8]) { JSONEmitter.appendInt(i, into: &out) }
}

enum JSONEmitter {
    static func checkFinite(_ v: JSONValue) throws(JSONWriteError) {
        switch v {
        case .double(let d) where !d.isFinite: throw JSONWriteError(message: "non-finite number")
        case .array(let a): for x in a { try checkFinite(x) }
        case .object(let o): for m in o.members { try checkFinite(m.value) }
        default: break
        }
    }

    static func emit(_ v: JSONValue, into out: inout [UInt8], canonical: Bool) {
        switch v {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): appendInt(i, into: &out)
        case .double(let d): out.append(contentsOf: formatDouble(d).utf8)
        case .string(let s): appendString(s, into: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, x) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                emit(x, into: &out, canonical: canonical)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            let members = canonical ? o.members.sorted { utf16Less($0.key, $1.key) } : o.members
            for (i, m) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                emit(m.value, into: &out, canonical: canonical)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// RFC 8785 §3.2.3: sort by UTF-16 code units, not by scalars or UTF-8 bytes.
    static func utf16Less(_ a: String, _ b: String) -> Bool {
        a.utf16.lexicographicallyPrecedes(b.utf16)
    }

    static func appendInt(_ i: Int64, into out: inout [UInt8]) {
        if i == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var digits: [UInt8] = []
        var m = i.magnitude
        while m > 0 {
            digits.append(UInt8(ascii: "0") + UInt8(m % 10))
            m /= 10
        }
        if i < 0 { out.append(UInt8(ascii: "-")) }
        out.append(contentsOf: digits.reversed())
    }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Minimal escaping per RFC 8785 §3.2.2.2: `"` `\` and control characters only; everything
    /// else, including non-ASCII, as raw UTF-8.
    static func appendString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x00..<0x20:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// ECMAScript Number::toString (what RFC 8785 prescribes), from Swift's shortest
    /// round-trip digits. Non-finite values become `null` (only reachable via `serialized()`).
    static func formatDouble(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == 0 { return "0" }
        if d == d.rounded(), abs(d) < 1e21, abs(d) < 9.2e18 { return String(Int64(d)) }
        let (negative, digits, exp) = decompose(d)
        let k = digits.count
        let n = exp  // value = 0.d1d2…dk × 10^n
        var s = negative ? "-" : ""
        if k <= n && n <= 21 {
            s += digits + String(repeating: "0", count: n - k)
        } else if 0 < n && n <= 21 {
            s += String(digits.prefix(n)) + "." + String(digits.dropFirst(n))
        } else if -6 < n && n <= 0 {
            s += "0." + String(repeating: "0", count: -n) + digits
        } else {
            let e = n - 1
            s += String(digits.prefix(1))
            if k > 1 { s += "." + String(digits.dropFirst()) }
            s += "e" + (e >= 0 ? "+" : "-") + String(abs(e))
        }
        return s
    }

    /// Splits Swift's shortest description into sign, significant digits and a decimal exponent
    /// such that value = 0.DIGITS × 10^exp.
    static func decompose(_ d: Double) -> (Bool, String, Int) {
        var text = "\(abs(d))"  // e.g. "1.5e-07", "123.25", "5e+20"
        var exp10 = 0
        if let eIdx = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exp10 = Int(text[text.index(after: eIdx)...]) ?? 0
            text = String(text[..<eIdx])
        }
        var intPart = text
        var frac = ""
        if let dot = text.firstIndex(of: ".") {
            intPart = String(text[..<dot])
            frac = String(text[text.index(after: dot)...])
        }
        var all = intPart + frac
        var pointPos = intPart.count + exp10
        while all.hasPrefix("0") && all.count > 1 {
            all.removeFirst()
            pointPos -= 1
        }
        while all.hasSuffix("0") && all.count > 1 { all.removeLast() }
        return (d < 0, all, pointPos)
    }
}
