import MiniAppBroker
import MiniAppJail
public import MiniAppJSON
public import MiniAppModel
public import MiniAppSystem
import Synchronization

/// Lifecycle settings of workers.
public struct SupervisorSettings: Sendable {
    /// Upper bound on live workers.
    public var maxWorkers = 1000
    /// Crash restarts before giving up (per program, reset after a stable minute).
    public var maxRestarts = 3
    /// First restart delay; doubles on each further crash.
    public var restartBackoffMillis = 500
    /// Stop workers idle (no Bridge call) for this long; 0 = never.
    public var idleTimeoutSeconds = 0
    /// Grace between SIGTERM and SIGKILL when not given.
    public var stopGraceMillis = 2000
    /// Host directory with the SDKs, mounted at /sdk in every jail.
    public var sdkDir: String?
    /// The Bridge's message limit (`maxMessageBytes`), announced to every worker.
    public var bridgeMaxBytes = 1 << 20
    /// Prewarmed workers held at most (`programs.prewarm`); 0 = prewarm off.
    public var prewarmMaxWorkers = 4
    /// Memory (bytes) all prewarmed workers may use together; over it the least recently used go.
    public var prewarmMaxMemoryBytes: Int64 = 256 << 20
    /// Prewarm a node or Python program again after its worker exits cleanly.
    public var prewarmRecent = false
    /// The operator's overrides a worker of the program would start under now (nil: they cannot
    /// be read). A prewarmed worker made under other ones is never released.
    public var overridesOf: @Sendable (_ programId: String) -> [PolicyOverride]? = { _ in [] }
    /// The program's /data usage and limits (nil: not enforced, or not mounted).
    public var dataUsageOf: @Sendable (_ programId: String) -> DataVolume.Usage? = { _ in nil }

    public init() {}
}

/// Owns the workers: launch, suspend, resume, stop, list, events, crash restarts, idle stops,
/// and `program.exited` notifications. One worker per program id.
///
/// Thread-safe: control requests arrive on the control queues, exits on the jail's reaper
/// thread, timers and background work on its own serial `WorkQueue`. State is one value under one mutex; callbacks
/// (spawn, notifications) run outside the lock.
///
/// A launch is admitted (an entry in `launching`), resolved and spawned outside the lock, then
/// registered. The jail may see the worker exit before `spawn` even returns (a program that
/// exits at once); such an exit finds no worker in the table yet, so it is parked on the
/// launch's entry and reported when the launch registers — never lost, and the dead worker is
/// never entered in the table (Supervisor+Exits.swift).
public final class Supervisor: Sendable {
    enum RunState: String { case running, suspended, stopping }

    struct Worker {
        var workerId: String
        var program: LaunchableProgram
        /// The `programs.launch` args, kept so that a crash restart runs the same command line.
        var args: [String]
        var handle: any WorkerHandle
        var state: RunState
        var startMicros: Int64
        /// Monotonic ns the idle clock counts from: the start, then every resume (a frozen
        /// worker makes no calls, and must not be stopped as idle the moment it is thawed).
        var idleSinceNanos: UInt64
        var stopReason: WorkerExitInfo.Reason?
        var stopDetail: String?
        var stopWaiters: [@Sendable (Int32) -> Void] = []
        /// A prewarmed worker's: the overrides it was made under (`SupervisorSettings.overridesOf`).
        var overrides: [PolicyOverride]?
    }

    /// A launch between admission and registration in `workers`.
    struct Launching {
        let ticket: LaunchTicket
        /// Set once an id is allocated, before the spawn: lets an early exit find its launch.
        var workerId: String?
        /// The worker's exit, when it came before the launch registered the worker.
        var earlyExit: WorkerExitInfo?
    }

