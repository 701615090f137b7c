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
    /// Records per second one program may write, for allowed calls and (separately) for denials
    /// and refusals; beyond, records are counted into "n similar events suppressed" summaries.
    public var perProgramRecordsPerSecond: Int
    /// Records one program may write in a burst before the rate applies.
    public var perProgramBurst: Int
    /// Rotate a live file older than this (seconds; 0 = by size only).
    public var maxAgeSeconds: Int
    /// Each program's latest records carried into every fresh file at rotation, so rotation
    /// never leaves a program without its latest records.
    public var carriedPerProgram: Int

    public init(
        path: String, maxBytes: Int = 64 << 20, keep: Int = 5, includePayloads: Bool = false,
        perProgramRecordsPerSecond: Int = 200, perProgramBurst: Int = 2000, maxAgeSeconds: Int = 86_400,
        carriedPerProgram: Int = 8
    ) {
        self.path = path
        self.maxBytes = maxBytes
        self.keep = keep
        self.includePayloads = includePayloads
        self.perProgramRecordsPerSecond = perProgramRecordsPerSecond
        self.perProgramBurst = perProgramBurst
        self.maxAgeSeconds = maxAgeSeconds
        self.carriedPerProgram = carriedPerProgram
    }
}

/// What the audit writer receives: a call's record, or a summary of suppressed ones.
enum AuditEntry {
    case record(CallRecord)
    case summary(JSONValue)

    var programId: String {
        switch self {
        case .record(let r): r.programId
        case .summary(let v): v["programId"]?.stringValue ?? ""
        }
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
///
/// Tenancy: each program writes within its `AuditBudget` (the rest becomes summaries), and at
/// every rotation (by size, or by age) each program's latest `carriedPerProgram` records are
/// written again at the head of the fresh file, marked `"carried": true`.
final class AuditLog: @unchecked Sendable {
    private let file: RotatingFile
    private let logger: Logger
    let includePayloads: Bool
    private let budget: AuditBudget  // loop thread
    private var batch: [AuditEntry] = []  // loop thread: not handed over yet
    private let carried: Int
    private var latest: [String: [[UInt8]]] = [:]  // writer queue: each program's last lines
    private var flushScheduled = false  // loop thread
    /// The longest a record waits in memory before it is handed to the writer.
    static let maxDelayNanos: UInt64 = 1_000_000
    private let writer = WorkQueue(name: "audit-writer")
    private var failed = false  // writer queue

    init(_ config: AuditConfiguration, logger: Logger) throws(SystemError) {
        file = try RotatingFile(path: config.path, maxBytes: config.maxBytes, keep: config.keep, maxAgeSeconds: config.maxAgeSeconds)
        includePayloads = config.includePayloads
        budget = AuditBudget(ratePerSecond: config.perProgramRecordsPerSecond, burst: config.perProgramBurst)
        carried = config.carriedPerProgram
        self.logger = logger
        batch.reserveCapacity(512)
        file.prologue = { [unowned self] in carriedLines() }
    }

    /// Loop thread.
    func record(_ r: CallRecord) {
        guard budget.admit(r) else { return }
        batch.append(.record(r))
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

    /// Hands the batch to the writer (loop thread, or any thread once the loop has stopped),
    /// with the summaries of suppressed records when one is due (`force`: now).
    func flush(force: Bool = false) {
        for s in budget.summaries(force: force) { batch.append(.summary(s)) }
        guard !batch.isEmpty else { return }
        let records = batch
        batch.removeAll(keepingCapacity: true)
        writer.submit { [self] in write(records) }
    }

    /// Waits until everything handed over so far is written.
    func waitForWrites() { writer.runBlocking {} }

    private func write(_ entries: [AuditEntry]) {
        var out: [UInt8] = []
        out.reserveCapacity(entries.count * 200)
        var lines: [(String, Range<Int>)] = []
        for e in entries {
            let start = out.count
            switch e {
            case .record(let r): r.appendJSON(into: &out, payloads: includePayloads)
            case .summary(let v): v.write(into: &out)
            }
            lines.append((e.programId, start..<out.count))
            out.append(0x0A)
        }
        do {
            try file.append(out)
            // After the append: a rotation it caused carries the lines written before it.
            for (program, range) in lines { remember(program, Array(out[range])) }
            failed = false
        } catch {
            // Keep serving: an audit write failure (disk full) is reported loudly, once per
            // failure streak, rather than turned into a denial of service for every program.
            if !failed { logger.error("audit log write failed: \(error)") }
            failed = true
        }
    }

    /// Keeps `line` as one of `program`'s latest (writer queue).
    private func remember(_ program: String, _ line: [UInt8]) {
        guard carried > 0 else { return }
        var ring = latest[program] ?? []
        if ring.count >= carried { ring.removeFirst(ring.count - carried + 1) }
        ring.append(line)
        latest[program] = ring
    }

    /// The head of a fresh file: every program's latest lines, each marked `"carried": true`
    /// (writer queue, from `RotatingFile.rotate`).
    private func carriedLines() -> [UInt8] {
        var out: [UInt8] = []
        for program in latest.keys.sorted() {
            for line in latest[program] ?? [] where line.last == UInt8(ascii: "}") {
                out.append(contentsOf: line.dropLast())
                out.append(contentsOf: Array(#","carried":true}"#.utf8))
                out.append(0x0A)
            }
        }
        return out
    }
}
