import Logging
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import Synchronization

/// The running daemon's partners: read from `<policy-dir>/partners/*.json`, merged per
/// `PartnerMerge` (each file judged on its own: a bad file blocks only its partner), and
/// applied to the broker's permission snapshot and to package verification.
///
/// Refreshes are serialized end to end (read → merge → publish), so a slow refresh can never
/// publish an older view of the files after a newer one; readers (`partners`, asked at every
/// package operation) only take a short lock on the published state.
final class PartnerGrants: Sendable {
    private let policyDir: String
    private let logger: Logger
    private let published: Mutex<PartnerMerge>
    /// Held for a whole refresh (see the type's comment).
    private let serial = Mutex(())
    private let sink = Mutex<(@Sendable ([String: Set<String>]) -> Void)?>(nil)

    /// Reads the partners for the first time (nothing is applied anywhere yet: the broker is
    /// built from `grants`, then `connect`ed).
    init(policyDir: String, logger: Logger) {
        self.policyDir = policyDir
        self.logger = logger
        let scan = PartnerDirectory.scan(policyDir: policyDir)
        let first = PartnerMerge.merge(local: scan.entries, localUnreadable: scan.unreadable, registry: [], previous: nil)
        published = Mutex(first)
        log(first)
    }

    /// The partners now (blocked ones with no permissions).
    var partners: PartnerSet { published.withLock { $0.set } }

    /// partnerId → granted permissions, for the permission table.
    var grants: [String: Set<String>] { Self.grants(partners) }

    static func grants(_ set: PartnerSet) -> [String: Set<String>] { set.partners.mapValues(\.permissions) }

    /// Where every later refresh is published (the broker's `updateGrants`).
    func connect(_ apply: @escaping @Sendable ([String: Set<String>]) -> Void) { sink.withLock { $0 = apply } }

    /// Re-reads the partner files and publishes the result (`permissions.refresh`, SIGHUP, the
    /// directory watch). Returns the report `permissions.refresh` answers with.
    @discardableResult
    func refresh() -> JSONValue {
        serial.withLock { _ in
            let scan = PartnerDirectory.scan(policyDir: policyDir)
            let previous = published.withLock { $0 }
            let merged = PartnerMerge.merge(local: scan.entries, localUnreadable: scan.unreadable, registry: [], previous: previous)
            publish(merged)
            return Self.report(merged)
        }
    }

    private func publish(_ merged: PartnerMerge) {
        published.withLock { $0 = merged }
        sink.withLock { $0 }?(Self.grants(merged.set))
        log(merged)
    }

    private func log(_ merged: PartnerMerge) {
        for b in merged.blocked {
            for p in b.problems {
                logger.error("partner \(b.id) is granted nothing until its registration is fixed: \(p)")
            }
        }
        for e in merged.unattributed {
            logger.error("ignoring partner registration \(e.source): \(e.error.map { "\($0.code.rawValue): \($0.message)" } ?? "invalid")")
        }
    }

    /// `{partners:[{id, origin, permissions}], blocked:[{id, origin, problems}], invalid:[{source, code, message}]}`.
    static func report(_ m: PartnerMerge) -> JSONValue {
        let partners: [JSONValue] = m.set.partners.keys.sorted().map { id in
            [
                "id": .string(id), "origin": .string(m.origins[id]?.rawValue ?? "local"),
                "permissions": .array((m.set.partners[id]?.permissions ?? []).sorted().map { .string($0) }),
            ]
        }
        let blocked: [JSONValue] = m.blocked.map { b in
            ["id": .string(b.id), "origin": .string(b.origin.rawValue), "problems": .array(b.problems.map { .string($0) })]
        }
        let invalid: [JSONValue] = m.unattributed.map { e in
            ["source": .string(e.source), "code": .string(e.error?.code.rawValue ?? ""), "message": .string(e.error?.message ?? "")]
        }
        return ["partners": .array(partners), "blocked": .array(blocked), "invalid": .array(invalid)]
    }
}
