import MiniAppJSON
public import MiniAppModel

/// What the update logic needs from HTTP (bound to the libcurl client of MiniAppSystem).
public protocol RegistryTransport: Sendable {
    /// GET `url`; the body is capped at `maxBytes` real bytes and the whole request at
    /// `timeoutMillis`. Throws TIMEOUT / HOST_UNAVAILABLE / QUOTA_EXCEEDED (over the cap).
    func get(_ url: String, maxBytes: Int, timeoutMillis: Int) throws(MiniAppError) -> (status: Int, body: [UInt8])
}

/// One entry of `GET {registry}/mini-programs/{id}/version` (spec/registry.md).
public struct RegistryVersion: Sendable, Equatable {
    public var id: String
    public var version: String
    public var minHostVersion: String
    /// Absolute URL of the package zip.
    public var url: String
    /// Lowercase hex SHA-256 of the zip.
    public var sha256: String
    /// Size of the zip in bytes.
    public var size: Int
    /// The fraction of devices that take this version, 0…1 (`Rollout`); 1 when absent.
    public var rollout: Double = 1

    /// Parses and validates a version document; `base` resolves a relative `url`.
    public static func parse(_ bytes: [UInt8], expectedId: String, base: String) throws(MiniAppError) -> RegistryVersion {
        let bad = { (why: String) in
            MiniAppError(.invalidPackage, "registry version document for \(expectedId): \(why)", data: ["reason": "REGISTRY_INVALID"])
        }
        guard let v = try? JSONValue.parse(bytes, options: .init(maxDepth: 8, maxBytes: 64 << 10)), let o = v.objectValue else {
            throw bad("not a JSON object")
        }
        guard let id = o["id"]?.stringValue, id == expectedId else { throw bad("id does not match") }
        guard let version = o["version"]?.stringValue, let minHost = o["minHostVersion"]?.stringValue,
            let url = o["url"]?.stringValue, let sha = o["sha256"]?.stringValue, let size = o["size"]?.intValue
        else { throw bad("needs string version, minHostVersion, url, sha256 and integer size") }
        // Both are compared as SemVer later; a malformed one would read as "needs a newer host".
        guard SemVer(version) != nil else { throw bad("version \"\(version)\" is not a SemVer version (MAJOR.MINOR.PATCH)") }
        guard SemVer(minHost) != nil else { throw bad("minHostVersion \"\(minHost)\" is not a SemVer version (MAJOR.MINOR.PATCH)") }
        guard sha.count == 64, sha.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { throw bad("sha256 must be 64 lowercase hex digits") }
        guard size > 0, size <= Int64(Int32.max) else { throw bad("size out of range") }
        var rollout = 1.0
        if let r = o["rollout"] {
            guard let f = r.doubleValue, f.isFinite, f >= 0, f <= 1 else { throw bad("rollout must be a number from 0 to 1") }
            rollout = f
        }
        return RegistryVersion(
            id: id, version: version, minHostVersion: minHost, url: try resolve(url, base: base), sha256: sha, size: Int(size),
            rollout: rollout)
    }

    /// Resolves `url` against the registry base; only http(s) URLs on the registry's own
    /// scheme family are accepted (a registry must not point the daemon at `file://`).
    static func resolve(_ url: String, base: String) throws(MiniAppError) -> String {
        if url.hasPrefix("https://") || url.hasPrefix("http://") { return url }
        guard !url.contains("://"), !url.hasPrefix("//") else {
            throw MiniAppError(.invalidPackage, "registry url \(url) has an unsupported scheme", data: ["reason": "REGISTRY_INVALID"])
        }
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        guard url.hasPrefix("/") else { return trimmed + "/" + url }
        // An absolute path replaces the base's path: keep only scheme://authority.
        let parts = trimmed.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count >= 3 else { return trimmed + url }  // "https:", "", "host", "path…"
        return parts[0...2].joined(separator: "/") + url
    }
}
