import Dispatch
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
    func install(path: String, allowDowngrade: Bool) throws(MiniAppError) -> JSONValue
    /// `packages.install` from a passed descriptor or a path opened as the peer; the install
    /// neither commits nor runs on after `deadline` (monotonic nanoseconds).
    func install(from source: PackageSource, allowDowngrade: Bool, deadline: UInt64) throws(MiniAppError) -> JSONValue
    /// `packages.list` → `{packages:[…]}`.
    func list() throws(MiniAppError) -> JSONValue
    /// `packages.rollback` → `{id, active}`.
    func rollback(id: String) throws(MiniAppError) -> JSONValue
    /// `packages.remove`.
    func remove(id: String) throws(MiniAppError)
    /// `updates.check` → `{updates:[…]}`.
    func checkUpdates(id: String?) throws(MiniAppError) -> JSONValue
    /// A launch of `id` was asked for: start a background update check of it (never waited for).
    func launchRequested(id: String)
    /// `updates.status {id?}` → `{programs:[{id, active, previous, staged, rejected?, lastCheck?}]}`.
    func updateStatus(id: String?) throws(MiniAppError) -> JSONValue
    /// `packages.install {dir}` / `{url}` (simulator mode only): an unsigned program.
    func installSimulated(dir: String?, url: String?) throws(MiniAppError) -> JSONValue
}

extension PackageControl {
    public func launchRequested(id: String) {}

    public func updateStatus(id: String?) throws(MiniAppError) -> JSONValue {
        throw MiniAppError(.hostUnavailable, "updates.status is not served here")
    }

    /// Not a simulator: refused.
    public func installSimulated(dir: String?, url: String?) throws(MiniAppError) -> JSONValue {
        throw ControlAPI.notSimulator
    }
}

extension PackageControl {
    /// For package sides that only know paths (tests' fakes): a path as the daemon sees it.
    public func install(from source: PackageSource, allowDowngrade: Bool, deadline: UInt64) throws(MiniAppError) -> JSONValue {
        guard case .path(let path, _) = source else {
            throw MiniAppError(.invalidParams, "this daemon does not take packages as descriptors; pass params.path")
        }
        return try install(path: path, allowDowngrade: allowDowngrade)
    }
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
    func refreshPermissions() throws(MiniAppError) -> JSONValue
    /// `session.set`.
    func setSession(userId: String, claims: JSONObject) throws(MiniAppError)
    /// `auth.keys`.
    func jwks() -> JSONValue
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

    public init(version: String, hostVersion: String, mode: String, cgroups: String) {
        self.version = version
        self.hostVersion = hostVersion
        self.mode = mode
        self.cgroups = cgroups
    }
}

/// The control API's methods (spec/control-api.md), independent of the transport: the control
/// server decodes a request, checks the peer, and calls `handle`, which answers through `reply`
/// exactly once (immediately, or later for `programs.stop`).
public final class ControlAPI: Sendable {
    private let facts: DaemonFacts
    private let supervisor: Supervisor
    private let packages: any PackageControl
    private let broker: any BrokerControl
    /// Simulator mode (debug builds): `packages.install {dir}` / `{url}` of unsigned programs.
    private let simulator: Bool
    private let installs: InstallGate

    public init(
        facts: DaemonFacts, supervisor: Supervisor, packages: any PackageControl, broker: any BrokerControl, simulator: Bool = false,
        installLimits: InstallGate.Limits = .init()
    ) {
        self.simulator = simulator
        self.facts = facts
        self.supervisor = supervisor
        self.packages = packages
        self.broker = broker
        installs = InstallGate(installLimits)
    }

    /// The methods served (anything else is METHOD_NOT_FOUND).
    public static let methods: Set<String> = [
        "daemon.info", "packages.install", "packages.list", "packages.rollback", "packages.remove", "programs.launch",
        "programs.suspend", "programs.resume", "programs.stop", "programs.list", "programs.send", "programs.prewarm", "bridge.provide",
        "session.set", "inspector.subscribe", "permissions.refresh", "updates.check", "auth.keys",
        "programs.restart", "updates.status",
    ]

    /// Serves one request. `attachment` is the descriptor passed with it, if it asked for one
    /// (`packages.install {fd: true}`).
    public func handle(
        method: String, params: JSONValue?, peer: any ControlPeer, attachment: PassedDescriptor? = nil,
        reply: @escaping @Sendable (Result<JSONValue, MiniAppError>) -> Void
    ) {
        // Same order as the Bridge (spec): method first, then params.
        guard Self.methods.contains(method) else {
            return reply(.failure(MiniAppError(.methodNotFound, "no control method \(method); see spec/control-api.md")))
        }
        let p = params?.objectValue ?? [:]
        if let params, params.objectValue == nil {
            return reply(.failure(MiniAppError(.invalidParams, "params must be an object")))
        }
        if method == "programs.stop" { return stop(p, reply) }
        if method == "packages.install" { return install(p, peer: peer, attachment: attachment, reply) }
        if method == "programs.restart" { return restart(p, reply) }
        do throws(MiniAppError) {
            reply(.success(try handleSync(method: method, p: p, peer: peer)))
        } catch {
            reply(.failure(error))
        }
    }

