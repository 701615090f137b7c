public import MiniAppSystem
public import MiniAppJSON
import MiniAppModel
import Synchronization

/// The Bridge Inspector stream (spec/control-api.md, `inspector.subscribe`): one
/// `inspector.event` notification per Bridge call to every subscriber, optionally filtered by
/// program id. Without payload mode the event carries no params or results; with it they are
/// redacted by `Redactor` (no token, authorization, password, secret, cookie member).
///
/// Subscribers are control connections or in-process callbacks. Loop-confined; the public
/// methods may be called from any thread.
public final class Inspector: @unchecked Sendable {
    /// Identifies a callback subscription.
    public struct Subscription: Hashable, Sendable {
        let id: UInt64
    }

    private enum Sink {
        case connection(LineConnection)
        case callback(@Sendable (JSONValue) -> Void)
    }

    private struct Subscriber {
        var sink: Sink
        var programId: String?
    }

    private let reactor: Reactor
    /// Whether events carry (redacted) params and results.
    public let payloads: Bool
    private var subscribers: [UInt64: Subscriber] = [:]
    private var nextId: UInt64 = 1

    init(reactor: Reactor, payloads: Bool) {
        self.reactor = reactor
        self.payloads = payloads
    }

    /// True when anyone listens (loop thread): records are only built for subscribers.
    var isActive: Bool { !subscribers.isEmpty }

    /// Streams events to a control connection until it closes or `unsubscribe` is called.
    /// `programId` nil = every program.
    public func subscribe(connection: LineConnection, programId: String?) {
        onLoop { [self] in
            let id = add(Subscriber(sink: .connection(connection), programId: programId))
            connection.addCloseObserver { [weak self] in self?.subscribers[id] = nil }
        }
    }

    /// Calls `callback` (on the loop thread: keep it short) with each event's params object.
    @discardableResult
    public func subscribe(programId: String?, callback: @escaping @Sendable (JSONValue) -> Void) -> Subscription {
        let sub = Subscription(id: SubscriptionBox.shared.reserve())
        onLoop { [self] in subscribers[sub.id] = Subscriber(sink: .callback(callback), programId: programId) }
        return sub
    }

    /// Ends a callback subscription.
    public func unsubscribe(_ subscription: Subscription) {
        onLoop { [self] in subscribers[subscription.id] = nil }
    }

    /// Ends every subscription of `connection`.
    public func unsubscribe(connection: LineConnection) {
        onLoop { [self] in
            subscribers = subscribers.filter {
                if case .connection(let c) = $0.value.sink { return c !== connection }
                return true
            }
        }
    }

    func publish(_ record: CallRecord) {
        var line: [UInt8] = []
        var params: JSONValue?
        for (id, s) in subscribers {
            if let p = s.programId, p != record.programId { continue }
            if params == nil {
                var r = record
                // A simulated program's payloads are shown (redacted): it is the partner's own
                // test program on a developer's simulator, and `inspect --record` needs them.
                if !payloads && !record.simulated {
                    r.params = nil
                    r.result = nil
                }
                params = r.json()
            }
            switch s.sink {
            case .callback(let cb):
                cb(params!)
            case .connection(let c):
                guard c.isOpen else {
                    subscribers[id] = nil
                    continue
                }
                if line.isEmpty { RPCCodec.writeNotification(method: "inspector.event", params: params, into: &line) }
                c.appendOutput { $0.append(contentsOf: line) }
            }
        }
    }

    private func add(_ s: Subscriber) -> UInt64 {
        let id = SubscriptionBox.shared.reserve()
        subscribers[id] = s
        return id
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if reactor.isInLoopThread { body() } else { reactor.execute(body) }
    }
}

/// Subscription ids, unique process-wide, reservable from any thread.
final class SubscriptionBox: Sendable {
    static let shared = SubscriptionBox()
    private let next = Atomic<UInt64>(0)
    func reserve() -> UInt64 { next.wrappingAdd(1, ordering: .relaxed).newValue }
}
