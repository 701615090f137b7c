import Foundation
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Testing

@Suite("cgroup v2 through its file interface (fake tree), uid allocation")
struct JailSystemTests {
    /// A directory laid out like a delegated cgroup v2 subtree.
    static func fakeV2() -> String {
        let root = "\(JailHarness.base)/fake-v2-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: "\(root)/cgroup.controllers", contents: Data("cpuset cpu io memory pids\n".utf8))
        _ = FileManager.default.createFile(atPath: "\(root)/cgroup.subtree_control", contents: Data())
        return root
    }

    static func read(_ p: String) -> String { (try? String(contentsOfFile: p, encoding: .utf8)) ?? "" }
    static func write(_ p: String, _ s: String) { _ = FileManager.default.createFile(atPath: p, contents: Data(s.utf8)) }

    @Test("auto-selection picks v2 when it has memory and pids")
    func selectsV2() throws {
        let root = Self.fakeV2()
        var c = JailPolicy.Cgroup()
        c.v2Root = root
        c.v1Root = "/nonexistent"
        guard case .v2(let dir) = try CgroupDriver.select(c) else { Issue.record("not v2"); return }
        #expect(dir.hasPrefix(root) && dir.hasSuffix("/miniapp"))
    }

    @Test("limits, freeze, thaw, kill and events use the v2 files")
    func v2Files() throws {
        let parent = Self.fakeV2() + "/miniapp"
        let driver = CgroupDriver.v2(root: parent)
        // Pre-create the files the kernel would provide.
        let dir = "\(parent)/w1"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        Self.write("\(parent)/cgroup.subtree_control", "")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["memory.max", "memory.swap.max", "pids.max", "cpu.max", "cgroup.procs", "cgroup.freeze", "cgroup.kill"] { Self.write("\(dir)/\(f)", "") }
        Self.write("\(dir)/cgroup.events", "populated 1\nfrozen 1\n")
        Self.write("\(dir)/memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
        Self.write("\(dir)/pids.events", "max 5\n")
        Self.write("\(dir)/memory.current", "123456\n")
        Self.write("\(dir)/cpu.stat", "usage_usec 777\nuser_usec 700\n")
        guard let cg = try driver.create(name: "w1", limits: CgroupLimits(memoryBytes: 64 << 20, pids: 32, cpuPercent: 50)) else {
            Issue.record("no cgroup"); return
        }
        #expect(Self.read("\(dir)/memory.max") == "\(64 << 20)")
        #expect(Self.read("\(dir)/memory.swap.max") == "0")
        #expect(Self.read("\(dir)/pids.max") == "32")
        #expect(Self.read("\(dir)/cpu.max") == "50000 100000")
        #expect(Self.read("\(parent)/cgroup.subtree_control") == "+memory +pids +cpu")
        let procs = try cg.openProcs() // the spawner writes the worker's pid into these
        #expect(procs.count == 1)
        #expect(pwrite(procs[0], "4242", 4, 0) == 4)
        for fd in procs { close(fd) }
        #expect(Self.read("\(dir)/cgroup.procs") == "4242")
        // (The fake files are regular: values of the same length, as writes do not truncate.)
        try cg.setLimits(CgroupLimits(memoryBytes: 96 << 20, pids: 99, cpuPercent: 75))
        #expect(Self.read("\(dir)/pids.max") == "99" && Self.read("\(dir)/cpu.max") == "75000 100000")
        let moved = try cg.renamed(to: "w2")
        #expect(moved.location == "\(parent)/w2" && FileManager.default.fileExists(atPath: "\(parent)/w2/pids.max"))
        try FileManager.default.moveItem(atPath: "\(parent)/w2", toPath: dir) // the tree's other checks use w1
        try cg.freeze()
        #expect(Self.read("\(dir)/cgroup.freeze") == "1")
        try cg.thaw()
        #expect(Self.read("\(dir)/cgroup.freeze") == "0")
        #expect(cg.events() == { var e = CgroupEvents(); e.oomKills = 2; e.pidsMaxHits = 5; return e }())
        #expect(cg.stats() == JailStats(memoryBytes: 123456, cpuMicros: 777))
        cg.killAll()
        #expect(Self.read("\(dir)/cgroup.kill") == "1")
    }

    @Test("v1 is chosen on this machine and its real controllers work")
    func v1Real() throws {
        let driver = try CgroupDriver.select(JailPolicy.Cgroup())
        guard case .v1 = driver else { return } // a v2 host: covered by the fake-tree test
        guard let cg = try driver.create(name: "t-\(getpid())", limits: CgroupLimits(memoryBytes: 32 << 20, pids: 8, cpuPercent: 10)) else { return }
        defer { cg.destroy() }
        try cg.freeze()
        try cg.thaw()
        #expect(cg.events() == CgroupEvents())
    }

    @Test("uids are unique per program and persist across restarts")
    func uids() throws {
        let dir = "\(JailHarness.base)/uidstate-\(UUID().uuidString.prefix(8))"
        let a = try UidAllocator(stateDir: dir, rangeStart: 300_000, rangeCount: 3)
        let u1 = try a.uid(for: "com.a"), u2 = try a.uid(for: "com.b")
        #expect(u1 != u2 && (300_000..<300_003).contains(u1) && (300_000..<300_003).contains(u2))
        let again = try UidAllocator(stateDir: dir, rangeStart: 300_000, rangeCount: 3)
        #expect(try again.uid(for: "com.b") == u2)
        _ = try again.uid(for: "com.c")
        #expect(throws: MiniAppError.self) { try again.uid(for: "com.d") }
    }
}

/// Rootless mode: the spawner runs as nobody (setpriv) through `miniapp jail --rootless`, with a
/// cgroup subtree delegated to it the way systemd's Delegate=yes would.
@Suite("rootless mode (spawner is uid 65534)", .serialized)
struct JailRootlessTests {
    static let miniapp = "\(JailHarness.packageRoot)/.build/debug/miniapp"
    static let delegated = "miniapp-rootless-test" // reused across runs: nothing accumulates

