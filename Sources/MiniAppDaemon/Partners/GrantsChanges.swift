import Synchronization

/// The grants every refresh of `PartnerGrants` publishes, with the partners whose grants it
/// changed (a permission granted or revoked, a partner added or removed). Owned by
/// `PartnerGrants`; the parts built after it subscribe at their construction: the broker
/// binding applies the grants to the broker's permission snapshot, the supervisor drops what
/// was made under the old grants for the changed partners' programs (prewarmed workers).
public final class GrantsChanges: Sendable {
    /// One publication: the grants in effect (partner id → permissions) and the partner ids
    /// whose grants differ from the previous publication (possibly none).
    public struct Change: Sendable {
        public var grants: [String: Set<String>]
        public var changed: Set<String>
    }

    private let last: Mutex<[String: Set<String>]>
    private let channel = EventChannel<Change>()

    init(initial: [String: Set<String>]) { last = Mutex(initial) }

    /// Calls `listener` with every publication from now on.
    public func subscribe(_ listener: @escaping @Sendable (Change) -> Void) { channel.subscribe(listener) }

    /// A refresh published `grants` (PartnerGrants, under its refresh lock: in order).
    func publish(_ grants: [String: Set<String>]) {
        let changed = last.withLock { old in
            let ids = Self.changed(old, grants)
            old = grants
            return ids
        }
        channel.post(Change(grants: grants, changed: changed))
    }

    /// The partner ids whose grants differ between `old` and `new`.
    static func changed(_ old: [String: Set<String>], _ new: [String: Set<String>]) -> Set<String> {
        Set(old.keys).union(new.keys).filter { old[$0] != new[$0] }
    }
}
