import CJail
import Glibc
import Synchronization

/// The daemon's one way to hand blocking work to another thread: a FIFO of jobs run by at most
/// `width` OS threads that the queue names and owns, outside Swift's cooperative pool (which
/// must never block). Width 1 is a serial queue: jobs run one at a time in submission order on
/// one thread (the audit and storage writers depend on that order; the spawner on the thread
/// living on, see below). Width N runs up to N jobs at once (installs).
///
/// Threads start on demand, one more whenever more jobs are in flight than threads run, up to
/// `width`, and live until the queue ends: `finish()`, or the last reference to the queue going
/// away — after every job already submitted has run. A thread that lives on matters to the
/// spawner: PR_SET_PDEATHSIG fires when the *thread* that cloned the worker exits, so clones come
/// from a queue that lives as long as the supervisor.
///
/// Timers that start blocking work are `after(seconds:)` and `every(seconds:)`: the deadline is
/// kept by the jail's event loop, and the job is submitted here when it falls due.
public final class WorkQueue: Sendable {
    private let core: Core

    /// `name` names the threads (for debuggers and /proc/PID/task/*/comm, 15 bytes kept).
    /// `background` threads run at nice 19, for work nobody waits on (refilling pools, removing
    /// the cgroups of ended workers): with few cores, a pool refill at normal priority during a
    /// spawn took the CPU the spawner process then waited ~0.4 ms for. Nice 19, not SCHED_IDLE:
    /// busy workers must not be able to starve it (it would then never remove the cgroups of
    /// ended workers).
    public init(name: String, width: Int = 1, background: Bool = false) {
        precondition(width >= 1, "a WorkQueue runs at least one job at a time")
        core = Core(name: String(name.prefix(15)), width: width, background: background)
    }

    deinit { core.finish() }

    /// Queues `job`; it starts after the jobs queued before it. After `finish()` it is dropped.
    public func submit(_ job: @escaping @Sendable () -> Void) { core.submit(job) }

    /// Runs `body` on the queue and blocks the calling thread until it returns (never call it
    /// from a job of this queue, nor from Swift's cooperative pool). On a serial queue it is
    /// also "wait for everything submitted before". After `finish()` it runs on the caller.
    public func runBlocking<T: Sendable, E: Error & Sendable>(_ body: @escaping @Sendable () throws(E) -> T) throws(E) -> T {
        let result = Handoff<Result<T, E>>()
        let queued = core.submit {
            do throws(E) { result.give(.success(try body())) } catch { result.give(.failure(error)) }
        }
        guard queued else { return try body() }
        return try result.wait().get()
    }

    /// Submits `job` after `seconds` unless cancelled first. The deadline waits on the jail's
    /// event loop (which only submits, never blocks), the job runs on this queue; a pending
    /// deadline keeps the queue.
    @discardableResult
    public func after(seconds: Double, _ job: @escaping @Sendable () -> Void) -> ScheduledJob {
        let scheduled = ScheduledJob()
        arm(scheduled, seconds: seconds, repeating: false, job)
        return scheduled
    }

    /// Submits `job` every `seconds` until cancelled. The next deadline is set once the job has
    /// run, so a job slower than the period delays the next one instead of piling up behind it.
    @discardableResult
    public func every(seconds: Double, _ job: @escaping @Sendable () -> Void) -> ScheduledJob {
        let scheduled = ScheduledJob()
        arm(scheduled, seconds: seconds, repeating: true, job)
        return scheduled
    }

    private func arm(_ scheduled: ScheduledJob, seconds: Double, repeating: Bool, _ job: @escaping @Sendable () -> Void) {
        let id = JailEventLoop.shared.after(seconds: seconds) { [self] in
            guard !scheduled.isCancelled else { return }
            submit { [self] in
                guard !scheduled.isCancelled else { return }
                job()
                if repeating { arm(scheduled, seconds: seconds, repeating: true, job) }
            }
        }
        scheduled.armed(timer: id)
    }

    /// Ends the queue: its threads exit once the jobs submitted so far have run; later
    /// submissions are dropped. Returns at once.
    public func finish() { core.finish() }

