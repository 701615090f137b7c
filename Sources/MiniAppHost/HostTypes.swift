public import MiniAppJSON

/// A notification from the daemon (`program.exited`, `inspector.event`, `package.staged`, …),
/// or one this library makes about its connection: `connection.lost {code, message}` when the
/// connection drops (every call in flight has then failed), `connection.restored {}` once it is
/// back and providers and subscriptions are registered again (or `{error: {code, message}}`
/// when one of them was refused).
public struct HostNotification: Sendable, Equatable {
    /// The notification's method, e.g. `program.exited`.
    public let method: String
    /// Its params (an empty object when it had none).
    public let params: JSONObject

    public init(method: String, params: JSONObject) {
        self.method = method
        self.params = params
    }
}

/// A host-provided Bridge method call that the daemon forwarded to this host (`bridge.call`).
/// Only calls that passed the daemon's permission check arrive; the caller's identity is what
/// the daemon says (the worker's connection), never anything the program sent.
public struct HostCall: Sendable {
    /// The calling program, as the daemon identified it.
    public struct Program: Sendable, Equatable {
        public let id: String
        public let version: String
    }
    /// The daemon's request id (`p-17`).
    public let id: JSONValue
    /// The Bridge method, e.g. `payment.pay`.
    public let method: String
    /// The program's params.
    public let params: JSONObject
    /// Who called.
    public let program: Program
    /// The calling worker.
    public let workerId: String

    /// Decodes `bridge.call` params; nil when a member is missing or of the wrong type.
    init?(id: JSONValue, params p: JSONObject) {
        guard let method = p["method"]?.stringValue, let program = p["program"]?.objectValue,
            let programId = program["id"]?.stringValue, let workerId = p["workerId"]?.stringValue
        else { return nil }
        let inner = p["params"] ?? .object([:])
        guard let innerObject = inner.objectValue else { return nil }
        self.id = id
        self.method = method
        self.params = innerObject
        self.program = Program(id: programId, version: program["version"]?.stringValue ?? "")
        self.workerId = workerId
    }
}

/// Serves host-provided Bridge methods: returns the result, or throws `HostError` to answer an
/// error (any other error answers `INTERNAL`). Its task is cancelled when the daemon gives up on
/// the call (`bridge.cancel`: the method's timeout passed, or the worker exited); an answer
/// after that is dropped.
public typealias HostHandler = @Sendable (HostCall) async throws -> JSONValue

/// How a `HostClient` behaves.
public struct HostOptions: Sendable {
    /// A call's timeout when it names none (ms): past it the call fails `TIMEOUT`.
    public var callTimeoutMillis = 30_000
    /// Reconnect after the connection drops (a daemon restart), registering providers and
    /// subscriptions again.
    public var reconnect = true
    /// Attempts before giving up (every later call then fails `HOST_UNAVAILABLE`).
    public var maxReconnectAttempts = 40
    /// First wait before reconnecting (ms); doubled per attempt up to `reconnectMaxMillis`.
    public var reconnectInitialMillis = 50
    /// Longest wait between attempts (ms).
    public var reconnectMaxMillis = 2_000
    /// Bound on writing one message (ms): a daemon that does not read fails the call.
    public var sendTimeoutMillis = 10_000
    /// Longest line accepted from the daemon.
    public var maxLineBytes = 64 << 20
    /// Deliver requests this host does not serve and responses to requests it did not send
    /// through `onMessage` instead of refusing them (for clients that speak raw JSON-RPC, such
    /// as the blocking `ControlClient` of the CLI and tests).
    public var deliverUnhandled = false
    /// Sees every message the library does not consume itself, in order, on the reader thread
    /// (it must not block): notifications (the `connection.*` ones included) and, with
    /// `deliverUnhandled`, unserved requests and unmatched responses.
    public var onMessage: (@Sendable (JSONObject) -> Void)?

    public init() {}
}
