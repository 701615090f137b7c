public import MiniAppModel
import Glibc

/// Resource usage of a worker, from its cgroup.
public struct JailStats: Sendable, Equatable {
    /// Memory charged to the cgroup now (memory.current / memory.usage_in_bytes).
    public var memoryBytes: UInt64
    /// CPU time consumed by all its processes.
    public var cpuMicros: UInt64
    public init(memoryBytes: UInt64, cpuMicros: UInt64) { self.memoryBytes = memoryBytes; self.cpuMicros = cpuMicros }
}

/// Counters that explain why a worker died.
public struct CgroupEvents: Sendable, Equatable {
    /// Processes killed by the OOM killer inside the cgroup (v2 memory.events oom_kill, v1
    /// memory.oom_control oom_kill).
    public var oomKills: UInt64 = 0
    /// Times fork failed because pids.max was reached (pids.events max).
    public var pidsMaxHits: UInt64 = 0
    public init() {}
}

/// Limits written into a worker's cgroup.
public struct CgroupLimits: Sendable, Equatable {
    public var memoryBytes: UInt64
    public var pids: UInt64
    /// Percent of one CPU; 0 = unlimited.
    public var cpuPercent: UInt64
    public init(memoryBytes: UInt64, pids: UInt64, cpuPercent: UInt64) {
        self.memoryBytes = memoryBytes; self.pids = pids; self.cpuPercent = cpuPercent
    }
}

/// One worker's cgroup (v1: one directory per controller; v2: one directory). Every method is
/// safe to call from any thread; `destroy` is idempotent.
public protocol WorkerCgroup: Sendable {
    /// Human-readable location, for logs.
    var location: String { get }
    /// Opens the `cgroup.procs` file of each hierarchy for writing (the spawner writes the new
    /// worker's pid into them before it runs a step). The caller closes them.
    func openProcs() throws(SystemError) -> [Int32]
    /// Writes `limits` (memory, pids, CPU) into the control files.
    func setLimits(_ limits: CgroupLimits) throws(SystemError)
    /// Renames the (empty) cgroup within its parent; the result names the new directories.
    func renamed(to name: String) throws(SystemError) -> any WorkerCgroup
    /// Freezes every process and waits until the kernel reports the cgroup frozen.
    func freeze() throws(SystemError)
    /// Thaws it.
    func thaw() throws(SystemError)
    /// SIGKILLs every process in the cgroup (v2 cgroup.kill; v1 freeze → kill each → thaw).
    func killAll()
    /// Kills everything and removes the directories (retrying while processes exit).
    func destroy()
    func stats() -> JailStats
    func events() -> CgroupEvents
}

/// Which hierarchy is in use, chosen at runtime.
public enum CgroupDriver: Sendable, Equatable {
    case v1(root: String, base: [String: String])
    case v2(root: String)
    case none

    /// Chooses v2 when the unified hierarchy has the memory and pids controllers, else v1 when the
    /// legacy controllers are mounted (hosts on cgroup v1), else fails (or `.none` if the policy says so).
    /// The parent directory is made relative to the daemon's own cgroup, so workers stay inside
    /// whatever limits the service manager put on the daemon (systemd `Delegate=yes`).
    public static func select(_ policy: JailPolicy.Cgroup) throws(MiniAppError) -> CgroupDriver {
        let own = CgroupFiles.ownCgroups()
        switch policy.version {
        case .none: return .none
        case .v2: return .v2(root: CgroupFiles.join(policy.v2Root, own[""] ?? "/", policy.parent))
        case .v1: return .v1(root: policy.v1Root, base: v1Bases(policy, own))
        case .auto:
            let ctl = (try? CgroupFiles.read("\(policy.v2Root)/cgroup.controllers")) ?? ""
            let words = Set(ctl.split(whereSeparator: \.isWhitespace).map(String.init))
            if words.contains("memory") && words.contains("pids") {
                return .v2(root: CgroupFiles.join(policy.v2Root, own[""] ?? "/", policy.parent))
            }
            if access("\(policy.v1Root)/memory", F_OK) == 0 && access("\(policy.v1Root)/pids", F_OK) == 0 {
                return .v1(root: policy.v1Root, base: v1Bases(policy, own))
            }
            throw MiniAppError(
                .jailUnavailable,
                "no usable cgroup hierarchy: neither cgroup v2 with memory+pids at \(policy.v2Root) nor v1 controllers at \(policy.v1Root); mount them or set cgroup.version to \"none\" (workers then have only rlimits)")
        }
    }