    struct State {
        var workers: [String: Worker] = [:]
        var byProgram: [String: String] = [:]
        /// Program id → its launch in progress (at most one per program).
        var launching: [String: Launching] = [:]
        /// Program id → its prewarmed worker, held before the program's own code runs
        /// (Supervisor+Prewarm.swift). `idleSinceNanos` is when it was prewarmed (LRU order).
        var prewarmed: [String: Worker] = [:]
        /// A budget check of the prewarmed workers is pending on `timers`.
        var trimScheduled = false
        var crashes: [String: (count: Int, lastMicros: Int64)] = [:]
        var shuttingDown = false
        var shutdownGraceMillis = 0

        /// Nothing runs and nothing is being started.
        var isDrained: Bool { workers.isEmpty && launching.isEmpty && prewarmed.isEmpty }
    }

    let settings: SupervisorSettings
    private let ids: WorkerIDAllocator
    private let spawner: any WorkerSpawner
    let resolver: any ProgramResolver
    let bridge: any BridgeAttacher
    let notify: @Sendable (String, JSONValue) -> Void
    let observeExit: @Sendable (WorkerExitInfo) -> Void
    let clock: @Sendable () -> UInt64
    let state = Mutex(State())
    /// Restarts, idle checks, prewarm trims and prewarms again: serial, off every caller's thread.
    let timers = WorkQueue(name: "supervisor")
    /// Signalled when, during shutdown, the last worker or launch goes away.
    let drained = CountingSemaphore()
    /// Told of every worker's end (`observeEnds`).
    let endObservers = Mutex<[@Sendable (EndedWorker) -> Void]>([])
    /// Told of every worker entered in the table: (program id, version).
    let startObservers = Mutex<[@Sendable (String, String) -> Void]>([])

    /// `notify(method, params)` sends a notification to every control connection;
    /// `observeExit` sees every exit as reported (metrics); `clock` is monotonic nanoseconds,
    /// the clock of the broker's `lastCallNanos` when nil (tests pass their own). The
    /// supervisor subscribes to `grantsChanges` (the partner grants): a partner whose grants
    /// changed loses the prewarmed workers made under the old ones.
    public init(
        settings: SupervisorSettings, ids: WorkerIDAllocator, spawner: any WorkerSpawner, resolver: any ProgramResolver,
        bridge: any BridgeAttacher, notify: @escaping @Sendable (String, JSONValue) -> Void,
        observeExit: @escaping @Sendable (WorkerExitInfo) -> Void = { _ in },
        clock: (@Sendable () -> UInt64)? = nil, grantsChanges: GrantsChanges? = nil
    ) {
        self.settings = settings
        self.ids = ids
        self.spawner = spawner
        self.resolver = resolver
        self.bridge = bridge
        self.notify = notify
        self.observeExit = observeExit
        self.clock = clock ?? { monotonicNanos() }
        if settings.idleTimeoutSeconds > 0 { scheduleIdleCheck() }
        grantsChanges?.subscribe { [weak self] change in
            if !change.changed.isEmpty { self?.dropPrewarmed(partners: change.changed) }
        }
    }

    // MARK: launch

    /// `programs.launch`: starts the program's active version (or the newest installed one this
    /// host can run), or answers with the running worker when there is one. A launch that
    /// arrives while the same program is being started waits for that start and answers with
    /// its worker (or its error).
    /// A prewarmed worker of the program (`programs.prewarm`) is released instead of starting one.
    public func launch(_ id: String, args: [String] = []) throws(MiniAppError) -> StartedWorker {
        while true {
            switch try admit(id, prewarm: false) {
            case .running(let info): return info
            case .joining(let ticket):
                let result = Result { () throws(MiniAppError) in try ticket.wait() }
                // A prewarm under way was joined: its worker is held now (or it failed); look again.
                if ticket.prewarm { continue }
                return try result.get()
            case .starting(let ticket):
                return try finish(ticket) { () throws(MiniAppError) in try startAndRegister(id, args: args) }
            case .releasing(let ticket, let held):
                return try finish(ticket) { () throws(MiniAppError) in try release(held, args: args) }
            }
        }
    }

