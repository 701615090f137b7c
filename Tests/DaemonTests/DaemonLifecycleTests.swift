import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// The daemon as systemd sees it. Real `miniappd` processes.
@Suite struct DaemonLifecycleTests {
    /// SIGTERM while a host has not read its answers for a while (its socket buffer is full,
    /// more is queued in the daemon): the daemon still delivers everything queued, then
    /// `program.exited {reason: daemon-shutdown}`, before it closes the connection.
    @Test func slowHostStillHearsTheShutdown() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("slowhost")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        try host.call("packages.install", ["path": .string(zip)])
        let wid = try #require(try host.call("programs.launch", ["id": .string(id)])["workerId"]?.stringValue)

        let slow = try SlowPeer(socket: daemon.socket)
        try slow.pipeline(requests: 20_000)  // ~4 MB of answers, far more than a socket buffer
        // The kernel holds only a few dozen KiB for an unread Unix stream socket; once that
        // much waits, the rest of the ~4 MB is queued inside the daemon.
        #expect(E2EProbe.eventually(seconds: 30) { slow.unreadBytes() >= 32 << 10 }, "the daemon never filled the buffer")

        kill(daemon.process.processIdentifier, SIGTERM)
        let lines = try slow.readUntilClosed(seconds: 60)
        let exits = lines.filter { $0["method"] == "program.exited" }.compactMap { $0["params"]?.objectValue }
        #expect(exits.count == 1, "\(lines.count) lines, none was program.exited; log:\n\(daemon.logText())")
        #expect(exits.first?["workerId"]?.stringValue == wid)
        #expect(exits.first?["reason"] == "daemon-shutdown")
        #expect(daemon.stop() == 0)
    }
}

/// A control peer that sends many requests and reads nothing until told to.
final class SlowPeer {
    private let fd: Int32

    init(socket: String) throws { fd = try UnixSocket.connect(path: socket).take() }

    deinit { close(fd) }

    /// Sends `requests` pipelined `daemon.info` calls (blocking until all are written).
    func pipeline(requests: Int) throws {
        var out: [UInt8] = []
        for i in 1...requests { out += Array("{\"jsonrpc\":\"2.0\",\"id\":\(i),\"method\":\"daemon.info\"}\n".utf8) }
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HarnessError("send: \(errno)") }
            off += n
        }
    }

    /// Bytes the kernel holds for us, unread (FIONREAD).
    func unreadBytes() -> Int {
        var n: Int32 = 0
        return ioctl(fd, UInt(FIONREAD), &n) == 0 ? Int(n) : 0
    }

    /// Reads every line until EOF; fails after `seconds`.
    func readUntilClosed(seconds: Double) throws -> [JSONObject] {
        let deadline = Date().addingTimeInterval(seconds)
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw HarnessError("the daemon did not close the connection in \(seconds)s") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(left * 1000)) > 0 else { continue }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { break }
            guard n > 0 else { throw HarnessError("recv: \(errno)") }
            data += chunk[0..<n]
        }
        return data.split(separator: 10).compactMap { try? JSONValue.parse(Array($0)).objectValue }
    }
}
