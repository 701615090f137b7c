public import MiniAppModel
public import MiniAppSystem
import Synchronization

/// Builds jailed workers from one validated jail policy: one per policy (a SIGHUP reload makes
/// a new one). It plans each launch (uid, cgroup, pipes, mounts, Landlock, seccomp: a
/// `JailSpawnPlan`) and hands it to the spawner process (`SpawnerSlot`, `miniappd-spawner`),
/// which clones the worker as this process's child; it never clones itself. It owns what is
/// made ahead of launches: worker cgroups (`CgroupPool`), network namespaces
/// (`NetNamespacePool`, cold spawns only) and, with `warmJails`, the spawner's warm jails.
///
///     let config = try JailPolicy.load(policyDir: "/etc/miniappd/policies")
///     let jailer = try Jailer(configuration: config, stateDir: "/var/lib/miniapp", mode: .privileged)
///     var launch = JailLaunch(programId: "com.partner.app", argv: ["/usr/bin/node", "/app/main.js"])
///     launch.appDir = pkgDir; launch.dataDir = dataDir; launch.bridgeFD = sock
///     let worker = try jailer.spawn(launch)
///     worker.onExit { exit in … }
public final class Jailer: Sendable {
    public let configuration: JailConfiguration
    public let mode: JailMode
    let stateDir: String
    let rootDir: String
    let uids: UidAllocator?
    /// Fresh network namespaces made ahead of spawns (privileged mode with `namespaces.net`).
    let netPool: NetNamespacePool?
    /// Two ready namespaces cover back-to-back spawns; a burst beyond that falls back to
    /// CLONE_NEWNET (same isolation, just slower), so the pool never delays a spawn.
    static let netPoolSize = 2
    /// Worker cgroups made ahead (nil: each spawn creates its own).
    let cgroupPool: CgroupPool?
    /// Launches ask the spawner for a warm jail.
    public let warmJails: Bool
    /// The spawner process it clones through.
    let spawner: SpawnerSlot
    /// The launch-independent part of every worker's filesystem, planned once (host paths
    /// looked up once; a reload makes a new jailer).
    let sharedMounts: JailMountPlan
    /// Where launches' program and data directories must be (the spawner checks each launch's
    /// /app and /data sources resolve beneath them: SpawnerTemplate).
    let appRoot: String, dataRoot: String
    /// The spawner template of each launch variant (its extra binds and limits), by key.
    let templateIDs = Mutex<[String: UInt32]>([:])
    /// Per-program /data volumes (nil: /data is a plain directory, unlimited).
    public let dataVolumes: JailDataVolumes?