    /// Runs a launch's work and publishes its outcome to the launches that joined it.
    func finish(_ ticket: LaunchTicket, _ work: () throws(MiniAppError) -> StartedWorker) throws(MiniAppError) -> StartedWorker {
        let result = Result { () throws(MiniAppError) in try work() }
        ticket.finish(result)
        return try result.get()
    }

    enum Admission {
        case running(StartedWorker)
        case joining(LaunchTicket)
        case starting(LaunchTicket)
        /// The program's prewarmed worker, taken out of `prewarmed`, to release.
        case releasing(LaunchTicket, Worker)
    }

    /// Admits a launch (or, with `prewarm`, a prewarm) of `id`: one start per program at a time.
    func admit(_ id: String, prewarm: Bool) throws(MiniAppError) -> Admission {
        try state.withLock { s throws(MiniAppError) -> Admission in
            if s.shuttingDown { throw MiniAppError(.hostUnavailable, "miniappd is shutting down; launch again after it restarts") }
            if let wid = s.byProgram[id], let w = s.workers[wid] { return .running(Self.launchInfo(w)) }
            if let pending = s.launching[id] {
                pending.ticket.joined()
                return .joining(pending.ticket)
            }
            if prewarm, let held = s.prewarmed[id] { return .running(Self.prewarmInfo(held)) }
            let ticket = LaunchTicket(prewarm: prewarm)
            if !prewarm, let held = s.prewarmed.removeValue(forKey: id) {
                s.launching[id] = Launching(ticket: ticket, workerId: held.workerId)
                return .releasing(ticket, held)
            }
            guard s.workers.count + s.launching.count + s.prewarmed.count < settings.maxWorkers else {
                throw MiniAppError(.rateLimited, "\(settings.maxWorkers) workers are running (maxWorkers); stop one first")
            }
            s.launching[id] = Launching(ticket: ticket)
            return .starting(ticket)
        }
    }

    /// Resolves, spawns and registers; the caller owns `launching[id]` until this returns.
    func startAndRegister(_ id: String, args: [String]) throws(MiniAppError) -> StartedWorker {
        let worker: Worker
        do throws(MiniAppError) {
            worker = try start(try resolver.launchable(id), args: args)
        } catch {
            abandonLaunch(id)
            throw error
        }
        return try register(worker)
    }

    /// Spawns the program's worker; `prewarm`: one whose SDK loader holds the entry point until
    /// the launch releases it.
    func start(_ program: LaunchableProgram, args: [String], prewarm: Bool = false) throws(MiniAppError) -> Worker {
        let workerId = try ids.next()
        state.withLock { $0.launching[program.id]?.workerId = workerId }
        var identity = CallerIdentity(
            workerId: workerId, programId: program.id, version: program.version, partnerId: program.partnerId,
            declaredPermissions: Set(program.permissions), allowedDomains: program.allowedDomains)
        identity.simulated = program.simulated
        let workerFD = try bridge.attach(identity: identity)
        defer { OwnedFD(adopting: workerFD).close() }
        let run = ProgramRun(
            workerId: workerId, version: program.version, runtime: program.runtime, entryPoint: program.entryPoint, args: args,
            prewarm: prewarm, bridgeMaxBytes: settings.bridgeMaxBytes)
        var launch = JailLaunch(programId: program.id, program: run)
        launch.appDir = program.appDir
        launch.dataDir = try resolver.dataDirectory(program.id)
        launch.extraReadOnlyBinds = settings.sdkDir.map { [JailBind(hostPath: $0, jailPath: "/sdk")] } ?? []
        launch.bridgeFD = workerFD
        let started = Self.nowMicros()
        do {
            let handle = try spawner.spawn(launch) { [weak self] exit in self?.workerExited(workerId, exit) }
            return Worker(
                workerId: workerId, program: program, args: args, handle: handle, state: .running, startMicros: started,
                idleSinceNanos: clock())
        } catch {
            bridge.detach(workerId: workerId)
            throw error
        }
    }

