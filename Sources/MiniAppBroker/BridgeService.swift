public import MiniAppJSON
public import MiniAppModel

/// Who is calling the Bridge. Fixed by the daemon when it creates the worker's socketpair and
/// never taken from anything the program sends: the connection *is* the identity (the
/// confused-deputy defence of DESIGN.md "The Bridge broker").
public struct CallerIdentity: Sendable, Hashable {
    /// Worker id (`w-17`), unique for the daemon's lifetime and beyond.
    public var workerId: String
    /// Program id from the verified manifest (`com.partner.loans`).
    public var programId: String
    /// Program version from the verified manifest.
    public var version: String
    /// The partner that owns the program (matched by id prefix at install time).
    public var partnerId: String
    /// Permissions the manifest declares.
    public var declaredPermissions: Set<String>
    /// `allowedDomains` of the manifest (exact names or `*.suffix`).
    public var allowedDomains: [String]
    /// Rate classes an operator lowered for this program (partner or program overrides),
    /// fixed when the worker starts; the broker applies the lower of these and methods.json's.
    public var rateClasses: [String: RateLimit]
    /// Private networks (CIDR) an operator lets this program's `net.request` reach, beyond the
    /// daemon's `allowedPrivateCIDRs` (partner or program overrides; metadata stays refused).
    public var allowedPrivateCIDRs: [String]
    /// An operator's lower storage byte quota for this program (partner or program override);
    /// nil = the daemon's `quotaBytesPerProgram`. It can only lower that quota.
    public var storageQuotaBytes: Int?
    /// A simulated program (simulator mode): its records say so, and the inspector shows its
    /// (redacted) params and results to help debug it.
    public var simulated = false

    public init(
        workerId: String, programId: String, version: String, partnerId: String,
        declaredPermissions: Set<String>, allowedDomains: [String], rateClasses: [String: RateLimit] = [:],
        allowedPrivateCIDRs: [String] = [], storageQuotaBytes: Int? = nil
    ) {
        self.workerId = workerId
        self.programId = programId
        self.version = version
        self.partnerId = partnerId
        self.declaredPermissions = declaredPermissions
        self.allowedDomains = allowedDomains
        self.rateClasses = rateClasses
        self.allowedPrivateCIDRs = allowedPrivateCIDRs
        self.storageQuotaBytes = storageQuotaBytes
    }
}

/// How a service answers: exactly once, from any thread. A service that can answer at once
/// (e.g. `storage.get` from memory) calls it before returning, so the hot path has no thread hop.
public typealias BridgeReply = @Sendable (Result<JSONValue, MiniAppError>) -> Void

/// A built-in Bridge service (`storage`, `auth`, `net`, `system`, `log`).
///
/// The broker calls `handle` only after framing, catalogue, permission and rate-limit checks have
/// passed (spec/bridge-protocol.md, "Checks run in this order"); the service validates `params`
/// (`INVALID_PARAMS`) and does the work. It must never block the calling thread on I/O that can
/// take long (network, fsync): it hands such work to its own queue and replies from there.
public protocol BridgeService: Sendable {
    /// The methods this service serves, e.g. `["storage.get", "storage.set"]`.
    var methods: [String] { get }

    /// Serves one call. `params` is the request's `params` member (nil when absent).
    func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply)

    /// Called when a worker's connection closes (drop per-worker state).
    func workerDetached(_ caller: CallerIdentity)
}

extension BridgeService {
    public func workerDetached(_ caller: CallerIdentity) {}
}
