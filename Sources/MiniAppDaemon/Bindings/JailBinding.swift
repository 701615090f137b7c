import Dispatch
import Logging
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Synchronization

/// Binds the supervisor's `WorkerSpawner` seam to MiniAppJail's `Jailer`.
///
/// The supervisor's seam is synchronous because it is called from the control queue (a
/// Dispatch thread, never the Swift cooperative pool and never the reactor thread), so the
/// spawn blocks that thread (`Jailer.spawnBlocking`) until the program was exec'd.
/// The jailer can be replaced by a SIGHUP reload; workers already running keep their policy.
final class JailBinding: WorkerSpawner {
    private let current: Mutex<Jailer>
    private let logger: Logger
    private let metrics: DaemonMetricsSink
    /// The Bridge's message limit (`maxMessageBytes`), announced to every worker.
    private let bridgeMaxBytes: Int
    /// The limits of a program's next worker under the platform's (operator overrides).
    private let limitsFor: @Sendable (_ programId: String, _ platform: JailLimits) throws(MiniAppError) -> JailLimits

    init(
        jailer: Jailer, logger: Logger, metrics: DaemonMetricsSink, bridgeMaxBytes: Int,
        limitsFor: @escaping @Sendable (String, JailLimits) throws(MiniAppError) -> JailLimits = { $1 }
    ) {
        current = Mutex(jailer)
        self.logger = logger
        self.metrics = metrics
        self.bridgeMaxBytes = bridgeMaxBytes
        self.limitsFor = limitsFor
    }

    /// The jailer new workers use.
    var jailer: Jailer { current.withLock { $0 } }

    /// Swaps in a jailer built from reloaded policies.
    func replace(_ jailer: Jailer) { current.withLock { $0 = jailer } }

    func spawn(_ request: WorkerSpawnRequest, onExit: @escaping @Sendable (WorkerExitInfo) -> Void)
        throws(MiniAppError) -> any WorkerHandle
    {
        let jailer = self.jailer
        var launch = makeLaunch(request)
        // Read now, for this worker: an override file changed since the last launch applies.
        launch.limitsOverride = try limitsFor(request.programId, jailer.configuration.policy.limits)
        let started = DispatchTime.now().uptimeNanoseconds
        // The control handler runs on a Dispatch thread: spawn on it directly (no hop to a task
        // and back).
        let worker = try jailer.spawnBlocking(launch)
        metrics.launched(nanos: DispatchTime.now().uptimeNanoseconds - started)
        let handle = JailWorkerHandle(worker)
        // Exits are counted by the supervisor, after it has given them their final reason
        // (a stop it requested for shutdown is `daemon-shutdown`, not the jail's `stopped`).
        Task.detached { onExit(Self.exitInfo(await worker.exit)) }
        return handle
    }

    private func makeLaunch(_ r: WorkerSpawnRequest) -> JailLaunch {
        var launch = JailLaunch(programId: r.programId, argv: r.argv)
        for kv in r.env {
            guard let eq = kv.firstIndex(of: "=") else { continue }
            launch.env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        // The SDKs refuse an oversized request themselves (MESSAGE_TOO_LARGE) instead of
        // sending it: the daemon's answer to one has id null and closes the connection.
        launch.env["MINIAPP_BRIDGE_MAX_BYTES"] = String(bridgeMaxBytes)
        launch.appDir = r.appDir
        launch.dataDir = r.dataDir
        launch.extraReadOnlyBinds = r.readOnlyBinds.map { JailBind(hostPath: $0.0, jailPath: $0.1) }
        launch.bridgeFD = r.bridgeFD
        launch.workdir = "/app"
        let logger = self.logger
        let workerId = r.workerId
        // Program output is untrusted text: it goes to the log as a value with its origin
        // attached, never interpreted (a program printing fake daemon log lines is only noise
        // tagged with its own id).
        launch.output = { line in
            logger.info(
                "\(TerminalText.escape(line.text))",
                metadata: ["program": "\(line.programId)", "worker": "\(workerId)", "stream": "\(line.stream.rawValue)"])
        }
        return launch
    }

    /// The jail's exit → the control API's `program.exited` fields.
    static func exitInfo(_ e: WorkerExit) -> WorkerExitInfo {
        let status = e.shellStatus
        let sig = e.signal.map(signalName)
        switch e.reason {
        case .exit: return WorkerExitInfo(status: status, reason: .exit)
        case .signal: return WorkerExitInfo(status: status, signal: sig, reason: .signal)
        case .killedOOM: return WorkerExitInfo(status: status, signal: sig, reason: .killedOOM, detail: "memory limit")
        case .killedLimit(let kind):
            let detail = kind == .wallClock ? "wall-clock limit" : "pids limit"
            return WorkerExitInfo(status: status, signal: sig, reason: .killedLimit, detail: detail)
        case .stopped: return WorkerExitInfo(status: status, signal: sig, reason: .stopped)
        }
    }

    static func signalName(_ n: Int32) -> String { Signal.name(n) }
}

/// A `JailedWorker` as the supervisor's `WorkerHandle`.
final class JailWorkerHandle: WorkerHandle {
    let worker: JailedWorker

    init(_ worker: JailedWorker) { self.worker = worker }

    var pid: Int32 { worker.pid }
    var startedWarm: Bool { worker.startedWarm }
    func suspend() throws(MiniAppError) { try worker.suspend() }
    func resume() throws(MiniAppError) { try worker.resume() }
    func kill() { worker.kill() }

    func stop(graceMillis: Int) {
        let worker = self.worker
        Task.detached { _ = await worker.stop(grace: Double(graceMillis) / 1000) }
    }

    func usage() -> (memoryBytes: Int64, cpuMicros: Int64) {
        let s = worker.stats()
        return (Int64(clamping: s.memoryBytes), Int64(clamping: s.cpuMicros))
    }
}
