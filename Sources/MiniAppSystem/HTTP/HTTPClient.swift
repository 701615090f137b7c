internal import CCurl
internal import CCurlShim
internal import Foundation
internal import Synchronization

/// One HTTP exchange for `HTTPClient.perform`. No redirects are followed: the caller re-checks
/// each hop (domain, address) and sends the next request itself.
public struct HTTPClientRequest: Sendable {
    /// The URL to fetch (curl-normalized; see `HTTPURL`).
    public var url: HTTPURL
    /// Method token (`GET`, `POST`, …).
    public var method: String = "GET"
    /// Request headers, already filtered by the caller.
    public var headers: [(name: String, value: String)] = []
    /// Request body, if any.
    public var body: [UInt8]? = nil
    /// The only IP address the connection may use (inet_ntop form), resolved and checked by the
    /// caller. Pinned twice: `CURLOPT_RESOLVE` maps host:port to it, and an open-socket callback
    /// refuses any other address at connect time (DNS rebinding defence).
    public var pinnedAddress: String
    /// Allow `http://` (tests); otherwise only `https` is enabled in libcurl.
    public var allowHTTP: Bool = false
    /// CA bundle to trust instead of the system store.
    public var caFile: String? = nil
    /// CA bundle (PEM bytes) to trust instead of the system store; wins over `caFile`. The net
    /// helper gets the bundle this way: its Landlock domain cannot read the operator's file.
    public var caBundle: [UInt8]? = nil
    /// Connect (TCP + TLS) timeout, milliseconds.
    public var connectTimeoutMillis: Int = 10_000
    /// Whole-transfer timeout, milliseconds.
    public var timeoutMillis: Int = 30_000
    /// Largest response body, counted on the bytes received (no transparent decompression, so
    /// a compression bomb is counted compressed and never inflated by the daemon).
    public var maxResponseBytes: Int = 512 << 10
    /// Largest total size of response header lines.
    public var maxHeaderBytes: Int = 64 << 10
    /// `User-Agent` sent when the caller sets none.
    public var userAgent: String = "miniappd"

    public init(url: HTTPURL, pinnedAddress: String) {
        self.url = url
        self.pinnedAddress = pinnedAddress
    }
}

/// A received response.
public struct HTTPClientResponse: Sendable {
    /// Status code of the final (non-1xx) response.
    public var status: Int
    /// Header fields in order, names lowercased.
    public var headers: [(name: String, value: String)]
    /// Body bytes as received.
    public var body: [UInt8]

    /// The first value of header `name` (lowercase).
    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
}

/// Why an exchange failed.
public enum HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The timeout elapsed.
    case timedOut
    /// The response was over `maxResponseBytes` (or headers over `maxHeaderBytes`).
    case responseTooLarge(limit: Int)
    /// TLS handshake or certificate verification failed.
    case tls(String)
    /// The TCP connection failed, or libcurl tried an address other than the pinned one.
    case connect(String)
    /// Anything else libcurl reported.
    case transfer(String)
    /// The client's backlog is full.
    case busy
    /// The helper carrying the exchange died or stopped answering (crashed on the server's
    /// reply, was killed, or ended by the daemon): the daemon is fine, the exchange is lost.
    case helperFailed(String)

    public var description: String {
        switch self {
        case .timedOut: "timed out"
        case .responseTooLarge(let limit): "response larger than \(limit) bytes"
        case .tls(let m): "TLS: \(m)"
        case .connect(let m): "connect: \(m)"
        case .transfer(let m): "transfer: \(m)"
        case .busy: "too many requests in flight"
        case .helperFailed(let m): "net helper: \(m)"
        }
    }
}

/// An HTTP client on libcurl, built for an egress proxy that must not be turned against its
/// host (SSRF):
/// - TLS verification always on (peer and host name); the CA bundle is configurable for tests.
/// - Protocols limited to https (http only if the request allows it); no redirects followed.
/// - Connects only to the caller-checked address (`pinnedAddress`).
/// - No proxy (environment `https_proxy` ignored), no cookie engine, no `.netrc`, no
///   transparent decompression, a fresh connection per exchange (nothing shared between
///   programs).
/// - Response size capped on real bytes; connect and total timeouts.
///
/// Blocking work runs only on the client's own threads (at most `maxConcurrent` at a time, a
/// bounded backlog after that), never on the caller's.
public final class HTTPClient: Sendable {
    private struct Pool {
        var running = 0
        var backlog: [@Sendable () -> Void] = []
    }
    private let pool = Mutex(Pool())
    private let maxConcurrent: Int
    private let maxBacklog: Int

    /// Initialises libcurl once per process, before any thread uses it (curl_global_init is not
    /// thread-safe in libcurl 7.x).
    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    /// `maxConcurrent` threads at most; `maxBacklog` queued jobs beyond that (then `busy`).
    public init(maxConcurrent: Int = 8, maxBacklog: Int = 256) {
        self.maxConcurrent = max(1, maxConcurrent)
        self.maxBacklog = max(0, maxBacklog)
        _ = Self.globalInit
    }

    /// Runs `job` on one of the client's threads. Returns false (and does not run it) when the
    /// backlog is full.
    @discardableResult
    public func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let start: Bool? = pool.withLock { p in
            if p.running < maxConcurrent {
                p.running += 1
                return true
            }
            if p.backlog.count >= maxBacklog { return nil }
            p.backlog.append(job)
            return false
        }
        guard let start else { return false }
        if start { spawn(job) }
        return true
    }

    private func spawn(_ first: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            var job: (@Sendable () -> Void)? = first
            while let current = job {
                current()
                job = pool.withLock { p in
                    if p.backlog.isEmpty {
                        p.running -= 1
                        return nil
                    }
                    return p.backlog.removeFirst()
                }
            }
        }
        thread.name = "miniappd-http"
        thread.start()
    }

    /// `perform` on the client's threads; `completion` runs there.
    public func send(
        _ request: HTTPClientRequest, completion: @escaping @Sendable (Result<HTTPClientResponse, HTTPClientError>) -> Void
    ) {
        if !submit({ completion(self.perform(request)) }) { completion(.failure(.busy)) }
    }

    /// Performs one exchange, blocking the calling thread: call it only from `submit` jobs or
    /// other threads that may block.
    public func perform(_ request: HTTPClientRequest) -> Result<HTTPClientResponse, HTTPClientError> {
        guard Self.globalInit, let easy = curl_easy_init() else { return .failure(.transfer("libcurl unavailable")) }
        let transfer = CurlTransfer(easy: easy, request: request)
        defer { transfer.cleanup() }
        if let error = transfer.configure() { return .failure(error) }
        return transfer.run()
    }
}
