import Foundation
import Logging
import MiniAppBroker
import MiniAppJail
import MiniAppJSON
public import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Synchronization

/// The composed daemon: builds every component from the configuration, then starts its
/// long-running parts as one ordered list of services (`services`), and serves until SIGTERM;
/// shutdown stops them in the reverse order.
///
///     build:  state dir ─ policies ─ jailer (+ sweep of a crashed run) ─ privilege separation
///       (root: start the spawner, drop to --user) ─ crash guard ─ catalogue
///       ─ partners (watch first, then local files + the verified registry cache) ─ SDK ─ services
///       ─ reactor + broker (+ its binding, subscribed to the partners' grant changes) ─ package
///       store ─ launch resolver ─ supervisor ─ store binding ─ updates ─ control API and server.
///       Each part is given, at construction, the parts built before it; where an earlier part
///       has news for a later one (grant changes, activated versions, worker starts and ends),
///       the later one subscribes to the earlier one's events in its own init.
///     start:  see `services(_:activated:)`
public final class Daemon {
    let config: DaemonConfig
    let notifier = SystemdNotifier(environment: Daemon.environment())
    let logger = Logger(label: "miniappd")
    private var parts: Parts?
    private lazy var lifecycle = ServiceGroup(logger: logger)

    /// Everything `start` built, for the services, `reload` and `shutdown`.
    struct Parts {
        var layout: StateLayout
        var policyDir: String
        var reactor: Reactor
        var broker: Broker
        var services: BuiltinServices
        var brokerBinding: BrokerBinding
        var partners: PartnerGrants
        var partnersWatch: DirectoryWatcher?
        var jail: JailBinding
        var supervisor: Supervisor
        var store: StoreBinding
        var updates: UpdateService
        var metrics: DaemonMetricsSink
        var control: ControlServer
        /// The privilege split (nil: the daemon keeps its start identity) and the SDK directory
        /// its launch template binds: the "spawner templates" step registers and locks.
        var separation: PrivilegeSeparation?
        var sdkDir: String
        /// What the services hold once started.
        let running = Running()
    }

    /// The handles of started services (the crash guard's: spawned while building).
    final class Running {
        var socketPath: String?
        var metricsServer: TinyHTTPServer?
        var updateTimer: ScheduledJob?
        var crashGuard: JailCrashGuard?
    }

    /// Builds the daemon; nothing is started yet. Call `SignalLoop.blockInProcess()` before,
    /// while the process has one thread.
    public init(config: DaemonConfig) throws(MiniAppError) {
        self.config = config
    }

    /// Serves until SIGTERM/SIGINT; returns after a clean shutdown (workers stopped, storage flushed).
    public func run() throws(MiniAppError) {
        let signals: SignalLoop
        do { signals = try SignalLoop() } catch { throw MiniAppError(.internal, "cannot set up signal handling: \(error)") }
        try start()
        _ = notifier.notify("READY=1\nSTATUS=serving")
        logger.info("miniappd \(DaemonVersion.current) serving", metadata: ["control": "\(parts?.running.socketPath ?? "LISTEN_FDS")"])
        let tick = notifier.watchdogMicros.map { Int32(clamping: $0 / 2000) } ?? 1000
        while true {
            let sig = signals.next(timeoutMillis: max(tick, 50))
            if notifier.watchdogMicros != nil { _ = notifier.notify("WATCHDOG=1") }
            switch sig {
            case SIGTERM, SIGINT:
                _ = notifier.notify("STOPPING=1\nSTATUS=stopping workers")
                shutdown()
                return
            case SIGHUP:
                _ = notifier.notify("RELOADING=1")
                reload()
                _ = notifier.notify("READY=1\nSTATUS=serving")
            default:
                continue
            }
        }
    }

    // MARK: start

