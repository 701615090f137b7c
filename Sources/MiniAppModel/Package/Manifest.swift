public import MiniAppJSON

/// How a program's entry point is run.
public enum Runtime: String, Sendable, Hashable, CaseIterable {
    /// `execve` of the entry point itself.
    case native
    /// `node <entryPoint>`.
    case node
    /// `python3 <entryPoint>`.
    case python

    /// The default for an entry point: `.js`/`.mjs` → node, `.py` → python, else native.
    public static func inferred(from entryPoint: String) -> Runtime {
        if entryPoint.hasSuffix(".js") || entryPoint.hasSuffix(".mjs") { return .node }
        if entryPoint.hasSuffix(".py") { return .python }
        return .native
    }
}

/// A validated `manifest.json` (spec/package-format.md, schema table).
///
/// Parsing is strict and fails closed: unknown keys (other than `x-…`), wrong types, duplicate
/// keys, invalid UTF-8 and documents over 64 KiB are all `MANIFEST_INVALID`. Whether permissions
/// are *known* and *granted* is checked later by the verifier (steps 6), because that needs the
/// method catalogue and the partner registration.
public struct Manifest: Sendable, Hashable {
    /// The largest manifest accepted, in bytes.
    public static let maxBytes = 64 * 1024
    /// The largest program id accepted, in bytes.
    public static let maxIdBytes = 128

    /// Reverse-DNS program id, e.g. `com.partner.loans`.
    public let id: String
    /// The package version.
    public let version: SemVer
    /// The lowest host version that may run it.
    public let minHostVersion: SemVer
    /// Relative path of the entry point inside the package.
    public let entryPoint: String
    /// Declared permission names, in document order, without duplicates.
    public let permissions: [String]
    /// Allowed egress host patterns (`api.example.com`, `*.example.com`).
    public let allowedDomains: [String]
    /// The runtime, explicit or inferred from the entry point.
    public let runtime: Runtime
    /// Optional display name.
    public let name: String?
    /// Optional description.
    public let description: String?
    /// The `signature` field as written (`rsa-pss-sha256:BASE64`), nil when absent.
    public let signature: String?
    /// The whole document as parsed (including `x-` keys), for the signature statement.
    public let document: JSONObject

    /// The signature scheme prefix of the `signature` field.
    public static let signaturePrefix = "rsa-pss-sha256:"

    private static let knownKeys: Set<String> = [
        "id", "version", "minHostVersion", "entryPoint", "permissions", "allowedDomains", "runtime", "name",
        "description", "signature",
    ]

