public import MiniAppJSON
import MiniAppModel
import Synchronization

/// The answers of a mock bridge, without any transport: the rules (first match wins), then the
/// built-ins — `storage.get/set/remove/keys` over an in-memory dictionary and `system.info` —
/// then `METHOD_NOT_FOUND` naming the method. Rules override built-ins (a rule for
/// `storage.get` answers instead of the dictionary). Thread-safe.
public final class MockBridge: Sendable {
    /// What `system.info` answers and programs are told (`MINIAPP_PROGRAM_ID` …).
    public struct Identity: Sendable {
        public var programId: String
        public var version: String
        public var hostVersion: String

        public init(programId: String = "com.example.mock", version: String = "0.0.0", hostVersion: String = "1.1.0") {
            self.programId = programId
            self.version = version
            self.hostVersion = hostVersion
        }
    }

    /// One answered call, for `--log` and tests.
    public struct Call: Sendable {
        public var method: String
        public var params: JSONValue?
        public var answer: MockRules.Answer
        /// The index of the rule that answered; nil for a built-in or METHOD_NOT_FOUND.
        public var rule: Int?
    }

    private struct State {
        var rules: MockRules
        var used: [Int]
        var storage: [String: JSONValue] = [:]
        var calls: [Call] = []
    }

    private let state: Mutex<State>
    /// The identity `system.info` answers with.
    public let identity: Identity

    public init(rules: MockRules, identity: Identity = Identity()) {
        state = Mutex(State(rules: rules, used: Array(repeating: 0, count: rules.rules.count)))
        self.identity = identity
    }

    /// Every call answered so far, in order.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// The rules (as given).
    public var rules: MockRules { state.withLock { $0.rules } }

    /// The answer to one call and how long to hold it back.
    public func answer(method: String, params: JSONValue?) -> (answer: MockRules.Answer, delayMs: Int) {
        state.withLock { s in
            var out: (MockRules.Answer, Int, Int?)
            if let i = s.rules.rules.indices.first(where: { i in
                let r = s.rules.rules[i]
                return (r.times.map { s.used[i] < $0 } ?? true) && r.matches(method: method, params: params)
            }) {
                s.used[i] += 1
                out = (s.rules.rules[i].answer, s.rules.rules[i].delayMs, i)
            } else {
                out = (builtin(method, params, &s.storage), 0, nil)
            }
            s.calls.append(Call(method: method, params: params, answer: out.0, rule: out.2))
            return (out.0, out.1)
        }
    }

    private func builtin(_ method: String, _ params: JSONValue?, _ storage: inout [String: JSONValue]) -> MockRules.Answer {
        let p = params?.objectValue ?? [:]
        func invalid(_ m: String) -> MockRules.Answer { .error(MockRules.wireError(code: "INVALID_PARAMS", message: m)) }
        switch method {
        case "system.info":
            return .result(["programId": .string(identity.programId), "version": .string(identity.version), "hostVersion": .string(identity.hostVersion)])
        case "storage.get", "storage.set", "storage.remove":
            guard let key = p["key"]?.stringValue, !key.isEmpty, key.utf8.count <= 256 else {
                return invalid("\(method): params.key must be a string of 1…256 bytes")
            }
            if method == "storage.get" { return .result(["value": storage[key] ?? .null]) }
            if method == "storage.remove" {
                storage[key] = nil
                return .result([:])
            }
            guard let value = p["value"] else { return invalid("storage.set: params.value is required (any JSON)") }
            storage[key] = value
            return .result([:])
        case "storage.keys":
            let prefix = p["prefix"]?.stringValue ?? ""
            let keys = storage.keys.filter { $0.hasPrefix(prefix) }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            return .result(["keys": .array(keys.map { .string($0) })])
        default:
            return .error(MockRules.wireError(
                code: "METHOD_NOT_FOUND",
                message: "the mock bridge has no rule for \(method): add {\"method\": \"\(method)\", \"result\": {…}} to the rules file"))
        }
    }
}
