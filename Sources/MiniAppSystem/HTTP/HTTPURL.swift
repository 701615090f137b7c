internal import CCurl

/// A URL as libcurl's own parser (`curl_url`) understands it.
///
/// Checking a URL with one parser and fetching it with another is the root of a whole class of
/// SSRF bypasses (Orange Tsai, "A New Era of SSRF", Black Hat 2017: `http://a@b@c/`,
/// `http://allowed\@evil/`…): the checker sees one host, the fetcher connects to another. So the
/// host the policy checks comes from the very parser the transfer uses, and the transfer is
/// given curl's re-serialized URL, not the program's string.
public struct HTTPURL: Sendable, Equatable {
    /// Lowercased scheme (`https`, `http`).
    public let scheme: String
    /// Lowercased host as curl parsed it; IPv6 literals keep their brackets (`[::1]`).
    public let host: String
    /// Explicit port, or the scheme's default.
    public let port: Int
    /// True when the URL carries `user[:password]@`.
    public let hasUserInfo: Bool
    /// The URL as curl re-serializes it, without fragment: what the transfer fetches.
    public let text: String

    /// Why a URL was refused by the parser.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Parses `string` (absolute), or resolves it against `base` when given (a redirect's
    /// `Location` may be relative). At most 8 KiB; no control characters or spaces.
    public static func parse(_ string: String, relativeTo base: HTTPURL? = nil) throws(ParseError) -> HTTPURL {
        if string.utf8.count > 8192 { throw ParseError(message: "URL is longer than 8192 bytes") }
        if string.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }) {
            throw ParseError(message: "URL contains spaces or control characters")
        }
        guard let h = curl_url() else { throw ParseError(message: "out of memory") }
        defer { curl_url_cleanup(h) }
        if let base, curl_url_set(h, CURLUPART_URL, base.text, 0) != CURLUE_OK {
            throw ParseError(message: "invalid base URL")
        }
        let rc = curl_url_set(h, CURLUPART_URL, string, 0)
        if rc != CURLUE_OK {
            throw ParseError(message: "invalid URL (\(String(cString: curl_url_strerror(rc))))")
        }
        _ = curl_url_set(h, CURLUPART_FRAGMENT, nil, 0)  // never sent on the wire anyway
        guard let scheme = get(h, CURLUPART_SCHEME, 0), let host = get(h, CURLUPART_HOST, 0),
            let portText = get(h, CURLUPART_PORT, UInt32(CURLU_DEFAULT_PORT)), let port = Int(portText),
            let text = get(h, CURLUPART_URL, 0)
        else { throw ParseError(message: "URL needs a scheme and a host") }
        let hasUser = get(h, CURLUPART_USER, 0) != nil || get(h, CURLUPART_PASSWORD, 0) != nil
        return HTTPURL(scheme: scheme.lowercased(), host: host.lowercased(), port: port, hasUserInfo: hasUser, text: text)
    }

    private static func get(_ h: OpaquePointer, _ part: CURLUPart, _ flags: UInt32) -> String? {
        var out: UnsafeMutablePointer<CChar>?
        guard curl_url_get(h, part, &out, flags) == CURLUE_OK, let out else { return nil }
        defer { curl_free(out) }
        return String(cString: out)
    }
}
