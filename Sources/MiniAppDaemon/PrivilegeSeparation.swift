import Logging
import MiniAppJail
import MiniAppModel
import MiniAppSystem

/// Privilege separation, one step of the start (README "Privilege separation", SECURITY.md):
/// a daemon started as root starts the spawner (the privileged half: C, small, every request
/// checked against the templates it is given), hands its state directory and the worker cgroup
/// directories to its own user, and drops to that user for good — no capability in any set,
/// `no_new_privs`, and its own seccomp filter (`policies/seccomp/daemon.json`). Everything after
/// this step (the Bridge, the services, libcurl, zlib, SQLite, the control API) runs unprivileged;
/// privileged acts on workers are requests to the spawner. Once the start has registered the
/// launch template, `lock` freezes the spawner's template set.
struct PrivilegeSeparation {
    /// The user the daemon runs as from now on.
    let user: DropUser

    /// Whom to drop to: `user` from the configuration, else `miniappd` when that user exists.
    /// nil keeps the start identity: not root (rootless, as ever), not privileged worker mode,
    /// `privilegeSeparation: false` / `--no-drop`, or no user to drop to.
    static func target(_ config: DaemonConfig, mode: JailMode) throws(MiniAppError) -> DropUser? {
        guard CurrentProcess.isRoot, mode == .privileged, config.privilegeSeparation else { return nil }
        if let name = config.user { return try DropUser.parse(name) }
        guard UserDatabase.user(named: DropUser.defaultName) != nil else { return nil }
        return try DropUser.parse(DropUser.defaultName)
    }

    /// The step of the start: drops when there is a user to drop to; a root daemon that keeps
    /// root (`--no-drop`) takes back the state directory a dropped run left (its key files must
    /// be its own).
    static func start(_ config: DaemonConfig, mode: JailMode, jailer: Jailer, layout: StateLayout, policyDir: String,
                      logger: Logger) throws(MiniAppError) -> PrivilegeSeparation? {
        if !CurrentProcess.isRoot && mode == .privileged && config.spawnerSocket != nil {
            // Started unprivileged beside a spawner service (systemd: User=miniappd): nothing
            // to drop, only to confine; the state directory must already be ours.
            try PrivilegeDrop.confine(seccomp: try daemonFilter(policyDir: policyDir))
            logger.notice("running unprivileged as uid \(CurrentProcess.uid); the spawner service keeps the privileges")
            return PrivilegeSeparation(user: .current)
        }
        guard let user = try target(config, mode: mode) else {
            if CurrentProcess.isRoot { try handOver(layout, to: .root) }
            return nil
        }
        let s = try drop(to: user, jailer: jailer, layout: layout, policyDir: policyDir)
        logger.notice("running as uid \(user.uid) gid \(user.gid) from now on; the spawner keeps the privileges")
        return s
    }

    /// As root: the spawner, the cgroup directories, the state directory, then the drop.
    static func drop(to user: DropUser, jailer: Jailer, layout: StateLayout, policyDir: String) throws(MiniAppError) -> PrivilegeSeparation {
        let filter = try daemonFilter(policyDir: policyDir)
        try jailer.prepareDrop(to: user)
        try handOver(layout, to: user)
        try PrivilegeDrop.drop(to: user, seccomp: filter)
        return PrivilegeSeparation(user: user)
    }

    /// After the start's setup: the daemon's launch template registered, the set locked.
    func lock(jailer: Jailer, sdkDir: String) throws(MiniAppError) {
        try jailer.lockTemplates(readOnlyBinds: [JailBind(hostPath: sdkDir, jailPath: "/sdk")])
    }

    /// Gives the state directory to `user` (first start as root, or a tree a root run left):
    /// everything but what lies in the programs' own data directories (their program uids').
    static func handOver(_ layout: StateLayout, to user: DropUser) throws(MiniAppError) {
        do { try PrivilegeDrop.giveTree(layout.root, to: user, keepingChildrenOf: layout.data) } catch {
            throw MiniAppError(.internal, "cannot give the state directory to uid \(user.uid): \(error); check --state-dir")
        }
    }

    /// The daemon's own filter: `seccomp/daemon.json` of the policy directory, else the embedded one.
    static func daemonFilter(policyDir: String) throws(MiniAppError) -> SeccompProgram {
        let name = "seccomp/daemon.json"
        let bytes: [UInt8]
        if let b = try? OwnedFD.open(policyDir + "/" + name).readAll(limit: 1 << 20) {
            bytes = b
        } else if let text = EmbeddedPolicies.files.first(where: { $0.0 == name })?.1 {
            bytes = Array(text.utf8)
        } else {
            throw MiniAppError(.internal, "no \(name): the daemon's seccomp filter is missing from this build")
        }
        return try SeccompCompiler.compile(try SeccompProfile.parse(bytes, source: name), source: name)
    }
}
