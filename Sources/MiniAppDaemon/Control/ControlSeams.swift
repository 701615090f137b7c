public import MiniAppBroker
public import MiniAppJSON
public import MiniAppModel
public import MiniAppSystem
import Synchronization

/// A connected, authorized control peer (a host runtime, the CLI, a test).
public protocol ControlPeer: AnyObject, Sendable {
    /// Stable id of the connection, for logs.
    var connectionId: UInt64 { get }
    /// Credentials from SO_PEERCRED at accept time.
    var uid: UInt32 { get }
    /// Sends one message (notification or request) to the peer.
    func send(_ message: JSONValue)
    /// The kernel's credentials of the connection (uid, gid, groups), when known: a
    /// `packages.install {path}` is opened with them.
    var credentials: PeerCredentials? { get }
}

extension ControlPeer {
    public var credentials: PeerCredentials? { nil }
}

/// A descriptor a control client passed (`SCM_RIGHTS`) with its request; closed when dropped.
public final class PassedDescriptor: Sendable {
    /// The descriptor number, valid while this object lives.
    public let raw: Int32

    /// Takes ownership of `fd`.
    public init(_ fd: consuming OwnedFD) { raw = fd.take() }

    deinit { OwnedFD(adopting: raw).close() }
}

/// Where `packages.install` reads the package from.
public enum PackageSource: Sendable {
    /// A descriptor the client passed with the request (`{fd: true}`).
    case descriptor(PassedDescriptor)
    /// A path, to be opened with the peer's own permissions (nil: unknown, refused).
    case path(String, PeerCredentials?)
}

/// The package side of the control API (bound to MiniAppPackages' store).
public protocol PackageControl: Sendable {
    /// `packages.install` → `{id, version, active}`; throws `INVALID_PACKAGE` with `data.reason`.
    func install(path: String, allowDowngrade: Bool) throws(MiniAppError) -> InstalledPackage
    /// `packages.install` from a passed descriptor or a path opened as the peer; the install
    /// neither commits nor runs on after `deadline` (monotonic nanoseconds).
    func install(from source: PackageSource, allowDowngrade: Bool, deadline: UInt64) throws(MiniAppError) -> InstalledPackage
    /// `packages.list` → `{packages:[…]}`.
    func list() throws(MiniAppError) -> [PackageListing]
    /// `packages.rollback` → `{id, active}`.
    func rollback(id: String) throws(MiniAppError) -> RolledBackPackage
    /// `packages.remove`.
    func remove(id: String) throws(MiniAppError)
    /// `updates.check` → `{updates:[…]}`.
    func checkUpdates(id: String?) throws(MiniAppError) -> UpdateCheckReport
    /// A launch of `id` was asked for: start a background update check of it (never waited for).
    func launchRequested(id: String)
    /// `updates.status {id?}` → `{programs:[{id, active, previous, staged, rejected?, lastCheck?}]}`.
    func updateStatus(id: String?) throws(MiniAppError) -> [ProgramUpdateStatus]
    /// `packages.install {dir}` / `{url}` (simulator mode only): an unsigned program.
    func installSimulated(dir: String?, url: String?) throws(MiniAppError) -> InstalledPackage
}

extension PackageControl {
    public func launchRequested(id: String) {}

    public func updateStatus(id: String?) throws(MiniAppError) -> [ProgramUpdateStatus] {
        throw MiniAppError(.hostUnavailable, "updates.status is not served here")
    }

    /// Not a simulator: refused.
    public func installSimulated(dir: String?, url: String?) throws(MiniAppError) -> InstalledPackage {
        throw ControlAPI.notSimulator
    }
}

extension PackageControl {
    /// For package sides that only know paths (tests' fakes): a path as the daemon sees it.
    public func install(from source: PackageSource, allowDowngrade: Bool, deadline: UInt64) throws(MiniAppError) -> InstalledPackage {
        guard case .path(let path, _) = source else {
            throw MiniAppError(.invalidParams, "this daemon does not take packages as descriptors; pass params.path")
        }
        return try install(path: path, allowDowngrade: allowDowngrade)
    }
}

/// A package added by `packages.install`.
public struct InstalledPackage: Sendable, Equatable {
    public var id: String
    public var version: String
    /// Active now (false: staged, active at the program's next launch).
    public var active: Bool
}

/// One program of `packages.list`.
public struct PackageListing: Sendable, Equatable {
    public var id: String
    /// The active version (nil: none runs on this host yet).
    public var active: String?
    /// Every version kept, in SemVer order.
    public var versions: [String]
    /// The version staged for the next launch.
    public var pending: String?
}

/// What `packages.rollback` made active.
public struct RolledBackPackage: Sendable, Equatable {
    public var id: String
    public var active: String
}

/// The broker side of the control API (bound to MiniAppBroker and its services).
public protocol BrokerControl: Sendable {
    /// `bridge.provide`: the peer now serves these host-provided methods.
    func provide(methods: [String], peer: any ControlPeer) throws(MiniAppError)
    /// `inspector.subscribe`.
    func subscribeInspector(programId: String?, peer: any ControlPeer)
    /// A reply from a provider peer to a `bridge.call` the daemon sent it.
    func providerReply(_ message: JSONObject, peer: any ControlPeer)
    /// The peer went away: fail its pending provider calls with HOST_UNAVAILABLE, drop subscriptions.
    func peerClosed(_ peer: any ControlPeer)
    /// `permissions.refresh`: re-reads the partner grants now; the result reports what is in
    /// effect (partners, blocked partners, the registry document's outcome).
    func refreshPermissions() throws(MiniAppError) -> PermissionsReport
    /// `session.set`.
    func setSession(userId: String, claims: JSONObject) throws(MiniAppError)
    /// `auth.keys`: the keys that verify the tokens `auth.getToken` issues.
    func verificationKeys() -> [PublicJWK]
    /// Bridge denials so far (for `daemon.info` and `miniapp top`).
    func denials() -> Int64
}

/// Static facts for `daemon.info`.
public struct DaemonFacts: Sendable {
    /// The daemon's version.
    public var version: String
    /// The host version packages are checked against.
    public var hostVersion: String
    /// `privileged` or `rootless`.
    public var mode: String
    /// `v1` or `v2`.
    public var cgroups: String
    /// Whether /data has its size and inode limits (`enforced`), or why not.
    public var dataLimits = "enforced"

    public init(version: String, hostVersion: String, mode: String, cgroups: String) {
        self.version = version
        self.hostVersion = hostVersion
        self.mode = mode
        self.cgroups = cgroups
    }
}

