import MiniAppJSON
public import MiniAppModel

// MARK: prewarm

/// Prewarm (WeChat's preloaded base library, Android's zygote, done per program): a worker made
/// ahead of a launch — the program's own jail, uid, mounts and Bridge identity, the runtime
/// started and the SDK loaded — whose SDK loader holds the entry point until the launch releases
/// it with a `lifecycle.launch` event carrying the launch's args (`ProgramRun`, the SDKs'
/// loaders). It is an ordinary jailed worker: no code of another program ever runs in it, and
/// nothing is shared between programs.
///
/// It never outlives what it was made from: a package change of the program (install, update,
/// rollback, removal) or a change of its partner's grants drops it, and the launch that releases
/// it checks once more that the program it would run is exactly the one resolved now (same
/// version, directory, entry, runtime, permissions, domains) under the same operator overrides
/// (limits, rate classes, networks: read at each launch), else it is killed and the launch
/// starts cold. Until released it is not a running program: not listed, no events reach it, no
/// `program.exited` is sent for it, and it is never restarted.
extension Supervisor {
    /// `programs.prewarm`: makes `id`'s prewarmed worker (answers with it, or with the running
    /// worker, when there is one already). Evicts the least recently prewarmed ones to stay
    /// within `prewarmMaxWorkers` and `prewarmMaxMemoryBytes`.
    public func prewarm(_ id: String) throws(MiniAppError) -> StartedWorker {
        guard settings.prewarmMaxWorkers > 0 else {
            throw MiniAppError(.invalidParams, "prewarm is off (prewarm.maxWorkers is 0 in the config); launch the program instead")
        }
        switch try admit(id, prewarm: true) {
        case .running(let info): return info
        case .joining(let ticket): return try ticket.wait()
        case .releasing: preconditionFailure("a prewarm never releases")
        case .starting(let ticket):
            let info = try finish(ticket) { () throws(MiniAppError) in try startHeld(id) }
            trimPrewarmed()
            return info
        }
    }

    private func startHeld(_ id: String) throws(MiniAppError) -> StartedWorker {
        var worker: Worker
        do throws(MiniAppError) {
            let program = try resolver.launchable(id)
            guard program.runtime.canPrewarm else {
                throw MiniAppError(
                    .invalidParams, "\(id) is a \(program.runtime.rawValue) program: only node and python programs have a runtime to prewarm")
            }
            evictForRoom()
            let overrides = settings.overridesOf(id)
            worker = try start(program, args: [], prewarm: true)
            worker.overrides = overrides
        } catch {
            abandonLaunch(id)
            throw error
        }
        return try hold(worker)
    }

    /// Enters a spawned prewarmed worker in `prewarmed` (as `register` does for a launch).
    private func hold(_ spawned: Worker) throws(MiniAppError) -> StartedWorker {
        let w = spawned
        let (early, finished) = state.withLock { s -> (WorkerExitInfo??, Bool) in
            let launch = s.launching.removeValue(forKey: w.program.id)
            if let exit = launch?.earlyExit { return (.some(exit), s.shuttingDown && s.isDrained) }
            s.prewarmed[w.program.id] = w  // at shutdown too: killed below, shutdown waits for its exit
            if s.shuttingDown { return (.some(nil), false) }
            return (.none, false)
        }
        if finished { drained.signal() }  // a shutdown waits for this launch to end
        switch early {
        case .none: return Self.prewarmInfo(w)
        case .some(.some(let exit)):
            throw MiniAppError(
                .internal, "the prewarmed worker of \(w.program.id) exited before its launch (status \(exit.status)); see the daemon's log for its output")
        case .some(.none):
            w.handle.kill()
            throw MiniAppError(.hostUnavailable, "miniappd began shutting down while \(w.program.id) was being prewarmed")
        }
    }

    /// The launch of a prewarmed worker (taken out of `prewarmed` by `admit`): checks it is still
    /// the program `id` resolves to now, sends it the launch, and registers it as running.
    func release(_ held: Worker, args: [String]) throws(MiniAppError) -> StartedWorker {
        let program: LaunchableProgram
        do throws(MiniAppError) { program = try resolver.launchable(held.program.id) } catch {
            discard(held)
            abandonLaunch(held.program.id)
            throw error
        }
        var w = held
        let released: Bool
        // Unreadable overrides (nil) never match: the cold start below then fails closed on them.
        if program == held.program, let overrides = settings.overridesOf(program.id), overrides == held.overrides {
            do throws(MiniAppError) {
                try bridge.sendEvent(workerId: held.workerId, name: Self.launchEvent, data: ["args": .array(args.map { .string($0) })])
                released = true
            } catch { released = false }
        } else {
            released = false
        }
        if released {
            w.args = args
            w.startMicros = Self.nowMicros()
            w.idleSinceNanos = clock()
            return try register(w)
        }
        // Stale (the package or its identity changed since) or already gone: never run it.
        discard(held)
        do throws(MiniAppError) { w = try start(program, args: args) } catch {
            abandonLaunch(program.id)
            throw error
        }
        return try register(w)
    }

    /// The event that releases a prewarmed worker's entry point (the SDK loaders wait for it).
    static let launchEvent = "lifecycle.launch"

