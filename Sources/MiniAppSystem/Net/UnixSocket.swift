#if canImport(Glibc)
import Glibc
#endif
import CNetShims

/// Credentials of the process at the other end of a Unix socket, as the kernel recorded them
/// when the connection was made (`SO_PEERCRED`, `SO_PEERGROUPS`). Unforgeable by the peer, unlike anything it
/// sends; but note the pid may be recycled once that process exits, so never look it up later.
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    /// Process id of the peer at connect time.
    public var pid: Int32
    /// Effective uid of the peer at connect time.
    public var uid: UInt32
    /// Effective gid of the peer at connect time.
    public var gid: UInt32
    /// Supplementary groups of the peer at connect time (`SO_PEERGROUPS`); empty when unknown.
    public var groups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32] = []) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    public var description: String {
        "pid=\(pid) uid=\(uid) gid=\(gid)" + (groups.isEmpty ? "" : " groups=\(groups.map(String.init).joined(separator: ","))")
    }
}

/// Both ends of a `socketpair`: the daemon keeps `daemonSide`, the worker gets `workerSide`
/// (dup2'ed to fd 3 by the spawner). A struct because tuples cannot hold `~Copyable` values.
@frozen
public struct SocketPair: ~Copyable {
    /// The end the broker serves.
    public var daemonSide: OwnedFD
    /// The end handed to the worker.
    public var workerSide: OwnedFD
}

/// Thin wrappers over the AF_UNIX socket calls the broker and the control socket need. Every
/// descriptor is created with `CLOEXEC` so it can never leak into a spawned worker by accident
/// (the fd-leak class of container escapes, cf. CVE-2024-21626 in runc).
public enum UnixSocket {
    /// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`: the daemon keeps one end, the worker
    /// gets the other as fd 3. Both ends are blocking; `LineConnection` makes its end non-blocking.
    public static func pair() throws(SystemError) -> SocketPair {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        _ = try retryingEINTR("socketpair") { socketpair(AF_UNIX, type, 0, &fds) }
        return SocketPair(daemonSide: OwnedFD(adopting: fds[0]), workerSide: OwnedFD(adopting: fds[1]))
    }

