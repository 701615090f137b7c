import Glibc
import Synchronization

/// A deliberately tiny HTTP/1.1 server for `GET /metrics` (Prometheus scrapes): one thread,
/// one request per connection, `Connection: close`, bounded request size and read time. Not a
/// general web server: anything but `GET` of a known path gets 404/405.
public final class TinyHTTPServer: Sendable {
    /// Handler: path → (status, content type, body); nil = 404.
    public typealias Handler = @Sendable (String) -> (Int, String, [UInt8])?

    private let fd: Int32
    private let handler: Handler
    private let stopped = Atomic<Bool>(false)

    /// Takes ownership of a listening socket.
    public init(listeningFD: Int32, handler: @escaping Handler) {
        fd = listeningFD
        self.handler = handler
    }

    /// Starts the accept thread.
    public func start() {
        startThread(name: "miniappd-metrics") { [self] in serve() }
    }

    /// Stops accepting and closes the socket.
    public func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func serve() {
        while !stopped.load(ordering: .sequentiallyConsistent) {
            let accepted: OwnedFD?
            do { accepted = try UnixSocket.accept(fd) } catch { return }  // listener closed by stop()
            guard let conn = accepted else { continue }  // the peer gave up before we accepted
            let c = conn.take()
            try? UnixSocket.setNonBlocking(c, false)  // SO_RCVTIMEO bounds the blocking read
            respond(c)
            close(c)
        }
    }

    private func respond(_ c: Int32) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var req: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while req.count < 8192, !req.containsHeaderEnd {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { return }
            req.append(contentsOf: chunk[0..<n])
        }
        let line = String(decoding: req.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self).split(separator: " ")
        let (status, type, body): (Int, String, [UInt8])
        if line.count < 2 {
            (status, type, body) = (400, "text/plain", Array("bad request\n".utf8))
        } else if line[0] != "GET" {
            (status, type, body) = (405, "text/plain", Array("only GET\n".utf8))
        } else if let r = handler(String(line[1])) {
            (status, type, body) = r
        } else {
            (status, type, body) = (404, "text/plain", Array("not found\n".utf8))
        }
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"][status] ?? "Error"
        var out = Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        out.append(contentsOf: body)
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { send(c, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
}

extension [UInt8] {
    fileprivate var containsHeaderEnd: Bool {
        guard count >= 4 else { return false }
        for i in 0...(count - 4) where self[i] == 0x0D && self[i + 1] == 0x0A && self[i + 2] == 0x0D && self[i + 3] == 0x0A {
            return true
        }
        return false
    }
}