    func start() throws(MiniAppError) {
        // First of all: marks the sockets systemd passed close-on-exec, before anything is
        // spawned (the crash guard below is a posix_spawn'ed shell, and would otherwise
        // inherit the listening control socket for its whole life).
        let activated = SocketActivation.takeListenFDs()
        let layout = StateLayout(root: config.stateDir)
        try layout.create()
        let policyDir: String
        if let dir = config.policyDir {
            policyDir = dir
        } else {
            policyDir = try layout.materialize(EmbeddedPolicies.files, into: layout.embeddedPolicies)
        }
        let hostVersion = config.hostVersion ?? DaemonVersion.current
        guard let hostSemVer = SemVer(hostVersion) else {
            throw MiniAppError(.invalidParams, "host version '\(hostVersion)' is not a SemVer 2.0.0 version (e.g. 4.2.0)")
        }
        // A spawner service replaces the spawner of our own; started unprivileged, the daemon
        // connects at once (a refusal stops the start here), as root only once it dropped.
        if let path = config.spawnerSocket {
            SpawnerSlot.shared.useService(path)
            if !CurrentProcess.isRoot { try SpawnerSlot.shared.start() }
        }
        let mode = try Self.workerMode(config.workerMode, spawnerService: config.spawnerSocket != nil)
        let jailConfig = try JailPolicy.load(policyDir: policyDir)
        let reserve = StateReserve(directory: layout.root, config: config)
        let volumes = try dataVolumes(mode: mode, reserve: reserve)
        let jailer = try Jailer(configuration: jailConfig, stateDir: layout.root, mode: mode, warmCgroups: Self.warmCgroups,
                                warmJails: config.warmJails && mode == .privileged, appRoot: layout.packages, dataRoot: layout.data,
                                dataVolumes: volumes)
        for w in jailConfig.warnings { logger.warning("jail: \(w)") }
        let swept = jailer.sweepStaleWorkers()
        if swept.cgroups > 0 {
            logger.notice("removed \(swept.cgroups) worker cgroup(s) and \(swept.processes) process(es) left by a previous run")
        }
        let separation = try PrivilegeSeparation.start(config, mode: mode, jailer: jailer, layout: layout, policyDir: policyDir, logger: logger)
        // Spawned here, before the daemon opens any other descriptor: the guard shell must
        // inherit none (a listening or connected socket would outlive a crashed daemon in it).
        let crashGuard = JailCrashGuard.start(for: jailer)
        let catalogue = try Self.loadCatalogue(policyDir)
        let transport = CurlRegistryTransport()
        let watch = watchPartners(policyDir)  // before the first read: no edit slips between the two
        let partners = try makePartners(layout: layout, policyDir: policyDir, transport: transport)
        let sdkDir = try layout.materialize(EmbeddedSDK.files, into: layout.sdk)
        SDKBytecode.compileInBackground(sdkDir: sdkDir, logger: logger)

        let helpers = HelperConfig.settings(policyDir: policyDir)
        let services = try makeServices(layout: layout, hostVersion: hostVersion, helpers: helpers)
        let reactor: Reactor
        let broker: Broker
        do {
            reactor = try Reactor()
            broker = try Broker(
                reactor: reactor, catalogue: catalogue, grants: partners.grants, services: services.all,
                configuration: BrokerConfiguration(
                    maxMessageBytes: config.maxMessageBytes, audit: AuditConfiguration(path: layout.audit + "/audit.jsonl"),
                    inspectorPayloads: config.inspectorPayloads),
                logger: Logger(label: "miniappd.broker"))
        } catch {
            services.shutdown()
            throw MiniAppError(.internal, "cannot start the Bridge broker: \(error)")
        }
        let simulatorGrants = simulatorMode ? SimulatorGrants(partners: partners.grants) { [broker] in broker.updateGrants($0) } : nil
        if simulatorGrants != nil {
            logger.warning("SIMULATOR MODE: unsigned programs are accepted from directories and loopback URLs (packages.install {dir}/{url}); never run this on a device")
        }
        let brokerBinding = BrokerBinding(
            broker: broker, services: services, partners: partners, simulatorGrants: simulatorGrants,
            overridesFor: { [partners] id, catalogue throws(MiniAppError) in
                let layers = try ProgramOverrides.layers(policyDir: policyDir, programId: id, partners: partners.partners)
                return IdentityOverrides(
                    rateClasses: try EffectiveRates.resolve(catalogue: catalogue, layers: layers).lowered,
                    privateCIDRs: layers.flatMap(\.1.allowedPrivateCIDRs), storageQuotaBytes: PolicyOverride.storageQuota(layers)?.0)
            })
        var verifierOptions = VerifierOptions(hostVersion: hostSemVer, knownPermissions: KnownPermissions.of(catalogue))
        verifierOptions.allowSimulated = simulatorMode
        let packageStore = try PackageStore(
            root: layout.packages, options: verifierOptions, extractionHelper: ExtractionHelper(settings: helpers),
            partners: { brokerBinding.partners })
        let resolver = LaunchResolver(store: packageStore, dataRoot: layout.data, simulatorGrants: simulatorGrants)

        let metrics = DaemonMetricsSink(metrics: DaemonMetrics())
        let jail = JailBinding(
            jailer: jailer, logger: Logger(label: "miniappd.worker"), metrics: metrics,
            limitsFor: { [partners] id, platform throws(MiniAppError) in
                try ProgramOverrides.effectiveLimits(platform: platform, policyDir: policyDir, programId: id, partners: partners.partners).limits
            })
        let sessions = ControlSessions()
        let supervisor = Supervisor(
            settings: supervisorSettings(
                sdkDir: sdkDir,
                overridesOf: { [partners] id in
                    (try? ProgramOverrides.layers(policyDir: policyDir, programId: id, partners: partners.partners))?.map(\.1)
                }, dataUsageOf: { [layout] id in volumes?.usage(programId: id, dataDir: layout.data + "/" + id) }), ids: try WorkerIDAllocator(path: layout.workerSequence),
            spawner: jail, resolver: resolver, bridge: brokerBinding, notify: { sessions.broadcast(method: $0, params: $1) },
            observeExit: { metrics.exited($0) }, grantsChanges: partners.changes)
        let store = StoreBinding(
            store: packageStore, simulatorGrants: simulatorGrants, reserve: reserve,
            isRunning: { supervisor.isRunning(programId: $0) }, packageChanged: { supervisor.dropPrewarmed(programId: $0) })
        let updates = try makeUpdates(
            layout: layout, store: store, resolver: resolver, transport: transport, supervisor: supervisor, metrics: metrics, sessions: sessions)

        var facts = DaemonFacts(
            version: DaemonVersion.current, hostVersion: hostVersion, mode: mode.rawValue, cgroups: Self.cgroupName(jailConfig.cgroupDriver))
        if volumes == nil { facts.dataLimits = Self.dataLimitsOff }
        let api = ControlAPI(
            facts: facts, supervisor: supervisor, packages: PackageControlBinding(packages: store, updates: updates), broker: brokerBinding,
            simulator: simulatorMode)
        let access = ControlAccess(config: config)
        for name in access.unknownGroups {
            logger.info("control: group \(name) (controlAllowedGroups) does not exist on this host; it admits nobody")
        }
        let control = ControlServer(
            reactor: reactor, api: api, broker: broker, sessions: sessions, access: access, maxMessageBytes: config.maxMessageBytes,
            logger: Logger(label: "miniappd.control"))
        let p = Parts(
            layout: layout, policyDir: policyDir, reactor: reactor, broker: broker, services: services, brokerBinding: brokerBinding,
            partners: partners, partnersWatch: watch, jail: jail, supervisor: supervisor, store: store, updates: updates,
            metrics: metrics, control: control, separation: separation, sdkDir: sdkDir)
        p.running.crashGuard = crashGuard
        parts = p
        try lifecycle.start(self.services(p, activated: activated))
    }

