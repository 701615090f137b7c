import Glibc

/// cgroup v1: one directory per controller (memory, pids, cpu, cpuacct, freezer). v1 has no
/// cgroup.kill: killing is freeze → SIGKILL every member → thaw, so no process can fork a
/// replacement between our read of cgroup.procs and the kill.
final class CgroupV1: WorkerCgroup {
    static let controllers = ["memory", "pids", "cpu", "cpuacct", "freezer"]
    let dirs: [String: String]
    var location: String { dirs["memory"] ?? "" }

    private init(dirs: [String: String]) { self.dirs = dirs }

    static func create(bases: [String: String], name: String, limits: CgroupLimits) throws(SystemError) -> CgroupV1 {
        var dirs: [String: String] = [:]
        for c in controllers {
            guard let b = bases[c] else { continue }
            let d = "\(b)/\(name)"
            try CgroupFiles.mkdirs(b)
            if mkdir(d, 0o755) != 0 && errno != EEXIST { throw SystemError.current("mkdir", detail: d) }
            dirs[c] = d
        }
        let cg = CgroupV1(dirs: dirs)
        do { try cg.setLimits(limits) } catch {
            cg.destroy()
            throw error
        }
        return cg
    }

    func setLimits(_ l: CgroupLimits) throws(SystemError) {
        guard let mem = dirs["memory"], let pids = dirs["pids"], let cpu = dirs["cpu"] else {
            throw SystemError("cgroup", errno: ENOENT, detail: "v1 memory/pids/cpu controller missing")
        }
        try CgroupFiles.write("\(mem)/memory.limit_in_bytes", "\(l.memoryBytes)")
        // memsw = memory+swap: without it the limit is escaped by swapping (absent if swap
        // accounting is off, then there is nothing to escape to).
        if access("\(mem)/memory.memsw.limit_in_bytes", F_OK) == 0 {
            try CgroupFiles.write("\(mem)/memory.memsw.limit_in_bytes", "\(l.memoryBytes)")
        }
        try CgroupFiles.write("\(pids)/pids.max", "\(l.pids)")
        try CgroupFiles.write("\(cpu)/cpu.cfs_period_us", "100000")
        try CgroupFiles.write("\(cpu)/cpu.cfs_quota_us", l.cpuPercent == 0 ? "-1" : "\(l.cpuPercent * 1000)")
    }

    /// One rename per controller; if one fails, those already done are undone, so the
    /// directories stay one cgroup under one name.
    func renamed(to name: String) throws(SystemError) -> any WorkerCgroup {
        var moved: [String: String] = [:]
        for (c, d) in dirs.sorted(by: { $0.key < $1.key }) {
            let to = CgroupFiles.sibling(of: d, named: name)
            guard rename(d, to) == 0 else {
                let e = SystemError.current("rename", detail: "\(d) to \(to)")
                for (c2, t) in moved { if let back = dirs[c2] { _ = rename(t, back) } }
                throw e
            }
            moved[c] = to
        }
        return CgroupV1(dirs: moved)
    }

    func openProcs() throws(SystemError) -> [Int32] {
        try CgroupFiles.openAll(Self.controllers.compactMap { c in dirs[c].map { "\($0)/cgroup.procs" } })
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
        let order = dirs.keys.filter { $0 != "freezer" }.sorted() + (dirs["freezer"] == nil ? [] : ["freezer"])
        let busy = order.compactMap { c -> String? in
            let d = dirs[c]!
            return rmdir(d) == 0 || errno == ENOENT ? nil : d
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
