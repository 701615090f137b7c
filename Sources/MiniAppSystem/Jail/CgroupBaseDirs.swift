import Glibc
import Synchronization

/// Descriptors of the directories worker cgroups are made in (one per v1 hierarchy), made
/// (`mkdir -p`) and opened at first use and kept for the life of the process. A worker's cgroup
/// is then made, configured, renamed and removed with `*at()` calls relative to them, instead
/// of resolving `/sys/fs/cgroup/<controller>/<daemon's cgroup>/miniapp/<name>/<file>` component
/// by component in every call: under perf those kernfs lookups and permission checks were about
/// half of the CPU a v1 worker cgroup cost (five hierarchies, ~20 path-based calls per worker),
/// and CPU is what back-to-back launches on a small machine run short of.
///
/// A descriptor is never closed: one found stale (its directory was removed, ENOENT) is only
/// forgotten, so no thread can ever use a number that meanwhile names another file.
enum CgroupBaseDirs {
    private static let dirs = Mutex<[String: Int32]>([:])
    private static let oPath: Int32 = 0o10000000 // O_PATH (not exported by Glibc's Swift overlay)

    /// The O_PATH descriptor of `path`, made and opened at first use.
    static func fd(_ path: String) throws(SystemError) -> Int32 {
        if let fd = dirs.withLock({ $0[path] }) { return fd }
        try CgroupFiles.mkdirs(path)
        let fd = open(path, oPath | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.current("open", detail: path) }
        let kept = dirs.withLock { d -> Int32 in
            if let other = d[path] { return other } // another thread was first
            d[path] = fd
            return fd
        }
        if kept != fd { close(fd) } // never used by anyone: safe to close
        return kept
    }

    /// Runs `body` with the descriptor of `path`. When it fails with ENOENT and the descriptor
    /// turns out stale (the directory was removed, maybe made again, under us: an operator, a
    /// test), once more on a fresh one. `body` returns what its system call returned (< 0:
    /// failed, errno set; errno is what the caller sees).
    static func at(_ path: String, _ body: (Int32) -> Int32) throws(SystemError) -> Int32 {
        let fd = try fd(path)
        let r = body(fd)
        guard r < 0 && errno == ENOENT else { return r }
        let saved = errno
        guard isStale(fd, path) else { errno = saved; return r }
        dirs.withLock { d in if d[path] == fd { d[path] = nil } } // forgotten, never closed
        return body(try Self.fd(path))
    }

    /// Whether `fd` no longer is the directory at `path`.
    private static func isStale(_ fd: Int32, _ path: String) -> Bool {
        var a = stat(), b = stat()
        guard fstat(fd, &a) == 0 else { return true }
        guard stat(path, &b) == 0 else { return true }
        return a.st_dev != b.st_dev || a.st_ino != b.st_ino
    }
}
