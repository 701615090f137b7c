/// Where a partner's effective registration comes from.
public enum PartnerOrigin: String, Sendable, Equatable {
    /// A `<policy-dir>/partners/*.json` file.
    case local
    /// The registry's signed partners document (spec/registry.md).
    case registry
}

/// One registration as read from one source — a `partners/*.json` file or one entry of the
/// registry's partners document — valid or not. Sources are judged one by one, so a bad one
/// costs only the partner it belongs to (see `PartnerMerge`).
public struct PartnerEntry: Sendable {
    /// The file path, or `registry partners[N]`.
    public let source: String
    /// The registration, when the source is valid.
    public let registration: PartnerRegistration?
    /// What is wrong with the source, when it is not valid.
    public let error: MiniAppError?
    /// For an invalid source: the partner ids it may belong to (its `id` member when that much
    /// is readable, the file name when it is a partner id). Empty for a valid one.
    public let claimedIds: Set<String>

    /// A valid source.
    public static func valid(_ registration: PartnerRegistration, source: String) -> PartnerEntry {
        PartnerEntry(source: source, registration: registration, error: nil, claimedIds: [])
    }

    /// An invalid source that may belong to `claimedIds`.
    public static func invalid(_ error: MiniAppError, source: String, claimedIds: Set<String>) -> PartnerEntry {
        PartnerEntry(source: source, registration: nil, error: error, claimedIds: claimedIds)
    }

    /// The partner ids this source speaks for.
    var ids: Set<String> { registration.map { [$0.id] } ?? claimedIds }
}

/// A partner that is granted nothing now because a source that speaks for it is invalid, or
/// because two sources of the same kind register it.
public struct BlockedPartner: Sendable, Equatable {
    /// The partner id.
    public let id: String
    /// Which kind of source decided (local files win, see `PartnerMerge`).
    public let origin: PartnerOrigin
    /// Each offending source with what is wrong with it (`FILE: CODE: message`).
    public let problems: [String]

    public init(id: String, origin: PartnerOrigin, problems: [String]) {
        self.id = id
        self.origin = origin
        self.problems = problems
    }
}

/// Combines the local partner files with the registry's partners document into the one
/// `PartnerSet` the daemon uses for the permission table and for package verification.
///
/// Rules (README "Partners"):
/// - **Local files win per partner id.** A partner with a file in `<policy-dir>/partners` is
///   exactly what that file says; the registry's entry for the same id is ignored. Partners
///   only the registry knows come from the registry. An operator can so pin, narrow or add a
///   partner locally; the registry cannot override a local decision.
/// - **And per program id.** A registry partner with an id prefix that overlaps a local
///   partner's (one is a prefix of the other) is blocked and dropped: it would otherwise make
///   every overlapping local program AMBIGUOUS_PARTNER (no install, no launch), or claim
///   programs the operator gave to a local partner.
/// - **Fail closed per partner.** A source that is malformed, unreadable or registers an id
///   that another source of the same kind also registers blocks that partner: it keeps the
///   identity (id prefixes, keys) it had before, so its programs are not suddenly claimed by
///   another partner's broader prefix, but it is granted **nothing** until the source is fixed.
///   Every other partner is updated as usual: one typo never holds back another partner's
///   revocation.
/// - A local file so broken that not even its partner id is readable is attributed to the
///   partner it spoke for at the previous merge, and to its file name when that is a partner
///   id (`com.partner.json`).
public struct PartnerMerge: Sendable {
    /// The effective partners (blocked ones included, with no permissions).
    public let set: PartnerSet
    /// partner id → where its registration came from.
    public let origins: [String: PartnerOrigin]
    /// Partners granted nothing because of a bad source, by id.
    public let blocked: [BlockedPartner]
    /// Invalid sources that could not be attributed to any partner (logged; nothing to block).
    public let unattributed: [PartnerEntry]
    /// Local source → the partner ids it spoke for (attribution for the next merge).
    let localAttribution: [String: Set<String>]

    /// No partners at all.
    public static let empty = PartnerMerge(set: PartnerSet(unique: [:]), origins: [:], blocked: [], unattributed: [], localAttribution: [:])

