public import MiniAppBroker
public import MiniAppJail
public import MiniAppJSON
public import MiniAppModel

/// How a worker ended (spec/control-api.md `program.exited`).
public struct WorkerExitInfo: Sendable, Equatable {
    /// Why it ended.
    public enum Reason: String, Sendable {
        case exit, signal
        case killedOOM = "killed-oom"
        case killedLimit = "killed-limit"
        case stopped
        case daemonShutdown = "daemon-shutdown"
    }

    /// Exit code, or 128 + signal number.
    public var status: Int32
    /// The signal's name (`SIGKILL`) when a signal ended it.
    public var signal: String?
    /// The reason.
    public var reason: Reason
    /// Extra detail for logs (`wall-clock limit`, `idle timeout`).
    public var detail: String?

    public init(status: Int32, signal: String? = nil, reason: Reason, detail: String? = nil) {
        self.status = status
        self.signal = signal
        self.reason = reason
        self.detail = detail
    }
}

/// A running jailed worker, as the supervisor needs it (bound to MiniAppJail's worker).
public protocol WorkerHandle: AnyObject, Sendable {
    /// Host pid of the worker.
    var pid: Int32 { get }
    /// Freezes the worker's cgroup.
    func suspend() throws(MiniAppError)
    /// Thaws it.
    func resume() throws(MiniAppError)
    /// SIGTERM, then after `graceMillis` SIGKILL of the whole cgroup.
    func stop(graceMillis: Int)
    /// SIGKILL of the whole cgroup now.
    func kill()
    /// Memory bytes and CPU microseconds of the worker's cgroup.
    func usage() -> (memoryBytes: Int64, cpuMicros: Int64)
    /// It started in a warm jail (made ahead of the launch); `programs.launch` reports it.
    var startedWarm: Bool { get }
}

extension WorkerHandle {
    public var startedWarm: Bool { false }
}

/// Starts jailed workers (bound to MiniAppJail).
public protocol WorkerSpawner: Sendable {
    /// Spawns the worker `launch` describes (a `ProgramRun`, its directories, binds and Bridge
    /// descriptor; the binding adds the operator's limits and the output sink); `onExit` is
    /// called exactly once, from any thread, when the worker is gone and its cgroup removed.
    func spawn(_ launch: JailLaunch, onExit: @escaping @Sendable (WorkerExitInfo) -> Void)
        throws(MiniAppError) -> any WorkerHandle
}

/// An installed program ready to launch (bound to MiniAppPackages' store).
public struct LaunchableProgram: Sendable, Equatable {
    /// Program id.
    public var id: String
    /// Active version.
    public var version: String
    /// Partner that owns it.
    public var partnerId: String
    /// The extracted, read-only package directory.
    public var appDir: String
    /// Manifest `entryPoint`, relative to appDir.
    public var entryPoint: String
    public var runtime: Runtime
    /// Declared permissions.
    public var permissions: [String]
    /// Declared allowedDomains.
    public var allowedDomains: [String]
    /// Installed unsigned by a simulator daemon: its Bridge calls are marked `simulated`.
    public var simulated = false

    public init(
        id: String, version: String, partnerId: String, appDir: String, entryPoint: String, runtime: Runtime,
        permissions: [String], allowedDomains: [String]
    ) {
        self.id = id
        self.version = version
        self.partnerId = partnerId
        self.appDir = appDir
        self.entryPoint = entryPoint
        self.runtime = runtime
        self.permissions = permissions
        self.allowedDomains = allowedDomains
    }
}

/// Resolves a program id to what to launch (activates a staged update first; refuses with
/// `HOST_UPDATE_REQUIRED` / `NOT_FOUND`).
public protocol ProgramResolver: Sendable {
    /// The program's active version, or the newest installed one this host runs, ready to
    /// launch. Called only when a worker is about to be started (none runs).
    func launchable(_ id: String) throws(MiniAppError) -> LaunchableProgram
    /// The per-program data directory (created with the program uid's ownership by the jail).
    func dataDirectory(_ id: String) throws(MiniAppError) -> String
}

/// The Bridge side of a worker (bound to MiniAppBroker).
public protocol BridgeAttacher: Sendable {
    /// Creates the worker's Bridge socketpair, serves the daemon's end for `identity`, and returns
    /// the worker's end (the caller passes it to the jail as fd 3, then closes its copy).
    func attach(identity: CallerIdentity) throws(MiniAppError) -> Int32
    /// Stops serving and closes it.
    func detach(workerId: String)
    /// Sends an `event` notification to the worker.
    func sendEvent(workerId: String, name: String, data: JSONValue) throws(MiniAppError)
    /// Calls served so far for the worker, and the monotonic time (ns) of the last one.
    func activity(workerId: String) -> (calls: Int64, lastCallNanos: UInt64)
}
