import MiniAppModel
import MiniAppSystem
import Glibc

/// The end of a worker: reaped (pidfd) + both output pipes at EOF → kill and remove the cgroup
/// → compute the reason → wake the waiters. The slow part (cgroup removal waits for the last
/// processes to vanish) runs on a cleanup thread, never on the event thread.
extension JailedWorker {
    func reaped(code: Int32, status: Int32) {
        trace?.mark("reaped")
        let raw = readReaperStatus()
        state.withLock { $0.reaped = raw.map { Self.decode($0) } ?? (code, status) }
        // PID 1 is gone, so the kernel is killing the namespace; the cgroup kill also catches
        // anything that escaped the pid namespace (nothing should) and unblocks the pipes.
        Self.cleanup.submit { [self] in cgroup?.killAll(); trace?.mark("killall_after_reap") }
        JailEventLoop.shared.after(seconds: 2) { [self] in finalizeIfReady(force: true) }
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
        Self.cleanup.submit { [self] in finalize() }
    }

    private func finalize() {
        trace?.mark("finalize")
        let events = cgroup?.events() ?? CgroupEvents()
        trace?.mark("cgroup_events")
        cgroup?.destroy()
        trace?.mark("cgroup_destroyed")
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
        trace?.emit()
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