    /// Parses and validates manifest bytes. `requireSignature: false` is only for a debug build's
    /// simulator mode and for `miniapp pack` (which adds the signature).
    public static func parse(_ bytes: some Collection<UInt8>, requireSignature: Bool = true) throws(MiniAppError)
        -> Manifest
    {
        guard bytes.count <= maxBytes else {
            throw invalid("is \(bytes.count) bytes; the limit is \(maxBytes) (64 KiB)")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes, options: JSONParseOptions(maxDepth: 32, maxBytes: maxBytes))
        } catch {
            throw invalid("is not strict JSON (UTF-8, no duplicate keys): \(error)")
        }
        guard let object = value.objectValue else { throw invalid("must be a JSON object") }
        return try Manifest(object: object, requireSignature: requireSignature)
    }

    /// Validates an already parsed document.
    public init(object: JSONObject, requireSignature: Bool = true) throws(MiniAppError) {
        let r = ManifestReader(manifest: object)
        try r.rejectUnknown(Manifest.knownKeys, alsoAllowed: { $0.hasPrefix("x-") })
        let id = try r.require("id").string()
        guard Manifest.isValidId(id) else {
            throw Manifest.invalid(
                "field \"id\" \"\(id)\" must be lowercase reverse-DNS (^[a-z][a-z0-9-]*(\\.[a-z][a-z0-9-]*)+$), at most 128 bytes")
        }
        self.id = id
        version = try Manifest.semver(r.require("version"))
        minHostVersion = try Manifest.semver(r.require("minHostVersion"))
        entryPoint = try r.require("entryPoint").string()
        if let problem = PackagePath.problem(entryPoint) ?? (entryPoint == "manifest.json" ? "is the manifest" : nil) {
            throw Manifest.invalid("field \"entryPoint\" \"\(entryPoint)\" \(problem)")
        }
        permissions = try Manifest.stringArray(r.member("permissions")) { name in
            PermissionName.isValid(name) ? nil : "is not a permission name ([a-z][a-z0-9._-]*)"
        }
        allowedDomains = try Manifest.stringArray(r.member("allowedDomains")) { DomainPattern.problem($0) }
        runtime = try Manifest.runtime(r.member("runtime"), entryPoint: entryPoint)
        name = try r.member("name")?.string()
        description = try r.member("description")?.string()
        signature = try r.member("signature")?.string()
        if requireSignature, signature == nil {
            throw Manifest.invalid("has no \"signature\"; sign the package with `miniapp pack` or per the spec")
        }
        document = object
    }

    /// The manifest without its `signature`, in RFC 8785 canonical form (the statement's 2nd line).
    public func canonicalWithoutSignature() throws(MiniAppError) -> [UInt8] {
        let stripped = JSONObject(document.members.filter { $0.key != "signature" }.map { ($0.key, $0.value) })
        do {
            return try JSONValue.object(stripped).canonicalized()
        } catch {
            throw Manifest.invalid("cannot be canonicalized (RFC 8785): \(error.message)")
        }
    }

    /// `true` for ids matching the spec's regex and byte cap.
    public static func isValidId(_ id: String) -> Bool {
        let u = Array(id.utf8)
        guard !u.isEmpty, u.count <= maxIdBytes else { return false }
        var labels = 0
        var atLabelStart = true
        for c in u {
            if atLabelStart {
                guard c >= 97 && c <= 122 else { return false }
                atLabelStart = false
                labels += 1
            } else if c == 46 {
                atLabelStart = true
            } else {
                guard (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 else { return false }
            }
        }
        return !atLabelStart && labels >= 2
    }

    // MARK: field readers

    static func invalid(_ what: String) -> MiniAppError {
        MiniAppError(.manifestInvalid, "manifest.json \(what)", data: ["entry": "manifest.json"])
    }

    /// A field's problem as MANIFEST_INVALID, in the manifest's words.
    @Sendable static func fieldError(_ e: JSONFieldError) -> MiniAppError {
        switch e.kind {
        case .missing: invalid("is missing required field \"\(e.path)\"")
        case .unknownMember: invalid("has unknown field \"\(e.path)\"; only the spec's fields and \"x-…\" keys are allowed")
        default: invalid("field \"\(e.path)\" \(e.problem)")
        }
    }

    private static func semver(_ f: ManifestField) throws(MiniAppError) -> SemVer {
        let s = try f.string()
        guard let v = SemVer(s) else { throw f.error("\"\(s)\" is not a Semantic Versioning 2.0.0 version (e.g. 1.2.3)") }
        return v
    }

    /// A list of distinct strings, each passing `check` (nil: fine, else the problem).
    private static func stringArray(_ f: ManifestField?, check: (String) -> String?) throws(MiniAppError) -> [String] {
        guard let f else { return [] }
        var seen = Set<String>()
        var out: [String] = []
        for (item, s) in zip(try f.array(), try f.strings()) {
            if let problem = check(s) { throw item.error("\"\(s)\" \(problem)") }
            guard seen.insert(s).inserted else { throw f.error("lists \"\(s)\" twice") }
            out.append(s)
        }
        return out
    }

    private static func runtime(_ f: ManifestField?, entryPoint: String) throws(MiniAppError) -> Runtime {
        guard let f else { return .inferred(from: entryPoint) }
        guard let r = Runtime(rawValue: try f.string()) else { throw f.error("must be one of native, node, python") }
        return r
    }
}

/// A manifest object, read by the one JSON-field reader: MANIFEST_INVALID naming the field;
/// `null` is a wrong type (the spec has no null member).
typealias ManifestReader = JSONFieldReader<MiniAppError>
typealias ManifestField = JSONField<MiniAppError>

extension JSONFieldReader where Failure == MiniAppError {
    init(manifest object: JSONObject) {
        self.init(object: object, rules: JSONFieldRules(nullIsAbsent: false), errors: Manifest.fieldError)
    }
}

/// Permission name syntax (whether a name is *known* comes from the method catalogue).
public enum PermissionName {
    /// `[a-z][a-z0-9._-]*`, at most 64 bytes.
    public static func isValid(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard let f = u.first, f >= 97 && f <= 122, u.count <= 64 else { return false }
        return u.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 95 || $0 == 45 }
    }

    /// The permission names known when no method catalogue (`methods.json`) is available: those
    /// of the shipped catalogue (`miniapp policy lint` reports docs naming any other).
    public static let builtIn: Set<String> = ["payment", "geolocation", "network", "ui"]
}
