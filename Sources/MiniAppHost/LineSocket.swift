import CNetShims
#if canImport(Glibc)
import Glibc
#endif

/// One connected Unix stream socket carrying newline-framed messages (the control API's
/// NDJSON). Sends are serialized by a lock and bounded by `SO_SNDTIMEO`, so a daemon that stops
/// reading cannot block a caller forever; reads are done by the owner's reader thread only.
final class LineSocket: @unchecked Sendable {
    let fd: Int32
    private let sendLock = Lock()
    private var buffer: [UInt8] = []
    private var start = 0
    private let maxLine: Int

    /// Connects to `path`; errors are `HOST_UNAVAILABLE` naming the path and errno.
    init(path: String, maxLine: Int, sendTimeoutMillis: Int) throws(HostError) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HostError(HostError.Code.hostUnavailable, "socket: \(Self.errnoText())") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw HostError(HostError.Code.hostUnavailable, "socket path too long (\(bytes.count) bytes, at most 107): \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let text = Self.errnoText()
            close(fd)
            throw HostError(
                HostError.Code.hostUnavailable, "cannot connect to miniappd at \(path): \(text). Is the daemon running? Pass --socket PATH.")
        }
        var tv = timeval(tv_sec: sendTimeoutMillis / 1000, tv_usec: (sendTimeoutMillis % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        self.fd = fd
        self.maxLine = maxLine
    }

    deinit { close(fd) }

    /// Sends `line` and a newline, whole (a send that times out or fails shuts the socket down:
    /// a partial line would corrupt the stream for every later message).
    /// With `descriptor`, it rides on the first `sendmsg` (`SCM_RIGHTS`): the daemon receives a
    /// duplicate with the line's first byte; the caller keeps (and closes) its own.
    func send(_ line: [UInt8], passing descriptor: Int32? = nil) throws(HostError) {
        var out = line
        out.append(0x0A)
        sendLock.lock()
        defer { sendLock.unlock() }
        var off = 0
        if let descriptor {
            var n: Int
            repeat { n = out.withUnsafeBytes { p in cnet_send_fd(fd, p.baseAddress!, UInt(p.count), descriptor) } } while n < 0 && errno == EINTR
            if n < 0 {
                let text = Self.errnoText()
                shutdown(fd, Int32(SHUT_RDWR))
                throw HostError(HostError.Code.hostUnavailable, "lost the connection to miniappd: \(text)")
            }
            off = n  // a short send carried the descriptor with the first part; the rest is plain
        }
        while off < out.count {
            let n = out.withUnsafeBytes { p in Glibc.send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                let text = errno == EAGAIN ? "miniappd did not read for too long" : Self.errnoText()
                shutdown(fd, Int32(SHUT_RDWR))
                throw HostError(HostError.Code.hostUnavailable, "lost the connection to miniappd: \(text)")
            }
            off += n
        }
    }

    /// Stops both directions (wakes the reader with EOF).
    func shutdownBoth() { shutdown(fd, Int32(SHUT_RDWR)) }

    /// Reads what is available once and returns the complete lines; nil at EOF. Throws
    /// `MESSAGE_TOO_LARGE` for a line over the limit (the stream cannot be resynchronised).
    func readLines() throws(HostError) -> [ArraySlice<UInt8>]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var n: Int
        repeat { n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) } } while n < 0 && errno == EINTR
        if n < 0 {
            if errno == EAGAIN { return [] }
            throw HostError(HostError.Code.hostUnavailable, "lost the connection to miniappd: \(Self.errnoText())")
        }
        if n == 0 { return nil }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: chunk[0..<n])
        var lines: [ArraySlice<UInt8>] = []
        while let nl = buffer[start...].firstIndex(of: 0x0A) {
            lines.append(buffer[start..<nl])
            start = nl + 1
        }
        if buffer.count - start > maxLine {
            throw HostError(HostError.Code.messageTooLarge, "miniappd sent a line over \(maxLine) bytes")
        }
        if start > 65536 {
            buffer.removeFirst(start)
            start = 0
        }
        return lines
    }

    static func errnoText() -> String { String(cString: strerror(errno)) + " (errno \(errno))" }
}

/// A pthread mutex (usable from synchronous code on any thread, never held across `await`).
final class Lock: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func lock() { pthread_mutex_lock(&m) }
    func unlock() { pthread_mutex_unlock(&m) }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