    /// Prepares the state directory (`<stateDir>/jail`: uid table, empty mountpoint of the
    /// worker roots). Throws `JAIL_UNAVAILABLE` when privileged mode is asked without root.
    /// `warmCgroups` > 0 keeps that many worker cgroups made ahead (a long-running supervisor;
    /// they are removed by `drainPools` or the next start's sweep). A one-shot caller such as
    /// `miniapp jail` leaves it 0 so it leaves nothing behind.
    /// `appRoot` and `dataRoot`: every launch's `appDir` and `dataDir` must be a directory
    /// beneath them (the spawner refuses others; "/" allows any).
    /// `warmJails` keeps a warm jail ready in the spawner: a worker cloned ahead of time with
    /// its namespaces and the launch-independent part of its filesystem, which the next launch
    /// takes (spawner_warm.c). It makes its own network namespace, so the namespace pool is off.
    /// `dataVolumes` (privileged mode): each launch's data dir becomes the program's own
    /// size- and inode-limited filesystem (`limits.dataBytes`, `limits.dataInodes`).
    public init(configuration: JailConfiguration, stateDir: String, mode: JailMode, hostIDFiles: HostIDFiles = .system,
                warmCgroups: Int = 0, warmJails: Bool = false, spawner: SpawnerSlot = .shared,
                appRoot: String = "/", dataRoot: String = "/", dataVolumes: JailDataVolumes? = nil) throws(MiniAppError) {
        if mode == .privileged && PrivilegeDrop.isDropped {
            throw MiniAppError(.jailUnavailable, "this daemon dropped its privileges: it keeps the jail policy it started with (the spawner's templates are locked); restart miniappd to apply a new one")
        }
        if mode == .privileged && !CurrentProcess.isRoot && spawner.servicePath == nil {
            throw MiniAppError(.jailUnavailable, "privileged jail mode needs root or a spawner service (--spawner-socket); run the daemon as root or use rootless mode")
        }
        if mode == .rootless { try Self.checkRootlessGroups(CurrentProcess.supplementaryGroups, primary: CurrentProcess.effectiveGID) }
        if mode == .privileged { try hostIDFiles.checkFree(configuration.policy.identity) }
        self.configuration = configuration
        self.mode = mode
        self.stateDir = stateDir
        rootDir = "\(stateDir)/jail/root"
        self.appRoot = appRoot
        self.dataRoot = dataRoot
        sharedMounts = JailMountPlan.shared(root: rootDir, policy: configuration.policy)
        let id = configuration.policy.identity
        uids = mode == .privileged ? try UidAllocator(stateDir: stateDir, rangeStart: id.uidRangeStart, rangeCount: id.uidRangeCount) : nil
        self.warmJails = warmJails
        self.spawner = spawner
        self.dataVolumes = mode == .privileged ? dataVolumes : nil
        // Made by this process: only as root (beside a spawner service, each spawn makes its own).
        netPool = mode == .privileged && CurrentProcess.isRoot && configuration.policy.namespaces.net && !warmJails
            ? NetNamespacePool(size: Self.netPoolSize) : nil
        let l = configuration.policy.limits
        // Warm jails in pooled cgroups take one more (a launch lends a spare for the next jail).
        cgroupPool = warmCgroups > 0
            ? CgroupPool(driver: configuration.cgroupDriver, limits: CgroupLimits(memoryBytes: l.memoryBytes, pids: l.pids, cpuPercent: l.cpuPercent),
                         size: warmCgroups + (warmJails ? 1 : 0))
            : nil
        JailSpawner.prepare(spawner)
        do { try CgroupFiles.mkdirs(rootDir) } catch {
            throw MiniAppError(.jailUnavailable, "cannot create \(rootDir): \(error); pass a writable state directory", cause: error)
        }
    }

    /// Rootless mode refuses to start when the daemon's user has supplementary groups. A worker
    /// would keep them: an unprivileged parent must write "deny" to /proc/PID/setgroups before it
    /// may map gids (CVE-2014-8989: dropping groups could otherwise unlock "negative" group
    /// permissions), so nothing inside the user namespace can drop them either, and every file
    /// readable by one of those groups (ssl-cert's /etc/ssl/private, a docker group's socket...)
    /// would be readable by untrusted code through any path it reaches. Fail closed: the operator
    /// removes the groups (systemd: no SupplementaryGroups=; `setpriv --clear-groups`) or uses
    /// privileged mode.
    public static func checkRootlessGroups(_ groups: [UInt32], primary: UInt32) throws(MiniAppError) {
        let extra = groups.filter { $0 != primary }
        guard extra.isEmpty else {
            throw MiniAppError(
                .jailUnavailable,
                "rootless mode: the daemon's user has supplementary groups \(extra.map(String.init).joined(separator: ",")), which every worker would keep (setgroups is denied in an unprivileged user namespace); run the daemon as a user without supplementary groups (e.g. setpriv --clear-groups, or no SupplementaryGroups= in the unit) or in privileged mode",
                data: ["groups": extra.map(String.init).joined(separator: ",")])
        }
    }

    /// Validates `launch`, prepares its cgroup and data dir, spawns the worker and returns once
    /// the program has been exec'd. Throws `POLICY_INVALID` for a bad launch (nothing spawned),
    /// `JAIL_SETUP_FAILED` with the failing step, or `JAIL_UNAVAILABLE`. Blocks the calling
    /// thread meanwhile (`JailSpawner.spawn`): the one spawn API, for the daemon's control
    /// handler threads, `miniapp jail`, benchmarks and tests alike.
    public func spawn(_ launch: JailLaunch) throws(MiniAppError) -> JailedWorker {
        let p = try prepare(launch)
        defer { p.release() }
        let child: SpawnedChild
        var ranIn: String? = nil // pooled cgroups: where the worker runs, once the spawner answered
        do {
            child = try JailSpawner.spawn(p.plan, template: p.template, cgroupProcs: p.cgroupProcs, cgroupName: p.cgroupName, warm: warmJails,
                                          pooled: p.pooled, replied: { ranIn = $0 }, slot: spawner, trace: p.trace)
        } catch {
            throw p.failed(error, ranIn: ranIn)
        }
        return finish(p, child, ranIn: ranIn)
    }