    /// Delegates <controller>/<own cgroup>/<delegated> to uid 65534 (v1 here).
    static let cgroupReady: Bool = {
        guard case .v1 = (try? CgroupDriver.select(JailPolicy.Cgroup())) ?? .none else { return false }
        let own = CgroupFiles.ownCgroups()
        for c in ["memory", "pids", "cpu", "cpuacct", "freezer"] {
            let d = "/sys/fs/cgroup/\(c)/\((own[c] ?? "/").dropFirst())/\(delegated)".replacingOccurrences(of: "//", with: "/")
            try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            for f in ["", "/cgroup.procs", "/tasks"] { _ = chown(d + f, 65534, 65534) }
        }
        return true
    }()

    static func jail(_ args: [String], extra: [String] = []) -> (Int32, String) {
        _ = JailHarness.probeBuilt
        let state = "\(JailHarness.base)/rootless-state"
        try? FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = chown(state, 65534, 65534)
        let cg = cgroupReady ? ["--cgroup-parent", delegated] : ["--cgroup", "none"]
        return JailHarness.capture("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", miniapp, "jail", "--rootless",
            "--policy-dir", JailHarness.policyDir, "--state-dir", state, "--app", "\(JailHarness.base)/app"] + cg + extra + ["--"] + args)
    }

    @Test("runs as the mapped uid with no capabilities")
    func identity() {
        let (rc, out) = Self.jail(["/bin/sh", "-c", "id -u; cat /proc/self/uid_map"])
        #expect(rc == 0, "\(out)")
        #expect(out.contains("1000\n") && out.contains("65534"), "\(out)")
    }

    @Test("attack is denied", arguments: [
        "ptrace", "mount", "unshare_user", "clone_newuser", "clone3_enosys", "tiocsti_highbits", "x32_abi", "i386_abi",
        "read_shadow", "write_usr", "write_app", "host_processes", "interfaces", "caps_eff", "caps_bnd", "no_new_privs",
        "fds", "setuid0", "mknod", "suid_binary", "setns", "bpf", "io_uring_setup", "keyctl",
    ])
    func attack(_ a: String) {
        let (rc, out) = Self.jail(["/app/probe", a])
        #expect(rc == 0 && out.hasPrefix("DENIED \(a)"), "\(out)")
    }

    @Test("a fork bomb is stopped by the delegated pids limit")
    func forkBomb() throws {
        guard Self.cgroupReady else { return }
        let (rc, out) = Self.jail(["/app/probe", "forkbomb"], extra: ["--pids", "16", "--timeout", "20"])
        #expect(rc == 128 + SIGKILL, "\(out)")
        #expect(out.contains("killedLimit(MiniAppJail.JailLimitKind.pids)") || out.contains("pids"), "\(out)")
    }
}
