import Logging
import MiniAppModel

/// A long-running part of the daemon (the shape of swift-service-lifecycle's `Service`, without
/// async): built first, then started in its place in the daemon's list, and stopped in the
/// reverse order.
protocol DaemonService: AnyObject {
    /// For the log.
    var name: String { get }
    /// Starts it; throws when the daemon cannot run without it (what started before is stopped).
    func start() throws(MiniAppError)
    /// Stops it: returns once it no longer runs (bounded).
    func stop()
}

/// The daemon's services in start order: `start` runs them first to last, `stop` last to first
/// (a failed start stops the ones already started, in reverse). `Daemon.start` reads as this
/// list, shutdown is its reverse.
final class ServiceGroup {
    private let logger: Logger
    private var started: [any DaemonService] = []

    init(logger: Logger) { self.logger = logger }

    /// Starts `services` in order.
    func start(_ services: [any DaemonService]) throws(MiniAppError) {
        for service in services {
            do throws(MiniAppError) {
                try service.start()
                started.append(service)
                logger.debug("started \(service.name)")
            } catch {
                logger.error("\(service.name) did not start: \(error)")
                stop()
                throw error
            }
        }
    }

    /// Stops what was started, last first.
    func stop() {
        while let service = started.popLast() {
            service.stop()
            logger.debug("stopped \(service.name)")
        }
    }
}

/// A service made of two closures, for parts whose start and stop are one call each.
final class ServiceStep: DaemonService {
    let name: String
    private let onStart: () throws(MiniAppError) -> Void
    private let onStop: () -> Void

    init(_ name: String, start: @escaping () throws(MiniAppError) -> Void = {}, stop: @escaping () -> Void = {}) {
        self.name = name
        onStart = start
        onStop = stop
    }

    func start() throws(MiniAppError) { try onStart() }
    func stop() { onStop() }
}
