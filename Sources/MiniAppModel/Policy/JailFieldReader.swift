public import MiniAppJSON

/// Reads typed members of a policy object while tracking the JSON path, so every error names
/// the exact field (`limits.memoryBytes`, `syscalls[3].args[0].op`). Unknown members are
/// rejected: a misspelt key in a security policy must never silently fall back to a default.
public struct JailFieldReader: Sendable {
    /// The object being read.
    public let object: JSONObject
    /// Its path from the document root ("" for the root).
    public let path: String

    /// Wraps `value`, which must be an object.
    public init(_ value: JSONValue, path: String) throws(MiniAppError) {
        guard let o = value.objectValue else { throw Self.invalid(path, "must be an object, not \(value.typeName)") }
        self.object = o
        self.path = path
    }

    /// The path of member `key`.
    public func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// A POLICY_INVALID error naming `field`.
    public static func invalid(_ field: String, _ why: String) -> MiniAppError {
        MiniAppError(
            .policyInvalid, "policy field '\(field.isEmpty ? "(root)" : field)' \(why); fix the policy file",
            data: ["field": field])
    }

    /// Throws if the object has members outside `allowed`. Every object may also carry a
    /// `"comment"` string: policy files are plain JSON, and that member is where a reviewer's
    /// remarks go (Docker's seccomp format does the same); it must be a string so that a
    /// misplaced value (`"comment": {"pids": 8}`) is an error, not a silently ignored setting.
    public func rejectUnknown(_ allowed: Set<String>) throws(MiniAppError) {
        for k in object.keys where !allowed.contains(k) && k != Self.commentKey {
            throw Self.invalid(field(k), "is not a known member (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
        if let c = object[Self.commentKey], c.stringValue == nil {
            throw Self.invalid(field(Self.commentKey), "must be a string (a reviewer's remark)")
        }
    }

    /// The member every policy object may carry for remarks.
    public static let commentKey = "comment"

    /// A nested object reader, or nil when absent.
    public func child(_ key: String) throws(MiniAppError) -> JailFieldReader? {
        guard let v = object[key], !v.isNull else { return nil }
        return try JailFieldReader(v, path: field(key))
    }

    public func bool(_ key: String, default d: Bool) throws(MiniAppError) -> Bool {
        guard let v = object[key] else { return d }
        guard let b = v.boolValue else { throw Self.invalid(field(key), "must be true or false") }
        return b
    }

    public func string(_ key: String, default d: String? = nil) throws(MiniAppError) -> String? {
        guard let v = object[key], !v.isNull else { return d }
        guard let s = v.stringValue else { throw Self.invalid(field(key), "must be a string") }
        return s
    }

    /// An integer in `range`.
    public func int(_ key: String, default d: Int64?, in range: ClosedRange<Int64>) throws(MiniAppError) -> Int64? {
        guard let v = object[key], !v.isNull else { return d }
        guard let i = v.intValue else { throw Self.invalid(field(key), "must be an integer") }
        guard range.contains(i) else { throw Self.invalid(field(key), "is \(i), outside \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    /// A non-negative number (integer or decimal) in `range`.
    public func number(_ key: String, default d: Double?, in range: ClosedRange<Double>) throws(MiniAppError) -> Double? {
        guard let v = object[key], !v.isNull else { return d }
        guard let x = v.doubleValue, x.isFinite else { throw Self.invalid(field(key), "must be a number") }
        guard range.contains(x) else { throw Self.invalid(field(key), "is \(x), outside \(range.lowerBound)...\(range.upperBound)") }
        return x
    }

    public func strings(_ key: String, default d: [String]) throws(MiniAppError) -> [String] {
        guard let v = object[key], !v.isNull else { return d }
        guard let a = v.arrayValue else { throw Self.invalid(field(key), "must be an array of strings") }
        var out: [String] = []
        for (i, e) in a.enumerated() {
            guard let s = e.stringValue else { throw Self.invalid("\(field(key))[\(i)]", "must be a string") }
            out.append(s)
        }
        return out
    }

    /// An object of string values, in document order.
    public func stringMap(_ key: String) throws(MiniAppError) -> [(String, String)] {
        guard let r = try child(key) else { return [] }
        var out: [(String, String)] = []
        for (k, v) in r.object {
            guard let s = v.stringValue else { throw Self.invalid(r.field(k), "must be a string") }
            out.append((k, s))
        }
        return out
    }
}

extension JSONParseOptions {
    /// Policy files (jail.json, methods.json, seccomp profiles, partner and program files):
    /// plain RFC 8259 JSON, so jq, python3 -m json.tool, Docker and Podman read them unchanged.
    /// No `//` comments (remarks go in `"comment"` members); larger than a Bridge message.
    public static let policyFile = JSONParseOptions(maxDepth: 64, maxBytes: 16 << 20, allowComments: false)
}

extension JSONValue {
    /// Parses a policy file, explaining where remarks go when the file still uses `//` lines.
    public static func parsePolicyFile(_ bytes: some Collection<UInt8>, what: String, field: String = "") throws(MiniAppError) -> JSONValue {
        do { return try JSONValue.parse(bytes, options: .policyFile) } catch {
            let hint = bytes.starts(with: Array("//".utf8)) || error.reason == .unexpectedByte && Self.hasLineComment(bytes, at: error.offset)
                ? " (policy files are plain JSON: move // remarks into \"comment\" members)" : ""
            throw MiniAppError(.policyInvalid, "\(what) is not valid JSON: \(error)\(hint); fix the file", data: ["field": field])
        }
    }

    private static func hasLineComment(_ bytes: some Collection<UInt8>, at offset: Int) -> Bool {
        Array(bytes.dropFirst(offset).prefix(2)) == Array("//".utf8)
    }
}
