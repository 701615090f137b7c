import Foundation
import MiniAppModel
import MiniAppSystem
import Testing

/// A classic-BPF interpreter for seccomp programs: what the kernel runs on every syscall,
/// reimplemented for the tests so that the *compiled* filter (libseccomp's output, the bytes the
/// child installs) is checked, not the profile text. It knows every instruction the kernel's
/// seccomp_check_filter admits; anything else fails the test instead of being guessed at.
struct SeccompBPF {
    /// struct seccomp_data: nr, arch, instruction_pointer, args[6].
    struct Data {
        var nr: Int32
        var arch: UInt32 = SeccompBPF.archX86_64
        var args: [UInt64] = [0, 0, 0, 0, 0, 0]

        func word(at k: UInt32) -> UInt32? {
            switch k {
            case 0: return UInt32(bitPattern: nr)
            case 4: return arch
            case 8, 12: return 0 // instruction pointer
            case 16..<64 where k % 4 == 0:
                let a = args[Int(k - 16) / 8]
                return k % 8 == 0 ? UInt32(truncatingIfNeeded: a) : UInt32(truncatingIfNeeded: a >> 32)
            default: return nil
            }
        }
    }

    struct Unsupported: Error, CustomStringConvertible {
        var description: String
    }

    static let archX86_64: UInt32 = 0xC000_003E, archI386: UInt32 = 0x4000_0003
    static let allow: UInt32 = 0x7fff_0000, killProcess: UInt32 = 0x8000_0000
    static func errno(_ e: Int32) -> UInt32 { 0x0005_0000 | UInt32(e) }

    let insns: [(code: UInt16, jt: UInt8, jf: UInt8, k: UInt32)]

    init(_ bytes: [UInt8]) {
        insns = stride(from: 0, to: bytes.count, by: 8).map { i in
            (UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8, bytes[i + 2], bytes[i + 3],
             UInt32(bytes[i + 4]) | UInt32(bytes[i + 5]) << 8 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 24)
        }
    }

    func run(_ d: Data) throws -> UInt32 {
        var steps = 0
        return try run(d, counting: &steps)
    }

    /// `run`, adding the number of instructions executed to `steps`.
    func run(_ d: Data, counting steps: inout Int) throws -> UInt32 {
        var a: UInt32 = 0, x: UInt32 = 0, mem = [UInt32](repeating: 0, count: 16), pc = 0
        while pc < insns.count {
            let (code, jt, jf, k) = insns[pc]
            pc += 1
            steps += 1
            switch code {
            case 0x20: guard let w = d.word(at: k) else { throw Unsupported(description: "load at \(k)") }; a = w // LD|W|ABS
            case 0x00: a = k                                  // LD|IMM
            case 0x01: x = k                                  // LDX|IMM
            case 0x60: a = mem[Int(k & 15)]                   // LD|MEM
            case 0x61: x = mem[Int(k & 15)]                   // LDX|MEM
            case 0x02: mem[Int(k & 15)] = a                   // ST
            case 0x03: mem[Int(k & 15)] = x                   // STX
            case 0x07: x = a                                  // MISC|TAX
            case 0x87: a = x                                  // MISC|TXA
            case 0x04: a = a &+ k                             // ALU|ADD|K
            case 0x14: a = a &- k                             // ALU|SUB|K
            case 0x44: a |= k                                 // ALU|OR|K
            case 0x54: a &= k                                 // ALU|AND|K
            case 0x5c: a &= x                                 // ALU|AND|X
            case 0x64: a = k < 32 ? a << k : 0                // ALU|LSH|K
            case 0x74: a = k < 32 ? a >> k : 0                // ALU|RSH|K
            case 0xa4: a ^= k                                 // ALU|XOR|K
            case 0x84: a = 0 &- a                             // ALU|NEG
            case 0x05: pc += Int(k)                           // JMP|JA
            case 0x15: pc += Int(a == k ? jt : jf)            // JEQ|K
            case 0x25: pc += Int(a > k ? jt : jf)             // JGT|K
            case 0x35: pc += Int(a >= k ? jt : jf)            // JGE|K
            case 0x45: pc += Int(a & k != 0 ? jt : jf)        // JSET|K
            case 0x1d: pc += Int(a == x ? jt : jf)            // JEQ|X
            case 0x2d: pc += Int(a > x ? jt : jf)             // JGT|X
            case 0x3d: pc += Int(a >= x ? jt : jf)            // JGE|X
            case 0x06: return k                               // RET|K
            case 0x16: return a                               // RET|A
            default: throw Unsupported(description: "opcode 0x\(String(code, radix: 16)) at \(pc - 1)")
            }
        }
        throw Unsupported(description: "fell off the end of the program")
    }

