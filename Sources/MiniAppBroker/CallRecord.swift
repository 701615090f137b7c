public import MiniAppJSON
public import MiniAppModel

/// What the broker decided for one Bridge message.
public enum CallDecision: String, Sendable, Hashable, CaseIterable {
    /// Passed every check and was dispatched (the outcome may still be an error: see `code`).
    case allow
    /// Refused by the permission table (`PERMISSION_DENIED`).
    case deny
    /// Refused before the permission check or by the rate limiter or params check:
    /// framing, shape, unknown method, `RATE_LIMITED`, `INVALID_PARAMS`.
    case refuse
}

/// One decision, as the audit log, the inspector and the counters see it. Carries no params or
/// results unless payloads were explicitly switched on (and then redacted).
public struct CallRecord: Sendable {
    /// Wall-clock time of arrival, microseconds since the Unix epoch.
    public var timeMicros: Int64
    public var workerId: String
    public var programId: String
    /// The method as sent (bounded to 256 bytes by the decoder); nil when the line had none.
    public var method: String?
    public var decision: CallDecision
    /// The error code answered, nil on success.
    public var code: ErrorCode?
    /// Time from arrival to answer.
    public var micros: Int64
    /// Bytes of the request line (newline included).
    public var bytesIn: Int
    /// Bytes of the answer line (0 for notifications).
    public var bytesOut: Int
    /// `params`, only in payload mode, already redacted.
    public var params: JSONValue?
    /// `result`, only in payload mode, already redacted.
    public var result: JSONValue?
    /// A simulated program's call (simulator mode): `"simulated": true` in the record.
    public var simulated = false

    /// The record as a JSON object (audit line and `inspector.event` params).
    public func json() -> JSONValue {
        var o = JSONObject()
        o["time"] = .string(Self.rfc3339(timeMicros))
        o["workerId"] = .string(workerId)
        o["programId"] = .string(programId)
        // An unknown method name is echoed as sent: a token pasted there is redacted too.
        o["method"] = method.map { .string(Redactor.containsIssuedToken($0) ? Redactor.markerText : $0) } ?? .null
        o["decision"] = .string(decision.rawValue)
        if let code { o["code"] = .string(code.rawValue) }
        o["micros"] = .int(micros)
        o["bytesIn"] = .int(Int64(bytesIn))
        o["bytesOut"] = .int(Int64(bytesOut))
        if simulated { o["simulated"] = true }
        if let params { o["params"] = params }
        if let result { o["result"] = result }
        return .object(o)
    }

