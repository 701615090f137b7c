public import MiniAppModel
internal import Synchronization
import Glibc

/// Where the helpers for untrusted bytes come from and who they run as; shared by the net
/// service and the package store.
public struct HelperSettings: Sendable {
    /// Run the work in helpers (the default). false runs libcurl and zlib in the daemon's own
    /// process, as before helpers existed: benchmarks compare the two; never for production.
    public var enabled = true
    /// The `miniappd-helper` executable.
    public var executable = HelperLaunch.defaultExecutable()
    /// uid/gid a helper switches to when the daemon runs as root. Default 65534 (`nobody`):
    /// an id that owns nothing; the daemon passes its `--user` when it drops to one.
    public var uid: UInt32 = 65534
    public var gid: UInt32 = 65534
    /// Seccomp profiles (Docker JSON) by role, replacing the built-in `helper-<role>.json`
    /// (the daemon passes those of its `--policy-dir`).
    public var profiles: [String: String] = [:]
    /// Environment of every helper (tests set pause points here); empty in production.
    public var environment: [String] = []

    public init() {}

    /// The uid/gid for a helper's hello: ours unless we are root.
    public var effectiveIDs: (uid: UInt32, gid: UInt32) { geteuid() == 0 ? (uid, gid) : (geteuid(), getegid()) }

    /// The compiled seccomp programs of `role` (compiled once per profile text).
    public func seccomp(role: String) throws(MiniAppError) -> [[UInt8]] {
        let name = "helper-\(role).json"
        guard let text = profiles[role] ?? EmbeddedHelperProfiles.files.first(where: { $0.0 == name })?.1 else {
            throw MiniAppError(.internal, "no seccomp profile for the \(role) helper")
        }
        if let hit = Self.cache.withLock({ $0[text] }) { return hit }
        let profile = try SeccompProfile.parse(Array(text.utf8), source: "seccomp/" + name)
        let filters = try SeccompCompiler.compile(profile, unknownNames: .skip, source: "seccomp/" + name).filters
        Self.cache.withLock { $0[text] = filters }
        return filters
    }

    private static let cache = Mutex<[String: [[UInt8]]]>([:])
}
