import MiniAppModel
import MiniAppSystem
import Synchronization

/// Bounds `packages.install` work: how many run at once per uid and overall, and for how long.
///
/// An install reads, hashes, verifies and extracts up to the zip limits: seconds of CPU and I/O.
/// Run on each connection's queue, a few hundred of them (or one that blocks, such as a FIFO
/// opened for reading) held every worker thread of the shared pool, and `daemon.info`,
/// `programs.launch` and exit reporting of every other client stalled behind them. Here installs
/// run on their own pool, at most `perUID` per uid and `total` overall; any more is refused at
/// once with RATE_LIMITED (the client retries), never queued without bound.
public final class InstallGate: Sendable {
    /// The bounds.
    public struct Limits: Sendable {
        /// Installs in progress per peer uid.
        public var perUID: Int
        /// Installs in progress overall.
        public var total: Int
        /// Longest install, in seconds: past it nothing is committed and the answer is TIMEOUT.
        public var deadlineSeconds: Int

        public init(perUID: Int = 2, total: Int = 4, deadlineSeconds: Int = 120) {
            self.perUID = perUID
            self.total = total
            self.deadlineSeconds = deadlineSeconds
        }
    }

    private let limits: Limits
    private let running = Mutex<[UInt32: Int]>([:])
    /// As wide as the overall bound: every admitted install starts at once.
    private let queue: WorkQueue

    init(_ limits: Limits) {
        self.limits = limits
        queue = WorkQueue(name: "install", width: max(1, limits.total))
    }

    /// Installs in progress now.
    public var inProgress: Int { running.withLock { $0.values.reduce(0, +) } }

    /// Runs `work(deadline)` on the install pool, then `finish` with its result once the slot is
    /// free again (so a client that sends its next install on the answer is not refused), if
    /// `uid` and the daemon are under their bounds; otherwise returns RATE_LIMITED and runs nothing.
    func start<T: Sendable>(
        uid: UInt32, _ work: @escaping @Sendable (UInt64) -> T, then finish: @escaping @Sendable (T) -> Void
    ) -> MiniAppError? {
        let refusal: MiniAppError? = running.withLock { r in
            let total = r.values.reduce(0, +)
            if r[uid, default: 0] >= limits.perUID {
                return MiniAppError(.rateLimited, "uid \(uid) has \(limits.perUID) installs in progress already; wait for one to finish")
            }
            if total >= limits.total {
                return MiniAppError(.rateLimited, "\(total) installs are in progress; wait for one to finish and try again")
            }
            r[uid, default: 0] += 1
            return nil
        }
        if let refusal { return refusal }
        let deadline = monotonicNanos() + UInt64(limits.deadlineSeconds) * 1_000_000_000
        queue.submit { [self] in
            let result = work(deadline)
            running.withLock { r in
                r[uid, default: 1] -= 1
                if r[uid] == 0 { r[uid] = nil }
            }
            finish(result)
        }
        return nil
    }
}