    private func handleSync(method: String, p: JSONObject, peer: any ControlPeer) throws(MiniAppError) -> JSONValue {
        switch method {
        case "daemon.info": return info()
        case "packages.list": return try packages.list()
        case "packages.rollback":
            // Like removal: the running worker's version would no longer be the active one.
            let id = try Params.string(p, "id")
            try refuseIfRunning(id, "rolling it back")
            return try packages.rollback(id: id)
        case "packages.remove":
            let id = try Params.string(p, "id")
            try refuseIfRunning(id, "removing it")
            try packages.remove(id: id)
            return [:]
        case "programs.launch":
            let id = try Params.string(p, "id")
            // Before the launch, in the background: a launch never waits for the registry,
            // and one refused (HOST_UPDATE_REQUIRED) may be fixed by what the check finds.
            packages.launchRequested(id: id)
            return try supervisor.launch(id, args: try Params.strings(p, "args") ?? [])
        case "programs.suspend":
            try supervisor.suspend(try Params.string(p, "workerId"))
            return [:]
        case "programs.resume":
            try supervisor.resume(try Params.string(p, "workerId"))
            return [:]
        case "programs.list": return ["workers": .array(supervisor.list()), "prewarmed": .array(supervisor.prewarmedList())]
        case "programs.prewarm": return try supervisor.prewarm(try Params.string(p, "id"))
        case "programs.send":
            try supervisor.send(try Params.string(p, "workerId"), name: try Params.string(p, "name"), data: p["data"] ?? [:])
            return [:]
        default: return try handleBroker(method: method, p: p, peer: peer)
        }
    }

    static let notSimulator = MiniAppError(
        .invalidParams,
        "params.dir and params.url install unsigned programs: only a debug build's miniappd --simulator accepts them; sign the program (miniapp pack) and install the zip with params.path")

    private func refuseIfRunning(_ id: String, _ what: String) throws(MiniAppError) {
        guard !supervisor.isRunning(programId: id) else {
            throw MiniAppError(.alreadyRunning, "\(id) is running; stop it (miniapp stop WORKER) before \(what)")
        }
    }

    private func handleBroker(method: String, p: JSONObject, peer: any ControlPeer) throws(MiniAppError) -> JSONValue {
        switch method {
        case "bridge.provide":
            guard let methods = try Params.strings(p, "methods"), !methods.isEmpty else {
                throw MiniAppError(.invalidParams, "methods must be a non-empty array of method names")
            }
            try broker.provide(methods: methods, peer: peer)
        case "session.set":
            let claims = p["claims"]
            if let claims, claims.objectValue == nil, !claims.isNull {
                throw MiniAppError(.invalidParams, "claims must be an object")
            }
            try broker.setSession(userId: try Params.string(p, "userId"), claims: claims?.objectValue ?? [:])
        case "inspector.subscribe": broker.subscribeInspector(programId: try Params.optionalString(p, "programId"), peer: peer)
        case "permissions.refresh": return try broker.refreshPermissions()
        case "updates.check": return try packages.checkUpdates(id: try Params.optionalString(p, "id"))
        case "updates.status": return try packages.updateStatus(id: try Params.optionalString(p, "id"))
        case "auth.keys": return broker.jwks()
        default: throw MiniAppError(.methodNotFound, "no control method \(method); see spec/control-api.md")
        }
        return [:]
    }

    /// `packages.install`: off the connection's queue, on the install gate's bounded pool, so a
    /// slow or hostile install never holds up another request (of this peer or any other).
    /// `{dir}` / `{url}` (an unsigned program) only in simulator mode.
    private func install(
        _ p: JSONObject, peer: any ControlPeer, attachment: PassedDescriptor?,
        _ reply: @escaping @Sendable (Result<JSONValue, MiniAppError>) -> Void
    ) {
        let job: @Sendable (UInt64) throws(MiniAppError) -> JSONValue
        do throws(MiniAppError) { job = try installJob(p, peer: peer, attachment: attachment) } catch { return reply(.failure(error)) }
        let refused = installs.start(uid: peer.uid, { deadline -> Result<JSONValue, MiniAppError> in
            do throws(MiniAppError) { return .success(try job(deadline)) } catch { return .failure(error) }
        }, then: reply)
        if let refused { reply(.failure(refused)) }
    }

