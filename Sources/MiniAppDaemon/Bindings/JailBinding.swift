import Logging
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Synchronization

/// Binds the supervisor's `WorkerSpawner` seam to MiniAppJail's `Jailer`.
///
/// The supervisor's seam is synchronous because it is called from a control connection's
/// `WorkQueue` (never the Swift cooperative pool and never the reactor thread), so the
/// spawn blocks that thread (`Jailer.spawn`) until the program was exec'd.
/// The jailer can be replaced by a SIGHUP reload; workers already running keep their policy.
final class JailBinding: WorkerSpawner {
    private let current: Mutex<Jailer>
    private let logger: Logger
    private let metrics: DaemonMetricsSink
    /// The limits of a program's next worker under the platform's (operator overrides).
    private let limitsFor: @Sendable (_ programId: String, _ platform: JailLimits) throws(MiniAppError) -> JailLimits

    init(
        jailer: Jailer, logger: Logger, metrics: DaemonMetricsSink,
        limitsFor: @escaping @Sendable (String, JailLimits) throws(MiniAppError) -> JailLimits = { $1 }
    ) {
        current = Mutex(jailer)
        self.logger = logger
        self.metrics = metrics
        self.limitsFor = limitsFor
    }

    /// Where workers' exits are reported to the supervisor, one at a time, in order.
    static let exits = WorkQueue(name: "worker-exits")

    /// The jailer new workers use.
    var jailer: Jailer { current.withLock { $0 } }

    /// Swaps in a jailer built from reloaded policies.
    func replace(_ jailer: Jailer) { current.withLock { $0 = jailer } }

    func spawn(_ request: JailLaunch, onExit: @escaping @Sendable (WorkerExitInfo) -> Void)
        throws(MiniAppError) -> any WorkerHandle
    {
        let jailer = self.jailer
        var launch = request
        // Read now, for this worker: an override file changed since the last launch applies.
        launch.limitsOverride = try limitsFor(request.programId, jailer.configuration.policy.limits)
        launch.output = outputSink(workerId: request.program?.workerId ?? "")
        let started = monotonicNanos()
        let worker = try jailer.spawn(launch)
        metrics.launched(nanos: monotonicNanos() - started)
        let handle = JailWorkerHandle(worker)
        // Exits are counted by the supervisor, after it has given them their final reason
        // (a stop it requested for shutdown is `daemon-shutdown`, not the jail's `stopped`).
        // Handed from the jail's event thread to the exits thread: what the supervisor does with
        // an exit (notifications, a crash-loop rollback's file work) must not hold the loop that
        // reads every worker's output and reaps the others.
        worker.onExit { exit in Self.exits.submit { onExit(Self.exitInfo(exit)) } }
        return handle
    }

    /// Program output is untrusted text: it goes to the log as a value with its origin
    /// attached, never interpreted (a program printing fake daemon log lines is only noise
    /// tagged with its own id).
    private func outputSink(workerId: String) -> @Sendable (JailOutputLine) -> Void {
        let logger = self.logger
        return { line in
            logger.info(
                "\(TerminalText.escape(line.text))",
                metadata: ["program": "\(line.programId)", "worker": "\(workerId)", "stream": "\(line.stream.rawValue)"])
        }
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
        worker.requestStop(grace: Double(graceMillis) / 1000)
    }

    func usage() -> (memoryBytes: Int64, cpuMicros: Int64) {
        let s = worker.stats()
        return (Int64(clamping: s.memoryBytes), Int64(clamping: s.cpuMicros))
    }
}
