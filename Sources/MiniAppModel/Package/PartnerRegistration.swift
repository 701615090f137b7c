public import MiniAppJSON

/// A partner registration (`partners/*.json`, spec/cli-and-config.md; the same document the
/// registry serves): who the partner is, which program ids it owns, the RSA public keys its
/// packages are signed with (several during rotation), and the permissions it is granted now.
///
/// The Bridge broker reads `permissions` (grants); the verifier reads `idPrefixes` and
/// `publicKeys`. Keys are kept as PEM text here (this module does no crypto); the verifier
/// parses them and refuses keys under 2048 bits.
public struct PartnerRegistration: Sendable, Hashable {
    /// Partner id, e.g. `com.partner`.
    public let id: String
    /// Program-id prefixes the partner owns, each ending in `.` (e.g. `com.partner.`).
    public let idPrefixes: [String]
    /// PEM `-----BEGIN PUBLIC KEY-----` blocks.
    public let publicKeys: [String]
    /// Permissions the partner is currently granted.
    public let permissions: Set<String>
    /// The operator's limits for every program of this partner (`overrides`; only lower).
    public let overrides: PolicyOverride?

    /// A registration from its parts (tests, the registry client).
    public init(id: String, idPrefixes: [String], publicKeys: [String], permissions: Set<String>, overrides: PolicyOverride? = nil) {
        self.id = id
        self.idPrefixes = idPrefixes
        self.publicKeys = publicKeys
        self.permissions = permissions
        self.overrides = overrides
    }

    /// Parses one registration strictly: the four members (plus optional `comment` and
    /// `description` strings), right types, prefixes ending
    /// in `.`, at least one key. `source` names the file in messages.
    public static func parse(_ bytes: some Collection<UInt8>, source: String) throws(MiniAppError) -> PartnerRegistration {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes, options: .strict)
        } catch {
            throw invalid(source, "is not strict JSON: \(error)")
        }
        guard let o = value.objectValue else { throw invalid(source, "must be a JSON object") }
        return try PartnerRegistration(object: o, source: source)
    }

    /// Validates a parsed registration (also used for each entry of the registry's document).
    public init(object o: JSONObject, source: String) throws(MiniAppError) {
        let r = JSONFieldReader(
            object: o, rules: JSONFieldRules(nullIsAbsent: false, remarks: true),
            errors: { e in PartnerRegistration.fieldError(e, source: source) })
        try r.rejectUnknown(["id", "idPrefixes", "publicKeys", "permissions", "description", "overrides"])
        // Remarks for reviewers (who the partner is, why it holds a grant); never read otherwise.
        _ = try r.member("description")?.string()
        let id = try r.require("id").string(nonEmpty: true)
        let prefixes = try r.require("idPrefixes").strings()
        for p in prefixes where !(p.hasSuffix(".") && Manifest.isValidId(p + "x")) {
            throw PartnerRegistration.invalid(source, "idPrefixes item \"\(p)\" must be a reverse-DNS prefix ending in '.' (com.partner.)")
        }
        guard !prefixes.isEmpty else { throw PartnerRegistration.invalid(source, "needs at least one idPrefixes item") }
        let keys = try r.require("publicKeys").strings()
        guard !keys.isEmpty, keys.allSatisfy({ $0.contains("-----BEGIN PUBLIC KEY-----") }) else {
            throw PartnerRegistration.invalid(source, "needs publicKeys as PEM \"-----BEGIN PUBLIC KEY-----\" blocks")
        }
        let perms = try r.require("permissions").strings()
        // Limits for the partner's programs, lower than jail.json's; whether they are lower is
        // checked against the platform when a worker starts (and by `miniapp policy lint`).
        var overrides: PolicyOverride?
        if let v = o["overrides"] {
            do { overrides = try PolicyOverride.parse(v, source: source + " overrides") } catch {
                throw PartnerRegistration.invalid(source, "member \"overrides\" is invalid: \(error.message)")
            }
        }
        self.init(id: id, idPrefixes: prefixes, publicKeys: keys, permissions: Set(perms), overrides: overrides)
    }

    /// The registration as JSON (what the registry serves and the daemon caches).
    public var json: JSONValue {
        var o: JSONObject = [
            "id": .string(id), "idPrefixes": .array(idPrefixes.map { .string($0) }),
            "publicKeys": .array(publicKeys.map { .string($0) }),
            "permissions": .array(permissions.sorted().map { .string($0) }),
        ]
        if let overrides { o["overrides"] = overrides.json }
        return .object(o)
    }

    /// A field's problem as PARTNER_INVALID naming the file and the member.
    static func fieldError(_ e: JSONFieldError, source: String) -> MiniAppError {
        switch e.kind {
        case .missing: invalid(source, "needs \"\(e.path)\"")
        case .unknownMember: invalid(source, "has unknown member \"\(e.path)\"")
        default: invalid(source, "member \"\(e.path)\" \(e.problem)")
        }
    }

    static func invalid(_ source: String, _ what: String) -> MiniAppError {
        MiniAppError(.partnerInvalid, "partner registration \(source) \(what)", data: ["file": source])
    }
}

/// An immutable set of partner registrations that maps a program id to its one partner.
/// Build a new set and swap it to apply a refresh (grants revoked, keys rotated).
public struct PartnerSet: Sendable {
    /// All registrations, by partner id.
    public let partners: [String: PartnerRegistration]

    /// A set from registrations; two with the same id are an error.
    public init(_ registrations: [PartnerRegistration]) throws(MiniAppError) {
        var map: [String: PartnerRegistration] = [:]
        for r in registrations {
            guard map.updateValue(r, forKey: r.id) == nil else {
                throw MiniAppError(.partnerInvalid, "partner \"\(r.id)\" is registered twice; keep one file per partner")
            }
        }
        partners = map
    }

    /// A set from registrations already keyed by their (unique) ids (`PartnerMerge`).
    init(unique: [String: PartnerRegistration]) { partners = unique }

    /// The partner owning `programId`: exactly one registration's prefix must match.
    public func partner(for programId: String) throws(MiniAppError) -> PartnerRegistration {
        let matches = partners.values.filter { r in r.idPrefixes.contains { programId.hasPrefix($0) } }
            .sorted { $0.id < $1.id }
        guard let first = matches.first else {
            throw MiniAppError(
                .unknownPartner,
                "no registered partner owns program id \"\(programId)\"; register the partner (partners/*.json) or fix the id",
                data: ["id": programId])
        }
        guard matches.count == 1 else {
            throw MiniAppError(
                .ambiguousPartner,
                "program id \"\(programId)\" matches partners \(matches.map(\.id).joined(separator: ", ")); fix their idPrefixes so exactly one matches",
                data: ["id": programId])
        }
        return first
    }
}