    /// The daemon's long-running parts, in start order; shutdown stops them last to first:
    /// the update timer and the partners watch stop, the control socket stops accepting, every
    /// worker is stopped (hosts hear `program.exited` with reason `daemon-shutdown`), the
    /// control connections close once those notifications are sent (bounded), the reactor
    /// stops and the audit log is flushed, storage is flushed and closed, the crash guard and
    /// the jail's pools last.
    private func services(_ p: Parts, activated: [Int32]) -> [any DaemonService] {
        let partnersLog = Logger(label: "miniappd.partners")
        return [
            // First: nothing launches a worker before the spawner's template set is locked (a
            // compromised daemon can register no other from then on).
            ServiceStep("spawner templates", start: { () throws(MiniAppError) in try p.separation?.lock(jailer: p.jail.jailer, sdkDir: p.sdkDir) }),
            ServiceStep("data volumes", stop: { p.jail.jailer.dataVolumes?.unmountAll() }),
            // Filled once the daemon runs as its own user (the cgroups made must be its own).
            ServiceStep("jail pools", start: { p.jail.jailer.fillPools() }, stop: { p.jail.jailer.drainPools() }),
            ServiceStep("crash guard", stop: { p.running.crashGuard?.finish() }),  // spawned while building (see there)
            ServiceStep("built-in services", stop: { p.services.shutdown() }),
            ServiceStep(
                "reactor and broker",
                start: { () throws(MiniAppError) in
                    do { try p.reactor.start() } catch { throw MiniAppError(.internal, "cannot start the Bridge broker: \(error)") }
                },
                stop: {
                    p.reactor.shutdown()
                    p.broker.flushAudit()
                }),
            ServiceStep("control connections", stop: { p.control.closeAfterFlush(deadline: monotonicNanos() + UInt64(Self.controlFlushMillis) * 1_000_000) }),
            ServiceStep(
                "metrics", start: { [self] () throws(MiniAppError) in p.running.metricsServer = try startMetrics(p.metrics, supervisor: p.supervisor, broker: p.broker, volumes: p.jail.jailer.dataVolumes) },
                stop: { p.running.metricsServer?.stop() }),
            ServiceStep("workers", stop: { [self] in
                p.supervisor.shutdown(graceMillis: config.stopGraceMillis)
                // Their cgroups too (removed in the background once each worker ended).
                if !JailedWorker.waitUntilAllRemoved(seconds: 5) { logger.warning("shutdown: some worker cgroups were still being removed; the next start sweeps them") }
            }),
            ServiceStep(
                "control socket", start: { [self] () throws(MiniAppError) in p.running.socketPath = try serveControl(p.control, activated: activated) },
                stop: {
                    p.control.stopAccepting()
                    if let path = p.running.socketPath { try? FileSystem.removeFile(path) }
                }),
            ServiceStep(
                "partners watch",
                start: {
                    let (partners, policyDir) = (p.partners, p.policyDir)
                    p.partnersWatch?.start {
                        partnersLog.info("\(policyDir)/partners changed: re-reading the partner grants")
                        partners.refresh(fetchRegistry: false)
                    }
                }, stop: { p.partnersWatch?.stop() }),
            ServiceStep("update checks", start: { [self] in p.running.updateTimer = startUpdateTimer(p.updates, partners: p.partners) }, stop: { p.running.updateTimer?.cancel() }),
            // Started from the cache: catch up with the registry without delaying readiness.
            ServiceStep("registry catch-up", start: {
                if p.partners.hasRegistry && !p.partners.fetchedAtStart { p.partners.refreshInBackground() }
            }),
        ]
    }

