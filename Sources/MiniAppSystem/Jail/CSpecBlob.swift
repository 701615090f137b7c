import CJail
import Glibc

/// Lays out one `cjail_spec` and everything it points to in a single position-independent
/// buffer: every pointer field holds an offset from the buffer's start (0 = NULL). The buffer
/// travels to the spawner process in a memfd, where `cjail_spec_unpack` (spec_blob.c) checks
/// each offset and turns it back into a pointer. The spec struct itself sits at offset 0, so no
/// real item ever has offset 0.
final class CSpecBlob {
    private var bytes: [UInt8]

    init() { bytes = [UInt8](repeating: 0, count: MemoryLayout<cjail_spec>.stride) }

    /// The finished blob for `plan` (fds are not part of it: they travel as SCM_RIGHTS).
    static func make(_ plan: JailSpawnPlan) -> [UInt8] {
        let b = CSpecBlob()
        var spec = b.spec(plan)
        withUnsafeBytes(of: &spec) { b.bytes.replaceSubrange(0..<$0.count, with: $0) }
        return b.bytes
    }

    private func align8() { while bytes.count % 8 != 0 { bytes.append(0) } }

    private func str(_ s: String) -> UnsafePointer<CChar>? {
        let off = bytes.count
        bytes += s.utf8
        bytes.append(0)
        return UnsafePointer(bitPattern: off)
    }

    private func raw(_ b: [UInt8]) -> UnsafePointer<CChar>? {
        align8()
        let off = bytes.count
        bytes += b.isEmpty ? [0] : b
        return UnsafePointer(bitPattern: off)
    }

    private func array<T>(_ items: [T]) -> UnsafePointer<T>? {
        guard !items.isEmpty else { return nil }
        align8()
        let off = bytes.count
        items.withUnsafeBytes { bytes += $0 }
        return UnsafePointer(bitPattern: off)
    }

    /// NULL-terminated `char *const[]`.
    private func cstrings(_ items: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?>? {
        let ptrs: [UnsafeMutablePointer<CChar>?] = items.map { UnsafeMutablePointer(mutating: str($0)) } + [nil]
        return array(ptrs)
    }

    private func spec(_ p: JailSpawnPlan) -> cjail_spec {
        var s = cjail_spec()
        s.clone_flags = p.cloneFlags
        s.netns_fd = -1
        s.user_ns = p.userNamespace == nil ? 0 : 1
        s.unshare_cgroup = p.unshareCgroup ? 1 : 0
        s.root_path = str(p.rootPath)
        s.root_options = str(p.rootOptions)
        s.mounts = array(p.mounts.map(mountOp))
        s.mount_count = UInt32(p.mounts.count)
        s.static_mount_count = UInt32(min(p.staticMountCount, p.mounts.count))
        s.root_readonly = p.rootReadOnly ? 1 : 0
        s.hostname = str(p.hostname)
        s.workdir = str(p.workdir)
        s.uid = p.uid
        s.gid = p.gid
        s.skip_setgroups = p.userNamespace == nil ? 0 : 1
        s.pdeathsig = p.pdeathsig
        s.rlimits = array(p.rlimits.map { cjail_rlimit(resource: $0.0, _pad: 0, soft: $0.1, hard: $0.2) })
        s.rlimit_count = UInt32(p.rlimits.count)
        s.stdin_fd = -1; s.stdout_fd = -1; s.stderr_fd = -1; s.bridge_fd = -1
        s.landlock_abi = p.landlockABI
        s.landlock_handled_fs = p.landlockHandledFS
        s.landlock_handled_net = p.landlockHandledNet
        s.landlock_scoped = p.landlockScoped
        s.landlock_rules = array(p.landlockRules.map { cjail_landlock_rule(path: str($0.path), access: $0.access) })
        s.landlock_rule_count = UInt32(p.landlockRules.count)
        s.filters = array(p.filters.map { cjail_filter(insns: UnsafeRawPointer(raw($0)), count: UInt32($0.count / 8), _pad: 0) })
        s.filter_count = UInt32(p.filters.count)
        s.reaper = p.reaper ? 1 : 0
        s.exec_paths = array(p.execPaths.map { str($0) })
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
        case .bind(let s, let t, let isDir, let attrs), .mask(let s, let t, let isDir, let attrs):
            // Same fields; the C side tells a bind from a mask by the kind alone.
            if case .mask = op { m.kind = Int32(CJAIL_MNT_MASK.rawValue) } else { m.kind = Int32(CJAIL_MNT_BIND.rawValue) }
            m.source = str(s); m.target = str(t)
            m.source_is_dir = isDir ? 1 : 0; m.attr_set = attrs
        case .tmpfs(let t, let opts, let flags):
            m.kind = Int32(CJAIL_MNT_TMPFS.rawValue); m.target = str(t); m.data = str(opts); m.attr_set = flags
        case .proc(let t, let flags):
            m.kind = Int32(CJAIL_MNT_PROC.rawValue); m.target = str(t); m.attr_set = flags
        case .symlink(let t, let to):
            m.kind = Int32(CJAIL_MNT_SYMLINK.rawValue); m.target = str(t); m.data = str(to)
        case .setattr(let t, let attrs):
            m.kind = Int32(CJAIL_MNT_SETATTR.rawValue); m.target = str(t); m.attr_set = attrs
        case .file(let t, let contents, let mode):
            m.kind = Int32(CJAIL_MNT_FILE.rawValue); m.target = str(t); m.data = raw(contents)
            m.data_len = contents.count; m.mode = mode
        }
        return m
    }
}
