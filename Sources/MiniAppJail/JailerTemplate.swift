import MiniAppModel
import MiniAppSystem

extension Jailer {
    /// The spawner template `launch` must match (SpawnerTemplate): this jailer's policy with
    /// the roots in place of the program's directories, the launch's extra read-only binds and
    /// limits, and the ids programs get. One per variant, registered with the slot at first use.
    func templateID(_ launch: JailLaunch, limits: JailLimits) throws(MiniAppError) -> UInt32 {
        let key = launch.extraReadOnlyBinds.map { "\($0.hostPath)\u{0}\($0.jailPath)" }.joined(separator: "\u{0}") + "\u{1}\(limits)"
        if let id = templateIDs.withLock({ $0[key] }) { return id }
        let id = try spawner.templateID(template(binds: launch.extraReadOnlyBinds, limits: limits))
        templateIDs.withLock { $0[key] = id }
        return id
    }

    func template(binds: [JailBind], limits: JailLimits) -> SpawnerTemplate {
        var probe = JailLaunch(programId: "template", argv: ["/"])
        probe.appDir = appRoot
        probe.dataDir = dataRoot
        probe.extraReadOnlyBinds = binds
        let id = configuration.policy.identity
        var t: SpawnerTemplate
        if mode == .privileged {
            let plan = makePlan(probe, limits: limits, uid: id.uidRangeStart, gid: id.uidRangeStart, pipes: nil)
            t = SpawnerTemplate(plan: plan, uidMin: id.uidRangeStart, uidCount: id.uidRangeCount)
        } else {
            let plan = makePlan(probe, limits: limits, uid: id.rootlessUid, gid: id.rootlessGid, pipes: nil)
            t = SpawnerTemplate(plan: plan, uidMin: min(id.rootlessUid, id.rootlessGid), uidCount: max(id.rootlessUid, id.rootlessGid) - min(id.rootlessUid, id.rootlessGid) + 1)
            t.outside = (CurrentProcess.uid, CurrentProcess.gid)
        }
        t.allowsNetnsFD = netPool != nil
        t.cgroupDirectories = configuration.cgroupDriver.baseDirectories
        return t
    }
}
