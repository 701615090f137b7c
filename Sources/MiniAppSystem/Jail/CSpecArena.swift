import CJail
import Glibc

/// Owns the C memory of one `cjail_spec` (strings, arrays) until the clone has happened: the
/// child works on its own copy-on-write copy, so the parent frees everything right after.
final class CSpecArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit { for b in blocks { free(b) } }

    func str(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func bytes(_ b: [UInt8]) -> UnsafePointer<CChar> {
        let p = malloc(max(1, b.count))!
        b.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: b.count) } }
        blocks.append(p)
        return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
    }

    func array<T>(_ items: [T]) -> UnsafePointer<T>? {
        guard !items.isEmpty else { return nil }
        let p = malloc(MemoryLayout<T>.stride * items.count)!
        blocks.append(p)
        let typed = p.bindMemory(to: T.self, capacity: items.count)
        for (i, it) in items.enumerated() { (typed + i).initialize(to: it) }
        return UnsafePointer(typed)
    }

    /// NULL-terminated `char *const[]`.
    func cstrings(_ items: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?> {
        let ptrs: [UnsafeMutablePointer<CChar>?] = items.map { UnsafeMutablePointer(mutating: str($0)) } + [nil]
        return array(ptrs)!
    }

    func spec(_ p: JailSpawnPlan) -> cjail_spec {
        var s = cjail_spec()
        s.clone_flags = p.cloneFlags
        s.netns_fd = p.netnsFD
        s.user_ns = p.userNamespace == nil ? 0 : 1
        s.unshare_cgroup = p.unshareCgroup ? 1 : 0
        s.root_path = str(p.rootPath)
        s.root_options = str(p.rootOptions)
        s.mounts = array(p.mounts.map(mountOp))
        s.mount_count = UInt32(p.mounts.count)
        s.root_readonly = p.rootReadOnly ? 1 : 0
        s.hostname = str(p.hostname)
        s.workdir = str(p.workdir)
        s.uid = p.uid
        s.gid = p.gid
        s.skip_setgroups = p.userNamespace == nil ? 0 : 1
        s.pdeathsig = p.pdeathsig
        s.rlimits = array(p.rlimits.map { cjail_rlimit(resource: $0.0, _pad: 0, soft: $0.1, hard: $0.2) })
        s.rlimit_count = UInt32(p.rlimits.count)
        s.stdin_fd = p.stdinFD; s.stdout_fd = p.stdoutFD; s.stderr_fd = p.stderrFD; s.bridge_fd = p.bridgeFD
        s.landlock_abi = p.landlockABI
        s.landlock_handled_fs = p.landlockHandledFS
        s.landlock_handled_net = p.landlockHandledNet
        s.landlock_scoped = p.landlockScoped
        s.landlock_rules = array(p.landlockRules.map { cjail_landlock_rule(path: str($0.path), access: $0.access) })
        s.landlock_rule_count = UInt32(p.landlockRules.count)
        s.filters = array(p.filters.map { cjail_filter(insns: UnsafeRawPointer(bytes($0)), count: UInt32($0.count / 8), _pad: 0) })
        s.filter_count = UInt32(p.filters.count)
        s.reaper = p.reaper ? 1 : 0
        s.exec_paths = array(p.execPaths.map { Optional(str($0)) })
        s.exec_path_count = UInt32(p.execPaths.count)
        s.argv = cstrings(p.argv)
        s.envp = cstrings(p.env)
        return s
    }

    private func mountOp(_ op: JailSpawnPlan.MountOp) -> cjail_mount_op {
        var m = cjail_mount_op()
        switch op {
        case .dir(let t, let mode):
            m.kind = Int32(CJAIL_MNT_DIR.rawValue); m.target = str(t); m.mode = mode
        case .bind(let s, let t, let isDir, let attrs):
            m.kind = Int32(CJAIL_MNT_BIND.rawValue); m.source = str(s); m.target = str(t)
            m.source_is_dir = isDir ? 1 : 0; m.attr_set = attrs
        case .tmpfs(let t, let opts, let flags):
            m.kind = Int32(CJAIL_MNT_TMPFS.rawValue); m.target = str(t); m.data = str(opts); m.attr_set = flags
        case .proc(let t, let flags):
            m.kind = Int32(CJAIL_MNT_PROC.rawValue); m.target = str(t); m.attr_set = flags
        case .symlink(let t, let to):
            m.kind = Int32(CJAIL_MNT_SYMLINK.rawValue); m.target = str(t); m.data = str(to)
        case .file(let t, let contents, let mode):
            m.kind = Int32(CJAIL_MNT_FILE.rawValue); m.target = str(t); m.data = bytes(contents)
            m.data_len = contents.count; m.mode = mode
        }
        return m
    }
}
