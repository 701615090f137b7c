public import MiniAppModel

/// The composed daemon: builds every component from the configuration, serves until SIGTERM.
public final class Daemon {
    let config: DaemonConfig

    /// Builds the daemon; nothing is started yet.
    public init(config: DaemonConfig) throws(MiniAppError) {
        self.config = config
    }

    /// Serves until SIGTERM; returns after a clean shutdown.
    public func run() throws(MiniAppError) {
        throw MiniAppError(.internal, "the daemon composition lands with the jail, packages and broker (issue 5)")
    }
}
