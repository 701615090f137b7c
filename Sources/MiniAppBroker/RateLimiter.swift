import MiniAppModel

/// A token bucket: refills `perSecond` tokens per second up to `burst`; a call takes one.
struct TokenBucket {
    private var tokens: Double
    private var last: UInt64

    init(_ limit: RateLimit, now: UInt64) {
        tokens = limit.burst
        last = now
    }

    /// Refills for the time elapsed, then takes a token if there is one.
    mutating func take(_ limit: RateLimit, now: UInt64) -> Bool {
        if now > last {
            tokens = min(limit.burst, tokens + Double(now - last) * limit.perSecond / 1e9)
            last = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Gives a token back (the second bucket refused, so the first must not be charged).
    mutating func refund(_ limit: RateLimit) { tokens = min(limit.burst, tokens + 1) }
}

/// Per-program call budgets: one bucket for the program as a whole and one per rate class
/// (`policies/methods.json`). Keyed by program id, not by worker, so starting more workers of
/// the same program does not multiply its budget. Loop-confined (the broker's loop thread).
final class RateLimiter {
    /// The buckets of one program, shared by its workers (each session keeps a reference, so
    /// the hot path does not look the program up).
    final class ProgramBuckets {
        fileprivate var total: TokenBucket
        fileprivate var classes: [String: TokenBucket] = [:]
        /// Classes an operator lowered for this program (applied as the lower of the two).
        fileprivate var lowered: [String: RateLimit] = [:]
        fileprivate var workers = 0
        fileprivate init(total: TokenBucket) { self.total = total }
    }

    private var programs: [String: ProgramBuckets] = [:]

    /// A worker of `programId` attached: keep its buckets while any worker of it runs.
    /// `lowered`: the classes an operator lowered for it (the newest worker's identity decides).
    func retain(_ programId: String, budget: RateLimit, lowered: [String: RateLimit] = [:], now: UInt64) -> ProgramBuckets {
        let p = programs[programId] ?? ProgramBuckets(total: TokenBucket(budget, now: now))
        p.lowered = lowered
        p.workers += 1
        programs[programId] = p
        return p
    }

    /// A worker detached; the buckets go with the last worker of the program.
    func release(_ programId: String) {
        guard let p = programs[programId] else { return }
        p.workers -= 1
        if p.workers <= 0 { programs[programId] = nil }
    }

    /// Takes one token from the program's bucket and the class bucket; false (and nothing
    /// charged) when either is empty.
    func admit(_ p: ProgramBuckets, rateClass: String, catalogue: MethodCatalogue, now: UInt64) -> Bool {
        guard var classLimit = catalogue.classes[rateClass] else { return false }
        // An override only ever lowers: the lower of it and the (possibly reloaded) catalogue's.
        if let o = p.lowered[rateClass] {
            classLimit = RateLimit(perSecond: min(o.perSecond, classLimit.perSecond), burst: min(o.burst, classLimit.burst))
        }
        let budget = catalogue.programBudget
        guard p.total.take(budget, now: now) else { return false }
        let ok = p.classes[rateClass, default: TokenBucket(classLimit, now: now)].take(classLimit, now: now)
        if !ok { p.total.refund(budget) }
        return ok
    }
}
