public import MiniAppModel
import CJail
import Glibc

/// A started, exec'd worker process: PID 1 of its namespaces.
public struct SpawnedChild: Sendable {
    /// Host pid of the worker's PID 1.
    public let pid: Int32
    /// Its pidfd (owned by the caller).
    public let pidfd: Int32
    /// Read end of the reaper's status pipe (-1 without reaper; owned by the caller).
    public let statusFD: Int32
}

/// Clones jailed children from one long-lived thread (see `SerialThread`) and runs the
/// go / error-pipe protocol of CJail.
public enum JailSpawner {
    /// The thread every clone happens on.
    public static let thread = SerialThread(name: "jail-spawner")

    /// Spawns `plan`; `cgroup` (if any) receives the child before it runs a single step. Runs
    /// on the spawner thread; the calling task is suspended, not blocked.
    public static func spawn(_ plan: JailSpawnPlan, cgroup: (any WorkerCgroup)?, trace: JailTrace? = nil) async throws(MiniAppError) -> SpawnedChild {
        try await thread.run { () throws(MiniAppError) -> SpawnedChild in try spawnNow(plan, cgroup: cgroup, trace: trace) }
    }

    /// Synchronous form; must be called on `thread` when `plan.pdeathsig` is set.
    public static func spawnNow(_ plan: JailSpawnPlan, cgroup: (any WorkerCgroup)?, trace: JailTrace? = nil) throws(MiniAppError) -> SpawnedChild {
        trace?.mark("spawner_thread")
        let arena = CSpecArena()
        var spec = arena.spec(plan)
        let slots = trace != nil ? JailTrace.ChildSlots() : nil
        spec.trace = slots?.base
        var child = cjail_child()
        trace?.mark("spec_built")
        let r = cjail_clone(&spec, &child)
        trace?.mark("cloned")
        withExtendedLifetime(arena) {}
        defer { if let slots { trace?.childSteps(slots.base) } }
        guard r == 0 else {
            throw MiniAppError(.jailSetupFailed, "clone of the worker failed: \(SystemError("clone", errno: -r)); check namespace support and limits (user.max_*_namespaces)",
                               data: ["step": "clone", "errno": "\(-r)"])
        }
        do {
            if let map = plan.userNamespace { try writeIDMaps(pid: child.pid, map) }
            try cgroup?.attach(pid: child.pid)
            trace?.mark("cgroup_attached")
        } catch {
            abort(&child)
            throw MiniAppError(.jailSetupFailed, "preparing the worker failed: \(error)", data: ["step": error.call, "errno": "\(error.errno)"], cause: error)
        }
        var rec = cjail_error()
        let rel = cjail_release(&child, &rec)
        trace?.mark("exec_confirmed")
        if rel == 0 { return SpawnedChild(pid: child.pid, pidfd: child.pidfd, statusFD: child.status_fd) }
        abort(&child)
        if rel < 0 {
            throw MiniAppError(.jailSetupFailed, "the worker died before its setup began: \(SystemError("go", errno: -rel))", data: ["step": "go", "errno": "\(-rel)"])
        }
        throw setupError(rec)
    }

    static func setupError(_ rec: cjail_error) -> MiniAppError {
        let step = JailStep.name(rec.step)
        let err = SystemError(step, errno: rec.err)
        let which = rec.index >= 0 ? " (item \(rec.index))" : ""
        let hint = rec.step == CJAIL_STEP_EXEC.rawValue
            ? "check that the program exists inside the jail (/usr, /app) and is executable"
            : "the host lacks a feature the policy requires, or the policy asks for something impossible"
        return MiniAppError(.jailSetupFailed, "jail setup step '\(step)'\(which) failed: \(err.description); \(hint)",
                            data: ["step": step, "errno": "\(rec.err)", "index": "\(rec.index)"])
    }

    /// Kills and reaps a child that never reached execve.
    private static func abort(_ c: inout cjail_child) {
        _ = cjail_pidfd_send_signal(c.pidfd, SIGKILL)
        var code: Int32 = 0, status: Int32 = 0
        while cjail_waitid_pidfd(c.pidfd, WEXITED, &code, &status) < 0 && errno == EINTR {}
        for fd in [c.pidfd, c.go_fd, c.err_fd, c.status_fd] where fd >= 0 { close(fd) }
        c = cjail_child(pid: 0, pidfd: -1, go_fd: -1, err_fd: -1, status_fd: -1)
    }

    /// An unprivileged parent must deny setgroups before it may write gid_map (CVE-2014-8989:
    /// dropping supplementary groups could otherwise grant access to "negative" ACL files).
    private static func writeIDMaps(pid: Int32, _ m: JailSpawnPlan.IDMap) throws(SystemError) {
        try CgroupFiles.write("/proc/\(pid)/setgroups", "deny")
        try CgroupFiles.write("/proc/\(pid)/gid_map", "\(m.insideGid) \(m.outsideGid) 1\n")
        try CgroupFiles.write("/proc/\(pid)/uid_map", "\(m.insideUid) \(m.outsideUid) 1\n")
    }

    /// The Landlock ABI of the running kernel (0: none).
    public static var landlockABI: Int32 { cjail_landlock_abi() }
}