    /// The update flow: the checker (with `--registry`), events to hosts and programs, the
    /// crash-loop watch (the versions launches activate, the supervisor's starts and ends). Leftover downloads of a killed daemon are removed first.
    private func makeUpdates(
        layout: StateLayout, store: StoreBinding, resolver: LaunchResolver, transport: CurlRegistryTransport, supervisor: Supervisor,
        metrics: DaemonMetricsSink, sessions: ControlSessions
    ) throws(MiniAppError) -> UpdateService {
        UpdateService.sweepDownloads(layout.downloads)
        var checker: UpdateChecker?
        if let registry = config.registry {
            checker = UpdateChecker(
                registry: registry, transport: transport, staging: store, downloadsDir: layout.downloads,
                timeoutMillis: config.registryTimeoutMillis, deviceId: try DeviceIdentity.load(path: layout.deviceId))
        }
        let settings = UpdateService.Settings(
            minIntervalSeconds: config.updateCheckMinIntervalSeconds, rollbackCrashCount: config.rollbackCrashCount,
            rollbackWindowSeconds: config.rollbackWindowSeconds)
        let rollbacks = metrics.metrics.counter("miniappd_update_rollbacks_total")
        let log = Logger(label: "miniappd.updates")
        return UpdateService(
            checker: checker, store: store.store, settings: settings, notify: { sessions.broadcast(method: $0, params: $1) },
            sendEvent: { id, name, data in
                guard let wid = supervisor.workerId(programId: id) else { return }
                try? supervisor.send(wid, name: name, data: data)
            },
            onRollback: { rollbacks.increment() }, audit: UpdateAudit(path: layout.audit + "/updates.jsonl", logger: log), logger: log,
            activations: resolver.activations, workers: supervisor)
    }

