public import MiniAppJSON

/// What is wrong with one field of a JSON document: where it is and what it must be. Every
/// reader of a document (control params, the daemon's config, policies, the method catalogue,
/// manifests, partner registrations) turns it into its own stable error code; the path and the
/// problem are the same words everywhere.
public struct JSONFieldError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// A required member is absent.
        case missing
        /// The member is there with another JSON type.
        case wrongType
        /// A number outside its range.
        case outOfRange
        /// A member the document does not define (a misspelt key must never fall back to a
        /// default silently).
        case unknownMember
        /// The right type with a value the caller refuses (its own check).
        case invalid
    }

    public let kind: Kind
    /// The field's path from the document root: `limits.memoryBytes`, `syscalls[3].names[0]`
    /// ("" for the root itself).
    public let path: String
    /// What it must be, as the rest of a sentence that starts with the field: "must be a
    /// string, not number", "is required".
    public let problem: String

    /// The path, or `(root)`.
    public var field: String { path.isEmpty ? "(root)" : path }

    public var description: String { "\(field) \(problem)" }
}

/// Reads typed members of one JSON object strictly, tracking the path so that every error names
/// the exact field. The one reader of JSON fields: each document type says how a
/// `JSONFieldError` becomes its own error (`errors`), so its codes and messages stay its own.
///
/// Absent members read as nil (the caller decides the default or asks `require`); `null` reads
/// as absent unless `nullIsAbsent` is false (manifests and the config refuse it as a wrong type).
public struct JSONFieldReader<Failure: Error>: Sendable {
    /// The object being read.
    public let object: JSONObject
    /// Its path from the document root ("" for the root).
    public let path: String
    /// How the document treats `null` and remarks.
    public let rules: JSONFieldRules
    /// How a field's problem becomes the caller's error.
    public let errors: @Sendable (JSONFieldError) -> Failure

    /// Reads `value`, which must be an object.
    public init(
        _ value: JSONValue, path: String = "", rules: JSONFieldRules = .init(), errors: @escaping @Sendable (JSONFieldError) -> Failure
    ) throws(Failure) {
        try self.init(JSONField(value, path: path, rules: rules, errors: errors))
    }

    /// Reads a field, which must be an object (with a string remark, if any, when the document
    /// allows remarks).
    public init(_ field: JSONField<Failure>) throws(Failure) {
        guard let o = field.value.objectValue else { throw field.error(.wrongType, "must be an object, not \(field.value.typeName)") }
        self.init(object: o, path: field.path, rules: field.rules, errors: field.errors)
        try checkRemark()
    }

    /// Reads an object already known to be one.
    public init(object: JSONObject, path: String = "", rules: JSONFieldRules = .init(), errors: @escaping @Sendable (JSONFieldError) -> Failure) {
        self.object = object
        self.path = path
        self.rules = rules
        self.errors = errors
    }

    /// The path of member `key` (a root of `$` gives `$.key`).
    public func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The caller's error for `problem` at `path`.
    public func error(_ kind: JSONFieldError.Kind, at path: String, _ problem: String) -> Failure {
        errors(JSONFieldError(kind: kind, path: path, problem: problem))
    }

    /// Member `key` as a field, or nil when absent (or `null`, when that reads as absent).
    public func member(_ key: String) -> JSONField<Failure>? {
        guard let v = object[key], !(rules.nullIsAbsent && v.isNull) else { return nil }
        return JSONField(v, path: field(key), rules: rules, errors: errors)
    }

    /// Member `key`, which must be present.
    public func require(_ key: String) throws(Failure) -> JSONField<Failure> {
        guard let f = member(key) else { throw error(.missing, at: field(key), "is required") }
        return f
    }

