public import MiniAppModel
import MiniAppSystem
import Glibc

/// Builds jailed workers from one validated configuration. Create one per daemon.
///
///     let config = try JailPolicy.load(policyDir: "/etc/miniapp/policies")
///     let jailer = try Jailer(configuration: config, stateDir: "/var/lib/miniapp", mode: .privileged)
///     var launch = JailLaunch(programId: "com.partner.app", argv: ["/usr/bin/node", "/app/main.js"])
///     launch.appDir = pkgDir; launch.dataDir = dataDir; launch.bridgeFD = sock
///     let worker = try await jailer.spawn(launch)
///     let exit = await worker.exit
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

    /// Prepares the state directory (`<stateDir>/jail`: uid table, empty mountpoint of the
    /// worker roots). Throws `JAIL_UNAVAILABLE` when privileged mode is asked without root.
    /// `warmCgroups` > 0 keeps that many worker cgroups made ahead (a long-running supervisor;
    /// they are removed by `drainPools` or the next start's sweep). A one-shot caller such as
    /// `miniapp jail` leaves it 0 so it leaves nothing behind.
    public init(configuration: JailConfiguration, stateDir: String, mode: JailMode, warmCgroups: Int = 0) throws(MiniAppError) {
        if mode == .privileged && geteuid() != 0 {
            throw MiniAppError(.jailUnavailable, "privileged jail mode needs root; run the daemon as root or use rootless mode")
        }
        self.configuration = configuration
        self.mode = mode
        self.stateDir = stateDir
        rootDir = "\(stateDir)/jail/root"
        let id = configuration.policy.identity
        uids = mode == .privileged ? try UidAllocator(stateDir: stateDir, rangeStart: id.uidRangeStart, rangeCount: id.uidRangeCount) : nil
        netPool = mode == .privileged && configuration.policy.namespaces.net ? NetNamespacePool(size: Self.netPoolSize) : nil
        let l = configuration.policy.limits
        cgroupPool = warmCgroups > 0
            ? CgroupPool(driver: configuration.cgroupDriver, limits: CgroupLimits(memoryBytes: l.memoryBytes, pids: l.pids, cpuPercent: l.cpuPercent), size: warmCgroups)
            : nil
        JailSpawner.prepare()
        do { try CgroupFiles.mkdirs(rootDir) } catch {
            throw MiniAppError(.jailUnavailable, "cannot create \(rootDir): \(error); pass a writable state directory", cause: error)
        }
    }

    /// Validates `launch`, prepares its cgroup and data dir, spawns the worker and returns once
    /// the program has been exec'd. Throws `POLICY_INVALID` for a bad launch (nothing spawned),
    /// `JAIL_SETUP_FAILED` with the failing step, or `JAIL_UNAVAILABLE`.
    public func spawn(_ launch: JailLaunch) async throws(MiniAppError) -> JailedWorker {
        let cgName = "w-\(sanitized(launch.programId))-\(Self.nextSerial())"
        let trace = JailTrace.start(cgName)
        try JailLaunchValidator.validate(launch, policy: configuration.policy)
        let limits = try (launch.limitsOverride ?? configuration.policy.limits).validated()
        let (uid, gid) = try identity(launch.programId)
        let hostIDs = mode == .privileged ? (uid, gid) : (getuid(), getgid())
        trace?.mark("validated")
        try prepareDataDir(launch.dataDir, uid: hostIDs.0, gid: hostIDs.1)
        trace?.mark("data_dir")
        let wanted = CgroupLimits(memoryBytes: limits.memoryBytes, pids: limits.pids, cpuPercent: limits.cpuPercent)
        let taken: CgroupPool.Taken?
        if let cgroupPool { taken = try cgroupPool.take(name: cgName, limits: wanted) }
        else { taken = try CgroupPool.fresh(configuration.cgroupDriver, name: cgName, limits: wanted) }
        let cgroup = taken?.cgroup
        defer { taken?.closeProcs() }
        trace?.mark("cgroup_created")
        let pipes: JailPipes
        do { pipes = try JailPipes() } catch {
            cgroup?.destroy()
            throw MiniAppError(.jailSetupFailed, "cannot create output pipes: \(error)", data: ["step": "pipes", "errno": "\(error.errno)"])
        }
        var plan = makePlan(launch, limits: limits, uid: uid, gid: gid, pipes: pipes)
        let netFD = useNetPool(&plan)
        defer { if let netFD { close(netFD) } } // the child holds the namespace from setns on
        trace?.mark("planned")
        let child: SpawnedChild
        do { child = try await JailSpawner.spawn(plan, cgroupProcs: taken?.procs ?? [], trace: trace) } catch {
            pipes.closeAll()
            cgroup?.destroy()
            throw error
        }
        pipes.closeChildEnds()
        return JailedWorker.start(child: child, launch: launch, uid: uid, limits: limits, cgroup: cgroup,
                                  pipes: pipes, policy: configuration.policy, trace: trace)
    }

    /// Removes the cgroups made ahead (clean shutdown, or this jailer being replaced).
    public func drainPools() { cgroupPool?.drain() }

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
    /// program uid can even list it.
    private func prepareDataDir(_ dir: String?, uid: UInt32, gid: UInt32) throws(MiniAppError) {
        guard let dir else { return }
        if mode == .privileged && chown(dir, uid, gid) != 0 {
            throw MiniAppError(.jailSetupFailed, "cannot chown the data dir \(dir): \(SystemError.current("chown"))", data: ["step": "data_dir", "errno": "\(errno)"])
        }
        if chmod(dir, 0o700) != 0 {
            throw MiniAppError(.jailSetupFailed, "cannot chmod the data dir \(dir): \(SystemError.current("chmod"))", data: ["step": "data_dir", "errno": "\(errno)"])
        }
    }

    private static let serial = JailLock<UInt64>(0)
    static func nextSerial() -> String {
        let n = serial.withLock { s -> UInt64 in s += 1; return s }
        return "\(getpid())-\(n)"
    }

    private func sanitized(_ id: String) -> String {
        String(id.utf8.prefix(48).map { c -> Character in
            let ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 46 || c == 45
            return ok ? Character(UnicodeScalar(c)) : "_"
        })
    }
}
