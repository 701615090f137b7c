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
/// The message is capped (`config.log.maxMessageBytes`, over → INVALID_PARAMS) and its control
/// characters are escaped (`\n` → `\u{0A}`), so a program cannot forge extra lines or terminal
/// escapes in the daemon's log (log injection, CWE-117). The program id and worker id come from
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
            sink(level, caller.programId, caller.workerId, Self.escapeControls(message))
            reply(.success(.object([:])))
        } catch {
            reply(.failure(error))
        }
    }

    /// Escapes C0 controls, DEL and the C1 range (which includes the 8-bit CSI).
    static func escapeControls(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for scalar in s.unicodeScalars {
            if isControl(scalar) {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\u{" + (hex.count < 2 ? "0" + hex : hex) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7f...0x9f).contains(u.value) || u.value == 0x2028 || u.value == 0x2029
    }
}
