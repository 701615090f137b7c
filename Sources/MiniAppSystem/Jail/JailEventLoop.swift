import CJail
import Glibc
import Synchronization

/// One OS thread with an epoll set over worker pidfds and output pipes, plus deadlines. Reaping
/// never happens in Swift's cooperative pool and never with waitpid(-1) (which would steal
/// children of other subsystems): each worker is reaped through its own pidfd.
public final class JailEventLoop: @unchecked Sendable {
    /// The process-wide loop.
    public static let shared = JailEventLoop()

    private enum Watch: Sendable {
        case exit(pidfd: Int32, @Sendable (Int32, Int32) -> Void)
        case read(fd: Int32, @Sendable ([UInt8]) -> Void, @Sendable () -> Void)
        case once(@Sendable () -> Void)
    }

    private let epfd: Int32
    private let wakeFD: Int32
    private let state = Mutex<(watches: [Int32: Watch], timers: TimerHeap<@Sendable () -> Void>)>(([:], TimerHeap()))
    private let thread: WorkQueue

    private init() {
        epfd = cjail_poller_create()
        wakeFD = cjail_eventfd()
        precondition(epfd >= 0 && wakeFD >= 0, "epoll/eventfd unavailable")
        thread = WorkQueue(name: "jail-events")
        add(wakeFD)
        thread.submit { [self] in run() }
    }

    /// Calls `onExit(si_code, si_status)` once the process behind `pidfd` has exited and been
    /// reaped. The caller keeps ownership of `pidfd` (and closes it after the callback).
    public func watchExit(pidfd: Int32, onExit: @escaping @Sendable (Int32, Int32) -> Void) {
        state.withLock { $0.watches[pidfd] = .exit(pidfd: pidfd, onExit) }
        add(pidfd)
    }

    /// Delivers chunks read from `fd` (set non-blocking here) until EOF, then calls `onEOF` and
    /// closes `fd`, which the loop owns from now on.
    public func watchOutput(fd: Int32, onData: @escaping @Sendable ([UInt8]) -> Void, onEOF: @escaping @Sendable () -> Void) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        state.withLock { $0.watches[fd] = .read(fd: fd, onData, onEOF) }
        add(fd)
    }

    /// Calls `onReadable` once, on the loop thread, when `fd` is readable (or at EOF / error);
    /// the caller keeps ownership of `fd` and reads it then.
    public func whenReadable(fd: Int32, _ onReadable: @escaping @Sendable () -> Void) {
        state.withLock { $0.watches[fd] = .once(onReadable) }
        add(fd)
    }

    /// Stops watching `fd` (its owner keeps and closes it).
    public func unwatch(_ fd: Int32) { remove(fd) }

    /// Runs `fire` on the loop thread after `seconds`; returns an id for `cancelTimer`.
    @discardableResult
    public func after(seconds: Double, _ fire: @escaping @Sendable () -> Void) -> UInt64 {
        let deadline = Self.now() + UInt64(max(0, seconds) * 1e9)
        let id = state.withLock { $0.timers.add(deadline: deadline, fire) }
        wake()
        return id
    }

    /// Cancels timer `id`; no effect if it already fired.
    public func cancelTimer(_ id: UInt64) { state.withLock { $0.timers.cancel(id) } }

    private func add(_ fd: Int32) {
        _ = cjail_poller_add(epfd, fd)
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private func run() {
        var ready = [Int32](repeating: 0, count: 64)
        while true {
            let timeout = fireDueTimers()
            let n = cjail_poller_wait(epfd, &ready, 64, timeout)
            if n < 0 { continue } // EINTR
            for i in 0..<Int(n) { handle(ready[i]) }
        }
    }

    /// Fires due timers; returns the epoll timeout in ms until the next one (at most `maxSleepMillis`).
    private func fireDueTimers() -> Int32 {
        let now = Self.now()
        let (due, next) = state.withLock { s -> ([@Sendable () -> Void], UInt64?) in
            var due: [@Sendable () -> Void] = []
            while let fire = s.timers.popDue(now: now) { due.append(fire) }
            return (due, s.timers.nextDeadline())
        }
        for f in due { f() }
        guard let next else { return Self.maxSleepMillis }
        return Int32(min(UInt64(Self.maxSleepMillis), (next - min(next, Self.now())) / 1_000_000 + 1))
    }

    /// The longest the loop sleeps without looking at its timers. A timer added while it sleeps
    /// wakes it through `wakeFD`; this bound is the second line, should that wake ever be lost
    /// (the eventfd is a plain descriptor number another part of the process could close by
    /// mistake): a stop's SIGKILL, a wall-clock limit or the pids watch is then late by at most
    /// this much, never held until some unrelated descriptor becomes ready.
    static let maxSleepMillis: Int32 = 100

    private func handle(_ fd: Int32) {
        if fd == wakeFD {
            var v: UInt64 = 0
            _ = read(wakeFD, &v, 8)
            return
        }
        guard let w = state.withLock({ $0.watches[fd] }) else { return }
        switch w {
        case .exit(let pidfd, let cb):
            var code: Int32 = 0, status: Int32 = 0
            let r = cjail_waitid_pidfd(pidfd, WEXITED | WNOHANG, &code, &status)
            if r == 0 { return } // spurious: not exited yet
            remove(fd)
            cb(r < 0 ? -1 : code, status)
        case .once(let cb):
            remove(fd)
            cb()
        case .read(let fd, let onData, let onEOF):
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { onData(Array(buf[0..<n])); return }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            remove(fd)
            close(fd)
            onEOF()
        }
    }

    private func remove(_ fd: Int32) {
        _ = cjail_poller_del(epfd, fd)
        state.withLock { _ = $0.watches.removeValue(forKey: fd) }
    }
}
