#if canImport(Glibc)
import Glibc
#endif

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
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .current("socket") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw SystemError("connect", errno: ENAMETOOLONG, detail: path)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &addr) { ap in
            ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = SystemError.current("connect", detail: path)
            close(fd)
            throw e
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends one line (a newline is appended).
    public func send(line: [UInt8]) throws(SystemError) {
        var out = line
        out.append(0x0A)
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { p in Glibc.send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .current("send")
            }
            off += n
        }
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
