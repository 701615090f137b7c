import MiniAppModel
import MiniAppSystem

/// What a seccomp profile does to one syscall in a worker (no capabilities, x86_64, this
/// kernel), ordered from narrowest to widest.
enum SyscallVerdict: Int, Comparable, CustomStringConvertible {
    /// Refused (defaultAction or an unconditional denial).
    case denied
    /// Allowed only when the arguments match a rule (e.g. socket for some families).
    case allowedIf
    /// Allowed except when the arguments match a denial (e.g. ioctl but TIOCSTI).
    case allowedExcept
    /// Allowed whatever the arguments.
    case allowed

    static func < (a: SyscallVerdict, b: SyscallVerdict) -> Bool { a.rawValue < b.rawValue }

    var description: String {
        switch self {
        case .denied: "denied"
        case .allowedIf: "allowed for some arguments only"
        case .allowedExcept: "allowed except some arguments"
        case .allowed: "allowed"
        }
    }
}

/// A profile seen the way the compiler applies it to a worker: the rules that apply (Docker's
/// includes/excludes for a process with no capabilities on amd64 and the running kernel).
struct SeccompView {
    let profile: SeccompProfile
    let rules: [SeccompRule]

    init(_ profile: SeccompProfile) {
        self.profile = profile
        let kernel = SeccompCompiler.runningKernel()
        rules = profile.syscalls.filter { $0.applies(caps: [], arch: "amd64", kernel: kernel) }
    }

    /// Syscalls the review tools always report on: each a known way out of a sandbox.
    static let risky: [(names: [String], why: String)] = [
        (["ptrace", "process_vm_readv", "process_vm_writev"], "reads and writes other processes' memory"),
        (["unshare", "setns"], "new namespaces: the user-namespace kernel attack surface (CVE-2022-0185)"),
        (["mount", "umount2", "pivot_root", "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr"], "changes the filesystem view under the jail"),
        (["bpf", "perf_event_open"], "verifier and perf bugs (CVE-2013-2094, CVE-2021-3490)"),
        (["keyctl", "add_key", "request_key"], "the kernel keyring is not namespaced"),
        (["io_uring_setup", "io_uring_enter", "io_uring_register"], "a second syscall surface seccomp cannot see"),
        (["userfaultfd"], "widens race windows in kernel exploits"),
        (["kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module"], "loads kernel code"),
        (["open_by_handle_at", "name_to_handle_at"], "the 'shocker' container escape"),
        (["clone3"], "its flags are in memory seccomp cannot inspect: namespaces unchecked"),
    ]

    /// CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.
    static let cloneNamespaceFlags: UInt64 = 0x7E02_0000
    /// TIOCSTI: pushes input into the terminal (CVE-2017-5226).
    static let tiocsti: UInt64 = 0x5412

    private func isAllow(_ a: SeccompAction) -> Bool { a == .allow || a == .log }

    /// The verdict for `name`.
    func verdict(_ name: String) -> SyscallVerdict {
        let mine = rules.filter { $0.names.contains(name) }
        let allows = mine.filter { isAllow($0.action) }
        let denials = mine.filter { !isAllow($0.action) }
        if isAllow(profile.defaultAction) {
            if denials.contains(where: { $0.args.isEmpty }) { return allows.isEmpty ? .denied : .allowedIf }
            return denials.isEmpty ? .allowed : .allowedExcept
        }
        if allows.contains(where: { $0.args.isEmpty }) { return denials.isEmpty ? .allowed : .allowedExcept }
        return allows.isEmpty ? .denied : .allowedIf
    }

    /// The rules that name `name`, as text (for a diff of conditions).
    func conditions(_ name: String) -> Set<String> {
        Set(rules.filter { $0.names.contains(name) }.map { "\($0.action) \(describe($0.args))" })
    }

    /// Every allow rule of clone keeps the namespace flags at 0 (a masked compare of arg 0).
    var cloneNamespacesChecked: Bool {
        let v = verdict("clone")
        if v == .denied { return true }
        if v == .allowed || v == .allowedExcept { return false }
        return rules.filter { $0.names.contains("clone") && isAllow($0.action) }.allSatisfy { r in
            r.args.contains { $0.index == 0 && $0.op == .maskedEq && $0.value & Self.cloneNamespaceFlags == Self.cloneNamespaceFlags && $0.valueTwo & Self.cloneNamespaceFlags == 0 }
        }
    }

    /// ioctl is denied, or TIOCSTI is refused by a masked compare of the low 32 bits (a 64-bit
    /// compare is dodged by setting high bits the kernel ignores).
    var tiocstiRefused: Bool {
        if verdict("ioctl") == .denied { return true }
        return rules.contains { r in
            r.names.contains("ioctl") && !isAllow(r.action)
                && r.args.contains { $0.index == 1 && $0.op == .maskedEq && $0.value & 0xFFFF_FFFF == 0xFFFF_FFFF && $0.valueTwo == Self.tiocsti }
        }
    }

    func describe(_ args: [SeccompArg]) -> String {
        args.map { a in
            a.op == .maskedEq ? "arg\(a.index) & 0x\(String(a.value, radix: 16)) == \(a.valueTwo)" : "arg\(a.index) \(a.op.rawValue.dropFirst(9)) \(a.value)"
        }.joined(separator: " and ")
    }

    /// `SCMP_ACT_ERRNO(1)` and friends.
    func actionText(_ a: SeccompAction, errnoRet: UInt32?) -> String {
        switch a {
        case .allow: "allow"
        case .log: "allow (logged)"
        case .trap: "SIGSYS"
        case .killThread: "kill thread"
        case .killProcess: "kill process"
        case .errno(let e): "errno \(e ?? errnoRet ?? profile.defaultErrnoRet ?? 1)"
        case .trace: "trace"
        }
    }

    /// Every name a rule of the profile mentions, plus the risky ones.
    var mentionedNames: Set<String> {
        Set(profile.syscalls.flatMap(\.names)).union(Self.risky.flatMap(\.names)).union(["clone", "ioctl"])
    }
}
