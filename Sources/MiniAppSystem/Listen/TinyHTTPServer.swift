import Glibc
import Synchronization

/// A deliberately tiny HTTP/1.1 server for `GET /metrics` (Prometheus scrapes): one request per
/// connection, `Connection: close`, bounded request size. Not a general web server: anything but
/// `GET` of a known path gets 404/405.
///
/// Slow peers: each connection is served on its own thread, at most `maxConnections` at once
/// (more are closed at accept), and the *whole* exchange — reading the request and writing the
/// answer — has one deadline (`requestDeadlineMillis`). A per-read timeout is not enough: a
/// peer sending one byte per second (slowloris) kept the old single-threaded loop for as long as
/// it liked, and any local user could block every scrape.
public final class TinyHTTPServer: Sendable {
    /// Handler: path → (status, content type, body); nil = 404.
    public typealias Handler = @Sendable (String) -> (Int, String, [UInt8])?

    private let fd: Int32
    private let handler: Handler
    private let stopped = Atomic<Bool>(false)
    private let active = Atomic<Int>(0)
    /// Connections served at once.
    public let maxConnections: Int
    /// Deadline of one whole exchange, in milliseconds.
    public let requestDeadlineMillis: Int

    /// Takes ownership of a listening socket.
    public init(listeningFD: Int32, maxConnections: Int = 8, requestDeadlineMillis: Int = 2000, handler: @escaping Handler) {
        fd = listeningFD
        self.maxConnections = maxConnections
        self.requestDeadlineMillis = requestDeadlineMillis
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
        try? UnixSocket.setNonBlocking(fd, false)  // the accept thread sleeps in accept(2)
        while !stopped.load(ordering: .sequentiallyConsistent) {
            let accepted: OwnedFD?
            do { accepted = try UnixSocket.accept(fd) } catch {
                if stopped.load(ordering: .sequentiallyConsistent) { return }  // listener closed by stop()
                usleep(100_000)  // EMFILE and the like: do not spin
                continue
            }
            guard let conn = accepted else { continue }  // the peer gave up before we accepted
            guard active.wrappingAdd(1, ordering: .relaxed).newValue <= maxConnections else {
                active.wrappingSubtract(1, ordering: .relaxed)
                continue  // dropped: closed now
            }
            let c = conn.take()
            let deadline = monotonicNanos() + UInt64(requestDeadlineMillis) * 1_000_000
            startThread(name: "miniappd-scrape") { [self] in
                respond(c, deadline: deadline)
                close(c)
                active.wrappingSubtract(1, ordering: .relaxed)
            }
        }
    }

    private func respond(_ c: Int32, deadline: UInt64) {
        var req: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while req.count < 8192, !req.containsHeaderEnd {
            guard Self.wait(c, Int16(POLLIN), until: deadline) else { return }
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { return }
            req.append(contentsOf: chunk[0..<n])
        }
        let (status, type, body) = answer(req)
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"][status] ?? "Error"
        var out = Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        out.append(contentsOf: body)
        var off = 0
        while off < out.count {
            guard Self.wait(c, Int16(POLLOUT), until: deadline) else { return }
            let n = out.withUnsafeBytes { send(c, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { return }
            off += n
        }
    }

    private func answer(_ req: [UInt8]) -> (Int, String, [UInt8]) {
        let line = String(decoding: req.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self).split(separator: " ")
        if line.count < 2 { return (400, "text/plain", Array("bad request\n".utf8)) }
        if line[0] != "GET" { return (405, "text/plain", Array("only GET\n".utf8)) }
        return handler(String(line[1])) ?? (404, "text/plain", Array("not found\n".utf8))
    }

    /// Polls `c` for `events` until `deadline` (monotonic ns); false once it has passed.
    private static func wait(_ c: Int32, _ events: Int16, until deadline: UInt64) -> Bool {
        while true {
            let now = monotonicNanos()
            guard now < deadline else { return false }
            var pfd = pollfd(fd: c, events: events, revents: 0)
            let r = poll(&pfd, 1, Int32(min((deadline - now) / 1_000_000 + 1, 60_000)))
            if r > 0 { return true }
            if r == 0 || errno != EINTR { return r > 0 }
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
