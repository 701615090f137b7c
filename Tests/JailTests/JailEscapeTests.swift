import Foundation
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Testing

/// Escape attempts run inside real privileged workers; every one must fail.
@Suite("jail escape attempts (privileged mode)")
struct JailEscapeTests {
    /// Attacks that need no argument. Each is one line of Fixtures/probe.c.
    static let attacks = [
        // syscalls the default seccomp profile denies
        "ptrace", "process_vm_readv", "process_vm_writev",
        "mount", "umount", "fsopen", "fsconfig", "fsmount", "move_mount", "open_tree", "mount_setattr",
        "pivot_root", "chroot", "unshare_user", "unshare_mount", "setns", "clone_newuser", "clone_newnet",
        "clone3_enosys", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
        "io_uring_setup", "personality", "kexec_load", "init_module", "finit_module", "delete_module", "syslog",
        "tiocsti", "tiocsti_highbits", "tioclinux", "x32_abi", "i386_abi", "open_by_handle_at", "sethostname", "vsock",
        // filesystem
        "read_shadow", "read_root", "read_host_environ", "read_proc1_mem", "write_usr", "write_app", "write_root",
        "write_etc", "proc_sys_write", "sysrq_trigger",
        // processes, network, privileges, fds
        "host_processes", "interfaces", "caps_eff", "caps_prm", "caps_bnd", "caps_amb", "no_new_privs", "seccomp_on",
        "fds", "setuid0", "mknod", "suid_binary", "kill_init",
    ]

    @Test("attack is denied", arguments: attacks)
    func attackIsDenied(_ attack: String) async throws {
        let (exit, lines) = try await JailHarness.runWorker([attack])
        #expect(lines.first?.hasPrefix("DENIED \(attack)") == true, "\(attack): \(lines)")
        #expect(exit.reason == .exit && exit.status == 0, "\(attack): \(exit) \(lines)")
    }

    @Test("no TCP connection to a listener on the host's loopback")
    func connectToHostLoopback() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        #expect(listen(listener, 4) == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        let (exit, lines) = try await JailHarness.runWorker(["connect_host", "\(port)"])
        #expect(lines.first?.hasPrefix("DENIED") == true, "\(lines)")
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
