import CJail
import Glibc
import Synchronization

/// Fresh network namespaces made ahead of time, so a spawn joins one (setns) instead of creating
/// it inside clone: a new network namespace costs about 1 ms to create and as much again on the
/// spawn path when it goes away. Each namespace is used by exactly one worker, never returned or
/// reused, so a worker sees exactly what CLONE_NEWNET would give it: only `lo`, up.
///
/// Privileged mode only (unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN). The namespaces are made on
/// one dedicated thread, the only one whose network namespace ever changes (it is per thread), and
/// which returns to the supervisor's namespace after each. Any failure disables the pool: spawns
/// then fall back to CLONE_NEWNET, never to a shared namespace.
public final class NetNamespacePool: Sendable {
    private struct State {
        var ready: [Int32] = []
        var inFlight = 0
        var disabled = false
        var homeFD: Int32 = -1
    }

    private let target: Int
    private let state = Mutex(State())
    /// One thread for every pool (pools are replaced at each policy reload; a static
    /// `WorkQueue` never ends).
    private static let thread = WorkQueue(name: "jail-netns", background: true)

    /// Keeps `size` namespaces ready (made in the background, starting now).
    public init(size: Int) {
        target = max(1, size)
        refill()
    }

    deinit { for fd in state.withLock({ $0.ready + [$0.homeFD] }) where fd >= 0 { close(fd) } }

    /// Waits until the namespaces being made now are made. A start that drops its privileges
    /// calls it first: made after the drop they would fail (no CAP_SYS_ADMIN), and a slow start
    /// would leave the pool disabled with none ready.
    public func settle() { Self.thread.runBlocking {} }

    /// A ready namespace (the caller owns and closes the fd), or nil when none is ready. Call
    /// `refill` once the spawn is done (creating a namespace costs ~0.4 ms of CPU a spawn should
    /// not compete with).
    public func take() -> Int32? {
        state.withLock { s -> Int32? in s.ready.isEmpty ? nil : s.ready.removeFirst() }
    }

    /// Makes namespaces in the background until `size` are ready.
    public func refill() {
        let n = state.withLock { s -> Int in
            guard !s.disabled else { return 0 }
            let n = max(0, target - s.ready.count - s.inFlight)
            s.inFlight += n
            return n
        }
        for _ in 0..<n { Self.thread.submit { [self] in makeOne() } }
    }

    private func makeOne() {
        let home = state.withLock { s -> Int32 in
            if s.homeFD < 0 { s.homeFD = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC) }
            return s.homeFD
        }
        let fd = home >= 0 ? cjail_netns_create(home) : -ENOENT
        state.withLock { s in
            s.inFlight -= 1
            if fd >= 0 { s.ready.append(fd) } else { s.disabled = true }
        }
    }
}
