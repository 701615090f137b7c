import Synchronization

/// A snapshot of the broker's counters, for `programs.list` (`bridgeCalls`) and the
/// Prometheus exporter (`miniappd_bridge_calls_total{method,decision}`).
public struct BrokerCounters: Sendable, Equatable {
    /// Calls per attached worker id (every message counts, refused ones included).
    public var bridgeCallsByWorker: [String: UInt64]
    /// Calls per method and decision. Methods not in the catalogue are counted under
    /// `"(unknown)"` and malformed lines under `"(invalid)"`, so a hostile program cannot grow
    /// this map by sending random method names.
    public var callsByMethod: [String: [CallDecision: UInt64]]
    /// Calls per error code answered (`PERMISSION_DENIED`, `TIMEOUT`, …).
    public var errorsByCode: [String: UInt64]
    /// Workers attached now.
    public var attachedWorkers: Int
    /// Host calls waiting for a provider now.
    public var pendingHostCalls: Int
    /// Latency (arrival → answer) per method: cumulative counts per bucket of
    /// `BrokerCounters.latencyBucketsMicros` (+Inf last), and the sum in microseconds.
    public var latencyByMethod: [String: LatencyHistogram] = [:]

    /// Upper bounds (µs) of the latency buckets; a Prometheus histogram adds `+Inf`.
    public static let latencyBucketsMicros: [Int64] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000, 250_000, 1_000_000]
}

/// A fixed-bucket latency histogram (Prometheus style: `counts[i]` = observations ≤ bound i,
/// non-cumulative here; the exporter accumulates).
public struct LatencyHistogram: Sendable, Equatable {
    /// Observations per bucket; the last entry is the overflow (+Inf) bucket.
    public var counts = [UInt64](repeating: 0, count: BrokerCounters.latencyBucketsMicros.count + 1)
    /// Sum of observations, microseconds.
    public var sumMicros: UInt64 = 0

    mutating func observe(_ micros: Int64) {
        let bounds = BrokerCounters.latencyBucketsMicros
        var i = 0
        while i < bounds.count && micros > bounds[i] { i += 1 }
        counts[i] += 1
        sumMicros &+= UInt64(max(0, micros))
    }
}

/// The live counters. Written on the loop thread, read from any thread; guarded by a mutex
/// that is uncontended in practice (one writer, rare readers).
final class CounterStore: Sendable {
    private struct State {
        var byMethod: [String: [CallDecision: UInt64]] = [:]
        var byCode: [String: UInt64] = [:]
        var pendingHostCalls = 0
        var latency: [String: LatencyHistogram] = [:]
    }

    private let state = Mutex(State())

    func count(methodKey: String, decision: CallDecision, code: String?, micros: Int64) {
        state.withLock { s in
            s.byMethod[methodKey, default: [:]][decision, default: 0] += 1
            if let code { s.byCode[code, default: 0] += 1 }
            s.latency[methodKey, default: LatencyHistogram()].observe(micros)
        }
    }

    func setPendingHostCalls(_ n: Int) { state.withLock { $0.pendingHostCalls = n } }

    func snapshot(workers: [String: UInt64]) -> BrokerCounters {
        state.withLock { s in
            BrokerCounters(
                bridgeCallsByWorker: workers, callsByMethod: s.byMethod, errorsByCode: s.byCode,
                attachedWorkers: workers.count, pendingHostCalls: s.pendingHostCalls, latencyByMethod: s.latency)
        }
    }
}
