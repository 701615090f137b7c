import MiniAppModel
import CJail
import Glibc

/// The `miniappd-spawner` process that clones every jailed worker (Sources/CJail/
/// spawner_server.c explains why the daemon never clones them itself). Started on first use,
/// replaced when it is found gone; used only from `JailSpawner.thread`, the thread that must
/// be its parent (workers are cloned with CLONE_PARENT, and PR_SET_PDEATHSIG follows the
/// parent *thread*).
final class SpawnerProcess: @unchecked Sendable {
    /// Touched only on `JailSpawner.thread`.
    nonisolated(unsafe) static var current: SpawnerProcess?

    let pid: Int32
    let socket: Int32

    private init(pid: Int32, socket: Int32) {
        self.pid = pid
        self.socket = socket
    }

    /// Where the spawner executable is: `$MINIAPP_SPAWNER`, else beside this executable.
    static func executablePath() -> String {
        if let p = getenv("MINIAPP_SPAWNER"), p.pointee != 0 { return String(cString: p) }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return dir + "/miniappd-spawner"
    }

    /// The running spawner, started if needed.
    static func shared() throws(MiniAppError) -> SpawnerProcess {
        if let s = current { return s }
        let path = executablePath()
        guard access(path, X_OK) == 0 else {
            throw MiniAppError(.jailUnavailable, "the worker spawner \(path) is missing or not executable: install miniappd-spawner beside miniappd (swift build builds it) or set MINIAPP_SPAWNER",
                               data: ["step": "spawner", "errno": "\(errno)"])
        }
        var pid: Int32 = 0, sock: Int32 = -1
        let r = cjail_spawner_start(path, &pid, &sock)
        guard r == 0 else {
            throw MiniAppError(.jailUnavailable, "cannot start the worker spawner \(path): \(SystemError("posix_spawn", errno: -r))",
                               data: ["step": "spawner", "errno": "\(-r)"])
        }
        let s = SpawnerProcess(pid: pid, socket: sock)
        current = s
        return s
    }

    /// Forgets a spawner that stopped answering: closes the socket (it exits on EOF), reaps it.
    static func discard(_ s: SpawnerProcess) {
        if current === s { current = nil }
        close(s.socket)
        var status: Int32 = 0
        while waitpid(s.pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// One spawn through the spawner (clone, id maps, cgroup attach, "go"); retried once with a
    /// fresh spawner when the old one is gone. `fds` by `cjail_spawn_fd` role (-1: absent).
    /// Returns the spawner's result (0 or -errno) and the step that failed.
    static func spawn(_ request: cjail_spawn_request, fds: [Int32], into child: inout cjail_child) throws(MiniAppError) -> (Int32, Int32) {
        precondition(fds.count == Int(CJAIL_SPAWN_FD_COUNT.rawValue))
        var req = request
        for attempt in 0..<2 {
            let s = try shared()
            var step: Int32 = 0
            let r = fds.withUnsafeBufferPointer { cjail_spawner_call(s.socket, &req, $0.baseAddress, &child, &step) }
            if r <= 0 { return (r, step) }
            discard(s)
            if attempt == 1 {
                throw MiniAppError(.jailUnavailable, "the worker spawner stopped answering: \(SystemError("spawner", errno: r)); check the daemon log and system limits",
                                   data: ["step": "spawner", "errno": "\(r)"])
            }
        }
        return (-EIO, 0) // not reached
    }
}
