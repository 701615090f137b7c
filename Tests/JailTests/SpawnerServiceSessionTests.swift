import CJail
import Foundation
@testable import MiniAppJail
import MiniAppModel
@testable import MiniAppSystem
import Testing

/// A spawner service (`miniappd-spawner --listen`) as a compromised daemon would use it: the
/// client here connects as the served uid (its effective uid, which SO_PEERCRED reports) and
/// tries to get past the end of its connection.
@Suite("spawner service sessions (root)", .serialized)
struct SpawnerServiceSessionTests {
    static let served: UInt32 = 60999

    /// Connects to `path` with the served uid as effective uid (the kernel records it at
    /// connect), and root again right after (glibc's seteuid switches every thread of the test
    /// process for that moment: the suite runs serialized, as the whole run does); retried while the service still serves the last
    /// connection (one at a time: it closes others unread). The socket, or nil.
    static func connectAsServed(_ path: String) -> Int32? {
        for _ in 0..<100 {
            guard seteuid(served) == 0 else { return nil }
            let fd = cjail_spawner_connect(path)
            precondition(seteuid(0) == 0, "back to root")
            // Admitted: a signal to pid 0 is refused by the rule (EPERM), not by a closed socket.
            if fd >= 0 && SpawnerProcess.control(fd, kind: CJAIL_CTL_SIGNAL, pid: 0, sig: 0) == -EPERM { return fd }
            if fd >= 0 { close(fd) }
            usleep(50_000)
        }
        return nil
    }

    @Test("the end of a connection locks the template set: a reconnecting client adds no template, and finds the one it had")
    func endOfConnectionLocks() throws {
        guard geteuid() == 0 else { return }
        let base = "\(JailHarness.base)/spawner-service"
        for d in ["pkgs", "data", "sock"] { try FileManager.default.createDirectory(atPath: "\(base)/\(d)", withIntermediateDirectories: true) }
        chmod("\(base)/sock", 0o755)
        let path = "\(base)/sock/spawner.sock"
        let service = Process()
        service.executableURL = URL(fileURLWithPath: SpawnerProcess.executablePath())
        service.arguments = ["--listen", path, "--uid", "\(Self.served):\(Self.served)"]
        try service.run()
        defer {
            kill(service.processIdentifier, SIGKILL)
            service.waitUntilExit()
        }
        let jailer = try Jailer(configuration: try JailHarness.configuration(), stateDir: "\(base)/state", mode: .privileged,
                                spawner: SpawnerSlot(), appRoot: "\(base)/pkgs", dataRoot: "\(base)/data")
        let template = jailer.template(binds: [], limits: jailer.configuration.policy.limits)
        let wider = jailer.template(binds: [JailBind(hostPath: "/", jailPath: "/host")], limits: jailer.configuration.policy.limits)

        let first = try #require(Self.connectAsServed(path))
        #expect(template.register(id: 1, on: first) == 0, "a first connection registers (and did not lock)")
        close(first)
        let second = try #require(Self.connectAsServed(path), "the next connection is admitted once the first ended")
        defer { close(second) }
        #expect(wider.register(id: 2, on: second) == -EPERM, "no template after a connection ended: a bind of / is refused")
        #expect(template.register(id: 1, on: second) == -EPERM, "nor the same one again")
        #expect(SpawnerProcess.control(second, kind: CJAIL_CTL_CHOWN_DATA, template: 2, name: "x", uid: 2130706432) == -EPERM, "template 2 does not exist")
        #expect(SpawnerProcess.control(second, kind: CJAIL_CTL_CHOWN_DATA, template: 1, name: "x", uid: 2130706432) == -ENOENT,
                "template 1 does: only the directory is missing")
        #expect(service.isRunning)
    }
}
