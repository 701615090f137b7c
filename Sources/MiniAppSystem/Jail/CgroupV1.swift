import Glibc

/// cgroup v1: one directory per controller (memory, pids, cpu, cpuacct, freezer). v1 has no
/// cgroup.kill: killing is freeze → SIGKILL every member → thaw, so no process can fork a
/// replacement between our read of cgroup.procs and the kill.
final class CgroupV1: WorkerCgroup {
    static let controllers = ["memory", "pids", "cpu", "cpuacct", "freezer"]
    /// controller → the directory its worker cgroups are made in (CgroupBaseDirs holds it open)
    let bases: [String: String]
    /// The cgroup's name in each of them.
    let name: String
    /// controller → full path of this cgroup (logs, and the calls off the launch path).
    let dirs: [String: String]
    var location: String { dirs["memory"] ?? "" }

    private init(bases: [String: String], name: String) {
        self.bases = bases
        self.name = name
        var d: [String: String] = [:]
        for (c, b) in bases { d[c] = "\(b)/\(name)" }
        dirs = d
    }

    static func create(bases all: [String: String], name: String, limits: CgroupLimits) throws(SystemError) -> CgroupV1 {
        let bases = all.filter { controllers.contains($0.key) }
        let cg = CgroupV1(bases: bases, name: name)
        do throws(SystemError) {
            for c in controllers {
                guard let b = bases[c] else { continue }
                let r = try CgroupBaseDirs.at(b) { mkdirat($0, name, 0o755) }
                if r != 0 && errno != EEXIST { throw SystemError.current("mkdir", detail: "\(b)/\(name)") }
            }
            try cg.write(limits, fresh: true)
        } catch {
            cg.destroy()
            throw error
        }
        return cg
    }

    func setLimits(_ l: CgroupLimits) throws(SystemError) { try write(l, fresh: false) }

    /// `fresh`: the cgroup was just made, so the kernel's defaults need not be written again
    /// (cfs period 100 ms, no cfs quota).
    private func write(_ l: CgroupLimits, fresh: Bool) throws(SystemError) {
        guard bases["memory"] != nil, bases["pids"] != nil, bases["cpu"] != nil else {
            throw SystemError("cgroup", errno: ENOENT, detail: "v1 memory/pids/cpu controller missing")
        }
        try put("memory", "memory.limit_in_bytes", "\(l.memoryBytes)")
        // memsw = memory+swap: without it the limit is escaped by swapping (absent if swap
        // accounting is off, then there is nothing to escape to).
        try put("memory", "memory.memsw.limit_in_bytes", "\(l.memoryBytes)", optional: true)
        try put("pids", "pids.max", "\(l.pids)")
        if !fresh { try put("cpu", "cpu.cfs_period_us", "100000") }
        if !fresh || l.cpuPercent != 0 { try put("cpu", "cpu.cfs_quota_us", l.cpuPercent == 0 ? "-1" : "\(l.cpuPercent * 1000)") }
    }

