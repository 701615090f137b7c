import MiniAppJSON
import MiniAppModel
import MiniAppSystem

/// Each program's share of the audit log (loop-confined).
///
/// Without it one program flooding notifications or refused calls wrote as fast as the loop
/// could answer, and rotation pushed every other program's records out of the kept files in
/// seconds: the audit trail of the neighbours was wiped by one tenant. Here every program has
/// two token buckets — one for allowed calls, one for denials and refusals, so a flood of one
/// kind never spends the other's — refilled at `ratePerSecond` up to `burst`. A record over
/// budget is not written but counted, per (program, method, decision, code); each such count
/// becomes one summary record (`"suppressed": n`, "n similar events suppressed") at most once a
/// second and at every flush of the log. So nothing is dropped silently — denials least of
/// all — and a program's share of the file is bounded.
final class AuditBudget {
    struct Key: Hashable {
        var programId: String
        var method: String?
        var decision: CallDecision
        var code: ErrorCode?
    }

    private struct Bucket {
        var tokens: Double
        var updated: UInt64
    }

    private struct Suppressed {
        var count: Int
        var workerId: String
        var firstMicros: Int64
    }

    /// Distinct suppressed keys kept per program; more fold into method `"*"` (a program calling
    /// random unknown method names must not grow this table without bound).
    static let maxKeysPerProgram = 32

    private let ratePerSecond: Double
    private let burst: Double
    private var buckets: [String: (allow: Bucket, deny: Bucket)] = [:]
    private var suppressed: [Key: Suppressed] = [:]
    private var keysPerProgram: [String: Int] = [:]
    private var lastSummary: UInt64 = 0

    init(ratePerSecond: Int, burst: Int) {
        self.ratePerSecond = Double(max(1, ratePerSecond))
        self.burst = Double(max(1, burst))
    }

    /// True if `r` may be written now; otherwise it is counted for a summary.
    func admit(_ r: CallRecord, now: UInt64 = monotonicNanos()) -> Bool {
        var pair = buckets[r.programId] ?? (Bucket(tokens: burst, updated: now), Bucket(tokens: burst, updated: now))
        let allowed = r.decision == .allow
        var b = allowed ? pair.allow : pair.deny
        b.tokens = min(burst, b.tokens + Double(now &- b.updated) / 1e9 * ratePerSecond)
        b.updated = now
        let ok = b.tokens >= 1
        if ok { b.tokens -= 1 }
        if allowed { pair.allow = b } else { pair.deny = b }
        buckets[r.programId] = pair
        if !ok { count(r) }
        return ok
    }

    private func count(_ r: CallRecord) {
        var key = Key(programId: r.programId, method: r.method, decision: r.decision, code: r.code)
        if suppressed[key] == nil {
            if keysPerProgram[r.programId, default: 0] >= Self.maxKeysPerProgram { key.method = "*" }
            if suppressed[key] == nil { keysPerProgram[r.programId, default: 0] += 1 }
        }
        suppressed[key, default: Suppressed(count: 0, workerId: r.workerId, firstMicros: r.timeMicros)].count += 1
    }

    /// Summary records of what was suppressed, if a second passed since the last ones (or
    /// `force`); the counts start again from zero.
    func summaries(now: UInt64 = monotonicNanos(), force: Bool = false) -> [JSONValue] {
        guard !suppressed.isEmpty, force || now &- lastSummary >= 1_000_000_000 else { return [] }
        lastSummary = now
        let time = wallClockMicros()
        let out = suppressed.map { key, s -> JSONValue in
            var o = JSONObject()
            o["time"] = .string(CallRecord.rfc3339(time))
            o["workerId"] = .string(s.workerId)
            o["programId"] = .string(key.programId)
            o["method"] = key.method.map { .string(Redactor.containsIssuedToken($0) ? Redactor.markerText : $0) } ?? .null
            o["decision"] = .string(key.decision.rawValue)
            if let code = key.code { o["code"] = .string(code.rawValue) }
            o["suppressed"] = .int(Int64(s.count))
            o["since"] = .string(CallRecord.rfc3339(s.firstMicros))
            o["message"] = .string("\(s.count) similar events suppressed (the program is over its audit budget)")
            return .object(o)
        }
        suppressed.removeAll(keepingCapacity: true)
        keysPerProgram.removeAll(keepingCapacity: true)
        return out
    }
}
