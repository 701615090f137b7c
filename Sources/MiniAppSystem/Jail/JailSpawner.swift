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

    /// Spawns `plan`; the child is in the cgroups whose `cgroup.procs` files are open in
    /// `cgroupProcs` (the caller keeps and closes them) before it runs a single step. Runs on
    /// the spawner thread; the calling task is suspended, not blocked.
    public static func spawn(_ plan: JailSpawnPlan, cgroupProcs: [Int32], trace: JailTrace? = nil) async throws(MiniAppError) -> SpawnedChild {
        try await thread.run { () throws(MiniAppError) -> SpawnedChild in try spawnNow(plan, cgroupProcs: cgroupProcs, trace: trace) }
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

    /// Synchronous form; must be called on `thread` (the spawner's parent thread).
    public static func spawnNow(_ plan: JailSpawnPlan, cgroupProcs: [Int32], trace: JailTrace? = nil) throws(MiniAppError) -> SpawnedChild {
        trace?.mark("spawner_thread")
        let slots = trace != nil ? JailTrace.ChildSlots() : nil
        defer { if let slots { trace?.childSteps(slots.base) } }
        var child = cjail_child()
        let (r, step) = try spawnThroughSpawner(plan, cgroupProcs: cgroupProcs, traceFD: slots?.fd ?? -1, into: &child)
        trace?.mark("spawned")
        guard r == 0 else {
            if child.pidfd >= 0 { abort(&child) }
            throw spawnerError(r, step: step)
        }
        var rec = cjail_error()
        let rel = cjail_wait_exec(child.err_fd, &rec)
        child.err_fd = -1
        trace?.mark("exec_confirmed")
        if rel == 0 { return SpawnedChild(pid: child.pid, pidfd: child.pidfd, statusFD: child.status_fd) }
        abort(&child)
        throw setupError(rec)
    }

    /// Writes the plan's blob into a memfd and has the spawner process clone and start the child.
    /// Returns the spawner's result (0 or -errno) and failed step; throws when the spawner
    /// cannot be used at all.
    private static func spawnThroughSpawner(_ plan: JailSpawnPlan, cgroupProcs: [Int32], traceFD: Int32,
                                            into child: inout cjail_child) throws(MiniAppError) -> (Int32, Int32) {
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
        guard cgroupProcs.count <= Int(CJAIL_SPAWN_MAX_PROCS) else {
            throw MiniAppError(.internal, "\(cgroupProcs.count) cgroup hierarchies, the spawner takes \(CJAIL_SPAWN_MAX_PROCS)")
        }
        var req = cjail_spawn_request()
        req.blob_len = UInt64(blob.count)
        if let m = plan.userNamespace {
            req.flags = CJAIL_SPAWN_IDMAP
            req.inside_uid = m.insideUid; req.outside_uid = m.outsideUid
            req.inside_gid = m.insideGid; req.outside_gid = m.outsideGid
        }
        var fds = [memfd, plan.stdinFD, plan.stdoutFD, plan.stderrFD, plan.bridgeFD, plan.netnsFD, traceFD]
        fds += cgroupProcs + [Int32](repeating: -1, count: Int(CJAIL_SPAWN_MAX_PROCS) - cgroupProcs.count)
        return try SpawnerProcess.spawn(req, fds: fds, into: &child)
    }

    /// A failure the spawner reported, named by its step.
    static func spawnerError(_ r: Int32, step: Int32) -> MiniAppError {
        let (name, hint): (String, String) = switch UInt32(bitPattern: step) {
        case CJAIL_SPAWN_CLONE.rawValue: ("clone", "check namespace support and limits (user.max_*_namespaces)")
        case CJAIL_SPAWN_IDMAP_STEP.rawValue: ("id_map", "the daemon's user may not map its uid in a user namespace (kernel.unprivileged_userns_clone, subuid policy)")
        case CJAIL_SPAWN_CGROUP.rawValue: ("cgroup", "the worker cgroup refused the process; check the cgroup delegation and its limits")
        case CJAIL_SPAWN_GO.rawValue: ("go", "the worker died before its setup began")
        default: ("spawn_request", "the spawner refused the request: a daemon bug, see the daemon log")
        }
        return MiniAppError(.jailSetupFailed, "jail setup step '\(name)' failed: \(SystemError(name, errno: -r)); \(hint)",
                            data: ["step": name, "errno": "\(-r)"])
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

    /// The Landlock ABI of the running kernel (0: none).
    public static var landlockABI: Int32 { cjail_landlock_abi() }
}
