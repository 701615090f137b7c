import Logging
import MiniAppSystem
import Synchronization

/// Who gets a control connection, and how refusals are told: the bounds that keep a flood of
/// connections (allowed peers or not) from taking the daemon's descriptors and memory.
///
/// - Refused peers (not allowed, or over a cap) are answered with one write and closed at once
///   (`ImmediateRefusal`): before, each held a descriptor for the seconds of a lingering close,
///   and one uid connecting in a loop pinned the daemon at its descriptor limit.
/// - At most `perUID` connections per uid, and `total` overall for uids other than root (root
///   keeps its own `perUID`, so the operator can always get in).
/// - Partial messages of all control connections together: at most `inputBudgetBytes`.
/// - The last `descriptorReserve` descriptors are never given to a control connection: they
///   are the daemon's own (a launch needs about ten).
/// - A refusal is logged at most once a second, with the count of the ones not logged.
struct ControlAdmission: Sendable {
    /// The bounds.
    struct Limits: Sendable {
        var perUID = 32
        var total = 128
        var inputBudgetBytes = 32 << 20
        var descriptorReserve = 64
    }

    let limits: Limits
    let inputBudget: ByteBudget
    private let throttle = LogThrottle(intervalNanos: 1_000_000_000)

    init(_ limits: Limits = Limits()) {
        self.limits = limits
        inputBudget = ByteBudget(limit: limits.inputBudgetBytes)
    }

    /// Nil if a peer with `uid` may have one more connection besides `open` (uid → count).
    func refusal(uid: UInt32, open: [UInt32: Int]) -> String? {
        if open[uid, default: 0] >= limits.perUID {
            return "uid \(uid) has \(limits.perUID) control connections open already; close one (or reuse it)"
        }
        let others = open.filter { $0.key != 0 }.values.reduce(0, +)
        if uid != 0 && others >= limits.total {
            return "the daemon has \(limits.total) control connections open already; try again later"
        }
        return nil
    }

    /// Logs `message` unless another refusal was logged less than a second ago.
    func logRefusal(_ logger: Logger, _ message: @autoclosure () -> String) {
        guard let suppressed = throttle.admit() else { return }
        logger.warning("\(message())\(suppressed > 0 ? " (\(suppressed) more refusals not logged)" : "")")
    }
}

/// Admits at most one event per interval; counts the others.
final class LogThrottle: Sendable {
    private let intervalNanos: UInt64
    private let state = Mutex<(last: UInt64, suppressed: Int)>((0, 0))

    init(intervalNanos: UInt64) { self.intervalNanos = intervalNanos }

    /// The number suppressed since the last admitted event, or nil if this one is suppressed.
    func admit() -> Int? {
        let now = monotonicNanos()
        return state.withLock { s in
            if s.last != 0 && now &- s.last < intervalNanos {
                s.suppressed += 1
                return nil
            }
            let n = s.suppressed
            s = (now, 0)
            return n
        }
    }
}
