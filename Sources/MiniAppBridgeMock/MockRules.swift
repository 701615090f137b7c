public import MiniAppJSON
public import MiniAppModel

/// The mock bridge's rules file (README "Mock bridge"), the same format for `miniapp
/// mock-bridge`, the JS mock (`miniapp-bridge-mock`), the Python mock (`miniapp_bridge.mock`)
/// and `MiniAppBridgeMock`:
///
///     {"rules": [{"method": "payment.*", "params": {"currency": "USD"},
///                 "result": {"transactionId": "tx-1"}, "delayMs": 20, "times": 1}]}
///
/// `method` is exact or a glob (`*` any run of characters, `?` one); `params` a subset the call's
/// params must contain (objects compared member by member, recursively; anything else by
/// equality); exactly one of `result` or `error: {code, message, data?}`; `delayMs` holds the
/// answer back (0…60000); `times` (an extension) lets a rule answer that many calls, then it is
/// spent (replays are built that way). Ordered: the first rule that matches answers. A rules
/// file is the partner's own input, but it is still parsed strictly (unknown members are
/// refused, naming the rule): a typo such as `"parms"` silently matching every call would make
/// a test pass for the wrong reason.
public struct MockRules: Sendable, Equatable {
    /// One rule.
    public struct Rule: Sendable, Equatable {
        /// Exact method name or glob.
        public var method: String
        /// Members the call's params must contain.
        public var params: JSONValue?
        /// The answer.
        public var answer: Answer
        /// Milliseconds before the answer is sent.
        public var delayMs: Int
        /// How many calls the rule answers (nil: any number).
        public var times: Int?

        public init(method: String, params: JSONValue? = nil, answer: Answer, delayMs: Int = 0, times: Int? = nil) {
            self.method = method
            self.params = params
            self.answer = answer
            self.delayMs = delayMs
            self.times = times
        }

        /// True when this rule answers `method` called with `callParams`.
        public func matches(method m: String, params callParams: JSONValue?) -> Bool {
            guard Glob.matches(method, m) else { return false }
            guard let want = params else { return true }
            return Subset.contains(callParams ?? .object([:]), want)
        }
    }

    /// A rule's answer: a result, or an error as the real broker sends it.
    public enum Answer: Sendable, Equatable {
        case result(JSONValue)
        case error(RPCErrorObject)
    }

    /// The rules, in order.
    public var rules: [Rule]

    public init(rules: [Rule] = []) { self.rules = rules }

    /// Parses a rules document (strict JSON; `//` comments are not allowed: the same file is
    /// read by `JSON.parse` and Python's `json`).
    public static func parse(_ bytes: [UInt8]) throws(MiniAppError) -> MockRules {
        let doc: JSONValue
        do { doc = try JSONValue.parse(bytes, options: .strict) } catch {
            throw MiniAppError(.invalidParams, "the rules file is not valid JSON: \(error)")
        }
        guard let top = doc.objectValue, let list = top["rules"]?.arrayValue else {
            throw MiniAppError(.invalidParams, "the rules file must be {\"rules\": [ … ]}")
        }
        if let extra = top.keys.first(where: { $0 != "rules" }) {
            throw MiniAppError(.invalidParams, "the rules file has an unknown member \"\(extra)\"; only \"rules\" is allowed")
        }
        var rules: [Rule] = []
        for (i, r) in list.enumerated() { rules.append(try parseRule(r, index: i)) }
        return MockRules(rules: rules)
    }

    static let ruleKeys: Set<String> = ["method", "params", "result", "error", "delayMs", "times"]

    private static func parseRule(_ v: JSONValue, index i: Int) throws(MiniAppError) -> Rule {
        func bad(_ what: String) -> MiniAppError { MiniAppError(.invalidParams, "rules[\(i)]: \(what)") }
        guard let o = v.objectValue else { throw bad("must be an object") }
        if let extra = o.keys.first(where: { !ruleKeys.contains($0) }) {
            throw bad("unknown member \"\(extra)\" (allowed: method, params, result, error, delayMs, times)")
        }
        guard let method = o["method"]?.stringValue, !method.isEmpty, method.utf8.count <= RPCCodec.maxMethodBytes else {
            throw bad("needs \"method\": a method name or glob such as \"payment.*\"")
        }
        if let p = o["params"], p.objectValue == nil { throw bad("\"params\" must be an object (the members to match)") }
        let answer: Answer
        switch (o["result"], o["error"]) {
        case (let r?, nil): answer = .result(r)
        case (nil, let e?): answer = .error(try parseError(e, bad))
        default: throw bad("needs exactly one of \"result\" or \"error\"")
        }
        let delay = try bounded(o["delayMs"], 0...60_000, "delayMs", bad) ?? 0
        let times = try bounded(o["times"], 1...1_000_000, "times", bad)
        return Rule(method: method, params: o["params"], answer: answer, delayMs: delay, times: times)
    }

    private static func bounded(
        _ v: JSONValue?, _ range: ClosedRange<Int>, _ name: String, _ bad: (String) -> MiniAppError
    ) throws(MiniAppError) -> Int? {
        guard let v else { return nil }
        guard let n = v.intValue.flatMap({ Int(exactly: $0) }), range.contains(n) else {
            throw bad("\"\(name)\" must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    /// `{code, message, data?}` → the wire error the broker would send: a spec code gets its
    /// number, any other code (`[A-Z0-9_]{1,64}`, e.g. `PAYMENT_DECLINED`) -32000, as the
    /// daemon relays a host provider's own codes.
    private static func parseError(_ e: JSONValue, _ bad: (String) -> MiniAppError) throws(MiniAppError) -> RPCErrorObject {
        guard let o = e.objectValue, let code = o["code"]?.stringValue, isCode(code) else {
            throw bad("\"error\" must be {\"code\": \"PERMISSION_DENIED\" (A-Z, 0-9, _), \"message\": \"…\"}")
        }
        if let extra = o.keys.first(where: { !["code", "message", "data"].contains($0) }) {
            throw bad("\"error\" has an unknown member \"\(extra)\" (allowed: code, message, data)")
        }
        guard let message = o["message"]?.stringValue else { throw bad("\"error\" needs a \"message\" string") }
        if let d = o["data"], d.objectValue == nil { throw bad("\"error.data\" must be an object") }
        return wireError(code: code, message: message, data: o["data"]?.objectValue ?? [:])
    }

    static func isCode(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    /// The error object the broker sends for `code` (data.code first, then the rest of `data`).
    public static func wireError(code: String, message: String, data: JSONObject = [:]) -> RPCErrorObject {
        let known = ErrorCode.wireCodes.first { $0.rawValue == code }
        var d: JSONObject = ["code": .string(code)]
        for m in data where m.key != "code" { d[m.key] = m.value }
        return RPCErrorObject(code: Int64(known?.rpcNumber ?? -32000), message: message, data: .object(d))
    }
}

/// Method globs: `*` any run of characters (dots included), `?` exactly one.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
                pi += 1; ti += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

/// "params a subset to match": every member the rule names must be in the call, with a value
/// that contains the rule's (objects recursively); arrays and scalars compare equal.
enum Subset {
    static func contains(_ have: JSONValue, _ want: JSONValue) -> Bool {
        guard let w = want.objectValue else { return numericEqual(have, want) }
        guard let h = have.objectValue else { return false }
        for m in w {
            guard let v = h[m.key], contains(v, m.value) else { return false }
        }
        return true
    }

    /// `1` and `1.0` are the same JSON number (a JS caller cannot tell them apart).
    static func numericEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if a == b { return true }
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return false
    }
}
