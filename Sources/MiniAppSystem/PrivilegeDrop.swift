public import MiniAppModel
import CLinuxShims
import Glibc
import Synchronization

/// The user an unprivileged daemon runs as: `NAME` (looked up in the user database, its
/// primary group) or numeric `UID:GID` (no user entry needed: tests, containers).
public struct DropUser: Sendable, Equatable {
    public let uid: UInt32
    public let gid: UInt32

    /// This process's real uid and gid.
    public static var current: DropUser { DropUser(uid: getuid(), gid: getgid()) }
    /// uid 0, gid 0 (what a daemon that keeps root hands its state directory to).
    public static let root = DropUser(uid: 0, gid: 0)

    /// The system user daemons drop to by default (systemd/miniappd.sysusers.conf).
    public static let defaultName = "miniappd"

    /// Parses `NAME` or `UID:GID`. Root (uid or gid 0) is refused: dropping to it drops nothing.
    public static func parse(_ text: String) throws(MiniAppError) -> DropUser {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let user: DropUser
        if parts.count == 2, let u = UInt32(parts[0]), let g = UInt32(parts[1]) {
            user = DropUser(uid: u, gid: g)
        } else if parts.count == 1, !text.isEmpty, let found = UserDatabase.user(named: text) {
            user = DropUser(uid: found.uid, gid: found.gid)
        } else {
            throw MiniAppError(.invalidParams, "--user '\(text)' is neither an existing user name nor UID:GID; create the user (systemd-sysusers) or pass numeric ids")
        }
        guard user.uid != 0, user.gid != 0, user.uid != UInt32.max, user.gid != UInt32.max else {
            throw MiniAppError(.invalidParams, "--user '\(text)' is root or an invalid id; name an unprivileged user")
        }
        return user
    }
}

/// The one-way step from root to an unprivileged user, for a daemon that keeps its privileged
/// helper (the spawner) as a separate process started before. Afterwards the process has no
/// capability in any set (effective, permitted, inheritable, ambient, bounding), cannot gain any
/// (`no_new_privs`), and runs under `seccomp` on every thread.
public enum PrivilegeDrop {
    private static let state = Mutex<DropUser?>(nil)

    /// The user this process dropped to; nil while it keeps its start identity.
    public static var droppedTo: DropUser? { state.withLock { $0 } }

    /// Whether privileged acts on workers (signals, cgroup kills, data-dir ownership, cgroup
    /// attach) must go through the spawner: this process dropped its privileges.
    public static var isDropped: Bool { droppedTo != nil }

    /// Drops to `user`. The bounding set is emptied on every thread (it is per thread; glibc's
    /// setresuid reaches every thread, prctl does not: the shim broadcasts it the same way and
    /// reads each thread's set back). Throws `INTERNAL` naming the failed step: the caller must
    /// exit, never go on half-dropped.
    public static func drop(to user: DropUser, seccomp: SeccompProgram) throws(MiniAppError) {
        var stuck: Int32 = 0
        let b = clinux_drop_bounding_set_all_threads(&stuck)
        guard b == 0 else { throw failure(stuck > 0 ? "bounding set (thread \(stuck) \(threadName(stuck)))" : "bounding set", -b) }
        var step: UnsafePointer<CChar>?
        let r = clinux_drop_to(user.uid, user.gid, &step)
        guard r == 0 else { throw failure(step.map { String(cString: $0) } ?? "drop", -r) }
        for f in seccomp.filters {
            let s = f.withUnsafeBytes { clinux_seccomp_install($0.baseAddress, UInt($0.count)) }
            guard s == 0 else { throw failure("seccomp", -s) }
        }
        state.withLock { $0 = user }
    }

    private static func threadName(_ tid: Int32) -> String {
        (try? OwnedFD.open("/proc/self/task/\(tid)/comm").readAll(limit: 64)).map { String(decoding: $0, as: UTF8.self).trimmingWhitespace() } ?? "?"
    }

    /// A daemon that starts unprivileged beside a spawner service (`--spawner-socket`): it has
    /// no identity to leave, so it empties its capability sets (ambient, permitted, effective,
    /// inheritable; the bounding set is the service manager's to empty: `CapabilityBoundingSet=`),
    /// sets `no_new_privs` and installs `seccomp` on every thread, and from then on counts as
    /// dropped (privileged acts on workers go through the spawner). Root is refused.
    public static func confine(seccomp: SeccompProgram) throws(MiniAppError) {
        guard getuid() != 0, geteuid() != 0 else { throw failure("confine", EPERM) }
        var step: UnsafePointer<CChar>?
        let r = clinux_confine_unprivileged(&step)
        guard r == 0 else { throw failure(step.map { String(cString: $0) } ?? "confine", -r) }
        for f in seccomp.filters {
            let s = f.withUnsafeBytes { clinux_seccomp_install($0.baseAddress, UInt($0.count)) }
            guard s == 0 else { throw failure("seccomp", -s) }
        }
        state.withLock { $0 = .current }
    }

    /// Gives `root` and everything beneath it to `user` (lchown, links not followed), except the
    /// children of `keep` and what they hold (the programs' data dirs: their uids'). Entries
    /// already owned are left alone. Throws the first failure.
    public static func giveTree(_ root: String, to user: DropUser, keepingChildrenOf keep: String) throws(SystemError) {
        try own(root, user)
        for name in (try? FileSystem.list(root)) ?? [] {
            let path = root + "/" + name
            if root == keep { continue } // a program's data dir: its uid's, handed out by the spawner
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFDIR { try giveTree(path, to: user, keepingChildrenOf: keep) } else { try own(path, user) }
        }
    }

    private static func own(_ path: String, _ user: DropUser) throws(SystemError) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return } // gone meanwhile
        if st.st_uid == user.uid && st.st_gid == user.gid { return }
        guard lchown(path, user.uid, user.gid) == 0 else { throw SystemError.current("lchown", detail: path) }
    }

    private static let cgroupKiller = Mutex<(@Sendable (String) -> Int32)?>(nil)

    /// How a dropped process kills the members of a worker cgroup by name (the spawner's
    /// KILL_CGROUP): set by whoever holds the spawner and a template naming the cgroup directories.
    public static func killCgroups(with kill: @escaping @Sendable (String) -> Int32) { cgroupKiller.withLock { $0 = kill } }

    /// Kills cgroup `name`'s members through the spawner; false when not dropped (the caller
    /// kills them itself).
    static func killCgroupViaSpawner(_ name: String) -> Bool {
        guard isDropped, let kill = cgroupKiller.withLock({ $0 }) else { return false }
        _ = kill(name)
        return true
    }

    private static func failure(_ step: String, _ e: Int32) -> MiniAppError {
        MiniAppError(.internal, "dropping privileges failed at \(step): \(SystemError(step, errno: e)); not serving half-privileged",
                     data: ["step": step, "errno": "\(e)"])
    }
}
