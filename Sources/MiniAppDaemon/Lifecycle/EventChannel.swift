import Synchronization

/// An event a part of the daemon announces to parts built after it. The announcing part owns
/// the channel; a part built later is given it at construction and subscribes in its own init.
/// So construction runs in dependency order and nothing is wired in after construction: an
/// earlier part never holds a later one (README "Lifecycle").
public final class EventChannel<Event: Sendable>: Sendable {
    private let listeners = Mutex<[@Sendable (Event) -> Void]>([])

    public init() {}

    /// Calls `listener` with every event posted from now on, after the listeners subscribed
    /// before it, on the posting thread.
    public func subscribe(_ listener: @escaping @Sendable (Event) -> Void) { listeners.withLock { $0.append(listener) } }

    /// Tells every listener, in subscription order (outside the lock).
    public func post(_ event: Event) {
        for l in listeners.withLock({ $0 }) { l(event) }
    }
}
