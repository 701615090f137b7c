public import MiniAppModel
internal import Synchronization
import Glibc

/// `HTTPClient.perform` carried out by a `miniappd-helper net` process instead of in the
/// daemon: libcurl and OpenSSL parse the server's bytes there, under the helper's jail
/// (SECURITY.md, "Helpers for untrusted bytes"). Every decision stays with the caller — the URL,
/// the pinned address, the limits — and is sent as data; the reply is parsed as hostile.
///
/// One helper per key (the net service keys by program id), so a helper compromised by one
/// program's server sees only that program's exchanges, and a crash fails only that program's
/// calls in flight. Idle helpers are ended after `idleSeconds`.
public final class NetHelperPool: Sendable {
    private let settings: HelperSettings
    private let hello: HelperHello
    private let helpers = Mutex<[String: HelperSupervisor]>([:])
    private let idleNanos: UInt64

    /// Read-only trees of the host the net helper may open: CA stores and OpenSSL's
    /// configuration, and the libraries it may load lazily. Nothing else of the host's files.
    public static let readPaths = [
        "/etc/ssl", "/etc/pki", "/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/lib/ssl", "/usr/local/share/ca-certificates",
        "/usr/lib", "/lib", "/lib64", "/usr/lib64",
    ]

    /// `caFile` is read here, by the daemon, and handed to helpers as bytes; `ports` are the
    /// only TCP ports a helper may connect to (Landlock, where the kernel has network rules).
    public init(settings: HelperSettings, caFile: String?, ports: Set<Int>, idleSeconds: Int = 60) throws(MiniAppError) {
        self.settings = settings
        var bundle: [UInt8]? = nil
        if let caFile {
            do { bundle = try OwnedFD.open(caFile, O_RDONLY | O_CLOEXEC).readAll(limit: 4 << 20) } catch {
                throw MiniAppError(.internal, "cannot read the CA bundle \(caFile) for the net helper: \(error)")
            }
        }
        let ids = settings.effectiveIDs
        hello = HelperHello(
            uid: ids.uid, gid: ids.gid, seccompFilters: try settings.seccomp(role: "net"), readPaths: Self.readPaths,
            connectPorts: ports.filter { $0 > 0 && $0 < 65536 }.sorted().map { UInt16($0) }, caBundle: bundle, isolateNetwork: false)
        idleNanos = UInt64(max(1, idleSeconds)) * 1_000_000_000
    }

    deinit { helpers.withLock { $0.values.forEach { $0.stop() } } }

    /// The helper of `key`, created if needed; idle helpers of other keys are ended on the way.
    public func supervisor(for key: String) -> HelperSupervisor {
        let (mine, idle) = helpers.withLock { m -> (HelperSupervisor, [HelperSupervisor]) in
            var idle: [HelperSupervisor] = []
            for (k, s) in m where k != key && s.isIdle(for: idleNanos) {
                idle.append(s)
                m[k] = nil
            }
            if let s = m[key] { return (s, idle) }
            var launch = HelperLaunch(executable: settings.executable, role: "net", hello: hello, maxReplyPayload: 64 << 20)
            launch.environment = settings.environment
            let fixed = launch
            let s = HelperSupervisor { () throws(MiniAppError) in fixed }
            m[key] = s
            return (s, idle)
        }
        idle.forEach { $0.stop() }
        return mine
    }

    /// The running helper's pid for `key`, if any (tests).
    public func pid(for key: String) -> Int32? { helpers.withLock { $0[key] }?.currentPID }

    /// Performs `request` in `key`'s helper. Blocks: call from the HTTP client's threads.
    public func perform(_ request: HTTPClientRequest, key: String) -> Result<HTTPClientResponse, HTTPClientError> {
        let wire = HelperNetRequest(
            url: request.url.text, method: request.method, headers: request.headers, body: request.body, pinnedAddress: request.pinnedAddress,
            allowHTTP: request.allowHTTP, connectTimeoutMillis: request.connectTimeoutMillis, timeoutMillis: request.timeoutMillis,
            maxResponseBytes: request.maxResponseBytes, maxHeaderBytes: request.maxHeaderBytes, userAgent: request.userAgent)
        // libcurl enforces the time limit in the helper; the daemon allows 2 s more before it
        // ends a helper that does not answer.
        switch supervisor(for: key).call(wire.frame(id: 0), timeoutMillis: request.timeoutMillis + 2000) {
        case .failure(.timedOut): return .failure(.timedOut)
        case .failure(.died(let why)): return .failure(.helperFailed(why))
        case .success(let frame): return Self.decode(frame, limit: request.maxResponseBytes)
        }
    }

    static func decode(_ frame: HelperFrame, limit: Int) -> Result<HTTPClientResponse, HTTPClientError> {
        do throws(HelperWireError) {
            if frame.kind == .failure {
                let f = try HelperFailure(frame)
                switch f.kind {
                case "timedOut": return .failure(.timedOut)
                case "tooLarge": return .failure(.responseTooLarge(limit: limit))
                case "tls": return .failure(.tls(f.message))
                case "connect": return .failure(.connect(f.message))
                default: return .failure(.transfer(f.message))
                }
            }
            let r = try HelperNetResponse(frame, maxBody: limit)
            return .success(HTTPClientResponse(status: r.status, headers: r.headers, body: r.body))
        } catch {
            return .failure(.helperFailed("its reply was refused: \(error)"))
        }
    }
}

/// The net helper's side: one exchange per request frame, with the same `CurlTransfer` the
/// daemon used in-process.
public enum NetHelperRole {
    /// Runs the helper: libcurl initialised (reads OpenSSL's configuration) before the jail,
    /// then served until the daemon closes the socket.
    public static func run() -> Never {
        let client = HTTPClient(maxConcurrent: 1, maxBacklog: 0)
        let hello = HelperServer.helloAndConfine(trees: [])
        let ca = hello.caBundle
        HelperServer.serve(concurrent: true) { frame in handle(frame, client: client, caBundle: ca) }
        exit(0)
    }

    static func handle(_ frame: HelperFrame, client: HTTPClient, caBundle: [UInt8]?) -> HelperFrame {
        let wire: HelperNetRequest
        do { wire = try HelperNetRequest(frame) } catch {
            return HelperFailure(kind: "transfer", message: "\(error)").frame(id: frame.id)
        }
        let url: HTTPURL
        do { url = try HTTPURL.parse(wire.url) } catch {
            return HelperFailure(kind: "transfer", message: "the URL does not parse: \(error)").frame(id: frame.id)
        }
        var r = HTTPClientRequest(url: url, pinnedAddress: wire.pinnedAddress)
        r.method = wire.method
        r.headers = wire.headers
        r.body = wire.body
        r.allowHTTP = wire.allowHTTP
        r.caBundle = caBundle
        r.connectTimeoutMillis = wire.connectTimeoutMillis
        r.timeoutMillis = wire.timeoutMillis
        r.maxResponseBytes = wire.maxResponseBytes
        r.maxHeaderBytes = wire.maxHeaderBytes
        r.userAgent = wire.userAgent
        switch client.perform(r) {
        case .success(let resp):
            return HelperNetResponse(status: resp.status, headers: resp.headers, body: resp.body).frame(id: frame.id)
        case .failure(let e):
            let kind: String
            switch e {
            case .timedOut: kind = "timedOut"
            case .responseTooLarge: kind = "tooLarge"
            case .tls: kind = "tls"
            case .connect: kind = "connect"
            default: kind = "transfer"
            }
            return HelperFailure(kind: kind, message: "\(e)").frame(id: frame.id)
        }
    }
}
