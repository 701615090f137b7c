import CJail
import Glibc

/// A long-lived OS thread that runs submitted jobs one at a time, outside Swift's cooperative
/// pool. The spawner needs one: PR_SET_PDEATHSIG fires when the *thread* that cloned the worker
/// exits, so clones must come from a thread that lives as long as the supervisor, and the
/// blocking wait on the child's error pipe must not occupy a cooperative-pool thread.
public final class SerialThread: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var jobs: [@Sendable () -> Void] = []
    private var thread = pthread_t()
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
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        self.name = String(name.prefix(15))
        let box = Unmanaged.passRetained(self)
        let r = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<SerialThread>.fromOpaque(arg!).takeRetainedValue()
            me.loop()
        }, box.toOpaque())
        precondition(r == 0, "pthread_create failed: \(r)")
    }

    /// Queues `job`; it runs on the thread after the jobs queued before it.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// Runs `body` on the thread and blocks the calling thread until it returns (never call it
    /// from this thread or from Swift's cooperative pool).
    public func runBlocking<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) throws(E) -> T {
        let box = JailLock<Result<T, E>?>(nil)
        let done = OneShotSignal()
        submit {
            let r: Result<T, E>
            do throws(E) { r = .success(try body()) } catch { r = .failure(error) }
            box.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return try box.withLock { $0! }.get()
    }

    /// Runs `body` on the thread and returns its result to the awaiting task.
    public func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let r: Result<T, E> = await withCheckedContinuation { cont in
            submit {
                do throws(E) { cont.resume(returning: .success(try body())) } catch { cont.resume(returning: .failure(error)) }
            }
        }
        return try r.get()
    }

    private func loop() -> Never {
        _ = cjail_set_thread_name(name)
        if background { _ = cjail_thread_background() }
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty { pthread_cond_wait(&cond, &mutex) }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(&mutex)
            for j in batch { j() }
        }
    }
}

/// A small lock for state shared between the event thread and callers.
public final class JailLock<State>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var state: State
    public init(_ s: State) { state = s; pthread_mutex_init(&mutex, nil) }
    public func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body(&state)
    }
}

/// A signal one thread waits for and another gives once (a POSIX semaphore).
public final class OneShotSignal: @unchecked Sendable {
    private let sem = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    public init() { sem_init(sem, 0, 0) }
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
