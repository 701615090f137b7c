public import MiniAppJSON

/// The daemon's configuration: embedded defaults, then the optional config file (`--config`,
/// JSON with `//` comments), then command-line flags. Every field is documented in the README
/// ("Configuration"); unknown keys are refused so a typo never silently keeps a default.
public struct DaemonConfig: Sendable, Equatable {
    /// Packages, per-program data, the storage database, keys, audit log.
    public var stateDir = "/var/lib/miniappd"
    /// The control socket path (ignored when systemd passes a socket via LISTEN_FDS).
    public var controlSocket = "/run/miniappd/control.sock"
    /// Policy directory; nil = the policies embedded in the binary (the repo's `policies/`).
    public var policyDir: String?
    /// Host version packages are checked against; nil = the daemon's own version.
    public var hostVersion: String?
    /// Registry base URL; nil = updates and grant refresh from the network are off.
    public var registry: String?
    /// Platform public key (PEM) that signs the registry's partners document.
    public var platformKey: String?
    /// Uids allowed on the control socket besides root and the daemon's own uid.
    public var controlAllowedUIDs: [UInt32] = []
    /// Gids allowed on the control socket (a peer whose primary or a supplementary gid is listed).
    public var controlAllowedGIDs: [UInt32] = []
    /// Group names allowed like `controlAllowedGIDs`, resolved at start; a group that does not
    /// exist admits nobody. The default is the group the systemd socket unit gives the socket
    /// (`SocketGroup=miniappd`), so that its members can use the socket the unit lets them reach.
    public var controlAllowedGroups: [String] = ["miniappd"]
    /// Prometheus endpoint: `127.0.0.1:PORT` or `unix:/path`; nil = off.
    public var metricsListen: String?
    /// `auto` (privileged when root), `privileged` or `rootless`.
    public var workerMode = "auto"
    /// Started as root: the user the daemon drops to once the privileged spawner runs, `NAME`
    /// or `UID:GID`; nil = `miniappd` when that user exists (else the daemon stays root).
    public var user: String?
    /// Started as root: drop to `user` (false keeps the single-process design, root throughout).
    public var privilegeSeparation = true
    /// The socket of an already running spawner service (`miniappd-spawner --listen`,
    /// systemd/miniappd-spawner.service) to use instead of starting one: the daemon may then
    /// start unprivileged and still run privileged workers. nil: start the spawner as a child.
    public var spawnerSocket: String?
    /// Stop a worker after this many seconds without a Bridge call; 0 = never.
    public var idleTimeoutSeconds = 0
    /// Keep warm jails (namespaces and shared mounts made ahead) for the next launches
    /// (privileged mode only).
    public var warmJails = true
    /// Restarts of a crashed worker before giving up.
    public var maxRestarts = 3
    /// First restart delay; doubles each time.
    public var restartBackoffMillis = 500
    /// Default grace between SIGTERM and SIGKILL on stop.
    public var stopGraceMillis = 2000
    /// Upper bound on live workers.
    public var maxWorkers = 1000
    /// Bridge and control message size limit (bytes, newline excluded).
    public var maxMessageBytes = 1 << 20
    /// Include params/results in inspector events (tokens are always redacted).
    public var inspectorPayloads = false
    /// Simulator mode (`miniappd --simulator`, debug builds only; never from a config file):
    /// unsigned programs from a directory or a loopback URL.
    public var simulator = false
    /// Background update check interval; 0 = only on `updates.check`.
    public var updateCheckIntervalSeconds = 3600
    /// Upper bound on any registry request; a slow registry never delays a launch beyond it.
    public var registryTimeoutMillis = 3000
    /// A launch starts a background update check of its program at most this often.
    public var updateCheckMinIntervalSeconds = 300
    /// Failures at start that roll a newly activated version back; 0 = never roll back.
    public var rollbackCrashCount = 3
    /// A worker failure counts toward `rollbackCrashCount` when it ends this soon after its start.
    public var rollbackWindowSeconds = 60
    /// Built-in service settings (quotas, net.request limits, …), passed through to the services.
    public var services: JSONObject = [:]
    /// `prewarm.maxWorkers`: prewarmed workers held at most (`programs.prewarm`); 0 = prewarm off.
    public var prewarmMaxWorkers = 4
    /// `prewarm.maxMemoryMiB`: memory all prewarmed workers may use together; over it the least
    /// recently used are stopped.
    public var prewarmMaxMemoryMiB = 256
    /// `prewarm.recent`: after a node or Python program's worker exits cleanly, prewarm it again
    /// for its next launch (within the same budget).
    public var prewarmRecent = false

    /// Bytes of the state filesystem no /data volume or install may take (kept for storage,
    /// the audit trail and package state).
    public var dataReserveBytes = 256 << 20
    /// Inodes of the state filesystem kept the same way.
    public var dataReserveInodes = 4096

    /// The embedded defaults.
    public init() {}

    /// Applies a config file's members over `self`. Throws on unknown keys and wrong types.
    public mutating func apply(file value: JSONValue) throws(ConfigError) {
        guard let obj = value.objectValue else { throw ConfigError(field: "(root)", problem: "must be a JSON object") }
        for (key, v) in obj {
            try apply(key: key, value: v)
        }
    }

