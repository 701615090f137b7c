import Logging
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Synchronization

/// The update flow around `UpdateChecker`: when checks run (scheduled, at launch, on request),
/// what hosts and programs are told, the crash-loop watch of a newly activated version, and
/// what `updates.status` reports.
///
/// Every check runs on one serial queue, so two checks never download or stage the same version
/// at once, and a launch only enqueues one: it never waits for the registry.
///
/// Crash-loop rollback: a version activated by an update (at once, or at the launch after it
/// was staged) is on probation. A worker of it that fails (non-zero exit, signal, limit kill;
/// not a requested stop) within `rollbackWindowSeconds` of its own start counts one failure;
/// `rollbackCrashCount` failures in a row roll the program back to the previous version, which
/// is recorded in the store as rejected and never offered again until the registry publishes a
/// newer version. A worker that exits 0, or ends after running past the window, ends the
/// probation. The watch lasts while the daemon runs.
final class UpdateService: Sendable {
    struct Settings: Sendable {
        var minIntervalSeconds = 300
        var rollbackCrashCount = 3
        var rollbackWindowSeconds = 60
    }

    private struct LastCheck {
        var atSeconds: Int64
        var result: UpdateCheckResult
    }

    private struct State {
        var lastStarted: [String: UInt64] = [:]
        var queued: Set<String> = []
        var lastCheck: [String: LastCheck] = [:]
        /// Program id → (version on probation, failures so far).
        var probation: [String: (version: String, failures: Int)] = [:]
        /// Program id → the version staged by a check of this daemon, until it is activated.
        var staged: [String: String] = [:]
    }

    /// Programs whose last launch check time is kept, at most.
    static let maxTracked = 4096

    let checker: UpdateChecker?
    private let store: PackageStore
    private let settings: Settings
    private let notify: @Sendable (String, JSONValue) -> Void
    private let sendEvent: @Sendable (String, String, JSONValue) -> Void
    private let onRollback: @Sendable () -> Void
    private let logger: Logger
    private let state = Mutex(State())
    private let queue = WorkQueue(name: "update-checks")

    /// `notify(method, params)` reaches every control connection (and each event is appended
    /// to `audit`); `sendEvent(programId, name, data)` the program's running worker, if any;
    /// `onRollback` counts rollbacks (metrics). The service subscribes to the versions launches
    /// activate (`activations`) and to the starts and ends of `workers` (the crash-loop watch).
    init(
        checker: UpdateChecker?, store: PackageStore, settings: Settings, notify: @escaping @Sendable (String, JSONValue) -> Void,
        sendEvent: @escaping @Sendable (String, String, JSONValue) -> Void, onRollback: @escaping @Sendable () -> Void,
        audit: UpdateAudit? = nil, logger: Logger, activations: EventChannel<LaunchResolver.Activation>? = nil, workers: Supervisor? = nil
    ) {
        self.checker = checker
        self.store = store
        self.settings = settings
        self.notify = { method, params in
            audit?.record(method, params, timeMicros: Supervisor.nowMicros())
            notify(method, params)
        }
        self.sendEvent = sendEvent
        self.onRollback = onRollback
        self.logger = logger
        activations?.subscribe { [weak self] a in self?.activated(a.programId, version: a.version, previous: a.previous) }
        workers?.observeEnds { [weak self] in self?.workerEnded($0) }
        workers?.observeStarts { [weak self] in self?.workerStarted($0, version: $1) }
    }

    // MARK: checks

