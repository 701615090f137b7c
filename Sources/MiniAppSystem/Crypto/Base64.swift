/// Strict base64 (RFC 4648 §4, standard alphabet, `=` padding required).
///
/// Strict because the signature field is security-relevant: lenient decoders that skip
/// whitespace or ignore non-zero trailing bits accept many spellings of one signature, which
/// makes "is this the same package?" questions unreliable.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Encodes with padding, no line breaks.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let b = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((b.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= b.count {
            let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            for s in [18, 12, 6, 0] { out.append(alphabet[Int((n >> UInt32(s)) & 63)]) }
            i += 3
        }
        let rest = b.count - i
        if rest > 0 {
            var n = UInt32(b[i]) << 16
            if rest == 2 { n |= UInt32(b[i + 1]) << 8 }
            out.append(alphabet[Int((n >> 18) & 63)])
            out.append(alphabet[Int((n >> 12) & 63)])
            out.append(rest == 2 ? alphabet[Int((n >> 6) & 63)] : 61)
            out.append(61)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes canonical padded base64; nil on any other spelling.
    public static func decode(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 4 * 3)
        var i = 0
        while i < u.count {
            let last = i + 4 == u.count
            let pad = last ? (u[i + 3] == 61 ? (u[i + 2] == 61 ? 2 : 1) : 0) : 0
            var n: UInt32 = 0
            for j in 0..<4 {
                let c = u[i + j]
                if j >= 4 - pad { n <<= 6; continue }
                let v = reverse[Int(c)]
                guard v != 0xFF else { return nil }
                n = n << 6 | UInt32(v)
            }
            // Non-zero bits under the padding would give a second spelling of the same bytes.
            if pad == 2 && n & 0xFFFF != 0 { return nil }
            if pad == 1 && n & 0xFF != 0 { return nil }
            out.append(UInt8(n >> 16))
            if pad < 2 { out.append(UInt8((n >> 8) & 0xFF)) }
            if pad < 1 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return out
    }
}
