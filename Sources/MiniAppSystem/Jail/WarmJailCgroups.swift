import Glibc
import Synchronization

/// The worker cgroups lent to the spawner for its warm jails (pooled cgroups, spawner_warm.c).
///
/// Why: moving a task into a cgroup v1 hierarchy takes `cgroup_threadgroup_rwsem` for writing,
/// a percpu rwsem whose writer first waits for an RCU grace period (`rcu_sync_enter`): 5–11 ms
/// for the first `cgroup.procs` write of a move on an otherwise idle kernel. A launch that took
/// a warm jail used to pay it, moving the jail into the launch's cgroups. Now a warm jail is put
/// into a cgroup of ours when the spawner makes it (its background refill, before the jail's
/// phase A), and the launch that takes it writes no `cgroup.procs` and opens none: the jail's
/// cgroup becomes the worker's (renamed afterwards, like a pooled one). Its limits were written
/// before it was lent, and the spawner's key makes only a launch with the same limits take it.
///
/// Every cgroup named in such a request is entered here first (`offer`): the spawner may hold it
/// from then on. It comes back (`claim`) through the launch's reply (the worker runs in it, or
/// the request failed), or through a notice: unused (`returned`), or its jail died untaken
/// (`jailGone`). `drain` removes what one pool still has lent (shutdown, a jailer replaced).
public enum WarmJailCgroups {
    /// A lent cgroup, its limits, and the pool it goes back to when unused.
    public struct Entry: Sendable {
        public let cgroup: any WorkerCgroup
        public let limits: CgroupLimits
        public let pool: CgroupPool?
        public init(cgroup: any WorkerCgroup, limits: CgroupLimits, pool: CgroupPool?) {
            (self.cgroup, self.limits, self.pool) = (cgroup, limits, pool)
        }
    }

    private static let lent = Mutex<[String: Entry]>([:])
    /// Removals of cgroups whose jail died: off the jail event loop (a busy cgroup retries).
    private static let thread = WorkQueue(name: "jail-cglent", background: true)

    /// The spawner may hold `entry` from now on.
    public static func offer(_ entry: Entry) { lent.withLock { $0[entry.cgroup.name] = entry } }

    /// Takes `name` back (nil when it is not lent: already claimed).
    public static func claim(_ name: String) -> Entry? { lent.withLock { $0.removeValue(forKey: name) } }

    /// Lent and not yet back (tests, diagnostics).
    public static var lentNames: [String] { lent.withLock { Array($0.keys) } }

    /// The spawner gave `name` back unused: ready again in its pool (or removed).
    static func returned(_ name: String) {
        guard let e = claim(name) else { return }
        if let pool = e.pool { pool.giveBack(e.cgroup, limits: e.limits) } else { thread.submit { e.cgroup.destroy() } }
    }

    /// The warm jail put in `name` died before a launch took it (reaped): its cgroup goes.
    static func jailGone(_ name: String) {
        guard let e = claim(name) else { return }
        thread.submit { e.cgroup.destroy() }
    }

    /// Removes every cgroup `pool` has lent (a warm jail still in one is killed with it).
    public static func drain(pool: CgroupPool) {
        let mine = lent.withLock { l -> [Entry] in
            let m = l.values.filter { $0.pool === pool }
            for e in m { l[e.cgroup.name] = nil }
            return m
        }
        for e in mine { e.cgroup.destroy() }
    }
}