    /// Warm jails wait in pooled cgroups (`WarmJailCgroups`): launches that take one move no
    /// task. Only with a spawner of ours: a spawner service's warm jails are its own children,
    /// which it announces to nobody, so a cgroup lent to one could never be given back.
    var pooledCgroups: Bool { warmJails && cgroupPool != nil && spawner.servicePath == nil }

    /// What a spawn has made before the clone: its cgroup, pipes, plan.
    struct Prepared {
        let launch: JailLaunch
        let limits: JailLimits
        let uid: UInt32
        let taken: CgroupPool.Taken?
        let pipes: JailPipes
        let plan: JailSpawnPlan
        let template: UInt32
        let netFD: Int32?
        let trace: JailTrace?
        let jailer: Jailer
        /// The worker cgroup's final name (`taken` may be a pooled one still to be renamed).
        let workerCgroupName: String
        /// Pooled cgroups: the limits of `taken` and the spare lent with it (both `offer`ed).
        let pooled: PooledCgroups?

        /// How the spawner finds the worker's cgroups: our open `cgroup.procs` files, or (this
        /// process dropped its privileges, or warm jails in pooled cgroups) the cgroup's name,
        /// which the spawner opens itself when it needs them.
        var cgroupProcs: [Int32] { PrivilegeDrop.isDropped || pooled != nil ? [] : taken?.procs ?? [] }
        var cgroupName: String? { PrivilegeDrop.isDropped || pooled != nil ? taken?.cgroup.name : nil }

        /// The worker's cgroup and the name it is to get, once `ranIn` (the spawner's answer,
        /// nil when none came) says which: the request's own, or its warm jail's pooled one.
        /// Takes back from `WarmJailCgroups` what the spawner does not hold: the worker's, and
        /// (no answer) the spare. What it holds comes back in its notices.
        func settle(_ ranIn: String?) -> (cgroup: (any WorkerCgroup)?, rename: String?) {
            guard let pooled, let taken else { return (taken?.cgroup, taken?.pendingName) }
            guard let ranIn, !ranIn.isEmpty else {
                _ = WarmJailCgroups.claim(taken.cgroup.name)
                if ranIn == nil, let spare = pooled.spare, let e = WarmJailCgroups.claim(spare) {
                    jailer.cgroupPool?.giveBack(e.cgroup, limits: e.limits)
                }
                return (taken.cgroup, taken.pendingName)
            }
            return (WarmJailCgroups.claim(ranIn)?.cgroup, workerCgroupName)
        }

        /// Descriptors only the spawn needed (the child has its copies); pools topped up.
        func release() {
            taken?.closeProcs()
            if let netFD { OwnedFD(adopting: netFD).close() } // the child holds the namespace from setns on
            jailer.refillPools()
        }

        /// Undoes what `prepare` made; returns the error to throw.
        func failed(_ error: MiniAppError, ranIn: String?) -> MiniAppError {
            pipes.closeAll()
            settle(ranIn).cgroup?.destroy()
            return error
        }
    }

