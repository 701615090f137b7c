#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify(3) protocol, without linking libsystemd: one datagram to `$NOTIFY_SOCKET`.
///
/// Used for `READY=1` once the control socket answers, `STOPPING=1` on SIGTERM, `RELOADING=1`
/// on SIGHUP and `WATCHDOG=1` keep-alives. A missing `NOTIFY_SOCKET` makes every call a no-op,
/// so the daemon behaves the same outside systemd.
public struct SystemdNotifier: Sendable {
    /// The socket path (`@` prefix = abstract namespace), or nil when not under systemd.
    public let socketPath: String?
    /// Watchdog interval from `$WATCHDOG_USEC` (only if `$WATCHDOG_PID` is unset or is us).
    public let watchdogMicros: UInt64?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    public init(environment: [String: String]) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let pidOK = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        watchdogMicros = pidOK ? environment["WATCHDOG_USEC"].flatMap { UInt64($0) } : nil
    }

    /// Sends `state` (e.g. "READY=1\nSTATUS=serving"). Errors are returned, not thrown: a lost
    /// notification must never stop the daemon, but tests want to see it.
    @discardableResult
    public func notify(_ state: String) -> SystemError? {
        guard let path = socketPath else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .current("socket") }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            return SystemError("sd_notify", errno: ENAMETOOLONG, detail: path)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let payload = Array(state.utf8)
        let sent = withUnsafePointer(to: &addr) { ap in
            ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                sendto(fd, payload, payload.count, Int32(MSG_NOSIGNAL), sa, len)
            }
        }
        return sent < 0 ? .current("sendto", detail: path) : nil
    }
}

/// Sockets passed by systemd socket activation (sd_listen_fds(3)): fds 3…3+N-1 when
/// `$LISTEN_PID` is our pid.
public enum SocketActivation {
    /// The first fd systemd passes.
    public static let firstFD: Int32 = 3

    /// The passed descriptors (CLOEXEC set on each), or [] when not socket-activated. The
    /// variables are removed so that children never see them (sd_listen_fds' unset_environment).
    public static func takeListenFDs() -> [Int32] {
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), Int32(pidText) == getpid(),
            let countText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let count = Int32(countText),
            count > 0, count < 1024
        else { return [] }
        return (0..<count).map { i in
            let fd = firstFD + i
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return fd
        }
    }
}