    /// The kernel's answer for a stack of filters (seccomp_run_filters): every filter runs, the
    /// newest first, and the most restrictive action wins (lowest signed value of the action bits).
    static func evaluate(_ program: SeccompProgram, _ d: Data) throws -> UInt32 {
        var ret = allow
        for f in program.filters.reversed() {
            let cur = try SeccompBPF(f).run(d)
            if Int32(bitPattern: cur & 0xffff_0000) < Int32(bitPattern: ret & 0xffff_0000) { ret = cur }
        }
        return ret
    }
}

@Suite("the compiled seccomp filter, evaluated instruction by instruction")
struct SeccompFilterTests {
    static func program(_ name: String = "seccomp/default.json") throws -> SeccompProgram {
        let bytes = Array(FileManager.default.contents(atPath: "\(JailHarness.policyDir)/\(name)") ?? Data())
        return try SeccompCompiler.compile(try SeccompProfile.parse(bytes, source: name), source: name)
    }

    static func nr(_ name: String) throws -> Int32 { try #require(SeccompCompiler.syscallNumber(name), "\(name) unknown") }

    /// Every system call of a worker runs the whole stack of filters: a linear filter over the
    /// default profile's ~350 names would cost hundreds of instructions on each one (a runtime's
    /// start makes thousands of calls). libseccomp's binary tree (SCMP_FLTATR_CTL_OPTIMIZE=2)
    /// keeps it to a few dozen, whatever the profile's length.
    @Test(arguments: ["read", "write", "openat", "mmap", "futex", "recvfrom", "newfstatat", "close", "epoll_wait", "clock_nanosleep"])
    func aCommonSyscallRunsFewInstructions(_ name: String) throws {
        let p = try Self.program()
        var steps = 0
        for f in p.filters { _ = try SeccompBPF(f).run(SeccompBPF.Data(nr: try Self.nr(name)), counting: &steps) }
        let length = p.filters.map { $0.count / 8 }.reduce(0, +)
        #expect(length > 200, "the default profile compiles to \(length) instructions: fewer than expected")
        #expect(steps <= 40, "\(name) runs \(steps) of the filters' \(length) instructions")
    }

    /// Argument patterns every denial must hold against: zeros, all ones, the sign bit, high bits
    /// only, small values. A syscall without argument rules is decided by its number alone; one
    /// with rules must not have an argument value that opens it.
    static let argPatterns: [[UInt64]] = [
        [0, 0, 0, 0, 0, 0], [UInt64.max, UInt64.max, UInt64.max, UInt64.max, UInt64.max, UInt64.max],
        [1, 2, 3, 4, 5, 6], [1 << 63, 1 << 31, 1 << 32, 0, 0, 0], [0xffff_ffff_0000_0000, 0, 0, 0, 0, 0],
    ]

    /// The syscalls the jail must never allow (DESIGN.md, SECURITY.md, the audit's list).
    static let mustDeny = [
        "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "fsopen", "fsconfig", "fsmount",
        "fspick", "move_mount", "open_tree", "mount_setattr", "pivot_root", "chroot", "unshare", "setns", "clone3",
        "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "personality", "kexec_load", "kexec_file_load", "init_module",
        "finit_module", "delete_module", "syslog", "pidfd_getfd", "process_madvise", "kcmp",
        "name_to_handle_at", "open_by_handle_at", "modify_ldt", "iopl", "ioperm", "acct", "swapon", "swapoff",
        "reboot", "settimeofday", "clock_settime", "adjtimex", "sethostname", "setdomainname", "quotactl",
        "lookup_dcookie", "fanotify_init", "vhangup", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
    ]

    @Test("denied whatever the arguments", arguments: mustDeny)
    func denied(_ name: String) throws {
        let p = try Self.program()
        let n = try Self.nr(name)
        for args in Self.argPatterns {
            let r = try SeccompBPF.evaluate(p, .init(nr: n, args: args))
            #expect(r == SeccompBPF.errno(EPERM) || (name == "clone3" && r == SeccompBPF.errno(ENOSYS)),
                    "\(name)(\(args)) → 0x\(String(r, radix: 16))")
        }
    }

