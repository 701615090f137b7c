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

    /// Starts the spawner process now (on the spawner thread) so the first spawn does not pay
    /// for it; a failure here is reported again, with its cause, by that spawn.
    public static func prepare() {
        thread.submit { _ = try? SpawnerProcess.shared() }
    }

    /// The spawner process's pid, when one is running (diagnostics and tests).
    public static func spawnerPID() async -> Int32? {
        await thread.run { () -> Int32? in SpawnerProcess.current?.pid }
    }

    /// Synchronous form; must be called on `thread` when `plan.pdeathsig` is set.
    public static func spawnNow(_ plan: JailSpawnPlan, cgroup: (any WorkerCgroup)?, trace: JailTrace? = nil) throws(MiniAppError) -> SpawnedChild {
        trace?.mark("spawner_thread")
        let slots = trace != nil ? JailTrace.ChildSlots() : nil
        var child = cjail_child()
        let r = try cloneThroughSpawner(plan, traceFD: slots?.fd ?? -1, into: &child)
        trace?.mark("cloned")
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

    /// Writes the plan's blob into a memfd and has the spawner process clone the child.
    /// Returns 0 or the spawner's -errno; throws when the spawner cannot be used at all.
    private static func cloneThroughSpawner(_ plan: JailSpawnPlan, traceFD: Int32, into child: inout cjail_child) throws(MiniAppError) -> Int32 {
        let blob = CSpecBlob.make(plan)
        let memfd = cjail_memfd("miniapp-spec")
        guard memfd >= 0 else {
            throw MiniAppError(.jailUnavailable, "memfd_create failed: \(SystemError.current("memfd_create"))", data: ["step": "spec", "errno": "\(errno)"])
        }
        defer { close(memfd) }
        let written = blob.withUnsafeBytes { Glibc.write(memfd, $0.baseAddress, $0.count) }
        guard written == blob.count else {
            throw MiniAppError(.jailUnavailable, "writing the worker spec failed: \(SystemError.current("write"))", data: ["step": "spec", "errno": "\(errno)"])
        }
        let fds = [memfd, plan.stdinFD, plan.stdoutFD, plan.stderrFD, plan.bridgeFD, plan.netnsFD, traceFD]
        return try SpawnerProcess.clone(fds: fds, blobLength: blob.count, into: &child)
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