    /// Kills a held worker that is no longer in `prewarmed`; its launch no longer waits for its exit.
    private func discard(_ held: Worker) {
        state.withLock { s in
            if s.launching[held.program.id]?.workerId == held.workerId { s.launching[held.program.id]?.workerId = nil }
        }
        held.handle.kill()
    }

    /// Drops the prewarmed worker of `programId` (its package changed).
    public func dropPrewarmed(programId: String) {
        let held = state.withLock { $0.prewarmed.removeValue(forKey: programId) }
        held?.handle.kill()
    }

    /// Drops the prewarmed workers of programs whose partner is in `partners` (grants changed).
    public func dropPrewarmed(partners: Set<String>) {
        let held = state.withLock { s -> [Worker] in
            let gone = s.prewarmed.values.filter { partners.contains($0.program.partnerId) }
            for w in gone { s.prewarmed[w.program.id] = nil }
            return gone
        }
        for w in held { w.handle.kill() }
    }

    /// Prewarmed workers held now (program ids, least recently prewarmed first).
    public func prewarmedPrograms() -> [String] {
        state.withLock { s in s.prewarmed.values.sorted { $0.idleSinceNanos < $1.idleSinceNanos }.map(\.program.id) }
    }

    /// `programs.list`'s `prewarmed`: the held workers, least recently prewarmed first.
    public func prewarmedList() -> [PrewarmedListing] {
        let held = state.withLock { s in s.prewarmed.values.sorted { $0.idleSinceNanos < $1.idleSinceNanos } }
        return held.map { w in
            PrewarmedListing(
                workerId: w.workerId, id: w.program.id, version: w.program.version, pid: w.handle.pid,
                memoryBytes: w.handle.usage().memoryBytes, bridgeCalls: bridge.activity(workerId: w.workerId).calls)
        }
    }

    /// Before a prewarm: makes room for one more under `prewarmMaxWorkers`.
    private func evictForRoom() {
        let victims = state.withLock { s -> [Worker] in
            var held = s.prewarmed.values.sorted { $0.idleSinceNanos < $1.idleSinceNanos }
            var out: [Worker] = []
            while held.count >= settings.prewarmMaxWorkers, !held.isEmpty {
                let w = held.removeFirst()
                s.prewarmed[w.program.id] = nil
                out.append(w)
            }
            return out
        }
        for w in victims { w.handle.kill() }
    }

    /// Evicts the least recently prewarmed workers until all of them together use at most
    /// `prewarmMaxMemoryBytes` (their cgroups' memory) and number at most `prewarmMaxWorkers`.
    /// Runs after every prewarm and every second while any is held: a runtime keeps growing
    /// for a while after it was spawned.
    func trimPrewarmed() {
        let held = state.withLock { s in s.prewarmed.values.sorted { $0.idleSinceNanos < $1.idleSinceNanos } }
        guard !held.isEmpty else { return }
        var usage = held.map { max(0, $0.handle.usage().memoryBytes) }  // -1: evicted
        var total = usage.reduce(0, +)
        var count = held.count
        var victims: [Worker] = []
        func evict(_ i: Int) {
            victims.append(held[i])
            total -= usage[i]
            usage[i] = -1
            count -= 1
        }
        // One alone over the whole budget goes first (it would take every other one with it).
        for i in held.indices where usage[i] > settings.prewarmMaxMemoryBytes { evict(i) }
        for i in held.indices where usage[i] >= 0 && (total > settings.prewarmMaxMemoryBytes || count > settings.prewarmMaxWorkers) {
            evict(i)
        }
        let evicted = state.withLock { s in
            victims.filter { w in
                guard s.prewarmed[w.program.id]?.workerId == w.workerId else { return false }  // released or dropped meanwhile
                s.prewarmed[w.program.id] = nil
                return true
            }
        }
        for w in evicted { w.handle.kill() }
        scheduleTrim()
    }

    private func scheduleTrim() {
        guard !state.withLock({ $0.prewarmed.isEmpty || $0.trimScheduled }) else { return }
        state.withLock { $0.trimScheduled = true }
        timers.after(seconds: 1) { [weak self] in
            guard let self else { return }
            self.state.withLock { $0.trimScheduled = false }
            self.trimPrewarmed()
        }
    }

    /// `prewarm.recent`: a node or Python program whose worker ended cleanly (exit 0, or a stop
    /// that was asked for) is prewarmed again for its next launch, in the background.
    func prewarmAgainIfRecent(_ w: Worker, _ info: WorkerExitInfo) {
        guard settings.prewarmRecent, settings.prewarmMaxWorkers > 0, w.program.runtime.canPrewarm else { return }
        guard info.status == 0 || info.reason == .stopped else { return }
        let id = w.program.id
        timers.submit { [weak self] in _ = try? self?.prewarm(id) }
    }

    static func prewarmInfo(_ w: Worker) -> StartedWorker {
        StartedWorker(
            workerId: w.workerId, id: w.program.id, version: w.program.version, pid: w.handle.pid, startMicros: w.startMicros,
            warm: w.handle.startedWarm, prewarmed: true)
    }
}