    private func prepare(_ launch: JailLaunch) throws(MiniAppError) -> Prepared {
        let cgName = "w-\(sanitized(launch.programId))-\(Self.nextSerial())"
        let trace = JailTrace.start(cgName)
        try JailLaunchValidator.validate(launch, policy: configuration.policy)
        let limits = try (launch.limitsOverride ?? configuration.policy.limits).validated()
        let (uid, gid) = try identity(launch.programId)
        let hostIDs = mode == .privileged ? (uid, gid) : (CurrentProcess.uid, CurrentProcess.gid)
        trace?.mark("validated")
        let template = try templateID(launch, limits: limits)
        if let dataVolumes, let dir = launch.dataDir {
            try dataVolumes.prepare(programId: launch.programId, dataDir: dir, limits: limits, uid: hostIDs.0, gid: hostIDs.1, spawner: spawner,
                                    template: template)
        }
        try prepareDataDir(launch.dataDir, uid: hostIDs.0, gid: hostIDs.1, template: template)
        trace?.mark("data_dir")
        let wanted = CgroupLimits(memoryBytes: limits.memoryBytes, pids: limits.pids, cpuPercent: limits.cpuPercent)
        var taken: CgroupPool.Taken?
        if let cgroupPool { taken = try cgroupPool.take(name: cgName, limits: wanted, pooledName: pooledCgroups) }
        else { taken = try CgroupPool.fresh(configuration.cgroupDriver, name: cgName, limits: wanted) }
        trace?.mark("cgroup_created")
        let pipes: JailPipes
        do { pipes = try JailPipes() } catch {
            taken?.closeProcs()
            taken?.cgroup.destroy()
            throw MiniAppError(.jailSetupFailed, "cannot create output pipes: \(error)", data: ["step": "pipes", "errno": "\(error.errno)"])
        }
        let pooled = lendPooled(&taken, limits: wanted)
        var plan = makePlan(launch, limits: limits, uid: uid, gid: gid, pipes: pipes)
        let netFD = useNetPool(&plan)
        trace?.mark("planned")
        return Prepared(launch: launch, limits: limits, uid: uid, taken: taken, pipes: pipes, plan: plan, template: template,
                        netFD: netFD, trace: trace, jailer: self, workerCgroupName: cgName, pooled: pooled)
    }

    /// Pooled cgroups: the spawner is told `taken`'s name (it opens its files only if the
    /// launch needs them: ours are closed) and a spare ready cgroup with the same limits; both
    /// are lent from here on (`WarmJailCgroups`).
    private func lendPooled(_ taken: inout CgroupPool.Taken?, limits: CgroupLimits) -> PooledCgroups? {
        guard pooledCgroups, let t = taken, let pool = cgroupPool else { return nil }
        taken = t.closingProcs()
        let spare = pool.takeReady(limits: limits)?.closingProcs()
        WarmJailCgroups.offer(.init(cgroup: t.cgroup, limits: limits, pool: pool))
        if let spare { WarmJailCgroups.offer(.init(cgroup: spare.cgroup, limits: limits, pool: pool)) }
        return PooledCgroups(limits: limits, spare: spare?.cgroup.name)
    }

    private func finish(_ p: Prepared, _ child: SpawnedChild, ranIn: String?) -> JailedWorker {
        p.pipes.closeChildEnds()
        let (cgroup, rename) = p.settle(ranIn)
        return JailedWorker.start(child: child, launch: p.launch, uid: p.uid, limits: p.limits, cgroup: cgroup,
                                  renameCgroupTo: rename, pipes: p.pipes, policy: configuration.policy, trace: p.trace,
                                  spawner: spawner)
    }

    /// Tops the pools up in the background (after a spawn, never during one).
    func refillPools() {
        netPool?.refill()
        cgroupPool?.refill()
    }

    /// Starts filling the pools now, not at the first launch: with pooled cgroups that launch
    /// then has a spare to lend to its warm jail. Call it as the identity that will own the
    /// cgroups (the daemon: after its privilege drop).
    public func fillPools() {
        if pooledCgroups { cgroupPool?.refill() }
    }

    /// The cgroups made ahead and waiting (their memory-hierarchy directories).
    public var readyCgroups: [String] { cgroupPool?.readyLocations ?? [] }

    /// Removes the cgroups made ahead (clean shutdown, or this jailer being replaced).
    public func drainPools() {
        guard let cgroupPool else { return }
        cgroupPool.drain()
        WarmJailCgroups.drain(pool: cgroupPool) // a warm jail still in one is killed with it
    }

    /// Swaps CLONE_NEWNET for a ready pooled namespace when there is one; returns its fd.
    private func useNetPool(_ plan: inout JailSpawnPlan) -> Int32? {
        guard plan.cloneFlags & Self.cloneNewNet != 0, let fd = netPool?.take() else { return nil }
        plan.cloneFlags &= ~Self.cloneNewNet
        plan.netnsFD = fd
        return fd
    }

    private func identity(_ programId: String) throws(MiniAppError) -> (UInt32, UInt32) {
        if let uids {
            let u = try uids.uid(for: programId)
            return (u, u)
        }
        return (configuration.policy.identity.rootlessUid, configuration.policy.identity.rootlessGid)
    }

