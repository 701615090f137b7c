import Foundation
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Testing

/// The escape attempts of Fixtures/probe.c, shared by the privileged and rootless suites.
enum Attacks {
    /// Refused by the seccomp filter. Under the test policy the probe accepts only the test
    /// profile's distinctive errno (EHWPOISON), ENOSYS for clone3 (its explicit rule) or death by
    /// SIGSYS (x32): "Each seccomp attack escapes without the filter" below shows that every one
    /// of them reports ESCAPED when the filter is not there. i386 has its own test (it needs a
    /// kernel with IA32 emulation).
    static let seccomp = [
        "ptrace", "process_vm_readv", "process_vm_writev",
        "mount", "umount", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
        "pivot_root", "chroot", "unshare_user", "unshare_mount", "setns",
        "clone_newuser", "clone_newuser_highbits", "clone_newnet", "clone_newns", "clone3_enosys",
        "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "personality",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "syslog",
        "pidfd_getfd", "process_madvise", "kcmp", "name_to_handle_at", "open_by_handle_at",
        "modify_ldt", "iopl", "sethostname", "clock_settime",
        "tiocsti", "tiocsti_highbits", "tioclinux", "tioclinux_highbits", "x32_abi",
        "vsock", "vsock_highbits", "vsock_highbits_dgram", "af_alg", "af_alg_highbits", "af_packet",
        "netlink_netfilter", "socketpair_inet", "socketpair_vsock_highbits",
    ]

    /// Held by the other layers (mounts, ids, capabilities, no_new_privs, pid/net namespaces).
    static let other = [
        "read_shadow", "read_root", "read_host_environ", "read_proc1_mem", "ssl_private",
        "write_usr", "write_app", "write_root", "write_etc", "proc_sys_write", "sysrq_trigger",
        "host_processes", "interfaces", "caps_eff", "caps_prm", "caps_inh", "caps_bnd", "caps_amb",
        "no_new_privs", "seccomp_on", "nosuid_mounts", "fds", "setuid0", "mknod", "suid_binary", "kill_init",
        // the host's identity in /proc (kernel command line, boot id) reads empty
        "host_identity",
        // Landlock alone refuses these (see JailNetworkTests for the control without Landlock)
        "tcp_bind", "proc_comm_write",
        // and the positive control: what the profile must still allow
        "allowed_calls",
    ]

    static let all = seccomp + other
}

/// Escape attempts run inside real privileged workers; every one must fail.
@Suite("jail escape attempts (privileged mode)")
struct JailEscapeTests {
    @Test("attack is denied", arguments: Attacks.all)
    func attackIsDenied(_ attack: String) async throws {
        let (exit, lines) = try await JailHarness.runWorker([attack])
        #expect(lines.first?.hasPrefix("DENIED \(attack)") == true, "\(attack): \(lines)")
        #expect(exit.reason == .exit && exit.status == 0, "\(attack): \(exit) \(lines)")
    }

    /// The same attacks, one after the other, in warm jails of their own jailer (namespaces and
    /// shared mounts made ahead from an earlier launch): a warm jail must hold every layer a
    /// cold one does. Jails of other tests' policies may evict ours now and then, so most, not
    /// all, of these runs start warm; each must be denied either way.
    @Test("every attack is denied in a warm jail too")
    func attacksInWarmJails() async throws {
        try #require(JailHarness.probeBuilt)
        let jailer = try Jailer(configuration: try JailHarness.configuration(), stateDir: "\(JailHarness.base)/state-warm-escape",
                                mode: .privileged, warmJails: true)
        var warm = 0
        for attack in ["allowed_calls"] + Attacks.all {
            let lines = Locked<[String]>([])
            var launch = JailLaunch(programId: "test.probe-warm", argv: ["/app/probe", attack])
            launch.appDir = "\(JailHarness.base)/app"
            launch.dataDir = JailHarness.newDataDir("warm")
            launch.output = { l in lines.withLock { $0.append(l.text) } }
            let w = try jailer.spawn(launch)
            if w.startedWarm { warm += 1 }
            let exit = await w.exit
            let out = lines.withLock { $0 }
            #expect(out.first?.hasPrefix("DENIED \(attack)") == true, "\(attack) (warm: \(w.startedWarm)): \(out)")
            #expect(exit.reason == .exit && exit.status == 0, "\(attack): \(exit) \(out)")
        }
        #expect(warm * 2 > Attacks.all.count, "only \(warm) of \(Attacks.all.count + 1) started warm")
    }

