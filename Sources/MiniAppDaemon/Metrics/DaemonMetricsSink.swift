import Metrics
import MiniAppBroker
import MiniAppSystem
import Synchronization

/// What the daemon reports to Prometheus, and how (README "Metrics"):
///
/// - `miniappd_launch_seconds` (histogram): spawn of a jailed worker, request → exec'd;
/// - `miniappd_worker_exits_total{reason}` and `miniappd_limit_kills_total{limit}`;
/// - `miniappd_workers{state}` (gauge), `miniappd_bridge_pending_host_calls` (gauge);
/// - `miniappd_bridge_calls_total{method,decision}` and `miniappd_bridge_errors_total{code}`;
/// - `miniappd_bridge_call_seconds{method}` (histogram);
/// - `miniappd_data_bytes{program}`, `miniappd_data_inodes{program}` and their
///   `miniappd_data_capacity_*` (gauges): each program's /data volume.
///
/// Bridge figures come from the broker's own counters at scrape time (the hot path never takes
/// the metrics backend's lock); their growth since the last scrape becomes counter increments,
/// and the latency histogram is written from the broker's fixed buckets.
final class DaemonMetricsSink: Sendable {
    let metrics: DaemonMetrics
    private let launchTimer: Metrics.Timer
    private let last = Mutex<(calls: [String: [CallDecision: UInt64]], errors: [String: UInt64])>(([:], [:]))

    init(metrics: DaemonMetrics) {
        self.metrics = metrics
        launchTimer = metrics.timer("miniappd_launch_seconds")
    }

    /// A worker was spawned in `nanos`.
    func launched(nanos: UInt64) { launchTimer.recordNanoseconds(Int64(clamping: nanos)) }

    /// A worker ended.
    func exited(_ info: WorkerExitInfo) {
        metrics.counter("miniappd_worker_exits_total", [("reason", info.reason.rawValue)]).increment()
        if info.reason == .killedOOM || info.reason == .killedLimit {
            metrics.counter("miniappd_limit_kills_total", [("limit", info.detail ?? info.reason.rawValue)]).increment()
        }
    }

    /// The exposition, refreshed from the supervisor and broker now.
    func scrape(workers: [String: Int], broker: BrokerCounters, data: [(programId: String, usage: DataVolume.Usage)] = []) -> [UInt8] {
        // Each program's /data volume: what it holds and what the kernel lets it hold.
        for (id, u) in data {
            metrics.gauge("miniappd_data_bytes", [("program", id)]).record(Int(clamping: u.usedBytes))
            metrics.gauge("miniappd_data_capacity_bytes", [("program", id)]).record(Int(clamping: u.capacityBytes))
            metrics.gauge("miniappd_data_inodes", [("program", id)]).record(Int(clamping: u.usedInodes))
            metrics.gauge("miniappd_data_capacity_inodes", [("program", id)]).record(Int(clamping: u.capacityInodes))
        }
        for state in ["running", "suspended", "stopping"] {
            metrics.gauge("miniappd_workers", [("state", state)]).record(workers[state] ?? 0)
        }
        metrics.gauge("miniappd_bridge_pending_host_calls").record(broker.pendingHostCalls)
        let (prevCalls, prevErrors) = last.withLock { l in
            let p = l
            l = (broker.callsByMethod, broker.errorsByCode)
            return p
        }
        for (method, decisions) in broker.callsByMethod {
            for (decision, n) in decisions {
                let delta = n &- (prevCalls[method]?[decision] ?? 0)
                if delta > 0 {
                    metrics.counter("miniappd_bridge_calls_total", [("method", method), ("decision", decision.rawValue)])
                        .increment(by: Int64(clamping: delta))
                }
            }
        }
        for (code, n) in broker.errorsByCode {
            let delta = n &- (prevErrors[code] ?? 0)
            if delta > 0 { metrics.counter("miniappd_bridge_errors_total", [("code", code)]).increment(by: Int64(clamping: delta)) }
        }
        return metrics.exposition() + Self.latencyText(broker.latencyByMethod)
    }

    /// `miniappd_bridge_call_seconds` in Prometheus text format from the broker's buckets.
    static func latencyText(_ byMethod: [String: LatencyHistogram]) -> [UInt8] {
        guard !byMethod.isEmpty else { return [] }
        var s = "# TYPE miniappd_bridge_call_seconds histogram\n"
        let bounds = BrokerCounters.latencyBucketsMicros
        for method in byMethod.keys.sorted() {
            let h = byMethod[method]!
            let label = "method=\"\(escape(method))\""
            var cumulative: UInt64 = 0
            for (i, bound) in bounds.enumerated() {
                cumulative += h.counts[i]
                s += "miniappd_bridge_call_seconds_bucket{\(label),le=\"\(Double(bound) / 1e6)\"} \(cumulative)\n"
            }
            cumulative += h.counts[bounds.count]
            s += "miniappd_bridge_call_seconds_bucket{\(label),le=\"+Inf\"} \(cumulative)\n"
            s += "miniappd_bridge_call_seconds_sum{\(label)} \(Double(h.sumMicros) / 1e6)\n"
            s += "miniappd_bridge_call_seconds_count{\(label)} \(cumulative)\n"
        }
        return Array(s.utf8)
    }

    /// Label values are program-chosen method names only after the catalogue check (unknown
    /// ones are counted as `(unknown)`), but escape anyway: a `"` or newline must never let a
    /// value forge another series.
    static func escape(_ v: String) -> String {
        var out = ""
        for c in v {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
