/// The one escaping of untrusted text on its way to a terminal or a log: a program's output,
/// `log.write` messages, Bridge method names in `miniapp inspect`, entry names of a package,
/// error messages the CLI prints.
///
/// Escaped, as `\u{1b}` (lowercase hex, Swift/JavaScript literal form):
/// - C0 controls except tab, DEL and the C1 range: ESC and the 8-bit CSI (U+009B) start
///   terminal sequences that retitle, recolour or rewrite the screen, or make the terminal answer
///   with injected input (CVE-2003-0063-class attacks on xterm); CR and LF forge extra lines in
///   a log or an inspector stream (log injection, CWE-117);
/// - U+2028/U+2029 (line breaks to many viewers);
/// - bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder what
///   is displayed ("Trojan Source", CVE-2021-42574): `deny` shown as `allow`.
/// Bytes that are not valid UTF-8 (`escape(bytes:)`) become `\xff`.
public enum TerminalText {
    /// `s` with every dangerous scalar escaped; `s` itself when there is none (no allocation).
    public static func escape(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: needsEscape) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for u in s.unicodeScalars { append(u, to: &out) }
        return out
    }

    /// `bytes` decoded as UTF-8 and escaped; each byte of an invalid sequence becomes `\xNN`.
    public static func escape(bytes: some Collection<UInt8>) -> String {
        let b = Array(bytes)
        var out = ""
        var i = 0
        while i < b.count {
            let n = sequenceLength(b[i])
            if n > 0, i + n <= b.count, let s = String(validating: b[i..<(i + n)], as: UTF8.self), let u = s.unicodeScalars.first {
                append(u, to: &out)
                i += n
            } else {
                out += "\\x" + hex2(b[i])
                i += 1
            }
        }
        return out
    }

    /// Length of the UTF-8 sequence a lead byte starts (0: not a lead byte).
    private static func sequenceLength(_ lead: UInt8) -> Int {
        switch lead {
        case 0..<0x80: 1
        case 0xc2...0xdf: 2
        case 0xe0...0xef: 3
        case 0xf0...0xf4: 4
        default: 0
        }
    }

    /// A JSON text made terminal-safe and still valid JSON: the scalars `escape` rewrites become
    /// `\uXXXX` escapes (they can only occur inside strings; the writer already escaped C0).
    public static func escapeJSON(_ json: String) -> String {
        guard json.unicodeScalars.contains(where: needsEscape) else { return json }
        var out = ""
        for u in json.unicodeScalars {
            if needsEscape(u) {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// True for the scalars `escape` rewrites.
    public static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09: false
        case 0..<0x20, 0x7f...0x9f: true
        case 0x2028, 0x2029, 0x202a...0x202e, 0x2066...0x2069: true
        default: false
        }
    }

    private static func append(_ u: Unicode.Scalar, to out: inout String) {
        if needsEscape(u) {
            out += "\\u{" + String(u.value, radix: 16) + "}"
        } else {
            out.unicodeScalars.append(u)
        }
    }

    private static func hex2(_ b: UInt8) -> String {
        let h = String(b, radix: 16)
        return h.count < 2 ? "0" + h : h
    }
}
