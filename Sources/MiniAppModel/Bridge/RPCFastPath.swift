import MiniAppJSON

extension RPCCodec {
    /// Decodes a request line the way `parse` + `decodeRequest` do, without building a tree for
    /// the envelope: the common shape — plain ASCII `jsonrpc`, `id`, `method` and an object or
    /// array `params` — is scanned in place and only `params` goes through the strict parser.
    /// (~830 ns → ~300 ns per `storage.get` here, which matters on a ~15 µs round trip.)
    ///
    /// Returns nil whenever the line is anything but that simple shape (escapes, non-ASCII in the
    /// envelope, floats as ids, duplicates, unknown members, errors of any kind): the caller then
    /// takes the general path, which produces the exact answer. So the fast path can only ever
    /// *accept*, and only what the general path accepts identically — the fuzz target
    /// (`fuzz-bridge`) checks that equivalence on every input.
    public static func decodeRequestFast(_ line: UnsafeBufferPointer<UInt8>, maxDepth: Int = 64) -> RPCRequest? {
        var s = FastScanner(b: line)
        guard s.skipSpace(), s.eat(0x7B) else { return nil }
        var version = false, method: String?, id: RPCId?, params: JSONValue?, seen: UInt8 = 0
        while true {
            guard s.skipSpace(), let key = s.plainKey(), s.skipSpace(), s.eat(0x3A), s.skipSpace() else { return nil }
            switch key {
            case .jsonrpc where seen & 1 == 0:
                guard s.literal("\"2.0\"") else { return nil }
                version = true
                seen |= 1
            case .id where seen & 2 == 0:
                guard let v = s.plainId() else { return nil }
                id = v
                seen |= 2
            case .method where seen & 4 == 0:
                guard let m = s.plainString(max: maxMethodBytes), !m.isEmpty else { return nil }
                method = m
                seen |= 4
            case .params where seen & 8 == 0:
                guard let p = s.structured(maxDepth: maxDepth - 1) else { return nil }
                params = p
                seen |= 8
            default: return nil
            }
            guard s.skipSpace() else { return nil }
            if s.eat(0x2C) { continue }
            guard s.eat(0x7D) else { return nil }
            break
        }
        _ = s.skipSpace()
        guard s.atEnd, version, let method else { return nil }
        return RPCRequest(id: id, method: method, params: params)
    }
}

private enum EnvelopeKey { case jsonrpc, id, method, params }

private struct FastScanner {
    let b: UnsafeBufferPointer<UInt8>
    var pos = 0

    var atEnd: Bool { pos == b.count }

    /// Skips JSON whitespace; false at end of input.
    mutating func skipSpace() -> Bool {
        while pos < b.count, b[pos] == 0x20 || b[pos] == 0x09 || b[pos] == 0x0D || b[pos] == 0x0A { pos += 1 }
        return pos < b.count
    }

    mutating func eat(_ c: UInt8) -> Bool {
        guard pos < b.count, b[pos] == c else { return false }
        pos += 1
        return true
    }

    mutating func literal(_ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard b.count - pos >= n else { return false }
        for i in 0..<n where b[pos + i] != lit.utf8Start[i] { return false }
        pos += n
        return true
    }

    /// A string of printable ASCII without escapes: the bytes between the quotes.
    mutating func plainRun(max: Int) -> Range<Int>? {
        guard eat(0x22) else { return nil }
        let start = pos
        while pos < b.count {
            let c = b[pos]
            if c == 0x22 {
                let r = start..<pos
                pos += 1
                return r.count <= max ? r : nil
            }
            if c < 0x20 || c >= 0x7F || c == 0x5C { return nil }
            pos += 1
        }
        return nil
    }

    mutating func plainString(max: Int) -> String? {
        guard let r = plainRun(max: max) else { return nil }
        return String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self)
    }

    mutating func plainKey() -> EnvelopeKey? {
        guard let r = plainRun(max: 7) else { return nil }
        let k = UnsafeBufferPointer(rebasing: b[r])
        if k.elementsEqual("jsonrpc".utf8) { return .jsonrpc }
        if k.elementsEqual("id".utf8) { return .id }
        if k.elementsEqual("method".utf8) { return .method }
        if k.elementsEqual("params".utf8) { return .params }
        return nil
    }

    /// `null`, a plain string, or an integer `-?(0|[1-9][0-9]{0,17})` ending at a delimiter.
    mutating func plainId() -> RPCId? {
        guard pos < b.count else { return nil }
        if b[pos] == 0x22 { return plainString(max: RPCCodec.maxIdBytes).map { .string($0) } }
        if literal("null") { return .null }
        let negative = eat(0x2D)
        let start = pos
        var v: Int64 = 0
        while pos < b.count, b[pos] >= 0x30, b[pos] <= 0x39 {
            v = v * 10 + Int64(b[pos] - 0x30)
            pos += 1
            if pos - start > 18 { return nil }
        }
        let n = pos - start
        guard n > 0, n == 1 || b[start] != 0x30 else { return nil }
        guard pos < b.count else { return nil }
        switch b[pos] {
        case 0x2C, 0x7D, 0x20, 0x09, 0x0D, 0x0A: break
        default: return nil
        }
        return .int(negative ? -v : v)
    }

    /// An object or array: its extent found by bracket matching, its content parsed strictly.
    mutating func structured(maxDepth: Int) -> JSONValue? {
        guard pos < b.count, b[pos] == 0x7B || b[pos] == 0x5B else { return nil }
        let start = pos
        var depth = 0, inString = false
        while pos < b.count {
            let c = b[pos]
            pos += 1
            if inString {
                if c == 0x5C { pos += 1 } else if c == 0x22 { inString = false }
                continue
            }
            switch c {
            case 0x22: inString = true
            case 0x7B, 0x5B: depth += 1
            case 0x7D, 0x5D:
                depth -= 1
                if depth == 0 {
                    let slice = UnsafeBufferPointer(rebasing: b[start..<pos])
                    return try? JSONValue.parse(buffer: slice, options: JSONParseOptions(maxDepth: maxDepth, maxBytes: Int.max))
                }
            default: break
            }
        }
        return nil
    }
}