    /// The record's audit line (without the newline): byte for byte `json().write(into:)`, with
    /// `params`/`result` only if `payloads`, but written directly: building the object first
    /// cost ~10 µs a call (the audit writer encodes every call's record).
    public func appendJSON(into out: inout [UInt8], payloads: Bool) {
        func key(_ k: StaticString, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            k.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        out.append(UInt8(ascii: "{"))
        key("time", first: true)
        out.append(UInt8(ascii: "\""))
        Self.appendRFC3339(timeMicros, into: &out)
        out.append(UInt8(ascii: "\""))
        key("workerId"); JSONBytes.appendString(workerId, into: &out)
        key("programId"); JSONBytes.appendString(programId, into: &out)
        key("method")
        if let method { JSONBytes.appendString(Redactor.containsIssuedToken(method) ? Redactor.markerText : method, into: &out) }
        else { out.append(contentsOf: "null".utf8) }
        key("decision"); JSONBytes.appendString(decision.rawValue, into: &out)
        if let code { key("code"); JSONBytes.appendString(code.rawValue, into: &out) }
        key("micros"); JSONBytes.appendInt(micros, into: &out)
        key("bytesIn"); JSONBytes.appendInt(Int64(bytesIn), into: &out)
        key("bytesOut"); JSONBytes.appendInt(Int64(bytesOut), into: &out)
        if simulated { key("simulated"); out.append(contentsOf: "true".utf8) }
        if payloads, let params { key("params"); params.write(into: &out) }
        if payloads, let result { key("result"); result.write(into: &out) }
        out.append(UInt8(ascii: "}"))
    }

    /// `2026-11-25T06:07:00.123456Z` from Unix microseconds (days-from-civil inverse, Howard
    /// Hinnant's algorithm; no libc, no Foundation).
    static func rfc3339(_ micros: Int64) -> String {
        var out: [UInt8] = []
        appendRFC3339(micros, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendRFC3339(_ micros: Int64, into out: inout [UInt8]) {
        let secs = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let frac = micros - secs * 1_000_000
        let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let sod = secs - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        /// `String(v)` left-padded with zeros to `w` characters.
        func pad(_ v: Int64, _ w: Int) {
            var digits: [UInt8] = []
            var x = v.magnitude
            repeat {
                digits.append(UInt8(ascii: "0") + UInt8(x % 10))
                x /= 10
            } while x > 0
            if v < 0 { digits.append(UInt8(ascii: "-")) }
            for _ in digits.count..<max(digits.count, w) { out.append(UInt8(ascii: "0")) }
            out.append(contentsOf: digits.reversed())
        }
        pad(y, 4); out.append(UInt8(ascii: "-")); pad(m, 2); out.append(UInt8(ascii: "-")); pad(d, 2)
        out.append(UInt8(ascii: "T")); pad(sod / 3600, 2); out.append(UInt8(ascii: ":")); pad(sod / 60 % 60, 2)
        out.append(UInt8(ascii: ":")); pad(sod % 60, 2); out.append(UInt8(ascii: ".")); pad(frac, 6); out.append(UInt8(ascii: "Z"))
    }
}

/// Removes secrets from payloads before they reach the inspector or the audit log.
///
/// Two rules, at any depth:
/// - **by name**: any object member whose name contains `token`, `authorization`, `password`,
///   `secret` or `cookie` (case-insensitive, so `accessToken`, `Authorization`, `client_secret`,
///   `Set-Cookie`) has its value replaced by `"[REDACTED]"` — payloads are arbitrary partner
///   JSON, but `auth.getToken` returns its token as `token` and HTTP carries one in
///   `Authorization`;
/// - **by value**: any string containing `AuthService.issuedTokenPrefix` — the base64url of
///   the fixed start of the header of every JWT this daemon signs — is replaced, and so is any
///   member *name* containing it. A program can put its token anywhere (`storage.set
///   {key:"k", value:{blob: token}}`, a `net.request` body, `"Bearer " + token`), and the spec
///   says an inspector event never shows a token the daemon issued, whatever its name.
///
/// Not covered (documented in SECURITY.md): a token the program re-encodes (base64 of the
/// token, `{"base64": …}` bodies, a token split across strings) no longer contains the prefix.
/// Payloads are off by default for that reason.
public enum Redactor {
    /// The replacement text.
    public static let markerText = "[REDACTED]"
    /// The replacement value.
    public static let marker: JSONValue = .string(markerText)
    private static let needles = ["token", "authorization", "password", "secret", "cookie"]

    private static let needleBytes = needles.map { Array($0.utf8) }
    private static let tokenPrefixBytes = Array(AuthService.issuedTokenPrefix.utf8)

    /// True when a member with this name must be redacted.
    public static func isSecretKey(_ key: String) -> Bool {
        needleBytes.contains { containsBytes(key, $0, asciiCaseInsensitive: true) }
    }

    /// True when `s` contains (the start of) a token this daemon issued.
    public static func containsIssuedToken(_ s: String) -> Bool {
        containsBytes(s, tokenPrefixBytes, asciiCaseInsensitive: false)
    }

    /// `s` with every issued token in it replaced by the marker: from the token prefix to the
    /// end of the run of JWT characters (base64url and `.`). For free text such as `log.write`
    /// messages, where replacing the whole string would hide what the program meant to log.
    public static func redactingIssuedTokens(in s: String) -> String {
        guard containsIssuedToken(s) else { return s }
        let b = Array(s.utf8)
        let p = tokenPrefixBytes
        func isJWT(_ c: UInt8) -> Bool {
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F || c == 0x2E
        }
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if i + p.count <= b.count && b[i..<(i + p.count)].elementsEqual(p) {
                out.append(contentsOf: Array(markerText.utf8))
                i += p.count
                while i < b.count && isJWT(b[i]) { i += 1 }
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A byte search in the UTF-8 of `s` (the needles are ASCII). Not `String.contains`: which
    /// one that is depends on the imports in scope (the standard library's compares grapheme
    /// clusters, and a character that joins with the next one, U+0600 or a combining mark, hides
    /// a token from it: a program's own issued token would reach the inspector and the audit
    /// log unredacted), and a byte search is also cheaper on the hot path.
    static func containsBytes(_ s: String, _ needle: [UInt8], asciiCaseInsensitive: Bool) -> Bool {
        var s = s
        return s.withUTF8 { h in
            guard needle.count <= h.count, let first = needle.first else { return needle.isEmpty }
            func fold(_ c: UInt8) -> UInt8 { asciiCaseInsensitive && c >= 0x41 && c <= 0x5A ? c | 0x20 : c }
            var i = 0
            while i + needle.count <= h.count {
                if fold(h[i]) == first {
                    var j = 1
                    while j < needle.count && fold(h[i + j]) == needle[j] { j += 1 }
                    if j == needle.count { return true }
                }
                i += 1
            }
            return false
        }
    }

    /// `value` with every secret member's value and every string holding an issued token replaced.
    public static func redact(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            var r = JSONObject()
            var renamed = 0
            for m in o.members {
                var name = m.key
                if containsIssuedToken(name) {
                    // Distinct placeholders: two redacted names must not collide into one member.
                    renamed += 1
                    name = renamed == 1 ? "[REDACTED]" : "[REDACTED]#\(renamed)"
                }
                r[name] = isSecretKey(name) ? marker : redact(m.value)
            }
            return .object(r)
        case .array(let a):
            return .array(a.map(redact))
        case .string(let s):
            return containsIssuedToken(s) ? marker : value
        default:
            return value
        }
    }
}
