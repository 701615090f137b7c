public import Glibc

/// Where a server listens: a Unix socket path or a loopback TCP port.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: UInt16)

    /// Parses `unix:/path`, `/path`, or `HOST:PORT` (IPv4 literal; `localhost` = 127.0.0.1).
    public static func parse(_ text: String) -> ListenAddress? {
        if text.hasPrefix("unix:") { return .unix(path: String(text.dropFirst(5))) }
        if text.hasPrefix("/") { return .unix(path: text) }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = String(text[..<colon])
        return .tcp(host: host == "localhost" ? "127.0.0.1" : host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let p): "unix:\(p)"
        case .tcp(let h, let p): "\(h):\(p)"
        }
    }
}

/// Creates listening sockets (CLOEXEC; Unix sockets get `mode` before anyone can connect).
public enum ListeningSocket {
    /// Binds and listens (blocking); returns the fd. Unix sockets go through `UnixSocket.listen`,
    /// which replaces a stale socket file only if nothing answers on it.
    public static func listen(_ address: ListenAddress, mode: mode_t = 0o660, backlog: Int32 = 512) throws(SystemError) -> Int32 {
        switch address {
        case .unix(let path): return try listenUnix(path: path, mode: mode, backlog: backlog)
        case .tcp(let host, let port): return try listenTCP(host: host, port: port, backlog: backlog)
        }
    }

    static func listenUnix(path: String, mode: mode_t, backlog: Int32) throws(SystemError) -> Int32 {
        let fd = try UnixSocket.listen(path: path, mode: UInt32(mode), backlog: backlog).take()
        try UnixSocket.setNonBlocking(fd, false)  // served by a blocking accept thread
        return fd
    }

    static func listenTCP(host: String, port: UInt16, backlog: Int32) throws(SystemError) -> Int32 {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { throw SystemError("inet_pton", errno: EINVAL, detail: host) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .current("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) { ap in
            ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, Glibc.listen(fd, backlog) == 0 else {
            let e = SystemError.current("bind/listen", detail: "\(host):\(port)")
            close(fd)
            throw e
        }
        return fd
    }

    /// The port a TCP listener got (for port 0 in tests).
    public static func boundPort(_ fd: Int32) -> UInt16? {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &addr) { ap in
            ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return rc == 0 ? UInt16(bigEndian: addr.sin_port) : nil
    }
}
