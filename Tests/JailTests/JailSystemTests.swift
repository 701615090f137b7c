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

    /// Kernels before 5.14 have no cgroup.kill: destroy must kill what cgroup.procs lists and
    /// keep retrying. The fake tree lists a real child of ours; it must die by SIGKILL.
    @Test("v2 destroy without cgroup.kill kills the listed processes")
    func v2DestroyWithoutKillFile() throws {
        let parent = Self.fakeV2() + "/miniapp"
        let dir = "\(parent)/w2"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["memory.max", "pids.max", "cpu.max", "cgroup.freeze"] { Self.write("\(dir)/\(f)", "") }
        let cg = try #require(try CgroupDriver.v2(root: parent).create(name: "w2", limits: CgroupLimits(memoryBytes: 64 << 20, pids: 8, cpuPercent: 0)))
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { for p in argv { free(p) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        Self.write("\(dir)/cgroup.procs", "\(pid)\n")
        cg.destroy()
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect((status & 0x7f) == SIGKILL, "status \(status)")
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

    /// Debian's useradd gives the first user 100000-165535 and the second 165536-231071: the old
    /// default range 200000+50000 overlapped the second.
    static let subuid = "alice:100000:65536\nbob:165536:65536\n"
    @Test("the uid range is checked against subuid/subgid/passwd/group", arguments: [
        (UInt64(200_000), UInt64(50_000), HostIDRanges.Source.Kind.subordinate, subuid, String?("bob:165536:65536")),
        (2_130_706_432, 50_000, .subordinate, subuid, nil),
        (2_130_706_432, 50_000, .subordinate, "# comment\n1001:2130756000:100\n", "1001:2130756000:100"),
        (2_130_706_432, 50_000, .passwd, "root:x:0:0::/root:/bin/sh\nsvc:x:2130706500:100::/:/bin/false\n", "svc:x:2130706500"),
        (2_130_706_432, 50_000, .passwd, "odd:x:1000:2130706433::/:/bin/sh\n", "odd:x:1000:2130706433"),
        (2_130_706_432, 50_000, .group, "g:x:2130756431:\n", "g:x:2130756431:"),
        (2_130_706_432, 50_000, .group, "g:x:2130756432:\n", nil),
    ])
    func hostIDOverlap(_ start: UInt64, _ count: UInt64, _ kind: HostIDRanges.Source.Kind, _ text: String, _ culprit: String?) {
        let hits = HostIDRanges.overlaps(start: start, count: count, sources: [.init(path: "/x", kind: kind, text: text)])
        if let culprit { #expect(hits.count == 1 && hits[0].contains(culprit), "\(hits)") } else { #expect(hits.isEmpty, "\(hits)") }
        #expect(HostIDRanges.overlaps(start: 60000, count: 10000, sources: []).count == 2) // 65534, 65535
    }

    @Test("a privileged jailer refuses a range a host subuid entry owns, naming the file and line")
    func jailerChecksSubuid() throws {
        let dir = "\(JailHarness.base)/hostids-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: "\(dir)/subuid", contents: Data("alice:100000:65536\neve:2130740000:65536\n".utf8))
        var files = HostIDFiles()
        files.subuid = "\(dir)/subuid"
        files.subgid = "\(dir)/absent"
        let config = try JailHarness.configuration()
        do {
            _ = try Jailer(configuration: config, stateDir: "\(dir)/state", mode: .privileged, hostIDFiles: files)
            Issue.record("accepted an overlapping range")
        } catch {
            #expect(error.code == .policyInvalid && error.data["field"] == "identity.uidRangeStart", "\(error)")
            #expect(error.message.contains("\(dir)/subuid line 2 (eve:2130740000:65536)"), "\(error)")
        }
        files.subuid = "\(dir)/absent"
        _ = try Jailer(configuration: config, stateDir: "\(dir)/state", mode: .privileged, hostIDFiles: files)
    }

    @Test("uids.json entries outside the configured range are refused, not silently reused")
    func uidTableOutsideRange() throws {
        let dir = "\(JailHarness.base)/uidstate-\(UUID().uuidString.prefix(8))"
        _ = try UidAllocator(stateDir: dir, rangeStart: 200_000, rangeCount: 10).uid(for: "com.old")
        do {
            _ = try UidAllocator(stateDir: dir, rangeStart: 2_130_706_432, rangeCount: 10)
            Issue.record("accepted a table with uid 200000")
        } catch {
            #expect(error.code == .policyInvalid && error.message.contains("com.old"), "\(error)")
        }
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

/// Rootless mode: the spawner runs as nobody (setpriv, no supplementary groups) through
/// `miniapp jail --rootless`, with a cgroup subtree delegated to it the way systemd's
/// Delegate=yes would. The same attacks, limits and isolation checks as in privileged mode.
@Suite("rootless mode (spawner is uid 65534)", .serialized)
struct JailRootlessTests {
    static let miniapp = "\(JailHarness.packageRoot)/.build/debug/miniapp"
    static let delegated = "miniapp-rootless-test" // reused across runs: nothing accumulates

    /// Delegates <own cgroup>/<delegated> to uid 65534: per controller on v1 (this machine), the
    /// directory and its cgroup.procs / cgroup.subtree_control on v2. False only when neither
    /// hierarchy is usable, which the limit tests then report as a failure.
    static let cgroupReady: Bool = {
        let own = CgroupFiles.ownCgroups()
        func delegate(_ d: String, _ files: [String]) -> Bool {
            try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            return ([""] + files).allSatisfy { chown(d + $0, 65534, 65534) == 0 }
        }
        switch (try? CgroupDriver.select(JailPolicy.Cgroup())) ?? .none {
        case .v1:
            return ["memory", "pids", "cpu", "cpuacct", "freezer"].allSatisfy { c in
                delegate("/sys/fs/cgroup/\(c)/\((own[c] ?? "/").dropFirst())/\(delegated)".replacingOccurrences(of: "//", with: "/"), ["/cgroup.procs", "/tasks"])
            }
        case .v2:
            return delegate("/sys/fs/cgroup/\((own[""] ?? "/").dropFirst())/\(delegated)".replacingOccurrences(of: "//", with: "/"),
                            ["/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"])
        case .none:
            return false
        }
    }()

    static func jail(_ args: [String], extra: [String] = []) -> (Int32, String) {
        _ = JailHarness.probeBuilt
        let state = "\(JailHarness.base)/rootless-state"
        try? FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = chown(state, 65534, 65534)
        _ = chmod(state, 0o700) // explicit: the process umask is not ours to trust (see JailHarness)
        let cg = cgroupReady ? ["--cgroup-parent", delegated] : ["--cgroup", "none"]
        return JailHarness.capture("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", miniapp, "jail", "--rootless",
            "--policy-dir", JailHarness.testPolicyDir ?? "/nonexistent", "--state-dir", state, "--app", "\(JailHarness.base)/app"] + cg + extra + ["--"] + args)
    }

    /// A data dir the rootless worker can use: in rootless mode it is not chowned (the daemon
    /// cannot), so it must already belong to the daemon's uid.
    static func dataDir(_ name: String) -> String {
        let d = JailHarness.newDataDir(name)
        _ = chown(d, 65534, 65534)
        return d
    }

    @Test("refuses to start when the daemon's user has supplementary groups (workers would keep them)")
    func supplementaryGroups() {
        let (rc, out) = JailHarness.capture("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--groups=100,65534", Self.miniapp, "jail", "--rootless",
            "--policy-dir", JailHarness.testPolicyDir ?? "/nonexistent", "--state-dir", "\(JailHarness.base)/rootless-state", "--cgroup", "none", "--", "/bin/true"])
        #expect(rc == 125 && out.hasPrefix("JAIL_UNAVAILABLE") && out.contains("supplementary groups 100"), "\(rc) \(out)")
    }

    @Test("runs as the mapped uid with no capabilities")
    func identity() {
        let (rc, out) = Self.jail(["/bin/sh", "-c", "id -u; cat /proc/self/uid_map"])
        #expect(rc == 0, "\(out)")
        #expect(out.contains("1000\n") && out.contains("65534"), "\(out)")
    }

    /// Every privileged-mode attack, none excluded: each one holds in rootless mode as well (the
    /// capability, seccomp, mount and Landlock layers are the same; "setuid0", "suid_binary" and
    /// "mknod" meet a user namespace where root is unmapped and no capability is left). What
    /// rootless mode lacks is the per-program host uid: all workers share the daemon's uid, so
    /// data isolation between them rests on the mount namespace (see "two workers" below).
    @Test("attack is denied", arguments: Attacks.all)
    func attack(_ a: String) {
        let (rc, out) = Self.jail(["/app/probe", a])
        #expect(rc == 0 && out.hasPrefix("DENIED \(a)"), "\(out)")
    }

    @Test("i386 ABI (int 0x80) is killed with SIGSYS", .enabled(if: JailHarness.hostHasIA32, "this kernel lacks IA32 emulation; SeccompFilterTests checks the filter's bad-arch action"))
    func i386() {
        let (rc, out) = Self.jail(["/app/probe", "i386_abi"])
        #expect(rc == 0 && out.hasPrefix("DENIED i386_abi"), "\(out)")
    }

    @Test("a fork bomb is stopped by the delegated pids limit and reported as such")
    func forkBomb() throws {
        try #require(Self.cgroupReady, "no cgroup subtree could be delegated to uid 65534: the rootless limits are untested")
        let (rc, out) = Self.jail(["/app/probe", "forkbomb"], extra: ["--pids", "16", "--timeout", "20"])
        #expect(rc == 128 + SIGKILL, "\(out)")
        #expect(out.contains("miniapp jail: limit:pids"), "\(out)")
    }

    @Test("a memory bomb is killed by the OOM killer in the delegated cgroup")
    func memoryBomb() throws {
        try #require(Self.cgroupReady, "no cgroup subtree could be delegated to uid 65534")
        let (rc, out) = Self.jail(["/app/probe", "membomb"], extra: ["--memory", "\(32 << 20)", "--timeout", "30"])
        #expect(rc == 128 + SIGKILL, "\(out)")
        #expect(out.contains("miniapp jail: oom"), "\(out)")
    }

    @Test("/tmp is bounded by its tmpfs size")
    func tmpFill() {
        let (rc, out) = Self.jail(["/app/probe", "tmpfill", "\(8 << 20)"])
        #expect(rc == 0 && out.hasPrefix("DENIED tmpfill"), "\(out)")
    }

    @Test("the CPU quota holds in the delegated cgroup: 20% of one CPU")
    func cpuQuota() throws {
        try #require(Self.cgroupReady, "no cgroup subtree could be delegated to uid 65534")
        let (rc, out) = Self.jail(["/app/probe", "cpuburn", "0.40"], extra: ["--cpu", "20"])
        #expect(rc == 0 && out.hasPrefix("DENIED cpuburn"), "\(out)")
    }

    /// A runs (writing its secret, then sleeping) while B tries to reach it. Both are the same
    /// host uid here, so this is the mount and pid namespaces' doing: A's data dir is not in B's
    /// tree, A's pid not in B's pid namespace, A's abstract socket not in B's network namespace.
    @Test("two rootless workers cannot read each other's data, see, signal or reach each other")
    func twoWorkers() async throws {
        let dataA = Self.dataDir("ra")
        let name = "miniapp-rl-\(getpid())"
        // A stays up until the test creates its /data/go (abstract_listen waits for it), so none
        // of B's checks can pass merely because A was already gone.
        let a = Task.detached {
            Self.jail(["/bin/sh", "-c", "/app/probe write-secret & /app/probe netns 120 & exec /app/probe abstract_listen \(name)"],
                      extra: ["--data", dataA, "--timeout", "120"])
        }
        let deadline = Date().addingTimeInterval(30)
        while access("\(dataA)/secret", F_OK) != 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(access("\(dataA)/secret", F_OK) == 0, "worker A never wrote its secret")
        try await Task.sleep(for: .milliseconds(200))
        for args in [["read_path", "\(dataA)/secret"], ["read_path", "/data/secret"], ["host_processes"], ["abstract_connect", name]] {
            let (rc, out) = Self.jail(["/app/probe"] + args, extra: ["--data", Self.dataDir("rb")])
            #expect(rc == 0 && out.hasPrefix("DENIED"), "\(args): \(out)")
        }
        let (_, nsB) = Self.jail(["/app/probe", "netns", "0"])
        _ = FileManager.default.createFile(atPath: "\(dataA)/go", contents: Data())
        let (rcA, outA) = await a.value
        #expect(rcA == 0, "A ended before the checks were done: \(outA)")
        let nsA = outA.split(separator: "\n").first { $0.hasPrefix("NETNS") }
        #expect(nsA != nil && nsB.hasPrefix("NETNS net:[") && nsA.map { $0 + "\n" != nsB } == true, "A \(outA) B \(nsB)")
    }
}

/// `miniapp jail` as a user meets it: exit statuses, and what a terminal is protected from.
@Suite("miniapp jail (CLI)")
struct JailCLITests {
    @Test("setup failures exit 125, code first; the command's own status passes through")
    func exitStatuses() throws {
        let (rc, out) = JailHarness.capture(JailRootlessTests.miniapp, ["jail", "--policy-dir", "/nonexistent", "--", "/bin/true"])
        #expect(rc == 125 && out.hasPrefix("POLICY_INVALID "), "\(rc) \(out)")
        let dir = try #require(JailHarness.testPolicyDir)
        let (rc1, out1) = JailHarness.capture(JailRootlessTests.miniapp, ["jail", "--policy-dir", dir, "--state-dir", "\(JailHarness.base)/cli-state", "--", "/bin/sh", "-c", "exit 1"])
        #expect(rc1 == 1, "\(out1)")
    }

    /// Under script(1) stdin and stdout are a terminal: the jail must get a pipe, not the
    /// terminal (every terminal ioctl but TIOCSTI/TIOCLINUX is allowed inside), and an OSC
    /// escape sequence from the program (retitling here; others rewrite the screen or make the
    /// terminal answer with injected input) must arrive escaped.
    @Test("on a terminal: stdin is a relayed pipe and control characters are escaped")
    func terminal() throws {
        let dir = try #require(JailHarness.testPolicyDir)
        let inner = "'\(JailRootlessTests.miniapp)' jail --policy-dir '\(dir)' --state-dir '\(JailHarness.base)/cli-state' --stdin -- "
            + "/bin/sh -c 'printf \"a\\033]0;pwned\\007b\\n\"; test -t 0 && echo STDIN-TTY || echo STDIN-PIPE'"
        let (rc, out) = JailHarness.capture("/usr/bin/script", ["-qec", inner, "/dev/null"])
        #expect(rc == 0, "\(out)")
        #expect(out.contains("a\\u{1b}]0;pwned\\u{7}b") && !out.contains("\u{1b}"), "\(out.debugDescription)")
        #expect(out.contains("STDIN-PIPE") && !out.contains("STDIN-TTY"), "\(out)")
    }
}
