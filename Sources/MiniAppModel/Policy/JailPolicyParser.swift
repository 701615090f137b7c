import MiniAppJSON

extension JailPolicy {
    /// Parses and validates jail.json (plain JSON; remarks in `"comment"` members). Throws
    /// `POLICY_INVALID` naming the field.
    public static func parse(_ bytes: some Collection<UInt8>) throws(MiniAppError) -> JailPolicy {
        let doc = try JSONValue.parsePolicyFile(bytes, what: "jail policy")
        let r = try PolicyFieldReader(policy: doc, path: "")
        try r.rejectUnknown([
            "namespaces", "hostname", "identity", "filesystem", "limits", "output", "landlock", "cgroup",
            "seccompProfile", "reaper", "dieWithSupervisor", "stopGraceSeconds", "env",
        ])
        var p = JailPolicy()
        if let n = try r.child("namespaces") { p.namespaces = try parseNamespaces(n) }
        p.hostname = try r.string("hostname", default: p.hostname) ?? p.hostname
        try JailPathRules.checkHostname(p.hostname, field: r.field("hostname"))
        if let i = try r.child("identity") { p.identity = try parseIdentity(i) }
        if let f = try r.child("filesystem") { p.filesystem = try parseFilesystem(f) }
        if let l = try r.child("limits") { p.limits = try JailLimits.parse(l, base: p.limits) }
        if let o = try r.child("output") { p.output = try parseOutput(o) }
        if let l = try r.child("landlock") { p.landlock = try parseLandlock(l) }
        if let c = try r.child("cgroup") { p.cgroup = try parseCgroup(c) }
        p.seccompProfile = try r.string("seccompProfile", default: p.seccompProfile) ?? p.seccompProfile
        try JailPathRules.checkRelative(p.seccompProfile, field: r.field("seccompProfile"))
        // Both stay in the file so a reviewer sees them, but neither may be switched off: without
        // the reaper the program is PID 1 (the kernel drops signals it has no handler for, so stop
        // never reaches it, and its orphans stay zombies eating the pids limit); without PDEATHSIG
        // a worker outlives a crashed daemon, unsupervised (no wall-clock limit, nobody to stop it).
        p.reaper = try r.bool("reaper", default: p.reaper)
        guard p.reaper else { throw PolicyFieldReader.invalid(r.field("reaper"), "cannot be false: without the PID-1 reaper stop signals and orphan reaping are lost") }
        p.dieWithSupervisor = try r.bool("dieWithSupervisor", default: p.dieWithSupervisor)
        guard p.dieWithSupervisor else { throw PolicyFieldReader.invalid(r.field("dieWithSupervisor"), "cannot be false: a worker must never outlive the daemon that supervises it") }
        p.stopGraceSeconds = try r.number("stopGraceSeconds", default: p.stopGraceSeconds, in: 0...3600) ?? 2
        for (k, v) in try r.stringMap("env") {
            try JailPathRules.checkEnvName(k, field: r.field("env.\(k)"))
            p.env[k] = v
        }
        return p
    }

    private static func parseNamespaces(_ r: PolicyFieldReader) throws(MiniAppError) -> Namespaces {
        try r.rejectUnknown(["mount", "pid", "net", "ipc", "uts", "cgroup"])
        var n = Namespaces()
        n.mount = try r.bool("mount", default: true)
        n.pid = try r.bool("pid", default: true)
        n.net = try r.bool("net", default: true)
        n.ipc = try r.bool("ipc", default: true)
        n.uts = try r.bool("uts", default: true)
        n.cgroup = try r.bool("cgroup", default: true)
        // The filesystem view and the PID-1 reaper are built on these two: without them the
        // worker would see the host tree or the host's processes.
        guard n.mount else { throw PolicyFieldReader.invalid(r.field("mount"), "cannot be false: the jail's filesystem view needs a mount namespace") }
        guard n.pid else { throw PolicyFieldReader.invalid(r.field("pid"), "cannot be false: workers must not see or signal host processes") }
        return n
    }

