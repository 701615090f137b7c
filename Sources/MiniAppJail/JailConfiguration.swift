public import MiniAppModel
public import MiniAppSystem

/// A jail policy loaded from a policy directory and fully checked against this host: the
/// profile parsed and compiled, every host path present. Everything that can be wrong with a
/// policy fails here, at load, never at spawn.
public struct JailConfiguration: Sendable {
    /// The parsed jail.json.
    public var policy: JailPolicy
    /// The parsed seccomp profile it names.
    public var seccompProfile: SeccompProfile
    /// The profile compiled for this kernel.
    public var seccompProgram: SeccompProgram
    /// Landlock ABI of this kernel (0 when absent or disabled by the policy).
    public var landlockABI: Int32
    /// The cgroup hierarchy chosen at runtime.
    public var cgroupDriver: CgroupDriver

    /// Guarantees this configuration switches off, one sentence each, for the daemon's log and
    /// the CLI's stderr (a weakened jail is allowed where the host cannot do better, never quiet).
    public var warnings: [String] {
        var w: [String] = []
        if case .none = cgroupDriver {
            w.append("cgroup.version is \"none\": workers have NO memory, pids or CPU limits and cannot be suspended (rlimits only); delegate a cgroup subtree to the daemon to restore them")
        }
        if policy.landlock.mode != .off && landlockABI == 0 {
            w.append("Landlock is not available on this kernel: the filesystem and TCP rules of that layer are not applied")
        } else if policy.landlock.mode == .off {
            w.append("landlock.mode is \"off\": the Landlock layer (filesystem and TCP rules) is not applied")
        }
        return w
    }
}

extension JailPolicy {
    /// Loads `<policyDir>/jail.json` and the seccomp profile it names, validates both and
    /// compiles the profile. Throws `POLICY_INVALID` (naming the field) or `JAIL_UNAVAILABLE`.
    public static func load(policyDir: String, cgroupOverride: JailPolicy.Cgroup? = nil) throws(MiniAppError) -> JailConfiguration {
        var policy = try parse(try readPolicyFile("\(policyDir)/jail.json", field: "jail.json"))
        if let c = cgroupOverride { policy.cgroup = c }
        return try configure(policy, policyDir: policyDir)
    }

    /// Checks a parsed `policy` against the host and compiles its profile from `policyDir`.
    public static func configure(_ policy: JailPolicy, policyDir: String) throws(MiniAppError) -> JailConfiguration {
        for (i, p) in policy.filesystem.readOnlyHostPaths.enumerated() where !isDirectory(p) {
            throw PolicyFieldReader.invalid("filesystem.readOnlyHostPaths[\(i)]", "'\(p)' does not exist or is not a directory on this host")
        }
        for d in policy.filesystem.devices where !FileSystem.exists("/dev/\(d)") {
            throw PolicyFieldReader.invalid("filesystem.devices", "/dev/\(d) does not exist on this host")
        }
        let profilePath = "\(policyDir)/\(policy.seccompProfile)"
        let profile = try SeccompProfile.parse(try readPolicyFile(profilePath, field: "seccompProfile"), source: policy.seccompProfile)
        let program = try SeccompCompiler.compile(profile, source: policy.seccompProfile)
        var abi: Int32 = 0
        if policy.landlock.mode != .off {
            abi = JailSpawner.landlockABI
            if abi == 0 && policy.landlock.mode == .required {
                throw MiniAppError(.jailUnavailable, "Landlock is required by the policy but this kernel does not offer it; boot with lsm=…,landlock or set landlock.mode to bestEffort")
            }
        }
        let driver = try CgroupDriver.select(policy.cgroup)
        return JailConfiguration(policy: policy, seccompProfile: profile, seccompProgram: program, landlockABI: abi, cgroupDriver: driver)
    }

    static func readPolicyFile(_ path: String, field: String) throws(MiniAppError) -> [UInt8] {
        do {
            let fd = try OwnedFD.open(path)
            return try fd.readAll(limit: 4 << 20)
        } catch {
            throw MiniAppError(.policyInvalid, "cannot read policy file \(path): \(error); check --policy-dir", data: ["field": field], cause: error)
        }
    }
}

func isDirectory(_ p: String) -> Bool { FileSystem.isDirectory(p) }

func exists(_ p: String) -> Bool { FileSystem.exists(p) }
