import MiniAppSystem

/// Removes what a daemon killed with SIGKILL left behind (the promise: "kill -9 of the daemon
/// leaves no worker or cgroup behind, and a restart recovers").
///
/// On SIGKILL of the daemon each worker's PID 1 gets `PDEATHSIG` (SIGKILL) and the kernel then
/// kills its whole pid namespace, so no worker process survives. What can survive is a worker
/// that was *frozen* (a pending SIGKILL is not acted on until thawed; JailCrashGuard.swift
/// thaws them as soon as the daemon dies, this sweep is the fallback) and the empty cgroup
/// directories. Worker cgroups are named `w-<program>-<daemon pid>-<serial>` and the ones made
/// ahead `p-<daemon pid>-<serial>` (CgroupPool.swift); at start, every one whose daemon pid is
/// not alive is thawed, its members are killed and it is removed.
/// Cgroups of live daemons (other instances, tests) are never touched.
extension Jailer {
    /// What the sweep did.
    public struct SweepReport: Sendable, Equatable {
        /// Stale cgroup directories removed (one per worker, all hierarchies counted once).
        public var cgroups = 0
        /// Processes killed inside them.
        public var processes = 0
    }

    /// Sweeps stale worker cgroups (call once at daemon start, before any spawn).
    public func sweepStaleWorkers() -> SweepReport {
        var report = SweepReport()
        switch configuration.cgroupDriver {
        case .none: break
        case .v2(let root):
            for name in Self.staleNames(in: root) {
                let dir = root + "/" + name
                report.processes += Self.members(dir).count
                try? CgroupFiles.write(dir + "/cgroup.freeze", "0")
                try? CgroupFiles.write(dir + "/cgroup.kill", "1")
                CgroupFiles.rmdirRetrying(dir)
                report.cgroups += 1
            }
        case .v1(_, let bases):
            var names = Set<String>()
            for base in bases.values { names.formUnion(Self.staleNames(in: base)) }
            for name in names.sorted() {
                if let f = bases["freezer"] { try? CgroupFiles.write("\(f)/\(name)/freezer.state", "THAWED") }
                for base in bases.values.sorted() {
                    let dir = base + "/" + name
                    for pid in Self.members(dir) where Processes.signal(pid, Signal.kill) { report.processes += 1 }
                }
                for base in bases.values.sorted() { CgroupFiles.rmdirRetrying(base + "/" + name) }
                report.cgroups += 1
            }
        }
        return report
    }

    /// Worker cgroup names under `dir` whose owning daemon is gone.
    static func staleNames(in dir: String) -> [String] {
        let names = (try? FileSystem.list(dir)) ?? []
        return names.filter { name in
            guard name.hasPrefix("w-") || name.hasPrefix("p-"), let owner = ownerPid(name) else { return false }
            return owner != CurrentProcess.pid && !Processes.isAlive(owner)
        }
    }

    /// `w-<program>-<pid>-<serial>` or `p-<pid>-<serial>` → pid.
    static func ownerPid(_ name: String) -> Int32? {
        let parts = name.split(separator: "-")
        guard parts.count >= (name.hasPrefix("p-") ? 3 : 4), Int(parts[parts.count - 1]) != nil else { return nil }
        return Int32(parts[parts.count - 2])
    }


    static func members(_ dir: String) -> [Int32] {
        let text = (try? CgroupFiles.read(dir + "/cgroup.procs")) ?? ""
        return text.split(separator: "\n").compactMap { Int32($0) }
    }
}