    /// Throws `unknownMember` for the first member outside `allowed` (and not `alsoAllowed`), and
    /// checks the remark when the document allows remarks.
    public func rejectUnknown(_ allowed: Set<String>, alsoAllowed: (String) -> Bool = { _ in false }) throws(Failure) {
        for k in object.keys where !allowed.contains(k) && !alsoAllowed(k) && !(rules.remarks && k == JSONFieldRules.remarkKey) {
            throw error(.unknownMember, at: field(k), "is not a known member (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
        try checkRemark()
    }

    /// When the document allows remarks: the remark, if any, is a string, so that a misplaced
    /// value (`"comment": {"pids": 8}`) is an error, not a silently ignored setting.
    public func checkRemark() throws(Failure) {
        guard rules.remarks, let c = object[JSONFieldRules.remarkKey], c.stringValue == nil else { return }
        throw error(.wrongType, at: field(JSONFieldRules.remarkKey), "must be a string (a reviewer's remark)")
    }

    /// The members, without the remark when the document allows remarks.
    public var members: [(key: String, field: JSONField<Failure>)] {
        object.members.compactMap { m in
            rules.remarks && m.key == JSONFieldRules.remarkKey ? nil : (m.key, JSONField(m.value, path: field(m.key), rules: rules, errors: errors))
        }
    }

    // MARK: optional members with defaults (absent → the default)

    /// A nested object, or nil when absent.
    public func child(_ key: String) throws(Failure) -> JSONFieldReader? { try member(key)?.object() }

    public func bool(_ key: String, default d: Bool) throws(Failure) -> Bool { try member(key)?.bool() ?? d }

    public func string(_ key: String, default d: String? = nil) throws(Failure) -> String? { try member(key)?.string() ?? d }

    /// An integer in `range`.
    public func int(_ key: String, default d: Int64?, in range: ClosedRange<Int64>) throws(Failure) -> Int64? {
        try member(key)?.int(in: range) ?? d
    }

    /// A finite number in `range`.
    public func number(_ key: String, default d: Double?, in range: ClosedRange<Double>) throws(Failure) -> Double? {
        try member(key)?.number(in: range) ?? d
    }

    public func strings(_ key: String, default d: [String]) throws(Failure) -> [String] { try member(key)?.strings() ?? d }

    /// An object of string values, in document order ([] when absent).
    public func stringMap(_ key: String) throws(Failure) -> [(String, String)] { try member(key)?.stringMap() ?? [] }
}

/// How a document treats `null` members and remarks.
public struct JSONFieldRules: Sendable {
    /// A `null` member reads as absent (false: it is a wrong type, as in manifests).
    public var nullIsAbsent: Bool
    /// Every object may carry a `"comment"` string (policy files are plain JSON: that member is
    /// where a reviewer's remarks go, as in Docker's seccomp format).
    public var remarks: Bool

    /// The member that carries remarks.
    public static let remarkKey = "comment"

    public init(nullIsAbsent: Bool = true, remarks: Bool = false) {
        self.nullIsAbsent = nullIsAbsent
        self.remarks = remarks
    }
}

/// One JSON value at a known path, read as the type its document defines.
public struct JSONField<Failure: Error>: Sendable {
    public let value: JSONValue
    /// Its path from the document root.
    public let path: String
    public let rules: JSONFieldRules
    public let errors: @Sendable (JSONFieldError) -> Failure

    public init(_ value: JSONValue, path: String, rules: JSONFieldRules = .init(), errors: @escaping @Sendable (JSONFieldError) -> Failure) {
        self.value = value
        self.path = path
        self.rules = rules
        self.errors = errors
    }

    /// The caller's error for this field.
    public func error(_ kind: JSONFieldError.Kind, _ problem: String) -> Failure { errors(JSONFieldError(kind: kind, path: path, problem: problem)) }

    /// The caller's error for a value of the right type it refuses.
    public func error(_ problem: String) -> Failure { error(.invalid, problem) }

    /// nil for `null`, else the field (where a document that refuses `null` allows it).
    public var nonNull: JSONField? { value.isNull ? nil : self }

    private func wrongType(_ expected: String) -> Failure { error(.wrongType, "must be \(expected), not \(value.typeName)") }

    public func bool() throws(Failure) -> Bool {
        guard let b = value.boolValue else { throw wrongType("true or false") }
        return b
    }

    /// A string; `nonEmpty` refuses "".
    public func string(nonEmpty: Bool = false) throws(Failure) -> String {
        guard let s = value.stringValue else { throw wrongType(nonEmpty ? "a non-empty string" : "a string") }
        guard !nonEmpty || !s.isEmpty else { throw error(.invalid, "must be a non-empty string") }
        return s
    }

    /// An integer (no fraction, no exponent beyond its digits) in `range`.
    public func int(in range: ClosedRange<Int64>) throws(Failure) -> Int64 {
        guard let i = value.intValue else { throw wrongType("an integer") }
        guard range.contains(i) else { throw error(.outOfRange, "is \(i), outside \(range.lowerBound)…\(range.upperBound)") }
        return i
    }

    /// An integer in `range`, as `Int`.
    public func int(in range: ClosedRange<Int>) throws(Failure) -> Int {
        Int(try int(in: Int64(range.lowerBound)...Int64(range.upperBound)))
    }

    /// A finite number.
    public func number() throws(Failure) -> Double {
        guard let x = value.doubleValue, x.isFinite else { throw wrongType("a number") }
        return x
    }

    /// A finite number in `range`.
    public func number(in range: ClosedRange<Double>) throws(Failure) -> Double {
        let x = try number()
        guard range.contains(x) else { throw error(.outOfRange, "is \(x), outside \(range.lowerBound)…\(range.upperBound)") }
        return x
    }

    /// An object.
    public func object() throws(Failure) -> JSONFieldReader<Failure> { try JSONFieldReader(self) }

    /// An array, each element a field at `path[i]`.
    public func array() throws(Failure) -> [JSONField<Failure>] {
        guard let a = value.arrayValue else { throw wrongType("an array") }
        return a.enumerated().map { JSONField($0.element, path: "\(path)[\($0.offset)]", rules: rules, errors: errors) }
    }

    /// An array of strings (`nonEmpty`: of non-empty strings); an element's error names it.
    public func strings(nonEmpty: Bool = false) throws(Failure) -> [String] {
        guard value.arrayValue != nil else { throw wrongType(nonEmpty ? "an array of non-empty strings" : "an array of strings") }
        var out: [String] = []
        for e in try array() { out.append(try e.string(nonEmpty: nonEmpty)) }
        return out
    }

    /// An object whose values are all strings, in document order.
    public func stringMap() throws(Failure) -> [(String, String)] {
        guard value.objectValue != nil else { throw wrongType("an object of strings") }
        let r = try object()
        var out: [(String, String)] = []
        for (k, v) in r.object {
            guard let s = v.stringValue else { throw r.error(.wrongType, at: r.field(k), "must be a string, not \(v.typeName)") }
            out.append((k, s))
        }
        return out
    }
}
