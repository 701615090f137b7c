import MiniAppJSON
public import MiniAppModel

/// One installed version as recorded in a program's `state.json`.
public struct StoredVersion: Sendable, Hashable {
    /// The version (also the directory name under `versions/`).
    public let version: SemVer
    /// Hex SHA-256 of the signed statement (same digest = same content); `sim-` + that of the
    /// unsigned statement for a simulated version, so it never equals a signed package's.
    public let digest: String
    /// Installed unsigned by a simulator daemon: nothing else runs or activates it.
    public var simulated = false

    init(version: SemVer, digest: String, simulated: Bool = false) {
        self.version = version
        self.digest = digest
        self.simulated = simulated
    }
}

/// A program's activation state: the one active version, the previous one kept for rollback,
/// and a pending one staged while the program ran. Written atomically (temp + fsync + rename),
/// so after a crash it is either the old or the new state, never a mix.
public struct ProgramState: Sendable, Hashable {
    /// The version launches use.
    public var active: StoredVersion?
    /// The version before it (rollback target).
    public var previous: StoredVersion?
    /// A verified version waiting for the program's next launch.
    public var pending: StoredVersion?
    /// A version rolled back automatically (it crashed at start): the update checker does not
    /// offer it, nor an older one, again. Kept until an install or a manual rollback changes the active version.
    public var rejected: RejectedVersion?

    /// A state from its slots.
    public init(active: StoredVersion? = nil, previous: StoredVersion? = nil, pending: StoredVersion? = nil, rejected: RejectedVersion? = nil) {
        self.active = active
        self.previous = previous
        self.pending = pending
        self.rejected = rejected
    }

    /// Versions whose directories must be kept.
    var referenced: Set<String> { Set([active, previous, pending].compactMap { $0?.version.text }) }

    static func parse(_ bytes: [UInt8]) -> ProgramState? {
        guard let o = (try? JSONValue.parse(bytes, options: .strict))?.objectValue else { return nil }
        func slot(_ k: String) -> StoredVersion? {
            guard let s = o[k]?.objectValue, let v = s["version"]?.stringValue.flatMap(SemVer.init),
                let d = s["digest"]?.stringValue
            else { return nil }
            return StoredVersion(version: v, digest: d, simulated: s["simulated"]?.boolValue ?? false)
        }
        var rejected: RejectedVersion?
        if let r = o["rejected"]?.objectValue, let v = r["version"]?.stringValue.flatMap(SemVer.init) {
            rejected = RejectedVersion(version: v, reason: r["reason"]?.stringValue ?? "")
        }
        return ProgramState(active: slot("active"), previous: slot("previous"), pending: slot("pending"), rejected: rejected)
    }

    func serialized() -> [UInt8] {
        var o = JSONObject()
        for (k, v) in [("active", active), ("previous", previous), ("pending", pending)] {
            guard let v else { continue }
            var slot: JSONObject = ["version": .string(v.version.text), "digest": .string(v.digest)]
            if v.simulated { slot["simulated"] = true }
            o[k] = .object(slot)
        }
        if let r = rejected { o["rejected"] = .object(["version": .string(r.version.text), "reason": .string(r.reason)]) }
        return JSONValue.object(o).serialized()
    }
}

/// A version taken out of service automatically, and why.
public struct RejectedVersion: Sendable, Hashable {
    /// The version.
    public let version: SemVer
    /// Why (for `updates.status` and logs).
    public let reason: String
}

/// A program as listed by the store.
public struct InstalledProgram: Sendable, Hashable {
    /// Program id.
    public let id: String
    /// Its activation state.
    public let state: ProgramState
}

/// What launching needs about the active version.
public struct ActiveProgram: Sendable {
    /// The manifest of the active version (read back from its read-only directory).
    public let manifest: Manifest
    /// The read-only directory to mount at `/app`.
    public let directory: String
    /// The partner's current registration (grants as of now).
    public let partner: PartnerRegistration
    /// Installed unsigned by a simulator daemon.
    public var simulated = false
}

/// The result of `install`/`stage`.
public enum InstallOutcome: Sendable, Hashable {
    /// The version is now active.
    case activated(SemVer)
    /// The version is staged; `activatePending` makes it active.
    case staged(SemVer)
    /// The same version with identical content was already there: nothing changed.
    case unchanged(SemVer)
}
