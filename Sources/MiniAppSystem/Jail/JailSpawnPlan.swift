/// Everything the child needs, fully resolved by MiniAppJail (no decisions left): the Swift
/// mirror of `struct cjail_spec`. Host paths are absolute; `target`s are host paths under
/// `rootPath`; Landlock rule paths and exec paths are paths inside the jail.
public struct JailSpawnPlan: Sendable {
    /// One filesystem operation, executed in order by child_mounts.c.
    public enum MountOp: Sendable, Equatable {
        case dir(target: String, mode: UInt32)
        /// `attrs`: MOUNT_ATTR_* applied recursively after the bind.
        case bind(source: String, target: String, isDir: Bool, attrs: UInt64)
        case tmpfs(target: String, options: String, flags: UInt64)
        case proc(target: String, flags: UInt64)
        case symlink(target: String, pointsTo: String)
        case file(target: String, contents: [UInt8], mode: UInt32)
        /// MOUNT_ATTR_* set recursively on the mount at `target` and everything below it.
        case setattr(target: String, attrs: UInt64)
        /// Covers an existing `target` (never created): `source` bound over a file with `attrs`
        /// (MOUNT_ATTR_*), or an empty read-only tmpfs over a directory (`isDir`).
        case mask(source: String, target: String, isDir: Bool, attrs: UInt64)
    }

    /// A user-namespace id mapping (rootless mode): one id inside → one id outside.
    public struct IDMap: Sendable, Equatable {
        public var insideUid: UInt32, outsideUid: UInt32, insideGid: UInt32, outsideGid: UInt32
        public init(insideUid: UInt32, outsideUid: UInt32, insideGid: UInt32, outsideGid: UInt32) {
            self.insideUid = insideUid; self.outsideUid = outsideUid; self.insideGid = insideGid; self.outsideGid = outsideGid
        }
    }

    public var cloneFlags: UInt64 = 0
    /// A fresh pooled network namespace to join instead of CLONE_NEWNET (-1: none).
    public var netnsFD: Int32 = -1
    /// Rootless mode: the map the parent writes before "go".
    public var userNamespace: IDMap?
    public var unshareCgroup = true
    public var rootPath = ""
    public var rootOptions = "mode=0755,size=1048576"
    public var mounts: [MountOp] = []
    /// Ops [0, this) do not depend on the launch: a warm jail has done them already.
    public var staticMountCount = 0
    public var rootReadOnly = true
    public var hostname = "miniapp"
    public var workdir = "/"
    public var uid: UInt32 = 65534
    public var gid: UInt32 = 65534
    public var pdeathsig: Int32 = 9
    /// (RLIMIT_*, soft, hard)
    public var rlimits: [(Int32, UInt64, UInt64)] = []
    public var stdinFD: Int32 = -1, stdoutFD: Int32 = -1, stderrFD: Int32 = -1, bridgeFD: Int32 = -1
    public var landlockABI: Int32 = 0
    public var landlockHandledFS: UInt64 = 0
    public var landlockHandledNet: UInt64 = 0
    public var landlockScoped: UInt64 = 0
    public var landlockRules: [(path: String, access: UInt64)] = []
    public var filters: [[UInt8]] = []
    public var reaper = true
    public var execPaths: [String] = []
    public var argv: [String] = []
    public var env: [String] = []

    public init() {}
}

/// Names of the child's steps (the numbers of `enum cjail_step`), for errors and logs.
public enum JailStep {
    public static let names: [String] = [
        "none", "wait_go", "dumpable", "setsid", "cgroup_ns", "mount_private", "mount_root", "mount_op",
        "pivot_root", "root_readonly", "hostname", "loopback", "rlimits", "fds", "chdir", "caps_bounding",
        "securebits", "setgroups", "setgid", "setuid", "caps_clear", "pdeathsig", "no_new_privs", "landlock",
        "seccomp", "reaper_fork", "signals", "exec", "netns", "warm_jail_finish", "unshare",
    ]

    public static func name(_ step: Int32) -> String {
        step >= 0 && Int(step) < names.count ? names[Int(step)] : "step\(step)"
    }
}
