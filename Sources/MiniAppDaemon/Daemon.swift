import Glibc
public import MiniAppModel
import MiniAppSystem

/// The composed daemon: builds every component from the configuration, then serves until
/// SIGTERM. The order of `start` is the order of dependencies; `shutdown` undoes it.
public final class Daemon {
    let config: DaemonConfig
    let notifier = SystemdNotifier(environment: Daemon.environment())

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
        notifier.notify("READY=1\nSTATUS=serving")
        let tick = notifier.watchdogMicros.map { Int32(clamping: $0 / 2000) } ?? 1000
        while true {
            let sig = signals.next(timeoutMillis: max(tick, 50))
            if notifier.watchdogMicros != nil { notifier.notify("WATCHDOG=1") }
            switch sig {
            case SIGTERM, SIGINT:
                notifier.notify("STOPPING=1\nSTATUS=stopping workers")
                shutdown()
                return
            case SIGHUP:
                notifier.notify("RELOADING=1")
                reload()
                notifier.notify("READY=1\nSTATUS=serving")
            default:
                continue
            }
        }
    }

    func start() throws(MiniAppError) {
        throw MiniAppError(.internal, "the daemon composition lands with the jail, packages and broker (issue 5)")
    }

    func shutdown() {}

    func reload() {}

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
