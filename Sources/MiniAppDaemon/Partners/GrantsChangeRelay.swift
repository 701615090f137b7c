import Synchronization

/// Tells which partners' grants a refresh changed (a permission granted or revoked, a partner
/// added or removed), so that what was made under the old grants for their programs (prewarmed
/// workers) is dropped. The broker itself needs no such relay: it checks every call against the
/// grants in effect.
final class GrantsChangeRelay: Sendable {
    private let last: Mutex<[String: Set<String>]>
    private let sink = Mutex<(@Sendable (Set<String>) -> Void)?>(nil)

    init(initial: [String: Set<String>]) { last = Mutex(initial) }

    /// Where the changed partner ids go (the supervisor).
    func connect(_ apply: @escaping @Sendable (Set<String>) -> Void) { sink.withLock { $0 = apply } }

    /// A refresh published `grants`.
    func publish(_ grants: [String: Set<String>]) {
        let changed = last.withLock { old in
            let ids = Self.changed(old, grants)
            old = grants
            return ids
        }
        if !changed.isEmpty { sink.withLock { $0 }?(changed) }
    }

    /// The partner ids whose grants differ between `old` and `new`.
    static func changed(_ old: [String: Set<String>], _ new: [String: Set<String>]) -> Set<String> {
        Set(old.keys).union(new.keys).filter { old[$0] != new[$0] }
    }
}
