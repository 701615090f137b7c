import MiniAppModel
import MiniAppSystem

/// Turns policy + launch into the ordered filesystem operations and Landlock rules of one
/// worker (bubblewrap's "flags become a list of setup ops first"). Pure planning: the only
/// system calls are stats/readlinks of host paths to decide file vs directory vs symlink.
struct JailMountPlan {
    static let attrRdonly: UInt64 = 0x1, attrNosuid: UInt64 = 0x2, attrNodev: UInt64 = 0x4, attrNoexec: UInt64 = 0x8
    static let msRdonly: UInt64 = 1, msNosuid: UInt64 = 2, msNodev: UInt64 = 4, msNoexec: UInt64 = 8

    let root: String
    private(set) var ops: [JailSpawnPlan.MountOp] = []
    private var made: Set<String> = ["/"]

    init(root: String) { self.root = root }

    /// Creates the jail directories above `jailPath` (not `jailPath` itself).
    mutating func parents(_ jailPath: String) {
        var cur = ""
        let parts = jailPath.split(separator: "/")
        for p in parts.dropLast() {
            cur += "/\(p)"
            if made.insert(cur).inserted { ops.append(.dir(target: root + cur, mode: 0o755)) }
        }
    }

    mutating func dir(_ jailPath: String, mode: UInt32 = 0o755) {
        parents(jailPath)
        if made.insert(jailPath).inserted { ops.append(.dir(target: root + jailPath, mode: mode)) }
    }

    mutating func bind(_ host: String, at jailPath: String, readOnly: Bool, extra: UInt64 = 0) {
        bindRaw(host, at: jailPath, attrs: (readOnly ? Self.attrRdonly : 0) | Self.attrNosuid | Self.attrNodev | extra)
    }

    /// One allowlisted device node. It must NOT get MOUNT_ATTR_NODEV: on a nodev mount every
    /// open of a device node fails with EACCES (that made /dev/null unusable in every worker).
    /// Still nosuid and noexec; the /dev tmpfs around it is nodev, so a node that appeared there
    /// by any other way would not open. Read-only: that does not stop writing *to the device*
    /// (the kernel skips the mount's write check for device files), but it stops changing the
    /// host's node itself: utimes/touch on the bound /dev/null would otherwise update the
    /// host's inode (it is 0666), chmod/chown/xattrs are refused with EROFS before any DAC check.
    /// (The attributes come from `sealDev`, one recursive mount_setattr over /dev and all its
    /// nodes once it is populated, instead of one per node.)
    mutating func device(_ name: String) {
        bindRaw("/dev/\(name)", at: "/dev/\(name)", attrs: 0)
    }

    /// /dev populated: read-only, nosuid and noexec, recursively, on the tmpfs and every node
    /// bound into it (never nodev: see `device`; the tmpfs itself was mounted nodev).
    mutating func sealDev() {
        ops.append(.setattr(target: root + "/dev", attrs: Self.attrRdonly | Self.attrNosuid | Self.attrNoexec))
    }

    private mutating func bindRaw(_ host: String, at jailPath: String, attrs: UInt64) {
        parents(jailPath)
        made.insert(jailPath)
        ops.append(.bind(source: host, target: root + jailPath, isDir: isDirectory(host), attrs: attrs))
    }

    mutating func symlink(_ jailPath: String, to target: String) {
        parents(jailPath)
        made.insert(jailPath)
        ops.append(.symlink(target: root + jailPath, pointsTo: target))
    }

    mutating func file(_ jailPath: String, _ text: String, mode: UInt32 = 0o644) {
        parents(jailPath)
        ops.append(.file(target: root + jailPath, contents: Array(text.utf8), mode: mode))
    }

    mutating func tmpfs(_ jailPath: String, options: String, flags: UInt64) {
        parents(jailPath)
        made.insert(jailPath)
        ops.append(.tmpfs(target: root + jailPath, options: options, flags: flags))
    }

    mutating func proc(_ jailPath: String) {
        parents(jailPath)
        made.insert(jailPath)
        ops.append(.proc(target: root + jailPath, flags: Self.msNosuid | Self.msNodev | Self.msNoexec))
    }

    /// Entries of the fresh /proc that identify the host, not the worker (runc's maskedPaths):
    /// the kernel's command line (boot parameters, often a root device UUID or a serial) and
    /// the boot id (the same for every worker and jail of one boot, a cross-program tracking
    /// id), and the kernel-internal views runc masks too (`kcore`, `keys`, timers, scheduler
    /// debug, latency stats; ACPI and SCSI device trees). A file reads as empty (/dev/null is
    /// bound over it), a directory is an empty read-only tmpfs. Only those the host's /proc
    /// has (the worker's /proc shows the same kernel) are planned.
    static let maskedProcFiles = ["cmdline", "sys/kernel/random/boot_id", "kcore", "keys", "timer_list", "sched_debug", "latency_stats"]
    static let maskedProcDirs = ["acpi", "scsi", "asound"]

