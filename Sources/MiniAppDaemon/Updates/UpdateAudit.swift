import Logging
import MiniAppJSON
import MiniAppSystem
import Synchronization

/// The update audit trail: `STATE/audit/updates.jsonl`, one JSON line per update event
/// (`{"time": unix-micros, "event": "package.rolledBack", "id", …}` — the notification's params),
/// 0600, append-only, rotated by size. Beside the Bridge decision log, which is about calls: this
/// one answers "which version ran here when, and why did it change".
final class UpdateAudit: Sendable {
    private let file: Mutex<RotatingFile>
    private let logger: Logger

    /// Opens (creating) `path`; nil, logged, when it cannot be opened (updates still work).
    init?(path: String, logger: Logger) {
        do { file = Mutex(try RotatingFile(path: path, maxBytes: 8 << 20, keep: 3)) } catch {
            logger.warning("cannot open the update audit log \(path): \(error); update events are logged only")
            return nil
        }
        self.logger = logger
    }

    /// Appends one event (`params` must be an object).
    func record(_ event: String, _ params: JSONValue, timeMicros: Int64) {
        var line: JSONObject = ["time": .int(timeMicros), "event": .string(event)]
        for (k, v) in params.objectValue ?? [:] { line[k] = v }
        let bytes = JSONValue.object(line).serialized() + [0x0A]
        do throws(SystemError) { try file.withLock { f throws(SystemError) in try f.append(bytes) } } catch {
            logger.error("cannot write the update audit log: \(error)")
        }
    }
}