    /// The state the threads share; the threads hold it, not the `WorkQueue`, so the queue's
    /// owner going away ends them.
    private final class Core: Sendable {
        enum Job { case run(@Sendable () -> Void), exit }
        struct State {
            var jobs: [Job] = []
            var threads = 0
            /// Submitted and not finished.
            var inFlight = 0
            var finished = false
        }
        let state = Mutex(State())
        /// Signalled once per queued job (exits included).
        let queued = CountingSemaphore()
        let name: String
        let width: Int
        let background: Bool

        init(name: String, width: Int, background: Bool) { (self.name, self.width, self.background) = (name, width, background) }

        @discardableResult
        func submit(_ body: @escaping @Sendable () -> Void) -> Bool {
            let outcome = state.withLock { s -> (queued: Bool, start: Bool) in
                guard !s.finished else { return (false, false) }
                s.jobs.append(.run(body))
                s.inFlight += 1
                guard s.threads < width, s.inFlight > s.threads else { return (true, false) }
                s.threads += 1
                return (true, true)
            }
            guard outcome.queued else { return false }
            if outcome.start { startThread(name: name) { [self] in loop() } }
            queued.signal()
            return true
        }

        func finish() {
            let threads = state.withLock { s -> Int in
                guard !s.finished else { return 0 }
                s.finished = true
                s.jobs.append(contentsOf: Array(repeating: .exit, count: s.threads))
                return s.threads
            }
            for _ in 0..<threads { queued.signal() }
        }

        private func loop() {
            if background { _ = cjail_thread_background() }
            while true {
                queued.wait()
                switch state.withLock({ $0.jobs.removeFirst() }) {
                case .exit: return
                case .run(let body):
                    body()
                    state.withLock { $0.inFlight -= 1 }
                }
            }
        }
    }
}

/// A job `WorkQueue.after` or `every` will submit, until cancelled.
public final class ScheduledJob: Sendable {
    private let state = Mutex<(cancelled: Bool, timer: UInt64?)>((false, nil))

    init() {}

    fileprivate func armed(timer: UInt64) {
        let cancelled = state.withLock { s -> Bool in
            s.timer = timer
            return s.cancelled
        }
        if cancelled { JailEventLoop.shared.cancelTimer(timer) }
    }

    fileprivate var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// The job will not run again (one already started finishes).
    public func cancel() {
        let timer = state.withLock { s -> UInt64? in
            s.cancelled = true
            return s.timer
        }
        if let timer { JailEventLoop.shared.cancelTimer(timer) }
    }
}

/// A value one thread gives once and another waits for: how a result is handed back to a
/// thread that blocks for it (`WorkQueue.runBlocking`, `JailedWorker.waitExit`).
public final class Handoff<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    private let ready = CountingSemaphore()

    public init() {}

    /// Gives the value; called once.
    public func give(_ v: Value) {
        value.withLock { $0 = v }
        ready.signal()
    }

    /// Blocks until the value is given.
    public func wait() -> Value {
        ready.wait()
        guard let v = value.withLock({ $0 }) else { preconditionFailure("handoff signalled without a value") }
        return v
    }
}

/// The one semaphore of the daemon (a POSIX counting semaphore): each `signal` lets one
/// `wait` through. Waits retry on EINTR.
public final class CountingSemaphore: @unchecked Sendable {
    private let sem = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    public init() { sem_init(sem, 0, 0) }

    /// Waits until `deadline` (monotonic nanoseconds, `monotonicNanos()`); whether the signal came.
    public func wait(untilMonotonicNanos deadline: UInt64) -> Bool {
        let now = monotonicNanos()
        guard deadline > now else { return sem_trywait(sem) == 0 }
        return wait(seconds: Double(deadline - now) / 1e9)
    }
    deinit {
        sem_destroy(sem)
        sem.deallocate()
    }
    public func signal() { sem_post(sem) }
    public func wait() { while sem_wait(sem) != 0 && errno == EINTR {} }
    /// Waits at most `seconds`; whether the signal came.
    public func wait(seconds: Double) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let ns = Int(now.tv_nsec) + Int(seconds.truncatingRemainder(dividingBy: 1) * 1e9)
        var until = timespec(tv_sec: now.tv_sec + Int(seconds) + ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000)
        while true {
            if sem_timedwait(sem, &until) == 0 { return true }
            if errno != EINTR { return false }
        }
    }
}
