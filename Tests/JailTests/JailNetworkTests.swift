import Foundation
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Testing

/// Network isolation and Landlock, each shown on its own: Landlock's TCP rule refuses every TCP
/// connect before the network namespace matters, so the namespace is checked with UDP, abstract
/// unix sockets, namespace identities and a policy without Landlock; and Landlock is checked with
/// what only it refuses, against the same policy without it as the control.
@Suite("network namespace and Landlock (privileged mode)")
struct JailNetworkTests {
    /// A started worker whose output lines are collected; `ready` waits for a line.
    final class Running: Sendable {
        let worker: JailedWorker
        let lines: Locked<[String]>
        /// Host path of the worker's /data: the test signals the probe by creating `go` there.
        let dataDir: String
        init(worker: JailedWorker, lines: Locked<[String]>, dataDir: String) { self.worker = worker; self.lines = lines; self.dataDir = dataDir }

        /// Waits (by the clock: the task may be starved on a loaded machine) for a line.
        func waitFor(_ prefix: String, seconds: Double = 20) async throws -> String? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let l = lines.withLock({ $0.first { $0.hasPrefix(prefix) } }) { return l }
                try await Task.sleep(for: .milliseconds(10))
            }
            return nil
        }

        /// Tells the probe to go on (it polls /data/go).
        func go() { _ = FileManager.default.createFile(atPath: "\(dataDir)/go", contents: Data()) }
    }

    static func start(_ args: [String], programId: String) async throws -> Running {
        let jailer = try #require(JailHarness.jailer)
        try #require(JailHarness.probeBuilt)
        let lines = Locked<[String]>([])
        var l = JailLaunch(programId: programId, argv: ["/app/probe"] + args)
        l.appDir = "\(JailHarness.base)/app"
        let data = JailHarness.newDataDir(programId)
        l.dataDir = data
        l.output = { line in lines.withLock { $0.append(line.text) } }
        return Running(worker: try jailer.spawn(l), lines: lines, dataDir: data)
    }

    static func hostNetns() -> String {
        var buf = [CChar](repeating: 0, count: 128)
        let n = readlink("/proc/self/ns/net", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }

    /// A TCP listener on the host's 127.0.0.1; returns (fd, port).
    static func hostListener() -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = listen(fd, 4)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, UInt16(bigEndian: addr.sin_port))
    }

    @Test("two live workers and the host are in three different network namespaces")
    func namespaceIdentities() async throws {
        let a = try await Self.start(["netns", "120"], programId: "test.net-a") // alive until killed: no recycled inode
        let lineA = try await a.waitFor("NETNS")
        let (_, linesB) = try await JailHarness.runWorker(["netns", "0"], programId: "test.net-b")
        let nsA = try #require(lineA).dropFirst(6), nsB = try #require(linesB.first).dropFirst(6)
        let host = Self.hostNetns()
        #expect(nsA.hasPrefix("net:[") && nsB.hasPrefix("net:[") && host.hasPrefix("net:["), "\(nsA) \(nsB) \(host)")
        #expect(nsA != nsB && nsA != host && nsB != host, "A \(nsA), B \(nsB), host \(host)")
        a.worker.kill()
        _ = await a.worker.exit
    }

    /// UDP is not touched by Landlock (it handles TCP only), and B's datagram to itself shows UDP
    /// works inside a jail: nothing from A arriving is the network namespace's doing.
    @Test("a UDP datagram from worker A never reaches worker B's listener on 127.0.0.1")
    func udpBetweenWorkers() async throws {
        let port = 20000 + Int(getpid() % 20000)
        let b = try await Self.start(["udp_listen", "\(port)"], programId: "test.udp-b")
        #expect(try await b.waitFor("READY") != nil, "\(b.lines.withLock { $0 })")
        let (_, sent) = try await JailHarness.runWorker(["udp_send", "\(port)"], programId: "test.udp-a")
        #expect(sent.first?.hasPrefix("SENT 20") == true, "\(sent)")
        b.go() // B now looks at what is queued on its socket
        let exit = await b.worker.exit
        let lines = b.lines.withLock { $0 }
        #expect(lines.last?.hasPrefix("DENIED udp_listen") == true, "\(lines)")
        #expect(exit.status == 0)
    }

    /// Abstract unix names live in the network namespace: B looking up A's name finds nothing
    /// (ECONNREFUSED; Landlock's scoping would answer EPERM, and only after the lookup).
    @Test("worker B cannot connect to worker A's abstract unix socket")
    func abstractSocketBetweenWorkers() async throws {
        let name = "miniapp-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let a = try await Self.start(["abstract_listen", name], programId: "test.abs-a")
        #expect(try await a.waitFor("READY") != nil, "\(a.lines.withLock { $0 })")
        let (exit, lines) = try await JailHarness.runWorker(["abstract_connect", name], programId: "test.abs-b")
        #expect(lines.first?.hasPrefix("DENIED abstract_connect") == true, "\(lines)")
        #expect(exit.status == 0)
        a.go()
        #expect(await a.worker.exit.status == 0, "A was not listening the whole time: \(a.lines.withLock { $0 })")
    }

    /// Same listener, both layers apart: with Landlock the connect is refused with EACCES; with
    /// Landlock off (test policy) only the network namespace is left, and the jail's loopback has
    /// no listener on that port: ECONNREFUSED. Either errno other than the expected one fails.
    @Test("no TCP connection to the host's loopback: Landlock refuses it, and the namespace alone does too",
          arguments: [(true, EACCES), (false, ECONNREFUSED)])
    func connectToHostLoopback(_ landlock: Bool, _ want: Int32) async throws {
        let (fd, port) = Self.hostListener()
        defer { close(fd) }
        let jailer = landlock ? JailHarness.jailer : JailHarness.noLandlockJailer
        let (exit, lines) = try await JailHarness.runWorker(["connect_host", "\(port)", "\(want)"], jailer: jailer)
        #expect(lines.first?.hasPrefix("DENIED connect_host") == true, "landlock \(landlock): \(lines)")
        #expect(exit.status == 0)
    }

    /// The control of the Landlock-only attacks in `Attacks.other`: with Landlock off they
    /// succeed, so those attack tests fail if Landlock is not applied.
    @Test("without Landlock the Landlock-only attacks succeed", arguments: ["tcp_bind", "proc_comm_write"])
    func landlockOnlyControls(_ attack: String) async throws {
        let (_, lines) = try await JailHarness.runWorker([attack], jailer: JailHarness.noLandlockJailer)
        #expect(lines.first?.hasPrefix("ESCAPED \(attack)") == true, "\(lines)")
    }
}
