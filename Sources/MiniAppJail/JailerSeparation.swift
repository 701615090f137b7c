public import MiniAppModel
public import MiniAppSystem

/// What a jailer does for a daemon that drops from root to `user` (privilege separation): the
/// privileged half stays with the spawner, started here while the process still is root; the
/// worker cgroups' parent directories are delegated to `user` (chown, as systemd's
/// `Delegate=yes` does); afterwards the templates are registered and locked, and cgroup kills
/// go through the spawner.
extension Jailer {
    /// As root, before the drop: starts the spawner and hands the cgroup directories workers
    /// are made in to `user`. Throws `JAIL_UNAVAILABLE` naming the directory it could not hand over.
    public func prepareDrop(to user: DropUser) throws(MiniAppError) {
        guard mode == .privileged else { return }
        netPool?.settle()
        if spawner.servicePath == nil { try spawner.start() } // a service is connected after the drop, as the user it admits
        let v2 = if case .v2 = configuration.cgroupDriver { true } else { false }
        for dir in configuration.cgroupDriver.baseDirectories {
            do { try CgroupFiles.mkdirs(dir) } catch {
                throw MiniAppError(.jailUnavailable, "cannot create the worker cgroup directory \(dir): \(error)", cause: error)
            }
            try Self.delegate(dir, to: user, v2: v2)
        }
    }

    /// Delegation, as cgroup-v2.rst describes it: the directory (mkdir/rmdir of children; their
    /// files are then owned by their creator) and, in v2, the parent-side files a delegatee
    /// writes (`cgroup.procs`, `cgroup.subtree_control`, `cgroup.threads`). Nothing above it:
    /// the limits the service manager put on the daemon's own cgroup stay out of its reach.
    /// In v1 (this machine) the same chown gives it the directory; v1 has no delegation model,
    /// so its kills and attaches go through the spawner, never through a file it was given.
    static func delegate(_ dir: String, to user: DropUser, v2: Bool) throws(MiniAppError) {
        let files = v2 ? ["", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"] : [""]
        for f in files where f == "" || FileSystem.exists(dir + f) {
            do { try FileSystem.setOwner(dir + f, uid: user.uid, gid: user.gid) } catch {
                throw MiniAppError(.jailUnavailable, "cannot delegate \(dir + f) to uid \(user.uid): \(error)",
                                   data: ["step": "cgroup", "errno": "\(error.errno)"])
            }
        }
    }

    /// After the drop and the start's own setup: registers the template of the daemon's launches
    /// (its read-only binds, the policy's limits as ceilings), locks the spawner's template set
    /// (a compromised daemon can add no other: a bind of `/`, a wider uid range), and routes
    /// cgroup kills to the spawner. Returns the template id.
    @discardableResult
    public func lockTemplates(readOnlyBinds: [JailBind]) throws(MiniAppError) -> UInt32 {
        try spawner.start() // a spawner service: connected now, as the dropped user
        var probe = JailLaunch(programId: "template", argv: ["/"])
        probe.extraReadOnlyBinds = readOnlyBinds
        let id = try templateID(probe, limits: configuration.policy.limits)
        spawner.lockTemplates()
        let slot = spawner
        PrivilegeDrop.killCgroups { name in slot.killCgroup(name, template: id) }
        return id
    }
}
