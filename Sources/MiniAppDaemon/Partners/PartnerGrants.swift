import Logging
import MiniAppJSON
public import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Synchronization

/// The running daemon's partners: `<policy-dir>/partners/*.json` merged with the registry's
/// signed partners document (`PartnerMerge`: local files win per partner id; a bad source
/// blocks only its own partner), applied to the broker's permission snapshot and to package
/// verification (the package store asks `partners` at every operation).
///
/// Refreshes are serialized from the read to the publish, so a slow refresh never publishes an
/// older view after a newer one; only the registry download runs outside that lock, so the
/// directory watch is never stuck behind a slow registry. Readers take a short lock on the
/// published state only.
final class PartnerGrants: Sendable {
    /// What is in effect.
    struct Published {
        var merge: PartnerMerge
        /// The registry document in effect (also the cache's content); nil = none verified yet.
        var document: PartnersDocument?
    }

    private let policyDir: String
    private let registry: RegistryPartners?
    private let logger: Logger
    private let published: Mutex<Published>
    private let serial = Mutex(())
    private let background = WorkQueue(name: "partners")
    /// Whether the start already asked the registry (no cache yet); else the daemon schedules a
    /// background fetch once it serves.
    let fetchedAtStart: Bool

    /// Every refresh's grants, for the parts built after this one (the broker binding, the
    /// supervisor), which subscribe at their construction.
    let changes: GrantsChanges

    /// Reads the local files and the cached registry document (nothing is applied anywhere yet:
    /// the broker is built from `grants`, and takes every later refresh from `changes`). Only without a usable cache — the
    /// first start — is the registry asked here, bounded by its timeout; otherwise the start
    /// never waits for the registry.
    init(policyDir: String, registry: RegistryPartners?, logger: Logger) {
        self.policyDir = policyDir
        self.registry = registry
        self.logger = logger
        var document: PartnersDocument?
        var fetched = false
        if let registry {
            do throws(MiniAppError) { document = try registry.loadCache() } catch {
                logger.warning("ignoring the cached partners document: \(error.code.rawValue): \(error.message)")
            }
            if document == nil, registry.url != nil {
                fetched = true
                document = Self.firstFetch(registry, logger: logger)
            }
        }
        fetchedAtStart = fetched
        let scan = PartnerDirectory.scan(policyDir: policyDir)
        let first = PartnerMerge.merge(local: scan.entries, localUnreadable: scan.unreadable, registry: document?.entries ?? [], previous: nil)
        published = Mutex(Published(merge: first, document: document))
        changes = GrantsChanges(initial: Self.grants(first.set))
        log(first)
    }

    private static func firstFetch(_ registry: RegistryPartners, logger: Logger) -> PartnersDocument? {
        do throws(MiniAppError) {
            let doc = try registry.fetch()
            try registry.store(doc)
            return doc
        } catch {
            logger.warning("no partner grants from the registry yet (no cache, and the first fetch failed): \(error.code.rawValue): \(error.message)")
            return nil
        }
    }

    /// Whether a registry is configured to fetch from.
    var hasRegistry: Bool { registry?.url != nil }

    /// The partners now (blocked ones with no permissions).
    var partners: PartnerSet { published.withLock { $0.merge.set } }

    /// partnerId → granted permissions, for the permission table.
    var grants: [String: Set<String>] { Self.grants(partners) }

    static func grants(_ set: PartnerSet) -> [String: Set<String>] { set.partners.mapValues(\.permissions) }

    /// Re-reads the partner files and, when `fetchRegistry` and a registry is configured, the
    /// registry's document (bounded by its timeout), then publishes the merge. Returns the
    /// report `permissions.refresh` answers with. Never throws: every problem is per partner
    /// or per document, reported and logged, and the last good state of that part is kept.
    @discardableResult
    func refresh(fetchRegistry: Bool = true) -> PermissionsReport {
        var fetched: Result<PartnersDocument, MiniAppError>?
        if fetchRegistry, let registry, registry.url != nil {
            do throws(MiniAppError) { fetched = .success(try registry.fetch()) } catch { fetched = .failure(error) }
        }
        return serial.withLock { _ in
            var state = published.withLock { $0 }
            let registryReport = accept(fetched, into: &state)
            let scan = PartnerDirectory.scan(policyDir: policyDir)
            state.merge = PartnerMerge.merge(
                local: scan.entries, localUnreadable: scan.unreadable, registry: state.document?.entries ?? [], previous: state.merge)
            published.withLock { $0 = state }
            changes.publish(Self.grants(state.merge.set))
            log(state.merge)
            return PermissionsReport(merge: state.merge, registry: registryReport)
        }
    }

    /// `refresh()` on a background queue (SIGHUP, the first fetch after a start from cache).
    func refreshInBackground() { background.submit { [self] in refresh() } }

    /// Applies the freshness rule to a fetched document and caches it; returns the registry part
    /// of the report.
    private func accept(_ fetched: Result<PartnersDocument, MiniAppError>?, into state: inout Published) -> PermissionsReport.Registry {
        var r = PermissionsReport.Registry(status: .off)
        switch fetched {
        case nil:
            r.status = registry == nil ? .off : state.document == nil ? .none : .cached
        case .failure(let e):
            r.status = [.timeout, .hostUnavailable].contains(e.code) ? .unavailable : .refused
            r.error = e
            logger.warning("registry partners document not applied, keeping the cached one: \(e.code.rawValue): \(e.message)")
        case .success(let doc):
            if let current = state.document, !doc.isAcceptable(after: current) {
                let e = MiniAppError(
                    .registryStale,
                    "the registry's partners document was issued at \(doc.issuedAt), before the cached one (\(current.issuedAt)); refused as a rollback")
                return accept(.failure(e), into: &state)
            }
            if state.document?.raw == doc.raw {
                r.status = .unchanged
            } else {
                do throws(MiniAppError) { try registry?.store(doc) } catch {
                    // Still applied: the running daemon must honor a revocation it verified.
                    logger.error("\(error.message) (the new grants are in effect until the daemon restarts)")
                }
                state.document = doc
                r.status = .applied
                logger.info("registry partners document issued at \(doc.issuedAt) applied (\(doc.partners.count) registrations)")
            }
        }
        r.issuedAt = state.document?.issuedAt
        return r
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
}

/// What `permissions.refresh` reports: the partners in effect, those blocked, the
/// registrations that could not be attributed, and the registry document's outcome.
public struct PermissionsReport: Sendable {
    /// The registry document's part of a refresh.
    public struct Registry: Sendable {
        /// `off` (no registry), `none` (nothing fetched or cached), `cached` (not fetched this
        /// time), `unavailable`/`refused` (fetched and not applied), `unchanged`, `applied`.
        public enum Status: String, Sendable { case off, none, cached, unavailable, refused, unchanged, applied }
        public var status: Status
        /// Why it was not applied.
        public var error: MiniAppError?
        /// When the document in effect was issued (nil: none).
        public var issuedAt: Int64?
    }

    /// The merged grants now in effect.
    public var merge: PartnerMerge
    public var registry: Registry
}
