public import MiniAppModel
import Glibc
import Synchronization

/// Worker cgroups made ahead of time, so a spawn takes a ready one instead of creating it:
/// creating a v1 cgroup is a mkdir and up to five limit writes in each of five hierarchies
/// (~250 µs here). Ready cgroups are named `p-<daemon pid>-<serial>` and carry the policy's
/// default limits; `take` hands one out with the worker's name as `pendingName` (the caller
/// renames it after the spawn, off the spawn's path: ~0.1 ms for five renames) and rewrites the
/// limits first when the launch asks for others. A ready cgroup also holds its
/// `cgroup.procs` files open (descriptors survive the rename), so the spawn does not open them.
/// The refill runs on a background thread after each take. A cgroup left behind by a killed daemon is removed by the next start's sweep
/// (JailSweep.swift), like a worker's.
public final class CgroupPool: Sendable {
    /// A cgroup and its open `cgroup.procs` files (owned by whoever holds the entry).
    public struct Taken: Sendable {
        public let cgroup: any WorkerCgroup
        public let procs: [Int32]
        /// The name the cgroup should get (`cgroup.renamed(to:)`) once the worker runs; nil when
        /// it already has it.
        public var pendingName: String? = nil
        /// Closes the `cgroup.procs` descriptors (the cgroup stays).
        public func closeProcs() { for fd in procs { close(fd) } }
        /// The same cgroup with its `cgroup.procs` files closed (the spawner opens them by name).
        public func closingProcs() -> Taken {
            closeProcs()
            return Taken(cgroup: cgroup, procs: [], pendingName: pendingName)
        }
    }

    private struct State {
        var ready: [Taken] = []
        var making = 0
        var disabled = false
        var closed = false
    }

    private let driver: CgroupDriver
    private let limits: CgroupLimits
    private let target: Int
    private let state = Mutex(State())
    /// One thread for every pool: a jailer (and its pool) is replaced at each policy reload,
    /// and a static `WorkQueue` never ends.
    private static let thread = WorkQueue(name: "jail-cgpool", background: true)
    private static let serial = Mutex<UInt64>(0)

    /// Keeps `size` cgroups with `limits` ready; filled after the first `take` (or at the first `refill`).
    public init(driver: CgroupDriver, limits: CgroupLimits, size: Int) {
        self.driver = driver
        self.limits = limits
        target = max(1, size)
    }

    /// The cgroup of a new worker named `name` with `limits`: a ready one renamed, or (pool
    /// empty, rename refused) one created now. nil when the driver is `.none`. Call `refill`
    /// once the spawn is done (not before: creating cgroups takes the kernel's cgroup lock the
    /// spawn's attach needs).
    /// `pooledName`: one created now gets a pool name too (renamed like a ready one): a cgroup
    /// that may be lent to a warm jail (`WarmJailCgroups`) must not carry a worker's name.
    public func take(name: String, limits wanted: CgroupLimits, pooledName: Bool = false) throws(MiniAppError) -> Taken? {
        let ready = state.withLock { s -> Taken? in s.ready.isEmpty ? nil : s.ready.removeFirst() }
        if let ready {
            do {
                if wanted != limits { try ready.cgroup.setLimits(wanted) }
                return Taken(cgroup: ready.cgroup, procs: ready.procs, pendingName: name)
            } catch {
                ready.closeProcs() // whatever state it is in, it is not used: fall back to a fresh one
                ready.cgroup.destroy()
            }
        }
        guard pooledName else { return try Self.fresh(driver, name: name, limits: wanted) }
        let made = try Self.fresh(driver, name: Self.nextName(), limits: wanted)
        return made.map { Taken(cgroup: $0.cgroup, procs: $0.procs, pendingName: name) }
    }

    /// `p-<daemon pid>-<serial>`: the name of a cgroup made ahead (JailSweep removes a dead
    /// daemon's).
    private static func nextName() -> String {
        let n = serial.withLock { s -> UInt64 in s += 1; return s }
        return "p-\(getpid())-\(n)"
    }

    /// A ready cgroup carrying `wanted` (limits rewritten when they differ), or nil when none is
    /// ready: never one created now (a warm jail's spare, which the launch can do without).
    public func takeReady(limits wanted: CgroupLimits) -> Taken? {
        guard let ready = state.withLock({ s -> Taken? in s.ready.isEmpty ? nil : s.ready.removeFirst() }) else { return nil }
        do {
            if wanted != limits { try ready.cgroup.setLimits(wanted) }
            return ready
        } catch {
            ready.closeProcs()
            ready.cgroup.destroy()
            return nil
        }
    }

    /// A cgroup taken from this pool and not used (empty): ready again when it carries the
    /// pool's limits and its files open as a fresh one's, else removed.
    public func giveBack(_ cgroup: any WorkerCgroup, limits got: CgroupLimits) {
        var entry: Taken? = nil
        if got == limits {
            if PrivilegeDrop.isDropped { entry = Taken(cgroup: cgroup, procs: []) }
            else if let procs = try? cgroup.openProcs() { entry = Taken(cgroup: cgroup, procs: procs) }
        }
        let extra = state.withLock { s -> Taken? in
            guard let entry, !s.closed, s.ready.count < target else { return entry }
            s.ready.append(entry)
            return nil
        }
        extra?.closeProcs()
        if entry == nil || extra != nil { Self.thread.submit { cgroup.destroy() } }
    }

    /// A cgroup created now, with its `cgroup.procs` files open.
    public static func fresh(_ driver: CgroupDriver, name: String, limits: CgroupLimits) throws(MiniAppError) -> Taken? {
        guard let cg = try driver.create(name: name, limits: limits) else { return nil }
        // Dropped, the spawner opens them itself (by name): ours would not do for its write.
        do { return Taken(cgroup: cg, procs: PrivilegeDrop.isDropped ? [] : try cg.openProcs()) } catch {
            cg.destroy()
            throw MiniAppError(.jailUnavailable, "cannot open the cgroup.procs files of \(cg.location): \(error)",
                               data: ["step": "cgroup", "errno": "\(error.errno)"], cause: error)
        }
    }

    /// Where the ready cgroups are (diagnostics, tests).
    public var readyLocations: [String] { state.withLock { $0.ready.map(\.cgroup.location) } }

    /// Removes every ready cgroup and stops refilling (daemon shutdown; idempotent).
    public func drain() {
        let all = state.withLock { s -> [Taken] in
            s.closed = true
            defer { s.ready = [] }
            return s.ready
        }
        for t in all {
            t.closeProcs()
            t.cgroup.destroy()
        }
    }

    deinit { drain() }

    /// Makes cgroups in the background until `size` are ready.
    public func refill() {
        let n = state.withLock { s -> Int in
            guard !s.disabled, !s.closed else { return 0 }
            let n = max(0, target - s.ready.count - s.making)
            s.making += n
            return n
        }
        for _ in 0..<n { Self.thread.submit { [self] in makeOne() } }
    }

    private func makeOne() {
        let made = try? Self.fresh(driver, name: Self.nextName(), limits: limits)
        let extra = state.withLock { s -> Taken? in
            s.making -= 1
            guard let made else { s.disabled = true; return nil } // spawns then create their own
            if s.closed { return made }
            s.ready.append(made)
            return nil
        }
        extra?.closeProcs()
        extra?.cgroup.destroy()
    }
}