    /// Masks `maskedProcFiles` and `maskedProcDirs` under the jail's /proc (after its mount).
    mutating func maskProc() {
        for f in Self.maskedProcFiles where FileSystem.exists("/proc/\(f)") {
            ops.append(.mask(source: "/dev/null", target: root + "/proc/\(f)", isDir: false, attrs: Self.attrRdonly | Self.attrNosuid | Self.attrNoexec))
        }
        for d in Self.maskedProcDirs where isDirectory("/proc/\(d)") {
            ops.append(.mask(source: "", target: root + "/proc/\(d)", isDir: true, attrs: 0))
        }
    }

    /// The launch-independent part of a worker's filesystem (the same for every program under
    /// one policy): made once per jailer, and ahead of time by a warm jail. Its ops come first
    /// in every plan (`staticCount`).
    static func shared(root: String, policy: JailPolicy) -> JailMountPlan {
        var m = JailMountPlan(root: root)
        let fs = policy.filesystem
        for p in fs.readOnlyHostPaths { m.bind(p, at: JailPathRules.normalized(p), readOnly: true) }
        for s in fs.symlinks { m.symlink(s.path, to: s.target) }
        m.etcFromHost(fs)
        // /dev: a small tmpfs holding only bind mounts of harmless host nodes (no /dev/mem,
        // no block devices, no ttys of the host).
        m.tmpfs("/dev", options: "mode=0755,size=65536", flags: msNosuid | msNodev | msNoexec)
        for d in fs.devices { m.device(d) }
        for (n, t) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            m.symlink("/dev/\(n)", to: t)
        }
        // Populated: nothing may be added to /dev any more (no FIFOs or files next to the nodes,
        // no symlink swapped in for /dev/stdout).
        m.sealDev()
        m.proc("/proc")
        m.maskProc()
        m.tmpfs("/tmp", options: "mode=1777,size=\(fs.tmpSizeBytes),nr_inodes=\(fs.tmpInodes)", flags: msNosuid | msNodev)
        return m
    }

    /// The whole filesystem of a worker: `shared` (ops [0, staticCount)), then what depends on
    /// the launch: the generated /etc files naming the program's user, /app, /data, extra binds.
    static func build(shared: JailMountPlan, policy: JailPolicy, launch: JailLaunch, uid: UInt32, gid: UInt32) -> JailMountPlan {
        var m = shared
        m.etcGenerated(policy.filesystem, uid: uid, gid: gid, hostname: policy.hostname)
        if let app = launch.appDir { m.bind(app, at: "/app", readOnly: true) } else { m.dir("/app") }
        if let data = launch.dataDir { m.bind(data, at: "/data", readOnly: false) } else { m.dir("/data") }
        for b in launch.extraReadOnlyBinds { m.bind(b.hostPath, at: JailPathRules.normalized(b.jailPath), readOnly: true) }
        return m
    }

    /// /etc holds only the allowlisted host files (CA certificates, timezone, loader cache) and
    /// generated passwd/group/hosts naming the program user, nothing about the host's accounts.
    private mutating func etcFromHost(_ fs: JailPolicy.Filesystem) {
        dir("/etc")
        for p in fs.etc {
            guard let st = try? FileSystem.status(p, followSymlinks: false) else { continue } // optional: absent on this host
            if st.kind == .symlink, let t = FileSystem.symlinkTarget(p) {
                symlink(p, to: t)
            } else {
                bind(p, at: p, readOnly: true)
            }
        }
    }

    private mutating func etcGenerated(_ fs: JailPolicy.Filesystem, uid: UInt32, gid: UInt32, hostname: String) {
        guard fs.generateEtc else { return }
        file("/etc/passwd", "miniapp:x:\(uid):\(gid):mini-program:/data:/usr/sbin/nologin\n")
        file("/etc/group", "miniapp:x:\(gid):\n")
        file("/etc/hosts", "127.0.0.1 localhost \(hostname)\n::1 localhost\n")
    }
}

/// Landlock access rights (include/uapi/linux/landlock.h).
enum LandlockAccess {
    static let execute: UInt64 = 1 << 0, writeFile: UInt64 = 1 << 1, readFile: UInt64 = 1 << 2, readDir: UInt64 = 1 << 3
    static let truncate: UInt64 = 1 << 14, ioctlDev: UInt64 = 1 << 15
    static let makeChar: UInt64 = 1 << 6, makeBlock: UInt64 = 1 << 11

    /// Every fs right the kernel of `abi` knows (handling all = deny by default).
    static func handled(abi: Int32) -> UInt64 {
        switch abi {
        case ..<1: 0
        case 1: (1 << 13) - 1
        case 2: (1 << 14) - 1
        case 3, 4: (1 << 15) - 1
        default: (1 << 16) - 1
        }
    }

    /// Rules: read-only trees, read-write trees, /dev nodes. `handled` masks each to the ABI.
    static func rules(abi: Int32, extraReadOnly: [String]) -> [(path: String, access: UInt64)] {
        let all = handled(abi: abi)
        let ro = execute | readFile | readDir
        let rw = all & ~(makeChar | makeBlock)
        var r: [(String, UInt64)] = [("/", readDir)]
        for p in ["/usr", "/app", "/etc", "/proc"] + extraReadOnly { r.append((p, ro)) }
        for p in ["/data", "/tmp"] { r.append((p, rw)) }
        r.append(("/dev", (readFile | writeFile | readDir | truncate | ioctlDev) & all))
        return r.map { ($0.0, $0.1 & all) }
    }
}