    /// A watch on `<policy-dir>/partners`, so an edited, added or removed registration is in
    /// effect without `permissions.refresh` or SIGHUP. Not for the embedded policies (written
    /// by the daemon itself at each start). Without inotify (limits reached) the daemon still
    /// runs; refresh and SIGHUP still re-read the files.
    private func watchPartners(_ policyDir: String) -> DirectoryWatcher? {
        guard config.policyDir != nil else { return nil }
        do {
            return try DirectoryWatcher(directory: policyDir + "/partners") { PartnerDirectory.isRegistrationFile($0) }
        } catch {
            logger.warning("cannot watch \(policyDir)/partners (\(error)); partner file changes apply on permissions.refresh or SIGHUP only")
            return nil
        }
    }

    /// The partner grants: local files, plus the registry's document when a platform key is
    /// given to verify it (without one the registry serves updates only: unverifiable grants
    /// are never used).
    private func makePartners(layout: StateLayout, policyDir: String, transport: CurlRegistryTransport) throws(MiniAppError)
        -> PartnerGrants
    {
        let log = Logger(label: "miniappd.partners")
        var registry: RegistryPartners?
        if let keyPath = config.platformKey {
            registry = RegistryPartners(
                registry: config.registry, platformKey: try RegistryPartners.loadPlatformKey(keyPath), transport: transport,
                cachePath: layout.partnersCache, timeoutMillis: config.registryTimeoutMillis)
        } else if config.registry != nil {
            log.notice("no --platform-key: partner grants come from \(policyDir)/partners only; the registry's partners document cannot be verified without it")
        }
        return PartnerGrants(policyDir: policyDir, registry: registry, logger: log)
    }

    private func makeServices(layout: StateLayout, hostVersion: String, helpers: HelperSettings) throws(MiniAppError) -> BuiltinServices {
        var servicesConfig: ServicesConfig
        do { servicesConfig = try ServicesConfig(hostVersion: hostVersion, json: config.services) } catch {
            throw MiniAppError(.invalidParams, "\(error)")
        }
        servicesConfig.net.helpers = helpers
        let programLog = Logger(label: "miniappd.program")
        return try BuiltinServices(stateDirectory: layout.services, config: servicesConfig) { level, program, worker, message in
            programLog.log(level: Self.logLevel(level), "\(message)", metadata: ["program": "\(program)", "worker": "\(worker)"])
        }
    }

