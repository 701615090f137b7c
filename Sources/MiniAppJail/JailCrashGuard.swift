import Glibc
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
        var fds: [Int32] = [-1, -1]
        // pipe2 is not exported by Glibc's module map; the daemon spawns nothing yet at this
        // point of its start, so setting close-on-exec right after pipe() leaves no window.
        guard pipe(&fds) == 0 else { return nil }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)  // dup2 clears O_CLOEXEC on fd 0
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ["/bin/sh", "-c", script, "miniappd-crash-guard", freezer, "\(getpid())"]
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, nil, &cargs, environ)
        close(fds[0])
        guard rc == 0 else {
            close(fds[1])
            return nil
        }
        return JailCrashGuard(writeFD: fds[1], pid: pid)
    }

    /// Clean shutdown: closes the pipe (the guard finds nothing to thaw and exits) and reaps it.
    public func finish() {
        close(writeFD)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}
