public import MiniAppModel
import CJail
import CSeccomp
import Glibc

/// A compiled seccomp policy: one or more classic-BPF programs (`struct sock_filter` arrays, 8
/// bytes per instruction) to install in order. Compiled in the supervisor with libseccomp before
/// any spawn; the child only installs the bytes (CJail child_seccomp.c).
public struct SeccompProgram: Sendable, Equatable {
    /// The programs' raw instructions.
    public var filters: [[UInt8]]
    /// Names a rule lists that this kernel/libseccomp does not know (policy said to skip them).
    public var skippedNames: [String]
    /// Instruction count of each program.
    public var instructionCounts: [Int] { filters.map { $0.count / 8 } }
}

/// Compiles `SeccompProfile`s with libseccomp.
///
/// libseccomp merges all rules for one syscall into one decision, and an unconditional rule
/// swallows conditional ones with another action: "allow ioctl" + "EPERM ioctl if
/// (cmd & 0xffffffff) == TIOCSTI" compiles to a plain allow. That is exactly the masked deny we
/// need (CVE-2017-5226: TIOCSTI pushes keystrokes into the controlling terminal; a 64-bit compare
/// is bypassed by setting high bits the kernel ignores). So conditional rules whose action is not
/// "allow" go to a second filter whose default is "allow"; the kernel runs both and the most
/// restrictive answer wins.
public enum SeccompCompiler {
    /// What to do with a syscall name unknown to libseccomp.
    public enum UnknownNames: Sendable { case reject, skip }

    /// Capabilities a worker holds (none): rules of Docker profiles that `includes` a capability
    /// do not apply.
    public static let workerCapabilities: Set<String> = []

    /// Compiles `profile` for the native architecture. Throws POLICY_INVALID naming the rule.
    public static func compile(_ profile: SeccompProfile, unknownNames: UnknownNames = .reject,
                               source: String = "seccomp") throws(MiniAppError) -> SeccompProgram {
        let kernel = runningKernel()
        var main: [(SeccompRule, Int)] = []
        var overlay: [(SeccompRule, Int)] = []
        for (i, r) in profile.syscalls.enumerated() where r.applies(caps: workerCapabilities, arch: "amd64", kernel: kernel) {
            if !r.args.isEmpty && r.action != .allow { overlay.append((r, i)) } else { main.append((r, i)) }
        }
        var skipped: [String] = []
        let defaultAction = try scmpAction(profile.defaultAction, errnoRet: nil, profile: profile)
        var filters: [[UInt8]] = []
        filters.append(try build(defaultAction, rules: main, profile: profile, unknown: unknownNames, source: source, skipped: &skipped))
        if !overlay.isEmpty {
            filters.append(try build(scmpAllow, rules: overlay, profile: profile, unknown: unknownNames, source: source, skipped: &skipped))
        }
        return SeccompProgram(filters: filters, skippedNames: skipped)
    }

    static let scmpAllow: UInt32 = 0x7fff_0000

    static func scmpAction(_ a: SeccompAction, errnoRet: UInt32?, profile: SeccompProfile) throws(MiniAppError) -> UInt32 {
        switch a {
        case .allow: return scmpAllow
        case .log: return 0x7ffc_0000
        case .trap: return 0x0003_0000
        case .killThread: return 0
        case .killProcess: return 0x8000_0000
        case .errno(let e): return 0x0005_0000 | ((e ?? errnoRet ?? profile.defaultErrnoRet ?? UInt32(EPERM)) & 0xffff)
        case .trace(let e): return 0x7ff0_0000 | ((e ?? errnoRet ?? 0) & 0xffff)
        }
    }