    private func supervisorSettings(
        sdkDir: String, overridesOf: @escaping @Sendable (String) -> [PolicyOverride]?,
        dataUsageOf: @escaping @Sendable (String) -> DataVolume.Usage?
    ) -> SupervisorSettings {
        var s = SupervisorSettings()
        s.maxWorkers = config.maxWorkers
        s.maxRestarts = config.maxRestarts
        s.restartBackoffMillis = config.restartBackoffMillis
        s.idleTimeoutSeconds = config.idleTimeoutSeconds
        s.stopGraceMillis = config.stopGraceMillis
        s.sdkDir = sdkDir
        s.bridgeMaxBytes = config.maxMessageBytes
        s.prewarmMaxWorkers = config.prewarmMaxWorkers
        s.prewarmMaxMemoryBytes = Int64(config.prewarmMaxMemoryMiB) << 20
        s.prewarmRecent = config.prewarmRecent
        s.overridesOf = overridesOf
        s.dataUsageOf = dataUsageOf
        return s
    }

    /// Serves the control socket: the one systemd passed (LISTEN_FDS), else a fresh 0660 socket
    /// at `controlSocket` (a stale file from a crashed run is replaced; a live one is refused).
    /// Returns the path to unlink at shutdown (nil under socket activation).
    private func serveControl(_ control: ControlServer, activated: [Int32]) throws(MiniAppError) -> String? {
        do {
            if let fd = activated.first {
                try control.serve(OwnedFD(adopting: fd))
                for extra in activated.dropFirst() { OwnedFD(adopting: extra).close() }
                return nil
            }
            let dir = (config.controlSocket as NSString).deletingLastPathComponent
            if !dir.isEmpty { try? CgroupFiles.mkdirs(dir) }
            try control.serve(try UnixSocket.listen(path: config.controlSocket, mode: 0o660))
            return config.controlSocket
        } catch {
            throw MiniAppError(.internal, "cannot serve the control socket \(config.controlSocket): \(error)")
        }
    }

    private func startMetrics(_ sink: DaemonMetricsSink, supervisor: Supervisor, broker: Broker, volumes: JailDataVolumes?) throws(MiniAppError) -> TinyHTTPServer? {
        guard let listen = config.metricsListen else { return nil }
        guard let address = ListenAddress.parse(listen) else {
            throw MiniAppError(.invalidParams, "metricsListen '\(listen)' must be 127.0.0.1:PORT or unix:/path")
        }
        let fd: Int32
        do { fd = try ListeningSocket.listen(address) } catch {
            throw MiniAppError(.internal, "cannot listen for metrics on \(listen): \(error)")
        }
        let server = TinyHTTPServer(listeningFD: fd) { path in
            guard path == "/metrics" else { return nil }
            return (200, "text/plain; version=0.0.4", sink.scrape(workers: supervisor.counts(), broker: broker.counters(), data: volumes?.allUsage() ?? []))
        }
        server.start()
        return server
    }

    /// Every `updateCheckIntervalSeconds`: the registry's partners document first (a rotated
    /// partner key must be known before that partner's update is verified), then the updates.
    private func startUpdateTimer(_ updates: UpdateService, partners: PartnerGrants) -> ScheduledJob? {
        guard updates.checker != nil || partners.hasRegistry, config.updateCheckIntervalSeconds > 0 else { return nil }
        return WorkQueue(name: "update-timer").every(seconds: Double(config.updateCheckIntervalSeconds)) {
            if partners.hasRegistry { partners.refresh() }
            updates.checkAllScheduled()
        }
    }

    // MARK: shutdown and reload

    /// What `daemon.info` says of /data limits when they are not enforced.
    static let dataLimitsOff = "off: rootless mode cannot mount a filesystem per program; /data is bounded only by the state filesystem"

    /// Per-program /data volumes: privileged mode only (mounting needs CAP_SYS_ADMIN in the
    /// initial namespaces). Rootless mode runs without them, loudly.
    private func dataVolumes(mode: JailMode, reserve: StateReserve) throws(MiniAppError) -> JailDataVolumes? {
        guard mode == .privileged else {
            logger.warning("/data limits (limits.dataBytes, limits.dataInodes) are NOT enforced: \(Self.dataLimitsOff)")
            return nil
        }
        return try JailDataVolumes(stateDir: reserve.directory, reserve: reserve)
    }

