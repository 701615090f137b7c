import CJail
import Glibc
import Synchronization

/// A long-lived OS thread that runs submitted jobs one at a time, outside Swift's cooperative
/// pool. The spawner needs one: PR_SET_PDEATHSIG fires when the *thread* that cloned the worker
/// exits, so clones must come from a thread that lives as long as the supervisor, and the
/// blocking wait on the child's error pipe must not occupy a cooperative-pool thread.
public final class SerialThread: Sendable {
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    /// Signalled once per submitted job.
    private let queued = CountingSemaphore()
    private let name: String

    /// Whether the thread runs at nice 19.
    private let background: Bool

    /// Starts the thread (named `name` for debuggers and /proc/PID/task/*/comm). A `background`
    /// thread runs at nice 19, for work nobody waits on (refilling pools, removing the cgroups of
    /// ended workers): with few cores, a pool refill at normal priority during a spawn took the CPU
    /// the spawner process then waited ~0.4 ms for. Nice 19, not SCHED_IDLE: busy workers must
    /// not be able to starve it (it would then never remove the cgroups of ended workers).
    public init(name: String, background: Bool = false) {
        self.background = background
        self.name = String(name.prefix(15))
        startThread(name: self.name) { [self] in loop() }
    }

    /// Queues `job`; it runs on the thread after the jobs queued before it.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        jobs.withLock { $0.append(job) }
        queued.signal()
    }

    /// Runs `body` on the thread and blocks the calling thread until it returns (never call it
    /// from this thread or from Swift's cooperative pool).
    public func runBlocking<T: Sendable, E: Error & Sendable>(_ body: @escaping @Sendable () throws(E) -> T) throws(E) -> T {
        let result = Handoff<Result<T, E>>()
        submit {
            do throws(E) { result.give(.success(try body())) } catch { result.give(.failure(error)) }
        }
        return try result.wait().get()
    }

    private func loop() -> Never {
        if background { _ = cjail_thread_background() }
        while true {
            queued.wait()
            let job = jobs.withLock { $0.removeFirst() }
            job()
        }
    }
}

/// A value one thread gives once and another waits for: how a result is handed back to a
/// thread that blocks for it (`SerialThread.runBlocking`, `JailedWorker.waitExit`).
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
