public import MiniAppModel
import Synchronization

/// The outcome of the permission check for one call.
public enum PermissionDecision: Sendable, Equatable {
    /// The call may proceed (rate limit and params are checked next).
    case allowed(MethodSpec)
    /// No such method in the catalogue: `METHOD_NOT_FOUND`.
    case methodNotFound
    /// The method needs `permission` (one of its list, the first missing) and the program's
    /// manifest does not declare it.
    case notDeclared(permission: String)
    /// The manifest declares `permission` but the partner is not (or no longer) granted it.
    case notGranted(permission: String)
}

/// THE permission table: the single choke point of every Bridge permission decision
/// (DESIGN.md, "The Bridge broker"). Nothing else in the daemon decides whether a call may run.
///
/// Three inputs, one rule:
/// - method → required permissions (all of them): the method catalogue (`policies/methods.json`);
/// - partner → granted permissions: issued by the registry at partner registration, given by
///   the daemon with `updateGrants`;
/// - program → declared permissions: the verified manifest, fixed in `CallerIdentity` when the
///   worker was spawned — never anything the program sends.
///
/// A call is allowed iff the method exists and, for every permission it lists, the program
/// **declares** it **and** the partner is granted it **now**. Declaring alone is not enough (a partner whose
/// contract ended keeps shipping the same manifest), being granted alone is not enough (a
/// program only gets what its reviewed manifest asks for: least privilege).
///
/// The table is an immutable `Snapshot` replaced as a whole, so a decision always sees one
/// consistent version. Readers on the broker's loop thread use a `Reader`, which re-fetches the
/// snapshot only when the generation counter moved: the common-path check is one atomic load
/// plus dictionary lookups, no lock. `updateGrants` publishes before it returns, so a revoked
/// grant denies the very next call, without restarting anything.
public final class PermissionTable: Sendable {
    /// One consistent version of the table.
    public final class Snapshot: Sendable {
        /// The method catalogue.
        public let catalogue: MethodCatalogue
        /// partnerId → permissions granted now.
        public let grants: [String: Set<String>]
        /// Increases with every update.
        public let generation: UInt64

        init(catalogue: MethodCatalogue, grants: [String: Set<String>], generation: UInt64) {
            self.catalogue = catalogue
            self.grants = grants
            self.generation = generation
        }

        /// The decision for `caller` calling `method`.
        @inline(__always)
        public func decide(method: String, caller: CallerIdentity) -> PermissionDecision {
            guard let spec = catalogue.spec(for: method) else { return .methodNotFound }
            // Every listed permission, in catalogue order: the denial names the first one missing.
            // Declared is checked for all before granted, so the answer does not depend on which
            // of two missing grants the partner happens to hold.
            for permission in spec.permissions where !caller.declaredPermissions.contains(permission) {
                return .notDeclared(permission: permission)
            }
            let granted = grants[caller.partnerId]
            for permission in spec.permissions where granted?.contains(permission) != true {
                return .notGranted(permission: permission)
            }
            return .allowed(spec)
        }
    }

    private let current: Mutex<Snapshot>
    private let generation = Atomic<UInt64>(1)

    /// A table with the given catalogue and partner grants.
    public init(catalogue: MethodCatalogue, grants: [String: Set<String>]) {
        current = Mutex(Snapshot(catalogue: catalogue, grants: grants, generation: 1))
    }

    /// The current snapshot (takes a lock; the loop thread uses a `Reader`).
    public var snapshot: Snapshot { current.withLock { $0 } }

    /// Replaces all partner grants (`permissions.refresh`, background refresh). Takes effect for
    /// every call checked after this returns.
    public func updateGrants(_ grants: [String: Set<String>]) {
        current.withLock { s in
            s = Snapshot(catalogue: s.catalogue, grants: grants, generation: s.generation + 1)
            generation.store(s.generation, ordering: .releasing)
        }
    }

    /// Replaces the method catalogue (policy reload).
    public func updateCatalogue(_ catalogue: MethodCatalogue) {
        current.withLock { s in
            s = Snapshot(catalogue: catalogue, grants: s.grants, generation: s.generation + 1)
            generation.store(s.generation, ordering: .releasing)
        }
    }

    /// The decision for one call (any thread).
    public func decide(method: String, caller: CallerIdentity) -> PermissionDecision {
        snapshot.decide(method: method, caller: caller)
    }

    /// A per-thread cache of the snapshot: lock-free while nothing changed. Not Sendable: one
    /// reader per thread (the broker keeps one for its loop thread).
    public final class Reader {
        private let table: PermissionTable
        private var cached: Snapshot

        /// A reader of `table`.
        public init(_ table: PermissionTable) {
            self.table = table
            self.cached = table.snapshot
        }

        /// The current snapshot: the cached one unless the generation moved.
        @inline(__always)
        public var snapshot: Snapshot {
            if table.generation.load(ordering: .acquiring) != cached.generation { cached = table.snapshot }
            return cached
        }
    }
}