    /// Worker cgroups kept made ahead: two cover back-to-back launches (CgroupPool.swift).
    static let warmCgroups = 2

    /// How long shutdown waits for control peers to read what was queued for them.
    static let controlFlushMillis = 5000

    /// SIGTERM: the services stop in the reverse of their start order (`services`).
    func shutdown() {
        guard parts != nil else { return }
        lifecycle.stop()
        logger.info("miniappd stopped")
        parts = nil
    }

    /// SIGHUP: re-read the jail policy, the method catalogue (for the broker, and the permission
    /// names installs accept) and the partner grants. Each part
    /// that fails to load keeps its previous version (logged): a typo in a policy file must not
    /// leave the daemon without a policy. Running workers keep the jail they started with.
    /// Partner grants are the exception: a bad registration blocks its own partner (fail
    /// closed, `PartnerMerge`). With the embedded policies there is no jail policy or catalogue
    /// to re-read, but the grants still are (the registry's among them).
    func reload() {
        guard let p = parts else { return }
        if config.policyDir != nil {
            do throws(MiniAppError) {
                let jailConfig = try JailPolicy.load(policyDir: p.policyDir)
                let old = p.jail.jailer
                p.jail.replace(try Jailer(configuration: jailConfig, stateDir: p.layout.root, mode: old.mode, warmCgroups: Self.warmCgroups,
                                          warmJails: old.warmJails, appRoot: p.layout.packages, dataRoot: p.layout.data,
                                          dataVolumes: old.dataVolumes))
                p.jail.jailer.fillPools()
                old.drainPools()
            } catch {
                logger.error("reload: keeping the previous jail policy: \(error)")
            }
            do throws(MiniAppError) {
                let catalogue = try Self.loadCatalogue(p.policyDir)
                p.broker.permissions.updateCatalogue(catalogue)
                p.store.store.setKnownPermissions(KnownPermissions.of(catalogue))
            } catch {
                logger.error("reload: keeping the previous method catalogue: \(error)")
            }
            logger.info("reload: policies re-read from \(p.policyDir)")
        } else {
            logger.info("reload: the jail policy and method catalogue are the embedded defaults; re-reading the partner grants")
        }
        // The files now (so an edit is in effect when READY=1 is sent), the registry in the
        // background (a slow registry must not hold the signal loop, which feeds the watchdog).
        p.partners.refresh(fetchRegistry: false)
        if p.partners.hasRegistry { p.partners.refreshInBackground() }
    }

    // MARK: helpers

    /// Simulator mode: compiled into debug builds only, so a release binary cannot be switched
    /// into accepting unsigned programs by any flag, file or environment.
    var simulatorMode: Bool {
        #if DEBUG
        return config.simulator
        #else
        return false
        #endif
    }

    static func workerMode(_ text: String, spawnerService: Bool = false) throws(MiniAppError) -> JailMode {
        switch text {
        case "privileged": return .privileged
        case "rootless": return .rootless
        default: return CurrentProcess.isRoot || spawnerService ? .privileged : .rootless
        }
    }

    static func loadCatalogue(_ policyDir: String) throws(MiniAppError) -> MethodCatalogue {
        let path = policyDir + "/methods.json"
        let bytes: [UInt8]
        do { bytes = try OwnedFD.open(path).readAll(limit: 16 << 20) } catch {
            throw MiniAppError(.internal, "cannot read the method catalogue \(path): \(error)")
        }
        do { return try MethodCatalogue.parse(bytes) } catch {
            throw MiniAppError(.internal, "the method catalogue \(path) is invalid: \(error)")
        }
    }

    static func cgroupName(_ d: CgroupDriver) -> String {
        switch d {
        case .v1: "v1"
        case .v2: "v2"
        case .none: "none"
        }
    }

    static func logLevel(_ l: ProgramLogLevel) -> Logger.Level {
        switch l {
        case .debug: .debug
        case .info: .info
        case .warn: .warning
        case .error: .error
        }
    }

    static func environment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}
