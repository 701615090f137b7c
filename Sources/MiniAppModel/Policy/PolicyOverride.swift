public import MiniAppJSON

/// One tunable member of `limits` (jail.json), by its JSON name.
public enum JailLimitField: String, Sendable, Hashable, CaseIterable {
    case memoryBytes, pids, cpuPercent, wallClockSeconds, openFiles, fileSizeBytes, dataBytes, dataInodes

    /// Whether 0 means "no limit" (so 0 is the loosest value, not the tightest).
    public var zeroIsUnlimited: Bool { self == .cpuPercent || self == .wallClockSeconds }

    /// The value of this member in `limits`.
    public func value(in limits: JailLimits) -> Double {
        switch self {
        case .memoryBytes: Double(limits.memoryBytes)
        case .pids: Double(limits.pids)
        case .cpuPercent: Double(limits.cpuPercent)
        case .wallClockSeconds: limits.wallClockSeconds
        case .openFiles: Double(limits.openFiles)
        case .fileSizeBytes: Double(limits.fileSizeBytes)
        case .dataBytes: Double(limits.dataBytes)
        case .dataInodes: Double(limits.dataInodes)
        }
    }

    /// Sets this member of `limits` to `v` (already range-checked by the parser).
    public func set(_ v: Double, in limits: inout JailLimits) {
        switch self {
        case .memoryBytes: limits.memoryBytes = UInt64(v)
        case .pids: limits.pids = UInt64(v)
        case .cpuPercent: limits.cpuPercent = UInt64(v)
        case .wallClockSeconds: limits.wallClockSeconds = v
        case .openFiles: limits.openFiles = UInt64(v)
        case .fileSizeBytes: limits.fileSizeBytes = UInt64(v)
        case .dataBytes: limits.dataBytes = UInt64(v)
        case .dataInodes: limits.dataInodes = UInt64(v)
        }
    }

    /// Whether `new` is stricter than or equal to `old` (0 = unlimited for the time and CPU
    /// members, so any value narrows an unlimited one and 0 widens a limited one).
    public func isNarrowing(_ new: Double, from old: Double) -> Bool {
        guard zeroIsUnlimited else { return new <= old }
        if old == 0 { return true }
        return new != 0 && new <= old
    }
}

/// An operator's override for the programs of one partner (the `overrides` member of its
/// registration) or for one program (`policies/programs/<id>.json`): limits that may only be
/// **lower** than jail.json's, rate classes that may only be lower than methods.json's, and —
/// the one widening an operator may grant per partner or program — extra private networks
/// `net.request` may reach (`allowedPrivateCIDRs`; metadata addresses stay refused). Applied when a worker is started, so a changed file or a SIGHUP
/// reaches the next worker; running workers keep what they started with.
///
/// A widening (a larger value, or 0 = unlimited where the platform has a limit) is refused
/// with POLICY_INVALID when the worker would start: an operator file must never loosen the
/// platform's guarantees for a program (a partner asking for "more memory" gets it only by a
/// reviewed change of jail.json, which `miniapp policy diff` shows as a widening).
public struct PolicyOverride: Sendable, Hashable {
    /// The lowered limits, by member.
    public var limits: [JailLimitField: Double] = [:]
    /// The lowered rate classes (budgets per program), by class name.
    public var classes: [String: RateLimit] = [:]
    /// Private networks (CIDR) `net.request` may reach for these programs, beyond the daemon's
    /// `services.net.allowedPrivateCIDRs`.
    public var allowedPrivateCIDRs: [String] = []
    /// A lower storage byte quota (keys + values) than the daemon's `quotaBytesPerProgram`.
    public var storageQuotaBytes: UInt64?

    public init(
        limits: [JailLimitField: Double] = [:], classes: [String: RateLimit] = [:], allowedPrivateCIDRs: [String] = [],
        storageQuotaBytes: UInt64? = nil
    ) {
        self.limits = limits
        self.classes = classes
        self.allowedPrivateCIDRs = allowedPrivateCIDRs
        self.storageQuotaBytes = storageQuotaBytes
    }

    /// Whether it changes nothing.
    public var isEmpty: Bool { limits.isEmpty && classes.isEmpty && allowedPrivateCIDRs.isEmpty && storageQuotaBytes == nil }

    /// The members an override document may have.
    public static let members: Set<String> = ["limits", "classes", "allowedPrivateCIDRs", "storageQuotaBytes"]

