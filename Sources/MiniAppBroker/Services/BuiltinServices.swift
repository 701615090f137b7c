public import MiniAppModel
internal import MiniAppSystem

/// Every built-in Bridge service, constructed from one configuration and state directory:
/// what the daemon registers with the broker, and shuts down at exit.
///
/// ```swift
/// let services = try BuiltinServices(stateDirectory: "/var/lib/miniappd/services",
///                                    config: ServicesConfig(hostVersion: version)) { level, program, worker, msg in
///     logger.log(level: …, "\(msg)", metadata: ["program": "\(program)", "worker": "\(worker)"])
/// }
/// broker.register(services.all)
/// // control API: session.set → try services.auth.setSession(userId:claims:)
/// //              auth.keys   → services.auth.jwks()
/// // shutdown:    services.shutdown()
/// ```
public struct BuiltinServices: Sendable {
    /// `storage.*`.
    public let storage: StorageService
    /// `auth.getToken`; also `setSession`/`clearSession` and `jwks()` for the control API.
    public let auth: AuthService
    /// `net.request`.
    public let net: NetService
    /// `system.info`.
    public let system: SystemInfoService
    /// `log.write`.
    public let log: LogService

    /// Creates `stateDirectory` (0700) if missing, then every service. Throws INTERNAL when the
    /// directory, the storage database, the signing key or the net configuration is unusable.
    public init(stateDirectory: String, config: ServicesConfig, logSink: @escaping ProgramLogSink) throws(MiniAppError) {
        do { try FileSystem.makeDirectory(stateDirectory, mode: 0o700) } catch {
            throw MiniAppError(.internal, "cannot create the services state directory \(stateDirectory): \(error)")
        }
        storage = try StorageService(stateDirectory: stateDirectory, config: config)
        auth = try AuthService(stateDirectory: stateDirectory, config: config)
        net = try NetService(config: config)
        system = SystemInfoService(config: config)
        log = LogService(config: config, sink: logSink)
    }

    /// The services, for registration with the broker.
    public var all: [any BridgeService] { [storage, auth, net, system, log] }

    /// Commits pending storage writes and closes the database. Call once, after the broker
    /// stopped dispatching.
    public func shutdown() {
        storage.close()
    }
}
