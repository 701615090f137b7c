import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// The daemon as systemd sees it: sd_notify messages, SIGHUP reloads, SIGTERM with slow
/// hosts, and what the socket-activated daemon's helpers inherit. Real `miniappd` processes.
@Suite struct DaemonLifecycleTests {
    /// READY=1 once serving, WATCHDOG=1 keep-alives (WATCHDOG_USEC set, no WATCHDOG_PID),
    /// RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM — to the NOTIFY_SOCKET.
    @Test func notifiesSystemd() throws {
        let world = try E2EWorld()
        let notify = try NotifySocket(in: world.dir)
        let daemon = try world.daemon(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"])
        defer { daemon.stop() }
        let ready = try notify.waitFor("READY=1")
        #expect(ready.contains("STATUS=serving"))
        try notify.waitFor("WATCHDOG=1")
        try notify.waitFor("WATCHDOG=1")
        kill(daemon.process.processIdentifier, SIGHUP)
        try notify.waitFor("RELOADING=1")
        try notify.waitFor("READY=1")
        kill(daemon.process.processIdentifier, SIGTERM)
        try notify.waitFor("STOPPING=1")
        #expect(daemon.stop() == 0)
        let order = notify.received.filter { !$0.hasPrefix("WATCHDOG=1") }.map { $0.split(separator: "\n")[0] }
        #expect(order == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], "\(notify.received)")
    }

    /// SIGHUP re-reads the policy directory: a permission added to the method catalogue (and
    /// granted to the partner) is accepted by installs from then on — before, UNKNOWN_PERMISSION.
    @Test func sighupReloadsThePolicies() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("contacts")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.sh", permissions: ["contacts"]), files: ["main.sh": E2EPrograms.blockOnBridge])
        let notify = try NotifySocket(in: world.dir)
        let daemon = try world.daemon(environment: ["NOTIFY_SOCKET": notify.path])
        defer { daemon.stop() }
        try notify.waitFor("READY=1")
        let host = try E2EHost(daemon)
        let before = try host.rawCall("packages.install", ["path": .string(zip)])
        #expect(before["error"]?["data"]?["reason"] == "UNKNOWN_PERMISSION", "\(before)")

        let methods = world.policyDir + "/methods.json"
        let text = try String(contentsOfFile: methods, encoding: .utf8)
        try text.replacingOccurrences(of: "\"permissions\": {", with: "\"permissions\": {\n    \"contacts\": \"read the address book\",")
            .write(toFile: methods, atomically: true, encoding: .utf8)
        let registration: JSONValue = [
            "id": .string(E2EPartner.id), "idPrefixes": ["com.e2e."], "publicKeys": [.string(try E2EPartner.key.publicPEM())],
            "permissions": .array((E2EPartner.grants + ["contacts"]).map { .string($0) }),
        ]
        try world.dir.write("policies/partners/com.e2e.json", String(decoding: registration.serialized(), as: UTF8.self))
        kill(daemon.process.processIdentifier, SIGHUP)
        try notify.waitFor("RELOADING=1")
        try notify.waitFor("READY=1")

        let after = try host.rawCall("packages.install", ["path": .string(zip)])
        #expect(after["result"]?["id"]?.stringValue == id, "\(after)")
        #expect(daemon.logText().contains("reload: policies re-read"))
    }

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

    /// The crash guard (a shell spawned at start, cgroup v1) must not inherit the control
    /// socket systemd passed at fd 3: it would keep it open for its whole life.
    @Test func crashGuardHoldsNoControlSocket() throws {
        let world = try E2EWorld()
        let daemon = try world.daemon(socketActivated: true)
        defer { daemon.stop() }
        let pid = daemon.process.processIdentifier
        guard let guardPid = Self.children(of: pid).first(where: { Self.cmdline($0).contains("miniappd-crash-guard") }) else {
            #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/freezer"), "cgroup v1 freezer but no crash guard")
            return
        }
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(guardPid)/fd")
        let targets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(guardPid)/fd/\($0)") }
        #expect(!targets.contains { $0.hasPrefix("socket:") }, "the guard holds \(targets)")
        #expect(try daemon.client().call("daemon.info")["version"] != nil)
    }

    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { tid in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/children", encoding: .utf8)) ?? "").split(separator: " ")
                .compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    static func cmdline(_ pid: Int32) -> String {
        (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self) } ?? "")
            .replacingOccurrences(of: "\0", with: " ")
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
