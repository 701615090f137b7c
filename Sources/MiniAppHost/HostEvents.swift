public import MiniAppJSON

/// `program.exited {workerId, id, status, signal?, reason, detail?}`.
public struct ProgramExited: Sendable {
    public let workerId: String
    public let id: String
    /// The exit code, or 128 + the signal number.
    public let status: Int64
    public let signal: String?
    /// `exit`, `signal`, `killed-oom`, `killed-limit`, `stopped`, `daemon-shutdown`.
    public let reason: String
    public let detail: String?
}

/// `inspector.event`: one Bridge call.
public struct InspectorEvent: Sendable {
    public let workerId: String
    public let programId: String
    public let method: String
    public let decision: String
    public let code: String?
    public let micros: Int64
    public let raw: JSONObject
}

/// The update notifications (v1.1).
public enum UpdateEvent: Sendable {
    case staged(id: String, version: String)
    case activated(id: String, version: String, previous: String?)
    case rolledBack(id: String, from: String, to: String, reason: String)
    case updateFailed(id: String, version: String?, code: String, message: String)
}

/// A notification, typed.
public enum HostEvent: Sendable {
    case programExited(ProgramExited)
    case inspector(InspectorEvent)
    case update(UpdateEvent)
    /// The connection dropped; every call in flight failed with this error.
    case connectionLost(HostError)
    /// The connection is back; providers and subscriptions are registered again (`error`: the
    /// first registration the daemon refused).
    case connectionRestored(error: HostError?)
    /// A notification this library does not know (the daemon may add some): passed through.
    case other(HostNotification)
    /// A known notification whose params are not what the spec says.
    case malformed(HostNotification, HostError)

    /// Types `n`.
    public init(_ n: HostNotification) {
        do throws(HostError) {
            self = try Self.decode(n)
        } catch {
            self = .malformed(n, error)
        }
    }

    private static func decode(_ n: HostNotification) throws(HostError) -> HostEvent {
        let f = HostFields(object: n.params, "the notification \(n.method)")
        switch n.method {
        case "program.exited":
            return .programExited(
                ProgramExited(
                    workerId: try f.string("workerId"), id: try f.string("id"), status: try f.int("status"),
                    signal: try f.optionalString("signal"), reason: try f.string("reason"), detail: try f.optionalString("detail")))
        case "inspector.event":
            return .inspector(
                InspectorEvent(
                    workerId: try f.string("workerId"), programId: try f.string("programId"), method: try f.string("method"),
                    decision: try f.string("decision"), code: try f.optionalString("code"), micros: try f.int("micros"), raw: n.params))
        case "package.staged":
            return .update(.staged(id: try f.string("id"), version: try f.string("version")))
        case "package.activated":
            return .update(.activated(id: try f.string("id"), version: try f.string("version"), previous: try f.optionalString("previous")))
        case "package.rolledBack":
            return .update(.rolledBack(id: try f.string("id"), from: try f.string("from"), to: try f.string("to"), reason: try f.string("reason")))
        case "package.updateFailed":
            return .update(
                .updateFailed(
                    id: try f.string("id"), version: try f.optionalString("version"), code: try f.string("code"),
                    message: try f.string("message")))
        case "connection.lost":
            return .connectionLost(HostError(try f.string("code"), try f.string("message")))
        case "connection.restored":
            let e = n.params["error"]?.objectValue.map { HostFields(object: $0, "connection.restored error") }
            return .connectionRestored(error: try e.map { (x: HostFields) throws(HostError) in HostError(try x.string("code"), try x.string("message")) })
        default:
            return .other(n)
        }
    }
}

extension HostClient {
    /// Every notification from now on, typed.
    public func events() -> some AsyncSequence<HostEvent, Never> { notifications().map(HostEvent.init) }

    /// `program.exited` notifications from now on.
    public func programExits() -> some AsyncSequence<ProgramExited, Never> {
        events().compactMap { if case .programExited(let e) = $0 { e } else { nil } }
    }

    /// `inspector.event` notifications from now on (after `subscribeInspector`).
    public func inspectorEvents() -> some AsyncSequence<InspectorEvent, Never> {
        events().compactMap { if case .inspector(let e) = $0 { e } else { nil } }
    }

    /// `package.staged|activated|rolledBack|updateFailed` notifications from now on.
    public func updateEvents() -> some AsyncSequence<UpdateEvent, Never> {
        events().compactMap { if case .update(let e) = $0 { e } else { nil } }
    }
}
