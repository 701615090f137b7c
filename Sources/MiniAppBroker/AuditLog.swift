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
/// Records are batched in memory on the loop thread (a struct append, no encoding) and handed
/// to a private serial queue before the loop sleeps (or every 512 records), where they are
/// encoded and written with one `write(2)`: the hot path never encodes JSON nor waits on the
/// disk. (Encoding on the loop cost ~10 µs per call in the end-to-end `bridge.rtt` profile.)
/// Order is kept: one queue, batches in loop order.
final class AuditLog: @unchecked Sendable {
    private let file: RotatingFile
    private let logger: Logger
    let includePayloads: Bool
    private var batch: [CallRecord] = []  // loop thread
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
        for var rec in records {
            if !includePayloads {
                rec.params = nil
                rec.result = nil
            }
            rec.json().write(into: &out)
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
