public import Metrics
public import Prometheus

/// The daemon's metrics, in Prometheus text format (swift-metrics API, swift-prometheus backend).
///
/// Bridge call counts are not incremented per call here: the broker keeps its own lock-free
/// counters on the hot path, and `scrape()` turns their growth into counter increments, so a
/// Bridge call never takes the metrics backend's lock.
public final class DaemonMetrics: Sendable {
    /// The registry the exposition reads.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    /// Creates a private registry (tests create several; the process-wide bootstrap is optional).
    public init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(1000),
        ]
        factory = f
    }

    /// A counter with labels.
    public func counter(_ name: String, _ labels: [(String, String)] = []) -> Metrics.Counter {
        Metrics.Counter(label: name, dimensions: labels, factory: factory)
    }

    /// A gauge with labels.
    public func gauge(_ name: String, _ labels: [(String, String)] = []) -> Metrics.Gauge {
        Metrics.Gauge(label: name, dimensions: labels, factory: factory)
    }

    /// A latency histogram (seconds).
    public func timer(_ name: String, _ labels: [(String, String)] = []) -> Metrics.Timer {
        Metrics.Timer(label: name, dimensions: labels, preferredDisplayUnit: .seconds, factory: factory)
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func exposition() -> [UInt8] {
        var out: [UInt8] = []
        registry.emit(into: &out)
        return out
    }
}