    @Test("the evaluator can say allow: everyday calls pass, and an allow-all profile allows ptrace")
    func positiveControls() throws {
        let p = try Self.program()
        for name in ["read", "write", "openat", "futex", "mmap", "ioctl", "execve"] {
            #expect(try SeccompBPF.evaluate(p, .init(nr: try Self.nr(name))) == SeccompBPF.allow, "\(name)")
        }
        let open = try SeccompCompiler.compile(try SeccompProfile.parse(Array(#"{"defaultAction": "SCMP_ACT_ALLOW"}"#.utf8)))
        #expect(try SeccompBPF.evaluate(open, .init(nr: try Self.nr("ptrace"))) == SeccompBPF.allow)
    }

    /// Families by number: only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK/NETLINK_ROUTE, compared
    /// on the low 32 bits, so no high-bit pattern admits another family (the AF_VSOCK bypass).
    @Test("socket: an allowlist of families on the low 32 bits", arguments: [UInt64(0), 1 << 32, 0xffff_ffff_0000_0000, 0x8000_0000_0000_0000])
    func socketFamilies(_ high: UInt64) throws {
        let p = try Self.program()
        let socket = try Self.nr("socket"), pair = try Self.nr("socketpair")
        for family in UInt64(0)..<64 {
            for proto: UInt64 in [0, 12] {
                let r = try SeccompBPF.evaluate(p, .init(nr: socket, args: [high | family, 1, proto, 0, 0, 0]))
                let allowed = [1, 2, 10].contains(family) || (family == 16 && proto == 0)
                #expect((r == SeccompBPF.allow) == allowed, "socket(0x\(String(high | family, radix: 16)), proto \(proto)) → 0x\(String(r, radix: 16))")
            }
            let r = try SeccompBPF.evaluate(p, .init(nr: pair, args: [high | family, 1, 0, 0, 0, 0]))
            #expect((r == SeccompBPF.allow) == (family == 1), "socketpair(\(family))")
        }
        for vsock in [40, 0x1_0000_0028, 0xffff_ffff_0000_0028] as [UInt64] {
            #expect(try SeccompBPF.evaluate(p, .init(nr: socket, args: [vsock, 1, 0, 0, 0, 0])) == SeccompBPF.errno(EPERM))
        }
    }

    @Test("clone: any namespace flag is denied, with or without high bits; threads and forks pass")
    func cloneFlags() throws {
        let p = try Self.program()
        let clone = try Self.nr("clone")
        let ns: [UInt64] = [0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000]
        for f in ns {
            for extra: UInt64 in [0, 17, 0x0001_0f00, 0xabcd_0000_0000] {
                #expect(try SeccompBPF.evaluate(p, .init(nr: clone, args: [f | extra, 0, 0, 0, 0, 0])) == SeccompBPF.errno(EPERM), "clone(0x\(String(f | extra, radix: 16)))")
            }
        }
        let thread: UInt64 = 0x003d_0f00 // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
        for f in [17, thread] as [UInt64] {
            #expect(try SeccompBPF.evaluate(p, .init(nr: clone, args: [f, 0, 0, 0, 0, 0])) == SeccompBPF.allow)
        }
    }

    @Test("ioctl: TIOCSTI and TIOCLINUX are denied with any high bits; other commands pass")
    func ioctls() throws {
        let p = try Self.program()
        let ioctl = try Self.nr("ioctl")
        for cmd: UInt64 in [0x5412, 0x541C] {
            for high: UInt64 in [0, 1 << 32, 0xdead_0000_0000, 0xffff_ffff_0000_0000] {
                #expect(try SeccompBPF.evaluate(p, .init(nr: ioctl, args: [0, high | cmd, 0, 0, 0, 0])) == SeccompBPF.errno(EPERM))
            }
        }
        #expect(try SeccompBPF.evaluate(p, .init(nr: ioctl, args: [0, 0x5401, 0, 0, 0, 0])) == SeccompBPF.allow) // TCGETS
    }

    @Test("send and receive with MSG_OOB are denied, whatever the other flags; without it they pass")
    func outOfBand() throws {
        let p = try Self.program()
        for (name, flagsArg) in [("sendto", 3), ("recvfrom", 3), ("sendmsg", 2), ("recvmsg", 2), ("sendmmsg", 3), ("recvmmsg", 3)] {
            let nr = try Self.nr(name)
            func args(_ flags: UInt64) -> [UInt64] {
                var a: [UInt64] = [3, 0, 1, 0, 0, 0]
                a[flagsArg] = flags
                return a
            }
            for flags: UInt64 in [0x1, 0x41, 0x4001, 0xffff_ffff, 0x1_0000_0001] {
                #expect(try SeccompBPF.evaluate(p, .init(nr: nr, args: args(flags))) == SeccompBPF.errno(EPERM), "\(name) flags 0x\(String(flags, radix: 16))")
            }
            for flags: UInt64 in [0, 0x40, 0x4000, 0x2] {  // MSG_DONTWAIT, MSG_NOSIGNAL, MSG_PEEK
                #expect(try SeccompBPF.evaluate(p, .init(nr: nr, args: args(flags))) == SeccompBPF.allow, "\(name) flags 0x\(String(flags, radix: 16))")
            }
        }
    }

    /// Other ABIs die (SCMP_ACT_KILL_PROCESS) for every shipped profile, Docker's included, even
    /// though Docker's archMap lists X86 and X32: the compiler does not let a profile add ABIs.
    @Test("x32 and i386 calls kill the process", arguments: ["seccomp/default.json", "seccomp/docker-default.json"])
    func otherABIs(_ name: String) throws {
        let p = try Self.program(name)
        for n: Int32 in [0, 20, 39, 59] {
            #expect(try SeccompBPF.evaluate(p, .init(nr: 0x4000_0000 | n)) == SeccompBPF.killProcess, "x32 \(n)")
            #expect(try SeccompBPF.evaluate(p, .init(nr: n, arch: SeccompBPF.archI386)) == SeccompBPF.killProcess, "i386 \(n)")
        }
    }

    @Test("the test profile denies with its distinctive errno")
    func testProfileErrno() throws {
        let dir = try #require(JailHarness.testPolicyDir)
        let bytes = Array(FileManager.default.contents(atPath: "\(dir)/seccomp/default.json") ?? Data())
        let p = try SeccompCompiler.compile(try SeccompProfile.parse(bytes))
        for name in ["ptrace", "mount", "bpf"] {
            #expect(try SeccompBPF.evaluate(p, .init(nr: try Self.nr(name))) == SeccompBPF.errno(JailHarness.seccompErrno))
        }
        #expect(try SeccompBPF.evaluate(p, .init(nr: try Self.nr("ioctl"), args: [0, 0x5412, 0, 0, 0, 0])) == SeccompBPF.errno(JailHarness.seccompErrno))
    }
}
