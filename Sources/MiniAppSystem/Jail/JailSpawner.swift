public import MiniAppModel
import CJail
import Glibc

/// A started, exec'd worker process: PID 1 of its namespaces.
public struct SpawnedChild: Sendable {
    /// A warm jail took the launch (its namespaces and shared mounts were made ahead).
    public var warm = false
    /// Host pid of the worker's PID 1.
    public let pid: Int32
    /// Its pidfd (owned by the caller).
    public let pidfd: Int32
    /// Read end of the reaper's status pipe (-1 without reaper; owned by the caller).
    public let statusFD: Int32
    /// A spawner service's worker is its child, not ours: the exit record it sends when it
    /// reaps it (`cjail_exit_record`) arrives here (owned by the caller); -1 when we reap it
    /// through `pidfd`.
    public var exitFD: Int32 = -1
}

/// A launch whose warm jail may wait in a pooled cgroup (CJAIL_SPAWN_WARM_CGROUP,
/// `WarmJailCgroups`): the limits written into the launch's cgroup, and a spare cgroup carrying
/// them too, lent for the warm jail made after it.
public struct PooledCgroups: Sendable {
    public var limits: CgroupLimits
    public var spare: String?
    public init(limits: CgroupLimits, spare: String?) { (self.limits, self.spare) = (limits, spare) }
}

/// Clones jailed children from one long-lived thread (a serial `WorkQueue`, see there) and runs the
/// go / error-pipe protocol of CJail.
public enum JailSpawner {
    /// The thread every clone happens on.
    public static let thread = WorkQueue(name: "jail-spawner")

    /// Spawns `plan`; the child is in the cgroups whose `cgroup.procs` files are open in
    /// `cgroupProcs` (the caller keeps and closes them) before it runs a single step. Returns
    /// once the program was exec'd, blocking the calling thread in `poll` on the reply socket
    /// and then on the error pipe (the daemon's launches come from control handler threads;
    /// never call it from a thread a reply depends on). Only starting (or replacing) the
    /// spawner process hops to `thread`.
    /// `warm`: take a matching warm jail if the spawner has one, and have it keep one ready
    /// for the next launch of the same policy (spawner_warm.c).
    /// `pooled` (with `warm` and `cgroupName`): warm jails wait in pooled cgroups; `replied` is
    /// then told, once the spawner answered, which cgroup the worker runs in: its warm jail's
    /// (that name), or the request's own (""). Not called when the request failed.
    public static func spawn(_ plan: JailSpawnPlan, template: UInt32, cgroupProcs: [Int32], cgroupName: String? = nil, warm: Bool = false,
                             pooled: PooledCgroups? = nil, replied: (String) -> Void = { _ in },
                             slot: SpawnerSlot = .shared, trace: JailTrace? = nil) throws(MiniAppError) -> SpawnedChild {
        let slots = trace != nil ? JailTrace.ChildSlots() : nil
        defer { if let slots { trace?.childSteps(slots.base) } }
        var (child, tookWarm, exitFD): (cjail_child, Bool, Int32)
        var attempt = 0
        while true {
            let request = try SpawnRequest(plan, template: template, cgroupProcs: cgroupProcs, cgroupName: cgroupName, traceFD: slots?.fd ?? -1, warm: warm,
                                           pooled: pooled)
            let spawner: SpawnerProcess
            if attempt == 0, let s = SpawnerProcess.trySend(request, slot) { spawner = s } else {
                spawner = try thread.runBlocking { () throws(MiniAppError) -> SpawnerProcess in try SpawnerProcess.startAndSend(request, slot) }
            }
            trace?.mark("sent")
            waitReadable(request.replyFD)
            if let r = try takeReply(request, from: spawner, in: slot, retryable: attempt == 0, trace: trace) {
                (child, tookWarm, exitFD) = (r.0, r.1, r.2)
                if pooled != nil { replied(r.3) }
                break
            }
            attempt += 1
        }
        // The child runs its steps now; EOF on the error pipe (close-on-exec) is its execve.
        waitReadable(child.err_fd)
        return try confirmExec(&child, exitFD: exitFD, warm: tookWarm, trace: trace)
    }

    private static func waitReadable(_ fd: Int32) {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while poll(&p, 1, -1) < 0 && errno == EINTR {}
    }

