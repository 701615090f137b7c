internal import Foundation
internal import MiniAppJSON
internal import MiniAppModel
internal import MiniAppSystem

/// A validated `net.request` (see `NetService` for the rules).
struct NetRequest: Sendable {
    var url: HTTPURL
    var method: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]?

    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// Headers the daemon owns (transport and hop-by-hop, RFC 9110 §7.6.1) — dropped.
    static let stripped: Set<String> = [
        "host", "connection", "content-length", "transfer-encoding", "upgrade", "te", "trailer", "keep-alive",
        "expect", "proxy-authorization", "proxy-authenticate", "proxy-connection",
    ]

    init(_ params: JSONValue?, limits: ServicesConfig.Net) throws(MiniAppError) {
        let p = try ServiceParams(params, method: "net.request", allowed: ["url", "method", "headers", "body"])
        let text = try p.string("url", required: true) ?? ""
        do {
            url = try HTTPURL.parse(text)
        } catch {
            throw MiniAppError(.invalidParams, "net.request: \(error.message)")
        }
        method = (try p.string("method") ?? "GET").uppercased()
        if !Self.methods.contains(method) {
            throw MiniAppError(
                .invalidParams, "net.request: method must be one of \(Self.methods.sorted().joined(separator: ", "))")
        }
        headers = try Self.headers(try p.stringMap("headers") ?? [])
        body = try Self.body(try p.value("body"), limit: limits.maxRequestBodyBytes)
        if body != nil && (method == "GET" || method == "HEAD") {
            throw MiniAppError(.invalidParams, "net.request: \(method) cannot carry a body")
        }
    }

    private init(url: HTTPURL, method: String, headers: [(name: String, value: String)], body: [UInt8]?) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
    }

    private static func headers(_ raw: [(String, String)]) throws(MiniAppError) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        for (name, value) in raw {
            let tokenChars = Set("!#$%&'*+-.^_`|~".utf8)
            let isToken = !name.isEmpty && name.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || tokenChars.contains($0)
            }
            if !isToken { throw MiniAppError(.invalidParams, "net.request: header name '\(name)' is not an HTTP token") }
            if value.utf8.contains(where: { $0 == 0x0d || $0 == 0x0a || $0 == 0 }) {
                throw MiniAppError(.invalidParams, "net.request: header '\(name)' contains CR, LF or NUL")
            }
            if stripped.contains(name.lowercased()) || name.lowercased().hasPrefix("proxy-") { continue }
            out.append((name, value))
        }
        return out
    }

    private static func body(_ value: JSONValue?, limit: Int) throws(MiniAppError) -> [UInt8]? {
        let bytes: [UInt8]
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: bytes = Array(s.utf8)
        case .object(let o)? where o.count == 1:
            guard let b64 = o["base64"]?.stringValue, let data = Data(base64Encoded: b64) else {
                throw MiniAppError(.invalidParams, "net.request: body must be a string or {\"base64\": \"…\"}")
            }
            bytes = Array(data)
        default:
            throw MiniAppError(.invalidParams, "net.request: body must be a string or {\"base64\": \"…\"}")
        }
        if bytes.count > limit {
            throw MiniAppError(.invalidParams, "net.request: body is \(bytes.count) bytes; the limit is \(limit)")
        }
        return bytes
    }

    /// The next request when `response` is a redirect; nil when it is final. The new URL is
    /// parsed relative to this one; the caller re-checks everything about it.
    func redirected(by response: HTTPClientResponse) -> Result<NetRequest, MiniAppError>? {
        guard [301, 302, 303, 307, 308].contains(response.status), let location = response.header("location") else {
            return nil
        }
        let next: HTTPURL
        do {
            next = try HTTPURL.parse(location, relativeTo: url)
        } catch {
            return .failure(MiniAppError(.invalidParams, "net.request: redirect to an invalid URL (\(error.message))"))
        }
        let toGET = response.status == 303 || (method == "POST" && (response.status == 301 || response.status == 302))
        var kept = headers
        let sameOrigin = next.scheme == url.scheme && next.host == url.host && next.port == url.port
        if !sameOrigin {
            kept.removeAll { ["authorization", "cookie"].contains($0.name.lowercased()) }
        }
        if toGET {
            kept.removeAll { $0.name.lowercased().hasPrefix("content-") }
        }
        return .success(NetRequest(
            url: next, method: toGET && method != "HEAD" ? "GET" : method, headers: kept, body: toGET ? nil : body))
    }
}

/// The reply of `net.request`.
struct NetResponse {
    let json: JSONValue

    init(_ r: HTTPClientResponse) {
        var headers = JSONObject()
        for (name, value) in r.headers {
            if case .string(let old)? = headers[name] {
                headers[name] = .string(old + ", " + value)
            } else {
                headers[name] = .string(value)
            }
        }
        let body: JSONValue
        let encoding: String
        if let text = String(validating: r.body, as: UTF8.self) {
            body = .string(text)
            encoding = "utf8"
        } else {
            body = .string(Data(r.body).base64EncodedString())
            encoding = "base64"
        }
        json = ["status": .int(Int64(r.status)), "headers": .object(headers), "body": body, "bodyEncoding": .string(encoding)]
    }
}