    /// The lowest storage quota of `layers`, and whose it is (nil: the daemon's applies).
    public static func storageQuota(_ layers: [(PolicyOrigin, PolicyOverride)]) -> (UInt64, PolicyOrigin)? {
        layers.compactMap { origin, o in o.storageQuotaBytes.map { ($0, origin) } }.min { $0.0 < $1.0 }
    }

    /// Parses an override object (`{"comment"?, "limits": {…}}`); each limit is range-checked
    /// as in jail.json. Throws POLICY_INVALID naming `source` and the field.
    public static func parse(_ value: JSONValue, source: String) throws(MiniAppError) -> PolicyOverride {
        do throws(MiniAppError) {
            let r = try PolicyFieldReader(policy: value, path: "")
            try r.rejectUnknown(members)
            var o = PolicyOverride()
            if let c = try r.child("classes") { o.classes = try parseClasses(c) }
            o.storageQuotaBytes = try r.int("storageQuotaBytes", default: nil, in: 0...(1 << 40)).map { UInt64($0) }
            o.allowedPrivateCIDRs = try r.strings("allowedPrivateCIDRs", default: [])
            for (i, c) in o.allowedPrivateCIDRs.enumerated() where !Self.looksLikeCIDR(c) {
                throw PolicyFieldReader.invalid("allowedPrivateCIDRs[\(i)]", "'\(c)' is not a CIDR like 10.20.0.0/16 or fd00::/8")
            }
            guard let l = try r.child("limits") else { return o }
            try l.rejectUnknown(Set(JailLimitField.allCases.map(\.rawValue)))
            let parsed = try JailLimits.parse(l, base: JailLimits())
            for f in JailLimitField.allCases where l.object[f.rawValue].map({ !$0.isNull }) == true {
                o.limits[f] = f.value(in: parsed)
            }
            return o
        } catch {
            throw MiniAppError(.policyInvalid, "\(source): \(error.message)", data: ["field": error.data["field"] ?? "", "file": source])
        }
    }

    /// `{"net": {"perSecond": 5, "burst": 10}, …}`: both members required, as in methods.json.
    private static func parseClasses(_ r: PolicyFieldReader) throws(MiniAppError) -> [String: RateLimit] {
        var out: [String: RateLimit] = [:]
        for (name, _) in r.object where name != PolicyFieldReader.commentKey {
            guard let c = try r.child(name) else { throw PolicyFieldReader.invalid(r.field(name), "must be {\"perSecond\", \"burst\"}") }
            try c.rejectUnknown(["perSecond", "burst"])
            guard let ps = try c.number("perSecond", default: nil, in: 0.000001...10_000_000),
                  let b = try c.number("burst", default: nil, in: 1...10_000_000)
            else { throw PolicyFieldReader.invalid(r.field(name), "needs perSecond (> 0) and burst (>= 1)") }
            out[name] = RateLimit(perSecond: ps, burst: b)
        }
        return out
    }

    /// The shape of a CIDR (address/prefix, the prefix within the family's width); the broker's
    /// address parser checks it fully when a worker starts.
    static func looksLikeCIDR(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let p = Int(parts[1]), p >= 0, !parts[0].isEmpty, parts[0].count <= 45 else { return false }
        let v6 = parts[0].contains(":")
        guard p <= (v6 ? 128 : 32) else { return false }
        return parts[0].utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x3A || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) }
    }

    /// Parses a program override file (plain JSON, remarks in `"comment"` members).
    public static func parseFile(_ bytes: some Collection<UInt8>, source: String) throws(MiniAppError) -> PolicyOverride {
        try parse(try JSONValue.parsePolicyFile(bytes, what: source), source: source)
    }

    /// The override as JSON (the registry's documents carry it as a partner's `overrides`).
    public var json: JSONValue {
        var l = JSONObject()
        for f in JailLimitField.allCases {
            guard let v = limits[f] else { continue }
            l[f.rawValue] = f == .wallClockSeconds ? .double(v) : .int(Int64(v))
        }
        var c = JSONObject()
        for (name, r) in classes.sorted(by: { $0.key < $1.key }) { c[name] = ["perSecond": .double(r.perSecond), "burst": .double(r.burst)] }
        var out: JSONObject = ["limits": .object(l), "classes": .object(c), "allowedPrivateCIDRs": .array(allowedPrivateCIDRs.map { .string($0) })]
        if let storageQuotaBytes { out["storageQuotaBytes"] = .int(Int64(storageQuotaBytes)) }
        return .object(out)
    }
}

