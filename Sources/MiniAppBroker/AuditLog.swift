import Dispatch
import MiniAppSystem
import MiniAppJSON
import Logging

/// Where and how the broker writes its audit log.
public struct AuditConfiguration: Sendable {
    /// The live file (e.g. `/var/log/miniappd/bridge-audit.jsonl`).
    public var path: String
    /// Rotate beyond this size.
    public var maxBytes: Int
    /// Rotated files kept (`path.1` … `path.<keep>`).
    public var keep: Int
    /// Include (redacted) params and results. Off by default: payloads are the partner's and the
    /// user's data, the audit log is about decisions.
    public var includePayloads: Bool

    public init(path: String, maxBytes: Int = 64 << 20, keep: Int = 5, includePayloads: Bool = false) {
        self.path = path
        self.maxBytes = maxBytes
        self.keep = keep
        self.includePayloads = includePayloads
    }
}

/// The append-only audit log: one JSON line per decision
/// (`{"time","workerId","programId","method","decision","code","micros","bytesIn","bytesOut"}`).
///
/// Records are batched in memory on the loop thread (a struct append) and handed to a private
/// serial queue at most `maxDelayNanos` after the first of a batch (or at 512 records); there
/// they are encoded (`CallRecord.appendJSON`, written directly, no JSON object built) and written
/// with one `write(2)`. So the hot path never encodes nor waits on the disk (the loop is what
/// bounds `bridge.throughput`), and a ping-pong caller does not wake the writer thread once per
/// call on the cores it needs itself, as handing over every record when the loop went to sleep
/// did. Order is kept: one queue, batches in loop order. Shutdown flushes what is pending
/// (`Broker.flushAudit`).
final class AuditLog: @unchecked Sendable {
    private let file: RotatingFile
    private let logger: Logger
    let includePayloads: Bool
    private var batch: [CallRecord] = []  // loop thread: not handed over yet
    private var flushScheduled = false  // loop thread
    /// The longest a record waits in memory before it is handed to the writer.
    static let maxDelayNanos: UInt64 = 1_000_000
    private let writer = DispatchQueue(label: "miniappd.audit")
    private var failed = false  // writer queue

    init(_ config: AuditConfiguration, logger: Logger) throws(SystemError) {
        file = try RotatingFile(path: config.path, maxBytes: config.maxBytes, keep: config.keep)
        includePayloads = config.includePayloads
        self.logger = logger
        batch.reserveCapacity(512)
    }

    /// Loop thread.
    func record(_ r: CallRecord) {
        batch.append(r)
        if batch.count >= 512 { flush() }
    }

    /// Before the loop sleeps (loop thread): makes sure the pending batch is handed over within
    /// `maxDelayNanos`, without waking the writer for every call.
    func loopWillSleep(_ reactor: Reactor) {
        guard !batch.isEmpty else { return }
        if reactor.isStopped { return flush() } // the loop's last pass: no timer will fire now
        guard !flushScheduled else { return }
        flushScheduled = true
        _ = reactor.schedule(afterNanos: Self.maxDelayNanos) { [self] in
            flushScheduled = false
            flush()
        }
    }

    /// Hands the batch to the writer (loop thread, or any thread once the loop has stopped).
    func flush() {
        guard !batch.isEmpty else { return }
        let records = batch
        batch.removeAll(keepingCapacity: true)
        writer.async { [self] in write(records) }
    }

    /// Waits until everything handed over so far is written.
    func waitForWrites() { writer.sync {} }

    private func write(_ records: [CallRecord]) {
        var out: [UInt8] = []
        out.reserveCapacity(records.count * 200)
        for r in records {
            r.appendJSON(into: &out, payloads: includePayloads)
            out.append(0x0A)
        }
        do {
            try file.append(out)
            failed = false
        } catch {
            // Keep serving: an audit write failure (disk full) is reported loudly, once per
            // failure streak, rather than turned into a denial of service for every program.
            if !failed { logger.error("audit log write failed: \(error)") }
            failed = true
        }
    }
}
