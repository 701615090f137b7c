import Foundation
import Glibc
import MiniAppTestSupport
import MiniAppDaemon
import MiniAppSystem
import Testing

@Suite struct MetricsTests {
    /// Scrapes the real endpoint with curl, as Prometheus would.
    @Test func exposesPrometheusTextOverLoopbackHTTP() throws {
        let metrics = DaemonMetrics()
        metrics.counter("miniappd_bridge_calls_total", [("method", "storage.get"), ("decision", "allow")]).increment(by: 3)
        metrics.gauge("miniappd_workers", [("state", "running")]).record(2)
        let fd = try ListeningSocket.listen(.tcp(host: "127.0.0.1", port: 0))
        let port = try #require(ListeningSocket.boundPort(fd))
        let server = TinyHTTPServer(listeningFD: fd) { path in
            path == "/metrics" ? (200, "text/plain; version=0.0.4", metrics.exposition()) : nil
        }
        server.start()
        defer { server.stop() }
        let body = try curl("http://127.0.0.1:\(port)/metrics")
        #expect(body.contains("miniappd_bridge_calls_total{method=\"storage.get\",decision=\"allow\"} 3"))
        #expect(body.contains("miniappd_workers{state=\"running\"} 2"))
        #expect(try curl("-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/nope") == "404")
        #expect(try curl("-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/metrics") == "405")
    }

    /// Connections that send nothing, or half a request, or trickle a byte at a time, neither
    /// block a scrape from someone else nor stay past the whole-request deadline.
    @Test func slowConnectionsDoNotBlockScrapes() throws {
        let fd = try ListeningSocket.listen(.tcp(host: "127.0.0.1", port: 0))
        let port = try #require(ListeningSocket.boundPort(fd))
        let server = TinyHTTPServer(listeningFD: fd) { path in path == "/metrics" ? (200, "text/plain", Array("up 1\n".utf8)) : nil }
        server.start()
        defer { server.stop() }
        var slow: [Int32] = []
        defer { for s in slow { close(s) } }
        for i in 0..<5 {
            let s = try Self.connect(port)
            if i == 0 { _ = send(s, "GET /met", 8, 0) }
            slow.append(s)
        }
        let started = Date()
        // Five stalled peers held the old one-at-a-time loop 2 s each: 10 s, past curl's 5.
        #expect(try curl("--max-time", "5", "http://127.0.0.1:\(port)/metrics") == "up 1\n")
        // A trickling peer is cut off at the deadline (2 s), not kept for as long as it trickles.
        let trickle = try Self.connect(port)
        defer { close(trickle) }
        var closedAfter: Double?
        for _ in 0..<40 {
            _ = send(trickle, "G", 1, Int32(MSG_NOSIGNAL))
            usleep(200_000)
            var b: UInt8 = 0
            if recv(trickle, &b, 1, Int32(MSG_DONTWAIT)) == 0 {
                closedAfter = Date().timeIntervalSince(started)
                break
            }
        }
        #expect(closedAfter != nil, "the trickling connection was never closed")
    }

    static func connect(_ port: UInt16) throws -> Int32 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(port.bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw HarnessError("connect: errno \(errno)") }
        return s
    }

    @Test(arguments: [
        ("unix:/run/x.sock", ListenAddress.unix(path: "/run/x.sock")), ("/run/y", .unix(path: "/run/y")),
        ("127.0.0.1:9464", .tcp(host: "127.0.0.1", port: 9464)), ("localhost:1", .tcp(host: "127.0.0.1", port: 1)),
    ])
    func parsesListenAddresses(_ text: String, _ expected: ListenAddress) {
        #expect(ListenAddress.parse(text) == expected)
    }

    @Test func refusesGarbageAddresses() {
        #expect(ListenAddress.parse("nonsense") == nil)
        #expect(ListenAddress.parse("1.2.3.4:99999") == nil)
    }

    func curl(_ args: String...) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "--max-time", "5"] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

@Suite struct ListeningSocketTests {
    /// A second daemon must not take a live daemon's socket; a stale file left by a crash is replaced.
    @Test func liveSocketIsNotStolenStaleOneIsReplaced() throws {
        let dir = NSTemporaryDirectory() + "ls-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/s.sock"
        let first = try ListeningSocket.listen(.unix(path: path))
        #expect(throws: SystemError("bind", errno: EADDRINUSE, detail: path)) { try ListeningSocket.listen(.unix(path: path)) }
        close(first)  // the file stays behind, as after kill -9
        #expect(FileManager.default.fileExists(atPath: path))
        let second = try ListeningSocket.listen(.unix(path: path))
        close(second)
        _ = FileManager.default.createFile(atPath: dir + "/plain", contents: Data())
        #expect(throws: SystemError.self) { try ListeningSocket.listen(.unix(path: dir + "/plain")) }
    }

    /// The socket gets its mode without touching the process umask (process-wide: other threads
    /// creating files meanwhile would get the socket's mode), and leaves no staging directory.
    @Test func modeIsSetWithoutTheUmask() throws {
        let dir = NSTemporaryDirectory() + "lm-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = umask(0o022); umask(before)
        let fd = try UnixSocket.listen(path: dir + "/c.sock", mode: 0o660)
        let after = umask(0o022); umask(after)
        #expect(before == after)
        var st = stat()
        #expect(stat(dir + "/c.sock", &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK && (st.st_mode & 0o777) == 0o660)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["c.sock"])
        _ = fd
    }

    /// A client that waits for the socket file and connects at once is never refused: the socket
    /// listens before its path appears (it was renamed into place before listen() once, and the
    /// daemon benchmark's host got ECONNREFUSED).
    @Test func pathAppearsOnlyOnceListening() throws {
        let dir = NSTemporaryDirectory() + "lr-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<100 {
            let path = dir + "/r\(i).sock"
            let refused = CrossThreadFlag()
            let watcher = Thread {
                while access(path, F_OK) != 0 { sched_yield() }
                do { close(try UnixSocket.connect(path: path).take()) } catch { refused.set() }
            }
            watcher.start()
            let fd = try UnixSocket.listen(path: path)
            while !watcher.isFinished { usleep(50) }
            #expect(!refused.value, "connect to \(path) was refused right after it appeared")
            _ = fd
        }
    }
}

/// A flag set by one thread and read by another.
final class CrossThreadFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.withLock { flag = true } }
    var value: Bool { lock.withLock { flag } }
}
