import MiniAppModel
import MiniAppSystem
import Glibc

/// The end of a worker: reaped (pidfd) + both output pipes at EOF → read the cgroup's
/// counters → compute the reason → wake the waiters → remove the cgroup (killing anything
/// left first). The exit is final once PID 1 is reaped: PID 1 exits only after the kernel has
/// killed and reaped everything else in its pid namespace, so the cgroup is empty by then, and
/// its removal (up to five rmdirs under v1, retried if a task is still leaving) runs on the
/// cleanup thread after the waiters were woken. `removed` waits for it too.
extension JailedWorker {
    func reaped(code: Int32, status: Int32) {
        trace?.mark("reaped")
        let raw = readReaperStatus()
        let streamsOpen = state.withLock { s -> Bool in
            s.reaped = raw.map { Self.decode($0) } ?? (code, status)
            return s.openStreams > 0
        }
        if streamsOpen {
            // Usually just the pipes' EOF not yet seen by the event loop. If something outside
            // the pid namespace held them (nothing should), the cgroup kill unblocks them.
            Self.cleanup.submit { [self] in cgroup?.killAll() }
            JailEventLoop.shared.after(seconds: 2) { [self] in finalizeIfReady(force: true) }
        }
        finalizeIfReady(force: false)
    }

    func streamClosed() {
        trace?.mark("stream_eof")
        state.withLock { $0.openStreams -= 1 }
        finalizeIfReady(force: false)
    }

    /// The reaper writes the program's raw wait status before exiting (so "killed by SIGSEGV"
    /// is not flattened into "exit 139").
    private func readReaperStatus() -> Int32? {
        guard statusFD >= 0 else { return nil }
        var v: Int32 = 0
        let n = read(statusFD, &v, 4)
        close(statusFD)
        return n == 4 ? v : nil
    }

    /// Raw wait status → (si_code, si_status) as waitid reports them.
    static func decode(_ st: Int32) -> (Int32, Int32) {
        let sig = st & 0x7f
        if sig == 0 { return (1, (st >> 8) & 0xff) } // CLD_EXITED
        return (2, sig) // CLD_KILLED
    }

    private func finalizeIfReady(force: Bool) {
        let go = state.withLock { s -> Bool in
            guard s.reaped != nil, !s.finalizing, force || s.openStreams == 0 else { return false }
            s.finalizing = true
            return true
        }
        guard go else { return }
        finalize()
    }

    /// On the event thread: two small reads of the cgroup's counters, then the waiters.
    private func finalize() {
        trace?.mark("finalize")
        let events = cgroup?.events() ?? CgroupEvents()
        trace?.mark("cgroup_events")
        let (exit, waiters, timers) = state.withLock { s -> (WorkerExit, [CheckedContinuation<WorkerExit, Never>], [UInt64]) in
            let e = makeExit(s, events: events)
            s.exit = e
            s.pidfdOpen = false
            let w = s.waiters
            s.waiters = []
            close(pidfd)
            return (e, w, s.timers)
        }
        for t in timers { JailEventLoop.shared.cancelTimer(t) }
        for w in waiters { w.resume(returning: exit) }
        trace?.mark("waiters_resumed")
        Self.cleanup.submit { [self] in
            cgroup?.destroy()
            trace?.mark("cgroup_destroyed")
            let removedWaiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.removed = true
                defer { s.removedWaiters = [] }
                return s.removedWaiters
            }
            for w in removedWaiters { w.resume() }
            trace?.emit()
        }
    }

    private func makeExit(_ s: State, events: CgroupEvents) -> WorkerExit {
        let (code, value) = s.reaped ?? (0, 0)
        let exited = code == 1
        let status: Int32? = exited ? value : nil
        let signal: Int32? = exited ? nil : value
        let reason: WorkerExit.Reason
        if let l = s.limitHit { reason = .killedLimit(l) }
        else if s.stopRequested { reason = .stopped }
        else if signal == SIGKILL && events.oomKills > 0 { reason = .killedOOM }
        else if events.oomKills > 0 && !exited { reason = .killedOOM }
        else { reason = exited ? .exit : .signal }
        return WorkerExit(status: status, signal: signal, reason: reason,
                          droppedOutputBytes: collectors.0.dropped + collectors.1.dropped,
                          oomKills: events.oomKills, pidsLimitHits: events.pidsMaxHits)
    }
}
