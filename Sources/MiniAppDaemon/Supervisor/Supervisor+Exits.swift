import MiniAppJSON
import MiniAppModel

// MARK: exits, restarts, idle

extension Supervisor {
    /// The jail's report that a worker is gone (any thread, exactly once per worker).
    func workerExited(_ workerId: String, _ exit: WorkerExitInfo) {
        bridge.detach(workerId: workerId)
        let (worker, finished) = state.withLock { s -> (Worker?, Bool) in
            if let w = s.workers.removeValue(forKey: workerId) {
                if s.byProgram[w.program.id] == workerId { s.byProgram[w.program.id] = nil }
                return (w, s.shuttingDown && s.isDrained)
            }
            // A prewarmed worker that died (or was evicted, dropped, or killed at shutdown)
            // before any launch took it: the program never ran, nothing to report or restart.
            if let programId = s.prewarmed.first(where: { $0.value.workerId == workerId })?.key {
                s.prewarmed[programId] = nil
                return (nil, s.shuttingDown && s.isDrained)
            }
            // Not registered yet: its launch is between spawn and registration. Park the exit
            // there; `register` reports it instead of entering a dead worker in the table.
            if let programId = s.launching.first(where: { $0.value.workerId == workerId })?.key {
                s.launching[programId]?.earlyExit = exit
            }
            return (nil, false)
        }
        guard let worker else {
            if finished { drained.signal() }
            return
        }
        report(worker, exit)
        // Only now: shutdown closes the control connections when it wakes, and this worker's
        // program.exited must already be queued on them.
        if finished { drained.signal() }
    }

    /// `program.exited`, stop waiters, metrics, and a crash restart when nobody asked for the stop.
    func report(_ w: Worker, _ exit: WorkerExitInfo) {
        let info = Self.reported(exit, stopReason: w.stopReason, stopDetail: w.stopDetail)
        observeExit(info)
        var params: JSONObject = [
            "workerId": .string(w.workerId), "id": .string(w.program.id), "version": .string(w.program.version), "status": .int(Int64(info.status)),
            "reason": .string(info.reason.rawValue),
        ]
        if let sig = info.signal { params["signal"] = .string(sig) }
        if let d = info.detail { params["detail"] = .string(d) }
        notify("program.exited", .object(params))
        let ended = EndedWorker(
            programId: w.program.id, version: w.program.version, startMicros: w.startMicros, exit: info, stopRequested: w.stopReason != nil)
        for observer in endObservers.withLock({ $0 }) { observer(ended) }
        for waiter in w.stopWaiters { waiter(info.status) }
        if w.stopReason == nil { considerRestart(w, info) }
        prewarmAgainIfRecent(w, info)
    }

    /// A limit the jail enforced (OOM, wall clock) wins over our stop request: it is what
    /// really ended the worker. Otherwise a requested stop is reported with the reason it was
    /// requested for: the jail reports every stop it carried out as `stopped`, which must not
    /// hide `daemon-shutdown` (SIGTERM of the daemon) from the hosts, nor from the metrics.
    static func reported(_ exit: WorkerExitInfo, stopReason: WorkerExitInfo.Reason?, stopDetail: String?) -> WorkerExitInfo {
        var info = exit
        if let requested = stopReason, [.exit, .signal, .stopped].contains(info.reason) {
            info.reason = requested
            info.detail = info.detail ?? stopDetail
        }
        return info
    }

    /// Crash restarts with exponential backoff (a crash = non-zero exit, a signal or a limit
    /// kill that nobody asked for), with the launch's own args. A program that ran a minute
    /// cleanly starts a fresh count.
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
        let (id, args) = (w.program.id, w.args)
        timers.after(seconds: Double(delay) / 1000) { [weak self] in
            guard let self else { return }
            do throws(MiniAppError) {
                let r = try self.launch(id, args: args)
                self.notify("program.restarted", ["id": .string(id), "attempt": .int(Int64(attempt)), "worker": r.json])
            } catch {
                self.notify(
                    "program.restartFailed", ["id": .string(id), "code": .string(error.code.rawValue), "message": .string(error.message)])
            }
        }
    }

    func scheduleIdleCheck() {
        timers.after(seconds: 1) { [weak self] in
            guard let self else { return }
            self.stopIdleWorkers()
            self.scheduleIdleCheck()
        }
    }

    /// Stops running workers whose last Bridge call (or start, or resume) is older than the
    /// idle timeout. Suspended workers are never idle-stopped.
    func stopIdleWorkers() {
        let limitNanos = UInt64(settings.idleTimeoutSeconds) * 1_000_000_000
        let now = clock()
        let candidates = state.withLock { s in
            s.workers.values.filter { $0.state == .running }.map { ($0.workerId, $0.idleSinceNanos) }
        }
        for (id, since) in candidates {
            let last = max(bridge.activity(workerId: id).lastCallNanos, since)
            guard now > last, now - last > limitNanos else { continue }
            try? stop(id, graceMillis: nil, reason: .stopped, detail: "idle timeout") { _ in }
        }
    }
}
