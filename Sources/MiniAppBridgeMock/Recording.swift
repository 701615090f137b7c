public import MiniAppJSON
public import MiniAppModel

/// A recording (`miniapp inspect --record FILE`): the inspector events of a program's calls,
/// with their params and results, one JSON object per line. `rules(from:)` turns it into mock
/// rules that give the recorded replies in order (`miniapp replay FILE -- CMD`): a bug report
/// replays without the host, the daemon or the user's data.
public enum Recording {
    /// Whether an inspector event can be replayed: it carries its result or its error code
    /// (payloads are in events only for simulated programs or with `inspectorPayloads` on).
    public static func isReplayable(_ event: JSONValue) -> Bool {
        event["method"]?.stringValue != nil && (event["result"] != nil || event["code"]?.stringValue != nil)
    }

    /// One rule per recorded call, in order, each answering once: the same method with (at
    /// least) the same params gets the recorded result, or the recorded error code. Redacted
    /// values stay redacted (`"[REDACTED]"`): a recording never holds a token.
    public static func rules(from text: [UInt8]) throws(MiniAppError) -> (rules: MockRules, programId: String?) {
        var rules: [MockRules.Rule] = []
        var programId: String?
        for (n, line) in text.split(separator: 0x0A, omittingEmptySubsequences: true).enumerated() {
            let event: JSONValue
            do { event = try JSONValue.parse(Array(line), options: .strict) } catch {
                throw MiniAppError(.invalidParams, "recording line \(n + 1) is not JSON: \(error)")
            }
            guard isReplayable(event), let method = event["method"]?.stringValue else {
                throw MiniAppError(.invalidParams, "recording line \(n + 1) has no method and result or code: record a simulated program (miniapp dev) or turn inspectorPayloads on")
            }
            programId = programId ?? event["programId"]?.stringValue
            let answer: MockRules.Answer
            if let code = event["code"]?.stringValue {
                answer = .error(MockRules.wireError(code: code, message: "\(method): \(code) (recorded)"))
            } else {
                answer = .result(event["result"] ?? .null)
            }
            let params = event["params"]?.objectValue.map { JSONValue.object($0) }
            rules.append(MockRules.Rule(method: method, params: params, answer: answer, times: 1))
        }
        return (MockRules(rules: rules), programId)
    }
}

extension MockRules {
    /// The method glob of the rules format (`*`, `?`), for filters such as `inspect --method`.
    public static func globMatches(_ pattern: String, _ method: String) -> Bool { Glob.matches(pattern, method) }
}
