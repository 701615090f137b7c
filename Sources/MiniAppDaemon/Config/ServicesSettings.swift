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
            guard let o = value.objectValue else { throw ConfigError(field: "services.\(section)", problem: "must be an object") }
            switch section {
            case "storage": try applyStorage(o)
            case "auth": try applyAuth(o)
            case "net": try applyNet(o)
            case "log": try applyLog(o)
            default: throw ConfigError(field: "services.\(section)", problem: "unknown section (storage, auth, net or log)")
            }
        }
    }

    private mutating func applyStorage(_ o: JSONObject) throws(ConfigError) {
        for (k, v) in o {
            let f = "services.storage.\(k)"
            switch k {
            case "maxKeyBytes": storage.maxKeyBytes = try Setting.int(v, f, 1...4096)
            case "maxValueBytes": storage.maxValueBytes = try Setting.int(v, f, 1...(16 << 20))
            case "quotaBytesPerProgram": storage.quotaBytesPerProgram = try Setting.int(v, f, 1...(1 << 40))
            case "quotaKeysPerProgram": storage.quotaKeysPerProgram = try Setting.int(v, f, 1...10_000_000)
            case "maxPendingWritesPerProgram": storage.maxPendingWritesPerProgram = try Setting.int(v, f, 1...1_000_000)
            default: throw ConfigError(field: f, problem: "unknown setting")
            }
        }
    }

    private mutating func applyAuth(_ o: JSONObject) throws(ConfigError) {
        for (k, v) in o {
            let f = "services.auth.\(k)"
            switch k {
            case "issuer": auth.issuer = try Setting.string(v, f)
            case "allowedScopes": auth.allowedScopes = Set(try Setting.strings(v, f))
            case "defaultScope": auth.defaultScope = try Setting.string(v, f)
            case "forwardedClaims": auth.forwardedClaims = Set(try Setting.strings(v, f))
            default: throw ConfigError(field: f, problem: "unknown setting")
            }
        }
        guard auth.allowedScopes.contains(auth.defaultScope) else {
            throw ConfigError(field: "services.auth.defaultScope", problem: "must be one of allowedScopes")
        }
    }

    private mutating func applyNet(_ o: JSONObject) throws(ConfigError) {
        for (k, v) in o {
            let f = "services.net.\(k)"
            switch k {
            case "allowedPorts":
                var ports = Set<Int>()
                for p in v.arrayValue ?? [.null] { ports.insert(try Setting.int(p, f, 1...65535)) }
                net.allowedPorts = ports
            case "allowHTTP": net.allowHTTP = try Setting.bool(v, f)
            case "caFile": net.caFile = v.isNull ? nil : try Setting.string(v, f)
            case "resolverOverride":
                guard let m = v.objectValue else { throw ConfigError(field: f, problem: "must map host names to arrays of addresses") }
                var out: [String: [String]] = [:]
                for (host, addrs) in m { out[host] = try Setting.strings(addrs, "\(f).\(host)") }
                net.resolverOverride = out
            case "allowedPrivateCIDRs": net.allowedPrivateCIDRs = try Setting.strings(v, f)
            case "maxRedirects": net.maxRedirects = try Setting.int(v, f, 0...20)
            case "maxRequestBodyBytes": net.maxRequestBodyBytes = try Setting.int(v, f, 0...(64 << 20))
            case "maxResponseBytes": net.maxResponseBytes = try Setting.int(v, f, 1...(64 << 20))
            case "connectTimeoutSeconds": net.connectTimeoutSeconds = try Setting.int(v, f, 1...600)
            case "totalTimeoutSeconds": net.totalTimeoutSeconds = try Setting.int(v, f, 1...3600)
            case "maxConcurrentRequests": net.maxConcurrentRequests = try Setting.int(v, f, 1...4096)
            case "maxConcurrentRequestsPerProgram": net.maxConcurrentRequestsPerProgram = try Setting.int(v, f, 1...4096)
            default: throw ConfigError(field: f, problem: "unknown setting")
            }
        }
    }

    private mutating func applyLog(_ o: JSONObject) throws(ConfigError) {
        for (k, v) in o {
            let f = "services.log.\(k)"
            switch k {
            case "maxMessageBytes": log.maxMessageBytes = try Setting.int(v, f, 16...(1 << 20))
            default: throw ConfigError(field: f, problem: "unknown setting")
            }
        }
    }
}

/// Typed reads of config values with a `ConfigError` naming the field.
enum Setting {
    static func int(_ v: JSONValue, _ f: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let i = v.intValue, let n = Int(exactly: i), range.contains(n) else {
            throw ConfigError(field: f, problem: "must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    static func bool(_ v: JSONValue, _ f: String) throws(ConfigError) -> Bool {
        guard let b = v.boolValue else { throw ConfigError(field: f, problem: "must be true or false") }
        return b
    }

    static func string(_ v: JSONValue, _ f: String) throws(ConfigError) -> String {
        guard let s = v.stringValue, !s.isEmpty else { throw ConfigError(field: f, problem: "must be a non-empty string") }
        return s
    }

    static func strings(_ v: JSONValue, _ f: String) throws(ConfigError) -> [String] {
        guard let a = v.arrayValue else { throw ConfigError(field: f, problem: "must be an array of strings") }
        var out: [String] = []
        for x in a { out.append(try string(x, f)) }
        return out
    }
}
