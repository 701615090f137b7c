import ArgumentParser
import Foundation
import Logging
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem

/// `miniappd`: runs with no config file on embedded defaults; flags override the config file
/// (spec/cli-and-config.md).
@main
struct MiniAppD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "miniappd", abstract: "Runs signed mini-programs in jailed workers and brokers their Bridge calls.",
        version: DaemonVersion.current)

    @Option(help: "Packages, per-program data, the storage database, keys, audit log.") var stateDir: String?
    @Option(help: "The control socket path (ignored under systemd socket activation).") var controlSocket: String?
    @Option(help: "The policy directory (default: the policies embedded in this binary).") var policyDir: String?
    @Option(help: "The host version packages are checked against (default: the daemon's own).") var hostVersion: String?
    @Option(help: "Registry base URL for updates and partner grants (default: none, updates off).") var registry: String?
    @Option(help: "Platform public key (PEM) that signs the registry's partner grants.") var platformKey: String?
    @Option(help: "Optional config file (JSON, `//` comments allowed); see README \"Configuration\".") var config: String?
    @Option(help: "Prometheus endpoint: 127.0.0.1:PORT or unix:/path.") var metricsListen: String?
    @Option(help: "auto, privileged or rootless.") var workerMode: String?
    @Option(help: "Started as root: the user to drop to after starting the privileged spawner, NAME or UID:GID (default: miniappd when that user exists).")
    var user: String?
    @Option(name: .customLong("spawner-socket"), help: "Use the spawner service listening on PATH (miniappd-spawner --listen) instead of starting one; the daemon may then start unprivileged.")
    var spawnerSocket: String?
    @Flag(name: .customLong("no-drop"), help: "Started as root: keep root (the single-process design; for comparison only).")
    var noDrop = false
    @Flag(help: "Simulator mode (debug builds only): install unsigned programs from a directory or a loopback URL.")
    var simulator = false

    func validate() throws {
        #if !DEBUG
        if simulator {
            throw ValidationError(
                "--simulator is refused: this is a release build of miniappd, and simulator mode (unsigned programs) exists only in debug builds (swift build); use miniapp dev with a debug build")
        }
        #endif
    }

    func run() throws {
        // Before any thread exists, so every thread inherits the mask and signals reach only
        // the signalfd loop.
        SignalLoop.blockInProcess()
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = ProcessInfo.processInfo.environment["MINIAPPD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            return h
        }
        let cfg: DaemonConfig
        do {
            cfg = try loadConfig()
        } catch let e as ConfigError {
            throw ValidationError("\(e)")
        }
        do {
            let daemon = try Daemon(config: cfg)
            try daemon.run()
        } catch {
            let e = error
            FileHandle.standardError.write(Data("miniappd: \(e.code.rawValue): \(e.message)\n".utf8))
            throw ExitCode(1)
        }
    }

    func loadConfig() throws -> DaemonConfig {
        var cfg = DaemonConfig()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else {
                throw ConfigError(field: "--config", problem: "cannot read \(config)")
            }
            do {
                try cfg.apply(file: try JSONValue.parse(Array(data), options: .policy))
            } catch let e as JSONError {
                throw ConfigError(field: "--config", problem: "\(config) is not valid JSON: \(e)")
            }
        }
        if let stateDir { cfg.stateDir = stateDir }
        if let controlSocket { cfg.controlSocket = controlSocket }
        if let policyDir { cfg.policyDir = policyDir }
        if let hostVersion { cfg.hostVersion = hostVersion }
        if let registry { cfg.registry = registry }
        if let platformKey { cfg.platformKey = platformKey }
        if let metricsListen { cfg.metricsListen = metricsListen }
        if let workerMode { try cfg.apply(file: ["workerMode": .string(workerMode)]) }
        if let user { cfg.user = user }
        if noDrop { cfg.privilegeSeparation = false }
        if let spawnerSocket { cfg.spawnerSocket = spawnerSocket }
        cfg.simulator = simulator
        return cfg
    }
}