    /// Merges `local` (one entry per file) and `registry` (one entry per document item).
    /// `localUnreadable`: the partners directory exists but cannot be listed — every partner
    /// that came from a local file at the `previous` merge is then blocked.
    public static func merge(
        local: [PartnerEntry], localUnreadable: MiniAppError? = nil, registry: [PartnerEntry], previous: PartnerMerge?
    ) -> PartnerMerge {
        let prev = previous ?? .empty
        var localEntries = local
        if let localUnreadable {
            let ids = Set(prev.origins.filter { $0.value == .local }.keys)
            localEntries.append(.invalid(localUnreadable, source: "partners directory", claimedIds: ids))
        }
        var attribution: [String: Set<String>] = [:]
        var unattributed: [PartnerEntry] = []
        var localById: [String: [PartnerEntry]] = [:]
        for e in localEntries {
            let ids = e.registration == nil ? e.ids.union(prev.localAttribution[e.source] ?? []) : e.ids
            attribution[e.source] = ids
            if ids.isEmpty { unattributed.append(e) }
            for id in ids { localById[id, default: []].append(e) }
        }
        var registryById: [String: [PartnerEntry]] = [:]
        for e in registry {
            if e.ids.isEmpty { unattributed.append(e) }
            for id in e.ids { registryById[id, default: []].append(e) }
        }
        var partners: [String: PartnerRegistration] = [:]
        var origins: [String: PartnerOrigin] = [:]
        var blocked: [BlockedPartner] = []
        for id in Set(localById.keys).union(registryById.keys).sorted() {
            let origin: PartnerOrigin = localById[id] != nil ? .local : .registry
            let group = localById[id] ?? registryById[id] ?? []
            origins[id] = origin
            if group.count == 1, let r = group[0].registration {
                partners[id] = origin == .registry ? withoutWidening(r) : r
                continue
            }
            blocked.append(BlockedPartner(id: id, origin: origin, problems: problems(group, id: id)))
            if let before = prev.set.partners[id] {
                // Its previous limits too: a broken file must not lift an operator's narrowing.
                partners[id] = PartnerRegistration(
                    id: id, idPrefixes: before.idPrefixes, publicKeys: before.publicKeys, permissions: [], overrides: before.overrides)
            }
        }
        for (id, problem) in registryOverlaps(partners, origins) {
            partners[id] = nil
            blocked.append(BlockedPartner(id: id, origin: .registry, problems: [problem]))
        }
        return PartnerMerge(
            set: PartnerSet(unique: partners), origins: origins, blocked: blocked.sorted { $0.id < $1.id }, unattributed: unattributed,
            localAttribution: attribution)
    }

    /// A registry entry's overrides may only narrow: its `allowedPrivateCIDRs` (the one widening
    /// an override can hold) are dropped. Which private networks of the operator's host a
    /// program may reach is the operator's decision, made in a local file, never the registry's.
    static func withoutWidening(_ r: PartnerRegistration) -> PartnerRegistration {
        guard var o = r.overrides, !o.allowedPrivateCIDRs.isEmpty else { return r }
        o.allowedPrivateCIDRs = []
        return PartnerRegistration(id: r.id, idPrefixes: r.idPrefixes, publicKeys: r.publicKeys, permissions: r.permissions, overrides: o)
    }

    /// Registry partners whose id prefixes overlap a local partner's, with what to do about it.
    private static func registryOverlaps(_ partners: [String: PartnerRegistration], _ origins: [String: PartnerOrigin]) -> [(String, String)] {
        let local = partners.values.filter { origins[$0.id] == .local }
        var out: [(String, String)] = []
        for r in partners.values.sorted(by: { $0.id < $1.id }) where origins[r.id] == .registry {
            for p in r.idPrefixes.sorted() {
                guard let l = local.sorted(by: { $0.id < $1.id }).first(where: { $0.idPrefixes.contains { $0.hasPrefix(p) || p.hasPrefix($0) } }),
                      let lp = l.idPrefixes.sorted().first(where: { $0.hasPrefix(p) || p.hasPrefix($0) })
                else { continue }
                out.append((r.id, "registry partner \"\(r.id)\" id prefix \"\(p)\" overlaps local partner \"\(l.id)\" prefix \"\(lp)\"; local files win: fix the registry entry's idPrefixes, or register \(r.id) locally"))
                break
            }
        }
        return out
    }

    private static func problems(_ group: [PartnerEntry], id: String) -> [String] {
        let invalid = group.compactMap { e in e.error.map { "\(e.source): \($0.code.rawValue): \($0.message)" } }
        guard invalid.isEmpty else { return invalid }
        let sources = group.map(\.source).joined(separator: ", ")
        return ["partner \"\(id)\" is registered more than once (\(sources)); keep exactly one registration per partner"]
    }
}
