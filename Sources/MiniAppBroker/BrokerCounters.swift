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
}

/// The live counters. Written on the loop thread, read from any thread; guarded by a mutex
/// that is uncontended in practice (one writer, rare readers).
final class CounterStore: Sendable {
    private struct State {
        var byMethod: [String: [CallDecision: UInt64]] = [:]
        var byCode: [String: UInt64] = [:]
        var pendingHostCalls = 0
    }

    private let state = Mutex(State())

    func count(methodKey: String, decision: CallDecision, code: String?) {
        state.withLock { s in
            s.byMethod[methodKey, default: [:]][decision, default: 0] += 1
            if let code { s.byCode[code, default: 0] += 1 }
        }
    }

    func setPendingHostCalls(_ n: Int) { state.withLock { $0.pendingHostCalls = n } }

    func snapshot(workers: [String: UInt64]) -> BrokerCounters {
        state.withLock { s in
            BrokerCounters(
                bridgeCallsByWorker: workers, callsByMethod: s.byMethod, errorsByCode: s.byCode,
                attachedWorkers: workers.count, pendingHostCalls: s.pendingHostCalls)
        }
    }
}