    private mutating func apply(key: String, value v: JSONValue) throws(ConfigError) {
        switch key {
        case "stateDir": stateDir = try Self.string(v, key)
        case "controlSocket": controlSocket = try Self.string(v, key)
        case "policyDir": policyDir = try Self.optionalString(v, key)
        case "hostVersion": hostVersion = try Self.optionalString(v, key)
        case "registry": registry = try Self.optionalString(v, key)
        case "platformKey": platformKey = try Self.optionalString(v, key)
        case "controlAllowedUids": controlAllowedUIDs = try Self.ids(v, key)
        case "controlAllowedGids": controlAllowedGIDs = try Self.ids(v, key)
        case "controlAllowedGroups": controlAllowedGroups = try Self.names(v, key)
        case "metricsListen": metricsListen = try Self.optionalString(v, key)
        case "workerMode":
            workerMode = try Self.string(v, key)
            guard ["auto", "privileged", "rootless"].contains(workerMode) else {
                throw ConfigError(field: key, problem: "must be auto, privileged or rootless")
            }
        case "idleTimeoutSeconds": idleTimeoutSeconds = try Self.int(v, key, 0...86_400 * 365)
        case "maxRestarts": maxRestarts = try Self.int(v, key, 0...1000)
        case "restartBackoffMillis": restartBackoffMillis = try Self.int(v, key, 0...3_600_000)
        case "stopGraceMillis": stopGraceMillis = try Self.int(v, key, 0...600_000)
        case "maxWorkers": maxWorkers = try Self.int(v, key, 1...100_000)
        case "maxMessageBytes": maxMessageBytes = try Self.int(v, key, 1024...(64 << 20))
        case "inspectorPayloads": inspectorPayloads = try Self.bool(v, key)
        case "warmJails": warmJails = try Self.bool(v, key)
        case "user": user = try Self.optionalString(v, key)
        case "privilegeSeparation": privilegeSeparation = try Self.bool(v, key)
        case "spawnerSocket": spawnerSocket = try Self.optionalString(v, key)
        case "updateCheckIntervalSeconds": updateCheckIntervalSeconds = try Self.int(v, key, 0...86_400 * 30)
        case "registryTimeoutMillis": registryTimeoutMillis = try Self.int(v, key, 100...600_000)
        case "updateCheckMinIntervalSeconds": updateCheckMinIntervalSeconds = try Self.int(v, key, 0...86_400 * 30)
        case "rollbackCrashCount": rollbackCrashCount = try Self.int(v, key, 0...1000)
        case "rollbackWindowSeconds": rollbackWindowSeconds = try Self.int(v, key, 1...86_400)
        case "services":
            guard let o = v.objectValue else { throw ConfigError(field: key, problem: "must be an object") }
            services = o
        case "prewarm": try applyPrewarm(v)
        case "dataReserveBytes": dataReserveBytes = try Self.int(v, key, 0...(1 << 44))
        case "dataReserveInodes": dataReserveInodes = try Self.int(v, key, 0...(1 << 32))
        default:
            throw ConfigError(field: key, problem: "unknown setting (see README \"Configuration\" for the list)")
        }
    }

    private mutating func applyPrewarm(_ v: JSONValue) throws(ConfigError) {
        guard let o = v.objectValue else { throw ConfigError(field: "prewarm", problem: "must be an object") }
        for (key, x) in o {
            switch key {
            case "maxWorkers": prewarmMaxWorkers = try Self.int(x, "prewarm.maxWorkers", 0...1000)
            case "maxMemoryMiB": prewarmMaxMemoryMiB = try Self.int(x, "prewarm.maxMemoryMiB", 1...1 << 20)
            case "recent": prewarmRecent = try Self.bool(x, "prewarm.recent")
            default: throw ConfigError(field: "prewarm.\(key)", problem: "unknown setting (maxWorkers, maxMemoryMiB, recent)")
            }
        }
    }

    static func string(_ v: JSONValue, _ key: String) throws(ConfigError) -> String {
        guard let s = v.stringValue, !s.isEmpty else { throw ConfigError(field: key, problem: "must be a non-empty string") }
        return s
    }

    static func optionalString(_ v: JSONValue, _ key: String) throws(ConfigError) -> String? {
        if v.isNull { return nil }
        return try string(v, key)
    }

    static func bool(_ v: JSONValue, _ key: String) throws(ConfigError) -> Bool {
        guard let b = v.boolValue else { throw ConfigError(field: key, problem: "must be true or false") }
        return b
    }

    static func int(_ v: JSONValue, _ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let i = v.intValue, let n = Int(exactly: i), range.contains(n) else {
            throw ConfigError(field: key, problem: "must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    static func names(_ v: JSONValue, _ key: String) throws(ConfigError) -> [String] {
        guard let a = v.arrayValue else { throw ConfigError(field: key, problem: "must be an array of group names") }
        var out: [String] = []
        for x in a {
            guard let s = x.stringValue, !s.isEmpty, !s.contains("\u{0}") else {
                throw ConfigError(field: key, problem: "must be an array of non-empty group names")
            }
            out.append(s)
        }
        return out
    }

    static func ids(_ v: JSONValue, _ key: String) throws(ConfigError) -> [UInt32] {
        guard let a = v.arrayValue else { throw ConfigError(field: key, problem: "must be an array of numeric ids") }
        var out: [UInt32] = []
        for x in a {
            guard let i = x.intValue, let u = UInt32(exactly: i) else {
                throw ConfigError(field: key, problem: "must be an array of numeric ids")
            }
            out.append(u)
        }
        return out
    }
}

/// A configuration value that cannot be used; names the field and says what it must be.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The setting's name.
    public let field: String
    /// What is wrong with it.
    public let problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "config: \(field): \(problem)" }
}
