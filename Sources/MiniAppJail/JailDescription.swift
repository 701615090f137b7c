public import MiniAppModel
import MiniAppSystem

/// One filesystem step of a worker's jail, for a reviewer (`miniapp policy explain`): made by
/// the same mount planner the spawner runs, so it lists exactly what a worker gets.
public struct JailMountDescription: Sendable, Equatable {
    /// `bind`, `tmpfs`, `proc`, `symlink`, `file`, `dir` or `setattr`.
    public var kind: String
    /// The host path (bind), the link target (symlink), or the mount options.
    public var source: String
    /// The path inside the jail.
    public var target: String
    /// Whether the jail sees it read-only.
    public var readOnly: Bool
    /// Mount flags in words (nosuid, nodev, noexec).
    public var flags: [String]
}

/// One Landlock rule: a path inside the jail and what it allows.
public struct JailLandlockDescription: Sendable, Equatable {
    public var path: String
    /// `read-only`, `read-write`, `list only` or `devices`.
    public var access: String
}

extension JailPolicy {
    /// The filesystem of a worker launched with `launch` as uid/gid, in the order the spawner
    /// builds it (`JailMountPlan`), without the directories it creates on the way.
    public func describeMounts(launch: JailLaunch, uid: UInt32, gid: UInt32) -> [JailMountDescription] {
        let plan = JailMountPlan.build(shared: JailMountPlan.shared(root: "", policy: self), policy: self, launch: launch, uid: uid, gid: gid)
        return plan.ops.compactMap(Self.describe)
    }

    /// The Landlock rules of a worker on a kernel with Landlock ABI `abi` (what the spawner
    /// installs), given the extra read-only binds of the launch.
    public func describeLandlock(abi: Int32, launch: JailLaunch) -> [JailLandlockDescription] {
        guard landlock.mode != .off, abi > 0 else { return [] }
        let extra = launch.extraReadOnlyBinds.map { JailPathRules.normalized($0.jailPath) }
        return LandlockAccess.rules(abi: abi, extraReadOnly: extra).map { rule in
            let a = rule.access
            let word: String
            if a == LandlockAccess.readDir { word = "list only" }
            else if rule.path == "/dev" { word = "devices (read, write, ioctl)" }
            else if a & LandlockAccess.writeFile != 0 { word = "read-write" }
            else { word = "read-only" }
            return JailLandlockDescription(path: rule.path, access: word)
        }
    }

    private static func describe(_ op: JailSpawnPlan.MountOp) -> JailMountDescription? {
        switch op {
        case .dir: return nil
        case .bind(let source, let target, _, let attrs):
            return JailMountDescription(kind: "bind", source: source, target: target, readOnly: attrs & JailMountPlan.attrRdonly != 0,
                                        flags: words(attrs, rdonly: JailMountPlan.attrRdonly, nosuid: JailMountPlan.attrNosuid, nodev: JailMountPlan.attrNodev, noexec: JailMountPlan.attrNoexec))
        case .tmpfs(let target, let options, let flags):
            return JailMountDescription(kind: "tmpfs", source: options, target: target, readOnly: false,
                                        flags: words(flags, rdonly: JailMountPlan.msRdonly, nosuid: JailMountPlan.msNosuid, nodev: JailMountPlan.msNodev, noexec: JailMountPlan.msNoexec))
        case .proc(let target, let flags):
            return JailMountDescription(kind: "proc", source: "proc", target: target, readOnly: false,
                                        flags: words(flags, rdonly: JailMountPlan.msRdonly, nosuid: JailMountPlan.msNosuid, nodev: JailMountPlan.msNodev, noexec: JailMountPlan.msNoexec))
        // Both live in the jail's root tmpfs, which is made read-only once set up.
        case .symlink(let target, let pointsTo):
            return JailMountDescription(kind: "symlink", source: pointsTo, target: target, readOnly: true, flags: [])
        case .file(let target, _, _):
            return JailMountDescription(kind: "file", source: "generated", target: target, readOnly: true, flags: [])
        case .mask(let source, let target, let isDir, _):
            return JailMountDescription(kind: "mask", source: isDir ? "empty tmpfs" : source, target: target, readOnly: true, flags: ["nosuid", "noexec"])
        case .setattr(let target, let attrs):
            return JailMountDescription(kind: "setattr", source: "", target: target, readOnly: attrs & JailMountPlan.attrRdonly != 0,
                                        flags: words(attrs, rdonly: JailMountPlan.attrRdonly, nosuid: JailMountPlan.attrNosuid, nodev: JailMountPlan.attrNodev, noexec: JailMountPlan.attrNoexec))
        }
    }

    private static func words(_ bits: UInt64, rdonly: UInt64, nosuid: UInt64, nodev: UInt64, noexec: UInt64) -> [String] {
        [(rdonly, "ro"), (nosuid, "nosuid"), (nodev, "nodev"), (noexec, "noexec")].filter { bits & $0.0 != 0 }.map(\.1)
    }
}
