import MiniAppJSON

extension SeccompProfile {
    /// Known `SCMP_ARCH_*` names.
    public static let knownArchitectures: Set<String> = [
        "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
    ]

    /// Parses and validates a profile: plain JSON in the Docker / Podman format, remarks in
    /// `"comment"` members (top level and per rule). Throws `POLICY_INVALID` naming the field.
    public static func parse(_ bytes: some Collection<UInt8>, source: String = "seccomp") throws(MiniAppError) -> SeccompProfile {
        let doc = try JSONValue.parsePolicyFile(bytes, what: "seccomp profile \(source)", field: source)
        let r = try PolicyFieldReader(policy: doc, path: "")
        try r.rejectUnknown(["defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "comment", "flags", "listenerPath", "listenerMetadata"])
        guard let da = try r.string("defaultAction"), let action = SeccompAction(name: da) else {
            throw PolicyFieldReader.invalid(r.field("defaultAction"), "must be one of SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, …")
        }
        var p = SeccompProfile(defaultAction: action)
        p.comment = try r.string("comment")
        if let e = try r.int("defaultErrnoRet", default: nil, in: 0...4095) { p.defaultErrnoRet = UInt32(e) }
        p.architectures = try r.strings("architectures", default: [])
        for (i, a) in p.architectures.enumerated() where !knownArchitectures.contains(a) {
            throw PolicyFieldReader.invalid("architectures[\(i)]", "'\(a)' is not a known SCMP_ARCH_* name")
        }
        p.archMap = try parseArchMap(doc["archMap"])
        try checkFlagsAndListener(r)
        guard let calls = doc["syscalls"]?.arrayValue ?? (doc["syscalls"] == nil ? [] : nil) else {
            throw PolicyFieldReader.invalid("syscalls", "must be an array")
        }
        for (i, c) in calls.enumerated() { p.syscalls.append(try parseRule(c, path: "syscalls[\(i)]")) }
        return p
    }

    /// Filter flags miniappd accepts: only SECCOMP_FILTER_FLAG_TSYNC, which changes nothing here
    /// (the worker is single-threaded when its filter is installed, so "all threads" is one).
    public static let acceptedFlags: Set<String> = ["SECCOMP_FILTER_FLAG_TSYNC"]

    /// `flags` and `listenerPath` are refused rather than ignored: the child installs every
    /// filter with flags 0, so a profile asking for SPEC_ALLOW (turns off the Spectre v4
    /// mitigation), LOG or NEW_LISTENER would silently get something else. `listenerPath` /
    /// `listenerMetadata` belong to SCMP_ACT_NOTIFY, which miniappd does not support (a user-space
    /// supervisor answering syscalls is a second policy engine, and TOCTOU-prone).
    private static func checkFlagsAndListener(_ r: PolicyFieldReader) throws(MiniAppError) {
        for (i, f) in try r.strings("flags", default: []).enumerated() where !acceptedFlags.contains(f) {
            throw PolicyFieldReader.invalid("flags[\(i)]", "'\(f)' is not supported: miniappd installs filters without flags (accepted: \(acceptedFlags.sorted().joined(separator: ", "))); remove it")
        }
        for key in ["listenerPath", "listenerMetadata"] where !((try r.string(key)) ?? "").isEmpty {
            throw PolicyFieldReader.invalid(key, "is not supported: miniappd has no seccomp notify listener (SCMP_ACT_NOTIFY); remove it")
        }
    }

    private static func parseArchMap(_ v: JSONValue?) throws(MiniAppError) -> [ArchMapEntry] {
        guard let v, !v.isNull else { return [] }
        guard let a = v.arrayValue else { throw PolicyFieldReader.invalid("archMap", "must be an array") }
        var out: [ArchMapEntry] = []
        for (i, e) in a.enumerated() {
            let r = try PolicyFieldReader(policy: e, path: "archMap[\(i)]")
            try r.rejectUnknown(["architecture", "subArchitectures"])
            guard let arch = try r.string("architecture"), knownArchitectures.contains(arch) else {
                throw PolicyFieldReader.invalid(r.field("architecture"), "must be a known SCMP_ARCH_* name")
            }
            let subs = try r.strings("subArchitectures", default: [])
            for (j, s) in subs.enumerated() where !knownArchitectures.contains(s) {
                throw PolicyFieldReader.invalid("\(r.field("subArchitectures"))[\(j)]", "'\(s)' is not a known SCMP_ARCH_* name")
            }
            out.append(ArchMapEntry(architecture: arch, subArchitectures: subs))
        }
        return out
    }

    private static func parseRule(_ v: JSONValue, path: String) throws(MiniAppError) -> SeccompRule {
        let r = try PolicyFieldReader(policy: v, path: path)
        try r.rejectUnknown(["names", "name", "action", "args", "errnoRet", "includes", "excludes", "comment"])
        var names = try r.strings("names", default: [])
        if let n = try r.string("name") { names.append(n) } // the pre-1.0 OCI form
        guard !names.isEmpty else { throw PolicyFieldReader.invalid(r.field("names"), "must list at least one syscall") }
        for (i, n) in names.enumerated() where !isSyscallName(n) {
            throw PolicyFieldReader.invalid("\(r.field("names"))[\(i)]", "'\(n)' is not a syscall name")
        }
        guard let an = try r.string("action"), var action = SeccompAction(name: an) else {
            throw PolicyFieldReader.invalid(r.field("action"), "must be an SCMP_ACT_* action")
        }
        let errnoRet = try r.int("errnoRet", default: nil, in: 0...4095).map { UInt32($0) }
        if case .errno = action { action = .errno(errnoRet) }
        var rule = SeccompRule(names: names, action: action, errnoRet: errnoRet)
        rule.comment = try r.string("comment")
        if let args = v["args"], !args.isNull {
            guard let a = args.arrayValue else { throw PolicyFieldReader.invalid(r.field("args"), "must be an array") }
            guard a.count <= 6 else { throw PolicyFieldReader.invalid(r.field("args"), "has more than 6 comparisons") }
            for (i, e) in a.enumerated() { rule.args.append(try parseArg(e, path: "\(r.field("args"))[\(i)]")) }
        }
        if let c = try r.child("includes") { rule.includes = try parseCondition(c) }
        if let c = try r.child("excludes") { rule.excludes = try parseCondition(c) }
        return rule
    }

    private static func parseArg(_ v: JSONValue, path: String) throws(MiniAppError) -> SeccompArg {
        let r = try PolicyFieldReader(policy: v, path: path)
        try r.rejectUnknown(["index", "value", "valueTwo", "op"])
        guard let idx = try r.int("index", default: nil, in: 0...5) else { throw PolicyFieldReader.invalid(r.field("index"), "is required (0-5)") }
        guard let opName = try r.string("op"), let op = SeccompOp(rawValue: opName) else {
            throw PolicyFieldReader.invalid(r.field("op"), "must be an SCMP_CMP_* operator")
        }
        return SeccompArg(index: UInt32(idx), value: try u64(v["value"], r.field("value")),
                          valueTwo: try u64(v["valueTwo"], r.field("valueTwo")), op: op)
    }

    /// Values are unsigned 64-bit; JSON integers above Int64.max arrive as doubles, which are
    /// only accepted when exact (2^63 and 2^64-1 style masks must be written as integers ≤ 2^63-1
    /// or as exact doubles).
    private static func u64(_ v: JSONValue?, _ field: String) throws(MiniAppError) -> UInt64 {
        guard let v, !v.isNull else { return 0 }
        if let i = v.intValue {
            guard i >= 0 else { throw PolicyFieldReader.invalid(field, "must not be negative") }
            return UInt64(i)
        }
        if let d = v.doubleValue, d >= 0, d < 18_446_744_073_709_551_616.0, d == d.rounded() { return UInt64(d) }
        throw PolicyFieldReader.invalid(field, "must be an unsigned 64-bit integer")
    }

    private static func parseCondition(_ r: PolicyFieldReader) throws(MiniAppError) -> SeccompCondition {
        try r.rejectUnknown(["caps", "arches", "minKernel"])
        var c = SeccompCondition()
        c.caps = try r.strings("caps", default: [])
        c.arches = try r.strings("arches", default: [])
        c.minKernel = try r.string("minKernel")
        if let k = c.minKernel, SeccompCondition.parseKernel(k) == nil {
            throw PolicyFieldReader.invalid(r.field("minKernel"), "must look like '5.10'")
        }
        return c
    }

    static func isSyscallName(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 64 && n.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }
}

extension SeccompCondition {
    /// "5.10" → (5, 10).
    public static func parseKernel(_ s: String) -> (Int, Int)? {
        let p = s.split(separator: ".")
        guard p.count >= 2, let a = Int(p[0]), let b = Int(p[1]) else { return nil }
        return (a, b)
    }
}

extension SeccompRule {
    /// Whether the rule applies to a worker with capabilities `caps` on Docker arch `arch`
    /// ("amd64") and kernel `kernel` — Docker's semantics for includes/excludes.
    public func applies(caps: Set<String>, arch: String, kernel: (Int, Int)) -> Bool {
        if !includes.caps.isEmpty && !includes.caps.allSatisfy(caps.contains) { return false }
        if !includes.arches.isEmpty && !includes.arches.contains(arch) { return false }
        if let k = includes.minKernel.flatMap(SeccompCondition.parseKernel), kernel < k { return false }
        if !excludes.caps.isEmpty && excludes.caps.contains(where: caps.contains) { return false }
        if !excludes.arches.isEmpty && excludes.arches.contains(arch) { return false }
        if let k = excludes.minKernel.flatMap(SeccompCondition.parseKernel), kernel >= k { return false }
        return true
    }
}
