import MiniAppSystem

/// Thaws this daemon's frozen workers if the daemon dies without stopping them (kill -9, crash).
///
/// Why: on SIGKILL of the daemon every worker's PID 1 receives its `PDEATHSIG` (SIGKILL), but
/// under the cgroup v1 freezer a frozen (suspended) task does not act on a fatal signal until
/// it is thawed — and the daemon that would thaw it is gone. Without help a suspended worker
/// would outlive the daemon until the next daemon start sweeps it (JailSweep.swift).
///
/// How: a tiny `/bin/sh` guard, spawned once at start, blocks reading a pipe whose only write
/// end is the daemon's (close-on-exec, so no worker or other child holds it). When the daemon
/// dies, however it dies, the read sees EOF; the guard then writes `THAWED` to every freezer
/// cgroup of *this* daemon's workers (`w-<program>-<daemon pid>-<serial>`, owner compared
/// exactly) and exits. The queued SIGKILL then ends them; the next start removes the empty
/// cgroups. On a clean shutdown the workers are already gone and the guard just exits.
/// cgroup v2 needs no guard: its freezer lets fatal signals through.
public final class JailCrashGuard: Sendable {
    /// The write end; held open for the daemon's lifetime, never written.
    private let writeFD: Int32
    /// The guard's pid.
    public let pid: Int32

    static let script = """
        cat >/dev/null
        for d in "$1"/w-*; do
          n=${d##*/}; n=${n%-*}
          [ "${n##*-}" = "$2" ] && [ -f "$d/freezer.state" ] && echo THAWED > "$d/freezer.state"
        done
        exit 0
        """

    private init(writeFD: Int32, pid: Int32) {
        self.writeFD = writeFD
        self.pid = pid
    }

    /// Starts the guard when the jail uses the cgroup v1 freezer; nil otherwise (or when the
    /// guard cannot be spawned: the next start's sweep still cleans up, so this is not fatal).
    public static func start(for jailer: Jailer) -> JailCrashGuard? {
        guard case .v1(_, let bases) = jailer.configuration.cgroupDriver, let freezer = bases["freezer"] else { return nil }
        // Both ends close-on-exec from creation; dup2 onto the guard's fd 0 clears it there.
        guard let pipe = try? PipePair() else { return nil }
        let argv = ["/bin/sh", "-c", script, "miniappd-crash-guard", freezer, "\(CurrentProcess.pid)"]
        let (readFD, writeFD) = pipe.takeBoth()
        defer { OwnedFD(adopting: readFD).close() }
        guard let pid = try? Processes.spawn(argv, files: [.duplicate(readFD, to: 0), .devNull(1), .devNull(2)]) else {
            OwnedFD(adopting: writeFD).close()
            return nil
        }
        return JailCrashGuard(writeFD: writeFD, pid: pid)
    }

    /// Clean shutdown: closes the pipe (the guard finds nothing to thaw and exits) and reaps it.
    public func finish() {
        OwnedFD(adopting: writeFD).close()
        _ = Processes.waitForExit(pid)
    }
}
