
/// The jail policy (`policies/jail.json`): how every worker is isolated. Pure data, parsed and
/// validated without touching the system; host-dependent checks (paths exist, profile compiles,
/// cgroup controllers present) happen in `JailPolicy.load(policyDir:)` of MiniAppJail, still
/// before anything is spawned.
public struct JailPolicy: Sendable, Equatable {
    /// Which namespaces a worker gets (user namespace: decided by the mode, not the policy).
    public struct Namespaces: Sendable, Equatable {
        public var mount = true, pid = true, net = true, ipc = true, uts = true, cgroup = true
        public init() {}
    }

    /// Identity of workers.
    public struct Identity: Sendable, Equatable {
        /// Privileged mode: first host uid (= gid) handed to programs. 0x7F000000: above every
        /// range shadow's useradd gives out for /etc/subuid (SUB_UID_MAX 600100000) and
        /// systemd's container range (up to 0x6FFFFFFF), below its foreign range (0x7FFE0000)
        /// and below 2^31 (tools that treat uid_t as signed). The old default 200000 overlapped
        /// the subordinate ids of the second user (165536-231071).
        public var uidRangeStart: UInt32 = 2_130_706_432
        /// Privileged mode: how many uids the range holds.
        public var uidRangeCount: UInt32 = 50_000
        /// Rootless mode: the uid/gid the program sees inside its user namespace.
        public var rootlessUid: UInt32 = 1000
        public var rootlessGid: UInt32 = 1000
        public init() {}
    }

    /// A symlink created in the jail root (`/bin` → `usr/bin`).
    public struct Symlink: Sendable, Equatable {
        public var path: String
        public var target: String
    }

    /// The filesystem view.
    public struct Filesystem: Sendable, Equatable {
        /// Host trees bound read-only at the same path.
        public var readOnlyHostPaths: [String] = ["/usr"]
        public var symlinks: [Symlink] = []
        /// Host files or trees under /etc bound read-only at the same path (skipped if absent).
        public var etc: [String] = []
        /// Write a minimal /etc/passwd, /etc/group, /etc/hosts naming only the program user.
        public var generateEtc = true
        public var rootSizeBytes: UInt64 = 1 << 20
        public var tmpSizeBytes: UInt64 = 64 << 20
        /// /tmp's inode limit (tmpfs nr_inodes): without it a tmpfs allows about half of RAM's
        /// pages in inodes, and millions of empty files pin kernel memory that size= never counts.
        public var tmpInodes: UInt64 = 16384
        /// Device nodes bound from the host /dev.
        public var devices: [String] = ["null", "zero", "full", "random", "urandom"]
        public init() {}
    }

    /// Landlock use.
    public enum LandlockMode: String, Sendable, Equatable { case off, bestEffort, required }

    /// Landlock settings.
    public struct Landlock: Sendable, Equatable {
        public var mode: LandlockMode = .bestEffort
        /// ABI >= 4: deny all TCP bind/connect (the net namespace already has no route out).
        public var denyTCP = true
        /// ABI >= 6: no signals or abstract unix sockets outside the worker's own domain.
        public var scopeSignalsAndAbstractSockets = true
        public init() {}
    }

    /// cgroup hierarchy choice.
    public enum CgroupVersion: String, Sendable, Equatable { case auto, v1, v2, none }

    /// cgroup settings.
    public struct Cgroup: Sendable, Equatable {
        public var version: CgroupVersion = .auto
        /// Mount point of the v1 hierarchies (`<root>/<controller>`).
        public var v1Root = "/sys/fs/cgroup"
        /// Mount point of the v2 hierarchy.
        public var v2Root = "/sys/fs/cgroup"
        /// Our subtree under each hierarchy (delegated to the daemon).
        public var parent = "miniapp"
        public init() {}
    }

    public var namespaces = Namespaces()
    public var hostname = "miniapp"
    public var identity = Identity()
    public var filesystem = Filesystem()
    public var limits = JailLimits()
    public var output = JailOutputLimits()
    public var landlock = Landlock()
    public var cgroup = Cgroup()
    /// Seccomp profile path, relative to the policy directory.
    public var seccompProfile = "seccomp/default.json"
    /// Run a PID-1 reaper that forks the program (programs that fork leave orphans to reap).
    /// Always true: the parser refuses false.
    public var reaper = true
    /// Kill the worker when the spawning thread dies (belt and braces with the pid namespace).
    /// Always true: the parser refuses false.
    public var dieWithSupervisor = true
    /// Seconds between SIGTERM and SIGKILL in `stop(grace:)` when the caller gives none.
    public var stopGraceSeconds: Double = 2
    /// Environment every program starts with (the launch adds its own on top).
    public var env: [String: String] = [:]

    public init() {}
}

/// Resource limits of one worker. Every member is tunable in jail.json and overridable per launch.
public struct JailLimits: Sendable, Equatable {
    /// cgroup memory limit (memory.max / memory.limit_in_bytes).
    public var memoryBytes: UInt64 = 256 << 20
    /// cgroup pids limit: bounds fork bombs.
    public var pids: UInt64 = 64
    /// CPU quota in percent of one CPU (cpu.max / cfs_quota_us); 0 = unlimited.
    public var cpuPercent: UInt64 = 100
    /// Wall-clock limit in seconds; 0 = none.
    public var wallClockSeconds: Double = 0
    /// RLIMIT_NOFILE.
    public var openFiles: UInt64 = 256
    /// RLIMIT_FSIZE: the largest file the program may write.
    public var fileSizeBytes: UInt64 = 64 << 20
    /// Size of the program's /data volume (privileged mode: an ext4 image of its own, made at
    /// the program's first launch; ext4's journal and inode tables are counted within it).
    public var dataBytes: UInt64 = 64 << 20
    /// Files and directories the program may have in /data (at least this many).
    public var dataInodes: UInt64 = 16384
    public init() {}
}

/// Bounds on captured stdout/stderr.
public struct JailOutputLimits: Sendable, Equatable {
    /// Bytes kept per stream over the worker's lifetime; more is dropped and counted.
    public var maxBytesPerStream: Int = 1 << 20
    /// A longer line is cut and delivered in pieces.
    public var maxLineBytes: Int = 16 << 10
    public init() {}
}
