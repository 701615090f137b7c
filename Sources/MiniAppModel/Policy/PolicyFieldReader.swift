public import MiniAppJSON

/// The policy files' reader (jail.json, seccomp profiles, program and partner overrides): the
/// one JSON-field reader with POLICY_INVALID errors that name the exact field
/// (`limits.memoryBytes`, `syscalls[3].args[0].op`). Unknown members are rejected: a misspelt key
/// in a security policy must never silently fall back to a default.
public typealias PolicyFieldReader = JSONFieldReader<MiniAppError>

extension JSONFieldRules {
    /// Policy files: `null` is absent, every object may carry a `"comment"` string.
    public static let policy = JSONFieldRules(nullIsAbsent: true, remarks: true)
}

extension JSONFieldReader where Failure == MiniAppError {
    /// Reads `value`, a policy object at `path`.
    public init(policy value: JSONValue, path: String) throws(MiniAppError) {
        try self.init(value, path: path, rules: .policy, errors: Self.policyError)
    }

    /// A field's problem as POLICY_INVALID.
    @Sendable public static func policyError(_ e: JSONFieldError) -> MiniAppError { invalid(e.path, e.problem) }

    /// A POLICY_INVALID error naming `field`.
    public static func invalid(_ field: String, _ why: String) -> MiniAppError {
        MiniAppError(
            .policyInvalid, "policy field '\(field.isEmpty ? "(root)" : field)' \(why); fix the policy file",
            data: ["field": field])
    }

    /// The member every policy object may carry for remarks.
    public static var commentKey: String { JSONFieldRules.remarkKey }
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