    private static func parseIdentity(_ r: PolicyFieldReader) throws(MiniAppError) -> Identity {
        try r.rejectUnknown(["uidRangeStart", "uidRangeCount", "rootlessUid", "rootlessGid"])
        var i = Identity()
        // uid 0..999 are system accounts on Debian; never hand them to untrusted code.
        i.uidRangeStart = UInt32(try r.int("uidRangeStart", default: Int64(i.uidRangeStart), in: 1000...2_147_483_647) ?? 0)
        i.uidRangeCount = UInt32(try r.int("uidRangeCount", default: Int64(i.uidRangeCount), in: 1...10_000_000) ?? 0)
        // Below 2^31: ids above it are negative to every tool that treats uid_t as signed, and
        // the range must not hold nobody (65534) or the 16-bit -1 (65535).
        if UInt64(i.uidRangeStart) + UInt64(i.uidRangeCount) > 2_147_483_648 {
            throw PolicyFieldReader.invalid(r.field("uidRangeCount"), "makes the range pass 2147483647 (ids above are negative to tools that treat uid_t as signed)")
        }
        if let bad = HostIDRanges.reserved.first(where: { (UInt64(i.uidRangeStart)..<UInt64(i.uidRangeStart) + UInt64(i.uidRangeCount)).contains($0) }) {
            throw PolicyFieldReader.invalid(r.field("uidRangeStart"), "makes the range hold \(bad) (nobody / the 16-bit -1)")
        }
        i.rootlessUid = UInt32(try r.int("rootlessUid", default: 1000, in: 1...65533) ?? 1000)
        i.rootlessGid = UInt32(try r.int("rootlessGid", default: 1000, in: 1...65533) ?? 1000)
        return i
    }

    private static func parseFilesystem(_ r: PolicyFieldReader) throws(MiniAppError) -> Filesystem {
        try r.rejectUnknown(["readOnlyHostPaths", "symlinks", "etc", "generateEtc", "rootSizeBytes", "tmpSizeBytes", "tmpInodes", "devices"])
        var f = Filesystem()
        f.readOnlyHostPaths = try r.strings("readOnlyHostPaths", default: f.readOnlyHostPaths)
        for (i, p) in f.readOnlyHostPaths.enumerated() {
            try JailPathRules.checkMountPath(p, field: "\(r.field("readOnlyHostPaths"))[\(i)]")
        }
        f.symlinks = try r.stringMap("symlinks").map { Symlink(path: $0.0, target: $0.1) }
        for s in f.symlinks { try JailPathRules.checkMountPath(s.path, field: r.field("symlinks.\(s.path)")) }
        f.etc = try r.strings("etc", default: f.etc)
        for (i, p) in f.etc.enumerated() {
            try JailPathRules.checkAbsolute(p, field: "\(r.field("etc"))[\(i)]")
            guard p.hasPrefix("/etc/") else { throw PolicyFieldReader.invalid("\(r.field("etc"))[\(i)]", "must be a path under /etc/") }
            let n = JailPathRules.normalized(p)
            if let secret = Self.secretEtcPaths.first(where: { $0 == n || $0.hasPrefix(n + "/") || n.hasPrefix($0 + "/") }) {
                throw PolicyFieldReader.invalid("\(r.field("etc"))[\(i)]", "would expose \(secret) to every program; bind only what programs need (e.g. /etc/ssl/certs)")
            }
        }
        f.generateEtc = try r.bool("generateEtc", default: true)
        f.rootSizeBytes = UInt64(try r.int("rootSizeBytes", default: Int64(f.rootSizeBytes), in: 65536...(1 << 30)) ?? 0)
        f.tmpSizeBytes = UInt64(try r.int("tmpSizeBytes", default: Int64(f.tmpSizeBytes), in: 65536...(64 << 30)) ?? 0)
        f.tmpInodes = UInt64(try r.int("tmpInodes", default: Int64(f.tmpInodes), in: 64...(1 << 24)) ?? 0)
        f.devices = try r.strings("devices", default: f.devices)
        let allowed: Set<String> = ["null", "zero", "full", "random", "urandom", "tty"]
        for (i, d) in f.devices.enumerated() where !allowed.contains(d) {
            throw PolicyFieldReader.invalid("\(r.field("devices"))[\(i)]", "'\(d)' is not an allowed device (\(allowed.sorted().joined(separator: ", ")))")
        }
        return f
    }

    /// Host secrets no `filesystem.etc` entry may contain: TLS private keys, password hashes,
    /// sudo rules, SSH host keys.
    public static let secretEtcPaths = ["/etc/ssl/private", "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh"]

    private static func parseOutput(_ r: PolicyFieldReader) throws(MiniAppError) -> JailOutputLimits {
        try r.rejectUnknown(["maxBytesPerStream", "maxLineBytes"])
        var o = JailOutputLimits()
        o.maxBytesPerStream = Int(try r.int("maxBytesPerStream", default: Int64(o.maxBytesPerStream), in: 0...(1 << 32)) ?? 0)
        o.maxLineBytes = Int(try r.int("maxLineBytes", default: Int64(o.maxLineBytes), in: 80...(1 << 20)) ?? 80)
        return o
    }

