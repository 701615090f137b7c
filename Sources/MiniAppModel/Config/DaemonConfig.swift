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
        for (key, field) in try ConfigField(config: value, at: "").object().members {
            try apply(key: key, field)
        }
    }

    private mutating func apply(key: String, _ x: ConfigField) throws(ConfigError) {
        switch key {
        case "stateDir": stateDir = try x.string(nonEmpty: true)
        case "controlSocket": controlSocket = try x.string(nonEmpty: true)
        case "policyDir": policyDir = try x.nonNull?.string(nonEmpty: true)
        case "hostVersion": hostVersion = try x.nonNull?.string(nonEmpty: true)
        case "registry": registry = try x.nonNull?.string(nonEmpty: true)
        case "platformKey": platformKey = try x.nonNull?.string(nonEmpty: true)
        case "controlAllowedUids": controlAllowedUIDs = try Self.ids(x)
        case "controlAllowedGids": controlAllowedGIDs = try Self.ids(x)
        case "controlAllowedGroups": controlAllowedGroups = try Self.names(x)
        case "metricsListen": metricsListen = try x.nonNull?.string(nonEmpty: true)
        case "workerMode":
            workerMode = try x.string(nonEmpty: true)
            guard ["auto", "privileged", "rootless"].contains(workerMode) else {
                throw x.error("must be auto, privileged or rootless")
            }
        case "idleTimeoutSeconds": idleTimeoutSeconds = try x.int(in: 0...86_400 * 365)
        case "maxRestarts": maxRestarts = try x.int(in: 0...1000)
        case "restartBackoffMillis": restartBackoffMillis = try x.int(in: 0...3_600_000)
        case "stopGraceMillis": stopGraceMillis = try x.int(in: 0...600_000)
        case "maxWorkers": maxWorkers = try x.int(in: 1...100_000)
        case "maxMessageBytes": maxMessageBytes = try x.int(in: 1024...(64 << 20))
        case "inspectorPayloads": inspectorPayloads = try x.bool()
        case "warmJails": warmJails = try x.bool()
        case "user": user = try x.nonNull?.string(nonEmpty: true)
        case "privilegeSeparation": privilegeSeparation = try x.bool()
        case "spawnerSocket": spawnerSocket = try x.nonNull?.string(nonEmpty: true)
        case "updateCheckIntervalSeconds": updateCheckIntervalSeconds = try x.int(in: 0...86_400 * 30)
        case "registryTimeoutMillis": registryTimeoutMillis = try x.int(in: 100...600_000)
        case "updateCheckMinIntervalSeconds": updateCheckMinIntervalSeconds = try x.int(in: 0...86_400 * 30)
        case "rollbackCrashCount": rollbackCrashCount = try x.int(in: 0...1000)
        case "rollbackWindowSeconds": rollbackWindowSeconds = try x.int(in: 1...86_400)
        case "services": services = try x.object().object
        case "prewarm": try applyPrewarm(x)
        case "dataReserveBytes": dataReserveBytes = try x.int(in: 0...(1 << 44))
        case "dataReserveInodes": dataReserveInodes = try x.int(in: 0...(1 << 32))
        default:
            throw ConfigError(field: key, problem: "unknown setting (see README \"Configuration\" for the list)")
        }
    }

    private mutating func applyPrewarm(_ prewarm: ConfigField) throws(ConfigError) {
        for (key, x) in try prewarm.object().members {
            switch key {
            case "maxWorkers": prewarmMaxWorkers = try x.int(in: 0...1000)
            case "maxMemoryMiB": prewarmMaxMemoryMiB = try x.int(in: 1...1 << 20)
            case "recent": prewarmRecent = try x.bool()
            default: throw x.error(.unknownMember, "unknown setting (maxWorkers, maxMemoryMiB, recent)")
            }
        }
    }

    /// Group names: non-empty, no NUL.
    static func names(_ x: ConfigField) throws(ConfigError) -> [String] {
        var out: [String] = []
        for e in try x.array() {
            let s = try e.string(nonEmpty: true)
            guard !s.contains("\u{0}") else { throw e.error("must be a group name (no NUL)") }
            out.append(s)
        }
        return out
    }

    /// Numeric user or group ids.
    static func ids(_ x: ConfigField) throws(ConfigError) -> [UInt32] {
        var out: [UInt32] = []
        for e in try x.array() { out.append(UInt32(try e.int(in: 0...Int64(UInt32.max)))) }
        return out
    }
}

/// One value of the config file (or of its `services` object), read by the one JSON-field
/// reader; its problems are `ConfigError`s naming the setting (`prewarm.maxWorkers`). `null` is a
/// wrong type except where a setting says it may be null.
public typealias ConfigField = JSONField<ConfigError>
/// An object of the config file.
public typealias ConfigReader = JSONFieldReader<ConfigError>

extension JSONField where Failure == ConfigError {
    /// `value`, the setting at `path`.
    public init(config value: JSONValue, at path: String) {
        self.init(value, path: path, rules: JSONFieldRules(nullIsAbsent: false), errors: { ConfigError(field: $0.field, problem: $0.problem) })
    }
}

/// A configuration value that cannot be used; names the field and says what it must be.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The setting's path (`prewarm.maxWorkers`, `controlAllowedUids[0]`; `(root)` for the file).
    public let field: String
    /// What is wrong with it.
    public let problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "config: \(field): \(problem)" }
}
