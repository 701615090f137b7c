#if canImport(Glibc)
import Glibc
#endif
import CNetShims

/// A blocking client for a line-framed Unix stream socket (the control API's NDJSON), for the CLI
/// and tests. The daemon side uses the epoll reactor instead.
public final class UnixLineClient {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    /// Largest line accepted from the server.
    public var maxLine = 16 << 20

    /// Connects to the socket at `path`.
    public init(path: String) throws(SystemError) {
        fd = try UnixSocket.connect(path: path).take()
    }

    deinit { close(fd) }

    /// Sends one line (a newline is appended).
    public func send(line: [UInt8]) throws(SystemError) {
        var out = line
        out.append(0x0A)
        try sendAll(out, from: 0)
    }

    private func sendAll(_ out: [UInt8], from start: Int) throws(SystemError) {
        var off = start
        while off < out.count {
            let n = out.withUnsafeBytes { p in Glibc.send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .current("send")
            }
            off += n
        }
    }

    /// Sends one line (a newline is appended) with `descriptor` attached (`SCM_RIGHTS`) to the
    /// same `sendmsg`, so the server receives it with the line's first byte. The descriptor is
    /// duplicated into the server; the caller keeps (and closes) its own.
    public func send(line: [UInt8], passing descriptor: Int32) throws(SystemError) {
        var out = line
        out.append(0x0A)
        var n: Int
        repeat {
            n = out.withUnsafeBytes { p in cnet_send_fd(fd, p.baseAddress!, UInt(p.count), descriptor) }
        } while n < 0 && errno == EINTR
        if n < 0 { throw .current("sendmsg") }
        // A short write sent the descriptor with the first part; the rest goes as plain bytes.
        try sendAll(out, from: n)
    }

    /// Reads the next line (without its newline); nil at EOF. `timeoutMillis` < 0 waits forever.
    public func readLine(timeoutMillis: Int32 = -1) throws(SystemError) -> [UInt8]? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                let line = Array(buffer[start..<nl])
                start = nl + 1
                if start > 65536 {
                    buffer.removeFirst(start)
                    start = 0
                }
                return line
            }
            guard buffer.count - start <= maxLine else { throw SystemError("readLine", errno: EMSGSIZE) }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let pr = poll(&pfd, 1, timeoutMillis)
            if pr < 0 {
                if errno == EINTR { continue }
                throw .current("poll")
            }
            if pr == 0 { throw SystemError("readLine", errno: ETIMEDOUT) }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { p in recv(fd, p.baseAddress!, p.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .current("recv")
            }
            if n == 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}
