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
/// Records are batched in memory and written with one `write(2)` before the loop sleeps (or
/// when 64 KiB are pending), so the hot path never waits on the disk. Loop-confined.
final class AuditLog: @unchecked Sendable {
    private let file: RotatingFile
    private let logger: Logger
    let includePayloads: Bool
    private var pending: [UInt8] = []
    private var failed = false

    init(_ config: AuditConfiguration, logger: Logger) throws(SystemError) {
        file = try RotatingFile(path: config.path, maxBytes: config.maxBytes, keep: config.keep)
        includePayloads = config.includePayloads
        self.logger = logger
        pending.reserveCapacity(64 << 10)
    }

    func record(_ r: CallRecord) {
        var rec = r
        if !includePayloads {
            rec.params = nil
            rec.result = nil
        }
        rec.json().write(into: &pending)
        pending.append(0x0A)
        if pending.count >= 64 << 10 { flush() }
    }

    func flush() {
        guard !pending.isEmpty else { return }
        do {
            try file.append(pending)
            failed = false
        } catch {
            // Keep serving: an audit write failure (disk full) is reported loudly, once per
            // failure streak, rather than turned into a denial of service for every program.
            if !failed { logger.error("audit log write failed: \(error)") }
            failed = true
        }
        pending.removeAll(keepingCapacity: true)
    }
}
