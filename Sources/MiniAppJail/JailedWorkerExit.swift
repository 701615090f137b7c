import CJail
import MiniAppModel
import MiniAppSystem

/// The end of a worker, in two parts:
///
/// 1. The exit: the program's wait status (written by the PID-1 reaper on the status pipe the
///    moment it reaps the program — what bwrap reports too, before its own PID 1 is gone), or
///    PID 1's own status from its pidfd when it died without writing one (SIGKILL on stop or a
///    limit), plus both output pipes at EOF → read the cgroup's counters → compute the reason →
///    wake the `exit` waiters.
/// 2. The cleanup, once PID 1 is reaped as well: PID 1 exits right after writing the status,
///    and only after the kernel has killed and reaped everything else in its pid namespace, so
///    the cgroup is empty by then; its removal (up to five rmdirs under v1, retried if a task is
///    still leaving) runs on the cleanup thread and wakes the `removed` waiters.
extension JailedWorker {
    /// The reaper's status pipe delivered bytes (4: the program's raw wait status).
    func statusBytes(_ bytes: [UInt8]) {
        let complete = state.withLock { s -> Bool in
            s.statusBuffer += bytes
            guard s.programStatus == nil, s.statusBuffer.count >= 4 else { return false }
            s.programStatus = s.statusBuffer.prefix(4).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
            return true
        }
        guard complete else { return }
        trace?.mark("program_exited")
        finalizeIfReady(force: false)
    }

    /// The status pipe reached EOF: PID 1 is gone (whether or not it wrote a status first).
    func statusClosed() {
        state.withLock { $0.statusOpen = false }
        finalizeIfReady(force: false)
    }

    /// PID 1's pidfd reported its exit (the event loop reaped it).
    func reaped(code: Int32, status: Int32) {
        trace?.mark("reaped")
        let streamsOpen = state.withLock { s -> Bool in
            s.reaped = (code, status)
            return s.openStreams > 0
        }
        if streamsOpen {
            // Usually just the pipes' EOF not yet seen by the event loop. If something outside
            // the pid namespace held them (nothing should), the cgroup kill unblocks them.
            Self.cleanup.submit { [self] in cgroup?.killAll() }
            JailEventLoop.shared.after(seconds: 2) { [self] in finalizeIfReady(force: true) }
        }
        finalizeIfReady(force: false)
        cleanUpIfDone()
    }

    func streamClosed() {
        trace?.mark("stream_eof")
        state.withLock { $0.openStreams -= 1 }
        finalizeIfReady(force: false)
    }

    /// A spawner service's exit record (`cjail_exit_record`: si_code, si_status) → the pair
    /// `reaped` takes; (-1, 0), as a failed waitid, when the spawner closed without one (it died).
    static func exitRecord(_ bytes: [UInt8]) -> (Int32, Int32) {
        guard bytes.count == MemoryLayout<cjail_exit_record>.size else { return (-1, 0) }
        let r = bytes.withUnsafeBytes { $0.loadUnaligned(as: cjail_exit_record.self) }
        return (r.code, r.status)
    }

    /// Raw wait status → (si_code, si_status) as waitid reports them.
    static func decode(_ st: Int32) -> (Int32, Int32) {
        let sig = st & 0x7f
        if sig == 0 { return (1, (st >> 8) & 0xff) } // CLD_EXITED
        return (2, sig) // CLD_KILLED
    }

    private func finalizeIfReady(force: Bool) {
        let go = state.withLock { s -> Bool in
            // PID 1's own status counts only once its status pipe is drained: a status written
            // just before its exit may still be unread when the pidfd's event comes first.
            let ended = s.programStatus != nil || (s.reaped != nil && (!s.statusOpen || force))
            guard ended, !s.finalizing, force || s.openStreams == 0 else { return false }
            s.finalizing = true
            return true
        }
        guard go else { return }
        finalize()
        cleanUpIfDone()
    }

    /// On the event thread: two small reads of the cgroup's counters, then the waiters.
    private func finalize() {
        trace?.mark("finalize")
        let events = reading { $0.events() } ?? CgroupEvents()
        trace?.mark("cgroup_events")
        let (exit, observers, timers) = state.withLock { s -> (WorkerExit, [@Sendable (WorkerExit) -> Void], [UInt64]) in
            let e = makeExit(s, events: events)
            s.exit = e
            defer { s.exitObservers = [] }
            return (e, s.exitObservers, s.timers)
        }
        for t in timers { JailEventLoop.shared.cancelTimer(t) }
        for observe in observers { observe(exit) }
        trace?.mark("waiters_resumed")
    }

    /// Once the exit is reported and PID 1 reaped: close the pidfd, remove the cgroup.
    private func cleanUpIfDone() {
        let go = state.withLock { s -> Bool in
            guard s.exit != nil, s.reaped != nil, s.pidfdOpen else { return false }
            s.pidfdOpen = false
            OwnedFD(adopting: pidfd).close()
            return true
        }
        guard go else { return }
        Self.cleanup.submit { [self] in
            cgroup?.destroy()
            trace?.mark("cgroup_destroyed")
            let removedWaiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.removed = true
                defer { s.removedWaiters = [] }
                return s.removedWaiters
            }
            for w in removedWaiters { w.resume() }
            let idle = Self.unremoved.withLock { u -> [CountingSemaphore] in
                u.count -= 1
                guard u.count == 0 else { return [] }
                defer { u.waiters = [] }
                return u.waiters
            }
            for s in idle { s.signal() }
            trace?.emit()
        }
    }

    private func makeExit(_ s: State, events: CgroupEvents) -> WorkerExit {
        let (code, value) = s.programStatus.map(Self.decode) ?? s.reaped ?? (0, 0)
        let exited = code == 1
        let status: Int32? = exited ? value : nil
        let signal: Int32? = exited ? nil : value
        let reason: WorkerExit.Reason
        if let l = s.limitHit { reason = .killedLimit(l) }
        else if s.stopRequested { reason = .stopped }
        else if signal == Signal.kill && events.oomKills > 0 { reason = .killedOOM }
        else if events.oomKills > 0 && !exited { reason = .killedOOM }
        else { reason = exited ? .exit : .signal }
        return WorkerExit(status: status, signal: signal, reason: reason,
                          droppedOutputBytes: collectors.0.dropped + collectors.1.dropped,
                          oomKills: events.oomKills, pidsLimitHits: events.pidsMaxHits)
    }
}
