public import MiniAppModel
public import MiniAppSystem
import CJail
import Synchronization

/// A running jailed worker. All methods are thread-safe; the exit is reported by callback
/// (`onExit`, on the jail's event thread); `exit`, `stop` and `waitExit` are that callback
/// awaited, for tests and one-shot tools.
public final class JailedWorker: Sendable {
    /// The program id it runs.
    public let programId: String
    /// Host pid of the worker's PID 1 (the reaper, or the program itself without reaper).
    public let pid: Int32
    /// The program's uid inside the jail (privileged mode: also on the host).
    public let uid: UInt32
    /// It started in a warm jail (namespaces and shared mounts made ahead of the launch).
    public let startedWarm: Bool
    let pidfd: Int32
    /// Its cgroup; replaced once when a cgroup made ahead gets the worker's name (`renameCgroup`).
    private let cgroupBox: Mutex<(any WorkerCgroup)?>
    var cgroup: (any WorkerCgroup)? { cgroupBox.withLock { $0 } }
    let graceSeconds: Double
    let collectors: (JailOutputCollector, JailOutputCollector)
    let state = Mutex(State())
    let trace: JailTrace?
    /// The spawner that cloned it: the one to ask for signals once this process dropped its
    /// privileges (the worker runs as another uid).
    let spawner: SpawnerSlot?
    /// Workers whose cgroup is not removed yet, and who waits for there to be none.
    static let unremoved = Mutex<(count: Int, waiters: [CountingSemaphore])>((0, []))

    /// Blocks until every worker of this process has ended and had its cgroup removed, or
    /// `seconds` pass; whether they all were. For shutdown (the daemon's, `miniapp jail`'s): the
    /// removal runs on a background thread after the exit is reported, and a process that exits
    /// first would leave the directories to the next start's sweep.
    public static func waitUntilAllRemoved(seconds: Double) -> Bool {
        let signal = CountingSemaphore()
        let none = unremoved.withLock { u -> Bool in
            if u.count == 0 { return true }
            u.waiters.append(signal)
            return false
        }
        return none || signal.wait(seconds: seconds)
    }

    /// Removes the cgroups of ended workers and renames those made ahead: nobody waits on it.
    static let cleanup = WorkQueue(name: "jail-cleanup", background: true)

    struct State {
        /// PID 1 reaped through its pidfd: (si_code, si_status).
        var reaped: (code: Int32, status: Int32)?
        /// The program's raw wait status, from the reaper's status pipe.
        var programStatus: Int32?
        var statusBuffer: [UInt8] = []
        /// The status pipe is still open (false without a reaper).
        var statusOpen = false
        var openStreams = 2
        var finalizing = false
        var exit: WorkerExit?
        /// Told of the exit once, on the event thread (`onExit`).
        var exitObservers: [@Sendable (WorkerExit) -> Void] = []
        var stopRequested = false
        var limitHit: JailLimitKind?
        var timers: [UInt64] = []
        var pidfdOpen = true
        var removed = false
        var removedWaiters: [CheckedContinuation<Void, Never>] = []
    }

    init(child: SpawnedChild, programId: String, uid: UInt32, cgroup: (any WorkerCgroup)?, grace: Double,
         collectors: (JailOutputCollector, JailOutputCollector), trace: JailTrace?, spawner: SpawnerSlot? = nil) {
        self.trace = trace
        self.spawner = spawner
        self.programId = programId
        pid = child.pid
        startedWarm = child.warm
        pidfd = child.pidfd
        self.uid = uid
        cgroupBox = Mutex(cgroup)
        graceSeconds = grace
        self.collectors = collectors
    }

