import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// The spawner as a service of its own (systemd/miniappd-spawner.service): a real
/// `miniappd-spawner --listen` process, and real daemons that connect to it
/// (`--spawner-socket`) instead of starting one, dropped to the harness's user.
@Suite("spawner service (root)", .serialized)
struct SpawnerServiceTests {
    /// A running `miniappd-spawner --listen PATH --uid UID:GID`.
    final class Service {
        let process = Process()
        let dir: TempDir
        let socket: String
        let log: String

        init(serving user: String = DaemonHarness.dropUser ?? "60999:60999") throws {
            dir = try TempDir("sp")
            socket = dir.file("spawner.sock")
            log = dir.file("spawner.log")
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: productsDirectory() + "/miniappd-spawner")
            process.arguments = ["--listen", socket, "--uid", user]
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try process.run()
            guard E2EProbe.eventually({ FileSystem.exists(self.socket) }) else { throw HarnessError("the spawner service did not listen") }
        }

        var pid: Int32 { process.processIdentifier }
        var alive: Bool { process.isRunning }
        /// Its live children: workers' PID 1 and warm jails (they name themselves miniapp-init).
        var children: [Int32] { E2EProbe.children(of: pid, named: "miniapp-init") }
        func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        deinit {
            if process.isRunning { Processes.signal(pid, Signal.kill) }
            process.waitUntilExit()
        }
    }

    /// A program that exits with the status given as its first argument, or stays (`stay`;
    /// SIGTERM ends it with 0, unless also `ignore-term`).
    static let program = """
        MiniAppBridge.keepAlive(true);
        const args = process.argv.slice(2);
        process.on('SIGTERM', () => { if (!args.includes('ignore-term')) process.exit(0); });
        MiniAppBridge.call('ui.toast', { message: JSON.stringify({ kind: 'ready', args }) }).then(() => {
          if (args[0] !== 'stay') process.exit(Number(args[0]));
        });
        """

    /// A world with one package of `program` under the e2e partner: (world, program id, zip).
    static func world(_ name: String, _ program: String) throws -> (E2EWorld, String, String) {
        let world = try E2EWorld()
        let id = E2EPartner.programId(name)
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": program])
        return (world, id, zip)
    }

    /// The host provider of `ui.toast` on `daemon`, with `zip` installed when given.
    static func host(_ daemon: DaemonHarness, installing zip: String? = nil) throws -> E2EHost {
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        if let zip { try host.call("packages.install", ["path": .string(zip)]) }
        return host
    }

    /// Connects to `path` as this process (root) and reports whether the peer closed the
    /// connection without a word (SOCK_SEQPACKET: a read of 0).
    static func closedUnread(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &a.sun_path) { b in for (i, c) in path.utf8.enumerated() where i < b.count - 1 { b[i] = c } }
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { Issue.record("connect: errno \(errno)"); return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 5000) == 1 else { Issue.record("no answer"); return false }
        var b: UInt8 = 0
        return recv(fd, &b, 1, 0) == 0
    }

    @Test("a connection from another uid is closed unread (SO_PEERCRED, also past the socket file's mode), and a daemon of another uid does not start")
    func wrongUidRefused() throws {
        guard geteuid() == 0, DaemonHarness.dropUser != nil else { return }
        let service = try Service()
        let mode = try FileSystem.status(service.socket)
        #expect(mode.permissions == 0o600 && mode.owner == 60999, "only the daemon's user may connect")
        let world = try E2EWorld()
        let other = Result { try DaemonHarness(policyDir: world.policyDir, extraArgs: ["--spawner-socket", service.socket], user: "60998:60998") }
        guard case .failure(let denied) = other else { Issue.record("uid 60998 reached a spawner serving 60999"); return }
        #expect("\(denied)".contains("Permission denied"), "the socket file's mode is the first fence: \(denied)")
        // Past the file's mode (root, or a mode an operator widened): the uid check still closes it.
        #expect(Self.closedUnread(service.socket), "root is not the uid it serves")
        try FileSystem.setPermissions(service.socket, 0o666)
        let started = Result { try DaemonHarness(policyDir: world.policyDir, extraArgs: ["--spawner-socket", service.socket], user: "60998:60998") }
        guard case .failure(let e) = started else { Issue.record("a daemon of uid 60998 started against a spawner serving 60999"); return }
        #expect("\(e)".contains("closed our connection"), "\(e)")
        #expect(service.logText().components(separatedBy: "refused a connection").count - 1 == 2, "\(service.logText())")
        #expect(service.alive, "the spawner keeps serving")
    }

    @Test("a dropped daemon runs workers through the spawner service, which is their parent and reports their exits")
    func droppedDaemonUsesService() throws {
        guard geteuid() == 0, let user = DaemonHarness.dropUser else { return }
        let uid = user.split(separator: ":")[0]
        let service = try Service()
        let (world, id, zip) = try Self.world("svc", Self.program)
        let daemon = try world.daemon(["--spawner-socket", service.socket])
        defer { daemon.stop() }
        let s = PrivilegeSeparationTests.status("/proc/\(daemon.pid)/status")
        #expect(s["Uid"]?.hasPrefix("\(uid)\t") == true && s["CapEff"] == PrivilegeSeparationTests.zero && s["NoNewPrivs"] == "1")
        #expect(E2EProbe.children(of: daemon.pid, named: "miniappd-spawn").isEmpty, "no spawner of its own")
        #expect(E2EProbe.children(of: daemon.pid, named: "miniapp-init").isEmpty)
        let host = try Self.host(daemon, installing: zip)

        // An exit status of the program's own, through the spawner's exit record.
        let first = try host.call("programs.launch", ["id": .string(id), "args": ["7"]])
        let wid = try #require(first["workerId"]?.stringValue)
        let exited = try host.exited(wid)
        #expect(exited["status"] == 7 && exited["reason"] == "exit", "\(exited)")

        // A worker that stays: the spawner's child, stopped with SIGTERM, then one with SIGKILL.
        let stay = try host.call("programs.launch", ["id": .string(id), "args": ["stay"]])
        let swid = try #require(stay["workerId"]?.stringValue)
        #expect(try host.report(from: id, number: 2)["args"] == ["stay"])
        #expect(!service.children.isEmpty, "workers are the spawner's children")
        #expect(E2EProbe.children(of: daemon.pid, named: "miniapp-init").isEmpty, "and none is the daemon's")
        let stopped = try host.call("programs.stop", ["workerId": .string(swid), "graceMillis": 10_000])
        #expect(stopped["status"] == 0)
        #expect(try host.exited(swid)["reason"] == "stopped")
        let stubborn = try host.call("programs.launch", ["id": .string(id), "args": ["stay", "ignore-term"]])
        let kwid = try #require(stubborn["workerId"]?.stringValue)
        #expect(try host.report(from: id, number: 3)["args"] == ["stay", "ignore-term"])
        let killed = try host.call("programs.stop", ["workerId": .string(kwid), "graceMillis": 300])
        #expect(killed["status"] == 137)
        #expect(try host.exited(kwid)["signal"] == "SIGKILL", "PID 1's own status, reaped by the spawner")
    }

    @Test("a daemon killed -9: the spawner service kills its workers and stays; the restarted daemon launches again")
    func daemonCrashKillsItsWorkers() throws {
        guard geteuid() == 0, DaemonHarness.dropUser != nil else { return }
        let service = try Service()
        let (world, id, zip) = try Self.world("svccrash", Self.program)
        let first = try world.daemon(["--spawner-socket", service.socket])
        let state = first.dir.file("state")
        do {
            let host = try Self.host(first, installing: zip)
            try host.call("programs.launch", ["id": .string(id), "args": ["stay", "ignore-term"]])
            #expect(try host.report(from: id)["args"] == ["stay", "ignore-term"])
        }
        let workers = service.children
        #expect(!workers.isEmpty)
        first.crash()
        #expect(E2EProbe.eventually { workers.allSatisfy { kill($0, 0) != 0 } }, "every worker of the lost connection is gone")
        #expect(service.alive)

        // The same state directory, the same policy: the templates the spawner locked match.
        let second = try world.daemon(["--spawner-socket", service.socket], stateDir: state)
        defer { second.stop() }
        let host = try Self.host(second)
        let again = try host.call("programs.launch", ["id": .string(id), "args": ["3"]])
        let wid = try #require(again["workerId"]?.stringValue)
        #expect(try host.exited(wid)["status"] == 3)
    }
    /// What the units' tmpfiles snippet and `Delegate=yes` give the daemon's user before it
    /// starts: its state directory and the directories worker cgroups are made in (v1 here: one
    /// per hierarchy under this process's own cgroup, as the daemon computes them).
    static func delegate(to uid: UInt32, state: String) throws {
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        chown(state, uid, uid)
        chmod(state, 0o700)
        let own = CgroupFiles.ownCgroups()
        let bases = FileSystem.exists("/sys/fs/cgroup/memory")
            ? ["memory", "pids", "cpu", "cpuacct", "freezer"].map { "/sys/fs/cgroup/\($0)\(own[$0] ?? "")/miniapp" }
            : ["/sys/fs/cgroup\(own[""] ?? "")/miniapp"]
        for b in bases {
            try FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
            chown(b, uid, uid)
        }
    }

    @Test("started unprivileged (the systemd unit's shape): confined at once, connected to the service, runs workers")
    func unprivilegedStart() throws {
        guard geteuid() == 0, let user = DaemonHarness.dropUser, FileSystem.exists("/usr/bin/setpriv") else { return }
        let uid = UInt32(user.split(separator: ":")[0])!
        let service = try Service()
        let (world, id, zip) = try Self.world("svcunpriv", Self.program)
        let home = try TempDir("up")
        chown(home.path, uid, uid)
        try Self.delegate(to: uid, state: home.file("state"))
        // User=miniappd, CapabilityBoundingSet= (empty), no supplementary group: what systemd does.
        let wrapper = try home.write("miniappd", """
            #!/bin/sh
            exec /usr/bin/setpriv --reuid \(uid) --regid \(uid) --clear-groups --bounding-set=-all --inh-caps=-all \(productsDirectory())/miniappd "$@"
            """, mode: 0o755)
        let daemon = try DaemonHarness(policyDir: world.policyDir, extraArgs: ["--spawner-socket", service.socket], stateDir: home.file("state"),
                                       socketPath: home.file("control.sock"), binary: wrapper)
        defer { daemon.stop() }
        let s = PrivilegeSeparationTests.status("/proc/\(daemon.pid)/status")
        #expect(s["Uid"] == "\(uid)\t\(uid)\t\(uid)\t\(uid)")
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(s[cap] == PrivilegeSeparationTests.zero, "\(cap)") }
        #expect(s["NoNewPrivs"] == "1" && s["Seccomp"] == "2", "its own filter, from the start")
        #expect(daemon.logText().contains("running unprivileged as uid \(uid)"))
        let host = try Self.host(daemon)
        let info = try host.call("daemon.info")
        #expect(info["mode"] == "privileged", "privileged workers without a privileged daemon")
        try host.call("packages.install", ["path": .string(zip)])
        let w = try host.call("programs.launch", ["id": .string(id), "args": ["5"]])
        let wid = try #require(w["workerId"]?.stringValue)
        #expect(try host.exited(wid)["status"] == 5)
    }
    /// Reports its network namespace and interfaces, then exits 0.
    static let netProbe = """
        const fs = require('fs'), os = require('os');
        MiniAppBridge.call('ui.toast', { message: JSON.stringify({
          kind: 'net', ns: fs.readlinkSync('/proc/self/ns/net'), ifaces: Object.keys(os.networkInterfaces()).sort() }) })
          .then(() => process.exit(0));
        """

    @Test("cold launches of a dropped daemon take the spawner's pooled network namespaces: each fresh, only lo, never shared")
    func pooledNetworkNamespaces() throws {
        guard geteuid() == 0, DaemonHarness.dropUser != nil else { return }
        let service = try Service()
        let (world, id, zip) = try Self.world("svcnet", Self.netProbe)
        let config = try world.dir.write("cold.json", #"{"warmJails": false}"#)
        let daemon = try world.daemon(["--spawner-socket", service.socket, "--config", config], environment: ["MINIAPP_JAIL_TRACE": "1"])
        defer { daemon.stop() }
        let host = try Self.host(daemon, installing: zip)
        var seen: Set<String> = []
        let hostNS = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")) ?? ""
        for n in 1...4 {
            let w = try host.call("programs.launch", ["id": .string(id)])
            let report = try host.report(from: id, number: n)
            #expect(report["ifaces"] == ["lo"], "\(report)")
            let ns = report["ns"]?.stringValue ?? ""
            #expect(!ns.isEmpty && ns != hostNS && !seen.contains(ns), "launch \(n): a namespace of its own: \(ns)")
            seen.insert(ns)
            #expect(try host.exited(try #require(w["workerId"]?.stringValue))["status"] == 0)
        }
        // Joined (setns), not made in the clone: the daemon's own pool made two before its
        // drop, the spawner's pool the rest once the first launch without one had exec'd.
        let traces = { daemon.logText().split(separator: "\n").filter { $0.contains("jail-trace") } }
        #expect(E2EProbe.eventually(seconds: 20) { traces().count == 4 }, "each worker's trace is written once its cgroup is gone")
        #expect(traces().filter { $0.contains(" child.netns=") }.count >= 3, "\(traces())")
    }
}
