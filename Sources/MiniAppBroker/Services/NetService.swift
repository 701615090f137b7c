public import MiniAppJSON
public import MiniAppModel
internal import MiniAppSystem
internal import Foundation
internal import Synchronization

/// `net.request {url, method?, headers?, body?}` → `{status, headers, body, bodyEncoding}`: the
/// program's only way to the network, as an egress proxy that checks every hop.
///
/// Per hop (the first request and every redirect):
/// 1. The URL is parsed by libcurl's parser (`HTTPURL`, no parser differential). `https` only
///    (`http` if `config.net.allowHTTP`), port in `config.net.allowedPorts` (default 443), no
///    `user:pass@`, host an ASCII DNS name (IDNs in punycode) → else **INVALID_PARAMS**.
/// 2. The host must match the caller's `allowedDomains`: `api.example.com` exactly, or
///    `*.example.com` = any subdomain of example.com, never example.com itself; an IP literal
///    (in any numeric form) never matches → **DOMAIN_NOT_ALLOWED**.
/// 3. The daemon resolves the name itself (or `config.net.resolverOverride`) and refuses if
///    any address is not public unicast (`NetAddressPolicy`: loopback, private, link-local and
///    cloud metadata, CGNAT, ULA, multicast…, unless in `allowedPrivateCIDRs`) →
///    **DOMAIN_NOT_ALLOWED** with `data.reason = "address"`.
/// 4. The connection is pinned to the checked address (DNS rebinding: a second lookup by
///    libcurl could answer 127.0.0.1 — it is never made, and any other address is refused at
///    connect time).
///
/// Redirects (301/302/303/307/308 with `Location`) are followed up to `maxRedirects`, each
/// re-checked from step 1 — an allowed host redirecting to `http://169.254.169.254/` is the
/// classic redirect-based SSRF. 303, and 301/302 after POST, continue as GET without body;
/// `Authorization` and `Cookie` are dropped when the redirect leaves the origin (cf. curl
/// CVE-2018-1000007). More redirects than allowed → INVALID_PARAMS.
///
/// Request headers: names must be HTTP tokens and values free of CR/LF/NUL (header injection,
/// CWE-113) → INVALID_PARAMS. Hop-by-hop and transport headers (`Host`, `Connection`,
/// `Content-Length`, `Transfer-Encoding`, `Upgrade`, `TE`, `Trailer`, `Keep-Alive`, `Expect`,
/// `Proxy-*`) are stripped: the daemon owns the transport, and a program-chosen `Host` would
/// let it reach a virtual host other than the checked one. `Cookie` and `Authorization` are
/// passed: the daemon keeps no cookie jar or credentials of its own, so they can only carry
/// what the program already has.
///
/// Bodies: request `body` is a string sent as UTF-8, or `{"base64": "…"}` for binary. The
/// response `body` is a string when the bytes are valid UTF-8 (`bodyEncoding: "utf8"`), else
/// base64 (`bodyEncoding: "base64"`). Response headers: names lowercased, repeated fields joined
/// with ", ".
///
/// Errors: bad URL, scheme, port, method, header or body → INVALID_PARAMS; host not allowed,
/// IP literal, non-public address, unresolvable name → DOMAIN_NOT_ALLOWED (`data.reason`:
/// absent, `address`, `dns`); response over `maxResponseBytes` → QUOTA_EXCEEDED
/// (`data.reason = "response-size"`); over `totalTimeoutSeconds` → TIMEOUT; connection or TLS
/// verification failure → HOST_UNAVAILABLE (the destination is unavailable; details only in the
/// daemon's log); the net helper carrying the exchange died (crashed on the server's reply, was
/// killed) → HOST_UNAVAILABLE, and the program's next call gets a fresh helper; daemon-wide
/// backlog full → RATE_LIMITED.
///
/// libcurl and OpenSSL run in `miniappd-helper net` (one per program, see `NetHelperPool`),
/// never in the daemon: every step above is taken here and sent to the helper as data.
public final class NetService: BridgeService {
    public let methods = ["net.request"]
    private let config: ServicesConfig.Net
    private let policy: NetAddressPolicy
    private let client: HTTPClient
    /// The helpers that perform the exchanges (nil: in this process, `helpers.enabled` false).
    private let helpers: NetHelperPool?
    private let userAgent: String
    /// Requests in flight per program id.
    private let inFlight = Mutex<[String: Int]>([:])