    static func start(child: SpawnedChild, launch: JailLaunch, uid: UInt32, limits: JailLimits,
                      cgroup: (any WorkerCgroup)?, renameCgroupTo pendingName: String? = nil, pipes: JailPipes,
                      policy: JailPolicy, trace: JailTrace?, spawner: SpawnerSlot? = nil) -> JailedWorker {
        let out = JailOutputCollector(programId: launch.programId, stream: .stdout, limits: policy.output, sink: launch.output)
        let err = JailOutputCollector(programId: launch.programId, stream: .stderr, limits: policy.output, sink: launch.output)
        let w = JailedWorker(child: child, programId: launch.programId, uid: uid, cgroup: cgroup,
                             grace: policy.stopGraceSeconds, collectors: (out, err), trace: trace, spawner: spawner)
        unremoved.withLock { $0.count += 1 }
        // Queued before the exit can be seen, so the removal (same thread) always comes after.
        if let pendingName { w.renameCgroup(to: pendingName) }
        let loop = JailEventLoop.shared
        loop.watchOutput(fd: pipes.out.r, onData: { out.consume($0) }, onEOF: { out.finish(); w.streamClosed() })
        loop.watchOutput(fd: pipes.err.r, onData: { err.consume($0) }, onEOF: { err.finish(); w.streamClosed() })
        // The status pipe first: PID 1's pidfd must not be taken for the final word while a
        // status it wrote is still unread.
        if child.statusFD >= 0 {
            w.state.withLock { $0.statusOpen = true }
            loop.watchOutput(fd: child.statusFD, onData: { w.statusBytes($0) }, onEOF: { w.statusClosed() })
        }
        if child.exitFD >= 0 {
            // A spawner service's child: it reaps it and sends the exit record, then closes.
            let record = Mutex<[UInt8]>([])
            loop.watchOutput(fd: child.exitFD, onData: { b in record.withLock { $0 += b } }, onEOF: {
                let (code, status) = Self.exitRecord(record.withLock { $0 })
                w.reaped(code: code, status: status)
            })
        } else {
            loop.watchExit(pidfd: child.pidfd) { code, status in w.reaped(code: code, status: status) }
        }
        if limits.wallClockSeconds > 0 {
            let t = loop.after(seconds: limits.wallClockSeconds) { w.limitReached(.wallClock) }
            w.state.withLock { $0.timers.append(t) }
        }
        if cgroup != nil { w.watchPids() }
        trace?.mark("watched")
        return w
    }

    // MARK: control

    /// Freezes every process of the worker (cgroup freezer). Throws `JAIL_UNAVAILABLE` without cgroups.
    public func suspend() throws(MiniAppError) {
        guard cgroup != nil else { throw MiniAppError(.jailUnavailable, "suspend needs a cgroup freezer; enable cgroups in jail.json") }
        do { try locked { cg throws(SystemError) in try cg.freeze() } } catch { throw MiniAppError(.jailSetupFailed, "freezing \(programId) failed: \(error)", data: ["step": "freeze", "errno": "\(error.errno)"]) }
    }

    /// Thaws a suspended worker.
    public func resume() throws(MiniAppError) {
        guard cgroup != nil else { throw MiniAppError(.jailUnavailable, "resume needs a cgroup freezer; enable cgroups in jail.json") }
        do { try locked { cg throws(SystemError) in try cg.thaw() } } catch { throw MiniAppError(.jailSetupFailed, "thawing \(programId) failed: \(error)", data: ["step": "thaw", "errno": "\(error.errno)"]) }
    }

    /// SIGKILLs the worker (its PID 1: the kernel then kills the whole pid namespace). The exit
    /// reason becomes `.stopped`.
    public func kill() {
        state.withLock { $0.stopRequested = true }
        signalPID1(Signal.kill)
    }

    /// SIGTERM (forwarded to the program by the reaper), then SIGKILL after `grace` seconds
    /// (default: the policy's `stopGraceSeconds`). The exit comes through `onExit`.
    public func requestStop(grace: Double? = nil) {
        state.withLock { $0.stopRequested = true }
        if let cgroup { try? cgroup.thaw() } // a frozen worker cannot handle SIGTERM
        signalPID1(Signal.term)
        let t = JailEventLoop.shared.after(seconds: grace ?? graceSeconds) { [self] in signalPID1(Signal.kill) }
        state.withLock { $0.timers.append(t) }
    }

    /// `requestStop`, then suspends until the exit.
    public func stop(grace: Double? = nil) async -> WorkerExit {
        requestStop(grace: grace)
        return await exit
    }

    /// Memory and CPU usage now (zeros without cgroups).
    public func stats() -> JailStats { reading { $0.stats() } ?? JailStats(memoryBytes: 0, cpuMicros: 0) }

