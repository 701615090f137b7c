import MiniAppJSON

/// A token-bucket budget: `perSecond` tokens refill continuously up to `burst`.
public struct RateLimit: Sendable, Hashable {
    /// Sustained calls per second.
    public var perSecond: Double
    /// Calls allowed at once after a quiet period.
    public var burst: Double

    public init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }
}

/// Who serves a method.
public enum MethodProvider: String, Sendable, Hashable {
    /// A built-in service of the daemon (`storage`, `auth`, `net`, `system`, `log`).
    case builtin
    /// The host runtime that registered as provider over the control socket (`bridge.provide`).
    case host
}

/// One method of the catalogue: what it needs and what it may cost.
public struct MethodSpec: Sendable, Hashable {
    /// Method name (`payment.pay`).
    public var name: String
    /// Every permission the program must declare and its partner must be granted (all of
    /// them; empty = none needed). A method that reads the location to pay with it needs both.
    public var permissions: [String]
    /// Built-in or host-provided.
    public var provider: MethodProvider
    /// Rate-limit class; every method of a class shares one bucket per program.
    public var rateClass: String
    /// How long the broker waits for the service or the host before answering `TIMEOUT`.
    public var timeoutMillis: Int

    public init(name: String, permissions: [String], provider: MethodProvider, rateClass: String, timeoutMillis: Int) {
        self.name = name
        self.permissions = permissions
        self.provider = provider
        self.rateClass = rateClass
        self.timeoutMillis = timeoutMillis
    }

    /// A method needing at most one permission (nil = none).
    public init(name: String, permission: String?, provider: MethodProvider, rateClass: String, timeoutMillis: Int) {
        self.init(name: name, permissions: permission.map { [$0] } ?? [], provider: provider, rateClass: rateClass, timeoutMillis: timeoutMillis)
    }
}

/// Why a catalogue file was refused: a stable reason, where (a JSON path) and what to fix.
public struct CatalogueError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable reasons (never renamed; tests and `miniapp policy check` print them).
    public enum Reason: String, Sendable {
        case notJSON = "CATALOGUE_NOT_JSON"
        case wrongType = "CATALOGUE_WRONG_TYPE"
        case missingField = "CATALOGUE_MISSING_FIELD"
        case unknownField = "CATALOGUE_UNKNOWN_FIELD"
        case badVersion = "CATALOGUE_BAD_VERSION"
        case badName = "CATALOGUE_BAD_NAME"
        case unknownPermission = "CATALOGUE_UNKNOWN_PERMISSION"
        case unknownClass = "CATALOGUE_UNKNOWN_CLASS"
        case outOfRange = "CATALOGUE_OUT_OF_RANGE"
    }

    public var reason: Reason
    /// JSON path of the offending member (`methods.payment.pay.permission`).
    public var path: String
    public var message: String

    public init(_ reason: Reason, at path: String, _ message: String) {
        self.reason = reason
        self.path = path
        self.message = message
    }

    public var description: String { "\(reason.rawValue) at \(path): \(message)" }

    /// A field's problem, read by the one JSON-field reader.
    @Sendable public init(field e: JSONFieldError) {
        let reasons: [JSONFieldError.Kind: Reason] = [.missing: .missingField, .unknownMember: .unknownField, .outOfRange: .outOfRange]
        self.init(reasons[e.kind] ?? .wrongType, at: e.path, e.problem)
    }
}

/// The Bridge method catalogue (`policies/methods.json`): every method a program can call, the
/// permission it needs, who serves it, its rate-limit class and timeout. Anything not listed
/// does not exist (`METHOD_NOT_FOUND`): the catalogue is an allowlist, so a method a service
/// happens to implement is unreachable until a reviewer lists it here.
public struct MethodCatalogue: Sendable {
    /// Methods by name.
    public let methods: [String: MethodSpec]
    /// Permission names a manifest may declare, with their description for reviewers.
    public let permissionDescriptions: [String: String]
    /// Budget per rate class, per program.
    public let classes: [String: RateLimit]
    /// Budget per program over all methods.
    public let programBudget: RateLimit

