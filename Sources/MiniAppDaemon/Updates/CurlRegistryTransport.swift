import MiniAppModel
import MiniAppSystem

/// `RegistryTransport` over MiniAppSystem's libcurl client (spec/registry.md).
///
/// The registry URL is operator configuration, not program input, so loopback and private
/// addresses are allowed here (unlike `net.request`); the host is still resolved once and the
/// connection pinned to that address, the body is capped on the bytes received and the whole
/// exchange on `timeoutMillis`. `http://` is accepted only for a loopback registry (tests, a
/// local mirror); anything else must be https.
struct CurlRegistryTransport: RegistryTransport {
    let client = HTTPClient(maxConcurrent: 2, maxBacklog: 16)
    /// A CA bundle to trust instead of the system store (tests).
    var caFile: String?

    func get(_ url: String, maxBytes: Int, timeoutMillis: Int) throws(MiniAppError) -> (status: Int, body: [UInt8]) {
        let parsed: HTTPURL
        do { parsed = try HTTPURL.parse(url) } catch {
            throw MiniAppError(.invalidParams, "registry URL \(url) is invalid: \(error)")
        }
        guard let address = Self.resolve(parsed.host) else {
            throw MiniAppError(.hostUnavailable, "cannot resolve the registry host \(parsed.host)")
        }
        let loopback = address.hasPrefix("127.") || address == "::1"
        guard parsed.scheme == "https" || (parsed.scheme == "http" && loopback) else {
            throw MiniAppError(.hostUnavailable, "the registry must be https (http only on loopback): \(url)")
        }
        var req = HTTPClientRequest(url: parsed, pinnedAddress: address)
        req.allowHTTP = parsed.scheme == "http"
        req.caFile = caFile
        req.timeoutMillis = timeoutMillis
        req.connectTimeoutMillis = min(timeoutMillis, 10_000)
        req.maxResponseBytes = maxBytes
        switch client.perform(req) {
        case .success(let r): return (r.status, r.body)
        case .failure(.timedOut): throw MiniAppError(.timeout, "the registry did not answer within \(timeoutMillis) ms")
        case .failure(.responseTooLarge(let limit)):
            throw MiniAppError(.quotaExceeded, "the registry sent more than \(limit) bytes for \(url)")
        case .failure(let e): throw MiniAppError(.hostUnavailable, "registry request failed: \(e)")
        }
    }

    /// First address of `host` (numeric hosts pass through).
    static func resolve(_ host: String) -> String? {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return InetAddress.resolve(name).first.map(InetAddress.format)
    }
}