    private static func build(_ defaultAction: UInt32, rules: [(SeccompRule, Int)], profile: SeccompProfile,
                              unknown: UnknownNames, source: String, skipped: inout [String]) throws(MiniAppError) -> [UInt8] {
        guard let ctx = seccomp_init(defaultAction) else {
            throw MiniAppError(.jailUnavailable, "libseccomp could not create a filter (out of memory?)")
        }
        defer { seccomp_release(ctx) }
        // Any ABI but the native one (i386 via int 0x80, x32 via the 0x40000000 bit) kills the
        // process: filters are per-ABI and syscall numbers differ, so an extra ABI is an open door
        // (i386 has socketcall, its own ioctl and clone layouts). This is not the profile's to
        // relax: `architectures` and Docker's `archMap` (which lists X86 and X32 for x86_64) are
        // parsed and checked but never add an ABI, so no profile contradicts SECURITY.md.
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, 0x8000_0000)
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) // binary tree: O(log n) per call
        var decided: [Int32: Decision] = [:]
        for (rule, index) in rules {
            let action = try scmpAction(rule.action, errnoRet: rule.errnoRet, profile: profile)
            for (j, name) in rule.names.enumerated() {
                let nr = seccomp_syscall_resolve_name(name)
                if nr == __NR_SCMP_ERROR {
                    if unknown == .skip { skipped.append(name); continue }
                    throw PolicyFieldReader.invalid("\(source): syscalls[\(index)].names[\(j)]", "'\(name)' is not a syscall known to libseccomp on this host")
                }
                try checkConflict(&decided, nr: nr, name: name, Decision(action: action, conditional: !rule.args.isEmpty, rule: index), source: source)
                if rule.args.isEmpty && action == defaultAction { continue } // libseccomp: EACCES, and a no-op
                try addRule(ctx, action: action, nr: nr, args: rule.args, field: "\(source): syscalls[\(index)]")
            }
        }
        return try export(ctx)
    }

    /// What an earlier rule of the same filter decided for one syscall.
    private struct Decision {
        var action: UInt32
        var conditional: Bool
        var rule: Int
    }

    /// libseccomp merges every rule of one syscall into one decision: given rules with different
    /// actions of which one is unconditional it silently keeps one (2.5.4 answers 0, not EEXIST).
    /// A profile listing a syscall as allowed in one place and denied in another would compile to
    /// whichever libseccomp picks: refuse it, naming the syscall and both rules. The same action
    /// twice (Docker's profile repeats names) is harmless, and so are conditional rules side by
    /// side (libseccomp keeps each condition: the socket family allowlist is such an OR).
    private static func checkConflict(_ decided: inout [Int32: Decision], nr: Int32, name: String,
                                      _ new: Decision, source: String) throws(MiniAppError) {
        guard let prev = decided[nr] else {
            decided[nr] = new
            return
        }
        if prev.action != new.action && !(prev.conditional && new.conditional) {
            throw PolicyFieldReader.invalid("\(source): syscalls[\(new.rule)]",
                "'\(name)' is already decided differently by syscalls[\(prev.rule)]; a syscall may not be both allowed and denied: remove one of the rules")
        }
        if !new.conditional { decided[nr] = new }
    }

    /// The native (x86_64) number of syscall `name` (seccomp_syscall_resolve_name), nil when
    /// libseccomp does not know it.
    public static func syscallNumber(_ name: String) -> Int32? {
        let nr = seccomp_syscall_resolve_name(name)
        return nr == __NR_SCMP_ERROR ? nil : nr
    }

    /// Whether libseccomp knows syscall `name` on at least one of `architectures`
    /// (`SCMP_ARCH_*` names; the native ABI when empty): a name no listed ABI has is a typo or
    /// a stale entry (`miniapp policy lint`).
    public static func isKnownSyscall(_ name: String, architectures: [String]) -> Bool {
        let arches = architectures.isEmpty ? ["SCMP_ARCH_X86_64"] : architectures
        for a in arches {
            let arch = seccomp_arch_resolve_name(String(a.dropFirst("SCMP_ARCH_".count)).lowercased())
            if arch != 0 && seccomp_syscall_resolve_name_arch(arch, name) != __NR_SCMP_ERROR { return true }
        }
        return false
    }

    private static func addRule(_ ctx: scmp_filter_ctx, action: UInt32, nr: Int32, args: [SeccompArg], field: String) throws(MiniAppError) {
        var cmps: [scmp_arg_cmp] = args.map { a in
            let op = scmp_compare(rawValue: opNumber(a.op))
            return scmp_arg_cmp(arg: a.index, op: op, datum_a: a.value, datum_b: a.valueTwo)
        }
        let r = cmps.withUnsafeMutableBufferPointer { p in
            seccomp_rule_add_array(ctx, action, nr, UInt32(p.count), p.baseAddress)
        }
        // EACCES: a conditional rule whose action is the filter's default (a no-op). EEXIST: the
        // same rule again; conflicting actions were refused by checkConflict before.
        if r != 0 && r != -EEXIST && r != -EACCES {
            throw PolicyFieldReader.invalid(field, "cannot be compiled (\(String(cString: strerror(-r)))); e.g. two comparisons on one argument")
        }
    }

    private static func opNumber(_ op: SeccompOp) -> UInt32 {
        switch op {
        case .ne: 1
        case .lt: 2
        case .le: 3
        case .eq: 4
        case .ge: 5
        case .gt: 6
        case .maskedEq: 7
        }
    }

    private static func export(_ ctx: scmp_filter_ctx) throws(MiniAppError) -> [UInt8] {
        let fd = cjail_memfd("seccomp-bpf")
        guard fd >= 0 else { throw MiniAppError(.jailUnavailable, "memfd_create failed: \(SystemError.current("memfd_create"))") }
        let owned = OwnedFD(adopting: fd)
        let r = seccomp_export_bpf(ctx, owned.raw)
        guard r == 0 else { throw MiniAppError(.jailUnavailable, "seccomp_export_bpf failed: \(String(cString: strerror(-r)))") }
        _ = lseek(owned.raw, 0, SEEK_SET)
        let bytes: [UInt8]
        do { bytes = try owned.readAll(limit: 8 * 65536) } catch {
            throw MiniAppError(.jailUnavailable, "reading the compiled seccomp filter failed", cause: error)
        }
        guard !bytes.isEmpty, bytes.count % 8 == 0, bytes.count / 8 <= 4096 else {
            throw MiniAppError(.policyInvalid, "the compiled seccomp filter has \(bytes.count / 8) instructions (kernel limit 4096); simplify the profile", data: ["field": "syscalls"])
        }
        return bytes
    }

    /// (major, minor) of the running kernel, for `includes.minKernel`.
    public static func runningKernel() -> (Int, Int) {
        var u = utsname()
        guard uname(&u) == 0 else { return (0, 0) }
        let rel = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let digits = rel.split(whereSeparator: { !$0.isNumber })
        guard digits.count >= 2, let a = Int(digits[0]), let b = Int(digits[1]) else { return (0, 0) }
        return (a, b)
    }
}