    /// Sends all of `bytes` on a blocking stream socket (`MSG_NOSIGNAL`: a gone peer is EPIPE,
    /// never a SIGPIPE that would kill the process), retrying short sends and EINTR.
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var off = 0
        while off < bytes.count {
            off += try retryingEINTR("send") { bytes.withUnsafeBytes { p in Glibc.send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL)) } }
        }
    }

    /// One blocking `recv(2)` into `buffer` (EINTR retried); 0 at EOF.
    public static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try retryingEINTR("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    /// `shutdown(2)`: with `readOnly`, stops reading only (SHUT_RD); otherwise both ways
    /// (SHUT_RDWR: the peer sees EOF now, whoever else holds the descriptor).
    public static func shutdown(_ fd: Int32, readOnly: Bool = false) { _ = Glibc.shutdown(fd, Int32(readOnly ? SHUT_RD : SHUT_RDWR)) }

    /// Sets or clears `O_NONBLOCK` with `fcntl(2)`.
    public static func setNonBlocking(_ fd: Int32, _ on: Bool = true) throws(SystemError) {
        let flags = try retryingEINTR("fcntl") { fcntl(fd, F_GETFL) }
        let wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)
        if wanted != flags { _ = try retryingEINTR("fcntl") { fcntl(fd, F_SETFL, wanted) } }
    }

    /// `getsockopt(SO_PEERCRED)`. `struct ucred` is three 32-bit fields on every Linux ABI; it is
    /// read into a plain array because Glibc's module map hides it behind `_GNU_SOURCE`.
    public static func peerCredentials(_ fd: Int32) throws(SystemError) -> PeerCredentials {
        var raw: (Int32, UInt32, UInt32) = (0, 0, 0)
        var len = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        _ = try retryingEINTR("getsockopt", detail: "SO_PEERCRED") {
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &raw, &len)
        }
        return PeerCredentials(pid: raw.0, uid: raw.1, gid: raw.2, groups: peerGroups(fd))
    }

    /// `SO_PEERGROUPS` from asm-generic/socket.h (Linux 4.13); not in Glibc's module map.
    static let soPeerGroups: Int32 = 59

    /// `getsockopt(SO_PEERGROUPS)`: the peer's supplementary groups as the kernel recorded them
    /// at connect(2), like `SO_PEERCRED` — unforgeable, and not changed by a later setgroups of
    /// the peer. Never read from /proc/<pid>/status, whose pid may have been recycled. Empty
    /// when the kernel cannot say (older than 4.13): fail closed, only the primary gid counts.
    public static func peerGroups(_ fd: Int32) -> [UInt32] {
        var groups = [UInt32](repeating: 0, count: 64)
        while true {
            var len = socklen_t(groups.count * MemoryLayout<UInt32>.size)
            if getsockopt(fd, SOL_SOCKET, soPeerGroups, &groups, &len) == 0 {
                return Array(groups.prefix(Int(len) / MemoryLayout<UInt32>.size))
            }
            let needed = Int(len) / MemoryLayout<UInt32>.size
            switch errno {
            case EINTR: continue
            // Too small: the kernel put the size it needs in len (NGROUPS_MAX is 65536).
            case ERANGE where needed > groups.count && needed <= 65536: groups = [UInt32](repeating: 0, count: needed)
            default: return []
            }
        }
    }

    /// Creates a listening `SOCK_STREAM` socket bound at `path`, mode `mode` (default 0660:
    /// owner and group only, spec/control-api.md). A stale socket file is removed first; any other
    /// kind of file at `path` is an error (never unlink what we did not create). The socket has
    /// its mode before it appears at `path` (`bindPrivately`).
    public static func listen(path: String, mode: UInt32 = 0o660, backlog: Int32 = 128) throws(SystemError) -> OwnedFD {
        let limit = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        guard !path.isEmpty, path.utf8.count < limit else { throw SystemError("bind", errno: ENAMETOOLONG, detail: path) }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw SystemError("bind", errno: EEXIST, detail: path) }
            // Only a *stale* socket is replaced: if something still answers there, a second
            // daemon must not silently take the live daemon's socket away from its clients.
            if (try? connect(path: path)) != nil { throw SystemError("bind", errno: EADDRINUSE, detail: path) }
            unlink(path)
        }
        let fd = OwnedFD(adopting: try retryingEINTR("socket") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        try bindPrivately(fd.raw, path: path, mode: mode, backlog: backlog)
        try setNonBlocking(fd.raw)
        return fd
    }

    /// Binds `fd` to `path` with `mode` and listens, with no window in which anyone else may
    /// connect: the socket is bound inside a fresh 0700 directory beside `path`, given its mode
    /// there, set listening, then renamed into place. (Changing the umask around bind, the usual
    /// trick, is process-wide: in a multi-threaded daemon it gave files other threads created at
    /// that moment the socket's mode.) Listening before the rename: a client that sees the path
    /// must never get ECONNREFUSED from a socket that is not listening yet (a host runtime that
    /// waits for the file to appear and then connects, as systemd-less supervisors do).
    static func bindPrivately(_ fd: Int32, path: String, mode: UInt32, backlog: Int32) throws(SystemError) {
        var parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if parent.isEmpty { parent = path.hasPrefix("/") ? "/" : "." }
        var template = Array("\(parent)/.sock-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SystemError.current("mkdtemp", detail: parent)
        }
        let dir = String(cString: made)
        defer { rmdir(dir) }
        let tmp = dir + "/s"
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(tmp.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SystemError("bind", errno: ENAMETOOLONG, detail: "\(path) (the socket is bound as \(tmp) first)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 { throw SystemError.current("bind", detail: path) }
        do {
            _ = try retryingEINTR("chmod", detail: path) { chmod(tmp, mode_t(mode)) }
            _ = try retryingEINTR("listen", detail: path) { Glibc.listen(fd, backlog) }
            _ = try retryingEINTR("rename", detail: path) { rename(tmp, path) }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Connects to a listening Unix socket at `path` (blocking). For clients and tests.
    public static func connect(path: String) throws(SystemError) -> OwnedFD {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SystemError("connect", errno: ENAMETOOLONG, detail: path)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let fd = OwnedFD(adopting: try retryingEINTR("socket") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        _ = try retryingEINTR("connect", detail: path) {
            withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return fd
    }

    /// `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)`; nil when no connection is pending (EAGAIN) or the
    /// peer went away before we accepted it (ECONNABORTED).
    public static func accept(_ listener: Int32) throws(SystemError) -> OwnedFD? {
        while true {
            let fd = cnet_accept4(listener)
            if fd >= 0 { return OwnedFD(adopting: fd) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK, ECONNABORTED, EPROTO: return nil
            default: throw SystemError.current("accept4")
            }
        }
    }
}

/// Monotonic clock in nanoseconds (`CLOCK_MONOTONIC`): deadlines, timers and call durations.
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall-clock time in microseconds since the Unix epoch (`CLOCK_REALTIME`), for audit records.
public func wallClockMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}