    /// Reads the spawner's reply: the child, or the error it reported; nil when the spawner died
    /// before it took the request (`retryable`: then the request is sent again, to a new one).
    private static func takeReply(_ request: SpawnRequest, from spawner: SpawnerProcess, in slot: SpawnerSlot, retryable: Bool,
                                  trace: JailTrace?) throws(MiniAppError) -> (cjail_child, Bool, Int32, String)? {
        trace?.mark("replied")
        var reply = cjail_spawn_reply()
        var child = cjail_child()
        var exitFD: Int32 = -1
        let r = cjail_spawner_read_reply(request.replyFD, &reply, &child, &exitFD)
        guard r == 0 else {
            SpawnerProcess.discard(spawner, from: slot)
            if retryable && !request.taken { return nil } // never acted on: safe to send again
            // Taken but never answered: it may have started the child; no retry (the caller's
            // cgroup teardown kills whatever it started).
            throw MiniAppError(.jailUnavailable, "the worker spawner died during a spawn: \(SystemError("spawner", errno: r)); the next spawn starts a new one",
                               data: ["step": "spawner", "errno": "\(r)"])
        }
        if reply.result != 0 {
            if exitFD >= 0 { close(exitFD) }
            if child.pidfd >= 0 { abort(&child) }
            if UInt32(bitPattern: reply.failed_step) == CJAIL_SPAWN_REFUSED.rawValue {
                // A template added while this spawner was being started may have missed it
                // (it registers the slot's set once): registered now, the launch is sent again.
                if retryable && reply.refused == Int32(CJAIL_REFUSE_TEMPLATE.rawValue),
                   let t = slot.templates.template(request.header.template_id),
                   t.register(id: request.header.template_id, on: spawner.socket) == 0 {
                    return nil
                }
                throw refusalError(reply.result, refused: reply.refused, index: reply.refused_index)
            }
            throw spawnerError(reply.result, step: reply.failed_step)
        }
        if reply.warm != 0 {
            if exitFD < 0 { WarmJails.adopt(pid: child.pid) } // a service's warm jails are its own children
            trace?.mark("warm_jail")
        }
        return (child, reply.warm != 0, exitFD, SpawnerProcess.name(reply.cgroup))
    }

    /// Reads the error pipe once it is readable: EOF is the exec, a record a failed step.
    private static func confirmExec(_ child: inout cjail_child, exitFD: Int32, warm: Bool, trace: JailTrace?) throws(MiniAppError) -> SpawnedChild {
        var rec = cjail_error()
        let failed = cjail_wait_exec(child.err_fd, &rec) != 0
        child.err_fd = -1
        trace?.mark("exec_confirmed")
        if failed {
            if exitFD >= 0 { close(exitFD) }
            abort(&child)
            throw setupError(rec)
        }
        return SpawnedChild(warm: warm, pid: child.pid, pidfd: child.pidfd, statusFD: child.status_fd, exitFD: exitFD)
    }

    /// Starts the spawner process now (on the spawner thread) so the first spawn does not pay
    /// for it; a failure here is reported again, with its cause, by that spawn.
    /// A spawner service is left alone: it is connected when its user first needs it (a root
    /// daemon connects only once it dropped to the uid the service admits).
    public static func prepare(_ slot: SpawnerSlot = .shared) {
        guard slot.servicePath == nil else { return }
        thread.submit { _ = try? SpawnerProcess.shared(slot) }
    }

    /// The spawner process's pid, when one is running (diagnostics and tests).
    public static func spawnerPID(_ slot: SpawnerSlot = .shared) -> Int32? { SpawnerProcess.running(slot)?.pid }

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

    /// The spawner refused a launch that does not match its template (spawner_check.c): the
    /// daemon planned something its starter did not allow (a bug, a policy changed after the
    /// templates were locked), or the program directory does not resolve beneath its root.
    static func refusalError(_ r: Int32, refused: Int32, index: Int32) -> MiniAppError {
        let what = SpawnerTemplate.refusalName(refused)
        let which = index >= 0 ? " (item \(index))" : ""
        let hint = refused == Int32(CJAIL_REFUSE_SOURCE.rawValue)
            ? "the program or data directory must be a real directory (no symlinks) beneath the state directory's packages/ or data/"
            : "the launch does not match what the spawner was started with; restart the daemon after a policy change"
        return MiniAppError(.jailSetupFailed, "the worker spawner refused the launch: \(what)\(which): \(SystemError("spawn", errno: -r)); \(hint)",
                            data: ["step": "spawner_refused", "refused": what, "index": "\(index)", "errno": "\(-r)"])
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

    /// Kills and reaps a child that never reached execve (a spawner service's child: its own to
    /// reap, waitid answers ECHILD at once; it exits by itself after a failed step).
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
