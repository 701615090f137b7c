#if canImport(Glibc)
import Glibc
#endif
import CNetShims
import Synchronization

/// Something the reactor polls: a connection or a listener. Loop-confined.
protocol ReactorSource: AnyObject {
    /// Called on the loop thread with the `epoll_event.events` bits.
    func handleEvents(_ events: UInt32)
    /// Called on the loop thread when the reactor stops; the source closes itself.
    func reactorDidStop()
}

/// Handle of a timer scheduled on a `Reactor`.
public struct ReactorTimer: Hashable, Sendable {
    let id: UInt64
}

/// An epoll event loop on one dedicated OS thread.
///
/// Why not Swift concurrency: the Bridge hot path (read → parse → check → service → write) must
/// run start to finish on the thread that woke up, with no executor hop; on a virtual machine every
/// cross-thread wake-up costs a VM exit. Everything the reactor owns (connections, timers,
/// hooks) is *loop-confined*: touched only on the loop thread. Other threads hand work over
/// with `execute`, which queues a closure and pokes an eventfd.
public final class Reactor: @unchecked Sendable {
    private let epfd: Int32
    private let wakeFD: Int32
    private let tasks = Mutex<[@Sendable () -> Void]>([])
    private let loopThreadID = Atomic<UInt>(0)
    private let stopped = Atomic<Bool>(false)
    private var thread: pthread_t?

    // Loop-confined state.
    private var sources: [UInt64: any ReactorSource] = [:]
    private var nextToken: UInt64 = 1
    private var timers = TimerHeap<() -> Void>()
    private var beforeSleep: [() -> Void] = []
    private var running = true
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    /// Creates the epoll instance and its wake-up eventfd. Call `start()` to run the loop.
    public init() throws(SystemError) {
        epfd = try retryingEINTR("epoll_create1") { cnet_epoll_create() }
        do {
            wakeFD = try retryingEINTR("eventfd") { cnet_eventfd() }
        } catch {
            Glibc.close(epfd)
            throw error
        }
        _ = cnet_epoll_add(epfd, wakeFD, CNET_EPOLLIN, 0)
    }

    deinit {
        scratch.deallocate()
        Glibc.close(epfd)
        Glibc.close(wakeFD)
    }

    /// Starts the loop thread. Call once.
    public func start() throws(SystemError) {
        final class Box { let r: Reactor; init(_ r: Reactor) { self.r = r } }
        let arg = Unmanaged.passRetained(Box(self)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { p in
            guard let p else { return nil }
            let box = Unmanaged<Box>.fromOpaque(p).takeRetainedValue()
            box.r.run()
            return nil
        }, arg)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(arg).release()
            throw SystemError("pthread_create", errno: rc)
        }
        thread = tid
    }

    /// Stops the loop: every connection and listener is closed on the loop thread, then the
    /// thread exits. Blocks until it has, unless called from the loop thread itself.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        execute { [self] in running = false }
        if !isInLoopThread, let t = thread {
            pthread_join(t, nil)
            thread = nil
        }
    }

    /// True once `shutdown` was called (after it returns, the loop thread is gone).
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// True when called on the loop thread.
    public var isInLoopThread: Bool {
        loopThreadID.load(ordering: .acquiring) == UInt(pthread_self())
    }

    /// Runs `task` on the loop thread, in FIFO order with every other `execute`. Safe from any
    /// thread; from the loop thread it still queues (runs after the current event).
    public func execute(_ task: @escaping @Sendable () -> Void) {
        let wasEmpty = tasks.withLock { q in
            q.append(task)
            return q.count == 1
        }
        if wasEmpty { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: Loop-only API

    /// Runs `body` on the loop thread after `nanos` (loop thread only).
    @discardableResult
    public func schedule(afterNanos nanos: UInt64, _ body: @escaping () -> Void) -> ReactorTimer {
        precondition(isInLoopThread, "Reactor.schedule must run on the loop thread")
        return ReactorTimer(id: timers.add(deadline: monotonicNanos() &+ nanos, body))
    }

    /// Cancels a timer (loop thread only); no effect if it already fired.
    public func cancel(_ timer: ReactorTimer) {
        timers.cancel(timer.id)
    }

    /// Registers `body` to run on the loop thread each time before the loop sleeps: the place to
    /// flush batched output such as the audit log (loop thread only).
    public func addBeforeSleepHook(_ body: @escaping () -> Void) {
        precondition(isInLoopThread, "Reactor.addBeforeSleepHook must run on the loop thread")
        beforeSleep.append(body)
    }

    /// A 64 KiB buffer for bytes that are read only to be thrown away (loop thread only).
    func withScratch<R>(_ body: (UnsafeMutableRawBufferPointer) -> R) -> R { body(scratch) }

    func register(fd: Int32, events: UInt32, source: any ReactorSource) throws(SystemError) -> UInt64 {
        let token = nextToken
        nextToken += 1
        _ = try retryingEINTR("epoll_ctl", detail: "ADD") { cnet_epoll_add(epfd, fd, events, token) }
        sources[token] = source
        return token
    }

    func modify(fd: Int32, token: UInt64, events: UInt32) {
        _ = cnet_epoll_mod(epfd, fd, events, token)
    }

    func unregister(fd: Int32, token: UInt64) {
        _ = cnet_epoll_del(epfd, fd)
        sources[token] = nil
    }

    // MARK: The loop

    private func run() {
        loopThreadID.store(UInt(pthread_self()), ordering: .releasing)
        _ = cnet_set_thread_name("miniappd-loop")  // visible in top -H, perf, /proc
        let capacity: Int32 = 128
        guard let events = cnet_epoll_events_alloc(capacity) else { return }
        defer { cnet_epoll_events_free(events) }
        while running {
            for hook in beforeSleep { hook() }
            let timeout = nextTimeoutMillis()
            let n = cnet_epoll_wait(epfd, events, capacity, timeout)
            if n < 0 && errno != EINTR { break }
            for i in 0..<max(0, n) {
                let token = cnet_epoll_event_token(events, i)
                if token == 0 {
                    var v: UInt64 = 0
                    _ = Glibc.read(wakeFD, &v, 8)
                } else if let source = sources[token] {
                    source.handleEvents(cnet_epoll_event_mask(events, i))
                }
            }
            runTasks()
            runTimers()
        }
        runTasks()
        for source in Array(sources.values) { source.reactorDidStop() }
        sources.removeAll()
        timers.removeAll()
        for hook in beforeSleep { hook() }
    }

    private func runTasks() {
        while true {
            let batch = tasks.withLock { q -> [@Sendable () -> Void] in
                let b = q
                q.removeAll(keepingCapacity: true)
                return b
            }
            if batch.isEmpty { return }
            for t in batch { t() }
        }
    }

    private func nextTimeoutMillis() -> Int32 {
        guard let next = timers.nextDeadline() else { return -1 }
        let now = monotonicNanos()
        if next <= now { return 0 }
        // Round up so we never wake before the deadline and spin.
        return Int32(min((next - now + 999_999) / 1_000_000, 60_000))
    }

    private func runTimers() {
        guard !timers.isEmpty else { return }
        let now = monotonicNanos()
        while let body = timers.popDue(now: now) { body() }
    }
}
