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
    /// The version of `id` rolled back automatically, if any: it, and anything older, is not
    /// offered again.
    func rejectedVersion(_ id: String) -> String?
}

extension UpdateStaging {
    public func rejectedVersion(_ id: String) -> String? { nil }
}

/// What one program's check found (`updates.status` keeps the last one per program).
public struct UpdateCheckResult: Sendable {
    /// How the check ended.
    public enum Outcome: String, Sendable {
        /// Nothing newer is published (or nothing at all: HTTP 404).
        case upToDate
        /// Downloaded, verified and staged: active at the program's next launch.
        case staged
        /// Downloaded, verified and active now (the program was not running).
        case activated
        /// A newer version is published to a fraction of devices this device is not in.
        case notInRollout
        /// The published version was rolled back on this device; it waits for a newer one.
        case rejected
        /// The registry, the download or the verification failed (`error`).
        case failed
    }

    public var id: String
    /// The newest version installed or staged when the check began.
    public var from: String
    /// The version the registry offered, once it named one.
    public var to: String?
    public var outcome: Outcome
    /// Why it failed.
    public var error: MiniAppError?
    /// The published rollout fraction, when a version was offered.
    public var rollout: Double?
}

/// The `updates.check` answer: an entry per program offered a newer version or whose check
/// failed (ControlResults.swift encodes it).
public struct UpdateCheckReport: Sendable {
    /// Every program's result, including those with nothing to report.
    public var results: [UpdateCheckResult]

    /// The results `updates.check` lists.
    public var reported: [UpdateCheckResult] { results.filter { $0.to != nil || $0.error != nil } }

    public init(_ results: [UpdateCheckResult]) { self.results = results }
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
    private let deviceId: String

    /// `deviceId` places this device in staged rollouts (`Rollout`).
    public init(
        registry: String, transport: any RegistryTransport, staging: any UpdateStaging, downloadsDir: String,
        timeoutMillis: Int, maxPackageBytes: Int = 50 << 20, deviceId: String = ""
    ) {
        self.deviceId = deviceId
        self.registry = registry.hasSuffix("/") ? String(registry.dropLast()) : registry
        self.transport = transport
        self.staging = staging
        self.downloadsDir = downloadsDir
        self.timeoutMillis = timeoutMillis
        self.maxPackageBytes = maxPackageBytes
    }

    /// `updates.check {id?}` → `{updates:[{id, from, to, staged, …}]}`: one entry per program
    /// the registry offers a newer version of. One program's failure is reported in its entry
    /// (`code`, `message`, `reason`/`required` when known, and `to` once the registry named the
    /// version) and never stops the others.
    public func check(id: String?) throws(MiniAppError) -> UpdateCheckReport {
        UpdateCheckReport(try checkAll(id: id))
    }

    /// Checks `id` (or every installed program) and returns every program's result.
    public func checkAll(id: String?) throws(MiniAppError) -> [UpdateCheckResult] {
        let ids = id.map { [$0] } ?? staging.installedIDs()
        if let id, staging.newestKnownVersion(id) == nil {
            throw MiniAppError(.notFound, "\(id) is not installed; install it before checking for updates")
        }
        return ids.sorted().compactMap { checkOne($0) }
    }

    /// One program: the version document, then the rules that decide before any download
    /// (newer, not rejected, in the rollout, runs on this host), then the download.
    public func checkOne(_ id: String) -> UpdateCheckResult? {
        guard let current = staging.newestKnownVersion(id) else { return nil }
        var result = UpdateCheckResult(id: id, from: current, outcome: .upToDate)
        do throws(MiniAppError) {
            let (status, body) = try transport.get(
                "\(registry)/mini-programs/\(id)/version", maxBytes: 64 << 10, timeoutMillis: timeoutMillis)
            guard status == 200 else {
                if status == 404 { return result }
                throw MiniAppError(.hostUnavailable, "registry answered HTTP \(status) for \(id)")
            }
            let v = try RegistryVersion.parse(body, expectedId: id, base: registry)
            guard staging.isNewer(v.version, than: current) else { return result }
            result.to = v.version
            result.rollout = v.rollout
            if let rejected = staging.rejectedVersion(id), !staging.isNewer(v.version, than: rejected) {
                result.outcome = .rejected
                return result
            }
            guard Rollout.takes(deviceId: deviceId, programId: id, version: v.version, fraction: v.rollout) else {
                result.outcome = .notInRollout
                return result
            }
            // Checked before anything is downloaded: a package this host cannot run would be
            // refused by verification anyway (step 5), after fetching up to 50 MiB for nothing.
            guard staging.runsOnHost(minHostVersion: v.minHostVersion) else {
                throw MiniAppError(
                    .hostUpdateRequired, "\(id) \(v.version) needs host version \(v.minHostVersion); not downloaded. Update the host.",
                    data: ["required": v.minHostVersion])
            }
            result.outcome = try download(v) ? .activated : .staged
        } catch {
            result.outcome = .failed
            result.error = error
        }
        return result
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
        let path = "\(downloadsDir)/\(v.id)-\(v.version)-\(CurrentProcess.pid)-\(UInt32.random(in: 0...UInt32.max)).zip"
        do {
            try AtomicFile.write(path: path, bytes: body, mode: 0o600)
        } catch {
            throw MiniAppError(.internal, "cannot store the download at \(path): \(error)")
        }
        defer { try? FileSystem.removeFile(path) }
        return try staging.stageUpdate(path: path)
    }
}