    /// Calls `observer` once with how the worker ended, on the jail's event thread as soon as it
    /// has been reaped (at once if it has been already). Its cgroup is removed right after
    /// (`removed`). Do not block in it.
    public func onExit(_ observer: @escaping @Sendable (WorkerExit) -> Void) {
        let done = state.withLock { s -> WorkerExit? in
            if let e = s.exit { return e }
            s.exitObservers.append(observer)
            return nil
        }
        if let done { observer(done) }
    }

    /// Suspends until the worker has been reaped, and returns how it ended (`onExit`, awaited).
    public var exit: WorkerExit {
        get async { await withCheckedContinuation { cont in onExit { cont.resume(returning: $0) } } }
    }

    /// Blocks the calling thread until the worker has been reaped (`onExit`, waited for; for
    /// synchronous callers such as a command-line tool, never from Swift's cooperative pool).
    public func waitExit() -> WorkerExit {
        let exit = Handoff<WorkerExit>()
        onExit { exit.give($0) }
        return exit.wait()
    }

    /// Suspends until the worker has ended and its cgroup has been removed.
    public var removed: Void {
        get async {
            _ = await exit
            await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.removed { return true }
                    s.removedWaiters.append(cont)
                    return false
                }
                if done { cont.resume() }
            }
        }
    }

    /// Runs `body` on the current cgroup (if any) while holding the lock a rename takes.
    private func locked(_ body: (any WorkerCgroup) throws(SystemError) -> Void) throws(SystemError) {
        let r = cgroupBox.withLock { cg -> Result<Void, SystemError> in
            guard let cg else { return .success(()) }
            do throws(SystemError) {
                try body(cg)
                return .success(())
            } catch { return .failure(error) }
        }
        try r.get()
    }

    /// Reads from the current cgroup under the same lock: read while a cgroup made ahead is
    /// being renamed, its files would be missing, and an OOM or pids kill would be reported
    /// as a plain signal. nil without cgroups.
    func reading<R: Sendable>(_ body: (any WorkerCgroup) -> R) -> R? {
        cgroupBox.withLock { cg -> R? in
            guard let cg else { return nil }
            return body(cg)
        }
    }

    /// Gives a cgroup made ahead (`p-…`) the worker's name, on the cleanup thread: a rename per
    /// hierarchy is ~0.1 ms the spawn need not wait for. Suspend and resume wait for it (same
    /// lock); removal, queued on the same thread, comes after it. A failed rename keeps the
    /// working cgroup under its old name (the sweep knows both forms).
    func renameCgroup(to name: String) {
        Self.cleanup.submit { [self] in
            cgroupBox.withLock { cg in
                if let renamed = try? cg?.renamed(to: name) { cg = renamed }
            }
            trace?.mark("cgroup_renamed")
        }
    }

    /// The worker's cgroup directories (empty without cgroups), for operators and tests.
    public var cgroupLocation: String? { cgroup?.location }

    private func signalPID1(_ sig: Int32) {
        state.withLock { s in
            guard s.pidfdOpen else { return }
            // Dropped: only the spawner may signal another uid's process (it holds its own
            // pidfd of each worker it cloned).
            if PrivilegeDrop.isDropped, let spawner { _ = spawner.signal(pid: pid, sig) } else { _ = cjail_pidfd_send_signal(pidfd, sig) }
        }
    }

    func limitReached(_ kind: JailLimitKind) {
        let first = state.withLock { s -> Bool in
            guard s.exit == nil, s.limitHit == nil, !s.stopRequested else { return false }
            s.limitHit = kind
            return true
        }
        if first { signalPID1(Signal.kill) }
    }

    /// A fork bomb only makes fork fail at pids.max; the worker is ended as soon as it happens
    /// so that the caller learns why (polled: v1 pids.events has no notification).
    private func watchPids() {
        let t = JailEventLoop.shared.after(seconds: 0.1) { [self] in
            let alive = state.withLock { $0.exit == nil }
            guard alive, let hits = reading({ $0.events().pidsMaxHits }) else { return }
            if hits > 0 { limitReached(.pids) } else { watchPids() }
        }
        state.withLock { $0.timers.append(t) }
    }
}