    /// Throws INTERNAL for an invalid `allowedPrivateCIDRs` entry.
    public init(config: ServicesConfig) throws(MiniAppError) {
        self.config = config.net
        policy = try NetAddressPolicy(allowedPrivateCIDRs: config.net.allowedPrivateCIDRs)
        client = HTTPClient(maxConcurrent: config.net.maxConcurrentRequests)
        helpers = config.net.helpers.enabled
            ? try NetHelperPool(settings: config.net.helpers, caFile: config.net.caFile, ports: config.net.allowedPorts) : nil
        userAgent = "miniappd/\(config.hostVersion)"
    }

    public func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        do throws(MiniAppError) {
            guard method == "net.request" else { throw MiniAppError.unservedMethod(method, service: "net") }
            let request = try NetRequest(params, limits: config)
            let deadline = monotonicNanos() + UInt64(max(1, config.totalTimeoutSeconds)) * 1_000_000_000
            try acquireSlot(caller.programId)
            let accepted = client.submit { [self] in
                let result = run(request, caller: caller, deadline: deadline).map(\.json)
                releaseSlot(caller.programId)
                reply(result)
            }
            if !accepted {
                releaseSlot(caller.programId)
                throw MiniAppError(.rateLimited, "net.request: too many requests in flight in the daemon; retry later")
            }
        } catch {
            reply(.failure(error))
        }
    }

    /// The pid of the net helper serving `programId`, if one runs (tests, the log).
    public func helperPID(for programId: String) -> Int32? { helpers?.pid(for: programId) }

    private func acquireSlot(_ program: String) throws(MiniAppError) {
        let limit = config.maxConcurrentRequestsPerProgram
        let ok = inFlight.withLock { m in
            let n = m[program, default: 0]
            if n >= limit { return false }
            m[program] = n + 1
            return true
        }
        if !ok {
            throw MiniAppError(
                .rateLimited, "net.request: at most \(limit) requests in flight per program; wait for one to finish")
        }
    }

    private func releaseSlot(_ program: String) {
        inFlight.withLock { m in
            let n = (m[program] ?? 1) - 1
            m[program] = n > 0 ? n : nil
        }
    }

    /// The hop loop; runs on the HTTP client's threads (it blocks on DNS and the network).
    private func run(_ first: NetRequest, caller: CallerIdentity, deadline: UInt64) -> Result<NetResponse, MiniAppError> {
        var request = first
        var hops = 0
        while true {
            let response: HTTPClientResponse
            switch hop(request, caller: caller, deadline: deadline) {
            case .failure(let e): return .failure(e)
            case .success(let r): response = r
            }
            guard let next = request.redirected(by: response) else { return .success(NetResponse(response)) }
            hops += 1
            if hops > config.maxRedirects {
                return .failure(MiniAppError(
                    .invalidParams, "net.request: more than \(config.maxRedirects) redirects; request the final URL directly"))
            }
            switch next {
            case .failure(let e): return .failure(e)
            case .success(let r): request = r
            }
        }
    }

    /// Checks one URL (scheme, port, domain, addresses) and performs the exchange pinned to a
    /// checked address.
    private func hop(_ request: NetRequest, caller: CallerIdentity, deadline: UInt64) -> Result<HTTPClientResponse, MiniAppError> {
        let url = request.url
        do throws(MiniAppError) {
            try checkSchemeAndPort(url)
            try checkDomain(url.host, caller: caller)
        } catch {
            return .failure(error)
        }
        // One lookup per hop, and the connection uses its answer: a second lookup between the
        // check and the connect is what DNS rebinding exploits.
        let addresses = config.resolverHook.map { $0(url.host).compactMap(IPAddress.init) }
            ?? NetAddressPolicy.resolve(url.host, override: config.resolverOverride)
        // IPv4 first: a node without IPv6 egress would otherwise fail on AAAA-first answers.
        guard let pinned = addresses.first(where: \.isV4) ?? addresses.first else {
            return .failure(MiniAppError(.domainNotAllowed, "net.request: \(url.host) does not resolve", data: ["reason": "dns"]))
        }
        let extra = caller.allowedPrivateCIDRs.compactMap(CIDR.init)
        if let bad = addresses.first(where: { !policy.permits($0, extra: extra) }) {
            return .failure(MiniAppError(
                .domainNotAllowed, "net.request: \(url.host) resolves to \(bad), a non-public address; refused",
                data: ["reason": "address"]))
        }
        let now = monotonicNanos()
        guard now < deadline else { return .failure(Self.timeout(config)) }
        var req = HTTPClientRequest(url: url, pinnedAddress: pinned.description)
        req.method = request.method
        req.headers = request.headers
        req.body = request.body
        req.allowHTTP = config.allowHTTP
        req.caFile = config.caFile
        req.timeoutMillis = Int((deadline - now) / 1_000_000) + 1
        req.connectTimeoutMillis = min(req.timeoutMillis, config.connectTimeoutSeconds * 1000)
        req.maxResponseBytes = config.maxResponseBytes
        req.userAgent = userAgent
        let result = helpers.map { $0.perform(req, key: caller.programId) } ?? client.perform(req)
        return result.mapError { Self.map($0, url: url, config: config) }
    }

    private func checkSchemeAndPort(_ url: HTTPURL) throws(MiniAppError) {
        if url.scheme != "https" && !(url.scheme == "http" && config.allowHTTP) {
            throw MiniAppError(.invalidParams, "net.request: only https URLs are allowed (got \(url.scheme))")
        }
        if !config.allowedPorts.contains(url.port) {
            let ports = config.allowedPorts.sorted().map(String.init).joined(separator: ", ")
            throw MiniAppError(.invalidParams, "net.request: port \(url.port) is not allowed (allowed: \(ports))")
        }
        if url.hasUserInfo {
            throw MiniAppError(.invalidParams, "net.request: URLs with user:password@ are refused; send an Authorization header")
        }
    }

    private func checkDomain(_ host: String, caller: CallerIdentity) throws(MiniAppError) {
        if NetAddressPolicy.isIPLiteral(host) {
            throw MiniAppError(
                .domainNotAllowed, "net.request: IP addresses are refused; use a host name from allowedDomains",
                data: ["host": host])
        }
        let ldh = host.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e }
        if !ldh || host.isEmpty || host.hasPrefix(".") || host.hasSuffix(".") || host.contains("..") {
            throw MiniAppError(.invalidParams, "net.request: host '\(host)' is not an ASCII DNS name (use punycode for IDNs)")
        }
        if !Self.domainAllowed(host, patterns: caller.allowedDomains) {
            throw MiniAppError(
                .domainNotAllowed, "net.request: \(host) is not in the program's allowedDomains", data: ["host": host])
        }
    }

    /// `host` matches a pattern exactly, or `*.suffix` matches any name ending in `.suffix`
    /// (subdomains only: the apex `suffix` itself does not match).
    public static func domainAllowed(_ host: String, patterns: [String]) -> Bool {
        patterns.contains { raw in
            let p = raw.lowercased()
            if p.hasPrefix("*.") {
                let suffix = String(p.dropFirst(1))  // ".example.com"
                return suffix.count > 1 && host.hasSuffix(suffix) && host.count > suffix.count
            }
            return host == p
        }
    }

    private static func timeout(_ config: ServicesConfig.Net) -> MiniAppError {
        MiniAppError(.timeout, "net.request: no complete response within \(config.totalTimeoutSeconds) s")
    }

    /// How client failures reach the program: TIMEOUT for time, QUOTA_EXCEEDED for size, and
    /// HOST_UNAVAILABLE for a server that cannot be reached or fails TLS verification (the
    /// destination, not the daemon, is at fault; the message says which).
    static func map(_ error: HTTPClientError, url: HTTPURL, config: ServicesConfig.Net) -> MiniAppError {
        switch error {
        case .timedOut: return timeout(config)
        case .responseTooLarge(let limit):
            return MiniAppError(
                .quotaExceeded, "net.request: the response from \(url.host) is larger than \(limit) bytes",
                data: ["reason": "response-size"])
        case .tls(let m):
            return MiniAppError(.hostUnavailable, "net.request: TLS verification of \(url.host) failed", cause: HTTPErrorText(m))
        case .connect(let m):
            return MiniAppError(.hostUnavailable, "net.request: cannot connect to \(url.host)", cause: HTTPErrorText(m))
        case .transfer(let m):
            return MiniAppError(.hostUnavailable, "net.request: the exchange with \(url.host) failed", cause: HTTPErrorText(m))
        case .busy:
            return MiniAppError(.rateLimited, "net.request: too many requests in flight in the daemon; retry later")
        case .helperFailed(let m):
            return MiniAppError(
                .hostUnavailable, "net.request: the exchange with \(url.host) was lost (the net helper stopped); retry the request",
                cause: HTTPErrorText(m))
        }
    }
}

/// A libcurl message kept as an error cause (for the daemon's log only).
struct HTTPErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ s: String) { description = s }
}
