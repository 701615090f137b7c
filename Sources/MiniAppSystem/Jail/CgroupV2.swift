import Glibc

/// cgroup v2: one directory; controllers enabled in the parent's cgroup.subtree_control.
/// Its unit tests use a fake directory tree (they must also run on v1-only hosts); the file names and
/// formats are those of Documentation/admin-guide/cgroup-v2.rst.
final class CgroupV2: WorkerCgroup {
    let dir: String
    var location: String { dir }

    private init(dir: String) { self.dir = dir }

    static func create(parent: String, name: String, limits: CgroupLimits) throws(SystemError) -> CgroupV2 {
        try CgroupFiles.mkdirs(parent)
        // "No internal processes": controllers can only be enabled for children of a cgroup that
        // has no processes of its own, which is why workers live in <parent>/<name>.
        try? CgroupFiles.write("\(parent)/cgroup.subtree_control", "+memory +pids +cpu")
        let d = "\(parent)/\(name)"
        if mkdir(d, 0o755) != 0 && errno != EEXIST { throw SystemError.current("mkdir", detail: d) }
        let cg = CgroupV2(dir: d)
        do { try cg.setLimits(limits) } catch {
            cg.destroy()
            throw error
        }
        return cg
    }

    func setLimits(_ limits: CgroupLimits) throws(SystemError) {
        try CgroupFiles.write("\(dir)/memory.max", "\(limits.memoryBytes)")
        if access("\(dir)/memory.swap.max", F_OK) == 0 { try CgroupFiles.write("\(dir)/memory.swap.max", "0") }
        try CgroupFiles.write("\(dir)/pids.max", "\(limits.pids)")
        try CgroupFiles.write("\(dir)/cpu.max", limits.cpuPercent == 0 ? "max 100000" : "\(limits.cpuPercent * 1000) 100000")
    }

    /// v2 allows renaming a cgroup within its parent.
    func renamed(to name: String) throws(SystemError) -> any WorkerCgroup {
        let to = CgroupFiles.sibling(of: dir, named: name)
        guard rename(dir, to) == 0 else { throw SystemError.current("rename", detail: "\(dir) to \(to)") }
        return CgroupV2(dir: to)
    }

    func openProcs() throws(SystemError) -> [Int32] { try CgroupFiles.openAll(["\(dir)/cgroup.procs"]) }

    func freeze() throws(SystemError) {
        try CgroupFiles.write("\(dir)/cgroup.freeze", "1")
        for i in 0..<2000 {
            if CgroupFiles.keyed("\(dir)/cgroup.events", "frozen") == 1 { return }
            usleep(i < 20 ? 50 : 1000)
        }
        throw SystemError("freeze", errno: ETIMEDOUT, detail: dir)
    }

    func thaw() throws(SystemError) { try CgroupFiles.write("\(dir)/cgroup.freeze", "0") }

    func killAll() {
        if CgroupFiles.pids("\(dir)/cgroup.procs").isEmpty { return } // nothing inside: no kill needed
        // cgroup.kill (5.14+) kills atomically, including processes forking right now.
        if (try? CgroupFiles.write("\(dir)/cgroup.kill", "1")) != nil { return }
        for _ in 0..<20 {
            try? CgroupFiles.write("\(dir)/cgroup.freeze", "1")
            let pids = CgroupFiles.pids("\(dir)/cgroup.procs")
            for p in pids { kill(p, SIGKILL) }
            try? CgroupFiles.write("\(dir)/cgroup.freeze", "0")
            if pids.isEmpty { return }
            usleep(1000)
        }
    }

    /// rmdir first (it succeeds only when no task is left, the usual case after PID 1 was
    /// reaped); on EBUSY kill everything and retry while the last tasks exit. Without
    /// cgroup.kill (kernels before 5.14) killAll signals the pids of cgroup.procs one by one;
    /// killed tasks leave asynchronously, so the rmdir is retried just the same (it used to be
    /// tried once there, leaking the cgroup whenever a task was still exiting).
    func destroy() {
        if rmdir(dir) == 0 || errno == ENOENT { return }
        for _ in 0..<3 {
            killAll()
            CgroupFiles.rmdirRetrying(dir)
            if access(dir, F_OK) != 0 { return }
        }
    }

    func stats() -> JailStats {
        JailStats(memoryBytes: CgroupFiles.number("\(dir)/memory.current"),
                  cpuMicros: CgroupFiles.keyed("\(dir)/cpu.stat", "usage_usec"))
    }

    func events() -> CgroupEvents {
        var e = CgroupEvents()
        e.oomKills = CgroupFiles.keyed("\(dir)/memory.events", "oom_kill")
        e.pidsMaxHits = CgroupFiles.keyed("\(dir)/pids.events", "max")
        return e
    }
}
