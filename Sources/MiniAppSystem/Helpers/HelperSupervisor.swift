public import MiniAppModel
internal import Synchronization
import Glibc

/// Keeps one helper running for whoever calls through it: started on first use, restarted after
/// it dies — with a backoff that doubles with each consecutive death (50 ms … 5 s) and resets
/// after a reply, so a helper that a hostile server crashes on every request cannot turn the
/// daemon into a fork loop, while a single crash costs the next caller nothing.
public final class HelperSupervisor: Sendable {
    private let launch: @Sendable () throws(MiniAppError) -> HelperLaunch
    private let state = Mutex(State())
    /// Serializes starts, so concurrent callers after a crash start one helper, not several.
    private let starting = Mutex(())

    private struct State {
        var current: HelperConnection?
        var deaths = 0
        var lastDeath: UInt64 = 0
        var lastUse: UInt64 = 0
        var inFlight = 0

        /// Counts the death of `c` once (it is forgotten here, so a second caller does not
        /// count it again).
        mutating func noteDeath(of c: HelperConnection) {
            guard current === c, !c.isAlive else { return }
            current = nil
            deaths += 1
            lastDeath = monotonicNanos()
        }
    }

    /// `launch` is asked for a fresh launch description at each start.
    public init(launch: @escaping @Sendable () throws(MiniAppError) -> HelperLaunch) {
        self.launch = launch
    }

    /// The running helper's pid, if any (tests, the log).
    public var currentPID: Int32? { state.withLock { $0.current?.isAlive == true ? $0.current?.pid : nil } }

    /// Consecutive deaths not yet followed by a successful reply.
    public var consecutiveDeaths: Int { state.withLock { $0.deaths } }

    /// The delay before the next start after `deaths` consecutive deaths.
    public static func backoffNanos(afterDeaths deaths: Int) -> UInt64 {
        deaths == 0 ? 0 : min(5_000_000_000, 50_000_000 << UInt64(min(deaths - 1, 10)))
    }

    /// Blocks the calling thread for `nanos` (the backoff before a restart).
    public static func sleep(nanos: UInt64) {
        guard nanos > 0 else { return }
        var req = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
        var rem = timespec()
        while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
    }

    /// Sends `frame` to the helper (started or restarted if needed) and waits for its reply.
    public func call(_ frame: HelperFrame, timeoutMillis: Int) -> Result<HelperFrame, HelperCallError> {
        let connection: HelperConnection
        do { connection = try running() } catch { return .failure(.died(error.message)) }
        state.withLock { $0.inFlight += 1 }
        let result = connection.call(frame, timeoutMillis: timeoutMillis)
        state.withLock { s in
            s.inFlight -= 1
            s.lastUse = monotonicNanos()
            switch result {
            case .success: s.deaths = 0
            case .failure: s.noteDeath(of: connection)
            }
        }
        return result
    }

    /// True when no call is in flight and none came for `idleNanos`.
    public func isIdle(for idleNanos: UInt64) -> Bool {
        state.withLock { $0.inFlight == 0 && monotonicNanos() - $0.lastUse > idleNanos }
    }

    /// Ends the helper (idle, or the owner is going away).
    public func stop() {
        let c = state.withLock { s -> HelperConnection? in
            defer { s.current = nil }
            return s.current
        }
        c?.end("stopped by the daemon")
    }

    private func running() throws(MiniAppError) -> HelperConnection {
        if let c = state.withLock({ $0.current }), c.isAlive { return c }
        return try starting.withLock { _ throws(MiniAppError) -> HelperConnection in
            let (other, wait) = state.withLock { s -> (HelperConnection?, UInt64) in
                if let c = s.current, !c.isAlive { s.noteDeath(of: c) }
                let due = s.lastDeath + Self.backoffNanos(afterDeaths: s.deaths)
                let now = monotonicNanos()
                return (s.current, due > now ? due - now : 0)
            }
            if let other { return other }  // started by the caller before us
            Self.sleep(nanos: wait)
            let c: HelperConnection
            do throws(MiniAppError) { c = try HelperConnection.start(try launch()) } catch {
                state.withLock { s in
                    s.deaths += 1
                    s.lastDeath = monotonicNanos()
                }
                throw error
            }
            state.withLock { $0.current = c }
            return c
        }
    }
}
