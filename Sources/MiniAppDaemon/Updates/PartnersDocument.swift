public import MiniAppJSON
public import MiniAppModel
public import MiniAppSystem

/// The registry's signed partners document (spec/registry.md):
/// `{"issuedAt", "partners": [registration, …], "signature"}`.
///
/// Untrusted until `verify` passed: `parse` only checks the envelope and builds the statement;
/// the registrations are read (`entries`) only from a verified document. Members beyond the
/// three are allowed and covered by the signature (the platform may add some; an attacker
/// cannot).
public struct PartnersDocument: Sendable {
    /// The largest document accepted: the download is cut off there (a few thousand partners
    /// with two 3072-bit keys each fit).
    public static let maxBytes = 4 << 20

    /// When the platform issued it, as Unix seconds (from an integer or an RFC 3339 UTC string).
    public var issuedAt: Int64
    /// The registrations, as sent (each validated by the partner-registration parser on load).
    public var partners: [JSONValue]
    /// `rsa-pss-sha256:BASE64`.
    public var signature: String
    /// The exact bytes the platform key signed.
    public var statement: [UInt8]
    /// The document as received (what the cache stores).
    public var raw: [UInt8]

    /// Parses the document strictly and builds its statement:
    /// `miniapp-partners-v1\n` + RFC 8785 JSON of the document without `signature` + `\n`.
    public static func parse(_ bytes: [UInt8]) throws(MiniAppError) -> PartnersDocument {
        let bad = { (why: String) in
            MiniAppError(.registryInvalid, "registry partners document: \(why); fix the registry's GET /partners", data: ["reason": "REGISTRY_INVALID"])
        }
        guard bytes.count <= maxBytes else { throw MiniAppError(.registryTooLarge, "registry partners document is over \(maxBytes) bytes") }
        let v: JSONValue
        do { v = try JSONValue.parse(bytes, options: .init(maxDepth: 16, maxBytes: maxBytes)) } catch {
            throw bad("not strict JSON (\(error))")
        }
        guard var o = v.objectValue else { throw bad("not a JSON object") }
        guard let sig = o["signature"]?.stringValue, sig.hasPrefix("rsa-pss-sha256:") else {
            throw bad("signature must be \"rsa-pss-sha256:BASE64\"")
        }
        guard let partners = o["partners"]?.arrayValue else { throw bad("partners must be an array") }
        guard let issued = o["issuedAt"].flatMap(Self.issuedAtSeconds) else {
            throw bad("issuedAt must be Unix seconds or an RFC 3339 UTC time like 2026-11-25T10:00:00Z")
        }
        o["signature"] = nil
        guard let canonical = try? JSONValue.object(o).canonicalized() else { throw bad("contains a non-finite number") }
        let statement = Array("miniapp-partners-v1\n".utf8) + canonical + [0x0A]
        return PartnersDocument(issuedAt: issued, partners: partners, signature: sig, statement: statement, raw: bytes)
    }

    /// Checks the signature with the platform key (RSA-PSS-SHA256 over `statement`, as for
    /// packages). Throws `REGISTRY_BAD_SIGNATURE`.
    public func verify(platformKey: RSAKey) throws(MiniAppError) {
        guard let sig = SignatureField.decode(signature), RSAPSS.verify(sig, of: statement, key: platformKey) else {
            throw MiniAppError(
                .registryBadSignature,
                "the registry's partners document is not signed by the platform key; check --platform-key, or the registry serves a forged or corrupted document",
                data: ["reason": "REGISTRY_BAD_SIGNATURE"])
        }
    }

    /// The registrations, each judged on its own (`PartnerMerge`: a bad one blocks only the
    /// partner it names). Only meaningful once `verify` passed.
    public var entries: [PartnerEntry] {
        partners.enumerated().map { i, item in
            let source = "registry partners[\(i)]"
            guard let o = item.objectValue else {
                return .invalid(MiniAppError(.partnerInvalid, "partner registration \(source) must be a JSON object"), source: source, claimedIds: [])
            }
            do throws(MiniAppError) { return .valid(try PartnerRegistration(object: o, source: source), source: source) } catch {
                let id = o["id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
                return .invalid(error, source: source, claimedIds: id.map { [$0] } ?? [])
            }
        }
    }

    /// Accepts an integer, or `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
    static func issuedAtSeconds(_ v: JSONValue) -> Int64? {
        if let i = v.intValue { return i >= 0 ? i : nil }
        guard let s = v.stringValue else { return nil }
        let b = Array(s.utf8)
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":")
        else { return nil }
        // Anything between the seconds and the Z must be a fraction: ".123".
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count > 21, b[20..<(b.count - 1)].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        }
        func num(_ r: Range<Int>) -> Int64? { Int64(String(decoding: b[r], as: UTF8.self)) }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13), let mi = num(14..<16),
            let sec = num(17..<19), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61
        else { return nil }
        return daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The freshness rule: a document older than the cached one is refused (rollback of grants
    /// to a time before a revocation is an attack, cf. TUF's freeze/rollback attacks).
    public func isAcceptable(after cached: PartnersDocument?) -> Bool {
        guard let cached else { return true }
        return issuedAt >= cached.issuedAt
    }
}