    private enum Registration {
        case registered
        case exitedEarly(WorkerExitInfo)
        case lateForShutdown
    }

    /// Enters the spawned worker in the table, in the same critical section that ends its
    /// launch, so that an exit is either parked on the launch (reported here) or finds the
    /// worker (reported by `workerExited`). A shutdown that began meanwhile did not see this
    /// worker: it is stopped here, and reported with reason `daemon-shutdown`.
    func register(_ spawned: Worker) throws(MiniAppError) -> StartedWorker {
        var w = spawned
        let (outcome, finished) = state.withLock { s -> (Registration, Bool) in
            let launch = s.launching.removeValue(forKey: w.program.id)
            if let early = launch?.earlyExit { return (.exitedEarly(early), s.shuttingDown && s.isDrained) }
            if s.shuttingDown {
                w.state = .stopping
                w.stopReason = .daemonShutdown
            }
            s.workers[w.workerId] = w
            s.byProgram[w.program.id] = w.workerId
            return (s.shuttingDown ? .lateForShutdown : .registered, false)
        }
        switch outcome {
        case .registered:
            for observer in startObservers.withLock({ $0 }) { observer(w.program.id, w.program.version) }
            return Self.launchInfo(w)
        case .exitedEarly(let info):
            report(w, info)
            if finished { drained.signal() }  // after the report, as in workerExited
            return Self.launchInfo(w)
        case .lateForShutdown:
            w.handle.stop(graceMillis: state.withLock { $0.shutdownGraceMillis })
            throw MiniAppError(
                .hostUnavailable,
                "miniappd began shutting down while \(w.program.id) was starting; its worker \(w.workerId) is being stopped. Launch again after the daemon restarts")
        }
    }

    /// The launch failed before a worker existed.
    func abandonLaunch(_ id: String) {
        let finished = state.withLock { s -> Bool in
            s.launching[id] = nil
            return s.shuttingDown && s.isDrained
        }
        if finished { drained.signal() }
    }

    static func launchInfo(_ w: Worker) -> StartedWorker {
        StartedWorker(
            workerId: w.workerId, id: w.program.id, version: w.program.version, pid: w.handle.pid, startMicros: w.startMicros,
            warm: w.handle.startedWarm, prewarmed: false)
    }

    // MARK: control

    /// `programs.suspend`.
    public func suspend(_ workerId: String) throws(MiniAppError) {
        let handle = try transition(workerId, from: [.running], to: .suspended)
        do { try handle.suspend() } catch {
            _ = try? transition(workerId, from: [.suspended], to: .running)
            throw error
        }
    }

    /// `programs.resume`; the idle clock starts afresh.
    public func resume(_ workerId: String) throws(MiniAppError) {
        let handle = try transition(workerId, from: [.suspended], to: .running)
        do { try handle.resume() } catch {
            _ = try? transition(workerId, from: [.running], to: .suspended)
            throw error
        }
    }

    private func transition(_ workerId: String, from: Set<RunState>, to: RunState) throws(MiniAppError) -> any WorkerHandle {
        let now = clock()
        return try state.withLock { s throws(MiniAppError) -> any WorkerHandle in
            guard var w = s.workers[workerId] else { throw Self.noWorker(workerId) }
            guard from.contains(w.state) else {
                throw MiniAppError(.invalidParams, "\(workerId) is \(w.state.rawValue); this needs it \(from.map(\.rawValue).sorted().joined(separator: " or "))")
            }
            w.state = to
            if to == .running { w.idleSinceNanos = now }
            s.workers[workerId] = w
            return w.handle
        }
    }

