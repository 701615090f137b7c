public import MiniAppSystem

/// Configuration of the built-in Bridge services (`storage`, `auth`, `net`, `system`, `log`).
///
/// Declared once, each field with its default and the reason for it (nsjail's config.proto
/// style). The defaults are the production values; tests loosen only `net` (resolver override,
/// CA file, private CIDRs) and never by touching global state.
public struct ServicesConfig: Sendable {
    /// `storage.*` limits.
    public struct Storage: Sendable {
        /// Longest key, in UTF-8 bytes (longer → INVALID_PARAMS). Default 256.
        public var maxKeyBytes: Int = 256
        /// Largest value, as serialized JSON bytes (larger → INVALID_PARAMS). Default 64 KiB.
        public var maxValueBytes: Int = 64 << 10
        /// Per-program quota on the sum of key bytes + serialized value bytes (QUOTA_EXCEEDED).
        /// Default 2 MiB.
        public var quotaBytesPerProgram: Int = 2 << 20
        /// Per-program quota on the number of keys (QUOTA_EXCEEDED). Default 1,000, which also
        /// keeps a `storage.keys` reply well under the 1 MiB message limit.
        public var quotaKeysPerProgram: Int = 1000
        /// Writes of one program queued but not yet committed (RATE_LIMITED beyond). Default 1,024:
        /// bounds the memory a program can pin (values up to `maxValueBytes` each) while the
        /// disk is slow.
        public var maxPendingWritesPerProgram: Int = 1024
        /// Database file name inside the state directory. Default `storage.sqlite`.
        public var databaseFileName: String = "storage.sqlite"
        public init() {}
    }

    /// `auth.getToken` settings.
    public struct Auth: Sendable {
        /// The `iss` claim. Default `miniappd`.
        public var issuer: String = "miniappd"
        /// Scopes a program may request (anything else → INVALID_PARAMS). Default `["basic"]`.
        public var allowedScopes: Set<String> = ["basic"]
        /// Scope used when the program asks for none. Default `basic`.
        public var defaultScope: String = "basic"
        /// Names of `session.set` claims copied into tokens. Default empty: the host's session
        /// may carry its master session token or personal data, so nothing is forwarded to a
        /// program unless listed here. Registered claim names are never overridden.
        public var forwardedClaims: Set<String> = []
        /// PEM file (PKCS#8, mode 0600) holding the Ed25519 signing key, inside the state
        /// directory. Created on first start, reused afterwards. Default `auth-ed25519.pem`.
        public var keyFileName: String = "auth-ed25519.pem"
        public init() {}
    }

    /// `net.request` settings (the egress proxy).
    public struct Net: Sendable {
        /// Ports a URL may name. Default `[443]` (spec: https on port 443 only).
        public var allowedPorts: Set<Int> = [443]
        /// Also allow `http://` URLs. Default false: cleartext would let any on-path attacker
        /// read the program's data and tokens. Tests only.
        public var allowHTTP: Bool = false
        /// PEM bundle of CA certificates to trust instead of the system store (tests use a
        /// test CA). Default nil: the system store.
        public var caFile: String? = nil
        /// Name → addresses used instead of DNS (tests map `api.partner.test` → 127.0.0.1).
        /// The addresses are still checked against the private-range policy.
        public var resolverOverride: [String: [String]] = [:]
        /// Tests only, not settable from the config file: answers every lookup instead of DNS and
        /// `resolverOverride`, called once per lookup, so a test can answer differently each time
        /// (DNS rebinding). The addresses are still checked against the private-range policy.
        public var resolverHook: (@Sendable (_ host: String) -> [String])? = nil
        /// CIDRs exempt from the private/loopback/metadata refusal, e.g. `127.0.0.0/8` in
        /// tests. Default empty. Never put cloud metadata ranges here in production.
        public var allowedPrivateCIDRs: [String] = []
        /// Most redirects followed, each re-checked (domain, scheme, port, IP). Default 5.
        public var maxRedirects: Int = 5
        /// Largest request body, in bytes after base64 decoding. Default 1 MiB.
        public var maxRequestBodyBytes: Int = 1 << 20
        /// Largest response body, counted on the bytes actually received. Default 512 KiB,
        /// so the reply (base64 at worst) fits the Bridge's 1 MiB message limit.
        public var maxResponseBytes: Int = 512 << 10
        /// TCP+TLS connect timeout per hop, seconds. Default 10.
        public var connectTimeoutSeconds: Int = 10
        /// Whole-request time budget across all hops, seconds (TIMEOUT). Default 30.
        public var totalTimeoutSeconds: Int = 30
        /// Concurrent requests in flight, daemon-wide (threads of the HTTP client). Default 16.
        public var maxConcurrentRequests: Int = 16
        /// Concurrent requests in flight per program (RATE_LIMITED beyond). Default 4, so one
        /// program pointing at a slow server cannot occupy every thread and stall the others.
        public var maxConcurrentRequestsPerProgram: Int = 4
        /// The libcurl/OpenSSL work runs in `miniappd-helper net` processes, one per program
        /// (SECURITY.md, "Helpers for untrusted bytes"). Default on; `helpers.enabled = false`
        /// only for the in-process comparison of the benchmarks.
        public var helpers = HelperSettings()
        public init() {}
    }

    /// `log.write` settings.
    public struct Log: Sendable {
        /// Longest message, in UTF-8 bytes (longer → INVALID_PARAMS). Default 8 KiB.
        public var maxMessageBytes: Int = 8 << 10
        public init() {}
    }

    /// Storage limits.
    public var storage = Storage()
    /// Token settings.
    public var auth = Auth()
    /// Egress settings.
    public var net = Net()
    /// Log settings.
    public var log = Log()
    /// The daemon's version, reported by `system.info` as `hostVersion`.
    public var hostVersion: String

    /// Defaults for everything; `hostVersion` is the daemon's own version.
    public init(hostVersion: String) {
        self.hostVersion = hostVersion
    }
}