    /// A launch of `id` was asked for: enqueue a check of it, unless one is queued or one
    /// started less than `minIntervalSeconds` ago. Returns at once.
    func launchRequested(_ id: String) {
        guard checker != nil else { return }
        let now = monotonicNanos()
        let interval = UInt64(settings.minIntervalSeconds) * 1_000_000_000
        let go = state.withLock { s -> Bool in
            if s.queued.contains(id) { return false }
            if let last = s.lastStarted[id], now - last < interval { return false }
            // Bounded: launches of ids that are not installed (a peer's typos or a flood) are
            // remembered too; past the cap only entries still inside the interval are kept.
            if s.lastStarted.count >= Self.maxTracked { s.lastStarted = s.lastStarted.filter { now - $0.value < interval } }
            guard s.lastStarted.count < Self.maxTracked else { return false }
            s.queued.insert(id)
            s.lastStarted[id] = now
            return true
        }
        guard go else { return }
        queue.submit { [self] in
            state.withLock { _ = $0.queued.remove(id) }
            guard let result = checker?.checkOne(id) else { return }
            record([result])
        }
    }

    /// `updates.check {id?}`: runs now (after any check in progress) and answers.
    func checkNow(id: String?) throws(MiniAppError) -> UpdateCheckReport {
        guard let checker else {
            throw MiniAppError(.hostUnavailable, "updates are off: start miniappd with --registry URL (and --platform-key) to use updates.check")
        }
        let outcome: Result<[UpdateCheckResult], MiniAppError> = queue.runBlocking {
            do throws(MiniAppError) { return .success(try checker.checkAll(id: id)) } catch { return .failure(error) }
        }
        let results = try outcome.get()
        record(results)
        return UpdateCheckReport(results)
    }

    /// The scheduled check of every installed program (the daemon's timer).
    func checkAllScheduled() {
        guard let checker else { return }
        queue.runBlocking { [self] in
            do throws(MiniAppError) { record(try checker.checkAll(id: nil)) } catch {
                logger.warning("scheduled update check failed: \(error)")
            }
        }
    }

    /// Keeps each result for `updates.status` and tells hosts and programs what happened.
    func record(_ results: [UpdateCheckResult]) {
        let now = Int64(Supervisor.nowMicros() / 1_000_000)
        state.withLock { s in for r in results { s.lastCheck[r.id] = LastCheck(atSeconds: now, result: r) } }
        for r in results {
            switch r.outcome {
            case .staged:
                guard let v = r.to else { continue }
                logger.info("update staged", metadata: ["program": "\(r.id)", "version": "\(v)"])
                state.withLock { $0.staged[r.id] = v }
                notify("package.staged", ["id": .string(r.id), "version": .string(v)])
                sendEvent(r.id, "update.ready", ["version": .string(v)])
            case .activated:
                guard let v = r.to else { continue }
                let previous = (try? store.list())?.first { $0.id == r.id }?.state.previous?.version.text
                activated(r.id, version: v, previous: previous)
            case .failed:
                var p: JSONObject = ["id": .string(r.id), "code": .string(r.error?.code.rawValue ?? "INTERNAL"), "message": .string(r.error?.message ?? "")]
                if let v = r.to { p["version"] = .string(v) }
                logger.notice("update check failed", metadata: ["program": "\(r.id)", "code": "\(r.error?.code.rawValue ?? "")", "message": "\(r.error?.message ?? "")"])
                notify("package.updateFailed", .object(p))
            case .upToDate, .notInRollout, .rejected:
                continue
            }
        }
    }

    // MARK: activation and the crash-loop watch

    /// A version became active through an update (checked while the program was stopped, or
    /// staged and activated at a launch): hosts hear `package.activated`, the version goes on
    /// probation.
    func activated(_ id: String, version: String, previous: String?) {
        logger.info("update activated", metadata: ["program": "\(id)", "version": "\(version)", "previous": "\(previous ?? "none")"])
        notify("package.activated", ["id": .string(id), "version": .string(version), "previous": previous.map { .string($0) } ?? .null])
        state.withLock { s in
            s.staged[id] = nil
            if settings.rollbackCrashCount > 0, previous != nil { s.probation[id] = (version, 0) }
        }
    }

    /// A worker started: when it runs an older version than one staged meanwhile (the check
    /// staged it while the launch was under way, before the worker could be sent events), it
    /// hears `update.ready` now.
    func workerStarted(_ id: String, version: String) {
        guard let staged = state.withLock({ $0.staged[id] }), staged != version else { return }
        // Rare (a launch raced a check), so the store is read only then: still staged?
        guard (try? store.list())?.first(where: { $0.id == id })?.state.pending?.version.text == staged else {
            state.withLock { _ = $0.staged.removeValue(forKey: id) }
            return
        }
        sendEvent(id, "update.ready", ["version": .string(staged)])
    }