    /// `programs.stop`: SIGTERM, SIGKILL of the cgroup after the grace; `done` gets the status
    /// once the worker has exited.
    public func stop(
        _ workerId: String, graceMillis: Int?, reason: WorkerExitInfo.Reason = .stopped, detail: String? = nil,
        done: @escaping @Sendable (Int32) -> Void
    ) throws(MiniAppError) {
        let handle = try state.withLock { s throws(MiniAppError) -> any WorkerHandle in
            guard var w = s.workers[workerId] else { throw Self.noWorker(workerId) }
            w.stopWaiters.append(done)
            if w.stopReason == nil {
                w.stopReason = reason
                w.stopDetail = detail
            }
            let wasSuspended = w.state == .suspended
            w.state = .stopping
            s.workers[workerId] = w
            if wasSuspended { try? w.handle.resume() }  // a frozen process cannot act on SIGTERM
            return w.handle
        }
        handle.stop(graceMillis: graceMillis ?? settings.stopGraceMillis)
    }

    /// `programs.send`: an `event` notification to the program.
    public func send(_ workerId: String, name: String, data: JSONValue) throws(MiniAppError) {
        guard state.withLock({ $0.workers[workerId] != nil }) else { throw Self.noWorker(workerId) }
        try bridge.sendEvent(workerId: workerId, name: name, data: data)
    }

    /// `programs.list`'s `workers`, oldest first.
    public func list() -> [WorkerListing] {
        let workers = state.withLock { Array($0.workers.values) }
        return workers.sorted { $0.startMicros < $1.startMicros }.map { w in
            let usage = w.handle.usage()
            return WorkerListing(
                workerId: w.workerId, id: w.program.id, version: w.program.version, state: w.state.rawValue, pid: w.handle.pid,
                memoryBytes: usage.memoryBytes, cpuMicros: usage.cpuMicros, bridgeCalls: bridge.activity(workerId: w.workerId).calls,
                data: settings.dataUsageOf(w.program.id))
        }
    }

    /// Number of workers by state, for metrics and `daemon.info`.
    public func counts() -> [String: Int] {
        state.withLock { s in s.workers.values.reduce(into: [:]) { $0[$1.state.rawValue, default: 0] += 1 } }
    }

    /// The worker running `programId`, if any.
    public func workerId(programId: String) -> String? { state.withLock { $0.byProgram[programId] } }

    /// Calls `observer` at every worker's end, before a crash restart is considered (so that
    /// what it changes in the store applies to the restart).
    public func observeEnds(_ observer: @escaping @Sendable (EndedWorker) -> Void) { endObservers.withLock { $0.append(observer) } }

    /// Calls `observer(programId, version)` once a launched worker is in the table (it can be
    /// sent events from then on).
    public func observeStarts(_ observer: @escaping @Sendable (String, String) -> Void) { startObservers.withLock { $0.append(observer) } }

    /// Whether a program has a live worker or one being started (the package store stages
    /// updates meanwhile, and rollback and removal are refused).
    public func isRunning(programId: String) -> Bool {
        state.withLock { $0.byProgram[programId] != nil || $0.launching[programId] != nil }
    }

    /// SIGTERM: stop every worker (reason `daemon-shutdown`), refuse new launches, and wait up
    /// to `graceMillis` + 2 s until every worker, including any a racing launch started, is gone.
    public func shutdown(graceMillis: Int) {
        let (ids, held) = state.withLock { s in
            s.shuttingDown = true
            s.shutdownGraceMillis = graceMillis
            return (Array(s.workers.keys), Array(s.prewarmed.values))
        }
        for w in held { w.handle.kill() }  // left in `prewarmed` until their exits come in
        for id in ids {
            try? stop(id, graceMillis: graceMillis, reason: .daemonShutdown) { _ in }
        }
        let deadline = monotonicNanos() + UInt64(graceMillis + 2000) * 1_000_000
        while !state.withLock({ $0.isDrained }) {
            if !drained.wait(untilMonotonicNanos: deadline) { return }
        }
    }

