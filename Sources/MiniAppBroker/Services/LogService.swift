public import MiniAppJSON
internal import MiniAppModel

/// Severity of a program's log line (`log.write {level}`).
public enum ProgramLogLevel: String, Sendable, CaseIterable {
    case debug, info, warn, error
}

/// Where `log.write` lines go: the daemon forwards them to its logger, tagged with the program
/// and worker ids. Called on the Bridge thread: keep it cheap and non-blocking.
public typealias ProgramLogSink = @Sendable (
    _ level: ProgramLogLevel, _ programId: String, _ workerId: String, _ message: String
) -> Void

/// `log.write {level, message}` → `{}`.
///
/// The message is capped (`config.log.maxMessageBytes`, over → INVALID_PARAMS) and escaped with
/// `TerminalText` (`\n` → `\u{a}`), so a program cannot forge extra lines or terminal escapes
/// in the daemon's log (log injection, CWE-117). The program id and worker id come from
/// the connection, never from params.
public struct LogService: BridgeService {
    public let methods = ["log.write"]
    private let maxMessageBytes: Int
    private let sink: ProgramLogSink

    /// `sink` receives every accepted line.
    public init(config: ServicesConfig, sink: @escaping ProgramLogSink) {
        maxMessageBytes = config.log.maxMessageBytes
        self.sink = sink
    }

    public func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        do throws(MiniAppError) {
            guard method == "log.write" else { throw MiniAppError.unservedMethod(method, service: "log") }
            let p = try ServiceParams(params, method: method, allowed: ["level", "message"])
            let levelName = try p.string("level", required: true) ?? ""
            guard let level = ProgramLogLevel(rawValue: levelName) else {
                throw MiniAppError(.invalidParams, "log.write: level must be one of debug, info, warn, error")
            }
            let message = try p.string("message", required: true) ?? ""
            if message.utf8.count > maxMessageBytes {
                throw MiniAppError(
                    .invalidParams, "log.write: message is \(message.utf8.count) bytes; the limit is \(maxMessageBytes)")
            }
            // An issued token in a log line would sit in the daemon's log for anyone who reads
            // it (the inspector and the audit log redact them the same way).
            sink(level, caller.programId, caller.workerId, TerminalText.escape(Redactor.redactingIssuedTokens(in: message)))
            reply(.success(.object([:])))
        } catch {
            reply(.failure(error))
        }
    }
}