    /// int 0x80 must die by SIGSYS (the filter's bad-ABI action). A kernel without IA32
    /// emulation turns int 0x80 into SIGSEGV before seccomp sees it; there the filter's
    /// bad-arch action is checked by SeccompFilterTests alone.
    @Test("i386 ABI (int 0x80) is killed with SIGSYS", .enabled(if: JailHarness.hostHasIA32, "this kernel lacks IA32 emulation; SeccompFilterTests checks the filter's bad-arch action"))
    func i386() async throws {
        let (exit, lines) = try await JailHarness.runWorker(["i386_abi"])
        #expect(lines.first?.hasPrefix("DENIED i386_abi") == true, "\(lines)")
        #expect(exit.status == 0)
    }

    /// The proof that the seccomp attacks can fail: the same probe, run on the host as nobody
    /// (no jail, no filter, no capabilities), must report ESCAPED for every one of them: each call
    /// then succeeds or fails with an errno of another layer, never with the test profile's.
    @Test("each seccomp attack escapes without the filter", arguments: Attacks.seccomp + ["i386_abi"])
    func attackEscapesWithoutFilter(_ attack: String) throws {
        try #require(JailHarness.probeBuilt)
        if attack == "i386_abi" && !JailHarness.hostHasIA32 { return } // SIGSEGV without IA32: no ESCAPED line
        let (_, out) = JailHarness.capture("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                                "\(JailHarness.base)/app/probe", attack])
        #expect(out.hasPrefix("ESCAPED \(attack)"), "\(attack) without the filter: \(out)")
    }

    /// nosuid (every mount, "nosuid_mounts") and no_new_privs ("no_new_privs") are asserted
    /// present on their own; "suid_binary" needs only one of them. Here nosuid is taken away: the
    /// host (root) attaches a clone of the probe's directory, which is not nosuid, inside the
    /// running worker's mount namespace, with the root-owned setuid probe in it. The worker checks
    /// that the mount lacks nosuid, execs the setuid binary and must stay non-root.
    @Test("no_new_privs alone ignores a setuid-root binary on a mount without nosuid")
    func noNewPrivsAlone() async throws {
        let w = try await JailNetworkTests.start(["nnp_suid"], programId: "test.nnp")
        #expect(try await w.waitFor("READY") != nil, "\(w.lines.withLock { $0 })")
        let (rc, out) = JailHarness.capture("\(JailHarness.base)/app/probe", ["inject", "\(JailHarness.base)/app", "\(w.worker.pid)", "/data/inject"])
        #expect(rc == 0 && out.hasPrefix("INJECTED"), "\(out)")
        let exit = await w.worker.exit
        let lines = w.lines.withLock { $0 }
        #expect(lines.last?.hasPrefix("DENIED nnp_suid") == true, "\(lines)")
        #expect(exit.status == 0)
    }

    @Test("a fork bomb is stopped by the pids limit and reported as such")
    func forkBomb() async throws {
        let (exit, lines) = try await JailHarness.runWorker(["forkbomb"]) { l in
            var lim = JailLimits()
            lim.pids = 16
            lim.wallClockSeconds = 20
            l.limitsOverride = lim
        }
        #expect(exit.reason == .killedLimit(.pids), "\(exit) \(lines)")
        #expect(exit.pidsLimitHits > 0)
        #expect(!lines.contains { $0.hasPrefix("ESCAPED") })
    }

    @Test("a memory bomb is killed by the OOM killer and reported as OOM")
    func memoryBomb() async throws {
        let (exit, lines) = try await JailHarness.runWorker(["membomb"]) { l in
            var lim = JailLimits()
            lim.memoryBytes = 32 << 20
            lim.wallClockSeconds = 30
            l.limitsOverride = lim
        }
        #expect(exit.reason == .killedOOM, "\(exit) \(lines)")
        #expect(exit.oomKills > 0)
    }

    @Test("/tmp is bounded by its tmpfs size")
    func tmpFill() async throws {
        let (exit, lines) = try await JailHarness.runWorker(["tmpfill", "\(8 << 20)"])
        #expect(lines.first?.hasPrefix("DENIED") == true, "\(lines)")
        #expect(exit.status == 0)
    }

    @Test("/tmp is bounded in files too (tmpfs nr_inodes)")
    func tmpInodes() async throws {
        let (exit, lines) = try await JailHarness.runWorker(["tmpinodes", "16384"])
        #expect(lines.first?.hasPrefix("DENIED") == true, "\(lines)")
        #expect(exit.status == 0)
    }

    @Test("the CPU quota holds: 20% of one CPU over one second")
    func cpuQuota() async throws {
        let (exit, lines) = try await JailHarness.runWorker(["cpuburn", "0.40"]) { l in
            var lim = JailLimits()
            lim.cpuPercent = 20
            l.limitsOverride = lim
        }
        #expect(lines.first?.hasPrefix("DENIED") == true, "\(lines)")
        #expect(exit.status == 0)
    }
}