    /// Writes `value` into this cgroup's `file` of `controller` (`optional`: a file this kernel
    /// does not have is skipped).
    private func put(_ controller: String, _ file: String, _ value: String, optional: Bool = false) throws(SystemError) {
        guard let b = bases[controller] else { throw SystemError("cgroup", errno: ENOENT, detail: controller) }
        let rel = "\(name)/\(file)"
        let fd = try CgroupBaseDirs.at(b) { openat($0, rel, O_WRONLY | O_CLOEXEC) }
        if fd < 0 {
            if optional && errno == ENOENT { return }
            throw SystemError.current("open", detail: "\(b)/\(rel)")
        }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw SystemError.current("write", detail: "\(b)/\(rel)") }
    }

    /// One rename per controller; if one fails, those already done are undone, so the
    /// directories stay one cgroup under one name.
    func renamed(to new: String) throws(SystemError) -> any WorkerCgroup {
        var moved: [String] = []
        for c in bases.keys.sorted() {
            let b = bases[c]!
            let r = try CgroupBaseDirs.at(b) { renameat($0, name, $0, new) }
            guard r == 0 else {
                let e = SystemError.current("rename", detail: "\(b)/\(name) to \(new)")
                for c2 in moved { _ = try? CgroupBaseDirs.at(bases[c2]!) { renameat($0, new, $0, name) } }
                throw e
            }
            moved.append(c)
        }
        return CgroupV1(bases: bases, name: new)
    }

    func openProcs() throws(SystemError) -> [Int32] {
        var fds: [Int32] = []
        for c in Self.controllers {
            guard let b = bases[c] else { continue }
            let rel = "\(name)/cgroup.procs"
            let fd: Int32
            do { fd = try CgroupBaseDirs.at(b) { openat($0, rel, O_WRONLY | O_CLOEXEC) } } catch {
                for f in fds { close(f) }
                throw error
            }
            guard fd >= 0 else {
                let e = SystemError.current("open", detail: "\(b)/\(rel)")
                for f in fds { close(f) }
                throw e
            }
            fds.append(fd)
        }
        return fds
    }

    func freeze() throws(SystemError) {
        guard let f = dirs["freezer"] else { throw SystemError("freezer", errno: ENOENT) }
        try CgroupFiles.write("\(f)/freezer.state", "FROZEN")
        // FREEZING → FROZEN is asynchronous; re-writing FROZEN retries tasks that were busy.
        for i in 0..<2000 {
            if (try? CgroupFiles.read("\(f)/freezer.state"))?.hasPrefix("FROZEN") == true { return }
            if i % 50 == 49 { try CgroupFiles.write("\(f)/freezer.state", "FROZEN") }
            usleep(i < 20 ? 50 : 1000)
        }
        throw SystemError("freeze", errno: ETIMEDOUT, detail: f)
    }

    func thaw() throws(SystemError) {
        guard let f = dirs["freezer"] else { throw SystemError("freezer", errno: ENOENT) }
        try CgroupFiles.write("\(f)/freezer.state", "THAWED")
    }

    func killAll() {
        // Dropped: the members run as other uids; the spawner kills them (KILL_CGROUP).
        if PrivilegeDrop.killCgroupViaSpawner(name) { return }
        guard let f = dirs["freezer"] ?? dirs["pids"] else { return }
        for _ in 0..<20 {
            // Empty (the usual case once PID 1 is reaped: its pid namespace is gone): nothing to
            // kill, so no freeze round trip. Non-empty: freeze first, so nothing forks between
            // the read and the kills.
            if CgroupFiles.pids("\(f)/cgroup.procs").isEmpty { return }
            try? freeze()
            for p in CgroupFiles.pids("\(f)/cgroup.procs") { kill(p, SIGKILL) }
            try? thaw() // SIGKILL is delivered when the task thaws
            usleep(1000)
        }
    }

    /// rmdir succeeds only on a cgroup without tasks, so it is tried first: after a normal exit
    /// every directory is already empty and teardown is one rmdir per controller. Any EBUSY
    /// means something is still inside: kill everything, then remove with retries. The freezer
    /// directory goes last, because killing needs it.
    func destroy() {
        let order = bases.keys.filter { $0 != "freezer" }.sorted() + (bases["freezer"] == nil ? [] : ["freezer"])
        let busy = order.compactMap { c -> String? in
            let gone = ((try? CgroupBaseDirs.at(bases[c]!) { unlinkat($0, name, AT_REMOVEDIR) }) ?? -1) == 0 || errno == ENOENT
            return gone ? nil : dirs[c]!
        }
        guard !busy.isEmpty else { return }
        killAll()
        for d in busy { CgroupFiles.rmdirRetrying(d) }
    }

    func stats() -> JailStats {
        JailStats(
            memoryBytes: dirs["memory"].map { CgroupFiles.number("\($0)/memory.usage_in_bytes") } ?? 0,
            cpuMicros: dirs["cpuacct"].map { CgroupFiles.number("\($0)/cpuacct.usage") / 1000 } ?? 0)
    }

    func events() -> CgroupEvents {
        var e = CgroupEvents()
        if let m = dirs["memory"] { e.oomKills = CgroupFiles.keyed("\(m)/memory.oom_control", "oom_kill") }
        if let p = dirs["pids"] { e.pidsMaxHits = CgroupFiles.keyed("\(p)/pids.events", "max") }
        return e
    }
}
