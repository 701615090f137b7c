import Dispatch
import Glibc
import MiniAppBroker
public import MiniAppJSON
public import MiniAppModel
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

    public init() {}
}

/// Owns the workers: launch, suspend, resume, stop, list, events, crash restarts, idle stops,
/// and `program.exited` notifications. One worker per program id.
///
/// Thread-safe: control requests arrive on the reactor thread, exits on the jail's reaper
/// thread, timers on a private queue. State is one value under one mutex; callbacks
/// (spawn, notifications) run outside the lock.
public final class Supervisor: Sendable {
    enum RunState: String { case running, suspended, stopping }

    struct Worker {
        var workerId: String
        var program: LaunchableProgram
        var handle: any WorkerHandle
        var state: RunState
        var startMicros: Int64
        var startUptimeNanos = DispatchTime.now().uptimeNanoseconds
        var stopReason: WorkerExitInfo.Reason?
        var stopDetail: String?
        var stopWaiters: [@Sendable (Int32) -> Void] = []
    }

    struct State {
        var workers: [String: Worker] = [:]
        var byProgram: [String: String] = [:]
        var launching: Set<String> = []
        var crashes: [String: (count: Int, lastMicros: Int64)] = [:]
        var shuttingDown = false
    }

    private let settings: SupervisorSettings
    private let ids: WorkerIDAllocator
    private let spawner: any WorkerSpawner
    private let resolver: any ProgramResolver
    private let bridge: any BridgeAttacher
    private let notify: @Sendable (String, JSONValue) -> Void
    private let state = Mutex(State())
    private let timers = DispatchQueue(label: "miniappd.supervisor.timers")

    /// `notify(method, params)` sends a notification to every control connection.
    public init(
        settings: SupervisorSettings, ids: WorkerIDAllocator, spawner: any WorkerSpawner, resolver: any ProgramResolver,
        bridge: any BridgeAttacher, notify: @escaping @Sendable (String, JSONValue) -> Void
    ) {
        self.settings = settings
        self.ids = ids
        self.spawner = spawner
        self.resolver = resolver
        self.bridge = bridge
        self.notify = notify
        if settings.idleTimeoutSeconds > 0 { scheduleIdleCheck() }
    }

    // MARK: launch

    /// `programs.launch`: starts the program's active version, or answers with the running
    /// worker when there is one.
    public func launch(_ id: String, args: [String] = []) throws(MiniAppError) -> JSONValue {
        let program = try resolver.launchable(id)
        let existing: JSONValue? = try state.withLock { s throws(MiniAppError) -> JSONValue? in
            if s.shuttingDown { throw MiniAppError(.hostUnavailable, "miniappd is shutting down; launch again after it restarts") }
            if let wid = s.byProgram[id], let w = s.workers[wid] { return Self.launchInfo(w) }
            if s.launching.contains(id) { throw MiniAppError(.alreadyRunning, "\(id) is being launched; retry in a moment") }
            guard s.workers.count < settings.maxWorkers else {
                throw MiniAppError(.rateLimited, "\(settings.maxWorkers) workers are running (maxWorkers); stop one first")
            }
            s.launching.insert(id)
            return nil
        }
        if let existing { return existing }
        defer { _ = state.withLock { $0.launching.remove(id) } }
        let worker = try start(program, args: args)
        state.withLock { s in
            s.workers[worker.workerId] = worker
            s.byProgram[id] = worker.workerId
        }
        return Self.launchInfo(worker)
    }

    private func start(_ program: LaunchableProgram, args: [String]) throws(MiniAppError) -> Worker {
        let workerId = try ids.next()
        let identity = CallerIdentity(
            workerId: workerId, programId: program.id, version: program.version, partnerId: program.partnerId,
            declaredPermissions: Set(program.permissions), allowedDomains: program.allowedDomains)
        let workerFD = try bridge.attach(identity: identity)
        defer { close(workerFD) }
        let request = WorkerSpawnRequest(
            workerId: workerId, programId: program.id, argv: RuntimeCommand.argv(program, args: args),
            env: RuntimeCommand.env(program, workerId: workerId), appDir: program.appDir,
            dataDir: try resolver.dataDirectory(program.id),
            readOnlyBinds: settings.sdkDir.map { [($0, "/sdk")] } ?? [], bridgeFD: workerFD)
        let started = Self.nowMicros()
        do {
            let handle = try spawner.spawn(request) { [weak self] exit in self?.workerExited(workerId, exit) }
            return Worker(
                workerId: workerId, program: program, handle: handle, state: .running, startMicros: started)
        } catch {
            bridge.detach(workerId: workerId)
            throw error
        }
    }

