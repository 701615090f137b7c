import Glibc
public import MiniAppJSON
public import MiniAppModel
import MiniAppSystem

/// What the update checker needs from the package store (bound to MiniAppPackages).
public protocol UpdateStaging: Sendable {
    /// Installed program ids.
    func installedIDs() -> [String]
    /// The newest version already installed or staged for `id` (nil when not installed).
    func newestKnownVersion(_ id: String) -> String?
    /// True when `candidate` has higher SemVer precedence than `current`.
    func isNewer(_ candidate: String, than current: String) -> Bool
    /// True when this host can run a package declaring `minHostVersion` (false if unparsable).
    func runsOnHost(minHostVersion: String) -> Bool
    /// Fully verifies the zip at `path` (spec/package-format.md) and stages it: active now if
    /// the program is not running, else at its next launch. Returns whether it is active.
    func stageUpdate(path: String) throws(MiniAppError) -> Bool
    /// Lowercase hex SHA-256 of `bytes`.
    func sha256Hex(_ bytes: [UInt8]) -> String
}

/// Checks the registry for newer versions and stages them (spec/registry.md). Everything
/// fetched is untrusted until verified: the version document is size-capped, the download is
/// capped at the announced size (and the configured maximum) while it is received, its SHA-256
/// must match, and the package then goes through full verification before it is staged.
public final class UpdateChecker: Sendable {
    private let registry: String
    private let transport: any RegistryTransport
    private let staging: any UpdateStaging
    private let downloadsDir: String
    private let timeoutMillis: Int
    private let maxPackageBytes: Int

    public init(
        registry: String, transport: any RegistryTransport, staging: any UpdateStaging, downloadsDir: String,
        timeoutMillis: Int, maxPackageBytes: Int = 50 << 20
    ) {
        self.registry = registry.hasSuffix("/") ? String(registry.dropLast()) : registry
        self.transport = transport
        self.staging = staging
        self.downloadsDir = downloadsDir
        self.timeoutMillis = timeoutMillis
        self.maxPackageBytes = maxPackageBytes
    }

    /// `updates.check {id?}` → `{updates:[{id, from, to, staged, …}]}`. One program's failure
    /// is reported in its entry (`code`, `message`, `reason`/`required` when known, and `to`
    /// once the registry named the version) and never stops the others.
    public func check(id: String?) throws(MiniAppError) -> JSONValue {
        let ids = id.map { [$0] } ?? staging.installedIDs()
        if let id, staging.newestKnownVersion(id) == nil {
            throw MiniAppError(.notFound, "\(id) is not installed; install it before checking for updates")
        }
        var updates: [JSONValue] = []
        for pid in ids.sorted() {
            if let entry = checkOne(pid) { updates.append(entry) }
        }
        return ["updates": .array(updates)]
    }

    private func checkOne(_ id: String) -> JSONValue? {
        guard let current = staging.newestKnownVersion(id) else { return nil }
        var entry: JSONObject = ["id": .string(id), "from": .string(current)]
        do throws(MiniAppError) {
            let (status, body) = try transport.get(
                "\(registry)/mini-programs/\(id)/version", maxBytes: 64 << 10, timeoutMillis: timeoutMillis)
            guard status == 200 else {
                if status == 404 { return nil }
                throw MiniAppError(.hostUnavailable, "registry answered HTTP \(status) for \(id)")
            }
            let v = try RegistryVersion.parse(body, expectedId: id, base: registry)
            guard staging.isNewer(v.version, than: current) else { return nil }
            entry["to"] = .string(v.version)
            // Checked before anything is downloaded: a package this host cannot run would be
            // refused by verification anyway (step 5), after fetching up to 50 MiB for nothing.
            guard staging.runsOnHost(minHostVersion: v.minHostVersion) else {
                throw MiniAppError(
                    .hostUpdateRequired, "\(id) \(v.version) needs host version \(v.minHostVersion); not downloaded. Update the host.",
                    data: ["required": v.minHostVersion])
            }
            entry["active"] = .bool(try download(v))
            entry["staged"] = true
        } catch {
            entry["staged"] = false
            entry["code"] = .string(error.code.rawValue)
            entry["message"] = .string(error.message)
            for key in ["reason", "required"] { if let v = error.data[key] { entry[key] = .string(v) } }
        }
        return .object(entry)
    }

    private func download(_ v: RegistryVersion) throws(MiniAppError) -> Bool {
        guard v.size <= maxPackageBytes else {
            throw MiniAppError(.invalidPackage, "\(v.id) \(v.version) announces \(v.size) bytes, over the \(maxPackageBytes)-byte limit", data: ["reason": "ARCHIVE_TOO_LARGE"])
        }
        let (status, body) = try transport.get(v.url, maxBytes: v.size, timeoutMillis: timeoutMillis * 10)
        guard status == 200 else { throw MiniAppError(.hostUnavailable, "registry answered HTTP \(status) for \(v.url)") }
        guard body.count == v.size, staging.sha256Hex(body) == v.sha256 else {
            throw MiniAppError(.invalidPackage, "\(v.id) \(v.version): download does not match the announced size and sha256", data: ["reason": "DOWNLOAD_MISMATCH"])
        }
        let path = "\(downloadsDir)/\(v.id)-\(v.version)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).zip"
        do {
            try AtomicFile.write(path: path, bytes: body, mode: 0o600)
        } catch {
            throw MiniAppError(.internal, "cannot store the download at \(path): \(error)")
        }
        defer { unlink(path) }
        return try staging.stageUpdate(path: path)
    }
}