    /// Permission names a manifest may declare (the manifest validator refuses others).
    public var knownPermissions: Set<String> { Set(permissionDescriptions.keys) }

    /// The spec of `method`, or nil (`METHOD_NOT_FOUND`).
    @inline(__always)
    public func spec(for method: String) -> MethodSpec? { methods[method] }

    /// Builds a catalogue from values, validating it as the file parser does.
    public init(
        methods: [MethodSpec], permissions: [String: String], classes: [String: RateLimit], programBudget: RateLimit
    ) throws(CatalogueError) {
        for (name, _) in permissions { try Self.checkName(name, at: "permissions.\(name)", pattern: .permission) }
        for (name, r) in classes { try Self.checkRate(r, at: "classes.\(name)") }
        try Self.checkRate(programBudget, at: "programBudget")
        var byName: [String: MethodSpec] = [:]
        for m in methods {
            let path = "methods.\(m.name)"
            try Self.checkName(m.name, at: path, pattern: .method)
            for (i, p) in m.permissions.enumerated() where permissions[p] == nil {
                throw CatalogueError(.unknownPermission, at: path + ".permissions[\(i)]", "'\(p)' is not listed under \"permissions\"")
            }
            guard Set(m.permissions).count == m.permissions.count else {
                throw CatalogueError(.wrongType, at: path + ".permissions", "lists a permission twice")
            }
            guard classes[m.rateClass] != nil else {
                throw CatalogueError(.unknownClass, at: path + ".class", "'\(m.rateClass)' is not listed under \"classes\"")
            }
            guard (1...600_000).contains(m.timeoutMillis) else {
                throw CatalogueError(.outOfRange, at: path + ".timeoutMillis", "must be 1 to 600000")
            }
            byName[m.name] = m
        }
        self.methods = byName
        self.permissionDescriptions = permissions
        self.classes = classes
        self.programBudget = programBudget
    }
}

// MARK: File format

/// An object of `methods.json`, read by the one JSON-field reader (remarks allowed; `null` is a
/// wrong type, except where `"permission": null` says "no permission").
typealias CatalogueReader = JSONFieldReader<CatalogueError>

extension MethodCatalogue {
    /// Parses `policies/methods.json` (plain JSON; remarks in `"comment"` members, which every
    /// object may carry — so `"comment"` is never a permission, class or method name). Strict:
    /// unknown members, unknown permissions or classes, bad names and out-of-range numbers are
    /// errors, never ignored — a typo in a security policy must not silently widen it.
    public static func parse(_ bytes: some Collection<UInt8>) throws(CatalogueError) -> MethodCatalogue {
        let doc: JSONValue
        do { doc = try JSONValue.parse(bytes, options: .policyFile) } catch {
            let hint = error.reason == .unexpectedByte ? " (plain JSON: remarks go in \"comment\" members, not // lines)" : ""
            throw CatalogueError(.notJSON, at: "$", error.description + hint)
        }
        let top = try CatalogueReader(doc, rules: JSONFieldRules(nullIsAbsent: false, remarks: true), errors: CatalogueError.init(field:))
        try top.rejectUnknown(["version", "permissions", "programBudget", "classes", "methods"])
        guard top.object["version"]?.intValue == 1 else { throw CatalogueError(.badVersion, at: "version", "must be 1") }
        var permissions: [String: String] = [:]
        for (name, f) in try top.require("permissions").object().members {
            permissions[name] = try f.string()
        }
        var classes: [String: RateLimit] = [:]
        for (name, f) in try top.require("classes").object().members {
            classes[name] = try rate(f)
        }
        let budget = try rate(top.require("programBudget"))
        var specs: [MethodSpec] = []
        for (name, f) in try top.require("methods").object().members {
            specs.append(try method(name, f))
        }
        return try MethodCatalogue(methods: specs, permissions: permissions, classes: classes, programBudget: budget)
    }

