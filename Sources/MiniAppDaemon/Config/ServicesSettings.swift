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
            switch section {
            case "storage": try applyStorage(o)
            case "auth": try applyAuth(o)
            case "net": try applyNet(o)
            case "log": try applyLog(o)
            default: throw ConfigError(field: "services.\(section)", problem: "unknown section (storage, auth, net or log)")
            }
        }
    }

    private mutating func applyStorage(_ o: ConfigReader) throws(ConfigError) {
        for (k, x) in o.members {
            switch k {
            case "maxKeyBytes": storage.maxKeyBytes = try x.int(in: 1...4096)
            case "maxValueBytes": storage.maxValueBytes = try x.int(in: 1...(16 << 20))
            case "quotaBytesPerProgram": storage.quotaBytesPerProgram = try x.int(in: 1...(1 << 40))
            case "quotaKeysPerProgram": storage.quotaKeysPerProgram = try x.int(in: 1...10_000_000)
            case "maxPendingWritesPerProgram": storage.maxPendingWritesPerProgram = try x.int(in: 1...1_000_000)
            default: throw x.error(.unknownMember, "unknown setting")
            }
        }
    }

    private mutating func applyAuth(_ o: ConfigReader) throws(ConfigError) {
        for (k, x) in o.members {
            switch k {
            case "issuer": auth.issuer = try x.string(nonEmpty: true)
            case "allowedScopes": auth.allowedScopes = Set(try x.strings(nonEmpty: true))
            case "defaultScope": auth.defaultScope = try x.string(nonEmpty: true)
            case "forwardedClaims": auth.forwardedClaims = Set(try x.strings(nonEmpty: true))
            default: throw x.error(.unknownMember, "unknown setting")
            }
        }
        guard auth.allowedScopes.contains(auth.defaultScope) else {
            throw ConfigError(field: "services.auth.defaultScope", problem: "must be one of allowedScopes")
        }
    }

    private mutating func applyNet(_ o: ConfigReader) throws(ConfigError) {
        for (k, x) in o.members {
            switch k {
            case "allowedPorts":
                var ports = Set<Int>()
                for p in try x.array() { ports.insert(try p.int(in: 1...65535)) }
                net.allowedPorts = ports
            case "allowHTTP": net.allowHTTP = try x.bool()
            case "caFile": net.caFile = try x.nonNull?.string(nonEmpty: true)
            case "resolverOverride":
                guard x.value.objectValue != nil else { throw x.error(.wrongType, "must map host names to arrays of addresses") }
                var out: [String: [String]] = [:]
                for (host, addrs) in try x.object().members { out[host] = try addrs.strings(nonEmpty: true) }
                net.resolverOverride = out
            case "allowedPrivateCIDRs": net.allowedPrivateCIDRs = try x.strings(nonEmpty: true)
            case "maxRedirects": net.maxRedirects = try x.int(in: 0...20)
            case "maxRequestBodyBytes": net.maxRequestBodyBytes = try x.int(in: 0...(64 << 20))
            case "maxResponseBytes": net.maxResponseBytes = try x.int(in: 1...(64 << 20))
            case "connectTimeoutSeconds": net.connectTimeoutSeconds = try x.int(in: 1...600)
            case "totalTimeoutSeconds": net.totalTimeoutSeconds = try x.int(in: 1...3600)
            case "maxConcurrentRequests": net.maxConcurrentRequests = try x.int(in: 1...4096)
            case "maxConcurrentRequestsPerProgram": net.maxConcurrentRequestsPerProgram = try x.int(in: 1...4096)
            default: throw x.error(.unknownMember, "unknown setting")
            }
        }
    }

    private mutating func applyLog(_ o: ConfigReader) throws(ConfigError) {
        for (k, x) in o.members {
            switch k {
            case "maxMessageBytes": log.maxMessageBytes = try x.int(in: 16...(1 << 20))
            default: throw x.error(.unknownMember, "unknown setting")
            }
        }
    }
}
