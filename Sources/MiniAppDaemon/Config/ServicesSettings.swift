public import MiniAppBroker
public import MiniAppJSON
public import MiniAppModel

/// The config file's `services` object → `ServicesConfig` (README "Configuration", services).
///
/// Every key is checked: an unknown key or a wrong type is a `ConfigError` naming the field
/// (`services.net.allowedPorts`), so a typo never silently keeps a permissive default.
extension ServicesConfig {
    /// Defaults overridden by `json` (the config file's `services` member).
    public init(hostVersion: String, json: JSONObject) throws(ConfigError) {
        self.init(hostVersion: hostVersion)
        for (section, value) in json {
            let o = try ConfigField(config: value, at: "services.\(section)").object()
            guard let settings = Self.settings[section] else {
                throw ConfigError(field: "services.\(section)", problem: "unknown section (storage, auth, net or log)")
            }
            for (k, x) in o.members {
                guard let apply = settings[k] else { throw x.error(.unknownMember, "unknown setting") }
                try apply(&self, x)
            }
        }
        guard auth.allowedScopes.contains(auth.defaultScope) else {
            throw ConfigError(field: "services.auth.defaultScope", problem: "must be one of allowedScopes")
        }
    }

    /// Reads one setting into the configuration (its type and range checked).
    private typealias Setting = @Sendable (inout ServicesConfig, ConfigField) throws(ConfigError) -> Void

    /// Every setting, by section and name; a name not listed is refused.
    private static let settings: [String: [String: Setting]] = [
        "storage": [
            "maxKeyBytes": { c, x throws(ConfigError) in c.storage.maxKeyBytes = try x.int(in: 1...4096) },
            "maxValueBytes": { c, x throws(ConfigError) in c.storage.maxValueBytes = try x.int(in: 1...(16 << 20)) },
            "quotaBytesPerProgram": { c, x throws(ConfigError) in c.storage.quotaBytesPerProgram = try x.int(in: 1...(1 << 40)) },
            "quotaKeysPerProgram": { c, x throws(ConfigError) in c.storage.quotaKeysPerProgram = try x.int(in: 1...10_000_000) },
            "maxPendingWritesPerProgram": { c, x throws(ConfigError) in c.storage.maxPendingWritesPerProgram = try x.int(in: 1...1_000_000) },
        ],
        "auth": [
            "issuer": { c, x throws(ConfigError) in c.auth.issuer = try x.string(nonEmpty: true) },
            "allowedScopes": { c, x throws(ConfigError) in c.auth.allowedScopes = Set(try x.strings(nonEmpty: true)) },
            "defaultScope": { c, x throws(ConfigError) in c.auth.defaultScope = try x.string(nonEmpty: true) },
            "forwardedClaims": { c, x throws(ConfigError) in c.auth.forwardedClaims = Set(try x.strings(nonEmpty: true)) },
        ],
        "net": [
            "allowedPorts": { c, x throws(ConfigError) in
                var ports = Set<Int>()
                for p in try x.array() { ports.insert(try p.int(in: 1...65535)) }
                c.net.allowedPorts = ports
            },
            "allowHTTP": { c, x throws(ConfigError) in c.net.allowHTTP = try x.bool() },
            "caFile": { c, x throws(ConfigError) in c.net.caFile = try x.nonNull?.string(nonEmpty: true) },
            "resolverOverride": { c, x throws(ConfigError) in
                guard x.value.objectValue != nil else { throw x.error(.wrongType, "must map host names to arrays of addresses") }
                var out: [String: [String]] = [:]
                for (host, addrs) in try x.object().members { out[host] = try addrs.strings(nonEmpty: true) }
                c.net.resolverOverride = out
            },
            "allowedPrivateCIDRs": { c, x throws(ConfigError) in c.net.allowedPrivateCIDRs = try x.strings(nonEmpty: true) },
            "maxRedirects": { c, x throws(ConfigError) in c.net.maxRedirects = try x.int(in: 0...20) },
            "maxRequestBodyBytes": { c, x throws(ConfigError) in c.net.maxRequestBodyBytes = try x.int(in: 0...(64 << 20)) },
            "maxResponseBytes": { c, x throws(ConfigError) in c.net.maxResponseBytes = try x.int(in: 1...(64 << 20)) },
            "connectTimeoutSeconds": { c, x throws(ConfigError) in c.net.connectTimeoutSeconds = try x.int(in: 1...600) },
            "totalTimeoutSeconds": { c, x throws(ConfigError) in c.net.totalTimeoutSeconds = try x.int(in: 1...3600) },
            "maxConcurrentRequests": { c, x throws(ConfigError) in c.net.maxConcurrentRequests = try x.int(in: 1...4096) },
            "maxConcurrentRequestsPerProgram": { c, x throws(ConfigError) in c.net.maxConcurrentRequestsPerProgram = try x.int(in: 1...4096) },
        ],
        "log": [
            "maxMessageBytes": { c, x throws(ConfigError) in c.log.maxMessageBytes = try x.int(in: 16...(1 << 20)) },
        ],
    ]
}