    static func launchInfo(_ w: Worker) -> JSONValue {
        [
            "workerId": .string(w.workerId), "id": .string(w.program.id), "version": .string(w.program.version),
            "pid": .int(Int64(w.handle.pid)), "startMicros": .int(w.startMicros),
        ]
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

    /// `programs.resume`.
    public func resume(_ workerId: String) throws(MiniAppError) {
        let handle = try transition(workerId, from: [.suspended], to: .running)
        do { try handle.resume() } catch {
            _ = try? transition(workerId, from: [.running], to: .suspended)
            throw error
        }
    }

    private func transition(_ workerId: String, from: Set<RunState>, to: RunState) throws(MiniAppError) -> any WorkerHandle {
        try state.withLock { s throws(MiniAppError) -> any WorkerHandle in
            guard var w = s.workers[workerId] else { throw Self.noWorker(workerId) }
            guard from.contains(w.state) else {
                throw MiniAppError(.invalidParams, "\(workerId) is \(w.state.rawValue); this needs it \(from.map(\.rawValue).sorted().joined(separator: " or "))")
            }
            w.state = to
            s.workers[workerId] = w
            return w.handle
        }
    }

    /// `programs.stop`: SIGTERM, SIGKILL of the cgroup after the grace; `done` gets the status.
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

    /// `programs.list`.
    public func list() -> [JSONValue] {
        let workers = state.withLock { Array($0.workers.values) }
        return workers.sorted { $0.startMicros < $1.startMicros }.map { w in
            let usage = w.handle.usage()
            return [
                "workerId": .string(w.workerId), "id": .string(w.program.id), "version": .string(w.program.version),
                "state": .string(w.state.rawValue), "pid": .int(Int64(w.handle.pid)),
                "memoryBytes": .int(usage.memoryBytes), "cpuMicros": .int(usage.cpuMicros),
                "bridgeCalls": .int(bridge.activity(workerId: w.workerId).calls),
            ]
        }
    }

    /// Number of workers by state, for metrics and `daemon.info`.
    public func counts() -> [String: Int] {
        state.withLock { s in s.workers.values.reduce(into: [:]) { $0[$1.state.rawValue, default: 0] += 1 } }
    }

    /// Whether a program has a live worker (the package store refuses activation meanwhile).
    public func isRunning(programId: String) -> Bool {
        state.withLock { $0.byProgram[programId] != nil }
    }

    /// SIGTERM: stop every worker (reason `daemon-shutdown`) and wait up to `graceMillis` + 2 s.
    public func shutdown(graceMillis: Int) {
        let ids = state.withLock { s in
            s.shuttingDown = true
            return Array(s.workers.keys)
        }
        let group = DispatchGroup()
        for id in ids {
            group.enter()
            do {
                try stop(id, graceMillis: graceMillis, reason: .daemonShutdown) { _ in group.leave() }
            } catch {
                group.leave()
            }
        }
        _ = group.wait(timeout: .now() + .milliseconds(graceMillis + 2000))
    }

    static func noWorker(_ id: String) -> MiniAppError {
        MiniAppError(.notFound, "no worker \(id); `miniapp ps` lists the running ones")
    }

    static func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

// MARK: exits, restarts, idle

extension Supervisor {
    func workerExited(_ workerId: String, _ exit: WorkerExitInfo) {
        bridge.detach(workerId: workerId)
        guard let w = state.withLock({ s -> Worker? in
            guard let w = s.workers.removeValue(forKey: workerId) else { return nil }
            if s.byProgram[w.program.id] == workerId { s.byProgram[w.program.id] = nil }
            return w
        }) else { return }
        var info = exit
        // A limit the jail enforced (OOM, wall clock) wins over our stop request: it is what
        // really ended the worker. Otherwise a requested stop is reported with the reason it
        // was requested for: the jail reports every stop it carried out as `stopped`, which
        // must not hide `daemon-shutdown` (SIGTERM of the daemon) from the hosts.
        if let requested = w.stopReason, [.exit, .signal, .stopped].contains(info.reason) {
            info.reason = requested
            info.detail = info.detail ?? w.stopDetail
        }
        var params: JSONObject = [
            "workerId": .string(workerId), "id": .string(w.program.id), "status": .int(Int64(info.status)),
            "reason": .string(info.reason.rawValue),
        ]
        if let sig = info.signal { params["signal"] = .string(sig) }
        if let d = info.detail { params["detail"] = .string(d) }
        notify("program.exited", .object(params))
        for waiter in w.stopWaiters { waiter(info.status) }
        if w.stopReason == nil { considerRestart(w, info) }
    }

    /// Crash restarts with exponential backoff (a crash = non-zero exit, a signal or a limit
    /// kill that nobody asked for). A program that ran a minute cleanly starts a fresh count.
    func considerRestart(_ w: Worker, _ info: WorkerExitInfo) {
        guard info.status != 0, settings.maxRestarts > 0 else { return }
        let now = Self.nowMicros()
        let attempt: Int? = state.withLock { s in
            guard !s.shuttingDown else { return nil }
            var c = s.crashes[w.program.id] ?? (0, now)
            if now - c.lastMicros > 60_000_000 { c.count = 0 }
            c.count += 1
            c.lastMicros = now
            s.crashes[w.program.id] = c
            return c.count <= settings.maxRestarts ? c.count : nil
        }
        guard let attempt else { return }
        let delay = settings.restartBackoffMillis << min(attempt - 1, 16)
        timers.asyncAfter(deadline: .now() + .milliseconds(delay)) { [weak self] in
            guard let self else { return }
            do throws(MiniAppError) {
                let r = try self.launch(w.program.id)
                self.notify("program.restarted", ["id": .string(w.program.id), "attempt": .int(Int64(attempt)), "worker": r])
            } catch {
                self.notify(
                    "program.restartFailed",
                    ["id": .string(w.program.id), "code": .string(error.code.rawValue), "message": .string(error.message)])
            }
        }
    }

    func scheduleIdleCheck() {
        timers.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
            guard let self else { return }
            self.stopIdleWorkers()
            self.scheduleIdleCheck()
        }
    }

    func stopIdleWorkers() {
        let limitNanos = UInt64(settings.idleTimeoutSeconds) * 1_000_000_000
        let now = DispatchTime.now().uptimeNanoseconds
        let candidates = state.withLock { s in
            s.workers.values.filter { $0.state == .running }.map { ($0.workerId, $0.startUptimeNanos) }
        }
        for (id, started) in candidates {
            let last = max(bridge.activity(workerId: id).lastCallNanos, started)
            guard now > last, now - last > limitNanos else { continue }
            try? stop(id, graceMillis: nil, reason: .stopped, detail: "idle timeout") { _ in }
        }
    }
}