    /// True once `shutdown` began (tests).
    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// Launches waiting for the launch of `programId` in progress (tests).
    func joinedLaunches(of programId: String) -> Int { state.withLock { $0.launching[programId]?.ticket.joiners ?? 0 } }

    static func noWorker(_ id: String) -> MiniAppError {
        MiniAppError(.notFound, "no worker \(id); `miniapp ps` lists the running ones")
    }

    static func nowMicros() -> Int64 { wallClockMicros() }
}

/// A worker a launch or a prewarm answers with (`programs.launch`, `programs.prewarm`).
public struct StartedWorker: Sendable, Equatable {
    public var workerId: String
    /// Program id and the version the worker runs.
    public var id: String
    public var version: String
    /// Host pid.
    public var pid: Int32
    /// When it started (Unix microseconds); for a held prewarmed worker, when it was made.
    public var startMicros: Int64
    /// It started in a warm jail.
    public var warm: Bool
    /// It is held before the program's own code (`programs.prewarm`), not running yet.
    public var prewarmed: Bool
}

/// One running worker, as `programs.list` reports it.
public struct WorkerListing: Sendable, Equatable {
    public var workerId: String
    public var id: String
    public var version: String
    /// `running`, `suspended` or `stopping`.
    public var state: String
    public var pid: Int32
    /// Its cgroup's memory and CPU time.
    public var memoryBytes: Int64
    public var cpuMicros: Int64
    /// Bridge calls served so far.
    public var bridgeCalls: Int64
    /// Its program's /data volume: used and total bytes and inodes (nil: limits not enforced).
    public var data: DataVolume.Usage? = nil
}

/// A prewarmed worker held for its launch, as `programs.list`'s `prewarmed` reports it.
public struct PrewarmedListing: Sendable, Equatable {
    public var workerId: String
    public var id: String
    public var version: String
    public var pid: Int32
    public var memoryBytes: Int64
    public var bridgeCalls: Int64
}

/// A worker that ended, as `Supervisor.observeEnds` reports it.
public struct EndedWorker: Sendable {
    /// Program id and the version the worker ran.
    public var programId: String
    public var version: String
    /// When it started (Unix microseconds).
    public var startMicros: Int64
    /// How it ended, as reported in `program.exited`.
    public var exit: WorkerExitInfo
    /// A stop was asked for (`programs.stop`, idle timeout, shutdown): not a failure.
    public var stopRequested: Bool
}

/// The outcome of one launch, shared with the launches of the same program that arrived while
/// it was under way (they block on it, on their own control queue, and answer with the same
/// worker or the same error).
final class LaunchTicket: Sendable {
    /// It is a prewarm's: a launch that joined it looks again once it is done.
    let prewarm: Bool
    /// The outcome once published, and the launches blocked until then.
    private let state = Mutex<(outcome: Result<StartedWorker, MiniAppError>?, waiters: [Handoff<Result<StartedWorker, MiniAppError>>])>((nil, []))
    private let joinCount = Atomic<Int>(0)

    init(prewarm: Bool = false) {
        self.prewarm = prewarm
    }

    /// Publishes the outcome; called exactly once.
    func finish(_ result: Result<StartedWorker, MiniAppError>) {
        let waiters = state.withLock { s in
            s.outcome = result
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.give(result) }
    }

    /// Counts a waiting launch.
    func joined() { joinCount.add(1, ordering: .relaxed) }

    /// Launches that joined so far.
    var joiners: Int { joinCount.load(ordering: .relaxed) }

    /// Blocks until `finish`, then answers like the first launch did.
    func wait() throws(MiniAppError) -> StartedWorker {
        let handoff = Handoff<Result<StartedWorker, MiniAppError>>()
        let done = state.withLock { s -> Result<StartedWorker, MiniAppError>? in
            if let outcome = s.outcome { return outcome }
            s.waiters.append(handoff)
            return nil
        }
        return try (done ?? handoff.wait()).get()
    }
}