    private static func method(_ name: String, _ f: JSONField<CatalogueError>) throws(CatalogueError) -> MethodSpec {
        let o = try f.object()
        try o.rejectUnknown(["provider", "permissions", "permission", "class", "timeoutMillis"])
        let providerField = try o.require("provider")
        guard let provider = MethodProvider(rawValue: try providerField.string()) else {
            throw providerField.error(.wrongType, "must be \"builtin\" or \"host\"")
        }
        let permissions = try methodPermissions(o)
        let cls = try o.require("class").string()
        let t = try o.require("timeoutMillis").int(in: 1...600_000)
        return MethodSpec(name: name, permissions: permissions, provider: provider, rateClass: cls, timeoutMillis: Int(t))
    }

    /// `"permissions": ["a", "b"]` (all required), or the older single `"permission": "a" | null`.
    /// Exactly one of the two: a file giving both would leave a reviewer guessing which counts.
    private static func methodPermissions(_ o: CatalogueReader) throws(CatalogueError) -> [String] {
        switch (o.member("permissions"), o.member("permission")) {
        case (.some(let list), nil):
            return try list.strings()
        case (nil, .some(let one)):
            guard let named = one.nonNull else { return [] }
            guard case .string(let s) = named.value else { throw one.error(.wrongType, "must be a permission name or null") }
            return [s]
        case (nil, nil):
            throw o.error(.missing, at: o.field("permissions"), "required (an array; [] = no permission needed)")
        case (.some, .some):
            throw o.error(.unknownMember, at: o.field("permission"), "give \"permissions\" or \"permission\", not both")
        }
    }

    private static func rate(_ f: JSONField<CatalogueError>) throws(CatalogueError) -> RateLimit {
        let o = try f.object()
        try o.rejectUnknown(["perSecond", "burst"])
        let r = RateLimit(perSecond: try o.require("perSecond").number(), burst: try o.require("burst").number())
        try checkRate(r, at: f.path)
        return r
    }

    private static func checkRate(_ r: RateLimit, at path: String) throws(CatalogueError) {
        guard r.perSecond.isFinite, r.perSecond > 0, r.perSecond <= 10_000_000 else {
            throw CatalogueError(.outOfRange, at: path + ".perSecond", "must be > 0 and <= 10000000")
        }
        guard r.burst.isFinite, r.burst >= 1, r.burst <= 10_000_000 else {
            throw CatalogueError(.outOfRange, at: path + ".burst", "must be >= 1 and <= 10000000")
        }
    }

    enum NamePattern { case method, permission }

    /// Method names: dotted lowercase-initial identifiers (`ui.toast`); `rpc.*` is reserved by
    /// JSON-RPC 2.0. Permission names: `[a-z][a-zA-Z0-9.-]*`. ASCII only, so names that look
    /// alike in a review (homoglyphs) cannot differ on the wire.
    static func checkName(_ name: String, at path: String, pattern: NamePattern) throws(CatalogueError) {
        let b = Array(name.utf8)
        func isLower(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7A }
        func isAlnum(_ c: UInt8) -> Bool { isLower(c) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) }
        var ok = !b.isEmpty && b.count <= 128 && isLower(b[0])
        switch pattern {
        case .permission:
            ok = ok && b.allSatisfy { isAlnum($0) || $0 == 0x2E || $0 == 0x2D }
        case .method:
            let parts = b.split(separator: 0x2E, omittingEmptySubsequences: false)
            ok = ok && parts.count >= 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(isAlnum) }
            ok = ok && !name.hasPrefix("rpc.")
        }
        guard ok else { throw CatalogueError(.badName, at: path, "'\(name)' is not a valid \(pattern) name") }
    }
}