    private static func parseLandlock(_ r: PolicyFieldReader) throws(MiniAppError) -> Landlock {
        try r.rejectUnknown(["mode", "denyTCP", "scopeSignalsAndAbstractSockets"])
        var l = Landlock()
        let m = try r.string("mode", default: l.mode.rawValue) ?? ""
        guard let mode = LandlockMode(rawValue: m) else { throw PolicyFieldReader.invalid(r.field("mode"), "must be off, bestEffort or required") }
        l.mode = mode
        l.denyTCP = try r.bool("denyTCP", default: true)
        l.scopeSignalsAndAbstractSockets = try r.bool("scopeSignalsAndAbstractSockets", default: true)
        return l
    }

    private static func parseCgroup(_ r: PolicyFieldReader) throws(MiniAppError) -> Cgroup {
        try r.rejectUnknown(["version", "v1Root", "v2Root", "parent"])
        var c = Cgroup()
        let v = try r.string("version", default: "auto") ?? ""
        guard let ver = CgroupVersion(rawValue: v) else { throw PolicyFieldReader.invalid(r.field("version"), "must be auto, v1, v2 or none") }
        c.version = ver
        c.v1Root = try r.string("v1Root", default: c.v1Root) ?? c.v1Root
        c.v2Root = try r.string("v2Root", default: c.v2Root) ?? c.v2Root
        c.parent = try r.string("parent", default: c.parent) ?? c.parent
        try JailPathRules.checkAbsolute(c.v1Root, field: r.field("v1Root"))
        try JailPathRules.checkAbsolute(c.v2Root, field: r.field("v2Root"))
        try JailPathRules.checkRelative(c.parent, field: r.field("parent"))
        return c
    }
}

extension JailLimits {
    /// Parses a `limits` object over `base` (the policy's values, for a per-launch override).
    public static func parse(_ r: PolicyFieldReader, base: JailLimits) throws(MiniAppError) -> JailLimits {
        try r.rejectUnknown(Set(JailLimitField.allCases.map(\.rawValue)))
        var l = base
        // Below ~4 MiB not even the dynamic loader of /bin/true fits: reject as impossible.
        l.memoryBytes = UInt64(try r.int("memoryBytes", default: Int64(l.memoryBytes), in: (4 << 20)...(1 << 40)) ?? 0)
        // At least 2: the PID-1 reaper and the program are two processes; 1 would fail every start.
        l.pids = UInt64(try r.int("pids", default: Int64(l.pids), in: 2...65536) ?? 0)
        l.cpuPercent = UInt64(try r.int("cpuPercent", default: Int64(l.cpuPercent), in: 0...100_000) ?? 0)
        l.wallClockSeconds = try r.number("wallClockSeconds", default: l.wallClockSeconds, in: 0...(7 * 86400)) ?? 0
        l.openFiles = UInt64(try r.int("openFiles", default: Int64(l.openFiles), in: 16...(1 << 20)) ?? 0)
        l.fileSizeBytes = UInt64(try r.int("fileSizeBytes", default: Int64(l.fileSizeBytes), in: 4096...(1 << 40)) ?? 0)
        // Below 4 MiB an ext4 volume is mostly its own journal and metadata.
        l.dataBytes = UInt64(try r.int("dataBytes", default: Int64(l.dataBytes), in: (4 << 20)...(1 << 44)) ?? 0)
        l.dataInodes = UInt64(try r.int("dataInodes", default: Int64(l.dataInodes), in: 16...(1 << 26)) ?? 0)
        if l.cpuPercent != 0 && l.cpuPercent < 1 {
            throw PolicyFieldReader.invalid(r.field("cpuPercent"), "must be 0 (unlimited) or at least 1")
        }
        return l
    }

    /// Validates limits built in code (a launch override) with the same bounds as the parser.
    public func validated(field: String = "limitsOverride") throws(MiniAppError) -> JailLimits {
        var o = JSONObject()
        o["memoryBytes"] = .int(Int64(clamping: memoryBytes))
        o["pids"] = .int(Int64(clamping: pids))
        o["cpuPercent"] = .int(Int64(clamping: cpuPercent))
        o["wallClockSeconds"] = .double(wallClockSeconds)
        o["openFiles"] = .int(Int64(clamping: openFiles))
        o["fileSizeBytes"] = .int(Int64(clamping: fileSizeBytes))
        o["dataBytes"] = .int(Int64(clamping: dataBytes))
        o["dataInodes"] = .int(Int64(clamping: dataInodes))
        return try JailLimits.parse(try PolicyFieldReader(policy: .object(o), path: field), base: self)
    }
}