    /// The data dir belongs to the program alone: owner = its uid, mode 0700, so no other
    /// program uid can even list it. Once this process dropped its privileges, the spawner
    /// gives it away (CHOWN_DATA: only a directory right under the data root, only to a uid of
    /// the template's range).
    private func prepareDataDir(_ dir: String?, uid: UInt32, gid: UInt32, template: UInt32) throws(MiniAppError) {
        guard let dir else { return }
        if mode == .privileged && PrivilegeDrop.isDropped {
            if let st = try? FileSystem.status(dir), st.owner == uid && st.group == gid && st.permissions == 0o700 { return }
            let name = String(dir.split(separator: "/").last ?? "")
            guard dir == dataRoot + "/" + name else {
                throw MiniAppError(.jailSetupFailed, "the data dir \(dir) is not right under \(dataRoot): the spawner gives away no other", data: ["step": "data_dir"])
            }
            let r = spawner.chownData(name, uid: uid, template: template)
            guard r == 0 else {
                throw MiniAppError(.jailSetupFailed, "the spawner did not give the data dir \(dir) to uid \(uid): \(SystemError("chown", errno: -r))",
                                   data: ["step": "data_dir", "errno": "\(-r)"])
            }
            return
        }
        if mode == .privileged {
            do { try FileSystem.setOwner(dir, uid: uid, gid: gid) } catch {
                throw MiniAppError(.jailSetupFailed, "cannot chown the data dir \(dir): \(error)", data: ["step": "data_dir", "errno": "\(error.errno)"])
            }
        }
        do { try FileSystem.setPermissions(dir, 0o700) } catch {
            throw MiniAppError(.jailSetupFailed, "cannot chmod the data dir \(dir): \(error)", data: ["step": "data_dir", "errno": "\(error.errno)"])
        }
    }

    private static let serial = Mutex<UInt64>(0)
    static func nextSerial() -> String {
        let n = serial.withLock { s -> UInt64 in s += 1; return s }
        return "\(CurrentProcess.pid)-\(n)"
    }

    private func sanitized(_ id: String) -> String {
        String(id.utf8.prefix(48).map { c -> Character in
            let ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 46 || c == 45
            return ok ? Character(UnicodeScalar(c)) : "_"
        })
    }
}

/// Where the host's id databases are (injectable so tests can use temporary files).
public struct HostIDFiles: Sendable {
    public var subuid = "/etc/subuid", subgid = "/etc/subgid", passwd = "/etc/passwd", group = "/etc/group"
    public var overflowUid = "/proc/sys/kernel/overflowuid", overflowGid = "/proc/sys/kernel/overflowgid"
    public init() {}
    public static let system = HostIDFiles()

    /// Refuses (POLICY_INVALID, field identity.uidRangeStart) a uid range that any host user,
    /// group or subordinate range already owns (HostIDRanges explains the attack). A missing
    /// file has nothing to overlap; an unreadable one fails closed.
    func checkFree(_ id: JailPolicy.Identity) throws(MiniAppError) {
        var sources: [HostIDRanges.Source] = []
        for (path, kind) in [(subuid, HostIDRanges.Source.Kind.subordinate), (subgid, .subordinate), (passwd, .passwd), (group, .group)] {
            guard FileSystem.exists(path) else { continue }
            guard let bytes = try? OwnedFD.open(path).readAll(limit: 64 << 20) else {
                throw MiniAppError(.jailUnavailable, "cannot read \(path) to check identity.uidRangeStart against it; make it readable by the daemon")
            }
            sources.append(.init(path: path, kind: kind, text: String(decoding: bytes, as: UTF8.self)))
        }
        let overflow = [overflowUid, overflowGid].compactMap { p in
            (try? OwnedFD.open(p).readAll(limit: 64)).flatMap { UInt64(String(decoding: $0, as: UTF8.self).filter(\.isNumber)) }
        }
        let hits = HostIDRanges.overlaps(start: UInt64(id.uidRangeStart), count: UInt64(id.uidRangeCount), sources: sources, overflowIDs: overflow)
        guard hits.isEmpty else {
            throw PolicyFieldReader.invalid("identity.uidRangeStart",
                "gives programs ids another owner has: the range \(id.uidRangeStart)+\(id.uidRangeCount): \(hits.prefix(3).joined(separator: "; ")); move the range (the default 2130706432 is outside what useradd, systemd and container tools allocate)")
        }
    }
}