    private static func v1Bases(_ policy: JailPolicy.Cgroup, _ own: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for c in CgroupV1.controllers {
            out[c] = CgroupFiles.join("\(policy.v1Root)/\(c)", own[c] ?? "/", policy.parent)
        }
        return out
    }

    /// The directories worker cgroups are made in (one per v1 hierarchy, sorted).
    public var baseDirectories: [String] {
        switch self {
        case .none: []
        case .v1(_, let base): base.values.sorted()
        case .v2(let root): [root]
        }
    }

    /// Creates the cgroup of one worker with `limits`.
    public func create(name: String, limits: CgroupLimits) throws(MiniAppError) -> (any WorkerCgroup)? {
        do {
            switch self {
            case .none: return nil
            case .v1(_, let base): return try CgroupV1.create(bases: base, name: name, limits: limits)
            case .v2(let root): return try CgroupV2.create(parent: root, name: name, limits: limits)
            }
        } catch {
            throw MiniAppError(
                .jailUnavailable,
                "cannot create the worker cgroup \(name): \(error); run as root or delegate the cgroup subtree to this user",
                data: ["step": "cgroup", "errno": "\(error.errno)"], cause: error)
        }
    }
}

/// Small file helpers for cgroup control files.
public enum CgroupFiles {
    /// Opens each path write-only; on a failure closes those already open and throws.
    static func openAll(_ paths: [String]) throws(SystemError) -> [Int32] {
        var fds: [Int32] = []
        for p in paths {
            let fd = open(p, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let e = SystemError.current("open", detail: p)
                for f in fds { close(f) }
                throw e
            }
            fds.append(fd)
        }
        return fds
    }

    public static func write(_ path: String, _ value: String) throws(SystemError) {
        let fd = try OwnedFD.open(path, O_WRONLY)
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd.raw, $0.baseAddress, $0.count) }
        if n < 0 { throw SystemError.current("write", detail: path) }
    }

    public static func read(_ path: String) throws(SystemError) -> String {
        let fd = try OwnedFD.open(path, O_RDONLY)
        return String(decoding: try fd.readAll(limit: 1 << 20), as: UTF8.self)
    }

    /// `key value` lines (memory.events, pids.events, cpu.stat, memory.oom_control).
    public static func keyed(_ path: String, _ key: String) -> UInt64 {
        guard let text = try? read(path) else { return 0 }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2 && f[0] == key { return UInt64(f[1]) ?? 0 }
        }
        return 0
    }

    public static func number(_ path: String) -> UInt64 {
        guard let t = try? read(path) else { return 0 }
        return UInt64(t.trimmingWhitespace()) ?? 0
    }

    public static func mkdirs(_ path: String) throws(SystemError) {
        var cur = ""
        for part in path.split(separator: "/") {
            cur += "/\(part)"
            if mkdir(cur, 0o755) != 0 && errno != EEXIST { throw SystemError.current("mkdir", detail: cur) }
        }
    }

    /// Removes a cgroup directory, retrying while its last processes are still exiting (killed
    /// tasks leave within microseconds to a few milliseconds: the wait starts at 100 µs and
    /// doubles up to 5 ms, about one second in all for the default attempts).
    public static func rmdirRetrying(_ path: String, attempts: Int = 200) {
        var wait: UInt32 = 100
        for _ in 0..<attempts {
            if rmdir(path) == 0 || errno == ENOENT { return }
            if errno != EBUSY { return }
            usleep(wait)
            wait = min(wait * 2, 5000)
        }
    }

    /// The pids listed in a cgroup.procs file (empty when unreadable).
    static func pids(_ path: String) -> [Int32] {
        ((try? read(path)) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    /// controller → own cgroup path, from /proc/self/cgroup ("" is the v2 entry).
    public static func ownCgroups() -> [String: String] {
        guard let text = try? read("/proc/self/cgroup") else { return [:] }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            for c in f[1].split(separator: ",") { out[String(c)] = String(f[2]) }
            if f[1].isEmpty { out[""] = String(f[2]) }
        }
        return out
    }

    /// `<parent of path>/<name>`.
    static func sibling(of path: String, named name: String) -> String {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts.joined(separator: "/") + "/" + name
    }

    static func join(_ a: String, _ b: String, _ c: String) -> String {
        let parts = (a + "/" + b + "/" + c).split(separator: "/")
        return "/" + parts.joined(separator: "/")
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