    /// Every worker's end (the supervisor calls it before it considers a crash restart, so a
    /// restart after a rollback starts the version rolled back to).
    func workerEnded(_ w: EndedWorker) {
        let failed = !w.stopRequested && w.exit.status != 0
        let withinWindow = Supervisor.nowMicros() - w.startMicros <= Int64(settings.rollbackWindowSeconds) * 1_000_000
        let rollBack = state.withLock { s -> Bool in
            guard let p = s.probation[w.programId], p.version == w.version, !w.stopRequested else { return false }
            guard failed && withinWindow else {
                s.probation[w.programId] = nil  // it started fine: probation passed
                return false
            }
            guard p.failures + 1 >= settings.rollbackCrashCount else {
                s.probation[w.programId] = (p.version, p.failures + 1)
                return false
            }
            s.probation[w.programId] = nil
            return true
        }
        if rollBack { rollBackCrashLoop(w.programId, version: w.version) }
    }

    private func rollBackCrashLoop(_ id: String, version: String) {
        let reason = "crash-loop: \(settings.rollbackCrashCount) failures within \(settings.rollbackWindowSeconds) s of start"
        guard let v = SemVer(version) else { return }
        let to: SemVer?
        do { to = try store.rollbackRejecting(id, version: v, reason: reason) } catch {
            logger.error("crash-loop rollback of \(id) \(version) failed: \(error)")
            return
        }
        guard let to else { return }
        onRollback()
        logger.warning(
            "update rolled back", metadata: ["program": "\(id)", "from": "\(version)", "to": "\(to.text)", "reason": "\(reason)"])
        notify("package.rolledBack", ["id": .string(id), "from": .string(version), "to": .string(to.text), "reason": .string(reason)])
    }

    // MARK: status

    /// `updates.status {id?}` → `{programs:[{id, active, previous, staged, rejected?, lastCheck?}]}`.
    func status(id: String?) throws(MiniAppError) -> [ProgramUpdateStatus] {
        let programs: [InstalledProgram]
        do { programs = try store.list() } catch { throw StoreBinding.controlError(error, id: id) }
        let chosen = programs.filter { id == nil || $0.id == id }
        if let id, chosen.isEmpty { throw MiniAppError(.notFound, "\(id) is not installed") }
        let checks = state.withLock { $0.lastCheck }
        return chosen.map { p in
            ProgramUpdateStatus(
                id: p.id, active: p.state.active?.version.text, previous: p.state.previous?.version.text,
                staged: p.state.pending?.version.text,
                rejected: p.state.rejected.map { ProgramUpdateStatus.Rejected(version: $0.version.text, reason: $0.reason) },
                lastCheck: checks[p.id].map { ProgramUpdateStatus.Check(atSeconds: $0.atSeconds, result: $0.result) })
        }
    }

    /// Removes downloads a killed daemon left behind (they are verified again from scratch).
    static func sweepDownloads(_ dir: String) {
        guard let d = try? OwnedFD.open(dir, options: .directory) else { return }
        for name in DirectoryTree.list(d.raw) { try? DirectoryTree.unlink(at: d.raw, name) }
    }
}

/// One program of `updates.status`.
public struct ProgramUpdateStatus: Sendable {
    /// A version rolled back automatically: it, and anything older, is not offered again.
    public struct Rejected: Sendable {
        public var version: String
        public var reason: String
    }

    /// The last check of the program, and when it ran.
    public struct Check: Sendable {
        /// Unix seconds.
        public var atSeconds: Int64
        public var result: UpdateCheckResult
    }

    public var id: String
    public var active: String?
    public var previous: String?
    public var staged: String?
    public var rejected: Rejected?
    public var lastCheck: Check?
}