    /// The install a request asks for, its params checked before it takes a place in the gate.
    private func installJob(_ p: JSONObject, peer: any ControlPeer, attachment: PassedDescriptor?) throws(MiniAppError)
        -> @Sendable (UInt64) throws(MiniAppError) -> JSONValue
    {
        let packages = self.packages
        if p["dir"] != nil || p["url"] != nil {
            guard simulator else { throw Self.notSimulator }
            let dir = try Params.optionalString(p, "dir"), url = try Params.optionalString(p, "url")
            return { _ throws(MiniAppError) in try packages.installSimulated(dir: dir, url: url) }
        }
        let allowDowngrade = try Params.bool(p, "allowDowngrade") ?? false
        let source = try Self.packageSource(p, peer: peer, attachment: attachment)
        return { deadline throws(MiniAppError) in try packages.install(from: source, allowDowngrade: allowDowngrade, deadline: deadline) }
    }

    private static func packageSource(_ p: JSONObject, peer: any ControlPeer, attachment: PassedDescriptor?) throws(MiniAppError)
        -> PackageSource
    {
        let byDescriptor = try Params.bool(p, "fd") ?? false
        if byDescriptor {
            guard p["path"] == nil || p["path"]!.isNull else {
                throw MiniAppError(.invalidParams, "pass either params.path or params.fd, not both")
            }
            guard let attachment else {
                throw MiniAppError(
                    .invalidParams, "params.fd is true but no descriptor came with the request; attach it (SCM_RIGHTS) to the sendmsg that carries the request line")
            }
            return .descriptor(attachment)
        }
        return .path(try Params.string(p, "path"), peer.credentials)
    }

    private func stop(_ p: JSONObject, _ reply: @escaping @Sendable (Result<JSONValue, MiniAppError>) -> Void) {
        do throws(MiniAppError) {
            let wid = try Params.string(p, "workerId")
            let grace = try Params.int(p, "graceMillis", 0...600_000)
            try supervisor.stop(wid, graceMillis: grace) { status in reply(.success(["status": .int(Int64(status))])) }
        } catch {
            reply(.failure(error))
        }
    }

    /// `programs.restart {id}`: stops the program's worker (if one runs) and launches it again,
    /// which activates a staged version; answers with the launch (`workerId`, `version`, …).
    private func restart(_ p: JSONObject, _ reply: @escaping @Sendable (Result<JSONValue, MiniAppError>) -> Void) {
        let id: String
        do throws(MiniAppError) { id = try Params.string(p, "id") } catch { return reply(.failure(error)) }
        let launch: @Sendable () -> Void = { [supervisor] in
            do throws(MiniAppError) { reply(.success(try supervisor.launch(id))) } catch { reply(.failure(error)) }
        }
        guard let wid = supervisor.workerId(programId: id) else { return launch() }
        do throws(MiniAppError) {
            // The stop waiter runs on the jail's reaper thread: launch elsewhere.
            try supervisor.stop(wid, graceMillis: nil) { _ in DispatchQueue.global().async(execute: launch) }
        } catch where error.code == .notFound {
            launch()  // it ended meanwhile
        } catch {
            reply(.failure(error))
        }
    }

    private func info() -> JSONValue {
        let counts = supervisor.counts()
        return [
            "version": .string(facts.version), "hostVersion": .string(facts.hostVersion), "mode": .string(facts.mode),
            "cgroups": .string(facts.cgroups), "workers": .int(Int64(counts.values.reduce(0, +))),
            "workersByState": .object(JSONObject(counts.map { ($0.key, .int(Int64($0.value))) })),
            "simulator": .bool(simulator),
            "denials": .int(broker.denials()),
        ]
    }
}

/// Typed access to request params, with INVALID_PARAMS messages that name the member.
enum Params {
    static func string(_ p: JSONObject, _ key: String) throws(MiniAppError) -> String {
        guard let s = p[key]?.stringValue, !s.isEmpty else {
            throw MiniAppError(.invalidParams, "params.\(key) must be a non-empty string")
        }
        return s
    }

    static func optionalString(_ p: JSONObject, _ key: String) throws(MiniAppError) -> String? {
        guard let v = p[key], !v.isNull else { return nil }
        return try string(p, key)
    }

    static func bool(_ p: JSONObject, _ key: String) throws(MiniAppError) -> Bool? {
        guard let v = p[key], !v.isNull else { return nil }
        guard let b = v.boolValue else { throw MiniAppError(.invalidParams, "params.\(key) must be true or false") }
        return b
    }

    static func int(_ p: JSONObject, _ key: String, _ range: ClosedRange<Int>) throws(MiniAppError) -> Int? {
        guard let v = p[key], !v.isNull else { return nil }
        guard let i = v.intValue, let n = Int(exactly: i), range.contains(n) else {
            throw MiniAppError(.invalidParams, "params.\(key) must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    static func strings(_ p: JSONObject, _ key: String) throws(MiniAppError) -> [String]? {
        guard let v = p[key], !v.isNull else { return nil }
        guard let a = v.arrayValue else { throw MiniAppError(.invalidParams, "params.\(key) must be an array of strings") }
        var out: [String] = []
        for x in a {
            guard let s = x.stringValue else { throw MiniAppError(.invalidParams, "params.\(key) must be an array of strings") }
            out.append(s)
        }
        return out
    }
}