/// Where one effective value came from.
public struct PolicyOrigin: Sendable, Hashable, CustomStringConvertible {
    /// `jail.json`, `partner com.p (partners/com.p.json)`, `program (programs/ID.json)`.
    public var label: String
    public init(_ label: String) { self.label = label }
    public var description: String { label }
    /// The platform's jail.json.
    public static let platform = PolicyOrigin("jail.json")
}

/// The limits a program's next worker gets: the platform's, lowered by the partner's and the
/// program's overrides (the strictest wins), with the origin of each member.
public struct EffectiveLimits: Sendable, Equatable {
    public var limits: JailLimits
    public var origins: [JailLimitField: PolicyOrigin]

    /// Applies `layers` over `platform` in order. Throws POLICY_INVALID for a member that would
    /// widen the platform's value (the override is refused, not clamped: the operator must see
    /// that the file does not say what it seems to).
    public static func resolve(platform: JailLimits, layers: [(PolicyOrigin, PolicyOverride)]) throws(MiniAppError) -> EffectiveLimits {
        var out = EffectiveLimits(limits: platform, origins: [:])
        for f in JailLimitField.allCases { out.origins[f] = .platform }
        for (origin, o) in layers {
            for f in JailLimitField.allCases {
                guard let v = o.limits[f] else { continue }
                let base = f.value(in: platform)
                guard f.isNarrowing(v, from: base) else {
                    throw MiniAppError(
                        .policyInvalid,
                        "\(origin): limits.\(f.rawValue) \(Self.show(v, f)) would loosen jail.json's \(Self.show(base, f)); overrides may only lower limits (raise them in jail.json, a reviewed change)",
                        data: ["field": "limits.\(f.rawValue)", "file": origin.label])
                }
                if f.isNarrowing(v, from: f.value(in: out.limits)) && v != f.value(in: out.limits) {
                    f.set(v, in: &out.limits)
                    out.origins[f] = origin
                }
            }
        }
        return out
    }

    /// A limit value in words (0 = unlimited for CPU and wall clock).
    public static func show(_ v: Double, _ f: JailLimitField) -> String {
        if v == 0 && f.zeroIsUnlimited { return "0 (unlimited)" }
        return v == v.rounded() ? String(Int64(v)) : String(v)
    }
}

/// The rate classes a program's next worker gets: methods.json's, lowered by the partner's and
/// the program's overrides (the strictest perSecond and burst win), with the origin of each
/// class that was lowered.
public struct EffectiveRates: Sendable, Equatable {
    /// Every class of the catalogue, effective.
    public var classes: [String: RateLimit]
    /// The classes an override lowered, and by whom (the others come from methods.json).
    public var origins: [String: PolicyOrigin]

    /// Only the lowered classes (what a worker's identity carries).
    public var lowered: [String: RateLimit] { classes.filter { origins[$0.key] != nil } }

    /// Applies `layers` over `catalogue`'s classes. Throws POLICY_INVALID for a class the
    /// catalogue does not define or a budget above methods.json's.
    public static func resolve(catalogue: MethodCatalogue, layers: [(PolicyOrigin, PolicyOverride)]) throws(MiniAppError) -> EffectiveRates {
        var out = EffectiveRates(classes: catalogue.classes, origins: [:])
        for (origin, o) in layers {
            for (name, r) in o.classes.sorted(by: { $0.key < $1.key }) {
                guard let base = catalogue.classes[name] else {
                    throw MiniAppError(.policyInvalid, "\(origin): classes.\(name) is not a rate class of methods.json (\(catalogue.classes.keys.sorted().joined(separator: ", ")))",
                                       data: ["field": "classes.\(name)", "file": origin.label])
                }
                guard r.perSecond <= base.perSecond && r.burst <= base.burst else {
                    throw MiniAppError(
                        .policyInvalid,
                        "\(origin): classes.\(name) (\(r.perSecond)/s, burst \(r.burst)) would loosen methods.json's (\(base.perSecond)/s, burst \(base.burst)); overrides may only lower a budget",
                        data: ["field": "classes.\(name)", "file": origin.label])
                }
                let cur = out.classes[name] ?? base
                let next = RateLimit(perSecond: min(cur.perSecond, r.perSecond), burst: min(cur.burst, r.burst))
                if next != cur {
                    out.classes[name] = next
                    out.origins[name] = origin
                }
            }
        }
        return out
    }
}
